/* test_cuda_kernels_cpu.c: the CUDA kernels' math and index arithmetic (the kernels/cuda headers) run on
 * the CPU: each kernel's grid is emulated block by block, warp by warp, lane by lane, and compared with the reference ops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda/attention.cuh"
#include "../kernels/cuda/dequant.cuh"
#include "../kernels/cuda/elementwise.cuh"
#include "../kernels/cuda/gemm_f16.cuh"
#include "../kernels/cuda/rmsnorm.cuh"
#include "../kernels/cuda/rope.cuh"
#include "geglu.h"
#include "matmul_ggml.h"
#include "ops_ref.h"
#include "test_util.h"

/* ---------------- helpers ---------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* uniform in [-1, 1) */
static float rnd(void) { return (float)((double)rnd_u32() / 2147483648.0 - 1.0); }

static float *rnd_floats(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rnd() * scale;
    return p;
}

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = hc_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* rows x in weights of type t with random content and finite scales. */
static uint8_t *make_weights(hc_dtype t, int64_t rows, int64_t in)
{
    size_t row_bytes = hc_dtype_row_bytes(t, in);
    CU_ASSERT_FATAL(row_bytes > 0);
    uint8_t *w = malloc(row_bytes * (size_t)rows);
    if (t == HC_F32) {
        for (int64_t i = 0; i < rows * in; i++) {
            float v = rnd();
            memcpy(w + 4 * i, &v, 4);
        }
        return w;
    }
    if (t == HC_F16 || t == HC_BF16) {
        for (int64_t i = 0; i < rows * in; i++) {
            uint16_t h = t == HC_F16 ? hc_f32_to_f16(rnd()) : hc_f32_to_bf16(rnd());
            w[2 * i] = (uint8_t)h;
            w[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return w;
    }
    size_t bb = hc_dtype_block_bytes(t), nb = row_bytes * (size_t)rows / bb;
    for (size_t b = 0; b < nb; b++) {
        uint8_t *blk = w + b * bb;
        for (size_t i = 0; i < bb; i++) blk[i] = (uint8_t)rnd_u32();
        switch (t) { /* finite f16 scales where each layout keeps them */
        case HC_Q2_K: put_f16(blk + 80, rnd() * 0.01f), put_f16(blk + 82, rnd() * 0.01f); break;
        case HC_Q3_K: put_f16(blk + 108, rnd() * 0.01f); break;
        case HC_Q4_K: case HC_Q5_K: put_f16(blk, rnd() * 0.01f), put_f16(blk + 2, rnd() * 0.01f); break;
        case HC_Q6_K: put_f16(blk + 208, rnd() * 0.01f); break;
        default:
            put_f16(blk, rnd() * 0.1f);                                        /* d */
            if (t == HC_Q4_1 || t == HC_Q5_1) put_f16(blk + 2, rnd() * 0.5f);  /* m */
        }
    }
    return w;
}

/* A row length near n that type t can hold: K-quants need multiples of 256. */
static int64_t fit_width(hc_dtype t, int64_t n)
{
    int bs = hc_dtype_block_size(t);
    if (bs <= 32) return n;
    return n < bs ? bs : (n + bs - 1) / bs * bs;
}

static const hc_dtype weight_types[] = { HC_F32,  HC_F16,  HC_BF16, HC_Q4_0, HC_Q4_1, HC_Q5_0, HC_Q5_1,
                                          HC_Q8_0, HC_Q2_K, HC_Q3_K, HC_Q4_K, HC_Q5_K, HC_Q6_K };
#define N_WEIGHT_TYPES ((int)(sizeof weight_types / sizeof weight_types[0]))

static int close_to(double got, double want, double tol) { return fabs(got - want) <= tol * (1.0 + fabs(want)); }

/* __shfl_down_sync(full, v, off) summed in, for off = 16, 8, ..., 1: lane 0 ends with the total. */
static void warp_reduce_down(float *v)
{
    for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) {
        float tmp[HC_CU_WARP];
        for (int l = 0; l < HC_CU_WARP; l++) tmp[l] = v[l] + (l + off < HC_CU_WARP ? v[l + off] : v[l]);
        memcpy(v, tmp, sizeof tmp);
    }
}

/* __shfl_xor_sync(full, v, off) summed in: every lane ends with the total. */
static void warp_allreduce_xor(float *v)
{
    for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) {
        float tmp[HC_CU_WARP];
        for (int l = 0; l < HC_CU_WARP; l++) tmp[l] = v[l] + v[l ^ off];
        memcpy(v, tmp, sizeof tmp);
    }
}

static void check_launch_limits(hc_cu_launch l)
{
    CU_ASSERT(l.grid.x >= 1 && l.grid.x <= HC_CU_MAX_GRID_X);
    CU_ASSERT(l.grid.y >= 1 && l.grid.y <= HC_CU_MAX_GRID_YZ);
    CU_ASSERT(l.grid.z >= 1 && l.grid.z <= HC_CU_MAX_GRID_YZ);
    CU_ASSERT(l.block.x * l.block.y * l.block.z <= HC_CU_MAX_BLOCK_THREADS);
    CU_ASSERT(l.shared_bytes <= HC_CU_MAX_STATIC_SHARED);
}

/* ---------------- conversions and one element ---------------- */

/* f32 -> f16 (the f16 KV cache's store_rows kernel) equals the library's, over a sweep of every
 * exponent with random mantissas, the halfway cases, subnormals, overflow, inf and NaN. */
static void test_to_f16(void)
{
    int bad = 0;
    for (uint32_t e = 0; e < 256; e++)
        for (int i = 0; i < 2000; i++) {
            uint32_t man = i < 4 ? (uint32_t[]){ 0, 0x1000, 0x3000, 0x7fffff }[i] : rnd_u32() & 0x7fffffu;
            uint32_t u = (e << 23) | man | (i & 1 ? 0x80000000u : 0);
            float f;
            memcpy(&f, &u, 4);
            uint16_t want = hc_f32_to_f16(f), got = hc_cu_f32_to_f16(f);
            if (isnan(f) ? (got & 0x7c00) != 0x7c00 || !(got & 0x3ff) : got != want) bad++;
        }
    if (bad) fprintf(stderr, "  %d conversions differ\n", bad);
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_half_conversions(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float want = hc_f16_to_f32((uint16_t)h), got = hc_cu_f16_to_f32(h);
        if (isnan(want) ? !isnan(got) : memcmp(&want, &got, 4) != 0) bad++;
        want = hc_bf16_to_f32((uint16_t)h);
        got = hc_cu_bf16_to_f32(h);
        if (isnan(want) ? !isnan(got) : memcmp(&want, &got, 4) != 0) bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(hc_cu_f16_to_f32(0x3c00), 1.0f);
    CU_ASSERT_EQUAL(hc_cu_f16_to_f32(0x0001), 5.9604644775390625e-8f);
    CU_ASSERT(signbit(hc_cu_f16_to_f32(0x8000)));
    CU_ASSERT(isinf(hc_cu_f16_to_f32(0xfc00)) && hc_cu_f16_to_f32(0xfc00) < 0);
}

/* The byte permute's twin as CUDA documents __byte_perm: result byte n = input byte (s >> 4 n) & 7 of
   x's bytes 0-3 and y's 4-7 (here each byte holds its own index). */
static void test_byte_perm(void)
{
    const uint32_t x = 0x03020100u, y = 0x07060504u;
    CU_ASSERT_EQUAL(hc_cu_byte_perm(x, y, 0x3210u), x);
    CU_ASSERT_EQUAL(hc_cu_byte_perm(x, y, 0x7654u), y);
    CU_ASSERT_EQUAL(hc_cu_byte_perm(x, y, 0x0123u), 0x00010203u);
    CU_ASSERT_EQUAL(hc_cu_byte_perm(x, y, 0x5140u), 0x05010400u);
    CU_ASSERT_EQUAL(hc_cu_byte_perm(0xaabbccddu, 0x3f000000u, 0x7254u), 0x3fbb0000u); /* rtn's code to a float */
}

static void test_type_table(void)
{
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        hc_dtype t = weight_types[i];
        CU_ASSERT(hc_cu_dtype_supported(t));
        CU_ASSERT_EQUAL((size_t)hc_cu_block_bytes(t), hc_dtype_block_bytes(t));
        CU_ASSERT_EQUAL(hc_cu_block_elems(t), hc_dtype_block_size(t));
    }
    CU_ASSERT_FALSE(hc_cu_dtype_supported(HC_PACKED));
    CU_ASSERT_FALSE(hc_cu_dtype_supported(HC_I8));
    CU_ASSERT_EQUAL(hc_cu_block_bytes(HC_PACKED), 0);
    CU_ASSERT(isnan(hc_cu_deq_elem(HC_I32, (const uint8_t *)"0123456789abcdef", 0)));
}

