/* session.c: opening registry, device, model, tokenizer and context from the shared options,
 * with every failure reported by name and everything released again on the way out. */
#define _GNU_SOURCE
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_device.h"
#include "moe.h"
#include "pipeline_lua.h"
#include "registry_default.h"
#include "threadpool.h"

const char hc_session_help[] =
    "  -m, --model FILE        model: GGUF, or a llama2.c checkpoint (.bin)\n"
    "  -z, --tokenizer FILE    llama2.c tokenizer file (default: tokenizer.bin or tok<vocab>.bin\n"
    "                          beside a llama2.c model; GGUF files carry their own)\n"
    "  -t, --threads N         device threads; also --device-threads N (default: the CPUs, less the\n"
    "                          host threads when branches run on host threads)\n"
    "  -c, --ctx-size N        context length in tokens (default: the model's, at most 4096)\n"
    "  -b, --batch-size N      tokens per forward pass in prompt processing (default 128)\n"
    "      --kv-type T         KV cache element type: f32 (default: exact against the reference\n"
    "                          forward) or f16 (half the memory; devices that can store f16 rows)\n"
    "      --device NAME       device plugin (default cpu; see hcinfer plugins)\n"
    "      --f32               convert every weight to f32 on load (the reference path)\n"
    "      --no-comp           ignore the compensation branches of a compressed model\n"
    "      --rank N            cap the active rank of every branch\n"
    "      --comp NAME         compensation kernel plugin (default host)\n"
    "      --sched NAME        scheduler of the branches: inline (default on the cpu device: its\n"
    "                          threads compute them too), async (default on other devices and with\n"
    "                          --host-budget: host threads overlap them with the device), serial\n"
    "      --host-threads N    host threads running the branches under async/serial (default 1)\n"
    "      --handoff H         how branches travel on a device with memory of its own: events (default:\n"
    "                          the host enqueues each copy and wait) or flags (the device waits for the\n"
    "                          host's flag in page-locked memory: a step enqueued without waiting)\n"
    "      --moe-device-rows N routed rows (tokens x experts a token) up to which a MoE pass routes its\n"
    "                          experts on a device that can (default: 8 an expert, at least 64; 0: none)\n"
    "      --pipeline FILE     Lua pipeline script: stages, branches, schedulers, on_step policy\n"
    "                          (scripts/pipelines/default.lua, adaptive.lua)\n"
    "      --host-budget X     dynamic ranks: keep each branch's host time within X times the device\n"
    "                          time it overlaps with (e.g. 0.9; default off)\n";

void hc_session_opts_init(hc_session_opts *o)
{
    memset(o, 0, sizeof *o);
    o->device = "cpu";
    o->threads = 0;
    o->comp = "host";
    o->sched = NULL; /* automatic: see resolve_threads */
    o->host_threads = 1;
}

/* The option's value, one of two words: *which 0 for w0, 1 for w1. */
static hc_status parse_pair(hc_args *a, const char *opt, const char *w0, const char *w1, int *which)
{
    const char *v;
    hc_status st = hc_arg_value(a, &v);
    if (st != HC_OK) return st;
    if (!strcmp(v, w0)) *which = 0;
    else if (!strcmp(v, w1)) *which = 1;
    else return hc_error(HC_E_ARG, "%s: '%s' is neither %s nor %s", opt, v, w0, w1);
    return HC_OK;
}

static hc_status parse_handoff(hc_args *a, hc_handoff *out)
{
    int flags = 0;
    hc_status st = parse_pair(a, "--handoff", "events", "flags", &flags);
    if (st == HC_OK) *out = flags ? HC_HANDOFF_FLAGS : HC_HANDOFF_EVENTS;
    return st;
}

static hc_status parse_kv_type(hc_args *a, hc_kv_type *out)
{
    int f16 = 0;
    hc_status st = parse_pair(a, "--kv-type", "f32", "f16", &f16);
    if (st == HC_OK) *out = f16 ? HC_KV_F16 : HC_KV_F32;
    return st;
}

