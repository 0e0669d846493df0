using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using Vmi.Core;
using Vmi.Dump;

namespace Vmi.Dump.Tests;

/// <summary>Issue 10: zero-filled memory is bounded and kept as holes; an acquisition owns only its own temporary file.</summary>
public sealed class AcquisitionSafetyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vmi-acq-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The seed ELF core with its last PT_LOAD declaring <paramref name="extra"/> more bytes than it stores.</summary>
    private static byte[] ElfWithZeroFill(ulong extra)
    {
        byte[] b = Seeds.All().First(s => s.Name == "seed.elf").Bytes;
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(32));
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(56));
        int last = -1;
        for (int i = 0; i < phnum; i++)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((int)phoff + (i * 56))) == 1)
            {
                last = (int)phoff + (i * 56);
            }
        }

        ulong filesz = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(last + 32));
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(last + 40), filesz + extra);
        return b;
    }

    [Fact]
    public void Zero_filled_memory_is_flagged_and_saved_as_holes_not_petabytes_of_zeros()
    {
        // 1 PiB declared, nothing stored: once, Save wrote ~10 GB of zeros in 25 s and would have gone on for days.
        const ulong PiB = 1UL << 50;
        using var source = new TempFile(ElfWithZeroFill(PiB));
        using MemoryImage image = MemoryImage.Open(source.Path);
        PhysicalRange zero = Assert.Single(image.Ranges, r => r.ZeroFill);
        Assert.Equal(PiB, zero.Length);
        Assert.Equal((ulong)Seeds.Frames * 4096, image.StoredEnd.Value);
        using var core = new VmiCore(image);

        ImageFileResult elf = ImageFileWriter.Write(core, Path.Combine(_dir, "out.elf"), ImageFormat.ElfCore, false, null, CancellationToken.None);
        Assert.True(elf.Bytes < 1 << 20, $"{elf.Bytes} bytes written");
        using (MemoryImage back = MemoryImage.Open(elf.Path))
        {
            Assert.Equal(image.Ranges, back.Ranges); // the zero-filled range survives as a PT_LOAD with p_filesz 0
        }

        ImageFileResult raw = ImageFileWriter.Write(core, Path.Combine(_dir, "out.raw"), ImageFormat.Raw, false, null, CancellationToken.None);
        Assert.Equal(Seeds.Frames * 4096L, raw.Bytes); // up to the stored end: the declared petabyte stays out
        Assert.Equal((Seeds.Frames - 1) * 4096L, raw.DataBytes); // frame 6 is a hole in the source
        byte[] rawBytes = File.ReadAllBytes(raw.Path);
        Assert.True(rawBytes.AsSpan(6 * 4096, 4096).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(rawBytes.AsSpan(9 * 4096, 4096).SequenceEqual(Seeds.Frame(9)));

        ImageFileResult lime = ImageFileWriter.Write(core, Path.Combine(_dir, "out.lime"), ImageFormat.Lime, false, null, CancellationToken.None);
        Assert.True(lime.Bytes < 1 << 20);
    }

    [Fact]
    public void A_raw_image_keeps_unstored_frames_as_holes_in_a_sparse_file()
    {
        // frames 0..15 stored, then 1 GiB of nothing, then frames again: the raw file is long but nearly empty on disk
        var driver = new GapDriver();
        using var core = new VmiCore(driver);
        ImageFileResult raw = ImageFileWriter.Write(core, Path.Combine(_dir, "gap.raw"), ImageFormat.Raw, false, null, CancellationToken.None);
        Assert.Equal((long)(driver.Info.MaxGfn.Value + 1) * 4096, raw.Bytes);
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b %B", raw.Path]) { RedirectStandardOutput = true })!;
        string[] blocks = stat.StandardOutput.ReadToEnd().Trim().Split(' ');
        long onDisk = long.Parse(blocks[0], System.Globalization.CultureInfo.InvariantCulture) * long.Parse(blocks[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(onDisk < 16 << 20, $"{onDisk} bytes on disk for {raw.Bytes} bytes of file");
    }

    [Fact]
    public void A_cancelled_acquisition_leaves_no_file_and_never_deletes_anothers()
    {
        string target = Path.Combine(_dir, "guest.elf");
        File.WriteAllText(target + ".partial", "a file this call did not create");
        using var cts = new CancellationTokenSource();
        var progress = new Cancel(cts);
        using var core = new VmiCore(new GapDriver());
        Assert.ThrowsAny<OperationCanceledException>(() => ImageFileWriter.Write(core, target, ImageFormat.ElfCore, false, progress, cts.Token));
        Assert.NotNull(progress.SeenInProgress); // while it ran, its temporary file was listed for a signal handler
        Assert.Empty(ImageFileWriter.FilesInProgress);
        Assert.Equal(["guest.elf.partial"], Directory.GetFiles(_dir).Select(Path.GetFileName));
        Assert.Equal("a file this call did not create", File.ReadAllText(target + ".partial"));
    }

    [Fact]
    public void A_signal_mid_acquisition_removes_its_temporary_file_and_only_that()
    {
        // Issue 10: an interrupted Save left its temporary file (17 MB seen). What a signal handler calls before the
        // process exits (DeleteFilesInProgress) removes the file being written, and no other. (Only this class writes with
        // ImageFileWriter in this assembly, and a class runs its tests one at a time: the file in progress is this one.)
        string target = Path.Combine(_dir, "guest.elf");
        File.WriteAllText(target + ".partial", "a file this call did not create");
        using var cts = new CancellationTokenSource();
        var progress = new SignalMidWay(cts);
        using var core = new VmiCore(new GapDriver());
        Assert.ThrowsAny<OperationCanceledException>(() => ImageFileWriter.Write(core, target, ImageFormat.ElfCore, false, progress, cts.Token));
        Assert.NotNull(progress.InProgress);
        Assert.True(progress.ExistedBefore, "the temporary file did not exist while the acquisition ran");
        Assert.False(progress.ExistedAfter, $"{progress.InProgress} was still there after the signal's cleanup");
        Assert.Equal(["guest.elf.partial"], Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    /// <summary>Halfway through: runs the signal handler's cleanup (then stops the acquisition, as the exit would).</summary>
    private sealed class SignalMidWay(CancellationTokenSource cts) : IProgress<ImageWriteProgress>
    {
        public string? InProgress { get; private set; }

        public bool ExistedBefore { get; private set; }

        public bool ExistedAfter { get; private set; } = true;

        public void Report(ImageWriteProgress value)
        {
            if (value.PagesDone > 0 && InProgress is null)
            {
                InProgress = ImageFileWriter.FilesInProgress.Single();
                ExistedBefore = File.Exists(InProgress);
                ImageFileWriter.DeleteFilesInProgress();
                ExistedAfter = File.Exists(InProgress);
                cts.Cancel();
            }
        }
    }

    private sealed class Cancel(CancellationTokenSource cts) : IProgress<ImageWriteProgress>
    {
        public string? SeenInProgress { get; private set; }

        public void Report(ImageWriteProgress value)
        {
            if (value.PagesDone > 0)
            {
                SeenInProgress ??= ImageFileWriter.FilesInProgress.SingleOrDefault();
                cts.Cancel();
            }
        }
    }

    /// <summary>16 frames, a 1 GiB gap, 2048 frames more (enough for progress reports mid-way).</summary>
    private sealed class GapDriver : IVmiDriver, IVmiRead
    {
        private const ulong Second = (1UL << 30) / 4096;

        public string Name => "gap";

        public VmiInfo Info => new(4096, 12, new Gfn(Second + 2047), 1);

        public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
        {
            page = gfn.Value < 16 || gfn.Value >= Second ? new MappedPage(gfn, Seeds.Frame(gfn.Value % 16)) : null;
            return page is not null;
        }

        public void Dispose()
        {
        }
    }
}
