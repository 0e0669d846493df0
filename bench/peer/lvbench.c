/*
 * lvbench.c: LibVMI side of the LibVMI vs Vmi.Core (C#) comparison.
 *
 * Usage: lvbench IMAGE VAS.tsv PAS.bin BULK_VA BULK_CR3 LABEL [REPS]
 *   IMAGE     raw physical image (file offset = PA)
 *   VAS.tsv   "cr3 va pa page_size bytes8 category" (hex), from make_inputs.py
 *   PAS.bin   little-endian uint64 PAs (random, 8-byte aligned)
 *   BULK_VA   start of a 64 MiB virtually contiguous range (hex), translated with BULK_CR3
 *
 * Prints "CHECK ..." lines (correctness against the oracle and the file) and, per test,
 * "RESULT label test median unit reps=v1,v2,...": the median of REPS timed repetitions.
 * Same tests, counts and output format as the C# harness (bench/Vmi.Benchmarks/PeerHarness.cs).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <inttypes.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <glib.h>
#include <libvmi/libvmi.h>
/* from libvmi_extra.h (declared there only under LIBVMI_EXTRA_JSON) */
os_t vmi_init_profile(vmi_instance_t vmi, vmi_config_t config_mode, void *config);

/* Internal but exported (libvmi/cache.h): per-entry V2P invalidation, as vmi_pagetable_lookup_cache uses it.
 * Note the argument order: LibVMI keys the V2P cache (pt, npt) but v2p_cache_del builds (npt, pt),
 * so deleting an entry made with pt=cr3, npt=0 takes (va, 0, cr3) - exactly as LibVMI itself calls it. */
extern status_t v2p_cache_del(vmi_instance_t vmi, addr_t va, addr_t pt, addr_t npt);
extern status_t v2p_cache_get(vmi_instance_t vmi, addr_t va, addr_t pt, addr_t npt, addr_t *pa);

#define NVA_MAX 4096
#define BULK (64ull << 20)

static uint64_t cr3s[NVA_MAX], vas[NVA_MAX], opas[NVA_MAX], obytes[NVA_MAX];
static int opsz[NVA_MAX];
static int nva;
static uint64_t *pas;
static size_t npas;
static const char *label;
static int reps = 7;
static const char *only = "all"; /* one test per process, as the C# harness (same driver script) */
static volatile uint64_t sink;

static double clk_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_result(const char *clock, const char *test, const double *v, int throughput)
{
    double s[64];
    memcpy(s, v, sizeof(double) * reps);
    qsort(s, reps, sizeof(double), cmpd);
    double med = reps % 2 ? s[reps / 2] : (s[reps / 2 - 1] + s[reps / 2]) / 2;
    printf("RESULT\t%s\t%s\t%s\t%.3f\t%s\treps=", label, clock, test, med, throughput ? "GB/s" : "ns/op");
    for (int r = 0; r < reps; r++)
        printf("%s%.3f", r ? "," : "", v[r]);
    printf("\n");
}

/* Runs body `warm` times untimed, then `reps` times timed, in wall-clock (CLOCK_MONOTONIC) and in the
 * thread's CPU time (CLOCK_THREAD_CPUTIME_ID: user+sys, not the time spent descheduled by other load).
 * value = bytes / ns (= GB/s) when throughput, else ns / op. */
typedef void (*body_t)(void);
static int selected(const char *test)
{
    return strcmp(only, "all") == 0 || strcmp(only, test) == 0;
}

static void report(const char *test, body_t body, double ops, int throughput, int warm)
{
    double w[64], c[64];
    if (!selected(test))
        return;
    for (int i = 0; i < warm; i++)
        body();
    for (int r = 0; r < reps; r++) {
        double t0 = clk_ns(CLOCK_MONOTONIC), c0 = clk_ns(CLOCK_THREAD_CPUTIME_ID);
        body();
        double c1 = clk_ns(CLOCK_THREAD_CPUTIME_ID), t1 = clk_ns(CLOCK_MONOTONIC);
        w[r] = throughput ? ops / (t1 - t0) : (t1 - t0) / ops;
        c[r] = throughput ? ops / (c1 - c0) : (c1 - c0) / ops;
    }
    print_result("wall", test, w, throughput);
    print_result("cpu", test, c, throughput);
    fflush(stdout);
}

static vmi_instance_t vmi;
static uint64_t bulk_va, bulk_cr3;
static uint8_t *bulkbuf;   /* 1 MiB destination */
static uint8_t *anon;      /* 64 MiB anonymous source for memcpy */
static uint8_t *filemap;   /* the image, mmap'd (MAP_SHARED, pre-touched) */

