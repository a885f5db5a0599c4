/* test_qrtn_cuda_cpu.c: the rtn/gptq CUDA kernels' index arithmetic (plugins/quant_rtn/cuda/qrtn_cuda.cuh)
 * run on the CPU, block by block and lane by lane, against the reference dequantizer (kernels/cpu/qrtn). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../plugins/quant_rtn/cuda/qrtn_cuda.cuh"
#include "hc/hc_quant.h"
#include "hc/hc_quant_cuda.h"
#include "hc/hc_tensor.h"
#include "qrtn.h"
#include "registry.h"
#include "test_util.h"

static uint64_t rng_state = 0x5851f42d4c957f2dull;

static float rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 4503599627370496.0 - 1.0);
}

static const int bits_all[] = { 2, 3, 4, 8 }, groups_all[] = { 32, 64, 128 };
/* every unit mix: 32, 64, 96 (64 + 32), 128, 224 (128 + 64 + 32), short last groups (576 = 4 x 128 + 64,
   608 in groups of 128: 4 x 128 + 96), many units (1056) */
static const int64_t cols_all[] = { 32, 64, 96, 128, 224, 576, 608, 1056 };
#define N_OF(a) ((int)(sizeof a / sizeof a[0]))

/* rows x cols random weights (some groups constant), quantized by rtn into the packed layout. */
static uint8_t *make_packed(int bits, int group, int64_t rows, int64_t cols)
{
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    for (int64_t i = 0; i < rows * cols; i++) w[i] = rnd() * (1.0f + (float)(i % 7));
    for (int64_t i = 0; i < cols && i < 32; i++) w[i] = 0.25f; /* a constant group: d = 0 */
    uint8_t *p = malloc(hc_qrtn_packed_bytes(bits, group, rows, cols));
    HC_ASSERT_OK(hc_qrtn_quantize_rtn(bits, group, w, rows, cols, p));
    free(w);
    return p;
}

static void check_launch(hc_cu_launch l)
{
    CU_ASSERT(l.grid.x >= 1 && l.grid.x <= HC_CU_MAX_GRID_X && l.grid.y == 1 && l.grid.z == 1);
    CU_ASSERT(l.block.x * l.block.y * l.block.z <= HC_CU_MAX_BLOCK_THREADS);
    CU_ASSERT(l.shared_bytes <= HC_CU_MAX_STATIC_SHARED);
}

/* The geometry of a row: row bytes, units that tile the row from the left, groups. */
static void test_row_geometry(void)
{
    for (int bi = 0; bi < N_OF(bits_all); bi++)
        for (int gi = 0; gi < N_OF(groups_all); gi++)
            for (int ci = 0; ci < N_OF(cols_all); ci++) {
                int bits = bits_all[bi], group = groups_all[gi];
                int64_t cols = cols_all[ci];
                CU_ASSERT_EQUAL(hc_qrtn_cu_row_bytes(bits, group, cols), hc_qrtn_row_bytes(bits, group, cols));
                CU_ASSERT_EQUAL(hc_qrtn_cu_row_bytes(bits, group, cols) % 4, 0);
                CU_ASSERT_EQUAL(hc_qrtn_cu_groups(group, cols), hc_qrtn_groups(group, cols));
                int64_t c = 0, nu = hc_qrtn_cu_n_units(cols);
                for (int64_t u = 0; u < nu; u++) {
                    int S;
                    CU_ASSERT_EQUAL(hc_qrtn_cu_unit_col(cols, u, &S), c);
                    CU_ASSERT(S == 128 || S == 64 || S == 32);
                    CU_ASSERT(u == 0 || S <= 128);
                    CU_ASSERT_EQUAL((c * bits / 8) % 4, 0); /* every unit starts 4-byte aligned */
                    c += S;
                }
                CU_ASSERT_EQUAL(c, cols);
            }
}

