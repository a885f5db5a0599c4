/* test_cuda_emu.c: the CUDA kernels' own bodies (the .cu files of kernels/cuda and the rtn/gptq kernels)
 * run on the CPU by the emulator beside this file, against the cpu device and the reference dequantizers. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_emu_stats.h"
#include "cuda_kernels.h"
#include "attention.cuh"
#include "dequant.cuh"
#include "device_cpu.h"
#include "gemm_f16.cuh"
#include "hc/hc_device.h"
#include "hc/hc_tensor.h"
#include "qrtn.h"
#include "qrtn_cuda.cuh"
#include "qrtn_cuda_api.h"
#include "test_util.h"
#include "weights_fixture.h"

const hc_qrtn_cuda_api *hc_qrtn_cuda_entry(void);

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float rnd(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 4503599627370496.0 - 1.0);
}

static float *rnd_floats(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rnd() * scale;
    return p;
}

static float *nan_floats(size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static hc_device *cpu_device(void)
{
    static hc_device *d;
    hc_device_config cfg = { .n_threads = 1 };
    if (!d) HC_ASSERT_OK(hc_cpu_device_create(&cfg, &d));
    return d;
}

/* Faults so far that the self-test caused on purpose, or that were reported already. */
static long faults_seen;

/* The launch ran (at least one more launch than before) with no error and no new fault. */
static void expect_ran(const char *what, long launches_before, int err)
{
    const char *last = NULL;
    long faults = hc_emu_faults(&last) - faults_seen;
    if (err || faults || hc_emu_launches() <= launches_before)
        fprintf(stderr, "  %s: error %d, %ld faults (last: %s), %ld launches\n", what, err, faults, faults ? last : "-",
                hc_emu_launches() - launches_before);
    faults_seen += faults;
    CU_ASSERT_EQUAL(err, 0);
    CU_ASSERT_EQUAL(faults, 0);
    CU_ASSERT(hc_emu_launches() > launches_before);
}

/* |got - want| <= tol (1 + |want|) for every element; NaN (an element not written) fails */
static int count_far(const float *got, const float *want, size_t n, double tol)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * (1.0 + fabs((double)want[i])))) bad++;
    return bad;
}

/* ---------------- the emulator catches what a GPU would not forgive ---------------- */

static void test_emulator(void)
{
    long f0 = hc_emu_faults(NULL);
    for (int n = 1; n <= 256; n += 85) {
        float sum = 0;
        long l0 = hc_emu_launches();
        expect_ran("block_sum", l0, hc_emu_selftest_block_sum(n, &sum));
        CU_ASSERT_EQUAL(sum, (float)(n * (n + 1) / 2)); /* wrong if a barrier let a thread run ahead */
    }
    const char *last;
    CU_ASSERT_EQUAL(hc_emu_faults(NULL), f0);
    long f;
    CU_ASSERT_NOT_EQUAL(hc_emu_selftest_half_warp_shuffle(), 0);
    CU_ASSERT((f = hc_emu_faults(&last)) > f0 && strstr(last, "16 of 32 lanes"));
    CU_ASSERT_NOT_EQUAL(hc_emu_selftest_divergent_barrier(), 0);
    CU_ASSERT(hc_emu_faults(&last) > f && strstr(last, "hangs"));
    f = hc_emu_faults(NULL);
    CU_ASSERT_NOT_EQUAL(hc_emu_selftest_oversized_block(), 0);
    CU_ASSERT(hc_emu_faults(&last) > f && strstr(last, "limits"));
    /* the suite's other cases expect no fault: they count from here */
    CU_ASSERT_EQUAL(cudaGetLastError(), cudaSuccess);
    faults_seen = hc_emu_faults(NULL);
}

/* HC_EMU_ORDER's orders: blocks run as asked, and a read of another thread's write without a barrier
 * between (a race) gives other values under another order; static shared memory is each block's own */
static void test_emulator_orders(void)
{
    enum { N = 16 };
    unsigned order[N], seen[N];
    float fwd[N], rev[N], shuf[N];
    CU_ASSERT_EQUAL(hc_emu_set_order("forward"), 0);
    CU_ASSERT_EQUAL(hc_emu_selftest_block_order(N, order), 0);
    CU_ASSERT_EQUAL(hc_emu_selftest_missing_barrier(N, fwd), 0);
    for (unsigned i = 0; i < N; i++) CU_ASSERT_EQUAL(order[i], i);
    /* forward: thread t reads thread t+1's slot before t+1 wrote it (shared memory starts as NaN); the
       last thread reads thread 0's */
    for (int t = 0; t < N - 1; t++) CU_ASSERT(isnan(fwd[t]));
    CU_ASSERT_EQUAL(fwd[N - 1], 0.0f);
    CU_ASSERT_EQUAL(hc_emu_set_order("reverse"), 0);
    CU_ASSERT_EQUAL(hc_emu_selftest_block_order(N, order), 0);
    CU_ASSERT_EQUAL(hc_emu_selftest_missing_barrier(N, rev), 0);
    for (unsigned i = 0; i < N; i++) CU_ASSERT_EQUAL(order[i], N - 1 - i);
    for (int t = 0; t < N - 1; t++) CU_ASSERT_EQUAL(rev[t], (float)(t + 1));
    CU_ASSERT(isnan(rev[N - 1]));
    /* a seed: each block once, in an order neither forward nor reverse, the same again for the same seed */
    CU_ASSERT_EQUAL(hc_emu_set_order("12345"), 0);
    CU_ASSERT_EQUAL(hc_emu_selftest_block_order(N, order), 0);
    CU_ASSERT_EQUAL(hc_emu_selftest_missing_barrier(N, shuf), 0);
    int in_order = 0, reversed = 0, other = 0;
    memset(seen, 0, sizeof seen);
    for (unsigned i = 0; i < N; i++) {
        if (order[i] < N) seen[order[i]]++;
        in_order += order[i] == i;
        reversed += order[i] == N - 1 - i;
    }
    for (unsigned i = 0; i < N; i++) CU_ASSERT_EQUAL(seen[i], 1);
    CU_ASSERT(in_order < N && reversed < N);
    for (int t = 0; t < N; t++) {
        float want = t < N - 1 ? (float)(t + 1) : 0.0f;
        CU_ASSERT(isnan(shuf[t]) || shuf[t] == want); /* before or after its neighbour, nothing else */
        other += isnan(shuf[t]) != isnan(fwd[t]);
    }
    CU_ASSERT(other > 0);
    unsigned again[N];
    CU_ASSERT_EQUAL(hc_emu_set_order("12345"), 0);
    CU_ASSERT_EQUAL(hc_emu_selftest_block_order(N, again), 0);
    CU_ASSERT_EQUAL(memcmp(order, again, sizeof order), 0);
    /* static shared memory is each block's own, garbage at its start, whatever the block before it left */
    float fresh[N];
    CU_ASSERT_EQUAL(hc_emu_selftest_fresh_shared(N, fresh), 0);
    for (int b = 0; b < N; b++) CU_ASSERT(isnan(fresh[b]));
    CU_ASSERT_EQUAL(hc_emu_set_order("sideways"), -1);
    CU_ASSERT_EQUAL(hc_emu_set_order("12x"), -1);
    CU_ASSERT_EQUAL(hc_emu_set_order(""), -1);
    /* the rest of the suite in the order the environment asks for */
    if (hc_emu_set_order(getenv("HC_EMU_ORDER")) != 0) hc_emu_set_order("forward");
}

