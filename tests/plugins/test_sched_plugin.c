/* test_sched_plugin.c: scheduler plugins for the tests: "lazy" never merges its jobs (the runtime
 * must refuse it), and a variant without output_needed that the loader must refuse. */
#include "hc/hc_plugin.h"
#include "hc/hc_sched.h"

static hc_status create(const hc_sched_runtime *rt, void **state)
{
    *state = (void *)rt;
    return HC_OK;
}

static void destroy(void *state) {}
static hc_status nothing(void *state, hc_branch_job *job) { return HC_OK; }

#ifdef HC_TEST_SCHED_MISSING_FN
static const hc_sched_ops ops = { .create = create, .destroy = destroy, .input_ready = nothing, .backbone_done = nothing };
#else
static const hc_sched_ops ops = { .create = create, .destroy = destroy, .input_ready = nothing, .backbone_done = nothing,
                                  .output_needed = nothing };
#endif

static const hc_plugin_desc desc = {
    .abi_version = HC_ABI_VERSION, .kind = HC_PLUGIN_SCHED, .name = "lazy", .version = "0.1.0",
    .description = "a scheduler that forgets to merge (for the tests)", .ops = &ops,
};

HC_PLUGIN_DEFINE(desc)
