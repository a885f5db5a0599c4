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
 * of x (token t at x + t * cols) over the units from u_first on, added into acc[t]. */
static inline HC_CU_HD void hc_qrtn_cu_lane_dot(int bits, int group, int64_t cols, const uint8_t *row, const float *x,
                                                int n_tok, int64_t u_first, int wi, int wpr, int lane, float *acc)
{
    const int64_t G = hc_qrtn_cu_groups(group, cols), nu = hc_qrtn_cu_n_units(cols);
    const uint8_t *codes = row + 4 * G;
    int64_t g_last = -1;
    hc_qrtn_cu_dm dm = { 0.0f, 0.0f };
    for (int64_t u = u_first + wi; u < nu; u += wpr) {
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

/* ---------------- the wide GEMV: the plain one's work in words, several rows sharing x ----------------
 * The plain GEMV above has lane p read byte p of a unit: a warp asks 32 to 64 bytes of memory per
 * step, too few in flight to stream a GPU's bandwidth, and every weight costs a scale multiply.
 * A unit's bytes fall into 8 slots s (bytes 4 s .. 4 s + 3 of each of its 32-byte parts: columns
 * 4 s .. 4 s + 3 of each block of 32), whose 16 codes come in one to four 4-byte words
 * (hc_qrtn_cu_quad_words), 4 codes a block by a shift and a mask, one float a code by a byte
 * permute. Here a warp takes 4 W units of a row at a time (W = HC_QRTN_CU_WIDE_W), lane l working in
 * unit l / (8 / W) of them on W slots. A warp holds R rows (hc_qrtn_cu_wide_rows) that share x, read
 * 16 bytes at a time, and per group it sums f x and x before the group's D and M apply:
 * sum (D f + M) x = D sum(f x) + M sum(x), the scales' cost shared by a lane's 16 W codes of a group.
 * A row's units of 64 and 32 (its tail) take the plain lane code. x must be 16-byte aligned
 * (hc_qrtn_cu_wide_ok). */
#define HC_QRTN_CU_WIDE_MAX_ROWS 4
/* Slots a lane takes in a unit (W): 8 / W lanes a unit, 4 W units a warp step. 2 rather than 1: the
 * loop executes 3.9 instructions a 3-bit weight instead of 4.8 (SASS for sm_90, groups of 128). */
#define HC_QRTN_CU_WIDE_W 2

/* Rows a warp holds for n_tok tokens: R * n_tok <= HC_QRTN_CU_MAX_TOK sums a lane keeps (1 .. 4 rows). */
static inline HC_CU_HD int hc_qrtn_cu_wide_rows(int n_tok)
{
    int r = HC_QRTN_CU_MAX_TOK / n_tok;
    return r > HC_QRTN_CU_WIDE_MAX_ROWS ? HC_QRTN_CU_WIDE_MAX_ROWS : r < 1 ? 1 : r;
}

static inline HC_CU_HD int hc_qrtn_cu_wide_ok(int64_t cols, uintptr_t x) { return cols >= 128 && cols % 32 == 0 && x % 16 == 0; }

/* The words of slot s (0 .. 7) in the 128-unit at u: bits 2: the word of bytes 4 s ..; 3: that and
 * the word of the high parts (bytes 32 + 4 (s % 4) .., shifted to the slot's nibbles); 4: the words
 * of bytes 4 s .. and 32 + 4 s ..; 8: the words of bytes 32 k + 4 s .. for k < 4. */
static inline HC_CU_HD void hc_qrtn_cu_quad_words(int bits, const uint8_t *u, int s, uint32_t wd[4])
{
    switch (bits) {
    case 2: wd[0] = hc_cu_ld4(u + 4 * s); break;
    case 3:
        wd[0] = hc_cu_ld4(u + 4 * s);
        wd[1] = hc_cu_ld4(u + 32 + 4 * (s & 3)) >> (4 * (s >> 2));
        break;
    case 4:
        wd[0] = hc_cu_ld4(u + 4 * s);
        wd[1] = hc_cu_ld4(u + 32 + 4 * s);
        break;
    default:
        for (int k = 0; k < 4; k++) wd[k] = hc_cu_ld4(u + 32 * k + 4 * s);
    }
}

/* The codes of columns 32 k + 4 s + i (i < 4) of the unit as the 4 bytes of a word (byte i: column
 * 4 s + i), from slot s's words by a shift and a mask for the 4 of them (the layouts of
 * hc_qrtn_cu_lane_codes, byte i of a word being lane 4 s + i's byte). */
static inline HC_CU_HD uint32_t hc_qrtn_cu_quad_bytes(int bits, const uint32_t wd[4], int k)
{
    switch (bits) {
    case 2: return (wd[0] >> (2 * k)) & 0x03030303u;
    case 3:
        if (k < 2) return (wd[0] >> (3 * k)) & 0x07070707u;
        return k == 2 ? wd[1] & 0x07070707u : ((wd[0] >> 5) & 0x06060606u) | ((wd[1] >> 3) & 0x01010101u);
    case 4: return (wd[k >> 1] >> (4 * (k & 1))) & 0x0f0f0f0fu;
    default: return wd[k] ^ 0x80808080u;
    }
}

/* D and M of a group for the codes' floats (hc_cu_byte_f, full for bits 8): the weight d q + m is
 * D f + M. In D sum(f x) + M sum(x) the 2^7 d sum(x) parts cancel: a few bits of f32's 24 for codes of
 * 2 to 4 bits, about 8 for 8 (sums then good to about 2^-16 of sum |w x|, which the tests' bounds take). */
static inline HC_CU_HD hc_qrtn_cu_dm hc_qrtn_cu_byte_dm(int bits, float d, float m)
{
    hc_qrtn_cu_dm r;
    r.D = d * (bits == 8 ? 65536.0f : 256.0f);
    r.M = m - d * (bits == 8 ? 32768.0f : 128.0f);
    return r;
}

/* Warps per row group of R rows: as hc_qrtn_cu_warps_per_row, the fewest that give
 * HC_QRTN_CU_TARGET_BLOCKS blocks, at most the group's steps (of 4 W 128-units, then its tail units). */
static inline HC_CU_HD int hc_qrtn_cu_wide_wpr(int64_t rows, int64_t cols, int R)
{
    const int U = 4 * HC_QRTN_CU_WIDE_W; /* units a step */
    int64_t n128 = cols / 128, steps = (n128 + U - 1) / U + hc_qrtn_cu_n_units(cols) - n128, groups = (rows + R - 1) / R;
    int w = 1;
    while (w < HC_QRTN_CU_WARPS && 2 * w <= steps && (groups * w + HC_QRTN_CU_WARPS - 1) / HC_QRTN_CU_WARPS < HC_QRTN_CU_TARGET_BLOCKS)
        w *= 2;
    return w;
}

static inline HC_CU_HD hc_cu_launch hc_qrtn_cu_wide_geometry(int64_t rows, int64_t cols, int n_tok)
{
    int R = hc_qrtn_cu_wide_rows(n_tok), gpb = HC_QRTN_CU_WARPS / hc_qrtn_cu_wide_wpr(rows, cols, R);
    return hc_cu_launch_1d(hc_cu_div_up((size_t)((rows + R - 1) / R), (size_t)gpb), HC_QRTN_CU_THREADS,
                           (size_t)HC_QRTN_CU_WARPS * HC_QRTN_CU_MAX_TOK * sizeof(float));
}

/* Thread (block, tid) works on the R rows from *row0 (>= rows: none) as warp *wi of their *wpr warps. */
static inline HC_CU_HD void hc_qrtn_cu_wide_thread(int64_t rows, int64_t cols, int R, unsigned block, unsigned tid,
                                                   int64_t *row0, int *wi, int *wpr, int *lane)
{
    int w = (int)(tid / HC_CU_WARP);
    *wpr = hc_qrtn_cu_wide_wpr(rows, cols, R);
    *lane = (int)(tid % HC_CU_WARP);
    *wi = w % *wpr;
    *row0 = ((int64_t)block * (HC_QRTN_CU_WARPS / *wpr) + w / *wpr) * R;
}

/* The R rows from row0 (of `rows`, rb bytes each, at w) a warp holds; rows past the last read the
 * last row again (their sums are not stored), so that the warp does not diverge. */
static inline HC_CU_HD void hc_qrtn_cu_wide_row_ptrs(const uint8_t *w, size_t rb, int64_t row0, int64_t rows, int R,
                                                     const uint8_t *row[HC_QRTN_CU_WIDE_MAX_ROWS])
{
    HC_CU_UNROLL
    for (int r = 0; r < R; r++) row[r] = w + (size_t)(row0 + r < rows ? row0 + r : rows - 1) * rb;
}

/* The words of the lane's slots s .. s + W - 1 in 128-unit u of the R rows (G groups a row). */
static inline HC_CU_HD void hc_qrtn_cu_wide_words(int bits, int G, const uint8_t *const row[HC_QRTN_CU_WIDE_MAX_ROWS], int R,
                                                  int u, int s, uint32_t wd[HC_QRTN_CU_WIDE_MAX_ROWS][HC_QRTN_CU_WIDE_W][4])
{
    HC_CU_UNROLL
    for (int r = 0; r < R; r++) {
        HC_CU_UNROLL
        for (int j = 0; j < HC_QRTN_CU_WIDE_W; j++) hc_qrtn_cu_quad_words(bits, row[r] + 4 * G + 16 * bits * u, s + j, wd[r][j]);
    }
}

/* ---------------- the wide GEMV with x in int8 ----------------
 * x quantized in blocks of 32, as the GGUF block types' GEMV takes it (hc_cu_q8x_block): d = max |x|
 * / 127 and codes qx = rint(x 127 / max |x|) in [-127, 127] (the cpu device's rtn kernels group their
 * blocks' scales instead: qrtn.h). A block of the kernel quantizes its tokens' x into shared memory
 * first, 2 threads a block of 32 (hc_qrtn_cu_q8_amax16, _scale, _pack4), so that no launch of its own
 * and no buffer is needed. Then the wide GEMV's lanes, rows and words, but a lane's 4 codes of a slot
 * and block are dotted with x's 4 codes at once (dp4a), the codes being bytes already
 * (hc_qrtn_cu_quad_bytes; bits 8: the stored bytes, code - 128 as int8). Per block, each row's integer sum and x's (for the
 * minimum) become floats by hc_cu_biased_f and take d; per group the row's scale s and minimum m
 * apply: sum (s q + m) d qx = s sum(d sum q qx) + m sum(d sum qx) (bits 8: m + 128 s for the
 * minimum). Where the float kernel spends a byte permute and an FFMA a weight, this spends a quarter
 * of a dp4a and its share of the masks. The tail units of 64 and 32 take the plain lane code with x
 * in f32. */

/* Shared memory for n_tok tokens of x quantized: cols codes and cols / 32 float scales a token. */
static inline HC_CU_HD size_t hc_qrtn_cu_q8_shared(int64_t cols, int n_tok) { return (size_t)n_tok * (size_t)cols * 9 / 8; }
/* at most this, besides the partial sums: 44 KiB in all, within the 48 a launch may ask without opting
 * in (and the GPU's own 1 KiB a block) */
#define HC_QRTN_CU_Q8_MAX_SHARED (44 * 1024 - HC_QRTN_CU_WARPS * HC_QRTN_CU_MAX_TOK * 4)

static inline HC_CU_HD int hc_qrtn_cu_wide_q8_ok(int64_t cols, int n_tok, uintptr_t x)
{
    return hc_qrtn_cu_wide_ok(cols, x) && hc_qrtn_cu_q8_shared(cols, n_tok) <= HC_QRTN_CU_Q8_MAX_SHARED;
}

/* The values a thread quantizes: half a block of 32 (its partner thread, lane ^ 1, has the other half). */
#define HC_QRTN_CU_Q8_PER_THREAD 16

/* The largest |v| of a thread's 16 values (the block's: the larger of the two threads'). */
static inline HC_CU_HD float hc_qrtn_cu_q8_amax16(const float v[HC_QRTN_CU_Q8_PER_THREAD])
{
    float a[8];
    for (int i = 0; i < 8; i++) a[i] = fmaxf(fabsf(v[i]), fabsf(v[i + 8]));
    for (int n = 4; n > 0; n >>= 1)
        for (int i = 0; i < n; i++) a[i] = fmaxf(a[i], a[i + n]);
    return a[0];
}

/* A block's scale d = amax / 127 (as a product) and in *id the codes' multiplier 127 / amax, the same
 * bits on the GPU (an IEEE reciprocal) and here; 0 for a block of zeros or of values so small (below
 * 2^-100) that the multiplier could overflow: their codes are then 0. */
static inline HC_CU_HD float hc_qrtn_cu_q8_scale(float amax, float *id)
{
#ifdef __CUDA_ARCH__
    const float r = __frcp_rn(amax);
#else
    const float r = 1.0f / amax;
#endif
    *id = amax >= 7.8886091e-31f ? 127.0f * r : 0.0f;
    return amax * (1.0f / 127.0f);
}

/* The codes rint(v id) of 4 values (in [-127, 127]) as a word's bytes: on the GPU rounded by the float
 * adder (1.5 2^23 + c holds the code c in its low byte), not a conversion; the same codes here. */
static inline HC_CU_HD uint32_t hc_qrtn_cu_q8_pack4(const float v[4], float id)
{
    uint32_t c[4];
    for (int i = 0; i < 4; i++) {
#ifdef __CUDA_ARCH__
        c[i] = hc_cu_f32_bits(__fadd_rn(__fmul_rn(v[i], id), 12582912.0f));
#else
        c[i] = (uint32_t)hc_cu_rint(v[i] * id);
#endif
    }
    return hc_cu_byte_perm(hc_cu_byte_perm(c[0], c[1], 0x0040u), hc_cu_byte_perm(c[2], c[3], 0x0040u), 0x5410u);
}

/* A block of 32 of x quantized as the kernel's two threads of it quantize it (quantize_x of
 * qrtn_cuda.cu): its 32 codes to q (4-byte aligned) and its scale, returned. For the CPU tests. */
static inline HC_CU_HD float hc_qrtn_cu_q8_block(const float x[32], uint8_t q[32])
{
    float id, d = hc_qrtn_cu_q8_scale(fmaxf(hc_qrtn_cu_q8_amax16(x), hc_qrtn_cu_q8_amax16(x + 16)), &id);
    for (int i = 0; i < 8; i++) {
        uint32_t c = hc_qrtn_cu_q8_pack4(x + 4 * i, id);
        memcpy(q + 4 * i, &c, 4);
    }
    return d;
}

/* x's 4 W codes of the lane's slots s .. s + W - 1 in block k of the unit at column c (W words), from
 * the token's row of codes xr (16-byte aligned). */
static inline HC_CU_HD void hc_qrtn_cu_q8_words(const uint8_t *xr, int c, int k, int s, uint32_t xw[HC_QRTN_CU_WIDE_W])
{
#if HC_QRTN_CU_WIDE_W == 2
    hc_cu_ld8(xr + c + 32 * k + 4 * s, xw);
#else
    for (int j = 0; j < HC_QRTN_CU_WIDE_W; j++) xw[j] = hc_cu_ld4(xr + c + 32 * k + 4 * (s + j));
#endif
}

/* Block k of the unit at column c, the lane's slots s .. s + W - 1 (words wd of R rows), x in f32: each
 * row's sum(f x) into sf[r n_tok + t] and x's sum into sx[t]. */
static inline HC_CU_HD void hc_qrtn_cu_wide_block_f32(int bits, const uint32_t wd[HC_QRTN_CU_WIDE_MAX_ROWS][HC_QRTN_CU_WIDE_W][4],
                                                      int R, const float *x, int64_t cols, int c, int k, int s, int n_tok,
                                                      float *sf, float *sx)
{
    HC_CU_UNROLL
    for (int j = 0; j < HC_QRTN_CU_WIDE_W; j++) {
        float xs[HC_QRTN_CU_MAX_TOK][4];
        HC_CU_UNROLL
        for (int t = 0; t < n_tok; t++) {
            hc_cu_ld_f4(x + (size_t)t * (size_t)cols + (c + 32 * k + 4 * (s + j)), xs[t]);
            sx[t] += (xs[t][0] + xs[t][1]) + (xs[t][2] + xs[t][3]);
        }
        HC_CU_UNROLL
        for (int r = 0; r < R; r++) {
            uint32_t m = hc_qrtn_cu_quad_bytes(bits, wd[r][j], k);
            HC_CU_UNROLL
            for (int i = 0; i < 4; i++) {
                float f = hc_cu_byte_f(m, i, bits == 8);
                HC_CU_UNROLL
                for (int t = 0; t < n_tok; t++) sf[r * n_tok + t] = fmaf(f, xs[t][i], sf[r * n_tok + t]);
            }
        }
    }
}

/* The same with x in int8 (codes xq, token t at xq + t cols; scales xds, token t at xds + t cols / 32):
 * each row's sum(d sum q qx) into sf and x's sum(d sum qx) into sx. */
static inline HC_CU_HD void hc_qrtn_cu_wide_block_q8(int bits, const uint32_t wd[HC_QRTN_CU_WIDE_MAX_ROWS][HC_QRTN_CU_WIDE_W][4],
                                                     int R, const uint8_t *xq, const float *xds, int64_t cols, int c, int k, int s,
                                                     int n_tok, float *sf, float *sx)
{
    uint32_t xw[HC_QRTN_CU_MAX_TOK][HC_QRTN_CU_WIDE_W];
    float dx[HC_QRTN_CU_MAX_TOK];
    HC_CU_UNROLL
    for (int t = 0; t < n_tok; t++) {
        hc_qrtn_cu_q8_words(xq + (size_t)t * (size_t)cols, c, k, s, xw[t]);
        dx[t] = xds[t * (int)(cols / 32) + c / 32 + k];
        int xs = HC_CU_INT_BIAS;
        HC_CU_UNROLL
        for (int j = 0; j < HC_QRTN_CU_WIDE_W; j++) xs = hc_cu_dp4a(0x01010101u, xw[t][j], xs);
        sx[t] = fmaf(dx[t], hc_cu_biased_f(xs), sx[t]);
    }
    HC_CU_UNROLL
    for (int r = 0; r < R; r++) {
        int is[HC_QRTN_CU_MAX_TOK];
        HC_CU_UNROLL
        for (int t = 0; t < n_tok; t++) is[t] = HC_CU_INT_BIAS;
        HC_CU_UNROLL
        for (int j = 0; j < HC_QRTN_CU_WIDE_W; j++) {
            uint32_t m = bits == 8 ? wd[r][j][k] : hc_qrtn_cu_quad_bytes(bits, wd[r][j], k);
            HC_CU_UNROLL
            for (int t = 0; t < n_tok; t++) is[t] = hc_cu_dp4a(m, xw[t][j], is[t]);
        }
        HC_CU_UNROLL
        for (int t = 0; t < n_tok; t++) sf[r * n_tok + t] = fmaf(dx[t], hc_cu_biased_f(is[t]), sf[r * n_tok + t]);
    }
}

/* Lane `lane` of warp wi (of wpr) of the R rows from row0 (of `rows`, rb bytes each, at w: as
 * hc_qrtn_cu_wide_row_ptrs takes them): its share of their dot products with n_tok tokens of x, added
 * into acc[r * n_tok + t]; x in f32, or with xq (q8) in int8 as hc_qrtn_cu_wide_block_q8 takes it.
 * Indices within a row are 32-bit (cols < 2^31: the device's check) and the group a shift. */
static inline HC_CU_HD void hc_qrtn_cu_wide_dot(int bits, int group, int64_t cols, const uint8_t *w, size_t rb, int64_t row0,
                                                int64_t rows, int R, const float *x, int q8, const uint8_t *xq, const float *xds,
                                                int n_tok, int wi, int wpr, int lane, float *acc)
{
    const int W = HC_QRTN_CU_WIDE_W, U = 4 * W, L = 8 / W; /* words a lane, units a step, lanes a unit */
    const int G = (int)hc_qrtn_cu_groups(group, cols), n128 = (int)(cols / 128), q = lane / L, s = W * (lane % L);
    const int kpg = group / 32, gshift = group == 32 ? 5 : group == 64 ? 6 : 7; /* blocks of 32 a group spans */
    const uint8_t *row[HC_QRTN_CU_WIDE_MAX_ROWS];
    hc_qrtn_cu_wide_row_ptrs(w, rb, row0, rows, R, row);
    for (int u0 = U * wi; u0 < n128; u0 += U * wpr) {
        const int u = u0 + q, c = 128 * u;
        if (u >= n128) continue; /* the last step of a row with fewer units: no shuffles follow */
        uint32_t wd[HC_QRTN_CU_WIDE_MAX_ROWS][HC_QRTN_CU_WIDE_W][4]; /* lane slots s .. s + W - 1 */
        hc_qrtn_cu_wide_words(bits, G, row, R, u, s, wd);
        float sf[HC_QRTN_CU_WIDE_MAX_ROWS * HC_QRTN_CU_MAX_TOK], sx[HC_QRTN_CU_MAX_TOK];
        HC_CU_UNROLL
        for (int j = 0; j < R * n_tok; j++) sf[j] = 0.0f;
        HC_CU_UNROLL
        for (int t = 0; t < n_tok; t++) sx[t] = 0.0f;
        HC_CU_UNROLL
        for (int k = 0; k < 4; k++) {
            if (q8) hc_qrtn_cu_wide_block_q8(bits, wd, R, xq, xds, cols, c, k, s, n_tok, sf, sx);
            else hc_qrtn_cu_wide_block_f32(bits, wd, R, x, cols, c, k, s, n_tok, sf, sx);
            if ((k + 1) & (kpg - 1)) continue;
            const int g = (c + 32 * k) >> gshift; /* the group ends with this block */
            HC_CU_UNROLL
            for (int r = 0; r < R; r++) {
                const float d = hc_cu_f16_to_f32(hc_cu_ld2(row[r] + 2 * g)), m = hc_cu_f16_to_f32(hc_cu_ld2(row[r] + 2 * (G + g)));
                /* int8: s sum(d sum q qx) + m sum(d sum qx), bits 8 with m + 128 s; f32: the codes' D and M */
                hc_qrtn_cu_dm dm = hc_qrtn_cu_byte_dm(bits, d, m);
                if (q8) dm.D = d, dm.M = bits == 8 ? fmaf(128.0f, d, m) : m;
                HC_CU_UNROLL
                for (int t = 0; t < n_tok; t++) {
                    acc[r * n_tok + t] = fmaf(dm.D, sf[r * n_tok + t], fmaf(dm.M, sx[t], acc[r * n_tok + t]));
                    sf[r * n_tok + t] = 0.0f;
                }
            }
            HC_CU_UNROLL
            for (int t = 0; t < n_tok; t++) sx[t] = 0.0f;
        }
    }
    if (n128 == hc_qrtn_cu_n_units(cols)) return;
    HC_CU_UNROLL
    for (int r = 0; r < R; r++) hc_qrtn_cu_lane_dot(bits, group, cols, row[r], x, n_tok, n128, wi, wpr, lane, acc + r * n_tok);
}

/* ---------------- dequant_rows: one block per row ----------------
 * Thread k0 takes slots k0, k0 + threads, ... of the row's 128-units (8 a unit, as the wide GEMV's:
 * hc_qrtn_cu_dequant_slot), then its tail's columns k0, k0 + threads, ... one by one. */
#define HC_QRTN_CU_DEQ_THREADS 256

/* The 16 elements of slot j (unit j / 8, slot s = j % 8) of a row: v[4 k + i] is column
 * 128 (j / 8) + 32 k + 4 s + i, d q + m as hc_qrtn_cu_elem computes it (bit for bit). */
static inline HC_CU_HD void hc_qrtn_cu_dequant_slot(int bits, int group, int64_t cols, const uint8_t *row, int64_t j, float v[16])
{
    const int64_t G = hc_qrtn_cu_groups(group, cols), u = j >> 3;
    const int s = (int)(j & 7), gshift = group == 32 ? 5 : group == 64 ? 6 : 7;
    uint32_t wd[4];
    hc_qrtn_cu_quad_words(bits, row + 4 * G + (size_t)(16 * bits) * (size_t)u, s, wd);
    for (int k = 0; k < 4; k++) {
        const int64_t g = (128 * u + 32 * k) >> gshift;
        const float d = hc_cu_f16_to_f32(hc_cu_ld2(row + 2 * g)), m = hc_cu_f16_to_f32(hc_cu_ld2(row + 2 * (G + g)));
        const uint32_t q = hc_qrtn_cu_quad_bytes(bits, wd, k);
        for (int i = 0; i < 4; i++) v[4 * k + i] = hc_qrtn_cu_mul_rn(d, (float)((q >> (8 * i)) & 0xffu)) + m;
    }
}

static inline HC_CU_HD hc_cu_launch hc_qrtn_cu_dequant_geometry(int n_rows)
{
    return hc_cu_launch_1d((unsigned)n_rows, HC_QRTN_CU_DEQ_THREADS, 0);
}

#endif
