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
    /* measured, per step (nanoseconds) */
    uint64_t device_ns, host_ns, wait_ns;
} hc_stage;

#ifdef __cplusplus
}
#endif
#endif