/* Every code and every element of every format equals the reference's, bit for bit. */
static void test_codes_and_elements(void)
{
    for (int bi = 0; bi < N_OF(bits_all); bi++)
        for (int gi = 0; gi < N_OF(groups_all); gi++)
            for (int ci = 0; ci < N_OF(cols_all); ci++) {
                int bits = bits_all[bi], group = groups_all[gi];
                int64_t cols = cols_all[ci], rows = 3;
                uint8_t *p = make_packed(bits, group, rows, cols);
                size_t rb = hc_qrtn_row_bytes(bits, group, cols);
                int64_t G = hc_qrtn_groups(group, cols);
                uint8_t *q = malloc((size_t)cols);
                float *ref = malloc((size_t)(rows * cols) * sizeof *ref);
                hc_qrtn_dequantize_rows(bits, group, p, cols, 0, rows, ref);
                int bad_codes = 0, bad_elems = 0;
                for (int64_t r = 0; r < rows; r++) {
                    const uint8_t *row = p + (size_t)r * rb;
                    hc_qrtn_read_codes(bits, group, cols, row, q);
                    for (int64_t c = 0; c < cols; c++) {
                        if (hc_qrtn_cu_code_at(bits, cols, row + 4 * G, c) != q[c]) bad_codes++;
                        float e = hc_qrtn_cu_elem(bits, group, cols, row, c);
                        if (memcmp(&e, &ref[r * cols + c], 4) != 0) bad_elems++;
                    }
                }
                if (bad_codes || bad_elems)
                    fprintf(stderr, "  bits %d group %d cols %lld: %d codes, %d elements differ\n", bits, group, (long long)cols,
                            bad_codes, bad_elems);
                CU_ASSERT_EQUAL(bad_codes, 0);
                CU_ASSERT_EQUAL(bad_elems, 0);
                free(q);
                free(ref);
                free(p);
            }
}

/* The lanes of a unit cover its columns exactly once: lane p, code k is column 32 k + p. */
static void test_lane_codes_cover_units(void)
{
    for (int bi = 0; bi < N_OF(bits_all); bi++)
        for (int S = 32; S <= 128; S *= 2) {
            int bits = bits_all[bi];
            uint8_t qin[128], packed[128], got[128];
            for (int i = 0; i < S; i++) qin[i] = (uint8_t)((i * 37 + 11) & ((1 << bits) - 1));
            /* one row of exactly S columns is one unit (the header: one group of f16 zeros) */
            uint16_t dm[2] = { 0, 0 };
            uint8_t row[4 + 128];
            hc_qrtn_write_row(bits, 128, S, qin, dm, dm + 1, row);
            memcpy(packed, row + 4, (size_t)(S * bits / 8));
            memset(got, 0xff, sizeof got);
            for (int p = 0; p < 32; p++) {
                uint32_t q[4];
                int n = hc_qrtn_cu_lane_codes(bits, S, packed, p, q);
                CU_ASSERT_EQUAL(n, S / 32);
                for (int k = 0; k < n; k++) got[32 * k + p] = (uint8_t)q[k];
            }
            CU_ASSERT(memcmp(got, qin, (size_t)S) == 0);
        }
}

/* The code's float form: f = 1 + q 2^-bits exactly, so D f + M = d q + m up to rounding. */
static void test_code_float(void)
{
    for (int bi = 0; bi < N_OF(bits_all); bi++) {
        int bits = bits_all[bi];
        for (uint32_t q = 0; q < (1u << bits); q++)
            CU_ASSERT_EQUAL(hc_qrtn_cu_code_f(q, bits), 1.0f + (float)q / (float)(1 << bits));
    }
}

/* A GEMV kernel emulated, the plain one (wide 0), the wide one (1) or the wide one with x in int8 (2, xq
 * the codes and scales of quantize_x): every block, warp and lane; the shuffle tree; the warps of a row
 * meeting in shared memory. */
