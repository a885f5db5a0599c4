/* awq.h: activation-aware scales (AWQ): the linear layers that read one input share per-channel
 * scales s = mean|x|^alpha, alpha chosen on a grid for the least quantized output error. */
#ifndef HC_AWQ_H
#define HC_AWQ_H

#include <stdint.h>

#include "hc/hc_quant.h"

/* What the search found: alpha (0: s = 1, the layers stay as they are) and the output error
 * E||(Q(W diag s) diag(1/s) - W) x||^2 summed over the layers, at alpha 0 and at the best alpha. */
typedef struct hc_awq_report {
    float alpha;
    double error_plain, error_best;
} hc_awq_report;

/* Widths up to this are measured under the moment E[x x^T] of every row (or on the rows, when
 * fewer than the width); wider inputs on an even sample of HC_AWQ_ROWS rows (the search costs
 * out x in x min(in, rows) per candidate). */
#define HC_AWQ_MOMENT_MAX 2048
#define HC_AWQ_ROWS 1024

/* n_w weights w[k] (out[k] x in, f32 row-major) reading the rows x (n x in): s [in] for the
 * best of alpha = g / grid, g = 0 .. grid - 1, with s_i = max(mean|x_i|, 1e-4)^alpha divided by
 * sqrt(max s * min s); quant (given E[(x_i / s_i)^2] as its calibration, no moment: rtn, with
 * or without its search) stands in for the backbone's format. s is all ones when alpha 0 wins.
 * report may be NULL. */
hc_status hc_awq_search(const hc_quant_format *quant, int n_w, const float *const *w, const int64_t *out, int64_t in,
                        const float *x, int64_t n, int grid, float *s, hc_awq_report *report);

/* m (rows x cols) scaled in place: each column j by s[j] (hc_awq_cols), each row i by s[i]
 * (hc_awq_rows); invert: divided instead. */
void hc_awq_cols(float *m, int64_t rows, int64_t cols, const float *s, int invert);
void hc_awq_rows(float *m, int64_t rows, int64_t cols, const float *s, int invert);

#endif
