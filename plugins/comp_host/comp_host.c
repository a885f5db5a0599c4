/* comp_host.c: the "host" compensation-kernel plugin: applies a low-rank branch y += B (A x) on
 * the CPU with its branch kernels (AVX-512 or AVX2/FMA/F16C when the CPU has them, plain C otherwise). */
#include "hc/hc_comp.h"
#include "hc/hc_plugin.h"
#include "lowrank_apply.h"

static const hc_comp_ops host_ops = {
    .supports = hc_branch_supports,
    .down = hc_branch_down,
    .up = hc_branch_up,
};

static const hc_plugin_desc host_desc = {
    .abi_version = HC_ABI_VERSION,
    .kind = HC_PLUGIN_COMP,
    .name = "host",
    .version = "1.0.0",
    .description = "low-rank branches on the CPU (f32, f16, bf16, q8_0 storage; AVX-512, AVX2/FMA/F16C or plain C)",
    .ops = &host_ops,
};

HC_PLUGIN_DEFINE(host_desc)
