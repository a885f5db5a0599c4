/* compress_awq.c: --awq for one decoder layer: each group of linear layers sharing an input gets
 * awq.c's scales, folded into the norm or the rows that make the input; the jobs remember them. */
#include "compress_awq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq.h"
#include "compress_out.h"
#include "compress_plan.h"

hc_status hc_compress_awq_open(hc_compress_state *cs)
{
    const char *opt = cs->fmt->options, *b = strstr(opt, "bits="), *g = strstr(opt, "group=");
    if (!b || !g)
        return hc_error(HC_E_ARG, "--awq needs a backbone format with bits and group options ('%s' has not)", cs->fmt->spec);
    char spec[64];
    snprintf(spec, sizeof spec, "rtn:bits=%d,group=%d%s", atoi(b + 5), atoi(g + 6), strstr(opt, "search=1") ? ",search=1" : "");
    hc_status st = hc_quant_format_create(cs->opts->registry, spec, &cs->awq_fmt);
    return st == HC_OK ? HC_OK : hc_error_context(st, "--awq (searching with %s): ", spec);
}

/* Linear layers reading one input, and what makes that input: a norm, or a projection's rows. */
typedef struct group {
    hc_input_class input;
    int member[3], n;
    hc_tensor *norm;  /* NULL: prev makes it */
    int prev;         /* hc_proj, -1: a norm makes it */
} group;

/* The job of the layer's dense projection p, NULL when it has none (kept as stored, experts). */
static hc_compress_job *dense_job(const hc_compress_state *cs, const hc_layer *L, int p)
{
    if (!L->proj[p].data) return NULL;
    hc_compress_job *j = hc_compress_job_of(cs, L->proj[p].name);
    return j && !j->parent && j->weight == &L->proj[p] ? j : NULL;
}

/* *slot (n values, ones when new) multiplied by s, or divided with invert. */
static hc_status record(float **slot, int64_t n, const float *s, int invert)
{
    if (!*slot) {
        if (!(*slot = malloc((size_t)n * sizeof **slot))) return hc_error(HC_E_NOMEM, "awq: out of memory");
        for (int64_t i = 0; i < n; i++) (*slot)[i] = 1.0f;
    }
    for (int64_t i = 0; i < n; i++) (*slot)[i] = invert ? (*slot)[i] / s[i] : (*slot)[i] * s[i];
    return HC_OK;
}

/* Whether the group can be scaled: its layers are jobs of one width, what makes its input can
 * take 1/s, its input was observed. */
static int usable(const hc_compress_state *cs, const hc_calib *calib, const hc_layer *L, const group *g,
                  hc_compress_job **jobs, hc_compress_job **prev)
{
    for (int k = 0; k < g->n; k++)
        if (!(jobs[k] = dense_job(cs, L, g->member[k])) || jobs[k]->in != jobs[0]->in) return 0;
    const int64_t in = jobs[0]->in;
    *prev = NULL;
    if (g->prev >= 0 && (!(*prev = dense_job(cs, L, g->prev)) || (*prev)->out != in || L->bias[g->prev].data)) return 0;
    if (g->norm && (!g->norm->data || g->norm->dtype != HC_F32 || hc_tensor_nelements(g->norm) != in ||
                    hc_source_raw_of(cs->model, g->norm).type != HC_F32))
        return 0;
    const hc_calib_input *x = &calib->in[g->input];
    return x->width == in && x->n > 0;
}

