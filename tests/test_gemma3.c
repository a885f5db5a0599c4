/* test_gemma3.c: gemma3 from `hcinfer synth --arch gemma3`: the optimised forward pass (batches,
 * decode, the sliding-window KV cache moving its rows) against a naive reference written here over
 * the GGUF tensors, the window honoured, the GeGLU kernels, and the real Gemma 3 270M when present. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compress.h"
#include "context.h"
#include "device_cpu.h"
#include "geglu.h"
#include "gguf.h"
#include "hc/hc_cpu.h"
#include "model_load.h"
#include "registry.h"
#include "synth.h"
#include "test_util.h"
#include "tokenizer.h"

/* ---------------- the naive reference: plain loops over the file's tensors ---------------- */

typedef struct ref_model {
    hc_gguf *g;
    int dim, n_layer, n_head, n_kv, hd, n_vocab, ffn, window, period;
    float eps, theta, theta_swa;
    float **kc, **vc;        /* per layer [n_pos][kv_dim], every position kept */
} ref_model;

#define REF_MAX_POS 128

/* The whole tensor as f32 (NULL when absent); the caller frees. */
static float *ref_get(const ref_model *r, const char *fmt, int l)
{
    char name[128];
    snprintf(name, sizeof name, fmt, l);
    const hc_gguf_tensor *t = hc_gguf_find_tensor(r->g, name);
    if (!t) return NULL;
    int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *f = malloc((size_t)n * sizeof *f);
    hc_dequantize_row((hc_dtype)t->type, t->data, f, n);
    return f;
}

