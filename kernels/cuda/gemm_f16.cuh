/* gemm_f16.cuh: the batched matmul of quantized weights on tensor cores: weight rows dequantized to f16,
 * activations scaled by a power of two into f16, one cuBLAS f16 GEMM (f32 sums) per chunk of rows. */
#ifndef HC_CUDA_GEMM_F16_CUH
#define HC_CUDA_GEMM_F16_CUH

#include "cuda_common.cuh"
#include "hc/hc_tensor.h"

/* The activations' largest magnitude after scaling: a quarter of f16's largest finite (65504), so
 * that no element overflows, and every element above amax * 2^-27 keeps f16's full precision. */
#define HC_CU_F16_INPUT_MAX 16384.0f

/* 1 when the batched matmul (n_tok > 1) of a weight of type t runs on tensor cores in f16: the
 * quantized types, whose own error (2^-8 and more of a weight) dwarfs f16's rounding (2^-11). Float
 * weights (f32, f16, bf16) keep f32 arithmetic (SGEMM), so float models match the cpu device to
 * rounding; packed formats (HC_PACKED) always take this path. */
static inline HC_CU_HD int hc_cu_batched_f16(int t)
{
    switch (t) {
    case HC_Q4_0: case HC_Q4_1: case HC_Q5_0: case HC_Q5_1: case HC_Q8_0:
    case HC_Q2_K: case HC_Q3_K: case HC_Q4_K: case HC_Q5_K: case HC_Q6_K: case HC_PACKED: return 1;
    default: return 0;
    }
}

/* The power of two s the activations are divided by: amax / s lies in [MAX / 2, MAX) for any
 * finite amax from 2^-86 up (s may be below 1: small activations are scaled up out of f16's
 * subnormals; s stays within 2^-100 .. 2^127, so 1 / s is a float too); 1 for amax 0, inf or NaN
 * (those stay as they are and show in the output, as in f32). Dividing by s is exact, and the
 * GEMM's sums are multiplied back by s (hc_cu_scale_by). */
static inline HC_CU_HD float hc_cu_f16_input_scale(float amax)
{
    if (!(amax > 0.0f) || amax == INFINITY) return 1.0f;
    int e;
    (void)frexpf(amax / HC_CU_F16_INPUT_MAX, &e); /* amax / MAX = f 2^e, f in [0.5, 1) */
    if (e < -100) e = -100;
    return ldexpf(1.0f, e > 127 ? 127 : e);       /* amax / 2^e = f MAX */
}

/* Activations converted at once: at most this many (16 MiB of f16); more tokens go in chunks. */
#define HC_CU_F16_X_MAX ((size_t)8 << 20)

/* Tokens per chunk of `in`-wide activations (at least one). */
static inline HC_CU_HD int hc_cu_f16_token_chunk(int64_t in, int n_tok)
{
    int64_t t = in > 0 ? (int64_t)(HC_CU_F16_X_MAX / (size_t)in) : n_tok;
    if (t < 1) t = 1;
    return t < n_tok ? (int)t : n_tok;
}

/* The device's numbers of one f16 GEMM: [0] the activations' max |x| (as float bits, for
 * atomicMax), [1] their scale s, which the outputs are multiplied by. */
#define HC_CU_F16_CONSTS 2

#endif
