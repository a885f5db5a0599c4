/* model.h: a decoder model in memory, whatever file it came from (model/ reads them): its
 * configuration, weight tensors and compensation branches, and their placement on a device. */
#ifndef HC_MODEL_H
#define HC_MODEL_H

#include "hc/hc_comp.h"
#include "hc/hc_device.h"
#include "hc/hc_quant.h"
#include "hc/hc_tensor.h"

struct hc_gguf;

/* Activation of a gated FFN: out = act(gate) * up. */
typedef enum hc_ffn_act {
    HC_ACT_SILU = 0,        /* SwiGLU: llama, qwen, ... */
    HC_ACT_GELU_TANH = 1    /* GeGLU with GELU's tanh approximation: gemma */
} hc_ffn_act;

typedef struct hc_model_config {
    char arch[32];          /* "llama" (GGUF general.architecture, or "llama2c") */
    int n_layer;
    int dim;                /* embedding width */
    int n_head, n_head_kv, head_dim;
    int ffn_dim;
    int n_vocab;
    int n_ctx_train;        /* context length the model was trained with */
    int n_rot;              /* dims rotated by RoPE per head */
    float rope_theta;
    hc_rope_mode rope_mode;
    float rms_eps;
    int tied_output;        /* the output head is the token embedding */
    /* mixture of experts (core/model_moe.c); n_expert 0: a dense model */
    int n_expert;           /* experts per layer (<arch>.expert_count) */
    int n_expert_used;      /* experts routed per token, top-k (<arch>.expert_used_count) */
    int expert_ffn_dim;     /* hidden width of one expert (<arch>.expert_feed_forward_length) */
    int shexp_ffn_dim;      /* hidden width of the shared expert, 0: none (qwen2moe) */
    int norm_topk_prob;     /* renormalise the k routing weights to sum 1 (qwen3moe: yes, qwen2moe: no) */
    /* gemma3 (model_gemma3.c); 0 for the other architectures, which then behave as before */
    float embd_scale;       /* token embeddings are multiplied by this (gemma: sqrt(dim)); 0: not scaled */
    float attn_scale;       /* attention's query scale; 0: 1/sqrt(head_dim) */
    float logit_softcap;    /* > 0: logits = cap * tanh(logits / cap) (<arch>.final_logit_softcapping) */
    int n_swa;              /* sliding window of the layers with hc_layer.swa set: a token sees itself
                               and the n_swa - 1 before it; 0: every layer attends globally */
    float rope_theta_swa;   /* RoPE base of the sliding-window layers */
    hc_ffn_act ffn_act;     /* the gated FFN's activation: SiLU (SwiGLU) or tanh GELU (GeGLU) */
} hc_model_config;

/* The linear projections of a decoder layer, in a fixed order (stage names use these). */
typedef enum hc_proj {
    HC_PROJ_Q, HC_PROJ_K, HC_PROJ_V, HC_PROJ_O, HC_PROJ_GATE, HC_PROJ_UP, HC_PROJ_DOWN,
    HC_PROJ_GATE_SHEXP, HC_PROJ_UP_SHEXP, HC_PROJ_DOWN_SHEXP, /* a MoE layer's shared expert (qwen2moe) */
    HC_PROJ_COUNT
} hc_proj;

HC_API const char *hc_proj_name(hc_proj p);   /* "attn_q", ..., "ffn_down", "ffn_gate_shexp" (GGUF's names) */

/* The routed experts of a MoE layer: 3-D tensors [in, out, n_expert] (an expert's slice is one
 * contiguous [in, out] matrix), their gate/up/down in hc_proj order from HC_PROJ_GATE. */
enum { HC_EXP_GATE, HC_EXP_UP, HC_EXP_DOWN, HC_EXP_COUNT };

typedef struct hc_moe_layer {
    hc_tensor router;                   /* ffn_gate_inp [dim, n_expert] */
    hc_tensor exps[HC_EXP_COUNT];       /* ffn_gate_exps, ffn_up_exps [dim, expert_ffn, E], ffn_down_exps [expert_ffn, dim, E] */
    hc_branch *branch[HC_EXP_COUNT];    /* [n_expert] branches, "blk.L.ffn_gate_exps.eE" (rank 0: none); NULL: none at all */
    hc_tensor shexp_gate;               /* ffn_gate_inp_shexp [dim]; data NULL when there is no shared expert */
} hc_moe_layer;

