/* fuzz_model.c: libFuzzer harness of model loading: a GGUF of any architecture (compressed ones
 * through the plugin registry) or a llama2.c checkpoint, its weights checked inside the file, then
 * a context and two decoded tokens (with the branches, by the host plugin, when the file has them). */
#include <string.h>

#include "context.h"
#include "device_cpu.h"
#include "fuzz_util.h"
#include "model_load.h"
#include "registry_default.h"

static hc_registry *reg;
static hc_device *dev;
static const hc_plugin *comp, *sched;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hc_device_config dc = { .n_threads = 1 };
    if (hc_registry_create(&reg) != HC_OK || hc_registry_load_default(reg) != HC_OK || hc_cpu_device_create(&dc, &dev) != HC_OK) {
        fprintf(stderr, "fuzz_model: %s\n", hc_last_error());
        abort();
    }
    comp = hc_registry_find(reg, HC_PLUGIN_COMP, "host");
    /* inline: the branches run in the step itself; a scheduler that hands them to the host thread
       waits on it twice per token, a hundred times slower than the rest here (test_sched covers those) */
    sched = hc_registry_find(reg, HC_PLUGIN_SCHED, "inline");
    if (!comp || !sched) {
        fprintf(stderr, "fuzz_model: the host comp plugin and the inline scheduler are not in %s\n", hc_registry_default_dir());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    hc_model_load_opts lo = { .registry = reg };
    hc_model *m = NULL;
    hc_clear_error();
    if (hc_model_load(path, &lo, &m) != HC_OK) {
        FUZZ_CHECK(hc_last_error()[0], "a refusal without a message");
        return 0;
    }
    fuzz_check_model_in_file(m);
    hc_context_params cp = { .n_ctx = 8, .n_batch = 2, .registry = reg, .host_threads = 1 };
    if (hc_model_branch_bytes(m) > 0) {
        cp.comp = comp->desc->ops;
        cp.sched = sched->desc->ops;
        cp.sched_name = "inline";
    }
    hc_context *c = NULL;
    if (hc_context_create(m, dev, &cp, &c) == HC_OK) {
        int32_t tok = 0;
        const float *logits = NULL;
        for (int i = 0; i < 2; i++) {
            if (hc_decode(c, &tok, 1, 0, &logits) != HC_OK) break;
            int32_t best = 0;
            for (int32_t v = 1; v < m->cfg.n_vocab; v++)
                if (logits[v] > logits[best]) best = v;
            tok = best;
        }
        hc_context_free(c);
    }
    hc_model_free(m);
    return 0;
}
