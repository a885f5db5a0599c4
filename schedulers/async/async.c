/* async.c: the "async" scheduler: a branch starts on the host as soon as its input exists, runs
 * while the device computes the backbone op and what follows, and is joined and added just
 * before its output is first used. */
#include "hc/hc_plugin.h"
#include "hc/hc_sched.h"

static hc_status create(const hc_sched_runtime *rt, void **state)
{
    *state = (void *)rt;
    return HC_OK;
}

static void destroy(void *state) {}
static hc_status nothing(void *state, hc_branch_job *job) { return HC_OK; }

static hc_status start(void *state, hc_branch_job *job)
{
    const hc_sched_runtime *rt = state;
    return rt->submit(rt->rt, job);
}

static hc_status join(void *state, hc_branch_job *job)
{
    const hc_sched_runtime *rt = state;
    hc_status st = rt->wait(rt->rt, job);
    return st == HC_OK ? rt->merge(rt->rt, job) : st;
}

static const hc_sched_ops ops = {
    .create = create, .destroy = destroy, .input_ready = start, .backbone_done = nothing, .output_needed = join,
};

static const hc_plugin_desc desc = {
    .abi_version = HC_ABI_VERSION, .kind = HC_PLUGIN_SCHED, .name = "async", .version = "1.0.0",
    .description = "branch on the host threads overlapped with the backbone, joined at first use", .ops = &ops,
};

HC_PLUGIN_DEFINE(desc)
