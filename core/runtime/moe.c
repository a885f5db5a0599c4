/* moe.c: the mixture-of-experts stages of a context: route (router matmul, softmax, top-k, rows
 * grouped by expert), per-expert matmuls on 2-D views of the 3-D expert tensors, act, weighted
 * combine, and the shared expert's sigmoid gate; every step is a device op (see moe.h), and short
 * passes are routed on the device where it can. */
#include "moe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "branch_rt.h"
#include "context.h"

int hc_moe_buffer_width(const hc_model_config *c, hc_buf b, int *rows_per_token)
{
    *rows_per_token = 1;
    if (c->n_expert <= 0) return 0;
    switch (b) {
    case HC_BUF_MOE_X: case HC_BUF_MOE_OUT: *rows_per_token = c->n_expert_used; return c->dim;
    case HC_BUF_MOE_GATE: case HC_BUF_MOE_UP: case HC_BUF_MOE_HIDDEN: *rows_per_token = c->n_expert_used; return c->expert_ffn_dim;
    case HC_BUF_SHEXP_GATE: case HC_BUF_SHEXP_UP: case HC_BUF_SHEXP_HIDDEN: return c->shexp_ffn_dim;
    default: return 0;
    }
}

int hc_moe_device_rows(const hc_model_config *c)
{
    long per_expert = (long)HC_MOE_DEVICE_ROWS_PER_EXPERT * (c->n_expert > 0 ? c->n_expert : 0);
    if (per_expert > HC_MOE_DEVICE_ROWS_MAX) per_expert = HC_MOE_DEVICE_ROWS_MAX;
    return per_expert > HC_MOE_DEVICE_ROWS ? (int)per_expert : HC_MOE_DEVICE_ROWS;
}

hc_status hc_moe_ctx_create(hc_context *c, int device_rows, hc_moe_ctx **out)
{
    const hc_model_config *cfg = &c->model->cfg;
    int E = cfg->n_expert, rows = c->n_batch * cfg->n_expert_used;
    hc_moe_ctx *m = calloc(1, sizeof *m);
    if (!m) return hc_error(HC_E_NOMEM, "context: out of memory for the experts' routing");
    hc_moe_routing *r = &m->route;
    r->layer = -1;
    r->n_expert = E;
    r->k = cfg->n_expert_used;
    hc_device *d = c->dev;
    m->device_rows = device_rows < 0 ? 0 : device_rows ? device_rows : hc_moe_device_rows(cfg);
    if (m->device_rows > rows) m->device_rows = rows;
    hc_status st = d->ops->alloc(d, (size_t)c->n_batch * E * sizeof(float), (void **)&m->dev_logits);
    if (st == HC_OK && d->ops->moe_topk && d->ops->matmul_id && d->ops->moe_combine) { /* routing on the device */
        if (m->device_rows > 0) st = d->ops->alloc(d, (size_t)m->device_rows * sizeof *m->dev_ids, (void **)&m->dev_ids);
        /* every row's: the host's routing of a longer pass combines there too (run_combine) */
        if (st == HC_OK) st = d->ops->alloc(d, (size_t)rows * sizeof *m->dev_weights, (void **)&m->dev_weights);
        if (st == HC_OK && !(m->dev_layer_ok = malloc((size_t)cfg->n_layer))) st = hc_error(HC_E_NOMEM, "context: out of memory");
        if (st == HC_OK) memset(m->dev_layer_ok, -1, (size_t)cfg->n_layer);
    }
    if (st == HC_OK &&
        (!(m->logits = malloc((size_t)c->n_batch * E * sizeof *m->logits)) || !(m->probs = malloc((size_t)E * sizeof *m->probs)) ||
         !(m->order = malloc((size_t)E * sizeof *m->order)) || !(r->seg_off = malloc((size_t)(E + 1) * sizeof *r->seg_off)) ||
         !(r->row_token = malloc((size_t)rows * sizeof *r->row_token)) ||
         !(r->row_weight = malloc((size_t)rows * sizeof *r->row_weight)) ||
         !(r->tok_expert = malloc((size_t)rows * sizeof *r->tok_expert)) ||
         !(r->tok_weight = malloc((size_t)rows * sizeof *r->tok_weight)) || !(r->tok_row = malloc((size_t)rows * sizeof *r->tok_row))))
        st = hc_error(HC_E_NOMEM, "context: out of memory for the experts' routing");
    if (st != HC_OK) {
        hc_moe_ctx_free(c, m);
        return st;
    }
    *out = m;
    return HC_OK;
}

