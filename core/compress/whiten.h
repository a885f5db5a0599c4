/* whiten.h: how a residual's factorization weighs its errors: S with S S^T = E[x x^T] + d I, from
 * the input moment (Cholesky) or from the input rows themselves (a symmetric root through their
 * n x n Gram matrix, never in x in), the diagonal root (L2QER), or none; applied on the right of row-major matrices. */
#ifndef HC_WHITEN_H
#define HC_WHITEN_H

#include <stdint.h>

#include "hc/hc_status.h"

typedef enum hc_whitening {
    HC_WHITEN_NONE = 0,   /* plain SVD of R */
    HC_WHITEN_DIAG = 1,   /* diagonal scaling by the root mean square of each input (L2QER) */
    HC_WHITEN_FULL = 2    /* a root of the input's second moment (EoRA-style) */
} hc_whitening;

typedef struct hc_whiten {
    hc_whitening kind;
    int64_t in;
    float *diag;          /* DIAG: [in] sqrt(E[x_i^2] + d) */
    float *chol;          /* FULL from a moment: [in][in] lower Cholesky factor of E[x x^T] + d I */
    /* FULL from n < in rows: S = sqrt(d) I + V diag(c) V^T over the moment's eigenvectors in the rows' span */
    int m;                /* their number */
    float *vt;            /* [m][in] V^T */
    float *c, *ci;        /* [m] sqrt(l + d) - sqrt(d) and 1 / sqrt(l + d) - 1 / sqrt(d), l the moment's eigenvalues */
    float sd;             /* sqrt(d) */
} hc_whiten;

/* The damping d: damp (default 0.01) times the mean of the moment's diagonal, plus 1e-12. */
double hc_whiten_damping(double mean_diag, double damp);
/* From the moment E[x x^T] ([in][in] doubles; DIAG reads its diagonal, or diag[in] when moment is NULL). */
hc_status hc_whiten_from_moment(hc_whitening kind, const double *moment, const double *diag, int64_t in, double damp, hc_whiten *w);
/* FULL from the moment, factored in place (h is destroyed): no copy of an in x in matrix. */
hc_status hc_whiten_from_moment_consume(double *h, int64_t in, double damp, hc_whiten *w);
/* FULL from the n input rows x[n][in] themselves (E[x x^T] = X^T X / n), for n < in: memory and time
 * in n x in, not in x in. */
hc_status hc_whiten_from_rows(const float *x, int64_t n, int64_t in, double damp, hc_whiten *w);
void hc_whiten_free(hc_whiten *w);

/* y = r S for r [rows][in] (y may not alias r). */
hc_status hc_whiten_apply(const hc_whiten *w, const float *r, int64_t rows, float *y);
/* a = a S^-1 in place, a [rows][in]. */
hc_status hc_whiten_solve(const hc_whiten *w, float *a, int64_t rows);

#endif
