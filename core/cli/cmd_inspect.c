/* cmd_inspect.c: `hcinfer inspect MODEL`: a GGUF file's metadata and tensor table, or a llama2.c
 * checkpoint's hyper-parameters, and what hcinfer makes of the model. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "gguf.h"
#include "model.h"

static const char inspect_help[] =
    "usage: hcinfer inspect [--no-tensors] MODEL\n"
    "Prints the metadata and the tensor table of a GGUF file (or a llama2.c checkpoint's header).\n";

static void print_gguf(const hc_gguf *g, int tensors)
{
    printf("GGUF version %u, %llu metadata keys, %llu tensors, alignment %u, data at offset %llu\n", g->version,
           (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, g->alignment, (unsigned long long)g->data_offset);
    char value[512];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const hc_gguf_kv *kv = &g->kv[i];
        hc_gguf_format_value(kv, value, sizeof value, 8);
        printf("  %-48s %-12s %s\n", kv->key, kv->type == HC_GGUF_ARRAY ? "array" : hc_gguf_type_name(kv->type), value);
    }
    if (!tensors) return;
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
    hc_status st = hc_model_load(path, NULL, &m);
    if (st == HC_OK) {
        if (m->gguf) print_gguf(m->gguf, tensors);
        print_config(m);
        hc_model_free(m);
        return 0;
    }
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
