/* compress.c: the compressor: plan the linear layers, calibrate (optional), quantize and factor each
 * residual at rank_max on a thread pool, choose the ranks (uniform or a Lua policy), write the GGUF. */
#include "compress.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib.h"
#include "clock.h"
#include "compress_internal.h"
#include "device_cpu.h"
#include "qjoint.h"
#include "quant_format.h"
#include "threadpool.h"
#include "tokenizer.h"


hc_dtype hc_compress_branch_dtype(const hc_compress_job *j, hc_dtype requested)
{
    return requested == HC_Q8_0 && (j->in % 32 || j->out % 32) ? HC_F16 : requested;
}

size_t hc_compress_branch_cost(const hc_compress_job *j, hc_dtype requested)
{
    hc_dtype t = hc_compress_branch_dtype(j, requested);
    return hc_dtype_row_bytes(t, j->in) + hc_dtype_row_bytes(t, j->out) + sizeof(float);
}

/* Lists the linear layers to compress and the backbone's size once they are packed. */
static hc_status plan(hc_compress_state *cs)
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
    cs->backbone_bytes = packed + hc_compress_kept_bytes(cs);
    return HC_OK;
}

typedef struct work {
    hc_compress_state *cs;
    atomic_int next;
    atomic_int done;
    hc_pool_error err;
} work;

static hc_status compress_one(hc_compress_state *cs, hc_compress_job *j)
{
    const hc_compress_opts *o = cs->opts;
    int64_t in = j->in, out = j->out;
    const hc_moment *mom = !cs->calib ? NULL
                           : j->parent ? hc_calib_expert_moment(cs->calib, j->layer, j->proj, j->expert) /* its routed tokens */
                                       : hc_calib_moment(cs->calib, j->layer, j->proj);
    double *mean = NULL;
    float *hf = NULL, *x2 = NULL, *deq = NULL;
    hc_status st = HC_OK;
    if (mom && mom->n == 0 && j->parent) {
        /* calibration never routed to this expert: an identity moment (plain rounding, plain SVD) */
        if (!(mean = calloc((size_t)(in * in), sizeof *mean))) return hc_error(HC_E_NOMEM, "%s: out of memory", j->weight->name);
        for (int64_t i = 0; i < in; i++) mean[i * in + i] = 1.0;
    } else if (mom && !(mean = hc_moment_mean(mom))) return hc_error_context(HC_E_NOMEM, "%s: ", j->weight->name);
    hc_quant_calib qc = { 0 };
    if (mean) {
        hf = malloc((size_t)(in * in) * sizeof *hf);
        x2 = malloc((size_t)in * sizeof *x2);
        if (!hf || !x2) st = hc_error(HC_E_NOMEM, "%s: out of memory", j->weight->name);
        for (int64_t i = 0; st == HC_OK && i < in * in; i++) hf[i] = (float)mean[i];
        for (int64_t i = 0; st == HC_OK && i < in; i++) x2[i] = (float)mean[i * in + i];
        qc.hessian = hf;
        qc.x2_mean = x2;
    }
    if (st == HC_OK && !(j->packed = malloc(j->packed_bytes))) st = hc_error(HC_E_NOMEM, "%s: out of memory", j->weight->name);
    if (st == HC_OK && o->joint_rounds > 0 && j->rank_max > 0) {
        /* --joint N: the backbone chosen for what its branch leaves (qjoint.c) */
        hc_qjoint_opts jo = { .rank = cs->uniform_rank < j->rank_max ? cs->uniform_rank : j->rank_max, .rounds = o->joint_rounds,
                              .whitening = mean ? o->whitening : HC_WHITEN_NONE, .moment = mean, .seed = 0x5851F42D4C957F2Dull ^ (uint64_t)(j - cs->jobs) };
        hc_qjoint_report jr;
        st = hc_qjoint_quantize(j->fmt, j->weight->data, out, in, mean ? &qc : NULL, &jo, j->packed, &jr);
        j->joint_first = jr.error_first, j->joint_best = jr.error_best;
    } else if (st == HC_OK) st = j->fmt->ops->quantize(j->fmt->params, j->weight->data, out, in, mean ? &qc : NULL, j->packed);
    if (st == HC_OK && j->rank_max > 0) {
        if (!(deq = malloc((size_t)(out * in) * sizeof *deq))) st = hc_error(HC_E_NOMEM, "%s: out of memory", j->weight->name);
        if (st == HC_OK) {
            j->fmt->ops->dequantize_rows(j->fmt->params, j->packed, in, out, 0, out, deq);
            const float *w = j->weight->data;
            for (int64_t i = 0; i < out * in; i++) deq[i] = w[i] - deq[i];
            hc_whitening wh = o->whitening;
            if (wh != HC_WHITEN_NONE && !mean) wh = HC_WHITEN_NONE;
            /* factored at rank_max; the file keeps the prefix the ranks choose */
            hc_lowrank_opts lo = { .rank = j->rank_max, .whitening = wh, .moment = mean, .seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)(j - cs->jobs) };
            st = hc_lowrank_factor(deq, out, in, &lo, &j->lr);
            if (st == HC_OK) st = hc_compress_sensitivity(j, deq, hf, wh);
        }
    }
    free(mean);
    free(hf);
    free(x2);
    free(deq);
    if (st != HC_OK) hc_error_context(st, "%s: ", j->weight->name);
    return st;
}