void hc_moe_ctx_free(hc_context *c, hc_moe_ctx *m)
{
    if (!m) return;
    c->dev->ops->free(c->dev, m->dev_logits);
    c->dev->ops->free(c->dev, m->dev_ids);
    c->dev->ops->free(c->dev, m->dev_weights);
    free(m->dev_layer_ok);
    hc_moe_routing *r = &m->route;
    free(m->logits);
    free(m->probs);
    free(m->order);
    free(r->seg_off);
    free(r->row_token);
    free(r->row_weight);
    free(r->tok_expert);
    free(r->tok_weight);
    free(r->tok_row);
    free(m);
}

hc_status hc_moe_attach_branches(hc_context *c, hc_stage *s, const hc_comp_ops *comp, int max_rank, int *any)
{
    const hc_model_config *cfg = &c->model->cfg;
    if (s->layer < 0 || s->layer >= cfg->n_layer || s->proj < HC_PROJ_GATE || s->proj > HC_PROJ_DOWN)
        return hc_error(HC_E_STATE, "stage %s is not an expert projection", s->name);
    hc_branch *arr = c->model->layers[s->layer].moe.branch[s->proj - HC_PROJ_GATE];
    int max_stored = 0;
    for (int e = 0; arr && e < cfg->n_expert; e++) {
        if (arr[e].rank <= 0) continue;
        if (!comp->supports(arr[e].dtype))
            return hc_error(HC_E_PLUGIN, "the compensation kernel cannot apply %s branches (%s)", hc_dtype_name(arr[e].dtype), arr[e].name);
        if (arr[e].rank > max_stored) max_stored = arr[e].rank;
    }
    if (!max_stored) return HC_OK;
    s->expert_branch = arr;
    s->branch_enabled = s->branch_enabled != -1;
    s->active_rank = max_rank > 0 && max_rank < max_stored ? max_rank : max_stored;
    *any = 1;
    return HC_OK;
}

int hc_moe_stage_branches_run(const hc_stage *s) { return s->expert_branch && s->branch_enabled > 0 && s->active_rank > 0; }

hc_tensor hc_moe_expert_view(const hc_tensor *t, int e)
{
    int64_t n = t->ne[2] > 1 ? t->ne[2] : 1;
    size_t slice = t->nbytes / (size_t)n;
    hc_tensor v = *t;
    v.n_dims = 2;
    v.ne[2] = v.ne[3] = 1;
    v.data = (char *)t->data + (size_t)e * slice;
    v.nbytes = slice;
    return v;
}

/* ---------------- routing ---------------- */

void hc_moe_route_token(const float *logits, int n, int k, int norm, float *probs, int *order, int *experts, float *weights)
{
    float mx = logits[0];
    for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += probs[i] = expf(logits[i] - mx);
    for (int i = 0; i < n; i++) probs[i] = (float)(probs[i] / sum);
    /* partial selection sort (k is small); equal probabilities: the lower index first */
    for (int i = 0; i < n; i++) order[i] = i;
    for (int j = 0; j < k; j++) {
        int best = j;
        for (int i = j + 1; i < n; i++) {
            float pi = probs[order[i]], pb = probs[order[best]];
            if (pi > pb || (pi == pb && order[i] < order[best])) best = i;
        }
        int tmp = order[j];
        order[j] = order[best];
        order[best] = tmp;
    }
    float wsum = 0;
    for (int j = 0; j < k; j++) {
        experts[j] = order[j];
        weights[j] = probs[order[j]];
        wsum += weights[j];
    }
    if (norm && wsum > 0)
        for (int j = 0; j < k; j++) weights[j] /= wsum;
}

