namespace Vmi.Core.Tests;

public class PauseGuardTests
{
    [Fact]
    public void The_guard_pauses_once_and_resumes_once()
    {
        var driver = new FullDriver();
        using var core = new VmiCore(driver);
        VmiPauseGuard guard = core.PauseGuard();
        Assert.True(guard.IsActive);
        Assert.Equal(1, driver.Pauses);
        Assert.Equal(0, driver.Resumes);
        guard.Dispose();
        guard.Dispose();
        Assert.False(guard.IsActive);
        Assert.Equal(1, driver.Resumes);
    }

    [Fact]
    public void The_guard_resumes_when_the_block_throws()
    {
        var driver = new FullDriver();
        using var core = new VmiCore(driver);
        void Block()
        {
            using (core.PauseGuard())
            {
                throw new InvalidOperationException("inside");
            }
        }

        Assert.Throws<InvalidOperationException>(Block);
        Assert.Equal(1, driver.Resumes);
    }

    [Fact]
    public void A_failed_resume_is_logged_not_thrown()
    {
        var driver = new FullDriver { ResumeFailure = new VmiDriverException("xc_domain_unpause failed", 16) };
        var log = new List<string>();
        using var core = new VmiCore(driver) { Log = log.Add };
        VmiPauseGuard guard = core.PauseGuard();
        guard.Dispose(); // must not throw
        Assert.Equal(1, driver.Resumes);
        string line = Assert.Single(log);
        Assert.Contains("xc_domain_unpause failed", line, StringComparison.Ordinal);
    }

    [Fact]
    public void A_log_that_throws_does_not_make_the_guard_throw()
    {
        var driver = new FullDriver { ResumeFailure = new VmiDriverException("unpause failed") };
        using var core = new VmiCore(driver) { Log = _ => throw new IOException("log closed") };
        core.PauseGuard().Dispose();
        Assert.Equal(1, driver.Resumes);
    }

    [Fact]
    public void Without_vm_control_no_guard_is_made()
    {
        using var core = new VmiCore(new SparseDriver("NoPause"));
        var e = Assert.Throws<CapabilityNotSupportedException>(() => core.PauseGuard());
        Assert.Equal(VmiCapability.VmControl, e.Capability);
    }
}
