/* test_dtypes.c: the standard tensor types: block traits, f16/bf16 conversions (subnormals,
 * infinities, NaN, ties to even) and dequantization of hand-built blocks with literal results. */
#include "test_util.h"

#include "hc/hc_tensor.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static float f32_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_of_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void put_f16(uint8_t *p, uint16_t h)
{
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Compares dst[idx[i]] with want[i] exactly (every value here is exact in binary). */
static void check_at(const float *dst, const int *idx, const float *want, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        if (dst[idx[i]] != want[i]) fprintf(stderr, "  %s[%d] = %g, expected %g\n", what, idx[i], dst[idx[i]], want[i]);
        CU_ASSERT_EQUAL(dst[idx[i]], want[i]);
    }
}

static void test_traits(void)
{
    static const struct { hc_dtype t; int bs; size_t bytes; const char *name; } T[] = {
        {HC_F32, 1, 4, "f32"},       {HC_F16, 1, 2, "f16"},       {HC_BF16, 1, 2, "bf16"},
        {HC_Q4_0, 32, 18, "q4_0"},   {HC_Q4_1, 32, 20, "q4_1"},   {HC_Q5_0, 32, 22, "q5_0"},
        {HC_Q5_1, 32, 24, "q5_1"},   {HC_Q8_0, 32, 34, "q8_0"},   {HC_Q2_K, 256, 84, "q2_K"},
        {HC_Q3_K, 256, 110, "q3_K"}, {HC_Q4_K, 256, 144, "q4_K"}, {HC_Q5_K, 256, 176, "q5_K"},
        {HC_Q6_K, 256, 210, "q6_K"}, {HC_I8, 1, 1, "i8"},         {HC_I16, 1, 2, "i16"},
        {HC_I32, 1, 4, "i32"},       {HC_I64, 1, 8, "i64"},       {HC_F64, 1, 8, "f64"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        CU_ASSERT_EQUAL(hc_dtype_block_size(T[i].t), T[i].bs);
        CU_ASSERT_EQUAL(hc_dtype_block_bytes(T[i].t), T[i].bytes);
        CU_ASSERT_STRING_EQUAL(hc_dtype_name(T[i].t), T[i].name);
        CU_ASSERT_TRUE(hc_dtype_is_known(T[i].t));
    }
    /* ggml ids */
    CU_ASSERT_EQUAL(HC_Q5_0, 6);
    CU_ASSERT_EQUAL(HC_Q5_1, 7);
    CU_ASSERT_EQUAL(HC_Q2_K, 10);
    CU_ASSERT_EQUAL(HC_Q6_K, 14);
    CU_ASSERT_FALSE(hc_dtype_is_known((hc_dtype)4));
    CU_ASSERT_FALSE(hc_dtype_is_known((hc_dtype)16));
    CU_ASSERT_FALSE(hc_dtype_is_known(HC_PACKED));
    CU_ASSERT_EQUAL(hc_dtype_block_size((hc_dtype)16), 0);
    CU_ASSERT_EQUAL(hc_dtype_block_bytes((hc_dtype)16), 0);
    CU_ASSERT_STRING_EQUAL(hc_dtype_name(HC_PACKED), "packed");

    CU_ASSERT_EQUAL(hc_dtype_row_bytes(HC_Q4_0, 64), 36);
    CU_ASSERT_EQUAL(hc_dtype_row_bytes(HC_Q4_0, 33), 0);
    CU_ASSERT_EQUAL(hc_dtype_row_bytes(HC_Q6_K, 512), 420);
    CU_ASSERT_EQUAL(hc_dtype_row_bytes(HC_Q6_K, 128), 0);
    CU_ASSERT_EQUAL(hc_dtype_row_bytes(HC_F32, 10), 40);
    CU_ASSERT_EQUAL(hc_dtype_row_bytes(HC_F32, -1), 0);
    CU_ASSERT_EQUAL(hc_dtype_row_bytes((hc_dtype)16, 32), 0);
    CU_ASSERT_EQUAL(hc_dtype_row_bytes(HC_F64, INT64_MAX), 0);   /* overflows size_t */

    hc_tensor t = {.n_dims = 3, .ne = {8, 3, 5, 1}};
    CU_ASSERT_EQUAL(hc_tensor_nelements(&t), 120);
    CU_ASSERT_EQUAL(hc_tensor_nrows(&t), 15);
    hc_tensor v = {.n_dims = 1, .ne = {7, 1, 1, 1}};
    CU_ASSERT_EQUAL(hc_tensor_nelements(&v), 7);
    CU_ASSERT_EQUAL(hc_tensor_nrows(&v), 1);
}

static void test_f16_to_f32(void)
{
    CU_ASSERT_EQUAL(hc_f16_to_f32(0x0000), 0.0f);
    CU_ASSERT_FALSE(signbit(hc_f16_to_f32(0x0000)));
    CU_ASSERT_EQUAL(hc_f16_to_f32(0x8000), 0.0f);
    CU_ASSERT_TRUE(signbit(hc_f16_to_f32(0x8000)));
    CU_ASSERT_EQUAL(hc_f16_to_f32(0x3C00), 1.0f);
    CU_ASSERT_EQUAL(hc_f16_to_f32(0xC000), -2.0f);
    CU_ASSERT_EQUAL(hc_f16_to_f32(0x3555), 0.333251953125f);
    CU_ASSERT_EQUAL(hc_f16_to_f32(0x7BFF), 65504.0f);
    CU_ASSERT_EQUAL(hc_f16_to_f32(0x0400), 6.103515625e-05f);        /* 2^-14, smallest normal */
    CU_ASSERT_EQUAL(hc_f16_to_f32(0x0001), 5.9604644775390625e-08f); /* 2^-24, smallest subnormal */
    CU_ASSERT_EQUAL(hc_f16_to_f32(0x03FF), 6.097555160522461e-05f);  /* 1023 * 2^-24 */
    CU_ASSERT_EQUAL(hc_f16_to_f32(0x8200), -3.0517578125e-05f);      /* -512 * 2^-24 */
    CU_ASSERT_TRUE(isinf(hc_f16_to_f32(0x7C00)) && hc_f16_to_f32(0x7C00) > 0);
    CU_ASSERT_TRUE(isinf(hc_f16_to_f32(0xFC00)) && hc_f16_to_f32(0xFC00) < 0);
    CU_ASSERT_TRUE(isnan(hc_f16_to_f32(0x7E00)));
    CU_ASSERT_TRUE(isnan(hc_f16_to_f32(0x7C01)));
    CU_ASSERT_TRUE(isnan(hc_f16_to_f32(0xFFFF)));
}

static void test_f32_to_f16(void)
{
    CU_ASSERT_EQUAL(hc_f32_to_f16(0.0f), 0x0000);
    CU_ASSERT_EQUAL(hc_f32_to_f16(-0.0f), 0x8000);
    CU_ASSERT_EQUAL(hc_f32_to_f16(1.0f), 0x3C00);
    CU_ASSERT_EQUAL(hc_f32_to_f16(-2.0f), 0xC000);
    CU_ASSERT_EQUAL(hc_f32_to_f16(65504.0f), 0x7BFF);
    CU_ASSERT_EQUAL(hc_f32_to_f16(65519.0f), 0x7BFF);   /* below the midpoint to 65536 */
    CU_ASSERT_EQUAL(hc_f32_to_f16(65520.0f), 0x7C00);   /* the midpoint: ties to even = inf */
    CU_ASSERT_EQUAL(hc_f32_to_f16(1e10f), 0x7C00);
    CU_ASSERT_EQUAL(hc_f32_to_f16(-1e10f), 0xFC00);
    CU_ASSERT_EQUAL(hc_f32_to_f16(INFINITY), 0x7C00);
    CU_ASSERT_EQUAL(hc_f32_to_f16(-INFINITY), 0xFC00);
    uint16_t n = hc_f32_to_f16(NAN);
    CU_ASSERT_EQUAL(n & 0x7C00, 0x7C00);
    CU_ASSERT_NOT_EQUAL(n & 0x03FF, 0);
    /* a NaN whose payload lies only in the low bits must stay a NaN */
    uint16_t n2 = hc_f32_to_f16(f32_of_bits(0x7F800001u));
    CU_ASSERT_EQUAL(n2 & 0x7C00, 0x7C00);
    CU_ASSERT_NOT_EQUAL(n2 & 0x03FF, 0);
    /* subnormals */
    CU_ASSERT_EQUAL(hc_f32_to_f16(6.103515625e-05f), 0x0400);
    CU_ASSERT_EQUAL(hc_f32_to_f16(5.9604644775390625e-08f), 0x0001);
    CU_ASSERT_EQUAL(hc_f32_to_f16(6.097555160522461e-05f), 0x03FF);
    CU_ASSERT_EQUAL(hc_f32_to_f16(2.98023223876953125e-08f), 0x0000);  /* 2^-25: tie -> even 0 */
    CU_ASSERT_EQUAL(hc_f32_to_f16(-2.98023223876953125e-08f), 0x8000);
    CU_ASSERT_EQUAL(hc_f32_to_f16(2.9802326e-08f), 0x0001);            /* just above the tie */
    CU_ASSERT_EQUAL(hc_f32_to_f16(8.940696716308594e-08f), 0x0002);    /* 3*2^-25: tie -> even 2 */
    CU_ASSERT_EQUAL(hc_f32_to_f16(1e-10f), 0x0000);
    /* largest subnormal + half a unit rounds up to the smallest normal */
    CU_ASSERT_EQUAL(hc_f32_to_f16(6.100535392761230e-05f), 0x0400);
    /* ties between normals */
    CU_ASSERT_EQUAL(hc_f32_to_f16(1.00048828125f), 0x3C00);   /* 1 + 2^-11: tie -> even 0x3C00 */
    CU_ASSERT_EQUAL(hc_f32_to_f16(1.00146484375f), 0x3C02);   /* 1 + 3*2^-11: tie -> even 0x3C02 */
    CU_ASSERT_EQUAL(hc_f32_to_f16(f32_of_bits(0x3F801001u)), 0x3C01); /* just above the first tie */
    CU_ASSERT_EQUAL(hc_f32_to_f16(2047.0f), 0x67FF);
    CU_ASSERT_EQUAL(hc_f32_to_f16(2047.5f), 0x6800);          /* 2047.5 -> 2048 (odd 0x67FF loses) */

    /* every finite f16 survives the round trip f16 -> f32 -> f16; NaN stays NaN */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hc_f16_to_f32((uint16_t)h);
        uint16_t back = hc_f32_to_f16(f);
        if (isnan(f)) {
            if ((back & 0x7C00) != 0x7C00 || !(back & 0x3FF)) bad++;
        } else if (back != h) {
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_bf16(void)
{
    CU_ASSERT_EQUAL(hc_f32_to_bf16(1.0f), 0x3F80);
    CU_ASSERT_EQUAL(hc_f32_to_bf16(-0.0f), 0x8000);
    CU_ASSERT_EQUAL(hc_f32_to_bf16(0.0f), 0x0000);
    CU_ASSERT_EQUAL(hc_f32_to_bf16(f32_of_bits(0x3F808000u)), 0x3F80); /* tie, even stays */
    CU_ASSERT_EQUAL(hc_f32_to_bf16(f32_of_bits(0x3F818000u)), 0x3F82); /* tie, odd rounds up */
    CU_ASSERT_EQUAL(hc_f32_to_bf16(f32_of_bits(0x3F808001u)), 0x3F81); /* above the tie */
    CU_ASSERT_EQUAL(hc_f32_to_bf16(f32_of_bits(0x3F807FFFu)), 0x3F80); /* below the tie */
    CU_ASSERT_EQUAL(hc_f32_to_bf16(INFINITY), 0x7F80);
    CU_ASSERT_EQUAL(hc_f32_to_bf16(-INFINITY), 0xFF80);
    CU_ASSERT_EQUAL(hc_f32_to_bf16(f32_of_bits(0x7F7FFFFFu)), 0x7F80); /* FLT_MAX rounds to inf */
    uint16_t n = hc_f32_to_bf16(f32_of_bits(0x7F800001u));            /* NaN with a low payload */
    CU_ASSERT_EQUAL(n & 0x7F80, 0x7F80);
    CU_ASSERT_NOT_EQUAL(n & 0x007F, 0);
    CU_ASSERT_EQUAL(hc_bf16_to_f32(0x3F80), 1.0f);
    CU_ASSERT_EQUAL(hc_bf16_to_f32(0xC040), -3.0f);
    CU_ASSERT_EQUAL(bits_of_f32(hc_bf16_to_f32(0x8000)), 0x80000000u);
    CU_ASSERT_TRUE(isnan(hc_bf16_to_f32(0x7FC0)));
    CU_ASSERT_TRUE(isinf(hc_bf16_to_f32(0xFF80)));
    CU_ASSERT_EQUAL(hc_bf16_to_f32(0x0001), f32_of_bits(0x00010000u)); /* subnormal */
}

static void test_plain_types(void)
{
    float out[4];
    uint8_t f16[8];
    put_f16(f16, 0x3C00);
    put_f16(f16 + 2, 0xC000);
    put_f16(f16 + 4, 0x7BFF);
    put_f16(f16 + 6, 0x0001);
    hc_dequantize_row(HC_F16, f16, out, 4);
    CU_ASSERT_EQUAL(out[0], 1.0f);
    CU_ASSERT_EQUAL(out[1], -2.0f);
    CU_ASSERT_EQUAL(out[2], 65504.0f);
    CU_ASSERT_EQUAL(out[3], 5.9604644775390625e-08f);

    uint8_t bf[4] = {0x80, 0x3F, 0x40, 0xC0};
    hc_dequantize_row(HC_BF16, bf, out, 2);
    CU_ASSERT_EQUAL(out[0], 1.0f);
    CU_ASSERT_EQUAL(out[1], -3.0f);

    int8_t i8[3] = {-128, 0, 127};
    hc_dequantize_row(HC_I8, i8, out, 3);
    CU_ASSERT_EQUAL(out[0], -128.0f);
    CU_ASSERT_EQUAL(out[2], 127.0f);
    int16_t i16[2] = {-32768, 1234};
    hc_dequantize_row(HC_I16, i16, out, 2);
    CU_ASSERT_EQUAL(out[0], -32768.0f);
    CU_ASSERT_EQUAL(out[1], 1234.0f);
    int32_t i32[2] = {-100000, 7};
    hc_dequantize_row(HC_I32, i32, out, 2);
    CU_ASSERT_EQUAL(out[0], -100000.0f);
    CU_ASSERT_EQUAL(out[1], 7.0f);
    int64_t i64[1] = {-(1LL << 40)};
    hc_dequantize_row(HC_I64, i64, out, 1);
    CU_ASSERT_EQUAL(out[0], -1099511627776.0f);
    double f64[2] = {0.25, -1e300};
    hc_dequantize_row(HC_F64, f64, out, 2);
    CU_ASSERT_EQUAL(out[0], 0.25f);
    CU_ASSERT_TRUE(isinf(out[1]) && out[1] < 0);
    float f32[2] = {1.5f, -7.0f};
    hc_dequantize_row(HC_F32, f32, out, 2);
    CU_ASSERT_EQUAL(out[0], 1.5f);
    CU_ASSERT_EQUAL(out[1], -7.0f);
    /* an unknown type gives NaN rather than garbage */
    hc_dequantize_row((hc_dtype)99, f32, out, 2);
    CU_ASSERT_TRUE(isnan(out[0]) && isnan(out[1]));
}

/* qs[j] = j | (15-j)<<4: low nibbles 0..15, high nibbles 15..0 */
static void fill_nibbles(uint8_t *qs)
{
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(j | ((15 - j) << 4));
}

static void test_q4_0(void)
{
    uint8_t b[2 * 18];
    put_f16(b, 0x3800);            /* d = 0.5 */
    fill_nibbles(b + 2);
    put_f16(b + 18, 0xC000);       /* second block: d = -2, every nibble 8 -> 0 except one */
    memset(b + 20, 0x88, 16);
    b[20 + 3] = 0xF0;              /* element 3: q = 0 -> 16; element 19: q = 15 -> -14 */
    static const float want[32] = {-4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5,
                                   3.5, 3, 2.5, 2, 1.5, 1, 0.5, 0, -0.5, -1, -1.5, -2, -2.5, -3, -3.5, -4};
    float out[64];
    hc_dequantize_row(HC_Q4_0, b, out, 64);
    for (int i = 0; i < 32; i++) CU_ASSERT_EQUAL(out[i], want[i]);
    CU_ASSERT_EQUAL(out[32 + 3], 16.0f);
    CU_ASSERT_EQUAL(out[32 + 19], -14.0f);
    CU_ASSERT_EQUAL(out[32 + 0], 0.0f);
    CU_ASSERT_EQUAL(out[63], 0.0f);
}

static void test_q4_1(void)
{
    uint8_t b[20];
    put_f16(b, 0x3400);            /* d = 0.25 */
    put_f16(b + 2, 0xBC00);        /* m = -1 */
    fill_nibbles(b + 4);
    static const float want[32] = {-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75,
                                   2.75, 2.5, 2.25, 2, 1.75, 1.5, 1.25, 1, 0.75, 0.5, 0.25, 0, -0.25, -0.5, -0.75, -1};
    float out[32];
    hc_dequantize_row(HC_Q4_1, b, out, 32);
    for (int i = 0; i < 32; i++) CU_ASSERT_EQUAL(out[i], want[i]);
}

static void test_q5_0(void)
{
    uint8_t b[22];
    put_f16(b, 0x3800);            /* d = 0.5 */
    /* qh = 0x00F0000F: fifth bit for elements 0..3 and 20..23 */
    b[2] = 0x0F; b[3] = 0x00; b[4] = 0xF0; b[5] = 0x00;
    fill_nibbles(b + 6);
    /* element j < 16: q = j (+16 for j < 4); element 16+j: q = 15-j (+16 for j in 4..7); w = (q-16)/2 */
    static const float want[32] = {0, 0.5, 1, 1.5, -6, -5.5, -5, -4.5, -4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5,
                                   -0.5, -1, -1.5, -2, 5.5, 5, 4.5, 4, -4.5, -5, -5.5, -6, -6.5, -7, -7.5, -8};
    float out[32];
    hc_dequantize_row(HC_Q5_0, b, out, 32);
    for (int i = 0; i < 32; i++) CU_ASSERT_EQUAL(out[i], want[i]);
}

static void test_q5_1(void)
{
    uint8_t b[24];
    put_f16(b, 0x4000);            /* d = 2 */
    put_f16(b + 2, 0x3800);        /* m = 0.5 */
    b[4] = 0x00; b[5] = 0x00; b[6] = 0xFF; b[7] = 0xFF;   /* qh = 0xFFFF0000: elements 16..31 */
    fill_nibbles(b + 8);
    /* element j: 2j + 0.5; element 16+j: 2*(15-j+16) + 0.5 */
    static const float want[32] = {0.5, 2.5, 4.5, 6.5, 8.5, 10.5, 12.5, 14.5, 16.5, 18.5, 20.5, 22.5, 24.5, 26.5, 28.5, 30.5,
                                   62.5, 60.5, 58.5, 56.5, 54.5, 52.5, 50.5, 48.5, 46.5, 44.5, 42.5, 40.5, 38.5, 36.5, 34.5, 32.5};
    float out[32];
    hc_dequantize_row(HC_Q5_1, b, out, 32);
    for (int i = 0; i < 32; i++) CU_ASSERT_EQUAL(out[i], want[i]);
}

static void test_q8_0(void)
{
    uint8_t b[34];
    put_f16(b, 0x4000);            /* d = 2 */
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(j - 16);
    b[2 + 0] = (uint8_t)(int8_t)-128;
    b[2 + 31] = 127;
    float out[32];
    hc_dequantize_row(HC_Q8_0, b, out, 32);
    CU_ASSERT_EQUAL(out[0], -256.0f);
    CU_ASSERT_EQUAL(out[1], -30.0f);
    CU_ASSERT_EQUAL(out[16], 0.0f);
    CU_ASSERT_EQUAL(out[17], 2.0f);
    CU_ASSERT_EQUAL(out[30], 28.0f);
    CU_ASSERT_EQUAL(out[31], 254.0f);
}

/* qs byte k holds four 2-bit fields; field s of byte k is (k+s)%4 */
static void fill_2bit(uint8_t *qs, int n)
{
    for (int k = 0; k < n; k++)
        qs[k] = (uint8_t)((k % 4) | (((k + 1) % 4) << 2) | (((k + 2) % 4) << 4) | (((k + 3) % 4) << 6));
}

static void test_q2_k(void)
{
    uint8_t b[84];
    for (int i = 0; i < 16; i++) b[i] = (uint8_t)((1 + i % 8) | ((i % 4) << 4)); /* scale 1+i%8, min i%4 */
    fill_2bit(b + 16, 64);
    put_f16(b + 80, 0x3800);       /* d = 0.5 */
    put_f16(b + 82, 0x3400);       /* dmin = 0.25 */
    float out[256];
    hc_dequantize_row(HC_Q2_K, b, out, 256);
    static const int idx[] = {1, 19, 50, 71, 100, 127, 128, 200, 255};
    static const float want[] = {0.5f, 2.75f, 5.25f, 2.5f, 10.0f, 7.25f, 0.0f, 5.0f, 7.25f};
    check_at(out, idx, want, 9, "q2_K");
}

static void test_q3_k(void)
{
    uint8_t b[110];
    uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
    for (int i = 0; i < 32; i++) hmask[i] = (i % 2) ? 0xFF : 0x0F;
    fill_2bit(qs, 64);
    /* sixteen 6-bit scales 24+i (i - 8 after the bias of 32): low nibbles 8..15 / 0..7, high bits 1 / 2 */
    for (int j = 0; j < 8; j++) sc[j] = (uint8_t)((8 + j) | (j << 4));
    for (int j = 8; j < 12; j++) sc[j] = 0xA5;
    put_f16(b + 108, 0x3800);      /* d = 0.5 */
    float out[256];
    hc_dequantize_row(HC_Q3_K, b, out, 256);
    static const int idx[] = {1, 19, 50, 100, 127, 150, 200, 240, 255};
    static const float want[] = {-4.0f, -10.5f, -7.5f, -3.0f, -1.0f, -1.0f, -4.0f, -3.5f, 7.0f};
    check_at(out, idx, want, 9, "q3_K");
}

/* Packs eight 6-bit (scale, min) pairs: scale 10+7j, min 63-5j. */
static void fill_k4_scales(uint8_t *q)
{
    int sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = 10 + 7 * j;
        mn[j] = 63 - 5 * j;
    }
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        q[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
        q[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
    }
}

static void test_q4_k(void)
{
    uint8_t b[144];
    put_f16(b, 0x3800);            /* d = 0.5 */
    put_f16(b + 2, 0x3400);        /* dmin = 0.25 */
    fill_k4_scales(b + 4);
    for (int k = 0; k < 128; k++) b[16 + k] = (uint8_t)((k % 16) | ((15 - k % 16) << 4));
    float out[256];
    hc_dequantize_row(HC_Q4_K, b, out, 256);
    static const int idx[] = {0, 5, 33, 70, 127, 130, 170, 200, 240, 255};
    static const float want[] = {-15.75f, 9.25f, 104.5f, 58.75f, -12.0f, 27.25f, 103.0f, 199.75f, 435.5f, -7.0f};
    check_at(out, idx, want, 10, "q4_K");
}

static void test_q5_k(void)
{
    uint8_t b[176];
    put_f16(b, 0x3800);            /* d = 0.5 */
    put_f16(b + 2, 0x3400);        /* dmin = 0.25 */
    fill_k4_scales(b + 4);
    for (int l = 0; l < 32; l++) b[16 + l] = (l % 2) ? 0xAA : 0x55; /* fifth bit: even l in even sub-blocks */
    for (int k = 0; k < 128; k++) b[48 + k] = (uint8_t)((k % 16) | ((15 - k % 16) << 4));
    float out[256];
    hc_dequantize_row(HC_Q5_K, b, out, 256);
    static const int idx[] = {0, 5, 33, 70, 127, 130, 170, 255};
    static const float want[] = {64.25f, 9.25f, 240.5f, 250.75f, 236.0f, 331.25f, 103.0f, 465.0f};
    check_at(out, idx, want, 8, "q5_K");
}

static void test_q6_k(void)
{
    uint8_t b[210];
    for (int k = 0; k < 128; k++) b[k] = (uint8_t)((k % 16) | ((15 - k % 16) << 4));
    for (int k = 0; k < 64; k++) b[128 + k] = (uint8_t)k;
    for (int i = 0; i < 16; i++) b[192 + i] = (uint8_t)(int8_t)(i - 8);
    put_f16(b + 208, 0x3400);      /* d = 0.25 */
    float out[256];
    hc_dequantize_row(HC_Q6_K, b, out, 256);
    static const int idx[] = {0, 1, 40, 90, 127, 128, 180, 200, 255};
    static const float want[] = {64.0f, 30.0f, -12.0f, 8.25f, 8.0f, 0.0f, -9.0f, 7.0f, -56.0f};
    check_at(out, idx, want, 9, "q6_K");
}

/* A row of several blocks is the blocks one after another. */
static void test_multi_block_rows(void)
{
    uint8_t b[2 * 210];
    for (size_t i = 0; i < sizeof b; i++) b[i] = (uint8_t)(i * 131 + 7);
    put_f16(b + 208, 0x3C00);
    put_f16(b + 210 + 208, 0x3C00);
    float two[512], one[256];
    hc_dequantize_row(HC_Q6_K, b, two, 512);
    hc_dequantize_row(HC_Q6_K, b + 210, one, 256);
    CU_ASSERT_EQUAL(memcmp(two + 256, one, sizeof one), 0);
}

int main(void)
{
    static const hc_test_case cases[] = {
        {"traits", test_traits},
        {"f16_to_f32", test_f16_to_f32},
        {"f32_to_f16", test_f32_to_f16},
        {"bf16", test_bf16},
        {"plain_types", test_plain_types},
        {"q4_0", test_q4_0},
        {"q4_1", test_q4_1},
        {"q5_0", test_q5_0},
        {"q5_1", test_q5_1},
        {"q8_0", test_q8_0},
        {"q2_k", test_q2_k},
        {"q3_k", test_q3_k},
        {"q4_k", test_q4_k},
        {"q5_k", test_q5_k},
        {"q6_k", test_q6_k},
        {"multi_block_rows", test_multi_block_rows},
        {NULL, NULL},
    };
    return hc_test_run("dtypes", cases);
}
