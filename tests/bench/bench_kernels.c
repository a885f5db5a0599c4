/* bench_kernels.c: hc-bench-kernels, a micro-benchmark (one thread unless --threads) of the GGUF-type CPU
 * matmul kernels: ns per call and GB/s of weights read, per type, shape and token count.
 *
 * usage: hc-bench-kernels [--ref] [--cold] [--types q4_0,q8_0,...] [--tokens 1,16] [--seconds S]
 *                         [--shapes INxOUT,...]
 *   --ref    also time the plain reference kernels
 *   --shapes weight shapes, e.g. 2048x8192,8192x2048 (default: SmolLM2-135M's)
 *   --isa    avx2 or avx512: time that kernel set instead of what the dispatcher picks
 *   --threads N  split each call's rows over N threads of an hc_pool (16-row aligned parts, as the
 *            cpu device does); GB/s is then the whole matrix over the wall time (one thread: over
 *            the thread's CPU time, so that time other processes take is not counted)
 *   --cold   cycle through enough copies of each matrix (>= 96 MiB) that the weights come from
 *            memory, as in decoding a whole model, instead of from the caches */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matmul_ggml.h"
#include "threadpool.h"

static int use_wall;   /* --threads > 1: wall-clock time; else this thread's CPU time (robust to a busy machine) */

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

/* Random weights: random bytes with small valid f16 scales in the d (and min) fields, or random
 * plain floats. The kernels' speed does not depend on the values. */
