using System.Diagnostics.CodeAnalysis;
using Vmi.Core;

namespace Vmi.Core.Tests.Infrastructure;

/// <summary>
/// The tests' own driver: guest memory as a sparse dictionary of 4 KiB frames. A frame that was never
/// written has no backing (TryMapPage says false), which is how tests make holes. Pages are handed out
/// as views on the dictionary's arrays (live), unless <see cref="CopyPages"/> asks for copies.
/// </summary>
public class SparseDriver : IVmiDriver, IVmiRead, IVmiWrite
{
    public const int PageSize = 4096;

    private readonly Dictionary<ulong, byte[]> _frames = [];

    public SparseDriver(string name = "Sparse", ulong maxGfn = (1UL << 40) - 1, int vcpus = 1, int physicalAddressWidth = 52)
    {
        Name = name;
        Info = new VmiInfo(PageSize, 12, new Gfn(maxGfn), vcpus) { PhysicalAddressWidth = physicalAddressWidth };
    }

    public string Name { get; }

    public VmiInfo Info { get; }

    /// <summary>How pages are handed out: views on the backing arrays (default), native pointers, or copies.</summary>
    public PageKind Pages { get; set; } = PageKind.Array;

    public int MapCalls { get; private set; }

    public int WriteCalls { get; private set; }

    /// <summary>Pointer pages mapped and not yet released.</summary>
    public int LivePages { get; private set; }

    public int Released { get; private set; }

    public bool Disposed { get; private set; }

    public IEnumerable<ulong> Frames => _frames.Keys;

    public bool HasFrame(ulong gfn) => _frames.ContainsKey(gfn);

    public byte[] Frame(ulong gfn)
    {
        if (!_frames.TryGetValue(gfn, out byte[]? f))
        {
            f = GC.AllocateArray<byte>(PageSize, pinned: true); // stable address for pointer pages
            _frames[gfn] = f;
        }

        return f;
    }

    public void RemoveFrame(ulong gfn) => _frames.Remove(gfn);

    /// <summary>Writes straight into guest memory, behind VmiCore's back (like another vCPU would).</summary>
    public void Poke(ulong pa, ReadOnlySpan<byte> data)
    {
        int done = 0;
        while (done < data.Length)
        {
            ulong a = pa + (ulong)done;
            int off = (int)(a & 0xFFF);
            int n = Math.Min(PageSize - off, data.Length - done);
            data.Slice(done, n).CopyTo(Frame(a >> 12).AsSpan(off));
            done += n;
        }
    }

    public void PokeU64(ulong pa, ulong value) => Poke(pa, BitConverter.GetBytes(value));

    public void PokeU32(ulong pa, uint value) => Poke(pa, BitConverter.GetBytes(value));

    public byte[] Peek(ulong pa, int length)
    {
        var r = new byte[length];
        for (int i = 0; i < length; i++)
        {
            ulong a = pa + (ulong)i;
            r[i] = _frames.TryGetValue(a >> 12, out byte[]? f) ? f[a & 0xFFF] : (byte)0;
        }

        return r;
    }

    public virtual bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        MapCalls++;
        if (!_frames.TryGetValue(gfn.Value, out byte[]? f))
        {
            page = null;
            return false;
        }

        switch (Pages)
        {
            case PageKind.Copy:
                page = new CopiedPage(gfn, (byte[])f.Clone());
                break;
            case PageKind.Pointer:
                LivePages++;
                page = PointerPage.Create(gfn, f, this);
                break;
            default:
                page = new MappedPage(gfn, f);
                break;
        }

        return true;
    }

    public virtual void WritePage(Gfn gfn, int offset, ReadOnlySpan<byte> data)
    {
        WriteCalls++;
        Assert.InRange(offset, 0, PageSize - 1);
        Assert.True(offset + data.Length <= PageSize, "a driver write must not cross its frame");
        data.CopyTo(Frame(gfn.Value).AsSpan(offset));
    }

    public void Dispose() => Disposed = true;

    private sealed class CopiedPage(Gfn gfn, byte[] copy) : MappedPage(gfn, copy)
    {
        public override bool IsLive => false;
    }

    /// <summary>A page given as a raw pointer into pinned memory, like a foreign mapping; releasing it is counted.</summary>
    private sealed unsafe class PointerPage : MappedPage
    {
        private readonly SparseDriver _owner;

        private PointerPage(Gfn gfn, byte* pointer, SparseDriver owner)
            : base(gfn, pointer, PageSize)
        {
            _owner = owner;
        }

        public static PointerPage Create(Gfn gfn, byte[] pinned, SparseDriver owner)
        {
            fixed (byte* p = pinned)
            {
                return new PointerPage(gfn, p, owner); // the array is on the pinned heap: the pointer stays valid
            }
        }

        protected override void Release(byte* pointer, int length)
        {
            _owner.LivePages--;
            _owner.Released++;
        }
    }
}

public enum PageKind
{
    Array,
    Pointer,
    Copy,
}
