using System.Net.Sockets;
using System.Text;

namespace Vmi.Qemu.Tests;

/// <summary>A scripted peer on a unix socket in a private temp dir: the test plays QEMU's side byte by byte.</summary>
public sealed class FakePeer : IDisposable
{
    private readonly Socket _listener;
    private readonly string _dir;
    private Socket? _peer;
    private readonly MemoryStream _received = new();

    public FakePeer()
    {
        _dir = Directory.CreateTempSubdirectory("vmi-fake-").FullName;
        Path = System.IO.Path.Combine(_dir, "s.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(Path));
        _listener.Listen(1);
    }

    public string Path { get; }

    public Socket Peer => _peer ??= Accept();

    private Socket Accept()
    {
        Task<Socket> t = _listener.AcceptAsync();
        Assert.True(t.Wait(TimeSpan.FromSeconds(30)), "the client never connected");
        return t.Result;
    }

    public void Send(string text) => Peer.Send(Encoding.ASCII.GetBytes(text));

    /// <summary>Reads exactly the bytes <paramref name="expected"/> has and asserts they are equal.</summary>
    public void Expect(string expected)
    {
        byte[] want = Encoding.ASCII.GetBytes(expected);
        byte[] got = new byte[want.Length];
        int n = 0;
        Peer.ReceiveTimeout = 30000;
        while (n < got.Length)
        {
            int r = Peer.Receive(got, n, got.Length - n, SocketFlags.None);
            Assert.True(r > 0, $"the client closed the connection; expected '{expected}', got '{Encoding.ASCII.GetString(got, 0, n)}'");
            n += r;
        }

        Assert.Equal(expected, Encoding.ASCII.GetString(got));
    }

    /// <summary>Reads one line (QMP).</summary>
    public string ReadLine()
    {
        var sb = new StringBuilder();
        byte[] b = new byte[1];
        Peer.ReceiveTimeout = 30000;
        while (Peer.Receive(b) == 1 && b[0] != '\n')
        {
            sb.Append((char)b[0]);
        }

        return sb.ToString();
    }

    public static string Packet(string payload)
    {
        byte sum = 0;
        foreach (char c in payload)
        {
            sum += (byte)c;
        }

        return $"${payload}#{sum:x2}";
    }

    public void Dispose()
    {
        _peer?.Dispose();
        _listener.Dispose();
        _received.Dispose();
        try
        {
            Directory.Delete(_dir, true);
        }
        catch (IOException)
        {
        }
    }
}
