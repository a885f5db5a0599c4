/* calib.h: calibration statistics: running calibration text through the model and accumulating,
 * for every distinct input of the linear layers, the second moment E[x x^T] (and so E[x^2]). */
#ifndef HC_CALIB_H
#define HC_CALIB_H

#include <stdint.h>

#include "context.h"

/* Linear layers sharing an input share its statistics. */
typedef enum hc_input_class {
    HC_IN_ATTN = 0,   /* attn_q, attn_k, attn_v: the normalised stream */
    HC_IN_ATT_OUT,    /* attn_output: the attention output */
    HC_IN_FFN,        /* ffn_gate, ffn_up: the normalised stream */
    HC_IN_DOWN,       /* ffn_down: silu(gate) * up */
    HC_IN_DOWN_SHEXP, /* ffn_down_shexp: the shared expert's silu(gate) * up (its gate/up read HC_IN_FFN) */
    HC_IN_CLASSES
} hc_input_class;

hc_input_class hc_proj_input_class(hc_proj p);

typedef struct hc_moment {
    int width;
    int64_t n;           /* tokens accumulated */
    double *sum;         /* [width][width] sum of x x^T (upper and lower filled after finish); allocated
                            at the first tokens (NULL while n == 0) */
} hc_moment;

/* A routed expert's inputs: HC_EXP_IN_FFN (of its gate and up), HC_EXP_IN_DOWN. */
enum { HC_EXP_IN_FFN, HC_EXP_IN_DOWN, HC_EXP_IN_COUNT };

typedef struct hc_calib {
    int n_layer;
    hc_moment *layer;    /* [n_layer * HC_IN_CLASSES] */
    hc_moment head;      /* input of the output head */
    int n_expert;        /* mixture of experts: per layer and expert, the moments of the rows routed to it */
    hc_moment *expert;   /* [n_layer][n_expert][HC_EXP_IN_COUNT], NULL for a dense model */
    int64_t *routed;     /* [n_layer][n_expert] tokens routed to each expert */
    int64_t tokens;
    int threads;         /* BLAS threads for the accumulation */
    float *scratch;      /* [width][width] f32 product of one batch */
    size_t scratch_n;
} hc_calib;

hc_status hc_calib_create(const hc_model *m, int threads, hc_calib **out);
void hc_calib_free(hc_calib *c);

typedef void (*hc_calib_progress)(void *ctx, int64_t done, int64_t total);

/* Runs n tokens through ctx in sequences of seq_len (each from an empty cache) and accumulates. */
hc_status hc_calib_run(hc_calib *cal, hc_context *ctx, const int32_t *tokens, int64_t n, int seq_len,
                       hc_calib_progress progress, void *progress_ctx);

/* The statistics of a layer's projection (layer -1: the output head), NULL when none. */
const hc_moment *hc_calib_moment(const hc_calib *c, int layer, int proj);

/* The statistics of expert e's gate/up (proj HC_PROJ_GATE, HC_PROJ_UP) or down input: only the
 * tokens routed to it. NULL when out of range. */
const hc_moment *hc_calib_expert_moment(const hc_calib *c, int layer, int proj, int expert);
/* Share of the calibration tokens that were routed to expert e of layer l (0..1; the shares of a
 * layer sum to n_expert_used); -1 when there was no calibration of experts. */
double hc_calib_routing_frequency(const hc_calib *c, int layer, int expert);

/* E[x x^T] as a new [width][width] double matrix; NULL (and an error) when out of memory or empty. */
double *hc_moment_mean(const hc_moment *m);

#endif
