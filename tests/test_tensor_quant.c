/* test_tensor_quant.c: compress --tensor-quant (core/compress/compress_tensor_quant.c): which names a
 * pattern picks, each tensor written in its own format, bytes equal to a whole-model run, refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress.h"
#include "compress_tensor_quant.h"
#include "context.h"
#include "device_cpu.h"
#include "gguf.h"
#include "model_load.h"
#include "registry.h"
#include "synth.h"
#include "test_util.h"

static hc_registry *reg;
static char src[600];

static void make_source(void)
{
    static int made;
    if (made++) return;
    snprintf(src, sizeof src, "%s", hc_test_tmp("tq_src.gguf"));
    hc_synth_opts so = { .arch = "llama", .output = src, .dim = 128, .n_layer = 3, .n_head = 2, .n_head_kv = 1, .ffn_dim = 256,
                         .n_vocab = 300, .seed = 5, .type = HC_F32 };
    HC_ASSERT_OK(hc_synth(&so));
}

static void test_matches(void)
{
    CU_ASSERT(hc_compress_tensor_quant_matches("attn_v", "blk.0.attn_v.weight"));
    CU_ASSERT(!hc_compress_tensor_quant_matches("attn_v", "blk.0.attn_q.weight"));
    CU_ASSERT(hc_compress_tensor_quant_matches("blk.1", "blk.1.ffn_down.weight"));
    CU_ASSERT(!hc_compress_tensor_quant_matches("blk.1", "blk.11.ffn_down.weight"));
    CU_ASSERT(!hc_compress_tensor_quant_matches("blk.1", "blk.21.ffn_down.weight"));
    CU_ASSERT(hc_compress_tensor_quant_matches("blk.1.", "blk.1.ffn_down.weight"));
    CU_ASSERT(hc_compress_tensor_quant_matches("output", "output.weight"));
    CU_ASSERT(!hc_compress_tensor_quant_matches("output", "blk.0.attn_output.weight"));
    CU_ASSERT(!hc_compress_tensor_quant_matches("ffn", "blk.0.ffn_down.weight"));
    CU_ASSERT(hc_compress_tensor_quant_matches("ffn_down.weight", "blk.3.ffn_down.weight"));
    CU_ASSERT(!hc_compress_tensor_quant_matches("", "blk.3.ffn_down.weight"));
    CU_ASSERT(hc_compress_tensor_quant_matches("blk.[0-1].ffn_down.weight", "blk.1.ffn_down.weight"));
    CU_ASSERT(!hc_compress_tensor_quant_matches("blk.[0-1].ffn_down.weight", "blk.2.ffn_down.weight"));
    CU_ASSERT(!hc_compress_tensor_quant_matches("blk.[0-1].ffn_down", "blk.1.ffn_down.weight")); /* a glob is the whole name */
    CU_ASSERT(hc_compress_tensor_quant_matches("*", "output.weight"));
    CU_ASSERT(hc_compress_tensor_quant_matches("*.ffn_?p.*", "blk.4.ffn_up.weight"));
}

static const char *format_of(const hc_gguf *g, const char *tensor)
{
    char key[200];
    const char *spec = NULL;
    snprintf(key, sizeof key, "hc.tensor.%s.format", tensor);
    if (hc_gguf_get_str(g, key, &spec) != HC_OK) return "(none)";
    return spec;
}

/* Each tensor takes the last matching option's format (bytes as that format packs them); the rest
 * keep --quant's; the report counts them, the metadata lists the options; the model runs. */
