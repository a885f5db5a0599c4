/* hc_stage.h: one step of the forward pass (a norm, a linear projection, attention ...) with its
 * input and output buffers, device, and optional compensation branch; a pipeline is a list. */
#ifndef HC_STAGE_H
#define HC_STAGE_H

#include <stdint.h>

#include "hc/hc_device.h"
#include "hc/hc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hc_stage_op {
    HC_OP_EMBED,      /* out = rows of the token embedding */
    HC_OP_NORM,       /* out = rmsnorm(in0) * weight */
    HC_OP_LINEAR,     /* out = weight * in0 (+ bias) (+ branch: B (A in0)) */
    HC_OP_ROPE,       /* rotate in0 (queries) and in1 (keys) in place */
    HC_OP_KV_STORE,   /* append in0 (keys) and in1 (values) to the layer's KV cache */
    HC_OP_ATTENTION,  /* out = attention(in0 queries, the layer's KV cache) */
    HC_OP_SWIGLU,     /* out = silu(in0) * in1 */
    HC_OP_ADD,        /* out += in0 (the residual stream) */
    /* mixture-of-experts and qwen3 stages (core/runtime/moe.c) */
    HC_OP_HEAD_NORM,  /* rmsnorm of every head of in0 in place, weight [head_dim] (qwen3 q/k norm) */
    HC_OP_MOE_ROUTE,  /* router logits of in0, top-k experts per token, in0's rows gathered into out
                         grouped by expert (row order: expert 0's tokens, expert 1's, ...) */
    HC_OP_MOE_LINEAR, /* out = each expert's slice of weight [in, out, n_expert] times its rows of in0 */
    HC_OP_MOE_ACT,    /* out = silu(in0) * in1 over every routed row */
    HC_OP_MOE_COMBINE,/* out[t] = sum over token t's routed rows of weight_k * in0[row] */
    HC_OP_SHEXP_GATE, /* out[t] *= sigmoid(weight . in0[t]) (qwen2moe's shared-expert gate) */
    HC_OP_GEGLU,      /* out = gelu_tanh(in0) * in1 (gemma's gated FFN) */
    HC_OP_COUNT
} hc_stage_op;

/* The activation buffers of the forward pass, each [n_tok][width] f32 on the device. */
typedef enum hc_buf {
    HC_BUF_NONE = -1,
    HC_BUF_X = 0,     /* residual stream, dim */
    HC_BUF_XN,        /* normalised stream, dim */
    HC_BUF_Q,         /* queries, n_head * head_dim */
    HC_BUF_K,         /* keys, n_head_kv * head_dim */
    HC_BUF_V,         /* values, n_head_kv * head_dim */
    HC_BUF_ATT,       /* attention output, n_head * head_dim */
    HC_BUF_PROJ,      /* output of attn_output / ffn_down, dim */
    HC_BUF_GATE,      /* ffn gate, ffn_dim */
    HC_BUF_UP,        /* ffn up, ffn_dim */
    HC_BUF_HIDDEN,    /* silu(gate) * up, ffn_dim */
    HC_BUF_LOGITS,    /* vocabulary scores, n_vocab */
    /* mixture of experts: routed rows, n_tok * n_expert_used of them, grouped by expert */
    HC_BUF_MOE_X,     /* the normalised stream of each routed row, dim */
    HC_BUF_MOE_GATE,  /* expert gate, expert_ffn_dim */
    HC_BUF_MOE_UP,    /* expert up, expert_ffn_dim */
    HC_BUF_MOE_HIDDEN,/* silu(gate) * up, expert_ffn_dim */
    HC_BUF_MOE_OUT,   /* expert down, dim */
    HC_BUF_SHEXP_GATE,   /* shared expert gate, shexp_ffn_dim (one row per token) */
    HC_BUF_SHEXP_UP,     /* shared expert up, shexp_ffn_dim */
    HC_BUF_SHEXP_HIDDEN, /* shared expert silu(gate) * up, shexp_ffn_dim */
    HC_BUF_COUNT
} hc_buf;

struct hc_branch;

typedef struct hc_stage {
    char name[48];              /* "blk.3.attn_q", "output_norm" */
    hc_stage_op op;
    int layer;                  /* decoder layer, -1 outside the layers */
    int proj;                   /* hc_proj of a LINEAR stage inside a layer, else -1 */
    hc_buf in0, in1, out;
    const hc_tensor *weight;    /* NORM, LINEAR, EMBED */
    const hc_tensor *bias;      /* LINEAR, may be NULL */
    hc_device *device;          /* where the stage runs */
    struct hc_branch *branch;   /* compensation of a LINEAR stage, NULL when none */
    int branch_enabled;         /* the policy may switch a branch off */
    int active_rank;            /* <= branch rank: the prefix of directions in use */
    int sched;                  /* index of the scheduler driving this stage's branch */
    struct hc_branch *expert_branch; /* MOE_LINEAR: the [n_expert] branches of its experts (rank 0:
                                        none), NULL when none; branch_enabled/active_rank apply to all */
    /* measured, per step (nanoseconds) */
    uint64_t device_ns, host_ns, wait_ns;
} hc_stage;

#ifdef __cplusplus
}
#endif
#endif
