/* cmd_compress.c: `hcinfer compress`: quantize a model's linear layers with a quant plugin and
 * add low-rank compensation branches within a memory budget; prints a size report. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "compress.h"
#include "progress.h"
#include "registry_default.h"

static const char compress_help[] =
    "usage: hcinfer compress -m IN -o OUT [--quant SPEC] [--budget PCT | --rank N] [--calib FILE]\n"
    "                        [--policy FILE.lua] [options]\n"
    "Quantizes every linear layer of IN with a quant plugin, factors each layer's quantization\n"
    "error into a low-rank branch (R = W - Q(W) ~ B A) and writes one GGUF file, OUT.\n"
    "  -m, --model FILE        input: a GGUF model or a llama2.c checkpoint\n"
    "  -z, --tokenizer FILE    llama2.c tokenizer (default: beside a llama2.c input)\n"
    "  -o, --output FILE       output GGUF (written atomically; nothing is left on failure)\n"
    "      --quant SPEC        backbone format, e.g. rtn:bits=3,group=128,search=1 or gptq:bits=3,group=128\n"
    "                          (default: " HC_COMPRESS_DEFAULT_QUANT ",\n"
    "                          and without --calib then --calib self)\n"
    "      --head-quant SPEC   also quantize the output head (and a tied embedding) (default: keep)\n"
    "      --tensor-quant PATTERN=SPEC  the linear layers whose names match PATTERN in format SPEC\n"
    "                          (mixed precision; repeatable, the last match wins): a glob of the whole\n"
    "                          name when it has * ? [, else whole dot-separated parts of it (attn_v, blk.7),\n"
    "                          e.g. ffn_down=gptq:bits=4,group=128,\n"
    "                          'blk.[0-3].attn_v.weight=rtn:bits=8,group=32'; one that matches nothing is an error\n"
    "      --budget PCT        branch memory as a percentage of the backbone's (default 10; 0 = none;\n"
    "                          an untied token-embedding table, of which a token reads one row,\n"
    "                          is not counted)\n"
    "      --rank N            the same rank for every layer instead of --budget\n"
    "      --calib FILE        calibration text: activation-aware branches (and gptq's Hessians);\n"
    "                          self: text the source model samples itself (sequences of 64 tokens\n"
    "                          from BOS at temperature 1, a fixed seed; no data needed)\n"
    "      --calib-tokens N    tokens of it to use (default 8192)\n"
    "      --calib-seq N       calibration sequence length (default 512)\n"
    "      --calib-skip N      skip the text's first N tokens (another draw of the same text)\n"
    "      --calib-seed N      the seed of the sampled text of --calib self and --sens-source self\n"
    "                          (another draw; default 20261124)\n"
    "      --calib-forward F   the inputs each layer is calibrated on: source (the source model's layers\n"
    "                          before it, default) or compressed (those layers compressed: Q(W) + B A at\n"
    "                          the uniform rank, sequential calibration as in GPTQ)\n"
    "      --whitening W       full (EoRA-style, default with --calib), diag (L2QER-style) or none\n"
    "      --branch-dtype T    q8_0 (default: 8-bit rows in blocks of 32, about half the bytes of f16 a\n"
    "                          rank; f16 for layers whose widths are not multiples of 32), f16, bf16, f32\n"
    "      --policy FILE.lua   rank policy script, or a shipped one by name: uniform, greedy,\n"
    "                          relative (default: uniform ranks in C); see sdk/POLICIES.md\n"
    "      --rank-max N        directions factored per layer, the most a policy can give\n"
    "                          (default max(4 x the uniform rank, 64)); ranks are a prefix\n"
    "      --sens-tokens N     also measure each layer's end-to-end sensitivity on N calibration\n"
    "                          tokens (1..4096; one forward pass per layer): the KL divergence from\n"
    "                          the source when only that layer is quantized (policies: layer.loss;\n"
    "                          MoE experts: one pass per expert tensor, shared by frequency x error)\n"
    "      --sens-source S     where those tokens come from: calib (the --calib text, default) or\n"
    "                          self (sampled from the source model, sequences of 64 tokens from BOS:\n"
    "                          the KL between the two models' own text distributions; no data)\n"
    "      --joint N           quantization that knows its branch: N rounds of Q <- quant(W - B A),\n"
    "                          B A <- svd_r(W - Q) at the uniform rank, the best Q kept (default 0)\n"
    "      --awq               activation-aware scales (AWQ; needs --calib): the layers reading one\n"
    "                          input (q/k/v, gate/up, down, o when heads have their own v) get\n"
    "                          per-channel scales mean|x|^alpha, alpha the best for rtn at the\n"
    "                          backbone's bits; folded into the norms and the up/v rows, exact\n"
    "      --awq-grid N        the values of alpha tried, 0, 1/N .. (N-1)/N (default 20; implies --awq)\n"
    "  -t, --threads N         threads (default 2)\n";

/* One progress bar per phase of the compressor (calibrate, quantize, write). */
typedef struct phase_progress {
    hc_progress bar;
    const char *phase;
} phase_progress;

