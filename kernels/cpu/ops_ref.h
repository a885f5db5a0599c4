/* ops_ref.h: the plain C element-wise and attention ops of a decoder layer (RMSNorm, RoPE,
 * attention of one head, SwiGLU). The cpu device runs them; tests compare against them. */
#ifndef HC_OPS_REF_H
#define HC_OPS_REF_H

#include <stddef.h>

#include "hc/hc_device.h"

void hc_ref_rmsnorm(const float *x, const float *w, float *y, int dim, float eps);
void hc_ref_swiglu(const float *gate, const float *up, float *out, size_t n);

/* cos/sin of pos * theta^(-2i/n_rot) for i < n_rot/2, for positions 0 .. n_pos-1. */
typedef struct hc_rope_cache {
    float theta;
    int n_rot;
    int n_pos;           /* positions filled */
    float *cos, *sin;    /* [n_pos][n_rot/2] */
} hc_rope_cache;

/* Makes the cache hold (theta, n_rot) for at least n_pos positions. */
hc_status hc_rope_cache_prepare(hc_rope_cache *c, float theta, int n_rot, int n_pos);
void hc_rope_cache_free(hc_rope_cache *c);

/* Rotates the first n_rot dims of each head of one token's x by that token's cos/sin rows. */
void hc_ref_rope_apply(float *x, int n_head, int head_dim, int n_rot, const float *cos, const float *sin,
                       hc_rope_mode mode);

/* Attention output of token t, head h (see hc_attn_args); scores: n_ctx floats of scratch. */
void hc_ref_attention_head(const hc_attn_args *a, int t, int h, float *scores);

#endif
