/* test_stream_compress.c: the streaming compressor against the former in-memory pipeline, rebuilt
 * here from the library's pieces (one forward pass of the whole f32 model, every layer's moments,
 * then every layer factored), on small synthetic dense and MoE models; and a full disk (the file
 * size limit) refused before the work with no file left. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "calib.h"
#include "calib_stats.h"
#include "compress.h"
#include "compress_sens.h"
#include "context.h"
#include "device_cpu.h"
#include "gguf.h"
#include "lowrank.h"
#include "model_load.h"
#include "moe.h"
#include "registry.h"
#include "synth.h"
#include "test_util.h"
#include "tokenizer.h"

static hc_registry *reg;
static char calib_path[600];

static void write_calib_text(void);

/* ---- the former pipeline: the whole model's calibration at once ---- */

typedef struct whole {
    int n_layer, n_expert;
    hc_calib_input *in;     /* [n_layer][HC_IN_CLASSES] */
    hc_calib_input *exp;    /* [n_layer][n_expert][2] */
    int64_t *routed;        /* [n_layer][n_expert] */
    int64_t tokens;
} whole;

static hc_status observe(void *arg, const hc_stage *s, const float *x, int n, int width)
{
    whole *w = arg;
    if (s->layer < 0) return HC_OK;
    if (s->proj != HC_PROJ_Q && s->proj != HC_PROJ_O && s->proj != HC_PROJ_GATE && s->proj != HC_PROJ_DOWN &&
        s->proj != HC_PROJ_GATE_SHEXP && s->proj != HC_PROJ_DOWN_SHEXP)
        return HC_OK;
    hc_calib_input *in = &w->in[s->layer * HC_IN_CLASSES + hc_proj_input_class(s->proj)];
    in->width = width;
    return hc_calib_add(in, x, n);
}

static hc_status observe_expert(void *arg, int layer, int proj, int e, const float *x, int n, int width)
{
    whole *w = arg;
    hc_calib_input *in = &w->exp[((size_t)layer * w->n_expert + e) * 2 + (proj == HC_PROJ_DOWN)];
    in->width = width;
    if (proj == HC_PROJ_GATE) w->routed[layer * w->n_expert + e] += n;
    return hc_calib_add(in, x, n);
}

/* One pass of the f32 source over the calibration tokens, as the former compressor ran it (every
 * row to the head, a sequence per batch), keeping every layer's inputs at once. */
static void whole_calibrate(hc_model *m, const int32_t *ids, int n, int seq, whole *w)
{
    w->n_layer = m->cfg.n_layer;
    w->n_expert = m->cfg.n_expert;
    w->in = calloc((size_t)w->n_layer * HC_IN_CLASSES, sizeof *w->in);
    w->exp = calloc((size_t)w->n_layer * (w->n_expert + 1) * 2, sizeof *w->exp);
    w->routed = calloc((size_t)w->n_layer * (w->n_expert + 1), sizeof *w->routed);
    for (int i = 0; i < w->n_layer * w->n_expert * 2; i++) w->exp[i].width = i % 2 ? m->cfg.expert_ffn_dim : m->cfg.dim;
    hc_device *dev;
    hc_context *ctx;
    hc_device_config dc = { .n_threads = 2 };
    hc_context_params cp = { .n_ctx = seq, .n_batch = seq };
    HC_ASSERT_OK(hc_cpu_device_create(&dc, &dev));
    HC_ASSERT_OK(hc_context_create(m, dev, &cp, &ctx));
    ctx->observer = observe;
    ctx->observer_ctx = w;
    if (ctx->moe) {
        ctx->moe->observer = observe_expert;
        ctx->moe->observer_ctx = w;
    }
    const float *logits;
    for (int done = 0; done + 1 < n; done += seq) {
        int len = n - done < seq ? n - done : seq;
        hc_context_reset(ctx);
        HC_ASSERT_OK(hc_decode(ctx, ids + done, len, 1, &logits));
        w->tokens += len;
    }
    hc_context_free(ctx);
    m->device = NULL;
    dev->ops->destroy(dev);
}

static void whole_free(whole *w)
{
    for (int i = 0; i < w->n_layer * HC_IN_CLASSES; i++) {
        free(w->in[i].rows);
        free(w->in[i].seg);
    }
    for (int i = 0; i < w->n_layer * w->n_expert * 2; i++) {
        free(w->exp[i].rows);
        free(w->exp[i].seg);
    }
    free(w->in);
    free(w->exp);
    free(w->routed);
}

