/* qrtn_cuda.cuh: the index arithmetic of the rtn/gptq CUDA kernels (layout: kernels/cpu/qrtn.h) as
 * __host__ __device__ functions, so that the CPU tests run the very code the kernels run. */
#ifndef HC_QRTN_CUDA_CUH
#define HC_QRTN_CUDA_CUH

#include "cuda_common.cuh"

/* ---------------- the row ---------------- */

static inline HC_CU_HD int64_t hc_qrtn_cu_groups(int group, int64_t cols) { return (cols + group - 1) / group; }

/* 4 * G bytes of f16 scales and minimums, then cols * bits / 8 bytes of codes (a multiple of 4:
 * cols is a multiple of 32), so every row and every unit of codes starts 4-byte aligned. */
static inline HC_CU_HD size_t hc_qrtn_cu_row_bytes(int bits, int group, int64_t cols)
{
    return (size_t)hc_qrtn_cu_groups(group, cols) * 4 + (size_t)cols * (size_t)bits / 8;
}

/* The units of a row: as many of 128 columns as fit, then one of 64 if 64 or more remain, then one
 * of 32 if 32 remain. */
static inline HC_CU_HD int64_t hc_qrtn_cu_n_units(int64_t cols)
{
    int64_t rem = cols % 128;
    return cols / 128 + (rem >= 64) + (rem % 64 == 32);
}

/* The first column of unit u and its size (*S). */
static inline HC_CU_HD int64_t hc_qrtn_cu_unit_col(int64_t cols, int64_t u, int *S)
{
    int64_t n128 = cols / 128, rem = cols % 128, c = 128 * n128;
    if (u < n128) {
        *S = 128;
        return 128 * u;
    }
    if (u == n128 && rem >= 64) {
        *S = 64;
        return c;
    }
    *S = 32;
    return c + (rem >= 64 ? 64 : 0);
}

/* ---------------- a lane's codes of a unit ----------------
 * A warp reads a unit at once: lane p takes columns c + p, c + 32 + p, ... (one per block of 32),
 * so its x reads are coalesced and the unit's bytes are read together. Returns S / 32, the codes
 * written to q[]. u points at the unit's first byte. */

/* The 2-bit 32-unit: byte j < 8 = A[j] | A[j+8]<<2 | A[j+16]<<4 | A[j+24]<<6. */
static inline HC_CU_HD uint32_t hc_qrtn_cu_two32(const uint8_t *u, int p) { return ((uint32_t)u[p & 7] >> (2 * (p >> 3))) & 3u; }

static inline HC_CU_HD int hc_qrtn_cu_lane_codes(int bits, int S, const uint8_t *u, int p, uint32_t q[4])
{
    const int hi = p >> 4, j = p & 15; /* p = j + 16 hi */
    switch (bits) {
    case 2:
        if (S == 128) {
            uint32_t b = u[p];
            q[0] = b & 3u, q[1] = (b >> 2) & 3u, q[2] = (b >> 4) & 3u, q[3] = b >> 6;
            return 4;
        }
        if (S == 64) {
            uint32_t b = (uint32_t)u[j] >> (4 * hi);
            q[0] = b & 3u, q[1] = (b >> 2) & 3u;
            return 2;
        }
        q[0] = hc_qrtn_cu_two32(u, p);
        return 1;
    case 3:
        if (S == 128) {
            uint32_t b = u[p], h = (uint32_t)u[32 + j] >> (4 * hi);
            q[0] = b & 7u, q[1] = (b >> 3) & 7u, q[2] = h & 7u, q[3] = ((b >> 6) << 1) | ((h >> 3) & 1u);
            return 4;
        }
        if (S == 64) {
            uint32_t b = (uint32_t)u[j] >> (4 * hi);
            q[0] = b & 7u;
            q[1] = (((b >> 3) & 1u) << 2) | hc_qrtn_cu_two32(u + 16, p);
            return 2;
        }
        q[0] = hc_qrtn_cu_two32(u, p) | ((((uint32_t)u[8 + (p >> 3)] >> (p & 7)) & 1u) << 2);
        return 1;
    case 4:
        if (S == 128) {
            uint32_t b = u[p], c = u[32 + p];
            q[0] = b & 15u, q[1] = b >> 4, q[2] = c & 15u, q[3] = c >> 4;
            return 4;
        }
        if (S == 64) {
            uint32_t b = u[p];
            q[0] = b & 15u, q[1] = b >> 4;
            return 2;
        }
        q[0] = ((uint32_t)u[j] >> (4 * hi)) & 15u;
        return 1;
    default: /* 8: the code minus 128, as int8 */
        for (int k = 0; k < S / 32; k++) q[k] = (uint32_t)u[32 * k + p] ^ 0x80u;
        return S / 32;
    }
}

