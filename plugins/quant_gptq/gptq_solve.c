/* gptq_solve.c: GPTQ's column loop: processing order (act-order), the dampened inverse-Hessian
 * factor, lazy batch updates and each group's grid taken when its first column comes up. */
#include "gptq_solve.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_tensor.h"

#define WHO "gptq"

/* The processing order perm[k] = the k-th column: by decreasing diagonal with act_order (dead
 * inputs, diagonal 0, come last; ties keep the columns' order), else left to right. */
static void processing_order(const double *diag, int64_t n, int act_order, int64_t *perm)
{
    for (int64_t k = 0; k < n; k++) perm[k] = k;
    if (!act_order) return;
    /* a stable bottom-up merge sort (qsort's comparator could not see diag without a global) */
    int64_t *tmp = malloc(sizeof(int64_t) * (size_t)n);
    if (!tmp) {   /* no memory for the sort: a slower in-place insertion sort gives the same order */
        for (int64_t k = 1; k < n; k++)
            for (int64_t j = k; j > 0 && (diag[perm[j]] > diag[perm[j - 1]]); j--) {
                int64_t t = perm[j];
                perm[j] = perm[j - 1], perm[j - 1] = t;
            }
        return;
    }
    for (int64_t width = 1; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            int64_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi) tmp[o++] = diag[perm[b]] > diag[perm[a]] ? perm[b++] : perm[a++];
            while (a < mid) tmp[o++] = perm[a++];
            while (b < hi) tmp[o++] = perm[b++];
        }
        memcpy(perm, tmp, sizeof(int64_t) * (size_t)n);
    }
    free(tmp);
}

/* U, upper triangular with U^T U = (Hp + damp I)^-1, Hp the (permuted, dead-fixed) Hessian. */
static hc_status inverse_hessian_factor(double *Hp, int64_t n, float damp_frac, float *U)
{
    double diag_sum = 0.0;
    for (int64_t i = 0; i < n; i++) diag_sum += Hp[i * n + i];
    const double damp = (double)damp_frac * diag_sum / (double)n;
    for (int64_t i = 0; i < n; i++) Hp[i * n + i] += damp;
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, Hp, (lapack_int)n);
    if (info == 0) info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, Hp, (lapack_int)n);
    if (info != 0)
        return hc_error(HC_E_NUMERIC, WHO ": the dampened Hessian is not positive definite (LAPACK info %d); "
                        "raise damp (now %g)", (int)info, (double)damp_frac);
    for (int64_t i = 0; i < n; i++)   /* dpotri filled the lower triangle of the inverse */
        for (int64_t j = i + 1; j < n; j++) Hp[i * n + j] = Hp[j * n + i];
    info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', (lapack_int)n, Hp, (lapack_int)n);
    if (info != 0)
        return hc_error(HC_E_NUMERIC, WHO ": the inverse Hessian is not positive definite (LAPACK info %d); raise "
                        "damp (now %g)", (int)info, (double)damp_frac);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) U[i * n + j] = j >= i ? (float)Hp[i * n + j] : 0.0f;
    return HC_OK;
}

