/* awq.c: activation-aware scales (AWQ, Lin et al. 2023): s = mean|x|^alpha on a grid of alpha,
 * each candidate's layers quantized as W diag(s) and measured as (Q(W s) / s - W) on the input. */
#include "awq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void hc_awq_cols(float *m, int64_t rows, int64_t cols, const float *s, int invert)
{
    for (int64_t i = 0; i < rows; i++) {
        float *r = m + (size_t)i * (size_t)cols;
        if (invert)
            for (int64_t j = 0; j < cols; j++) r[j] /= s[j];
        else
            for (int64_t j = 0; j < cols; j++) r[j] *= s[j];
    }
}

void hc_awq_rows(float *m, int64_t rows, int64_t cols, const float *s, int invert)
{
    for (int64_t i = 0; i < rows; i++) {
        const float f = invert ? 1.0f / s[i] : s[i];
        float *r = m + (size_t)i * (size_t)cols;
        for (int64_t j = 0; j < cols; j++) r[j] *= f;
    }
}

/* How a candidate's error is measured: under the moment h (in x in), or on ns rows xs (ns x in);
 * x2 [in] = E[x_i^2] of the unscaled input, x2s its scaled copy handed to the quantizer. */
typedef struct metric {
    const float *h, *xs, *x2;
    float *x2s;
    int64_t in, ns;
} metric;

/* E||dW x||^2 for dW = Q(W diag s) diag(1/s) - W: ws, packed and tmp are the caller's scratch
 * (out x in, the format's bytes, out x max(in, ns)). */
static hc_status candidate_error(const hc_quant_format *q, const float *w, int64_t out, const float *s, metric *mt,
                                 float *ws, void *packed, float *tmp, double *err)
{
    const int64_t in = mt->in;
    memcpy(ws, w, (size_t)(out * in) * sizeof *ws);
    hc_awq_cols(ws, out, in, s, 0);
    for (int64_t i = 0; i < in; i++) mt->x2s[i] = mt->x2[i] / (s[i] * s[i]); /* E[(x_i / s_i)^2] */
    const hc_quant_calib qc = { .x2_mean = mt->x2s };
    hc_status st = q->ops->quantize(q->params, ws, out, in, &qc, packed);
    if (st != HC_OK) return st;
    q->ops->dequantize_rows(q->params, packed, in, out, 0, out, ws);
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) ws[o * in + i] = ws[o * in + i] / s[i] - w[o * in + i];
    double e = 0;
    if (mt->h) { /* tr(dW H dW^T) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)in, 1.0f, ws, (int)in, mt->h, (int)in,
                    0.0f, tmp, (int)in);
        for (int64_t k = 0; k < out * in; k++) e += (double)tmp[k] * ws[k];
    } else { /* mean over the sample of |dW x|^2 */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, (int)mt->ns, (int)in, 1.0f, ws, (int)in, mt->xs, (int)in,
                    0.0f, tmp, (int)mt->ns);
        for (int64_t k = 0; k < out * mt->ns; k++) e += (double)tmp[k] * tmp[k];
        e /= (double)mt->ns;
    }
    *err = e;
    return HC_OK;
}

/* s_i = max(m_i, 1e-4)^alpha / sqrt(max s * min s) */
static void scales_at(const float *mean_abs, int64_t in, float alpha, float *s)
{
    float lo = INFINITY, hi = 0;
    for (int64_t i = 0; i < in; i++) {
        s[i] = powf(fmaxf(mean_abs[i], 1e-4f), alpha);
        lo = fminf(lo, s[i]), hi = fmaxf(hi, s[i]);
    }
    const float norm = sqrtf(hi * lo);
    for (int64_t i = 0; i < in; i++) s[i] /= norm;
}

