using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Mock;

/// <summary>
/// Sparse guest-physical memory: a frame exists once it is populated (by a write through
/// <see cref="Write"/>, by <see cref="Populate"/>, or by a frame allocation) and not before.
/// A frame that was never populated is absent, as a hole in a memory image is: reads of it fail
/// and <see cref="MockGuest.TryMapPage"/> returns false. Thread-safe.
/// </summary>
public sealed class SparseMemory
{
    private readonly Dictionary<ulong, byte[]> _frames = [];
    private readonly HashSet<ulong> _tableFrames = [];
    private readonly Lock _gate = new();
    private ulong _highest;
    private bool _highestValid = true;

    public SparseMemory(Gfn maxGfn)
    {
        if (maxGfn.Value >= 1UL << (Amd64.MaxPhysicalAddressWidth - Amd64.PageShift))
        {
            throw new ArgumentOutOfRangeException(nameof(maxGfn), $"The highest frame {maxGfn} lies beyond the 52-bit physical address space; use at most 0x{(1UL << 40) - 1:x}.");
        }

        MaxGfn = maxGfn;
    }

    /// <summary>The highest frame this memory can hold.</summary>
    public Gfn MaxGfn { get; }

    /// <summary>Number of frames populated.</summary>
    public int PopulatedCount
    {
        get
        {
            lock (_gate)
            {
                return _frames.Count;
            }
        }
    }

    /// <summary>The highest populated frame, or null when nothing is populated.</summary>
    public Gfn? HighestPopulated
    {
        get
        {
            lock (_gate)
            {
                if (_frames.Count == 0)
                {
                    return null;
                }

                if (!_highestValid)
                {
                    _highest = _frames.Keys.Max();
                    _highestValid = true;
                }

                return new Gfn(_highest);
            }
        }
    }

    /// <summary>The populated frames in ascending order (a snapshot).</summary>
    public IReadOnlyList<Gfn> PopulatedFrames
    {
        get
        {
            lock (_gate)
            {
                return _frames.Keys.Order().Select(g => new Gfn(g)).ToArray();
            }
        }
    }

    public bool IsPopulated(Gfn gfn)
    {
        lock (_gate)
        {
            return _frames.ContainsKey(gfn.Value);
        }
    }

    /// <summary>True for frames a <see cref="PageTableBuilder"/> took for paging structures.</summary>
    public bool IsPageTableFrame(Gfn gfn)
    {
        lock (_gate)
        {
            return _tableFrames.Contains(gfn.Value);
        }
    }

    /// <summary>The live array of a populated frame (not a copy), or false when the frame is absent.</summary>
    public bool TryGetFrame(Gfn gfn, [NotNullWhen(true)] out byte[]? frame)
    {
        lock (_gate)
        {
            return _frames.TryGetValue(gfn.Value, out frame);
        }
    }

    /// <summary>Populates <paramref name="count"/> frames from <paramref name="first"/> with zeros; frames already populated keep their contents.</summary>
    public void Populate(Gfn first, ulong count = 1)
    {
        CheckRange(first, count);
        lock (_gate)
        {
            for (ulong i = 0; i < count; i++)
            {
                GetOrAdd(first.Value + i);
            }
        }
    }

    /// <summary>Populates one frame with zeros; fails if it is already populated.</summary>
    public void PopulateNew(Gfn gfn)
    {
        CheckRange(gfn, 1);
        lock (_gate)
        {
            if (_frames.ContainsKey(gfn.Value))
            {
                throw new VmiException($"Guest frame {gfn} is already populated: free it first, or let the guest choose a free frame.");
            }

            GetOrAdd(gfn.Value);
        }
    }

    /// <summary>Removes a populated frame; it reads as absent afterwards.</summary>
    public void Free(Gfn gfn)
    {
        lock (_gate)
        {
            if (!_frames.Remove(gfn.Value))
            {
                throw new GfnNotPresentException(gfn, "it is not populated, so there is nothing to free");
            }

            _tableFrames.Remove(gfn.Value);
            if (gfn.Value == _highest)
            {
                _highestValid = false;
            }
        }
    }

    /// <summary>The next frame above the highest populated one (frame 0 in empty memory), populated with zeros.</summary>
    public Gfn AllocateAboveHighest()
    {
        lock (_gate)
        {
            Gfn? top = HighestPopulated;
            ulong next = top is { } t ? t.Value + 1 : 0;
            if (next > MaxGfn.Value)
            {
                throw new VmiException($"No free guest frame above the highest populated frame {top}: the guest's last frame is {MaxGfn}. Free a frame or give a specific GFN.");
            }

            GetOrAdd(next);
            return new Gfn(next);
        }
    }