/* HC_EMU_STREAMS: a copy from page-locked memory reads it when it runs: lazily at the synchronization,
 * where the host's write after the call shows; eagerly before the call returns, where it does not (the
 * host's write after the call is a race on a GPU: one of the two shows it) */
static void test_emulator_streams(void)
{
    float *host = NULL, *dev = NULL, back = 0;
    cudaStream_t s = NULL;
    CU_ASSERT_EQUAL_FATAL(cudaMallocHost((void **)&host, sizeof *host), cudaSuccess);
    CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&dev, sizeof *dev), cudaSuccess);
    CU_ASSERT_EQUAL_FATAL(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    for (int eager = 0; eager < 2; eager++) {
        CU_ASSERT_EQUAL(hc_emu_set_streams(eager ? "eager" : "lazy"), 0);
        *host = 1.0f;
        CU_ASSERT_EQUAL(cudaMemcpyAsync(dev, host, sizeof *host, cudaMemcpyHostToDevice, s), cudaSuccess);
        *host = 2.0f;
        CU_ASSERT_EQUAL(cudaStreamSynchronize(s), cudaSuccess);
        /* into pageable memory: done when the call returns */
        CU_ASSERT_EQUAL(cudaMemcpyAsync(&back, dev, sizeof back, cudaMemcpyDeviceToHost, s), cudaSuccess);
        CU_ASSERT_EQUAL(back, eager ? 1.0f : 2.0f);
    }
    CU_ASSERT_EQUAL(hc_emu_set_streams("soon"), -1);
    /* the rest of the suite as the environment asks */
    if (hc_emu_set_streams(getenv("HC_EMU_STREAMS")) != 0) hc_emu_set_streams("lazy");
    cudaStreamDestroy(s);
    cudaFree(dev);
    cudaFreeHost(host);
}

static void expect_no_new_faults(void)
{
    const char *last = NULL;
    long faults = hc_emu_faults(&last) - faults_seen;
    if (faults) fprintf(stderr, "  %ld faults, the last: %s\n", faults, last);
    faults_seen += faults;
    CU_ASSERT_EQUAL(faults, 0);
}

/* ---------------- element-wise, rmsnorm, rope ---------------- */

