/* dequant.cuh: one weight element of any type the CUDA kernels read (f32, f16, bf16, Q4_0 .. Q8_0 and
 * the K-quants Q2_K .. Q6_K), and the geometry of the dequantizing kernels (rows to f32, GEMV). */
#ifndef HC_CUDA_DEQUANT_CUH
#define HC_CUDA_DEQUANT_CUH

#include "cuda_common.cuh"
#include "hc/hc_tensor.h"

/* Elements per block of the 32-blocks below, and per super-block of the K-quants. */
#define HC_CU_QBLOCK 32
#define HC_CU_QK 256

/* 1 when the CUDA kernels can read weights of type t. */
static inline HC_CU_HD int hc_cu_dtype_supported(int t)
{
    switch (t) {
    case HC_F32: case HC_F16: case HC_BF16:
    case HC_Q4_0: case HC_Q4_1: case HC_Q5_0: case HC_Q5_1: case HC_Q8_0:
    case HC_Q2_K: case HC_Q3_K: case HC_Q4_K: case HC_Q5_K: case HC_Q6_K: return 1;
    default: return 0;
    }
}

/* ---- element j (0..31) of one block ---- */

/* Q4_0: f16 d, qs[16]; element j < 16 is the low nibble of qs[j], element j >= 16 the high
 * nibble of qs[j - 16]; w = d * (q - 8). */
static inline HC_CU_HD float hc_cu_q4_0_elem(const uint8_t *b, int j)
{
    uint32_t q = b[2 + (j & 15)];
    int v = (int)(j < 16 ? (q & 0xfu) : (q >> 4));
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)(v - 8);
}

/* Q4_1: f16 d, f16 m, qs[16] (nibbles as Q4_0); w = d * q + m. */
static inline HC_CU_HD float hc_cu_q4_1_elem(const uint8_t *b, int j)
{
    uint32_t q = b[4 + (j & 15)];
    int v = (int)(j < 16 ? (q & 0xfu) : (q >> 4));
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)v + hc_cu_f16_to_f32(hc_cu_rd_u16(b + 2));
}

/* Q5_0: f16 d, u32 qh, qs[16]; the fifth bit of element j is bit j of qh; w = d * (q - 16). */
static inline HC_CU_HD float hc_cu_q5_0_elem(const uint8_t *b, int j)
{
    uint32_t q = b[6 + (j & 15)];
    uint32_t hi = (hc_cu_rd_u32(b + 2) >> j) & 1u;
    int v = (int)((j < 16 ? (q & 0xfu) : (q >> 4)) | (hi << 4));
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)(v - 16);
}

/* Q5_1: f16 d, f16 m, u32 qh, qs[16]; w = d * q + m. */
static inline HC_CU_HD float hc_cu_q5_1_elem(const uint8_t *b, int j)
{
    uint32_t q = b[8 + (j & 15)];
    uint32_t hi = (hc_cu_rd_u32(b + 4) >> j) & 1u;
    int v = (int)((j < 16 ? (q & 0xfu) : (q >> 4)) | (hi << 4));
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)v + hc_cu_f16_to_f32(hc_cu_rd_u16(b + 2));
}

/* Q8_0: f16 d, int8 qs[32]; w = d * q. */
static inline HC_CU_HD float hc_cu_q8_0_elem(const uint8_t *b, int j)
{
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)(int8_t)b[2 + j];
}


/* ---- element j (0..255) of one K-quant super-block (layouts as core/tensor.c reads them) ---- */

/* Q2_K: scales[16] (low nibble scale, high nibble min, per 16 elements), qs[64], f16 d, f16 dmin.
 * Element j: half h = j / 128, bit pair s = (j % 128) / 32, part (j % 32) / 16, l = j % 16;
 * q = bits 2s of qs[32 h + 16 part + l]; scale pair 8 h + 2 s + part; w = d sc q - dmin mn. */
static inline HC_CU_HD float hc_cu_q2_k_elem(const uint8_t *b, int j)
{
    int h = j >> 7, s = (j >> 5) & 3, part = (j >> 4) & 1, l = j & 15;
    uint32_t sc = b[8 * h + 2 * s + part];
    uint32_t q = ((uint32_t)b[16 + 32 * h + 16 * part + l] >> (2 * s)) & 3u;
    float d = hc_cu_f16_to_f32(hc_cu_rd_u16(b + 80)), dmin = hc_cu_f16_to_f32(hc_cu_rd_u16(b + 82));
    return d * (float)(sc & 0xfu) * (float)q - dmin * (float)(sc >> 4);
}

/* Q3_K: hmask[32], qs[64] (as Q2_K's), scales[12] (sixteen 6-bit, biased by 32), f16 d. The third bit
 * of element j is bit 4 h + s of hmask[16 part + l] (clear: subtract 4); w = d (sc - 32) q. */
