/* test_moe_compress.c: compressed mixture-of-experts models: every expert its own layer with its own
 * branch, full-rank branches restoring the source model, only the routed experts' branches touched
 * per token (k/E of the experts' bytes), identical results under serial/async/inline, calibration's
 * per-expert routing frequency and rank policies that see experts as layers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress.h"
#include "context.h"
#include "device_cpu.h"
#include "gguf.h"
#include "model_load.h"
#include "registry.h"
#include "synth.h"
#include "test_util.h"

static hc_registry *reg;
static char src[600], out[600];

static const hc_synth_opts small = { .arch = "qwen2moe", .dim = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_expert = 4,
                                     .n_expert_used = 2, .expert_ffn_dim = 32, .n_shared_expert = 1, .n_vocab = 400, .seed = 21,
                                     .type = HC_F32, .norm_noise = 0.1f };

static int setup(void)
{
    if (hc_registry_create(&reg) != HC_OK) return 0;
    return hc_registry_scan(reg, HC_PLUGIN_BUILD_DIR) == HC_OK && hc_registry_find(reg, HC_PLUGIN_QUANT, "rtn") &&
           hc_registry_find(reg, HC_PLUGIN_COMP, "host") && hc_registry_find(reg, HC_PLUGIN_SCHED, "async");
}

static void make_source(const hc_synth_opts *o)
{
    snprintf(src, sizeof src, "%s", hc_test_tmp("moe_src.gguf"));
    hc_synth_opts x = *o;
    x.output = src;
    HC_ASSERT_OK(hc_synth(&x));
}

static void compress_to(const char *name, int rank, hc_dtype branch_dtype, const char *calib, const char *policy, hc_compress_report *rep)
{
    snprintf(out, sizeof out, "%s", hc_test_tmp(name));
    hc_compress_opts co = { .input = src, .output = out, .quant = "rtn:bits=3,group=32", .rank = rank, .budget = policy ? 200 : 0,
                            .branch_dtype = branch_dtype, .threads = 2, .registry = reg, .calib = calib, .calib_tokens = 256,
                            .calib_seq = 32, .policy = policy, .whitening = calib ? HC_WHITEN_FULL : HC_WHITEN_NONE };
    HC_ASSERT_OK(hc_compress(&co, rep));
}

typedef struct runner {
    hc_device *dev;
    hc_model *m;
    hc_context *c;
} runner;

static int to_f32; /* load the packed backbone as f32 (no activation quantization in its matmuls) */
static int separate_memory; /* the cpu device claims memory of its own (a GPU's path: uploads, and the
                               inline scheduler's own matmuls on copies of the experts' factors) */

static void open_runner(runner *r, const char *path, const char *sched, int n_batch)
{
    hc_device_config dc = { .n_threads = 1 };
    HC_ASSERT_OK(hc_cpu_device_create(&dc, &r->dev));
    if (separate_memory) r->dev->host_memory = 0;
    hc_model_load_opts lo = { .registry = reg, .to_f32 = to_f32 };
    HC_ASSERT_OK(hc_model_load(path, &lo, &r->m));
    hc_context_params cp = { .n_ctx = 64, .n_batch = n_batch, .host_threads = 2, .sched_name = sched, .registry = reg };
    if (sched) {
        cp.comp = hc_registry_find(reg, HC_PLUGIN_COMP, "host")->desc->ops;
        cp.sched = hc_registry_find(reg, HC_PLUGIN_SCHED, sched)->desc->ops;
    }
    HC_ASSERT_OK(hc_context_create(r->m, r->dev, &cp, &r->c));
}

static void close_runner(runner *r)
{
    hc_context_free(r->c);
    hc_model_free(r->m);
    r->dev->ops->destroy(r->dev);
}

static const int32_t prompt[10] = { 1, 77, 300, 12, 260, 45, 399, 3, 150, 222 };

