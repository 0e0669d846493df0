using Microsoft.Win32.SafeHandles;

namespace Vmi.Xen.Native;

/// <summary>An xc_interface* from xc_interface_open.</summary>
internal sealed class XcInterfaceHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public XcInterfaceHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle() => XenCtrl.xc_interface_close(handle) == 0;
}

/// <summary>A xenforeignmemory_handle*.</summary>
internal sealed class ForeignMemoryHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public ForeignMemoryHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle() => XenForeignMemory.xenforeignmemory_close(handle) == 0;
}

/// <summary>A xendevicemodel_handle*.</summary>
internal sealed class DeviceModelHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public DeviceModelHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle() => XenDeviceModel.xendevicemodel_close(handle) == 0;
}

/// <summary>A xenevtchn_handle*.</summary>
internal sealed class EventChannelHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public EventChannelHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle() => XenEvtchn.xenevtchn_close(handle) == 0;
}

/// <summary>A struct xs_handle* from xs_open.</summary>
internal sealed class XenStoreHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public XenStoreHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle()
    {
        XenStore.xs_close(handle);
        return true;
    }
}