static void emulate_gemv(int wide, int bits, int group, const uint8_t *w, int64_t cols, int64_t rows, const float *x,
                         const uint8_t *xq, int n_tok, float *y, int *writes)
{
    hc_cu_launch l = wide ? hc_qrtn_cu_wide_geometry(rows, cols, n_tok) : hc_qrtn_cu_gemv_geometry(rows, cols);
    check_launch(l);
    CU_ASSERT_EQUAL(l.block.x, HC_QRTN_CU_THREADS);
    CU_ASSERT(l.shared_bytes >= HC_QRTN_CU_WARPS * HC_QRTN_CU_MAX_TOK * sizeof(float));
    size_t rb = hc_qrtn_cu_row_bytes(bits, group, cols);
    int R = wide ? hc_qrtn_cu_wide_rows(n_tok) : 1, n_sums = R * n_tok; /* a warp's sums: row r, token t at r n_tok + t */
    CU_ASSERT(n_sums <= HC_QRTN_CU_MAX_TOK);
    for (unsigned b = 0; b < l.grid.x; b++) {
        float part[HC_QRTN_CU_WARPS][HC_QRTN_CU_MAX_TOK];
        for (int wv = 0; wv < HC_QRTN_CU_WARPS; wv++) {
            float acc[HC_CU_WARP][HC_QRTN_CU_MAX_TOK];
            for (int lane = 0; lane < HC_CU_WARP; lane++) {
                int64_t row;
                int wi, wpr, ln;
                if (wide) hc_qrtn_cu_wide_thread(rows, cols, R, b, (unsigned)(wv * HC_CU_WARP + lane), &row, &wi, &wpr, &ln);
                else hc_qrtn_cu_gemv_thread(rows, cols, b, (unsigned)(wv * HC_CU_WARP + lane), &row, &wi, &wpr, &ln);
                CU_ASSERT_EQUAL(ln, lane);
                for (int j = 0; j < n_sums; j++) acc[lane][j] = 0.0f;
                if (row >= rows) continue;
                if (wide)
                    hc_qrtn_cu_wide_dot(bits, group, cols, w, rb, row, rows, R, x, wide == 2, xq,
                                        (const float *)(xq + (size_t)n_tok * (size_t)cols), n_tok, wi, wpr, lane, acc[lane]);
                else hc_qrtn_cu_lane_dot(bits, group, cols, w + (size_t)row * rb, x, n_tok, 0, wi, wpr, lane, acc[lane]);
            }
            for (int j = 0; j < n_sums; j++) { /* __shfl_xor_sync: every lane ends with the sum */
                for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) {
                    float tmp[HC_CU_WARP];
                    for (int ln = 0; ln < HC_CU_WARP; ln++) tmp[ln] = acc[ln][j] + acc[ln ^ off][j];
                    for (int ln = 0; ln < HC_CU_WARP; ln++) acc[ln][j] = tmp[ln];
                }
                part[wv][j] = acc[0][j];
            }
        }
        /* __syncthreads(); then lane j < n_sums of a row group's first warp sums the group's warps */
        for (int wv = 0; wv < HC_QRTN_CU_WARPS; wv++) {
            int64_t row0;
            int wi, wpr, ln;
            if (wide) hc_qrtn_cu_wide_thread(rows, cols, R, b, (unsigned)(wv * HC_CU_WARP), &row0, &wi, &wpr, &ln);
            else hc_qrtn_cu_gemv_thread(rows, cols, b, (unsigned)(wv * HC_CU_WARP), &row0, &wi, &wpr, &ln);
            if (wi != 0) continue;
            for (int j = 0; j < n_sums; j++) {
                int64_t row = row0 + j / n_tok;
                if (row >= rows) continue;
                float s = 0.0f;
                for (int k = 0; k < wpr; k++) s += part[wv + k][j];
                y[(size_t)(j % n_tok) * (size_t)rows + (size_t)row] = s;
                writes[(size_t)(j % n_tok) * (size_t)rows + (size_t)row]++;
            }
        }
    }
}

/* The int8 GEMV's quantize_x emulated (hc_qrtn_cu_q8_block: 2 threads a block of 32, 16 values a
 * thread): n values (a multiple of 32) into codes q and scales d. Each code is x / d rounded to the
 * nearest, within [-127, 127], the block's largest |x| at +-127, and d is that |x| / 127. */
