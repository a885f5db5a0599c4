/* calib.c: the calibration observer of the streaming compressor: before each linear stage of the
 * layer observed, keeps its input rows (once per input class), and per expert the rows routed to it. */
#include "calib.h"

#include <stdlib.h>
#include <string.h>

#include "moe.h"

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

hc_status hc_calib_create(const hc_model *m, hc_calib **out)
{
    const hc_model_config *c = &m->cfg;
    hc_calib *cal = calloc(1, sizeof *cal);
    if (!cal) return hc_error(HC_E_NOMEM, "calibration: out of memory");
    cal->n_layer = c->n_layer;
    cal->layer = -2;
    const int width[HC_IN_CLASSES] = { c->dim, c->n_head * c->head_dim, c->dim, c->ffn_dim, c->shexp_ffn_dim };
    for (int k = 0; k < HC_IN_CLASSES; k++) cal->in[k].width = width[k];
    cal->head.width = c->dim;
    hc_status st = HC_OK;
    if (c->n_expert > 0) {
        cal->n_expert = c->n_expert;
        if (!(cal->expert = calloc((size_t)c->n_expert * HC_EXP_IN_COUNT, sizeof *cal->expert)) ||
            !(cal->routed = calloc((size_t)c->n_layer * c->n_expert, sizeof *cal->routed)))
            st = hc_error(HC_E_NOMEM, "calibration: out of memory");
        for (int e = 0; st == HC_OK && e < c->n_expert; e++) {
            cal->expert[e * HC_EXP_IN_COUNT + HC_EXP_IN_FFN].width = c->dim;
            cal->expert[e * HC_EXP_IN_COUNT + HC_EXP_IN_DOWN].width = c->expert_ffn_dim;
        }
    }
    if (st != HC_OK) {
        hc_calib_free(cal);
        return st;
    }
    *out = cal;
    return HC_OK;
}

static void input_clear(hc_calib_input *in, int keep_memory)
{
    if (!keep_memory) {
        free(in->rows);
        free(in->seg);
        in->rows = NULL;
        in->seg = NULL;
        in->cap = 0;
        in->cap_seg = 0;
    }
    in->n = 0;
    in->n_seg = 0;
}

void hc_calib_free(hc_calib *c)
{
    if (!c) return;
    for (int k = 0; k < HC_IN_CLASSES; k++) input_clear(&c->in[k], 0);
    input_clear(&c->head, 0);
    for (int i = 0; c->expert && i < c->n_expert * HC_EXP_IN_COUNT; i++) input_clear(&c->expert[i], 0);
    free(c->expert);
    free(c->routed);
    free(c);
}

void hc_calib_begin_layer(hc_calib *c, int layer)
{
    /* the buffers are kept for the next layer (the same widths), the experts' freed (many, small) */
    for (int k = 0; k < HC_IN_CLASSES; k++) input_clear(&c->in[k], 1);
    input_clear(&c->head, 1);
    for (int i = 0; c->expert && i < c->n_expert * HC_EXP_IN_COUNT; i++) input_clear(&c->expert[i], 0);
    c->layer = layer;
}

hc_status hc_calib_add(hc_calib_input *in, const float *x, int n_rows)
{
    if (n_rows <= 0) return HC_OK;
    size_t w = (size_t)in->width;
    if (in->n + n_rows > in->cap) {
        int64_t cap = in->cap ? 2 * in->cap : 256;
        while (cap < in->n + n_rows) cap *= 2;
        float *p = realloc(in->rows, (size_t)cap * w * sizeof *p);
        if (!p) return hc_error(HC_E_NOMEM, "calibration: out of memory for %lld rows of width %zu", (long long)cap, w);
        in->rows = p;
        in->cap = cap;
    }
    if (in->n_seg == in->cap_seg) {
        int cap = in->cap_seg ? 2 * in->cap_seg : 16;
        int *p = realloc(in->seg, (size_t)cap * sizeof *p);
        if (!p) return hc_error(HC_E_NOMEM, "calibration: out of memory");
        in->seg = p;
        in->cap_seg = cap;
    }
    memcpy(in->rows + (size_t)in->n * w, x, (size_t)n_rows * w * sizeof *x);
    in->n += n_rows;
    in->seg[in->n_seg++] = n_rows;
    return HC_OK;
}

const hc_calib_input *hc_calib_input_of(const hc_calib *c, int proj, int expert)
{
    if (c->layer < 0) return &c->head;
    if (expert >= 0) {
        if (!c->expert || expert >= c->n_expert) return NULL;
        int k = proj == HC_PROJ_DOWN ? HC_EXP_IN_DOWN : proj == HC_PROJ_GATE || proj == HC_PROJ_UP ? HC_EXP_IN_FFN : -1;
        return k < 0 ? NULL : &c->expert[expert * HC_EXP_IN_COUNT + k];
    }
    if (proj < 0 || proj >= HC_PROJ_COUNT) return NULL;
    return &c->in[hc_proj_input_class(proj)];
}

double hc_calib_routing_frequency(const hc_calib *c, int layer, int expert)
{
    if (!c || !c->routed || c->tokens <= 0 || layer < 0 || layer >= c->n_layer || expert < 0 || expert >= c->n_expert) return -1;
    return (double)c->routed[(size_t)layer * c->n_expert + expert] / (double)c->tokens;
}

static hc_status observe(void *arg, const hc_stage *s, const float *input, int n_rows, int width)
{
    hc_calib *cal = arg;
    if (s->layer != cal->layer) return HC_OK;
    if (s->layer < 0) return hc_calib_add(&cal->head, input, n_rows);
    /* projections sharing an input are counted once: at the first of each class */
    if (s->proj != HC_PROJ_Q && s->proj != HC_PROJ_O && s->proj != HC_PROJ_GATE && s->proj != HC_PROJ_DOWN &&
        s->proj != HC_PROJ_GATE_SHEXP && s->proj != HC_PROJ_DOWN_SHEXP)
        return HC_OK;
    hc_calib_input *in = (hc_calib_input *)hc_calib_input_of(cal, s->proj, -1);
    if (!in || in->width != width) return hc_error(HC_E_STATE, "calibration: stage %s has an unexpected input width %d", s->name, width);
    return hc_calib_add(in, input, n_rows);
}

/* The rows routed to one expert (MoE stages call this for gate and down; up shares gate's input). */
static hc_status observe_expert(void *arg, int layer, int proj, int expert, const float *input, int n_rows, int width)
{
    hc_calib *cal = arg;
    if (layer != cal->layer) return HC_OK;
    hc_calib_input *in = (hc_calib_input *)hc_calib_input_of(cal, proj, expert);
    if (!in || in->width != width)
        return hc_error(HC_E_STATE, "calibration: expert %d of layer %d has an unexpected input width %d", expert, layer, width);
    if (proj == HC_PROJ_GATE) cal->routed[(size_t)layer * cal->n_expert + expert] += n_rows;
    return hc_calib_add(in, input, n_rows);
}

void hc_calib_observe(hc_context *ctx, hc_calib *cal)
{
    ctx->observer = cal ? observe : NULL;
    ctx->observer_ctx = cal;
    if (ctx->moe) {
        ctx->moe->observer = cal ? observe_expert : NULL;
        ctx->moe->observer_ctx = cal;
    }
}
