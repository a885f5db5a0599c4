/* compress_sens.c: a layer's sensitivity: the reduction of its error by each rank step of its
 * factors (computed, not inferred), its error with no branch and its output energy. */
#include "compress_sens.h"

#include <cblas.h>
#include <stdlib.h>

const char *hc_sens_measure_name(hc_sens_measure m)
{
    switch (m) {
    case HC_SENS_ACTIVATION: return "activation";
    case HC_SENS_FROBENIUS: return "frobenius";
    }
    return "unknown";
}

/* gain_k from Q = B^T P, D = B^T B and C (below). */
static void gains_from(const float *q, const float *d, const float *c, int k, float *gain)
{
    for (int s = 0; s < k; s++) {
        double cross = q[s * k + s];
        for (int i = 0; i < s; i++) cross -= (double)d[s * k + i] * c[i * k + s];
        gain[s] = (float)(2.0 * cross - (double)d[s * k + s] * c[s * k + s]);
    }
}

/* With E_k = R - sum_{i<=k} b_i a_i and H the input moment, the error after k steps is
 * tr(E_k H E_k^T), and step k removes
 *     gain_k = 2 b_k^T (R H a_k^T - sum_{i<k} b_i c_ik) - |b_k|^2 c_kk,   C = A H A^T,
 * so with T = R H, P = T A^T, Q = B^T P and D = B^T B:
 *     gain_k = 2 (Q_kk - sum_{i<k} D_ki C_ik) - D_kk C_kk.
 * Every step is computed, not inferred from the factorization's own weighting. */
hc_status hc_compress_step_gains(const float *r, const hc_lowrank *lr, const float *moment, float *gain, double *total)
{
    int64_t out = lr->out, in = lr->in;
    int k = lr->rank;
    const float *a = lr->a, *b = lr->b;
    float *t = moment ? malloc((size_t)(out * in) * sizeof *t) : NULL;
    float *g = moment ? malloc((size_t)(k * in) * sizeof *g) : NULL;
    float *p = malloc((size_t)(out * k) * sizeof *p);
    float *c = malloc((size_t)k * (size_t)k * sizeof *c), *q = malloc((size_t)k * (size_t)k * sizeof *q);
    float *d = malloc((size_t)k * (size_t)k * sizeof *d);
    if ((moment && (!t || !g)) || !p || !c || !q || !d) {
        free(t); free(g); free(p); free(c); free(q); free(d);
        return hc_error(HC_E_NOMEM, "sensitivity: out of memory for a %lld x %lld layer", (long long)out, (long long)in);
    }
    const float *rh = r, *ah = a; /* R H and A H (H = I without a moment) */
    if (moment) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)in, 1.0f, r, (int)in, moment, (int)in, 0.0f, t, (int)in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, (int)in, (int)in, 1.0f, a, (int)in, moment, (int)in, 0.0f, g, (int)in);
        rh = t;
        ah = g;
    }
    double e = 0;
    for (int64_t i = 0; i < out * in; i++) e += (double)r[i] * rh[i];
    *total = e;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, k, (int)in, 1.0f, rh, (int)in, a, (int)in, 0.0f, p, k);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, k, (int)in, 1.0f, ah, (int)in, a, (int)in, 0.0f, c, k);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)out, 1.0f, b, k, p, k, 0.0f, q, k);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)out, 1.0f, b, k, b, k, 0.0f, d, k);
    gains_from(q, d, c, k, gain);
    free(t); free(g); free(p); free(c); free(q); free(d);
    return HC_OK;
}

/* The same with E[x x^T] = X^T X / n from the rows: T = R X^T (out x n) and G = X A^T (n x k) give
 * P = T G / n and C = G^T G / n; the total is |T|^2 / n. Nothing in in x in. */
