/* cmd_inspect.c: `hcinfer inspect MODEL`: a GGUF file's metadata and tensor table, or a llama2.c
 * checkpoint's hyper-parameters, and what hcinfer makes of the model. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "gguf.h"
#include "model_load.h"
#include "registry_default.h"
#include "suffix.h"

static const char inspect_help[] =
    "usage: hcinfer inspect [--no-tensors] MODEL\n"
    "Prints the metadata and the tensor table of a GGUF file (or a llama2.c checkpoint's header).\n";

/* A per-layer sensitivity key of a compressed model: hc.sens.<weight> (the total, the output
 * energy and the measure are separate keys). */
static int is_sens_array(const hc_gguf_kv *kv)
{
    return !strncmp(kv->key, "hc.sens.", 8) && kv->type == HC_GGUF_ARRAY && kv->arr_type == HC_GGUF_FLOAT32;
}

static int is_sens_key(const hc_gguf_kv *kv)
{
    static const char *const per_layer[] = { ".total", ".signal", ".loss" };
    if (is_sens_array(kv)) return 1;
    if (strncmp(kv->key, "hc.sens.", 8) || !strncmp(kv->key, "hc.sens.loss_", 13)) return 0;
    for (size_t i = 0; i < sizeof per_layer / sizeof *per_layer; i++)
        if (hc_ends_with(kv->key, per_layer[i])) return 1;
    return 0;
}

/* The compact table of a compressed model's branches: stored rank, the layer's error with no
 * branch, the share of it the stored rank (and all factored directions) remove, and the error left
 * at the stored rank relative to the layer's output energy (what greedy.lua weighs), and the measured
 * loss with only this layer quantized (compress --sens-tokens), when there is one. */
static void print_sensitivity(const hc_gguf *g)
{
    int n = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) n += is_sens_array(&g->kv[i]);
    if (!n) return;
    const char *measure = "unknown";
    if (hc_gguf_find(g, "hc.sens.measure") && hc_gguf_get_str(g, "hc.sens.measure", &measure) != HC_OK) measure = "unknown";
    printf("branch sensitivity (%d layers, measure %s): error with no branch, share removed at the stored rank and at rank_max,\n"
           "error left at the stored rank relative to the layer's output energy, measured loss with only this layer\n"
           "quantized (KL from the source, nats per token)\n", n, measure);
    printf("  %-40s %6s %6s %12s %8s %8s %10s %10s\n", "layer", "rank", "max", "error", "removed", "at max", "left/out", "loss");
    double all_e = 0, all_r = 0, all_m = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const hc_gguf_kv *kv = &g->kv[i];
        if (!is_sens_array(kv)) continue;
        const char *weight = kv->key + 8;
        char key[512], base[512];
        snprintf(key, sizeof key, "%s.total", kv->key);
        size_t len = hc_len_without(weight, ".weight");
        snprintf(base, sizeof base, "%.*s.lora_s", (int)len, weight);
        const hc_gguf_tensor *t = hc_gguf_find_tensor(g, base);
        int rank = t ? (int)t->ne[0] : 0;
        double removed = 0, all = 0;
        for (uint64_t k = 0; k < kv->arr_n; k++) {
            float v;
            memcpy(&v, (const char *)kv->arr + 4 * k, sizeof v); /* packed in the file: maybe unaligned */
            if ((int64_t)k < rank) removed += v;
            all += v;
        }
        float total = 0, signal = 0;
        if (hc_gguf_get_f32(g, key, &total) != HC_OK) total = 0;
        snprintf(key, sizeof key, "%s.signal", kv->key);
        if (!hc_gguf_find(g, key) || hc_gguf_get_f32(g, key, &signal) != HC_OK) signal = 0; /* files before it was stored */
        all_e += total;
        all_r += removed;
        all_m += all;
        char left[32] = "-", loss[32] = "-";
        if (signal > 0) snprintf(left, sizeof left, "%.3g%%", 100.0 * (total - removed) / signal);
        float l;
        snprintf(key, sizeof key, "%s.loss", kv->key);
        if (hc_gguf_find(g, key) && hc_gguf_get_f32(g, key, &l) == HC_OK) snprintf(loss, sizeof loss, "%.4g", (double)l);
        printf("  %-40s %6d %6llu %12.4g %7.2f%% %7.2f%% %10s %10s\n", weight, rank, (unsigned long long)kv->arr_n, (double)total,
               total > 0 ? 100.0 * removed / total : 0.0, total > 0 ? 100.0 * all / total : 0.0, left, loss);
    }
    printf("  %-40s %6s %6s %12.4g %7.2f%% %7.2f%%\n", "all layers", "", "", all_e, all_e > 0 ? 100.0 * all_r / all_e : 0.0,
           all_e > 0 ? 100.0 * all_m / all_e : 0.0);
    hc_clear_error();
}

