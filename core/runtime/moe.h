/* moe.h: mixture-of-experts execution in a context: routing (softmax over the router's logits,
 * top-k, optional renormalisation), the routed rows grouped by expert, expert matmuls on 2-D views
 * of the 3-D expert tensors, the weighted combination, and qwen2moe's shared-expert gate. A pass of
 * at most hc_moe_device_rows routed rows on a device with the ops for it is routed there instead,
 * when no observer needs the routing on the host and the expert branches that run read it from the
 * device (their jobs take the experts' ids with their input): no trip to the host per layer.
 *
 * A MoE layer's FFN is a run of stages (pipeline_default.c):
 *   ffn_gate_inp   MOE_ROUTE    xn -> moe_x        router, top-k; rows of xn gathered by expert
 *   ffn_gate_exps  MOE_LINEAR   moe_x -> moe_gate  per expert: its slice times its rows
 *   ffn_up_exps    MOE_LINEAR   moe_x -> moe_up
 *   ffn_act_exps   MOE_ACT      moe_gate, moe_up -> moe_hidden
 *   ffn_down_exps  MOE_LINEAR   moe_hidden -> moe_out
 *   ffn_moe_out    MOE_COMBINE  moe_out -> proj    proj[t] = sum_k w_tk moe_out[row(t, k)]
 *   ffn_residual   ADD          proj -> x
 * then, with a shared expert, ordinary linear stages ffn_{gate,up,down}_shexp on xn, its sigmoid
 * gate (SHEXP_GATE) and a second residual add. The branch runtime groups the gate/up and the
 * down MOE_LINEAR stages into jobs that touch only the routed experts' branches (branch_rt.c). */
#ifndef HC_MOE_H
#define HC_MOE_H

#include <stdint.h>

#include "hc/hc_comp.h"
#include "hc/hc_stage.h"
#include "model.h"

struct hc_context;

/* Routed rows (tokens x k) up to which a pass is routed on the device: HC_MOE_DEVICE_ROWS (decode,
 * short batches), or HC_MOE_DEVICE_ROWS_PER_EXPERT an expert on average where that is more (a short
 * prompt of a model of many experts: the device reads each expert's weights once for its rows). A
 * longer pass is routed on the host, a GEMM per expert on its many rows. */
#define HC_MOE_DEVICE_ROWS 64
#define HC_MOE_DEVICE_ROWS_PER_EXPERT 8
/* ... and at most (a device's matmul_id takes up to 65535 rows: a CUDA grid's height) */
#define HC_MOE_DEVICE_ROWS_MAX 65535
int hc_moe_device_rows(const hc_model_config *c);

/* The routing of the current batch in the layer whose MOE_ROUTE stage ran last. */
typedef struct hc_moe_routing {
    int layer;                /* -1 before the first route */
    int n_tok, k, n_rows;     /* n_rows = n_tok * k routed rows */
    int n_expert;
    int *seg_off;             /* [n_expert + 1]: expert e owns rows seg_off[e] .. seg_off[e + 1] - 1 */
    int *row_token;           /* [n_rows] the token a row belongs to */
    float *row_weight;        /* [n_rows] its routing weight */
    int *tok_expert;          /* [n_tok * k] the chosen experts of token t, best first */
    float *tok_weight;        /* [n_tok * k] their weights */
    int *tok_row;             /* [n_tok * k] the row of each choice */
    /* routed on the device (the ops moe_topk, matmul_id, moe_combine): the host arrays above are not
       filled; rows are token-major (row t k + j: token t's choice j), their experts and weights in
       hc_moe_ctx.dev_ids/dev_weights, and the gathered input rows are read from src (x_div k) */
    int on_device;
    const float *src, *gathered; /* the route's input (xn) and output (moe_x) rows */
    int dev_combine;          /* routed on the host, gathered and combined by device ops (moe_combine with
                                 the host's weights uploaded to hc_moe_ctx.dev_weights) */
} hc_moe_routing;

/* Calibration hook: called by MOE_LINEAR stages with one expert's routed rows (device memory of
 * a host-memory device). proj: HC_PROJ_GATE (input of gate and up) or HC_PROJ_DOWN. */
typedef hc_status (*hc_expert_observer)(void *ctx, int layer, int proj, int expert, const float *input, int n_rows, int width);

typedef struct hc_moe_ctx {
    hc_moe_routing route;
    float *dev_logits;        /* device [n_batch][max(n_expert, 1)]: router logits / shared-expert gate */
    int device_rows;          /* routed rows up to which a pass is routed on the device (0: never) */
    int32_t *dev_ids;         /* device [min(n_batch k, device_rows)]: routing on the device (NULL where it cannot) */
    float *dev_weights;       /* device [n_batch * k] */
    signed char *dev_layer_ok;/* [n_layer]: the layer's expert weights can be read by id (-1: not asked yet) */
    float *logits;            /* host copy */
    float *probs;             /* host [n_expert] scratch */
    int *order;               /* host [n_expert] scratch */
    hc_expert_observer observer;
    void *observer_ctx;
} hc_moe_ctx;

/* device_rows: routed rows up to which a pass is routed on the device (0: hc_moe_device_rows; -1: none) */
hc_status hc_moe_ctx_create(struct hc_context *c, int device_rows, hc_moe_ctx **out);
void hc_moe_ctx_free(struct hc_context *c, hc_moe_ctx *m);

/* Width of a MoE activation buffer (0 when the model has none) and its rows per token. */
int hc_moe_buffer_width(const hc_model_config *c, hc_buf b, int *rows_per_token);

/* Rows 0 .. n - 1 ordered by their experts ids[r] (each in 0 .. n_expert - 1), stably (a counting
 * sort): order[p] is the row at position p, and expert e's rows are at start[e] .. start[e + 1] - 1
 * (start: n_expert + 1 ints). */
void hc_moe_rows_by_expert(const int *ids, int n, int n_expert, int *start, int *order);

/* Runs a MOE_ROUTE, MOE_LINEAR, MOE_ACT, MOE_COMBINE or SHEXP_GATE stage on a batch of n tokens. */
hc_status hc_moe_run_stage(struct hc_context *c, const hc_stage *s, int n);

/* Gives a MOE_LINEAR stage its experts' branches (if any): expert_branch, branch_enabled, and the
 * active-rank cap (max_rank, 0: none) shared by all its experts; sets *any when it has some. */
hc_status hc_moe_attach_branches(struct hc_context *c, hc_stage *s, const struct hc_comp_ops *comp, int max_rank, int *any);

/* Whether a MOE_LINEAR stage's expert branches run: it has some, enabled, at an active rank above 0. */
int hc_moe_stage_branches_run(const hc_stage *s);

/* Expert e of a 3-D expert tensor as a 2-D [in, out] tensor (same type or packed format, the data
 * at its contiguous slice). */
HC_API hc_tensor hc_moe_expert_view(const hc_tensor *t, int e);

/* Routing of one token: softmax over n logits, the k best (ties: lower index first), weights
 * renormalised to sum 1 when norm. probs/order are [n] scratch. The reference the stages use. */
HC_API void hc_moe_route_token(const float *logits, int n, int k, int norm, float *probs, int *order, int *experts, float *weights);

#endif