typedef struct hc_layer {
    hc_tensor attn_norm, ffn_norm;
    hc_tensor proj[HC_PROJ_COUNT];
    hc_tensor bias[HC_PROJ_COUNT];      /* data NULL when the architecture has none */
    hc_branch branch[HC_PROJ_COUNT];    /* compensation branches; rank 0 when none */
    /* projections a layer lacks have data NULL: a MoE layer has no dense ffn_gate/up/down */
    hc_tensor attn_q_norm, attn_k_norm; /* qwen3: per-head RMS norm weights [head_dim]; data NULL when none */
    hc_moe_layer moe;                   /* cfg.n_expert > 0 */
    hc_tensor attn_post_norm, ffn_post_norm; /* gemma3: RMS norms of the attention and FFN outputs
                                                before their residual adds; data NULL when none */
    int swa;                            /* 1: this layer attends within cfg.n_swa (gemma3's local layers) */
} hc_layer;

/* The hcinfer file format (hc.format_version) this build writes and reads back: 1 stored a branch's
 * lora_b as [out][rank] (read by transposing it on load); 2 stores it [rank][out], so that a prefix
 * of directions is contiguous (hc_branch's layout). */
#define HC_FORMAT_VERSION 2

typedef struct hc_model {
    hc_model_config cfg;
    hc_tensor tok_embd;     /* [dim, n_vocab] */
    hc_tensor out_norm;     /* [dim] */
    hc_tensor output;       /* [dim, n_vocab]; a copy of tok_embd's description when tied */
    hc_branch out_branch;   /* compensation of the output head; rank 0 when none */
    hc_layer *layers;
    hc_quant_format **formats; /* quant formats of HC_PACKED tensors, owned */
    int n_formats;
    char *path;
    struct hc_gguf *gguf;   /* the GGUF it came from (metadata, tokenizer; model/gguf.h), or NULL */
    void *map;              /* llama2.c checkpoint mapping */
    size_t map_size;
    void **owned;           /* buffers the model allocated (f32 conversions), freed with it */
    int n_owned, cap_owned;
    hc_device *device;      /* where the weights were placed (NULL: host) */
    uint32_t hc_format;     /* hc.format_version of a file hcinfer wrote, 0 for any other */
} hc_model;

/* Calls fn for every weight tensor (embedding, norms, projections, biases, output). */
HC_API void hc_model_for_each_tensor(hc_model *m, void (*fn)(hc_tensor *t, void *ctx), void *ctx);

/* Makes the weights usable by dev: in place when dev->host_memory, else copied to the device. */
hc_status hc_model_place(hc_model *m, hc_device *dev);
/* Frees the device copies hc_model_place made (before the model itself is freed). */
HC_API void hc_model_unplace(hc_model *m);

/* Bytes of weights one decoded token reads (every projection, norms, the output head, one
 * embedding row; of a MoE layer's experts the routed share k/E): the memory traffic figure
 * `hcinfer bench` reports. */
HC_API size_t hc_model_bytes_per_token(const hc_model *m);
/* ... of which the layers' (all but the output head, its norm and the embedding row): what scales
 * with the depth, for figures of a model cut to fewer layers. */
HC_API size_t hc_model_layer_bytes_per_token(const hc_model *m);

/* Bytes of the compensation branches at their stored ranks (every expert's included). */
HC_API size_t hc_model_branch_bytes(const hc_model *m);
/* Bytes of one branch at its stored rank (A, B and sigma); 0 when it has none. */
size_t hc_branch_bytes(const hc_branch *b);
/* Bytes of the first `rank` directions of a branch's factors A and B (what applying them reads). */
size_t hc_branch_factor_bytes(const hc_branch *b, int rank);
/* Bytes of the backbone: every weight the device holds (packed or not). */
HC_API size_t hc_model_backbone_bytes(const hc_model *m);

/* Registers a buffer to be freed with the model. */
HC_API hc_status hc_model_own(hc_model *m, void *buffer);

#endif
