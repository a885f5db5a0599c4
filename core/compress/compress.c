/* compress.c: the compressor: check the options, map the source, plan the jobs and the ranks, open
 * the output, stream the layers (compress_stream.c), measure (optional), choose the ranks, finish. */
#include "compress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "compress_awq.h"
#include "compress_measure.h"
#include "compress_moe.h"
#include "compress_out.h"
#include "compress_plan.h"
#include "compress_ranks.h"
#include "compress_sens.h"
#include "compress_state.h"
#include "compress_stream.h"
#include "compress_tensor_quant.h"
#include "gguf.h"
#include "model_load.h"

static hc_status check_opts(const hc_compress_opts *o)
{
    if (!o->input || !o->output || !o->quant) return hc_error(HC_E_ARG, "compress needs an input, an output and a --quant spec");
    if (o->budget < 0 || o->budget > 1000) return hc_error(HC_E_ARG, "--budget %.2f is out of range (0..1000 percent)", o->budget);
    if (o->rank < 0 || o->rank > 65536) return hc_error(HC_E_ARG, "--rank %d is out of range", o->rank);
    if (o->rank_max < 0 || o->rank_max > 65536) return hc_error(HC_E_ARG, "--rank-max %d is out of range", o->rank_max);
    if (o->sens_tokens < 0 || o->sens_tokens > 4096) return hc_error(HC_E_ARG, "--sens-tokens %d is out of range (1..4096)", o->sens_tokens);
    if (o->sens_self && o->sens_tokens <= 0) return hc_error(HC_E_ARG, "--sens-source self needs --sens-tokens N");
    if (o->sens_tokens > 0 && !o->calib && !o->sens_self)
        return hc_error(HC_E_ARG, "--sens-tokens needs calibration text (--calib FILE) or --sens-source self");
    if (o->calib_skip > 0 && hc_compress_calib_is_self(o)) return hc_error(HC_E_ARG, "--calib-skip needs a calibration file, not --calib self");
    if (o->calib_sequential && !o->calib) return hc_error(HC_E_ARG, "--calib-forward compressed needs calibration text (--calib FILE)");
    if (o->awq > 0 && !o->calib) return hc_error(HC_E_ARG, "--awq needs calibration text: give --calib FILE");
    if (o->awq > 0 && o->n_tensor_quant > 0)
        return hc_error(HC_E_ARG, "--awq and --tensor-quant do not go together: awq's search quantizes a group of layers in one format");
    if (o->n_tensor_quant < 0 || (o->n_tensor_quant > 0 && !o->tensor_quant))
        return hc_error(HC_E_ARG, "--tensor-quant: %d options given without their text", o->n_tensor_quant);
    if (o->branch_dtype != HC_F16 && o->branch_dtype != HC_BF16 && o->branch_dtype != HC_F32 && o->branch_dtype != HC_Q8_0)
        return hc_error(HC_E_ARG, "branches are stored as f16, bf16, f32 or q8_0");
    return HC_OK;
}

static void fill_report(const hc_compress_state *cs, hc_compress_report *r)
{
    r->source_bytes = cs->source_bytes;
    r->backbone_bytes = cs->backbone_bytes;
    r->budget_base_bytes = cs->budget_base_bytes;
    r->n_linear = cs->n_jobs;
    for (int i = 0; i < cs->n_jobs; i++) r->n_tensor_quant += cs->jobs[i].fmt != cs->fmt && cs->jobs[i].fmt != cs->head_fmt;
    r->rank_min = -1;
    double sum = 0;
    for (int i = 0; i < cs->n_jobs; i++) {
        const hc_compress_job *j = &cs->jobs[i];
        if (j->rank > 0) {
            r->n_branches++;
            r->branch_bytes += (size_t)j->rank * hc_compress_branch_cost(j, cs->opts->branch_dtype);
        }
        if (j->gain) {
            r->error_total += j->energy;
            for (int k = 0; k < j->rank && k < j->n_dirs; k++) r->error_removed += j->gain[k];
            r->error_measure = hc_sens_measure_name(j->measure);
        }
        if (r->rank_min < 0 || j->rank < r->rank_min) r->rank_min = j->rank;
        if (j->rank > r->rank_max) r->rank_max = j->rank;
        sum += j->rank;
    }
    r->rank_mean = cs->n_jobs ? sum / cs->n_jobs : 0;
    if (r->rank_min < 0) r->rank_min = 0;
}