#define SAME_N 2000000
#define CYCLE_PASSES 200
#define COLD_PASSES 20
#define PHYS_N 200000
#define PHYSCYC_PASSES 200

static void t_warm_same(void)
{
    ACCESS_CONTEXT(ctx, .translate_mechanism = VMI_TM_PROCESS_DTB, .dtb = cr3s[0], .addr = vas[0]);
    uint64_t s = 0, v;
    for (int i = 0; i < SAME_N; i++) {
        vmi_read_64(vmi, &ctx, &v);
        s += v;
    }
    sink += s;
}

static void t_warm_cycle(void)
{
    uint64_t s = 0, v;
    ACCESS_CONTEXT(ctx, .translate_mechanism = VMI_TM_PROCESS_DTB);
    for (int p = 0; p < CYCLE_PASSES; p++)
        for (int i = 0; i < nva; i++) {
            ctx.dtb = cr3s[i];
            ctx.addr = vas[i];
            vmi_read_64(vmi, &ctx, &v);
            s += v;
        }
    sink += s;
}

static void t_cold_flushall(void)
{
    uint64_t s = 0;
    addr_t pa;
    for (int p = 0; p < COLD_PASSES; p++)
        for (int i = 0; i < nva; i++) {
            vmi_v2pcache_flush(vmi, ~0ull);
            vmi_pagetable_lookup(vmi, cr3s[i], vas[i], &pa);
            s += pa;
        }
    sink += s;
}

static void t_flush_only(void)
{
    for (int i = 0; i < COLD_PASSES * 1000; i++)
        vmi_v2pcache_flush(vmi, ~0ull);
}

static void t_cold_entry(void)
{
    uint64_t s = 0;
    addr_t pa;
    for (int p = 0; p < COLD_PASSES * 5; p++)
        for (int i = 0; i < nva; i++) {
            v2p_cache_del(vmi, vas[i], 0, cr3s[i]);
            vmi_pagetable_lookup(vmi, cr3s[i], vas[i], &pa);
            s += pa;
        }
    sink += s;
}

static void t_walk_only(void)
{
    uint64_t s = 0;
    page_info_t info;
    for (int p = 0; p < COLD_PASSES * 5; p++)
        for (int i = 0; i < nva; i++) {
            vmi_pagetable_lookup_extended(vmi, cr3s[i], vas[i], &info);
            s += info.paddr;
        }
    sink += s;
}

static void t_translate_warm(void)
{
    uint64_t s = 0;
    addr_t pa;
    for (int p = 0; p < COLD_PASSES * 5; p++)
        for (int i = 0; i < nva; i++) {
            vmi_pagetable_lookup(vmi, cr3s[i], vas[i], &pa);
            s += pa;
        }
    sink += s;
}

static void bulk(size_t chunk)
{
    ACCESS_CONTEXT(ctx, .translate_mechanism = VMI_TM_PROCESS_DTB, .dtb = bulk_cr3);
    size_t got;
    for (uint64_t off = 0; off < BULK; off += chunk) {
        ctx.addr = bulk_va + off;
        if (vmi_read(vmi, &ctx, chunk, bulkbuf, &got) != VMI_SUCCESS || got != chunk) {
            fprintf(stderr, "bulk read failed at +0x%" PRIx64 "\n", off);
            exit(2);
        }
    }
    sink += bulkbuf[chunk - 1];
}
static void t_bulk_4k(void) { bulk(4096); }
static void t_bulk_1m(void) { bulk(1 << 20); }

static void memcpy_from(const uint8_t *src, size_t chunk)
{
    for (uint64_t off = 0; off < BULK; off += chunk)
        memcpy(bulkbuf, src + off, chunk);
    __asm__ volatile("" ::: "memory");
    sink += bulkbuf[chunk - 1];
}
static void t_memcpy_anon_4k(void) { memcpy_from(anon, 4096); }
static void t_memcpy_anon_1m(void) { memcpy_from(anon, 1 << 20); }
static uint64_t bulk_pa;
static void t_memcpy_file_1m(void) { memcpy_from(filemap + bulk_pa, 1 << 20); }
static void t_memcpy_file4k(void) { memcpy_from(filemap + bulk_pa, 4096); }

static void t_phys_random(void)
{
    uint64_t s = 0, v;
    for (size_t i = 0; i < PHYS_N; i++) {
        vmi_read_64_pa(vmi, pas[i], &v);
        s += v;
    }
    sink += s;
}

static void t_phys_cycle(void)
{
    uint64_t s = 0, v;
    for (int p = 0; p < PHYSCYC_PASSES; p++)
        for (int i = 0; i < 1000; i++) {
            vmi_read_64_pa(vmi, pas[i], &v);
            s += v;
        }
    sink += s;
}