/* Every element of every supported type equals hc_dequantize_row's, bit for bit. */
static void test_dequant_elements(void)
{
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        hc_dtype t = weight_types[i];
        int64_t rows = 5, in = fit_width(t, 320);
        uint8_t *w = make_weights(t, rows, in);
        size_t rb = hc_dtype_row_bytes(t, in);
        float *ref = malloc((size_t)in * sizeof *ref);
        int bad = 0;
        for (int64_t r = 0; r < rows; r++) {
            hc_dequantize_row(t, w + rb * (size_t)r, ref, in);
            for (int64_t k = 0; k < in; k++) {
                float got = hc_cu_deq_elem(t, w + rb * (size_t)r, k);
                if (memcmp(&got, &ref[k], 4) != 0) bad++;
            }
        }
        if (bad) fprintf(stderr, "  %s: %d elements differ\n", hc_dtype_name(t), bad);
        CU_ASSERT_EQUAL(bad, 0);
        free(ref);
        free(w);
    }
}

/* ---------------- dequant_rows (get_rows, and the batched matmul's first step) ---------------- */

/* The kernel: block b writes output row b from weight row (ids ? ids[b] : row0 + b). */
static void emulate_dequant_rows(hc_dtype t, const uint8_t *w, size_t row_bytes, int64_t width, const int32_t *ids,
                                 int64_t row0, int n_rows, float *out)
{
    hc_cu_launch l = hc_cu_dequant_rows_geometry(n_rows);
    check_launch_limits(l);
    CU_ASSERT_EQUAL(l.grid.x, (unsigned)n_rows);
    for (unsigned b = 0; b < l.grid.x; b++)
        for (unsigned tid = 0; tid < l.block.x; tid++) {
            const uint8_t *row = w + (size_t)hc_cu_dequant_src_row(ids, row0, b) * row_bytes;
            float *dst = out + (size_t)b * (size_t)width;
            for (int64_t k = tid; k < width; k += l.block.x) dst[k] = hc_cu_deq_elem(t, row, k);
        }
}

static void test_dequant_rows_grid(void)
{
    const int64_t widths[] = { 32, 288, 544 }; /* below, just above and twice the block's 256 threads */
    const int32_t ids[] = { 6, 0, 3, 3, 9, 1 };
    int n = (int)(sizeof ids / sizeof ids[0]);
    for (int i = 0; i < N_WEIGHT_TYPES; i++)
        for (int wi = 0; wi < 3; wi++) {
            hc_dtype t = weight_types[i];
            int64_t width = fit_width(t, widths[wi]) + (hc_dtype_block_size(t) > 32 ? 256 * wi : 0), vocab = 10;
            uint8_t *w = make_weights(t, vocab, width);
            size_t rb = hc_dtype_row_bytes(t, width);
            float *out = malloc((size_t)n * width * sizeof *out), *ref = malloc((size_t)width * sizeof *ref);
            for (int64_t k = 0; k < n * width; k++) out[k] = NAN;
            emulate_dequant_rows(t, w, rb, width, ids, 0, n, out);
            int bad = 0;
            for (int r = 0; r < n; r++) {
                hc_dequantize_row(t, w + rb * (size_t)ids[r], ref, width);
                for (int64_t k = 0; k < width; k++)
                    if (memcmp(&out[r * width + k], &ref[k], 4) != 0) bad++;
            }
            /* by range: rows 4 .. 8 */
            for (int64_t k = 0; k < n * width; k++) out[k] = NAN;
            emulate_dequant_rows(t, w, rb, width, NULL, 4, 5, out);
            for (int r = 0; r < 5; r++) {
                hc_dequantize_row(t, w + rb * (size_t)(4 + r), ref, width);
                for (int64_t k = 0; k < width; k++)
                    if (memcmp(&out[r * width + k], &ref[k], 4) != 0) bad++;
            }
            for (int64_t k = 5 * width; k < n * width; k++)
                if (!isnan(out[k])) bad++; /* nothing past the last row */
            if (bad) fprintf(stderr, "  %s width %lld: %d wrong\n", hc_dtype_name(t), (long long)width, bad);
            CU_ASSERT_EQUAL(bad, 0);
            free(out);
            free(ref);
            free(w);
        }
}

/* dequant_runs_kernel: block b writes output row b, thread tid runs tid, tid + threads, ... of it; out
 * as f32 or f16 bits. */
static void emulate_dequant_runs(hc_dtype t, const uint8_t *w, size_t row_bytes, int64_t width, const int32_t *ids,
                                 int n_rows, void *out, int f16)
{
    CU_ASSERT_FATAL(hc_cu_dequant_runs_ok(t, width, (uintptr_t)w, row_bytes, (uintptr_t)out));
    hc_cu_launch l = hc_cu_dequant_runs_geometry(n_rows, width);
    check_launch_limits(l);
    CU_ASSERT_EQUAL(l.block.x % HC_CU_WARP, 0);
    for (unsigned b = 0; b < l.grid.x; b++)
        for (unsigned tid = 0; tid < l.block.x; tid++) {
            const uint8_t *row = w + (size_t)hc_cu_dequant_src_row(ids, 0, b) * row_bytes;
            uint8_t *dst = (uint8_t *)out + (size_t)b * (size_t)width * (f16 ? 2 : 4);
            for (int64_t r = tid; r < width / HC_CU_RUN; r += l.block.x) hc_cu_dequant_run(t, row, r, dst, f16);
        }
}

/* Every block type by runs, f32 and f16, bit for bit the reference's values; widths of one run to
 * several per thread (and a partial last round); and when the kernel is chosen. */
static void test_dequant_runs(void)
{
    const int64_t widths[] = { 32, 256, 1024 + 96, 9216 }; /* 9216: 288 runs, a second round of 32 */
    const int32_t ids[] = { 6, 0, 3, 3, 9 };
    const int n = 5;
    for (int i = 0; i < N_WEIGHT_TYPES; i++)
        for (int wi = 0; wi < 4; wi++) {
            hc_dtype t = weight_types[i];
            int64_t width = widths[wi];
            if (hc_dtype_block_size(t) == 1 || width % hc_dtype_block_size(t)) continue;
            uint8_t *w = make_weights(t, 10, width);
            size_t rb = hc_dtype_row_bytes(t, width);
            float *out = malloc((size_t)n * width * sizeof *out), *ref = malloc((size_t)width * sizeof *ref);
            uint16_t *out16 = malloc((size_t)n * width * 2);
            for (int64_t k = 0; k < n * width; k++) out[k] = NAN, out16[k] = 0x7e00u;
            emulate_dequant_runs(t, w, rb, width, ids, n, out, 0);
            emulate_dequant_runs(t, w, rb, width, ids, n, out16, 1);
            int bad = 0;
            for (int r = 0; r < n; r++) {
                hc_dequantize_row(t, w + rb * (size_t)ids[r], ref, width);
                for (int64_t k = 0; k < width; k++)
                    bad += memcmp(&out[r * width + k], &ref[k], 4) != 0 || out16[r * width + k] != hc_f32_to_f16(ref[k]);
            }
            if (bad) fprintf(stderr, "  dequant by runs %s width %lld: %d wrong\n", hc_dtype_name(t), (long long)width, bad);
            CU_ASSERT_EQUAL(bad, 0);
            free(out), free(out16), free(ref), free(w);
        }
    CU_ASSERT(hc_cu_dequant_runs_ok(HC_Q4_K, 256, 256, 144, 512));
    CU_ASSERT(!hc_cu_dequant_runs_ok(HC_Q4_K, 256, 256, 144, 516)); /* output not 16-byte aligned */
    CU_ASSERT(!hc_cu_dequant_runs_ok(HC_Q4_K, 256, 258, 144, 512)); /* weights not as the words need */
    CU_ASSERT(!hc_cu_dequant_runs_ok(HC_Q4_0, 48, 256, 36, 512));   /* not runs of 32 */
    CU_ASSERT(!hc_cu_dequant_runs_ok(HC_F16, 256, 256, 512, 512));  /* plain types: by elements */
    CU_ASSERT(hc_cu_dequant_runs_ok(HC_Q8_0, 64, 256, 68, 512));
    CU_ASSERT_EQUAL(hc_cu_dequant_runs_geometry(7, 32).block.x, 32u);     /* one run: a warp */
    CU_ASSERT_EQUAL(hc_cu_dequant_runs_geometry(7, 4096).block.x, 128u);  /* 128 runs */
    CU_ASSERT_EQUAL(hc_cu_dequant_runs_geometry(7, 14336).block.x, 256u); /* 448: at most 256 threads */
    CU_ASSERT_EQUAL(hc_cu_dequant_runs_geometry(7, 14336).grid.x, 7u);
}

