/* whiten.c: the whitening factors: a Cholesky factor of the damped moment (LAPACK, in double), the
 * diagonal root, or a symmetric root from the input rows (their Gram matrix's eigenvectors); products
 * with S and with S^-1. */
#include "whiten.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double hc_whiten_damping(double mean_diag, double damp) { return (damp > 0 ? damp : 0.01) * mean_diag + 1e-12; }

void hc_whiten_free(hc_whiten *w)
{
    free(w->diag);
    free(w->chol);
    free(w->vt);
    free(w->c);
    free(w->ci);
    memset(w, 0, sizeof *w);
}

hc_status hc_whiten_from_moment(hc_whitening kind, const double *moment, const double *diag, int64_t in, double damp, hc_whiten *w)
{
    memset(w, 0, sizeof *w);
    w->kind = kind;
    w->in = in;
    if (kind == HC_WHITEN_NONE) return HC_OK;
    if (kind == HC_WHITEN_DIAG) {
        if (!moment && !diag) return hc_error(HC_E_ARG, "low-rank: diagonal whitening needs input statistics");
        if (!(w->diag = malloc((size_t)in * sizeof *w->diag))) return hc_error(HC_E_NOMEM, "low-rank: out of memory");
        double mean = 0;
        for (int64_t i = 0; i < in; i++) mean += moment ? moment[i * in + i] : diag[i];
        double d = hc_whiten_damping(mean / (double)in, damp);
        for (int64_t i = 0; i < in; i++) w->diag[i] = (float)sqrt((moment ? moment[i * in + i] : diag[i]) + d);
        return HC_OK;
    }
    if (!moment) return hc_error(HC_E_ARG, "low-rank: full whitening needs the input moment");
    double *h = malloc((size_t)(in * in) * sizeof *h);
    if (!h) return hc_error(HC_E_NOMEM, "low-rank: out of memory for a %lld-wide whitening factor", (long long)in);
    memcpy(h, moment, (size_t)(in * in) * sizeof *h);
    hc_status st = hc_whiten_from_moment_consume(h, in, damp, w);
    free(h);
    return st;
}

hc_status hc_whiten_from_moment_consume(double *h, int64_t in, double damp, hc_whiten *w)
{
    memset(w, 0, sizeof *w);
    w->kind = HC_WHITEN_FULL;
    w->in = in;
    if (!(w->chol = malloc((size_t)(in * in) * sizeof *w->chol)))
        return hc_error(HC_E_NOMEM, "low-rank: out of memory for a %lld-wide whitening factor", (long long)in);
    double mean = 0;
    for (int64_t i = 0; i < in; i++) mean += h[i * in + i];
    double d = hc_whiten_damping(mean / (double)in, damp);
    for (int64_t i = 0; i < in; i++) h[i * in + i] += d;
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)in, h, (lapack_int)in);
    if (info != 0) {
        hc_whiten_free(w);
        return hc_error(HC_E_NUMERIC, "low-rank: the input moment matrix is not positive definite (dpotrf info %d)", (int)info);
    }
    for (int64_t i = 0; i < in; i++)
        for (int64_t j = 0; j < in; j++) w->chol[i * in + j] = j <= i ? (float)h[i * in + j] : 0.0f;
    return HC_OK;
}

