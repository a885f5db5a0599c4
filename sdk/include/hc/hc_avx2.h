/* hc_avx2.h: static inline AVX2 helpers for kernels built with -mavx2 -mfma -mf16c (libhc's and
 * plugins'): horizontal sum and max of 8 floats, the sum of 8 int32 lanes, 4 x 8 int32 (each in
 * [-127, 127]) stored as 32 int8, an f16 read from any byte address (F16C), and elements of
 * f16/bf16/f32 rows as floats. Dispatch on hc_cpu_has_avx2() (hc_cpu.h) before calling them. */
#ifndef HC_AVX2_H
#define HC_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "hc/hc_avx2.h: build this file with -mavx2 -mfma -mf16c (and dispatch on hc_cpu_has_avx2())"
#endif

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "hc/hc_tensor.h"

#define HC_AVX2_INLINE static inline __attribute__((always_inline))

/* The f16 at p (no alignment needed) as a float. */
HC_AVX2_INLINE float hc_f16_at(const void *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Element i of a row of f16, bf16 (its 16 high bits) or f32 (any other type) as a float. */
HC_AVX2_INLINE float hc_float_row_at(hc_dtype ty, const uint8_t *row, int64_t i)
{
    uint32_t u;
    float f;
    switch (ty) {
    case HC_F16: return hc_f16_at(row + 2 * i);
    case HC_BF16:
        u = 0;
        memcpy((uint8_t *)&u + 2, row + 2 * i, 2); /* little-endian: the high half */
        memcpy(&f, &u, 4);
        return f;
    default: memcpy(&f, row + 4 * i, 4); return f;
    }
}

/* Elements i..i+7 of such a row as floats. */
HC_AVX2_INLINE __m256 hc_float_row_load8(hc_dtype ty, const uint8_t *row, int64_t i)
{
    switch (ty) {
    case HC_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * i)));
    case HC_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 2 * i))), 16));
    default: return _mm256_loadu_ps((const float *)(const void *)(row + 4 * i));
    }
}

HC_AVX2_INLINE float hc_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

HC_AVX2_INLINE float hc_hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

HC_AVX2_INLINE int32_t hc_hsum8_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* q[0..3] (elements 0-7, 8-15, 16-23, 24-31) as 32 int8 at dst, in element order. */
HC_AVX2_INLINE void hc_store_i8x32(void *dst, const __m256i *q)
{
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256((__m256i *)dst, _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

#endif
