/* test_abi.c: guards the plugin ABI: the layout and constants of every struct reachable from a
 * plugin descriptor are recorded for the current HC_ABI_VERSION, and the public headers are standalone. */
#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_comp.h"
#include "hc/hc_device.h"
#include "hc/hc_plugin.h"
#include "hc/hc_quant.h"
#include "hc/hc_sched.h"
#include "hc/hc_status.h"
#include "hc/hc_tensor.h"
#include "test_util.h"

/* One fact of the ABI: a size, an offset or a constant. */
typedef struct abi_fact {
    const char *what;
    size_t value;
} abi_fact;

#define SIZE(T) { "sizeof(" #T ")", sizeof(T) }
#define OFF(T, f) { "offsetof(" #T ", " #f ")", offsetof(T, f) }
#define VAL(c) { #c, (size_t)(c) }

static const abi_fact facts[] = {
    /* hc_plugin.h */
    SIZE(hc_plugin_desc), OFF(hc_plugin_desc, abi_version), OFF(hc_plugin_desc, kind), OFF(hc_plugin_desc, name),
    OFF(hc_plugin_desc, version), OFF(hc_plugin_desc, description), OFF(hc_plugin_desc, ops),
    VAL(HC_PLUGIN_QUANT), VAL(HC_PLUGIN_COMP), VAL(HC_PLUGIN_SCHED), VAL(HC_PLUGIN_DEVICE),
    /* hc_status.h */
    VAL(HC_OK), VAL(HC_E_ARG), VAL(HC_E_IO), VAL(HC_E_FORMAT), VAL(HC_E_UNSUPPORTED), VAL(HC_E_NOMEM),
    VAL(HC_E_PLUGIN), VAL(HC_E_SCRIPT), VAL(HC_E_DEVICE), VAL(HC_E_STATE), VAL(HC_E_NUMERIC),
    /* hc_tensor.h */
    VAL(HC_F32), VAL(HC_F16), VAL(HC_Q4_0), VAL(HC_Q8_0), VAL(HC_Q4_K), VAL(HC_Q6_K), VAL(HC_BF16), VAL(HC_PACKED),
    VAL(HC_MAX_DIMS), SIZE(hc_tensor), OFF(hc_tensor, name), OFF(hc_tensor, dtype), OFF(hc_tensor, n_dims),
    OFF(hc_tensor, ne), OFF(hc_tensor, data), OFF(hc_tensor, nbytes), OFF(hc_tensor, device), OFF(hc_tensor, qfmt),
    /* hc_quant.h */
    SIZE(hc_quant_calib), OFF(hc_quant_calib, x2_mean), OFF(hc_quant_calib, hessian),
    SIZE(hc_quant_ops), OFF(hc_quant_ops, parse), OFF(hc_quant_ops, free_params), OFF(hc_quant_ops, format_options),
    OFF(hc_quant_ops, check_shape), OFF(hc_quant_ops, packed_bytes), OFF(hc_quant_ops, quantize),
    OFF(hc_quant_ops, dequantize_rows), OFF(hc_quant_ops, input_bytes), OFF(hc_quant_ops, prepare_input),
    OFF(hc_quant_ops, matmul_rows), OFF(hc_quant_ops, device_kernels),
    SIZE(hc_quant_format), OFF(hc_quant_format, ops), OFF(hc_quant_format, params), OFF(hc_quant_format, plugin),
    OFF(hc_quant_format, version), OFF(hc_quant_format, options), OFF(hc_quant_format, spec),
    /* hc_comp.h */
    SIZE(hc_branch), OFF(hc_branch, name), OFF(hc_branch, dtype), OFF(hc_branch, in), OFF(hc_branch, out),
    OFF(hc_branch, rank), OFF(hc_branch, a), OFF(hc_branch, b), OFF(hc_branch, sigma),
    SIZE(hc_comp_ops), OFF(hc_comp_ops, supports), OFF(hc_comp_ops, down), OFF(hc_comp_ops, up),
    /* hc_device.h */
    VAL(HC_ROPE_NORM), VAL(HC_ROPE_NEOX),
    SIZE(hc_device_config), OFF(hc_device_config, n_threads), OFF(hc_device_config, mem_budget),
    OFF(hc_device_config, device_index),
    SIZE(hc_attn_args), OFF(hc_attn_args, q), OFF(hc_attn_args, k_cache), OFF(hc_attn_args, v_cache),
    OFF(hc_attn_args, out), OFF(hc_attn_args, n_tok), OFF(hc_attn_args, pos0), OFF(hc_attn_args, n_ctx),
    OFF(hc_attn_args, n_head), OFF(hc_attn_args, n_head_kv), OFF(hc_attn_args, head_dim), OFF(hc_attn_args, scale),
    SIZE(hc_device_ops), OFF(hc_device_ops, alloc), OFF(hc_device_ops, free), OFF(hc_device_ops, upload),
    OFF(hc_device_ops, download), OFF(hc_device_ops, copy), OFF(hc_device_ops, host_alloc),
    OFF(hc_device_ops, host_free), OFF(hc_device_ops, download_async), OFF(hc_device_ops, upload_async),
    OFF(hc_device_ops, event_create), OFF(hc_device_ops, event_destroy), OFF(hc_device_ops, event_record),
    OFF(hc_device_ops, event_wait), OFF(hc_device_ops, synchronize), OFF(hc_device_ops, matmul),
    OFF(hc_device_ops, get_rows), OFF(hc_device_ops, rmsnorm), OFF(hc_device_ops, rope),
    OFF(hc_device_ops, attention), OFF(hc_device_ops, swiglu), OFF(hc_device_ops, add),
    OFF(hc_device_ops, add_bias), OFF(hc_device_ops, scale), OFF(hc_device_ops, mem_used),
    OFF(hc_device_ops, destroy), OFF(hc_device_ops, store_rows), OFF(hc_device_ops, host_parallel),
    OFF(hc_attn_args, kv_dtype), OFF(hc_device_ops, upload_copyq), OFF(hc_device_ops, queue_wait),
    OFF(hc_device_ops, event_elapsed), OFF(hc_device_ops, mem_info), OFF(hc_device_ops, check_weights),
    OFF(hc_device_ops, geglu), OFF(hc_device_ops, graph_step), OFF(hc_device_ops, gate_rows),
    OFF(hc_device_ops, moe_topk), OFF(hc_device_ops, matmul_id), OFF(hc_device_ops, moe_combine),
    OFF(hc_device_ops, publish), OFF(hc_device_ops, merge_when), OFF(hc_device_ops, add_rmsnorm),
    OFF(hc_device_ops, rope_qk), OFF(hc_device_ops, rope_store), OFF(hc_device_ops, matmul_set),
    OFF(hc_device_ops, add_set), OFF(hc_device_ops, merge_set),
    SIZE(hc_device), OFF(hc_device, ops), OFF(hc_device, name), OFF(hc_device, config),
    OFF(hc_device, host_memory), OFF(hc_device, impl),
    SIZE(hc_device_plugin_ops), OFF(hc_device_plugin_ops, probe), OFF(hc_device_plugin_ops, create),
    /* hc_sched.h */
    SIZE(hc_job_info), OFF(hc_job_info, name), OFF(hc_job_info, layer), OFF(hc_job_info, n_branches),
    OFF(hc_job_info, n_tok), OFF(hc_job_info, flops), OFF(hc_job_info, last_host_ns),
    OFF(hc_job_info, last_device_ns), OFF(hc_job_info, host_busy),
    SIZE(hc_sched_runtime), OFF(hc_sched_runtime, rt), OFF(hc_sched_runtime, run), OFF(hc_sched_runtime, submit),
    OFF(hc_sched_runtime, wait), OFF(hc_sched_runtime, merge), OFF(hc_sched_runtime, run_on_device),
    OFF(hc_sched_runtime, info),
    SIZE(hc_sched_ops), OFF(hc_sched_ops, create), OFF(hc_sched_ops, destroy), OFF(hc_sched_ops, input_ready),
    OFF(hc_sched_ops, backbone_done), OFF(hc_sched_ops, output_needed),
};