void hc_moe_rows_by_expert(const int *ids, int n, int n_expert, int *start, int *order)
{
    memset(start, 0, (size_t)(n_expert + 1) * sizeof *start);
    for (int r = 0; r < n; r++) start[ids[r] + 1]++;
    for (int e = 0; e < n_expert; e++) start[e + 1] += start[e];
    for (int r = 0; r < n; r++) order[start[ids[r]]++] = r; /* start[e]: now expert e's end */
    memmove(start + 1, start, (size_t)n_expert * sizeof *start);
    start[0] = 0;
}

/* Whether route stage s's layer is routed on the device in this pass of n tokens: the device has the
 * ops and reads the layer's expert weights by id (asked once per layer), the rows fit, and nothing on
 * the host needs the routing before the device has it: no observer, and an expert branch that runs
 * (those of the stages after s in its layer) only where its job reads the ids from the device. */
static int routed_on_device(hc_context *c, const hc_stage *s, int n)
{
    hc_moe_ctx *m = c->moe;
    hc_device *d = c->dev;
    const hc_model_config *cfg = &c->model->cfg;
    if (!m->dev_ids || m->observer || c->observer || n * cfg->n_expert_used > m->device_rows) return 0;
    if (s->layer < 0 || s->layer >= cfg->n_layer) return 0;
    for (const hc_stage *q = s + 1; q < c->stages + c->n_stages && q->layer == s->layer; q++)
        if (c->brt && hc_moe_stage_branches_run(q) && !hc_branch_rt_reads_device_routing(c->brt))
            return 0;
    signed char *ok = &m->dev_layer_ok[s->layer];
    if (*ok < 0) {
        const hc_moe_layer *L = &c->model->layers[s->layer].moe;
        *ok = 1;
        for (int p = 0; p < HC_EXP_COUNT && *ok; p++) *ok = d->ops->matmul_id(d, &L->exps[p], NULL, NULL, 1, NULL, 0) == HC_OK;
        hc_clear_error();
    }
    return *ok;
}

/* n rows of width floats at p (device memory) as an f32 table for get_rows. */
static hc_tensor rows_of(const float *p, int width, int n, hc_device *d)
{
    return (hc_tensor){ .name = "moe rows", .dtype = HC_F32, .n_dims = 2, .ne = { width, n, 1, 1 }, .data = (void *)p,
                        .nbytes = (size_t)width * (size_t)n * sizeof(float), .device = d };
}

/* Router logits, top-k per token, the rows grouped by expert, in0's rows gathered into out; or all of
 * it on the device (routed_on_device), its rows token-major and not gathered. A device that combines
 * on its own (moe_combine) gathers with one get_rows and is given the weights now (the stream is idle
 * after the logits' download), not an op per row. */
