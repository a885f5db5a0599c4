/* bench_membw.c: hc-bench-membw, a STREAM-like read-bandwidth probe: 1..N threads each sum their
 * part of a buffer much larger than the caches; prints GB/s (the roofline of memory-bound decode).
 *
 * usage: hc-bench-membw [--mb N] [--threads 1,2] [--reps N] [--file PATH] [--no-huge] [--json]
 *   --mb N        buffer size in MiB (default 1024; at least 16x the last-level cache)
 *   --threads L   comma-separated thread counts to measure (default 1,2)
 *   --reps N      passes over the buffer per thread count; the median pass is reported (default 7)
 *   --file PATH   read a mmap'd file instead (page cache, 4 KiB pages: as a model is read)
 *   --no-huge     do not ask for transparent huge pages on the anonymous buffer
 *   --prefetch B  software prefetch distance in bytes (default 16384; 0: the hardware's alone)
 *   --json        one JSON object on stdout: {"threads": [..], "gbs": [..], ...}
 * Each pass reads every byte once with 32-byte loads (AVX2 where present; plain 64-bit otherwise)
 * folded into a few accumulators, so the loop is bound by memory, not by the adds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define MAX_THREADS 64
#define MAX_REPS 101

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if defined(__x86_64__)
/* Software prefetch distance in bytes (0: none). One core's hardware prefetcher alone does not
 * keep enough lines in flight to reach the memory's bandwidth; the decode kernels prefetch this
 * far ahead too, so the roofline is measured the same way. */
static size_t prefetch = 16384;

/* Sums 32-byte words of [p, p + n) (n a multiple of 256) as 64-bit lanes. */
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 256) {
        if (prefetch) {
            _mm_prefetch((const char *)p + i + prefetch, _MM_HINT_T0);
            _mm_prefetch((const char *)p + i + prefetch + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)p + i + prefetch + 128, _MM_HINT_T0);
            _mm_prefetch((const char *)p + i + prefetch + 192, _MM_HINT_T0);
        }
        const __m256i *v = (const __m256i *)(const void *)(p + i);
        a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_load_si256(v + 0), _mm256_load_si256(v + 1)));
        a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_load_si256(v + 2), _mm256_load_si256(v + 3)));
        a2 = _mm256_add_epi64(a2, _mm256_add_epi64(_mm256_load_si256(v + 4), _mm256_load_si256(v + 5)));
        a3 = _mm256_add_epi64(a3, _mm256_add_epi64(_mm256_load_si256(v + 6), _mm256_load_si256(v + 7)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t l[4];
    memcpy(l, &a0, sizeof l);
    return l[0] + l[1] + l[2] + l[3];
}
#endif

static uint64_t read_plain(const uint8_t *p, size_t n)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, sizeof w);
        s0 += w[0], s1 += w[1], s2 += w[2], s3 += w[3];
    }
    return s0 + s1 + s2 + s3;
}

static int use_avx2;

static uint64_t read_range(const uint8_t *p, size_t n)
{
#if defined(__x86_64__)
    if (use_avx2) return read_avx2(p, n);
#endif
    return read_plain(p, n);
}

/* A fixed team of threads; each pass they all start on the same flag and time their own part. */
typedef struct team {
    const uint8_t *buf;
    size_t bytes;
    int nth;
    atomic_int go, done;       /* pass number to run; passes finished (sum over threads) */
    atomic_int quit;
    volatile uint64_t sink;
} team;

typedef struct worker {
    team *t;
    int ith;
    pthread_t th;
} worker;

