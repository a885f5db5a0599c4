/* qrtn_avx2.c: the AVX2/FMA/F16C kernel of the group-wise integer matmul (layout in qrtn.h):
 * unpack 32 codes per block with shifts and masks, maddubs with the int8 activations, madd with
 * their integer block multipliers, int32 sums per group, one convert and FMA per group; and the
 * preparation of the activations (amax, multiplier, round and pack per block of 32). */
#include <immintrin.h>
#include <string.h>

#include "hc/hc_avx2.h"
#include "qrtn.h"

#define AI static inline __attribute__((always_inline))

#define SEG 64          /* blocks of 32 per segment of a row: their scales sit in a stack array */
#define DECODE_ROWS 4   /* n_tok == 1: rows sharing each activation load */
#define ROW_CHUNK 16    /* n_tok > 1: rows kept hot in L1 while every token group passes */
#define PREFETCH_TILES 2   /* n_tok == 1: how many tiles of rows ahead the weights are prefetched */
/* Lines prefetched per row and unit of 128: a row's bytes (scales included) over its units. */
#define PF_LINES(bits) ((bits) == 8 ? 3 : (bits) == 4 ? 2 : 1)
#define MAX_R 4
#define MAX_T 8         /* n_tok > 1: tokens sharing each unpacked weight block (8, then 4, then 1..3) */

typedef struct geom {
    int64_t cols, nb, G;
    size_t rb;      /* bytes per packed row */
} geom;

/* One token's prepared activations: blocks of 64 bytes (32 int8, 16 int16 multipliers), the
 * group bases dg and the group sums sg. */
typedef struct xin {
    const uint8_t *q;
    const float *dg, *sg;
} xin;

AI int64_t round8(int64_t n) { return (n + 7) & ~(int64_t)7; }

AI xin x_at(const void *xq, size_t xrb, int t, int64_t nb, int64_t G)
{
    const uint8_t *base = (const uint8_t *)xq + (size_t)t * xrb;
    xin r;
    r.q = base;
    r.dg = (const float *)(base + (size_t)nb * HC_QRTN_XBLOCK);
    r.sg = r.dg + round8(G);
    return r;
}

/* ---------------- unpacking (bytes of qrtn.h's units -> 32 bytes per block) ---------------- */

AI __m256i load32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
AI __m256i bcast128(const uint8_t *p) { return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p)); }
AI __m256i bcast64(const uint8_t *p)
{
    long long v;
    memcpy(&v, p, 8);
    return _mm256_set1_epi64x(v);
}
AI __m256i mask8(int m) { return _mm256_set1_epi8((char)m); }
/* low lane: the low nibble of bytes 0..15, high lane: their high nibble */
AI __m256i nib_split(const uint8_t *p) { return _mm256_srlv_epi32(bcast128(p), _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)); }
/* the 2-bit 32-unit: qword k gets bits 2k, 2k+1 of bytes 0..7 */
AI __m256i two_split(const uint8_t *p) { return _mm256_srlv_epi64(bcast64(p), _mm256_setr_epi64x(0, 2, 4, 6)); }