/* Logits of the 10 prompt tokens (batches of n_batch), then 6 greedy tokens; returns them. */
static void run(const char *path, const char *sched, int n_batch, float *logits_out, int32_t *gen)
{
    runner r;
    open_runner(&r, path, sched, n_batch);
    int V = r.m->cfg.n_vocab;
    const float *lg;
    for (int t0 = 0; t0 < 10; t0 += n_batch) {
        int len = 10 - t0 < n_batch ? 10 - t0 : n_batch;
        HC_ASSERT_OK(hc_decode(r.c, prompt + t0, len, 1, &lg));
        memcpy(logits_out + (size_t)t0 * V, lg, (size_t)len * V * sizeof *lg);
    }
    int32_t next = 0;
    for (int i = 0; i < V; i++)
        if (lg[(size_t)((10 - 1) % n_batch) * V + i] > lg[(size_t)((10 - 1) % n_batch) * V + next]) next = i;
    for (int i = 0; i < 6; i++) {
        gen[i] = next;
        HC_ASSERT_OK(hc_decode(r.c, &next, 1, 0, &lg));
        next = 0;
        for (int k = 0; k < V; k++)
            if (lg[k] > lg[next]) next = k;
    }
    close_runner(&r);
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* Full-rank f32 branches reproduce each expert's residual exactly: the compressed model with its
 * branches (backbone dequantized to f32, so that its matmuls add no error of their own) gives the
 * source's logits, under every scheduler, batched or not; without branches it does not. */
static void test_full_rank_branches_restore_the_source(void)
{
    make_source(&small);
    hc_compress_report rep;
    compress_to("full.gguf", 64, HC_F32, NULL, NULL, &rep);
    CU_ASSERT_EQUAL(rep.n_linear, 2 * (4 + 3) + 2 * 3 * 4); /* attention, shared expert, 4 experts x 3 */
    CU_ASSERT_EQUAL(rep.n_branches, rep.n_linear);
    size_t V = 400, n = 10 * V;
    float *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
    int32_t gen_ref[6], gen[6];
    to_f32 = 1;
    run(src, NULL, 16, ref, gen_ref);
    run(out, NULL, 16, got, gen); /* the backbone alone: 3-bit experts */
    double without = max_diff(ref, got, n);
    CU_ASSERT(without > 1e-2);
    static const char *const scheds[3] = { "serial", "async", "inline" };
    for (int s = 0; s < 3; s++)
        for (int nb = 3; nb <= 16; nb += 13) {
            run(out, scheds[s], nb, got, gen);
            double with = max_diff(ref, got, n);
            if (with > 2e-3) fprintf(stderr, "  %s, batch %d: %.3g (without branches %.3g)\n", scheds[s], nb, with, without);
            CU_ASSERT(with < 2e-3);
        }
    to_f32 = 0;
    free(ref);
    free(got);
}

/* Per decoded token the runtime reads the dense branches and the branches of the k routed experts
 * of each layer: touched / stored expert bytes = k / E. Serial, async and inline agree. */
static void test_touched_bytes_and_schedulers(void)
{
    make_source(&small);
    hc_compress_report rep;
    compress_to("r8.gguf", 8, HC_F16, NULL, NULL, &rep);
    /* the file: every expert has its own branch tensors */
    hc_gguf *g;
    HC_ASSERT_OK(hc_gguf_open(out, &g));
    CU_ASSERT_PTR_NOT_NULL(hc_gguf_find_tensor(g, "blk.1.ffn_down_exps.e3.lora_a"));
    CU_ASSERT_PTR_NOT_NULL(hc_gguf_find_tensor(g, "blk.0.ffn_gate_exps.e0.lora_s"));
    CU_ASSERT_PTR_NULL(hc_gguf_find_tensor(g, "blk.0.ffn_gate_exps.e4.lora_a"));
    const hc_gguf_tensor *packed = hc_gguf_find_tensor(g, "blk.0.ffn_up_exps.weight");
    CU_ASSERT(packed && packed->type == HC_I8);
    hc_gguf_close(g);

    runner r;
    open_runner(&r, out, "serial", 16);
    const hc_model *m = r.m;
    int E = m->cfg.n_expert, k = m->cfg.n_expert_used;
    size_t dense = 0, experts = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const hc_layer *L = &m->layers[l];
        for (int p = 0; p < HC_PROJ_COUNT; p++)
            if (L->branch[p].rank) dense += (size_t)L->branch[p].rank * (L->branch[p].in + L->branch[p].out) * 2;
        for (int x = 0; x < HC_EXP_COUNT; x++) {
            CU_ASSERT_PTR_NOT_NULL_FATAL(L->moe.branch[x]);
            for (int e = 0; e < E; e++) {
                const hc_branch *b = &L->moe.branch[x][e];
                CU_ASSERT_EQUAL(b->rank, 8);
                experts += (size_t)b->rank * (b->in + b->out) * 2;
            }
        }
    }
    CU_ASSERT_STRING_EQUAL(m->layers[1].moe.branch[HC_EXP_UP][2].name, "blk.1.ffn_up_exps.e2.weight");
    const float *lg;
    HC_ASSERT_OK(hc_decode(r.c, prompt, 10, 0, &lg));
    hc_branch_rt_reset_stats(r.c->brt);
    for (int i = 0; i < 5; i++) HC_ASSERT_OK(hc_decode(r.c, &prompt[i], 1, 0, &lg));
    hc_branch_stats st;
    hc_branch_rt_stats(r.c->brt, &st);
    double touched = st.bytes_touched / 5.0;
    CU_ASSERT_DOUBLE_EQUAL(touched, (double)dense + (double)experts * k / E, 0.5);
    CU_ASSERT_DOUBLE_EQUAL((touched - dense) / experts, (double)k / E, 1e-12);
    CU_ASSERT(hc_model_branch_bytes(m) > dense + experts); /* + sigma */
    close_runner(&r);

    size_t n = 10 * 400;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    int32_t ga[6], gb[6], gc[6];
    run(out, "serial", 4, a, ga);
    run(out, "async", 4, b, gb);
    run(out, "inline", 4, c, gc);
    CU_ASSERT(memcmp(a, b, n * sizeof *a) == 0); /* the same host kernels: bit for bit */
    CU_ASSERT(memcmp(ga, gb, sizeof ga) == 0);
    CU_ASSERT(memcmp(ga, gc, sizeof ga) == 0);
    CU_ASSERT(max_diff(a, c, n) < 1e-3); /* inline: the device's own f16 matmuls */
    separate_memory = 1;
    run(out, "inline", 4, c, gc);
    separate_memory = 0;
    CU_ASSERT(memcmp(ga, gc, sizeof ga) == 0);
    CU_ASSERT(max_diff(a, c, n) < 1e-3);
    free(a);
    free(b);
    free(c);
}