/* x quantized to int8 for the block types' GEMV (hc_cu_q8x_block): the bytes and scales of the cpu
 * device's quantizer (hc_act_quantize_q8_ref), on random blocks, a zero block, ties to even (x / d
 * exactly k + 1/2) and one large value among small ones. */
static void test_q8x(void)
{
    enum { NB = 40 };
    float *x = aligned_alloc(16, NB * 32 * sizeof(float));
    for (int i = 0; i < NB * 32; i++) x[i] = rnd() * (i % 7 == 0 ? 30.0f : 1.0f);
    for (int i = 0; i < 32; i++) x[32 + i] = 0.0f;                          /* block 1: zeros */
    for (int i = 0; i < 32; i++) x[64 + i] = i == 0 ? 127.0f : (float)i + 0.5f; /* block 2: d = 1, ties */
    x[96 + 5] = 1e30f;                                                      /* block 3: one huge value */
    hc_q8_block ref[NB];
    hc_act_quantize_q8_ref(x, ref, NB * 32);
    uint8_t *q = aligned_alloc(16, NB * 32);
    float ds[2 * NB];
    int bad = 0;
    for (int b = 0; b < NB; b++) {
        hc_cu_q8x_block(x + 32 * b, q + 32 * b, ds + 2 * b);
        bad += memcmp(q + 32 * b, ref[b].q, 32) != 0 || memcmp(&ds[2 * b], &ref[b].d, 4) != 0 ||
               memcmp(&ds[2 * b + 1], &ref[b].s, 4) != 0;
    }
    if (bad) fprintf(stderr, "  q8x: %d of %d blocks differ from the cpu device's\n", bad, NB);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(hc_cu_q8x_bytes(3, 64), (size_t)(3 * 64 + 3 * 2 * 8));
    CU_ASSERT_EQUAL(hc_cu_dp4a(0x01ff7f80u, 0x02020202u, 5), 5 + 2 * (1 - 1 + 127 - 128));
    free(x), free(q);
}

/* ---------------- matmul ---------------- */

/* y[t][o] = sum_k W[o][k] x[t][k] from hc_dequantize_row, in double. */
static void reference_matmul(hc_dtype t, const uint8_t *w, int64_t in, int64_t out, const float *x, int n_tok, double *y,
                             double *mag)
{
    size_t rb = hc_dtype_row_bytes(t, in);
    float *row = malloc((size_t)in * sizeof *row);
    for (int64_t o = 0; o < out; o++) {
        hc_dequantize_row(t, w + rb * (size_t)o, row, in);
        for (int tok = 0; tok < n_tok; tok++) {
            double s = 0, m = 0;
            for (int64_t k = 0; k < in; k++) {
                s += (double)row[k] * x[tok * in + k];
                m += fabs((double)row[k] * x[tok * in + k]);
            }
            y[tok * out + o] = s;
            mag[tok * out + o] = m;
        }
    }
    free(row);
}

static void emulate_gemv(hc_dtype t, const uint8_t *w, size_t row_bytes, int64_t in, int64_t out, const float *x, float *y,
                         int *writes)
{
    hc_cu_launch l = hc_cu_gemv_geometry(out, 1);
    check_launch_limits(l);
    CU_ASSERT_EQUAL(l.block.x, HC_CU_WARP);
    for (unsigned b = 0; b < l.grid.x; b++)
        for (unsigned ty = 0; ty < l.block.y; ty++) {
            int64_t o = hc_cu_gemv_row(b, l.block.y, ty, 1);
            if (o >= out) continue; /* the whole warp returns */
            float v[HC_CU_WARP];
            for (int lane = 0; lane < HC_CU_WARP; lane++)
                v[lane] = hc_cu_gemv_lane_partial(t, w + (size_t)o * row_bytes, x, in, lane);
            warp_reduce_down(v);
            y[o] = v[0]; /* lane 0 writes */
            writes[o]++;
        }
}

static void test_gemv_grid(void)
{
    const int64_t ins[] = { 32, 96, 320 };
    /* one row; a warp a block; two rows a block, the last block half empty; four, the last half empty */
    const int64_t outs[] = { 1, 37, 531, 1102 };
    for (int i = 0; i < N_WEIGHT_TYPES; i++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 4; b++) {
                hc_dtype t = weight_types[i];
                int64_t in = fit_width(t, ins[a]) + (hc_dtype_block_size(t) > 32 ? 256 * a : 0), out = outs[b];
                if (hc_dtype_block_size(t) == 1) in += 5; /* plain types: rows need not fill the warp */
                uint8_t *w = make_weights(t, out, in);
                float *x = rnd_floats((size_t)in, 1.0f), *y = calloc((size_t)out, sizeof *y);
                int *writes = calloc((size_t)out, sizeof *writes);
                double *ref = malloc((size_t)out * sizeof *ref), *mag = malloc((size_t)out * sizeof *mag);
                emulate_gemv(t, w, hc_dtype_row_bytes(t, in), in, out, x, y, writes);
                reference_matmul(t, w, in, out, x, 1, ref, mag);
                int bad = 0;
                for (int64_t o = 0; o < out; o++)
                    if (writes[o] != 1 || fabs(y[o] - ref[o]) > 1e-5 * (mag[o] + 1e-3)) bad++;
                if (bad) fprintf(stderr, "  gemv %s %lldx%lld: %d wrong\n", hc_dtype_name(t), (long long)out, (long long)in, bad);
                CU_ASSERT_EQUAL(bad, 0);
                free(w);
                free(x);
                free(y);
                free(writes);
                free(ref);
                free(mag);
            }
}

/* gemv_kernel by runs: plain types a row a warp, lanes by 16-byte chunks; block types want_rows
 * rows a warp (the last warp's rows past `out` read but not written), lanes by runs of 32. */
static void emulate_gemv_runs(hc_dtype t, const uint8_t *w, size_t row_bytes, int64_t in, int64_t out, const float *x,
                              float *y, int *writes, int want_rows)
{
    CU_ASSERT_FATAL(hc_cu_gemv_runs_ok(t, in, (uintptr_t)w, row_bytes, (uintptr_t)x));
    const int R = hc_cu_gemv_warp_rows(t, 1, want_rows);
    CU_ASSERT_EQUAL(R, hc_dtype_block_size(t) > 1 ? want_rows : 1);
    hc_cu_launch l = hc_cu_gemv_geometry(out, R);
    check_launch_limits(l);
    for (unsigned b = 0; b < l.grid.x; b++)
        for (unsigned ty = 0; ty < l.block.y; ty++) {
            int64_t o = hc_cu_gemv_row(b, l.block.y, ty, R);
            if (o >= out) continue;
            float v[HC_CU_GEMV_RUN_ROWS][HC_CU_WARP];
            for (int lane = 0; lane < HC_CU_WARP; lane++) {
                float s[HC_CU_GEMV_RUN_ROWS];
                if (R > 1) hc_cu_gemv_lane_runs_rows(t, w, row_bytes, o, out, x, in, lane, s);
                else s[0] = hc_cu_gemv_lane_runs(t, w + (size_t)o * row_bytes, x, in, lane);
                for (int i = 0; i < R; i++) v[i][lane] = s[i];
            }
            for (int i = 0; i < R && o + i < out; i++) {
                warp_reduce_down(v[i]);
                y[o + i] = v[i][0];
                writes[o + i]++;
            }
        }
}

/* Every type, widths from one run to several per lane (and a partial last round), against the
 * reference; and when the kernel is chosen: runs of 32, x 16-byte aligned, the weights as their
 * loads need. */