static void compress_task(void *arg, int ith, int nth)
{
    work *w = arg;
    hc_compress_state *cs = w->cs;
    for (;;) {
        int i = atomic_fetch_add(&w->next, 1);
        if (i >= cs->n_jobs || atomic_load(&w->err.status) != HC_OK) break;
        hc_status st = compress_one(cs, &cs->jobs[i]);
        if (st != HC_OK) {
            hc_pool_error_set(&w->err, st);
            break;
        }
        int done = atomic_fetch_add(&w->done, 1) + 1;
        if (ith == 0 && cs->opts->progress) cs->opts->progress(cs->opts->progress_ctx, "quantize", done, cs->n_jobs);
    }
}

hc_status hc_compress_calib_ids(hc_compress_state *cs, int64_t want, int32_t **ids, int64_t *n, int *seq)
{
    const hc_compress_opts *o = cs->opts;
    hc_tokenizer *tok = NULL;
    char *text = NULL;
    int32_t *t = NULL;
    int n_ids = 0;
    size_t len = 0;
    *ids = NULL;
    hc_status st = hc_compress_read_file(o->calib, &text, &len);
    if (st == HC_OK) st = hc_compress_tokenizer(cs, &tok);
    if (st == HC_OK) st = hc_tokenize(tok, text, len, 1, 0, &t, &n_ids);
    if (st == HC_OK && n_ids < 2) st = hc_error(HC_E_ARG, "calibration file %s holds no text", o->calib);
    if (st == HC_OK && o->calib_skip > 0) { /* --calib-skip: the text from token N on */
        if (o->calib_skip > n_ids - 2)
            st = hc_error(HC_E_ARG, "--calib-skip %d: calibration file %s holds only %d tokens", o->calib_skip, o->calib, n_ids);
        else {
            n_ids -= o->calib_skip;
            memmove(t, t + o->calib_skip, (size_t)n_ids * sizeof *t);
        }
    }
    if (st == HC_OK) {
        int s = o->calib_seq > 0 ? o->calib_seq : 512;
        if (want > n_ids) want = n_ids;
        if (s > cs->model->cfg.n_ctx_train) s = cs->model->cfg.n_ctx_train;
        if (s > want) s = (int)want;
        /* every sequence starts with BOS, as the model saw text in training */
        int32_t bos = hc_tokenizer_bos(tok);
        for (int64_t i = 0; bos >= 0 && i < want; i += s) t[i] = bos;
        *ids = t;
        *n = want;
        *seq = s;
        t = NULL;
    }
    free(t);
    hc_tokenizer_free(tok);
    free(text);
    return st;
}

hc_status hc_compress_source_open(hc_compress_state *cs, int seq, hc_device **dev, hc_context **ctx)
{
    hc_device_config dc = { .n_threads = cs->opts->threads };
    hc_context_params cp = { .n_ctx = seq, .n_batch = seq };
    *dev = NULL;
    *ctx = NULL;
    hc_status st = hc_cpu_device_create(&dc, dev);
    if (st == HC_OK) st = hc_context_create(cs->model, *dev, &cp, ctx);
    return st;
}

void hc_compress_source_close(hc_compress_state *cs, hc_device *dev, hc_context *ctx)
{
    hc_context_free(ctx);
    if (dev) {
        cs->model->device = NULL; /* the weights stay where they are: host memory */
        dev->ops->destroy(dev);
    }
}

static hc_status calibrate(hc_compress_state *cs)
{
    const hc_compress_opts *o = cs->opts;
    hc_device *dev = NULL;
    hc_context *ctx = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    int seq = 0;
    int64_t want = o->calib_tokens > 0 ? o->calib_tokens : 8192;
    int self = hc_compress_calib_is_self(o);
    hc_status st = self ? hc_compress_self_ids(cs, want, &ids, &n, &seq) : hc_compress_calib_ids(cs, want, &ids, &n, &seq);
    if (st == HC_OK) st = hc_calib_create(cs->model, o->threads, &cs->calib);
    if (st == HC_OK) st = hc_compress_source_open(cs, seq, &dev, &ctx);
    if (st == HC_OK && self) st = hc_compress_sample_ids(cs, ctx, ids, n, seq, "calibration");
    if (st == HC_OK) st = hc_calib_run(cs->calib, ctx, ids, n, seq, (hc_calib_progress)hc_compress_calib_progress, cs);
    hc_compress_source_close(cs, dev, ctx);
    free(ids);
    if (st != HC_OK) return hc_error_context(st, "calibration: ");
    return HC_OK;
}

