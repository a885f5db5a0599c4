/* calib.c: the calibration observer: before each linear stage, adds X^T X of its input rows to
 * the moment of that input (one per layer and input class), in f32 per batch, summed in f64. */
#include "calib.h"

#include <cblas.h>

#include "moe.h"
#include <stdlib.h>
#include <string.h>

hc_input_class hc_proj_input_class(hc_proj p)
{
    switch (p) {
    case HC_PROJ_Q: case HC_PROJ_K: case HC_PROJ_V: return HC_IN_ATTN;
    case HC_PROJ_O: return HC_IN_ATT_OUT;
    case HC_PROJ_GATE: case HC_PROJ_UP: case HC_PROJ_GATE_SHEXP: case HC_PROJ_UP_SHEXP: return HC_IN_FFN;
    case HC_PROJ_DOWN_SHEXP: return HC_IN_DOWN_SHEXP;
    default: return HC_IN_DOWN;
    }
}

/* The sums are allocated when the first tokens arrive: a MoE model has inputs that never occur
 * (the dense FFN's) and experts calibration may never route to. */
static hc_status moment_init(hc_moment *m, int width)
{
    m->width = width;
    return HC_OK;
}

hc_status hc_calib_create(const hc_model *m, int threads, hc_calib **out)
{
    const hc_model_config *c = &m->cfg;
    hc_calib *cal = calloc(1, sizeof *cal);
    if (!cal) return hc_error(HC_E_NOMEM, "calibration: out of memory");
    cal->n_layer = c->n_layer;
    cal->threads = threads > 0 ? threads : 1;
    hc_status st = HC_OK;
    if (!(cal->layer = calloc((size_t)c->n_layer * HC_IN_CLASSES, sizeof *cal->layer))) st = hc_error(HC_E_NOMEM, "calibration: out of memory");
    const int width[HC_IN_CLASSES] = { c->dim, c->n_head * c->head_dim, c->dim, c->ffn_dim, c->shexp_ffn_dim };
    for (int l = 0; l < c->n_layer && st == HC_OK; l++)
        for (int k = 0; k < HC_IN_CLASSES && st == HC_OK; k++) st = moment_init(&cal->layer[l * HC_IN_CLASSES + k], width[k]);
    if (st == HC_OK && c->n_expert > 0) {
        size_t n = (size_t)c->n_layer * c->n_expert;
        cal->n_expert = c->n_expert;
        if (!(cal->expert = calloc(n * HC_EXP_IN_COUNT, sizeof *cal->expert)) || !(cal->routed = calloc(n, sizeof *cal->routed)))
            st = hc_error(HC_E_NOMEM, "calibration: out of memory");
        for (size_t i = 0; st == HC_OK && i < n; i++) {
            cal->expert[i * HC_EXP_IN_COUNT + HC_EXP_IN_FFN].width = c->dim;
            cal->expert[i * HC_EXP_IN_COUNT + HC_EXP_IN_DOWN].width = c->expert_ffn_dim;
        }
    }
    if (st == HC_OK) st = moment_init(&cal->head, c->dim);
    if (st != HC_OK) {
        hc_calib_free(cal);
        return st;
    }
    *out = cal;
    return HC_OK;
}

void hc_calib_free(hc_calib *c)
{
    if (!c) return;
    for (int i = 0; c->layer && i < c->n_layer * HC_IN_CLASSES; i++) free(c->layer[i].sum);
    free(c->layer);
    for (int i = 0; c->expert && i < c->n_layer * c->n_expert * HC_EXP_IN_COUNT; i++) free(c->expert[i].sum);
    free(c->expert);
    free(c->routed);
    free(c->head.sum);
    free(c->scratch);
    free(c);
}

const hc_moment *hc_calib_moment(const hc_calib *c, int layer, int proj)
{
    if (layer < 0) return &c->head;
    if (layer >= c->n_layer || proj < 0 || proj >= HC_PROJ_COUNT) return NULL;
    return &c->layer[layer * HC_IN_CLASSES + hc_proj_input_class(proj)];
}

const hc_moment *hc_calib_expert_moment(const hc_calib *c, int layer, int proj, int expert)
{
    if (!c->expert || layer < 0 || layer >= c->n_layer || expert < 0 || expert >= c->n_expert) return NULL;
    int k = proj == HC_PROJ_DOWN ? HC_EXP_IN_DOWN : proj == HC_PROJ_GATE || proj == HC_PROJ_UP ? HC_EXP_IN_FFN : -1;
    return k < 0 ? NULL : &c->expert[((size_t)layer * c->n_expert + expert) * HC_EXP_IN_COUNT + k];
}

double hc_calib_routing_frequency(const hc_calib *c, int layer, int expert)
{
    if (!c->routed || c->tokens <= 0 || layer < 0 || layer >= c->n_layer || expert < 0 || expert >= c->n_expert) return -1;
    return (double)c->routed[(size_t)layer * c->n_expert + expert] / (double)c->tokens;
}