    /// <summary>The first unpopulated frame at or above <paramref name="start"/>, populated with zeros and marked as a page-table frame.</summary>
    public Gfn AllocatePageTableFrame(Gfn start, Gfn limit)
    {
        lock (_gate)
        {
            ulong last = Math.Min(limit.Value, MaxGfn.Value);
            for (ulong g = start.Value; g <= last; g++)
            {
                if (!_frames.ContainsKey(g))
                {
                    GetOrAdd(g);
                    _tableFrames.Add(g);
                    return new Gfn(g);
                }
            }

            throw new VmiException($"No free frame for a page table between {start} and {new Gfn(last)}: raise the guest's highest frame or move the page-table area.");
        }
    }

    /// <summary>Writes bytes at a physical address, populating the frames it touches.</summary>
    public void Write(Pa pa, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        CheckByteRange(pa, (ulong)data.Length);
        lock (_gate)
        {
            int done = 0;
            while (done < data.Length)
            {
                ulong address = pa.Value + (ulong)done;
                int offset = (int)(address & Amd64.PageMask);
                int chunk = Math.Min((int)Amd64.PageSize - offset, data.Length - done);
                byte[] frame = GetOrAdd(address >> Amd64.PageShift);
                data.Slice(done, chunk).CopyTo(frame.AsSpan(offset, chunk));
                done += chunk;
            }
        }
    }

    /// <summary>Reads bytes at a physical address; throws <see cref="GfnNotPresentException"/> at the first absent frame.</summary>
    public void Read(Pa pa, Span<byte> destination)
    {
        if (!TryRead(pa, destination, out Gfn missing))
        {
            throw new GfnNotPresentException(missing);
        }
    }

    /// <summary>Reads bytes at a physical address; false (with the absent frame) when a frame is not populated.</summary>
    public bool TryRead(Pa pa, Span<byte> destination, out Gfn missing)
    {
        missing = default;
        if (destination.IsEmpty)
        {
            return true;
        }

        CheckByteRange(pa, (ulong)destination.Length);
        lock (_gate)
        {
            int done = 0;
            while (done < destination.Length)
            {
                ulong address = pa.Value + (ulong)done;
                int offset = (int)(address & Amd64.PageMask);
                int chunk = Math.Min((int)Amd64.PageSize - offset, destination.Length - done);
                if (!_frames.TryGetValue(address >> Amd64.PageShift, out byte[]? frame))
                {
                    missing = new Gfn(address >> Amd64.PageShift);
                    return false;
                }

                frame.AsSpan(offset, chunk).CopyTo(destination.Slice(done, chunk));
                done += chunk;
            }

            return true;
        }
    }

    public ulong ReadU64(Pa pa)
    {
        Span<byte> b = stackalloc byte[8];
        Read(pa, b);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    public uint ReadU32(Pa pa)
    {
        Span<byte> b = stackalloc byte[4];
        Read(pa, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    public void WriteU64(Pa pa, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        Write(pa, b);
    }

    public void WriteU32(Pa pa, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Write(pa, b);
    }

    private byte[] GetOrAdd(ulong gfn)
    {
        if (!_frames.TryGetValue(gfn, out byte[]? frame))
        {
            frame = new byte[Amd64.PageSize];
            _frames.Add(gfn, frame);
            if (_highestValid && (gfn > _highest || _frames.Count == 1))
            {
                _highest = gfn;
            }
        }

        return frame;
    }

    private void CheckRange(Gfn first, ulong count)
    {
        if (count == 0)
        {
            return;
        }

        if (first.Value > MaxGfn.Value || count - 1 > MaxGfn.Value - first.Value)
        {
            throw new ArgumentOutOfRangeException(nameof(first), $"Frames {first} to {first + (count - 1)} run past the guest's last frame {MaxGfn}.");
        }
    }

    private void CheckByteRange(Pa pa, ulong length)
    {
        ulong end = pa.Value + length - 1;
        if (end < pa.Value || end >> Amd64.PageShift > MaxGfn.Value)
        {
            throw new ArgumentOutOfRangeException(nameof(pa), $"{length} bytes at {pa} run past the guest's physical memory, which ends at {new Pa(((MaxGfn.Value + 1) << Amd64.PageShift) - 1)}.");
        }
    }
}