hc_status hc_whiten_from_rows(const float *x, int64_t n, int64_t in, double damp, hc_whiten *w)
{
    memset(w, 0, sizeof *w);
    w->kind = HC_WHITEN_FULL;
    w->in = in;
    if (n <= 0 || n >= in) return hc_error(HC_E_ARG, "low-rank: whitening from %lld rows of width %lld", (long long)n, (long long)in);
    /* E[x x^T] = X^T X / n = V diag(l) V^T from the small Gram matrix X X^T / n = U diag(l) U^T
       (n x n, in double): V = X^T U diag(l)^-1/2 / sqrt(n); nothing in in x in */
    double *a = malloc((size_t)(n * in) * sizeof *a), *g = malloc((size_t)(n * n) * sizeof *g), *l = malloc((size_t)n * sizeof *l);
    double *v = malloc((size_t)(n * in) * sizeof *v);
    w->vt = malloc((size_t)(n * in) * sizeof *w->vt);
    w->c = malloc((size_t)n * sizeof *w->c);
    w->ci = malloc((size_t)n * sizeof *w->ci);
    hc_status st = HC_OK;
    if (!a || !g || !l || !v || !w->vt || !w->c || !w->ci)
        st = hc_error(HC_E_NOMEM, "low-rank: out of memory for %lld rows of width %lld", (long long)n, (long long)in);
    double mean = 0, scale = 1.0 / sqrt((double)n);
    for (int64_t i = 0; st == HC_OK && i < n * in; i++) {
        a[i] = x[i] * scale;
        mean += a[i] * a[i];
    }
    if (st == HC_OK) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)in, 1.0, a, (int)in, 0.0, g, (int)n);
        lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, g, (lapack_int)n, l);
        if (info != 0) st = hc_error(HC_E_NUMERIC, "low-rank: eigendecomposition of the rows' Gram matrix failed (dsyevd info %d)", (int)info);
    }
    if (st == HC_OK) {
        /* V^T = U^T A, one row per eigenvalue, largest first (dsyevd's are increasing) */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)in, (int)n, 1.0, g, (int)n, a, (int)in, 0.0, v, (int)in);
        double d = hc_whiten_damping(mean / (double)in, damp), sd = sqrt(d), top = l[n - 1];
        w->sd = (float)sd;
        int m = 0;
        for (int64_t k = n - 1; k >= 0; k--) {
            double lk = l[k];
            if (!(lk > 1e-12 * top)) break; /* numerically nothing of the moment (and c ~ 0 there) */
            double inv = 1.0 / sqrt(lk);
            w->c[m] = (float)(sqrt(lk + d) - sd);
            w->ci[m] = (float)(1.0 / sqrt(lk + d) - 1.0 / sd);
            for (int64_t j = 0; j < in; j++) w->vt[(size_t)m * in + j] = (float)(v[k * in + j] * inv);
            m++;
        }
        w->m = m;
    }
    free(a);
    free(g);
    free(l);
    free(v);
    if (st != HC_OK) hc_whiten_free(w);
    return st;
}

/* y = base * y0 + ((y0 V) diag(coef)) V^T for the rows' root, y0 = r (y and r distinct). */
static hc_status rows_product(const hc_whiten *w, const float *r, int64_t rows, float base, const float *coef, float *y)
{
    int64_t in = w->in;
    int m = w->m;
    float *t = malloc((size_t)(rows * (m > 0 ? m : 1)) * sizeof *t);
    if (!t) return hc_error(HC_E_NOMEM, "low-rank: out of memory");
    for (int64_t i = 0; i < rows * in; i++) y[i] = base * r[i];
    if (m > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, m, (int)in, 1.0f, r, (int)in, w->vt, (int)in, 0.0f, t, m);
        for (int64_t i = 0; i < rows; i++)
            for (int k = 0; k < m; k++) t[i * m + k] *= coef[k];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)in, m, 1.0f, t, m, w->vt, (int)in, 1.0f, y, (int)in);
    }
    free(t);
    return HC_OK;
}

hc_status hc_whiten_apply(const hc_whiten *w, const float *r, int64_t rows, float *y)
{
    int64_t in = w->in;
    if (w->kind == HC_WHITEN_FULL && w->chol) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)in, (int)in, 1.0f, r, (int)in, w->chol, (int)in, 0.0f, y, (int)in);
        return HC_OK;
    }
    if (w->kind == HC_WHITEN_FULL) return rows_product(w, r, rows, w->sd, w->c, y);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < in; j++) y[i * in + j] = r[i * in + j] * (w->diag ? w->diag[j] : 1.0f);
    return HC_OK;
}

hc_status hc_whiten_solve(const hc_whiten *w, float *a, int64_t rows)
{
    int64_t in = w->in;
    if (w->kind == HC_WHITEN_FULL && w->chol) {
        cblas_strsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)rows, (int)in, 1.0f, w->chol, (int)in, a, (int)in);
        return HC_OK;
    }
    if (w->kind == HC_WHITEN_FULL) {
        float *y = malloc((size_t)(rows * in) * sizeof *y);
        if (!y) return hc_error(HC_E_NOMEM, "low-rank: out of memory");
        hc_status st = rows_product(w, a, rows, 1.0f / w->sd, w->ci, y);
        if (st == HC_OK) memcpy(a, y, (size_t)(rows * in) * sizeof *y);
        free(y);
        return st;
    }
    if (w->kind == HC_WHITEN_DIAG)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < in; j++) a[i * in + j] /= w->diag[j];
    return HC_OK;
}