/* The code of column c of a row (codes: the row's codes, after its 4 G header bytes). */
static inline HC_CU_HD uint32_t hc_qrtn_cu_code_at(int bits, int64_t cols, const uint8_t *codes, int64_t c)
{
    int64_t n128 = cols / 128, u;
    if (c < 128 * n128) u = c / 128;
    else u = n128 + ((cols % 128) >= 64 && c >= 128 * n128 + 64);
    int S;
    int64_t c0 = hc_qrtn_cu_unit_col(cols, u, &S);
    uint32_t q[4];
    hc_qrtn_cu_lane_codes(bits, S, codes + c0 * bits / 8, (int)((c - c0) & 31), q);
    return q[(c - c0) >> 5];
}

/* ---------------- values ---------------- */

/* d * q exactly as a float product (no contraction into an FMA on the GPU), so that a dequantized
 * element equals the reference's d * q + m bit for bit. */
static inline HC_CU_HD float hc_qrtn_cu_mul_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

/* Element c of a row: d_g * q + m_g as the reference computes it (dequant_rows). */
static inline HC_CU_HD float hc_qrtn_cu_elem(int bits, int group, int64_t cols, const uint8_t *row, int64_t c)
{
    int64_t G = hc_qrtn_cu_groups(group, cols), g = c / group;
    uint32_t q = hc_qrtn_cu_code_at(bits, cols, row + 4 * G, c);
    return hc_qrtn_cu_mul_rn(hc_cu_f16_to_f32(hc_cu_rd_u16(row + 2 * g)), (float)q) + hc_cu_f16_to_f32(hc_cu_rd_u16(row + 2 * (G + g)));
}

/* The GEMV's form of a code: f = 1 + q / 2^bits, made by OR-ing q into the mantissa of 1.0 (an
 * integer-to-float conversion is 8x slower than an FMA on recent GPUs). With D = d 2^bits and
 * M = m - D, the weight d q + m is D f + M. */
static inline HC_CU_HD float hc_qrtn_cu_code_f(uint32_t q, int bits) { return hc_cu_bits_f32(0x3F800000u | (q << (23 - bits))); }

typedef struct hc_qrtn_cu_dm {
    float D, M;
} hc_qrtn_cu_dm;

static inline HC_CU_HD hc_qrtn_cu_dm hc_qrtn_cu_group_dm(int bits, const uint8_t *row, int64_t G, int64_t g)
{
    hc_qrtn_cu_dm r;
    float d = hc_cu_f16_to_f32(hc_cu_rd_u16(row + 2 * g)), m = hc_cu_f16_to_f32(hc_cu_rd_u16(row + 2 * (G + g)));
    r.D = d * (float)(1 << bits);
    r.M = m - r.D;
    return r;
}

/* ---------------- the GEMV: one token or a few, weights read once ----------------
 * A block of HC_QRTN_CU_THREADS threads (8 warps) holds `rows_per_block` rows with
 * 8 / rows_per_block warps each (split-K for small outputs, so that enough blocks fill the GPU);
 * the warps of a row take its units round-robin and their sums meet in shared memory. */
#define HC_QRTN_CU_THREADS 256
#define HC_QRTN_CU_WARPS (HC_QRTN_CU_THREADS / HC_CU_WARP)
#define HC_QRTN_CU_MAX_TOK 8
/* blocks wanted before a row is split over more warps: two per SM of a 132-SM H100 */
#define HC_QRTN_CU_TARGET_BLOCKS 264

