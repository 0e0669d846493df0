global using Vmi.Core.Arch.Amd64;
global using Vmi.Core.Tests.Infrastructure;