/* A unit of 128 columns -> 4 blocks (each as q * 2^a, a from hc_qrtn_block_shift). */
AI void unpack128(const int bits, const uint8_t *p, __m256i *w)
{
    switch (bits) {
    case 2: {
        const __m256i v = load32(p);
        w[0] = _mm256_and_si256(v, mask8(0x03));
        w[1] = _mm256_and_si256(v, mask8(0x0c));
        w[2] = _mm256_and_si256(v, mask8(0x30));
        w[3] = _mm256_and_si256(_mm256_srli_epi16(v, 2), mask8(0x30));
        break;
    }
    case 3: {
        const __m256i v = load32(p), n = nib_split(p + 32);
        w[0] = _mm256_and_si256(v, mask8(0x07));
        w[1] = _mm256_and_si256(v, mask8(0x38));
        w[2] = _mm256_and_si256(n, mask8(0x07));
        w[3] = _mm256_or_si256(_mm256_and_si256(n, mask8(0x08)), _mm256_and_si256(_mm256_srli_epi16(v, 2), mask8(0x30)));
        break;
    }
    case 4: {
        const __m256i v0 = load32(p), v1 = load32(p + 32);
        w[0] = _mm256_and_si256(v0, mask8(0x0f));
        w[1] = _mm256_and_si256(_mm256_srli_epi16(v0, 4), mask8(0x0f));
        w[2] = _mm256_and_si256(v1, mask8(0x0f));
        w[3] = _mm256_and_si256(_mm256_srli_epi16(v1, 4), mask8(0x0f));
        break;
    }
    default:   /* written out: as a loop gcc copies the bytes through the stack */
        w[0] = load32(p);
        w[1] = load32(p + 32);
        w[2] = load32(p + 64);
        w[3] = load32(p + 96);
        break;
    }
}

/* A unit of 64 columns -> 2 blocks. */
AI void unpack64(const int bits, const uint8_t *p, __m256i *w)
{
    switch (bits) {
    case 2: {
        const __m256i n = nib_split(p);
        w[0] = _mm256_and_si256(n, mask8(0x03));
        w[1] = _mm256_and_si256(n, mask8(0x0c));
        break;
    }
    case 3: {
        const __m256i n = nib_split(p), lo = two_split(p + 16);
        w[0] = _mm256_and_si256(n, mask8(0x07));
        w[1] = _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi16(lo, 1), mask8(0x06)), _mm256_and_si256(n, mask8(0x08)));
        break;
    }
    case 4: {
        const __m256i v = load32(p);
        w[0] = _mm256_and_si256(v, mask8(0x0f));
        w[1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask8(0x0f));
        break;
    }
    default:
        w[0] = load32(p);
        w[1] = load32(p + 32);
        break;
    }
}

/* A unit of 32 columns -> 1 block. */
AI __m256i unpack32(const int bits, const uint8_t *p)
{
    switch (bits) {
    case 2: return _mm256_and_si256(two_split(p), mask8(0x03));
    case 3: {
        const __m256i lo = _mm256_and_si256(two_split(p), mask8(0x03));
        int32_t hb;
        memcpy(&hb, p + 8, 4);
        const __m256i spread = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL,
                                                  0x0202020202020202LL, 0x0303030303030303LL);
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
        __m256i h = _mm256_shuffle_epi8(_mm256_set1_epi32(hb), spread);
        h = _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
        return _mm256_or_si256(lo, _mm256_and_si256(h, mask8(0x04)));
    }
    case 4: return _mm256_and_si256(nib_split(p), mask8(0x0f));
    default: return load32(p);
    }
}

/* The integer dot product of a block with its 32 int8 activations times the block's multiplier,
 * as 8 int32 partial sums. The 8-bit codes are stored signed (q - 128): |w| with the sign moved
 * onto x. */
AI __m256i block_dot(const int bits, __m256i w, const xin *x, int64_t b)
{
    const __m256i xv = _mm256_loadu_si256((const __m256i *)(x->q + (size_t)b * HC_QRTN_XBLOCK));
    const __m256i c = _mm256_loadu_si256((const __m256i *)(x->q + (size_t)b * HC_QRTN_XBLOCK + 32));
    const __m256i p = bits == 8 ? _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(xv, w)) : _mm256_maddubs_epi16(w, xv);
    return _mm256_madd_epi16(p, c);
}

AI __m256 fma_grp(__m256i s, const float *dd, __m256 acc)
{
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_broadcast_ss(dd), acc);
}

/* acc += n (4, 2 or 1) consecutive blocks' sums p[], bpg blocks per group, the first block in
 * the group whose scale is dd[0] (the next groups' at dd[1], ...). Units of 4 and 2 start a
 * group (units of 128 tile the groups; a 64-unit follows them); a unit of 1 may sit inside a
 * (short, last) group, which it shares with the 64-unit before it. */