static void fill_weights(hc_dtype t, uint8_t *w, size_t n, int64_t in)
{
    if (t == HC_F32 || t == HC_F16 || t == HC_BF16) {
        size_t es = hc_dtype_row_bytes(t, 1);
        for (size_t i = 0; i < n / es; i++) {
            float v = rnd_unit();
            if (t == HC_F32) memcpy(w + 4 * i, &v, 4);
            else {
                uint16_t h = t == HC_F16 ? hc_f32_to_f16(v) : hc_f32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i < n; i++) w[i] = (uint8_t)rnd();
    size_t bb = hc_dtype_block_bytes(t);
    int off[2] = {0, 2};
    int nf = (t == HC_Q4_1 || t == HC_Q5_1 || t == HC_Q4_K || t == HC_Q5_K || t == HC_Q2_K) ? 2 : 1;
    if (t == HC_Q2_K) off[0] = 80, off[1] = 82;
    if (t == HC_Q3_K) off[0] = 108;
    if (t == HC_Q6_K) off[0] = 208;
    for (size_t b = 0; b < n / bb; b++)
        for (int k = 0; k < nf; k++) {
            uint16_t h = hc_f32_to_f16(0.01f * (1.0f + rnd_unit()));
            memcpy(w + b * bb + off[k], &h, 2);
        }
    (void)in;
}

typedef struct bench_cfg {
    int ref, cold;
    double seconds;
} bench_cfg;

static int isa;   /* 0: the dispatcher; 2: AVX2; 5: AVX-512 */
static hc_pool *pool;   /* --threads > 1 */

typedef hc_status (*kernel_fn)(hc_dtype, const void *, int64_t, const float *, const void *, int, float *, int64_t,
                               int64_t, int64_t);
static kernel_fn kernel;   /* what one thread runs */

typedef struct pool_job {
    hc_dtype t;
    const void *w, *xq;
    const float *x;
    int64_t in, ldy, row0, row1;
    int n_tok;
    float *y;
} pool_job;

static void pool_task(void *arg, int ith, int nth)
{
    const pool_job *j = arg;
    long b, e;
    hc_split_range((long)(j->row1 - j->row0), ith, nth, 16, &b, &e);
    if (b < e) kernel(j->t, j->w, j->in, j->x, j->xq, j->n_tok, j->y, j->ldy, j->row0 + b, j->row0 + e);
}

static hc_status rows_pool(hc_dtype t, const void *w, int64_t in, const float *x, const void *xq, int n_tok, float *y,
                           int64_t ldy, int64_t row0, int64_t row1)
{
    pool_job j = {t, w, xq, x, in, ldy, row0, row1, n_tok, y};
    hc_pool_run(pool, pool_task, &j);
    return HC_OK;
}

static hc_status rows_isa(hc_dtype t, const void *w, int64_t in, const float *x, const void *xq, int n_tok, float *y,
                          int64_t ldy, int64_t row0, int64_t row1)
{
    if (isa == 5 && hc_cpu_has_avx512() && hc_matmul_avx512_has(t) &&
        hc_matmul_rows_avx512(t, w, in, xq, n_tok, y, ldy, row0, row1))
        return HC_OK;
    if (isa == 2 && hc_cpu_has_avx2() && hc_matmul_avx2_has(t)) {
        hc_matmul_rows_avx2(t, w, in, x, xq, n_tok, y, ldy, row0, row1);
        return HC_OK;
    }
    return hc_matmul_rows(t, w, in, x, xq, n_tok, y, ldy, row0, row1);
}

/* Times one (type, in, out, n_tok): the fastest of the runs that fit in cfg->seconds. */
static void bench_one(const bench_cfg *cfg, hc_dtype t, int64_t in, int64_t out, int n_tok, int use_ref)
{
    size_t wbytes = hc_dtype_row_bytes(t, in) * (size_t)out;
    int copies = 1;
    if (cfg->cold) {
        copies = (int)((96u << 20) / wbytes) + 1;
        if (copies < 2) copies = 2;
    }
    uint8_t *w = aligned_alloc(64, (wbytes * (size_t)copies + 63) & ~(size_t)63);
    float *x = malloc(sizeof(float) * (size_t)(in * n_tok)), *y = malloc(sizeof(float) * (size_t)(out * n_tok));
    size_t xrb = hc_act_q8_bytes(in);
    void *xq = hc_matmul_wants_q8(t) ? malloc(xrb * (size_t)n_tok) : NULL;
    if (!w || !x || !y || (hc_matmul_wants_q8(t) && !xq)) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    fill_weights(t, w, wbytes, in);
    for (int c = 1; c < copies; c++) memcpy(w + (size_t)c * wbytes, w, wbytes);
    for (int64_t i = 0; i < in * n_tok; i++) x[i] = rnd_unit();
    if (xq)
        for (int k = 0; k < n_tok; k++) hc_act_quantize_q8(x + k * in, (hc_q8_block *)((char *)xq + k * xrb), in);

    kernel = use_ref ? hc_matmul_rows_ref : isa ? rows_isa : hc_matmul_rows;
    kernel_fn fn = pool ? rows_pool : kernel;
    if (fn(t, w, in, x, xq, n_tok, y, out, 0, out) != HC_OK) {
        printf("%-5s %5lld x %-6lld tok %2d  %s\n", hc_dtype_name(t), (long long)in, (long long)out, n_tok, hc_last_error());
        goto done;
    }
    /* Many short runs (~2 ms each), the fastest kept: on a shared machine the minimum measures
     * the kernel, the median also measures the neighbours. */
    long calls = 1;
    for (;;) {
        double t0 = now_s();
        for (long i = 0; i < calls; i++) fn(t, w + (size_t)(i % copies) * wbytes, in, x, xq, n_tok, y, out, 0, out);
        double dt = now_s() - t0;
        if (dt > 2e-3 || calls > (1L << 30)) break;
        calls *= 2;
    }
    double sec = 1e30, t_end = now_s() + cfg->seconds;
    long c = 0;
    do {
        double t0 = now_s();
        for (long i = 0; i < calls; i++, c++) fn(t, w + (size_t)(c % copies) * wbytes, in, x, xq, n_tok, y, out, 0, out);
        double dt = (now_s() - t0) / (double)calls;
        if (dt < sec) sec = dt;
    } while (now_s() < t_end);
    double quant_ns = 0;
    if (xq) {   /* the activation quantization the caller does once per matmul: fastest of 50 */
        quant_ns = 1e30;
        for (int r = 0; r < 50; r++) {
            double t0 = now_s();
            for (int i = 0; i < 100; i++)
                for (int k = 0; k < n_tok; k++) hc_act_quantize_q8(x + k * in, (hc_q8_block *)((char *)xq + k * xrb), in);
            double ns = (now_s() - t0) / 100 * 1e9;
            if (ns < quant_ns) quant_ns = ns;
        }
    }
    printf("%-5s %5lld x %-6lld tok %2d %s %10.0f ns  %7.2f GB/s  %7.2f ns/row/tok  (+%.0f ns to quantize x)\n",
           hc_dtype_name(t), (long long)in, (long long)out, n_tok, use_ref ? "ref " : "    ", sec * 1e9,
           (double)wbytes / sec * 1e-9, sec * 1e9 / (double)out / n_tok, quant_ns);
    fflush(stdout);
done:
    free(w), free(x), free(y), free(xq);
}

static int parse_type(const char *s, hc_dtype *t)
{
    for (int i = 0; i <= 40; i++)
        if (hc_dtype_is_known((hc_dtype)i) && !strcmp(hc_dtype_name((hc_dtype)i), s)) {
            *t = (hc_dtype)i;
            return 1;
        }
    hc_pool_free(pool);
    return 0;
}

int main(int argc, char **argv)
{
    bench_cfg cfg = {0, 0, 0.5};
    hc_dtype types[32] = {HC_Q4_0, HC_Q4_1, HC_Q5_0, HC_Q5_1, HC_Q8_0, HC_Q4_K, HC_Q6_K, HC_F16, HC_BF16, HC_F32};
    int n_types = 10;
    int toks[8] = {1, 16}, n_toks = 2;
    int64_t shapes[16][2] = {{576, 576}, {576, 1536}, {1536, 576}, {576, 49152}};
    int n_shapes = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ref")) cfg.ref = 1;
        else if (!strcmp(argv[i], "--cold")) cfg.cold = 1;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) cfg.seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) {
            n_types = 0;
            char *list = strdup(argv[++i]), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok && n_types < 32; tok = strtok_r(NULL, ",", &save))
                if (!parse_type(tok, &types[n_types++])) {
                    fprintf(stderr, "hc-bench-kernels: unknown type %s\n", tok);
                    return 2;
                }
            free(list);
        } else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            n_toks = 0;
            char *list = strdup(argv[++i]), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok && n_toks < 8; tok = strtok_r(NULL, ",", &save))
                toks[n_toks++] = atoi(tok);
            free(list);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            int n = atoi(argv[++i]);
            use_wall = n > 1;
            if (n > 1 && hc_pool_create(n, NULL, 0, &pool) != HC_OK) {
                fprintf(stderr, "hc-bench-kernels: %s\n", hc_last_error());
                return 2;
            }
        } else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            i++;
            isa = !strcmp(argv[i], "avx2") ? 2 : !strcmp(argv[i], "avx512") ? 5 : -1;
            if (isa < 0) {
                fprintf(stderr, "hc-bench-kernels: --isa avx2 or avx512\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) {
            n_shapes = 0;
            char *list = strdup(argv[++i]), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok && n_shapes < 16; tok = strtok_r(NULL, ",", &save)) {
                long long a = 0, b = 0;
                if (sscanf(tok, "%lldx%lld", &a, &b) != 2 || a <= 0 || b <= 0) {
                    fprintf(stderr, "hc-bench-kernels: bad shape %s (INxOUT)\n", tok);
                    return 2;
                }
                shapes[n_shapes][0] = a, shapes[n_shapes][1] = b, n_shapes++;
            }
            free(list);
        } else {
            fprintf(stderr, "usage: hc-bench-kernels [--ref] [--cold] [--types q4_0,f16,...] [--tokens 1,16] [--seconds S] [--shapes INxOUT,...] [--isa avx2|avx512] [--threads N]\n");
            return 2;
        }
    }
    printf("kernels: %s, %d thread(s)%s\n",
           isa == 2 ? "avx2+fma+f16c" : isa == 5 || hc_cpu_has_avx512() ? "avx512 (vnni, gfni) where a type has one, else avx2"
                                    : hc_cpu_has_avx2() ? "avx2+fma+f16c" : "reference (no avx2)",
           pool ? hc_pool_threads(pool) : 1,
           cfg.cold ? ", weights from memory (--cold)" : ", weights hot in cache");
    for (int ti = 0; ti < n_types; ti++)
        for (int s = 0; s < n_shapes; s++) {
            int64_t in = shapes[s][0], out = shapes[s][1];
            if (in % hc_dtype_block_size(types[ti]) != 0) continue;   /* K-quants need in % 256 */
            for (int k = 0; k < n_toks; k++) {
                bench_one(&cfg, types[ti], in, out, toks[k], 0);
                if (cfg.ref) bench_one(&cfg, types[ti], in, out, toks[k], 1);
            }
        }
    hc_pool_free(pool);
    return 0;
}
