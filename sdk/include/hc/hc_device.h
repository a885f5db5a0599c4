/* hc_device.h: the device interface, a vtable in the style of ggml-backend: memory, copies,
 * events and the compute ops of a decoder layer. `cpu` is built in; `cuda` is a plugin. */
#ifndef HC_DEVICE_H
#define HC_DEVICE_H

#include "hc/hc_status.h"
#include "hc/hc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hc_device hc_device;
typedef struct hc_event hc_event;

typedef enum hc_rope_mode {
    HC_ROPE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): llama, llama2.c */
    HC_ROPE_NEOX = 2  /* rotate halves (x[i], x[i + n_rot/2]): qwen2, gemma, ... (ggml's id 2) */
} hc_rope_mode;

/* The most weights one matmul_set takes. */
#define HC_MATMUL_SET_MAX 4

typedef struct hc_device_config {
    int n_threads;          /* compute threads of the device (cpu: its own pool, caller included) */
    size_t mem_budget;      /* bytes the device may allocate; 0 = no limit */
    int device_index;       /* which physical device (cuda) */
} hc_device_config;

/* Grouped-query attention over a KV cache for n_tok new tokens at positions pos0 .. pos0+n_tok-1.
 * Causal: token t sees cache rows 0 .. pos0+t. All pointers are device memory. */
typedef struct hc_attn_args {
    const float *q;        /* [n_tok][n_head * head_dim] */
    const float *k_cache;  /* [n_ctx][n_head_kv * head_dim] of one layer, rows up to pos0+n_tok-1 filled */
    const float *v_cache;  /* same shape */
    float *out;            /* [n_tok][n_head * head_dim] */
    int n_tok, pos0, n_ctx;
    int n_head, n_head_kv, head_dim;
    float scale;           /* usually 1/sqrt(head_dim) */
    hc_dtype kv_dtype;     /* element type of k_cache and v_cache: HC_F32 (0), or HC_F16 on devices
                              that can attend over it (the pointers then really hold uint16_t) */
} hc_attn_args;

/* Activations are f32, row-major [n_tok][width], in device memory. Ops are enqueued in order on
 * the device's one stream; a device may run them asynchronously (cuda) or at once (cpu). */