static void test_gemv_runs(void)
{
    const int64_t ins[] = { 32, 256, 1024 + 96, 2048 };
    const int64_t outs[] = { 2, 531, 9, 1100 }; /* the last warp of 4 rows holds 2, 3, 1, 4 */
    for (int i = 0; i < N_WEIGHT_TYPES; i++)
        for (int a = 0; a < 8; a++) {
            hc_dtype t = weight_types[i];
            int64_t in = ins[a % 4], out = outs[a % 4];
            int want_rows = a < 4 ? HC_CU_GEMV_RUN_ROWS : 1;
            if (in % hc_dtype_block_size(t)) continue; /* K-quants: whole super-blocks */
            uint8_t *w = make_weights(t, out, in);
            size_t rb = hc_dtype_row_bytes(t, in);
            float *x = rnd_floats((size_t)in, 1.0f), *y = calloc((size_t)out, sizeof *y);
            int *writes = calloc((size_t)out, sizeof *writes);
            double *ref = malloc((size_t)out * sizeof *ref), *mag = malloc((size_t)out * sizeof *mag);
            CU_ASSERT_FATAL((uintptr_t)w % 16 == 0 && (uintptr_t)x % 16 == 0); /* as cudaMalloc's */
            emulate_gemv_runs(t, w, rb, in, out, x, y, writes, want_rows);
            reference_matmul(t, w, in, out, x, 1, ref, mag);
            int bad = 0;
            for (int64_t o = 0; o < out; o++)
                if (writes[o] != 1 || fabs(y[o] - ref[o]) > 1e-5 * (mag[o] + 1e-3)) bad++;
            if (bad)
                fprintf(stderr, "  gemv by runs %s x%lld, %d rows a warp: %d wrong\n", hc_dtype_name(t), (long long)in, want_rows,
                        bad);
            CU_ASSERT_EQUAL(bad, 0);
            free(w), free(x), free(y), free(writes), free(ref), free(mag);
        }
    /* the element kernel stays for the rest */
    CU_ASSERT(hc_cu_gemv_runs_ok(HC_Q4_0, 64, 256, 36, 512));
    CU_ASSERT(!hc_cu_gemv_runs_ok(HC_Q4_0, 64, 256, 36, 516));   /* x not 16-byte aligned */
    CU_ASSERT(!hc_cu_gemv_runs_ok(HC_F16, 48, 256, 96, 512));    /* not runs of 32 */
    CU_ASSERT(!hc_cu_gemv_runs_ok(HC_F16, 64, 258, 128, 512));   /* weights not aligned */
    CU_ASSERT(!hc_cu_gemv_runs_ok(HC_I8, 64, 256, 64, 512));
    CU_ASSERT(hc_cu_gemv_runs_ok(HC_Q4_0, 64, 258, 36, 512));    /* block types by words of 2 bytes ... */
    CU_ASSERT(!hc_cu_gemv_runs_ok(HC_Q4_0, 64, 257, 36, 512));
    CU_ASSERT(!hc_cu_gemv_runs_ok(HC_Q4_1, 64, 258, 40, 512));   /* ... or of 4 */
    CU_ASSERT(!hc_cu_gemv_runs_ok(HC_Q4_K, 256, 258, 144, 512));
    CU_ASSERT(hc_cu_gemv_runs_ok(HC_Q4_K, 256, 260, 144, 512));
    CU_ASSERT(hc_cu_gemv_runs_ok(HC_Q6_K, 256, 258, 210, 512));  /* blocks of an even size: words of 2 */
    CU_ASSERT(!hc_cu_gemv_runs_ok(HC_Q3_K, 256, 257, 110, 512));
}

/* cublasSgemm (f16 0: f32 A and B) or cublasGemmEx with f16 A and B (f16 1), f32 C, beta 0, by
 * definition (column-major; sums in double, cuBLAS sums in f32), times alpha: for the f16 GEMM
 * hc_cu_scale_by's product with the scale (exact: a power of two). */
static void emulate_gemm(hc_cu_gemm_args g, float alpha, const void *A, const void *B, int f16, float *C)
{
    for (int j = 0; j < g.n; j++)
        for (int i = 0; i < g.m; i++) {
            double s = 0;
            for (int p = 0; p < g.k; p++) {
                size_t ai = g.trans_a ? p + (size_t)i * g.lda : i + (size_t)p * g.lda;
                size_t bi = g.trans_b ? j + (size_t)p * g.ldb : p + (size_t)j * g.ldb;
                double a = f16 ? hc_cu_f16_to_f32(((const uint16_t *)A)[ai]) : ((const float *)A)[ai];
                double b = f16 ? hc_cu_f16_to_f32(((const uint16_t *)B)[bi]) : ((const float *)B)[bi];
                s += a * b;
            }
            C[i + (size_t)j * g.ldc] = (float)(alpha * s);
        }
}

/* The host's batched path: chunks of rows dequantized to scratch, one SGEMM per chunk. */
static void test_batched_matmul_chunks(void)
{
    const size_t budgets[] = { 3, 3 * 96 + 5, 1u << 20 }; /* < one row, 3 rows, everything */
    for (int i = 0; i < N_WEIGHT_TYPES; i++)
        for (int bi = 0; bi < 3; bi++) {
            hc_dtype t = weight_types[i];
            int64_t in = fit_width(t, 96), out = 37;
            int n_tok = 3;
            uint8_t *w = make_weights(t, out, in);
            size_t rb = hc_dtype_row_bytes(t, in);
            float *x = rnd_floats((size_t)n_tok * in, 1.0f), *y = malloc((size_t)n_tok * out * sizeof *y);
            for (int64_t k = 0; k < n_tok * out; k++) y[k] = NAN;
            int64_t rows = hc_cu_matmul_chunk_rows(in, out, budgets[bi]);
            CU_ASSERT(rows >= 1 && rows <= out);
            CU_ASSERT((size_t)rows * in <= budgets[bi] || rows == 1);
            float *scratch = malloc((size_t)rows * in * sizeof *scratch);
            int chunks = 0;
            for (int64_t r0 = 0; r0 < out; r0 += rows) {
                int64_t nr = out - r0 < rows ? out - r0 : rows;
                emulate_dequant_rows(t, w, rb, in, NULL, r0, (int)nr, scratch);
                emulate_gemm(hc_cu_matmul_gemm_args(in, out, nr, n_tok), 1.0f, scratch, x, 0, y + r0);
                chunks++;
            }
            CU_ASSERT_EQUAL(chunks, (int)((out + rows - 1) / rows));
            double *ref = malloc((size_t)n_tok * out * sizeof *ref), *mag = malloc((size_t)n_tok * out * sizeof *mag);
            reference_matmul(t, w, in, out, x, n_tok, ref, mag);
            int bad = 0;
            for (int64_t k = 0; k < n_tok * out; k++)
                if (!(fabs(y[k] - ref[k]) <= 1e-5 * (mag[k] + 1e-3))) bad++;
            if (bad) fprintf(stderr, "  batched %s (chunk %lld rows): %d wrong\n", hc_dtype_name(t), (long long)rows, bad);
            CU_ASSERT_EQUAL(bad, 0);
            free(w);
            free(x);
            free(y);
            free(scratch);
            free(ref);
            free(mag);
        }
}

/* ---------------- the tensor-core path: f16 rows, scaled f16 activations, f16 GEMM ---------------- */

/* hc_cu_to_f16_scaled's two kernels: max |x| over every thread's stride, then each element / s. */
static float emulate_to_f16_scaled(const float *x, size_t n, uint16_t *y)
{
    hc_cu_launch l = hc_cu_elementwise_geometry(n, HC_CU_EW_MAX_BLOCKS);
    check_launch_limits(l);
    float amax = 0.0f;
    for (unsigned b = 0; b < l.grid.x; b++)
        for (unsigned tid = 0; tid < l.block.x; tid++)
            for (size_t i = hc_cu_ew_first(b, tid); i < n; i += hc_cu_ew_stride(l.grid.x)) amax = fmaxf(amax, fabsf(x[i]));
    float s = hc_cu_f16_input_scale(amax), inv = 1.0f / s;
    for (unsigned b = 0; b < l.grid.x; b++)
        for (unsigned tid = 0; tid < l.block.x; tid++)
            for (size_t i = hc_cu_ew_first(b, tid); i < n; i += hc_cu_ew_stride(l.grid.x)) y[i] = hc_cu_f32_to_f16(x[i] * inv);
    return s;
}

