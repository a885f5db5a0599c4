/* ops_cpu.c: dispatch of the cpu device's non-matmul ops to the AVX2 kernels or the plain references,
 * and how attention's work is divided over threads (cost-balanced units, or key ranges merged after). */
#include "ops_cpu.h"

#include <math.h>

#include "matmul_ggml.h"
#include "ops_ref.h"

void hc_cpu_rmsnorm(const float *x, const float *w, float *y, int dim, float eps)
{
    if (hc_cpu_has_avx2()) hc_rmsnorm_avx2(x, w, y, dim, eps);
    else hc_ref_rmsnorm(x, w, y, dim, eps);
}

void hc_cpu_swiglu(const float *gate, const float *up, float *out, size_t n)
{
    if (hc_cpu_has_avx2()) hc_swiglu_avx2(gate, up, out, n);
    else hc_ref_swiglu(gate, up, out, n);
}

void hc_cpu_add(float *y, const float *x, size_t n)
{
    if (hc_cpu_has_avx2()) {
        hc_add_avx2(y, x, n);
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void hc_cpu_scale(float *x, size_t n, float s)
{
    if (hc_cpu_has_avx2()) {
        hc_scale_avx2(x, n, s);
        return;
    }
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void hc_cpu_rope(float *x, int n_head, int head_dim, int n_rot, const float *cos, const float *sin,
                 hc_rope_mode mode)
{
    if (hc_cpu_has_avx2()) hc_rope_avx2(x, n_head, head_dim, n_rot, cos, sin, mode);
    else hc_ref_rope_apply(x, n_head, head_dim, n_rot, cos, sin, mode);
}

void hc_cpu_f32_to_f16(const float *x, uint16_t *y, size_t n)
{
    if (hc_cpu_has_avx2()) {
        hc_f32_to_f16_avx2(x, y, n);
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] = hc_f32_to_f16(x[i]);
}

/* ---------------- attention ---------------- */

/* A unit's cost in keys: the keys it sees plus a fixed part (its query, softmax, output). */
#define UNIT_OVERHEAD_KEYS 32
/* Decoding splits the keys only when every thread gets at least this many. */
#define MIN_KEYS_PER_THREAD 16

static int uses_avx2(const hc_attn_args *a) { return hc_cpu_has_avx2() && hc_attention_avx2_fits(a); }

int hc_cpu_attention_splits_keys(const hc_attn_args *a, int nth)
{
    return nth > 1 && a->n_tok == 1 && a->pos0 + 1 >= MIN_KEYS_PER_THREAD * nth && uses_avx2(a);
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t hc_cpu_attention_scratch_floats(const hc_attn_args *a)
{
    return round16(hc_attn_scores_floats(a)) + round16((size_t)a->n_head * hc_attn_part_floats(a));
}

/* The first unit at or past `target` of cumulative cost. */
static long unit_at(const hc_attn_args *a, double target)
{
    double acc = 0.0;
    for (int t = 0; t < a->n_tok; t++) {
        double c = (double)a->pos0 + t + 1 + UNIT_OVERHEAD_KEYS, ct = c * a->n_head;
        if (acc + ct > target) return (long)t * a->n_head + (long)((target - acc) / c + 0.5);
        acc += ct;
    }
    return (long)a->n_tok * a->n_head;
}

void hc_cpu_attention_units_split(const hc_attn_args *a, int ith, int nth, long *u0, long *u1)
{
    double total = 0.0;
    for (int t = 0; t < a->n_tok; t++) total += ((double)a->pos0 + t + 1 + UNIT_OVERHEAD_KEYS) * a->n_head;
    *u0 = ith == 0 ? 0 : unit_at(a, total * ith / nth);
    *u1 = ith == nth - 1 ? (long)a->n_tok * a->n_head : unit_at(a, total * (ith + 1) / nth);
}

/* Keys [k0, k1) of thread ith when decoding with split keys: multiples of 8 where possible. */
static void key_range(const hc_attn_args *a, int ith, int nth, int *k0, int *k1)
{
    long n = a->pos0 + 1, blocks = (n + 7) / 8, per = blocks / nth, extra = blocks % nth;
    long b = ith * per + (ith < extra ? ith : extra), e = b + per + (ith < extra ? 1 : 0);
    *k0 = (int)(b * 8 < n ? b * 8 : n);
    *k1 = (int)(e * 8 < n ? e * 8 : n);
}

void hc_cpu_attention_part(const hc_attn_args *a, int ith, int nth, float *scratch)
{
    if (hc_cpu_attention_splits_keys(a, nth)) {
        int k0, k1;
        key_range(a, ith, nth, &k0, &k1);
        hc_attention_keys_avx2(a, k0, k1, scratch, scratch + round16(hc_attn_scores_floats(a)));
        return;
    }
    long u0, u1;
    hc_cpu_attention_units_split(a, ith, nth, &u0, &u1);
    if (uses_avx2(a)) {
        hc_attention_units_avx2(a, u0, u1, scratch);
        return;
    }
    for (long u = u0; u < u1; u++) hc_ref_attention_head(a, (int)(u / a->n_head), (int)(u % a->n_head), scratch);
}

void hc_cpu_attention_merge(const hc_attn_args *a, int nth, const float *scratch)
{
    const size_t per = hc_cpu_attention_scratch_floats(a), off = round16(hc_attn_scores_floats(a));
    const size_t pf = hc_attn_part_floats(a);
    const int hd = a->head_dim;
    for (int h = 0; h < a->n_head; h++) {
        float max = -INFINITY;
        for (int i = 0; i < nth; i++) {
            const float *p = scratch + (size_t)i * per + off + (size_t)h * pf;
            if (p[1] > 0.0f && p[0] > max) max = p[0];
        }
        float *out = a->out + (size_t)h * hd;
        float sum = 0.0f;
        for (int k = 0; k < hd; k++) out[k] = 0.0f;
        for (int i = 0; i < nth; i++) {
            const float *p = scratch + (size_t)i * per + off + (size_t)h * pf;
            if (!(p[1] > 0.0f)) continue;
            float w = expf(p[0] - max);
            sum += w * p[1];
            for (int k = 0; k < hd; k++) out[k] += w * p[8 + k];
        }
        float inv = 1.0f / sum;
        for (int k = 0; k < hd; k++) out[k] *= inv;
    }
}
