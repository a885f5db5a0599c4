/* bench_lowrank.c: hc-bench-lowrank, a single-threaded micro-benchmark of the low-rank branch
 * kernels y += B (A x): ns per down+up and GB/s of branch bytes (A and B) read, per shape and rank.
 *
 * usage: hc-bench-lowrank [--ref] [--cold] [--active R] [--types f16,bf16,f32,q8_0] [--tokens 1,16] [--seconds S]
 *                         [--shapes 2048x8192x102,...]   (in x out x rank; default SmolLM2's widths, ranks 8-64)
 *   (HC_CPU_ISA=avx2 in the environment times the AVX2 kernels on an AVX-512 machine.)
 *   --ref    also time the plain reference kernels
 *   --active run only the first R stored directions (an active prefix, as the rank controller
 *            sets it); the bytes are those of the prefix
 *   --cold   cycle through enough copies of each branch (>= 96 MiB) that A and B come from
 *            memory, as when a whole model's branches are applied, instead of from the caches */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hc/hc_cpu.h"
#include "lowrank_apply.h"
#include "matmul_ggml.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 88172645463325252ull;

static float rnd_unit(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)(uint32_t)(rng_state >> 16) / 4294967296.0f * 2.0f - 1.0f;
}

/* n random elements (q8_0: n a multiple of 32) */
static void fill(hc_dtype t, uint8_t *p, size_t n)
{
    if (t == HC_Q8_0) {
        float v[32];
        for (size_t b = 0; b < n / 32; b++) {
            for (int i = 0; i < 32; i++) v[i] = 0.1f * rnd_unit();
            hc_quantize_row_q8_0(v, p + 34 * b, 32);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float v = 0.1f * rnd_unit();
        if (t == HC_F32) {
            memcpy(p + 4 * i, &v, 4);
        } else {
            uint16_t h = t == HC_F16 ? hc_f32_to_f16(v) : hc_f32_to_bf16(v);
            memcpy(p + 2 * i, &h, 2);
        }
    }
}

typedef struct bench_cfg {
    int ref, cold, active;
    double seconds;
} bench_cfg;

typedef hc_status (*down_fn)(const hc_branch *, int, const float *, int, float *, int64_t, int, int);
typedef hc_status (*up_fn)(const hc_branch *, int, const float *, int64_t, int, float *, int64_t, int64_t, int64_t);

/* `calls` times down, up or both (phase 0, 1, 2) over the whole branch, cycling through copies. */
static double run_calls(int phase, long calls, int copies, const hc_branch *br, int rank, const float *x, int n_tok,
                        float *t, float *y, down_fn down, up_fn up)
{
    double t0 = now_s();
    for (long i = 0; i < calls; i++) {
        const hc_branch *b = &br[i % copies];
        if (phase != 1) down(b, rank, x, n_tok, t, rank, 0, rank);
        if (phase != 0) up(b, rank, t, rank, n_tok, y, b->out, 0, b->out);
    }
    return now_s() - t0;
}

/* Seconds per call of a phase: the best of RUNS runs of ~seconds/RUNS/3 each (the best, not the
 * median: on a shared machine other processes only ever add time). */
#define RUNS 15
static double time_phase(const bench_cfg *cfg, int phase, int copies, const hc_branch *br, int rank, const float *x,
                         int n_tok, float *t, float *y, down_fn down, up_fn up)
{
    const double target = cfg->seconds / RUNS / 3;
    long calls = 1;   /* calibrate the number of calls per run */
    for (;;) {
        double dt = run_calls(phase, calls, copies, br, rank, x, n_tok, t, y, down, up);
        if (dt > target / 4 || calls > (1L << 30)) {
            calls = (long)((double)calls * target / dt) + 1;
            break;
        }
        calls *= 4;
    }
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double s = run_calls(phase, calls, copies, br, rank, x, n_tok, t, y, down, up) / (double)calls;
        if (s < best) best = s;
    }
    return best;
}

