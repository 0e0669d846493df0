using System.Reflection;
using System.Management.Automation;
using Microsoft.PowerShell.Commands.Internal.Format;

namespace Vmi.Shell.Builtins;

/// <summary>
/// The few engine internals the builtins need, reached by reflection in this one place.
/// Format-Table, Format-List and Out-String reuse the formatter System.Management.Automation already carries (the
/// one Out-Default renders with, views included): the engine ships the public base classes of those cmdlets but
/// keeps the pieces that pick a shape and a text sink internal. Select-Object -First stops the commands upstream the
/// way the real one does. The engine version is pinned centrally, and the shell tests exercise every path.
/// </summary>
internal static class EngineInternals
{
    private const string Namespace = "Microsoft.PowerShell.Commands.Internal.Format.";
    private const BindingFlags Internal = BindingFlags.Instance | BindingFlags.NonPublic;
    private static readonly Assembly s_engine = typeof(FrontEndCommandBase).Assembly;

    /// <summary>Makes <paramref name="command"/> format its input in the given shape ("Table" or "List").</summary>
    public static void UseShape(FrontEndCommandBase command, string shape)
    {
        Type inner = EngineType("InnerFormatShapeCommand");
        object value = Enum.Parse(EngineType("FormatShape"), shape);
        SetImplementation(command, Create(inner, value));
    }

    /// <summary>Makes <paramref name="command"/> render its input as text lines into <paramref name="writer"/>.</summary>
    public static void UseTextOutput(FrontEndCommandBase command, TextWriter writer, int columns)
    {
        object manager = Create(EngineType("OutputManagerInner"));
        object lineOutput = Create(EngineType("TextWriterLineOutput"), writer, columns);
        PropertyInfo property = manager.GetType().GetProperty("LineOutput", Internal)
            ?? throw Missing("OutputManagerInner.LineOutput");
        property.SetValue(manager, lineOutput);
        SetImplementation(command, manager);
    }

    /// <summary>
    /// Stops the commands upstream of <paramref name="command"/> (a generator that never ends, Wait-VmiEvent), while
    /// the rest of the pipeline goes on. Returns false if this engine cannot; the caller then ignores further input.
    /// </summary>
    public static bool TryStopUpstream(Cmdlet command)
    {
        Type? type = s_engine.GetType("System.Management.Automation.StopUpstreamCommandsException");
        Exception? stop = null;
        try
        {
            stop = type is null ? null : Activator.CreateInstance(type, command) as Exception;
        }
        catch (Exception e) when (e is MissingMethodException or TargetInvocationException)
        {
            // the engine changed; the caller ignores the rest of its input instead
        }

        return stop is null ? false : throw stop;
    }

    private static void SetImplementation(FrontEndCommandBase command, object implementation)
    {
        FieldInfo field = typeof(FrontEndCommandBase).GetField("implementation", Internal)
            ?? throw Missing("FrontEndCommandBase.implementation");
        field.SetValue(command, implementation);
    }

    private static Type EngineType(string name) => s_engine.GetType(Namespace + name) ?? throw Missing(name);

    private static object Create(Type type, params object[] args) =>
        Activator.CreateInstance(type, Internal | BindingFlags.Public, binder: null, args, culture: null)
        ?? throw Missing(type.Name + " constructor");

    private static PSNotSupportedException Missing(string what) => new(
        $"The formatter of this PowerShell engine ({s_engine.GetName().Version}) has no {what}; vmi's Format-Table, Format-List and Out-String need the engine vmi was built with.");
}
