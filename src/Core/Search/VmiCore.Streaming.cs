using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>The streaming read: a virtual range as runs of contiguous physical memory, copied straight from the driver.</summary>
public sealed partial class VmiCore
{
    /// <summary>
    /// Reads <paramref name="buffer"/> from guest memory as runs: each translation covers a whole leaf (4 KiB, 2 MiB,
    /// 1 GiB or 4 MiB page), a page-table walk reuses the upper levels of the last walk in the same 2 MiB region, and
    /// the bytes are copied straight into <paramref name="buffer"/> by the driver where it can (<see cref="IVmiDirectMemory"/>),
    /// else page by page through the page cache. Translations are taken from the V2P cache when it has them but not
    /// added to it, so a long read does not push out the translations in use; pages the page cache holds are copied from
    /// it, the others are not added to it. Unreadable memory is handled as <paramref name="mode"/> says, page by page,
    /// exactly as <see cref="Read(AccessContext, Span{byte}, ReadMode)"/>. (<see cref="Read(AccessContext, Span{byte})"/>
    /// stays page by page through both caches: what it read is cached, and stays readable if the backing goes.)
    /// </summary>
    public ReadResult ReadStreaming(AccessContext ctx, Span<byte> buffer, ReadMode mode = ReadMode.Strict)
    {
        List<ulong>? unreadable = null;
        int done = ReadRuns(ctx, buffer, mode, ref unreadable, out ulong? fault);
        return new ReadResult(done, fault, (IReadOnlyList<ulong>?)unreadable ?? []);
    }

    /// <summary>The streaming read without a result object (a strict read of one page at a time must not allocate).</summary>
    private int ReadRuns(in AccessContext ctx, Span<byte> buffer, ReadMode mode, ref List<ulong>? unreadable, out ulong? faultAddress)
    {
        faultAddress = null;
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckRange(ctx.Address, buffer.Length);
        if (!_pages.CanRead)
        {
            throw Missing(VmiCapability.Read);
        }

        bool paging = ctx.Mechanism.Kind == TranslationKind.Paging;
        Pa root = default;
        PagingMode pagingMode = default;
        PagingFeatures features = default;
        if (paging)
        {
            root = ctx.Mechanism.Root ?? ThrowRootNotPresent();
            pagingMode = ctx.Mechanism.Mode ?? PagingMode;
            features = PagingFeatures;
        }

        int done = 0;
        while (done < buffer.Length)
        {
            ulong address = ctx.Address + (ulong)done;
            int left = buffer.Length - done;
            ulong pa;
            int chunk;
            TranslationResult fault = default;
            bool translated = true;
            if (!paging)
            {
                pa = address;
                chunk = left;
            }
            else
            {
                fault = _translator.TranslateForStream(root, address, pagingMode, features);
                translated = fault.Success;
                pa = fault.Pa.Value;
                ulong leaf = Amd64.BytesOf(fault.PageSize);
                chunk = (int)Math.Min(leaf - (address & (leaf - 1)), (ulong)left);
            }

            int copied = translated ? _pages.CopyPhysical(pa, buffer.Slice(done, chunk)) : 0;
            done += copied;
            if (copied == chunk)
            {
                continue;
            }

            // The page at `bad` cannot be read: its translation failed, or its frame has no backing.
            ulong bad = address + (ulong)copied;
            int inPage = (int)Math.Min(Amd64.PageSize - (bad & Amd64.PageMask), (ulong)(buffer.Length - done));
            switch (mode)
            {
                case ReadMode.Strict:
                    ThrowUnreadable(ctx, bad, pa + (ulong)copied, fault, translated);
                    break;
                case ReadMode.UntilFault:
                    faultAddress = bad;
                    return done;
                default:
                    buffer.Slice(done, inPage).Clear();
                    (unreadable ??= []).Add(bad & ~Amd64.PageMask);
                    done += inPage;
                    break;
            }
        }

        return buffer.Length;
    }
}