static inline HC_CU_HD int hc_cu_q3_k_scale(const uint8_t *sc, int i)
{
    int lo = i < 8 ? (sc[i] & 0xf) : (sc[i - 8] >> 4);
    int hi = (sc[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

static inline HC_CU_HD float hc_cu_q3_k_elem(const uint8_t *b, int j)
{
    int h = j >> 7, s = (j >> 5) & 3, part = (j >> 4) & 1, l = j & 15, idx = 16 * part + l;
    int v = (int)(((uint32_t)b[32 + 32 * h + idx] >> (2 * s)) & 3u);
    if (!(((uint32_t)b[idx] >> (4 * h + s)) & 1u)) v -= 4;
    float d = hc_cu_f16_to_f32(hc_cu_rd_u16(b + 108));
    return d * (float)hc_cu_q3_k_scale(b + 96, 8 * h + 2 * s + part) * (float)v;
}

/* Q4_K / Q5_K: eight 6-bit (scale, min) pairs in 12 bytes (see core/tensor.c). */
static inline HC_CU_HD void hc_cu_k4_scale_min(const uint8_t *q, int j, int *sc, int *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: f16 d, f16 dmin, scales[12], qs[128]: element j, i = j / 64, sub-block 2 i + (j % 64 >= 32),
 * l = j % 32: a nibble of qs[32 i + l]; w = d sc q - dmin mn. */
static inline HC_CU_HD float hc_cu_q4_k_elem(const uint8_t *b, int j)
{
    int i = j >> 6, upper = (j >> 5) & 1, l = j & 31, sc, mn;
    hc_cu_k4_scale_min(b + 4, 2 * i + upper, &sc, &mn);
    uint32_t q = ((uint32_t)b[16 + 32 * i + l] >> (4 * upper)) & 0xfu;
    float d = hc_cu_f16_to_f32(hc_cu_rd_u16(b)), dmin = hc_cu_f16_to_f32(hc_cu_rd_u16(b + 2));
    return d * (float)sc * (float)q - dmin * (float)mn;
}

/* Q5_K: as Q4_K with qh[32] at 16 and qs at 48; the fifth bit is bit (sub-block) of qh[l]. */
static inline HC_CU_HD float hc_cu_q5_k_elem(const uint8_t *b, int j)
{
    int i = j >> 6, upper = (j >> 5) & 1, l = j & 31, sub = 2 * i + upper, sc, mn;
    hc_cu_k4_scale_min(b + 4, sub, &sc, &mn);
    uint32_t q = (((uint32_t)b[48 + 32 * i + l] >> (4 * upper)) & 0xfu) | ((((uint32_t)b[16 + l] >> sub) & 1u) << 4);
    float d = hc_cu_f16_to_f32(hc_cu_rd_u16(b)), dmin = hc_cu_f16_to_f32(hc_cu_rd_u16(b + 2));
    return d * (float)sc * (float)q - dmin * (float)mn;
}

/* Q6_K: ql[128], qh[64], int8 scales[16], f16 d. Element j: half h, k = (j % 128) / 32, l = j % 32:
 * low nibble (k < 2) or high nibble of ql[64 h + l + 32 (k & 1)], bits 2k of qh[32 h + l];
 * scale 8 h + l / 16 + 2 k; w = d sc (q - 32). */
static inline HC_CU_HD float hc_cu_q6_k_elem(const uint8_t *b, int j)
{
    int h = j >> 7, k = (j >> 5) & 3, l = j & 31;
    uint32_t lo = ((uint32_t)b[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xfu;
    uint32_t hi = ((uint32_t)b[128 + 32 * h + l] >> (2 * k)) & 3u;
    int q = (int)(lo | (hi << 4)) - 32;
    float d = hc_cu_f16_to_f32(hc_cu_rd_u16(b + 208));
    return d * (float)(int8_t)b[192 + 8 * h + l / 16 + 2 * k] * (float)q;
}

/* Elements of one block: 1 for plain types, 32 or 256 (K-quants). */
static inline HC_CU_HD int hc_cu_block_elems(int t)
{
    switch (t) {
    case HC_F32: case HC_F16: case HC_BF16: return 1;
    case HC_Q2_K: case HC_Q3_K: case HC_Q4_K: case HC_Q5_K: case HC_Q6_K: return HC_CU_QK;
    default: return HC_CU_QBLOCK;
    }
}

/* Bytes of one block (one element for plain types); 0 for a type the kernels cannot read. */
static inline HC_CU_HD int hc_cu_block_bytes(int t)
{
    switch (t) {
    case HC_F32: return 4;
    case HC_F16: case HC_BF16: return 2;
    case HC_Q4_0: return 18;
    case HC_Q4_1: return 20;
    case HC_Q5_0: return 22;
    case HC_Q5_1: return 24;
    case HC_Q8_0: return 34;
    case HC_Q2_K: return 84;
    case HC_Q3_K: return 110;
    case HC_Q4_K: return 144;
    case HC_Q5_K: return 176;
    case HC_Q6_K: return 210;
    default: return 0;
    }
}

/* Element j of one block of a block type t (NaN for another type). */
static inline HC_CU_HD float hc_cu_blk_elem(int t, const uint8_t *blk, int j)
{
    switch (t) {
    case HC_Q4_0: return hc_cu_q4_0_elem(blk, j);
    case HC_Q4_1: return hc_cu_q4_1_elem(blk, j);
    case HC_Q5_0: return hc_cu_q5_0_elem(blk, j);
    case HC_Q5_1: return hc_cu_q5_1_elem(blk, j);
    case HC_Q8_0: return hc_cu_q8_0_elem(blk, j);
    case HC_Q2_K: return hc_cu_q2_k_elem(blk, j);
    case HC_Q3_K: return hc_cu_q3_k_elem(blk, j);
    case HC_Q4_K: return hc_cu_q4_k_elem(blk, j);
    case HC_Q5_K: return hc_cu_q5_k_elem(blk, j);
    case HC_Q6_K: return hc_cu_q6_k_elem(blk, j);
    default: return NAN;
    }
}

/* Element k of a row of type t starting at `row`. Inside a kernel templated on t the switch
 * folds away. NaN for an unsupported type (the host refuses those before launching). */
static inline HC_CU_HD float hc_cu_deq_elem(int t, const uint8_t *row, int64_t k)
{
    switch (t) {
    case HC_F32: return hc_cu_bits_f32(hc_cu_rd_u32(row + (size_t)k * 4));
    case HC_F16: return hc_cu_f16_to_f32(hc_cu_rd_u16(row + (size_t)k * 2));
    case HC_BF16: return hc_cu_bf16_to_f32(hc_cu_rd_u16(row + (size_t)k * 2));
    default: {
        const int be = hc_cu_block_elems(t);
        return hc_cu_blk_elem(t, row + (size_t)(k / be) * (size_t)hc_cu_block_bytes(t), (int)(k % be));
    }
    }
}

/* ---- dequant_rows: out[r][k] = element k of weight row (ids ? ids[r] : row0 + r) ----
 * One block of HC_CU_DEQ_THREADS threads per output row; thread k0 writes k0, k0 + threads, ... */
#define HC_CU_DEQ_THREADS 256

static inline HC_CU_HD hc_cu_launch hc_cu_dequant_rows_geometry(int n_rows)
{
    return hc_cu_launch_1d((unsigned)n_rows, HC_CU_DEQ_THREADS, 0);
}

static inline HC_CU_HD int64_t hc_cu_dequant_src_row(const int32_t *ids, int64_t row0, unsigned block)
{
    return ids ? (int64_t)ids[block] : row0 + (int64_t)block;
}

/* ---- GEMV (one token): y[o] = sum_k W[o][k] * x[k] ----
 * A block holds up to HC_CU_GEMV_ROWS warps, each warp `warp_rows` output rows (1, or up to
 * HC_CU_GEMV_RUN_ROWS for block types read by runs: hc_cu_gemv_warp_rows); threadIdx.y picks the warp.
 * Fewer warps a block when the output is narrow, so that it still spreads over
 * HC_CU_GEMV_TARGET_BLOCKS blocks (a 192-wide projection: 192 blocks of one warp, not 48 of four).
 * Lane l sums elements l, l + 32, ...: for block formats a warp reads one whole 32-block per step,
 * lane j element j, so the qs bytes and x are read coalesced. A shuffle tree then sums the lanes. */
#define HC_CU_GEMV_ROWS 4
#define HC_CU_GEMV_TARGET_BLOCKS 264 /* two per SM of a 132-SM H100 */

/* Warps a block for `warps` warps in all. */
static inline HC_CU_HD unsigned hc_cu_gemv_warps_per_block(int64_t warps)
{
    unsigned r = HC_CU_GEMV_ROWS;
    while (r > 1 && warps < (int64_t)r * HC_CU_GEMV_TARGET_BLOCKS) r /= 2;
    return r;
}

static inline HC_CU_HD hc_cu_launch hc_cu_gemv_geometry(int64_t out, int warp_rows)
{
    int64_t warps = (out + warp_rows - 1) / warp_rows;
    unsigned wpb = hc_cu_gemv_warps_per_block(warps);
    hc_cu_launch l = hc_cu_launch_1d(hc_cu_div_up((size_t)warps, wpb), HC_CU_WARP, 0);
    l.block.y = wpb;
    return l;
}

/* The first row of warp thread_y of block block_x, with warps_per_block (blockDim.y) warps a block
 * and warp_rows rows a warp. */
static inline HC_CU_HD int64_t hc_cu_gemv_row(unsigned block_x, unsigned warps_per_block, unsigned thread_y, int warp_rows)
{
    return ((int64_t)block_x * warps_per_block + thread_y) * warp_rows;
}

/* The part of row `row`'s dot product that lane `lane` sums before the warp reduction. */
static inline HC_CU_HD float hc_cu_gemv_lane_partial(int t, const uint8_t *row, const float *x, int64_t in, int lane)
{
    float s = 0.0f;
    for (int64_t k = lane; k < in; k += HC_CU_WARP) s += hc_cu_deq_elem(t, row, k) * x[k];
    return s;
}

/* ---- a run of 32 elements of a block type but Q8_0 (a block of Q4_0 .. Q5_1, a sub-block of Q4_K /
 * Q5_K, two scale groups of the other K-quants) as codes in bytes: element 4 n + i is byte i of q[n],
 * a code c below 64, and the weight sc[h] (c + off), or sc[h] c + mn[h], for the half h = (4 n + i) / 16.
 * The float GEMV takes it as D f + M (hc_cu_run_dot), with f = 1/2 + c 2^-8, the code put into the
 * mantissa of 1/2 by one byte permute (hc_cu_byte_f). The words are read 4 bytes at a time, or 2
 * where the blocks' size is only even (hc_cu_run_align).
 * In the float GEMV, Q8_0's full bytes would need 1/2 + c 2^-16, whose D sum(f x) + M sum(x) cancels about 8 of f32's 24
 * bits: it stays element by element (5 instructions a weight, a third of its budget). ---- */
typedef struct hc_cu_run_codes {
    uint32_t q[8];
    /* the weights as the element readers compute them: sc (c + off) with off, else sc c + mn */
    float sc[2], mn[2];
    int off;
} hc_cu_run_codes;

static inline HC_CU_HD int hc_cu_run_align(int t)
{
    return t == HC_Q4_0 || t == HC_Q5_0 || t == HC_Q8_0 || t == HC_Q3_K || t == HC_Q6_K ? 2 : 4;
}

/* The word of 4 bytes at p, read as 4 (align 4) or 2 bytes at a time. */
static inline HC_CU_HD uint32_t hc_cu_run_word(const uint8_t *p, int align)
{
    return align == 4 ? hc_cu_ld4(p) : hc_cu_ld2(p) | hc_cu_ld2(p + 2) << 16;
}

/* Bits 0 .. 3 of b as bit 4 of bytes 0 .. 3 (Q5_0 / Q5_1's fifth bits). */
static inline HC_CU_HD uint32_t hc_cu_bits_to_bytes(uint32_t b) { return ((b & 0xfu) * 0x00204081u & 0x01010101u) << 4; }

/* Run jb (elements 32 jb ..; 0 for the 32-block types) of the block blk of type t (not Q8_0), in the
 * layouts of the element readers above. */
static inline HC_CU_HD void hc_cu_run_decode(int t, const uint8_t *blk, int jb, hc_cu_run_codes *r)
{
    const int al = hc_cu_run_align(t);
    float *sc = r->sc, *mn = r->mn;
    r->off = 0;
    switch (t) {
    case HC_Q4_0: case HC_Q4_1: case HC_Q5_0: case HC_Q5_1: { /* low nibbles: elements 0 .. 15, high: 16 .. 31 */
        const int has_m = t == HC_Q4_1 || t == HC_Q5_1, five = t == HC_Q5_0 || t == HC_Q5_1;
        const uint8_t *qs = blk + 2 + 2 * has_m + 4 * five;
        uint32_t qh = five ? hc_cu_run_word(blk + 2 + 2 * has_m, al) : 0;
        for (int n = 0; n < 4; n++) {
            uint32_t w = hc_cu_run_word(qs + 4 * n, al);
            r->q[n] = (w & 0x0f0f0f0fu) | (five ? hc_cu_bits_to_bytes(qh >> (4 * n)) : 0);
            r->q[4 + n] = ((w >> 4) & 0x0f0f0f0fu) | (five ? hc_cu_bits_to_bytes(qh >> (16 + 4 * n)) : 0);
        }
        sc[0] = sc[1] = hc_cu_f16_to_f32(hc_cu_ld2(blk));
        mn[0] = mn[1] = has_m ? hc_cu_f16_to_f32(hc_cu_ld2(blk + 2)) : 0.0f;
        r->off = has_m ? 0 : five ? -16 : -8;
        break;
    }
    case HC_Q2_K: { /* qs[32 h + l] >> 2 s, scale / min nibbles of scales[8 h + 2 s + half] */
        int h = jb >> 2, sh = 2 * (jb & 3);
        float d = hc_cu_f16_to_f32(hc_cu_ld2(blk + 80)), dmin = hc_cu_f16_to_f32(hc_cu_ld2(blk + 82));
        for (int n = 0; n < 8; n++) r->q[n] = (hc_cu_run_word(blk + 16 + 32 * h + 4 * n, al) >> sh) & 0x03030303u;
        for (int k = 0; k < 2; k++) {
            uint32_t b = blk[8 * h + (jb & 3) * 2 + k];
            sc[k] = d * (float)(b & 0xfu);
            mn[k] = -dmin * (float)(b >> 4);
        }
        break;
    }
    case HC_Q3_K: { /* the low bits as Q2_K's, the third from hmask[l] >> (4 h + s); c - 4 */
        int h = jb >> 2, s = jb & 3;
        float d = hc_cu_f16_to_f32(hc_cu_ld2(blk + 108));
        for (int n = 0; n < 8; n++)
            r->q[n] = ((hc_cu_run_word(blk + 32 + 32 * h + 4 * n, al) >> (2 * s)) & 0x03030303u) |
                      (((hc_cu_run_word(blk + 4 * n, al) >> (4 * h + s)) & 0x01010101u) << 2);
        for (int k = 0; k < 2; k++) {
            sc[k] = d * (float)hc_cu_q3_k_scale(blk + 96, 8 * h + 2 * s + k);
            mn[k] = 0.0f;
        }
        r->off = -4;
        break;
    }
    case HC_Q4_K: case HC_Q5_K: { /* sub-block jb: nibble jb % 2 of qs[32 (jb / 2) + l] (Q5_K: bit jb of qh[l]) */
        int i = jb >> 1, upper = jb & 1, s6, m6;
        hc_cu_k4_scale_min(blk + 4, jb, &s6, &m6);
        float d = hc_cu_f16_to_f32(hc_cu_ld2(blk)), dmin = hc_cu_f16_to_f32(hc_cu_ld2(blk + 2));
        const uint8_t *qs = blk + (t == HC_Q4_K ? 16 : 48) + 32 * i;
        for (int n = 0; n < 8; n++) {
            r->q[n] = (hc_cu_run_word(qs + 4 * n, al) >> (4 * upper)) & 0x0f0f0f0fu;
            if (t == HC_Q5_K) r->q[n] |= ((hc_cu_run_word(blk + 16 + 4 * n, al) >> jb) & 0x01010101u) << 4;
        }
        sc[0] = sc[1] = d * (float)s6;
        mn[0] = mn[1] = -dmin * (float)m6;
        break;
    }
    default: { /* Q6_K: nibble k / 2 of ql[64 h + 32 (k % 2) + l], bits 2 k of qh[32 h + l]; c - 32 */
        int h = jb >> 2, k = jb & 3;
        float d = hc_cu_f16_to_f32(hc_cu_ld2(blk + 208));
        for (int n = 0; n < 8; n++)
            r->q[n] = ((hc_cu_run_word(blk + 64 * h + 32 * (k & 1) + 4 * n, al) >> (4 * (k >> 1))) & 0x0f0f0f0fu) |
                      (((hc_cu_run_word(blk + 128 + 32 * h + 4 * n, al) >> (2 * k)) & 0x03030303u) << 4);
        for (int p = 0; p < 2; p++) {
            sc[p] = d * (float)(int8_t)blk[192 + 8 * h + p + 2 * k];
            mn[p] = 0.0f;
        }
        r->off = -32;
    }
    }
}

/* Element 4 n + i of a decoded run, bit for bit as the element readers compute it. */
static inline HC_CU_HD float hc_cu_run_elem(const hc_cu_run_codes *r, int n, int i)
{
    int c = (int)((r->q[n] >> (8 * i)) & 0xffu), h = n >> 2;
    return r->off ? r->sc[h] * (float)(c + r->off) : r->sc[h] * (float)c + r->mn[h];
}

/* ---- GEMV by 16-byte loads and runs: y[o] = sum_k W[o][k] * x[k] when `in` is a multiple of 32 and
 * x (and the rows of plain types) 16-byte aligned (hc_cu_gemv_runs_ok) ----
 * Wider work per lane than the element kernel's. Plain types (a row a warp): lane l reads 16 bytes
 * of weights at a time, chunks c = l, l + 32, ... (4 f32 or 8 f16 / bf16 elements), so each load of
 * the warp takes 512 contiguous bytes. Block types (hc_cu_gemv_warp_rows rows a warp): lane l takes
 * runs of 32 elements r = l, l + 32, ... (one block of the 32-block types, an eighth of a K-quant
 * super-block) of each of the warp's rows, its block's scales decoded once per run, x's run read
 * once for the rows, 16 bytes at a time. */
#define HC_CU_RUN 32

static inline HC_CU_HD int hc_cu_gemv_runs_ok(int t, int64_t in, uintptr_t w, size_t row_bytes, uintptr_t x)
{
    /* block types read their weights by words of 4 or 2 bytes (hc_cu_run_align), plain types every
       row by 16 bytes */
    size_t al = hc_cu_block_elems(t) > 1 ? (size_t)hc_cu_run_align(t) : 16;
    return hc_cu_dtype_supported(t) && in > 0 && in % HC_CU_RUN == 0 && x % 16 == 0 && w % al == 0 && row_bytes % al == 0;
}

/* Run r of x: its 32 floats, read 16 bytes at a time, and the sums of its two halves. */
typedef struct hc_cu_run_x {
    float v[HC_CU_RUN];
    float sum[2];
} hc_cu_run_x;

static inline HC_CU_HD void hc_cu_run_x_load(const float *x, int64_t r, hc_cu_run_x *xr)
{
    for (int i = 0; i < HC_CU_RUN / 4; i++) hc_cu_ld_f4(x + HC_CU_RUN * r + 4 * i, xr->v + 4 * i);
    for (int h = 0; h < 2; h++) {
        float sx = 0.0f;
        for (int j = 16 * h; j < 16 * h + 16; j++) sx += xr->v[j];
        xr->sum[h] = sx;
    }
}

/* s + sum_j W[32 r + j] x[32 r + j] over the run r of a row of block type t, x's run loaded: the run
 * decoded to codes in bytes (hc_cu_run_decode), a float a code by a byte permute, per half
 * D sum(f x) + M sum(x); Q8_0 element by element. */
static inline HC_CU_HD float hc_cu_run_dot(int t, const uint8_t *row, const hc_cu_run_x *xr, int64_t r, float s)
{
    const int be = hc_cu_block_elems(t);
    int64_t k0 = HC_CU_RUN * r;
    const uint8_t *blk = row + (size_t)(k0 / be) * (size_t)hc_cu_block_bytes(t);
    if (t == HC_Q8_0) {
        for (int j = 0; j < HC_CU_RUN; j++) s += hc_cu_q8_0_elem(blk, j) * xr->v[j];
        return s;
    }
    hc_cu_run_codes run;
    hc_cu_run_decode(t, blk, (int)(k0 % be) / HC_CU_RUN, &run);
    for (int h = 0; h < 2; h++) {
        /* sc c + m with m = sc off or mn is D f + M: D = 2^8 sc, M = m - 2^7 sc */
        const float D = 256.0f * run.sc[h], M = (run.off ? (float)run.off * run.sc[h] : run.mn[h]) - 128.0f * run.sc[h];
        float sf = 0.0f;
        for (int n = 4 * h; n < 4 * h + 4; n++)
            for (int i = 0; i < 4; i++) sf = fmaf(hc_cu_byte_f(run.q[n], i, 0), xr->v[4 * n + i], sf);
        s = fmaf(D, sf, fmaf(M, xr->sum[h], s));
    }
    return s;
}

/* The part of a row's dot product that lane `lane` sums before the warp reduction. */
static inline HC_CU_HD float hc_cu_gemv_lane_runs(int t, const uint8_t *row, const float *x, int64_t in, int lane)
{
    float s = 0.0f;
    switch (t) {
    case HC_F32:
        for (int64_t c = lane; c < in / 4; c += HC_CU_WARP) {
            uint32_t v[4];
            float xs[4];
            hc_cu_ld16(row + 16 * c, v);
            hc_cu_ld_f4(x + 4 * c, xs);
            for (int e = 0; e < 4; e++) s += hc_cu_bits_f32(v[e]) * xs[e];
        }
        return s;
    case HC_F16: case HC_BF16:
        for (int64_t c = lane; c < in / 8; c += HC_CU_WARP) {
            uint32_t v[4];
            float xs[8];
            hc_cu_ld16(row + 16 * c, v);
            hc_cu_ld_f4(x + 8 * c, xs);
            hc_cu_ld_f4(x + 8 * c + 4, xs + 4);
            for (int e = 0; e < 8; e++) {
                uint32_t h = (v[e >> 1] >> (16 * (e & 1))) & 0xffffu;
                s += (t == HC_F16 ? hc_cu_f16_to_f32(h) : hc_cu_bf16_to_f32(h)) * xs[e];
            }
        }
        return s;
    default:
        for (int64_t r = lane; r < in / HC_CU_RUN; r += HC_CU_WARP) {
            hc_cu_run_x xr;
            hc_cu_run_x_load(x, r, &xr);
            s = hc_cu_run_dot(t, row, &xr, r, s);
        }
        return s;
    }
}

/* Rows a warp holds: `want` (HC_CU_GEMV_RUN_ROWS, the default, or 1) for a block type read by runs,
 * one otherwise. Four rows share x's run and its sums (8 16-byte loads and 32 adds): the loop
 * executes a quarter less a weight (SASS for sm_90, tests/cuda_emu/README.md) for 2 to 3 times the
 * registers; which is faster is the GPU run's to say (HC_CUDA_GEMV_ROWS). */
#define HC_CU_GEMV_RUN_ROWS 4

static inline HC_CU_HD int hc_cu_gemv_warp_rows(int t, int runs, int want)
{
    return runs && hc_cu_block_elems(t) > 1 ? want : 1;
}

/* The R rows of a warp from row0 (rows of row_bytes at w, `out` in all) and their sums set to 0. Rows
 * past the last read the last one again (their sums are not stored), so that the warp does not
 * diverge. */
static inline HC_CU_HD void hc_cu_gemv_warp_rows_at(const uint8_t *w, size_t row_bytes, int64_t row0, int64_t out, int R,
                                                    const uint8_t *row[HC_CU_GEMV_RUN_ROWS], float s[HC_CU_GEMV_RUN_ROWS])
{
    HC_CU_UNROLL
    for (int i = 0; i < R; i++) {
        row[i] = w + (size_t)(row0 + i < out ? row0 + i : out - 1) * row_bytes;
        s[i] = 0.0f;
    }
}

/* Lane `lane`'s parts s[i] of the dot products of rows row0 + i (i < HC_CU_GEMV_RUN_ROWS, rows as
 * hc_cu_gemv_warp_rows_at takes them) of a block type t with x, by runs. */
static inline HC_CU_HD void hc_cu_gemv_lane_runs_rows(int t, const uint8_t *w, size_t row_bytes, int64_t row0, int64_t out,
                                                      const float *x, int64_t in, int lane, float s[HC_CU_GEMV_RUN_ROWS])
{
    const uint8_t *row[HC_CU_GEMV_RUN_ROWS];
    hc_cu_gemv_warp_rows_at(w, row_bytes, row0, out, HC_CU_GEMV_RUN_ROWS, row, s);
    for (int64_t r = lane; r < in / HC_CU_RUN; r += HC_CU_WARP) {
        hc_cu_run_x xr;
        hc_cu_run_x_load(x, r, &xr);
        HC_CU_UNROLL
        for (int i = 0; i < HC_CU_GEMV_RUN_ROWS; i++) s[i] = hc_cu_run_dot(t, row[i], &xr, r, s[i]);
    }
}

/* ---- GEMV of block types with x quantized to int8 (hc_cu_gemv's xq) ----
 * x in blocks of 32, x_i ~ d q_i with d = max |x| / 127 and q in [-127, 127] rounded to nearest even,
 * as the cpu device quantizes it (kernels/cpu, hc_act_quantize_q8_ref: the same bytes), so that the
 * two devices sum the same integers. A run of 32 weight codes (hc_cu_run_decode, or Q8_0's bytes) and
 * x's block of 32 codes are dotted 4 bytes at a time (dp4a): 8 instructions a run, where the float
 * path spends 32 byte permutes and 32 FFMA. A weight sc (c + off) or sc c + mn then sums as
 * d (sc (sum c q + off sum q) + mn sum q) per half (the K-quants' scales change every 16). The lanes
 * and rows as the float path's by runs (hc_cu_gemv_lane_runs_rows). */

/* Bytes of `rows` rows of x quantized: rows x in codes (int8), then per block of 32 its d and d sum q. */
static inline HC_CU_HD size_t hc_cu_q8x_bytes(int64_t rows, int64_t in)
{
    return (size_t)rows * (size_t)in + (size_t)rows * (size_t)(in / HC_CU_RUN) * 2 * sizeof(float);
}

/* One block of 32 of x (16-byte aligned) into its 32 codes q (16-byte aligned) and ds = (d, d sum q). */
static inline HC_CU_HD void hc_cu_q8x_block(const float *x, uint8_t *q, float *ds)
{
    float v[HC_CU_RUN], amax = 0.0f;
    for (int i = 0; i < HC_CU_RUN / 4; i++) hc_cu_ld_f4(x + 4 * i, v + 4 * i);
    for (int i = 0; i < HC_CU_RUN; i++) amax = fmaxf(amax, fabsf(v[i]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t w[HC_CU_RUN / 4] = { 0 };
    int sum = 0;
    for (int i = 0; i < HC_CU_RUN; i++) {
        int c = hc_cu_rint(v[i] * id);
        sum += c;
        w[i / 4] |= (uint32_t)(uint8_t)(int8_t)c << (8 * (i % 4));
    }
    hc_cu_st16(q, w);
    hc_cu_st16(q + 16, w + 4);
    ds[0] = d;
    ds[1] = d * (float)sum;
}

/* s + the dot product of run r of a row of block type t with x's codes xw (the run's 32, in 8 words)
 * of scale dx, whose halves' codes sum to qs[0] and qs[1]. */
static inline HC_CU_HD float hc_cu_run_dot_q8(int t, const uint8_t *row, const uint32_t xw[8], float dx, const int qs[2],
                                              int64_t r, float s)
{
    const int be = hc_cu_block_elems(t);
    int64_t k0 = HC_CU_RUN * r;
    const uint8_t *blk = row + (size_t)(k0 / be) * (size_t)hc_cu_block_bytes(t);
    if (t == HC_Q8_0) { /* signed codes: d sum c q */
        int isum = 0;
        for (int n = 0; n < 8; n++) isum = hc_cu_dp4a(hc_cu_run_word(blk + 2 + 4 * n, 2), xw[n], isum);
        return fmaf(dx * hc_cu_f16_to_f32(hc_cu_ld2(blk)), (float)isum, s);
    }
    hc_cu_run_codes run;
    hc_cu_run_decode(t, blk, (int)(k0 % be) / HC_CU_RUN, &run);
    const int halves = be == HC_CU_QBLOCK ? 1 : 2, per = 8 / halves; /* the 32-blocks: one scale a run */
    float v = 0.0f;
    for (int h = 0; h < halves; h++) {
        int isum = 0, q = halves == 1 ? qs[0] + qs[1] : qs[h];
        for (int n = per * h; n < per * h + per; n++) isum = hc_cu_dp4a(run.q[n], xw[n], isum);
        v = fmaf(run.sc[h], (float)(isum + run.off * q), fmaf(run.mn[h], (float)q, v));
    }
    return fmaf(dx, v, s);
}

/* ---- Q3_K with x in int8, by slices ----
 * A run of 32 consecutive Q3_K elements reads 16 half-words of qs and 16 of hmask for its 32 codes (the
 * blocks are 110 bytes, so the words are only 2-byte aligned): as many as its whole super-block holds.
 * Lane slice r (in place of run r: the same count a row) is instead the elements 4 m .. 4 m + 3,
 * m = r % 8, of each of super-block r / 8's 8 groups of 32 (g = 4 h + s): 2 words of qs, 1 of hmask
 * (the third bits of all 8 groups) and the 8 scales of its half of each group (8 h + 2 s + m / 4). Each
 * group meets its own block of x (word m of its codes, and its scale dx_g): the row's part is
 * d sum_g dx_g (sc_g - 32) sum (c - 4) q, the integers exact and made floats by HC_CU_INT_BIAS. */

/* Of a super-block's 12 scale bytes S (2-byte aligned), the 8 scales 8 h + 2 s + p (p = 0, 1): group
 * 4 h + s's, less its bias of 32, as the signed byte s of sc[h]. The low 4 bits are nibble h of
 * S[2 s + p], the high 2 bits 4 h + 2 (s / 2) of S[8 + 2 (s % 2) + p]; a byte b (0 .. 63) less 32 is
 * (b + 96) ^ 128 (no carry between the bytes). */
static inline HC_CU_HD void hc_cu_q3_k_slice_scales(const uint8_t *S, int p, uint32_t sc[2])
{
    const uint32_t w0 = hc_cu_run_word(S, 2), w1 = hc_cu_run_word(S + 4, 2), w2 = hc_cu_run_word(S + 8, 2);
    const uint32_t sel = 0x6420u + 0x1111u * (uint32_t)p; /* bytes p, 2 + p of x, then of y */
    const uint32_t lo = hc_cu_byte_perm(w0, w1, sel), hi = hc_cu_byte_perm(w2, w2 >> 2, sel); /* s = 2, 3: bits 2 up */
    sc[0] = (((lo & 0x0f0f0f0fu) | ((hi << 4) & 0x30303030u)) + 0x60606060u) ^ 0x80808080u;
    sc[1] = ((((lo >> 4) & 0x0f0f0f0fu) | (hi & 0x30303030u)) + 0x60606060u) ^ 0x80808080u;
}

/* s + the dot product of slice m of the Q3_K super-block blk with x's codes xw[g] (word m of x's block g
 * of the super-block's 8), of scales dx[g], base[g] = -4 sum of xw[g]'s codes. */
static inline HC_CU_HD float hc_cu_q3_k_slice_dot(const uint8_t *blk, int m, const uint32_t xw[8], const int base[8],
                                                  const float dx[8], float s)
{
    const uint32_t qw[2] = { hc_cu_run_word(blk + 32 + 4 * m, 2), hc_cu_run_word(blk + 64 + 4 * m, 2) };
    const uint32_t hm = hc_cu_run_word(blk + 4 * m, 2);
    uint32_t sc[2];
    hc_cu_q3_k_slice_scales(blk + 96, m >> 2, sc);
    float acc = 0.0f;
    HC_CU_UNROLL
    for (int g = 0; g < 8; g++) {
        const int h = g >> 2, sh = g & 3;
        const uint32_t c = ((qw[h] >> (2 * sh)) & 0x03030303u) | (((hm >> g) << 2) & 0x04040404u);
        const int isum = hc_cu_dp4a(c, xw[g], base[g]), scg = hc_cu_sbyte(sc[h], sh);
        acc = fmaf(dx[g], hc_cu_biased_f(isum * scg + HC_CU_INT_BIAS), acc); /* |isum scg| <= 2032 * 32 */
    }
    return fmaf(hc_cu_f16_to_f32(hc_cu_ld2(blk + 108)), acc, s);
}

/* hc_cu_gemv_lane_q8_rows of Q3_K, by slices. */
static inline HC_CU_HD void hc_cu_gemv_lane_q3_k_rows(int R, const uint8_t *const row[HC_CU_GEMV_RUN_ROWS], const uint8_t *xq,
                                                      const float *xds, int64_t in, int lane, float s[HC_CU_GEMV_RUN_ROWS])
{
    for (int64_t r = lane; r < in / HC_CU_RUN; r += HC_CU_WARP) {
        const int64_t b = r >> 3;
        const int m = (int)(r & 7);
        uint32_t xw[8];
        int base[8];
        float dx[8];
        HC_CU_UNROLL
        for (int g = 0; g < 8; g++) {
            xw[g] = hc_cu_ld4(xq + HC_CU_QK * b + HC_CU_RUN * g + 4 * m);
            base[g] = hc_cu_dp4a(0xfcfcfcfcu, xw[g], 0);
            dx[g] = xds[2 * (8 * b + g)];
        }
        const size_t at = (size_t)hc_cu_block_bytes(HC_Q3_K) * (size_t)b;
        HC_CU_UNROLL
        for (int i = 0; i < R; i++) s[i] = hc_cu_q3_k_slice_dot(row[i] + at, m, xw, base, dx, s[i]);
    }
}

/* Lane `lane`'s parts s[i] (i < R, R <= HC_CU_GEMV_RUN_ROWS) of rows row0 + i's dot products with x
 * quantized (codes xq, scales xds of hc_cu_q8x_block), by runs (Q3_K by slices); rows as
 * hc_cu_gemv_warp_rows_at takes them. */
static inline HC_CU_HD void hc_cu_gemv_lane_q8_rows(int t, int R, const uint8_t *w, size_t row_bytes, int64_t row0,
                                                    int64_t out, const uint8_t *xq, const float *xds, int64_t in, int lane,
                                                    float s[HC_CU_GEMV_RUN_ROWS])
{
    const uint8_t *row[HC_CU_GEMV_RUN_ROWS];
    hc_cu_gemv_warp_rows_at(w, row_bytes, row0, out, R, row, s);
    if (t == HC_Q3_K) {
        hc_cu_gemv_lane_q3_k_rows(R, row, xq, xds, in, lane, s);
        return;
    }
    for (int64_t r = lane; r < in / HC_CU_RUN; r += HC_CU_WARP) {
        uint32_t xw[8];
        hc_cu_ld16(xq + HC_CU_RUN * r, xw);
        hc_cu_ld16(xq + HC_CU_RUN * r + 16, xw + 4);
        int qs[2] = { 0, 0 };
        for (int n = 0; n < 8; n++) qs[n >> 2] = hc_cu_dp4a(0x01010101u, xw[n], qs[n >> 2]);
        const float dx = xds[2 * r];
        HC_CU_UNROLL
        for (int i = 0; i < R; i++) s[i] = hc_cu_run_dot_q8(t, row[i], xw, dx, qs, r, s[i]);
    }
}

/* ---- dequant_rows by runs: a thread a run of 32 of a row of a block type (width a multiple of 32,
 * the weights aligned as the GEMV's runs read them, out 16-byte aligned): the run decoded once
 * (hc_cu_run_decode; Q8_0 element by element) and its 32 values written by 16-byte stores, where the
 * element kernel decodes the scales and reads bytes for every element. The values are the element
 * readers' bit for bit. ---- */
static inline HC_CU_HD int hc_cu_dequant_runs_ok(int t, int64_t width, uintptr_t w, size_t row_bytes, uintptr_t out)
{
    return hc_cu_block_elems(t) > 1 && hc_cu_gemv_runs_ok(t, width, w, row_bytes, 0) && out % 16 == 0;
}

/* A block a row, a warp per 32 runs, at most HC_CU_DEQ_THREADS threads. */
static inline HC_CU_HD hc_cu_launch hc_cu_dequant_runs_geometry(int n_rows, int64_t width)
{
    int64_t runs = width / HC_CU_RUN, t = (runs + HC_CU_WARP - 1) / HC_CU_WARP * HC_CU_WARP;
    if (t < HC_CU_WARP) t = HC_CU_WARP;
    return hc_cu_launch_1d((unsigned)n_rows, (unsigned)(t > HC_CU_DEQ_THREADS ? HC_CU_DEQ_THREADS : t), 0);
}

/* Run r of the weight row `row` of block type t into the output row dst: elements 32 r .. 32 r + 31,
 * f32 or (f16) IEEE f16. */
static inline HC_CU_HD void hc_cu_dequant_run(int t, const uint8_t *row, int64_t r, uint8_t *dst, int f16)
{
    const int be = hc_cu_block_elems(t);
    int64_t k0 = HC_CU_RUN * r;
    const uint8_t *blk = row + (size_t)(k0 / be) * (size_t)hc_cu_block_bytes(t);
    uint32_t v[HC_CU_RUN]; /* the values' bits */
    if (t == HC_Q8_0) {
        for (int j = 0; j < HC_CU_RUN; j++) v[j] = hc_cu_f32_bits(hc_cu_q8_0_elem(blk, j));
    } else {
        hc_cu_run_codes run;
        hc_cu_run_decode(t, blk, (int)(k0 % be) / HC_CU_RUN, &run);
        for (int n = 0; n < 8; n++)
            for (int i = 0; i < 4; i++) v[4 * n + i] = hc_cu_f32_bits(hc_cu_run_elem(&run, n, i));
    }
    if (f16) {
        uint32_t h[HC_CU_RUN / 2];
        for (int j = 0; j < HC_CU_RUN / 2; j++) {
            uint32_t lo = hc_cu_f32_to_f16(hc_cu_bits_f32(v[2 * j])), hi = hc_cu_f32_to_f16(hc_cu_bits_f32(v[2 * j + 1]));
            h[j] = lo | hi << 16;
        }
        for (int q = 0; q < 4; q++) hc_cu_st16(dst + 64 * r + 16 * q, h + 4 * q);
    } else {
        for (int q = 0; q < 8; q++) hc_cu_st16(dst + 128 * r + 16 * q, v + 4 * q);
    }
}

/* ---- n_tok > 1: dequantize a chunk of rows to f32 scratch, then one cuBLAS SGEMM per chunk ---- */

/* Rows per chunk so that a chunk of `in`-wide f32 rows fits max_floats (at least one row). */
static inline HC_CU_HD int64_t hc_cu_matmul_chunk_rows(int64_t in, int64_t out, size_t max_floats)
{
    int64_t rows = in > 0 ? (int64_t)(max_floats / (size_t)in) : out;
    if (rows < 1) rows = 1;
    return rows < out ? rows : out;
}

/* cuBLAS is column-major. A row-major W [out][in] is the column-major matrix W^T (in x out,
 * lda = in); x [n_tok][in] is column-major X (in x n_tok); y [n_tok][out] column-major Y
 * (out x n_tok, ldc = out). So Y = op(A) * X with op = transpose, m = rows, n = n_tok, k = in. */
typedef struct hc_cu_gemm_args {
    int trans_a;          /* 1: CUBLAS_OP_T on A */
    int trans_b;          /* 1: CUBLAS_OP_T on B */
    int m, n, k;
    int lda, ldb, ldc;
} hc_cu_gemm_args;

/* Arguments of cublasSgemm for rows [row0, row0 + rows) of W (A points at row row0, C at y + row0). */
static inline HC_CU_HD hc_cu_gemm_args hc_cu_matmul_gemm_args(int64_t in, int64_t out, int64_t rows, int n_tok)
{
    hc_cu_gemm_args g;
    g.trans_a = 1;
    g.trans_b = 0;
    g.m = (int)rows;
    g.n = n_tok;
    g.k = (int)in;
    g.lda = (int)in;
    g.ldb = (int)in;
    g.ldc = (int)out;
    return g;
}

#endif