static void test_rows(void)
{
    hc_device *c = cpu_device();
    long l0 = hc_emu_launches();
    const int n_tok = 3, n_head = 4, hd = 64, dim = n_head * hd;
    size_t n = (size_t)n_tok * dim;
    float *x = rnd_floats(n, 2.0f), *u = rnd_floats(n, 1.0f), *w = rnd_floats((size_t)dim, 1.0f);
    float *want = malloc(n * sizeof *want), *got = nan_floats(n);

    HC_ASSERT_OK(c->ops->swiglu(c, x, u, want, n));
    CU_ASSERT_EQUAL(hc_cu_swiglu(NULL, x, u, got, n, NULL, NULL), cudaSuccess);
    CU_ASSERT_EQUAL(count_far(got, want, n, 1e-6), 0);
    HC_ASSERT_OK(c->ops->geglu(c, x, u, want, n));
    CU_ASSERT_EQUAL(hc_cu_geglu(NULL, x, u, got, n), cudaSuccess);
    int far = 0;
    for (size_t i = 0; i < n; i++) far += !(fabs((double)got[i] - want[i]) <= 3e-6 * fabs((double)x[i] * u[i]) + 1e-7);
    CU_ASSERT_EQUAL(far, 0);

    memcpy(want, x, n * sizeof *x);
    memcpy(got, x, n * sizeof *x);
    HC_ASSERT_OK(c->ops->add(c, want, u, n));
    HC_ASSERT_OK(c->ops->add_bias(c, want, w, n_tok, dim));
    HC_ASSERT_OK(c->ops->scale(c, want, n, -0.5f));
    CU_ASSERT_EQUAL(hc_cu_add(NULL, got, u, n), cudaSuccess);
    CU_ASSERT_EQUAL(hc_cu_add_bias(NULL, got, w, n_tok, dim), cudaSuccess);
    CU_ASSERT_EQUAL(hc_cu_scale(NULL, got, n, -0.5f), cudaSuccess);
    CU_ASSERT_EQUAL(count_far(got, want, n, 0), 0);
    { /* add_set: three outputs (y[0] is got) from one packed array, as an add each */
        float *y1 = rnd_floats(37, 1.0f), *y2 = rnd_floats(5, 1.0f), *w1 = malloc(37 * sizeof *w1), *w2 = malloc(5 * sizeof *w2);
        size_t len[3] = { n, 37, 5 };
        float *packed = rnd_floats(n + 42, 1.0f), *ys[3] = { got, y1, y2 };
        memcpy(w1, y1, 37 * sizeof *y1);
        memcpy(w2, y2, 5 * sizeof *y2);
        HC_ASSERT_OK(c->ops->add(c, want, packed, n));
        HC_ASSERT_OK(c->ops->add(c, w1, packed + n, 37));
        HC_ASSERT_OK(c->ops->add(c, w2, packed + n + 37, 5));
        CU_ASSERT_EQUAL(hc_cu_add_set(NULL, 3, ys, packed, len), cudaSuccess);
        CU_ASSERT_EQUAL(count_far(got, want, n, 0) + count_far(y1, w1, 37, 0) + count_far(y2, w2, 5, 0), 0);
        CU_ASSERT_EQUAL(hc_cu_add_set(NULL, HC_CU_ADD_SET_MAX + 1, ys, packed, len), cudaErrorInvalidValue);
        free(y1), free(y2), free(w1), free(w2), free(packed);
    }
    float gate[3] = { -2.5f, 0.0f, 7.0f }; /* the shared expert's gate, a logit per token */
    HC_ASSERT_OK(c->ops->gate_rows(c, want, gate, n_tok, dim));
    CU_ASSERT_EQUAL(hc_cu_gate_rows(NULL, got, gate, n_tok, dim), cudaSuccess);
    CU_ASSERT_EQUAL(count_far(got, want, n, 1e-6), 0);

    uint16_t *h = malloc(n * 2);
    CU_ASSERT_EQUAL(hc_cu_to_f16(NULL, x, h, n), cudaSuccess);
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += h[i] != hc_f32_to_f16(x[i]);
    CU_ASSERT_EQUAL(bad, 0);

    HC_ASSERT_OK(c->ops->rmsnorm(c, x, w, want, n_tok, dim, 1e-5f));
    CU_ASSERT_EQUAL(hc_cu_rmsnorm(NULL, x, w, got, n_tok, dim, 1e-5f, NULL), cudaSuccess);
    CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);

    /* the residual add and the norm in one kernel: x as add leaves it, y as rmsnorm of that; y = r too */
    float *xs = malloc(n * sizeof *xs), *rs = malloc(n * sizeof *rs);
    memcpy(want, x, n * sizeof *x);
    HC_ASSERT_OK(c->ops->add(c, want, u, n));
    float *wy = malloc(n * sizeof *wy);
    HC_ASSERT_OK(c->ops->rmsnorm(c, want, w, wy, n_tok, dim, 1e-5f));
    for (int alias = 0; alias <= 1; alias++) {
        memcpy(xs, x, n * sizeof *x);
        memcpy(rs, u, n * sizeof *u);
        float *y = alias ? rs : got;
        CU_ASSERT_EQUAL(hc_cu_add_rmsnorm(NULL, xs, rs, w, y, n_tok, dim, 1e-5f, NULL, NULL), cudaSuccess);
        CU_ASSERT_EQUAL(count_far(xs, want, n, 0), 0);
        CU_ASSERT_EQUAL(count_far(y, wy, n, 1e-5), 0);
    }
    free(xs), free(rs), free(wy);

    int32_t pos[3] = { 9, 2, 700 };
    for (int mode = 0; mode <= 2; mode += 2)
        for (int scattered = 0; scattered <= 1; scattered++) {
            int32_t cons[3] = { 4, 5, 6 };
            const int32_t *p = scattered ? pos : cons;
            memcpy(want, x, n * sizeof *x);
            memcpy(got, x, n * sizeof *x);
            HC_ASSERT_OK(c->ops->rope(c, want, n_tok, n_head, hd, 32, p, 10000.0f, (hc_rope_mode)mode));
            CU_ASSERT_EQUAL(hc_cu_rope(NULL, got, n_tok, n_head, hd, 32, scattered ? pos : NULL, p[0], 10000.0f, mode),
                            cudaSuccess);
            bad = count_far(got, want, n, 1e-5);
            if (bad) fprintf(stderr, "  rope mode %d %s: %d wrong\n", mode, scattered ? "scattered" : "consecutive", bad);
            CU_ASSERT_EQUAL(bad, 0);
            /* q (all n_head heads of x) and k (u, read as n_tok x 2 heads) in one launch, as rope twice */
            float *kw = malloc(n * sizeof *kw), *kg = malloc(n * sizeof *kg);
            memcpy(got, x, n * sizeof *x);
            memcpy(kw, u, n * sizeof *u);
            memcpy(kg, u, n * sizeof *u);
            HC_ASSERT_OK(c->ops->rope(c, kw, n_tok, 2, hd, 32, p, 10000.0f, (hc_rope_mode)mode));
            CU_ASSERT_EQUAL(hc_cu_rope_qk(NULL, got, kg, n_tok, n_head, 2, hd, 32, scattered ? pos : NULL, p[0], 10000.0f, mode),
                            cudaSuccess);
            CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);
            CU_ASSERT_EQUAL(count_far(kg, kw, n, 1e-5), 0); /* beyond k's 2 heads a token: as it was */
            /* and with the KV cache's store: k's 2 heads a token rotated into kd, v's (w's first rows) into vd,
               f32 and f16 */
            size_t kn = (size_t)n_tok * 2 * hd;
            float *kd = nan_floats(kn), *vd = nan_floats(kn);
            uint16_t *kh = malloc(kn * 2), *vh = malloc(kn * 2);
            float *vsrc = rnd_floats(kn, 1.0f);
            for (int f16 = 0; f16 <= 1; f16++) {
                memcpy(got, x, n * sizeof *x);
                memcpy(kg, u, n * sizeof *u);
                CU_ASSERT_EQUAL(hc_cu_rope_store(NULL, got, kg, vsrc, n_tok, n_head, 2, hd, 32, scattered ? pos : NULL, p[0],
                                                 10000.0f, mode, f16 ? (void *)kh : kd, f16 ? (void *)vh : vd, f16, NULL),
                                cudaSuccess);
                CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);
                CU_ASSERT_EQUAL(count_far(kg, kw, n, 1e-5), 0);
                int wrong = 0;
                for (size_t i = 0; i < kn; i++)
                    wrong += f16 ? kh[i] != hc_f32_to_f16(kg[i]) || vh[i] != hc_f32_to_f16(vsrc[i])
                                 : memcmp(&kd[i], &kg[i], 4) != 0 || memcmp(&vd[i], &vsrc[i], 4) != 0;
                CU_ASSERT_EQUAL(wrong, 0);
            }
            free(kd), free(vd), free(kh), free(vh), free(vsrc);
            free(kw), free(kg);
        }
    expect_ran("rows", l0, cudaGetLastError());
    expect_no_new_faults();
    free(x), free(u), free(w), free(want), free(got), free(h);
}

/* ---------------- attention: the key splits and their merge ---------------- */

