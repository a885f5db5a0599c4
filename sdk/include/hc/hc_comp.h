/* hc_comp.h: the low-rank compensation branch of a linear layer (W - Q(W) ~ B A) and the vtable
 * of a compensation-kernel plugin (kind HC_PLUGIN_COMP) that applies y += B (A x) on the host. */
#ifndef HC_COMP_H
#define HC_COMP_H

#include <stddef.h>
#include <stdint.h>

#include "hc/hc_status.h"
#include "hc/hc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Directions are stored in decreasing order of their singular value, so the first r' <= rank
 * rows of A and of B are the best rank-r' branch: truncation is free, and a prefix of r'
 * directions is r' contiguous rows of each factor (only those are read). A row of A is
 * hc_dtype_row_bytes(dtype, in) bytes, a row of B hc_dtype_row_bytes(dtype, out). */
typedef struct hc_branch {
    const char *name;       /* the linear layer's weight name, "blk.3.attn_q.weight" */
    hc_dtype dtype;         /* storage of A and B: HC_F32, HC_F16, HC_BF16 or HC_Q8_0 (rows of 32-element
                               blocks, an f16 scale then 32 int8; in and out multiples of 32) */
    int64_t in, out;
    int rank;               /* stored directions */
    const void *a;          /* [rank][in] row-major ("lora_a": input -> rank) */
    const void *b;          /* [rank][out] row-major ("lora_b": rank -> output; row k is direction
                               k's output vector, i.e. B transposed) */
    const float *sigma;     /* [rank] singular values, decreasing; may be NULL */
} hc_branch;

/* A branch is applied in two phases, each splittable over threads by ranges:
 *   down: t[j][k] = sum_i A[k][i] x[j][i]              for k in [k0, k1), tokens j < n_tok
 *   up:   y[j][o] += sum_{k < rank} B[k][o] t[j][k]     for o in [o0, o1)
 * `rank` (<= b->rank) is the active prefix. t is [n_tok][ldt] f32, y is [n_tok][ldy] f32.
 * Both are pure functions of their arguments and safe to call concurrently on disjoint ranges. */
typedef struct hc_comp_ops {
    /* 1 when the kernel handles this storage dtype */
    int (*supports)(hc_dtype dtype);
    hc_status (*down)(const hc_branch *b, int rank, const float *x, int n_tok, float *t, int64_t ldt,
                      int k0, int k1);
    hc_status (*up)(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                    int64_t ldy, int64_t o0, int64_t o1);
} hc_comp_ops;

#ifdef __cplusplus
}
#endif
#endif
