using System.Management.Automation;

namespace Vmi.PowerShell;

/// <summary>Runs when the module is imported and removed: Remove-Module closes (and restores) the runspace's sessions.</summary>
public sealed class ModuleLifetime : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    public void OnImport()
    {
    }

    public void OnRemove(PSModuleInfo psModuleInfo) => VmiSessionRegistry.CloseRunspaceSessions(VmiSessionRegistry.CurrentRunspaceId);
}