/* ---- the comparison ---- */

/* A branch tensor of the file in f32 (NULL when absent). */
static float *tensor_f32(const hc_gguf *g, const char *base, const char *suffix, int64_t *ne0, int64_t *ne1)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", base, suffix);
    const hc_gguf_tensor *t = hc_gguf_find_tensor(g, name);
    if (!t) return NULL;
    int64_t n = t->ne[0] * t->ne[1];
    float *f = malloc((size_t)n * sizeof *f);
    hc_dequantize_row((hc_dtype)t->type, t->data, f, n);
    *ne0 = t->ne[0];
    *ne1 = t->ne[1];
    return f;
}

typedef struct tally {
    int jobs, packed_equal;
    double sigma, product, gains;  /* the largest relative differences */
    double removed;                /* of the error the written rank removes (the prefix's gains) */
} tally;

/* One linear layer: the former factorization (its input's moment, Cholesky whitening, the job's
 * seed) against the file's packed bytes, spectrum, branch product B_r A_r and gains. */
static void compare_job(const hc_gguf *g, const hc_compress_opts *o, const char *name, const float *w, int64_t in, int64_t out,
                        const char *packed_name, size_t packed_off, const hc_calib_input *ci, int job, tally *t)
{
    hc_quant_format *fmt;
    HC_ASSERT_OK(hc_quant_format_create(reg, o->quant, &fmt));
    size_t pb = fmt->ops->packed_bytes(fmt->params, out, in);
    char *packed = malloc(pb);
    float *deq = malloc((size_t)(in * out) * sizeof *deq);
    hc_input_stats s;
    HC_ASSERT_OK(hc_input_stats_build(ci, HC_WHITEN_FULL, 1, 2, &s)); /* the moment, as before */
    hc_quant_calib qc = { .hessian = s.h, .x2_mean = s.x2 };
    HC_ASSERT_OK(fmt->ops->quantize(fmt->params, w, out, in, &qc, packed));
    const hc_gguf_tensor *pt = hc_gguf_find_tensor(g, packed_name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pt);
    t->packed_equal += !memcmp((const char *)pt->data + packed_off, packed, pb);
    fmt->ops->dequantize_rows(fmt->params, packed, in, out, 0, out, deq);
    for (int64_t i = 0; i < in * out; i++) deq[i] = w[i] - deq[i];
    char key[300], base[256];
    snprintf(key, sizeof key, "hc.sens.%s", name);
    const void *gain_file;
    uint64_t n_dirs = 0;
    HC_ASSERT_OK(hc_gguf_get_arr(g, key, HC_GGUF_FLOAT32, &gain_file, &n_dirs));
    hc_lowrank lr;
    hc_lowrank_opts lo = { .rank = (int)n_dirs, .whiten = &s.whiten, .seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)job };
    HC_ASSERT_OK(hc_lowrank_factor(deq, out, in, &lo, &lr));
    float *gain = malloc(n_dirs * sizeof *gain);
    double total;
    HC_ASSERT_OK(hc_compress_step_gains(deq, &lr, s.h, gain, &total));
    snprintf(base, sizeof base, "%.*s", (int)(strlen(name) - 7), name);
    int64_t a0, a1, b0, b1, s0, s1;
    float *fa = tensor_f32(g, base, "lora_a", &a0, &a1), *fb = tensor_f32(g, base, "lora_b", &b0, &b1);
    float *fs = tensor_f32(g, base, "lora_s", &s0, &s1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fs);
    int r = (int)s0;
    double gsum = 0, gdiff = 0;
    for (int k = 0; k < (int)n_dirs; k++) {
        float gf;
        memcpy(&gf, (const char *)gain_file + 4 * k, 4);
        gsum += fabs(gain[k]);
        gdiff += fabs(gf - gain[k]);
    }
    t->gains = fmax(t->gains, gdiff / gsum);
    double rf = 0, rr = 0;
    for (int k = 0; k < (int)s0; k++) {
        float gf;
        memcpy(&gf, (const char *)gain_file + 4 * k, 4);
        rf += gf;
        rr += gain[k];
    }
    t->removed = fmax(t->removed, fabs(rf - rr) / rr);
    for (int k = 0; k < r; k++) t->sigma = fmax(t->sigma, fabs(fs[k] - lr.sigma[k]) / lr.sigma[0]);
    /* B_r A_r: the file's (stored in f16) against the former's */
    double num = 0, den = 0;
    for (int64_t i = 0; i < out; i++)
        for (int64_t j = 0; j < in; j++) {
            double pf = 0, pr = 0;
            for (int k = 0; k < r; k++) {
                pf += (double)fb[k * out + i] * fa[k * in + j];
                pr += (double)lr.b[i * lr.rank + k] * lr.a[k * in + j];
            }
            num += (pf - pr) * (pf - pr);
            den += pr * pr;
        }
    t->product = fmax(t->product, sqrt(num / den));
    t->jobs++;
    free(fa);
    free(fb);
    free(fs);
    free(gain);
    hc_lowrank_free(&lr);
    hc_input_stats_free(&s);
    free(packed);
    free(deq);
    hc_quant_format_free(fmt);
}