hc_status hc_awq_search(const hc_quant_format *quant, int n_w, const float *const *w, const int64_t *out, int64_t in,
                        const float *x, int64_t n, int grid, float *s, hc_awq_report *report)
{
    if (n_w <= 0 || in <= 0 || n <= 0 || grid <= 0)
        return hc_error(HC_E_ARG, "awq: %d weights of width %lld on %lld rows with a grid of %d", n_w, (long long)in, (long long)n, grid);
    int64_t out_max = 0;
    size_t packed_max = 0;
    for (int k = 0; k < n_w; k++) {
        hc_status st = quant->ops->check_shape(quant->params, out[k], in);
        if (st != HC_OK) return st;
        size_t b = quant->ops->packed_bytes(quant->params, out[k], in);
        if (out[k] > out_max) out_max = out[k];
        if (b > packed_max) packed_max = b;
    }
    metric mt = { .in = in };
    const int moment = in <= HC_AWQ_MOMENT_MAX && n > in; /* else the rows are cheaper */
    mt.ns = moment ? 0 : in > HC_AWQ_MOMENT_MAX && n > HC_AWQ_ROWS ? HC_AWQ_ROWS : n;
    const int64_t cols_tmp = moment ? in : mt.ns;
    float *mean_abs = calloc((size_t)in, sizeof *mean_abs), *cand = malloc((size_t)in * sizeof *cand);
    float *x2 = malloc((size_t)in * sizeof *x2), *x2s = malloc((size_t)in * sizeof *x2s);
    float *aux = malloc((size_t)(moment ? in * in : mt.ns * in) * sizeof *aux);
    float *ws = malloc((size_t)(out_max * in) * sizeof *ws), *tmp = malloc((size_t)(out_max * cols_tmp) * sizeof *tmp);
    void *packed = malloc(packed_max);
    double *acc = calloc((size_t)2 * (size_t)in, sizeof *acc);
    hc_status st = mean_abs && cand && x2 && x2s && aux && ws && tmp && packed && acc
                       ? HC_OK
                       : hc_error(HC_E_NOMEM, "awq: out of memory for %d weights of width %lld", n_w, (long long)in);
    if (st == HC_OK) {
        for (int64_t r = 0; r < n; r++)
            for (int64_t i = 0; i < in; i++) {
                const float v = x[r * in + i];
                acc[i] += fabsf(v), acc[in + i] += (double)v * v;
            }
        for (int64_t i = 0; i < in; i++) mean_abs[i] = (float)(acc[i] / (double)n), x2[i] = (float)(acc[in + i] / (double)n);
        mt.x2 = x2, mt.x2s = x2s;
        if (moment) { /* H = X^T X / n */
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)in, (int)n, 1.0f / (float)n, x, (int)in, 0.0f, aux, (int)in);
            for (int64_t i = 0; i < in; i++)
                for (int64_t j = 0; j < i; j++) aux[i * in + j] = aux[j * in + i];
            mt.h = aux;
        } else { /* an even sample of the rows */
            for (int64_t r = 0; r < mt.ns; r++) memcpy(aux + r * in, x + (r * n / mt.ns) * in, (size_t)in * sizeof *aux);
            mt.xs = aux;
        }
    }
    double best = INFINITY, plain = 0;
    float best_alpha = 0;
    for (int g = 0; g < grid && st == HC_OK; g++) {
        const float alpha = (float)g / (float)grid;
        scales_at(mean_abs, in, alpha, cand);
        double e = 0;
        for (int k = 0; k < n_w && st == HC_OK; k++) {
            double ek = 0;
            st = candidate_error(quant, w[k], out[k], cand, &mt, ws, packed, tmp, &ek);
            e += ek;
        }
        if (st != HC_OK) break;
        if (g == 0) plain = e;
        if (e < best) best = e, best_alpha = alpha, memcpy(s, cand, (size_t)in * sizeof *s);
    }
    if (st == HC_OK && best_alpha == 0)
        for (int64_t i = 0; i < in; i++) s[i] = 1.0f;
    if (st == HC_OK && report) *report = (hc_awq_report){ .alpha = best_alpha, .error_plain = plain, .error_best = best };
    free(mean_abs), free(cand), free(x2), free(x2s), free(aux), free(ws), free(tmp), free(packed), free(acc);
    return st == HC_OK ? HC_OK : hc_error_context(st, "awq: ");
}
