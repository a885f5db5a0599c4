/* compress_plan.c: the compressor's plan: a job per linear layer (dense, each expert, the head with
 * --head-quant) whose shape the format holds, the rest kept as stored; sizes of what is written. */
#include "compress_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress_moe.h"
#include "compress_source.h"
#include "compress_tensor_quant.h"

hc_dtype hc_compress_branch_dtype(const hc_compress_job *j, hc_dtype requested)
{
    return requested == HC_Q8_0 && (j->in % 32 || j->out % 32) ? HC_F16 : requested;
}

size_t hc_compress_branch_cost(const hc_compress_job *j, hc_dtype requested)
{
    hc_dtype t = hc_compress_branch_dtype(j, requested);
    return hc_dtype_row_bytes(t, j->in) + hc_dtype_row_bytes(t, j->out) + sizeof(float);
}

hc_compress_job *hc_compress_job_of(const hc_compress_state *cs, const char *name)
{
    for (int i = 0; i < cs->n_jobs; i++)
        if (!strcmp(cs->jobs[i].weight->name, name) || (cs->jobs[i].parent && !strcmp(cs->jobs[i].parent->name, name)))
            return &cs->jobs[i];
    return NULL;
}

const float *hc_compress_job_weights(const hc_compress_job *j)
{
    const hc_tensor *t = j->parent ? j->parent : j->weight;
    if (t->dtype != HC_F32 || !t->data) return NULL;
    return (const float *)t->data + (j->parent ? (size_t)j->expert * (size_t)(j->in * j->out) : 0);
}

typedef struct sum_ctx {
    const hc_compress_state *cs;
    size_t kept, all, lookup;
} sum_ctx;

static void sum_tensor(hc_tensor *t, void *arg)
{
    sum_ctx *c = arg;
    size_t n = hc_source_raw_of(c->cs->model, t).nbytes;
    c->all += n;
    if (hc_compress_job_of(c->cs, t->name)) return;
    c->kept += n;
    /* an untied token-embedding table is a lookup: a token reads one of its rows */
    if (t == &c->cs->model->tok_embd && !c->cs->model->cfg.tied_output) c->lookup += n;
}

hc_status hc_compress_plan(hc_compress_state *cs)
{
    hc_model *m = cs->model;
    int n_max = m->cfg.n_layer * HC_PROJ_COUNT + 1 + hc_compress_expert_job_count(m);
    if (!(cs->jobs = calloc((size_t)n_max, sizeof *cs->jobs))) return hc_error(HC_E_NOMEM, "compress: out of memory");
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int p = 0; p < HC_PROJ_COUNT; p++) {
            hc_tensor *t = &m->layers[l].proj[p];
            if (!t->data) continue; /* not in this layer (a MoE layer has no dense ffn_gate/up/down) */
            cs->jobs[cs->n_jobs++] = (hc_compress_job){ .layer = l, .proj = p, .weight = t, .fmt = cs->fmt };
        }
    hc_status est = hc_compress_plan_experts(cs); /* every expert of a MoE layer is a layer of its own */
    if (est != HC_OK) return est;
    if (cs->head_fmt) cs->jobs[cs->n_jobs++] = (hc_compress_job){ .layer = -1, .proj = -1, .weight = &m->output, .fmt = cs->head_fmt };
    if ((est = hc_compress_tensor_quant_apply(cs)) != HC_OK) return est;
    /* a layer whose shape the format cannot hold stays as stored (as llama.cpp's quantize falls
       back for rows that are not a multiple of the block); the report says how many */
    size_t packed = 0;
    int kept = 0;
    for (int i = 0; i < cs->n_jobs; i++) {
        hc_compress_job *j = &cs->jobs[i];
        j->in = j->weight->ne[0];
        j->out = j->weight->ne[1];
        if (j->fmt->ops->check_shape(j->fmt->params, j->out, j->in) != HC_OK) {
            if (!cs->n_unfit++) snprintf(cs->unfit_reason, sizeof cs->unfit_reason, "%s: %s", j->weight->name, hc_last_error());
            continue;
        }
        j->packed_bytes = j->fmt->ops->packed_bytes(j->fmt->params, j->out, j->in);
        packed += j->packed_bytes;
        cs->jobs[kept++] = *j;
    }
    cs->n_jobs = kept;
    hc_clear_error();
    if (!kept) return hc_error(HC_E_ARG, "no linear layer can be stored as %s (%s)", cs->fmt->spec, cs->unfit_reason);
    /* the rest of the backbone stays as the source stores it */
    sum_ctx c = { .cs = cs };
    hc_model_for_each_tensor(cs->model, sum_tensor, &c);
    cs->source_bytes = c.all;
    cs->backbone_bytes = packed + c.kept;
    cs->budget_base_bytes = cs->backbone_bytes - c.lookup;
    return HC_OK;
}
