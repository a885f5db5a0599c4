/* test_awq.c: activation-aware scales (core/compress/awq.c, compress_awq.c): the search's error
 * against a reference in double, never worse than no scales; and compress --awq exact in effect. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "awq.h"
#include "compress.h"
#include "context.h"
#include "device_cpu.h"
#include "gguf.h"
#include "model_load.h"
#include "quant_format.h"
#include "registry.h"
#include "synth.h"
#include "test_util.h"

static hc_registry *reg;

/* Weights N(0, 1) and n input rows whose channels differ in scale, one in eight an outlier (x 20):
 * the case AWQ is for. */
static void make(uint64_t seed, int64_t out, int64_t in, int64_t n, float **w, float **x)
{
    *w = malloc(sizeof(float) * (size_t)(out * in));
    *x = malloc(sizeof(float) * (size_t)(n * in));
    float *scale = malloc(sizeof(float) * (size_t)in);
    for (int64_t i = 0; i < out * in; i++) (*w)[i] = (float)hc_test_gauss(&seed);
    for (int64_t i = 0; i < in; i++) scale[i] = (float)((0.3 + fabs(hc_test_gauss(&seed))) * (i % 8 == 3 ? 20.0 : 1.0));
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < in; i++) (*x)[r * in + i] = (float)hc_test_gauss(&seed) * scale[i];
    free(scale);
}

/* mean over the rows of |(Q(W s) / s - W) x|^2 in double: what the search says it minimises */
static double reference_error(const hc_quant_format *q, const float *w, int64_t out, int64_t in, const float *x, int64_t n,
                              const float *s)
{
    float *ws = malloc(sizeof(float) * (size_t)(out * in)), *x2 = calloc((size_t)in, sizeof(float));
    void *packed = malloc(q->ops->packed_bytes(q->params, out, in));
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < in; i++) x2[i] += x[r * in + i] / s[i] * x[r * in + i] / s[i] / (float)n;
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) ws[o * in + i] = w[o * in + i] * s[i];
    hc_quant_calib qc = { .x2_mean = x2 };
    HC_ASSERT_OK(q->ops->quantize(q->params, ws, out, in, &qc, packed));
    q->ops->dequantize_rows(q->params, packed, in, out, 0, out, ws);
    double e = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t o = 0; o < out; o++) {
            double d = 0;
            for (int64_t i = 0; i < in; i++) d += ((double)ws[o * in + i] / s[i] - w[o * in + i]) * x[r * in + i];
            e += d * d;
        }
    free(ws), free(x2), free(packed);
    return e / (double)n;
}

/* One search: its reported error equals the reference at the chosen s, alpha 0's error is the
 * unscaled one, and the outliers make some alpha > 0 clearly better. */
static void search_case(const char *spec, int64_t n, const char *path, double must)
{
    const int64_t in = 128, out[2] = { 48, 24 };
    hc_quant_format *q;
    HC_ASSERT_OK(hc_quant_format_create(reg, spec, &q));
    float *w[2], *x, *x_unused;
    make(7, out[0], in, n, &w[0], &x);
    make(8, out[1], in, n, &w[1], &x_unused);
    const float *wc[2] = { w[0], w[1] };
    float s[128], ones[128];
    for (int i = 0; i < 128; i++) ones[i] = 1.0f;
    hc_awq_report r;
    HC_ASSERT_OK(hc_awq_search(q, 2, wc, out, in, x, n, 20, s, &r));
    const double best = reference_error(q, w[0], out[0], in, x, n, s) + reference_error(q, w[1], out[1], in, x, n, s);
    const double plain = reference_error(q, w[0], out[0], in, x, n, ones) + reference_error(q, w[1], out[1], in, x, n, ones);
    printf("\n  %s, %lld rows (%s): alpha %.2f, error %.5g (reference %.5g), unscaled %.5g (reference %.5g)", spec, (long long)n,
           path, r.alpha, r.error_best, best, r.error_plain, plain);
    CU_ASSERT(fabs(r.error_best - best) <= 1e-3 * best);
    CU_ASSERT(fabs(r.error_plain - plain) <= 1e-3 * plain);
    CU_ASSERT(r.error_best <= r.error_plain);
    CU_ASSERT(r.alpha > 0 && r.error_best < must * r.error_plain);
    /* a grid of one point is alpha 0 alone: no scales */
    HC_ASSERT_OK(hc_awq_search(q, 2, wc, out, in, x, n, 1, s, &r));
    CU_ASSERT_EQUAL(r.alpha, 0.0f);
    CU_ASSERT_EQUAL(r.error_best, r.error_plain);
    for (int i = 0; i < in; i++) CU_ASSERT_EQUAL(s[i], 1.0f);
    free(w[0]), free(w[1]), free(x), free(x_unused);
    hc_quant_format_free(q);
}

