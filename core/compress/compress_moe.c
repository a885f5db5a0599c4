/* compress_moe.c: the compressor's view of a mixture-of-experts model: every expert's gate, up and
 * down is a linear layer of its own (its own quantization, branch, rank and calibration moments).
 *
 * An expert's job works on a 2-D view of the 3-D tensor, named blk.L.ffn_gate_exps.e<E>.weight (its
 * weights are read from the parent, f32 while its layer is open);
 * its branch is written as blk.L.ffn_gate_exps.e<E>.lora_a/.lora_b/.lora_s and the packed experts of
 * one tensor as a single I8 tensor blk.L.ffn_gate_exps.weight holding the n_expert packed matrices in
 * expert order, with hc.tensor.<name>.shape = [in, out, n_expert] (compress_out.c, compress_meta.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress_moe.h"
#include "moe.h"
#include "suffix.h"

typedef struct expert_view {
    hc_tensor t;
    char name[96];
} expert_view;

struct hc_compress_experts {
    expert_view *views;
    int n;
};

int hc_compress_expert_job_count(const hc_model *m)
{
    return m->cfg.n_expert > 0 ? m->cfg.n_layer * HC_EXP_COUNT * m->cfg.n_expert : 0;
}

hc_status hc_compress_plan_experts(hc_compress_state *cs)
{
    hc_model *m = cs->model;
    int n = hc_compress_expert_job_count(m);
    if (!n) return HC_OK;
    struct hc_compress_experts *x = calloc(1, sizeof *x);
    if (!x || !(x->views = calloc((size_t)n, sizeof *x->views))) {
        free(x);
        return hc_error(HC_E_NOMEM, "compress: out of memory");
    }
    cs->experts = x;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int k = 0; k < HC_EXP_COUNT; k++) {
            const hc_tensor *t = &m->layers[l].moe.exps[k];
            size_t len = hc_len_without(t->name, ".weight");
            for (int e = 0; e < m->cfg.n_expert; e++) {
                expert_view *v = &x->views[x->n++];
                v->t = hc_moe_expert_view(t, e);
                snprintf(v->name, sizeof v->name, "%.*s.e%d.weight", (int)len, t->name, e);
                v->t.name = v->name;
                cs->jobs[cs->n_jobs++] = (hc_compress_job){ .layer = l, .proj = HC_PROJ_GATE + k, .weight = &v->t, .fmt = cs->fmt,
                                                            .expert = e, .parent = t, .routing_frequency = -1 };
            }
        }
    return HC_OK;
}

void hc_compress_experts_free(hc_compress_state *cs)
{
    if (!cs->experts) return;
    free(cs->experts->views);
    free(cs->experts);
    cs->experts = NULL;
}
