/* compress_sens.h: a layer's sensitivity: the reduction of its error by each rank step of its
 * factors, its error with no branch and its output energy, under its input's moment or rows. */
#ifndef HC_COMPRESS_SENS_H
#define HC_COMPRESS_SENS_H

#include "calib_stats.h"
#include "compress_state.h"
#include "lowrank.h"

const char *hc_sens_measure_name(hc_sens_measure m);

/* The reduction of E||R x||^2 (x with second moment `moment`, or ||R||_F^2 when NULL) by each
 * rank step of the factorization R ~ B A (prefix property): gain[k] for k < lr->rank, and the
 * error with no branch in *total. */
hc_status hc_compress_step_gains(const float *r, const hc_lowrank *lr, const float *moment, float *gain, double *total);
/* The same under E[x x^T] = X^T X / n of the rows x[n][in], in time and memory of n x in. */
hc_status hc_compress_step_gains_rows(const float *r, const hc_lowrank *lr, const float *x, int64_t n, float *gain, double *total);
/* j's gains (into gain[lr->rank]), energy, signal and measure from its weights w, residual r, factors
 * and input statistics (NULL without calibration). */
hc_status hc_compress_sensitivity(hc_compress_job *j, const float *w, const float *r, const hc_lowrank *lr, const hc_input_stats *s,
                                  float *gain);

#endif