AI __m256 unit_acc(const int bpg, const int n, const __m256i *p, const float *dd, __m256 acc)
{
    if (n == 4 && bpg == 4) return fma_grp(_mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3])), dd, acc);
    if (n >= 2 && bpg >= 2) {
        acc = fma_grp(_mm256_add_epi32(p[0], p[1]), dd, acc);
        return n == 4 ? fma_grp(_mm256_add_epi32(p[2], p[3]), dd + 1, acc) : acc;
    }
    for (int k = 0; k < n; k++) acc = fma_grp(p[k], dd + k, acc);
    return acc;
}

/* ---------------- per-segment scales ---------------- */

/* -1 in the first n of 8 lanes: loadu(lane_mask + 8 - n). */
static const int32_t lane_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* 8 f16 at p as floats. */
AI __m256 f16x8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* For R rows (scales at sc[r]) and T tokens (x[t]) over groups [g0, g0 + ng) (a segment; SEG is
 * a multiple of 4 blocks, so segments start at group boundaries and only the row's last segment
 * can end in a short group, which the callers count by rounding ng up):
 * dd[r*T + t][k] = d_{g0+k} * dg_t[g0+k], and acc[r*T + t] += the min term sum_g m_g sg_g in 8
 * lanes (the accumulators' lanes are summed at the end). 16 bytes may be read from any group's d
 * or m on (row_scales sees to it); lanes past the segment's groups are masked (or meet the
 * activations' zero padding). */
AI void seg_prep(const int bits, const int R, const int T, const uint8_t *const *sc, int64_t G, int64_t g0,
                 int64_t ng, const xin *x, float (*dd)[SEG], __m256 *acc)
{
    for (int64_t k = 0; k < ng; k += 8) {
        const __m256 mask = _mm256_loadu_ps((const float *)(lane_mask + 8 - (ng - k < 8 ? ng - k : 8)));
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
            const __m256 d = f16x8(sc[r] + 2 * (g0 + k));
            __m256 m = f16x8(sc[r] + 2 * (G + g0 + k));
            if (bits == 8) m = _mm256_fmadd_ps(d, _mm256_set1_ps(128.0f), m);   /* codes stored - 128 */
            m = _mm256_and_ps(m, mask);
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                _mm256_store_ps(dd[r * T + t] + k, _mm256_mul_ps(d, _mm256_loadu_ps(x[t].dg + g0 + k)));
                acc[r * T + t] = _mm256_fmadd_ps(m, _mm256_loadu_ps(x[t].sg + g0 + k), acc[r * T + t]);
            }
        }
    }
}