static void draw(void *ctx, const char *phase, int64_t done, int64_t total)
{
    phase_progress *p = ctx;
    if (!p->phase || strcmp(p->phase, phase)) {
        if (p->phase) hc_progress_end(&p->bar);
        const char *unit = !strcmp(phase, "calibrate") || !strcmp(phase, "sample") ? "tokens" : !strcmp(phase, "write") ? "files" : "layers";
        hc_progress_begin(&p->bar, stderr, phase, unit, (long)total);
        p->phase = phase;
    }
    hc_progress_update(&p->bar, (long)done);
}

static hc_status parse(int argc, char **argv, hc_compress_opts *o, const char **tensor_quant, int *help)
{
    hc_args a = { argc, argv, 0 };
    const char *v;
    for (a.i = 1; a.i < argc; a.i++) {
        hc_status st = HC_OK;
        if (hc_arg_is(&a, "-h", "--help")) *help = 1;
        else if (hc_arg_is(&a, "-m", "--model")) st = hc_arg_value(&a, &o->input);
        else if (hc_arg_is(&a, "-z", "--tokenizer")) st = hc_arg_value(&a, &o->tokenizer);
        else if (hc_arg_is(&a, "-o", "--output")) st = hc_arg_value(&a, &o->output);
        else if (hc_arg_is(&a, "--quant", NULL)) st = hc_arg_value(&a, &o->quant);
        else if (hc_arg_is(&a, "--head-quant", NULL)) st = hc_arg_value(&a, &o->head_quant);
        else if (hc_arg_is(&a, "--tensor-quant", NULL)) {
            if (o->n_tensor_quant == HC_COMPRESS_MAX_TENSOR_QUANT)
                st = hc_error(HC_E_ARG, "--tensor-quant: at most %d options", HC_COMPRESS_MAX_TENSOR_QUANT);
            else if ((st = hc_arg_value(&a, &tensor_quant[o->n_tensor_quant])) == HC_OK) o->tensor_quant = tensor_quant, o->n_tensor_quant++;
        }
        else if (hc_arg_is(&a, "--budget", NULL)) {
            float b;
            st = hc_arg_float(&a, 0, 1000, &b);
            o->budget = b;
        } else if (hc_arg_is(&a, "--rank", NULL)) st = hc_arg_int(&a, 1, 65536, &o->rank);
        else if (hc_arg_is(&a, "--rank-max", NULL)) st = hc_arg_int(&a, 1, 65536, &o->rank_max);
        else if (hc_arg_is(&a, "--calib", NULL)) st = hc_arg_value(&a, &o->calib);
        else if (hc_arg_is(&a, "--calib-tokens", NULL)) st = hc_arg_int(&a, 2, 1 << 24, &o->calib_tokens);
        else if (hc_arg_is(&a, "--calib-seq", NULL)) st = hc_arg_int(&a, 2, 1 << 16, &o->calib_seq);
        else if (hc_arg_is(&a, "--calib-skip", NULL)) st = hc_arg_int(&a, 0, 1 << 30, &o->calib_skip);
        else if (hc_arg_is(&a, "--calib-seed", NULL)) {
            int seed = 0;
            if ((st = hc_arg_int(&a, 1, 1 << 30, &seed)) == HC_OK) o->calib_seed = (unsigned)seed;
        }
        else if (hc_arg_is(&a, "--calib-forward", NULL)) {
            if ((st = hc_arg_value(&a, &v)) == HC_OK) {
                if (!strcmp(v, "compressed")) o->calib_sequential = 1;
                else if (!strcmp(v, "source")) o->calib_sequential = 0;
                else st = hc_error(HC_E_ARG, "--calib-forward: '%s' is neither source nor compressed", v);
            }
        }
        else if (hc_arg_is(&a, "--policy", NULL)) st = hc_arg_value(&a, &o->policy);
        else if (hc_arg_is(&a, "--sens-tokens", NULL)) st = hc_arg_int(&a, 1, 4096, &o->sens_tokens);
        else if (hc_arg_is(&a, "--sens-source", NULL)) {
            if ((st = hc_arg_value(&a, &v)) == HC_OK) {
                if (!strcmp(v, "self")) o->sens_self = 1;
                else if (!strcmp(v, "calib")) o->sens_self = 0;
                else st = hc_error(HC_E_ARG, "--sens-source: '%s' is neither calib nor self", v);
            }
        }
        else if (hc_arg_is(&a, "--joint", NULL)) st = hc_arg_int(&a, 0, 100, &o->joint_rounds);
        else if (hc_arg_is(&a, "--awq", NULL)) o->awq = o->awq ? o->awq : 20;
        else if (hc_arg_is(&a, "--awq-grid", NULL)) {
            int g = 0;
            if ((st = hc_arg_int(&a, 1, 100, &g)) == HC_OK) o->awq = g;
        }
        else if (hc_arg_is(&a, "-t", "--threads")) st = hc_arg_int(&a, 1, 256, &o->threads);
        else if (hc_arg_is(&a, "--whitening", NULL)) {
            if ((st = hc_arg_value(&a, &v)) == HC_OK) {
                o->whitening_given = 1;
                if (!strcmp(v, "full")) o->whitening = HC_WHITEN_FULL;
                else if (!strcmp(v, "diag")) o->whitening = HC_WHITEN_DIAG;
                else if (!strcmp(v, "none")) o->whitening = HC_WHITEN_NONE;
                else st = hc_error(HC_E_ARG, "--whitening: '%s' is not one of full, diag, none", v);
            }
        } else if (hc_arg_is(&a, "--branch-dtype", NULL)) {
            if ((st = hc_arg_value(&a, &v)) == HC_OK) {
                if (!strcmp(v, "f16")) o->branch_dtype = HC_F16;
                else if (!strcmp(v, "bf16")) o->branch_dtype = HC_BF16;
                else if (!strcmp(v, "f32")) o->branch_dtype = HC_F32;
                else if (!strcmp(v, "q8_0")) o->branch_dtype = HC_Q8_0;
                else st = hc_error(HC_E_ARG, "--branch-dtype: '%s' is not one of f16, bf16, f32, q8_0", v);
            }
        } else st = hc_error(HC_E_ARG, "unknown option '%s'", argv[a.i]);
        if (st != HC_OK) return st;
    }
    if (*help) return HC_OK;
    if (!o->input) return hc_error(HC_E_ARG, "no input model (-m FILE)");
    if (!o->output) return hc_error(HC_E_ARG, "no output file (-o FILE)");
    if (!o->quant) { /* the default backbone, and calibration it can always have */
        o->quant = HC_COMPRESS_DEFAULT_QUANT;
        if (!o->calib) o->calib = "self";
        fprintf(stderr, "compress: no --quant: the default backbone %s, --calib %s\n", o->quant, o->calib);
    }
    if (!strcmp(o->input, o->output)) return hc_error(HC_E_ARG, "the output would overwrite the input");
    if (o->whitening_given && o->whitening != HC_WHITEN_NONE && !o->calib)
        return hc_error(HC_E_ARG, "--whitening %s needs calibration text (--calib FILE)", o->whitening == HC_WHITEN_FULL ? "full" : "diag");
    if (!o->whitening_given) o->whitening = o->calib ? HC_WHITEN_FULL : HC_WHITEN_NONE;
    if (o->sens_self && !o->sens_tokens) return hc_error(HC_E_ARG, "--sens-source self needs --sens-tokens N");
    if (o->sens_tokens && !o->calib && !o->sens_self)
        return hc_error(HC_E_ARG, "--sens-tokens needs calibration text (--calib FILE) or --sens-source self");
    return HC_OK;
}