static void test_formats_per_tensor(void)
{
    make_source();
    char out[600];
    snprintf(out, sizeof out, "%s", hc_test_tmp("tq_mixed.gguf"));
    const char *tq[] = { "ffn_down=rtn:bits=8,group=32", "blk.[0-1].attn_v.weight=rtn:bits=4,group=32",
                         "blk.1.attn_v=rtn:bits=2,group=64" };
    hc_compress_opts o = { .input = src, .output = out, .quant = "rtn:bits=3,group=32", .budget = 10, .branch_dtype = HC_F16,
                           .threads = 2, .registry = reg, .tensor_quant = tq, .n_tensor_quant = 3 };
    hc_compress_report r;
    HC_ASSERT_OK(hc_compress(&o, &r));
    CU_ASSERT_EQUAL(r.n_linear, 3 * 7);
    CU_ASSERT_EQUAL(r.n_tensor_quant, 3 + 2); /* three ffn_down, blk.0's and blk.1's attn_v */
    hc_gguf *g;
    HC_ASSERT_OK(hc_gguf_open(out, &g));
    static const struct { const char *tensor, *spec; } want[] = {
        { "blk.0.ffn_down.weight", "rtn:bits=8,group=32" }, { "blk.2.ffn_down.weight", "rtn:bits=8,group=32" },
        { "blk.0.attn_v.weight", "rtn:bits=4,group=32" },   { "blk.1.attn_v.weight", "rtn:bits=2,group=64" },
        { "blk.2.attn_v.weight", "rtn:bits=3,group=32" },   { "blk.1.ffn_up.weight", "rtn:bits=3,group=32" },
        { "blk.0.attn_q.weight", "rtn:bits=3,group=32" },
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *spec = format_of(g, want[i].tensor);
        if (strcmp(spec, want[i].spec)) printf("\n  %s: %s, expected %s", want[i].tensor, spec, want[i].spec);
        CU_ASSERT_STRING_EQUAL(spec, want[i].spec);
    }
    /* 8 bits hold twice the bytes of 4: the packed sizes follow the formats */
    const hc_gguf_tensor *d = hc_gguf_find_tensor(g, "blk.0.ffn_down.weight"), *u = hc_gguf_find_tensor(g, "blk.0.ffn_up.weight");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT(d->nbytes > 2 * u->nbytes);
    const char *text = NULL;
    HC_ASSERT_OK(hc_gguf_get_str(g, "hc.quant.tensors", &text));
    CU_ASSERT_STRING_EQUAL(text, "ffn_down=rtn:bits=8,group=32;blk.[0-1].attn_v.weight=rtn:bits=4,group=32;blk.1.attn_v=rtn:bits=2,group=64");
    hc_gguf_close(g);
    /* it loads (every tensor bound to its format) and decodes */
    hc_device *dev;
    hc_model *m;
    hc_context *c;
    hc_device_config dc = { .n_threads = 2 };
    HC_ASSERT_OK(hc_cpu_device_create(&dc, &dev));
    hc_model_load_opts lo = { .registry = reg };
    HC_ASSERT_OK(hc_model_load(out, &lo, &m));
    hc_context_params cp = { .n_ctx = 16, .n_batch = 16 };
    HC_ASSERT_OK(hc_context_create(m, dev, &cp, &c));
    int32_t tokens[8] = { 1, 7, 42, 9, 100, 3, 250, 8 };
    const float *l;
    HC_ASSERT_OK(hc_decode(c, tokens, 8, 1, &l));
    int finite = 1;
    for (int i = 0; i < 8 * m->cfg.n_vocab; i++) finite &= l[i] == l[i] && l[i] < 1e30f && l[i] > -1e30f;
    CU_ASSERT(finite);
    hc_context_free(c);
    hc_model_free(m);
    dev->ops->destroy(dev);
}

/* Every layer overridden to what --quant would have given: the packed bytes are those of a plain
 * run with that --quant, tensor for tensor. */
static void test_same_bytes_as_whole_model(void)
{
    make_source();
    char a[600], b[600];
    snprintf(a, sizeof a, "%s", hc_test_tmp("tq_all4.gguf"));
    snprintf(b, sizeof b, "%s", hc_test_tmp("tq_plain4.gguf"));
    const char *tq[] = { "*=rtn:bits=4,group=64" };
    hc_compress_opts o = { .input = src, .output = a, .quant = "rtn:bits=3,group=32", .budget = 10, .branch_dtype = HC_F16,
                           .threads = 2, .registry = reg, .tensor_quant = tq, .n_tensor_quant = 1 };
    hc_compress_report r;
    HC_ASSERT_OK(hc_compress(&o, &r));
    CU_ASSERT_EQUAL(r.n_tensor_quant, r.n_linear);
    o.output = b, o.quant = "rtn:bits=4,group=64", o.tensor_quant = NULL, o.n_tensor_quant = 0;
    HC_ASSERT_OK(hc_compress(&o, &r));
    hc_gguf *ga, *gb;
    HC_ASSERT_OK(hc_gguf_open(a, &ga));
    HC_ASSERT_OK(hc_gguf_open(b, &gb));
    int compared = 0;
    for (int l = 0; l < 3; l++)
        for (int p = 0; p < 7; p++) {
            static const char *const names[] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down" };
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[p]);
            const hc_gguf_tensor *ta = hc_gguf_find_tensor(ga, name), *tb = hc_gguf_find_tensor(gb, name);
            CU_ASSERT_PTR_NOT_NULL_FATAL(ta);
            CU_ASSERT_PTR_NOT_NULL_FATAL(tb);
            CU_ASSERT_STRING_EQUAL(format_of(ga, name), format_of(gb, name));
            CU_ASSERT_EQUAL_FATAL(ta->nbytes, tb->nbytes);
            CU_ASSERT(memcmp(ta->data, tb->data, ta->nbytes) == 0);
            compared++;
        }
    CU_ASSERT_EQUAL(compared, 21);
    hc_gguf_close(ga);
    hc_gguf_close(gb);
}