static void free_state(hc_compress_state *cs)
{
    for (int i = 0; i < cs->n_jobs; i++) {
        free(cs->jobs[i].packed);
        hc_lowrank_free(&cs->jobs[i].lr);
        free(cs->jobs[i].gain);
    }
    hc_compress_policy_free(cs);
    free(cs->jobs);
    hc_calib_free(cs->calib);
    hc_compress_experts_free(cs);
    hc_quant_format_free(cs->fmt);
    hc_quant_format_free(cs->head_fmt);
    hc_model_free(cs->model);
}

hc_status hc_compress(const hc_compress_opts *o, hc_compress_report *report)
{
    double t0 = hc_now_seconds();
    memset(report, 0, sizeof *report);
    if (!o->input || !o->output || !o->quant) return hc_error(HC_E_ARG, "compress needs an input, an output and a --quant spec");
    if (o->budget < 0 || o->budget > 1000) return hc_error(HC_E_ARG, "--budget %.2f is out of range (0..1000 percent)", o->budget);
    if (o->rank < 0 || o->rank > 65536) return hc_error(HC_E_ARG, "--rank %d is out of range", o->rank);
    if (o->rank_max < 0 || o->rank_max > 65536) return hc_error(HC_E_ARG, "--rank-max %d is out of range", o->rank_max);
    if (o->sens_tokens < 0 || o->sens_tokens > 4096) return hc_error(HC_E_ARG, "--sens-tokens %d is out of range (1..4096)", o->sens_tokens);
    if (o->sens_self && o->sens_tokens <= 0) return hc_error(HC_E_ARG, "--sens-source self needs --sens-tokens N");
    if (o->sens_tokens > 0 && !o->calib && !o->sens_self)
        return hc_error(HC_E_ARG, "--sens-tokens needs calibration text (--calib FILE) or --sens-source self");
    if (o->calib_skip > 0 && hc_compress_calib_is_self(o)) return hc_error(HC_E_ARG, "--calib-skip needs a calibration file, not --calib self");
    if (o->branch_dtype != HC_F16 && o->branch_dtype != HC_BF16 && o->branch_dtype != HC_F32 && o->branch_dtype != HC_Q8_0)
        return hc_error(HC_E_ARG, "branches are stored as f16, bf16, f32 or q8_0");
    hc_compress_state cs = { .opts = o };
    hc_model_load_opts lo = { .to_f32 = 1 };
    hc_status st = hc_quant_format_create(o->registry, o->quant, &cs.fmt);
    if (st == HC_OK && o->head_quant) st = hc_quant_format_create(o->registry, o->head_quant, &cs.head_fmt);
    if (st == HC_OK) st = hc_model_load(o->input, &lo, &cs.model);
    if (st == HC_OK && cs.model->gguf && hc_gguf_find(cs.model->gguf, "hc.format_version"))
        st = hc_error(HC_E_ARG, "%s is already compressed by hcinfer; compress the original model", o->input);
    if (st == HC_OK) {
        report->source_bytes = hc_compress_source_bytes(&cs);
        st = plan(&cs);
    }
    /* ranks are planned (and a policy script loaded) before the long work, so that a bad
       budget or a broken script fails at once */
    if (st == HC_OK) st = hc_compress_plan_ranks(&cs);
    int needs_calib = o->calib || !strcmp(cs.fmt ? cs.fmt->plugin : "", "gptq");
    if (st == HC_OK && needs_calib && !o->calib) st = hc_error(HC_E_ARG, "%s needs calibration text: give --calib FILE", cs.fmt->spec);
    if (st == HC_OK && o->calib) {
        double tc = hc_now_seconds();
        st = calibrate(&cs);
        report->seconds_calib = hc_now_seconds() - tc;
        report->calib_tokens = cs.calib ? cs.calib->tokens : 0;
        hc_compress_experts_calibrated(&cs);
    }
    if (st == HC_OK) {
        double tq = hc_now_seconds();
        hc_pool *pool = NULL;
        work w = { .cs = &cs };
        st = hc_pool_create(o->threads > 0 ? o->threads : 1, NULL, 0, &pool);
        if (st == HC_OK) {
            hc_pool_run(pool, compress_task, &w);
            hc_pool_free(pool);
            st = hc_pool_error_raise(&w.err);
        }
        report->seconds_quant = hc_now_seconds() - tq;
        for (int i = 0; i < cs.n_jobs; i++) report->joint_first += cs.jobs[i].joint_first, report->joint_best += cs.jobs[i].joint_best;
    }
    if (st == HC_OK && o->sens_tokens > 0) {
        double tm = hc_now_seconds();
        st = hc_compress_measure(&cs);
        report->seconds_measure = hc_now_seconds() - tm;
        report->sens_tokens = cs.loss_tokens;
    }
    /* the ranks (a policy's answer checked) before anything is written: a refusal leaves no file */
    if (st == HC_OK) st = hc_compress_choose_ranks(&cs);
    report->n_unfit = cs.n_unfit;
    snprintf(report->unfit_reason, sizeof report->unfit_reason, "%s", cs.unfit_reason);
    if (st == HC_OK) {
        double tw = hc_now_seconds();
        st = hc_compress_write(&cs, report);
        report->seconds_write = hc_now_seconds() - tw;
    }
    report->seconds_total = hc_now_seconds() - t0;
    free_state(&cs);
    return st;
}