static void print_report(const hc_compress_opts *o, const hc_compress_report *r)
{
    double mib = 1048576.0;
    fprintf(stderr, "compressed %s -> %s in %.1f s (calibration %.1f s on %lld tokens, source read %.1f s, quantization and "
            "factorization %.1f s, writing %.1f s)\n", o->input, o->output, r->seconds_total, r->seconds_calib,
            (long long)r->calib_tokens, r->seconds_source, r->seconds_quant, r->seconds_write);
    fprintf(stderr, "  source weights  %8.2f MiB\n", r->source_bytes / mib);
    if (o->head_quant)   /* the head is one of the linear layers */
        fprintf(stderr, "  backbone        %8.2f MiB (%d linear layers as %s, the output head as %s)\n", r->backbone_bytes / mib,
                r->n_linear - 1, o->quant, o->head_quant);
    else
        fprintf(stderr, "  backbone        %8.2f MiB (%d linear layers as %s)\n", r->backbone_bytes / mib, r->n_linear, o->quant);
    if (r->n_tensor_quant > 0)
        fprintf(stderr, "                  of which %d in the formats of --tensor-quant\n", r->n_tensor_quant);
    fprintf(stderr, "  branches        %8.2f MiB = %.2f%% of the backbone%s (%d branches, rank %d..%d, mean %.1f)\n",
            r->branch_bytes / mib, r->budget_base_bytes ? 100.0 * r->branch_bytes / r->budget_base_bytes : 0.0,
            r->budget_base_bytes < r->backbone_bytes ? " less its token-embedding table" : "", r->n_branches,
            r->rank_min, r->rank_max, r->rank_mean);
    if (r->error_measure && r->error_total > 0)
        fprintf(stderr, "  error removed   %8.2f%% of the layers' quantization error (%s measure, %s)\n",
                100.0 * r->error_removed / r->error_total, r->error_measure, o->policy ? o->policy : o->rank > 0 ? "fixed rank" : "uniform");
    if (r->error_measure && r->error_total > 0)
        fprintf(stderr, "  error left      %.6g of %.6g (sum over layers, %s measure)\n", r->error_total - r->error_removed,
                r->error_total, r->error_measure);
    if (o->joint_rounds > 0)
        fprintf(stderr, "  joint           %d rounds: the uniform-rank branches leave %.6g, %.6g after one quantization\n",
                o->joint_rounds, r->joint_best, r->joint_first);
    if (r->awq_groups > 0)
        fprintf(stderr, "  awq             %d of %d groups scaled (mean alpha %.2f): rtn's output error %.6g, %.6g unscaled\n",
                r->awq_scaled, r->awq_groups, r->awq_alpha_mean, r->awq_error_best, r->awq_error_plain);
    if (r->sens_tokens)
        fprintf(stderr, "  sensitivity     measured on %lld tokens %s in %.1f s (one forward pass per layer or expert tensor)\n", (long long)r->sens_tokens,
                hc_compress_sens_is_self(o) ? "sampled from the source model" : "of the calibration text",
                r->seconds_measure);
    if (r->n_unfit)
        fprintf(stderr, "  kept as stored  %d linear layers whose shape the format cannot hold (%s)\n", r->n_unfit, r->unfit_reason);
}

int hc_cmd_compress(int argc, char **argv)
{
    hc_compress_opts o = { .budget = 10, .threads = 2, .branch_dtype = HC_Q8_0 };
    const char *tensor_quant[HC_COMPRESS_MAX_TENSOR_QUANT];
    int help = 0;
    hc_status st = parse(argc, argv, &o, tensor_quant, &help);
    if (help) {
        printf(compress_help);
        return 0;
    }
    if (st != HC_OK) return hc_cli_fail("compress", st);
    hc_registry *reg = NULL;
    if ((st = hc_registry_create(&reg)) == HC_OK) st = hc_registry_load_default(reg);
    phase_progress progress = { .phase = NULL };
    o.registry = reg;
    o.progress = draw;
    o.progress_ctx = &progress;
    hc_compress_report report;
    if (st == HC_OK) st = hc_compress(&o, &report);
    if (progress.phase) hc_progress_end(&progress.bar);
    hc_registry_free(reg);
    if (st != HC_OK) return hc_cli_fail("compress", st);
    print_report(&o, &report);
    return 0;
}