static void test_attention(void)
{
    struct { int n_head, n_head_kv, head_dim, n_tok, pos0, n_ctx; } cfgs[] = {
        { 8, 2, 64, 3, 5, 16 },      /* GQA 4:1, a batch */
        { 4, 1, 48, 2, 0, 8 },       /* head_dim not a multiple of the warp */
        { 2, 2, 256, 1, 40, 64 },    /* the largest head_dim */
        { 2, 1, 64, 1, 300, 512 },   /* decode over 301 keys: the chooser's 2 splits */
    };
    hc_device *c = cpu_device();
    for (int ci = 0; ci < 8; ci++) {
        const int k = ci % 4, f16 = ci >= 4;
        hc_attn_args a = { 0 };
        a.n_head = cfgs[k].n_head, a.n_head_kv = cfgs[k].n_head_kv, a.head_dim = cfgs[k].head_dim;
        a.n_tok = cfgs[k].n_tok, a.pos0 = cfgs[k].pos0, a.n_ctx = cfgs[k].n_ctx;
        a.scale = 1.0f / sqrtf((float)a.head_dim);
        a.kv_dtype = f16 ? HC_F16 : HC_F32;
        size_t qn = (size_t)a.n_tok * a.n_head * a.head_dim, kvn = (size_t)a.n_ctx * a.n_head_kv * a.head_dim;
        float *q = rnd_floats(qn, 2.0f), *kc = rnd_floats(kvn, 2.0f), *vc = rnd_floats(kvn, 1.0f);
        uint16_t *k16 = malloc(kvn * 2), *v16 = malloc(kvn * 2);
        for (size_t i = 0; i < kvn; i++) k16[i] = hc_f32_to_f16(kc[i]), v16[i] = hc_f32_to_f16(vc[i]);
        a.q = q;
        a.k_cache = f16 ? (const float *)k16 : kc;
        a.v_cache = f16 ? (const float *)v16 : vc;
        float *want = malloc(qn * sizeof *want), *got = malloc(qn * sizeof *got);
        a.out = want;
        HC_ASSERT_OK(c->ops->attention(c, &a));
        const int splits[] = { hc_cu_attn_n_splits(a.n_tok, a.n_head, a.pos0), 1, 3, 7 };
        for (int si = 0; si < 4; si++) {
            size_t sn = hc_cu_attn_scratch_floats(a.n_tok, a.n_head, a.head_dim, splits[si]);
            float *scratch = sn ? nan_floats(sn) : NULL;
            for (size_t i = 0; i < qn; i++) got[i] = NAN;
            a.out = got;
            long l0 = hc_emu_launches();
            int err = hc_cu_attention(NULL, &a, splits[si], scratch, NULL);
            expect_ran("attention", l0, err);
            CU_ASSERT_EQUAL(hc_emu_launches() - l0, splits[si] > 1 ? 2 : 1);
            int bad = count_far(got, want, qn, 2e-5);
            if (bad) fprintf(stderr, "  attention config %d, %d splits: %d of %zu wrong\n", ci, splits[si], bad, qn);
            CU_ASSERT_EQUAL(bad, 0);
            free(scratch);
        }
        CU_ASSERT(ci % 4 != 3 || splits[0] == 2);
        free(q), free(kc), free(vc), free(k16), free(v16), free(want), free(got);
    }
    expect_no_new_faults();
}

/* ---------------- weights: GEMV (by runs and by elements), rows to f32 and f16 ---------------- */


static const hc_dtype types[] = { HC_F32,  HC_F16,  HC_BF16, HC_Q4_0, HC_Q4_1, HC_Q5_0, HC_Q5_1,
                                  HC_Q8_0, HC_Q2_K, HC_Q3_K, HC_Q4_K, HC_Q5_K, HC_Q6_K };

static void test_weights(void)
{
    /* K-quants: 256, and 1280 (5 super-blocks: a lane takes 2 runs, and blocks of an odd index start 2 bytes
       off a word where the blocks' size is only even); the 32-blocks 256 and 608 */
    const int64_t ins[] = { 256, 512 + 32 * 3, 1280 };
    const int64_t outs[] = { 5, 531 }; /* the last warp holds one row of 4 (by runs), or half a block (by elements) */
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++)
        for (int ii = 0; ii < 3; ii++)
            for (int oi = 0; oi < 2; oi++) {
                hc_dtype t = types[ti];
                int64_t in = ins[ii], out = outs[oi];
                if (in % hc_dtype_block_size(t) || (in == 1280 && hc_dtype_block_size(t) != 256)) continue;
                size_t wb, rb = hc_dtype_row_bytes(t, in);
                uint8_t *w = hc_test_weights(t, out, in, &wb, &rng);
                float *xbuf = rnd_floats((size_t)in + 4, 1.0f), *y = malloc((size_t)out * sizeof *y);
                float *deq = malloc((size_t)in * out * sizeof *deq);
                for (int64_t o = 0; o < out; o++) hc_dequantize_row(t, w + rb * (size_t)o, deq + (size_t)o * in, in);
                /* x + 1: the element kernel; aligned: by runs, 4 rows a warp and 1 */
                for (int mode = 0; mode < 3; mode++) {
                    const int misaligned = mode == 2, warp_rows = mode == 1 ? 1 : HC_CU_GEMV_RUN_ROWS;
                    const float *x = xbuf + misaligned;
                    for (int64_t o = 0; o < out; o++) y[o] = NAN;
                    long l0 = hc_emu_launches();
                    expect_ran("gemv", l0, hc_cu_gemv(NULL, (int)t, w, rb, in, out, x, y, warp_rows, NULL));
                    int bad = 0;
                    for (int64_t o = 0; o < out; o++) {
                        double s = 0, m = 0;
                        for (int64_t i = 0; i < in; i++) s += (double)deq[o * in + i] * x[i], m += fabs((double)deq[o * in + i] * x[i]);
                        if (!(fabs(y[o] - s) <= 1e-5 * (m + 1e-3))) bad++;
                    }
                    if (bad)
                        fprintf(stderr, "  gemv %s %lld x %lld (%s x, %d rows a warp): %d wrong\n", hc_dtype_name(t),
                                (long long)out, (long long)in, misaligned ? "unaligned" : "aligned", warp_rows, bad);
                    CU_ASSERT_EQUAL(bad, 0);
                }
                CU_ASSERT_EQUAL(hc_cu_gemv(NULL, (int)t, w, rb, in, out, xbuf, y, 2, NULL), cudaErrorInvalidValue);
                if (hc_dtype_block_size(t) > 1) { /* x quantized to int8: the cpu device's sums, both row counts */
                    float *want = nan_floats((size_t)out);
                    hc_tensor tc = { .name = "w", .dtype = t, .n_dims = 2, .ne = { in, out, 1, 1 }, .nbytes = wb, .data = w,
                                     .device = cpu_device() };
                    HC_ASSERT_OK(tc.device->ops->matmul(tc.device, &tc, xbuf, want, 1));
                    void *xq = NULL;
                    CU_ASSERT_EQUAL_FATAL(cudaMalloc(&xq, hc_cu_q8x_bytes(1, in)), cudaSuccess);
                    for (int rows = 1; rows <= HC_CU_GEMV_RUN_ROWS; rows += HC_CU_GEMV_RUN_ROWS - 1) {
                        for (int64_t o = 0; o < out; o++) y[o] = NAN;
                        long l0 = hc_emu_launches();
                        expect_ran("gemv (x in int8)", l0, hc_cu_gemv(NULL, (int)t, w, rb, in, out, xbuf, y, rows, xq));
                        /* within 1e-5 (1 + |want|), or where the terms cancel, 1e-7 of the sum of their sizes
                           (both devices' float rounding: 1280 terms summing to 4e3 in size and 0.9 in all differ by
                           3e-5) */
                        int bad = 0;
                        for (int64_t o = 0; o < out; o++) {
                            double m = 0;
                            for (int64_t i = 0; i < in; i++) m += fabs((double)deq[o * in + i] * xbuf[i]);
                            if (count_far(y + o, want + o, 1, 1e-5) && !(fabs((double)y[o] - want[o]) <= 1e-7 * m)) bad++;
                        }
                        if (bad) fprintf(stderr, "  gemv %s %lld x %lld, x in int8, %d rows a warp: %d wrong\n", hc_dtype_name(t),
                                         (long long)out, (long long)in, rows, bad);
                        CU_ASSERT_EQUAL(bad, 0);
                    }
                    cudaFree(xq);
                    free(want);
                }
                /* rows 3, 0, 2 by ids and rows 1.. by range, in f32 and in f16; the output 16-byte aligned (block
                   types: by runs) and not (by elements) */
                const int32_t ids[] = { 3, 0, 2 };
                float *rows32_buf = nan_floats((size_t)3 * in + 1);
                uint16_t *rows16_buf = malloc((size_t)3 * in * 2 + 2);
                for (int mode = 0; mode < 8; mode++) {
                    const int f16 = mode & 1, by_ids = (mode >> 1) & 1, shift = mode >> 2;
                    float *rows32 = rows32_buf + shift;
                    uint16_t *rows16 = rows16_buf + shift;
                    long l0 = hc_emu_launches();
                    expect_ran("dequant_rows", l0,
                               hc_cu_dequant_rows(NULL, (int)t, w, rb, in, by_ids ? ids : NULL, 1, 3, f16 ? (void *)rows16 : rows32, f16));
                    int bad = 0;
                    for (int r = 0; r < 3; r++)
                        for (int64_t i = 0; i < in; i++) {
                            float want = deq[(size_t)(by_ids ? ids[r] : 1 + r) * in + i];
                            if (f16 ? rows16[r * in + i] != hc_f32_to_f16(want) : memcmp(&rows32[r * in + i], &want, 4) != 0) bad++;
                        }
                    if (bad)
                        fprintf(stderr, "  dequant_rows %s %s%s%s: %d wrong\n", hc_dtype_name(t), f16 ? "f16" : "f32",
                                by_ids ? " by ids" : "", shift ? " (output not aligned)" : "", bad);
                    CU_ASSERT_EQUAL(bad, 0);
                }
                free(w), free(xbuf), free(y), free(deq), free(rows32_buf), free(rows16_buf);
            }
    expect_no_new_faults();
}

