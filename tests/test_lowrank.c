/* test_lowrank.c: the residual factorization: a known low-rank matrix and its singular values are
 * recovered (exact and randomized paths), prefixes are the best smaller branches, and whitening
 * by input statistics lowers the output error it is meant to lower. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lapacke.h>

#include "lowrank.h"
#include "test_util.h"
#include "whiten.h"

static double gauss(unsigned *s)
{
    double u1, u2;
    *s = *s * 1664525u + 1013904223u;
    u1 = ((*s >> 8) + 0.5) / 16777216.0;
    *s = *s * 1664525u + 1013904223u;
    u2 = ((*s >> 8) + 0.5) / 16777216.0;
    return sqrt(-2 * log(u1)) * cos(6.283185307 * u2);
}

/* r = sum_c s[c] u_c v_c^T with orthonormal-ish random u, v (Gram-Schmidt) */
static float *make_low_rank(int out, int in, int rank, const double *s, unsigned seed)
{
    double *u = calloc((size_t)out * rank, sizeof *u), *v = calloc((size_t)in * rank, sizeof *v);
    for (int c = 0; c < rank; c++) {
        for (int pass = 0; pass < 2; pass++) {
            double *x = pass ? v : u;
            int n = pass ? in : out;
            for (int i = 0; i < n; i++) x[i * rank + c] = gauss(&seed);
            for (int p = 0; p < c; p++) {
                double dot = 0;
                for (int i = 0; i < n; i++) dot += x[i * rank + c] * x[i * rank + p];
                for (int i = 0; i < n; i++) x[i * rank + c] -= dot * x[i * rank + p];
            }
            double nrm = 0;
            for (int i = 0; i < n; i++) nrm += x[i * rank + c] * x[i * rank + c];
            for (int i = 0; i < n; i++) x[i * rank + c] /= sqrt(nrm);
        }
    }
    float *r = calloc((size_t)out * in, sizeof *r);
    for (int i = 0; i < out; i++)
        for (int j = 0; j < in; j++) {
            double acc = 0;
            for (int c = 0; c < rank; c++) acc += s[c] * u[i * rank + c] * v[j * rank + c];
            r[i * in + j] = (float)acc;
        }
    free(u);
    free(v);
    return r;
}

/* || (r - B[:, :k] A[:k]) ||_F^2, optionally weighted: sum over rows of e H e^T */
static double residual_error(const float *r, const hc_lowrank *f, int k, int out, int in, const double *h)
{
    double total = 0;
    double *e = malloc((size_t)in * sizeof *e);
    for (int i = 0; i < out; i++) {
        for (int j = 0; j < in; j++) {
            double acc = r[i * in + j];
            for (int c = 0; c < k; c++) acc -= (double)f->b[i * f->rank + c] * f->a[c * in + j];
            e[j] = acc;
        }
        if (!h) {
            for (int j = 0; j < in; j++) total += e[j] * e[j];
        } else {
            for (int j = 0; j < in; j++)
                for (int l = 0; l < in; l++) total += e[j] * h[j * in + l] * e[l];
        }
    }
    free(e);
    return total;
}

static void check_recovery(int out, int in, int oversample)
{
    const double s[5] = { 10, 6, 3, 1, 0.5 };
    float *r = make_low_rank(out, in, 5, s, 42);
    hc_lowrank f;
    hc_lowrank_opts o = { .rank = 5, .oversample = oversample, .power_iters = 2, .seed = 1 };
    HC_ASSERT_OK(hc_lowrank_factor(r, out, in, &o, &f));
    CU_ASSERT_EQUAL(f.rank, 5);
    for (int c = 0; c < 5; c++) CU_ASSERT_DOUBLE_EQUAL(f.sigma[c], s[c], 1e-3 * s[0]);
    double norm = 0;
    for (int i = 0; i < out * in; i++) norm += (double)r[i] * r[i];
    CU_ASSERT_DOUBLE_EQUAL(f.energy, norm, 1e-4 * norm);
    CU_ASSERT(residual_error(r, &f, 5, out, in, NULL) < 1e-8 * norm);
    /* prefixes: the rank-k prefix leaves exactly the energy of the dropped directions */
    for (int k = 1; k < 5; k++) {
        double dropped = 0;
        for (int c = k; c < 5; c++) dropped += s[c] * s[c];
        CU_ASSERT_DOUBLE_EQUAL(residual_error(r, &f, k, out, in, NULL), dropped, 1e-3 * norm);
    }
    hc_lowrank_free(&f);
    free(r);
}

static void test_exact_svd_path(void) { check_recovery(12, 9, 16); }       /* k + p >= min(out, in) */
static void test_randomized_path(void) { check_recovery(120, 80, 8); }
static void test_randomized_wide(void) { check_recovery(40, 300, 8); }

