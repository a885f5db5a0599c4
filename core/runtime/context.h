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

/* On a device that times its stages with events: every this many forward passes (stage_ev below). */
#define HC_STAGE_TIMING_PERIOD 8
/* ... and this many times more seldom when nothing steers by them (no branch runs, or neither the rank
   controller nor an on_step policy reads them): only reports do then, and on a device that replays
   passes as graphs (graph_step) a timed pass is not replayed. */
#define HC_STAGE_TIMING_UNSTEERED 4

/* Element type of the KV cache. */
typedef enum hc_kv_type {
    HC_KV_AUTO = 0,   /* the default: f32 */
    HC_KV_F32,
    HC_KV_F16         /* half the memory and the attention's traffic; refused without store_rows */
} hc_kv_type;

struct hc_context;

/* Scheduler choice of a stage as a pipeline source names it ("" = the default); resolved to plugins
 * by the context. */
typedef struct hc_stage_sched {
    char name[65];
} hc_stage_sched;

/* Where the stage list comes from when it is not the default pipeline: a Lua pipeline script
 * (core/script/pipeline_lua.h makes one). The context calls build once and on_step after every
 * on_step_every-th step; it borrows the source, which must outlive it. */
typedef struct hc_pipeline_source {
    const char *name;           /* for messages: the script's path */
    void *self;
    /* the stage list and per stage the scheduler it asks for (*sched malloc'd, freed by the context) */
    hc_status (*build)(void *self, const hc_model *m, hc_device *dev, hc_stage **stages, int *n_stages,
                       hc_stage_sched **sched);
    /* the scheduler a source asks for globally, "" when none (read after build) */
    const char *(*default_sched)(void *self);
    /* NULL, or a policy called after steps (its answers checked before they are applied) */
    hc_status (*on_step)(void *self, struct hc_context *c, int n_tok);
    int (*on_step_every)(void *self);
} hc_pipeline_source;

typedef struct hc_context_params {
    int n_ctx;        /* tokens of KV cache (0: min(model's training context, 4096)) */
    hc_kv_type kv_type; /* element type of the KV cache (0: HC_KV_AUTO) */
    int n_batch;      /* tokens per forward pass (0: 128) */
    const struct hc_comp_ops *comp; /* kernel for the model's compensation branches; NULL: run without them */
    int max_rank;     /* cap of every branch's active rank (0: no cap) */
    const struct hc_sched_ops *sched; /* scheduler plugin driving the branches (required with comp) */
    const char *sched_name;
    int host_threads; /* threads running branches on the host (default 1) */
    const hc_pipeline_source *pipeline; /* NULL: the default pipeline (borrowed: must outlive the context) */
    const struct hc_registry *registry; /* resolves scheduler names of a pipeline source and its on_step */
    double host_budget; /* > 0: the rank controller keeps host time within this share of device time */
    const int *host_cpus; /* optional CPUs to pin the host threads to */
    int n_host_cpus;
    hc_handoff handoff; /* how branches reach the host and back on a device with memory of its own (0: events) */
    int moe_device_rows; /* routed rows up to which a MoE pass is routed on the device, where it can (0:
                            hc_moe_device_rows of the model; -1: none) */
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
    void *k_cache, *v_cache;    /* device: each layer's kv_rows[l] rows of kv_dim, of kv_dtype (kv_window.h) */
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
    const hc_pipeline_source *source; /* the pipeline's source (for on_step), NULL for the default pipeline */
    const struct hc_registry *registry;
    hc_rank_control rank_control;
    long steps;                 /* forward passes so far */
    struct hc_moe_ctx *moe;     /* routing of a mixture-of-experts model (moe.h), NULL for a dense one */
    hc_stage_observer observer; /* calibration hook, NULL normally */
    void *observer_ctx;
    /* a device without host memory that times with events: each stage's device time is measured
       between two events and read back once the step is done (stage_ev: 2 per stage, or NULL) --
       every stage_timing_period-th forward pass (HC_STAGE_TIMING_PERIOD; two event records a stage
       cost the host a driver call each, as many as the stage's own launches), HC_STAGE_TIMING_UNSTEERED
       times more seldom when nothing steers by them; the passes between keep the last times. stage_timed:
       the last pass measured them (always on a host device) */
    struct hc_event **stage_ev;
    int stage_timing_period, stage_timed;
    /* the KV cache's layout (kv_window.c): rows each layer keeps (n_ctx, or less in a sliding-window
       layer), the byte offset of its rows in k_cache/v_cache, and the position its row 0 holds */
    int *kv_rows;
    size_t *kv_off;
    int *kv_first;
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