/* Compresses `src` with o (streaming) and holds the file against the former pipeline. */
static void check_model(const char *src, const char *out, int calib_tokens, int seq, tally *t)
{
    write_calib_text();
    hc_compress_opts o = { .input = src, .output = out, .quant = "rtn:bits=3,group=32", .budget = 20, .branch_dtype = HC_F16,
                           .threads = 2, .registry = reg, .calib = calib_path, .calib_tokens = calib_tokens, .calib_seq = seq,
                           .whitening = HC_WHITEN_FULL, .whitening_given = 1 };
    hc_compress_report rep;
    HC_ASSERT_OK(hc_compress(&o, &rep));
    /* the tokens, as the compressor read them */
    hc_model *m;
    hc_model_load_opts lo = { .to_f32 = 1 };
    HC_ASSERT_OK(hc_model_load(src, &lo, &m));
    hc_tokenizer *tok;
    HC_ASSERT_OK(hc_tokenizer_from_gguf(m->gguf, &tok));
    size_t len;
    char *text = hc_test_read_file(calib_path, &len);
    int32_t *ids;
    int n;
    HC_ASSERT_OK(hc_tokenize(tok, text, len, 1, 0, &ids, &n));
    CU_ASSERT_FATAL(n >= calib_tokens);
    n = calib_tokens;
    for (int i = 0; i < n; i += seq) ids[i] = hc_tokenizer_bos(tok);
    whole w = { 0 };
    whole_calibrate(m, ids, n, seq, &w);
    CU_ASSERT_EQUAL(rep.calib_tokens, w.tokens);
    hc_gguf *g;
    HC_ASSERT_OK(hc_gguf_open(out, &g));
    int job = 0;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int p = 0; p < HC_PROJ_COUNT; p++) {
            hc_tensor *wt = &m->layers[l].proj[p];
            if (!wt->data) continue;
            compare_job(g, &o, wt->name, wt->data, wt->ne[0], wt->ne[1], wt->name, 0, &w.in[l * HC_IN_CLASSES + hc_proj_input_class(p)],
                        job++, t);
        }
    for (int l = 0; l < m->cfg.n_layer && m->cfg.n_expert; l++)
        for (int k = 0; k < HC_EXP_COUNT; k++) {
            const hc_tensor *x = &m->layers[l].moe.exps[k];
            int64_t in = x->ne[0], outw = x->ne[1];
            char key[200];
            snprintf(key, sizeof key, "hc.tensor.%s.routing_frequency", x->name);
            const void *freq;
            uint64_t nf;
            HC_ASSERT_OK(hc_gguf_get_arr(g, key, HC_GGUF_FLOAT32, &freq, &nf));
            for (int e = 0; e < m->cfg.n_expert; e++) {
                char name[200];
                snprintf(name, sizeof name, "%.*s.e%d.weight", (int)(strlen(x->name) - 7), x->name, e);
                float f;
                memcpy(&f, (const char *)freq + 4 * e, 4);
                CU_ASSERT_DOUBLE_EQUAL(f, (double)w.routed[l * w.n_expert + e] / (double)w.tokens, 1e-6);
                hc_quant_format *fmt;
                HC_ASSERT_OK(hc_quant_format_create(reg, o.quant, &fmt));
                size_t pb = fmt->ops->packed_bytes(fmt->params, outw, in);
                hc_quant_format_free(fmt);
                compare_job(g, &o, name, (const float *)x->data + (size_t)e * in * outw, in, outw, x->name, (size_t)e * pb,
                            &w.exp[((size_t)l * w.n_expert + e) * 2 + (k == HC_EXP_DOWN)], job++, t);
            }
        }
    hc_gguf_close(g);
    whole_free(&w);
    free(ids);
    free(text);
    hc_tokenizer_free(tok);
    hc_model_free(m);
}

