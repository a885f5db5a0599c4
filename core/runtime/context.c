/* context.c: the inference context and the executor that runs the pipeline's stages on the
 * device for a batch of tokens (prompt processing) or a single token (decode). */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "host_pool.h"
#include "kv_window.h"
#include "moe.h"
#include "registry.h"
#include "step_hook.h"
#include "trace.h"

static int buffer_width(const hc_model_config *c, hc_buf b)
{
    switch (b) {
    case HC_BUF_X: case HC_BUF_XN: case HC_BUF_PROJ: return c->dim;
    case HC_BUF_Q: case HC_BUF_ATT: return c->n_head * c->head_dim;
    case HC_BUF_K: case HC_BUF_V: return c->n_head_kv * c->head_dim;
    case HC_BUF_GATE: case HC_BUF_UP: case HC_BUF_HIDDEN: return c->ffn_dim;
    case HC_BUF_LOGITS: return c->n_vocab;
    default: {
        int rows_per_token;
        return hc_moe_buffer_width(c, b, &rows_per_token); /* the experts' buffers (moe.c) */
    }
    }
}

void hc_context_free(hc_context *c)
{
    if (!c) return;
    hc_device *d = c->dev;
    for (int b = 0; b < HC_BUF_COUNT; b++) d->ops->free(d, c->buf[b]);
    d->ops->free(d, c->k_cache);
    hc_branch_rt_free(c->brt);
    hc_rank_control_free(&c->rank_control);
    hc_moe_ctx_free(c, c->moe);
    d->ops->free(d, c->v_cache);
    for (int i = 0; c->stage_ev && i < 2 * c->n_stages; i++)
        if (c->stage_ev[i]) d->ops->event_destroy(d, c->stage_ev[i]);
    free(c->stage_ev);
    free(c->pos);
    hc_kv_layout_free(c);
    free(c->stages);
    free(c->logits);
    free(c);
}

/* Gives every linear stage its branch (active rank capped by max_rank), then the branch runtime
 * with its host threads and the chosen scheduler. */
static hc_status attach_branches(hc_context *c, const hc_context_params *p, const hc_stage_sched *stage_sched)
{
    int any = 0;
    for (int i = 0; i < c->n_stages; i++) {
        hc_stage *s = &c->stages[i];
        if (s->op == HC_OP_MOE_LINEAR) { /* the experts' branches (moe.c) */
            hc_status st = hc_moe_attach_branches(c, s, p->comp, p->max_rank, &any);
            if (st != HC_OK) return st;
            continue;
        }
        if (s->op != HC_OP_LINEAR) continue;
        hc_branch *b = s->layer >= 0 ? &c->model->layers[s->layer].branch[s->proj] : &c->model->out_branch;
        if (b->rank <= 0) continue;
        if (!p->comp->supports(b->dtype))
            return hc_error(HC_E_PLUGIN, "the compensation kernel cannot apply %s branches (%s)", hc_dtype_name(b->dtype), b->name);
        s->branch = b;
        s->branch_enabled = s->branch_enabled != -1; /* a pipeline script may turn a branch off */
        s->active_rank = p->max_rank > 0 && p->max_rank < b->rank ? p->max_rank : b->rank;
        any = 1;
    }
    if (!any) return HC_OK;
    if (!p->sched) return hc_error(HC_E_ARG, "the model has compensation branches but no scheduler was chosen");
    hc_status st = hc_branch_rt_create(c, p->comp, p->host_threads, p->host_cpus, p->n_host_cpus, p->handoff, &c->brt);
    if (st != HC_OK) return st;
    int idx = hc_branch_rt_add_scheduler(c->brt, p->sched_name ? p->sched_name : "default", p->sched);
    if (idx < 0) return HC_E_PLUGIN;
    hc_branch_rt_use(c->brt, idx);
    /* a script's scheduler choices: per stage, else its global `sched`, else the one given */
    for (int i = 0; stage_sched && i < c->n_stages; i++) {
        const char *name = stage_sched[i].name[0] ? stage_sched[i].name : c->source->default_sched(c->source->self);
        if (!name[0] || !c->stages[i].branch) continue;
        const hc_plugin *sp = p->registry ? hc_registry_find(p->registry, HC_PLUGIN_SCHED, name) : NULL;
        if (!sp) return hc_error(HC_E_SCRIPT, "%s: stage %s asks for scheduler '%s', which is not loaded", c->source->name, c->stages[i].name, name);
        int k = hc_branch_rt_add_scheduler(c->brt, name, sp->desc->ops);
        if (k < 0) return HC_E_PLUGIN;
        c->stages[i].sched = k;
    }
    return HC_OK;
}