/* A mixture of experts: a pattern picks an expert tensor (all its experts, one format per 3-D
 * tensor) by its name; the shared expert and the attention keep --quant's format; it runs. */
static void test_experts(void)
{
    char moe[600], out[600];
    snprintf(moe, sizeof moe, "%s", hc_test_tmp("tq_moe.gguf"));
    snprintf(out, sizeof out, "%s", hc_test_tmp("tq_moe_mixed.gguf"));
    hc_synth_opts so = { .arch = "qwen2moe", .output = moe, .dim = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_expert = 4,
                         .n_expert_used = 2, .ffn_dim = 128, .n_vocab = 300, .seed = 9, .type = HC_F32 };
    HC_ASSERT_OK(hc_synth(&so));
    const char *tq[] = { "ffn_down_exps=rtn:bits=8,group=32" };
    hc_compress_opts o = { .input = moe, .output = out, .quant = "rtn:bits=3,group=32", .budget = 10, .branch_dtype = HC_F16,
                           .threads = 2, .registry = reg, .tensor_quant = tq, .n_tensor_quant = 1 };
    hc_compress_report r;
    HC_ASSERT_OK(hc_compress(&o, &r));
    CU_ASSERT_EQUAL(r.n_tensor_quant, 2 * 4); /* every expert of both layers */
    hc_gguf *g;
    HC_ASSERT_OK(hc_gguf_open(out, &g));
    CU_ASSERT_STRING_EQUAL(format_of(g, "blk.1.ffn_down_exps.weight"), "rtn:bits=8,group=32");
    CU_ASSERT_STRING_EQUAL(format_of(g, "blk.1.ffn_up_exps.weight"), "rtn:bits=3,group=32");
    CU_ASSERT_STRING_EQUAL(format_of(g, "blk.0.attn_v.weight"), "rtn:bits=3,group=32");
    hc_gguf_close(g);
    hc_model_load_opts lo = { .registry = reg };
    hc_model *m;
    HC_ASSERT_OK(hc_model_load(out, &lo, &m));
    hc_model_free(m);
}

/* A bad option fails before any work, names --tensor-quant and leaves no file. */
static void refused(const char *option, const char *quant, int awq, const char *calib, const char *needle)
{
    make_source();
    char out[600];
    snprintf(out, sizeof out, "%s", hc_test_tmp("tq_refused.gguf"));
    const char *tq[] = { option };
    hc_compress_opts o = { .input = src, .output = out, .quant = quant, .budget = 10, .branch_dtype = HC_F16, .threads = 2,
                           .registry = reg, .tensor_quant = tq, .n_tensor_quant = 1, .awq = awq, .calib = calib,
                           .calib_tokens = 64, .calib_seq = 32 };
    hc_compress_report r;
    CU_ASSERT_NOT_EQUAL(hc_compress(&o, &r), HC_OK);
    printf("\n  %s: %s", option, hc_last_error());
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), needle));
    CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0);
}