static void write_calib_text(void)
{
    if (calib_path[0]) return;
    snprintf(calib_path, sizeof calib_path, "%s", hc_test_tmp("calib.txt"));
    FILE *f = fopen(calib_path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 400; i++)
        fprintf(f, "the quick brown fox %d jumps over the lazy dog; a stitch in time saves nine, they said at %d. ", i, 7 * i % 13);
    fclose(f);
}

static void report(const char *what, const tally *t)
{
    printf("\n  %s: %d layers, packed bytes equal in %d; largest differences: singular values %.2g (of the largest), "
           "B A %.2g, gains %.2g, error removed %.2g", what, t->jobs, t->packed_equal, t->sigma, t->product, t->gains, t->removed);
}

/* Enough calibration rows for every input's moment (the moment path): the same numbers up to float
 * reordering (and f16 storage of the factors: 1e-3 relative). */
static void test_dense_equals_in_memory(void)
{
    char src[600], out[600];
    snprintf(src, sizeof src, "%s", hc_test_tmp("dense.gguf"));
    snprintf(out, sizeof out, "%s", hc_test_tmp("dense.hc.gguf"));
    hc_synth_opts so = { .arch = "llama", .output = src, .dim = 128, .n_layer = 3, .n_head = 4, .n_head_kv = 2, .ffn_dim = 256,
                         .n_vocab = 320, .seed = 5, .type = HC_F16, .norm_noise = 0.1f };
    HC_ASSERT_OK(hc_synth(&so));
    tally t = { 0 };
    check_model(src, out, 768, 128, &t);
    report("dense, 768 tokens", &t);
    CU_ASSERT_EQUAL(t.packed_equal, t.jobs);
    CU_ASSERT(t.sigma < 1e-5 && t.gains < 1e-4 && t.removed < 1e-5 && t.product < 2e-3);
}

static void test_moe_equals_in_memory(void)
{
    char src[600], out[600];
    snprintf(src, sizeof src, "%s", hc_test_tmp("moe.gguf"));
    snprintf(out, sizeof out, "%s", hc_test_tmp("moe.hc.gguf"));
    hc_synth_opts so = { .arch = "qwen2moe", .output = src, .dim = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_expert = 4,
                         .n_expert_used = 2, .expert_ffn_dim = 32, .n_shared_expert = 1, .n_vocab = 320, .seed = 21,
                         .type = HC_F32, .norm_noise = 0.1f };
    HC_ASSERT_OK(hc_synth(&so));
    tally t = { 0 };
    check_model(src, out, 256, 32, &t);
    report("MoE, 256 tokens", &t);
    CU_ASSERT_EQUAL(t.jobs, 2 * 7 + 2 * 3 * 4);
    CU_ASSERT_EQUAL(t.packed_equal, t.jobs);
    CU_ASSERT(t.sigma < 1e-5 && t.gains < 1e-4 && t.removed < 1e-5 && t.product < 2e-3);
}

/* Fewer calibration rows than an input's width (the rows path: whitening from the rows' Gram matrix, gains
 * from the rows): the same factorization in exact arithmetic, another random basis in practice, so
 * within the truncated factorization's own accuracy (test_lowrank: 1% on the kept directions):
 * singular values and the error the written rank removes within 1%. The branch itself may turn
 * within nearly equal singular values (B A differs by tens of percent where sigma_r ~ sigma_r+1),
 * which removes as much error: that is not held. */
static void test_rows_path_close_to_in_memory(void)
{
    char src[600], out[600];
    snprintf(src, sizeof src, "%s", hc_test_tmp("dense_rows.gguf"));
    snprintf(out, sizeof out, "%s", hc_test_tmp("dense_rows.hc.gguf"));
    hc_synth_opts so = { .arch = "llama", .output = src, .dim = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .ffn_dim = 512,
                         .n_vocab = 320, .seed = 9, .type = HC_F16, .norm_noise = 0.1f };
    HC_ASSERT_OK(hc_synth(&so));
    tally t = { 0 };
    check_model(src, out, 192, 64, &t);
    report("dense, 192 tokens (rows path)", &t);
    CU_ASSERT_EQUAL(t.packed_equal, t.jobs);
    CU_ASSERT(t.sigma < 1e-2 && t.removed < 1e-2);
}

/* No room for the output (the file size limit stands for a full disk): refused before the work,
 * naming the sizes, with no file at the path or its temporary. */
