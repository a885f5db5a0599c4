/* lowrank_apply.h: the host kernels of a low-rank compensation branch (hc_comp.h), y += B (A x),
 * in two range-splittable phases (down: t = A x, up: y += B t) for f32, f16, bf16 and q8_0 storage. */
#ifndef HC_LOWRANK_APPLY_H
#define HC_LOWRANK_APPLY_H

#include <stdint.h>

#include "hc/hc_comp.h"
#include "hc/hc_status.h"
#include "hc/hc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the branch kernels handle this storage type (HC_F32, HC_F16, HC_BF16, HC_Q8_0), else 0. */
int hc_branch_supports(hc_dtype t);

/* down: t[j * ldt + k] = sum_{i < in} A[k][i] x[j * in + i]   for k in [k0, k1), j < n_tok
 * up:   y[j * ldy + o] += sum_{k < rank} B[k][o] t[j * ldt + k] for o in [o0, o1), j < n_tok
 * A is b->a, [b->rank][b->in] row-major; B is b->b, [b->rank][b->out] row-major (row k is
 * direction k's output vector); only the active prefix of `rank` <= b->rank rows of each is read.
 * Nothing outside those ranges of t and y is written. The strides matter only when n_tok > 1:
 * then ldt >= k1 (down), ldt >= rank and ldy >= o1 (up) are required.
 * Errors: HC_E_ARG for an unsupported storage type, a missing pointer, a rank or range out of
 * bounds, a negative count or a short stride; the message names the branch.
 * These dispatch to the AVX-512 kernels (f32, f16, bf16) or the AVX2/FMA/F16C ones when the CPU has
 * them, else to the reference. */
hc_status hc_branch_down(const hc_branch *b, int rank, const float *x, int n_tok, float *t, int64_t ldt,
                         int k0, int k1);
hc_status hc_branch_up(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                       int64_t ldy, int64_t o0, int64_t o1);

/* The plain C reference behind them (no SIMD, double accumulation): the same contract. */
hc_status hc_branch_down_ref(const hc_branch *b, int rank, const float *x, int n_tok, float *t, int64_t ldt,
                             int k0, int k1);
hc_status hc_branch_up_ref(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                           int64_t ldy, int64_t o0, int64_t o1);

/* ---- internals shared by the implementations (and the tests) ---- */

/* The argument checks of down and up (HC_OK or HC_E_ARG with the reason). */
hc_status hc_branch_check_down(const hc_branch *b, int rank, const float *x, int n_tok, const float *t,
                               int64_t ldt, int k0, int k1);
hc_status hc_branch_check_up(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok,
                             const float *y, int64_t ldy, int64_t o0, int64_t o1);

/* The AVX2/FMA/F16C kernels: call only when hc_cpu_has_avx2() (matmul_ggml.h), with checked
 * arguments and a non-empty range (n_tok > 0, k0 < k1 / o0 < o1 and rank > 0). q8_0 up: the
 * columns before the first multiple of 8 in [o0, o1) go to the reference. */
void hc_branch_down_avx2(const hc_branch *b, const float *x, int n_tok, float *t, int64_t ldt, int k0, int k1);
void hc_branch_up_avx2(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                       int64_t ldy, int64_t o0, int64_t o1);

/* The AVX-512 kernels (F, BW, VL; f32, f16, bf16 factors: hc_branch_avx512_has): call only when
 * hc_cpu_has_avx512(), with the AVX2 kernels' preconditions. */
int hc_branch_avx512_has(hc_dtype t);
void hc_branch_down_avx512(const hc_branch *b, const float *x, int n_tok, float *t, int64_t ldt, int k0, int k1);
void hc_branch_up_avx512(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                         int64_t ldy, int64_t o0, int64_t o1);

#ifdef __cplusplus
}
#endif
#endif
