/* test_moe.c: mixture-of-experts and qwen3 models from `hcinfer synth`: the optimised forward pass
 * (batched expert grouping, decode) against a naive reference written here over the GGUF tensors,
 * the routing function, and synth's option checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "context.h"
#include "device_cpu.h"
#include "gguf.h"
#include "model_load.h"
#include "moe.h"
#include "synth.h"
#include "test_util.h"
#include "tokenizer.h"

/* ---------------- the naive reference: plain loops over the file's tensors ---------------- */

typedef struct ref_model {
    hc_gguf *g;
    char arch[32];
    int dim, n_layer, n_head, n_kv, hd, n_vocab, E, k, norm_topk, neox;
    float eps, theta;
    float **kc, **vc;        /* per layer [n_pos][kv_dim] */
} ref_model;

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

static void ref_rmsnorm(const float *x, const float *w, float *y, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float s = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * s * w[i];
}

/* y[o] = sum_i W[o][i] x[i] for W stored [in, out] (in contiguous) */
static void ref_matvec(const float *w, const float *x, float *y, int in, int out)
{
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += (double)w[(size_t)o * in + i] * x[i];
        y[o] = (float)s;
    }
}

static float ref_silu(float x) { return x / (1.0f + expf(-x)); }

static void ref_rope(float *v, int n_heads, const ref_model *r, int pos)
{
    for (int h = 0; h < n_heads; h++) {
        float *x = v + h * r->hd;
        for (int i = 0; i < r->hd / 2; i++) {
            double f = pos * pow(r->theta, -2.0 * i / r->hd);
            float c = (float)cos(f), s = (float)sin(f);
            int a = r->neox ? i : 2 * i, b = r->neox ? i + r->hd / 2 : 2 * i + 1;
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * c - x1 * s;
            x[b] = x0 * s + x1 * c;
        }
    }
}

/* y = down(silu(gate x) * up x) for weights [dim, f] / [f, dim] */
static void ref_ffn(const float *g, const float *u, const float *d, const float *x, float *y, int dim, int f)
{
    float *a = malloc((size_t)f * sizeof *a), *b = malloc((size_t)f * sizeof *b);
    ref_matvec(g, x, a, dim, f);
    ref_matvec(u, x, b, dim, f);
    for (int i = 0; i < f; i++) a[i] = ref_silu(a[i]) * b[i];
    ref_matvec(d, a, y, f, dim);
    free(a);
    free(b);
}

