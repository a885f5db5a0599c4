/* inline.c: the "inline" scheduler: the device computes the branches itself, with its own matmul
 * ops on the factors, right after the backbone op. For a device with spare compute (or a cpu
 * device whose threads are all the cores there are), where a host thread would only compete. */
#include "hc/hc_plugin.h"
#include "hc/hc_sched.h"

static hc_status create(const hc_sched_runtime *rt, void **state)
{
    *state = (void *)rt;
    return HC_OK;
}

static void destroy(void *state) {}
static hc_status nothing(void *state, hc_branch_job *job) { return HC_OK; }

static hc_status on_device(void *state, hc_branch_job *job)
{
    const hc_sched_runtime *rt = state;
    return rt->run_on_device(rt->rt, job);
}

static const hc_sched_ops ops = {
    .create = create, .destroy = destroy, .input_ready = nothing, .backbone_done = on_device, .output_needed = nothing,
};

static const hc_plugin_desc desc = {
    .abi_version = HC_ABI_VERSION, .kind = HC_PLUGIN_SCHED, .name = "inline", .version = "1.0.0",
    .description = "branch computed by the device's own ops right after the backbone op", .ops = &ops,
};

HC_PLUGIN_DEFINE(desc)
