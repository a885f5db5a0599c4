/* cmd_bench.c: `hcinfer bench`: prompt and decode speed of a model under each scheduler in turn
 * (none = backbone alone), with device, host and wait times, overlap, bytes per token, a JSON
 * report and a Chrome trace of the device and host timelines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "branch_rt.h"
#include "clock.h"
#include "commands.h"
#include "eval_json.h"
#include "host_pool.h"
#include "rank_control.h"
#include "sampler.h"
#include "session.h"
#include "trace.h"

#define MAX_SCHEDS 8
#define N_KINDS 28
#define RANK_POINTS 8   /* points of the active-rank series printed per scheduler */

static const char bench_help[] =
    "usage: hcinfer bench -m MODEL [--sched none,serial,async] [-n N] [-p N] [--device-threads N]\n"
    "                     [--host-threads N] [--host-budget X] [--host-slowdown X] [--json] [--trace FILE]\n"
    "Measures prompt and decode speed under each scheduler in one run (none: the backbone alone,\n"
    "branches off), with per-stage device time, host branch time, the time the device waited for\n"
    "the host, overlap efficiency (share of branch time hidden) and bytes read per token. The\n"
    "repetitions are interleaved (none, serial, async, none, serial, ...), so that a drift of the\n"
    "machine's speed touches every scheduler alike; each reports its median.\n"
    "  --sched LIST            comma-separated: none, serial, async, inline (default none,serial,async)\n"
    "The generated tokens of every scheduler with branches are compared with the first one's.\n"
    "  -n, --n-decode N        decoded tokens per scheduler (default 64)\n"
    "  -p, --n-prompt N        prompt tokens per scheduler (default 128)\n"
    "  -r, --reps N            repetitions of each scheduler; the median is reported (default 3), and\n"
    "                          the quartiles of each one's speed over the first scheduler's, taken\n"
    "                          repetition by repetition (paired: they ran one after the other)\n"
    "  --json                  one JSON object on stdout\n"
    "  --trace FILE            Chrome trace (chrome://tracing) of the last decode of each scheduler\n"
    "  --host-delay US         add US microseconds to every host job (a synthetic slow host)\n"
    "  --host-slowdown X       host jobs take X times their compute time (a slower host core, 1..100)\n"
    "With --host-budget X the dynamic-rank controller runs: the active ranks (mean share of the\n"
    "stored rank) are reported over the decoded tokens, their end value and their minimum.\n"
    "%s";

typedef struct result {
    char sched[32];
    double prompt_tok_s, decode_tok_s;
    double device_ms, host_ms, wait_ms, inline_ms;   /* per decoded token */
    double overlap;
    double bytes_per_token;
    double branch_touched;                            /* branch parameter bytes read per decoded token */
    double kind_ms[N_KINDS];                          /* device ms per token by stage kind */
    int identical;                                    /* same tokens as the first scheduler with branches
                                                         (-1: not compared, the backbone alone) */
    double rank_share[RANK_POINTS];                   /* mean active/stored rank at evenly spaced tokens */
    double rank_share_min, rank_share_end, mean_rank_end;   /* lowest share of any branch; at the end */
    double paired[3];                                 /* decode speed over the first scheduler's, each
                                                         repetition against the one beside it: quartiles */
} result;

static const char *const kinds[N_KINDS] = { "token_embd", "attn_norm", "attn_q", "attn_k", "attn_v", "rope", "kv_store",
                                            "attention", "attn_output", "attn_residual", "ffn_norm", "ffn_gate", "ffn_up",
                                            "ffn_act", "ffn_down", "output",
                                            /* qwen3 and mixture of experts */
                                            "attn_qk_norm", "ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_act_exps",
                                            "ffn_down_exps", "ffn_moe_out", "ffn_gate_shexp", "ffn_up_shexp", "ffn_act_shexp",
                                            "ffn_down_shexp", "ffn_gate_inp_shexp" };

static int kind_of(const char *stage_name)
{
    const char *k = stage_name;
    if (!strncmp(k, "blk.", 4)) {
        k = strchr(k + 4, '.');
        k = k ? k + 1 : stage_name;
    }
    if (!strcmp(k, "output_norm") || !strcmp(k, "ffn_residual")) return !strcmp(k, "output_norm") ? 15 : 9;
    if (!strcmp(k, "ffn_residual_shexp")) return 9;
    if (!strcmp(k, "attn_q_norm") || !strcmp(k, "attn_k_norm")) return 16;
    if (!strcmp(k, "post_attention_norm")) return 1; /* gemma3's post norms: with the layer's norms */
    if (!strcmp(k, "post_ffw_norm")) return 10;
    for (int i = 0; i < N_KINDS; i++)
        if (!strcmp(k, kinds[i])) return i;
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAX_REPS 100

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The q-quantile of sorted v (linear between neighbours). */
static double quantile(const double *v, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)pos;
    return i + 1 < n ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[n - 1];
}