/* Warps per row: 1, 2, 4 or 8, the fewest that give HC_QRTN_CU_TARGET_BLOCKS blocks, at most the
 * row's units (a warp without a unit would idle). */
static inline HC_CU_HD int hc_qrtn_cu_warps_per_row(int64_t rows, int64_t cols)
{
    int64_t units = hc_qrtn_cu_n_units(cols);
    int w = 1;
    while (w < HC_QRTN_CU_WARPS && 2 * w <= units && (rows * w + HC_QRTN_CU_WARPS - 1) / HC_QRTN_CU_WARPS < HC_QRTN_CU_TARGET_BLOCKS)
        w *= 2;
    return w;
}

static inline HC_CU_HD hc_cu_launch hc_qrtn_cu_gemv_geometry(int64_t rows, int64_t cols)
{
    int wpr = hc_qrtn_cu_warps_per_row(rows, cols), rpb = HC_QRTN_CU_WARPS / wpr;
    return hc_cu_launch_1d(hc_cu_div_up((size_t)rows, (size_t)rpb), HC_QRTN_CU_THREADS,
                           (size_t)HC_QRTN_CU_WARPS * HC_QRTN_CU_MAX_TOK * sizeof(float));
}

/* Thread (block, tid) works on row *row (>= rows: none) as warp *wi of its row's *wpr warps, lane *lane. */
static inline HC_CU_HD void hc_qrtn_cu_gemv_thread(int64_t rows, int64_t cols, unsigned block, unsigned tid, int64_t *row,
                                                   int *wi, int *wpr, int *lane)
{
    int w = (int)(tid / HC_CU_WARP);
    *wpr = hc_qrtn_cu_warps_per_row(rows, cols);
    *lane = (int)(tid % HC_CU_WARP);
    *wi = w % *wpr;
    *row = (int64_t)block * (HC_QRTN_CU_WARPS / *wpr) + w / *wpr;
}

/* Lane `lane` of warp wi (of wpr) of a row: its share of the row's dot products with n_tok tokens
 * of x (token t at x + t * cols) added into acc[t]. */
static inline HC_CU_HD void hc_qrtn_cu_lane_dot(int bits, int group, int64_t cols, const uint8_t *row, const float *x,
                                                int n_tok, int wi, int wpr, int lane, float *acc)
{
    const int64_t G = hc_qrtn_cu_groups(group, cols), nu = hc_qrtn_cu_n_units(cols);
    const uint8_t *codes = row + 4 * G;
    int64_t g_last = -1;
    hc_qrtn_cu_dm dm = { 0.0f, 0.0f };
    for (int64_t u = wi; u < nu; u += wpr) {
        int S;
        int64_t c = hc_qrtn_cu_unit_col(cols, u, &S);
        uint32_t q[4];
        int n = hc_qrtn_cu_lane_codes(bits, S, codes + c * bits / 8, lane, q);
        for (int k = 0; k < n; k++) {
            int64_t col = c + 32 * k + lane, g = (c + 32 * k) / group;
            if (g != g_last) {
                dm = hc_qrtn_cu_group_dm(bits, row, G, g);
                g_last = g;
            }
            float w = fmaf(dm.D, hc_qrtn_cu_code_f(q[k], bits), dm.M);
            for (int t = 0; t < n_tok; t++) acc[t] = fmaf(w, x[(size_t)t * (size_t)cols + (size_t)col], acc[t]);
        }
    }
}

/* ---------------- dequant_rows: one block per row, thread k0 writes k0, k0 + threads, ... ---------------- */
#define HC_QRTN_CU_DEQ_THREADS 256

static inline HC_CU_HD hc_cu_launch hc_qrtn_cu_dequant_geometry(int n_rows)
{
    return hc_cu_launch_1d((unsigned)n_rows, HC_QRTN_CU_DEQ_THREADS, 0);
}

#endif