static void free_state(hc_compress_state *cs)
{
    hc_compress_out_abort(cs); /* nothing when it was finished */
    free(cs->spectra);
    hc_compress_policy_free(cs);
    hc_compress_awq_free(cs);
    free(cs->jobs);
    hc_compress_experts_free(cs);
    hc_gguf_writer_free(cs->meta);
    hc_quant_format_free(cs->fmt);
    hc_quant_format_free(cs->head_fmt);
    hc_compress_tensor_quant_free(cs);
    hc_model_free(cs->model);
}

hc_status hc_compress(const hc_compress_opts *o, hc_compress_report *report)
{
    double t0 = hc_now_seconds();
    memset(report, 0, sizeof *report);
    hc_status st = check_opts(o);
    if (st != HC_OK) return st;
    hc_compress_state cs = { .opts = o };
    hc_model_load_opts lo = { 0 }; /* mapped as the file stores it: one layer at a time goes to f32 */
    st = hc_quant_format_create(o->registry, o->quant, &cs.fmt);
    if (st == HC_OK && o->head_quant) st = hc_quant_format_create(o->registry, o->head_quant, &cs.head_fmt);
    if (st == HC_OK) st = hc_compress_tensor_quant_open(&cs);
    if (st == HC_OK) st = hc_model_load(o->input, &lo, &cs.model);
    if (st == HC_OK && cs.model->gguf && hc_gguf_find(cs.model->gguf, "hc.format_version"))
        st = hc_error(HC_E_ARG, "%s is already compressed by hcinfer; compress the original model", o->input);
    if (st == HC_OK) st = hc_compress_plan(&cs);
    /* ranks are planned (and a policy script loaded) before the long work, so that a bad
       budget or a broken script fails at once */
    if (st == HC_OK) st = hc_compress_plan_ranks(&cs);
    if (st == HC_OK && !o->calib && hc_compress_uses_plugin(&cs, "gptq"))
        st = hc_error(HC_E_ARG, "%s needs calibration text: give --calib FILE",
                      !strcmp(cs.fmt->plugin, "gptq") ? cs.fmt->spec : "a gptq format (--head-quant or --tensor-quant)");
    if (st == HC_OK && o->awq > 0) st = hc_compress_awq_open(&cs);
    /* the output is created (its room checked and reserved) before the long work too */
    double tw = hc_now_seconds();
    if (st == HC_OK) st = hc_compress_out_open(&cs);
    report->seconds_write += hc_now_seconds() - tw;
    if (st == HC_OK) st = hc_compress_stream(&cs, report);
    if (report->awq_groups > 0) report->awq_alpha_mean /= report->awq_groups;
    for (int i = 0; st == HC_OK && i < cs.n_jobs; i++)
        report->joint_first += cs.jobs[i].joint_first, report->joint_best += cs.jobs[i].joint_best;
    if (st == HC_OK && o->sens_tokens > 0) {
        double tm = hc_now_seconds();
        st = hc_compress_measure(&cs);
        report->seconds_measure = hc_now_seconds() - tm;
        report->sens_tokens = cs.loss_tokens;
    }
    /* the ranks (a policy's answer checked) before the branches are written: a refusal leaves no file */
    if (st == HC_OK) st = hc_compress_choose_ranks(&cs);
    report->n_unfit = cs.n_unfit;
    snprintf(report->unfit_reason, sizeof report->unfit_reason, "%s", cs.unfit_reason);
    if (st == HC_OK) {
        tw = hc_now_seconds();
        fill_report(&cs, report);
        if (o->progress) o->progress(o->progress_ctx, "write", 0, 1);
        st = hc_compress_out_finish(&cs, report);
        if (st == HC_OK && o->progress) o->progress(o->progress_ctx, "write", 1, 1);
        report->seconds_write += hc_now_seconds() - tw;
    }
    report->seconds_total = hc_now_seconds() - t0;
    free_state(&cs);
    return st;
}
