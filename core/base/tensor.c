/* tensor.c: the standard tensor types: block sizes and names, f16/bf16 conversions, and the
 * plain reference dequantization of every GGUF block format hcinfer reads (Q4_0 .. Q6_K). */
#include "hc/hc_tensor.h"

#include <math.h>
#include <string.h>

/* ---- type traits ---- */

typedef struct dtype_traits {
    hc_dtype type;
    const char *name;
    int block_size;      /* elements per block */
    size_t block_bytes;  /* bytes per block */
} dtype_traits;

static const dtype_traits TRAITS[] = {
    {HC_F32, "f32", 1, 4},       {HC_F16, "f16", 1, 2},       {HC_BF16, "bf16", 1, 2},
    {HC_Q4_0, "q4_0", 32, 18},   {HC_Q4_1, "q4_1", 32, 20},   {HC_Q5_0, "q5_0", 32, 22},
    {HC_Q5_1, "q5_1", 32, 24},   {HC_Q8_0, "q8_0", 32, 34},   {HC_Q2_K, "q2_K", 256, 84},
    {HC_Q3_K, "q3_K", 256, 110}, {HC_Q4_K, "q4_K", 256, 144}, {HC_Q5_K, "q5_K", 256, 176},
    {HC_Q6_K, "q6_K", 256, 210}, {HC_I8, "i8", 1, 1},         {HC_I16, "i16", 1, 2},
    {HC_I32, "i32", 1, 4},       {HC_I64, "i64", 1, 8},       {HC_F64, "f64", 1, 8},
};

static const dtype_traits *traits_of(hc_dtype t)
{
    for (size_t i = 0; i < sizeof TRAITS / sizeof TRAITS[0]; i++)
        if (TRAITS[i].type == t) return &TRAITS[i];
    return NULL;
}

int hc_dtype_block_size(hc_dtype t)
{
    const dtype_traits *tr = traits_of(t);
    return tr ? tr->block_size : 0;
}

size_t hc_dtype_block_bytes(hc_dtype t)
{
    const dtype_traits *tr = traits_of(t);
    return tr ? tr->block_bytes : 0;
}

size_t hc_dtype_row_bytes(hc_dtype t, int64_t n)
{
    const dtype_traits *tr = traits_of(t);
    if (!tr || n < 0 || n % tr->block_size != 0) return 0;
    uint64_t blocks = (uint64_t)n / (uint64_t)tr->block_size;
    if (blocks > SIZE_MAX / tr->block_bytes) return 0;
    return (size_t)blocks * tr->block_bytes;
}

const char *hc_dtype_name(hc_dtype t)
{
    if (t == HC_PACKED) return "packed";
    const dtype_traits *tr = traits_of(t);
    return tr ? tr->name : "unknown";
}

int hc_dtype_is_known(hc_dtype t) { return traits_of(t) != NULL; }

int64_t hc_tensor_nelements(const hc_tensor *t)
{
    int nd = t->n_dims < 0 ? 0 : t->n_dims > HC_MAX_DIMS ? HC_MAX_DIMS : t->n_dims;
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= t->ne[i];
    return n;
}

int64_t hc_tensor_nrows(const hc_tensor *t)
{
    int nd = t->n_dims < 0 ? 0 : t->n_dims > HC_MAX_DIMS ? HC_MAX_DIMS : t->n_dims;
    int64_t n = 1;
    for (int i = 1; i < nd; i++) n *= t->ne[i];
    return n;
}

/* ---- half precision ---- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float hc_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf, NaN (payload kept) */
    if (exp != 0) return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0) return bits_f32(sign);
    /* subnormal: man * 2^-24; normalise the mantissa into an f32 normal */
    int e = 113;                     /* f32 biased exponent of 2^-14 */
    while (!(man & 0x400)) {
        man <<= 1;
        e--;
    }
    return bits_f32(sign | ((uint32_t)e << 23) | ((man & 0x3ff) << 13));
}

uint16_t hc_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((x >> 13) & 0x1ff); /* quiet NaN */
    if (x >= 0x47800000u) return sign | 0x7c00;       /* >= 65536 (and inf): infinity */
    uint32_t e = x >> 23;
    if (e < 113) {                                      /* below 2^-14: f16 subnormal or zero */
        if (e < 102) return sign;                       /* below 2^-25: rounds to zero */
        uint32_t m = (x & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;                       /* value = m * 2^(e-150) = q * 2^-24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return sign | (uint16_t)q;                      /* q == 0x400 is the smallest normal */
    }
    uint32_t h = ((e - 112) << 10) | ((x >> 13) & 0x3ff);
    uint32_t rem = x & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* a carry may reach infinity: right */
    return sign | (uint16_t)h;
}