/* ---------------- the f16 GEMM's activations ---------------- */

static void test_f16_activations(void)
{
    const float mags[] = { 3e4f, 1.0f, 1e-6f };
    for (int mi = 0; mi < 3; mi++) {
        size_t n = 3000;
        float *x = rnd_floats(n, mags[mi]), *consts = NULL; /* device memory: cudaMemsetAsync checks */
        CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&consts, HC_CU_F16_CONSTS * sizeof *consts), cudaSuccess);
        consts[0] = 123.0f;
        uint16_t *y = malloc(n * 2);
        x[1234] = -mags[mi]; /* the largest magnitude, negative */
        long l0 = hc_emu_launches();
        expect_ran("to_f16_scaled", l0, hc_cu_to_f16_scaled(NULL, x, n, y, consts));
        float amax = 0;
        for (size_t i = 0; i < n; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        float s = hc_cu_f16_input_scale(amax);
        CU_ASSERT_EQUAL(consts[1], s);
        uint32_t found, want;
        memcpy(&found, &consts[0], 4);
        memcpy(&want, &amax, 4);
        CU_ASSERT_EQUAL(found, want); /* max |x| found by the reduction */
        int bad = 0;
        for (size_t i = 0; i < n; i++) bad += y[i] != hc_f32_to_f16(x[i] / s);
        CU_ASSERT_EQUAL(bad, 0);
        /* the GEMM's outputs times s */
        float *o = rnd_floats(n, 1.0f), *o0 = malloc(n * sizeof *o0);
        memcpy(o0, o, n * sizeof *o);
        l0 = hc_emu_launches();
        expect_ran("scale_by", l0, hc_cu_scale_by(NULL, o, n, consts));
        bad = 0;
        for (size_t i = 0; i < n; i++) bad += o[i] != o0[i] * s;
        CU_ASSERT_EQUAL(bad, 0);
        free(x), free(y), free(o), free(o0);
        CU_ASSERT_EQUAL(cudaFree(consts), cudaSuccess);
    }
    expect_no_new_faults();
}

/* ---------------- the rtn/gptq packed format's kernels ---------------- */