/* The lane sums of a[0..3] as 4 floats. */
AI __m128 hsum4x8(const __m256 *a)
{
    const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

/* The row's scales, or a zero-padded copy in buf when a 16-byte read from the last group's m
 * could pass the row's end (rows of fewer than 16 code bytes: 32 columns of 2 or 3 bits). */
AI const uint8_t *row_scales(const geom *gm, const uint8_t *row, uint8_t *buf)
{
    if (gm->rb - 4 * (size_t)gm->G >= 16) return row;
    memset(buf, 0, 64);
    memcpy(buf, row, 4 * (size_t)gm->G);
    return buf;
}


/* ---------------- tiles ---------------- */

/* Decoding: R rows from o, one token. */
AI void decode_tile(const int bits, const int bpg, const int R, const geom *gm, const uint8_t *w, int64_t o, const xin *x, float *y)
{
    const uint8_t *row[MAX_R], *codes[MAX_R];
    __m256 acc[MAX_R];
    _Alignas(32) float dd[MAX_R][SEG];
    uint8_t buf[MAX_R][64];
    const uint8_t *sc[MAX_R];
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
        row[r] = w + (size_t)(o + r) * gm->rb;
        codes[r] = row[r] + 4 * gm->G;
        sc[r] = row_scales(gm, row[r], buf[r]);
        acc[r] = _mm256_setzero_ps();
    }
    const char *pf = (const char *)w + (size_t)(o + PREFETCH_TILES * R) * gm->rb, *pf_end = pf + (size_t)R * gm->rb;
    for (int64_t b0 = 0; b0 < gm->nb; b0 += SEG) {
        const int64_t b1 = gm->nb - b0 < SEG ? gm->nb : b0 + SEG;
        seg_prep(bits, R, 1, sc, gm->G, b0 / bpg, (b1 - b0 + bpg - 1) / bpg, x, dd, acc);
        int64_t b = b0;
        for (; b + 4 <= b1; b += 4) {
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
                __m256i wv[4], p[4];
                /* walk the tile PREFETCH_TILES ahead: its lines arrive before they are needed */
                for (int k = 0; k < PF_LINES(bits); k++)
                    if (pf < pf_end) {
                        _mm_prefetch(pf, _MM_HINT_T0);
                        pf += 64;
                    }
                unpack128(bits, codes[r] + b * 4 * bits, wv);
                _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) p[k] = block_dot(bits, wv[k], x, b + k);
                acc[r] = unit_acc(bpg, 4, p, &dd[r][(b - b0) / bpg], acc[r]);
            }
        }
        if (b + 2 <= b1) {
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
                __m256i wv[2], p[2];
                unpack64(bits, codes[r] + b * 4 * bits, wv);
                p[0] = block_dot(bits, wv[0], x, b);
                p[1] = block_dot(bits, wv[1], x, b + 1);
                acc[r] = unit_acc(bpg, 2, p, &dd[r][(b - b0) / bpg], acc[r]);
            }
            b += 2;
        }
        if (b < b1) {
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
                const __m256i p = block_dot(bits, unpack32(bits, codes[r] + b * 4 * bits), x, b);
                acc[r] = unit_acc(bpg, 1, &p, &dd[r][(b - b0) / bpg], acc[r]);
            }
        }
    }
    if (R == 4) {
        _mm_storeu_ps(y + o, hsum4x8(acc));
    } else {
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) y[o + r] = hc_hsum8(acc[r]);
    }
}

/* Several tokens: one row o, T tokens from t0; each unpacked unit serves the T tokens. */
AI void batch_tile(const int bits, const int bpg, const int T, const geom *gm, const uint8_t *w, int64_t o, const xin *xs, int t0,
                   float *y, int64_t ldy)
{
    const uint8_t *row = w + (size_t)o * gm->rb, *codes = row + 4 * gm->G;
    __m256 acc[MAX_T];
    _Alignas(32) float dd[MAX_T][SEG];
    uint8_t buf[64];
    const uint8_t *sc = row_scales(gm, row, buf);
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < gm->nb; b0 += SEG) {
        const int64_t b1 = gm->nb - b0 < SEG ? gm->nb : b0 + SEG;
        seg_prep(bits, 1, T, &sc, gm->G, b0 / bpg, (b1 - b0 + bpg - 1) / bpg, &xs[t0], dd, acc);
        int64_t b = b0;
        for (; b + 4 <= b1; b += 4) {
            __m256i wv[4];
            unpack128(bits, codes + b * 4 * bits, wv);
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                const xin *x = &xs[t0 + t];
                __m256i p[4];
                _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) p[k] = block_dot(bits, wv[k], x, b + k);
                acc[t] = unit_acc(bpg, 4, p, &dd[t][(b - b0) / bpg], acc[t]);
            }
        }
        if (b + 2 <= b1) {
            __m256i wv[2];
            unpack64(bits, codes + b * 4 * bits, wv);
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                __m256i p[2] = {block_dot(bits, wv[0], &xs[t0 + t], b), block_dot(bits, wv[1], &xs[t0 + t], b + 1)};
                acc[t] = unit_acc(bpg, 2, p, &dd[t][(b - b0) / bpg], acc[t]);
            }
            b += 2;
        }
        if (b < b1) {
            const __m256i w0 = unpack32(bits, codes + b * 4 * bits);
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                const __m256i p = block_dot(bits, w0, &xs[t0 + t], b);
                acc[t] = unit_acc(bpg, 1, &p, &dd[t][(b - b0) / bpg], acc[t]);
            }
        }
    }
    if (T == 4) {   /* (for T == 8 two of these measured slower than eight hc_hsum8) */
        float v[4];
        _mm_storeu_ps(v, hsum4x8(acc));
        for (int t = 0; t < 4; t++) y[(size_t)(t0 + t) * (size_t)ldy + (size_t)o] = v[t];
    } else {
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * (size_t)ldy + (size_t)o] = hc_hsum8(acc[t]);
    }
}