/* The KV cache's element type: f32 unless f16 is asked for (exact against the reference forward);
 * f16 asked of a device without store_rows is refused. */
static hc_status kv_cache_dtype(const hc_device *dev, hc_kv_type want, hc_dtype *out)
{
    if (want != HC_KV_AUTO && want != HC_KV_F32 && want != HC_KV_F16)
        return hc_error(HC_E_ARG, "KV cache type %d is neither f32 nor f16", (int)want);
    int f16 = want == HC_KV_F16;
    if (f16 && !dev->ops->store_rows)
        return hc_error(HC_E_UNSUPPORTED, "device '%s' cannot keep an f16 KV cache (it has no store_rows)", dev->name);
    *out = f16 ? HC_F16 : HC_F32;
    return HC_OK;
}

static size_t kv_elem_bytes(const hc_context *c) { return c->kv_dtype == HC_F16 ? sizeof(uint16_t) : sizeof(float); }

typedef struct fit_check {
    hc_device *dev;
    hc_status st;
    size_t unplaced;            /* bytes of weights not yet on the device */
} fit_check;

static void fit_check_tensor(hc_tensor *t, void *arg)
{
    fit_check *f = arg;
    if (!t->data || t->device == f->dev) return;
    f->unplaced += t->nbytes;
    if (f->st == HC_OK && f->dev->ops->check_weights) f->st = f->dev->ops->check_weights(f->dev, t);
}

/* On a device with memory of its own, before anything is copied there: every weight must have a
 * kernel (check_weights), and the backbone, the KV cache, the activations and the branches' copies
 * must fit the memory the device has left (mem_info). Both are said with names and sizes. */
static hc_status check_device_fit(hc_model *m, hc_device *dev, const hc_context_params *p, int n_ctx, int n_batch,
                                  size_t kv_elem)
{
    if (dev->host_memory) return HC_OK;
    fit_check f = { .dev = dev, .st = HC_OK };
    hc_model_for_each_tensor(m, fit_check_tensor, &f);
    if (f.st != HC_OK) return hc_error_context(f.st, "%s cannot run on device '%s': ", m->path ? m->path : "the model", dev->name);
    if (!dev->ops->mem_info) return HC_OK;
    const hc_model_config *cfg = &m->cfg;
    size_t backbone = f.unplaced;
    size_t kv = 2 * (size_t)cfg->n_layer * (size_t)n_ctx * (size_t)cfg->n_head_kv * (size_t)cfg->head_dim * kv_elem;
    size_t act = 0;
    for (int b = 0; b < HC_BUF_COUNT; b++) {
        int rows_per_token = 1, w = buffer_width(cfg, b);
        hc_moe_buffer_width(cfg, b, &rows_per_token);
        if (w > 0) act += (size_t)n_batch * rows_per_token * (size_t)w * sizeof(float);
    }
    /* the branches are copied too (for schedulers that run them on the device), at full rank */
    size_t branches = p && p->comp ? hc_model_branch_bytes(m) : 0;
    size_t need = backbone + kv + act + branches, avail = 0, total = 0;
    if (dev->ops->mem_info(dev, &avail, &total) != HC_OK) return HC_OK; /* the device cannot say: it will fail at alloc */
    if (need > avail)
        return hc_error(HC_E_NOMEM, "%s does not fit device '%s': it needs %.1f MiB (backbone %.1f, KV cache of %d tokens %.1f, "
                                    "activations %.1f, branches %.1f) but %.1f MiB of its %.1f MiB are available",
                        m->path ? m->path : "the model", dev->name, need / 1048576.0, backbone / 1048576.0, n_ctx, kv / 1048576.0,
                        act / 1048576.0, branches / 1048576.0, avail / 1048576.0, total / 1048576.0);
    return HC_OK;
}

