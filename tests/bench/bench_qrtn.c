/* bench_qrtn.c: hc-bench-qrtn, a micro-benchmark (one thread unless --threads) of the rtn/gptq
 * (qrtn) CPU matmul kernel beside the GGUF Q4_0 kernel: ns per call, GB/s of weights, ps/weight.
 *
 * (HC_CPU_ISA=avx2 in the environment times the AVX2 kernels on an AVX-512 machine.)
 * usage: hc-bench-qrtn [--cold] [--ref] [--wall] [--threads N] [--group G] [--bits 2,3,4,8] [--tokens 1,16]
 *                      [--seconds S] [--shapes 576x576,...]   (shape = rows x cols: rows outputs of cols inputs)
 *   Times are this thread's CPU time (robust when other processes share the cores); --wall: wall clock.
 *   --cold   cycle through enough copies of each matrix (>= 96 MiB) that the weights come from
 *            memory, as in decoding a whole model, instead of from the caches
 *   --ref    also time the plain reference kernel
 *   --threads N  split each call's rows over N threads of an hc_pool, as the cpu device does
 *            (wall-clock time): the whole machine's speed, e.g. its memory bandwidth with --cold */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matmul_ggml.h"
#include "qrtn.h"
#include "threadpool.h"

static int use_wall;   /* --wall (or --threads > 1): wall-clock time instead of this thread's CPU time */
static hc_pool *pool;  /* --threads > 1 */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(use_wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 88172645463325252ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rnd_unit(void) { return (float)rnd() / 4294967296.0f * 2.0f - 1.0f; }

typedef struct bench_cfg {
    int cold, ref, group;
    double seconds;
} bench_cfg;

/* What one timed kernel needs: a call on weight copy c. */
typedef struct kernel {
    int q4;                 /* 1: Q4_0 through hc_matmul_rows; 0: qrtn */
    int bits, group, ref;
    int64_t rows, cols;
    uint8_t *w;
    size_t wbytes;
    const void *xq;
    float *y;
    int n_tok;
} kernel;

static void call_rows(const kernel *k, int c, int64_t r0, int64_t r1)
{
    const uint8_t *w = k->w + (size_t)c * k->wbytes;
    if (k->q4)
        hc_matmul_rows(HC_Q4_0, w, k->cols, NULL, k->xq, k->n_tok, k->y, k->rows, r0, r1);
    else if (k->ref)
        hc_qrtn_matmul_rows_ref(k->bits, k->group, w, k->cols, k->rows, k->xq, k->n_tok, k->y, k->rows, r0, r1);
    else
        hc_qrtn_matmul_rows(k->bits, k->group, w, k->cols, k->rows, k->xq, k->n_tok, k->y, k->rows, r0, r1);
}

typedef struct pool_job {
    const kernel *k;
    int c;
} pool_job;

static void pool_task(void *arg, int ith, int nth)
{
    const pool_job *j = arg;
    long r0, r1;
    hc_split_range((long)j->k->rows, ith, nth, 16, &r0, &r1);
    if (r0 < r1) call_rows(j->k, j->c, r0, r1);
}

static void call(const kernel *k, int c)
{
    if (!pool) {
        call_rows(k, c, 0, k->rows);
        return;
    }
    pool_job j = {k, c};
    hc_pool_run(pool, pool_task, &j);
}

/* Seconds per call: the best of many short runs (~2 ms each) within the time budget. Other
 * processes on the machine only ever slow a run down, so the best run is the kernel's own speed. */
static double time_kernel(const bench_cfg *cfg, const kernel *k, int copies)
{
    long calls = 1;
    for (;;) {   /* calls per run: about 2 ms */
        double t0 = now_s();
        for (long i = 0; i < calls; i++) call(k, (int)(i % copies));
        double dt = now_s() - t0;
        if (dt > 2e-3 || calls > (1L << 30)) break;
        calls *= 2;
    }
    double best = 1e30, start = now_s();
    long c = 0;
    for (int run = 0; run < 5 || now_s() - start < cfg->seconds; run++) {
        double t0 = now_s();
        for (long i = 0; i < calls; i++, c++) call(k, (int)(c % copies));
        double per = (now_s() - t0) / (double)calls;
        best = per < best ? per : best;
    }
    return best;
}

static void report(const char *name, const kernel *k, double sec)
{
    double weights = (double)k->rows * (double)k->cols;
    printf("%-10s %6lld x %-5lld tok %2d %10.0f ns  %6.2f GB/s  %6.1f ps/weight/tok  %5.2f bits/weight\n", name,
           (long long)k->rows, (long long)k->cols, k->n_tok, sec * 1e9, (double)k->wbytes / sec * 1e-9,
           sec * 1e12 / weights / k->n_tok, 8.0 * (double)k->wbytes / weights);
    fflush(stdout);
}

/* 64-byte aligned, as the cpu device's activation scratch and mapped model tensors are. */
static void *alloc64(size_t n) { return aligned_alloc(64, (n + 63) & ~(size_t)63); }

static int copies_for(const bench_cfg *cfg, size_t bytes)
{
    if (!cfg->cold) return 1;
    int c = (int)((96u << 20) / bytes) + 1;
    return c < 2 ? 2 : c;
}

static void bench_q4_0(const bench_cfg *cfg, int64_t rows, int64_t cols, int n_tok, const float *x)
{
    kernel k = {.q4 = 1, .rows = rows, .cols = cols, .n_tok = n_tok};
    k.wbytes = hc_dtype_row_bytes(HC_Q4_0, cols) * (size_t)rows;
    int copies = copies_for(cfg, k.wbytes);
    size_t xrb = hc_act_q8_bytes(cols);
    k.w = alloc64(k.wbytes * (size_t)copies);
    void *xq = alloc64(xrb * (size_t)n_tok);
    k.y = malloc(sizeof(float) * (size_t)(rows * n_tok));
    if (!k.w || !xq || !k.y) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < k.wbytes; i++) k.w[i] = (uint8_t)rnd();
    for (size_t b = 0; b < k.wbytes / 18; b++) {   /* sane f16 scales; the speed does not depend on them */
        uint16_t h = hc_f32_to_f16(0.01f * (1.0f + rnd_unit()));
        memcpy(k.w + b * 18, &h, 2);
    }
    for (int c = 1; c < copies; c++) memcpy(k.w + (size_t)c * k.wbytes, k.w, k.wbytes);
    for (int t = 0; t < n_tok; t++) hc_act_quantize_q8(x + (size_t)t * cols, (hc_q8_block *)((char *)xq + (size_t)t * xrb), cols);
    k.xq = xq;
    report("q4_0", &k, time_kernel(cfg, &k, copies));
    free(k.w), free(xq), free(k.y);
}

