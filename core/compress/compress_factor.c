/* compress_factor.c: a job: quantize with the plugin (calibration statistics as it wants them),
 * R = W - Q(W) factored, gains measured, each direction's factors balanced (equal largest
 * magnitude, so f16 does not overflow) and stored in the branch's type, written to the scratch room. */
#include "compress_factor.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress_out.h"
#include "compress_plan.h"
#include "compress_sens.h"
#include "lowrank.h"
#include "qjoint.h"

/* A row of n floats in the branch's storage type (q8_0: n a multiple of 32). */
static void store_row(hc_dtype t, const float *v, int64_t n, void *dst)
{
    if (t == HC_Q8_0) hc_quantize_row_q8_0(v, dst, n);
    else if (t == HC_F32) memcpy(dst, v, (size_t)n * sizeof *v);
    else
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = t == HC_F16 ? hc_f32_to_f16(v[i]) : hc_f32_to_bf16(v[i]);
}

/* The factors of every direction as the file stores them: A's rows [k][in], B's rows [k][out]
 * (hc_branch's layout), each direction's two factors balanced; records the first direction f16
 * cannot hold (refused only if a rank reaches it). */
static hc_status store_factors(hc_compress_state *cs, hc_compress_job *j, const hc_lowrank *lr)
{
    hc_dtype t = j->branch_dtype;
    int k = lr->rank;
    int64_t in = j->in, out = j->out;
    size_t row_a = hc_dtype_row_bytes(t, in), row_b = hc_dtype_row_bytes(t, out);
    char *a = malloc((size_t)k * row_a), *b = malloc((size_t)k * row_b);
    float *row = malloc((size_t)(in > out ? in : out) * sizeof *row);
    hc_status st = a && b && row ? HC_OK : hc_error(HC_E_NOMEM, "out of memory storing the branch of %s", j->weight->name);
    j->f16_fits = k;
    for (int d = 0; st == HC_OK && d < k; d++) {
        float ma = 0, mb = 0;
        for (int64_t i = 0; i < in; i++) ma = fmaxf(ma, fabsf(lr->a[d * in + i]));
        for (int64_t o = 0; o < out; o++) mb = fmaxf(mb, fabsf(lr->b[o * k + d]));
        float alpha = (ma > 0 && mb > 0) ? sqrtf(ma / mb) : 1.0f; /* b *= alpha, a /= alpha */
        if (fmaxf(ma / alpha, mb * alpha) > 60000.0f && t == HC_F16 && j->f16_fits == k) {
            j->f16_fits = d;
            j->f16_worst = fmaxf(ma / alpha, mb * alpha);
        }
        for (int64_t i = 0; i < in; i++) row[i] = lr->a[d * in + i] / alpha;
        store_row(t, row, in, a + (size_t)d * row_a);
        for (int64_t o = 0; o < out; o++) row[o] = lr->b[o * k + d] * alpha;
        store_row(t, row, out, b + (size_t)d * row_b);
    }
    if (st == HC_OK) st = hc_compress_out_factors(cs, j, a, b);
    free(a);
    free(b);
    free(row);
    return st;
}

hc_status hc_compress_factor(hc_compress_state *cs, hc_compress_job *j, const hc_input_stats *s, int forward_rank)
{
    const hc_compress_opts *o = cs->opts;
    int64_t in = j->in, out = j->out;
    const float *w = hc_compress_job_weights(j);
    if (!w) return hc_error(HC_E_STATE, "%s: its layer is not open", j->weight->name);
    hc_quant_calib qc = { .hessian = s ? s->h : NULL, .x2_mean = s ? s->x2 : NULL };
    void *packed = malloc(j->packed_bytes);
    float *deq = NULL;
    hc_lowrank lr = { 0 };
    hc_status st = packed ? HC_OK : hc_error(HC_E_NOMEM, "out of memory");
    hc_whiten none = { .kind = HC_WHITEN_NONE, .in = in };
    const hc_whiten *wh = s && o->whitening != HC_WHITEN_NONE ? &s->whiten : &none;
    if (st == HC_OK && o->joint_rounds > 0 && j->rank_max > 0) {
        /* --joint N: the backbone chosen for what its uniform-rank branch leaves (qjoint.c) */
        hc_qjoint_opts jo = { .rank = cs->uniform_rank < j->n_dirs ? cs->uniform_rank : j->n_dirs, .rounds = o->joint_rounds,
                              .whiten = wh, .seed = 0x5851F42D4C957F2Dull ^ (uint64_t)(j - cs->jobs) };
        hc_qjoint_report jr;
        st = hc_qjoint_quantize(j->fmt, w, out, in, s ? &qc : NULL, &jo, packed, &jr);
        j->joint_first = jr.error_first, j->joint_best = jr.error_best;
    } else if (st == HC_OK) st = j->fmt->ops->quantize(j->fmt->params, w, out, in, s ? &qc : NULL, packed);
    if (st == HC_OK) st = hc_compress_out_packed(cs, j, packed);
    if (st == HC_OK && (j->rank_max > 0 || forward_rank >= 0)) {
        if (!(deq = malloc((size_t)(out * in) * sizeof *deq))) st = hc_error(HC_E_NOMEM, "out of memory");
        else j->fmt->ops->dequantize_rows(j->fmt->params, packed, in, out, 0, out, deq);
    }
    free(packed);
    if (st == HC_OK && j->rank_max > 0) {
        for (int64_t i = 0; i < out * in; i++) deq[i] = w[i] - deq[i];
        /* factored at n_dirs; the file keeps the prefix the ranks choose */
        hc_lowrank_opts lo = { .rank = j->n_dirs, .whiten = wh, .seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)(j - cs->jobs) };
        st = hc_lowrank_factor(deq, out, in, &lo, &lr);
        if (st == HC_OK && lr.rank != j->n_dirs) st = hc_error(HC_E_STATE, "%d directions factored, %d planned", lr.rank, j->n_dirs);
        if (st == HC_OK) st = hc_compress_sensitivity(j, w, deq, &lr, s, j->slot + j->n_dirs);
        if (st == HC_OK) { /* kept for the policy */
            memcpy(j->slot, lr.sigma, (size_t)j->n_dirs * sizeof *j->slot);
            j->sigma = j->slot;
            j->gain = j->slot + j->n_dirs;
            st = store_factors(cs, j, &lr);
        }
        if (st == HC_OK && forward_rank >= 0) { /* W - R + B A = Q(W) + B A: back into the weights */
            float *wm = (float *)w;
            int r = forward_rank < lr.rank ? forward_rank : lr.rank;
            for (int64_t i = 0; i < out * in; i++) wm[i] -= deq[i];
            if (r > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, r, 1.0f, lr.b, lr.rank, lr.a, (int)in, 1.0f, wm, (int)in);
        }
    } else if (st == HC_OK && forward_rank >= 0) memcpy((float *)w, deq, (size_t)(out * in) * sizeof *deq);
    hc_lowrank_free(&lr);
    free(deq);
    if (st != HC_OK) hc_error_context(st, "%s: ", j->weight->name);
    return st;
}
