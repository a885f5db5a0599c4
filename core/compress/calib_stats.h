/* calib_stats.h: what the quantizer and the factorization need of one calibrated input: E[x_i^2],
 * the moment E[x x^T] where its width allows (at least as many rows as its width, or a quantizer
 * that reads the Hessian) or else the rows themselves, and the whitening factor; shared by the
 * linear layers reading that input. */
#ifndef HC_CALIB_STATS_H
#define HC_CALIB_STATS_H

#include "calib.h"
#include "whiten.h"

typedef struct hc_input_stats {
    int64_t width, n;
    const float *rows;        /* rows path: the calibration rows [n][width] (borrowed), else NULL */
    float *h;                 /* moment path: [width][width] E[x x^T] in f32, else NULL */
    float *x2;                /* [width] E[x_i^2] */
    hc_whiten whiten;         /* of the kind asked for */
    int identity;             /* no rows were seen (an expert never routed to): E[x x^T] = I (h is NULL
                                 unless the quantizer reads it) */
} hc_input_stats;

/* The moment is summed as each observation's f32 product X^T X accumulated in f64 (threads: BLAS
 * threads for it). need_hessian: the quantizer reads the moment, whatever the rows. */
hc_status hc_input_stats_build(const hc_calib_input *in, hc_whitening kind, int need_hessian, int threads, hc_input_stats *s);
void hc_input_stats_free(hc_input_stats *s);

#endif
