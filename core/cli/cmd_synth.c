/* cmd_synth.c: `hcinfer synth`: writes a model with random weights (dense llama/qwen3/gemma3 or mixture
 * of experts qwen2moe/qwen3moe/olmoe) and a small byte-level vocabulary, for tests and benchmarks. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "synth.h"

static const char synth_help[] =
    "usage: hcinfer synth --arch ARCH --dim N --layers N [--experts E --top-k K] [options] -o FILE\n"
    "Writes a GGUF model with random weights, GGUF's tensor names and metadata for the architecture,\n"
    "and a byte-level SentencePiece vocabulary (<unk> <s> </s>, <0x00>..<0xFF>, letter pieces), so that\n"
    "hcinfer run, compress and bench work on it. Weights are N(0, 1/in), norms 1.\n"
    "  --arch ARCH            llama, qwen3 (q/k norms), gemma3 (post norms, GeGLU, tied head, sliding-window\n"
    "                         layers), qwen2moe (shared expert), qwen3moe, olmoe; llama with --experts is\n"
    "                         Mixtral-style\n"
    "  --dim N                embedding width\n"
    "  --layers N             decoder layers\n"
    "  --heads N              attention heads (default dim/64); --kv-heads N (default: heads)\n"
    "  --ffn N                dense FFN width (default 4*dim)\n"
    "  --head-dim N           gemma3: width of a head (default dim/heads)\n"
    "  --window N             gemma3: sliding window of the local layers (default 512)\n"
    "  --swa-period P         gemma3: every P-th layer is global, the others local (default 6)\n"
    "  --experts E            routed experts per layer; --top-k K experts per token (default 2)\n"
    "  --expert-ffn N         width of one expert (default ffn/top-k)\n"
    "  --shared-experts S     qwen2moe: shared expert of S expert widths (default 1)\n"
    "  --vocab N              vocabulary size, at least 259 (default 512)\n"
    "  --ctx N                training context length (default 2048)\n"
    "  --seed S               random seed (default 1)\n"
    "  --type T               f32 (default), f16 or q8_0 for the weight matrices\n"
    "  -t, --threads N        threads drawing the numbers (default: the CPUs, at most 16; the file is the\n"
    "                         same for any count)\n"
    "  -o, --output FILE      the model file (written atomically)\n";

int hc_cmd_synth(int argc, char **argv)
{
    hc_synth_opts o = { .seed = 1, .type = HC_F32 };
    hc_args a = { argc, argv, 0 };
    hc_status st = HC_OK;
    const char *v;
    for (a.i = 1; a.i < argc && st == HC_OK; a.i++) {
        if (hc_arg_is(&a, "-h", "--help")) {
            printf(synth_help);
            return 0;
        } else if (hc_arg_is(&a, "--arch", NULL)) st = hc_arg_value(&a, &o.arch);
        else if (hc_arg_is(&a, "-o", "--output")) st = hc_arg_value(&a, &o.output);
        else if (hc_arg_is(&a, "--dim", NULL)) st = hc_arg_int(&a, 1, 1 << 16, &o.dim);
        else if (hc_arg_is(&a, "--layers", NULL)) st = hc_arg_int(&a, 1, 1024, &o.n_layer);
        else if (hc_arg_is(&a, "--heads", NULL)) st = hc_arg_int(&a, 1, 1024, &o.n_head);
        else if (hc_arg_is(&a, "--kv-heads", NULL)) st = hc_arg_int(&a, 1, 1024, &o.n_head_kv);
        else if (hc_arg_is(&a, "--ffn", NULL)) st = hc_arg_int(&a, 1, 1 << 20, &o.ffn_dim);
        else if (hc_arg_is(&a, "--head-dim", NULL)) st = hc_arg_int(&a, 2, 1 << 12, &o.head_dim);
        else if (hc_arg_is(&a, "--window", NULL)) st = hc_arg_int(&a, 1, 1 << 24, &o.n_swa);
        else if (hc_arg_is(&a, "--swa-period", NULL)) st = hc_arg_int(&a, 1, 1024, &o.swa_period);
        else if (hc_arg_is(&a, "--experts", NULL)) st = hc_arg_int(&a, 1, 4096, &o.n_expert);
        else if (hc_arg_is(&a, "--top-k", NULL)) st = hc_arg_int(&a, 1, 4096, &o.n_expert_used);
        else if (hc_arg_is(&a, "--expert-ffn", NULL)) st = hc_arg_int(&a, 1, 1 << 20, &o.expert_ffn_dim);
        else if (hc_arg_is(&a, "--shared-experts", NULL)) st = hc_arg_int(&a, 0, 64, &o.n_shared_expert);
        else if (hc_arg_is(&a, "--vocab", NULL)) st = hc_arg_int(&a, 1, 1 << 20, &o.n_vocab);
        else if (hc_arg_is(&a, "--ctx", NULL)) st = hc_arg_int(&a, 1, 1 << 24, &o.n_ctx);
        else if (hc_arg_is(&a, "--seed", NULL)) st = hc_arg_u64(&a, &o.seed);
        else if (hc_arg_is(&a, "-t", "--threads")) st = hc_arg_int(&a, 1, 256, &o.n_threads);
        else if (hc_arg_is(&a, "--type", NULL)) {
            if ((st = hc_arg_value(&a, &v)) == HC_OK) {
                if (!strcmp(v, "f32")) o.type = HC_F32;
                else if (!strcmp(v, "f16")) o.type = HC_F16;
                else if (!strcmp(v, "q8_0")) o.type = HC_Q8_0;
                else st = hc_error(HC_E_ARG, "--type: '%s' is not one of f32, f16, q8_0", v);
            }
        } else st = hc_error(HC_E_ARG, "unknown option '%s'", argv[a.i]);
    }
    if (st == HC_OK && !o.arch) st = hc_error(HC_E_ARG, "no architecture given (--arch llama|qwen3|gemma3|qwen2moe|qwen3moe|olmoe)");
    if (st == HC_OK && !o.dim) st = hc_error(HC_E_ARG, "no width given (--dim N)");
    if (st == HC_OK && !o.n_layer) st = hc_error(HC_E_ARG, "no layer count given (--layers N)");
    hc_synth_opts r;
    if (st == HC_OK) st = hc_synth_resolve(&o, &r);
    if (st == HC_OK) st = hc_synth(&o);
    if (st != HC_OK) return hc_cli_fail("synth", st);
    fprintf(stderr, "wrote %s: %s, %d layers, dim %d, %d/%d heads, ", r.output, r.arch, r.n_layer, r.dim, r.n_head, r.n_head_kv);
    if (r.n_expert)
        fprintf(stderr, "%d experts (top-%d) of width %d%s, ", r.n_expert, r.n_expert_used, r.expert_ffn_dim,
                r.n_shared_expert ? " + a shared expert" : "");
    else fprintf(stderr, "ffn %d, ", r.ffn_dim);
    if (r.n_swa) fprintf(stderr, "head %d, window %d every layer but each %d-th, ", r.head_dim, r.n_swa, r.swa_period ? r.swa_period : 6);
    fprintf(stderr, "vocab %d, %s\n", r.n_vocab, hc_dtype_name(r.type));
    return 0;
}
