/* lowrank.h: the rank-r factorization of a quantization residual, R ~ B A, by a randomized SVD
 * of R S, where S whitens by the layer's input statistics (EoRA: S = chol(E[x x^T]); L2QER:
 * S = diag(sqrt(E[x^2])); plain: S = I). Directions come out in decreasing order. */
#ifndef HC_LOWRANK_H
#define HC_LOWRANK_H

#include <stdint.h>

#include "hc/hc_status.h"

typedef enum hc_whitening {
    HC_WHITEN_NONE = 0,   /* plain SVD of R */
    HC_WHITEN_DIAG = 1,   /* diagonal scaling by the root mean square of each input (L2QER) */
    HC_WHITEN_FULL = 2    /* Cholesky factor of the input's second moment (EoRA-style) */
} hc_whitening;

typedef struct hc_lowrank_opts {
    int rank;                 /* directions wanted (capped at min(out, in)) */
    hc_whitening whitening;
    const double *moment;     /* FULL: [in][in] E[x x^T]; DIAG: may be the same matrix (its diagonal is used) */
    const double *diag;       /* DIAG: [in] E[x_i^2] (used when moment is NULL) */
    double damp;              /* added to the moment's diagonal, relative to its mean (default 0.01) */
    int oversample;           /* randomized SVD oversampling (default 16) */
    int power_iters;          /* power iterations (default 2) */
    uint64_t seed;
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
