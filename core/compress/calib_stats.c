/* calib_stats.c: one input's statistics for its layers: the moment path (f32 products of each
 * observation summed in f64, Cholesky whitening) or the rows path (whitening from the rows' Gram matrix). */
#include "calib_stats.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

void hc_input_stats_free(hc_input_stats *s)
{
    free(s->h);
    free(s->x2);
    hc_whiten_free(&s->whiten);
    memset(s, 0, sizeof *s);
}

/* E[x x^T] as [w][w] doubles (both triangles), summed per observation as f32 products. */
static hc_status moment(const hc_calib_input *in, int threads, double **out)
{
    size_t w = (size_t)in->width;
    double *sum = calloc(w * w, sizeof *sum);
    float *scratch = malloc(w * w * sizeof *scratch);
    if (!sum || !scratch) {
        free(sum);
        free(scratch);
        return hc_error(HC_E_NOMEM, "calibration: out of memory for a %zu x %zu moment", w, w);
    }
    openblas_set_num_threads(threads > 0 ? threads : 1);
    const float *x = in->rows;
    for (int s = 0; s < in->n_seg; s++) {
        int n = in->seg[s];
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)w, n, 1.0f, x, (int)w, 0.0f, scratch, (int)w);
        for (size_t i = 0; i < w; i++)
            for (size_t j = i; j < w; j++) sum[i * w + j] += scratch[i * w + j];
        x += (size_t)n * w;
    }
    openblas_set_num_threads(1);
    free(scratch);
    for (size_t i = 0; i < w; i++)
        for (size_t j = i; j < w; j++) sum[i * w + j] = sum[j * w + i] = sum[i * w + j] / (double)in->n;
    *out = sum;
    return HC_OK;
}

hc_status hc_input_stats_build(const hc_calib_input *in, hc_whitening kind, int need_hessian, int threads, hc_input_stats *s)
{
    memset(s, 0, sizeof *s);
    int64_t w = in->width, n = in->n;
    s->width = w;
    s->n = n;
    if (!(s->x2 = malloc((size_t)w * sizeof *s->x2))) return hc_error(HC_E_NOMEM, "calibration: out of memory");
    hc_status st = HC_OK;
    if (n > 0 && n < w && !need_hessian) {
        /* the rows path: nothing in w x w */
        s->rows = in->rows;
        double *d = calloc((size_t)w, sizeof *d);
        if (!d) st = hc_error(HC_E_NOMEM, "calibration: out of memory");
        for (int64_t t = 0; st == HC_OK && t < n; t++)
            for (int64_t i = 0; i < w; i++) d[i] += (double)in->rows[t * w + i] * in->rows[t * w + i];
        for (int64_t i = 0; st == HC_OK && i < w; i++) {
            d[i] /= (double)n;
            s->x2[i] = (float)d[i];
        }
        if (st == HC_OK) {
            if (kind == HC_WHITEN_FULL) st = hc_whiten_from_rows(in->rows, n, w, 0, &s->whiten);
            else st = hc_whiten_from_moment(kind, NULL, d, w, 0, &s->whiten);
        }
        free(d);
    } else if (n == 0 && !need_hessian) {
        /* an expert calibration never routed to: an identity moment (plain rounding, plain SVD), held
           as what it is rather than in width x width (a deep layer of a MoE model may have dozens) */
        s->identity = 1;
        double *one = malloc((size_t)w * sizeof *one);
        if (!one) st = hc_error(HC_E_NOMEM, "calibration: out of memory");
        for (int64_t i = 0; st == HC_OK && i < w; i++) {
            one[i] = 1.0;
            s->x2[i] = 1.0f;
        }
        /* the Cholesky factor of (1 + d) I is sqrt(1 + d) I: the diagonal root, the same numbers */
        if (st == HC_OK) st = hc_whiten_from_moment(kind == HC_WHITEN_NONE ? HC_WHITEN_NONE : HC_WHITEN_DIAG, NULL, one, w, 0, &s->whiten);
        free(one);
    } else {
        /* the moment path; an identity moment for a quantizer that reads it */
        double *h = NULL;
        if (n == 0) {
            s->identity = 1;
            if (!(h = calloc((size_t)(w * w), sizeof *h))) st = hc_error(HC_E_NOMEM, "calibration: out of memory");
            for (int64_t i = 0; st == HC_OK && i < w; i++) h[i * w + i] = 1.0;
        } else st = moment(in, threads, &h);
        if (st == HC_OK && !(s->h = malloc((size_t)(w * w) * sizeof *s->h))) st = hc_error(HC_E_NOMEM, "calibration: out of memory");
        for (int64_t i = 0; st == HC_OK && i < w * w; i++) s->h[i] = (float)h[i];
        for (int64_t i = 0; st == HC_OK && i < w; i++) s->x2[i] = (float)h[i * w + i];
        if (st == HC_OK) {
            if (kind == HC_WHITEN_FULL) st = hc_whiten_from_moment_consume(h, w, 0, &s->whiten);
            else st = hc_whiten_from_moment(kind, h, NULL, w, 0, &s->whiten);
        }
        free(h);
    }
    if (st != HC_OK) hc_input_stats_free(s);
    return st;
}
