using System.Runtime.CompilerServices;

// The tests open sessions over drivers of their own (a driver with only some capabilities).
[assembly: InternalsVisibleTo("Vmi.PowerShell.Tests")]
