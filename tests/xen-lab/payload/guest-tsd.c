/* The domU's probe of CR4.TSD, built static with no libc (tests/xen-lab/guest.sh). It asks Linux to fault its own RDTSC
 * (prctl(PR_SET_TSC, PR_TSC_SIGSEGV): Linux sets CR4.TSD at once), then runs RDTSC. Exit 0: RDTSC ran, so CR4.TSD is
 * not set (the CR4 write was denied from outside); killed by SIGSEGV: the write went through. Exit 2: prctl failed. */
static long sys2(long n, long a, long b)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return r;
}

void _start(void)
{
    unsigned lo, hi;
    if (sys2(157 /* prctl */, 26 /* PR_SET_TSC */, 2 /* PR_TSC_SIGSEGV */) != 0)
        sys2(60 /* exit */, 2, 0);
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    sys2(60 /* exit */, 0, 0);
    for (;;) { }
}
