namespace Vmi.Shell.Builtins;

/// <summary>What Test-Path -PathType asks for.</summary>
public enum TestPathType
{
    /// <summary>Anything at the path.</summary>
    Any,

    /// <summary>A container: a directory.</summary>
    Container,

    /// <summary>A leaf: a file.</summary>
    Leaf,
}