/* Speed ratios of scheduler k to scheduler 0 over paired repetitions (rep i of both ran one after
 * the other, so a drift of the machine touches both): their quartiles into q[3]. */
static void paired_ratios(const double *dt, int reps, int k, double *q)
{
    double v[MAX_REPS];
    for (int i = 0; i < reps; i++) v[i] = dt[i] / dt[k * reps + i];
    qsort(v, (size_t)reps, sizeof *v, cmp_double);
    q[0] = quantile(v, reps, 0.25), q[1] = quantile(v, reps, 0.5), q[2] = quantile(v, reps, 0.75);
}


typedef struct bench_opts {
    hc_session_opts session;
    char scheds[256];
    int n_decode, n_prompt, reps, json, host_delay;
    float host_slowdown;
    const char *trace;
} bench_opts;

/* One measured pass: prompt, then n_decode greedy tokens; every pass starts from the initial ranks. */
static hc_status measure(hc_session *s, const bench_opts *o, const int *initial_rank, const int32_t *prompt, int32_t *gen, result *r,
                         double *pt, double *dt, hc_trace *trace)
{
    hc_context *c = s->ctx;
    const float *logits;
    hc_context_reset(c);
    for (int i = 0; i < c->n_stages; i++) c->stages[i].active_rank = initial_rank[i];
    r->rank_share_min = 1.0;
    double t0 = hc_now_seconds();
    hc_status st = hc_decode(c, prompt, o->n_prompt, 0, &logits);
    *pt = hc_now_seconds() - t0;
    if (c->brt) hc_branch_rt_reset_stats(c->brt);
    for (int i = 0; i < c->n_stages; i++) c->stages[i].device_ns = 0;
    double kind_ns[N_KINDS] = { 0 };
    int n_timed = 0; /* the steps that measured their stages (context.h: every few on a GPU) */
    c->stage_timing_period = o->n_decode >= 4 * HC_STAGE_TIMING_PERIOD ? HC_STAGE_TIMING_PERIOD : 1; /* a short run: all */
    c->trace = trace;
    t0 = hc_now_seconds();
    for (int i = 0; i < o->n_decode && st == HC_OK; i++) {
        int32_t next = hc_argmax(logits, s->model->cfg.n_vocab);
        gen[i] = next;
        st = hc_decode(c, &next, 1, 0, &logits);
        for (int k = 0; c->stage_timed && k < c->n_stages; k++) {
            int kind = kind_of(c->stages[k].name);
            if (kind >= 0) kind_ns[kind] += (double)c->stages[k].device_ns;
        }
        n_timed += c->stage_timed;
        double share, min_share, mean_rank;   /* the controller acted after this step */
        hc_rank_control_summary(c, &share, &min_share, &mean_rank);
        if (min_share < r->rank_share_min) r->rank_share_min = min_share;
        r->rank_share_end = share, r->mean_rank_end = mean_rank;
        for (int k = 0; k < RANK_POINTS; k++) /* point k: after token (k + 1) n / RANK_POINTS */
            if ((long)(k + 1) * o->n_decode / RANK_POINTS - 1 == i) r->rank_share[k] = share;
    }
    *dt = hc_now_seconds() - t0;
    c->trace = NULL;
    if (st != HC_OK) return st;
    hc_branch_stats bs = { 0 };
    if (c->brt) hc_branch_rt_stats(c->brt, &bs);
    double per = 1e-6 / o->n_decode, per_timed = n_timed ? 1e-6 / n_timed : 0.0;
    uint64_t dev = 0;
    for (int k = 0; k < N_KINDS; k++) dev += (uint64_t)kind_ns[k];
    r->device_ms = dev * per_timed;
    r->host_ms = bs.host_ns * per;
    /* a device timed with events measured its waits in bs.timed_steps passes */
    r->wait_ms = c->brt && hc_branch_rt_device_timed(c->brt) ? (bs.timed_steps ? bs.wait_ns * 1e-6 / bs.timed_steps : 0.0)
                                                               : bs.wait_ns * per;
    r->inline_ms = bs.inline_ns * per;
    r->overlap = r->host_ms > 0 ? 1.0 - r->wait_ms / r->host_ms : 0.0;
    r->branch_touched = (double)bs.bytes_touched / o->n_decode; /* of a MoE model: the routed experts' only */
    if (r->overlap < 0) r->overlap = 0;
    for (int k = 0; k < N_KINDS; k++) r->kind_ms[k] = kind_ns[k] * per_timed;
    return HC_OK;
}

