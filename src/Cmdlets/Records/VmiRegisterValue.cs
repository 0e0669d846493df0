namespace Vmi.PowerShell;

/// <summary>One register of one vCPU (Get-VmiRegister -Name).</summary>
public sealed class VmiRegisterValue
{
    internal VmiRegisterValue(VmiSession session, ushort vcpu, string name, object value)
    {
        Session = session;
        Vcpu = vcpu;
        Name = name;
        Value = value;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public ushort Vcpu { get; }

    public string Name { get; }

    /// <summary>A UInt64 for ordinary registers; a segment or descriptor-table record for Cs..Tr, Idtr, Gdtr.</summary>
    public object Value { get; }

    public override string ToString() => Value is ulong u ? $"{Name}=0x{u:x}" : $"{Name}={Value}";
}