/* Calibration counts the tokens routed to each expert; each expert's moments are its own tokens'. */
static void test_calibration_routing_frequency_and_policy(void)
{
    make_source(&small);
    char calib[600], policy[600];
    snprintf(calib, sizeof calib, "%s", hc_test_tmp("calib.txt"));
    FILE *f = fopen(calib, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 40; i++) fprintf(f, "the quick brown fox jumps over the lazy dog %d times. ", i);
    fclose(f);
    /* experts get rank = expert index + 1, but only when the policy is told how often they were routed */
    snprintf(policy, sizeof policy, "%s", hc_test_tmp("experts.lua"));
    f = fopen(policy, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "function allocate(budget, layers)\n"
               "  local ranks = {}\n"
               "  for i, l in ipairs(layers) do\n"
               "    if l.expert then\n"
               "      assert(l.routing_frequency and l.routing_frequency >= 0 and l.routing_frequency <= 1, 'no frequency for ' .. l.name)\n"
               "      ranks[i] = l.expert + 1\n"
               "    else ranks[i] = 2 end\n"
               "  end\n"
               "  return ranks\n"
               "end\n");
    fclose(f);
    hc_compress_report rep;
    compress_to("calib.gguf", 0, HC_F16, calib, policy, &rep);
    CU_ASSERT(rep.calib_tokens > 0);
    hc_gguf *g;
    HC_ASSERT_OK(hc_gguf_open(out, &g));
    for (int l = 0; l < 2; l++) {
        char key[128];
        snprintf(key, sizeof key, "hc.tensor.blk.%d.ffn_gate_exps.weight.routing_frequency", l);
        const void *data;
        uint64_t n = 0;
        HC_ASSERT_OK(hc_gguf_get_arr(g, key, HC_GGUF_FLOAT32, &data, &n));
        CU_ASSERT_EQUAL(n, 4);
        double sum = 0;
        for (uint64_t e = 0; e < n; e++) sum += ((const float *)data)[e];
        CU_ASSERT_DOUBLE_EQUAL(sum, 2.0, 1e-5); /* every token went to k = 2 experts */
    }
    hc_gguf_close(g);
    runner r;
    open_runner(&r, out, "async", 8);
    for (int l = 0; l < 2; l++)
        for (int e = 0; e < 4; e++) CU_ASSERT_EQUAL(r.m->layers[l].moe.branch[HC_EXP_DOWN][e].rank, e + 1);
    CU_ASSERT_EQUAL(r.m->layers[0].branch[HC_PROJ_UP_SHEXP].rank, 2);
    const float *lg;
    HC_ASSERT_OK(hc_decode(r.c, prompt, 10, 0, &lg));
    for (int i = 0; i < 400; i++) CU_ASSERT_FATAL(isfinite(lg[i]));
    close_runner(&r);
    /* measured sensitivity: one pass per expert tensor with all its experts quantized, the loss
       shared among the experts by routing frequency x error; greedy ranks on it */
    char measured[600];
    snprintf(measured, sizeof measured, "%s", hc_test_tmp("measured.gguf"));
    hc_compress_opts co = { .input = src, .output = measured, .quant = "rtn:bits=3,group=32", .budget = 10, .branch_dtype = HC_F16,
                            .threads = 1, .registry = reg, .calib = calib, .calib_tokens = 256, .calib_seq = 32, .sens_tokens = 64,
                            .whitening = HC_WHITEN_FULL, .policy = HC_SOURCE_DIR "/scripts/policies/greedy.lua" };
    HC_ASSERT_OK(hc_compress(&co, &rep));
    HC_ASSERT_OK(hc_gguf_open(measured, &g));
    const void *freq;
    uint64_t n_freq = 0;
    HC_ASSERT_OK(hc_gguf_get_arr(g, "hc.tensor.blk.1.ffn_up_exps.weight.routing_frequency", HC_GGUF_FLOAT32, &freq, &n_freq));
    CU_ASSERT_EQUAL_FATAL(n_freq, 4);
    double per_unit[4], tensor_loss = 0;
    for (int e = 0; e < 4; e++) {
        char key[160];
        float loss = -1, total = -1;
        snprintf(key, sizeof key, "hc.sens.blk.1.ffn_up_exps.e%d.weight.loss", e);
        HC_ASSERT_OK(hc_gguf_get_f32(g, key, &loss));
        snprintf(key, sizeof key, "hc.sens.blk.1.ffn_up_exps.e%d.weight.total", e);
        HC_ASSERT_OK(hc_gguf_get_f32(g, key, &total));
        CU_ASSERT(loss >= 0 && total > 0);
        tensor_loss += loss;
        per_unit[e] = loss / (total * ((const float *)freq)[e]);
    }
    CU_ASSERT(tensor_loss > 1e-6); /* quantizing the experts moves the model */
    for (int e = 1; e < 4; e++) CU_ASSERT_DOUBLE_EQUAL(per_unit[e], per_unit[0], 1e-4 * per_unit[0]);
    float dense_loss = -1;
    HC_ASSERT_OK(hc_gguf_get_f32(g, "hc.sens.blk.1.attn_q.weight.loss", &dense_loss));
    CU_ASSERT(dense_loss > 0);
    hc_gguf_close(g);
    remove(measured);
}

