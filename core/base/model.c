/* model.c: the model in memory, whatever file it came from: projection names, owned buffers,
 * visiting the weight tensors, placement on a device, and the byte counts bench reports. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "hc/hc_quant.h"
#include "quant_format.h"

static const char *const proj_names[HC_PROJ_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
    "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp",
};

const char *hc_proj_name(hc_proj p) { return (p >= 0 && p < HC_PROJ_COUNT) ? proj_names[p] : "?"; }

hc_status hc_model_own(hc_model *m, void *buffer)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **p = realloc(m->owned, (size_t)cap * sizeof *p);
        if (!p) {
            free(buffer);
            return hc_error(HC_E_NOMEM, "%s: out of memory", m->path ? m->path : "model");
        }
        m->owned = p;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = buffer;
    return HC_OK;
}

void hc_model_for_each_tensor(hc_model *m, void (*fn)(hc_tensor *t, void *ctx), void *ctx)
{
    fn(&m->tok_embd, ctx);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        hc_layer *L = &m->layers[l];
        fn(&L->attn_norm, ctx);
        fn(&L->ffn_norm, ctx);
        for (int p = 0; p < HC_PROJ_COUNT; p++) {
            if (L->proj[p].data) fn(&L->proj[p], ctx);
            if (L->bias[p].data) fn(&L->bias[p], ctx);
        }
        if (L->attn_q_norm.data) fn(&L->attn_q_norm, ctx);
        if (L->attn_k_norm.data) fn(&L->attn_k_norm, ctx);
        if (L->attn_post_norm.data) fn(&L->attn_post_norm, ctx);
        if (L->ffn_post_norm.data) fn(&L->ffn_post_norm, ctx);
        if (L->moe.router.data) fn(&L->moe.router, ctx);
        for (int k = 0; k < HC_EXP_COUNT; k++)
            if (L->moe.exps[k].data) fn(&L->moe.exps[k], ctx);
        if (L->moe.shexp_gate.data) fn(&L->moe.shexp_gate, ctx);
    }
    fn(&m->out_norm, ctx);
    if (!m->cfg.tied_output) fn(&m->output, ctx);
}

typedef struct place_ctx {
    hc_model *m;
    hc_device *dev;
    hc_status st;
} place_ctx;

static void free_device_copy(hc_tensor *t, void *arg)
{
    place_ctx *c = arg;
    if (t->device == c->dev && !c->dev->host_memory && t->data) c->dev->ops->free(c->dev, t->data);
}

void hc_model_unplace(hc_model *m)
{
    if (m->device && !m->device->host_memory) {
        place_ctx c = { .m = m, .dev = m->device };
        hc_model_for_each_tensor(m, free_device_copy, &c);
    }
}

static void place_tensor(hc_tensor *t, void *arg)
{
    place_ctx *c = arg;
    if (c->st != HC_OK || t->device == c->dev) return;
    if (c->dev->host_memory) {
        t->device = c->dev;
        return;
    }
    void *dst;
    c->st = c->dev->ops->alloc(c->dev, t->nbytes, &dst);
    if (c->st == HC_OK) c->st = c->dev->ops->upload(c->dev, dst, t->data, t->nbytes);
    if (c->st != HC_OK) {
        hc_error_context(c->st, "placing %s on %s: ", t->name, c->dev->name);
        return;
    }
    t->data = dst;
    t->device = c->dev;
}

hc_status hc_model_place(hc_model *m, hc_device *dev)
{
    if (m->device && m->device != dev)
        return hc_error(HC_E_STATE, "%s: weights are already placed on %s", m->path, m->device->name);
    place_ctx c = { .m = m, .dev = dev, .st = HC_OK };
    m->device = dev;
    hc_model_for_each_tensor(m, place_tensor, &c);
    if (m->cfg.tied_output) m->output = m->tok_embd;
    return c.st;
}

static size_t tensor_bytes(const hc_tensor *t) { return t->data ? t->nbytes : 0; }

size_t hc_model_layer_bytes_per_token(const hc_model *m)
{
    size_t total = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const hc_layer *L = &m->layers[l];
        total += tensor_bytes(&L->attn_norm) + tensor_bytes(&L->ffn_norm);
        for (int p = 0; p < HC_PROJ_COUNT; p++) total += tensor_bytes(&L->proj[p]) + tensor_bytes(&L->bias[p]);
        total += tensor_bytes(&L->attn_q_norm) + tensor_bytes(&L->attn_k_norm);
        /* a MoE layer: the router, the shared expert's gate, and k of the E experts */
        total += tensor_bytes(&L->moe.router) + tensor_bytes(&L->moe.shexp_gate);
        for (int k = 0; k < HC_EXP_COUNT && m->cfg.n_expert > 0; k++)
            total += tensor_bytes(&L->moe.exps[k]) / (size_t)m->cfg.n_expert * (size_t)m->cfg.n_expert_used;
    }
    return total;
}

size_t hc_model_bytes_per_token(const hc_model *m)
{
    size_t total = hc_model_layer_bytes_per_token(m) + tensor_bytes(&m->out_norm) + tensor_bytes(&m->output);
    if (m->tok_embd.ne[1] > 0) total += tensor_bytes(&m->tok_embd) / (size_t)m->tok_embd.ne[1];
    return total;
}

size_t hc_branch_factor_bytes(const hc_branch *b, int rank)
{
    return (size_t)rank * (hc_dtype_row_bytes(b->dtype, b->in) + hc_dtype_row_bytes(b->dtype, b->out));
}

size_t hc_branch_bytes(const hc_branch *b)
{
    if (b->rank <= 0) return 0;
    return hc_branch_factor_bytes(b, b->rank) + (b->sigma ? (size_t)b->rank * sizeof(float) : 0);
}

size_t hc_model_branch_bytes(const hc_model *m)
{
    size_t total = hc_branch_bytes(&m->out_branch);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        for (int p = 0; p < HC_PROJ_COUNT; p++) total += hc_branch_bytes(&m->layers[l].branch[p]);
        for (int k = 0; k < HC_EXP_COUNT; k++)
            for (int e = 0; m->layers[l].moe.branch[k] && e < m->cfg.n_expert; e++) total += hc_branch_bytes(&m->layers[l].moe.branch[k][e]);
    }
    return total;
}

static void add_bytes(hc_tensor *t, void *ctx) { *(size_t *)ctx += t->data ? t->nbytes : 0; }

size_t hc_model_backbone_bytes(const hc_model *m)
{
    size_t total = 0;
    hc_model_for_each_tensor((hc_model *)m, add_bytes, &total);
    return total;
}