/* ---------------- activation preparation (the bytes of hc_qrtn_prepare_group_ref) ---------------- */

void hc_qrtn_prepare_group_avx2(int bits, int64_t cols, int64_t b0, int bpg, const float *x, uint8_t *out, float *dg,
                                float *sg)
{
    const int cmax = hc_qrtn_cmax(bits), smax = hc_qrtn_shift_max(bits);
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i lim = _mm256_set1_epi32(127);
    float amax[4], top = 0.0f;
    for (int k = 0; k < bpg; k++) {
        const float *xb = x + 32 * k;
        __m256 m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xb), abs_mask), _mm256_and_ps(_mm256_loadu_ps(xb + 8), abs_mask));
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xb + 16), abs_mask),
                                           _mm256_and_ps(_mm256_loadu_ps(xb + 24), abs_mask)));
        amax[k] = hc_hmax8(m);
        top = amax[k] > top ? amax[k] : top;
    }
    const float D = hc_qrtn_group_base(top, cmax);
    int64_t qc = 0;
    for (int k = 0; k < bpg; k++) {
        const int c = hc_qrtn_block_mult(amax[k], top, D, cmax);
        const float step = D * (float)c, inv = c ? 1.0f / step : 0.0f;
        const __m256 vi = _mm256_set1_ps(inv);
        const float *xb = x + 32 * k;
        __m256i q[4];
        for (int v = 0; v < 4; v++) {   /* round to nearest even, as lrintf, then clamp */
            q[v] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 8 * v), vi));
            q[v] = _mm256_max_epi32(_mm256_min_epi32(q[v], lim), _mm256_sub_epi32(_mm256_setzero_si256(), lim));
        }
        uint8_t *blk = out + (size_t)k * HC_QRTN_XBLOCK;
        hc_store_i8x32(blk, q);
        const int16_t cs = (int16_t)(c << (smax - hc_qrtn_block_shift(bits, cols, b0 + k)));
        _mm256_storeu_si256((__m256i *)(blk + 32), _mm256_set1_epi16(cs));
        qc += (int64_t)c * hc_hsum8_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    }
    *dg = ldexpf(D, -smax);
    *sg = D * (float)qc;
}

/* ---------------- row ranges ---------------- */

#define MAX_TOK_STACK 64   /* tokens whose activation views sit on the stack; more go in rounds */

