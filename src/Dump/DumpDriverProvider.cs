using Vmi.Core;
using Vmi.Core.Drivers;

[assembly: VmiDriverProvider(typeof(Vmi.Dump.DumpDriverProvider), Order = 100)]

namespace Vmi.Dump;

/// <summary>Opens memory images (raw, ELF core, kdump, LiME, Xen dump-core), the format picked from the content.</summary>
public sealed class DumpDriverProvider : IVmiDriverProvider
{
    public string Name => "Dump";

    public VmiTargetKinds Kinds => VmiTargetKinds.File;

    public VmiOpenedDriver? TryOpen(VmiTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (target.Kind != VmiTargetKinds.File || target.Path is null)
        {
            return null;
        }

        MemoryImage image = MemoryImage.Open(target.Path, new MemoryImageOptions { Cr3 = target.Cr3 });
        return new VmiOpenedDriver(image, System.IO.Path.GetFileName(target.Path), $"{image.Name} {target.Path}");
    }

    public IReadOnlyList<VmiDomainInfo> ListDomains() => [];
}
