// Generated from Resources/Messages.resx: one property per message. Keep the two in step.
using System.Globalization;
using System.Resources;

namespace Vmi.PowerShell;

/// <summary>Every user-facing message of the module, from one resource file.</summary>
internal static class Messages
{
    private static readonly ResourceManager Resources = new("Vmi.PowerShell.Resources.Messages", typeof(Messages).Assembly);

    private static string Get(string name) => Resources.GetString(name, CultureInfo.CurrentUICulture) ?? name;

    internal static string NoSession => Get(nameof(NoSession));

    internal static string SessionClosed => Get(nameof(SessionClosed));

    internal static string SessionNotFound => Get(nameof(SessionNotFound));

    internal static string SessionNameAmbiguous => Get(nameof(SessionNameAmbiguous));

    internal static string SessionNotUnderstood => Get(nameof(SessionNotUnderstood));

    internal static string AddressNotUnderstood => Get(nameof(AddressNotUnderstood));

    internal static string NoTranslationRoot => Get(nameof(NoTranslationRoot));

    internal static string ZeroFilled => Get(nameof(ZeroFilled));

    internal static string PatternNotHex => Get(nameof(PatternNotHex));

    internal static string LengthTooLarge => Get(nameof(LengthTooLarge));

    internal static string StringTruncated => Get(nameof(StringTruncated));

    internal static string RangeRequired => Get(nameof(RangeRequired));

    internal static string RangeOverflow => Get(nameof(RangeOverflow));

    internal static string RegisterUnknown => Get(nameof(RegisterUnknown));

    internal static string RegisterNotSettable => Get(nameof(RegisterNotSettable));

    internal static string RegistersReadOnly => Get(nameof(RegistersReadOnly));

    internal static string EventReasonUnknown => Get(nameof(EventReasonUnknown));

    internal static string ValueTooLarge => Get(nameof(ValueTooLarge));

    internal static string EventResponseInvalid => Get(nameof(EventResponseInvalid));

    internal static string WaitStopped => Get(nameof(WaitStopped));

    internal static string MonitorNotUnderstood => Get(nameof(MonitorNotUnderstood));

    internal static string DisconnectRestored => Get(nameof(DisconnectRestored));

    internal static string ProgressRead => Get(nameof(ProgressRead));

    internal static string ProgressFind => Get(nameof(ProgressFind));

    internal static string ProgressStatus => Get(nameof(ProgressStatus));

    internal static string SearchSkipsZeroFill => Get(nameof(SearchSkipsZeroFill));

    internal static string SaveTargetExists => Get(nameof(SaveTargetExists));

    internal static string PatternByteOutOfRange => Get(nameof(PatternByteOutOfRange));

    internal static string VaIsNotAFrame => Get(nameof(VaIsNotAFrame));

    internal static string GfnIsNotAnAddress => Get(nameof(GfnIsNotAnAddress));

    internal static string VaIsNotPhysical => Get(nameof(VaIsNotPhysical));

    internal static string PaIsNotVirtual => Get(nameof(PaIsNotVirtual));

    internal static string VaWithPhysical => Get(nameof(VaWithPhysical));

    internal static string PaWithCr3 => Get(nameof(PaWithCr3));

    internal static string GfnRangeOutOfBounds => Get(nameof(GfnRangeOutOfBounds));

    internal static string AddressNegative => Get(nameof(AddressNegative));

    internal static string WildcardInvalid => Get(nameof(WildcardInvalid));

    internal static string ValueOutOfRange => Get(nameof(ValueOutOfRange));

    internal static string ValueNotUnderstood => Get(nameof(ValueNotUnderstood));

    internal static string EndedByDisconnect => Get(nameof(EndedByDisconnect));

    internal static string SaveCancelledByDisconnect => Get(nameof(SaveCancelledByDisconnect));
}