static void test_qrtn(void)
{
    const hc_qrtn_cuda_api *api = hc_qrtn_cuda_entry();
    CU_ASSERT_FATAL(api && api->api == HC_QRTN_CUDA_API);
    const int bits_all[] = { 2, 3, 4, 8 }, groups[] = { 32, 64, 128 };
    /* units of 64 + 32 (the wide GEMV runs the plain one); short last groups; many units; quads only */
    const int64_t cols_all[] = { 96, 576, 1056, 2048 };
    const int64_t rows = 37;
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int ci = 0; ci < 4; ci++) {
                int bits = bits_all[bi], group = groups[gi];
                int64_t cols = cols_all[ci];
                float *w = rnd_floats((size_t)rows * cols, 1.0f), *deq = malloc((size_t)rows * cols * sizeof *deq);
                uint8_t *p = malloc(hc_qrtn_packed_bytes(bits, group, rows, cols));
                HC_ASSERT_OK(hc_qrtn_quantize_rtn(bits, group, w, rows, cols, p));
                hc_qrtn_dequantize_rows(bits, group, p, cols, 0, rows, deq);
                for (int n_tok = 1; n_tok <= api->max_fused_tokens; n_tok += 3)
                    for (int kind = 0; kind <= 2; kind++) { /* wide (x is malloc's, 16-byte aligned), plain, wide with x in int8 */
                        float *x = rnd_floats((size_t)n_tok * cols, 1.0f), *y = nan_floats((size_t)n_tok * rows);
                        /* x in int8: the reference takes what x's codes give (hc_qrtn_cu_q8_*, as the kernel makes
                           them) in the row's units of 128 */
                        uint8_t *xq = malloc((size_t)n_tok * cols);
                        float *xv = malloc((size_t)n_tok * cols * sizeof *xv);
                        float *xds = malloc((size_t)n_tok * cols / 32 * sizeof *xds);
                        for (int64_t b = 0; b < n_tok * cols / 32; b++) xds[b] = hc_qrtn_cu_q8_block(x + 32 * b, xq + 32 * b);
                        long l0 = hc_emu_launches();
                        __typeof__(api->gemv) fn = kind == 2 ? api->gemv_q8 : kind ? api->gemv_plain : api->gemv;
                        expect_ran("qrtn gemv", l0, fn(bits, group, NULL, p, cols, rows, x, n_tok, y));
                        for (int64_t i = 0; i < n_tok * cols; i++)
                            xv[i] = kind == 2 && i % cols < cols / 128 * 128 ? xds[i / 32] * (float)(int8_t)xq[i] : x[i];
                        int bad = 0;
                        for (int t = 0; t < n_tok; t++)
                            for (int64_t o = 0; o < rows; o++) {
                                double s = 0, m = 0;
                                for (int64_t i = 0; i < cols; i++) {
                                    double v = (double)deq[o * cols + i] * xv[t * cols + i];
                                    s += v, m += fabs(v);
                                }
                                if (!(fabs(y[t * rows + o] - s) <= 1e-4 * m + 1e-6)) bad++;
                            }
                        if (bad)
                            fprintf(stderr, "  qrtn gemv (%s) bits %d group %d cols %lld, %d tokens: %d wrong\n",
                                    kind == 2 ? "int8" : kind ? "plain" : "wide", bits, group, (long long)cols, n_tok, bad);
                        CU_ASSERT_EQUAL(bad, 0);
                        free(x), free(y), free(xq), free(xv), free(xds);
                    }
                { /* x not 16-byte aligned: the wide GEMV is the plain one */
                    float *x = rnd_floats(cols + 1, 1.0f), *y = nan_floats((size_t)rows), *want = nan_floats((size_t)rows);
                    CU_ASSERT_EQUAL(api->gemv(bits, group, NULL, p, cols, rows, x + 1, 1, y), 0);
                    CU_ASSERT_EQUAL(api->gemv_plain(bits, group, NULL, p, cols, rows, x + 1, 1, want), 0);
                    CU_ASSERT_EQUAL(memcmp(y, want, (size_t)rows * sizeof *y), 0);
                    free(x), free(y), free(want);
                }
                float *r32 = nan_floats((size_t)2 * cols);
                uint16_t *r16 = malloc((size_t)2 * cols * 2);
                for (int f16 = 0; f16 <= 1; f16++) {
                    long l0 = hc_emu_launches();
                    expect_ran("qrtn dequant_rows", l0, api->dequant_rows(bits, group, NULL, p, cols, NULL, 35, 2, f16 ? (void *)r16 : r32, f16));
                    int bad = 0;
                    for (int64_t i = 0; i < 2 * cols; i++) {
                        float want = deq[35 * cols + i];
                        bad += f16 ? r16[i] != hc_f32_to_f16(want) : memcmp(&r32[i], &want, 4) != 0;
                    }
                    CU_ASSERT_EQUAL(bad, 0);
                }
                free(w), free(deq), free(p), free(r32), free(r16);
            }
    { /* x whose codes would not fit the shared memory (8 tokens of 8192: 72 KiB): the int8 GEMV is the f32 one */
        const int64_t wc = 8192, wr = 6;
        const int n_tok = 8;
        float *w = rnd_floats((size_t)wr * wc, 1.0f), *x = rnd_floats((size_t)n_tok * wc, 1.0f);
        float *y = nan_floats((size_t)n_tok * wr), *want = nan_floats((size_t)n_tok * wr);
        uint8_t *p = malloc(hc_qrtn_packed_bytes(3, 128, wr, wc));
        HC_ASSERT_OK(hc_qrtn_quantize_rtn(3, 128, w, wr, wc, p));
        CU_ASSERT_EQUAL(api->gemv_q8(3, 128, NULL, p, wc, wr, x, n_tok, y), 0);
        CU_ASSERT_EQUAL(api->gemv(3, 128, NULL, p, wc, wr, x, n_tok, want), 0);
        CU_ASSERT_EQUAL(memcmp(y, want, (size_t)n_tok * wr * sizeof *y), 0);
        free(w), free(x), free(y), free(want), free(p);
    }
    /* by expert: 3 experts of 12 rows, 4 routed rows of 2 tokens, each row as the GEMV of the same kernel gives it */
    for (int bi = 0; bi < 4; bi++) {
        int bits = bits_all[bi], group = 64, E = 3, re = 12, n_rows = 4;
        int64_t cols = 576;
        const int32_t ids[] = { 2, 0, 2, 1 };
        float *w = rnd_floats((size_t)E * re * cols, 1.0f), *x = rnd_floats((size_t)2 * cols, 1.0f);
        size_t slice = hc_qrtn_packed_bytes(bits, group, re, cols);
        uint8_t *p = malloc((size_t)E * slice);
        HC_ASSERT_OK(hc_qrtn_quantize_rtn(bits, group, w, (int64_t)E * re, cols, p));
        float *y = nan_floats((size_t)n_rows * re), *want = nan_floats((size_t)n_rows * re);
        for (int plain = 0; plain <= 1; plain++) { /* the wide kernels, the plain ones */
            long l0 = hc_emu_launches();
            expect_ran("qrtn gemv_id", l0, (plain ? api->gemv_id_plain : api->gemv_id)(bits, group, NULL, p, slice, ids, cols, re, x, 2,
                                                                                         n_rows, y));
            for (int r = 0; r < n_rows; r++)
                CU_ASSERT_EQUAL((plain ? api->gemv_plain : api->gemv)(bits, group, NULL, p + (size_t)ids[r] * slice, cols, re,
                                                                      x + (size_t)(r / 2) * cols, 1, want + (size_t)r * re), 0);
            CU_ASSERT_EQUAL(memcmp(y, want, (size_t)n_rows * re * sizeof *y), 0);
        }
        { /* with x in int8: each routed row as gemv_q8 gives it */
            long l0 = hc_emu_launches();
            expect_ran("qrtn gemv_id_q8", l0, api->gemv_id_q8(bits, group, NULL, p, slice, ids, cols, re, x, 2, n_rows, y));
            for (int r = 0; r < n_rows; r++)
                CU_ASSERT_EQUAL(api->gemv_q8(bits, group, NULL, p + (size_t)ids[r] * slice, cols, re, x + (size_t)(r / 2) * cols,
                                             1, want + (size_t)r * re), 0);
            CU_ASSERT_EQUAL(memcmp(y, want, (size_t)n_rows * re * sizeof *y), 0);
        }
        free(w), free(x), free(p), free(y), free(want);
    }
    /* a set of matrices sharing x (q, k, v: rows of their own, so warps a row of their own), one launch,
       each y as its own gemv (q8 0) or gemv_q8 (q8 1) gives it; x not 16-byte aligned: a gemv each */
    for (int bi = 0; bi < 4; bi++) {
        int bits = bits_all[bi], group = 128;
        const int64_t cols = 1056, rows_m[3] = { 64, 13, 600 };
        uint8_t *pm[3];
        float *ym[3], *want[3];
        for (int m = 0; m < 3; m++) {
            float *w = rnd_floats((size_t)rows_m[m] * cols, 1.0f);
            pm[m] = malloc(hc_qrtn_packed_bytes(bits, group, rows_m[m], cols));
            HC_ASSERT_OK(hc_qrtn_quantize_rtn(bits, group, w, rows_m[m], cols, pm[m]));
            ym[m] = nan_floats((size_t)rows_m[m]);
            want[m] = nan_floats((size_t)rows_m[m]);
            free(w);
        }
        float *x = rnd_floats((size_t)cols + 4, 1.0f);
        for (int q8 = 0; q8 <= 1; q8++)
            for (int shift = 0; shift <= 1; shift++) {
                const float *xs = x + shift;
                long l0 = hc_emu_launches();
                CU_ASSERT_EQUAL(api->gemv_set(bits, group, NULL, 3, (const void *const *)pm, rows_m, cols, xs, ym, q8), 0);
                CU_ASSERT_EQUAL(hc_emu_launches() - l0, shift ? 3 : 1);
                for (int m = 0; m < 3; m++) {
                    __typeof__(api->gemv) one = q8 ? api->gemv_q8 : api->gemv;
                    CU_ASSERT_EQUAL(one(bits, group, NULL, pm[m], cols, rows_m[m], xs, 1, want[m]), 0);
                    int same = memcmp(ym[m], want[m], (size_t)rows_m[m] * sizeof(float)) == 0;
                    if (!same) fprintf(stderr, "  qrtn gemv_set bits %d q8 %d shift %d: matrix %d differs\n", bits, q8, shift, m);
                    CU_ASSERT(same);
                }
            }
        CU_ASSERT_NOT_EQUAL(api->gemv_set(bits, group, NULL, 5, (const void *const *)pm, rows_m, cols, x, ym, 0), 0);
        for (int m = 0; m < 3; m++) free(pm[m]), free(ym[m]), free(want[m]);
        free(x);
    }
    expect_no_new_faults();
}