static void bench_qrtn(const bench_cfg *cfg, int bits, int64_t rows, int64_t cols, int n_tok, const float *wf,
                       const float *x)
{
    kernel k = {.bits = bits, .group = cfg->group, .rows = rows, .cols = cols, .n_tok = n_tok};
    k.wbytes = hc_qrtn_packed_bytes(bits, cfg->group, rows, cols);
    int copies = copies_for(cfg, k.wbytes);
    k.w = alloc64(k.wbytes * (size_t)copies);
    void *xq = alloc64(hc_qrtn_input_bytes(bits, cfg->group, cols, n_tok));
    k.y = malloc(sizeof(float) * (size_t)(rows * n_tok));
    if (!k.w || !xq || !k.y) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    if (hc_qrtn_quantize_rtn(bits, cfg->group, wf, rows, cols, k.w) != HC_OK) {
        printf("rtn %d: %s\n", bits, hc_last_error());
        goto done;
    }
    for (int c = 1; c < copies; c++) memcpy(k.w + (size_t)c * k.wbytes, k.w, k.wbytes);
    hc_qrtn_prepare_input(bits, cfg->group, x, cols, n_tok, xq);
    k.xq = xq;
    char name[32];
    snprintf(name, sizeof name, "rtn%d g%d", bits, cfg->group);
    report(name, &k, time_kernel(cfg, &k, copies));
    if (cfg->ref) {
        k.ref = 1;
        snprintf(name, sizeof name, "rtn%d ref", bits);
        report(name, &k, time_kernel(cfg, &k, 1));
    }
done:
    free(k.w), free(xq), free(k.y);
}