static void test_no_room_refused_early(void)
{
    char src[600], out[600], tmp[620];
    snprintf(src, sizeof src, "%s", hc_test_tmp("room.gguf"));
    snprintf(out, sizeof out, "%s", hc_test_tmp("room.hc.gguf"));
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    hc_synth_opts so = { .arch = "llama", .output = src, .dim = 128, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .ffn_dim = 256,
                         .n_vocab = 320, .seed = 5, .type = HC_F16 };
    HC_ASSERT_OK(hc_synth(&so));
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit small = { 64 * 1024, old.rlim_max };
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails instead of killing */
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &small), 0);
    write_calib_text();
    hc_compress_opts o = { .input = src, .output = out, .quant = "rtn:bits=3,group=32", .budget = 20, .branch_dtype = HC_F16,
                           .threads = 2, .registry = reg, .calib = calib_path, .calib_tokens = 256, .calib_seq = 64,
                           .whitening = HC_WHITEN_FULL, .whitening_given = 1 };
    hc_compress_report rep;
    hc_status st = hc_compress(&o, &rep);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    printf("\n  %s", hc_last_error());
    CU_ASSERT_EQUAL(st, HC_E_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "no room"));
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "RLIMIT_FSIZE"));
    CU_ASSERT_EQUAL(rep.calib_tokens, 0); /* before the work */
    CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0);
    CU_ASSERT_NOT_EQUAL(access(tmp, F_OK), 0);
    /* with room, the same compression goes through */
    HC_ASSERT_OK(hc_compress(&o, &rep));
    CU_ASSERT_EQUAL(access(out, F_OK), 0);
    CU_ASSERT_NOT_EQUAL(access(tmp, F_OK), 0);
}

/* --budget is a percentage of the backbone less an untied token-embedding table (a token reads one
 * of its rows): the uniform rank is the largest whose branches fit in that share. A tied table is
 * the head, read whole by every token, and counts. */
static void check_budget(const char *arch, int tied)
{
    char src[600], out[600];
    snprintf(src, sizeof src, "%s", hc_test_tmp("budget.gguf"));
    snprintf(out, sizeof out, "%s", hc_test_tmp("budget.hc.gguf"));
    hc_synth_opts so = { .arch = arch, .output = src, .dim = 128, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .ffn_dim = 256,
                         .n_vocab = 4096, .seed = 3, .type = HC_F16 };
    HC_ASSERT_OK(hc_synth(&so));
    hc_compress_opts o = { .input = src, .output = out, .quant = "rtn:bits=4,group=32", .budget = 10, .branch_dtype = HC_F16,
                           .threads = 2, .registry = reg };
    hc_compress_report rep;
    HC_ASSERT_OK(hc_compress(&o, &rep));
    size_t table = (size_t)so.n_vocab * so.dim * 2; /* f16 */
    CU_ASSERT_EQUAL(rep.budget_base_bytes, tied ? rep.backbone_bytes : rep.backbone_bytes - table);
    /* one more rank on every branch: per layer (in + out) f16 and a float sigma */
    size_t per_rank = 0;
    per_rank += 2 * (size_t)((128 + 128) * 2 + 4) + 2 * (size_t)((128 + 64) * 2 + 4);
    per_rank += 3 * (size_t)((128 + 256) * 2 + 4); /* gate, up, down */
    per_rank *= (size_t)so.n_layer;
    double cap = 0.10 * (double)rep.budget_base_bytes;
    printf("\n  %s: backbone %zu, base %zu, branches %zu at rank %d (10%% of the base: %.0f)", arch, rep.backbone_bytes,
           rep.budget_base_bytes, rep.branch_bytes, rep.rank_max, cap);
    CU_ASSERT(rep.rank_min == rep.rank_max && rep.rank_max > 0);
    CU_ASSERT((double)rep.branch_bytes <= cap && (double)(rep.branch_bytes + per_rank) > cap);
}

static void test_budget_base(void)
{
    check_budget("llama", 0);
    check_budget("gemma3", 1);
}

int main(void)
{
    if (!(reg = hc_test_plugins())) return 1;
    static const hc_test_case cases[] = {
        {"dense: streamed = in-memory (moment path)", test_dense_equals_in_memory},
        {"MoE: streamed = in-memory (moment path)", test_moe_equals_in_memory},
        {"dense: rows path close to in-memory", test_rows_path_close_to_in_memory},
        {"no room for the output: refused early, no file", test_no_room_refused_early},
        {"--budget: of the backbone less an untied embedding table", test_budget_base},
        {NULL, NULL},
    };
    int rc = hc_test_run("stream_compress", cases);
    hc_registry_free(reg);
    return rc;
}
