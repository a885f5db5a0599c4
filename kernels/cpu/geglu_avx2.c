/* geglu_avx2.c: GeGLU with AVX2/FMA: 0.5 g (1 + tanh u) written as g / (1 + e^(-2u)), u = sqrt(2/pi)
 * (g + 0.044715 g^3), by blocks whose exponentials come from the vectorized e^x of ops_avx2.c. */
#include <immintrin.h>

#include "geglu.h"
#include "ops_cpu.h"

#define BLOCK 256

void hc_geglu_avx2(const float *gate, const float *up, float *out, size_t n)
{
    float t[BLOCK] __attribute__((aligned(32)));
    const __m256 k2 = _mm256_set1_ps(-2.0f * 0.7978845608028654f), c = _mm256_set1_ps(0.044715f), one = _mm256_set1_ps(1.0f);
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t m = n - b < BLOCK ? n - b : BLOCK, i = 0;
        const float *g = gate + b, *u = up + b;
        float *o = out + b;
        for (; i + 8 <= m; i += 8) { /* t = -2u = -2k (g + c g^3) = -2k g (1 + c g^2) */
            __m256 x = _mm256_loadu_ps(g + i);
            __m256 x2 = _mm256_mul_ps(x, x);
            _mm256_store_ps(t + i, _mm256_mul_ps(_mm256_mul_ps(k2, x), _mm256_fmadd_ps(c, x2, one)));
        }
        for (; i < m; i++) t[i] = -2.0f * 0.7978845608028654f * g[i] * (1.0f + 0.044715f * g[i] * g[i]);
        hc_exp_avx2(t, t, m);
        for (i = 0; i + 8 <= m; i += 8) {
            __m256 x = _mm256_loadu_ps(g + i), y = _mm256_loadu_ps(u + i);
            _mm256_storeu_ps(o + i, _mm256_div_ps(_mm256_mul_ps(x, y), _mm256_add_ps(one, _mm256_load_ps(t + i))));
        }
        for (; i < m; i++) o[i] = g[i] * u[i] / (1.0f + t[i]);
    }
}