static hc_status select_scheduler(hc_session *s, const char *name, int *saved_enabled)
{
    hc_context *c = s->ctx;
    int none = !strcmp(name, "none");
    for (int i = 0; i < c->n_stages; i++)
        if (c->stages[i].branch || c->stages[i].expert_branch) c->stages[i].branch_enabled = none ? 0 : saved_enabled[i];
    if (none || !c->brt) return HC_OK;
    const hc_plugin *p = hc_registry_find(s->registry, HC_PLUGIN_SCHED, name);
    if (!p) return HC_E_PLUGIN; /* hc_registry_find said which, and what is loaded */
    int idx = hc_branch_rt_add_scheduler(c->brt, name, p->desc->ops);
    if (idx < 0) return HC_E_PLUGIN;
    hc_branch_rt_use(c->brt, idx);
    return HC_OK;
}

static void print_json(const bench_opts *o, const hc_session *s, const result *res, int n)
{
    printf("{\"model\": ");
    hc_json_write_string(stdout, o->session.model);
    printf(", \"device\": ");
    hc_json_write_string(stdout, o->session.device);
    printf(", \"device_threads\": %d, \"host_threads\": %d, \"n_prompt\": %d, "
           "\"n_decode\": %d, \"reps\": %d, \"n_layer\": %d, \"backbone_bytes_per_token\": %zu, \"layer_bytes_per_token\": %zu, "
           "\"branch_bytes_stored\": %zu, \"results\": [",
           s->device_threads, s->host_threads, o->n_prompt, o->n_decode, o->reps, s->model->cfg.n_layer,
           hc_model_bytes_per_token(s->model), hc_model_layer_bytes_per_token(s->model),
           s->ctx->brt ? hc_model_branch_bytes(s->model) : (size_t)0);
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        printf("%s\n  {\"sched\": \"%s\", \"decode_tok_s\": %.2f, \"prompt_tok_s\": %.2f, \"device_ms\": %.4f, \"host_ms\": %.4f, "
               "\"device_wait_ms\": %.4f, \"inline_ms\": %.4f, \"overlap\": %.4f, \"bytes_per_token\": %.0f, "
               "\"branch_bytes_touched_per_token\": %.0f, \"same_tokens\": %s, \"rank_share_end\": %.4f, \"rank_share_min\": %.4f, "
               "\"mean_rank_end\": %.2f, \"paired_vs_first\": [%.4f, %.4f, %.4f], \"rank_share_over_time\": [",
               i ? "," : "", r->sched, r->decode_tok_s, r->prompt_tok_s, r->device_ms, r->host_ms, r->wait_ms, r->inline_ms, r->overlap,
               r->bytes_per_token, r->branch_touched, r->identical < 0 ? "null" : r->identical ? "true" : "false", r->rank_share_end,
               r->rank_share_min, r->mean_rank_end, r->paired[0], r->paired[1], r->paired[2]);
        for (int k = 0; k < RANK_POINTS; k++) printf("%s%.4f", k ? ", " : "", r->rank_share[k]);
        printf("], \"stage_ms\": {");
        for (int k = 0; k < N_KINDS; k++) printf("%s\"%s\": %.4f", k ? ", " : "", kinds[k], r->kind_ms[k]);
        printf("}}");
    }
    printf("\n]}\n");
}