static void ref_rmsnorm(const float *x, const char *fmt, int l, const ref_model *r, float *y, int n)
{
    float *w = ref_get(r, fmt, l);
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float s = (float)(1.0 / sqrt(ss / n + r->eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * s * w[i];
    free(w);
}

/* y = W x for the tensor fmt of layer l, stored [in, out] */
static void ref_matvec(const ref_model *r, const char *fmt, int l, const float *x, float *y, int in, int out)
{
    float *w = ref_get(r, fmt, l);
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += (double)w[(size_t)o * in + i] * x[i];
        y[o] = (float)s;
    }
    free(w);
}

static int ref_is_local(const ref_model *r, int l) { return r->window > 0 && l % r->period < r->period - 1; }

static void ref_rope(float *v, int n_heads, int hd, double theta, int pos)
{
    for (int h = 0; h < n_heads; h++) {
        float *x = v + h * hd;
        for (int i = 0; i < hd / 2; i++) { /* NEOX: halves */
            double f = pos * pow(theta, -2.0 * i / hd);
            float c = (float)cos(f), s = (float)sin(f);
            float x0 = x[i], x1 = x[i + hd / 2];
            x[i] = x0 * c - x1 * s;
            x[i + hd / 2] = x0 * s + x1 * c;
        }
    }
}

static void ref_open(ref_model *r, const char *path)
{
    memset(r, 0, sizeof *r);
    HC_ASSERT_OK(hc_gguf_open(path, &r->g));
    uint32_t v;
#define U(key, field) HC_ASSERT_OK(hc_gguf_get_u32(r->g, "gemma3." key, &v)); r->field = (int)v;
    U("embedding_length", dim);
    U("block_count", n_layer);
    U("attention.head_count", n_head);
    U("attention.head_count_kv", n_kv);
    U("attention.key_length", hd);
    U("feed_forward_length", ffn);
    U("attention.sliding_window", window);
#undef U
    HC_ASSERT_OK(hc_gguf_get_u32_or(r->g, "gemma3.attention.sliding_window_pattern", 6, &v));
    r->period = (int)v;
    r->n_vocab = (int)hc_gguf_find_tensor(r->g, "token_embd.weight")->ne[1];
    HC_ASSERT_OK(hc_gguf_get_f32(r->g, "gemma3.rope.freq_base", &r->theta));
    HC_ASSERT_OK(hc_gguf_get_f32_or(r->g, "gemma3.rope.freq_base_swa", 10000.0f, &r->theta_swa));
    HC_ASSERT_OK(hc_gguf_get_f32(r->g, "gemma3.attention.layer_norm_rms_epsilon", &r->eps));
    r->kc = calloc((size_t)r->n_layer, sizeof *r->kc);
    r->vc = calloc((size_t)r->n_layer, sizeof *r->vc);
    for (int l = 0; l < r->n_layer; l++) {
        r->kc[l] = malloc((size_t)REF_MAX_POS * r->n_kv * r->hd * sizeof(float));
        r->vc[l] = malloc((size_t)REF_MAX_POS * r->n_kv * r->hd * sizeof(float));
    }
}

static void ref_close(ref_model *r)
{
    for (int l = 0; l < r->n_layer; l++) {
        free(r->kc[l]);
        free(r->vc[l]);
    }
    free(r->kc);
    free(r->vc);
    hc_gguf_close(r->g);
}

/* Logits of the token at position pos (positions in order from 0, fewer than REF_MAX_POS). Gemma 3:
 * x = sqrt(dim) emb; per layer h = norm(x); q, k, v; per-head q/k norms; rope (local or global
 * base); attention with scale 1/sqrt(hd) over the window (local) or all (global); x += post_norm(o);
 * h = norm(x); x += post_norm(down(gelu_tanh(gate h) * up h)); logits = tok_embd . norm(x). */
static void ref_forward(ref_model *r, int token, int pos, float *logits)
{
    int dim = r->dim, hd = r->hd, q_dim = r->n_head * hd, kv_dim = r->n_kv * hd, f = r->ffn;
    float *x = malloc((size_t)dim * sizeof *x), *xn = malloc((size_t)dim * sizeof *xn), *y = malloc((size_t)dim * sizeof *y);
    float *q = malloc((size_t)q_dim * sizeof *q), *att = malloc((size_t)q_dim * sizeof *att);
    float *g = malloc((size_t)f * sizeof *g), *u = malloc((size_t)f * sizeof *u);
    float *emb = ref_get(r, "token_embd.weight", 0);
    for (int i = 0; i < dim; i++) x[i] = emb[(size_t)token * dim + i] * sqrtf((float)dim);
    for (int l = 0; l < r->n_layer; l++) {
        ref_rmsnorm(x, "blk.%d.attn_norm.weight", l, r, xn, dim);
        float *k = r->kc[l] + (size_t)pos * kv_dim, *v = r->vc[l] + (size_t)pos * kv_dim;
        ref_matvec(r, "blk.%d.attn_q.weight", l, xn, q, dim, q_dim);
        ref_matvec(r, "blk.%d.attn_k.weight", l, xn, k, dim, kv_dim);
        ref_matvec(r, "blk.%d.attn_v.weight", l, xn, v, dim, kv_dim);
        for (int h = 0; h < r->n_head; h++) ref_rmsnorm(q + h * hd, "blk.%d.attn_q_norm.weight", l, r, q + h * hd, hd);
        for (int h = 0; h < r->n_kv; h++) ref_rmsnorm(k + h * hd, "blk.%d.attn_k_norm.weight", l, r, k + h * hd, hd);
        int local = ref_is_local(r, l);
        ref_rope(q, r->n_head, hd, local ? r->theta_swa : r->theta, pos);
        ref_rope(k, r->n_kv, hd, local ? r->theta_swa : r->theta, pos);
        int lo = local && pos - r->window + 1 > 0 ? pos - r->window + 1 : 0;
        for (int h = 0; h < r->n_head; h++) {
            int kh = h / (r->n_head / r->n_kv);
            double sc[REF_MAX_POS], mx = -1e300, sum = 0;
            for (int t = lo; t <= pos; t++) {
                double s = 0;
                for (int i = 0; i < hd; i++) s += (double)q[h * hd + i] * r->kc[l][(size_t)t * kv_dim + kh * hd + i];
                sc[t] = s / sqrt((double)hd);
                if (sc[t] > mx) mx = sc[t];
            }
            for (int t = lo; t <= pos; t++) sum += sc[t] = exp(sc[t] - mx);
            for (int i = 0; i < hd; i++) {
                double s = 0;
                for (int t = lo; t <= pos; t++) s += sc[t] / sum * r->vc[l][(size_t)t * kv_dim + kh * hd + i];
                att[h * hd + i] = (float)s;
            }
        }
        ref_matvec(r, "blk.%d.attn_output.weight", l, att, y, q_dim, dim);
        ref_rmsnorm(y, "blk.%d.post_attention_norm.weight", l, r, y, dim);
        for (int i = 0; i < dim; i++) x[i] += y[i];
        ref_rmsnorm(x, "blk.%d.ffn_norm.weight", l, r, xn, dim);
        ref_matvec(r, "blk.%d.ffn_gate.weight", l, xn, g, dim, f);
        ref_matvec(r, "blk.%d.ffn_up.weight", l, xn, u, dim, f);
        for (int i = 0; i < f; i++) {
            double a = g[i];
            g[i] = (float)(0.5 * a * (1.0 + tanh(0.7978845608028654 * (a + 0.044715 * a * a * a))) * u[i]);
        }
        ref_matvec(r, "blk.%d.ffn_down.weight", l, g, y, f, dim);
        ref_rmsnorm(y, "blk.%d.post_ffw_norm.weight", l, r, y, dim);
        for (int i = 0; i < dim; i++) x[i] += y[i];
    }
    ref_rmsnorm(x, "output_norm.weight", 0, r, xn, dim);
    for (int o = 0; o < r->n_vocab; o++) { /* the tied head */
        double s = 0;
        for (int i = 0; i < dim; i++) s += (double)emb[(size_t)o * dim + i] * xn[i];
        logits[o] = (float)s;
    }
    free(emb);
    free(x), free(xn), free(y), free(q), free(att), free(g), free(u);
}

/* ---------------- the comparison ---------------- */

static char model_path[600];

/* A small gemma3: 4 layers, 2 heads of head_dim (24: not dim / heads; 32 where rows must be multiples
 * of 32), a window and a period (period 3: layer 2 global). */
static void synth_gemma3(int window, int period, hc_dtype type, int head_dim, const char *name)
{
    snprintf(model_path, sizeof model_path, "%s", hc_test_tmp(name));
    hc_synth_opts o = { .arch = "gemma3", .output = model_path, .dim = 64, .n_layer = 4, .n_head = 2, .n_head_kv = 1,
                        .head_dim = head_dim, .ffn_dim = 96, .n_vocab = 300, .seed = 21, .type = type,
                        .norm_noise = 0.2f, .n_swa = window, .swa_period = period };
    HC_ASSERT_OK(hc_synth(&o));
}

typedef struct runner {
    hc_device *dev;
    hc_model *m;
    hc_context *c;
} runner;

static void runner_open(runner *r, const char *path, int n_ctx, int n_batch, hc_kv_type kv)
{
    hc_device_config dc = { .n_threads = 2 };
    HC_ASSERT_OK(hc_cpu_device_create(&dc, &r->dev));
    hc_model_load_opts lo = { 0 };
    HC_ASSERT_OK(hc_model_load(path, &lo, &r->m));
    hc_context_params cp = { .n_ctx = n_ctx, .n_batch = n_batch, .kv_type = kv };
    HC_ASSERT_OK(hc_context_create(r->m, r->dev, &cp, &r->c));
}

static void runner_close(runner *r)
{
    hc_context_free(r->c);
    hc_model_free(r->m);
    r->dev->ops->destroy(r->dev);
}

static void random_tokens(int32_t *t, int n, int n_vocab, uint64_t s)
{
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((s >> 33) % (uint64_t)n_vocab);
    }
}