/* The values of `facts` on x86-64 for ABI version RECORDED_ABI. When a struct changes, raise
 * HC_ABI_VERSION in hc_plugin.h, then paste the table this test prints here. */
#define RECORDED_ABI 6u
static const size_t recorded[] = {
    40, 0, 4, 8, 16, 24, 32, 1, 2, 3, 4, 0, 1, 2, 3, 4,
    5, 6, 7, 8, 9, 10, 0, 1, 2, 8, 12, 14, 30, 1000, 4, 80,
    0, 8, 12, 16, 48, 56, 64, 72, 16, 0, 8, 88, 0, 8, 16, 24,
    32, 40, 48, 56, 64, 72, 80, 448, 0, 8, 16, 81, 113, 241, 64, 0,
    8, 16, 24, 32, 40, 48, 56, 24, 0, 8, 16, 0, 2, 24, 0, 8,
    16, 64, 0, 8, 16, 24, 32, 36, 40, 44, 48, 52, 56, 368, 0, 8,
    16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136,
    144, 152, 160, 168, 176, 184, 192, 200, 208, 60, 216, 224, 232, 240, 248, 256,
    264, 272, 280, 288, 296, 304, 312, 320, 328, 336, 344, 352, 360, 56, 0, 8,
    16, 40, 48, 16, 0, 8, 56, 0, 8, 12, 16, 24, 32, 40, 48, 56,
    0, 8, 16, 24, 32, 40, 48, 40, 0, 8, 16, 24, 32,
};

