/* fuzz_pipeline.c: libFuzzer harness of pipeline scripts: the input is a script that composes the
 * stages of a tiny compressed model; the context is built with it and two tokens are decoded, so
 * its on_step(stats) runs and its answers (ranks, branches, schedulers, host budget) are checked.
 * Only the inline scheduler is loaded: serial and async hand every branch to the host thread and
 * wait for it, a hundred times slower than the rest here on a busy machine (test_sched covers
 * them); a script naming them is refused as naming any other absent scheduler. */
#include <string.h>

#include "compress.h"
#include "context.h"
#include "device_cpu.h"
#include "fuzz_util.h"
#include "model_load.h"
#include "pipeline_lua.h"
#include "registry_default.h"
#include "synth.h"

static hc_registry *reg;
static hc_device *dev;
static hc_model *model;
static const hc_plugin *comp, *sched;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_pipeline: %s: %s\n", what, hc_last_error());
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hc_device_config dc = { .n_threads = 1 };
    static const char *const plugins[] = { "hc-comp-host.so", "hc-sched-inline.so", "hc-quant-rtn.so" };
    if (hc_registry_create(&reg) != HC_OK) fail("registry");
    for (int i = 0; i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", hc_registry_default_dir(), plugins[i]);
        if (hc_registry_load_file(reg, path) != HC_OK) fail(path);
    }
    if (hc_cpu_device_create(&dc, &dev) != HC_OK) fail("device");
    comp = hc_registry_find(reg, HC_PLUGIN_COMP, "host");
    sched = hc_registry_find(reg, HC_PLUGIN_SCHED, "inline");
    if (!comp || !sched) fail("the host comp plugin and the inline scheduler");
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s", fuzz_tmp("synth.gguf"));
    snprintf(dst, sizeof dst, "%s", fuzz_tmp("synth.hc.gguf"));
    hc_synth_opts so = { .arch = "llama", .output = src, .dim = 32, .n_layer = 2, .n_vocab = 259, .ffn_dim = 64, .seed = 7 };
    if (hc_synth(&so) != HC_OK) fail("synth");
    hc_compress_opts co = { .input = src, .output = dst, .quant = "rtn:bits=4,group=32", .rank = 2, .threads = 1, .registry = reg };
    hc_compress_report rep;
    if (hc_compress(&co, &rep) != HC_OK) fail("compress");
    hc_model_load_opts lo = { .registry = reg };
    if (hc_model_load(dst, &lo, &model) != HC_OK) fail("load");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    hc_pipeline_source *src = NULL;
    if (hc_pipeline_lua_open(path, &fuzz_lua_limits, &src) != HC_OK) fail("pipeline source");
    hc_context_params cp = { .n_ctx = 8, .n_batch = 2, .registry = reg, .host_threads = 1, .pipeline = src,
                             .comp = comp->desc->ops, .sched = sched->desc->ops, .sched_name = "inline" };
    hc_context *c = NULL;
    hc_clear_error();
    if (hc_context_create(model, dev, &cp, &c) != HC_OK) {
        FUZZ_CHECK(hc_last_error()[0], "a refusal without a message");
        hc_pipeline_lua_close(src);
        return 0;
    }
    int32_t tok = 1;
    const float *logits = NULL;
    for (int i = 0; i < 2; i++) {
        hc_clear_error();
        if (hc_decode(c, &tok, 1, 0, &logits) != HC_OK) {
            FUZZ_CHECK(hc_last_error()[0], "a failed step without a message");
            break;
        }
        for (int k = 0; k < c->n_stages; k++) {
            const hc_stage *s = &c->stages[k];
            if (s->branch) FUZZ_CHECK(s->active_rank >= 0 && s->active_rank <= s->branch->rank, "stage %s at rank %d", s->name, s->active_rank);
        }
        tok = (int32_t)(i + 2);
    }
    hc_context_free(c);
    hc_pipeline_lua_close(src);
    return 0;
}