/* Adds the rows' X^T X (upper triangle) to the moment. */
static hc_status accumulate(hc_calib *cal, hc_moment *m, const float *x, int n_rows)
{
    size_t w = (size_t)m->width;
    if (!m->sum && !(m->sum = calloc(w * w, sizeof *m->sum)))
        return hc_error(HC_E_NOMEM, "calibration: out of memory for a %zu x %zu moment", w, w);
    if (cal->scratch_n < w * w) {
        float *p = realloc(cal->scratch, w * w * sizeof *p);
        if (!p) return hc_error(HC_E_NOMEM, "calibration: out of memory");
        cal->scratch = p;
        cal->scratch_n = w * w;
    }
    openblas_set_num_threads(cal->threads); /* the device pool is idle while the observer runs */
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)w, n_rows, 1.0f, x, (int)w, 0.0f, cal->scratch, (int)w);
    openblas_set_num_threads(1);
    for (size_t i = 0; i < w; i++)
        for (size_t j = i; j < w; j++) m->sum[i * w + j] += cal->scratch[i * w + j];
    m->n += n_rows;
    return HC_OK;
}

static hc_status observe(void *arg, const hc_stage *s, const float *input, int n_rows, int width)
{
    hc_calib *cal = arg;
    if (s->layer < 0) return accumulate(cal, &cal->head, input, n_rows);
    /* projections sharing an input are counted once: at the first of each class */
    if (s->proj != HC_PROJ_Q && s->proj != HC_PROJ_O && s->proj != HC_PROJ_GATE && s->proj != HC_PROJ_DOWN &&
        s->proj != HC_PROJ_GATE_SHEXP && s->proj != HC_PROJ_DOWN_SHEXP)
        return HC_OK;
    hc_moment *m = (hc_moment *)hc_calib_moment(cal, s->layer, s->proj);
    if (!m || m->width != width) return hc_error(HC_E_STATE, "calibration: stage %s has an unexpected input width %d", s->name, width);
    return accumulate(cal, m, input, n_rows);
}

/* The rows routed to one expert (MoE stages call this for gate and down; up shares gate's input). */
static hc_status observe_expert(void *arg, int layer, int proj, int expert, const float *input, int n_rows, int width)
{
    hc_calib *cal = arg;
    hc_moment *m = (hc_moment *)hc_calib_expert_moment(cal, layer, proj, expert);
    if (!m || m->width != width)
        return hc_error(HC_E_STATE, "calibration: expert %d of layer %d has an unexpected input width %d", expert, layer, width);
    if (proj == HC_PROJ_GATE) cal->routed[(size_t)layer * cal->n_expert + expert] += n_rows;
    return accumulate(cal, m, input, n_rows);
}

hc_status hc_calib_run(hc_calib *cal, hc_context *ctx, const int32_t *tokens, int64_t n, int seq_len,
                       hc_calib_progress progress, void *progress_ctx)
{
    if (!ctx->dev->host_memory) return hc_error(HC_E_UNSUPPORTED, "calibration runs on a device with host memory (cpu)");
    if (seq_len <= 0 || seq_len > ctx->n_ctx) return hc_error(HC_E_ARG, "calibration: sequence length %d does not fit the context of %d", seq_len, ctx->n_ctx);
    ctx->observer = observe;
    ctx->observer_ctx = cal;
    if (ctx->moe) {
        ctx->moe->observer = observe_expert;
        ctx->moe->observer_ctx = cal;
    }
    hc_status st = HC_OK;
    const float *logits;
    for (int64_t done = 0; done + 1 < n && st == HC_OK; done += seq_len) {
        int len = (int)(n - done < seq_len ? n - done : seq_len);
        hc_context_reset(ctx);
        /* all rows reach the head: logits_all keeps every row (chunks of n_batch) */
        for (int off = 0; off < len && st == HC_OK; off += ctx->n_batch) {
            int k = len - off < ctx->n_batch ? len - off : ctx->n_batch;
            st = hc_decode(ctx, tokens + done + off, k, 1, &logits);
        }
        cal->tokens += len;
        if (progress) progress(progress_ctx, done + len, n);
    }
    ctx->observer = NULL;
    ctx->observer_ctx = NULL;
    if (ctx->moe) ctx->moe->observer = NULL;
    hc_context_reset(ctx);
    return st;
}

double *hc_moment_mean(const hc_moment *m)
{
    if (m->n <= 0) {
        hc_error(HC_E_STATE, "calibration: no tokens were seen for a %d-wide input", m->width);
        return NULL;
    }
    size_t w = (size_t)m->width;
    double *h = malloc(w * w * sizeof *h);
    if (!h) {
        hc_error(HC_E_NOMEM, "calibration: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < w; i++)
        for (size_t j = i; j < w; j++) h[i * w + j] = h[j * w + i] = m->sum[i * w + j] / (double)m->n;
    return h;
}