#define N_FACTS (sizeof facts / sizeof facts[0])

static void print_table(void)
{
    fprintf(stderr, "  the layout of this build (paste into recorded[] with RECORDED_ABI %uu):\n", HC_ABI_VERSION);
    for (size_t i = 0; i < N_FACTS; i++)
        fprintf(stderr, "%s%zu,%s", i % 16 ? " " : "    ", facts[i].value, i % 16 == 15 || i + 1 == N_FACTS ? "\n" : "");
}

static void test_layout_is_recorded(void)
{
    if (sizeof(void *) != 8) {
        printf("SKIP: the recorded layout is x86-64's\n");
        return;
    }
    if (HC_ABI_VERSION != RECORDED_ABI) {
        fprintf(stderr, "  HC_ABI_VERSION is %u but tests/test_abi.c records the layout of version %u\n",
                HC_ABI_VERSION, RECORDED_ABI);
        print_table();
        CU_FAIL("the layout of the new ABI version is not recorded");
        return;
    }
    int changed = sizeof recorded / sizeof recorded[0] != N_FACTS;
    if (changed)
        fprintf(stderr, "  %zu facts recorded, %zu checked: a struct or constant was added or removed\n",
                sizeof recorded / sizeof recorded[0], N_FACTS);
    for (size_t i = 0; i < N_FACTS && !changed; i++)
        if (facts[i].value != recorded[i]) {
            fprintf(stderr, "  %s is %zu, recorded %zu\n", facts[i].what, facts[i].value, recorded[i]);
            changed = 1;
        }
    if (changed) {
        fprintf(stderr, "  a struct reachable from a plugin descriptor changed: raise HC_ABI_VERSION\n");
        print_table();
    }
    CU_ASSERT_FALSE(changed);
}

static void test_entry_point_name(void)
{
    CU_ASSERT_STRING_EQUAL(HC_PLUGIN_ENTRY_SYMBOL, "hc_plugin_entry");
}

/* Public headers may include only standard headers and each other ("hc/..."), never core/. */
static void test_headers_include_only_public_headers(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sdk/include/hc", HC_SOURCE_DIR);
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int n_headers = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".h")) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = hc_test_read_file(path, NULL);
        CU_ASSERT_PTR_NOT_NULL(text);
        if (!text) continue;
        n_headers++;
        for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            char *p = line;
            while (*p == ' ' || *p == '\t') p++;
            if (strncmp(p, "#include", 8)) continue;
            p += 8;
            while (*p == ' ' || *p == '\t') p++;
            int ok = *p == '<' || !strncmp(p, "\"hc/", 4);
            if (!ok) {
                char *end = strchr(p, '\n');
                fprintf(stderr, "  %s includes %.*s: only <...> and \"hc/...\" are allowed\n", e->d_name,
                        end ? (int)(end - p) : (int)strlen(p), p);
            }
            CU_ASSERT_TRUE(ok);
        }
        free(text);
    }
    closedir(d);
    CU_ASSERT_TRUE(n_headers >= 7);
}

int main(void)
{
    static const hc_test_case cases[] = {
        { "layout of every struct reachable from a descriptor is recorded", test_layout_is_recorded },
        { "entry point name", test_entry_point_name },
        { "public headers include only public headers", test_headers_include_only_public_headers },
        { NULL, NULL },
    };
    return hc_test_run("abi", cases);
}