static int parse_list(const char *s, int *out, int cap)
{
    int n = 0;
    char *list = strdup(s), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok && n < cap; tok = strtok_r(NULL, ",", &save)) out[n++] = atoi(tok);
    free(list);
    return n;
}

int main(int argc, char **argv)
{
    bench_cfg cfg = {0, 0, 64, 1.0};
    int bits[8] = {2, 3, 4, 8}, n_bits = 4, toks[8] = {1, 16}, n_toks = 2;
    int64_t shapes[16][2] = {{576, 576}, {1536, 576}, {576, 1536}, {49152, 576}};
    int n_shapes = 4, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cold")) cfg.cold = 1;
        else if (!strcmp(argv[i], "--wall")) use_wall = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ref")) cfg.ref = 1;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) cfg.seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--group") && i + 1 < argc) cfg.group = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bits") && i + 1 < argc) n_bits = parse_list(argv[++i], bits, 8);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) n_toks = parse_list(argv[++i], toks, 8);
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) {
            n_shapes = 0;
            char *list = strdup(argv[++i]), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok && n_shapes < 16; tok = strtok_r(NULL, ",", &save)) {
                long long r, c;
                if (sscanf(tok, "%lldx%lld", &r, &c) == 2) shapes[n_shapes][0] = r, shapes[n_shapes++][1] = c;
            }
            free(list);
        } else {
            fprintf(stderr, "usage: hc-bench-qrtn [--cold] [--ref] [--wall] [--threads N] [--group G] [--bits 2,3,4,8] [--tokens 1,16] "
                            "[--seconds S] [--shapes 576x576,...]\n");
            return 2;
        }
    }
    if (threads > 1) {
        if (hc_pool_create(threads, NULL, 0, &pool) != HC_OK) {
            fprintf(stderr, "hc-bench-qrtn: %s\n", hc_last_error());
            return 1;
        }
        use_wall = 1;
    }
    printf("qrtn kernels: %s, %d thread%s%s, group %d, %s time\n", hc_cpu_has_avx512() ? "avx-512 (vnni, gfni)" : hc_cpu_has_avx2() ? "avx2+fma+f16c" : "reference (no avx2)",
           threads > 1 ? threads : 1, threads > 1 ? "s" : "", cfg.cold ? ", weights from memory (--cold)" : ", weights hot in cache",
           cfg.group, use_wall ? "wall-clock" : "thread CPU");
    for (int s = 0; s < n_shapes; s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1];
        if (hc_qrtn_row_bytes(2, cfg.group, cols) == 0) {
            printf("%lld x %lld: not a qrtn shape (row length a multiple of 32, group 32/64/128; here %d), skipped\n",
                   (long long)rows, (long long)cols, cfg.group);
            continue;
        }
        float *wf = malloc(sizeof(float) * (size_t)(rows * cols));
        float *x = malloc(sizeof(float) * (size_t)(cols * 128));
        if (!wf || !x) return 1;
        for (int64_t i = 0; i < rows * cols; i++) wf[i] = 0.05f * rnd_unit();
        for (int64_t i = 0; i < cols * 128; i++) x[i] = rnd_unit();
        for (int t = 0; t < n_toks; t++) {
            if (toks[t] < 1 || toks[t] > 128) continue;
            bench_q4_0(&cfg, rows, cols, toks[t], x);
            for (int b = 0; b < n_bits; b++) bench_qrtn(&cfg, bits[b], rows, cols, toks[t], wf, x);
        }
        free(wf), free(x);
    }
    hc_pool_free(pool);
    return 0;
}
