/* lowrank.h: the truncated rank-r factorization of a quantization residual, R ~ B A: a randomized
 * SVD of R S (only the r wanted directions), where S whitens by the layer's input statistics
 * (EoRA: a root of E[x x^T]; L2QER: diag(sqrt(E[x^2])); plain: S = I; whiten.h). Directions come
 * out in decreasing order. */
#ifndef HC_LOWRANK_H
#define HC_LOWRANK_H

#include <stdint.h>

#include "hc/hc_status.h"
#include "whiten.h"

typedef struct hc_lowrank_opts {
    int rank;                 /* directions wanted (capped at min(out, in)) */
    hc_whitening whitening;
    const double *moment;     /* FULL: [in][in] E[x x^T]; DIAG: may be the same matrix (its diagonal is used) */
    const double *diag;       /* DIAG: [in] E[x_i^2] (used when moment is NULL) */
    double damp;              /* added to the moment's diagonal, relative to its mean (default 0.01) */
    int oversample;           /* randomized SVD oversampling (default 16) */
    int power_iters;          /* power iterations (default 2) */
    uint64_t seed;
    const hc_whiten *whiten;  /* a whitening factor made beforehand (shared by the layers reading one
                                 input); when given, whitening, moment, diag and damp are not read */
} hc_lowrank_opts;

typedef struct hc_lowrank {
    int rank;
    int64_t out, in;
    float *b;                 /* [out][rank]: U sqrt(Sigma) */
    float *a;                 /* [rank][in]:  sqrt(Sigma) V^T S^-1 */
    float *sigma;             /* [rank] singular values of R S, decreasing */
    double energy;            /* ||R S||_F^2: the weighted error with no branch */
} hc_lowrank;

hc_status hc_lowrank_factor(const float *r, int64_t out, int64_t in, const hc_lowrank_opts *o, hc_lowrank *res);
void hc_lowrank_free(hc_lowrank *res);

#endif