static void test_whitening_lowers_weighted_error(void)
{
    enum { OUT = 48, IN = 32, N = 400, K = 4 };
    unsigned seed = 9;
    float *r = malloc(sizeof(float) * OUT * IN);
    for (int i = 0; i < OUT * IN; i++) r[i] = (float)gauss(&seed);
    /* inputs with very uneven scales and correlations: x = G z, H = E[x x^T] */
    double *g = malloc(sizeof(double) * IN * IN), *h = calloc(IN * IN, sizeof(double));
    for (int i = 0; i < IN * IN; i++) g[i] = gauss(&seed) * (i % IN < 4 ? 5.0 : 0.3);
    for (int n = 0; n < N; n++) {
        double z[IN], x[IN];
        for (int i = 0; i < IN; i++) z[i] = gauss(&seed);
        for (int i = 0; i < IN; i++) {
            x[i] = 0;
            for (int j = 0; j < IN; j++) x[i] += g[i * IN + j] * z[j];
        }
        for (int i = 0; i < IN; i++)
            for (int j = 0; j < IN; j++) h[i * IN + j] += x[i] * x[j] / N;
    }
    hc_lowrank plain, full, diag;
    hc_lowrank_opts o = { .rank = K, .seed = 3, .damp = 1e-6 };
    HC_ASSERT_OK(hc_lowrank_factor(r, OUT, IN, &o, &plain));
    o.whitening = HC_WHITEN_FULL;
    o.moment = h;
    HC_ASSERT_OK(hc_lowrank_factor(r, OUT, IN, &o, &full));
    o.whitening = HC_WHITEN_DIAG;
    HC_ASSERT_OK(hc_lowrank_factor(r, OUT, IN, &o, &diag));
    double e_none = residual_error(r, &plain, 0, OUT, IN, h);
    double e_plain = residual_error(r, &plain, K, OUT, IN, h);
    double e_full = residual_error(r, &full, K, OUT, IN, h);
    double e_diag = residual_error(r, &diag, K, OUT, IN, h);
    CU_ASSERT(e_full < e_plain);            /* the weighted optimum beats the unweighted one */
    CU_ASSERT(e_full <= e_diag * 1.0001);   /* and the diagonal approximation of it */
    CU_ASSERT(e_plain < e_none);
    /* with full whitening the weighted error left equals the energy minus the kept sigma^2 */
    double kept = 0;
    for (int c = 0; c < K; c++) kept += (double)full.sigma[c] * full.sigma[c];
    CU_ASSERT_DOUBLE_EQUAL(e_full, full.energy - kept, 1e-3 * full.energy);
    /* the unweighted error of the plain factorization is the smallest of all three */
    CU_ASSERT(residual_error(r, &plain, K, OUT, IN, NULL) <= residual_error(r, &full, K, OUT, IN, NULL));
    hc_lowrank_free(&plain);
    hc_lowrank_free(&full);
    hc_lowrank_free(&diag);
    free(r);
    free(g);
    free(h);
}

/* tr(E H E^T) of E = R - B_k A_k in double, H [in][in] doubles. */
static double weighted_error(const float *r, const hc_lowrank *f, int k, int out, int in, const double *h)
{
    return residual_error(r, f, k, out, in, h);
}

/* The truncated factorization against the full SVD of the whitened residual, R S with
 * S S^T = E[x x^T] + d I, with the input rows themselves (fewer rows than inputs: whiten.c's root
 * from their Gram matrix) and with the moment (Cholesky), at the compressor's settings: 64 directions
 * factored (oversampling 16, 2 power iterations), of which a uniform rank keeps the first quarter.
 * Stated tolerance for those kept directions: singular values within 1% of the exact ones and
 * every prefix's weighted error within 1% of the optimum (the energy of the directions dropped),
 * on a decaying spectrum under noise (a quantization residual's shape) and on a flat one (pure
 * noise). The later directions are printed, not held: subspace iteration refines the leading
 * directions first, and the last ones come out far from the optimum's (their gains, which the
 * policies read, are measured exactly all the same). */
