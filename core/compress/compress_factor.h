/* compress_factor.h: one linear layer's work: Q(W) packed and written, the residual factored at
 * n_dirs directions with its input's whitening, its sensitivity, the factors stored and written. */
#ifndef HC_COMPRESS_FACTOR_H
#define HC_COMPRESS_FACTOR_H

#include "calib_stats.h"
#include "compress_state.h"

/* j's layer must be open (its weights in f32). s: its input's statistics, NULL without calibration.
 * forward_rank >= 0 (sequential calibration): the layer's f32 weights are then replaced by
 * Q(W) + B A at that many directions, for the forward pass that makes the next layer's inputs
 * (-1: left as they are). */
hc_status hc_compress_factor(hc_compress_state *cs, hc_compress_job *j, const hc_input_stats *s, int forward_rank);

#endif
