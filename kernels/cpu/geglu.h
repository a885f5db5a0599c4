/* geglu.h: the gated FFN activation of gemma, out = gelu(gate) * up with GELU's tanh form
 * (0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))): the plain reference, AVX2, and their dispatch. */
#ifndef HC_GEGLU_H
#define HC_GEGLU_H

#include <stddef.h>

/* out[i] = gelu_tanh(gate[i]) * up[i]; out may equal gate or up. */
void hc_ref_geglu(const float *gate, const float *up, float *out, size_t n);
/* The same as g / (1 + e^(-2u)) (= 0.5 g (1 + tanh u)) with the vectorized e^x (call only when
 * hc_cpu_has_avx2()). */
void hc_geglu_avx2(const float *gate, const float *up, float *out, size_t n);
/* The AVX2 version where the CPU has it, else the reference. */
void hc_cpu_geglu(const float *gate, const float *up, float *out, size_t n);

#endif