static void ref_open(ref_model *r, const char *path)
{
    memset(r, 0, sizeof *r);
    HC_ASSERT_OK(hc_gguf_open(path, &r->g));
    const char *arch;
    HC_ASSERT_OK(hc_gguf_get_str(r->g, "general.architecture", &arch));
    snprintf(r->arch, sizeof r->arch, "%s", arch);
    char key[128];
    uint32_t v;
#define U(suffix, field) snprintf(key, sizeof key, "%s." suffix, arch); HC_ASSERT_OK(hc_gguf_get_u32(r->g, key, &v)); r->field = (int)v;
    U("embedding_length", dim);
    U("block_count", n_layer);
    U("attention.head_count", n_head);
    U("attention.head_count_kv", n_kv);
    U("attention.key_length", hd);
    U("vocab_size", n_vocab);
    snprintf(key, sizeof key, "%s.expert_count", arch);
    if (hc_gguf_find(r->g, key)) {
        U("expert_count", E);
        U("expert_used_count", k);
    }
#undef U
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    HC_ASSERT_OK(hc_gguf_get_f32(r->g, key, &r->theta));
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    HC_ASSERT_OK(hc_gguf_get_f32(r->g, key, &r->eps));
    r->neox = strcmp(arch, "llama") != 0 && strcmp(arch, "olmoe") != 0;
    r->norm_topk = strcmp(arch, "qwen2moe") != 0 && strcmp(arch, "olmoe") != 0; /* llama.cpp: these do not renormalise */
    r->kc = calloc((size_t)r->n_layer, sizeof *r->kc);
    r->vc = calloc((size_t)r->n_layer, sizeof *r->vc);
    for (int l = 0; l < r->n_layer; l++) {
        r->kc[l] = malloc((size_t)64 * r->n_kv * r->hd * sizeof(float));
        r->vc[l] = malloc((size_t)64 * r->n_kv * r->hd * sizeof(float));
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

/* Logits of the token at position pos (positions must come in order from 0, at most 64). */
static void ref_forward(ref_model *r, int token, int pos, float *logits)
{
    int dim = r->dim, q_dim = r->n_head * r->hd, kv_dim = r->n_kv * r->hd;
    float *x = malloc((size_t)dim * sizeof *x), *xn = malloc((size_t)dim * sizeof *xn), *y = malloc((size_t)dim * sizeof *y);
    float *q = malloc((size_t)q_dim * sizeof *q), *att = malloc((size_t)q_dim * sizeof *att), *tmp = malloc((size_t)dim * sizeof *tmp);
    float *emb = ref_get(r, "token_embd.weight", 0);
    memcpy(x, emb + (size_t)token * dim, (size_t)dim * sizeof *x);
    free(emb);
    for (int l = 0; l < r->n_layer; l++) {
        float *w = ref_get(r, "blk.%d.attn_norm.weight", l);
        ref_rmsnorm(x, w, xn, dim, r->eps);
        free(w);
        float *k = r->kc[l] + (size_t)pos * kv_dim, *v = r->vc[l] + (size_t)pos * kv_dim;
        const char *pw[3] = { "blk.%d.attn_q.weight", "blk.%d.attn_k.weight", "blk.%d.attn_v.weight" };
        const char *pb[3] = { "blk.%d.attn_q.bias", "blk.%d.attn_k.bias", "blk.%d.attn_v.bias" };
        float *outs[3] = { q, k, v };
        int widths[3] = { q_dim, kv_dim, kv_dim };
        for (int p = 0; p < 3; p++) {
            w = ref_get(r, pw[p], l);
            ref_matvec(w, xn, outs[p], dim, widths[p]);
            free(w);
            float *b = ref_get(r, pb[p], l);
            for (int i = 0; b && i < widths[p]; i++) outs[p][i] += b[i];
            free(b);
        }
        float *qn = ref_get(r, "blk.%d.attn_q_norm.weight", l), *kn = ref_get(r, "blk.%d.attn_k_norm.weight", l);
        if (!strcmp(r->arch, "olmoe")) { /* over the whole q and k */
            if (qn) ref_rmsnorm(q, qn, q, r->n_head * r->hd, r->eps);
            if (kn) ref_rmsnorm(k, kn, k, r->n_kv * r->hd, r->eps);
        } else {
            for (int h = 0; qn && h < r->n_head; h++) ref_rmsnorm(q + h * r->hd, qn, q + h * r->hd, r->hd, r->eps);
            for (int h = 0; kn && h < r->n_kv; h++) ref_rmsnorm(k + h * r->hd, kn, k + h * r->hd, r->hd, r->eps);
        }
        free(qn);
        free(kn);
        ref_rope(q, r->n_head, r, pos);
        ref_rope(k, r->n_kv, r, pos);
        for (int h = 0; h < r->n_head; h++) {
            int kh = h / (r->n_head / r->n_kv);
            double *sc = malloc((size_t)(pos + 1) * sizeof *sc), mx = -1e300, sum = 0;
            for (int t = 0; t <= pos; t++) {
                double s = 0;
                for (int i = 0; i < r->hd; i++) s += (double)q[h * r->hd + i] * r->kc[l][(size_t)t * kv_dim + kh * r->hd + i];
                sc[t] = s / sqrt((double)r->hd);
                if (sc[t] > mx) mx = sc[t];
            }
            for (int t = 0; t <= pos; t++) sum += sc[t] = exp(sc[t] - mx);
            for (int i = 0; i < r->hd; i++) {
                double s = 0;
                for (int t = 0; t <= pos; t++) s += sc[t] / sum * r->vc[l][(size_t)t * kv_dim + kh * r->hd + i];
                att[h * r->hd + i] = (float)s;
            }
            free(sc);
        }
        w = ref_get(r, "blk.%d.attn_output.weight", l);
        ref_matvec(w, att, tmp, q_dim, dim);
        free(w);
        for (int i = 0; i < dim; i++) x[i] += tmp[i];
        w = ref_get(r, "blk.%d.ffn_norm.weight", l);
        ref_rmsnorm(x, w, xn, dim, r->eps);
        free(w);
        memset(y, 0, (size_t)dim * sizeof *y);
        if (!r->E) {
            float *g = ref_get(r, "blk.%d.ffn_gate.weight", l), *u = ref_get(r, "blk.%d.ffn_up.weight", l), *d = ref_get(r, "blk.%d.ffn_down.weight", l);
            char key[64];
            snprintf(key, sizeof key, "blk.%d.ffn_gate.weight", l);
            int f = (int)hc_gguf_find_tensor(r->g, key)->ne[1];
            ref_ffn(g, u, d, xn, y, dim, f);
            free(g), free(u), free(d);
        } else {
            /* router: softmax over all experts, the k most probable, weights renormalised (or not) */
            float *router = ref_get(r, "blk.%d.ffn_gate_inp.weight", l);
            double *p = malloc((size_t)r->E * sizeof *p), mx = -1e300, sum = 0;
            for (int e = 0; e < r->E; e++) {
                double s = 0;
                for (int i = 0; i < dim; i++) s += (double)router[(size_t)e * dim + i] * xn[i];
                p[e] = s;
                if (s > mx) mx = s;
            }
            for (int e = 0; e < r->E; e++) sum += p[e] = exp(p[e] - mx);
            for (int e = 0; e < r->E; e++) p[e] /= sum;
            int *chosen = malloc((size_t)r->k * sizeof *chosen);
            double wsum = 0;
            for (int j = 0; j < r->k; j++) {
                int best = -1;
                for (int e = 0; e < r->E; e++) {
                    int used = 0;
                    for (int q2 = 0; q2 < j; q2++) used |= chosen[q2] == e;
                    if (!used && (best < 0 || p[e] > p[best])) best = e;
                }
                chosen[j] = best;
                wsum += p[best];
            }
            float *g = ref_get(r, "blk.%d.ffn_gate_exps.weight", l), *u = ref_get(r, "blk.%d.ffn_up_exps.weight", l);
            float *d = ref_get(r, "blk.%d.ffn_down_exps.weight", l);
            char key[64];
            snprintf(key, sizeof key, "blk.%d.ffn_gate_exps.weight", l);
            int f = (int)hc_gguf_find_tensor(r->g, key)->ne[1];
            for (int j = 0; j < r->k; j++) {
                int e = chosen[j];
                double wt = p[e] / (r->norm_topk ? wsum : 1.0);
                size_t off = (size_t)e * dim * f;
                ref_ffn(g + off, u + off, d + off, xn, tmp, dim, f);
                for (int i = 0; i < dim; i++) y[i] += (float)(wt * tmp[i]);
            }
            free(g), free(u), free(d), free(router), free(p), free(chosen);
            float *sg = ref_get(r, "blk.%d.ffn_gate_inp_shexp.weight", l);
            if (sg) { /* the shared expert, scaled by sigmoid(w . xn) */
                float *gs = ref_get(r, "blk.%d.ffn_gate_shexp.weight", l), *us = ref_get(r, "blk.%d.ffn_up_shexp.weight", l);
                float *ds = ref_get(r, "blk.%d.ffn_down_shexp.weight", l);
                snprintf(key, sizeof key, "blk.%d.ffn_gate_shexp.weight", l);
                int fs = (int)hc_gguf_find_tensor(r->g, key)->ne[1];
                ref_ffn(gs, us, ds, xn, tmp, dim, fs);
                double s = 0;
                for (int i = 0; i < dim; i++) s += (double)sg[i] * xn[i];
                float gate = (float)(1.0 / (1.0 + exp(-s)));
                for (int i = 0; i < dim; i++) y[i] += gate * tmp[i];
                free(gs), free(us), free(ds), free(sg);
            }
        }
        for (int i = 0; i < dim; i++) x[i] += y[i];
    }
    float *w = ref_get(r, "output_norm.weight", 0);
    ref_rmsnorm(x, w, xn, dim, r->eps);
    free(w);
    w = ref_get(r, "output.weight", 0);
    ref_matvec(w, xn, logits, dim, r->n_vocab);
    free(w);
    free(x), free(xn), free(y), free(q), free(att), free(tmp);
}

/* ---------------- the comparison ---------------- */

static char model_path[600];

static void synth_to(const hc_synth_opts *o, const char *name)
{
    snprintf(model_path, sizeof model_path, "%s", hc_test_tmp(name));
    hc_synth_opts x = *o;
    x.output = model_path;
    HC_ASSERT_OK(hc_synth(&x));
}

/* n_prompt tokens in one batch (logits of every row), then n_gen decoded one by one: every
 * logit within tol of the reference. Returns the largest difference. */
static double compare_with_reference(const char *path, int n_prompt, int n_gen, int n_batch, double tol)
{
    hc_device *dev;
    hc_device_config dc = { .n_threads = 2 };
    HC_ASSERT_OK(hc_cpu_device_create(&dc, &dev));
    hc_model *m;
    hc_model_load_opts lo = { 0 };
    HC_ASSERT_OK(hc_model_load(path, &lo, &m));
    hc_context *c;
    hc_context_params cp = { .n_ctx = 64, .n_batch = n_batch };
    HC_ASSERT_OK(hc_context_create(m, dev, &cp, &c));
    ref_model r;
    ref_open(&r, path);
    int V = r.n_vocab, total = n_prompt + n_gen;
    int32_t *tokens = malloc((size_t)total * sizeof *tokens);
    float *ref = malloc((size_t)V * sizeof *ref);
    uint64_t s = 7;
    for (int i = 0; i < total; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((s >> 33) % (uint64_t)V);
    }
    double worst = 0;
    const float *logits;
    for (int t0 = 0; t0 < n_prompt; t0 += n_batch) { /* the prompt in batches: experts grouped per batch */
        int len = n_prompt - t0 < n_batch ? n_prompt - t0 : n_batch;
        HC_ASSERT_OK(hc_decode(c, tokens + t0, len, 1, &logits));
        for (int t = 0; t < len; t++) {
            ref_forward(&r, tokens[t0 + t], t0 + t, ref);
            for (int i = 0; i < V; i++) worst = fmax(worst, fabs((double)logits[(size_t)t * V + i] - ref[i]));
        }
    }
    for (int t = n_prompt; t < total; t++) {
        HC_ASSERT_OK(hc_decode(c, &tokens[t], 1, 0, &logits));
        ref_forward(&r, tokens[t], t, ref);
        for (int i = 0; i < V; i++) worst = fmax(worst, fabs((double)logits[i] - ref[i]));
    }
    if (worst > tol) fprintf(stderr, "  %s: largest logit difference %.3g (tolerance %.3g)\n", path, worst, tol);
    CU_ASSERT(worst <= tol);
    free(tokens);
    free(ref);
    ref_close(&r);
    hc_context_free(c);
    hc_model_free(m);
    dev->ops->destroy(dev);
    return worst;
}

/* A synthetic f32 MoE model of arch (dim 64, 2 layers, 4 heads) against the reference, with the
 * prompt in one batch and in batches of 4 (routing groups change between batches). */
static void moe_matches_reference(const char *arch, int n_head_kv, int n_expert, int expert_ffn, unsigned seed)
{
    hc_synth_opts o = { .arch = arch, .dim = 64, .n_layer = 2, .n_head = 4, .n_head_kv = n_head_kv, .n_expert = n_expert,
                        .n_expert_used = 2, .expert_ffn_dim = expert_ffn, .n_vocab = 300, .seed = seed, .type = HC_F32,
                        .norm_noise = 0.2f };
    char file[64];
    snprintf(file, sizeof file, "%s.gguf", arch);
    synth_to(&o, file);
    compare_with_reference(model_path, 9, 4, 16, 1e-4);
    compare_with_reference(model_path, 9, 2, 4, 1e-4);
}

static void test_qwen3moe_matches_reference(void) { moe_matches_reference("qwen3moe", 2, 4, 48, 11); }

/* OLMoE: llama's rope, q/k norms over the whole projections, top-k weights not renormalised. */
static void test_olmoe_matches_reference(void) { moe_matches_reference("olmoe", 4, 8, 32, 17); }

static void test_qwen2moe_matches_reference(void)
{
    hc_synth_opts o = { .arch = "qwen2moe", .dim = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 4, .n_expert = 4, .n_expert_used = 2,
                        .expert_ffn_dim = 32, .n_shared_expert = 2, .n_vocab = 300, .seed = 12, .type = HC_F32, .norm_noise = 0.2f };
    synth_to(&o, "qwen2moe.gguf");
    compare_with_reference(model_path, 8, 4, 16, 1e-4);
}

static void test_dense_and_mixtral_match_reference(void)
{
    hc_synth_opts q3 = { .arch = "qwen3", .dim = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .ffn_dim = 96, .n_vocab = 300, .seed = 13,
                         .type = HC_F32, .norm_noise = 0.2f };
    synth_to(&q3, "qwen3.gguf");
    compare_with_reference(model_path, 6, 3, 16, 1e-4);
    hc_synth_opts ll = { .arch = "llama", .dim = 64, .n_layer = 2, .n_head = 2, .ffn_dim = 96, .n_vocab = 300, .seed = 14, .type = HC_F32 };
    synth_to(&ll, "llama.gguf");
    compare_with_reference(model_path, 6, 3, 16, 1e-4);
    hc_synth_opts mx = { .arch = "llama", .dim = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .ffn_dim = 64, .n_expert = 8,
                         .n_expert_used = 3, .n_vocab = 300, .seed = 15, .type = HC_F32, .norm_noise = 0.1f };
    synth_to(&mx, "mixtral.gguf");
    compare_with_reference(model_path, 7, 3, 16, 1e-4);
}

static void test_f16_and_q8_0_run(void)
{
    /* f16 weights: the reference reads the same f16 values, the matmul converts them exactly */
    hc_synth_opts o = { .arch = "qwen3moe", .dim = 64, .n_layer = 2, .n_head = 4, .n_expert = 4, .n_expert_used = 2, .expert_ffn_dim = 32,
                        .n_vocab = 300, .seed = 16, .type = HC_F16 };
    synth_to(&o, "qwen3moe-f16.gguf");
    compare_with_reference(model_path, 5, 2, 16, 1e-3);
    /* q8_0: the cpu quantizes activations to 8 bits too, so only closeness */
    o.type = HC_Q8_0;
    synth_to(&o, "qwen3moe-q8.gguf");
    compare_with_reference(model_path, 5, 2, 16, 0.25);
}

static void test_model_facts(void)
{
    hc_synth_opts o = { .arch = "qwen2moe", .dim = 64, .n_layer = 3, .n_head = 4, .n_expert = 8, .n_expert_used = 2, .expert_ffn_dim = 32,
                        .n_vocab = 2000, .seed = 3, .type = HC_F32 };
    synth_to(&o, "facts.gguf");
    hc_model *m;
    hc_model_load_opts lo = { 0 };
    HC_ASSERT_OK(hc_model_load(model_path, &lo, &m));
    const hc_model_config *c = &m->cfg;
    CU_ASSERT_STRING_EQUAL(c->arch, "qwen2moe");
    CU_ASSERT_EQUAL(c->n_expert, 8);
    CU_ASSERT_EQUAL(c->n_expert_used, 2);
    CU_ASSERT_EQUAL(c->expert_ffn_dim, 32);
    CU_ASSERT_EQUAL(c->shexp_ffn_dim, 32);
    CU_ASSERT_EQUAL(c->norm_topk_prob, 0);
    CU_ASSERT_EQUAL(c->rope_mode, HC_ROPE_NEOX);
    const hc_layer *L = &m->layers[1];
    CU_ASSERT_PTR_NULL(L->proj[HC_PROJ_GATE].data);
    CU_ASSERT_PTR_NOT_NULL(L->proj[HC_PROJ_UP_SHEXP].data);
    CU_ASSERT_EQUAL(L->moe.exps[HC_EXP_DOWN].ne[0], 32);
    CU_ASSERT_EQUAL(L->moe.exps[HC_EXP_DOWN].ne[1], 64);
    CU_ASSERT_EQUAL(L->moe.exps[HC_EXP_DOWN].ne[2], 8);
    /* an expert's view is its contiguous slice */
    hc_tensor v = hc_moe_expert_view(&L->moe.exps[HC_EXP_UP], 5);
    CU_ASSERT_EQUAL(v.n_dims, 2);
    CU_ASSERT_EQUAL(v.nbytes, 64 * 32 * sizeof(float));
    CU_ASSERT_PTR_EQUAL(v.data, (char *)L->moe.exps[HC_EXP_UP].data + 5 * v.nbytes);
    /* bytes per token: k of E experts */
    size_t all = hc_model_backbone_bytes(m), per_token = hc_model_bytes_per_token(m);
    size_t experts = 0;
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < HC_EXP_COUNT; k++) experts += m->layers[l].moe.exps[k].nbytes;
    size_t emb = m->tok_embd.nbytes;
    CU_ASSERT_EQUAL(per_token, all - emb + emb / 2000 - experts + experts / 8 * 2);
    hc_model_free(m);
    /* the tokenizer of the file: byte fallback round trip */
    hc_gguf *g;
    HC_ASSERT_OK(hc_gguf_open(model_path, &g));
    hc_tokenizer *tok;
    HC_ASSERT_OK(hc_tokenizer_from_gguf(g, &tok));
    int32_t *ids;
    int n;
    const char *text = "the quick brown fox \xC3\xA9t\xC3\xA9";
    HC_ASSERT_OK(hc_tokenize(tok, text, strlen(text), 1, 0, &ids, &n));
    CU_ASSERT_EQUAL(ids[0], 1);
    char out[256] = { 0 };
    size_t len = 0;
    for (int i = 1; i < n; i++) len += (size_t)hc_token_to_piece(tok, ids[i], 0, out + len, sizeof out - len);
    CU_ASSERT_STRING_EQUAL(out, " the quick brown fox \xC3\xA9t\xC3\xA9");
    CU_ASSERT(n < (int)strlen(text)); /* pieces merged */
    free(ids);
    hc_tokenizer_free(tok);
    hc_gguf_close(g);
}

static void test_routing(void)
{
    float probs[6], w[3];
    int order[6], e[3];
    const float logits[6] = { 0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f };
    hc_moe_route_token(logits, 6, 3, 1, probs, order, e, w);
    CU_ASSERT_EQUAL(e[0], 1); /* a tie: the lower index first */
    CU_ASSERT_EQUAL(e[1], 3);
    CU_ASSERT_EQUAL(e[2], 4);
    CU_ASSERT_DOUBLE_EQUAL(w[0] + w[1] + w[2], 1.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(w[2] / w[0], exp(-1.0), 1e-6);
    hc_moe_route_token(logits, 6, 2, 0, probs, order, e, w);
    double z = 0;
    for (int i = 0; i < 6; i++) z += exp(logits[i]);
    CU_ASSERT_DOUBLE_EQUAL(w[0], exp(2.0) / z, 1e-6); /* not renormalised: the softmax over all */
    CU_ASSERT_DOUBLE_EQUAL(w[1], exp(2.0) / z, 1e-6);
}

static void test_synth_refuses_bad_options(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s", hc_test_tmp("refused.gguf"));
    const hc_synth_opts base = { .arch = "qwen3moe", .output = path, .dim = 64, .n_layer = 2, .n_head = 4, .n_expert = 4,
                                 .n_expert_used = 2, .expert_ffn_dim = 32, .n_vocab = 300, .type = HC_F32 };
    hc_synth_opts o = base;
    HC_ASSERT_OK(hc_synth_resolve(&o, &o));
    struct { const char *what; hc_synth_opts o; } bad[16];
    int n = 0;
#define BAD(desc, field, value) bad[n].what = desc, bad[n].o = base, bad[n].o.field = value, n++
    BAD("unknown arch", arch, "gpt2");
    BAD("no output", output, NULL);
    BAD("dim not a multiple of heads", dim, 66);
    BAD("zero layers", n_layer, 0);
    BAD("top-k above experts", n_expert_used, 5);
    BAD("moe arch without experts", n_expert, 0);
    BAD("vocabulary below the byte tokens", n_vocab, 100);
    BAD("kv heads not dividing heads", n_head_kv, 3);
    BAD("unsupported type", type, HC_Q4_0);
    BAD("shared experts on qwen3moe", n_shared_expert, 1);
    BAD("q8_0 with a width not a multiple of 32", type, HC_Q8_0);
    bad[n - 1].o.expert_ffn_dim = 40;
    BAD("odd head size", dim, 36);
    bad[n - 1].o.n_head = 4; /* head size 9 */
    BAD("experts on dense qwen3", arch, "qwen3");
#undef BAD
    for (int i = 0; i < n; i++) {
        hc_status st = hc_synth(&bad[i].o);
        if (st != HC_E_ARG) fprintf(stderr, "  %s: status %d (%s)\n", bad[i].what, (int)st, hc_last_error());
        CU_ASSERT_EQUAL(st, HC_E_ARG);
        CU_ASSERT(strlen(hc_last_error()) > 0);
        CU_ASSERT(access(path, F_OK) != 0); /* nothing written */
    }
}

static void test_loader_refuses_bad_moe_files(void)
{
    /* a qwen3moe file whose expert tensor has the wrong expert count */
    char path[600];
    snprintf(path, sizeof path, "%s", hc_test_tmp("bad_moe.gguf"));
    hc_synth_opts o = { .arch = "qwen3moe", .output = path, .dim = 64, .n_layer = 1, .n_head = 4, .n_expert = 4, .n_expert_used = 2,
                        .expert_ffn_dim = 32, .n_vocab = 300, .type = HC_F32 };
    HC_ASSERT_OK(hc_synth(&o));
    hc_gguf *g;
    HC_ASSERT_OK(hc_gguf_open(path, &g));
    hc_gguf_writer *w;
    HC_ASSERT_OK(hc_gguf_writer_create(&w));
    HC_ASSERT_OK(hc_gguf_copy_kv(w, g, NULL, NULL));
    HC_ASSERT_OK(hc_gguf_set_u32(w, "qwen3moe.expert_used_count", 5));
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        HC_ASSERT_OK(hc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
    }
    char bad[600];
    snprintf(bad, sizeof bad, "%s", hc_test_tmp("bad_moe2.gguf"));
    HC_ASSERT_OK(hc_gguf_writer_write(w, bad));
    hc_gguf_writer_free(w);
    hc_gguf_close(g);
    hc_model *m = NULL;
    hc_model_load_opts lo = { 0 };
    CU_ASSERT_EQUAL(hc_model_load(bad, &lo, &m), HC_E_FORMAT);
    CU_ASSERT(strstr(hc_last_error(), "expert_used_count") != NULL);
    CU_ASSERT_PTR_NULL(m);
}

int main(void)
{
    static const hc_test_case cases[] = {
        { "routing: softmax, top-k, ties, renormalisation", test_routing },
        { "qwen3moe forward = naive reference (batched and decode)", test_qwen3moe_matches_reference },
        { "qwen2moe (shared expert, biases) = naive reference", test_qwen2moe_matches_reference },
        { "olmoe (whole-projection q/k norms, no renormalisation) = naive reference", test_olmoe_matches_reference },
        { "qwen3, llama and mixtral-style llama = naive reference", test_dense_and_mixtral_match_reference },
        { "f16 and q8_0 experts run close to the reference", test_f16_and_q8_0_run },
        { "model facts: config, views, bytes per token, vocabulary", test_model_facts },
        { "synth refuses bad options", test_synth_refuses_bad_options },
        { "loader refuses a bad MoE header", test_loader_refuses_bad_moe_files },
        { NULL, NULL },
    };
    return hc_test_run("moe", cases);
}