/* (rtn's own search, weighing its errors by E[x_i^2], already does part of what the scales do) */
static void test_search_moment(void) { search_case("rtn:bits=3,group=32", 512, "the moment", 0.5); }
static void test_search_rows(void) { search_case("rtn:bits=3,group=32,search=1", 96, "the rows", 0.9); }

static void test_search_refusals(void)
{
    hc_quant_format *q;
    HC_ASSERT_OK(hc_quant_format_create(reg, "rtn:bits=4,group=32", &q));
    float *w, *x, s[100];
    make(3, 8, 100, 16, &w, &x);
    const float *wc[1] = { w };
    int64_t out[1] = { 8 };
    CU_ASSERT_EQUAL(hc_awq_search(q, 1, wc, out, 96, x, 16, 0, s, NULL), HC_E_ARG);
    CU_ASSERT_NOT_EQUAL(hc_awq_search(q, 1, wc, out, 100, x, 16, 20, s, NULL), HC_OK); /* 100 columns, groups of 32 */
    printf("\n  %s", hc_last_error());
    free(w), free(x);
    hc_quant_format_free(q);
}

/* ---- compress --awq ---- */

static char calib_path[600];

static void write_calib_text(void)
{
    snprintf(calib_path, sizeof calib_path, "%s", hc_test_tmp("awq_calib.txt"));
    FILE *f = fopen(calib_path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 300; i++) fprintf(f, "a stitch in time saves %d, said the %d tailors of the town. ", i, 7 * i % 11);
    fclose(f);
}

