/* ops_ref.c: reference implementations of the decoder's non-matmul ops, written for clarity
 * (llama2.c style); the cpu device uses them directly, being cheap next to the matmuls. */
#include "ops_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void hc_ref_rmsnorm(const float *x, const float *w, float *y, int dim, float eps)
{
    double ss = 0.0;
    for (int i = 0; i < dim; i++) ss += (double)x[i] * x[i];
    float inv = 1.0f / sqrtf((float)(ss / dim) + eps);
    for (int i = 0; i < dim; i++) y[i] = x[i] * inv * w[i];
}

void hc_ref_swiglu(const float *gate, const float *up, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void hc_rope_cache_free(hc_rope_cache *c)
{
    free(c->cos);
    free(c->sin);
    memset(c, 0, sizeof *c);
}

hc_status hc_rope_cache_prepare(hc_rope_cache *c, float theta, int n_rot, int n_pos)
{
    if (n_rot <= 0 || n_rot % 2) return hc_error(HC_E_ARG, "rope: n_rot %d must be positive and even", n_rot);
    if (c->theta == theta && c->n_rot == n_rot && c->n_pos >= n_pos) return HC_OK;
    if (c->theta != theta || c->n_rot != n_rot) hc_rope_cache_free(c);
    int grow = n_pos < 256 ? 256 : n_pos; /* grow in steps so decode does not reallocate each token */
    if (grow < 2 * c->n_pos) grow = 2 * c->n_pos;
    int half = n_rot / 2;
    float *cs = realloc(c->cos, (size_t)grow * half * sizeof *cs);
    if (!cs) return hc_error(HC_E_NOMEM, "rope: out of memory");
    c->cos = cs;
    float *sn = realloc(c->sin, (size_t)grow * half * sizeof *sn);
    if (!sn) return hc_error(HC_E_NOMEM, "rope: out of memory");
    c->sin = sn;
    for (int p = c->n_pos; p < grow; p++)
        for (int i = 0; i < half; i++) {
            double freq = pow((double)theta, -2.0 * i / n_rot);
            double angle = p * freq;
            c->cos[(size_t)p * half + i] = (float)cos(angle);
            c->sin[(size_t)p * half + i] = (float)sin(angle);
        }
    c->theta = theta;
    c->n_rot = n_rot;
    c->n_pos = grow;
    return HC_OK;
}

void hc_ref_rope_apply(float *x, int n_head, int head_dim, int n_rot, const float *cos, const float *sin,
                       hc_rope_mode mode)
{
    int half = n_rot / 2;
    for (int h = 0; h < n_head; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            int a = mode == HC_ROPE_NEOX ? i : 2 * i;
            int b = mode == HC_ROPE_NEOX ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * cos[i] - x1 * sin[i];
            v[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

/* Element i of a KV cache array of a->kv_dtype (f32, or f16 widened exactly). */
static float cache_at(const hc_attn_args *a, const float *cache, size_t i)
{
    if (a->kv_dtype == HC_F16) return hc_f16_to_f32(((const uint16_t *)cache)[i]);
    return cache[i];
}

/* Reads the cache in a->kv_dtype: the same computation over f16 rows as over their f32 values. */
void hc_ref_attention_head(const hc_attn_args *a, int t, int h, float *scores)
{
    int hd = a->head_dim;
    size_t kv_dim = (size_t)a->n_head_kv * hd;
    int kvh = h / (a->n_head / a->n_head_kv);
    const float *q = a->q + (size_t)t * a->n_head * hd + (size_t)h * hd;
    int n_keys = a->pos0 + t + 1;
    float max = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        size_t k = (size_t)j * kv_dim + (size_t)kvh * hd;
        float s = 0.0f;
        for (int i = 0; i < hd; i++) s += q[i] * cache_at(a, a->k_cache, k + i);
        s *= a->scale;
        scores[j] = s;
        if (s > max) max = s;
    }
    float sum = 0.0f;
    for (int j = 0; j < n_keys; j++) {
        scores[j] = expf(scores[j] - max);
        sum += scores[j];
    }
    float inv = 1.0f / sum;
    float *out = a->out + (size_t)t * a->n_head * hd + (size_t)h * hd;
    memset(out, 0, (size_t)hd * sizeof *out);
    for (int j = 0; j < n_keys; j++) {
        size_t v = (size_t)j * kv_dim + (size_t)kvh * hd;
        float p = scores[j] * inv;
        for (int i = 0; i < hd; i++) out[i] += p * cache_at(a, a->v_cache, v + i);
    }
}
