/* serial.c: the "serial" scheduler, the baseline that shows the branches' full cost: after the
 * backbone op, the branch runs on the host while the device waits, then its result is added. */
#include <stdlib.h>

#include "hc/hc_plugin.h"
#include "hc/hc_sched.h"

static hc_status create(const hc_sched_runtime *rt, void **state)
{
    *state = (void *)rt;
    return HC_OK;
}

static void destroy(void *state) {}
static hc_status nothing(void *state, hc_branch_job *job) { return HC_OK; }

static hc_status after_backbone(void *state, hc_branch_job *job)
{
    const hc_sched_runtime *rt = state;
    hc_status st = rt->run(rt->rt, job);
    return st == HC_OK ? rt->merge(rt->rt, job) : st;
}

static const hc_sched_ops ops = {
    .create = create, .destroy = destroy, .input_ready = nothing, .backbone_done = after_backbone, .output_needed = nothing,
};

static const hc_plugin_desc desc = {
    .abi_version = HC_ABI_VERSION, .kind = HC_PLUGIN_SCHED, .name = "serial", .version = "1.0.0",
    .description = "backbone op, then the branch on the host (device waits), then the add", .ops = &ops,
};

HC_PLUGIN_DEFINE(desc)