hc_status hc_context_create(hc_model *m, hc_device *dev, const hc_context_params *p, hc_context **out)
{
    const hc_model_config *cfg = &m->cfg;
    int n_ctx = p && p->n_ctx > 0 ? p->n_ctx : (cfg->n_ctx_train < 4096 ? cfg->n_ctx_train : 4096);
    int n_batch = p && p->n_batch > 0 ? p->n_batch : 128;
    if (n_ctx > (1 << 20)) return hc_error(HC_E_ARG, "context of %d tokens is too large", n_ctx);
    if (n_batch > n_ctx) n_batch = n_ctx;
    hc_dtype kv_dtype = HC_F32;
    hc_status st = kv_cache_dtype(dev, p ? p->kv_type : HC_KV_AUTO, &kv_dtype);
    if (st != HC_OK) return st;
    st = check_device_fit(m, dev, p, n_ctx, n_batch, kv_dtype == HC_F16 ? sizeof(uint16_t) : sizeof(float));
    if (st != HC_OK) return st;
    st = hc_model_place(m, dev);
    if (st != HC_OK) return st;
    hc_context *c = calloc(1, sizeof *c);
    if (!c) return hc_error(HC_E_NOMEM, "context: out of memory");
    c->model = m;
    c->dev = dev;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->kv_dtype = kv_dtype;
    size_t kv_rows = 0;
    st = hc_kv_layout_create(c, &kv_rows);
    size_t kv = kv_rows * cfg->n_head_kv * cfg->head_dim * kv_elem_bytes(c);
    if (st == HC_OK) st = dev->ops->alloc(dev, kv, (void **)&c->k_cache);
    if (st == HC_OK) st = dev->ops->alloc(dev, kv, (void **)&c->v_cache);
    for (int b = 0; b < HC_BUF_COUNT && st == HC_OK; b++) {
        c->width[b] = p && p->layers_only && b == HC_BUF_LOGITS ? 0 : buffer_width(cfg, b);
        int rows_per_token = 1; /* a MoE buffer holds n_expert_used routed rows per token */
        hc_moe_buffer_width(cfg, b, &rows_per_token);
        if (c->width[b] > 0)
            st = dev->ops->alloc(dev, (size_t)n_batch * rows_per_token * c->width[b] * sizeof(float), (void **)&c->buf[b]);
    }
    if (st == HC_OK && cfg->n_expert > 0) st = hc_moe_ctx_create(c, p ? p->moe_device_rows : 0, &c->moe);
    if (st == HC_OK && (!(c->pos = malloc((size_t)n_batch * sizeof *c->pos)) ||
                        (!(p && p->layers_only) && !(c->logits = malloc((size_t)n_batch * cfg->n_vocab * sizeof(float))))))
        st = hc_error(HC_E_NOMEM, "context: out of memory");
    hc_stage_sched *stage_sched = NULL;
    c->registry = p ? p->registry : NULL;
    if (st == HC_OK) {
        if (p && p->pipeline) {
            c->source = p->pipeline;
            st = p->pipeline->build(p->pipeline->self, m, dev, &c->stages, &c->n_stages, &stage_sched);
        }
        else st = hc_pipeline_default(m, dev, &c->stages, &c->n_stages);
    }
    for (int i = 0; st == HC_OK && i < c->n_stages; i++)
        if (c->stages[i].op == HC_OP_GEGLU && !dev->ops->geglu)
            st = hc_error(HC_E_UNSUPPORTED, "device '%s' has no GeGLU (gelu-gated FFN) op, which %s needs", dev->name, cfg->arch);
    if (st == HC_OK && p && p->comp) st = attach_branches(c, p, stage_sched);
    c->stage_timing_period = HC_STAGE_TIMING_PERIOD;
    if (st == HC_OK && !dev->host_memory && dev->ops->event_elapsed && dev->ops->event_create) { /* real stage times */
        if (!(c->stage_ev = calloc((size_t)(2 * c->n_stages), sizeof *c->stage_ev))) st = hc_error(HC_E_NOMEM, "context: out of memory");
        for (int i = 0; i < 2 * c->n_stages && st == HC_OK; i++) st = dev->ops->event_create(dev, &c->stage_ev[i]);
    }
    if (st == HC_OK && p) c->rank_control.host_budget = p->host_budget;
    free(stage_sched);
    if (st != HC_OK) {
        hc_context_free(c);
        return hc_error_context(st, "creating a context of %d tokens: ", n_ctx);
    }
    *out = c;
    return HC_OK;
}