/* n_prompt tokens in batches of n_batch (logits of every row), then n_gen decoded one by one:
 * every logit within tol of the reference. */
static void compare_with_reference(const char *path, int n_prompt, int n_gen, int n_ctx, int n_batch, hc_kv_type kv, double tol)
{
    runner rn;
    runner_open(&rn, path, n_ctx, n_batch, kv);
    ref_model r;
    ref_open(&r, path);
    int V = r.n_vocab, total = n_prompt + n_gen;
    CU_ASSERT_FATAL(total <= REF_MAX_POS);
    int32_t tokens[REF_MAX_POS];
    random_tokens(tokens, total, V, 7);
    float *ref = malloc((size_t)V * sizeof *ref);
    double worst = 0;
    const float *logits;
    for (int t0 = 0; t0 < n_prompt; t0 += n_batch) {
        int len = n_prompt - t0 < n_batch ? n_prompt - t0 : n_batch;
        HC_ASSERT_OK(hc_decode(rn.c, tokens + t0, len, 1, &logits));
        for (int t = 0; t < len; t++) {
            ref_forward(&r, tokens[t0 + t], t0 + t, ref);
            for (int i = 0; i < V; i++) worst = fmax(worst, fabs((double)logits[(size_t)t * V + i] - ref[i]));
        }
    }
    for (int t = n_prompt; t < total; t++) {
        HC_ASSERT_OK(hc_decode(rn.c, &tokens[t], 1, 0, &logits));
        ref_forward(&r, tokens[t], t, ref);
        for (int i = 0; i < V; i++) worst = fmax(worst, fabs((double)logits[i] - ref[i]));
    }
    if (worst > tol) fprintf(stderr, "  %s: largest logit difference %.3g (tolerance %.3g)\n", path, worst, tol);
    CU_ASSERT(worst <= tol);
    free(ref);
    ref_close(&r);
    runner_close(&rn);
}

/* A copy of the model file with one more key: an f32 (n 0) or an array of n bools. */
static void copy_with_key(const char *from, const char *to, const char *key, float value, const uint8_t *bools, int n)
{
    hc_gguf *g;
    HC_ASSERT_OK(hc_gguf_open(from, &g));
    hc_gguf_writer *w;
    HC_ASSERT_OK(hc_gguf_writer_create(&w));
    HC_ASSERT_OK(hc_gguf_copy_kv(w, g, NULL, NULL));
    if (n) HC_ASSERT_OK(hc_gguf_set_arr(w, key, HC_GGUF_BOOL, bools, (uint64_t)n));
    else HC_ASSERT_OK(hc_gguf_set_f32(w, key, value));
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        HC_ASSERT_OK(hc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
    }
    HC_ASSERT_OK(hc_gguf_writer_write(w, to));
    hc_gguf_writer_free(w);
    hc_gguf_close(g);
}

