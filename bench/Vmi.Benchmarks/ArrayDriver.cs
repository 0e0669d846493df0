using System.Diagnostics.CodeAnalysis;
using Vmi.Core;

namespace Vmi.Benchmarks;

/// <summary>
/// Guest memory as one pinned array; pages are handed out as pointers into it, as a foreign mapping or a
/// memory-mapped image would be. A bump allocator and a 4-level page-table writer set up virtual ranges.
/// </summary>
internal sealed unsafe class ArrayDriver : IVmiDriver, IVmiRead, IVmiWrite
{
    private readonly byte[] _memory;
    private readonly byte* _base;
    private ulong _nextFrame = 1;

    public ArrayDriver(int megabytes)
    {
        _memory = GC.AllocateArray<byte>(megabytes << 20, pinned: true);
        fixed (byte* p = _memory)
        {
            _base = p; // pinned heap: stable
        }

        Info = new VmiInfo(4096, 12, new Gfn((ulong)(_memory.Length >> 12) - 1), 1);
        Root = AllocateFrame() << 12;
    }

    public string Name => "Array";

    public VmiInfo Info { get; }

    public ulong Root { get; }

    public Span<byte> Memory => _memory;

    public ulong AllocateFrame() => _nextFrame++;

    /// <summary>Maps <paramref name="bytes"/> of 4 KiB pages at <paramref name="va"/> to fresh frames (IA-32e 4-level).</summary>
    public void Map(ulong va, ulong bytes)
    {
        for (ulong off = 0; off < bytes; off += 4096)
        {
            ulong table = Root;
            ulong v = va + off;
            for (int level = 4; level > 1; level--)
            {
                ulong at = table + (((v >> (12 + (9 * (level - 1)))) & 0x1FF) * 8);
                ulong e = BitConverter.ToUInt64(_memory, (int)at);
                if ((e & 1) == 0)
                {
                    e = (AllocateFrame() << 12) | 0x7;
                    BitConverter.TryWriteBytes(_memory.AsSpan((int)at), e);
                }

                table = e & 0x000F_FFFF_FFFF_F000;
            }

            ulong pte = table + (((v >> 12) & 0x1FF) * 8);
            BitConverter.TryWriteBytes(_memory.AsSpan((int)pte), (AllocateFrame() << 12) | 0x63);
        }
    }

    public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        if (gfn.Value > Info.MaxGfn.Value)
        {
            page = null;
            return false;
        }

        page = new PointerPage(gfn, _base + (gfn.Value << 12));
        return true;
    }

    public void WritePage(Gfn gfn, int offset, ReadOnlySpan<byte> data) => data.CopyTo(_memory.AsSpan((int)(gfn.Value << 12) + offset));

    public void Dispose()
    {
    }

    private sealed class PointerPage(Gfn gfn, byte* p) : MappedPage(gfn, p, 4096);
}