typedef struct hc_device_ops {
    /* memory */
    hc_status (*alloc)(hc_device *d, size_t nbytes, void **ptr);
    void (*free)(hc_device *d, void *ptr);
    hc_status (*upload)(hc_device *d, void *dst, const void *host_src, size_t nbytes);
    hc_status (*download)(hc_device *d, void *host_dst, const void *src, size_t nbytes); /* waits */
    hc_status (*copy)(hc_device *d, void *dst, const void *src, size_t nbytes);
    /* page-locked host memory for small transfers (plain malloc where the device has none) */
    hc_status (*host_alloc)(hc_device *d, size_t nbytes, void **ptr);
    void (*host_free)(hc_device *d, void *ptr);
    /* ordering with the host: download_async copies src to host_dst (page-locked, from host_alloc)
       once the ops enqueued so far are done, on a copy queue of the device's own where it has one
       (the compute queue goes on), and records ev after the copy; the host waits with event_wait */
    hc_status (*download_async)(hc_device *d, void *host_dst, const void *src, size_t nbytes, hc_event *ev);
    hc_status (*upload_async)(hc_device *d, void *dst, const void *host_src, size_t nbytes); /* in queue order */
    /* events time the device (event_elapsed): create them once, not per token */
    hc_status (*event_create)(hc_device *d, hc_event **ev);
    void (*event_destroy)(hc_device *d, hc_event *ev);
    /* on the compute queue, after the ops enqueued so far; a device that defers ops (a graph being
       recorded) launches them, so that a later event_wait returns without further calls */
    hc_status (*event_record)(hc_device *d, hc_event *ev);
    hc_status (*event_wait)(hc_device *d, hc_event *ev);   /* the host blocks until ev is done */
    hc_status (*synchronize)(hc_device *d);

    /* compute */
    /* y[t][o] = sum_i W[o][i] * x[t][i]; w->ne[0] = in, w->ne[1] = out; any dtype the device supports */
    hc_status (*matmul)(hc_device *d, const hc_tensor *w, const float *x, float *y, int n_tok);
    /* out[t][:] = table row ids[t] dequantized (ids are host memory) */
    hc_status (*get_rows)(hc_device *d, const hc_tensor *table, const int32_t *ids, int n, float *out);
    /* y[t] = x[t] / rms(x[t]) * w ; y may equal x */
    hc_status (*rmsnorm)(hc_device *d, const float *x, const float *w, float *y, int n_tok, int dim, float eps);
    /* rotate the first n_rot dims of each head of x[t] by position pos[t] (pos is host memory) */
    hc_status (*rope)(hc_device *d, float *x, int n_tok, int n_head, int head_dim, int n_rot,
                      const int32_t *pos, float theta, hc_rope_mode mode);
    hc_status (*attention)(hc_device *d, const hc_attn_args *a);
    /* out[i] = silu(gate[i]) * up[i] */
    hc_status (*swiglu)(hc_device *d, const float *gate, const float *up, float *out, size_t n);
    /* y[i] += x[i] */
    hc_status (*add)(hc_device *d, float *y, const float *x, size_t n);
    /* y[t][i] += b[i] for t < n_tok */
    hc_status (*add_bias)(hc_device *d, float *y, const float *b, int n_tok, int width);
    /* x[i] *= s */
    hc_status (*scale)(hc_device *d, float *x, size_t n, float s);

    /* bookkeeping */
    size_t (*mem_used)(hc_device *d);
    void (*destroy)(hc_device *d);

    /* optional (NULL where absent) */
    /* dst (of dst_type: HC_F32 or HC_F16) = n floats of src, converted: a KV cache in f16 */
    hc_status (*store_rows)(hc_device *d, void *dst, hc_dtype dst_type, const float *src, size_t n);
    /* runs fn(ctx, ith, nth) on each of the device's threads and returns when all are done; only
       for devices whose memory is host memory (the cpu device): host code on the device's cores */
    hc_status (*host_parallel)(hc_device *d, void (*fn)(void *ctx, int ith, int nth), void *ctx);

    /* optional (NULL where absent), since ABI 4: the hand-off of a device with memory of its own,
       its real timings and its memory, and refusing weights before they are copied */
    /* host_src (page-locked) to dst on the copy queue, without waiting for the compute queue: once
       `after` is done (NULL: at once); records `done` after the copy. host_src stays untouched
       until done; the compute queue sees dst only after queue_wait(done). */
    hc_status (*upload_copyq)(hc_device *d, void *dst, const void *host_src, size_t nbytes, hc_event *after, hc_event *done);
    /* the compute queue waits for ev (recorded on any queue) before the ops enqueued next; the host
       does not block */
    hc_status (*queue_wait)(hc_device *d, hc_event *ev);
    /* the device time between two recorded events that are done, in nanoseconds */
    hc_status (*event_elapsed)(hc_device *d, hc_event *start, hc_event *end, uint64_t *ns);
    /* bytes the device can still allocate (its free memory, within mem_budget) and its total */
    hc_status (*mem_info)(hc_device *d, size_t *available, size_t *total);
    /* HC_OK when matmul and get_rows can read weights like w (type, format and shape; the data is
       not read): asked for every tensor of a model before any byte of it is copied to the device.
       Otherwise HC_E_UNSUPPORTED with a message naming the tensor and its format. */
    hc_status (*check_weights)(hc_device *d, const hc_tensor *w);
    /* out[i] = gelu(gate[i]) * up[i], GELU's tanh form 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))):
       gemma's gated FFN; optional: a device without it cannot run those models (ABI 4) */
    hc_status (*geglu)(hc_device *d, const float *gate, const float *up, float *out, size_t n);

    /* optional (NULL where absent), since ABI 5: begin = 1 before a single-token forward pass, 0
       after it (before its logits are downloaded). Successive passes issue the same ops in the same
       order, positions and cache rows aside, so a device may record each stretch of a pass and
       launch it as one (cuda: CUDA graphs). The ops' meaning does not change: one that waits, or
       copies to or from the host, runs in order as without the marks. After 0 the recorded work is
       enqueued; a pass that failed still calls 0. */
    hc_status (*graph_step)(hc_device *d, int begin);
    /* optional (NULL where absent), since ABI 5: y[t][i] *= sigmoid(g[t]) for t < n_tok, i < width, g
       n_tok floats in device memory: qwen2moe's shared-expert gate without a trip to the host */
    hc_status (*gate_rows)(hc_device *d, float *y, const float *g, int n_tok, int width);
    /* optional (NULL where absent; all three or none), since ABI 5: experts routed on the device, so
       that a MoE layer makes no trip to the host (expert branches download the ids with their
       input); moe_combine also combines a longer pass the host routed (its weights uploaded). Rows
       are token-major: row t * k + j is token t's j-th choice. */
    /* per token t < n_tok: softmax of logits[t][0 .. n_expert), its k best experts (ties: the lower
       index) into ids[t * k + j], their probabilities into weights[t * k + j], divided by their sum
       when norm (all device memory) */
    hc_status (*moe_topk)(hc_device *d, const float *logits, int n_tok, int n_expert, int k, int norm, int32_t *ids,
                          float *weights);
    /* y[r] = W_e x[r / x_div] for r < n_rows, e = ids[r] (device memory), W_e slice e of w [in, out,
       n_expert]. n_rows 0: HC_OK when the device can read w so (nothing is enqueued), else
       HC_E_UNSUPPORTED with the reason */
    hc_status (*matmul_id)(hc_device *d, const hc_tensor *w, const int32_t *ids, const float *x, int x_div, float *y,
                           int n_rows);
    /* out[t] = sum_j weights[t * k + j] y[t * k + j] for t < n_tok, rows of width */
    hc_status (*moe_combine)(hc_device *d, const float *y, const float *weights, int n_tok, int k, int width, float *out);
    /* optional (NULL where absent; both or neither), since ABI 5: the branches' hand-off by flags, in
       which the device waits for the host instead of the host enqueuing the wait: the ops the host
       would make per branch are enqueued with the step (and recorded into its graphs). host_dst,
       host_src, flag and err are host_alloc'd memory; flags count up, compared in serial-number order. */
    /* host_dst[0 .. n) = src[0 .. n), then *flag = seq, once the ops enqueued so far are done */
    hc_status (*publish)(hc_device *d, float *host_dst, const float *src, size_t n, uint32_t *flag, uint32_t seq);
    /* the ops enqueued next wait until *flag >= seq (flag NULL: no wait), then y[i] += host_src[i] for
       i < n; when the flag does not come within the device's patience, *err = 1 and the add uses what
       host_src holds (a device may stop waiting at once while *err is 1: the step has failed) */
    hc_status (*merge_when)(hc_device *d, float *y, const float *host_src, size_t n, const uint32_t *flag, uint32_t seq,
                            uint32_t *err);
    /* optional (NULL where absent), since ABI 6: several ops of a layer as one, for a device that pays
       for each op it launches (cuda): the engine uses them where the ops would follow each other. */
    /* x[t][i] += r[t][i], then y[t] = x[t] / rms(x[t]) * w, for t < n_tok: a residual add and the norm
       after it (add, then rmsnorm); y may equal x or r */
    hc_status (*add_rmsnorm)(hc_device *d, float *x, const float *r, const float *w, float *y, int n_tok, int dim, float eps);
    /* rope of q (n_head heads a token) and of k (n_head_kv heads) at the same positions: rope twice */
    hc_status (*rope_qk)(hc_device *d, float *q, float *k, int n_tok, int n_head, int n_head_kv, int head_dim, int n_rot,
                         const int32_t *pos, float theta, hc_rope_mode mode);
    /* rope_qk, then the n_tok x n_head_kv x head_dim values of k (rotated) and of v stored into the KV
       cache's rows k_dst and v_dst, of kv_dtype (HC_F32, or HC_F16 as store_rows converts) */
    hc_status (*rope_store)(hc_device *d, float *q, float *k, const float *v, int n_tok, int n_head, int n_head_kv,
                            int head_dim, int n_rot, const int32_t *pos, float theta, hc_rope_mode mode, void *k_dst,
                            void *v_dst, hc_dtype kv_dtype);
    /* y[m] = W[m] x for m < n (1 .. HC_MATMUL_SET_MAX; w, y host arrays): matmul n times, the weights
       sharing their input (q, k and v; gate and up), in one launch where the device can */
    hc_status (*matmul_set)(hc_device *d, int n, const hc_tensor *const *w, const float *x, float *const *y, int n_tok);
    /* y[k][i] += x[o_k + i] for i < len[k], k < n (1 .. HC_MATMUL_SET_MAX; y, len host arrays), o_k the
       lengths before k: add n times from one array (a branch job's corrections, packed), in one launch */
    hc_status (*add_set)(hc_device *d, int n, float *const *y, const float *x, const size_t *len);
    /* merge_when into n outputs (1 .. HC_MATMUL_SET_MAX) from one page-locked array, as add_set adds: a
       branch job's corrections by flags; the wait (flag NULL: none) comes before all the adds */
    hc_status (*merge_set)(hc_device *d, int n, float *const *y, const float *host_src, const size_t *len,
                           const uint32_t *flag, uint32_t seq, uint32_t *err);
} hc_device_ops;

struct hc_device {
    const hc_device_ops *ops;
    const char *name;          /* "cpu", "cuda" */
    hc_device_config config;
    int host_memory;           /* 1 when device pointers are host pointers (cpu): weights in host
                                  memory are used in place and copies may be skipped */
    void *impl;                /* the backend's own state */
};

/* What a device plugin's descriptor points to (kind HC_PLUGIN_DEVICE). */
typedef struct hc_device_plugin_ops {
    /* HC_OK when the hardware is usable; otherwise HC_E_DEVICE with the reason in hc_last_error() */
    hc_status (*probe)(void);
    hc_status (*create)(const hc_device_config *cfg, hc_device **out);
} hc_device_plugin_ops;

#ifdef __cplusplus
}
#endif
#endif
