/* calib.c: the calibration observer: before each linear stage, adds X^T X of its input rows to
 * the moment of that input (one per layer and input class), in f32 per batch, summed in f64. */
#include "calib.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

hc_input_class hc_proj_input_class(hc_proj p)
{
    switch (p) {
    case HC_PROJ_Q: case HC_PROJ_K: case HC_PROJ_V: return HC_IN_ATTN;
    case HC_PROJ_O: return HC_IN_ATT_OUT;
    case HC_PROJ_GATE: case HC_PROJ_UP: return HC_IN_FFN;
    default: return HC_IN_DOWN;
    }
}

static hc_status moment_init(hc_moment *m, int width)
{
    m->width = width;
    m->sum = calloc((size_t)width * width, sizeof *m->sum);
    return m->sum ? HC_OK : hc_error(HC_E_NOMEM, "calibration: out of memory for a %d x %d moment", width, width);
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
    const int width[HC_IN_CLASSES] = { c->dim, c->n_head * c->head_dim, c->dim, c->ffn_dim };
    for (int l = 0; l < c->n_layer && st == HC_OK; l++)
        for (int k = 0; k < HC_IN_CLASSES && st == HC_OK; k++) st = moment_init(&cal->layer[l * HC_IN_CLASSES + k], width[k]);
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

/* Adds the rows' X^T X (upper triangle) to the moment. */
static hc_status accumulate(hc_calib *cal, hc_moment *m, const float *x, int n_rows)
{
    size_t w = (size_t)m->width;
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
    if (s->proj != HC_PROJ_Q && s->proj != HC_PROJ_O && s->proj != HC_PROJ_GATE && s->proj != HC_PROJ_DOWN) return HC_OK;
    hc_moment *m = (hc_moment *)hc_calib_moment(cal, s->layer, s->proj);
    if (!m || m->width != width) return hc_error(HC_E_STATE, "calibration: stage %s has an unexpected input width %d", s->name, width);
    return accumulate(cal, m, input, n_rows);
}

hc_status hc_calib_run(hc_calib *cal, hc_context *ctx, const int32_t *tokens, int64_t n, int seq_len,
                       hc_calib_progress progress, void *progress_ctx)
{
    if (!ctx->dev->host_memory) return hc_error(HC_E_UNSUPPORTED, "calibration runs on a device with host memory (cpu)");
    if (seq_len <= 0 || seq_len > ctx->n_ctx) return hc_error(HC_E_ARG, "calibration: sequence length %d does not fit the context of %d", seq_len, ctx->n_ctx);
    ctx->observer = observe;
    ctx->observer_ctx = cal;
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