static void test_f16_input_scale(void)
{
    CU_ASSERT_EQUAL(hc_cu_f16_input_scale(0.0f), 1.0f);
    CU_ASSERT_EQUAL(hc_cu_f16_input_scale(INFINITY), 1.0f);
    CU_ASSERT_EQUAL(hc_cu_f16_input_scale(NAN), 1.0f);
    CU_ASSERT_EQUAL(hc_cu_f16_input_scale(1e-38f), ldexpf(1.0f, -100));
    CU_ASSERT_EQUAL(hc_cu_f16_input_scale(8192.0f), 1.0f);
    CU_ASSERT_EQUAL(hc_cu_f16_input_scale(16384.0f), 2.0f);
    for (double a = 1e-20; a < 3e38; a *= 1.7) {
        float amax = (float)a, sc = hc_cu_f16_input_scale(amax);
        int e;
        CU_ASSERT(frexpf(sc, &e) == 0.5f); /* a power of two */
        float r = amax / sc;
        CU_ASSERT(r >= HC_CU_F16_INPUT_MAX / 2 && r < HC_CU_F16_INPUT_MAX);
        CU_ASSERT(isfinite(1.0f / sc));
        CU_ASSERT(isfinite(hc_cu_f16_to_f32(hc_cu_f32_to_f16(-amax / sc))));
    }
    /* the types that take the path: the quantized ones and packed formats, not the float ones */
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        hc_dtype t = weight_types[i];
        CU_ASSERT_EQUAL(hc_cu_batched_f16(t), !(t == HC_F32 || t == HC_F16 || t == HC_BF16));
    }
    CU_ASSERT(hc_cu_batched_f16(HC_PACKED));
    CU_ASSERT_EQUAL(hc_cu_f16_token_chunk(4096, 100), 100);
    CU_ASSERT_EQUAL(hc_cu_f16_token_chunk(4096, 100000), (int)(HC_CU_F16_X_MAX / 4096));
    CU_ASSERT_EQUAL(hc_cu_f16_token_chunk((int64_t)HC_CU_F16_X_MAX * 4, 7), 1);
}

/* The cuda device's matmul_f16 on every quantized type: token and row chunks as it cuts them, the
 * activations at three magnitudes (scaled down, kept, scaled up), against the exact product within
 * the bound the GPU test uses: 1.2e-3 of sum |w x| (both operands rounded to f16: 2^-10) + 2e-5. Without
 * the scale back (times 1) the same results are far off: the bound has room for rounding only. */
static void test_f16_batched_matmul(void)
{
    const float mags[] = { 3e4f, 1.0f, 1e-6f };
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        hc_dtype t = weight_types[i];
        if (!hc_cu_batched_f16(t)) continue;
        for (int mi = 0; mi < 3; mi++) {
            int64_t in = fit_width(t, 512), out = 19;
            int n_tok = 5, tc = 2; /* chunks of 2 tokens, 8 rows: both loops run */
            int64_t rows = hc_cu_matmul_chunk_rows(in, out, (size_t)8 * in);
            CU_ASSERT_EQUAL(rows, 8);
            uint8_t *w = make_weights(t, out, in);
            size_t rb = hc_dtype_row_bytes(t, in);
            float *x = rnd_floats((size_t)n_tok * in, mags[mi]), *y = malloc((size_t)n_tok * out * sizeof *y);
            float *y1 = malloc((size_t)n_tok * out * sizeof *y1);
            uint16_t *x16 = malloc((size_t)tc * in * 2), *scratch = malloc((size_t)rows * in * 2);
            for (int t0 = 0; t0 < n_tok; t0 += tc) {
                int nt = n_tok - t0 < tc ? n_tok - t0 : tc;
                float sc = emulate_to_f16_scaled(x + (size_t)t0 * in, (size_t)nt * in, x16);
                for (int64_t r0 = 0; r0 < out; r0 += rows) {
                    int64_t nr = out - r0 < rows ? out - r0 : rows;
                    for (int64_t r = 0; r < nr; r++)
                        for (int64_t k = 0; k < in; k++)
                            scratch[r * in + k] = hc_cu_f32_to_f16(hc_cu_deq_elem(t, w + (size_t)(r0 + r) * rb, k));
                    hc_cu_gemm_args g = hc_cu_matmul_gemm_args(in, out, nr, nt);
                    emulate_gemm(g, sc, scratch, x16, 1, y + (size_t)t0 * out + r0);
                    emulate_gemm(g, 1.0f, scratch, x16, 1, y1 + (size_t)t0 * out + r0);
                }
            }
            double *ref = malloc((size_t)n_tok * out * sizeof *ref), *mag = malloc((size_t)n_tok * out * sizeof *mag);
            reference_matmul(t, w, in, out, x, n_tok, ref, mag);
            int bad = 0, bad1 = 0;
            for (int64_t k = 0; k < n_tok * out; k++) {
                if (!(fabs(y[k] - ref[k]) <= 1.2e-3 * mag[k] + 2e-5 * (mags[mi] > 1 ? 1 : mags[mi]))) bad++;
                if (!(fabs(y1[k] - ref[k]) <= 1.2e-3 * mag[k] + 2e-5 * (mags[mi] > 1 ? 1 : mags[mi]))) bad1++;
            }
            if (bad) fprintf(stderr, "  f16 batched %s at |x| %g: %d wrong\n", hc_dtype_name(t), mags[mi], bad);
            CU_ASSERT_EQUAL(bad, 0);
            CU_ASSERT(bad1 > n_tok * out / 2);
            free(w), free(x), free(y), free(y1), free(x16), free(scratch), free(ref), free(mag);
        }
    }
}

/* A batch on f32 weights goes to cuBLAS directly, one SGEMM (one token: the GEMV kernel). */
static void test_f32_blas_arguments(void)
{
    int64_t in = 45, out = 29;
    int n_tok = 4;
    float *w = rnd_floats((size_t)in * out, 1.0f), *x = rnd_floats((size_t)n_tok * in, 1.0f);
    float *y = malloc((size_t)n_tok * out * sizeof *y);
    double *ref = malloc((size_t)n_tok * out * sizeof *ref), *mag = malloc((size_t)n_tok * out * sizeof *mag);
    reference_matmul(HC_F32, (const uint8_t *)w, in, out, x, n_tok, ref, mag);

    int bad = 0;
    emulate_gemm(hc_cu_matmul_gemm_args(in, out, out, n_tok), 1.0f, w, x, 0, y);
    for (int64_t k = 0; k < n_tok * out; k++)
        if (!close_to(y[k], ref[k], 1e-5)) bad++;
    CU_ASSERT_EQUAL(bad, 0);
    free(w);
    free(x);
    free(y);
    free(ref);
    free(mag);
}

/* ---------------- rmsnorm ---------------- */

static void emulate_rmsnorm(const float *x, const float *w, float *y, int n_tok, int dim, float eps)
{
    hc_cu_launch l = hc_cu_rmsnorm_geometry(n_tok);
    check_launch_limits(l);
    int n = (int)l.block.x;
    CU_ASSERT_EQUAL(n & (n - 1), 0); /* the tree needs a power of two */
    for (unsigned b = 0; b < l.grid.x; b++) {
        float slots[HC_CU_NORM_THREADS];
        const float *xr = x + (size_t)b * dim;
        float *yr = y + (size_t)b * dim;
        for (int tid = 0; tid < n; tid++) slots[tid] = hc_cu_rmsnorm_partial(xr, dim, tid, n);
        for (int stride = n / 2; stride > 0; stride >>= 1) /* one round between two barriers */
            for (int tid = 0; tid < n; tid++) hc_cu_tree_step(slots, tid, stride);
        float inv = hc_cu_rmsnorm_inv(slots[0], dim, eps);
        for (int tid = 0; tid < n; tid++) hc_cu_rmsnorm_apply(xr, w, yr, dim, inv, tid, n);
    }
}

static void test_rmsnorm_grid(void)
{
    const int dims[] = { 1, 7, 256, 300, 1031 };
    for (int di = 0; di < 5; di++) {
        int dim = dims[di], n_tok = 3;
        float eps = 1e-5f;
        float *x = rnd_floats((size_t)n_tok * dim, 3.0f), *w = rnd_floats((size_t)dim, 1.0f);
        float *y = malloc((size_t)n_tok * dim * sizeof *y), *ref = malloc((size_t)n_tok * dim * sizeof *ref);
        for (int t = 0; t < n_tok; t++) hc_ref_rmsnorm(x + t * dim, w, ref + t * dim, dim, eps);
        emulate_rmsnorm(x, w, y, n_tok, dim, eps);
        int bad = 0;
        for (int i = 0; i < n_tok * dim; i++)
            if (!close_to(y[i], ref[i], 2e-6)) bad++;
        emulate_rmsnorm(x, w, x, n_tok, dim, eps); /* in place */
        for (int i = 0; i < n_tok * dim; i++)
            if (x[i] != y[i]) bad++;
        if (bad) fprintf(stderr, "  rmsnorm dim %d: %d wrong\n", dim, bad);
        CU_ASSERT_EQUAL(bad, 0);
        free(x);
        free(w);
        free(y);
        free(ref);
    }
}

/* ---------------- rope ---------------- */