static hc_status one_group(hc_compress_state *cs, hc_calib *calib, hc_source_layer *sl, hc_layer *L, const group *g,
                           hc_compress_report *r)
{
    hc_compress_job *jobs[3] = { NULL }, *prev = NULL;
    if (!usable(cs, calib, L, g, jobs, &prev)) return HC_OK;
    const int64_t in = jobs[0]->in;
    hc_calib_input *x = &calib->in[g->input];
    float *w[3];
    const float *wc[3];
    int64_t out[3];
    float *s = malloc((size_t)in * sizeof *s);
    hc_status st = s ? HC_OK : hc_error(HC_E_NOMEM, "awq: out of memory");
    for (int k = 0; k < g->n && st == HC_OK; k++) {
        if (!(w[k] = hc_source_layer_writable(sl, jobs[k]->weight))) st = HC_E_NOMEM;
        wc[k] = w[k], out[k] = jobs[k]->out;
    }
    hc_awq_report rep = { 0 };
    if (st == HC_OK) st = hc_awq_search(cs->awq_fmt, g->n, wc, out, in, x->rows, x->n, cs->opts->awq, s, &rep);
    if (st == HC_OK) {
        r->awq_groups++;
        r->awq_alpha_mean += rep.alpha; /* a sum until the end of the pass */
        r->awq_error_plain += rep.error_plain, r->awq_error_best += rep.error_best;
    }
    if (st == HC_OK && rep.alpha > 0) {
        r->awq_scaled++;
        for (int k = 0; k < g->n && st == HC_OK; k++) {
            hc_awq_cols(w[k], out[k], in, s, 0);
            st = record(&jobs[k]->awq_col, in, s, 0);
        }
        if (st == HC_OK && g->norm) {
            float *v = hc_source_layer_writable(sl, g->norm);
            if (!v) st = HC_E_NOMEM;
            else {
                for (int64_t i = 0; i < in; i++) v[i] /= s[i];
                st = hc_compress_out_kept_f32(cs, g->norm, v);
            }
        } else if (st == HC_OK) {
            float *p = hc_source_layer_writable(sl, prev->weight);
            if (!p) st = HC_E_NOMEM;
            else {
                hc_awq_rows(p, prev->out, prev->in, s, 1);
                st = record(&prev->awq_row, prev->out, s, 1);
            }
        }
        if (st == HC_OK) hc_awq_cols(x->rows, x->n, in, s, 1); /* the jobs' statistics see x / s */
    }
    free(s);
    if (st != HC_OK) return hc_error_context(st, "%s: ", jobs[0]->weight->name);
    return HC_OK;
}

hc_status hc_compress_awq_layer(hc_compress_state *cs, hc_calib *calib, hc_source_layer *sl, int layer,
                                hc_compress_report *r)
{
    hc_layer *L = &cs->model->layers[layer];
    const hc_model_config *c = &cs->model->cfg;
    /* gate/up before down: both scale up (its columns, then its rows) */
    const group groups[] = {
        { HC_IN_ATTN, { HC_PROJ_Q, HC_PROJ_K, HC_PROJ_V }, 3, &L->attn_norm, -1 },
        { HC_IN_FFN, { HC_PROJ_GATE, HC_PROJ_UP }, 2, &L->ffn_norm, -1 },
        { HC_IN_DOWN, { HC_PROJ_DOWN }, 1, NULL, HC_PROJ_UP },
        { HC_IN_ATT_OUT, { HC_PROJ_O }, 1, NULL, HC_PROJ_V }, /* a channel of o's input is one of v's rows */
    };
    const int n = c->n_head == c->n_head_kv ? 4 : 3;
    hc_status st = HC_OK;
    for (int i = 0; i < n && st == HC_OK; i++) st = one_group(cs, calib, sl, L, &groups[i], r);
    return st;
}

void hc_compress_awq_unscale(const hc_compress_job *j, float *w)
{
    if (j->awq_row) hc_awq_rows(w, j->out, j->in, j->awq_row, 1);
    if (j->awq_col) hc_awq_cols(w, j->out, j->in, j->awq_col, 1);
}

void hc_compress_awq_free(hc_compress_state *cs)
{
    for (int i = 0; cs->jobs && i < cs->n_jobs; i++) {
        free(cs->jobs[i].awq_col), free(cs->jobs[i].awq_row);
        cs->jobs[i].awq_col = cs->jobs[i].awq_row = NULL;
    }
    hc_quant_format_free(cs->awq_fmt);
    cs->awq_fmt = NULL;
}