hc_status hc_gptq_solve(const hc_qrtn_params *p, const float *w, int64_t rows, int64_t n, const float *h, uint8_t *q,
                        uint16_t *dm)
{
    const int64_t G = hc_qrtn_groups(p->group, n), B = p->block;
    const int qmax = (1 << p->bits) - 1;
    hc_status st = HC_OK;
    double *Hp = malloc(sizeof(double) * (size_t)(n * n)), *diag = malloc(sizeof(double) * (size_t)n);
    float *U = malloc(sizeof(float) * (size_t)(n * n)), *W = malloc(sizeof(float) * (size_t)rows * (size_t)n);
    float *E = malloc(sizeof(float) * (size_t)rows * (size_t)B), *imp = malloc(sizeof(float) * (size_t)n);
    float *vals = malloc(sizeof(float) * (size_t)p->group), *df = malloc(sizeof(float) * 2 * (size_t)G * (size_t)rows);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n), *inv = malloc(sizeof(int64_t) * (size_t)n);
    int64_t *grid_at = malloc(sizeof(int64_t) * (size_t)n);
    if (!Hp || !diag || !U || !W || !E || !imp || !vals || !df || !perm || !inv || !grid_at) {
        st = hc_error(HC_E_NOMEM, WHO ": out of memory for a %lld x %lld weight", (long long)rows, (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n * n; i++)
        if (!isfinite(h[i])) {
            st = hc_error(HC_E_ARG, WHO ": Hessian entry (%lld, %lld) is not finite", (long long)(i / n), (long long)(i % n));
            goto done;
        }
    for (int64_t i = 0; i < n; i++) {
        diag[i] = h[i * n + i];
        if (diag[i] < 0) {
            st = hc_error(HC_E_ARG, WHO ": Hessian diagonal %lld is negative (%g): not a mean of x x^T", (long long)i, diag[i]);
            goto done;
        }
        imp[i] = (float)diag[i];
    }
    processing_order(diag, n, p->act_order, perm);
    for (int64_t k = 0; k < n; k++) inv[perm[k]] = k;
    for (int64_t k = 0; k < n; k++)
        for (int64_t l = 0; l < n; l++) Hp[k * n + l] = h[perm[k] * n + perm[l]];
    for (int64_t k = 0; k < n; k++)   /* a dead input: its weights do not matter (set to 0 below) */
        if (Hp[k * n + k] == 0.0) Hp[k * n + k] = 1.0;
    if ((st = inverse_hessian_factor(Hp, n, p->damp, U)) != HC_OK) goto done;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < n; k++) W[r * n + k] = diag[perm[k]] == 0.0 ? 0.0f : w[r * n + perm[k]];
    /* grid_at[k]: the group whose grid is chosen at position k (its first column there), or -1 */
    for (int64_t k = 0; k < n; k++) grid_at[k] = -1;
    for (int64_t g = 0; g < G; g++) {
        const int64_t c0 = g * p->group, c1 = c0 + p->group < n ? c0 + p->group : n;
        int64_t first = n;
        for (int64_t c = c0; c < c1; c++) first = inv[c] < first ? inv[c] : first;
        grid_at[first] = g;
    }

    for (int64_t i1 = 0; i1 < n; i1 += B) {
        const int64_t i2 = i1 + B < n ? i1 + B : n, nb = i2 - i1;
        for (int64_t r = 0; r < rows; r++) {
            float *wr = W + r * n, *er = E + r * nb;
            uint16_t *dr = dm + r * 2 * G, *mr = dr + G;
            float *dfr = df + r * 2 * G;   /* the row's grids as floats */
            for (int64_t i = i1; i < i2; i++) {
                const int64_t gs = grid_at[i];
                if (gs >= 0) {   /* group gs starts here: its columns' current values, pending updates included */
                    const int64_t c0 = gs * p->group, len = n - c0 < p->group ? n - c0 : p->group;
                    for (int64_t c = c0; c < c0 + len; c++) {
                        const int64_t k = inv[c];
                        float v = wr[k];
                        for (int64_t t = i1; k >= i2 && t < i; t++) v -= er[t - i1] * U[t * n + k];
                        vals[c - c0] = v;
                    }
                    st = p->search ? hc_qrtn_grid_search(vals, imp + c0, len, p->bits, &dr[gs], &mr[gs])
                                   : hc_qrtn_grid(vals, len, p->bits, &dr[gs], &mr[gs]);
                    if (st != HC_OK) {
                        st = hc_error_context(st, WHO ": row %lld, columns %lld..%lld: ", (long long)r, (long long)c0,
                                              (long long)(c0 + len - 1));
                        goto done;
                    }
                    dfr[gs] = hc_f16_to_f32(dr[gs]);
                    dfr[G + gs] = hc_f16_to_f32(mr[gs]);
                }
                const int64_t c = perm[i], g = c / p->group;
                const float d = dfr[g], m = dfr[G + g];
                const int code = hc_qrtn_code(wr[i], d, m, qmax);
                q[r * n + c] = (uint8_t)code;
                const float err = (wr[i] - (d * (float)code + m)) / U[i * n + i];
                er[i - i1] = err;
                if (i + 1 < i2) cblas_saxpy((int)(i2 - i - 1), -err, U + i * n + i + 1, 1, wr + i + 1, 1);
            }
        }
        if (i2 < n)   /* the block's errors reach the later columns: W[:, i2:] -= E U[i1:i2, i2:] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(n - i2), (int)nb, -1.0f, E,
                        (int)nb, U + i1 * n + i2, (int)n, 1.0f, W + i2, (int)n);
    }
done:
    free(Hp), free(diag), free(U), free(W), free(E), free(imp), free(vals), free(df), free(perm), free(inv), free(grid_at);
    return st;
}