static void emulate_rope(float *x, int n_tok, int n_head, int head_dim, int n_rot, const int32_t *pos, int pos0,
                         float theta, int mode)
{
    hc_cu_launch l = hc_cu_rope_geometry(n_tok, n_head);
    check_launch_limits(l);
    for (unsigned b = 0; b < l.grid.x; b++)
        for (unsigned tid = 0; tid < l.block.x; tid++) {
            int t, h;
            hc_cu_rope_block(b, n_head, &t, &h);
            hc_cu_rope_thread(x, t, h, (int)tid, (int)l.block.x, n_head, head_dim, n_rot, hc_cu_rope_pos(pos, pos0, t),
                              theta, mode);
        }
}

static void test_rope_grid(void)
{
    struct { int head_dim, n_rot; } shapes[] = { { 64, 64 }, { 80, 32 }, { 256, 256 }, { 6, 2 } };
    const int32_t spread[] = { 0, 7, 300, 5000 };
    const hc_rope_mode modes[] = { HC_ROPE_NORM, HC_ROPE_NEOX };
    for (int si = 0; si < 4; si++)
        for (int mi = 0; mi < 2; mi++)
            for (int consecutive = 0; consecutive < 2; consecutive++) {
                int hd = shapes[si].head_dim, n_rot = shapes[si].n_rot, n_head = 3, n_tok = 4;
                float theta = si == 1 ? 1000000.0f : 10000.0f;
                int32_t pos[4];
                for (int t = 0; t < n_tok; t++) pos[t] = consecutive ? 17 + t : spread[t];
                size_t n = (size_t)n_tok * n_head * hd;
                float *x = rnd_floats(n, 2.0f), *ref = malloc(n * sizeof *ref);
                memcpy(ref, x, n * sizeof *x);
                hc_rope_cache cache = { 0 };
                HC_ASSERT_OK(hc_rope_cache_prepare(&cache, theta, n_rot, 5001));
                for (int t = 0; t < n_tok; t++)
                    hc_ref_rope_apply(ref + (size_t)t * n_head * hd, n_head, hd, n_rot, cache.cos + (size_t)pos[t] * (n_rot / 2),
                                      cache.sin + (size_t)pos[t] * (n_rot / 2), modes[mi]);
                hc_rope_cache_free(&cache);
                /* consecutive positions go as pos0 without an array, as the plugin sends them */
                emulate_rope(x, n_tok, n_head, hd, n_rot, consecutive ? NULL : pos, pos[0], theta, (int)modes[mi]);
                int bad = 0;
                for (size_t i = 0; i < n; i++)
                    if (!close_to(x[i], ref[i], 1e-6)) bad++;
                if (bad) fprintf(stderr, "  rope hd %d n_rot %d mode %d: %d wrong\n", hd, n_rot, (int)modes[mi], bad);
                CU_ASSERT_EQUAL(bad, 0);
                free(x);
                free(ref);
            }
}

static void test_rope_pairs(void)
{
    int a, b;
    hc_cu_rope_pair(HC_ROPE_NORM, 3, 32, &a, &b);
    CU_ASSERT(a == 6 && b == 7);
    hc_cu_rope_pair(HC_ROPE_NEOX, 3, 32, &a, &b);
    CU_ASSERT(a == 3 && b == 35);
    CU_ASSERT_EQUAL(HC_CU_ROPE_NEOX, (int)HC_ROPE_NEOX);
    CU_ASSERT_EQUAL(hc_cu_rope_angle(0, 5, 64, 10000.0f), 0.0);
    CU_ASSERT(fabs(hc_cu_rope_angle(100, 16, 64, 10000.0f) - 1.0) < 1e-12); /* 100 * 10000^-0.5 */
}

/* ---------------- attention ---------------- */

/* The attention kernel's blocks (token-head x, split y) one after another, then, with several
 * splits, the merge kernel's; part: scratch of hc_cu_attn_scratch_floats floats (NaN-filled). */
static void emulate_attention(const hc_attn_args *a, int n_splits, int *lanes_disagree)
{
    hc_cu_launch l = hc_cu_attention_geometry(a->n_tok, a->n_head, n_splits);
    check_launch_limits(l);
    CU_ASSERT_EQUAL(l.block.x, HC_CU_ATTN_WARPS * HC_CU_WARP);
    CU_ASSERT_EQUAL(l.grid.y, (unsigned)n_splits);
    int hd = a->head_dim, chunk = hc_cu_attn_split_chunk(a->n_tok, a->pos0, n_splits);
    size_t part_n = hc_cu_attn_scratch_floats(a->n_tok, a->n_head, hd, n_splits);
    float *part = part_n ? malloc(part_n * sizeof *part) : NULL;
    for (size_t i = 0; i < part_n; i++) part[i] = NAN;
    for (unsigned split = 0; split < l.grid.y; split++)
        for (unsigned blk = 0; blk < l.grid.x; blk++) {
            hc_cu_attn_shared sh;
            for (size_t i = 0; i < sizeof sh / sizeof(float); i++) ((float *)&sh)[i] = NAN; /* unwritten slots show */
            int t, h;
            hc_cu_attn_block(blk, a->n_head, &t, &h);
            int kvh = hc_cu_attn_kv_head(h, a->n_head, a->n_head_kv);
            const float *q = a->q + ((size_t)t * a->n_head + h) * hd;
            for (unsigned tid = 0; tid < l.block.x; tid++)
                for (int d = (int)tid; d < hd; d += (int)l.block.x) sh.q[d] = q[d];
            /* __syncthreads() */
            int j0, j1;
            hc_cu_attn_split_range((int)split, chunk, hc_cu_attn_n_keys(a->pos0, t), &j0, &j1);
            for (int warp = 0; warp < HC_CU_ATTN_WARPS; warp++) {
                float m[HC_CU_WARP], lsum[HC_CU_WARP], acc[HC_CU_WARP][HC_CU_ATTN_DPL];
                for (int lane = 0; lane < HC_CU_WARP; lane++) {
                    m[lane] = -INFINITY;
                    lsum[lane] = 0.0f;
                    for (int i = 0; i < HC_CU_ATTN_DPL; i++) acc[lane][i] = 0.0f;
                }
                for (int j = j0 + warp; j < j1; j += HC_CU_ATTN_WARPS) {
                    const int f16 = a->kv_dtype == HC_F16;
                    const void *k = hc_cu_attn_cache_row(a->k_cache, j, a->n_head_kv, hd, kvh, f16);
                    const void *v = hc_cu_attn_cache_row(a->v_cache, j, a->n_head_kv, hd, kvh, f16);
                    float s[HC_CU_WARP];
                    for (int lane = 0; lane < HC_CU_WARP; lane++) s[lane] = hc_cu_attn_lane_dot(sh.q, k, hd, lane, f16);
                    warp_allreduce_xor(s);
                    for (int lane = 0; lane < HC_CU_WARP; lane++) {
                        float corr, p;
                        hc_cu_softmax_step(&m[lane], &lsum[lane], s[lane] * a->scale, &corr, &p);
                        hc_cu_attn_lane_accumulate(acc[lane], v, hd, lane, corr, p, f16);
                    }
                }
                for (int lane = 1; lane < HC_CU_WARP; lane++)
                    if (memcmp(&m[lane], &m[0], 4) || memcmp(&lsum[lane], &lsum[0], 4)) (*lanes_disagree)++;
                sh.m[warp] = m[0]; /* lane 0 */
                sh.l[warp] = lsum[0];
                for (int lane = 0; lane < HC_CU_WARP; lane++)
                    for (int i = 0; i < HC_CU_ATTN_DPL; i++) {
                        int d = lane + i * HC_CU_WARP;
                        if (d < hd) sh.acc[warp][d] = acc[lane][i];
                    }
            }
            /* __syncthreads() */
            if (l.grid.y == 1) {
                float *out = a->out + ((size_t)t * a->n_head + h) * hd;
                for (unsigned tid = 0; tid < l.block.x; tid++)
                    for (int d = (int)tid; d < hd; d += (int)l.block.x) out[d] = hc_cu_attn_merge(&sh, d);
                continue;
            }
            float *p = hc_cu_attn_part(part, blk, (int)split, n_splits, hd);
            CU_ASSERT(p >= part && p + hc_cu_attn_part_floats(hd) <= part + part_n);
            float mx = hc_cu_attn_warps_max(&sh);
            for (unsigned tid = 0; tid < l.block.x; tid++)
                for (int d = (int)tid; d < hd; d += (int)l.block.x) {
                    float num, den;
                    hc_cu_attn_warps_sum(&sh, mx, d, &num, &den);
                    p[2 + d] = num;
                    if (d == 0) p[0] = mx, p[1] = den;
                }
        }
    if (n_splits > 1) {
        for (size_t i = 0; i < part_n; i++)
            if (isnan(part[i])) (*lanes_disagree)++; /* every partial slot is written */
        hc_cu_launch ml = hc_cu_attn_merge_geometry(a->n_tok, a->n_head);
        check_launch_limits(ml);
        for (unsigned blk = 0; blk < ml.grid.x; blk++) {
            int t, h;
            hc_cu_attn_block(blk, a->n_head, &t, &h);
            const float *p = hc_cu_attn_part(part, blk, 0, n_splits, hd);
            float *out = a->out + ((size_t)t * a->n_head + h) * hd;
            for (unsigned tid = 0; tid < ml.block.x; tid++)
                for (int d = (int)tid; d < hd; d += (int)ml.block.x) out[d] = hc_cu_attn_merge_splits(p, n_splits, hd, d);
        }
    }
    free(part);
}