static void test_config_from_keys(void)
{
    synth_gemma3(5, 3, HC_F32, 24, "facts.gguf");
    hc_model *m;
    hc_model_load_opts lo = { 0 };
    HC_ASSERT_OK(hc_model_load(model_path, &lo, &m));
    const hc_model_config *c = &m->cfg;
    CU_ASSERT_STRING_EQUAL(c->arch, "gemma3");
    CU_ASSERT_EQUAL(c->head_dim, 24);
    CU_ASSERT_EQUAL(c->n_swa, 5);
    CU_ASSERT_EQUAL(c->rope_mode, HC_ROPE_NEOX);
    CU_ASSERT_EQUAL(c->ffn_act, HC_ACT_GELU_TANH);
    CU_ASSERT_TRUE(c->tied_output);
    CU_ASSERT_DOUBLE_EQUAL(c->embd_scale, 8.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(c->attn_scale, 1.0 / sqrt(24.0), 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(c->rope_theta, 1e6, 1);
    CU_ASSERT_DOUBLE_EQUAL(c->rope_theta_swa, 1e4, 1e-3);
    CU_ASSERT_EQUAL(c->logit_softcap, 0.0f);
    int want[4] = { 1, 1, 0, 1 }; /* period 3: layer 2 global */
    for (int l = 0; l < 4; l++) {
        CU_ASSERT_EQUAL(m->layers[l].swa, want[l]);
        CU_ASSERT_PTR_NOT_NULL(m->layers[l].attn_post_norm.data);
        CU_ASSERT_PTR_NOT_NULL(m->layers[l].ffn_post_norm.data);
        CU_ASSERT_EQUAL(m->layers[l].attn_q_norm.ne[0], 24);
    }
    hc_model_free(m);
    /* the pattern as one bool per layer (llama.cpp's other form) */
    const uint8_t local[4] = { 0, 1, 1, 0 };
    char bools[600];
    snprintf(bools, sizeof bools, "%s", hc_test_tmp("bools.gguf"));
    copy_with_key(model_path, bools, "gemma3.attention.sliding_window_pattern", 0, local, 4);
    HC_ASSERT_OK(hc_model_load(bools, &lo, &m));
    for (int l = 0; l < 4; l++) CU_ASSERT_EQUAL(m->layers[l].swa, local[l]);
    hc_model_free(m);
    copy_with_key(model_path, bools, "gemma3.attention.sliding_window_pattern", 0, local, 3);
    m = NULL;
    CU_ASSERT_EQUAL(hc_model_load(bools, &lo, &m), HC_E_FORMAT); /* 3 entries for 4 layers */
    CU_ASSERT_PTR_NULL(m);
}

/* Windows of 5 with batches of 4: local layers keep 5-1+4 = 8 rows and move them every few
 * positions; global layers keep all 64. */
static void test_matches_reference_window(void)
{
    synth_gemma3(5, 3, HC_F32, 24, "w5.gguf");
    compare_with_reference(model_path, 24, 16, 64, 4, HC_KV_F32, 2e-4);
    compare_with_reference(model_path, 30, 10, 64, 16, HC_KV_F32, 2e-4);  /* batches crossing the window */
    compare_with_reference(model_path, 1, 40, 64, 8, HC_KV_F32, 2e-4);    /* decode only */
}

/* The window larger than the context: no moving, every layer as global ones, the default period 6. */
static void test_matches_reference_wide_window(void)
{
    synth_gemma3(512, 0, HC_F32, 24, "w512.gguf");
    compare_with_reference(model_path, 12, 6, 32, 8, HC_KV_F32, 2e-4);
}

/* An f16 KV cache and q8_0 weights: close to the reference (its f32 values), not equal. */
static void test_f16_cache_and_q8_0(void)
{
    synth_gemma3(6, 2, HC_F32, 24, "f16kv.gguf");
    compare_with_reference(model_path, 20, 12, 48, 8, HC_KV_F16, 0.05);
    synth_gemma3(6, 2, HC_Q8_0, 32, "q8.gguf");
    compare_with_reference(model_path, 20, 12, 48, 8, HC_KV_F32, 0.5);
}

/* Decodes tokens one by one from position 0 and returns the last logits (n_vocab floats, malloc'd). */
static float *last_logits(runner *rn, const int32_t *t, int n)
{
    hc_context_reset(rn->c);
    const float *logits = NULL;
    for (int i = 0; i < n; i++) HC_ASSERT_OK(hc_decode(rn->c, &t[i], 1, 0, &logits));
    int V = rn->m->cfg.n_vocab;
    float *out = malloc((size_t)V * sizeof *out);
    memcpy(out, logits, (size_t)V * sizeof *out);
    return out;
}

/* Every layer local (period larger than the layers): a token sees at most n_layer * (W - 1)
 * positions back, so changing the first token leaves the logits of position 4 * 3 + 1 bit for bit
 * the same and changes those of position 4 * 3. The local layers keep W - 1 + n_batch rows. */
static void test_window_honoured(void)
{
    synth_gemma3(4, 100, HC_F32, 24, "all_local.gguf");
    runner rn;
    runner_open(&rn, model_path, 64, 8, HC_KV_F32);
    for (int l = 0; l < 4; l++) {
        CU_ASSERT_EQUAL(rn.m->layers[l].swa, 1);
        CU_ASSERT_EQUAL(rn.c->kv_rows[l], 4 - 1 + 8);
    }
    int32_t a[20], b[20];
    random_tokens(a, 20, 300, 3);
    memcpy(b, a, sizeof a);
    b[0] = (a[0] + 1) % 300;
    int reach = 4 * (4 - 1); /* positions 0 .. reach influence position reach */
    float *la = last_logits(&rn, a, reach + 1), *lb = last_logits(&rn, b, reach + 1);
    double diff = 0;
    for (int i = 0; i < 300; i++) diff = fmax(diff, fabs((double)la[i] - lb[i]));
    CU_ASSERT(diff > 1e-4); /* inside the reach: the first token matters */
    free(la), free(lb);
    la = last_logits(&rn, a, reach + 2);
    lb = last_logits(&rn, b, reach + 2);
    CU_ASSERT_EQUAL(memcmp(la, lb, 300 * sizeof *la), 0);
    free(la), free(lb);
    /* and past the rows the local layers keep (11): the cache has moved and still agrees */
    la = last_logits(&rn, a, 20);
    lb = last_logits(&rn, b, 20);
    CU_ASSERT_EQUAL(memcmp(la, lb, 300 * sizeof *la), 0);
    CU_ASSERT(rn.c->kv_first[0] > 0);
    free(la), free(lb);
    runner_close(&rn);
}

/* Going back is allowed while the local layers still hold the window of the new position. */
static void test_truncate(void)
{
    synth_gemma3(4, 2, HC_F32, 24, "trunc.gguf");
    runner rn;
    runner_open(&rn, model_path, 64, 4, HC_KV_F32);
    CU_ASSERT_EQUAL(rn.c->kv_rows[0], 4 - 1 + 4);
    CU_ASSERT_EQUAL(rn.c->kv_rows[1], 64); /* layer 1 is global */
    int32_t t[40];
    random_tokens(t, 40, 300, 5);
    const float *logits;
    HC_ASSERT_OK(hc_decode(rn.c, t, 6, 0, &logits));
    CU_ASSERT_EQUAL(rn.c->kv_first[0], 0);
    HC_ASSERT_OK(hc_context_truncate(rn.c, 3)); /* nothing moved yet */
    HC_ASSERT_OK(hc_decode(rn.c, t + 3, 3, 0, &logits));
    float first[300], last[300];
    memcpy(first, logits, sizeof first); /* position 5 */
    HC_ASSERT_OK(hc_decode(rn.c, t + 6, 34, 0, &logits)); /* 40 positions: the local rows (7) moved */
    memcpy(last, logits, sizeof last);    /* position 39 */
    int kept_from = rn.c->kv_first[0];
    CU_ASSERT(kept_from > 0);
    CU_ASSERT_EQUAL(hc_context_truncate(rn.c, kept_from + 1), HC_E_STATE); /* its window starts before kept_from */
    CU_ASSERT(strstr(hc_last_error(), "sliding window") != NULL);
    HC_ASSERT_OK(hc_context_truncate(rn.c, 38)); /* its window (35..38) is still held */
    HC_ASSERT_OK(hc_decode(rn.c, t + 38, 2, 0, &logits));
    for (int i = 0; i < 300; i++) CU_ASSERT_DOUBLE_EQUAL(last[i], logits[i], 1e-4);
    hc_context_reset(rn.c); /* from scratch: the logits of the first time (other batches: rounding) */
    CU_ASSERT_EQUAL(rn.c->kv_first[0], 0);
    HC_ASSERT_OK(hc_decode(rn.c, t, 6, 0, &logits));
    for (int i = 0; i < 300; i++) CU_ASSERT_DOUBLE_EQUAL(first[i], logits[i], 1e-4);
    runner_close(&rn);
}

/* GeGLU: the AVX2 kernel against the plain reference (every tail length, in place, large |g|). */
static void test_geglu_kernels(void)
{
    enum { N = 300 };
    float g[N], u[N], want[N], got[N];
    uint64_t s = 9;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        g[i] = ((float)(s >> 40) / (1 << 24) - 0.5f) * 12.0f;
        u[i] = ((float)((s >> 16) & 0xFFFFFF) / (1 << 24) - 0.5f) * 4.0f;
    }
    g[0] = -60.0f, g[1] = 60.0f, g[2] = 0.0f, g[3] = -1e-20f;
    hc_ref_geglu(g, u, want, N);
    CU_ASSERT_DOUBLE_EQUAL(want[0], 0.0, 1e-30);
    CU_ASSERT_DOUBLE_EQUAL(want[1], 60.0 * u[1], 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(want[5], 0.5 * g[5] * (1 + tanh(0.7978845608 * (g[5] + 0.044715 * g[5] * g[5] * g[5]))) * u[5], 1e-5);
    if (!hc_cpu_has_avx2()) {
        printf("SKIP avx2 geglu: this CPU has no AVX2+FMA+F16C\n");
        return;
    }
    for (int n = 0; n <= N; n += n < 20 ? 1 : 37) {
        for (int i = 0; i < N; i++) got[i] = 1234.0f;
        hc_geglu_avx2(g, u, got, (size_t)n);
        double worst = 0;
        /* relative to |g u|: for g << 0 the reference's 1 + tanh cancels, the e^x form does not */
        for (int i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - want[i]) / (1e-6 + fabs((double)g[i] * u[i])));
        if (worst >= 1e-6) fprintf(stderr, "  geglu n=%d: largest error %.3g of |g u|\n", n, worst);
        CU_ASSERT(worst < 1e-6);
        if (n < N) CU_ASSERT_EQUAL(got[n], 1234.0f);
    }
    memcpy(got, g, sizeof got); /* in place over gate */
    hc_cpu_geglu(got, u, got, N);
    for (int i = 0; i < N; i++) CU_ASSERT_DOUBLE_EQUAL(got[i], want[i], 1e-6 * (1e-6 + fabs((double)g[i] * u[i])));
}

/* gemma3.final_logit_softcapping c: logits = c tanh(logits / c); gemma3.attention.scale replaces
 * 1/sqrt(head_dim) (a scale of 0.5 / sqrt(24) is not the default: the logits change). */
static void test_softcap_and_scale_keys(void)
{
    synth_gemma3(5, 3, HC_F32, 24, "plain.gguf");
    char plain[600], capped[600], scaled[600];
    snprintf(plain, sizeof plain, "%s", model_path);
    snprintf(capped, sizeof capped, "%s", hc_test_tmp("capped.gguf"));
    snprintf(scaled, sizeof scaled, "%s", hc_test_tmp("scaled.gguf"));
    copy_with_key(plain, capped, "gemma3.final_logit_softcapping", 3.0f, NULL, 0);
    copy_with_key(plain, scaled, "gemma3.attention.scale", 0.5f / sqrtf(24.0f), NULL, 0);
    int32_t t[12];
    random_tokens(t, 12, 300, 13);
    float out[3][300];
    const char *paths[3] = { plain, capped, scaled };
    for (int k = 0; k < 3; k++) {
        runner rn;
        runner_open(&rn, paths[k], 32, 4, HC_KV_F32);
        const float *lg;
        HC_ASSERT_OK(hc_decode(rn.c, t, 12, 0, &lg));
        memcpy(out[k], lg, sizeof out[k]);
        if (k == 1) CU_ASSERT_DOUBLE_EQUAL(rn.m->cfg.logit_softcap, 3.0, 0);
        runner_close(&rn);
    }
    double changed = 0;
    for (int i = 0; i < 300; i++) {
        CU_ASSERT_DOUBLE_EQUAL(out[1][i], 3.0 * tanh(out[0][i] / 3.0), 1e-5);
        changed = fmax(changed, fabs((double)out[2][i] - out[0][i]));
    }
    CU_ASSERT(changed > 1e-3);
}

/* ---------------- compression ---------------- */

/* Logits of 24 tokens (batches of 4: the window-5 layers' rows move) with an optional scheduler
 * driving the branches; the backbone dequantized to f32 so its matmuls add no error of their own. */
static float *compressed_logits(const char *path, const hc_registry *reg, const char *sched)
{
    hc_device *dev;
    hc_device_config dc = { .n_threads = 1 };
    HC_ASSERT_OK(hc_cpu_device_create(&dc, &dev));
    hc_model *m;
    hc_model_load_opts lo = { .registry = reg, .to_f32 = 1 };
    HC_ASSERT_OK(hc_model_load(path, &lo, &m));
    hc_context_params cp = { .n_ctx = 64, .n_batch = 4, .host_threads = 1, .sched_name = sched, .registry = reg };
    if (sched) {
        cp.comp = hc_registry_find(reg, HC_PLUGIN_COMP, "host")->desc->ops;
        cp.sched = hc_registry_find(reg, HC_PLUGIN_SCHED, sched)->desc->ops;
    }
    hc_context *c;
    HC_ASSERT_OK(hc_context_create(m, dev, &cp, &c));
    int32_t t[24];
    random_tokens(t, 24, 300, 11);
    float *out = malloc((size_t)24 * 300 * sizeof *out);
    const float *lg;
    for (int t0 = 0; t0 < 24; t0 += 4) {
        HC_ASSERT_OK(hc_decode(c, t + t0, 4, 1, &lg));
        memcpy(out + (size_t)t0 * 300, lg, (size_t)4 * 300 * sizeof *lg);
    }
    hc_context_free(c);
    hc_model_free(m);
    dev->ops->destroy(dev);
    return out;
}

/* W3 + full-rank f32 branches reproduce every layer's residual: with its branches the compressed
 * model gives the source's logits (serial and async schedulers), without them it does not; the file
 * keeps gemma3's keys, post norms and tied head. */
static void test_compress_full_rank_restores(void)
{
    hc_registry *reg;
    HC_ASSERT_OK(hc_registry_create(&reg));
    HC_ASSERT_OK(hc_registry_scan(reg, HC_PLUGIN_BUILD_DIR));
    if (!hc_registry_find(reg, HC_PLUGIN_QUANT, "rtn") || !hc_registry_find(reg, HC_PLUGIN_COMP, "host")) {
        printf("\n  SKIP compress: the rtn and host plugins are not built in %s\n", HC_PLUGIN_BUILD_DIR);
        hc_registry_free(reg);
        return;
    }
    synth_gemma3(5, 3, HC_F32, 32, "csrc.gguf");
    char src[600], out[600];
    snprintf(src, sizeof src, "%s", model_path);
    snprintf(out, sizeof out, "%s", hc_test_tmp("cw3.gguf"));
    hc_compress_opts co = { .input = src, .output = out, .quant = "rtn:bits=3,group=32", .rank = 96, .branch_dtype = HC_F32,
                            .threads = 2, .registry = reg };
    hc_compress_report rep;
    HC_ASSERT_OK(hc_compress(&co, &rep));
    CU_ASSERT_EQUAL(rep.n_linear, 4 * 7);
    CU_ASSERT_EQUAL(rep.n_branches, 4 * 7);
    hc_model *m;
    hc_model_load_opts lo = { .registry = reg };
    HC_ASSERT_OK(hc_model_load(out, &lo, &m));
    CU_ASSERT_STRING_EQUAL(m->cfg.arch, "gemma3");
    CU_ASSERT_EQUAL(m->cfg.n_swa, 5);
    CU_ASSERT_TRUE(m->cfg.tied_output);
    CU_ASSERT_EQUAL(m->layers[2].swa, 0);
    CU_ASSERT_PTR_NOT_NULL(m->layers[3].ffn_post_norm.data);
    CU_ASSERT_EQUAL(m->layers[0].proj[HC_PROJ_Q].dtype, HC_PACKED);
    hc_model_free(m);
    float *ref = compressed_logits(src, reg, NULL), *bare = compressed_logits(out, reg, NULL);
    double without = 0;
    for (int i = 0; i < 24 * 300; i++) without = fmax(without, fabs((double)ref[i] - bare[i]));
    CU_ASSERT(without > 1e-2);
    static const char *const scheds[2] = { "serial", "async" };
    for (int k = 0; k < 2; k++) {
        float *got = compressed_logits(out, reg, scheds[k]);
        double with = 0;
        for (int i = 0; i < 24 * 300; i++) with = fmax(with, fabs((double)ref[i] - got[i]));
        if (with > 2e-3) fprintf(stderr, "  %s: %.3g (without branches %.3g)\n", scheds[k], with, without);
        CU_ASSERT(with < 2e-3);
        free(got);
    }
    free(ref);
    free(bare);
    hc_registry_free(reg);
}

static void test_synth_refuses(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s", hc_test_tmp("refused.gguf"));
    hc_synth_opts o = { .arch = "llama", .output = path, .dim = 64, .n_layer = 1, .n_head = 2, .head_dim = 48, .type = HC_F32 };
    CU_ASSERT_EQUAL(hc_synth(&o), HC_E_ARG); /* --head-dim is gemma3's */
    o.head_dim = 0;
    o.n_swa = 8;
    CU_ASSERT_EQUAL(hc_synth(&o), HC_E_ARG); /* so is --window */
    o = (hc_synth_opts){ .arch = "gemma3", .output = path, .dim = 64, .n_layer = 1, .n_head = 2, .head_dim = 25, .type = HC_F32 };
    CU_ASSERT_EQUAL(hc_synth(&o), HC_E_ARG); /* odd head */
    o.head_dim = 24;
    o.n_expert = 4;
    CU_ASSERT_EQUAL(hc_synth(&o), HC_E_ARG); /* dense */
}

/* ---------------- the real Gemma 3 270M (models/, scripts/fetch_model.sh gemma3) ---------------- */

#define GEMMA_FILE HC_SOURCE_DIR "/models/gemma-3-270m-q4_k_m.gguf"

static int have_gemma(const char *test)
{
    struct stat sb;
    if (stat(GEMMA_FILE, &sb) == 0) return 1;
    printf("\n  SKIP %s: %s is absent (scripts/fetch_model.sh gemma3 downloads it)\n", test, GEMMA_FILE);
    return 0;
}

/* Its configuration, token ids as llama.cpp's llama-tokenize gives them (the whole WikiText-2 test
 * file was checked the same way: 295214 equal ids), and the greedy continuation llama.cpp produces. */
static void test_real_model(void)
{
    if (!have_gemma("real_model")) return;
    runner rn;
    runner_open(&rn, GEMMA_FILE, 128, 32, HC_KV_F32);
    const hc_model_config *c = &rn.m->cfg;
    CU_ASSERT_EQUAL(c->n_layer, 18);
    CU_ASSERT_EQUAL(c->dim, 640);
    CU_ASSERT_EQUAL(c->n_head, 4);
    CU_ASSERT_EQUAL(c->n_head_kv, 1);
    CU_ASSERT_EQUAL(c->head_dim, 256);
    CU_ASSERT_EQUAL(c->ffn_dim, 2048);
    CU_ASSERT_EQUAL(c->n_vocab, 262144);
    CU_ASSERT_EQUAL(c->n_swa, 512);
    CU_ASSERT_TRUE(c->tied_output);
    for (int l = 0; l < 18; l++) CU_ASSERT_EQUAL(rn.m->layers[l].swa, l % 6 != 5);
    hc_tokenizer *tok;
    HC_ASSERT_OK(hc_tokenizer_from_gguf(rn.m->gguf, &tok));
    static const struct { const char *text; int n; int32_t ids[16]; } cases[] = {
        { "Hello world, what is the capital of France?", 11, { 2, 9259, 1902, 236764, 1144, 563, 506, 5279, 529, 7001, 236881 } },
        { "  leading spaces and\ttabs\nnewlines", 9, { 2, 138, 26016, 9952, 532, 255968, 39218, 107, 208697 } },
        { "a\n\nb   c    d\n", 9, { 2, 236746, 108, 236763, 139, 236755, 140, 236753, 107 } },
        { "<start_of_turn>user\nHi<end_of_turn>", 6, { 2, 105, 2364, 107, 10979, 106 } },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int32_t *ids;
        int n;
        HC_ASSERT_OK(hc_tokenize(tok, cases[k].text, strlen(cases[k].text), 1, 1, &ids, &n));
        CU_ASSERT_EQUAL(n, cases[k].n);
        for (int i = 0; i < n && i < cases[k].n; i++) CU_ASSERT_EQUAL(ids[i], cases[k].ids[i]);
        free(ids);
    }
    /* greedy, as llama.cpp's llama-completion --temp 0 continues the same prompt: " Paris" */
    const char *prompt = "Question: What is the capital of France?\nAnswer:";
    int32_t *ids;
    int n;
    HC_ASSERT_OK(hc_tokenize(tok, prompt, strlen(prompt), 1, 0, &ids, &n));
    const float *logits;
    HC_ASSERT_OK(hc_decode(rn.c, ids, n, 0, &logits));
    int best = 0;
    for (int i = 1; i < c->n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    char piece[64] = { 0 };
    hc_token_to_piece(tok, best, 0, piece, sizeof piece - 1);
    CU_ASSERT_STRING_EQUAL(piece, " Paris");
    free(ids);
    hc_tokenizer_free(tok);
    runner_close(&rn);
}

int main(void)
{
    static const hc_test_case cases[] = {
        { "config from the gemma3 keys", test_config_from_keys },
        { "forward = naive reference, window 5 (rows moved, batches across windows)", test_matches_reference_window },
        { "forward = naive reference, window wider than the context", test_matches_reference_wide_window },
        { "f16 KV cache and q8_0 weights close to the reference", test_f16_cache_and_q8_0 },
        { "the sliding window is honoured (all-local model)", test_window_honoured },
        { "truncate within and past what the window layers keep", test_truncate },
        { "geglu: avx2 = reference", test_geglu_kernels },
        { "final logit soft-capping and attention scale from their keys", test_softcap_and_scale_keys },
        { "synth refuses gemma3-only options elsewhere", test_synth_refuses },
        { "compress: full-rank branches restore the source", test_compress_full_rank_restores },
        { "real Gemma 3 270M: config and tokens (skips when absent)", test_real_model },
        { NULL, NULL },
    };
    return hc_test_run("gemma3", cases);
}
