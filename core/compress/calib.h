/* calib.h: calibration inputs, one decoder layer at a time: the rows each linear layer reads (per
 * input class, and per expert the rows routed to it), gathered by observing that layer's forward
 * pass; their second moment E[x x^T] is built from them only where it is needed (calib_stats.h). */
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

/* The rows one input received, in the order they came, with the size of each observation (the
 * moment sums each observation's f32 product in f64, as the rows arrived). */
typedef struct hc_calib_input {
    int width;
    int64_t n;           /* rows */
    float *rows;         /* [n][width] */
    int64_t cap;
    int *seg;            /* rows per observation */
    int n_seg, cap_seg;
} hc_calib_input;

/* A routed expert's inputs: HC_EXP_IN_FFN (of its gate and up), HC_EXP_IN_DOWN. */
enum { HC_EXP_IN_FFN, HC_EXP_IN_DOWN, HC_EXP_IN_COUNT };

typedef struct hc_calib {
    int n_layer;
    int layer;                 /* the layer observed now (-1: the head's input) */
    hc_calib_input in[HC_IN_CLASSES];
    hc_calib_input head;       /* input of the output head */
    int n_expert;              /* mixture of experts: per expert of the layer, the rows routed to it */
    hc_calib_input *expert;    /* [n_expert][HC_EXP_IN_COUNT], NULL for a dense model */
    int64_t *routed;           /* [n_layer][n_expert] tokens routed to each expert (every layer's, kept) */
    int64_t tokens;            /* calibration tokens (each layer sees them all) */
} hc_calib;

hc_status hc_calib_create(const hc_model *m, hc_calib **out);
void hc_calib_free(hc_calib *c);

/* Forgets the rows of the layer before and observes `layer` (-1: the head's input) from now on. */
void hc_calib_begin_layer(hc_calib *c, int layer);
/* Sets (cal) or clears (NULL) the observers of ctx that feed the calibration. */
void hc_calib_observe(hc_context *ctx, hc_calib *cal);
/* Adds rows to an input as one observation. */
hc_status hc_calib_add(hc_calib_input *in, const float *x, int n_rows);

/* The rows of the current layer's projection (expert -1: a dense one; layer -1: the head), NULL when
 * out of range. */
const hc_calib_input *hc_calib_input_of(const hc_calib *c, int proj, int expert);
/* Share of the calibration tokens that were routed to expert e of layer l (0..1; the shares of a
 * layer sum to n_expert_used); -1 when there was no calibration of experts. */
double hc_calib_routing_frequency(const hc_calib *c, int layer, int expert);

#endif
