using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum TranslationKind : byte
{
    /// <summary>The address is a guest physical address.</summary>
    Direct,

    /// <summary>The address is virtual and is translated through the guest's page tables.</summary>
    Paging,
}

/// <summary>
/// How an address in an <see cref="AccessContext"/> is turned into a physical address.
/// <see cref="Direct"/> for physical addresses; <see cref="Paging(Pa?, PagingMode?)"/> for virtual ones.
/// A paging mechanism without a root can be built (a caller may fill it in later), but using one
/// fails with <see cref="RootNotPresentException"/>.
/// </summary>
public readonly record struct TranslationMechanism
{
    private TranslationMechanism(TranslationKind kind, Pa? root, PagingMode? mode)
    {
        Kind = kind;
        Root = root;
        Mode = mode;
    }

    public TranslationKind Kind { get; }

    /// <summary>The page-table root (CR3 without its flag bits), when <see cref="Kind"/> is Paging.</summary>
    public Pa? Root { get; }

    /// <summary>The paging mode; null means the session's current mode (detected from vCPU 0).</summary>
    public PagingMode? Mode { get; }

    public static TranslationMechanism Direct => default;

    public static TranslationMechanism Paging(Pa? root = null, PagingMode? mode = null) => new(TranslationKind.Paging, root, mode);

    public override string ToString() => Kind == TranslationKind.Direct
        ? "Direct"
        : $"Paging(root={(Root is { } r ? r.ToString() : "none")}{(Mode is { } m ? ", " + m : string.Empty)})";
}

/// <summary>A virtual address together with the page-table root it is translated under.</summary>
public readonly record struct AddressContext(Va Va, Pa Root, PagingMode? Mode = null)
{
    public override string ToString() => $"{Va} @ root {Root}";
}

/// <summary>An address and how to translate it: the unit of every read and write.</summary>
public readonly record struct AccessContext(ulong Address, TranslationMechanism Mechanism)
{
    public static AccessContext Direct(Pa pa) => new(pa.Value, TranslationMechanism.Direct);

    public static AccessContext Paging(Va va, Pa root, PagingMode? mode = null) => new(va.Value, TranslationMechanism.Paging(root, mode));

    public static AccessContext Paging(AddressContext ctx) => new(ctx.Va.Value, TranslationMechanism.Paging(ctx.Root, ctx.Mode));

    public static implicit operator AccessContext(AddressContext ctx) => Paging(ctx);

    /// <summary>The same mechanism at another address (used to walk a read page by page).</summary>
    public AccessContext WithAddress(ulong address) => new(address, Mechanism);

    public static AccessContext operator +(AccessContext ctx, ulong n) => new(ctx.Address + n, ctx.Mechanism);

    public override string ToString() => Mechanism.Kind == TranslationKind.Direct
        ? $"PA 0x{Address:x}"
        : $"VA 0x{Address:x} ({Mechanism})";
}
