/* geglu.c: gemma's GeGLU activation in plain C (tanhf, as the formula reads), and the dispatch to
 * the AVX2 version (geglu_avx2.c); tests/test_gemma3.c compares the two. */
#include "geglu.h"

#include <math.h>

#include "hc/hc_cpu.h"

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_C 0.044715f

void hc_ref_geglu(const float *gate, const float *up, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = 0.5f * g * (1.0f + tanhf(GELU_K * (g + GELU_C * g * g * g))) * up[i];
    }
}

void hc_cpu_geglu(const float *gate, const float *up, float *out, size_t n)
{
    if (hc_cpu_has_avx2()) hc_geglu_avx2(gate, up, out, n);
    else hc_ref_geglu(gate, up, out, n);
}
