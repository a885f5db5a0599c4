/* hc_avx512.h: static inline AVX-512 helpers for kernels built with -mavx512f -mavx512bw -mavx512vl
 * (libhc's and plugins'): 16 elements of an f16/bf16/f32 row as floats. Dispatch on hc_cpu_has_avx512(). */
#ifndef HC_AVX512_H
#define HC_AVX512_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "hc/hc_avx512.h: build this file with -mavx512f -mavx512bw -mavx512vl (and dispatch on hc_cpu_has_avx512())"
#endif

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "hc/hc_tensor.h"

#define HC_AVX512_INLINE static inline __attribute__((always_inline))

/* The mask of the first min(n, 16) lanes (n >= 0): a row's tail. */
HC_AVX512_INLINE __mmask16 hc_avx512_first(int64_t n) { return (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1); }

/* Bytes of one element of an f32 row (4) or of an f16 or bf16 row (2). */
HC_AVX512_INLINE size_t hc_float_elem_bytes(hc_dtype ty) { return ty == HC_F32 ? 4 : 2; }

/* 16 elements of a row of f16, bf16 or f32 (any other type) from element i, as floats; m: which of
 * them to read (the other lanes are 0 and their bytes are not touched). A constant full mask
 * compiles to plain loads. */
HC_AVX512_INLINE __m512 hc_avx512_row16(hc_dtype ty, const uint8_t *row, int64_t i, __mmask16 m)
{
    if (__builtin_constant_p(m) && m == 0xffff) {
        switch (ty) {
        case HC_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(row + 2 * i)));
        case HC_BF16:
            return _mm512_castsi512_ps(
                _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(row + 2 * i))), 16));
        default: return _mm512_loadu_ps(row + 4 * i);
        }
    }
    switch (ty) {
    case HC_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * i));
    case HC_BF16: return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + 2 * i)), 16));
    default: return _mm512_maskz_loadu_ps(m, row + 4 * i);
    }
}

#endif
