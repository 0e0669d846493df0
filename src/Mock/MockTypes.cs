using System.Globalization;
using Vmi.Core;

namespace Vmi.Mock;

/// <summary>The capability calls a <see cref="MockGuest"/> logs and can be told to fail.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum MockOperation
{
    MapPage,
    WritePage,
    GetMemoryAccess,
    SetMemoryAccess,
    GetRegisters,
    SetRegisters,
    CreateView,
    DestroyView,
    SwitchToView,
    ChangeViewGfn,
    ResetViewGfn,
    EnableMonitor,
    DisableMonitor,
    WaitForEvents,
    Pause,
    Resume,
    AllocateGfn,
    FreeGfn,
    InjectInterrupt,
    ResetState,
    Dispose,
}

/// <summary>One capability call made on a <see cref="MockGuest"/>, with its arguments in order.</summary>
public sealed record MockCall(MockOperation Operation, IReadOnlyList<object?> Arguments)
{
    /// <summary>The argument at <paramref name="index"/> as <typeparamref name="T"/>.</summary>
    public T Argument<T>(int index) => (T)Arguments[index]!;

    public override string ToString() =>
        $"{Operation}({string.Join(", ", Arguments.Select(a => a is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : a?.ToString() ?? "null"))})";
}

/// <summary>Who gave the answer to an event.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum MockAnswerSource
{
    /// <summary>An answer given through Answer (the handler's response).</summary>
    Handler,

    /// <summary>Released with Continue: nobody answered (the handler threw, gave an invalid response, the wait was cancelled, the guest closed).</summary>
    Fallback,

    /// <summary>ResetState released the vCPU.</summary>
    ResetState,

    /// <summary>Dispose released the vCPU.</summary>
    Dispose,
}

/// <summary>An event and the response it was answered with.</summary>
public sealed record MockEventAnswer(VmiEvent Event, VmiEventResponse Response, MockAnswerSource Source);
