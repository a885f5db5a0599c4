/* lowrank.c: randomized SVD (Halko, Martinsson, Tropp 2011) of the whitened residual, only the
 * directions wanted plus oversampling, with OpenBLAS and LAPACKE; small problems take the exact SVD. */
#include "lowrank.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double gaussian(uint64_t *s)
{
    /* xorshift64* uniforms through Box-Muller */
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        u[i] = ((double)((*s * 0x2545F4914F6CDD1Dull) >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

/* Orthonormalizes the columns of y (rows x cols, row-major) in place. */
static hc_status orthonormalize(float *y, int64_t rows, int cols, float *tau)
{
    if (LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, (lapack_int)rows, cols, y, cols, tau) != 0 ||
        LAPACKE_sorgqr(LAPACK_ROW_MAJOR, (lapack_int)rows, cols, cols, y, cols, tau) != 0)
        return hc_error(HC_E_NUMERIC, "low-rank: QR factorization failed");
    return HC_OK;
}

hc_status hc_lowrank_factor(const float *r, int64_t out, int64_t in, const hc_lowrank_opts *o, hc_lowrank *res)
{
    memset(res, 0, sizeof *res);
    int64_t mn = out < in ? out : in;
    int k = o->rank < mn ? o->rank : (int)mn;
    if (k <= 0) return hc_error(HC_E_ARG, "low-rank: rank %d must be positive", o->rank);
    if (o->whiten && (o->whiten->in != in)) return hc_error(HC_E_ARG, "low-rank: a whitening factor of width %lld for %lld inputs", (long long)o->whiten->in, (long long)in);
    int p = o->oversample > 0 ? o->oversample : 16, q = o->power_iters >= 0 ? o->power_iters : 2;
    int l_cols = k + p < mn ? k + p : (int)mn;
    hc_status st = HC_OK;

    hc_whiten own = { 0 };
    const hc_whiten *wh = o->whiten;
    if (!wh) {
        hc_status ws = hc_whiten_from_moment(o->whitening, o->moment, o->diag, in, o->damp, &own);
        if (ws != HC_OK) return ws;
        wh = &own;
    }
    float *m = malloc((size_t)(out * in) * sizeof *m);               /* M = R S */
    float *y = malloc((size_t)(out * l_cols) * sizeof *y);          /* range basis, out x l */
    float *z = malloc((size_t)(in * l_cols) * sizeof *z);           /* co-range, in x l */
    float *tau = malloc((size_t)(l_cols + 1) * sizeof *tau);
    float *small = malloc((size_t)(l_cols * in) * sizeof *small);   /* Q^T M, l x in */
    float *su = malloc((size_t)(l_cols * l_cols) * sizeof *su), *ss = malloc((size_t)l_cols * sizeof *ss);
    float *svt = malloc((size_t)(l_cols * in) * sizeof *svt);
    res->b = malloc((size_t)(out * k) * sizeof *res->b);
    res->a = malloc((size_t)(k * in) * sizeof *res->a);
    res->sigma = malloc((size_t)k * sizeof *res->sigma);
    if (!m || !y || !z || !tau ||
        !small || !su || !ss || !svt || !res->b || !res->a || !res->sigma) {
        st = hc_error(HC_E_NOMEM, "low-rank: out of memory for a %lld x %lld factorization", (long long)out, (long long)in);
        goto done;
    }
    /* M = R S */
    if ((st = hc_whiten_apply(wh, r, out, m)) != HC_OK) goto done;
    double energy = 0;
    for (int64_t i = 0; i < out * in; i++) energy += (double)m[i] * m[i];
    res->energy = energy;

    if (l_cols >= mn) {
        /* small enough: the exact SVD of M's projection is M itself; use Q = I through a full SVD of M^T M's side */
        int64_t rows = out;
        float *u = malloc((size_t)(out * mn) * sizeof *u), *vt = malloc((size_t)(mn * in) * sizeof *vt), *s = malloc((size_t)mn * sizeof *s);
        float *mc = malloc((size_t)(out * in) * sizeof *mc);
        if (!u || !vt || !s || !mc) {
            free(u); free(vt); free(s); free(mc);
            st = hc_error(HC_E_NOMEM, "low-rank: out of memory");
            goto done;
        }
        memcpy(mc, m, (size_t)(out * in) * sizeof *mc);
        lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)rows, (lapack_int)in, mc, (lapack_int)in, s, u,
                                         (lapack_int)mn, vt, (lapack_int)in);
        if (info == 0) {
            for (int c = 0; c < k; c++) {
                float sq = sqrtf(s[c]);
                res->sigma[c] = s[c];
                for (int64_t i = 0; i < out; i++) res->b[i * k + c] = u[i * mn + c] * sq;
                for (int64_t j = 0; j < in; j++) res->a[c * in + j] = vt[c * in + j] * sq;
            }
        } else st = hc_error(HC_E_NUMERIC, "low-rank: SVD did not converge (sgesdd info %d)", (int)info);
        free(u); free(vt); free(s); free(mc);
        if (st != HC_OK) goto done;
    } else {
        /* Y = M Omega; power iterations Y = M (M^T Y) with re-orthonormalization */
        uint64_t seed = o->seed ? o->seed : 0x853c49e6748fea9bull;
        for (int64_t i = 0; i < in * l_cols; i++) z[i] = (float)gaussian(&seed);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, l_cols, (int)in, 1.0f, m, (int)in, z, l_cols, 0.0f, y, l_cols);
        if ((st = orthonormalize(y, out, l_cols, tau)) != HC_OK) goto done;
        for (int it = 0; it < q; it++) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)in, l_cols, (int)out, 1.0f, m, (int)in, y, l_cols, 0.0f, z, l_cols);
            if ((st = orthonormalize(z, in, l_cols, tau)) != HC_OK) goto done;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, l_cols, (int)in, 1.0f, m, (int)in, z, l_cols, 0.0f, y, l_cols);
            if ((st = orthonormalize(y, out, l_cols, tau)) != HC_OK) goto done;
        }
        /* small = Q^T M (l x in); its SVD gives M ~ (Q Us) S Vt */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l_cols, (int)in, (int)out, 1.0f, y, l_cols, m, (int)in, 0.0f, small, (int)in);
        lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', l_cols, (lapack_int)in, small, (lapack_int)in, ss, su, l_cols, svt, (lapack_int)in);
        if (info != 0) {
            st = hc_error(HC_E_NUMERIC, "low-rank: SVD did not converge (sgesdd info %d)", (int)info);
            goto done;
        }
        /* B = Q Us[:, :k] sqrt(S), A = sqrt(S) Vt[:k] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, k, l_cols, 1.0f, y, l_cols, su, l_cols, 0.0f, res->b, k);
        for (int c = 0; c < k; c++) {
            float sq = sqrtf(ss[c]);
            res->sigma[c] = ss[c];
            for (int64_t i = 0; i < out; i++) res->b[i * k + c] *= sq;
            for (int64_t j = 0; j < in; j++) res->a[c * in + j] = svt[c * in + j] * sq;
        }
    }
    /* undo the whitening: A = A' S^-1 */
    if ((st = hc_whiten_solve(wh, res->a, k)) != HC_OK) goto done;
    res->rank = k;
    res->out = out;
    res->in = in;
done:
    hc_whiten_free(&own);
    free(m); free(y); free(z); free(tau); free(small); free(su); free(ss); free(svt);
    if (st != HC_OK) hc_lowrank_free(res);
    return st;
}

void hc_lowrank_free(hc_lowrank *res)
{
    free(res->a);
    free(res->b);
    free(res->sigma);
    memset(res, 0, sizeof *res);
}
