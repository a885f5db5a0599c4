/* qjoint.c: quantization that knows its branch (LoftQ's alternation under EoRA's activation
 * whitening): Q <- quant(W - B A), B A <- svd_r((W - Q) S), the best Q of the rounds kept. */
#include "qjoint.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* R = W - deq(packed), its rank-r factorization into lr, and the error the branch leaves. */
static hc_status residual_after_branch(const hc_quant_format *fmt, const float *w, int64_t out, int64_t in,
                                       const void *packed, const hc_qjoint_opts *o, float *r, hc_lowrank *lr,
                                       double *left)
{
    fmt->ops->dequantize_rows(fmt->params, packed, in, out, 0, out, r);
    for (int64_t i = 0; i < out * in; i++) r[i] = w[i] - r[i];
    hc_lowrank_free(lr);
    hc_lowrank_opts lo = { .rank = o->rank, .whiten = o->whiten, .seed = o->seed };
    hc_status st = hc_lowrank_factor(r, out, in, &lo, lr);
    if (st != HC_OK) return st;
    double e = lr->energy;
    for (int k = 0; k < lr->rank; k++) e -= (double)lr->sigma[k] * lr->sigma[k];
    *left = e > 0 ? e : 0;
    return HC_OK;
}

hc_status hc_qjoint_quantize(const hc_quant_format *fmt, const float *w, int64_t out, int64_t in,
                             const hc_quant_calib *calib, const hc_qjoint_opts *o, void *packed,
                             hc_qjoint_report *report)
{
    const size_t bytes = fmt->ops->packed_bytes(fmt->params, out, in), n = (size_t)(out * in);
    hc_status st = fmt->ops->quantize(fmt->params, w, out, in, calib, packed);
    if (st != HC_OK || o->rounds <= 0 || o->rank <= 0) {
        if (report) *report = (hc_qjoint_report){ 0 };
        return st;
    }
    float *r = malloc(n * sizeof *r), *target = malloc(n * sizeof *target);
    void *trial = malloc(bytes);
    hc_lowrank lr = { 0 };
    double best = 0, left = 0, first = 0;
    int best_round = 0;
    if (!r || !target || !trial) st = hc_error(HC_E_NOMEM, "joint quantization: out of memory for a %lld x %lld weight",
                                               (long long)out, (long long)in);
    if (st == HC_OK) st = residual_after_branch(fmt, w, out, in, packed, o, r, &lr, &first);
    best = first;
    for (int t = 1; st == HC_OK && t <= o->rounds; t++) {
        /* the target: W less the branch of the last residual, B A = lr.b lr.a */
        memcpy(target, w, n * sizeof *target);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, lr.rank, -1.0f, lr.b, lr.rank, lr.a,
                    (int)in, 1.0f, target, (int)in);
        st = fmt->ops->quantize(fmt->params, target, out, in, calib, trial);
        if (st == HC_OK) st = residual_after_branch(fmt, w, out, in, trial, o, r, &lr, &left);
        if (st == HC_OK && left < best) {
            best = left, best_round = t;
            memcpy(packed, trial, bytes);
        }
    }
    if (report) *report = (hc_qjoint_report){ .error_first = first, .error_best = best, .best_round = best_round };
    hc_lowrank_free(&lr);
    free(r), free(target), free(trial);
    if (st != HC_OK) return hc_error_context(st, "joint quantization: ");
    return HC_OK;
}