hc_status hc_compress_step_gains_rows(const float *r, const hc_lowrank *lr, const float *x, int64_t n, float *gain, double *total)
{
    int64_t out = lr->out, in = lr->in;
    int k = lr->rank;
    float *t = malloc((size_t)(out * n) * sizeof *t), *g = malloc((size_t)(n * k) * sizeof *g);
    float *p = malloc((size_t)(out * k) * sizeof *p), *c = malloc((size_t)k * k * sizeof *c);
    float *q = malloc((size_t)k * k * sizeof *q), *d = malloc((size_t)k * k * sizeof *d);
    hc_status st = HC_OK;
    if (!t || !g || !p || !c || !q || !d) st = hc_error(HC_E_NOMEM, "sensitivity: out of memory for a %lld x %lld layer", (long long)out, (long long)in);
    if (st == HC_OK) {
        float inv = 1.0f / (float)n;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, (int)n, (int)in, 1.0f, r, (int)in, x, (int)in, 0.0f, t, (int)n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, k, (int)in, 1.0f, x, (int)in, lr->a, (int)in, 0.0f, g, k);
        double e = 0;
        for (int64_t i = 0; i < out * n; i++) e += (double)t[i] * t[i];
        *total = e / (double)n;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, k, (int)n, inv, t, (int)n, g, k, 0.0f, p, k);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)n, inv, g, k, g, k, 0.0f, c, k);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)out, 1.0f, lr->b, k, p, k, 0.0f, q, k);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)out, 1.0f, lr->b, k, lr->b, k, 0.0f, d, k);
        gains_from(q, d, c, k, gain);
    }
    free(t); free(g); free(p); free(c); free(q); free(d);
    return st;
}

/* tr(W H W^T), the layer's output energy under the input's statistics (|W|_F^2 without). */
static hc_status output_energy(const float *w, int64_t out, int64_t in, const hc_input_stats *s, double *signal)
{
    double e = 0;
    if (!s) {
        for (int64_t i = 0; i < out * in; i++) e += (double)w[i] * w[i];
        *signal = e;
        return HC_OK;
    }
    if (s->identity) return output_energy(w, out, in, NULL, signal);
    int64_t cols = s->rows ? s->n : in;
    float *wh = malloc((size_t)(out * cols) * sizeof *wh);
    if (!wh) return hc_error(HC_E_NOMEM, "sensitivity: out of memory for a %lld x %lld layer", (long long)out, (long long)in);
    if (s->rows) { /* |W X^T|^2 / n */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, (int)cols, (int)in, 1.0f, w, (int)in, s->rows, (int)in, 0.0f, wh, (int)cols);
        for (int64_t i = 0; i < out * cols; i++) e += (double)wh[i] * wh[i];
        e /= (double)s->n;
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)in, 1.0f, w, (int)in, s->h, (int)in, 0.0f, wh, (int)in);
        for (int64_t i = 0; i < out * in; i++) e += (double)w[i] * wh[i];
    }
    free(wh);
    *signal = e;
    return HC_OK;
}

hc_status hc_compress_sensitivity(hc_compress_job *j, const float *w, const float *r, const hc_lowrank *lr, const hc_input_stats *s,
                                  float *gain)
{
    int k = lr->rank;
    hc_status st = output_energy(w, j->out, j->in, s, &j->signal);
    if (st != HC_OK) return st;
    if (!s) {
        /* the plain SVD: sigma_k^2 is exactly the reduction of ||R||_F^2 */
        for (int i = 0; i < k; i++) gain[i] = lr->sigma[i] * lr->sigma[i];
        j->energy = lr->energy;
        j->measure = HC_SENS_FROBENIUS;
        return HC_OK;
    }
    /* With full whitening sigma_k^2 would be the reduction under the damped moment E[x x^T] + d I
       (d = 1% of its mean diagonal), which overstates small steps by a few percent; the exact
       reduction under the moment itself costs one more product of the layer's size. */
    j->measure = HC_SENS_ACTIVATION;
    if (s->identity) return hc_compress_step_gains(r, lr, NULL, gain, &j->energy); /* H = I */
    if (s->rows) return hc_compress_step_gains_rows(r, lr, s->rows, s->n, gain, &j->energy);
    return hc_compress_step_gains(r, lr, s->h, gain, &j->energy);
}