int hc_session_parse_option(hc_session_opts *o, hc_args *a, hc_status *st)
{
    *st = HC_OK;
    if (hc_arg_is(a, "-m", "--model")) *st = hc_arg_value(a, &o->model);
    else if (hc_arg_is(a, "-z", "--tokenizer")) *st = hc_arg_value(a, &o->tokenizer);
    else if (hc_arg_is(a, "-t", "--threads") || hc_arg_is(a, "--device-threads", NULL)) *st = hc_arg_int(a, 1, 256, &o->threads);
    else if (hc_arg_is(a, "--host-threads", NULL)) *st = hc_arg_int(a, 1, 64, &o->host_threads);
    else if (hc_arg_is(a, "--sched", NULL)) *st = hc_arg_value(a, &o->sched);
    else if (hc_arg_is(a, "--pipeline", NULL)) *st = hc_arg_value(a, &o->pipeline);
    else if (hc_arg_is(a, "--host-budget", NULL)) *st = hc_arg_float(a, 0.01, 100, &o->host_budget);
    else if (hc_arg_is(a, "-c", "--ctx-size")) *st = hc_arg_int(a, 1, 1 << 20, &o->n_ctx);
    else if (hc_arg_is(a, "-b", "--batch-size")) *st = hc_arg_int(a, 1, 1 << 16, &o->n_batch);
    else if (hc_arg_is(a, "--kv-type", NULL)) *st = parse_kv_type(a, &o->kv_type);
    else if (hc_arg_is(a, "--handoff", NULL)) *st = parse_handoff(a, &o->handoff);
    else if (hc_arg_is(a, "--moe-device-rows", NULL)) {
        int n = 0;
        if ((*st = hc_arg_int(a, 0, HC_MOE_DEVICE_ROWS_MAX, &n)) == HC_OK) o->moe_device_rows = n ? n : -1;
    }
    else if (hc_arg_is(a, "--device", NULL)) *st = hc_arg_value(a, &o->device);
    else if (hc_arg_is(a, "--f32", NULL)) o->to_f32 = 1;
    else if (hc_arg_is(a, "--no-comp", NULL)) o->no_comp = 1;
    else if (hc_arg_is(a, "--rank", NULL)) *st = hc_arg_int(a, 1, 1 << 16, &o->max_rank);
    else if (hc_arg_is(a, "--comp", NULL)) *st = hc_arg_value(a, &o->comp);
    else return 0;
    return 1;
}

hc_status hc_device_open(hc_registry *r, const char *name, const hc_device_config *cfg, hc_device **out)
{
    const hc_plugin *p = hc_registry_find(r, HC_PLUGIN_DEVICE, name);
    if (!p) return HC_E_DEVICE;
    const hc_device_plugin_ops *ops = p->desc->ops;
    hc_status st = ops->probe();
    if (st != HC_OK) return hc_error_context(HC_E_DEVICE, "device '%s' is not usable: ", name);
    st = ops->create(cfg, out);
    if (st != HC_OK) return hc_error_context(st, "device '%s': ", name);
    return HC_OK;
}

/* The scheduler (as asked; else inline on the cpu device, whose threads are the host's cores
 * anyway: measured on 2 CPUs, 2 device threads computing the branches too decode 1.4x faster than
 * 1 device + 1 host thread overlapping them; async on other devices, and with --host-budget, whose
 * controller steers host threads) and the device threads (as asked; else the usable CPUs less the
 * host threads when branches run on host threads of their own, as async and serial do). Threads
 * that outnumber the CPUs spin against each other at every hand-off: that is said on stderr. */
static void resolve_threads(const hc_session_opts *o, hc_session *s)
{
    long n_cpu = hc_usable_cpus();
    int branches = !o->no_comp && hc_model_branch_bytes(s->model) > 0;
    int cpu_device = !strcmp(o->device, "cpu");
    s->sched = o->sched ? o->sched : cpu_device && !(o->host_budget > 0) ? "inline" : "async";
    s->host_threads = branches && strcmp(s->sched, "inline") ? o->host_threads : 0;
    if (o->threads > 0) {
        if (cpu_device && s->host_threads && o->threads + s->host_threads > n_cpu)
            fprintf(stderr, "hcinfer: %d device + %d host threads on %ld CPUs: they will compete for the cores "
                            "(fewer -t, or --sched inline, runs faster)\n", o->threads, s->host_threads, n_cpu);
        s->device_threads = o->threads;
        return;
    }
    long t = cpu_device ? n_cpu - s->host_threads : n_cpu;
    s->device_threads = t < 1 ? 1 : (int)t;
}