/* ---------------- experts routed on the GPU ---------------- */

/* The host's routing of one token (core/runtime/moe.c), restated: softmax, the k best (ties: the
 * lower index), their probabilities, divided by their sum when norm. */
static void ref_topk(const float *lg, int n, int k, int norm, int32_t *ids, float *w)
{
    double mx = lg[0], sum = 0, p[1024];
    for (int e = 1; e < n; e++) mx = lg[e] > mx ? lg[e] : mx;
    for (int e = 0; e < n; e++) sum += p[e] = exp(lg[e] - mx);
    double wsum = 0;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < n; e++)
            if (p[e] >= 0 && (best < 0 || p[e] > p[best])) best = e;
        ids[j] = best;
        w[j] = (float)(p[best] / sum);
        wsum += p[best] / sum;
        p[best] = -1;
    }
    for (int j = 0; norm && j < k; j++) w[j] = (float)(w[j] / wsum);
}

static void test_moe(void)
{
    /* top-k of 3 tokens: 64 experts choose 8 (normalised, with a tie), 128 choose 8, 40 choose 1 */
    const int n_tok = 3, experts[] = { 64, 128, 40 }, ks[] = { 8, 8, 1 }, norms[] = { 1, 0, 1 };
    for (int ci = 0; ci < 3; ci++) {
        int E = experts[ci], k = ks[ci];
        float *lg = rnd_floats((size_t)n_tok * E, 3.0f), w[3 * 8], want_w[3 * 8];
        int32_t ids[3 * 8], want_ids[3 * 8];
        lg[E + 7] = lg[E + 3] = 9.0f; /* token 1: two equal bests, expert 3 first */
        long l0 = hc_emu_launches();
        expect_ran("moe_topk", l0, hc_cu_moe_topk(NULL, lg, n_tok, E, k, norms[ci], ids, w));
        int bad = 0;
        for (int t = 0; t < n_tok; t++) {
            ref_topk(lg + (size_t)t * E, E, k, norms[ci], want_ids + t * k, want_w + t * k);
            for (int j = 0; j < k; j++)
                bad += ids[t * k + j] != want_ids[t * k + j] || !(fabsf(w[t * k + j] - want_w[t * k + j]) <= 1e-6f * (1 + want_w[t * k + j]));
        }
        if (bad) fprintf(stderr, "  moe_topk %d experts, k %d: %d wrong\n", E, k, bad);
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT(k < 2 || (ids[k] == 3 && ids[k + 1] == 7));
        free(lg);
    }
    CU_ASSERT_NOT_EQUAL(hc_cu_moe_topk(NULL, NULL, 1, 2000, 8, 0, NULL, NULL), cudaSuccess); /* too many experts */

    /* combine: 3 tokens of 4 rows each */
    int k = 4, width = 100;
    float *y = rnd_floats((size_t)n_tok * k * width, 1.0f), *wt = rnd_floats((size_t)n_tok * k, 1.0f);
    float *out = nan_floats((size_t)n_tok * width), *want = malloc((size_t)n_tok * width * sizeof *want);
    for (int t = 0; t < n_tok; t++)
        for (int c = 0; c < width; c++) {
            double s = 0;
            for (int j = 0; j < k; j++) s += (double)wt[t * k + j] * y[((size_t)t * k + j) * width + c];
            want[t * width + c] = (float)s;
        }
    long l0 = hc_emu_launches();
    expect_ran("moe_combine", l0, hc_cu_moe_combine(NULL, y, wt, n_tok, k, width, out));
    CU_ASSERT_EQUAL(count_far(out, want, (size_t)n_tok * width, 1e-6), 0);
    free(y), free(wt), free(out), free(want);

    /* the rows of a long pass sorted by expert: 1000 rows of 128 experts (x_div 8), two ids out of
       range (last, in row order); stable, as a counting sort on the host; then put back */
    {
        enum { NR = 1000, NE = 128, XD = 8 };
        static int32_t sids_in[NR], order[NR], sorted_ids[NR], src[NR], want_order[NR];
        int p = 0;
        for (int r = 0; r < NR; r++) sids_in[r] = (int32_t)((r * 37 + r / 9) % NE);
        sids_in[5] = NE, sids_in[700] = -1;
        for (int e = 0; e < NE; e++)
            for (int r = 0; r < NR; r++)
                if (sids_in[r] == e) want_order[p++] = r;
        want_order[p++] = 5, want_order[p++] = 700;
        l0 = hc_emu_launches();
        expect_ran("moe_sort", l0, hc_cu_moe_sort(NULL, sids_in, NR, NE, XD, order, sorted_ids, src));
        int bad = 0;
        for (int i = 0; i < NR; i++)
            bad += order[i] != want_order[i] || sorted_ids[i] != sids_in[want_order[i]] || src[i] != want_order[i] / XD;
        if (bad) fprintf(stderr, "  moe_sort: %d positions wrong\n", bad);
        CU_ASSERT_EQUAL(bad, 0);
        enum { W = 3 };
        float *rows = rnd_floats((size_t)NR * W, 1.0f), *back = nan_floats((size_t)NR * W);
        l0 = hc_emu_launches();
        expect_ran("scatter_rows", l0, hc_cu_scatter_rows(NULL, rows, order, NR, W, back));
        bad = 0;
        for (int i = 0; i < NR; i++)
            for (int c = 0; c < W; c++) bad += back[(size_t)order[i] * W + c] != rows[(size_t)i * W + c];
        CU_ASSERT_EQUAL(bad, 0);
        free(rows), free(back);
        CU_ASSERT_NOT_EQUAL(hc_cu_moe_sort(NULL, sids_in, NR, 2000, 1, order, sorted_ids, src), cudaSuccess);
    }

    /* the experts' GEMVs by id: each routed row as the plain GEMV computes it on its expert's slice */
    const hc_dtype id_types[] = { HC_F32, HC_F16, HC_Q8_0, HC_Q4_K, HC_Q6_K };
    for (int ti = 0; ti < 5; ti++) {
        hc_dtype t = id_types[ti];
        int E = 3, n_rows = 5, x_div = 2;
        int64_t in = 256, out_rows = 42; /* the last warp by runs holds 2 rows of 4 */
        const int32_t ids[] = { 1, 2, 0, 2, 2 };
        size_t bytes = 0, rb = hc_dtype_row_bytes(t, in);
        uint8_t *wb = hc_test_weights(t, (int64_t)E * out_rows, in, &bytes, &rng);
        size_t slice = bytes / (size_t)E;
        float *x = rnd_floats((size_t)3 * in, 1.0f), *got = nan_floats((size_t)n_rows * out_rows);
        float *exp_y = nan_floats((size_t)n_rows * out_rows);
        l0 = hc_emu_launches();
        const int R = HC_CU_GEMV_RUN_ROWS;
        expect_ran("gemv_id", l0, hc_cu_gemv_id(NULL, (int)t, wb, slice, ids, rb, in, out_rows, x, x_div, got, n_rows, R, NULL));
        for (int r = 0; r < n_rows; r++)
            CU_ASSERT_EQUAL(hc_cu_gemv(NULL, (int)t, wb + (size_t)ids[r] * slice, rb, in, out_rows, x + (size_t)(r / x_div) * in,
                                       exp_y + (size_t)r * out_rows, R, NULL), cudaSuccess);
        int bad = memcmp(got, exp_y, (size_t)n_rows * out_rows * sizeof *got) != 0;
        if (bad) fprintf(stderr, "  gemv_id %s: rows differ from the plain GEMV's\n", hc_dtype_name(t));
        CU_ASSERT_EQUAL(bad, 0);
        if (hc_dtype_block_size(t) > 1) { /* x quantized to int8: x's 3 rows by id, each row alone */
            void *xq = NULL, *xq1 = NULL;
            CU_ASSERT_EQUAL_FATAL(cudaMalloc(&xq, hc_cu_q8x_bytes(3, in)), cudaSuccess);
            CU_ASSERT_EQUAL_FATAL(cudaMalloc(&xq1, hc_cu_q8x_bytes(1, in)), cudaSuccess);
            l0 = hc_emu_launches();
            expect_ran("gemv_id (x in int8)", l0,
                       hc_cu_gemv_id(NULL, (int)t, wb, slice, ids, rb, in, out_rows, x, x_div, got, n_rows, R, xq));
            for (int r = 0; r < n_rows; r++)
                CU_ASSERT_EQUAL(hc_cu_gemv(NULL, (int)t, wb + (size_t)ids[r] * slice, rb, in, out_rows,
                                           x + (size_t)(r / x_div) * in, exp_y + (size_t)r * out_rows, R, xq1), cudaSuccess);
            bad = memcmp(got, exp_y, (size_t)n_rows * out_rows * sizeof *got) != 0;
            if (bad) fprintf(stderr, "  gemv_id %s, x in int8: rows differ from the plain GEMV's\n", hc_dtype_name(t));
            CU_ASSERT_EQUAL(bad, 0);
            cudaFree(xq), cudaFree(xq1);
        }
        free(wb), free(x), free(got), free(exp_y);
    }
    expect_no_new_faults();
}

int main(void)
{
    static const hc_test_case cases[] = {
        { "the emulator: barriers hold, misuses are faults", test_emulator },
        { "the emulator's orders of blocks and threads (HC_EMU_ORDER), shared memory each block's own", test_emulator_orders },
        { "the emulator's streams, lazy and eager (HC_EMU_STREAMS)", test_emulator_streams },
        { "element-wise, rmsnorm and rope kernels against the cpu device", test_rows },
        { "attention kernels (key splits, merge) against the cpu device", test_attention },
        { "GEMV and dequant_rows kernels of every type against the reference", test_weights },
        { "the f16 GEMM's activation kernels", test_f16_activations },
        { "the rtn/gptq kernels against the reference dequantizer", test_qrtn },
        { "experts routed on the GPU: top-k, combine, rows sorted by expert, GEMVs by id", test_moe },
        { NULL, NULL },
    };
    int rc = hc_test_run("cuda_emu", cases);
    hc_device *d = cpu_device();
    d->ops->destroy(d);
    return rc;
}