float hc_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t hc_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);                    /* round to nearest, ties to even */
    return (uint16_t)(x >> 16);
}

/* ---- reference dequantization, one block at a time ---- */

static float rd_f16(const uint8_t *p) { return hc_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* Q4_0: d, qs[16]; element j is the low nibble of qs[j], element j+16 the high nibble. */
static void deq_q4_0(const uint8_t *b, float *y)
{
    float d = rd_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 0xf) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

static void deq_q4_1(const uint8_t *b, float *y)
{
    float d = rd_f16(b), m = rd_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(qs[j] & 0xf) + m;
        y[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

/* Q5_0/Q5_1: the fifth bit of element i is bit i of the little-endian 32-bit qh. */
static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void deq_q5_0(const uint8_t *b, float *y)
{
    float d = rd_f16(b);
    uint32_t qh = rd_u32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4);
        int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static void deq_q5_1(const uint8_t *b, float *y)
{
    float d = rd_f16(b), m = rd_f16(b + 2);
    uint32_t qh = rd_u32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4);
        int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

static void deq_q8_0(const uint8_t *b, float *y)
{
    float d = rd_f16(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = d * (float)qs[j];
}

/* Q8_0 blocks of n floats (n a multiple of 32): d = max|x| / 127 stored as f16, q = x / d rounded
 * to the nearest integer (ties to even). */
void hc_quantize_row_q8_0(const float *x, void *dst, int64_t n)
{
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / 32; b++, x += 32, out += 34) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        uint16_t h = hc_f32_to_f16(d);
        memcpy(out, &h, 2);
        for (int i = 0; i < 32; i++) out[2 + i] = (uint8_t)(int8_t)lrintf(x[i] * id);
    }
}

/* Q2_K: scales[16] (low nibble scale, high nibble min, one pair per 16 elements), qs[64] (2-bit),
 * f16 d, f16 dmin. Each half of 128 elements uses 32 bytes of qs; the 4 bit-pairs of a byte
 * belong to 4 successive groups of 32 elements; w = d*sc*q - dmin*mn. */
static void deq_q2_k(const uint8_t *b, float *y)
{
    const uint8_t *scales = b, *qs = b + 16;
    float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    int s = 0;
    for (int half = 0; half < 2; half++) {
        const uint8_t *q = qs + 32 * half;
        for (int shift = 0; shift < 8; shift += 2) {
            for (int part = 0; part < 2; part++) {     /* two groups of 16 per bit-pair */
                uint8_t sc = scales[s++];
                float dl = d * (float)(sc & 0xf), ml = dmin * (float)(sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[16 * part + l] >> shift) & 3) - ml;
            }
        }
    }
}

/* Q3_K: hmask[32] (third bit; clear means subtract 4), qs[64] (low 2 bits, arranged as in Q2_K),
 * scales[12] (sixteen 6-bit scales, biased by 32), f16 d; w = d*(sc-32)*q with q in -4..3.
 * Scale i: low 4 bits from byte i (i < 8) or the high nibble of byte i-8, high 2 bits from
 * byte 8 + i%4 at bit 2*(i/4). */
static int q3k_scale(const uint8_t *sc, int i)
{
    int lo = i < 8 ? (sc[i] & 0xf) : (sc[i - 8] >> 4);
    int hi = (sc[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

static void deq_q3_k(const uint8_t *b, float *y)
{
    const uint8_t *hmask = b, *qs = b + 32, *scales = b + 96;
    float d = rd_f16(b + 108);
    int s = 0, bit = 0;                                 /* bit: which hmask bit, 0..7 */
    for (int half = 0; half < 2; half++) {
        const uint8_t *q = qs + 32 * half;
        for (int shift = 0; shift < 8; shift += 2, bit++) {
            for (int part = 0; part < 2; part++) {
                float dl = d * (float)q3k_scale(scales, s++);
                for (int l = 0; l < 16; l++) {
                    int idx = 16 * part + l;
                    int v = (q[idx] >> shift) & 3;
                    if (!((hmask[idx] >> bit) & 1)) v -= 4;
                    *y++ = dl * (float)v;
                }
            }
        }
    }
}

/* Q4_K/Q5_K: eight 6-bit (scale, min) pairs packed in 12 bytes. Pairs 0..3: low 6 bits of bytes
 * 0..3 (scale) and 4..7 (min); pairs 4..7: a nibble of bytes 8..11 plus the top 2 bits of the
 * bytes of pairs 0..3. */
static void k4_scale_min(const uint8_t *q, int j, int *sc, int *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: f16 d, f16 dmin, scales[12], qs[128]; each 64 elements use 32 bytes: low nibbles are
 * the first 32 (sub-block 2i), high nibbles the next 32 (sub-block 2i+1); w = d*sc*q - dmin*mn. */
static void deq_q4_k(const uint8_t *b, float *y)
{
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *qs = b + 16;
    for (int i = 0; i < 4; i++) {
        const uint8_t *q = qs + 32 * i;
        int sc, mn;
        k4_scale_min(scales, 2 * i, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k4_scale_min(scales, 2 * i + 1, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xf) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
}

/* Q5_K: as Q4_K plus qh[32]: the fifth bit of element l of sub-block k is bit k of qh[l]. */
static void deq_q5_k(const uint8_t *b, float *y)
{
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + 48;
    for (int i = 0; i < 4; i++) {
        const uint8_t *q = qs + 32 * i;
        int sc, mn;
        k4_scale_min(scales, 2 * i, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k4_scale_min(scales, 2 * i + 1, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((q[l] & 0xf) | (((qh[l] >> (2 * i)) & 1) << 4)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((q[l] >> 4) | (((qh[l] >> (2 * i + 1)) & 1) << 4)) - m2;
    }
}

/* Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16] (one per 16), f16 d;
 * w = d*sc*(q-32). Per half of 128: element l+32k takes nibble (k/2) of ql[l + 32*(k&1)] and
 * bits 2k..2k+1 of qh[l]. */
static void deq_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rd_f16(b + 208);
    for (int half = 0; half < 2; half++) {
        for (int l = 0; l < 32; l++) {
            for (int k = 0; k < 4; k++) {
                uint8_t lowbyte = ql[l + 32 * (k & 1)];
                int lo = (k < 2) ? (lowbyte & 0xf) : (lowbyte >> 4);
                int hi = (qh[l] >> (2 * k)) & 3;
                int q = (lo | (hi << 4)) - 32;
                y[l + 32 * k] = d * (float)sc[l / 16 + 2 * k] * (float)q;
            }
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

typedef void (*block_fn)(const uint8_t *block, float *out);

static block_fn block_fn_of(hc_dtype t)
{
    switch (t) {
    case HC_Q4_0: return deq_q4_0;
    case HC_Q4_1: return deq_q4_1;
    case HC_Q5_0: return deq_q5_0;
    case HC_Q5_1: return deq_q5_1;
    case HC_Q8_0: return deq_q8_0;
    case HC_Q2_K: return deq_q2_k;
    case HC_Q3_K: return deq_q3_k;
    case HC_Q4_K: return deq_q4_k;
    case HC_Q5_K: return deq_q5_k;
    case HC_Q6_K: return deq_q6_k;
    default: return NULL;
    }
}

/* Unknown types and a trailing partial block give NaN, so a misuse shows in the results. */
void hc_dequantize_row(hc_dtype t, const void *src, float *dst, int64_t n)
{
    const uint8_t *p = (const uint8_t *)src;
    if (n <= 0) return;
    switch (t) {
    case HC_F32: memcpy(dst, src, (size_t)n * 4); return;
    case HC_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = hc_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return;
    case HC_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = hc_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return;
    case HC_I8:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(int8_t)p[i];
        return;
    case HC_I16:
        for (int64_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, p + 2 * i, 2);
            dst[i] = (float)v;
        }
        return;
    case HC_I32:
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = (float)v;
        }
        return;
    case HC_I64:
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        return;
    case HC_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        return;
    default: break;
    }
    block_fn fn = block_fn_of(t);
    const dtype_traits *tr = traits_of(t);
    if (!fn || !tr) {
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
        return;
    }
    int64_t bs = tr->block_size, nb = n / bs;
    for (int64_t i = 0; i < nb; i++) fn(p + (size_t)i * tr->block_bytes, dst + i * bs);
    for (int64_t i = nb * bs; i < n; i++) dst[i] = NAN;
}
