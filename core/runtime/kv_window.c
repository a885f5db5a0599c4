/* kv_window.c: per-layer rows of the KV cache, sliding-window layers kept to their window (the
 * newest W - 1 positions moved to the front when full), and windowed attention as per-token views. */
#include "kv_window.h"

#include <stdlib.h>

static size_t elem_bytes(const hc_context *c) { return c->kv_dtype == HC_F16 ? 2 : sizeof(float); }
static size_t kv_dim(const hc_context *c) { return (size_t)c->model->cfg.n_head_kv * c->model->cfg.head_dim; }

int hc_kv_layer_window(const hc_context *c, int layer)
{
    const hc_model *m = c->model;
    return m->cfg.n_swa > 0 && m->layers[layer].swa ? m->cfg.n_swa : 0;
}

hc_status hc_kv_layout_create(hc_context *c, size_t *total_rows)
{
    int n_layer = c->model->cfg.n_layer;
    c->kv_rows = malloc((size_t)n_layer * sizeof *c->kv_rows);
    c->kv_first = calloc((size_t)n_layer, sizeof *c->kv_first);
    c->kv_off = malloc((size_t)n_layer * sizeof *c->kv_off);
    if (!c->kv_rows || !c->kv_first || !c->kv_off) return hc_error(HC_E_NOMEM, "context: out of memory");
    size_t rows = 0;
    for (int l = 0; l < n_layer; l++) {
        long w = hc_kv_layer_window(c, l), keep = c->n_ctx;
        if (w > 0 && w - 1 + c->n_batch < keep) keep = w - 1 + c->n_batch; /* a window and one batch */
        c->kv_rows[l] = (int)keep;
        c->kv_off[l] = rows * kv_dim(c) * elem_bytes(c);
        rows += (size_t)keep;
    }
    *total_rows = rows;
    return HC_OK;
}

void hc_kv_layout_free(hc_context *c)
{
    free(c->kv_rows);
    free(c->kv_first);
    free(c->kv_off);
    c->kv_rows = c->kv_first = NULL;
    c->kv_off = NULL;
}

size_t hc_kv_offset(const hc_context *c, int layer, int pos)
{
    return c->kv_off[layer] + (size_t)(pos - c->kv_first[layer]) * kv_dim(c) * elem_bytes(c);
}

/* Moves `keep` rows from row `from` to row 0 of a layer's K and V, in pieces that never overlap
 * their destination (a device copy need not allow overlap). */
static hc_status move_rows(hc_context *c, int layer, int from, int keep)
{
    hc_device *d = c->dev;
    size_t row = kv_dim(c) * elem_bytes(c);
    char *k = (char *)c->k_cache + c->kv_off[layer], *v = (char *)c->v_cache + c->kv_off[layer];
    for (int r = 0; r < keep; r += from) {
        int len = keep - r < from ? keep - r : from;
        hc_status st = d->ops->copy(d, k + (size_t)r * row, k + (size_t)(from + r) * row, (size_t)len * row);
        if (st == HC_OK) st = d->ops->copy(d, v + (size_t)r * row, v + (size_t)(from + r) * row, (size_t)len * row);
        if (st != HC_OK) return st;
    }
    return HC_OK;
}

hc_status hc_kv_slide(hc_context *c, int n)
{
    for (int l = 0; l < c->model->cfg.n_layer; l++) {
        int w = hc_kv_layer_window(c, l);
        if (!w || c->n_past + n - c->kv_first[l] <= c->kv_rows[l]) continue;
        /* the next token (at n_past) sees n_past - w + 1 .. : keep those w - 1 positions */
        int first = c->n_past - (w - 1);
        if (first <= c->kv_first[l] || w - 1 + n > c->kv_rows[l])
            return hc_error(HC_E_STATE, "layer %d: %d tokens do not fit its %d rows of KV cache after a window of %d", l, n,
                            c->kv_rows[l], w);
        hc_status st = move_rows(c, l, first - c->kv_first[l], w - 1);
        if (st != HC_OK) return hc_error_context(st, "sliding the KV cache of layer %d: ", l);
        c->kv_first[l] = first;
    }
    return HC_OK;
}

hc_status hc_kv_truncate(hc_context *c, int n)
{
    for (int l = 0; l < c->model->cfg.n_layer; l++) {
        int w = hc_kv_layer_window(c, l);
        if (w && c->kv_first[l] > 0 && n - (w - 1) < c->kv_first[l])
            return hc_error(HC_E_STATE, "cannot go back to position %d: layer %d's sliding window keeps positions from %d on", n, l,
                            c->kv_first[l]);
    }
    return HC_OK;
}

void hc_kv_reset(hc_context *c)
{
    for (int l = 0; l < c->model->cfg.n_layer; l++) c->kv_first[l] = 0;
}

hc_status hc_kv_attention(hc_context *c, int layer, const float *q, float *out, int n, float scale)
{
    const hc_model_config *cfg = &c->model->cfg;
    hc_device *d = c->dev;
    const size_t q_dim = (size_t)cfg->n_head * cfg->head_dim;
    const char *k = (const char *)c->k_cache, *v = (const char *)c->v_cache;
    hc_attn_args a = { .q = q, .out = out, .n_tok = n, .pos0 = c->n_past, .n_ctx = c->kv_rows[layer], .n_head = cfg->n_head,
                       .n_head_kv = cfg->n_head_kv, .head_dim = cfg->head_dim, .scale = scale, .kv_dtype = c->kv_dtype,
                       .k_cache = (const float *)(k + c->kv_off[layer]), .v_cache = (const float *)(v + c->kv_off[layer]) };
    int w = hc_kv_layer_window(c, layer);
    /* the tokens whose window still starts at position 0 see what causal attention shows them */
    int head = !w ? n : w - c->n_past < n ? w - c->n_past : n;
    if (head > 0) {
        a.n_tok = head;
        hc_status st = d->ops->attention(d, &a);
        if (st != HC_OK || head == n) return st;
    }
    for (int t = head > 0 ? head : 0; t < n; t++) { /* past it: the view of rows lo .. p */
        int p = c->n_past + t, lo = p - (w - 1);
        size_t off = hc_kv_offset(c, layer, lo);
        hc_attn_args b = a;
        b.q = q + (size_t)t * q_dim;
        b.out = out + (size_t)t * q_dim;
        b.n_tok = 1;
        b.pos0 = p - lo;
        b.n_ctx = c->kv_rows[layer] - (lo - c->kv_first[layer]);
        b.k_cache = (const float *)(k + off);
        b.v_cache = (const float *)(v + off);
        hc_status st = d->ops->attention(d, &b);
        if (st != HC_OK) return st;
    }
    return HC_OK;
}