static uint64_t le64(const char *hex)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        v = (v << 8) | b;
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s IMAGE VAS.tsv PAS.bin BULK_VA BULK_CR3 LABEL [REPS]\n", argv[0]);
        return 1;
    }
    const char *image = argv[1];
    label = argv[6];
    bulk_va = strtoull(argv[4], NULL, 16);
    bulk_cr3 = strtoull(argv[5], NULL, 16);
    if (argc > 7)
        reps = atoi(argv[7]);
    if (argc > 8)
        only = argv[8];

    FILE *f = fopen(argv[2], "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        char ps[16], b8[64], cat[64];
        if (sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64 " %15s %63s %63s", &cr3s[nva], &vas[nva], &opas[nva], ps, b8, cat) == 6) {
            opsz[nva] = strcmp(ps, "2M") == 0 ? 0x200000 : strcmp(ps, "1G") == 0 ? 0x40000000 : 0x1000;
            obytes[nva] = le64(b8);
            nva++;
        }
    }
    if (f)
        fclose(f);
    int pfd = open(argv[3], O_RDONLY);
    struct stat st;
    fstat(pfd, &st);
    npas = st.st_size / 8;
    pas = malloc(st.st_size);
    if (read(pfd, pas, st.st_size) != st.st_size)
        return 1;
    close(pfd);

    /* LibVMI: file mode, no OS profile; page mode IA-32e from a config hashtable (vmi_init_profile). */
    vmi_init_error_t err;
    if (vmi_init(&vmi, VMI_FILE, image, VMI_INIT_DOMAINNAME, NULL, &err) != VMI_SUCCESS) {
        fprintf(stderr, "vmi_init failed: %d\n", err);
        return 1;
    }
    GHashTable *cfg = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(cfg, "ostype", "Linux");
    g_hash_table_insert(cfg, "pagemode", "VMI_PM_IA32E");
    vmi_init_profile(vmi, VMI_CONFIG_GHASHTABLE, cfg);
    if (vmi_get_page_mode(vmi, 0) != VMI_PM_IA32E) {
        fprintf(stderr, "page mode not IA-32e: %d\n", vmi_get_page_mode(vmi, 0));
        return 1;
    }

    int ifd = open(image, O_RDONLY);
    fstat(ifd, &st);
    size_t imgsize = st.st_size;
    filemap = mmap(NULL, imgsize, PROT_READ, MAP_SHARED | MAP_POPULATE, ifd, 0);

    bulkbuf = aligned_alloc(4096, 1 << 20);
    {
        addr_t bpa = 0;
        vmi_pagetable_lookup(vmi, bulk_cr3, bulk_va, &bpa);
        bulk_pa = bpa;
    }
    if (strcmp(only, "all") == 0 || strcmp(only, "check") == 0) {
    /* ---------------- correctness ---------------- */
    int bad_pa = 0, bad_size = 0, bad_bytes = 0, bad_pa_read = 0, bad_cached = 0;
    for (int i = 0; i < nva; i++) {
        page_info_t info;
        if (vmi_pagetable_lookup_extended(vmi, cr3s[i], vas[i], &info) != VMI_SUCCESS || info.paddr != opas[i])
            bad_pa++;
        else if ((int)info.size != opsz[i])
            bad_size++;
        addr_t pa2 = 0;
        if (vmi_pagetable_lookup(vmi, cr3s[i], vas[i], &pa2) != VMI_SUCCESS || pa2 != opas[i])
            bad_cached++;
        uint64_t v = 0;
        ACCESS_CONTEXT(ctx, .translate_mechanism = VMI_TM_PROCESS_DTB, .dtb = cr3s[i], .addr = vas[i]);
        if (vmi_read_64(vmi, &ctx, &v) != VMI_SUCCESS || v != obytes[i])
            bad_bytes++;
        uint64_t w = 0;
        if (vmi_read_64_pa(vmi, opas[i], &w) != VMI_SUCCESS || w != obytes[i])
            bad_pa_read++;
    }
    printf("CHECK\t%s\tvas=%d\tpa_mismatch=%d\tpage_size_mismatch=%d\tcached_pa_mismatch=%d\tread64_va_mismatch=%d\tread64_pa_mismatch=%d\n",
           label, nva, bad_pa, bad_size, bad_cached, bad_bytes, bad_pa_read);

    int bulk_bad_pages = 0;
    for (uint64_t off = 0; off < BULK; off += 4096) {
        addr_t pa = 0;
        if (vmi_pagetable_lookup(vmi, bulk_cr3, bulk_va + off, &pa) != VMI_SUCCESS || pa != bulk_pa + off)
            bulk_bad_pages++;
    }
    int bulk_bad_chunks = 0;
    {
        ACCESS_CONTEXT(ctx, .translate_mechanism = VMI_TM_PROCESS_DTB, .dtb = bulk_cr3);
        for (uint64_t off = 0; off < BULK; off += 1 << 20) {
            size_t got = 0;
            ctx.addr = bulk_va + off;
            if (vmi_read(vmi, &ctx, 1 << 20, bulkbuf, &got) != VMI_SUCCESS || got != 1 << 20 ||
                    memcmp(bulkbuf, filemap + bulk_pa + off, 1 << 20) != 0)
                bulk_bad_chunks++;
        }
    }
    int phys_bad = 0;
    for (size_t i = 0; i < 100000 && i < npas; i++) {
        uint64_t v = 0;
        if (vmi_read_64_pa(vmi, pas[i], &v) != VMI_SUCCESS || memcmp(&v, filemap + pas[i], 8) != 0)
            phys_bad++;
    }
    printf("CHECK\t%s\tbulk_va=0x%" PRIx64 "\tbulk_pa=0x%" PRIx64 "\tbulk_page_pa_mismatch=%d/16384\tbulk_1MiB_chunk_mismatch=%d/64\tphys_read_mismatch=%d/100000\n",
           label, bulk_va, bulk_pa, bulk_bad_pages, bulk_bad_chunks, phys_bad);

    /* Does the documented per-DTB flush work? (V2P keyed (pt,npt) but flushed as (npt,pt) on this tree.) */
    {
        addr_t pa = 0, pa2 = 0;
        vmi_pagetable_lookup(vmi, cr3s[0], vas[0], &pa);
        vmi_v2pcache_flush(vmi, cr3s[0]);
        int still = v2p_cache_get(vmi, vas[0], cr3s[0], 0, &pa2) == VMI_SUCCESS;
        vmi_v2pcache_flush(vmi, ~0ull);
        int after_all = v2p_cache_get(vmi, vas[0], cr3s[0], 0, &pa2) == VMI_SUCCESS;
        printf("CHECK\t%s\tv2p_entry_survives_vmi_v2pcache_flush(dtb)=%d\tsurvives_flush(~0)=%d\n", label, still, after_all);
    }
    fflush(stdout);
    }

    anon = aligned_alloc(4096, BULK);
    memcpy(anon, filemap + bulk_pa, BULK);

    /* ---------------- timing ---------------- */
    /* warm the caches for the warm tests */
    if (selected("warm_read64_same_va"))
        t_warm_same();
    report("warm_read64_same_va", t_warm_same, SAME_N, 0, 2);
    report("warm_read64_cycle_1000va", t_warm_cycle, (double)CYCLE_PASSES * nva, 0, 2);
    report("translate_v2p_hit_1000va", t_translate_warm, (double)COLD_PASSES * 5 * nva, 0, 2);
    report("cold_translate_flushall", t_cold_flushall, (double)COLD_PASSES * nva, 0, 2);
    report("v2p_flushall_only", t_flush_only, (double)COLD_PASSES * 1000, 0, 2);
    if (selected("cold_translate_flushentry")) /* every VA cached: each delete then removes a real entry */
        for (int i = 0; i < nva; i++) { addr_t pa; vmi_pagetable_lookup(vmi, cr3s[i], vas[i], &pa); }
    report("cold_translate_flushentry", t_cold_entry, (double)COLD_PASSES * 5 * nva, 0, 2);
    report("walk_only", t_walk_only, (double)COLD_PASSES * 5 * nva, 0, 2);
    report("bulk64MiB_4KiB_chunks", t_bulk_4k, BULK, 1, 2);
    report("bulk64MiB_1MiB_chunks", t_bulk_1m, BULK, 1, 2);
    report("memcpy64MiB_anon_4KiB", t_memcpy_anon_4k, BULK, 1, 2);
    report("memcpy64MiB_anon_1MiB", t_memcpy_anon_1m, BULK, 1, 2);
    report("memcpy64MiB_mmapfile_4KiB", t_memcpy_file4k, BULK, 1, 2);
    report("memcpy64MiB_mmapfile_1MiB", t_memcpy_file_1m, BULK, 1, 2);
    report("phys_read64_random_256MiB", t_phys_random, PHYS_N, 0, 2);
    report("phys_read64_cycle_1000pa", t_phys_cycle, (double)PHYSCYC_PASSES * 1000, 0, 2);

    vmi_destroy(vmi);
    return 0;
}