static void print_table(const bench_opts *o, const hc_session *s, const result *res, int n)
{
    fprintf(stdout, "%s: %d prompt + %d decode tokens, %d device thread(s), %d host thread(s), median of %d\n", o->session.model,
            o->n_prompt, o->n_decode, s->device_threads, s->host_threads, o->reps);
    if (s->ctx->brt)
        fprintf(stdout, "branches: %.2f MiB stored\n", hc_model_branch_bytes(s->model) / 1048576.0);
    fprintf(stdout, "%-8s %10s %10s %9s %9s %9s %8s %11s %14s %-11s %s\n", "sched", "decode t/s", "prompt t/s", "device ms", "host ms",
            "wait ms", "overlap", "MiB/token", "branch MiB/tok", "same tokens", "paired x first (quartiles)");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        fprintf(stdout, "%-8s %10.1f %10.1f %9.3f %9.3f %9.3f %7.0f%% %11.2f %14.3f %-11s %.3f (%.3f-%.3f)\n", r->sched, r->decode_tok_s,
                r->prompt_tok_s, r->device_ms, r->host_ms + r->inline_ms, r->wait_ms, 100 * r->overlap, r->bytes_per_token / 1048576.0,
                r->branch_touched / 1048576.0, r->identical < 0 ? "-" : r->identical ? "yes" : "NO", r->paired[1], r->paired[0],
                r->paired[2]);
    }
    if (s->ctx->rank_control.host_budget <= 0) return;
    fprintf(stdout, "active rank (mean share of the stored rank) over the decoded tokens, --host-budget %.2f:\n",
            s->ctx->rank_control.host_budget);
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        if (!strcmp(r->sched, "none")) continue;
        fprintf(stdout, "%-8s", r->sched);
        for (int k = 0; k < RANK_POINTS; k++) fprintf(stdout, " %5.0f%%", 100 * r->rank_share[k]);
        fprintf(stdout, "   end: mean rank %.1f, lowest branch at %.0f%%\n", r->mean_rank_end, 100 * r->rank_share_min);
    }
}