static void run_part(team *t, int ith)
{
    size_t per = (t->bytes / (size_t)t->nth) & ~(size_t)4095;
    size_t b = per * (size_t)ith, n = ith == t->nth - 1 ? t->bytes - b : per;
    t->sink += read_range(t->buf + b, n & ~(size_t)255);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    team *t = w->t;
    int seen = 0;
    for (;;) {
        int g;
        while ((g = atomic_load(&t->go)) == seen && !atomic_load(&t->quit)) cpu_relax();
        if (atomic_load(&t->quit)) break;
        seen = g;
        run_part(t, w->ith);
        atomic_fetch_add(&t->done, 1);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median GB/s of reps passes over the buffer by nth threads (the caller is thread 0). */
static double measure(const uint8_t *buf, size_t bytes, int nth, int reps)
{
    team t = { .buf = buf, .bytes = bytes, .nth = nth };
    worker w[MAX_THREADS];
    for (int i = 1; i < nth; i++) {
        w[i] = (worker){ .t = &t, .ith = i };
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "hc-bench-membw: cannot start thread %d\n", i);
            exit(1);
        }
    }
    double gbs[MAX_REPS];
    for (int r = 0; r <= reps; r++) {   /* pass 0 warms up (page faults, frequency) */
        atomic_store(&t.done, 0);
        double t0 = now_s();
        atomic_fetch_add(&t.go, 1);
        run_part(&t, 0);
        while (atomic_load(&t.done) < nth - 1) cpu_relax();
        double dt = now_s() - t0;
        if (r > 0) gbs[r - 1] = (double)bytes / dt / 1e9;
    }
    atomic_store(&t.quit, 1);
    for (int i = 1; i < nth; i++) pthread_join(w[i].th, NULL);
    qsort(gbs, (size_t)reps, sizeof *gbs, cmp_double);
    return gbs[reps / 2];
}

int main(int argc, char **argv)
{
    size_t mb = 1024;
    int threads[MAX_THREADS] = { 1, 2 }, n_threads = 2, reps = 7, huge = 1, json = 0;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--no-huge")) huge = 0;
        else if (!strcmp(argv[i], "--prefetch") && i + 1 < argc) prefetch = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = 0;
            for (char *s = argv[++i]; *s && n_threads < MAX_THREADS; s = strchr(s, ',') ? strchr(s, ',') + 1 : s + strlen(s)) {
                int v = atoi(s);
                if (v < 1 || v > MAX_THREADS) {
                    fprintf(stderr, "hc-bench-membw: thread count %d is out of range (1..%d)\n", v, MAX_THREADS);
                    return 2;
                }
                threads[n_threads++] = v;
            }
        } else {
            fprintf(stderr, "usage: hc-bench-membw [--mb N] [--threads 1,2] [--reps N] [--file PATH] [--no-huge] [--prefetch B] [--json]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS - 1 || n_threads < 1 || (!file && mb < 1)) {
        fprintf(stderr, "hc-bench-membw: bad arguments\n");
        return 2;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2");
#endif
    uint8_t *buf;
    size_t bytes;
    if (file) {
        int fd = open(file, O_RDONLY);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            perror(file);
            return 1;
        }
        bytes = (size_t)sb.st_size & ~(size_t)((1 << 20) - 1);
        buf = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (buf == MAP_FAILED || bytes == 0) {
            fprintf(stderr, "hc-bench-membw: cannot map %s\n", file);
            return 1;
        }
    } else {
        bytes = mb << 20;
        buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buf == MAP_FAILED) {
            fprintf(stderr, "hc-bench-membw: cannot allocate %zu MiB\n", mb);
            return 1;
        }
#ifdef MADV_HUGEPAGE
        if (huge) madvise(buf, bytes, MADV_HUGEPAGE);
#endif
        for (size_t i = 0; i < bytes; i += 64) buf[i] = (uint8_t)(i >> 6);   /* fault every page in */
    }
    double gbs[MAX_THREADS];
    for (int k = 0; k < n_threads; k++) gbs[k] = measure(buf, bytes, threads[k], reps);
    const char *src = file ? "file" : huge ? "anon-thp" : "anon";
    if (json) {
        printf("{\"source\": \"%s\", \"mib\": %zu, \"reps\": %d, \"prefetch\": %zu, \"threads\": [", src, bytes >> 20,
               reps, prefetch);
        for (int k = 0; k < n_threads; k++) printf("%s%d", k ? ", " : "", threads[k]);
        printf("], \"gbs\": [");
        for (int k = 0; k < n_threads; k++) printf("%s%.2f", k ? ", " : "", gbs[k]);
        printf("]}\n");
    } else {
        for (int k = 0; k < n_threads; k++)
            printf("read bandwidth (%s, %zu MiB, %s, prefetch %zu): %d thread%s: %.2f GB/s (median of %d)\n", src,
                   bytes >> 20, use_avx2 ? "avx2" : "plain", prefetch, threads[k], threads[k] > 1 ? "s" : "", gbs[k], reps);
    }
    munmap(buf, bytes);
    return 0;
}
