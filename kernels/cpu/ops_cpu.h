/* ops_cpu.h: the cpu device's non-matmul kernels (RMSNorm, SwiGLU, add, scale, RoPE, f16 rows, attention):
 * dispatchers that run the AVX2/FMA versions when the CPU has them and ops_ref.c otherwise. */
#ifndef HC_OPS_CPU_H
#define HC_OPS_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "hc/hc_device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dispatching element-wise ops (same contracts as the hc_ref_* functions) ---- */

/* y = x / rms(x) * w over one row of dim floats; y may equal x. */
void hc_cpu_rmsnorm(const float *x, const float *w, float *y, int dim, float eps);
/* out[i] = silu(gate[i]) * up[i]; out may equal gate or up. */
void hc_cpu_swiglu(const float *gate, const float *up, float *out, size_t n);
/* y[i] += x[i] */
void hc_cpu_add(float *y, const float *x, size_t n);
/* x[i] *= s */
void hc_cpu_scale(float *x, size_t n, float s);
/* hc_ref_rope_apply: one token's heads rotated by that position's cos/sin rows (n_rot/2 each). */
void hc_cpu_rope(float *x, int n_head, int head_dim, int n_rot, const float *cos, const float *sin,
                 hc_rope_mode mode);
/* y[i] = x[i] rounded to f16 (to nearest even, as hc_f32_to_f16, bit for bit): an f16 KV cache. */
void hc_cpu_f32_to_f16(const float *x, uint16_t *y, size_t n);

/* ---- attention (over an f32 or an f16 KV cache: a->kv_dtype) ----
 * The work of one call is divided over nth threads in one of two ways:
 *  - by (token, head) units, token-major (unit u = t * n_head + h), in contiguous ranges of equal
 *    cost (a token's cost grows with the keys it sees); every unit's output is final;
 *  - decoding one token on several threads (hc_cpu_attention_splits_keys): by key ranges, every
 *    thread doing all heads over its keys into a partial result (max, sum, unnormalized output),
 *    which hc_cpu_attention_merge combines after the threads are done. */

/* Layout of a thread's scratch: score rows for the queries of a group (a block of tokens times the
 * heads of one kv head, up to HC_ATTN_BLOCK_QUERIES of them unless one kv head has more; or all
 * heads of one token), each row padded to 16 floats; then, when the keys are split, the partial
 * results. */
#define HC_ATTN_BLOCK_QUERIES 16
static inline int hc_attn_block_tokens(const hc_attn_args *a)
{
    int g = a->n_head / a->n_head_kv;
    return g >= HC_ATTN_BLOCK_QUERIES ? 1 : HC_ATTN_BLOCK_QUERIES / g;
}
static inline size_t hc_attn_score_stride(const hc_attn_args *a) { return ((size_t)(a->pos0 + a->n_tok) + 15) & ~(size_t)15; }
static inline size_t hc_attn_score_rows(const hc_attn_args *a)
{
    size_t block = (size_t)hc_attn_block_tokens(a) * (size_t)(a->n_head / a->n_head_kv);
    return block > (size_t)a->n_head ? block : (size_t)a->n_head;
}
static inline size_t hc_attn_scores_floats(const hc_attn_args *a) { return hc_attn_score_rows(a) * hc_attn_score_stride(a); }
/* floats of partial result per head: max, sum, head_dim outputs (padded to 8) */
static inline size_t hc_attn_part_floats(const hc_attn_args *a) { return 8 + (((size_t)a->head_dim + 7) & ~(size_t)7); }

/* 1 when hc_cpu_attention_part splits a's keys over nth threads (then merge afterwards). */
int hc_cpu_attention_splits_keys(const hc_attn_args *a, int nth);
/* Floats of scratch each thread needs (64-byte multiples). */
size_t hc_cpu_attention_scratch_floats(const hc_attn_args *a);
/* Thread ith's share; scratch: its own hc_cpu_attention_scratch_floats(a) floats, 64-byte aligned.
 * The scratch of all threads must be one array (thread i at i * that many floats): merge reads it. */
void hc_cpu_attention_part(const hc_attn_args *a, int ith, int nth, float *scratch);
/* After every thread's part when the keys were split: writes a->out from the partial results. */
void hc_cpu_attention_merge(const hc_attn_args *a, int nth, const float *scratch);
/* The (token, head) units [*u0, *u1) of thread ith: contiguous, of nearly equal cost. */
void hc_cpu_attention_units_split(const hc_attn_args *a, int ith, int nth, long *u0, long *u1);

/* ---- the AVX2/FMA kernels (ops_avx2.c; call only when hc_cpu_has_avx2()) ---- */

void hc_rmsnorm_avx2(const float *x, const float *w, float *y, int dim, float eps);
void hc_swiglu_avx2(const float *gate, const float *up, float *out, size_t n);
void hc_add_avx2(float *y, const float *x, size_t n);
void hc_scale_avx2(float *x, size_t n, float s);
void hc_rope_avx2(float *x, int n_head, int head_dim, int n_rot, const float *cos, const float *sin,
                  hc_rope_mode mode);
void hc_f32_to_f16_avx2(const float *x, uint16_t *y, size_t n);
/* y[i] = e^x[i] by the vectorized approximation attention and SwiGLU use (relative error below
 * 1e-6 over [-88, 88], 0 below -103, +inf above 88.73): exposed for the tests. */
void hc_exp_avx2(const float *x, float *y, size_t n);
/* 1 when the AVX2 attention handles this shape (head_dim a multiple of 8) and cache (f32 or f16). */
int hc_attention_avx2_fits(const hc_attn_args *a);
/* Final outputs of the units [u0, u1) (see above); scratch as for hc_cpu_attention_part. */
void hc_attention_units_avx2(const hc_attn_args *a, long u0, long u1, float *scratch);
/* n_tok == 1: every head over keys [k0, k1) into the partial result at part (hc_cpu_attention_merge's
 * layout: per head max, sum, then head_dim unnormalized output floats); scores in scratch. */
void hc_attention_keys_avx2(const hc_attn_args *a, int k0, int k1, float *scratch, float *part);

#ifdef __cplusplus
}
#endif
#endif