AI void rows_kernel(const int bits, const int bpg, const geom *gm, const uint8_t *w, const void *xq, size_t xrb, int n_tok,
                    float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    if (n_tok == 1) {
        const xin x = x_at(xq, xrb, 0, gm->nb, gm->G);
        int64_t o = row0;
        for (; o + DECODE_ROWS <= row1; o += DECODE_ROWS) decode_tile(bits, bpg, DECODE_ROWS, gm, w, o, &x, y);
        for (; o < row1; o++) decode_tile(bits, bpg, 1, gm, w, o, &x, y);
        return;
    }
    xin xs[MAX_TOK_STACK];
    for (int tb = 0; tb < n_tok; tb += MAX_TOK_STACK) {
        const int nt = n_tok - tb < MAX_TOK_STACK ? n_tok - tb : MAX_TOK_STACK;
        for (int t = 0; t < nt; t++) xs[t] = x_at(xq, xrb, tb + t, gm->nb, gm->G);
        float *yb = y + (size_t)tb * (size_t)ldy;
        for (int64_t o0 = row0; o0 < row1; o0 += ROW_CHUNK) {
            const int64_t o1 = o0 + ROW_CHUNK < row1 ? o0 + ROW_CHUNK : row1;
            for (int t0 = 0; t0 < nt;) {   /* token groups of 8, then 4, then what is left */
                const int left = nt - t0, T = left >= 8 ? 8 : left >= 4 ? 4 : left;
                switch (T) {
                case 8: for (int64_t o = o0; o < o1; o++) batch_tile(bits, bpg, 8, gm, w, o, xs, t0, yb, ldy); break;
                case 4: for (int64_t o = o0; o < o1; o++) batch_tile(bits, bpg, 4, gm, w, o, xs, t0, yb, ldy); break;
                case 3: for (int64_t o = o0; o < o1; o++) batch_tile(bits, bpg, 3, gm, w, o, xs, t0, yb, ldy); break;
                case 2: for (int64_t o = o0; o < o1; o++) batch_tile(bits, bpg, 2, gm, w, o, xs, t0, yb, ldy); break;
                default: for (int64_t o = o0; o < o1; o++) batch_tile(bits, bpg, 1, gm, w, o, xs, t0, yb, ldy); break;
                }
                t0 += T;
            }
        }
    }
}

#define QRTN_KERNEL(name, b, g)                                                                     \
    static __attribute__((noinline)) void name(const geom *gm, const uint8_t *w, const void *xq, size_t xrb, \
                                               int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1) \
    {                                                                                               \
        rows_kernel(b, g / 32, gm, w, xq, xrb, n_tok, y, ldy, row0, row1);                          \
    }

QRTN_KERNEL(rows_b2_g32, 2, 32)
QRTN_KERNEL(rows_b2_g64, 2, 64)
QRTN_KERNEL(rows_b2_g128, 2, 128)
QRTN_KERNEL(rows_b3_g32, 3, 32)
QRTN_KERNEL(rows_b3_g64, 3, 64)
QRTN_KERNEL(rows_b3_g128, 3, 128)
QRTN_KERNEL(rows_b4_g32, 4, 32)
QRTN_KERNEL(rows_b4_g64, 4, 64)
QRTN_KERNEL(rows_b4_g128, 4, 128)
QRTN_KERNEL(rows_b8_g32, 8, 32)
QRTN_KERNEL(rows_b8_g64, 8, 64)
QRTN_KERNEL(rows_b8_g128, 8, 128)

typedef void (*rows_fn)(const geom *, const uint8_t *, const void *, size_t, int, float *, int64_t, int64_t, int64_t);

void hc_qrtn_matmul_rows_avx2(int bits, int group, const void *packed, int64_t cols, const void *xq,
                              int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    static const rows_fn fns[4][3] = {{rows_b2_g32, rows_b2_g64, rows_b2_g128}, {rows_b3_g32, rows_b3_g64, rows_b3_g128},
                                      {rows_b4_g32, rows_b4_g64, rows_b4_g128}, {rows_b8_g32, rows_b8_g64, rows_b8_g128}};
    const geom gm = {cols, cols / 32, hc_qrtn_groups(group, cols), hc_qrtn_row_bytes(bits, group, cols)};
    const int bi = bits == 2 ? 0 : bits == 3 ? 1 : bits == 4 ? 2 : 3, gi = group == 32 ? 0 : group == 64 ? 1 : 2;
    fns[bi][gi](&gm, packed, xq, hc_qrtn_input_row_bytes(bits, group, cols), n_tok, y, ldy, row0, row1);
}