int hc_cmd_bench(int argc, char **argv)
{
    bench_opts o = { .n_decode = 64, .n_prompt = 128, .reps = 3 };
    snprintf(o.scheds, sizeof o.scheds, "none,serial,async");
    hc_session_opts_init(&o.session);
    hc_args a = { argc, argv, 0 };
    hc_status st = HC_OK;
    const char *v;
    for (a.i = 1; a.i < argc && st == HC_OK; a.i++) {
        if (hc_arg_is(&a, "--sched", NULL)) { /* a list here, before the session's single --sched */
            if ((st = hc_arg_value(&a, &v)) == HC_OK) snprintf(o.scheds, sizeof o.scheds, "%s", v);
        } else if (hc_session_parse_option(&o.session, &a, &st)) {}
        else if (hc_arg_is(&a, "-h", "--help")) {
            printf(bench_help, hc_session_help);
            return 0;
        } else if (hc_arg_is(&a, "-n", "--n-decode")) st = hc_arg_int(&a, 1, 1 << 16, &o.n_decode);
        else if (hc_arg_is(&a, "-p", "--n-prompt")) st = hc_arg_int(&a, 1, 1 << 16, &o.n_prompt);
        else if (hc_arg_is(&a, "-r", "--reps")) st = hc_arg_int(&a, 1, MAX_REPS, &o.reps);
        else if (hc_arg_is(&a, "--json", NULL)) o.json = 1;
        else if (hc_arg_is(&a, "--trace", NULL)) st = hc_arg_value(&a, &o.trace);
        else if (hc_arg_is(&a, "--host-delay", NULL)) st = hc_arg_int(&a, 0, 1000000, &o.host_delay);
        else if (hc_arg_is(&a, "--host-slowdown", NULL)) st = hc_arg_float(&a, 1, 100, &o.host_slowdown);
        else st = hc_error(HC_E_ARG, "unknown option '%s'", argv[a.i]);
    }
    char *names[MAX_SCHEDS];
    int n_sched = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", o.scheds);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && st == HC_OK; t = strtok_r(NULL, ",", &save)) {
        if (n_sched == MAX_SCHEDS) st = hc_error(HC_E_ARG, "--sched: at most %d schedulers", MAX_SCHEDS);
        else if (strlen(t) >= sizeof(((result *)0)->sched)) st = hc_error(HC_E_ARG, "--sched: '%s' is too long", t);
        else names[n_sched++] = t;
    }
    if (st == HC_OK && !n_sched) st = hc_error(HC_E_ARG, "--sched: no scheduler given");
    if (st != HC_OK) return hc_cli_fail("bench", st);
    /* the session starts with the first real scheduler of the list (the others are added after) */
    for (int i = 0; i < n_sched; i++)
        if (strcmp(names[i], "none")) {
            o.session.sched = names[i];
            break;
        }
    if (!o.session.n_ctx) o.session.n_ctx = o.n_prompt + o.n_decode + 8;
    hc_session s;
    if ((st = hc_session_open(&o.session, &s)) != HC_OK) return hc_cli_fail("bench", st);
    hc_context *c = s.ctx;
    if (c->brt) hc_branch_rt_set_host_delay(c->brt, o.host_delay), hc_branch_rt_set_host_slowdown(c->brt, o.host_slowdown);

    int *enabled = calloc((size_t)c->n_stages, sizeof *enabled), *initial_rank = calloc((size_t)c->n_stages, sizeof *initial_rank);
    int32_t *prompt = malloc((size_t)o.n_prompt * sizeof *prompt);
    int32_t *first = malloc((size_t)o.n_decode * sizeof *first), *gen = malloc((size_t)o.n_decode * sizeof *gen);
    /* per scheduler k and repetition: pt[k * reps + rep] */
    double *pt = malloc((size_t)(n_sched * o.reps) * sizeof *pt), *dt = malloc((size_t)(n_sched * o.reps) * sizeof *dt);
    result res[MAX_SCHEDS];
    hc_trace traces[MAX_SCHEDS];
    int n_traces = 0, have_first = 0;
    if (!enabled || !initial_rank || !prompt || !first || !gen || !pt || !dt) st = hc_error(HC_E_NOMEM, "bench: out of memory");
    for (int i = 0; st == HC_OK && i < c->n_stages; i++) enabled[i] = c->stages[i].branch_enabled, initial_rank[i] = c->stages[i].active_rank;
    uint64_t seed = 12345;
    for (int i = 0; st == HC_OK && i < o.n_prompt; i++) { /* a fixed pseudo-random prompt */
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        prompt[i] = (int32_t)((seed >> 33) % (uint64_t)s.model->cfg.n_vocab);
    }
    hc_trace *trace_of[MAX_SCHEDS] = { 0 };
    for (int k = 0; k < n_sched && st == HC_OK; k++) {
        memset(&res[k], 0, sizeof res[k]);
        snprintf(res[k].sched, sizeof res[k].sched, "%s", names[k]);
        if (o.trace && (st = hc_trace_init(&traces[n_traces], 1 << 16)) == HC_OK) {
            trace_of[k] = &traces[n_traces++];
            trace_of[k]->label = names[k];
        }
    }
    for (int rep = 0; rep < o.reps && st == HC_OK; rep++)
        for (int k = 0; k < n_sched && st == HC_OK; k++) {
            result *r = &res[k];
            st = select_scheduler(&s, names[k], enabled);
            if (trace_of[k]) trace_of[k]->n = 0; /* keep the last repetition */
            if (st == HC_OK) st = measure(&s, &o, initial_rank, prompt, gen, r, &pt[k * o.reps + rep], &dt[k * o.reps + rep], trace_of[k]);
            if (st != HC_OK || rep < o.reps - 1) continue;
            /* the last round: the tokens of every scheduler with branches against the first one's */
            if (!strcmp(names[k], "none")) r->identical = -1;
            else {
                if (!have_first) memcpy(first, gen, (size_t)o.n_decode * sizeof *gen);
                have_first = 1;
                r->identical = !memcmp(first, gen, (size_t)o.n_decode * sizeof *gen);
            }
        }
    for (int k = 0; k < n_sched && st == HC_OK; k++) paired_ratios(dt, o.reps, k, res[k].paired); /* before the sorts */
    for (int k = 0; k < n_sched && st == HC_OK; k++) {
        result *r = &res[k];
        r->prompt_tok_s = o.n_prompt / median(&pt[k * o.reps], o.reps);
        r->decode_tok_s = o.n_decode / median(&dt[k * o.reps], o.reps);
        r->bytes_per_token = (double)hc_model_bytes_per_token(s.model) + r->branch_touched;
        if (!o.json) fprintf(stderr, "bench: %s: %.1f decode tok/s\n", names[k], r->decode_tok_s);
    }
    if (st == HC_OK && o.trace) st = hc_trace_write(o.trace, traces, n_traces);
    if (st == HC_OK) {
        if (o.json) print_json(&o, &s, res, n_sched);
        else print_table(&o, &s, res, n_sched);
    }
    for (int i = 0; i < n_traces; i++) hc_trace_free(&traces[i]);
    free(enabled);
    free(initial_rank);
    free(prompt);
    free(first);
    free(gen);
    free(pt);
    free(dt);
    hc_session_close(&s);
    return st == HC_OK ? 0 : hc_cli_fail("bench", st);
}