static void test_attention_grid(void)
{
    struct { int n_head, n_head_kv, head_dim, n_tok, pos0, n_ctx; } cfgs[] = {
        { 8, 2, 64, 3, 5, 16 },    /* GQA 4:1 */
        { 4, 1, 48, 2, 0, 8 },     /* MQA, head_dim not a multiple of the warp */
        { 2, 2, 256, 5, 40, 64 },  /* MHA at the largest head_dim, many keys per warp */
        { 6, 3, 8, 1, 0, 1 },      /* one key: three warps see nothing */
        { 4, 2, 32, 4, 1, 5 },     /* the last token fills the context */
        { 2, 1, 64, 1, 300, 512 }, /* decode over 301 keys: the chooser splits them (2) */
    };
    enum { NC = sizeof cfgs / sizeof cfgs[0] };
    for (int ci = 0; ci < 2 * NC; ci++) { /* configs NC..: the same over an f16 KV cache */
        hc_attn_args a = { 0 };
        const int c5 = ci % NC, f16 = ci >= NC;
        a.n_head = cfgs[c5].n_head;
        a.n_head_kv = cfgs[c5].n_head_kv;
        a.head_dim = cfgs[c5].head_dim;
        a.n_tok = cfgs[c5].n_tok;
        a.pos0 = cfgs[c5].pos0;
        a.n_ctx = cfgs[c5].n_ctx;
        a.kv_dtype = f16 ? HC_F16 : HC_F32;
        a.scale = 1.0f / sqrtf((float)a.head_dim);
        size_t qn = (size_t)a.n_tok * a.n_head * a.head_dim, kvn = (size_t)a.n_ctx * a.n_head_kv * a.head_dim;
        float *q = rnd_floats(qn, 2.0f), *k = rnd_floats(kvn, 2.0f), *v = rnd_floats(kvn, 1.0f);
        /* rows past the causal window are poison: reading them would show */
        for (size_t i = (size_t)(a.pos0 + a.n_tok) * a.n_head_kv * a.head_dim; i < kvn; i++) k[i] = v[i] = NAN;
        float *out = malloc(qn * sizeof *out), *ref = malloc(qn * sizeof *ref);
        float *scores = malloc((size_t)a.n_ctx * sizeof *scores);
        uint16_t *k16 = malloc(kvn * 2), *v16 = malloc(kvn * 2);
        for (size_t i = 0; i < kvn; i++) k16[i] = hc_f32_to_f16(k[i]), v16[i] = hc_f32_to_f16(v[i]);
        a.q = q;
        a.k_cache = f16 ? (const float *)k16 : k;
        a.v_cache = f16 ? (const float *)v16 : v;
        a.out = ref;
        for (int t = 0; t < a.n_tok; t++)
            for (int h = 0; h < a.n_head; h++) hc_ref_attention_head(&a, t, h, scores);
        /* the chooser's split count, then forced ones: 2 and 3, and 7 (splits without keys) */
        const int splits[] = { hc_cu_attn_n_splits(a.n_tok, a.n_head, a.pos0), 2, 3, 7 };
        for (int si = 0; si < 4; si++) {
            for (size_t i = 0; i < qn; i++) out[i] = NAN;
            a.out = out;
            int disagree = 0;
            emulate_attention(&a, splits[si], &disagree);
            int bad = 0;
            for (size_t i = 0; i < qn; i++)
                if (!close_to(out[i], ref[i], 2e-5)) bad++;
            if (bad) fprintf(stderr, "  attention config %d, %d splits: %d wrong\n", ci, splits[si], bad);
            CU_ASSERT_EQUAL(bad, 0);
            CU_ASSERT_EQUAL(disagree, 0);
        }
        free(k16);
        free(v16);
        free(q);
        free(k);
        free(v);
        free(out);
        free(ref);
        free(scores);
    }
}

static void test_attention_splits(void)
{
    /* enough (token, head) blocks, or too few keys: one split */
    CU_ASSERT_EQUAL(hc_cu_attn_n_splits(128, 32, 0), 1);
    CU_ASSERT_EQUAL(hc_cu_attn_n_splits(1, 264, 100000), 1);
    CU_ASSERT_EQUAL(hc_cu_attn_n_splits(1, 9, 100), 1);
    CU_ASSERT_EQUAL(hc_cu_attn_n_splits(1, 32, 254), 1);  /* 255 keys: one chunk of 128 is all */
    /* one token, 32 heads: as many splits as bring the blocks to 264 (9), if the keys allow */
    CU_ASSERT_EQUAL(hc_cu_attn_n_splits(1, 32, 4095), 9);
    CU_ASSERT_EQUAL(hc_cu_attn_n_splits(1, 32, 511), 4);
    CU_ASSERT_EQUAL(hc_cu_attn_n_splits(1, 1, 1 << 20), HC_CU_ATTN_MAX_SPLITS);
    CU_ASSERT_EQUAL(hc_cu_attn_n_splits(0, 32, 100), 1);
    /* every split has at least the minimum of keys, and the chunks cover the longest window */
    for (int pos0 = 0; pos0 < 5000; pos0 += 97)
        for (int n_tok = 1; n_tok <= 3; n_tok++) {
            int ns = hc_cu_attn_n_splits(n_tok, 8, pos0), chunk = hc_cu_attn_split_chunk(n_tok, pos0, ns);
            CU_ASSERT(ns >= 1 && ns <= HC_CU_ATTN_MAX_SPLITS);
            CU_ASSERT(ns == 1 || chunk >= HC_CU_ATTN_MIN_SPLIT_KEYS);
            CU_ASSERT((long long)chunk * ns >= pos0 + n_tok);
            int covered = 0;
            for (int sp = 0; sp < ns; sp++) {
                int j0, j1;
                hc_cu_attn_split_range(sp, chunk, pos0 + n_tok, &j0, &j1);
                CU_ASSERT(j0 == (j1 > j0 ? covered : j0));
                if (j1 > j0) covered = j1;
            }
            CU_ASSERT_EQUAL(covered, pos0 + n_tok);
        }
    int j0, j1;
    hc_cu_attn_split_range(3, 10, 25, &j0, &j1); /* past the window: empty */
    CU_ASSERT(j0 == 25 && j1 == 25);
    CU_ASSERT_EQUAL(hc_cu_attn_scratch_floats(1, 32, 128, 1), 0u);
    CU_ASSERT_EQUAL(hc_cu_attn_scratch_floats(1, 32, 128, 9), (size_t)32 * 9 * 130);
    /* the largest scratch a decode can ask for stays small */
    CU_ASSERT(hc_cu_attn_scratch_floats(HC_CU_ATTN_TARGET_BLOCKS - 1, 1, HC_CU_ATTN_MAX_DIM, HC_CU_ATTN_MAX_SPLITS) * 4 <
              (size_t)20 << 20);
}

static void test_attention_mapping(void)
{
    /* 32 query heads over 8 kv heads: 4 each, in order */
    for (int h = 0; h < 32; h++) CU_ASSERT_EQUAL(hc_cu_attn_kv_head(h, 32, 8), h / 4);
    CU_ASSERT_EQUAL(hc_cu_attn_kv_head(31, 32, 1), 0);
    CU_ASSERT_EQUAL(hc_cu_attn_kv_head(5, 8, 8), 5);
    CU_ASSERT_EQUAL(hc_cu_attn_n_keys(0, 0), 1);
    CU_ASSERT_EQUAL(hc_cu_attn_n_keys(10, 2), 13);
    int t, h;
    hc_cu_attn_block(7 * 12 + 5, 12, &t, &h);
    CU_ASSERT(t == 7 && h == 5);
    /* the online softmax of 3 scores equals the direct one */
    float m = -INFINITY, l = 0, corr, p, acc = 0;
    const float s[3] = { 0.5f, 2.0f, -1.0f }, val[3] = { 1.0f, 2.0f, 3.0f };
    for (int i = 0; i < 3; i++) {
        hc_cu_softmax_step(&m, &l, s[i], &corr, &p);
        acc = acc * corr + p * val[i];
    }
    double e0 = exp(0.5), e1 = exp(2.0), e2 = exp(-1.0);
    CU_ASSERT(fabs(acc / l - (e0 * 1 + e1 * 2 + e2 * 3) / (e0 + e1 + e2)) < 1e-6);
    CU_ASSERT_EQUAL(m, 2.0f);
}

