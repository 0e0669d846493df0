using System.Collections.ObjectModel;
using System.Management.Automation;
using Vmi.Core.Arch.Amd64;

namespace Vmi.PowerShell;

/// <summary>
/// The registers of one vCPU (Get-VmiRegister): the engine's immutable <see cref="Registers"/> record itself, plus the
/// vCPU and the session they came from. Binds Vcpu and Cr3 by property name to the memory cmdlets. Changing the guest's
/// registers is Set-VmiRegister's; this record cannot be changed (in PowerShell too: see <see cref="VmiRegistersAdapter"/>).
/// </summary>
public sealed record VmiVcpuRegisters : Registers
{
    internal VmiVcpuRegisters(VmiSession session, ushort vcpu, Registers registers)
        : base(registers)
    {
        Session = session;
        Vcpu = vcpu;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public ushort Vcpu { get; }

    public override string ToString() => $"vCPU {Vcpu}: {base.ToString()}";
}

/// <summary>
/// How PowerShell sees <see cref="Registers"/> and <see cref="VmiVcpuRegisters"/> (Vmi.Types.ps1xml names it): every
/// register by name from the engine's table, the paging state derived from them, and for a vCPU's record the vCPU and
/// session (not listed, as [Hidden] hides every record's) — all read-only. PowerShell would otherwise set C# init-only properties as if they had setters
/// (PowerShell issue 13819), so <c>$r.Rax = 1</c> would change a copy and look like it changed the guest. Methods
/// (<c>$r.With('Rax', 1)</c>) are PowerShell's usual ones.
/// </summary>
public sealed class VmiRegistersAdapter : PSPropertyAdapter
{
    private static readonly (string Name, Type Type, Func<Registers, object?> Get)[] Properties =
    [
        ("Vcpu", typeof(ushort), r => (r as VmiVcpuRegisters)?.Vcpu),
        ("Session", typeof(VmiSession), r => (r as VmiVcpuRegisters)?.Session),
        ("PagingMode", typeof(PagingMode), r => r.PagingMode),
        ("TranslationRoot", typeof(Vmi.Core.Pa), r => r.TranslationRoot),
        ("PagingFeatures", typeof(PagingFeatures), r => r.PagingFeatures),
        .. Registers.Names.Select(n => (n, new Registers()[n].GetType(), (Func<Registers, object?>)(r => r[n]))),
    ];

    private static readonly Dictionary<string, int> Index = Properties
        .Select((p, i) => (p.Name, i)).ToDictionary(p => p.Name, p => p.i, StringComparer.OrdinalIgnoreCase);

    public override Collection<PSAdaptedProperty> GetProperties(object baseObject)
    {
        var list = new Collection<PSAdaptedProperty>();
        foreach ((string name, _, _) in Properties)
        {
            // The session binds by name and reads as $r.Session, but is not listed: hidden like every record's (no JSON, no CliXml).
            if (Applies(baseObject, name) && name != "Session")
            {
                list.Add(new PSAdaptedProperty(name, Index[name]));
            }
        }

        return list;
    }

    public override PSAdaptedProperty? GetProperty(object baseObject, string propertyName) =>
        propertyName is not null && Index.TryGetValue(propertyName, out int i) && Applies(baseObject, Properties[i].Name)
            ? new PSAdaptedProperty(Properties[i].Name, i)
            : null;

    public override bool IsGettable(PSAdaptedProperty adaptedProperty) => true;

    public override bool IsSettable(PSAdaptedProperty adaptedProperty) => false;

    public override object? GetPropertyValue(PSAdaptedProperty adaptedProperty)
    {
        ArgumentNullException.ThrowIfNull(adaptedProperty);
        return Properties[(int)adaptedProperty.Tag].Get((Registers)adaptedProperty.BaseObject);
    }

    public override void SetPropertyValue(PSAdaptedProperty adaptedProperty, object value)
    {
        ArgumentNullException.ThrowIfNull(adaptedProperty);
        throw new SetValueException(string.Format(System.Globalization.CultureInfo.CurrentCulture, Messages.RegistersReadOnly, adaptedProperty.Name));
    }

    public override string GetPropertyTypeName(PSAdaptedProperty adaptedProperty)
    {
        ArgumentNullException.ThrowIfNull(adaptedProperty);
        return Properties[(int)adaptedProperty.Tag].Type.FullName!;
    }

    private static bool Applies(object baseObject, string name) => baseObject is VmiVcpuRegisters || name is not ("Vcpu" or "Session");
}