static void print_tensors(const hc_gguf *g);

static void print_gguf(const hc_gguf *g, int tensors)
{
    printf("GGUF version %u, %llu metadata keys, %llu tensors, alignment %u, data at offset %llu\n", g->version,
           (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, g->alignment, (unsigned long long)g->data_offset);
    char value[512];
    int sens = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const hc_gguf_kv *kv = &g->kv[i];
        if (is_sens_key(kv)) { /* one per layer: summarized in the sensitivity table */
            sens++;
            continue;
        }
        hc_gguf_format_value(kv, value, sizeof value, 8);
        printf("  %-48s %-12s %s\n", kv->key, kv->type == HC_GGUF_ARRAY ? "array" : hc_gguf_type_name(kv->type), value);
    }
    if (sens) printf("  %-48s %-12s (%d keys: the sensitivity table below)\n", "hc.sens.<weight>[.total/.signal/.loss]", "f32", sens);
    if (tensors) print_tensors(g);
    print_sensitivity(g);
}

static void print_tensors(const hc_gguf *g)
{
    printf("%-6s %-40s %-8s %-24s %12s %12s\n", "#", "tensor", "type", "shape", "offset", "bytes");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        char shape[64];
        int len = 0;
        for (uint32_t d = 0; d < t->n_dims; d++) len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%lld", d ? " x " : "", (long long)t->ne[d]);
        printf("%-6llu %-40s %-8s %-24s %12llu %12zu\n", (unsigned long long)i, t->name, hc_dtype_name((hc_dtype)t->type), shape,
               (unsigned long long)t->offset, t->nbytes);
    }
}

static void print_config(const hc_model *m)
{
    const hc_model_config *c = &m->cfg;
    printf("model: %s, %d layers, dim %d, %d heads (%d kv, head size %d), ffn %d, vocab %d, context %d\n", c->arch, c->n_layer,
           c->dim, c->n_head, c->n_head_kv, c->head_dim, c->ffn_dim, c->n_vocab, c->n_ctx_train);
    printf("       rope %s over %d dims, base %g; rms eps %g; output head %s\n", c->rope_mode == HC_ROPE_NEOX ? "neox" : "norm",
           c->n_rot, c->rope_theta, c->rms_eps, c->tied_output ? "tied to the embedding" : "separate");
    if (c->n_expert > 0)
        printf("       experts: %d per layer, top-%d (weights %s), width %d; shared expert width %d\n", c->n_expert, c->n_expert_used,
               c->norm_topk_prob ? "renormalised" : "as routed", c->expert_ffn_dim, c->shexp_ffn_dim);
    printf("       %.1f MiB of weights read per decoded token\n", hc_model_bytes_per_token(m) / 1048576.0);
}

int hc_cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int tensors = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf(inspect_help);
            return 0;
        } else if (!strcmp(argv[i], "--no-tensors")) tensors = 0;
        else if (argv[i][0] == '-' && argv[i][1]) return hc_cli_fail("inspect", hc_error(HC_E_ARG, "unknown option '%s'", argv[i]));
        else if (path) return hc_cli_fail("inspect", hc_error(HC_E_ARG, "more than one file given"));
        else path = argv[i];
    }
    if (!path) return hc_cli_fail("inspect", hc_error(HC_E_ARG, "no model file given"));
    hc_model *m = NULL;
    /* the quant plugins, so that a compressed model loads too (without them: shown as a GGUF) */
    hc_registry *reg = NULL;
    if (hc_registry_create(&reg) == HC_OK && hc_registry_load_default(reg) != HC_OK) {
        hc_registry_free(reg);
        reg = NULL;
    }
    hc_model_load_opts lo = { .registry = reg };
    hc_status st = hc_model_load(path, &lo, &m);
    if (st == HC_OK) {
        if (m->gguf) print_gguf(m->gguf, tensors);
        print_config(m);
        hc_model_free(m); /* before the registry: its formats live in the plugins */
        hc_registry_free(reg);
        return 0;
    }
    hc_registry_free(reg);
    /* not a loadable model: a GGUF of another kind (a vocabulary) can still be shown */
    hc_gguf *g = NULL;
    char why[1024];
    snprintf(why, sizeof why, "%s", hc_last_error());
    if (hc_gguf_open(path, &g) != HC_OK) return hc_cli_fail("inspect", st);
    print_gguf(g, tensors);
    printf("(not a runnable model: %s)\n", why);
    hc_gguf_close(g);
    return 0;
}