static void quantize_x(const float *x, int64_t n, uint8_t *q, float *d)
{
    int bad = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const float *v = x + 32 * b;
        d[b] = hc_qrtn_cu_q8_block(v, q + 32 * b);
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(v[i]));
        if (amax < 7.8886091e-31f) { /* zeros, or too small for the multiplier: codes 0 */
            for (int i = 0; i < 32; i++) bad += q[32 * b + i] != 0;
            continue;
        }
        bad += fmaxf(hc_qrtn_cu_q8_amax16(v), hc_qrtn_cu_q8_amax16(v + 16)) != amax; /* the shuffle's maximum */
        bad += fabsf(d[b] - amax / 127.0f) > 1e-6f * amax;
        for (int i = 0; i < 32; i++) {
            int c = (int8_t)q[32 * b + i];
            bad += c < -127 || c > 127 || fabs((double)v[i] - (double)d[b] * c) > 0.5001 * d[b];
            if (fabsf(v[i]) == amax && amax > 0.0f) bad += abs(c) != 127;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* The GEMVs against the dequantized rows times x, in double; every output written once. The wide ones
 * need 128 columns or more and x 16-byte aligned (aligned_alloc here). With x in int8, x is what its
 * codes and scales give (quantize_x) in the row's units of 128 and x itself in its tail units. */
static void test_gemv_grid(void)
{
    const int64_t shapes[][2] = { { 1, 32 }, { 7, 96 }, { 37, 224 }, { 192, 576 }, { 9, 608 }, { 300, 1056 }, { 6, 4096 } };
    const int toks[] = { 1, 2, 3, 8 };
    for (int wide = 0; wide <= 2; wide++)
        for (int bi = 0; bi < N_OF(bits_all); bi++)
            for (int gi = 0; gi < N_OF(groups_all); gi++)
                for (int si = 0; si < N_OF(shapes); si++)
                    for (int ti = 0; ti < N_OF(toks); ti++) {
                        int bits = bits_all[bi], group = groups_all[gi], n_tok = toks[ti];
                        int64_t rows = shapes[si][0], cols = shapes[si][1];
                        if (n_tok > 1 && rows > 40) continue; /* the big shapes once, for the split-K geometry */
                        if (wide && !hc_qrtn_cu_wide_ok(cols, 0)) continue;
                        if (wide == 2 && !hc_qrtn_cu_wide_q8_ok(cols, n_tok, 0)) continue;
                        uint8_t *w = make_packed(bits, group, rows, cols);
                        float *x = aligned_alloc(16, (size_t)(n_tok * cols) * sizeof *x), *wr = malloc((size_t)cols * sizeof *wr);
                        for (int64_t i = 0; i < n_tok * cols; i++) x[i] = rnd();
                        for (int64_t i = 0; i < 32 && i < n_tok * cols; i++) x[i] = 0.0f;     /* a block of zeros */
                        for (int64_t i = 32; i < 64 && i < n_tok * cols; i++) x[i] = 1e-35f;  /* one too small */
                        uint8_t *xq = aligned_alloc(16, (hc_qrtn_cu_q8_shared(cols, n_tok) + 15) / 16 * 16);
                        float *xd = (float *)(xq + (size_t)n_tok * (size_t)cols);
                        float *xv = malloc((size_t)(n_tok * cols) * sizeof *xv);
                        quantize_x(x, n_tok * cols, xq, xd);
                        for (int64_t i = 0; i < n_tok * cols; i++)
                            xv[i] = wide == 2 && i % cols < cols / 128 * 128 ? xd[i / 32] * (float)(int8_t)xq[i] : x[i];
                        float *y = calloc((size_t)(n_tok * rows), sizeof *y);
                        int *writes = calloc((size_t)(n_tok * rows), sizeof *writes);
                        emulate_gemv(wide, bits, group, w, cols, rows, x, xq, n_tok, y, writes);
                        int bad = 0;
                        for (int64_t o = 0; o < rows; o++) {
                            hc_qrtn_dequantize_rows(bits, group, w, cols, o, 1, wr);
                            for (int t = 0; t < n_tok; t++) {
                                double s = 0, mag = 0;
                                for (int64_t i = 0; i < cols; i++) {
                                    s += (double)wr[i] * xv[t * cols + i];
                                    mag += fabs((double)wr[i] * xv[t * cols + i]);
                                }
                                size_t k = (size_t)t * (size_t)rows + (size_t)o;
                                if (writes[k] != 1 || !(fabs(y[k] - s) <= 2e-6 * (mag + 1e-3) * sqrt((double)cols))) bad++;
                            }
                        }
                        if (bad)
                            fprintf(stderr, "  %s gemv bits %d group %d %lldx%lld, %d tokens: %d wrong\n",
                                    wide == 2 ? "int8" : wide ? "wide" : "plain", bits, group, (long long)rows, (long long)cols,
                                    n_tok, bad);
                        CU_ASSERT_EQUAL(bad, 0);
                        free(w), free(x), free(xq), free(xv), free(wr), free(y), free(writes);
                    }
}

/* The wide GEMV's words: byte i of slot s's block k is the code of column 32 k + 4 s + i of the unit,
   as the row's reader (hc_qrtn_cu_code_at) has it, for every lane and code of a random 128-unit; a
   code's float and the group's D and M give d q + m. */
static void test_quad_codes(void)
{
    for (int bi = 0; bi < N_OF(bits_all); bi++) {
        int bits = bits_all[bi];
        uint32_t unit32[32]; /* 4-byte aligned, as the kernels' units are */
        uint8_t *unit = (uint8_t *)unit32;
        for (int trial = 0; trial < 8; trial++) {
            for (int i = 0; i < 128; i++) unit[i] = (uint8_t)(rnd() * 256.0f);
            int bad = 0;
            for (int s = 0; s < 8; s++) {
                uint32_t wd[4];
                hc_qrtn_cu_quad_words(bits, unit, s, wd);
                for (int k = 0; k < 4; k++) {
                    uint32_t m = hc_qrtn_cu_quad_bytes(bits, wd, k);
                    for (int i = 0; i < 4; i++) {
                        uint32_t q = hc_qrtn_cu_code_at(bits, 128, unit, 32 * k + 4 * s + i);
                        bad += ((m >> (8 * i)) & 0xffu) != q;
                        bad += hc_cu_byte_f(m, i, bits == 8) != 0.5f + (float)q / (bits == 8 ? 65536.0f : 256.0f);
                    }
                }
            }
            CU_ASSERT_EQUAL(bad, 0);
        }
        for (uint32_t q = 0; q < (1u << bits); q++) { /* D f + M = d q + m, to rounding */
            const float d = 0.0123f, m = -0.75f;
            hc_qrtn_cu_dm dm = hc_qrtn_cu_byte_dm(bits, d, m);
            double got = (double)dm.D * hc_cu_byte_f(q << 16, 2, bits == 8) + dm.M, want = (double)d * q + m;
            CU_ASSERT(fabs(got - want) <= 1e-6 * (fabs(want) + 1.0) * (bits == 8 ? 64 : 1));
        }
    }
}

/* The wide GEMV's geometry at a Llama-3-8B layer's shapes (rows x cols): 4 rows a warp for a token,
 * warps split a row group (a step each at most) until two blocks an SM of a 132-SM H100 are there. */
static void test_wide_geometry(void)
{
    CU_ASSERT_EQUAL(hc_qrtn_cu_wide_rows(1), 4);
    CU_ASSERT_EQUAL(hc_qrtn_cu_wide_rows(2), 4);
    CU_ASSERT_EQUAL(hc_qrtn_cu_wide_rows(3), 2);
    CU_ASSERT_EQUAL(hc_qrtn_cu_wide_rows(8), 1);
    CU_ASSERT_EQUAL(hc_qrtn_cu_wide_wpr(4096, 4096, 4), 4);   /* attn_q, attn_output: 1024 groups, 512 blocks */
    CU_ASSERT_EQUAL(hc_qrtn_cu_wide_wpr(14336, 4096, 4), 1);  /* ffn_gate, ffn_up: 3584 groups, 448 blocks */
    CU_ASSERT_EQUAL(hc_qrtn_cu_wide_wpr(4096, 14336, 4), 4);  /* ffn_down */
    CU_ASSERT_EQUAL(hc_qrtn_cu_wide_wpr(1024, 4096, 4), 4);   /* attn_k, attn_v: 4 steps, 128 blocks */
    CU_ASSERT_EQUAL(hc_qrtn_cu_wide_wpr(192, 576, 4), 2);     /* 48 groups, 2 steps: a quad and a unit of 64 */
    hc_cu_launch l = hc_qrtn_cu_wide_geometry(14336, 4096, 1);
    CU_ASSERT_EQUAL(l.grid.x, 448u);
    l = hc_qrtn_cu_wide_geometry(4096, 4096, 1);
    CU_ASSERT_EQUAL(l.grid.x, 512u);
    CU_ASSERT(hc_qrtn_cu_wide_ok(4096, 256) && !hc_qrtn_cu_wide_ok(4096, 8) && !hc_qrtn_cu_wide_ok(96, 0));
}

/* Small outputs are split over more warps per row (enough blocks for the GPU); big ones are not. */
static void test_gemv_split(void)
{
    CU_ASSERT_EQUAL(hc_qrtn_cu_warps_per_row(14336, 4096), 1);
    CU_ASSERT_EQUAL(hc_qrtn_cu_warps_per_row(192, 576), 4);    /* 5 units: not 8 warps, 3 would idle */
    CU_ASSERT_EQUAL(hc_qrtn_cu_warps_per_row(192, 4096), 8);
    CU_ASSERT_EQUAL(hc_qrtn_cu_warps_per_row(1024, 4096), 4);
    CU_ASSERT_EQUAL(hc_qrtn_cu_warps_per_row(3, 32), 1);       /* one unit: one warp */
    hc_cu_launch l = hc_qrtn_cu_gemv_geometry(192, 4096);
    CU_ASSERT_EQUAL(l.grid.x, 192u);                             /* 8 warps of one row per block */
    l = hc_qrtn_cu_gemv_geometry(4096, 14336);
    CU_ASSERT_EQUAL(l.grid.x, 512u);
}

/* dequant_rows emulated, f32 and f16, by ids and by range. */
static void test_dequant_rows_grid(void)
{
    const int32_t ids[] = { 4, 0, 2, 2, 5 };
    for (int bi = 0; bi < N_OF(bits_all); bi++)
        for (int gi = 0; gi < N_OF(groups_all); gi++)
            for (int ci = 0; ci < N_OF(cols_all); ci++)
                for (int f16 = 0; f16 <= 1; f16++)
                    for (int by_ids = 0; by_ids <= 1; by_ids++) {
                        int bits = bits_all[bi], group = groups_all[gi], n = by_ids ? 5 : 3;
                        int64_t cols = cols_all[ci], rows = 6, row0 = 2;
                        uint8_t *w = make_packed(bits, group, rows, cols);
                        size_t rb = hc_qrtn_cu_row_bytes(bits, group, cols);
                        float *ref = malloc((size_t)cols * sizeof *ref), *out32 = malloc((size_t)(n * cols) * sizeof *out32);
                        uint16_t *out16 = malloc((size_t)(n * cols) * sizeof *out16);
                        hc_cu_launch l = hc_qrtn_cu_dequant_geometry(n);
                        check_launch(l);
                        int *writes = calloc((size_t)(n * cols), sizeof *writes);
                        for (unsigned b = 0; b < l.grid.x; b++)
                            for (unsigned tid = 0; tid < l.block.x; tid++) {
                                int64_t r = by_ids ? ids[b] : row0 + (int64_t)b, n128 = cols / 128;
                                for (int64_t j = tid; j < 8 * n128; j += l.block.x) { /* the units' slots */
                                    float v[16];
                                    hc_qrtn_cu_dequant_slot(bits, group, cols, w + (size_t)r * rb, j, v);
                                    for (int e = 0; e < 16; e++) {
                                        int64_t c = 128 * (j >> 3) + 4 * (j & 7) + 32 * (e >> 2) + (e & 3);
                                        if (f16) out16[b * cols + c] = hc_cu_f32_to_f16(v[e]);
                                        else out32[b * cols + c] = v[e];
                                        writes[b * cols + c]++;
                                    }
                                }
                                for (int64_t c = 128 * n128 + tid; c < cols; c += l.block.x) { /* the tail */
                                    float v = hc_qrtn_cu_elem(bits, group, cols, w + (size_t)r * rb, c);
                                    if (f16) out16[b * cols + c] = hc_cu_f32_to_f16(v);
                                    else out32[b * cols + c] = v;
                                    writes[b * cols + c]++;
                                }
                            }
                        int bad = 0;
                        for (int b = 0; b < n; b++) {
                            hc_qrtn_dequantize_rows(bits, group, w, cols, by_ids ? ids[b] : row0 + b, 1, ref);
                            for (int64_t c = 0; c < cols; c++) {
                                if (f16) bad += out16[b * cols + c] != hc_f32_to_f16(ref[c]);
                                else bad += memcmp(&out32[b * cols + c], &ref[c], 4) != 0;
                                bad += writes[b * cols + c] != 1;
                            }
                        }
                        CU_ASSERT_EQUAL(bad, 0);
                        free(w), free(ref), free(out32), free(out16), free(writes);
                    }
}

/* The rtn and gptq plugins answer device_kernels: nothing for other devices, for "cuda" the table of
 * hc-qrtn-cuda.so where it was built (else NULL, saying why). No GPU is touched. */
static void check_plugin_hook(const char *file, const char *name)
{
    hc_registry *reg;
    HC_ASSERT_OK(hc_registry_create(&reg));
    HC_ASSERT_OK(hc_registry_load_file(reg, file));
    const hc_plugin *p = hc_registry_find(reg, HC_PLUGIN_QUANT, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    const hc_quant_ops *ops = p->desc->ops;
    CU_ASSERT_PTR_NOT_NULL_FATAL(ops->device_kernels);
    void *params = NULL;
    HC_ASSERT_OK(ops->parse("bits=3,group=128", &params));
    CU_ASSERT_PTR_NULL(ops->device_kernels(params, "cpu"));
    CU_ASSERT_PTR_NULL(ops->device_kernels(params, "vulkan"));
    int built = access(HC_PLUGIN_BUILD_DIR "/kernels/hc-qrtn-cuda.so", R_OK) == 0;
    const hc_quant_cuda_kernels *k = ops->device_kernels(params, "cuda");
    if (built) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(k);
        CU_ASSERT_EQUAL(k->abi, HC_QUANT_CUDA_ABI);
        CU_ASSERT_EQUAL(k->max_fused_tokens, HC_QRTN_CU_MAX_TOK);
        CU_ASSERT(k->gemv && k->dequant_rows && k->check && k->gemv_id && k->gemv_q8 && k->gemv_id_q8);
        CU_ASSERT_EQUAL(k->check(params, 576, 1536), 0);
        CU_ASSERT_NOT_EQUAL(k->check(params, 576, 100), 0); /* not a multiple of 32 */
        CU_ASSERT_PTR_EQUAL(ops->device_kernels(params, "cuda"), k); /* loaded once */
    } else {
        printf("(%s not built: checking the refusal)\n", HC_PLUGIN_BUILD_DIR "/kernels/hc-qrtn-cuda.so");
        CU_ASSERT_PTR_NULL(k);
        CU_ASSERT(strstr(hc_last_error(), "could not be loaded") != NULL);
    }
    ops->free_params(params);
    hc_registry_free(reg);
}

static void test_plugin_hook(void)
{
    check_plugin_hook(HC_PLUGIN_BUILD_DIR "/hc-quant-rtn.so", "rtn");
    check_plugin_hook(HC_PLUGIN_BUILD_DIR "/hc-quant-gptq.so", "gptq");
}

int main(void)
{
    static const hc_test_case cases[] = {
        { "row geometry: bytes, units, groups", test_row_geometry },
        { "every code and element equals the reference's (2/3/4/8 bits, groups 32/64/128, short last groups)",
          test_codes_and_elements },
        { "a warp's lanes cover a unit's columns once", test_lane_codes_cover_units },
        { "the code's float form", test_code_float },
        { "gemv grid, plain, wide and int8: split-K warps, rows a warp, shuffles, 1..8 tokens", test_gemv_grid },
        { "the wide gemv's words give every code of a unit", test_quad_codes },
        { "the wide gemv's geometry at 8B shapes", test_wide_geometry },
        { "gemv geometry fills the GPU for small outputs", test_gemv_split },
        { "dequant_rows grid: f32 and f16, by ids and range", test_dequant_rows_grid },
        { "rtn and gptq give their CUDA kernels through device_kernels", test_plugin_hook },
        { NULL, NULL },
    };
    return hc_test_run("qrtn_cuda_cpu", cases);
}