void hc_context_reset(hc_context *c)
{
    c->n_past = 0;
    hc_kv_reset(c);
}

hc_status hc_context_truncate(hc_context *c, int n)
{
    if (n < 0 || n > c->n_past) return hc_error(HC_E_ARG, "cannot truncate a context of %d tokens to %d", c->n_past, n);
    hc_status st = hc_kv_truncate(c, n);
    if (st != HC_OK) return st;
    c->n_past = n;
    return HC_OK;
}

/* The RoPE base of a layer: a sliding-window layer may have its own (gemma3's local layers). */
static float rope_base(const hc_context *c, int layer)
{
    const hc_model_config *cfg = &c->model->cfg;
    return hc_kv_layer_window(c, layer) && cfg->rope_theta_swa > 0.0f ? cfg->rope_theta_swa : cfg->rope_theta;
}

/* logits = cap * tanh(logits / cap) (final logit soft-capping) */
static void softcap(float *x, size_t n, float cap)
{
    for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

/* Where a layer's keys and values of this pass's tokens go in the KV cache (within its window). */
static void kv_rows(const hc_context *c, int layer, char **k, char **v)
{
    size_t off = hc_kv_offset(c, layer, c->n_past);
    *k = (char *)c->k_cache + off;
    *v = (char *)c->v_cache + off;
}

/* Runs one stage on n rows of its buffers. */
static hc_status run_stage(hc_context *c, const hc_stage *s, const int32_t *tokens, int n)
{
    hc_device *d = c->dev;
    const hc_model_config *cfg = &c->model->cfg;
    float *in0 = s->in0 >= 0 ? c->buf[s->in0] : NULL, *in1 = s->in1 >= 0 ? c->buf[s->in1] : NULL;
    float *out = s->out >= 0 ? c->buf[s->out] : NULL;
    size_t kv_dim = (size_t)cfg->n_head_kv * cfg->head_dim;
    hc_status st;
    switch (s->op) {
    case HC_OP_EMBED:
        st = d->ops->get_rows(d, s->weight, tokens, n, out);
        if (st == HC_OK && cfg->embd_scale > 0.0f) st = d->ops->scale(d, out, (size_t)n * c->width[s->out], cfg->embd_scale);
        return st;
    case HC_OP_NORM:
        return d->ops->rmsnorm(d, in0, s->weight->data, out, n, c->width[s->in0], cfg->rms_eps);
    case HC_OP_LINEAR:
        if (c->observer && (st = c->observer(c->observer_ctx, s, in0, n, c->width[s->in0])) != HC_OK) return st;
        st = d->ops->matmul(d, s->weight, in0, out, n);
        if (st == HC_OK && s->bias) st = d->ops->add_bias(d, out, s->bias->data, n, c->width[s->out]);
        return st;
    case HC_OP_ROPE: {
        float theta = rope_base(c, s->layer);
        if (d->ops->rope_qk) /* both in one op, where the device has it */
            return d->ops->rope_qk(d, in0, in1, n, cfg->n_head, cfg->n_head_kv, cfg->head_dim, cfg->n_rot, c->pos, theta,
                                   cfg->rope_mode);
        st = d->ops->rope(d, in0, n, cfg->n_head, cfg->head_dim, cfg->n_rot, c->pos, theta, cfg->rope_mode);
        if (st == HC_OK) st = d->ops->rope(d, in1, n, cfg->n_head_kv, cfg->head_dim, cfg->n_rot, c->pos, theta, cfg->rope_mode);
        return st;
    }
    case HC_OP_KV_STORE: { /* an f16 cache is written by the device's conversion (store_rows) */
        size_t count = (size_t)n * kv_dim;
        char *k, *v;
        kv_rows(c, s->layer, &k, &v);
        if (c->kv_dtype != HC_F32) {
            st = d->ops->store_rows(d, k, c->kv_dtype, in0, count);
            return st == HC_OK ? d->ops->store_rows(d, v, c->kv_dtype, in1, count) : st;
        }
        st = d->ops->copy(d, k, in0, count * sizeof(float));
        return st == HC_OK ? d->ops->copy(d, v, in1, count * sizeof(float)) : st;
    }
    case HC_OP_ATTENTION: /* within the layer's window, if it has one (kv_window.c) */
        return hc_kv_attention(c, s->layer, in0, out, n, cfg->attn_scale > 0.0f ? cfg->attn_scale : 1.0f / sqrtf((float)cfg->head_dim));
    case HC_OP_SWIGLU:
        return d->ops->swiglu(d, in0, in1, out, (size_t)n * c->width[s->out]);
    case HC_OP_GEGLU:
        return d->ops->geglu(d, in0, in1, out, (size_t)n * c->width[s->out]);
    case HC_OP_ADD:
        return d->ops->add(d, out, in0, (size_t)n * c->width[s->out]);
    case HC_OP_HEAD_NORM: { /* rows as long as the weight: a head (qwen3) or all of q or k (olmoe) */
        int len = (int)s->weight->ne[0];
        return d->ops->rmsnorm(d, in0, s->weight->data, in0, n * (c->width[s->in0] / len), len, cfg->rms_eps);
    }
    case HC_OP_MOE_ROUTE: case HC_OP_MOE_LINEAR: case HC_OP_MOE_ACT: case HC_OP_MOE_COMBINE: case HC_OP_SHEXP_GATE:
        return hc_moe_run_stage(c, s, n);
    case HC_OP_COUNT: break;
    }
    return hc_error(HC_E_STATE, "stage %s: unknown op %d", s->name, (int)s->op);
}

/* 1 when some stage's branch (or its experts' branches) would run in a pass. */
static int any_branch_enabled(const hc_context *c)
{
    for (int i = 0; c->brt && i < c->n_stages; i++)
        if ((c->stages[i].branch || c->stages[i].expert_branch) && c->stages[i].branch_enabled && c->stages[i].active_rank > 0)
            return 1;
    return 0;
}

/* 1 when stage times steer something as they come: the rank controller or the pipeline's on_step
   policy, while a branch runs. Otherwise only reports read them (context.h: timed more seldom). */
static int times_steer(const hc_context *c)
{
    return (c->rank_control.host_budget > 0 || (c->source && c->source->on_step)) && any_branch_enabled(c);
}

/* Whether the last token's row alone goes on from stage s: past the layers only its scores are wanted. */
static int drops_rows(const hc_stage *s, int rows, int logits_all)
{
    return s->layer < 0 && s->op != HC_OP_EMBED && rows > 1 && !logits_all;
}

/* Whether nothing of the branches comes between stage i and stage i + 1 (always, without branches). */
static int joinable(const hc_context *c, int i) { return !c->brt || hc_branch_rt_joinable(c->brt, i); }

/* Stage i and the stages after it as one device op, where the device has one and nothing of the
 * branches comes between them: a residual add and the norm of its sum (add_rmsnorm), RoPE and the KV
 * cache's store (rope_store), or linear stages that share their input (matmul_set: q, k and v; gate
 * and up). *more: the stages after i that ran with it; 0: none, and stage i did not run either. */
static hc_status run_joined(hc_context *c, int i, int rows, int logits_all, int *more)
{
    hc_device *d = c->dev;
    const hc_stage *a = &c->stages[i];
    *more = 0;
    if (i + 1 >= c->n_stages || drops_rows(&c->stages[i + 1], rows, logits_all) || !joinable(c, i)) return HC_OK;
    if (a->op == HC_OP_ADD && d->ops->add_rmsnorm) {
        const hc_stage *b = &c->stages[i + 1];
        if (b->op != HC_OP_NORM || b->in0 != a->out) return HC_OK;
        *more = 1;
        return d->ops->add_rmsnorm(d, c->buf[a->out], c->buf[a->in0], b->weight->data, c->buf[b->out], rows,
                                   c->width[a->out], c->model->cfg.rms_eps);
    }
    if (a->op == HC_OP_ROPE && d->ops->rope_store) {
        const hc_stage *b = &c->stages[i + 1];
        const hc_model_config *cfg = &c->model->cfg;
        if (b->op != HC_OP_KV_STORE || b->in0 != a->in1) return HC_OK;
        char *k, *v;
        kv_rows(c, b->layer, &k, &v);
        *more = 1;
        return d->ops->rope_store(d, c->buf[a->in0], c->buf[a->in1], c->buf[b->in1], rows, cfg->n_head, cfg->n_head_kv,
                                  cfg->head_dim, cfg->n_rot, c->pos, rope_base(c, a->layer), cfg->rope_mode, k, v, c->kv_dtype);
    }
    if (a->op != HC_OP_LINEAR || !d->ops->matmul_set || c->observer) return HC_OK;
    const hc_tensor *w[HC_MATMUL_SET_MAX];
    float *y[HC_MATMUL_SET_MAX];
    int n = 0;
    for (; n < HC_MATMUL_SET_MAX && i + n < c->n_stages; n++) {
        const hc_stage *b = &c->stages[i + n];
        if (n && (b->op != HC_OP_LINEAR || b->in0 != a->in0 || b->out == a->in0 || drops_rows(b, rows, logits_all) ||
                  !joinable(c, i + n - 1)))
            break;
        w[n] = b->weight;
        y[n] = c->buf[b->out];
    }
    if (n < 2) return HC_OK;
    hc_status st = d->ops->matmul_set(d, n, w, c->buf[a->in0], y, rows);
    for (int k = 0; k < n && st == HC_OK; k++) {
        const hc_stage *b = &c->stages[i + k];
        if (b->bias) st = d->ops->add_bias(d, y[k], b->bias->data, rows, c->width[b->out]);
    }
    *more = n - 1;
    return st;
}

/* The stages of one forward pass, enqueued; *rows: the rows that reach the logits. Stages may run as one
 * op (run_joined): the first stage holds their time, the others' are empty. */
static hc_status run_stages(hc_context *c, const int32_t *tokens, int n, int logits_all, int timed, int *rows_out)
{
    hc_device *d = c->dev;
    int rows = n, skip = 0; /* skip: the stages to come that ran with an earlier one */
    for (int i = 0; i < c->n_stages; i++) {
        hc_stage *s = &c->stages[i];
        if (drops_rows(s, rows, logits_all)) {
            /* past the layers only the last token's scores are wanted */
            hc_status st = d->ops->copy(d, c->buf[HC_BUF_X], c->buf[HC_BUF_X] + (size_t)(n - 1) * c->width[HC_BUF_X],
                                        (size_t)c->width[HC_BUF_X] * sizeof(float));
            if (st != HC_OK) return st;
            rows = 1;
        }
        hc_status st = c->brt ? hc_branch_rt_before_stage(c->brt, i, rows) : HC_OK;
        uint64_t t0 = hc_now_ns();
        if (st == HC_OK && c->stage_ev && timed) st = d->ops->event_record(d, c->stage_ev[2 * i]);
        if (st == HC_OK && skip) {
            skip--;
        } else if (st == HC_OK) {
            st = run_joined(c, i, rows, logits_all, &skip);
            if (st == HC_OK && !skip) st = run_stage(c, s, tokens, rows);
        }
        if (st == HC_OK && c->stage_ev && timed) st = d->ops->event_record(d, c->stage_ev[2 * i + 1]);
        uint64_t host_ns = hc_now_ns() - t0; /* the time to enqueue it; the device's time follows the step */
        if (!c->stage_ev) {
            s->device_ns = host_ns;
            c->device_ns += s->device_ns;
        }
        if (c->trace) hc_trace_add(c->trace, s->name, 0, t0, host_ns);
        if (st == HC_OK && c->brt) st = hc_branch_rt_after_stage(c->brt, i, c->stage_ev ? 0 : s->device_ns);
        if (st != HC_OK) return hc_error_context(st, "stage %s: ", s->name);
    }
    *rows_out = rows;
    return c->brt ? hc_branch_rt_end_step(c->brt) : HC_OK;
}

/* One forward pass of n <= n_batch tokens. */
static hc_status forward(hc_context *c, const int32_t *tokens, int n, int logits_all)
{
    hc_device *d = c->dev;
    int n_vocab = c->model->cfg.n_vocab;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return hc_error(HC_E_ARG, "token id %d is out of the vocabulary (0..%d)", (int)tokens[i], n_vocab - 1);
        c->pos[i] = c->n_past + i;
    }
    hc_status kst = hc_kv_slide(c, n); /* room in the sliding-window layers' rows */
    if (kst != HC_OK) return kst;
    int rows = n;
    /* events around the stages every stage_timing_period-th pass (the context.h field), every
       HC_STAGE_TIMING_UNSTEERED times that many when only reports read them */
    int period = c->stage_timing_period;
    if (period > 1 && !times_steer(c)) period *= HC_STAGE_TIMING_UNSTEERED;
    const int timed = !c->stage_ev || period <= 1 || c->steps % period == 0;
    c->stage_timed = timed;
    /* a single-token pass, untimed (its events would cut the recording), may be replayed as graphs */
    const int graphed = n == 1 && d->ops->graph_step && !(c->stage_ev && timed);
    hc_status st = graphed ? d->ops->graph_step(d, 1) : HC_OK;
    if (st == HC_OK) st = run_stages(c, tokens, n, logits_all, timed, &rows);
    if (graphed) { /* ended even when the pass failed; its own error only when that is the first */
        hc_status gst = d->ops->graph_step(d, 0);
        if (st == HC_OK) st = gst;
    }
    if (st != HC_OK) return st;
    st = d->ops->download(d, c->logits, c->buf[HC_BUF_LOGITS], (size_t)rows * n_vocab * sizeof(float));
    if (st == HC_OK && c->brt) st = hc_branch_rt_step_done(c->brt);
    if (st == HC_OK && c->stage_ev) { /* the step is done on the device: read its stage times */
        uint64_t step_ns = 0; /* the download waited for the compute queue: its events are done */
        for (int i = 0; i < c->n_stages && st == HC_OK; i++) {
            hc_stage *s = &c->stages[i];
            if (timed) st = d->ops->event_elapsed(d, c->stage_ev[2 * i], c->stage_ev[2 * i + 1], &s->device_ns);
            step_ns += s->device_ns; /* untimed: the last pass's that was */
        }
        c->device_ns += step_ns;
        if (st == HC_OK && c->brt) st = hc_branch_rt_device_times(c->brt, step_ns);
    }
    if (st != HC_OK) return st;
    if (c->model->cfg.logit_softcap > 0.0f) softcap(c->logits, (size_t)rows * n_vocab, c->model->cfg.logit_softcap);
    c->n_past += n;
    return HC_OK;
}