static void test_refusals(void)
{
    refused("ffn_down", "rtn:bits=3,group=32", 0, NULL, "PATTERN=SPEC");
    refused("=rtn:bits=4,group=32", "rtn:bits=3,group=32", 0, NULL, "must not be empty");
    refused("ffn_down=", "rtn:bits=3,group=32", 0, NULL, "must not be empty");
    refused("ffn_down=nosuch:bits=4", "rtn:bits=3,group=32", 0, NULL, "--tensor-quant 'ffn_down=nosuch:bits=4'");
    refused("ffn_dwn=rtn:bits=4,group=32", "rtn:bits=3,group=32", 0, NULL, "no linear layer's name matches 'ffn_dwn'");
    refused("output=rtn:bits=4,group=32", "rtn:bits=3,group=32", 0, NULL, "--head-quant");
    refused("ffn_down=gptq:bits=4,group=32", "rtn:bits=3,group=32", 0, NULL, "needs calibration text");
    refused("ffn_down=rtn:bits=4,group=32", "rtn:bits=3,group=32", 20, "self", "--awq and --tensor-quant");
    /* as many options as a per-layer choice needs (one a tensor: 130 on SmolLM2), one more is refused */
    static const char *many[HC_COMPRESS_MAX_TENSOR_QUANT + 1];
    for (int i = 0; i <= HC_COMPRESS_MAX_TENSOR_QUANT; i++) many[i] = "ffn_down=rtn:bits=4,group=32";
    char out[600];
    snprintf(out, sizeof out, "%s", hc_test_tmp("tq_many.gguf"));
    hc_compress_opts o = { .input = src, .output = out, .quant = "rtn:bits=3,group=32", .budget = 10, .branch_dtype = HC_F16,
                           .threads = 2, .registry = reg, .tensor_quant = many, .n_tensor_quant = HC_COMPRESS_MAX_TENSOR_QUANT + 1 };
    hc_compress_report r;
    CU_ASSERT_NOT_EQUAL(hc_compress(&o, &r), HC_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "at most 256"));
    CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0);
    o.n_tensor_quant = HC_COMPRESS_MAX_TENSOR_QUANT;
    HC_ASSERT_OK(hc_compress(&o, &r));
    CU_ASSERT(r.n_tensor_quant > 0);
}

/* The command line: repeated options reach the compressor, the report counts the layers, a bad
 * one exits non-zero naming it. */
static int run_cli(const char *args, const char *needle, int *found)
{
    char cmd[2000], err[600];
    snprintf(cmd, sizeof cmd, "compress -m '%s' %s", src, args);
    snprintf(err, sizeof err, "%s", hc_test_tmp("tq_cli.err"));
    int rc = hc_test_hcinfer(cmd, "/dev/null", err);
    char *text = hc_test_read_file(err, NULL);
    *found = text && strstr(text, needle) != NULL;
    free(text);
    return rc;
}

static void test_cli(void)
{
    make_source();
    char args[1200], out[600];
    int found;
    snprintf(out, sizeof out, "%s", hc_test_tmp("tq_cli.gguf"));
    snprintf(args, sizeof args, "-o '%s' --quant rtn:bits=3,group=32 --tensor-quant ffn_down=rtn:bits=4,group=32 "
             "--tensor-quant 'blk.[12].attn_v.weight=rtn:bits=8,group=32' --budget 5", out);
    CU_ASSERT_EQUAL(run_cli(args, "of which 5 in the formats of --tensor-quant", &found), 0);
    CU_ASSERT(found);
    CU_ASSERT_EQUAL(access(out, F_OK), 0);
    snprintf(out, sizeof out, "%s", hc_test_tmp("tq_cli_bad.gguf"));
    snprintf(args, sizeof args, "-o '%s' --quant rtn:bits=3,group=32 --tensor-quant ffn_dwn=rtn:bits=4,group=32", out);
    CU_ASSERT_NOT_EQUAL(run_cli(args, "--tensor-quant 'ffn_dwn=rtn:bits=4,group=32': no linear layer's name matches", &found), 0);
    CU_ASSERT(found);
    CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0);
}

int main(void)
{
    if (!(reg = hc_test_plugins())) return 1;
    static const hc_test_case cases[] = {
        {"patterns: a part of the name, or a glob of all of it", test_matches},
        {"compress: each tensor in its option's format, the model runs", test_formats_per_tensor},
        {"compress: every layer overridden = the plain run, byte for byte", test_same_bytes_as_whole_model},
        {"compress: an expert tensor as a whole", test_experts},
        {"compress: refusals name the option, leave no file", test_refusals},
        {"hcinfer compress --tensor-quant", test_cli},
        {NULL, NULL},
    };
    int rc = hc_test_run("tensor_quant", cases);
    hc_registry_free(reg);
    return rc;
}