static void bench_one(const bench_cfg *cfg, hc_dtype t, int64_t in, int64_t out, int rank, int n_tok, int use_ref)
{
    size_t abytes = (size_t)rank * hc_dtype_row_bytes(t, in), bbytes = (size_t)rank * hc_dtype_row_bytes(t, out);
    const int stored = rank;   /* directions in memory; `rank` from here on: the active prefix */
    if (cfg->active > 0 && cfg->active < rank) rank = cfg->active;
    size_t bytes = (size_t)rank * (hc_dtype_row_bytes(t, in) + hc_dtype_row_bytes(t, out));
    int copies = 1;
    if (cfg->cold) {
        copies = (int)((96u << 20) / (abytes + bbytes)) + 1;
        if (copies < 2) copies = 2;
    }
    uint8_t *mem = aligned_alloc(64, ((abytes + 63) / 64 * 64 + (bbytes + 63) / 64 * 64) * (size_t)copies);
    hc_branch *br = malloc(sizeof(hc_branch) * (size_t)copies);
    float *x = malloc(sizeof(float) * (size_t)(in * n_tok)), *tt = malloc(sizeof(float) * (size_t)(rank * n_tok));
    float *y = calloc((size_t)(out * n_tok), sizeof(float));
    if (!mem || !br || !x || !tt || !y) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    size_t astride = (abytes + 63) / 64 * 64, bstride = (bbytes + 63) / 64 * 64;
    fill(t, mem, (size_t)stored * (size_t)in);
    fill(t, mem + astride, (size_t)out * (size_t)stored);
    for (int c = 0; c < copies; c++) {
        uint8_t *base = mem + (size_t)c * (astride + bstride);
        if (c) memcpy(base, mem, astride + bstride);
        br[c] = (hc_branch){.name = "bench", .dtype = t, .in = in, .out = out, .rank = stored, .a = base, .b = base + astride};
    }
    for (int64_t i = 0; i < in * n_tok; i++) x[i] = rnd_unit();

    down_fn down = use_ref ? hc_branch_down_ref : hc_branch_down;
    up_fn up = use_ref ? hc_branch_up_ref : hc_branch_up;
    if (down(&br[0], rank, x, n_tok, tt, rank, 0, rank) != HC_OK ||
        up(&br[0], rank, tt, rank, n_tok, y, out, 0, out) != HC_OK) {
        printf("%-4s %5lld -> %-5lld r %2d/%2d tok %2d  %s\n", hc_dtype_name(t), (long long)in, (long long)out, rank, stored,
               n_tok, hc_last_error());
        goto done;
    }
    double sd = time_phase(cfg, 0, copies, br, rank, x, n_tok, tt, y, down, up);
    double su = time_phase(cfg, 1, copies, br, rank, x, n_tok, tt, y, down, up);
    double sec = time_phase(cfg, 2, copies, br, rank, x, n_tok, tt, y, down, up);
    printf("%-4s %5lld -> %-5lld r %2d/%2d tok %2d %s down+up %8.0f ns  %6.2f GB/s  (down %8.0f ns, up %8.0f ns)\n",
           hc_dtype_name(t), (long long)in, (long long)out, rank, stored, n_tok, use_ref ? "ref " : "    ", sec * 1e9,
           (double)bytes / sec * 1e-9, sd * 1e9, su * 1e9);
    fflush(stdout);
done:
    free(mem), free(br), free(x), free(tt), free(y);
}

int main(int argc, char **argv)
{
    bench_cfg cfg = {.seconds = 1.0};
    hc_dtype types[4] = {HC_F16};
    int n_types = 1;
    int toks[8] = {1, 16}, n_toks = 2;
    int64_t shapes[16][3];   /* in, out, rank */
    int n_shapes = 0;
    {
        static const int64_t io[][2] = {{576, 576}, {576, 192}, {576, 1536}, {1536, 576}};
        static const int ranks[] = {8, 16, 32, 64};
        for (int s = 0; s < 4; s++)
            for (int r = 0; r < 4; r++) shapes[n_shapes][0] = io[s][0], shapes[n_shapes][1] = io[s][1], shapes[n_shapes++][2] = ranks[r];
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ref")) cfg.ref = 1;
        else if (!strcmp(argv[i], "--cold")) cfg.cold = 1;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) cfg.seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--active") && i + 1 < argc && atoi(argv[i + 1]) > 0) cfg.active = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) {
            n_types = 0;
            char *list = strdup(argv[++i]), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok && n_types < 4; tok = strtok_r(NULL, ",", &save)) {
                if (!strcmp(tok, "f16")) types[n_types++] = HC_F16;
                else if (!strcmp(tok, "bf16")) types[n_types++] = HC_BF16;
                else if (!strcmp(tok, "f32")) types[n_types++] = HC_F32;
                else if (!strcmp(tok, "q8_0")) types[n_types++] = HC_Q8_0;
                else {
                    fprintf(stderr, "hc-bench-lowrank: unknown storage type %s (f16, bf16, f32, q8_0)\n", tok);
                    free(list);
                    return 2;
                }
            }
            free(list);
        } else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            n_toks = 0;
            char *list = strdup(argv[++i]), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok && n_toks < 8; tok = strtok_r(NULL, ",", &save))
                if (atoi(tok) > 0) toks[n_toks++] = atoi(tok);
            free(list);
        } else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) {
            n_shapes = 0;
            char *list = strdup(argv[++i]), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok && n_shapes < 16; tok = strtok_r(NULL, ",", &save)) {
                long long a, b, c;
                if (sscanf(tok, "%lldx%lldx%lld", &a, &b, &c) == 3 && a > 0 && b > 0 && c > 0)
                    shapes[n_shapes][0] = a, shapes[n_shapes][1] = b, shapes[n_shapes++][2] = c;
            }
            free(list);
        } else {
            fprintf(stderr, "usage: hc-bench-lowrank [--ref] [--cold] [--active R] [--types f16,bf16,f32,q8_0] [--tokens 1,16] [--seconds S] [--shapes INxOUTxRANK,...]\n");
            return 2;
        }
    }
    printf("branch kernels: %s, single thread%s; bytes = A + B at the stored rank\n",
           hc_cpu_has_avx512() ? "avx-512" : hc_cpu_has_avx2() ? "avx2+fma+f16c" : "reference (no avx2)",
           cfg.cold ? ", branches from memory (--cold)" : ", branches hot in cache");
    for (int ti = 0; ti < n_types; ti++)
        for (int sh = 0; sh < n_shapes; sh++)
            for (int k = 0; k < n_toks; k++) {
                bench_one(&cfg, types[ti], shapes[sh][0], shapes[sh][1], (int)shapes[sh][2], toks[k], 0);
                if (cfg.ref) bench_one(&cfg, types[ti], shapes[sh][0], shapes[sh][1], (int)shapes[sh][2], toks[k], 1);
            }
    return 0;
}
