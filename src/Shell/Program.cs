namespace Vmi.Shell;

internal static class Program
{
    private static int Main() => 0;
}
