/* context.h: an inference context: the model's pipeline of stages on a device, its KV cache and
 * activation buffers, and hc_decode() which runs a batch of tokens through it. */
#ifndef HC_CONTEXT_H
#define HC_CONTEXT_H

#include "branch_rt.h"
#include "rank_control.h"
#include "hc/hc_comp.h"
#include "hc/hc_sched.h"
#include "hc/hc_stage.h"
#include "model.h"

/* Element type of the KV cache. */
typedef enum hc_kv_type {
    HC_KV_AUTO = 0,   /* the default: f32 */
    HC_KV_F32,
    HC_KV_F16         /* half the memory and the attention's traffic; refused without store_rows */
} hc_kv_type;

typedef struct hc_context_params {
    int n_ctx;        /* tokens of KV cache (0: min(model's training context, 4096)) */
    hc_kv_type kv_type; /* element type of the KV cache (0: HC_KV_AUTO) */
    int n_batch;      /* tokens per forward pass (0: 128) */
    const struct hc_comp_ops *comp; /* kernel for the model's compensation branches; NULL: run without them */
    int max_rank;     /* cap of every branch's active rank (0: no cap) */
    const struct hc_sched_ops *sched; /* scheduler plugin driving the branches (required with comp) */
    const char *sched_name;
    int host_threads; /* threads running branches on the host (default 1) */
    const char *pipeline; /* Lua pipeline script (scripts/pipelines/NAME.lua), NULL: the default pipeline */
    const struct hc_registry *registry; /* resolves scheduler names of a pipeline script and on_step */
    double host_budget; /* > 0: the rank controller keeps host time within this share of device time */
    const int *host_cpus; /* optional CPUs to pin the host threads to */
    int n_host_cpus;
    int layers_only;  /* the context only runs single layers (hc_context_run_layer), never the head:
                         no logits buffers (a 128k vocabulary's take n_batch x 0.5 MiB each) */
} hc_context_params;

/* Called before each LINEAR stage with its input (device memory, n rows of width in). */
typedef hc_status (*hc_stage_observer)(void *ctx, const hc_stage *s, const float *input, int n_rows, int width);

typedef struct hc_context {
    hc_model *model;
    hc_device *dev;
    int n_ctx, n_batch;
    int n_past;                 /* tokens already in the KV cache */
    void *k_cache, *v_cache;    /* device: [n_layer][n_ctx][kv_dim] of kv_dtype */
    hc_dtype kv_dtype;          /* HC_F32, or HC_F16 (written by the device's store_rows) */
    float *buf[HC_BUF_COUNT];   /* device activation buffers [n_batch][width] */
    int width[HC_BUF_COUNT];
    int32_t *pos;               /* host: positions of the current batch */
    hc_stage *stages;           /* the pipeline */
    int n_stages;
    float *logits;              /* host: [n_batch][n_vocab] */
    struct hc_branch_rt *brt;   /* branch jobs, host threads, schedulers; NULL without branches */
    uint64_t device_ns;         /* time in stages since the context was made (all steps) */
    struct hc_trace *trace;     /* timeline recorder (bench --trace), NULL normally */
    struct hc_pipeline_script *script; /* the pipeline script (kept for on_step), NULL normally */
    const struct hc_registry *registry;
    hc_rank_control rank_control;
    long steps;                 /* forward passes so far */
    struct hc_moe_ctx *moe;     /* routing of a mixture-of-experts model (moe.h), NULL for a dense one */
    hc_stage_observer observer; /* calibration hook, NULL normally */
    void *observer_ctx;
} hc_context;

HC_API hc_status hc_context_create(hc_model *m, hc_device *dev, const hc_context_params *p, hc_context **out);
HC_API void hc_context_free(hc_context *c);
/* Forgets every cached token (n_past = 0). */
HC_API void hc_context_reset(hc_context *c);
/* Drops cached tokens from position n on (n <= n_past). */
HC_API hc_status hc_context_truncate(hc_context *c, int n);

/* Runs n tokens at positions n_past .. n_past+n-1 (in batches of n_batch) and advances n_past.
 * logits_all: *logits receives n rows of n_vocab scores (n <= n_batch then), else the last
 * token's row only. The pointer stays valid until the next call. */
HC_API hc_status hc_decode(hc_context *c, const int32_t *tokens, int n, int logits_all, const float **logits);

/* Runs the stages of decoder layer `layer` alone on n <= n_batch rows of the residual stream x
 * (host memory, [n][dim], replaced by the layer's output) at positions n_past .. n_past + n - 1,
 * with the observers but without branches; n_past is left as it is. The compressor streams a
 * model through its layers one at a time with it. */
HC_API hc_status hc_context_run_layer(hc_context *c, int layer, float *x, int n);

/* Builds the default pipeline of a Llama-family model: embed, then per layer norm, q/k/v,
 * rope, kv store, attention, o, add, norm, gate/up, swiglu, down, add; then norm and logits. */
hc_status hc_pipeline_default(const hc_model *m, hc_device *dev, hc_stage **stages, int *n_stages);

#endif