hc_status hc_session_open(const hc_session_opts *o, hc_session *s)
{
    memset(s, 0, sizeof *s);
    if (!o->model) return hc_error(HC_E_ARG, "no model given (-m FILE)");
    hc_status st = hc_registry_create(&s->registry);
    if (st == HC_OK) st = hc_registry_load_default(s->registry);
    hc_model_load_opts lo = { .to_f32 = o->to_f32, .registry = s->registry, .no_branches = o->no_comp };
    if (st == HC_OK) st = hc_model_load(o->model, &lo, &s->model);
    if (st == HC_OK) resolve_threads(o, s);
    hc_device_config cfg = { .n_threads = s->device_threads };
    if (st == HC_OK) st = hc_device_open(s->registry, o->device, &cfg, &s->device);
    if (st == HC_OK) {
        if (s->model->gguf && !o->tokenizer) {
            st = hc_tokenizer_from_gguf(s->model->gguf, &s->tok);
        } else {
            char path[4096];
            const char *tp = o->tokenizer;
            if (!tp && (st = hc_llama2c_tokenizer_path(o->model, s->model->cfg.n_vocab, path, sizeof path)) == HC_OK) tp = path;
            if (st == HC_OK) st = hc_tokenizer_load_llama2c(tp, s->model->cfg.n_vocab, &s->tok);
        }
    }
    if (st == HC_OK && hc_tokenizer_n_vocab(s->tok) > s->model->cfg.n_vocab)
        st = hc_error(HC_E_FORMAT, "the tokenizer has %d tokens but the model only %d", hc_tokenizer_n_vocab(s->tok),
                      s->model->cfg.n_vocab);
    if (st == HC_OK && o->pipeline) st = hc_pipeline_lua_open(o->pipeline, NULL, &s->pipeline);
    hc_context_params cp = { .n_ctx = o->n_ctx, .n_batch = o->n_batch, .kv_type = o->kv_type, .max_rank = o->max_rank, .pipeline = s->pipeline,
                             .registry = s->registry, .host_budget = o->host_budget, .handoff = o->handoff,
                             .moe_device_rows = o->moe_device_rows };
    if (st == HC_OK && !o->no_comp && hc_model_branch_bytes(s->model) > 0) {
        const hc_plugin *cp_plugin = hc_registry_find(s->registry, HC_PLUGIN_COMP, o->comp);
        const hc_plugin *sp = cp_plugin ? hc_registry_find(s->registry, HC_PLUGIN_SCHED, s->sched) : NULL;
        if (!cp_plugin || !sp) st = HC_E_PLUGIN;
        else {
            cp.comp = cp_plugin->desc->ops;
            cp.sched = sp->desc->ops;
            cp.sched_name = s->sched;
            cp.host_threads = o->host_threads;
        }
    }
    if (st == HC_OK) st = hc_context_create(s->model, s->device, &cp, &s->ctx);
    if (st != HC_OK) hc_session_close(s);
    return st;
}

void hc_session_describe(const hc_session *s, FILE *f)
{
    size_t bb = s->ctx && s->ctx->brt ? hc_model_branch_bytes(s->model) : 0;
    if (bb)
        fprintf(f, "branches: %.2f MiB, scheduler %s, %d device thread(s), %d host thread(s)\n", bb / 1048576.0, s->sched,
                s->device_threads, s->host_threads);
    else
        fprintf(f, "%d device thread(s), no branches in use\n", s->device_threads);
}

void hc_session_close(hc_session *s)
{
    hc_context_free(s->ctx);
    hc_pipeline_lua_close(s->pipeline);
    hc_tokenizer_free(s->tok);
    hc_model_free(s->model);
    if (s->device) s->device->ops->destroy(s->device);
    hc_registry_free(s->registry);
    memset(s, 0, sizeof *s);
}