static hc_status run_route(hc_context *c, const hc_stage *s, int n)
{
    hc_device *d = c->dev;
    hc_moe_ctx *m = c->moe;
    hc_moe_routing *r = &m->route;
    const hc_model_config *cfg = &c->model->cfg;
    int E = cfg->n_expert, k = cfg->n_expert_used, dim = c->width[s->in0];
    const float *xn = c->buf[s->in0];
    float *moe_x = c->buf[s->out];
    hc_status st = d->ops->matmul(d, s->weight, xn, m->dev_logits, n);
    if (st != HC_OK) return st;
    r->on_device = routed_on_device(c, s, n);
    r->layer = s->layer;
    r->n_tok = n;
    r->k = k;
    r->n_rows = n * k;
    r->src = xn;
    r->gathered = moe_x;
    r->dev_combine = 0;
    if (r->on_device) {
        return d->ops->moe_topk(d, m->dev_logits, n, E, k, cfg->norm_topk_prob, m->dev_ids, m->dev_weights);
    }
    st = d->ops->download(d, m->logits, m->dev_logits, (size_t)n * E * sizeof(float));
    if (st != HC_OK) return st;
    for (int t = 0; t < n; t++) {
        const float *lg = m->logits + (size_t)t * E;
        for (int e = 0; e < E; e++)
            if (!isfinite(lg[e])) return hc_error(HC_E_NUMERIC, "router of layer %d: logit %d of token %d is %g", s->layer, e, t, lg[e]);
        hc_moe_route_token(lg, E, k, cfg->norm_topk_prob, m->probs, m->order, r->tok_expert + (size_t)t * k,
                           r->tok_weight + (size_t)t * k);
    }
    /* expert e's rows in token order: row_token holds the choices (t k + j) in that order, then tokens */
    hc_moe_rows_by_expert(r->tok_expert, r->n_rows, E, r->seg_off, r->row_token);
    for (int row = 0; row < r->n_rows; row++) {
        int choice = r->row_token[row];
        r->tok_row[choice] = row;
        r->row_weight[row] = r->tok_weight[choice];
        r->row_token[row] = choice / k;
    }
    r->dev_combine = d->ops->moe_combine && m->dev_weights;
    if (r->dev_combine) {
        _Static_assert(sizeof(int) == sizeof(int32_t), "the routing's rows are int32 ids");
        hc_tensor t = rows_of(xn, dim, n, d);
        st = d->ops->upload(d, m->dev_weights, r->tok_weight, (size_t)r->n_rows * sizeof(float));
        return st == HC_OK ? d->ops->get_rows(d, &t, (const int32_t *)r->row_token, r->n_rows, moe_x) : st;
    }
    for (int row = 0; row < r->n_rows && st == HC_OK; row++)
        st = d->ops->copy(d, moe_x + (size_t)row * dim, xn + (size_t)r->row_token[row] * dim, (size_t)dim * sizeof(float));
    return st;
}

/* Each routed expert's slice of the 3-D weight times its rows of in0. */
static hc_status run_expert_linear(hc_context *c, const hc_stage *s)
{
    hc_device *d = c->dev;
    hc_moe_ctx *m = c->moe;
    const hc_moe_routing *r = &m->route;
    if (r->layer != s->layer) return hc_error(HC_E_STATE, "stage %s runs before its layer's routing", s->name);
    int in = (int)s->weight->ne[0], out = (int)s->weight->ne[1];
    const float *x = c->buf[s->in0];
    float *y = c->buf[s->out];
    if (r->on_device) { /* gate and up read the route's input rows, each k times (x_div) */
        int from_src = x == r->gathered;
        return d->ops->matmul_id(d, s->weight, m->dev_ids, from_src ? r->src : x, from_src ? r->k : 1, y, r->n_rows);
    }
    for (int e = 0; e < r->n_expert; e++) {
        int rows = r->seg_off[e + 1] - r->seg_off[e];
        if (!rows) continue;
        const float *xe = x + (size_t)r->seg_off[e] * in;
        hc_status st;
        if (m->observer && s->proj != HC_PROJ_UP &&
            (st = m->observer(m->observer_ctx, s->layer, s->proj, e, xe, rows, in)) != HC_OK)
            return st;
        hc_tensor w = hc_moe_expert_view(s->weight, e);
        st = d->ops->matmul(d, &w, xe, y + (size_t)r->seg_off[e] * out, rows);
        if (st != HC_OK) return hc_error_context(st, "expert %d: ", e);
    }
    return HC_OK;
}

/* out[t] = sum over token t's choices of weight * in0[row], best choice first. Routed on the host
 * and combined on the device (dev_combine): the rows put in token order first, into the route's
 * gathered input rows (moe_x, read by now), then moe_combine. */
