using System.Text;
using Vmi.Core;

namespace Vmi.Qemu.Tests;

/// <summary>The RSP and QMP clients against scripted peers that check every byte the client sends.</summary>
public sealed class GdbRemoteProtocolTests
{
    [Theory]
    [InlineData("g", "$g#67")]
    [InlineData("m1000,4", "$m1000,4#8e")]
    [InlineData("qSupported", "$qSupported#37")]
    public void Frame_carries_the_modulo_256_checksum(string payload, string framed) =>
        Assert.Equal(framed, Encoding.ASCII.GetString(GdbRemote.Frame(payload)));

    [Fact]
    public void Frame_escapes_the_four_special_bytes()
    {
        // '}' then the byte xor 0x20; the checksum covers the escaped bytes.
        string framed = Encoding.ASCII.GetString(GdbRemote.Frame("a#b"));
        Assert.Equal("$a}\u0003b" + "#" + (((byte)'a' + (byte)'}' + 0x03 + (byte)'b') & 0xff).ToString("x2"), framed);
    }

    [Fact]
    public void Ack_mode_then_no_ack_mode_byte_for_byte()
    {
        using var peer = new FakePeer();
        using GdbRemote gdb = GdbRemote.Connect(peer.Path);
        var handshake = Task.Run(gdb.Handshake);
        string q = "qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+;xmlRegisters=i386";
        peer.Expect(FakePeer.Packet(q));
        peer.Send("+" + FakePeer.Packet("PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+"));
        peer.Expect("+"); // the client acknowledges our reply
        peer.Expect(FakePeer.Packet("QStartNoAckMode"));
        peer.Send("+" + FakePeer.Packet("OK"));
        peer.Expect("+");
        Assert.True(handshake.Wait(TimeSpan.FromSeconds(30)));
        Assert.True(gdb.NoAckMode);
        Assert.Equal("1000", gdb.Features["PacketSize"]);
        Assert.Equal("+", gdb.Features["multiprocess"]);

        // No acks any more, either way.
        var read = Task.Run(() => gdb.Command("p10"));
        peer.Expect(FakePeer.Packet("p10"));
        peer.Send(FakePeer.Packet("a5aff4a7ffffffff"));
        Assert.True(read.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal("a5aff4a7ffffffff", read.Result);
    }

    [Fact]
    public void A_bad_checksum_is_nacked_and_the_resent_packet_taken()
    {
        using var peer = new FakePeer();
        using GdbRemote gdb = GdbRemote.Connect(peer.Path);
        var cmd = Task.Run(() => gdb.Command("g"));
        peer.Expect("$g#67");
        peer.Send("+$OK#00"); // wrong checksum
        peer.Expect("-");
        peer.Send(FakePeer.Packet("OK"));
        peer.Expect("+");
        Assert.True(cmd.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal("OK", cmd.Result);
    }

    [Fact]
    public void A_nack_makes_the_client_send_again()
    {
        using var peer = new FakePeer();
        using GdbRemote gdb = GdbRemote.Connect(peer.Path);
        var cmd = Task.Run(() => gdb.Command("g"));
        peer.Expect("$g#67");
        peer.Send("-");
        peer.Expect("$g#67");
        peer.Send("+" + FakePeer.Packet("00"));
        peer.Expect("+");
        Assert.True(cmd.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal("00", cmd.Result);
    }

    [Fact]
    public void Run_length_and_escapes_are_decoded()
    {
        using var peer = new FakePeer();
        using GdbRemote gdb = GdbRemote.Connect(peer.Path);
        var cmd = Task.Run(() => gdb.Command("m0,8"));
        peer.Expect(FakePeer.Packet("m0,8"));
        // "0* " = '0' and 3 more ('*' then ' ' = 32 - 29); "}\x03" = '#'.
        string payload = "0* 1}\u0003";
        byte sum = 0;
        foreach (char c in payload)
        {
            sum += (byte)c;
        }

        peer.Send($"+${payload}#{sum:x2}");
        peer.Expect("+");
        Assert.True(cmd.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal("00001#", cmd.Result);
    }

    [Fact]
    public void Stop_replies_are_queued_apart_from_command_replies()
    {
        using var peer = new FakePeer();
        using GdbRemote gdb = GdbRemote.Connect(peer.Path);
        var cmd = Task.Run(() => gdb.Command("Hgp1.2"));
        peer.Expect(FakePeer.Packet("Hgp1.2"));
        // QEMU reports a pause (QMP stop) while the command is in flight: the stop is not the reply.
        peer.Send("+" + FakePeer.Packet("T02thread:p01.02;") + FakePeer.Packet("OK"));
        peer.Expect("+");
        peer.Expect("+");
        Assert.True(cmd.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal("OK", cmd.Result);
        Assert.True(gdb.TryTakeStop(TimeSpan.Zero, out GdbStopReply? stop));
        Assert.Equal(GdbStopReply.SigInt, stop!.Signal);
        Assert.Equal("p01.02", stop.Thread);

        peer.Send(FakePeer.Packet("T05thread:p01.01;swbreak:;"));
        Assert.True(gdb.TryTakeStop(TimeSpan.FromSeconds(30), out stop));
        Assert.Equal(GdbStopReply.SigTrap, stop!.Signal);
        Assert.True(stop.Fields.ContainsKey("swbreak"));
        peer.Expect("+");
    }

    [Fact]
    public void ReadXfer_pages_until_the_last_piece()
    {
        using var peer = new FakePeer();
        using GdbRemote gdb = GdbRemote.Connect(peer.Path);
        var read = Task.Run(() => gdb.ReadXfer("features", "target.xml"));
        peer.Expect(FakePeer.Packet("qXfer:features:read:target.xml:0,fff"));
        peer.Send("+" + FakePeer.Packet("m<tar"));
        peer.Expect("+");
        peer.Expect(FakePeer.Packet("qXfer:features:read:target.xml:4,fff"));
        peer.Send("+" + FakePeer.Packet("lget/>"));
        peer.Expect("+");
        Assert.True(read.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal("<target/>", read.Result);
    }

    [Fact]
    public void A_closed_stub_is_a_clear_error()
    {
        var peer = new FakePeer();
        using GdbRemote gdb = GdbRemote.Connect(peer.Path);
        var cmd = Task.Run(() => gdb.Command("g"));
        peer.Expect("$g#67");
        peer.Dispose();
        var e = Assert.Throws<AggregateException>(() => cmd.Wait(TimeSpan.FromSeconds(30)));
        Assert.Contains("closed the connection", Assert.IsType<VmiDriverException>(e.InnerException).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stop_reply_parse()
    {
        GdbStopReply s = GdbStopReply.Parse("T05thread:p01.02;hwbreak:;");
        Assert.Equal('T', s.Kind);
        Assert.Equal(5, s.Signal);
        Assert.Equal("p01.02", s.Thread);
        Assert.False(GdbStopReply.IsStopReply("OK"));
        Assert.False(GdbStopReply.IsStopReply("E22"));
        Assert.False(GdbStopReply.IsStopReply("a5aff4a7"));
    }
}

public sealed class QmpProtocolTests
{
    private const string Greeting = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\n";

    [Fact]
    public void Greeting_capabilities_commands_events_and_errors()
    {
        using var peer = new FakePeer();
        var connect = Task.Run(() => QmpClient.Connect(peer.Path));
        peer.Send(Greeting);
        Assert.Equal("{\"execute\":\"qmp_capabilities\",\"id\":\"vmi-1\"}", peer.ReadLine());
        peer.Send("{\"return\": {}, \"id\": \"vmi-1\"}\n");
        Assert.True(connect.Wait(TimeSpan.FromSeconds(30)));
        using QmpClient qmp = connect.Result;
        Assert.Equal(new Version(7, 2, 22), qmp.Version);

        var status = Task.Run(qmp.Status);
        Assert.Equal("{\"execute\":\"query-status\",\"id\":\"vmi-2\"}", peer.ReadLine());
        peer.Send("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\n");
        peer.Send("{\"return\": {\"status\": \"paused\", \"running\": false}, \"id\": \"vmi-2\"}\n");
        Assert.True(status.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal("paused", status.Result);
        Assert.Equal("STOP", (string?)Assert.Single(qmp.Events)["event"]);

        var hmp = Task.Run(() => qmp.Hmp("gva2gpa 0x1000", 1));
        Assert.Equal("{\"execute\":\"human-monitor-command\",\"id\":\"vmi-3\",\"arguments\":{\"command-line\":\"gva2gpa 0x1000\",\"cpu-index\":1}}", peer.ReadLine());
        peer.Send("{\"error\": {\"class\": \"GenericError\", \"desc\": \"CPU is not valid\"}, \"id\": \"vmi-3\"}\n");
        var e = Assert.Throws<AggregateException>(() => hmp.Wait(TimeSpan.FromSeconds(30)));
        var q = Assert.IsType<QmpException>(e.InnerException);
        Assert.Equal("GenericError", q.ErrorClass);
        Assert.Contains("CPU is not valid", q.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_peer_that_is_not_QMP_is_named()
    {
        using var peer = new FakePeer();
        var connect = Task.Run(() => QmpClient.Connect(peer.Path));
        peer.Send("{\"hello\": 1}\n");
        var e = Assert.Throws<AggregateException>(() => connect.Wait(TimeSpan.FromSeconds(30)));
        Assert.Contains("QMP socket", e.InnerException!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_socket_says_how_to_start_QEMU()
    {
        var e = Assert.Throws<VmiDriverException>(() => QmpClient.Connect("/nonexistent/qmp.sock"));
        Assert.Contains("-qmp unix:", e.Message, StringComparison.Ordinal);
    }
}
