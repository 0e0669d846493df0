using System.Management.Automation;

namespace Vmi.PowerShell;

/// <summary>Runs when the module is imported and removed: Remove-Module closes (and restores) the runspace's sessions.</summary>
public sealed class ModuleLifetime : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    public void OnImport()
    {
    }

    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        // Remove-Module and Import-Module -Force close the open sessions (each guest is restored): say which.
        string[] open = VmiSessionRegistry.Current.Select(s => $"{s.Name} (Id {s.Id})").ToArray();
        if (open.Length > 0)
        {
            string message = $"Unloading the Vmi module closes its {open.Length} open session(s), restoring each guest: {string.Join(", ", open)}. Connect again after the import.";
            try
            {
                ScriptBlock.Create("param($m) Write-Warning $m").Invoke(message);
            }
#pragma warning disable CA1031 // a warning that cannot be shown must not stop the sessions from closing
            catch (Exception)
#pragma warning restore CA1031
            {
                Console.Error.WriteLine("WARNING: " + message);
            }
        }

        VmiSessionRegistry.CloseRunspaceSessions(VmiSessionRegistry.CurrentRunspaceId);
    }
}