static hc_status run_combine(hc_context *c, const hc_stage *s, int n)
{
    hc_device *d = c->dev;
    const hc_moe_routing *r = &c->moe->route;
    if (r->layer != s->layer || r->n_tok != n) return hc_error(HC_E_STATE, "stage %s runs before its layer's routing", s->name);
    int dim = c->width[s->out];
    float *y = c->buf[s->in0], *out = c->buf[s->out];
    if (r->on_device) return d->ops->moe_combine(d, y, c->moe->dev_weights, n, r->k, dim, out);
    hc_status st = HC_OK;
    if (r->dev_combine) {
        float *tok_major = (float *)r->gathered;
        hc_tensor t = rows_of(y, dim, r->n_rows, d);
        st = d->ops->get_rows(d, &t, (const int32_t *)r->tok_row, r->n_rows, tok_major);
        return st == HC_OK ? d->ops->moe_combine(d, tok_major, c->moe->dev_weights, n, r->k, dim, out) : st;
    }
    for (int row = 0; row < r->n_rows && st == HC_OK; row++) st = d->ops->scale(d, y + (size_t)row * dim, (size_t)dim, r->row_weight[row]);
    for (int t = 0; t < n && st == HC_OK; t++) {
        float *o = out + (size_t)t * dim;
        st = d->ops->copy(d, o, y + (size_t)r->tok_row[t * r->k] * dim, (size_t)dim * sizeof(float));
        for (int j = 1; j < r->k && st == HC_OK; j++) st = d->ops->add(d, o, y + (size_t)r->tok_row[t * r->k + j] * dim, (size_t)dim);
    }
    return st;
}

/* out[t] *= sigmoid(weight . in0[t]): on the device (gate_rows), else through the host */
static hc_status run_shexp_gate(hc_context *c, const hc_stage *s, int n)
{
    hc_device *d = c->dev;
    hc_moe_ctx *m = c->moe;
    int dim = c->width[s->out];
    hc_tensor w = *s->weight; /* [dim] as a [dim, 1] matrix */
    w.n_dims = 2;
    w.ne[1] = 1;
    hc_status st = d->ops->matmul(d, &w, c->buf[s->in0], m->dev_logits, n);
    if (st == HC_OK && d->ops->gate_rows) return d->ops->gate_rows(d, c->buf[s->out], m->dev_logits, n, dim);
    if (st == HC_OK) st = d->ops->download(d, m->logits, m->dev_logits, (size_t)n * sizeof(float));
    for (int t = 0; t < n && st == HC_OK; t++) {
        float g = 1.0f / (1.0f + expf(-m->logits[t]));
        st = d->ops->scale(d, c->buf[s->out] + (size_t)t * dim, (size_t)dim, g);
    }
    return st;
}

hc_status hc_moe_run_stage(hc_context *c, const hc_stage *s, int n)
{
    if (!c->moe) return hc_error(HC_E_STATE, "stage %s: the model has no experts", s->name);
    switch (s->op) {
    case HC_OP_MOE_ROUTE: return run_route(c, s, n);
    case HC_OP_MOE_LINEAR: return run_expert_linear(c, s);
    case HC_OP_MOE_ACT: {
        const hc_moe_routing *r = &c->moe->route;
        if (r->layer != s->layer) return hc_error(HC_E_STATE, "stage %s runs before its layer's routing", s->name);
        return c->dev->ops->swiglu(c->dev, c->buf[s->in0], c->buf[s->in1], c->buf[s->out], (size_t)r->n_rows * c->width[s->out]);
    }
    case HC_OP_MOE_COMBINE: return run_combine(c, s, n);
    case HC_OP_SHEXP_GATE: return run_shexp_gate(c, s, n);
    default: return hc_error(HC_E_STATE, "stage %s: op %d is not a MoE op", s->name, (int)s->op);
    }
}