/* ---------------- element-wise ---------------- */

static void test_elementwise_grid(void)
{
    const size_t sizes[] = { 1, 1000, 100003 };
    const unsigned caps[] = { HC_CU_EW_MAX_BLOCKS, 3 }; /* the real cap, and a tiny one to force striding */
    for (int si = 0; si < 3; si++)
        for (int ci = 0; ci < 2; ci++) {
            size_t n = sizes[si];
            hc_cu_launch l = hc_cu_elementwise_geometry(n, caps[ci]);
            check_launch_limits(l);
            CU_ASSERT(l.grid.x <= caps[ci]);
            int width = 77, n_tok = (int)(n / 77) + 1;
            size_t nb = (size_t)n_tok * width;
            float *g = rnd_floats(n, 6.0f), *u = rnd_floats(n, 1.0f), *out = malloc(n * sizeof *out);
            float *ref = malloc(n * sizeof *ref), *y = rnd_floats(nb, 1.0f), *yref = malloc(nb * sizeof *yref);
            float *b = rnd_floats((size_t)width, 1.0f);
            unsigned char *seen = calloc(n, 1);
            hc_ref_swiglu(g, u, ref, n);
            memcpy(yref, y, nb * sizeof *y);
            for (size_t i = 0; i < nb; i++) yref[i] += b[i % (size_t)width];
            hc_cu_launch lb = hc_cu_elementwise_geometry(nb, caps[ci]);
            for (unsigned blk = 0; blk < l.grid.x; blk++)
                for (unsigned tid = 0; tid < l.block.x; tid++)
                    for (size_t i = hc_cu_ew_first(blk, tid); i < n; i += hc_cu_ew_stride(l.grid.x)) {
                        out[i] = hc_cu_silu_mul(g[i], u[i]);
                        seen[i]++;
                    }
            float *gref = malloc(n * sizeof *gref); /* GeGLU: the same formula as the reference's */
            hc_ref_geglu(g, u, gref, n);
            int gbad = 0;
            for (size_t i = 0; i < n; i++) gbad += hc_cu_gelu_mul(g[i], u[i]) != gref[i];
            CU_ASSERT_EQUAL(gbad, 0);
            free(gref);
            for (unsigned blk = 0; blk < lb.grid.x; blk++)
                for (unsigned tid = 0; tid < lb.block.x; tid++)
                    for (size_t i = hc_cu_ew_first(blk, tid); i < nb; i += hc_cu_ew_stride(lb.grid.x))
                        y[i] += b[hc_cu_bias_index(i, width)];
            int bad = 0;
            for (size_t i = 0; i < n; i++)
                if (seen[i] != 1 || out[i] != ref[i]) bad++;
            for (size_t i = 0; i < nb; i++)
                if (y[i] != yref[i]) bad++;
            if (bad) fprintf(stderr, "  elementwise n %zu cap %u: %d wrong\n", n, caps[ci], bad);
            CU_ASSERT_EQUAL(bad, 0);
            free(g);
            free(u);
            free(out);
            free(ref);
            free(y);
            free(yref);
            free(b);
            free(seen);
        }
}

/* ---------------- geometry at the extremes ---------------- */

static void test_geometry_limits(void)
{
    /* the largest batch the CLI accepts (65536 tokens) with many heads still fits the grid */
    check_launch_limits(hc_cu_rope_geometry(65536, 128));
    check_launch_limits(hc_cu_attention_geometry(65536, 128, 1));
    check_launch_limits(hc_cu_attention_geometry(1, 263, HC_CU_ATTN_MAX_SPLITS));
    check_launch_limits(hc_cu_rmsnorm_geometry(65536));
    check_launch_limits(hc_cu_dequant_rows_geometry(65536));
    check_launch_limits(hc_cu_gemv_geometry(256000, 1));
    check_launch_limits(hc_cu_elementwise_geometry((size_t)65536 * 32768, HC_CU_EW_MAX_BLOCKS));
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(256000, 1).grid.x, 64000u);
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(5, 1).grid.x, 5u);       /* narrow: a warp a block */
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(192, 1).grid.x, 192u);
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(576, 1).grid.x, 288u);   /* two warps a block */
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(4096, 1).grid.x, 1024u); /* four */
    /* four rows a warp: 1024 warps for an 8B model's k/v projections, two a block; 4096 for its ffn */
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(1024, 4).grid.x, 256u);
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(1024, 4).block.y, 1u);
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(4096, 4).grid.x, 512u);
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(14336, 4).grid.x, 896u);
    CU_ASSERT_EQUAL(hc_cu_gemv_geometry(531, 4).grid.x, 133u); /* the last warp holds 3 rows */
    CU_ASSERT_EQUAL(hc_cu_gemv_row(132, 1, 0, 4), 528);
    CU_ASSERT_EQUAL(hc_cu_gemv_warp_rows(HC_Q4_K, 1, HC_CU_GEMV_RUN_ROWS), HC_CU_GEMV_RUN_ROWS);
    CU_ASSERT_EQUAL(hc_cu_gemv_warp_rows(HC_Q4_K, 1, 1), 1);
    CU_ASSERT_EQUAL(hc_cu_gemv_warp_rows(HC_Q4_K, 0, HC_CU_GEMV_RUN_ROWS), 1); /* by elements */
    CU_ASSERT_EQUAL(hc_cu_gemv_warp_rows(HC_F16, 1, HC_CU_GEMV_RUN_ROWS), 1);
    CU_ASSERT(sizeof(hc_cu_attn_shared) <= HC_CU_MAX_STATIC_SHARED);
    CU_ASSERT_EQUAL(HC_CU_ATTN_THREADS % HC_CU_WARP, 0);
    CU_ASSERT_EQUAL(HC_CU_ATTN_MAX_DIM, 256);
    CU_ASSERT_EQUAL(hc_cu_matmul_chunk_rows(4096, 11008, (size_t)16 << 20), 4096);
    CU_ASSERT_EQUAL(hc_cu_matmul_chunk_rows(4096, 1000, (size_t)16 << 20), 1000);
    CU_ASSERT_EQUAL(hc_cu_matmul_chunk_rows(1 << 25, 10, (size_t)16 << 20), 1);
}

int main(void)
{
    static const hc_test_case cases[] = {
        { "f16 and bf16 conversions match the library's", test_half_conversions },
        { "f32 to f16 (the f16 KV cache) matches the library's", test_to_f16 },
        { "the kernels' type table matches hc_tensor's", test_type_table },
        { "the byte permute as CUDA documents it", test_byte_perm },
        { "one element of every type matches hc_dequantize_row", test_dequant_elements },
        { "dequant_rows grid (by ids and by range)", test_dequant_rows_grid },
        { "dequant_rows by runs of 32: every block type, f32 and f16", test_dequant_runs },
        { "x quantized to int8: the cpu device's bytes", test_q8x },
        { "gemv grid: warp per row, shuffle reduction", test_gemv_grid },
        { "gemv by 16-byte loads and runs of 32: every type", test_gemv_runs },
        { "batched matmul: chunks to scratch + SGEMM arguments", test_batched_matmul_chunks },
        { "f32 matmul of a batch: SGEMM arguments", test_f32_blas_arguments },
        { "f16 GEMM: activation scale, types, token chunks", test_f16_input_scale },
        { "f16 GEMM of quantized weights within the GPU test's bound", test_f16_batched_matmul },
        { "rmsnorm grid: shared-memory tree", test_rmsnorm_grid },
        { "rope grid: both modes, partial rotation, positions", test_rope_grid },
        { "rope pairs and angle", test_rope_pairs },
        { "attention grid: GQA, causal window, warp merge, key splits", test_attention_grid },
        { "attention key splits: count, ranges, scratch", test_attention_splits },
        { "attention head mapping and online softmax", test_attention_mapping },
        { "element-wise grid-stride kernels", test_elementwise_grid },
        { "launch geometry stays within the hardware limits", test_geometry_limits },
        { NULL, NULL },
    };
    return hc_test_run("cuda_kernels_cpu", cases);
}