static void check_against_full_svd(int flat)
{
    enum { OUT = 160, IN = 256, N = 64, K = 64, KEPT = 16 };
    unsigned seed = 77 + flat;
    double s[40];
    for (int c = 0; c < 40; c++) s[c] = 10.0 * pow(0.85, c);
    float *r = make_low_rank(OUT, IN, 40, s, 5);
    for (int i = 0; i < OUT * IN; i++) r[i] = flat ? (float)gauss(&seed) : r[i] + 0.02f * (float)gauss(&seed);
    /* rows with uneven scales and correlations */
    float *x = malloc(sizeof(float) * N * IN);
    double *h = calloc((size_t)IN * IN, sizeof *h), *hd = malloc(sizeof(double) * IN * IN);
    for (int t = 0; t < N; t++)
        for (int i = 0; i < IN; i++) {
            x[t * IN + i] = (float)(gauss(&seed) * (i < 8 ? 6.0 : 1.0 + 0.01 * i));
            if (i % 3 == 1) x[t * IN + i] += 0.5f * x[t * IN + i - 1];
        }
    for (int t = 0; t < N; t++)
        for (int i = 0; i < IN; i++)
            for (int j = 0; j < IN; j++) h[i * IN + j] += (double)x[t * IN + i] * x[t * IN + j] / N;
    double mean = 0;
    for (int i = 0; i < IN; i++) mean += h[i * IN + i];
    double d = hc_whiten_damping(mean / IN, 0);
    memcpy(hd, h, sizeof(double) * IN * IN);
    for (int i = 0; i < IN; i++) hd[i * IN + i] += d;
    /* exact: M = R L (L L^T = H + d I), its full SVD in double */
    double *l = malloc(sizeof(double) * IN * IN), *m = calloc((size_t)OUT * IN, sizeof *m), *sv = malloc(sizeof(double) * IN);
    memcpy(l, hd, sizeof(double) * IN * IN);
    CU_ASSERT_EQUAL_FATAL(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', IN, l, IN), 0);
    for (int o = 0; o < OUT; o++)
        for (int j = 0; j < IN; j++) {
            double acc = 0;
            for (int i = j; i < IN; i++) acc += (double)r[o * IN + i] * l[i * IN + j];
            m[o * IN + j] = acc;
        }
    CU_ASSERT_EQUAL_FATAL(LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', OUT, IN, m, IN, sv, NULL, OUT, NULL, IN), 0);
    double total = 0;
    for (int c = 0; c < OUT; c++) total += sv[c] * sv[c];
    hc_whiten rows;
    HC_ASSERT_OK(hc_whiten_from_rows(x, N, IN, 0, &rows));
    for (int path = 0; path < 2; path++) {
        hc_lowrank f;
        hc_lowrank_opts o = { .rank = K, .seed = 11, .whiten = path ? NULL : &rows, .whitening = HC_WHITEN_FULL, .moment = h };
        HC_ASSERT_OK(hc_lowrank_factor(r, OUT, IN, &o, &f));
        CU_ASSERT_DOUBLE_EQUAL(f.energy, total, 1e-4 * total);
        double worst_sigma[2] = { 0, 0 }, worst_err[2] = { 0, 0 };
        for (int k = 1; k <= K; k++) {
            double optimum = 0;
            for (int c = k; c < OUT; c++) optimum += sv[c] * sv[c];
            int part = k > KEPT;
            worst_sigma[part] = fmax(worst_sigma[part], fabs(f.sigma[k - 1] - sv[k - 1]) / sv[k - 1]);
            worst_err[part] = fmax(worst_err[part], weighted_error(r, &f, k, OUT, IN, hd) / optimum - 1);
        }
        printf("\n  %s spectrum, %s: ranks 1..%d: singular values within %.2g, errors within %.3g%% of the optimum; "
               "ranks %d..%d: %.2g, %.3g%%", flat ? "flat" : "decaying", path ? "moment (Cholesky)" : "rows", KEPT, worst_sigma[0],
               100 * worst_err[0], KEPT + 1, K, worst_sigma[1], 100 * worst_err[1]);
        double worst = worst_err[0], sigma = worst_sigma[0];
        CU_ASSERT(sigma < 1e-2);
        CU_ASSERT(worst < 1e-2);
        hc_lowrank_free(&f);
    }
    hc_whiten_free(&rows);
    free(r);
    free(x);
    free(h);
    free(hd);
    free(l);
    free(m);
    free(sv);
}

static void test_against_full_svd(void) { check_against_full_svd(0); }
static void test_against_full_svd_flat(void) { check_against_full_svd(1); }

static void test_bad_arguments(void)
{
    float r[4] = { 1, 2, 3, 4 };
    hc_lowrank f;
    hc_lowrank_opts o = { .rank = 0 };
    CU_ASSERT_EQUAL(hc_lowrank_factor(r, 2, 2, &o, &f), HC_E_ARG);
    o.rank = 1;
    o.whitening = HC_WHITEN_FULL;
    CU_ASSERT_EQUAL(hc_lowrank_factor(r, 2, 2, &o, &f), HC_E_ARG); /* no moment given */
    double not_pd[4] = { -1, 0, 0, -1 };
    o.moment = not_pd;
    o.damp = 1e-9;
    CU_ASSERT_EQUAL(hc_lowrank_factor(r, 2, 2, &o, &f), HC_E_NUMERIC);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "exact svd path", test_exact_svd_path },
        { "randomized path", test_randomized_path },
        { "randomized wide", test_randomized_wide },
        { "whitening lowers weighted error", test_whitening_lowers_weighted_error },
        { "truncated factorization against the full SVD", test_against_full_svd },
        { "the same on a flat spectrum", test_against_full_svd_flat },
        { "bad arguments", test_bad_arguments },
        { NULL, NULL },
    };
    return hc_test_run("lowrank", cases);
}