/* The dynamic-rank controller steers the experts' branches too: with a host 300 us slower per job
 * than the device can hide, the expert stages' shared active rank falls to 0 (switched off: rank 1
 * is still too slow); switched-off jobs are tried again at rank 1 every 8, 16, ... steps. */
static void test_rank_controller_steers_experts(void)
{
    make_source(&small);
    hc_compress_report rep;
    compress_to("ctl.gguf", 16, HC_F16, NULL, NULL, &rep);
    hc_device *dev = NULL;
    hc_model *m = NULL;
    hc_context *c = NULL;
    hc_device_config dc = { .n_threads = 1 };
    HC_ASSERT_OK(hc_cpu_device_create(&dc, &dev));
    hc_model_load_opts lo = { .registry = reg };
    HC_ASSERT_OK(hc_model_load(out, &lo, &m));
    hc_context_params cp = { .n_ctx = 64, .n_batch = 8, .host_threads = 1, .sched_name = "async", .registry = reg, .host_budget = 0.9,
                             .comp = hc_registry_find(reg, HC_PLUGIN_COMP, "host")->desc->ops,
                             .sched = hc_registry_find(reg, HC_PLUGIN_SCHED, "async")->desc->ops };
    HC_ASSERT_OK(hc_context_create(m, dev, &cp, &c));
    hc_branch_rt_set_host_delay(c->brt, 300);
    const float *lg;
    HC_ASSERT_OK(hc_decode(c, prompt, 4, 0, &lg));
    int32_t next = 5;
    for (int i = 0; i < 24; i++) HC_ASSERT_OK(hc_decode(c, &next, 1, 0, &lg));
    int experts = 0, fell = 0;
    for (int i = 0; i < c->n_stages; i++) {
        const hc_stage *s = &c->stages[i];
        if (!s->expert_branch) continue;
        experts++;
        fell += s->active_rank < 16;
        CU_ASSERT(s->active_rank >= 0);
    }
    CU_ASSERT_EQUAL(experts, 2 * 3); /* gate, up, down of 2 layers */
    CU_ASSERT_EQUAL(fell, experts);
    double mean_share, min_share, mean_rank;
    hc_rank_control_summary(c, &mean_share, &min_share, &mean_rank); /* the expert stages count */
    CU_ASSERT(mean_share < 0.5);
    CU_ASSERT(min_share == 0);
    /* every switched-off stage is probed again within the next 2 x 16 steps */
    int *probed = calloc((size_t)c->n_stages, sizeof *probed);
    for (int i = 0; i < 40; i++) {
        if (c->n_past >= 60) hc_context_reset(c);
        HC_ASSERT_OK(hc_decode(c, &next, 1, 0, &lg));
        for (int k = 0; k < c->n_stages; k++) probed[k] |= c->stages[k].expert_branch && c->stages[k].active_rank > 0;
    }
    for (int k = 0; k < c->n_stages; k++)
        if (c->stages[k].expert_branch) CU_ASSERT(probed[k]);
    free(probed);
    hc_context_free(c);
    hc_model_free(m);
    dev->ops->destroy(dev);
}

int main(void)
{
    static const hc_test_case cases[] = {
        { "full-rank expert branches restore the source (serial, async, inline, batches)", test_full_rank_branches_restore_the_source },
        { "touched branch bytes per token = dense + k/E of the experts'; schedulers agree", test_touched_bytes_and_schedulers },
        { "calibration: routing frequency per expert, policies see experts", test_calibration_routing_frequency_and_policy },
        { "the rank controller steers the experts' branches", test_rank_controller_steers_experts },
        { NULL, NULL },
    };
    if (!setup()) {
        printf("SKIP test_moe_compress: the rtn, host and scheduler plugins are not built in %s\n", HC_PLUGIN_BUILD_DIR);
        hc_registry_free(reg);
        return 0;
    }
    int rc = hc_test_run("moe_compress", cases);
    hc_registry_free(reg);
    return rc;
}