hc_status hc_context_run_layer(hc_context *c, int layer, float *x, int n)
{
    hc_device *d = c->dev;
    if (layer < 0 || layer >= c->model->cfg.n_layer) return hc_error(HC_E_ARG, "run_layer: layer %d is out of range", layer);
    if (n <= 0 || n > c->n_batch) return hc_error(HC_E_ARG, "run_layer: %d rows do not fit the batch of %d", n, c->n_batch);
    if (c->n_past + n > c->n_ctx)
        return hc_error(HC_E_STATE, "context full: %d cached + %d new tokens exceed the context of %d", c->n_past, n, c->n_ctx);
    for (int i = 0; i < n; i++) c->pos[i] = c->n_past + i;
    size_t bytes = (size_t)n * c->width[HC_BUF_X] * sizeof(float);
    hc_status st = d->ops->upload(d, c->buf[HC_BUF_X], x, bytes);
    for (int i = 0; i < c->n_stages && st == HC_OK; i++) {
        const hc_stage *s = &c->stages[i];
        if (s->layer != layer) continue;
        if ((st = run_stage(c, s, NULL, n)) != HC_OK) return hc_error_context(st, "stage %s: ", s->name);
    }
    return st == HC_OK ? d->ops->download(d, x, c->buf[HC_BUF_X], bytes) : st;
}

hc_status hc_decode(hc_context *c, const int32_t *tokens, int n, int logits_all, const float **logits)
{
    if (!c->logits) return hc_error(HC_E_STATE, "decode: the context was made to run single layers only");
    if (n <= 0) return hc_error(HC_E_ARG, "decode: no tokens");
    if (logits_all && n > c->n_batch)
        return hc_error(HC_E_ARG, "decode: %d tokens with all logits exceed the batch of %d", n, c->n_batch);
    if (c->n_past + n > c->n_ctx)
        return hc_error(HC_E_STATE, "context full: %d cached + %d new tokens exceed the context of %d", c->n_past, n, c->n_ctx);
    for (int done = 0; done < n;) {
        int k = n - done < c->n_batch ? n - done : c->n_batch;
        hc_status st = forward(c, tokens + done, k, logits_all);
        if (st == HC_OK) st = hc_step_hooks_run(c, k);
        if (st != HC_OK) return st;
        done += k;
    }
    *logits = c->logits;
    return HC_OK;
}
