using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Vmi.Core;
using Vmi.Core.Search;
using Xunit.Abstractions;

namespace Vmi.Dump.Tests;

/// <summary>
/// Issue 10: a full search of a 10 GiB sparse raw image left 10 GB in the page cache. Long sequential streams through
/// an image file (a search, an acquisition) now advise the kernel (posix_fadvise DONTNEED) over what they consumed;
/// short and random reads get no advice. What is checked: the advice given (through the file's observer) and the
/// page-cache residency of the file after a search (mincore over a mapping of it), never a time.
/// </summary>
public sealed partial class StreamAdviceTests : IDisposable
{
    private const long MiB = 1L << 20;
    private const long ImageSize = 256 * MiB;
    private readonly ITestOutputHelper _output;

    // Beside the tests rather than in /tmp, which may be a tmpfs (whose pages never leave memory).
    private readonly string _dir = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, $"advice-{Guid.NewGuid():N}")).FullName;

    public StreamAdviceTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed class Log
    {
        public List<(FileAdvice Advice, long Offset, long Length)> Calls { get; } = [];

        public void Add(FileAdvice advice, long offset, long length) => Calls.Add((advice, offset, length));

        public IEnumerable<(long Offset, long Length)> DontNeed => Calls.Where(c => c.Advice == FileAdvice.DontNeed).Select(c => (c.Offset, c.Length));

        /// <summary>The DONTNEED ranges are one contiguous stretch; returns its end.</summary>
        public long ContiguousFrom(long start)
        {
            long at = start;
            foreach ((long offset, long length) in DontNeed)
            {
                Assert.Equal(at, offset);
                at += length;
            }

            return at;
        }
    }

    [Fact]
    public void Short_streams_and_random_reads_get_no_advice()
    {
        var log = new Log();
        var advisor = new StreamAdvisor(log.Add);
        for (long at = 0; at < 100 * MiB; at += 4096)
        {
            advisor.Observe(at, 4096); // 100 MiB, a page at a time: under the threshold
        }

        var random = new Random(10);
        for (int i = 0; i < 200_000; i++)
        {
            advisor.Observe(random.NextInt64(0, 10L << 30) & ~4095L, 4096); // random pages of a 10 GiB file
        }

        for (long at = 0; at < 100 * MiB; at += MiB)
        {
            advisor.Observe(at, MiB); // the same stream again, in 1 MiB reads: still short
        }

        Assert.Empty(log.Calls);
        Assert.Equal(0, advisor.AdvisedBytes);
    }

    [Fact]
    public void A_long_stream_is_advised_in_steps_over_everything_it_consumed()
    {
        var log = new Log();
        var advisor = new StreamAdvisor(log.Add);
        const long Start = 3 * 4096 + 100; // an unaligned start: advice starts at its page
        for (long at = Start; at < Start + (300 * MiB); at += 4096)
        {
            advisor.Observe(at, 4096);
        }

        Assert.Equal((FileAdvice.Sequential, 0L, 0L), log.Calls[0]);
        Assert.Equal(3 * 4096, log.DontNeed.First().Offset);
        Assert.Equal(StreamAdvisor.DefaultThreshold, log.DontNeed.First().Length, tolerance: 4096); // the first call: everything up to the threshold
        Assert.All(log.DontNeed, c => Assert.True(c.Length >= StreamAdvisor.DefaultStep || c == log.DontNeed.First(), $"a call of {c.Length} bytes"));
        long end = log.ContiguousFrom(3 * 4096);
        Assert.InRange(Start + (300 * MiB) - end, 0, StreamAdvisor.DefaultStep); // at most one step left unadvised
        Assert.Equal(end - (3 * 4096), advisor.AdvisedBytes);

        // a read elsewhere ends the stream: normal read-ahead again once no long stream is left
        advisor.Observe(5L << 30, 4096);
        Assert.Equal(FileAdvice.DontNeed, log.Calls[^1].Advice); // the other cursor was free: the long stream is still followed
        advisor.Observe(7L << 30, 4096);
        Assert.Equal((FileAdvice.Normal, 0L, 0L), log.Calls[^1]);
    }

    [Fact]
    public void Reads_that_alternate_between_two_streams_are_followed_as_two()
    {
        // a kdump reads a 24-byte page descriptor, then the page's data elsewhere, page after page
        var log = new Log();
        var advisor = new StreamAdvisor(log.Add);
        const long Data = 1L << 30;
        for (long page = 0; page < 200 * 256; page++)
        {
            advisor.Observe(4096 + (page * 24), 24);
            advisor.Observe(Data + (page * 4096), 4096);
        }

        Assert.Equal(Data, log.DontNeed.First().Offset);
        long end = log.ContiguousFrom(Data);
        Assert.InRange(Data + (200 * MiB) - end, 0, StreamAdvisor.DefaultStep);
    }

    /// <summary>A 256 MiB sparse raw image with a 16-byte needle written at each 16 MiB (so a search has something to find).</summary>
    private string SparseImage()
    {
        string path = Path.Combine(_dir, "sparse.raw");
        using (var f = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            f.SetLength(ImageSize);
            for (long at = 5 * MiB; at < ImageSize; at += 16 * MiB)
            {
                f.Position = at;
                f.Write("VMI-ADVICE-NEEDL"u8);
            }

            f.Flush(flushToDisk: true); // clean pages: DONTNEED cannot drop dirty ones
        }

        return path;
    }

    [Fact]
    public void A_search_of_a_large_image_advises_the_whole_file_and_leaves_little_of_it_cached()
    {
        string path = SparseImage();
        bool canMeasure = Evict(path) < 0.05; // a file system that keeps every page (tmpfs) cannot show the effect
        using MemoryImage image = MemoryImage.Open(path);
        var log = new Log();
        image.File.AdviceObserver = log.Add;
        using var core = new VmiCore(image);
        var hits = MemorySearcher.Search(core, BytePattern.FromString("VMI-ADVICE-NEEDL", System.Text.Encoding.ASCII), AccessContext.Direct(new Pa(0)), (ulong)ImageSize).ToList();

        Assert.Equal(16, hits.Count); // the search itself is unchanged
        Assert.Equal(5UL << 20, hits[0].Address);
        Assert.Equal(ImageSize, log.ContiguousFrom(0)); // every byte read was advised
        Assert.Contains((FileAdvice.Sequential, 0L, 0L), log.Calls);
        if (!canMeasure)
        {
            _output.WriteLine($"Residency not checked: the file system of {_dir} keeps the file's pages cached after POSIX_FADV_DONTNEED (a tmpfs?).");
            return;
        }

        // Without the advice every page read stays cached (all 256 MiB: seen); with it, at most the kernel's read-ahead (0 % seen).
        double resident = Resident(path);
        Assert.True(resident < 0.25, $"{resident:P0} of the image is in the page cache after the search");
    }

    [Fact]
    public void Saving_a_large_image_advises_what_the_acquisition_read()
    {
        string path = SparseImage();
        using MemoryImage image = MemoryImage.Open(path);
        var log = new Log();
        image.File.AdviceObserver = log.Add;
        using var core = new VmiCore(image);
        ImageWriter.Write(core, Stream.Null, ImageFormat.Raw, null, CancellationToken.None); // a page at a time
        long end = log.ContiguousFrom(0);
        Assert.InRange(ImageSize - end, 0, StreamAdvisor.DefaultStep);
        Assert.True(end >= ImageSize - StreamAdvisor.DefaultStep, $"advised up to 0x{end:x}");
    }

    [Fact]
    public void Random_page_reads_of_a_large_image_get_no_advice()
    {
        string path = SparseImage();
        using MemoryImage image = MemoryImage.Open(path);
        var log = new Log();
        image.File.AdviceObserver = log.Add;
        var random = new Random(10);
        for (int i = 0; i < 20_000; i++)
        {
            Assert.True(image.TryMapPage(new Gfn((ulong)random.NextInt64(0, ImageSize / 4096)), out MappedPage? page));
            page.Dispose();
        }

        using var core = new VmiCore(image);
        byte[] buffer = new byte[64 * MiB]; // one 64 MiB stream: under the threshold, so a small image stays cached
        Assert.Equal(buffer.Length, core.ReadStreaming(AccessContext.Direct(new Pa(0)), buffer).BytesRead);
        Assert.Empty(log.Calls);
    }

    /// <summary>Writes back and drops the file's cached pages; returns the fraction still resident.</summary>
    private static double Evict(string path)
    {
        using (SafeFileHandle h = File.OpenHandle(path, FileMode.Open, FileAccess.Read))
        {
            Assert.Equal(0, PosixFadvise(h, 0, 0, 4 /* POSIX_FADV_DONTNEED */));
        }

        return Resident(path);
    }

    /// <summary>The fraction of the file's pages in the page cache: mincore(2) over a read-only mapping (mapping touches no page).</summary>
    private static unsafe double Resident(string path)
    {
        long length = new FileInfo(path).Length;
        using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using MemoryMappedViewAccessor view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        try
        {
            long pages = (length + 4095) / 4096;
            byte[] vector = new byte[pages];
            fixed (byte* v = vector)
            {
                Assert.Equal(0, Mincore(p + view.PointerOffset, (nuint)length, v));
            }

            return (double)vector.Count(b => (b & 1) != 0) / pages;
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(SafeFileHandle fd, long offset, long length, int advice);

    [LibraryImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static unsafe partial int Mincore(byte* address, nuint length, byte* vector);
}