/* The logits of every position of tokens under the model at path (its branches off). */
static float *logits_of(const char *path, const int32_t *tokens, int n, int *n_vocab)
{
    hc_device *dev;
    hc_model *m;
    hc_context *c;
    hc_device_config dc = { .n_threads = 2 };
    HC_ASSERT_OK(hc_cpu_device_create(&dc, &dev));
    hc_model_load_opts lo = { .registry = reg, .no_branches = 1 };
    HC_ASSERT_OK(hc_model_load(path, &lo, &m));
    hc_context_params cp = { .n_ctx = n, .n_batch = n };
    HC_ASSERT_OK(hc_context_create(m, dev, &cp, &c));
    const float *l;
    HC_ASSERT_OK(hc_decode(c, tokens, n, 1, &l));
    *n_vocab = m->cfg.n_vocab;
    float *copy = malloc(sizeof(float) * (size_t)n * (size_t)*n_vocab);
    memcpy(copy, l, sizeof(float) * (size_t)n * (size_t)*n_vocab);
    hc_context_free(c);
    hc_model_free(m);
    dev->ops->destroy(dev);
    return copy;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* At 8 bits the scales change the quantization only a little: the compressed model with --awq is as
 * close to the source as without (the norms and the up/v rows folded exactly), every group of the
 * model (o after v too: a head per v) is searched, and the losses measured in the source's frame
 * stay as small as without --awq. */
static void test_compress_exact(void)
{
    char src[600], plain[600], awq[600];
    snprintf(src, sizeof src, "%s", hc_test_tmp("awq_src.gguf"));
    snprintf(plain, sizeof plain, "%s", hc_test_tmp("awq_plain.gguf"));
    snprintf(awq, sizeof awq, "%s", hc_test_tmp("awq_awq.gguf"));
    hc_synth_opts so = { .arch = "llama", .output = src, .dim = 128, .n_layer = 2, .n_head = 2, .n_head_kv = 2, .ffn_dim = 256,
                         .n_vocab = 320, .seed = 11, .type = HC_F32, .norm_noise = 0.3f };
    HC_ASSERT_OK(hc_synth(&so));
    write_calib_text();
    hc_compress_opts o = { .input = src, .output = plain, .quant = "rtn:bits=8,group=32", .budget = 10, .branch_dtype = HC_F16,
                           .threads = 2, .registry = reg, .calib = calib_path, .calib_tokens = 512, .calib_seq = 128,
                           .whitening = HC_WHITEN_FULL, .whitening_given = 1, .sens_tokens = 128 };
    hc_compress_report rp, ra;
    HC_ASSERT_OK(hc_compress(&o, &rp));
    o.output = awq, o.awq = 20;
    HC_ASSERT_OK(hc_compress(&o, &ra));
    printf("\n  awq: %d of %d groups scaled, alpha %.2f, rtn's error %.4g (unscaled %.4g)", ra.awq_scaled, ra.awq_groups,
           ra.awq_alpha_mean, ra.awq_error_best, ra.awq_error_plain);
    CU_ASSERT_EQUAL(ra.awq_groups, 4 * so.n_layer);
    CU_ASSERT(ra.awq_scaled > 0);
    CU_ASSERT_EQUAL(rp.awq_groups, 0);
    int32_t tokens[48];
    for (int i = 0; i < 48; i++) tokens[i] = (int32_t)((i * 37 + 5) % so.n_vocab);
    int v;
    float *ls = logits_of(src, tokens, 48, &v), *lp = logits_of(plain, tokens, 48, &v), *la = logits_of(awq, tokens, 48, &v);
    const size_t n = (size_t)48 * (size_t)v;
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)ls[i]));
    const double dp = max_diff(ls, lp, n), da = max_diff(ls, la, n);
    printf("\n  logits' largest difference from the source (of %.3g): without --awq %.3g, with %.3g", scale, dp, da);
    CU_ASSERT(da < 0.05 * scale);
    CU_ASSERT(da < 3 * dp + 1e-3 * scale);
    free(ls), free(lp), free(la);
    /* the measured losses: the dequantized weights back in the source's frame */
    hc_gguf *gp, *ga;
    HC_ASSERT_OK(hc_gguf_open(plain, &gp));
    HC_ASSERT_OK(hc_gguf_open(awq, &ga));
    const char *keys[] = { "hc.sens.blk.0.attn_q.weight.loss", "hc.sens.blk.1.ffn_up.weight.loss", "hc.sens.blk.1.ffn_down.weight.loss",
                           "hc.sens.blk.0.attn_output.weight.loss" };
    for (int k = 0; k < 4; k++) {
        float a = -1, p = -1;
        HC_ASSERT_OK(hc_gguf_get_f32(gp, keys[k], &p));
        HC_ASSERT_OK(hc_gguf_get_f32(ga, keys[k], &a));
        printf("\n  %s: %.3g without --awq, %.3g with", keys[k], p, a);
        CU_ASSERT(a >= 0 && a < 5 * p + 1e-4);
    }
    hc_gguf_close(gp);
    hc_gguf_close(ga);
}

/* --awq needs calibration text, and a format with bits and groups. */
static void test_compress_refusals(void)
{
    char src[600], out[600];
    snprintf(src, sizeof src, "%s", hc_test_tmp("awq_src2.gguf"));
    snprintf(out, sizeof out, "%s", hc_test_tmp("awq_refused.gguf"));
    hc_synth_opts so = { .arch = "llama", .output = src, .dim = 64, .n_layer = 1, .n_head = 2, .n_head_kv = 1, .ffn_dim = 128,
                         .n_vocab = 300, .seed = 2, .type = HC_F32 };
    HC_ASSERT_OK(hc_synth(&so));
    hc_compress_opts o = { .input = src, .output = out, .quant = "rtn:bits=4,group=32", .budget = 10, .branch_dtype = HC_F16,
                           .threads = 2, .registry = reg, .awq = 20 };
    hc_compress_report r;
    CU_ASSERT_EQUAL(hc_compress(&o, &r), HC_E_ARG);
    printf("\n  %s", hc_last_error());
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "--awq"));
    CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0);
}

int main(void)
{
    if (!(reg = hc_test_plugins())) return 1;
    static const hc_test_case cases[] = {
        {"search: the error under the moment = reference, scales win", test_search_moment},
        {"search: the error on the rows = reference (rtn with search)", test_search_rows},
        {"search: refusals", test_search_refusals},
        {"compress --awq: the folding is exact, losses in the source's frame", test_compress_exact},
        {"compress --awq: refusals", test_compress_refusals},
        {NULL, NULL},
    };
    int rc = hc_test_run("awq", cases);
    hc_registry_free(reg);
    return rc;
}
