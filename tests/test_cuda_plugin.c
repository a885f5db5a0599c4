/* test_cuda_plugin.c: the cuda device plugin through the registry: its descriptor, a probe that says why no GPU
 * is usable, with a GPU every device op against the cpu device, and rtn/gptq weights against their reference. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device_cpu.h"
#include "hc/hc_device.h"
#include "hc/hc_quant.h"
#include "hc/hc_quant_cuda.h"
#include "../kernels/cuda/attention.cuh"
#include "../kernels/cuda/gemm_f16.cuh"
#include "ops_ref.h"
#include "quant_format.h"
#include "registry_default.h"
#include "test_util.h"
#include "weights_fixture.h"

/* The folder of the cuda plugin and of the rtn/gptq plugins to test: the build's, or HC_CUDA_PLUGIN_DIR
 * (the plugins built on the CPU emulator, tests/cuda_emu, which ctest runs this suite on too). */
static const char *plugin_file(const char *name)
{
    static char path[4][4096];
    static int next;
    const char *dir = getenv("HC_CUDA_PLUGIN_DIR");
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir && *dir ? dir : HC_PLUGIN_BUILD_DIR, name);
    return p;
}
#define CUDA_PLUGIN_FILE plugin_file("hc-device-cuda.so")

/* HC_REQUIRE_CUDA=1 (scripts/gpu_check.sh on a GPU machine): a missing plugin or a failing probe
 * fails the suite instead of skipping. */
static int cuda_required(void)
{
    const char *v = getenv("HC_REQUIRE_CUDA");
    return v && *v && strcmp(v, "0") != 0;
}

/* The plugin's device ops, or NULL after printing SKIP when the plugin was not built. */
static const hc_plugin *load_plugin(hc_registry **reg, const char *test)
{
    *reg = NULL;
    if (access(CUDA_PLUGIN_FILE, R_OK) != 0) {
        printf("SKIP %s: %s was not built (HC_WITH_CUDA is OFF, or no nvcc / CUDA libraries were found at configure time)\n",
               test, CUDA_PLUGIN_FILE);
        if (cuda_required()) CU_FAIL("HC_REQUIRE_CUDA is set but the cuda plugin was not built");
        return NULL;
    }
    HC_ASSERT_OK(hc_registry_create(reg));
    hc_status st = hc_registry_load_file(*reg, CUDA_PLUGIN_FILE);
    if (st != HC_OK) fprintf(stderr, "  loading %s: %s\n", CUDA_PLUGIN_FILE, hc_last_error());
    CU_ASSERT_EQUAL_FATAL(st, HC_OK);
    const hc_plugin *p = hc_registry_find(*reg, HC_PLUGIN_DEVICE, "cuda");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    return p;
}

static void test_descriptor(void)
{
    hc_registry *reg;
    const hc_plugin *p = load_plugin(&reg, "descriptor");
    if (!p) return;
    CU_ASSERT_EQUAL(p->desc->abi_version, HC_ABI_VERSION);
    CU_ASSERT_EQUAL(p->desc->kind, HC_PLUGIN_DEVICE);
    CU_ASSERT_STRING_EQUAL(p->desc->name, "cuda");
    CU_ASSERT(p->desc->version && p->desc->version[0]);
    CU_ASSERT(p->desc->description && strstr(p->desc->description, "cuBLAS"));
    const hc_device_plugin_ops *ops = p->desc->ops;
    CU_ASSERT_PTR_NOT_NULL(ops->probe);
    CU_ASSERT_PTR_NOT_NULL(ops->create);
    CU_ASSERT(strstr(p->path, "hc-device-cuda.so") != NULL);
    hc_registry_free(reg);
}

/* The default search (the plugin folder beside libhc) finds it too, next to the built-in cpu. */
static void test_default_search(void)
{
    if (getenv("HC_CUDA_PLUGIN_DIR") && *getenv("HC_CUDA_PLUGIN_DIR")) {
        printf("SKIP default search: the plugins under test are HC_CUDA_PLUGIN_DIR's, not the default folder's\n");
        return;
    }
    if (access(CUDA_PLUGIN_FILE, R_OK) != 0) {
        printf("SKIP default search: %s was not built\n", CUDA_PLUGIN_FILE);
        if (cuda_required()) CU_FAIL("HC_REQUIRE_CUDA is set but the cuda plugin was not built");
        return;
    }
    hc_registry *reg;
    HC_ASSERT_OK(hc_registry_create(&reg));
    HC_ASSERT_OK(hc_registry_load_default(reg));
    CU_ASSERT_PTR_NOT_NULL(hc_registry_find(reg, HC_PLUGIN_DEVICE, "cuda"));
    CU_ASSERT_PTR_NOT_NULL(hc_registry_find(reg, HC_PLUGIN_DEVICE, "cpu"));
    for (int i = 0; i < reg->n_refused; i++)
        if (strstr(reg->refused[i].path, "hc-device-cuda")) {
            fprintf(stderr, "  refused: %s\n", reg->refused[i].reason);
            CU_FAIL("the cuda plugin was refused");
        }
    hc_registry_free(reg);
}

/* ---------------- with a GPU: every op against the cpu device ---------------- */

typedef struct pair {
    hc_device *gpu, *cpu;
} pair;

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static float rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 4503599627370496.0 - 1.0);
}

static float *rnd_floats(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rnd() * scale;
    return p;
}

static void *to_gpu(hc_device *g, const void *host, size_t n)
{
    void *p = NULL;
    HC_ASSERT_OK(g->ops->alloc(g, n, &p));
    HC_ASSERT_OK(g->ops->upload(g, p, host, n));
    return p;
}

static float *from_gpu(hc_device *g, const void *dev, size_t n_floats)
{
    float *h = malloc(n_floats * sizeof *h);
    HC_ASSERT_OK(g->ops->download(g, h, dev, n_floats * sizeof *h));
    return h;
}

static int count_far(const float *got, const float *want, size_t n, double tol)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * (1.0 + fabs((double)want[i])))) bad++;
    return bad;
}

static void check_memory_ops(hc_device *g)
{
    size_t n = 1 << 20;
    uint8_t *a = malloc(n), *b = malloc(n);
    for (size_t i = 0; i < n; i++) a[i] = (uint8_t)(i * 7 + 3);
    size_t used0 = g->ops->mem_used(g);
    void *d0 = to_gpu(g, a, n), *d1 = NULL;
    HC_ASSERT_OK(g->ops->alloc(g, n, &d1));
    CU_ASSERT_EQUAL(g->ops->mem_used(g), used0 + 2 * n);
    HC_ASSERT_OK(g->ops->copy(g, d1, d0, n));
    HC_ASSERT_OK(g->ops->download(g, b, d1, n));
    CU_ASSERT(memcmp(a, b, n) == 0);

    void *pinned = NULL;
    hc_event *ev = NULL;
    HC_ASSERT_OK(g->ops->host_alloc(g, n, &pinned));
    HC_ASSERT_OK(g->ops->event_create(g, &ev));
    memset(pinned, 0, n);
    HC_ASSERT_OK(g->ops->download_async(g, pinned, d0, n, ev));
    HC_ASSERT_OK(g->ops->event_wait(g, ev));
    CU_ASSERT(memcmp(pinned, a, n) == 0);
    memset(pinned, 0x5a, n);
    HC_ASSERT_OK(g->ops->upload_async(g, d1, pinned, n));
    HC_ASSERT_OK(g->ops->event_record(g, ev));
    HC_ASSERT_OK(g->ops->event_wait(g, ev));
    HC_ASSERT_OK(g->ops->download(g, b, d1, n));
    CU_ASSERT(b[0] == 0x5a && b[n - 1] == 0x5a);
    HC_ASSERT_OK(g->ops->synchronize(g));
    g->ops->event_destroy(g, ev);
    g->ops->host_free(g, pinned);
    g->ops->free(g, d0);
    g->ops->free(g, d1);
    CU_ASSERT_EQUAL(g->ops->mem_used(g), used0);
    free(a);
    free(b);
}

static void check_budget(const hc_device_plugin_ops *ops)
{
    hc_device_config cfg = { .mem_budget = 1 << 20 };
    hc_device *g = NULL;
    HC_ASSERT_OK(ops->create(&cfg, &g));
    void *p = NULL, *q = NULL;
    HC_ASSERT_OK(g->ops->alloc(g, 600 << 10, &p));
    CU_ASSERT_EQUAL(g->ops->alloc(g, 600 << 10, &q), HC_E_NOMEM);
    CU_ASSERT(strstr(hc_last_error(), "budget") != NULL);
    CU_ASSERT_PTR_NULL(q);
    g->ops->free(g, p);
    HC_ASSERT_OK(g->ops->alloc(g, 600 << 10, &q));
    g->ops->free(g, q);
    g->ops->destroy(g);
}


/* y (out floats) = the cpu device's one-token matmul of the out x in weights of type t at w with x. */
static void cpu_gemv(hc_device *cpu, hc_dtype t, const uint8_t *w, int64_t in, int64_t out, const float *x, float *y)
{
    hc_tensor tc = { .name = "slice", .dtype = t, .n_dims = 2, .ne = { in, out, 1, 1 }, .data = (void *)w, .device = cpu };
    tc.nbytes = hc_dtype_row_bytes(t, in) * (size_t)out;
    HC_ASSERT_OK(cpu->ops->matmul(cpu, &tc, x, y, 1));
}

/* The device's matmul of every weight type against the dequantized weights' sums in double; one token
 * of a block type, where the device quantizes x to int8 (int8: HC_CUDA_GEMV_INT8, its default),
 * against the cpu device's matmul, which quantizes x the same way. */
static void check_matmul(hc_device *g, hc_device *cpu, int int8)
{
    const hc_dtype types[] = { HC_F32,  HC_F16,  HC_BF16, HC_Q4_0, HC_Q4_1, HC_Q5_0, HC_Q5_1,
                               HC_Q8_0, HC_Q2_K, HC_Q3_K, HC_Q4_K, HC_Q5_K, HC_Q6_K };
    const int toks[] = { 1, 5 };
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++)
        for (int k = 0; k < 2; k++) {
            int64_t in = 512, out = 67;
            int n_tok = toks[k];
            size_t wbytes;
            uint8_t *w = hc_test_weights(types[ti], out, in, &wbytes, &rng_state);
            float *x = rnd_floats((size_t)n_tok * in, 1.0f), *row = malloc((size_t)in * sizeof *row);
            float *want = malloc((size_t)n_tok * out * sizeof *want), *mag = malloc((size_t)n_tok * out * sizeof *mag);
            for (int64_t o = 0; o < out; o++) {
                hc_dequantize_row(types[ti], w + hc_dtype_row_bytes(types[ti], in) * (size_t)o, row, in);
                for (int t = 0; t < n_tok; t++) {
                    double s = 0, a = 0;
                    for (int64_t i = 0; i < in; i++) s += (double)row[i] * x[t * in + i], a += fabs((double)row[i] * x[t * in + i]);
                    want[t * out + o] = (float)s;
                    mag[t * out + o] = (float)a;
                }
            }
            hc_tensor tw = { .name = "w", .dtype = types[ti], .n_dims = 2, .ne = { in, out, 1, 1 }, .nbytes = wbytes,
                             .device = g };
            tw.data = to_gpu(g, w, wbytes);
            float *dx = to_gpu(g, x, (size_t)n_tok * in * sizeof *x), *dy = NULL;
            HC_ASSERT_OK(g->ops->alloc(g, (size_t)n_tok * out * sizeof(float), (void **)&dy));
            HC_ASSERT_OK(g->ops->matmul(g, &tw, dx, dy, n_tok));
            float *got = from_gpu(g, dy, (size_t)n_tok * out);
            int q8 = int8 && n_tok == 1 && hc_dtype_block_size(types[ti]) > 1;
            if (q8) cpu_gemv(cpu, types[ti], w, in, out, x, want); /* the cpu device's sums of the same integers */
            /* a batch of quantized weights runs on the tensor cores in f16 (gemm_f16.cuh): both operands
               rounded to f16 (2^-10 of each product at most); else f32 arithmetic (x in int8: both devices
               round their float sums, so where the terms cancel, 1e-7 of their sizes) */
            int f16 = n_tok > 1 && hc_cu_batched_f16(types[ti]), bad = 0;
            for (size_t i = 0; i < (size_t)n_tok * out; i++)
                if (f16 ? !(fabs((double)got[i] - want[i]) <= 1.2e-3 * mag[i] + 2e-5)
                        : count_far(got + i, want + i, 1, q8 ? 1e-5 : 1e-4) &&
                              !(q8 && fabs((double)got[i] - want[i]) <= 1e-7 * mag[i]))
                    bad++;
            if (bad)
                fprintf(stderr, "  matmul %s n_tok %d%s: %d wrong\n", hc_dtype_name(types[ti]), n_tok,
                        f16 ? " (f16 GEMM)" : q8 ? " (x in int8, against the cpu device)" : "", bad);
            CU_ASSERT_EQUAL(bad, 0);
            g->ops->free(g, tw.data);
            g->ops->free(g, dx);
            g->ops->free(g, dy);
            free(w);
            free(x);
            free(row);
            free(want);
            free(mag);
            free(got);
        }
    /* types without a kernel say so: a packed format whose plugin gives none */
    hc_tensor i8 = { .name = "i8", .dtype = HC_I8, .n_dims = 2, .ne = { 256, 4, 1, 1 }, .data = (void *)1 };
    CU_ASSERT_EQUAL(g->ops->matmul(g, &i8, NULL, NULL, 1), HC_E_UNSUPPORTED);
    CU_ASSERT(strstr(hc_last_error(), "i8") != NULL);
    hc_quant_format fmt = { .plugin = "rtn" };
    hc_tensor packed = { .name = "packed", .dtype = HC_PACKED, .n_dims = 2, .ne = { 256, 4, 1, 1 }, .data = (void *)1,
                         .qfmt = &fmt };
    CU_ASSERT_EQUAL(g->ops->matmul(g, &packed, NULL, NULL, 1), HC_E_UNSUPPORTED);
    CU_ASSERT(strstr(hc_last_error(), "packed") != NULL && strstr(hc_last_error(), "rtn") != NULL);
    CU_ASSERT_EQUAL(g->ops->check_weights(g, &packed), HC_E_UNSUPPORTED);
}

/* Experts routed on the device: top-k and weights of plain logits, the GEMVs by id against each routed
 * row on its expert's slice by the cpu device (x quantized to int8 there as here), the combine against
 * its sum. */
static void check_moe(hc_device *g, hc_device *cpu)
{
    /* top-2 of 4 experts, normalised, for 2 tokens */
    const float lg[8] = { 0.5f, 3.0f, -1.0f, 2.0f, 1.0f, 1.0f, 4.0f, 1.0f };
    float *dlg = to_gpu(g, lg, sizeof lg), *dw = NULL;
    int32_t *dids = NULL;
    HC_ASSERT_OK(g->ops->alloc(g, 4 * sizeof(int32_t), (void **)&dids));
    HC_ASSERT_OK(g->ops->alloc(g, 4 * sizeof(float), (void **)&dw));
    HC_ASSERT_OK(g->ops->moe_topk(g, dlg, 2, 4, 2, 1, dids, dw));
    int32_t ids[4];
    float *w = from_gpu(g, dw, 4);
    HC_ASSERT_OK(g->ops->download(g, ids, dids, sizeof ids));
    double e1 = 1.0 / (1.0 + exp(-1.0)); /* softmax of (3, 2) over the two chosen: e^3 / (e^3 + e^2) */
    CU_ASSERT(ids[0] == 1 && ids[1] == 3 && ids[2] == 2 && ids[3] == 0); /* token 1: 4, then the first of three 1s */
    CU_ASSERT(fabs(w[0] - e1) < 1e-6 && fabs(w[1] - (1 - e1)) < 1e-6);
    CU_ASSERT(fabs(w[2] + w[3] - 1.0) < 1e-6);
    free(w);
    CU_ASSERT_EQUAL(g->ops->moe_topk(g, dlg, 1, 4, 5, 0, dids, dw), HC_E_UNSUPPORTED); /* more choices than experts */

    /* GEMVs by id: 3 experts of 40 x 256, rows { 1, 2, 0, 2 } of 2 tokens (x_div 2) */
    const hc_dtype types[] = { HC_F16, HC_Q4_K };
    const int32_t rids[4] = { 1, 2, 0, 2 };
    int E = 3, n_rows = 4;
    int64_t in = 256, out = 40;
    HC_ASSERT_OK(g->ops->upload(g, dids, rids, sizeof rids));
    float *x = rnd_floats((size_t)2 * in, 1.0f), *want = malloc((size_t)n_rows * out * sizeof *want), *dy = NULL;
    float *dx = to_gpu(g, x, (size_t)2 * in * sizeof *x);
    HC_ASSERT_OK(g->ops->alloc(g, (size_t)n_rows * out * sizeof(float), (void **)&dy));
    for (int ti = 0; ti < 2; ti++) {
        size_t bytes;
        uint8_t *wh = hc_test_weights(types[ti], (int64_t)E * out, in, &bytes, &rng_state);
        hc_tensor t3 = { .name = "exps", .dtype = types[ti], .n_dims = 3, .ne = { in, out, E, 1 }, .nbytes = bytes, .device = g };
        t3.data = to_gpu(g, wh, bytes);
        for (int r = 0; r < n_rows; r++) /* the row on its expert's slice */
            cpu_gemv(cpu, types[ti], wh + (size_t)rids[r] * (bytes / (size_t)E), in, out, x + (size_t)(r / 2) * in,
                     want + (size_t)r * out);
        HC_ASSERT_OK(g->ops->matmul_id(g, &t3, NULL, NULL, 1, NULL, 0)); /* the probe: it can */
        HC_ASSERT_OK(g->ops->matmul_id(g, &t3, dids, dx, 2, dy, n_rows));
        float *got = from_gpu(g, dy, (size_t)n_rows * out);
        int bad = count_far(got, want, (size_t)n_rows * out, 2e-5);
        if (bad) fprintf(stderr, "  matmul_id %s: %d wrong\n", hc_dtype_name(types[ti]), bad);
        CU_ASSERT_EQUAL(bad, 0);
        free(got);
        g->ops->free(g, t3.data);
        free(wh);
    }
    hc_tensor i8 = { .name = "i8", .dtype = HC_I8, .n_dims = 3, .ne = { 256, 4, 2, 1 }, .data = (void *)1 };
    CU_ASSERT_EQUAL(g->ops->matmul_id(g, &i8, NULL, NULL, 1, NULL, 0), HC_E_UNSUPPORTED);

    /* a long pass: 150 rows of 50 tokens (x_div 3) on 5 experts, sorted by expert on the device, in
       chunks of 13 rows (HC_CUDA_MOE_ROWS_BYTES, set in main), against each row computed alone */
    {
        int n_long = 150, E5 = 5;
        int32_t lids[150], *dlids = NULL;
        for (int r = 0; r < n_long; r++) lids[r] = (int32_t)((r * 7 + r / 11) % E5);
        float *lx = rnd_floats((size_t)50 * in, 1.0f), *lwant = malloc((size_t)n_long * out * sizeof *lwant), *dly = NULL;
        float *dlx = to_gpu(g, lx, (size_t)50 * in * sizeof *lx);
        dlids = to_gpu(g, lids, sizeof lids);
        HC_ASSERT_OK(g->ops->alloc(g, (size_t)n_long * out * sizeof(float), (void **)&dly));
        size_t bytes;
        uint8_t *wh = hc_test_weights(HC_Q4_K, (int64_t)E5 * out, in, &bytes, &rng_state);
        hc_tensor t3 = { .name = "exps", .dtype = HC_Q4_K, .n_dims = 3, .ne = { in, out, E5, 1 }, .nbytes = bytes, .device = g };
        t3.data = to_gpu(g, wh, bytes);
        for (int r = 0; r < n_long; r++)
            cpu_gemv(cpu, HC_Q4_K, wh + (size_t)lids[r] * (bytes / (size_t)E5), in, out, lx + (size_t)(r / 3) * in,
                     lwant + (size_t)r * out);
        HC_ASSERT_OK(g->ops->matmul_id(g, &t3, dlids, dlx, 3, dly, n_long));
        float *got = from_gpu(g, dly, (size_t)n_long * out);
        int bad = count_far(got, lwant, (size_t)n_long * out, 2e-5);
        if (bad) fprintf(stderr, "  matmul_id of %d rows sorted by expert: %d wrong\n", n_long, bad);
        CU_ASSERT_EQUAL(bad, 0);
        free(got), free(wh), free(lx), free(lwant);
        g->ops->free(g, t3.data);
        g->ops->free(g, dlx);
        g->ops->free(g, dlids);
        g->ops->free(g, dly);
    }

    /* combine: 2 tokens of 2 rows (the rows of dy, weights as routed) */
    const float wt[4] = { 0.75f, 0.25f, -0.5f, 2.0f };
    float *dwt = to_gpu(g, wt, sizeof wt), *dout = NULL, *ref = malloc((size_t)2 * out * sizeof *ref);
    float *rows = from_gpu(g, dy, (size_t)n_rows * out);
    HC_ASSERT_OK(g->ops->alloc(g, (size_t)2 * out * sizeof(float), (void **)&dout));
    HC_ASSERT_OK(g->ops->moe_combine(g, dy, dwt, 2, 2, (int)out, dout));
    for (int t = 0; t < 2; t++)
        for (int64_t o = 0; o < out; o++)
            ref[t * out + o] = wt[2 * t] * rows[(2 * t) * out + o] + wt[2 * t + 1] * rows[(2 * t + 1) * out + o];
    float *got = from_gpu(g, dout, (size_t)2 * out);
    CU_ASSERT_EQUAL(count_far(got, ref, (size_t)2 * out, 1e-6), 0);
    free(got), free(rows), free(ref), free(x), free(want);
    void *ptrs[] = { dlg, dw, dids, dx, dy, dwt, dout };
    for (int i = 0; i < 7; i++) g->ops->free(g, ptrs[i]);
}

static void check_get_rows(pair *p)
{
    int64_t width = 96, vocab = 50;
    size_t wbytes;
    uint8_t *w = hc_test_weights(HC_Q8_0, vocab, width, &wbytes, &rng_state);
    hc_tensor host = { .name = "tok_embd", .dtype = HC_Q8_0, .n_dims = 2, .ne = { width, vocab, 1, 1 }, .data = w,
                       .nbytes = wbytes, .device = p->cpu };
    hc_tensor dev = host;
    dev.data = to_gpu(p->gpu, w, wbytes);
    dev.device = p->gpu;
    int32_t ids[] = { 3, 49, 0, 3, 17 };
    float *want = malloc(5 * width * sizeof *want), *dout = NULL;
    HC_ASSERT_OK(p->cpu->ops->get_rows(p->cpu, &host, ids, 5, want));
    HC_ASSERT_OK(p->gpu->ops->alloc(p->gpu, 5 * width * sizeof(float), (void **)&dout));
    HC_ASSERT_OK(p->gpu->ops->get_rows(p->gpu, &dev, ids, 5, dout));
    ids[0] = 4; /* ids are host memory: changing them after the call must not matter */
    float *got = from_gpu(p->gpu, dout, 5 * width);
    CU_ASSERT_EQUAL(count_far(got, want, 5 * width, 0), 0);
    ids[0] = 50;
    CU_ASSERT_EQUAL(p->gpu->ops->get_rows(p->gpu, &dev, ids, 5, dout), HC_E_ARG);
    p->gpu->ops->free(p->gpu, dev.data);
    p->gpu->ops->free(p->gpu, dout);
    free(w);
    free(want);
    free(got);
}

/* Decoding one token after 1500 keys, f32 and f16 cache: the keys are split over blocks
 * (hc_cu_attn_n_splits gives 11 for 8 heads) and merged by the second kernel. */
static void check_long_attention(pair *p)
{
    hc_device *g = p->gpu, *c = p->cpu;
    int n_head = 8, n_head_kv = 2, hd = 128, n_ctx = 1600, pos0 = 1500;
    CU_ASSERT_EQUAL(hc_cu_attn_n_splits(1, n_head, pos0), 11);
    size_t n = (size_t)n_head * hd, kvn = (size_t)n_ctx * n_head_kv * hd;
    float *q = rnd_floats(n, 1.0f), *k = rnd_floats(kvn, 1.0f), *v = rnd_floats(kvn, 1.0f), *want = malloc(n * sizeof *want);
    uint16_t *k16 = malloc(kvn * 2), *v16 = malloc(kvn * 2);
    for (size_t i = 0; i < kvn; i++) k16[i] = hc_f32_to_f16(k[i]), v16[i] = hc_f32_to_f16(v[i]);
    for (int f16 = 0; f16 <= 1; f16++) {
        hc_attn_args a = { .q = q, .k_cache = f16 ? (const float *)k16 : k, .v_cache = f16 ? (const float *)v16 : v,
                           .out = want, .n_tok = 1, .pos0 = pos0, .n_ctx = n_ctx, .n_head = n_head, .n_head_kv = n_head_kv,
                           .head_dim = hd, .scale = 0.088f, .kv_dtype = f16 ? HC_F16 : HC_F32 };
        HC_ASSERT_OK(c->ops->attention(c, &a));
        size_t kvb = kvn * (f16 ? 2 : 4);
        float *dq = to_gpu(g, q, n * sizeof *q), *dk = to_gpu(g, a.k_cache, kvb), *dv = to_gpu(g, a.v_cache, kvb), *dout = NULL;
        HC_ASSERT_OK(g->ops->alloc(g, n * sizeof(float), (void **)&dout));
        hc_attn_args ga = a;
        ga.q = dq, ga.k_cache = dk, ga.v_cache = dv, ga.out = dout;
        HC_ASSERT_OK(g->ops->attention(g, &ga));
        float *got = from_gpu(g, dout, n);
        int bad = count_far(got, want, n, 1e-5);
        if (bad) fprintf(stderr, "  attention over %d keys (%s cache, split): %d wrong\n", pos0 + 1, f16 ? "f16" : "f32", bad);
        CU_ASSERT_EQUAL(bad, 0);
        free(got);
        void *ptrs[] = { dq, dk, dv, dout };
        for (int i = 0; i < 4; i++) g->ops->free(g, ptrs[i]);
    }
    free(q), free(k), free(v), free(want), free(k16), free(v16);
}

static void check_row_ops(pair *p)
{
    hc_device *g = p->gpu, *c = p->cpu;
    int n_tok = 3, n_head = 8, n_head_kv = 2, hd = 64, dim = n_head * hd, n_ctx = 16, pos0 = 4;
    size_t n = (size_t)n_tok * dim;
    /* rmsnorm */
    float *x = rnd_floats(n, 2.0f), *w = rnd_floats((size_t)dim, 1.0f), *want = malloc(n * sizeof *want);
    HC_ASSERT_OK(c->ops->rmsnorm(c, x, w, want, n_tok, dim, 1e-5f));
    float *dx = to_gpu(g, x, n * sizeof *x), *dw = to_gpu(g, w, (size_t)dim * sizeof *w);
    HC_ASSERT_OK(g->ops->rmsnorm(g, dx, dw, dx, n_tok, dim, 1e-5f));
    float *got = from_gpu(g, dx, n);
    CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);
    free(got);

    /* add_rmsnorm: the residual add, then the norm of the sums (into another buffer) */
    float *r = rnd_floats(n, 1.0f), *sum = malloc(n * sizeof *sum);
    memcpy(sum, x, n * sizeof *x);
    HC_ASSERT_OK(c->ops->add(c, sum, r, n));
    HC_ASSERT_OK(c->ops->rmsnorm(c, sum, w, want, n_tok, dim, 1e-5f));
    float *dr = to_gpu(g, r, n * sizeof *r), *dy = NULL;
    HC_ASSERT_OK(g->ops->alloc(g, n * sizeof(float), (void **)&dy));
    HC_ASSERT_OK(g->ops->upload(g, dx, x, n * sizeof *x));
    CU_ASSERT_FATAL(g->ops->add_rmsnorm != NULL);
    HC_ASSERT_OK(g->ops->add_rmsnorm(g, dx, dr, dw, dy, n_tok, dim, 1e-5f));
    got = from_gpu(g, dy, n);
    CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);
    free(got);
    got = from_gpu(g, dx, n);
    CU_ASSERT_EQUAL(count_far(got, sum, n, 0), 0);
    free(got);

    /* add_set: dx's sums (as add_rmsnorm left them, sum) and dy (the norm, want) plus one packed array */
    {
        float *packed = rnd_floats(2 * n, 1.0f), *dp = to_gpu(g, packed, 2 * n * sizeof *packed), *ys[2] = { dx, dy };
        size_t len[2] = { n, n };
        CU_ASSERT_FATAL(g->ops->add_set != NULL);
        HC_ASSERT_OK(g->ops->add_set(g, 2, ys, dp, len));
        HC_ASSERT_OK(c->ops->add(c, sum, packed, n));
        HC_ASSERT_OK(c->ops->add(c, want, packed + n, n));
        got = from_gpu(g, dx, n);
        CU_ASSERT_EQUAL(count_far(got, sum, n, 0), 0);
        free(got);
        got = from_gpu(g, dy, n);
        CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);
        free(got);
        g->ops->free(g, dp);
        free(packed);
    }

    /* rope, consecutive and scattered positions, both modes; rope_qk: q and k (r as n_head_kv heads a
       token) in one op */
    int32_t pos_runs[2][3] = { { 4, 5, 6 }, { 9, 2, 700 } };
    size_t kn = (size_t)n_tok * n_head_kv * hd;
    for (int mode = 0; mode <= 2; mode += 2)
        for (int run = 0; run < 2; run++) {
            memcpy(want, x, n * sizeof *x);
            memcpy(sum, r, kn * sizeof *r);
            HC_ASSERT_OK(g->ops->upload(g, dx, x, n * sizeof *x));
            HC_ASSERT_OK(c->ops->rope(c, want, n_tok, n_head, hd, 32, pos_runs[run], 10000.0f, (hc_rope_mode)mode));
            HC_ASSERT_OK(c->ops->rope(c, sum, n_tok, n_head_kv, hd, 32, pos_runs[run], 10000.0f, (hc_rope_mode)mode));
            HC_ASSERT_OK(g->ops->rope(g, dx, n_tok, n_head, hd, 32, pos_runs[run], 10000.0f, (hc_rope_mode)mode));
            got = from_gpu(g, dx, n);
            CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);
            free(got);
            HC_ASSERT_OK(g->ops->upload(g, dx, x, n * sizeof *x));
            HC_ASSERT_OK(g->ops->upload(g, dr, r, n * sizeof *r));
            HC_ASSERT_OK(g->ops->rope_qk(g, dx, dr, n_tok, n_head, n_head_kv, hd, 32, pos_runs[run], 10000.0f,
                                         (hc_rope_mode)mode));
            got = from_gpu(g, dx, n);
            CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);
            free(got);
            got = from_gpu(g, dr, kn);
            CU_ASSERT_EQUAL(count_far(got, sum, kn, 1e-5), 0);
            free(got);
            /* rope_store: the same rotations, then k and v (x's first rows) into cache rows, f32 and f16 */
            for (int f16 = 0; f16 <= 1; f16++) {
                void *kd = NULL, *vd = NULL;
                size_t eb = f16 ? 2 : 4;
                HC_ASSERT_OK(g->ops->alloc(g, kn * eb, &kd));
                HC_ASSERT_OK(g->ops->alloc(g, kn * eb, &vd));
                HC_ASSERT_OK(g->ops->upload(g, dx, x, n * sizeof *x));
                HC_ASSERT_OK(g->ops->upload(g, dr, r, n * sizeof *r));
                float *dv = to_gpu(g, x, kn * sizeof *x);
                CU_ASSERT_FATAL(g->ops->rope_store != NULL);
                HC_ASSERT_OK(g->ops->rope_store(g, dx, dr, dv, n_tok, n_head, n_head_kv, hd, 32, pos_runs[run], 10000.0f,
                                                (hc_rope_mode)mode, kd, vd, f16 ? HC_F16 : HC_F32));
                got = from_gpu(g, dx, n);
                CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);
                free(got);
                uint8_t *kb = malloc(kn * eb), *vb = malloc(kn * eb);
                HC_ASSERT_OK(g->ops->download(g, kb, kd, kn * eb));
                HC_ASSERT_OK(g->ops->download(g, vb, vd, kn * eb));
                float *kf = malloc(kn * sizeof *kf), *vf = malloc(kn * sizeof *vf);
                for (size_t i = 0; i < kn; i++) {
                    kf[i] = f16 ? hc_f16_to_f32(((uint16_t *)kb)[i]) : ((float *)kb)[i];
                    vf[i] = f16 ? hc_f16_to_f32(((uint16_t *)vb)[i]) : ((float *)vb)[i];
                }
                double tol = f16 ? 1e-3 : 1e-5; /* f16: its rounding, 2^-11 of values below 2 */
                CU_ASSERT_EQUAL(count_far(kf, sum, kn, tol), 0);
                CU_ASSERT_EQUAL(count_far(vf, x, kn, tol), 0);
                free(kb), free(vb), free(kf), free(vf);
                g->ops->free(g, kd);
                g->ops->free(g, vd);
                g->ops->free(g, dv);
            }
        }
    g->ops->free(g, dr);
    g->ops->free(g, dy);
    free(r), free(sum);

    /* attention (GQA) */
    size_t kvn = (size_t)n_ctx * n_head_kv * hd;
    float *q = rnd_floats(n, 1.0f), *k = rnd_floats(kvn, 1.0f), *v = rnd_floats(kvn, 1.0f);
    hc_attn_args a = { .q = q, .k_cache = k, .v_cache = v, .out = want, .n_tok = n_tok, .pos0 = pos0, .n_ctx = n_ctx,
                       .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = hd, .scale = 0.125f };
    HC_ASSERT_OK(c->ops->attention(c, &a));
    float *dq = to_gpu(g, q, n * sizeof *q), *dk = to_gpu(g, k, kvn * sizeof *k), *dv = to_gpu(g, v, kvn * sizeof *v);
    hc_attn_args ga = a;
    ga.q = dq;
    ga.k_cache = dk;
    ga.v_cache = dv;
    ga.out = dx;
    HC_ASSERT_OK(g->ops->attention(g, &ga));
    got = from_gpu(g, dx, n);
    CU_ASSERT_EQUAL(count_far(got, want, n, 1e-5), 0);
    free(got);
    ga.pos0 = n_ctx - 1;
    CU_ASSERT_EQUAL(g->ops->attention(g, &ga), HC_E_STATE);
    check_long_attention(p);

    /* swiglu, add, add_bias, scale */
    HC_ASSERT_OK(c->ops->swiglu(c, x, q, want, n));
    float *dx2 = to_gpu(g, x, n * sizeof *x);
    HC_ASSERT_OK(g->ops->swiglu(g, dx2, dq, dx, n));
    got = from_gpu(g, dx, n);
    CU_ASSERT_EQUAL(count_far(got, want, n, 1e-6), 0);
    free(got);
    /* geglu (gemma): the cpu device's tanh is within 1e-6 of |g u| of tanhf's */
    HC_ASSERT_OK(c->ops->geglu(c, x, q, want, n));
    HC_ASSERT_OK(g->ops->geglu(g, dx2, dq, dx, n));
    got = from_gpu(g, dx, n);
    int far = 0;
    for (size_t i = 0; i < n; i++) far += !(fabs((double)got[i] - want[i]) <= 3e-6 * fabs((double)x[i] * q[i]) + 1e-7);
    CU_ASSERT_EQUAL(far, 0);
    free(got);
    memcpy(want, x, n * sizeof *x);
    HC_ASSERT_OK(c->ops->add(c, want, q, n));
    HC_ASSERT_OK(c->ops->add_bias(c, want, w, n_tok, dim));
    HC_ASSERT_OK(c->ops->scale(c, want, n, -0.5f));
    HC_ASSERT_OK(g->ops->add(g, dx2, dq, n));
    HC_ASSERT_OK(g->ops->add_bias(g, dx2, dw, n_tok, dim));
    HC_ASSERT_OK(g->ops->scale(g, dx2, n, -0.5f));
    got = from_gpu(g, dx2, n);
    CU_ASSERT_EQUAL(count_far(got, want, n, 0), 0);
    free(got);
    /* gate_rows: a sigmoid gate per row, the gate in device memory */
    HC_ASSERT_OK(c->ops->gate_rows(c, want, w, n_tok, dim));
    HC_ASSERT_OK(g->ops->gate_rows(g, dx2, dw, n_tok, dim));
    got = from_gpu(g, dx2, n);
    CU_ASSERT_EQUAL(count_far(got, want, n, 1e-6), 0);
    free(got);

    void *ptrs[] = { dx, dw, dq, dk, dv, dx2 };
    for (int i = 0; i < 6; i++) g->ops->free(g, ptrs[i]);
    free(x);
    free(w);
    free(want);
    free(q);
    free(k);
    free(v);
}

/* ---------------- packed rtn/gptq weights: the format's kernels against its reference ---------------- */

/* n_tok rows of cols activations k / 127, k random in -127..127, every block of 32 reaching +-1:
 * the cpu device's int8 activations (qrtn.h) and the cuda device's (blocks of 32, d = max |x| / 127) hold
 * these to a float's rounding, so both meet the same tolerance, and a mismatch on cuda alone is the CUDA
 * kernels', not the reference's. */
static float *packed_acts(int n_tok, int64_t cols)
{
    size_t n = (size_t)n_tok * (size_t)cols;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = i % 32 ? nearbyintf(rnd() * 127.0f) / 127.0f : (rnd() < 0 ? -1.0f : 1.0f);
    return x;
}

static float *nan_floats(size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* An op's status without ending the case (a kernel fault shows here, or at the download after it):
 * 0, or 1 after printing the error with what was run and failing an assertion. */
static int op_failed(hc_status st, const char *what)
{
    if (st == HC_OK) return 0;
    fprintf(stderr, "  %s -> %s\n", what, hc_last_error());
    CU_FAIL("a device op on packed weights failed (see stderr)");
    return 1;
}

/* The rows x cols weight `packed` of format f on device d: matmul for 1, 3, 8 and 9 tokens (cuda: the
 * fused GEMV up to its max_fused_tokens, then rows in f16 + a tensor-core GEMM) against
 * sum_i deq[o][i] x[t][i] in double, within 1e-4 of the row's magnitude sum_i |deq[o][i] x[t][i]|
 * (the f16 GEMM: 1.2e-3 of it + 2e-5, its rounding's bound), and get_rows of 3, 0, 66
 * against deq exactly (the kernels compute d * q + m as the reference does). The outputs start as
 * NaN, so an element no kernel writes fails too. Returns the number of wrong results. */
static int check_packed_tensor(hc_device *d, const hc_quant_format *f, const void *packed, const float *deq, int64_t rows,
                               int64_t cols)
{
    static const int toks[] = { 1, 3, 8, 9 };
    static const int32_t ids[] = { 3, 0, 66 };
    const hc_quant_cuda_kernels *k = strcmp(d->name, "cuda") == 0 ? f->ops->device_kernels(f->params, "cuda") : NULL;
    size_t bytes = f->ops->packed_bytes(f->params, rows, cols);
    hc_tensor t = { .name = "w", .dtype = HC_PACKED, .n_dims = 2, .ne = { cols, rows, 1, 1 }, .nbytes = bytes, .qfmt = f,
                    .device = d };
    t.data = to_gpu(d, packed, bytes);
    int wrong = 0;
    for (int ti = 0; ti < (int)(sizeof toks / sizeof toks[0]); ti++) {
        int n_tok = toks[ti];
        size_t n = (size_t)n_tok * (size_t)rows;
        const char *path = !k ? (strcmp(d->name, "cuda") ? "cpu kernels" : "no CUDA kernel table")
                         : n_tok <= k->max_fused_tokens ? "a qrtn gemv kernel" : "qrtn_dequant_kernel (f16) + cublasGemmEx";
        /* the f16 tensor-core GEMM rounds both operands to f16: 2^-10 of each product at most */
        const int f16 = k && n_tok > k->max_fused_tokens;
        float *x = packed_acts(n_tok, cols), *want = malloc(n * sizeof *want), *mag = malloc(n * sizeof *mag);
        for (int tt = 0; tt < n_tok; tt++)
            for (int64_t o = 0; o < rows; o++) {
                double s = 0, a = 0;
                for (int64_t i = 0; i < cols; i++) {
                    double p = (double)deq[o * cols + i] * x[tt * cols + i];
                    s += p;
                    a += fabs(p);
                }
                want[tt * rows + o] = (float)s;
                mag[tt * rows + o] = (float)a;
            }
        float *y0 = nan_floats(n), *dx = to_gpu(d, x, (size_t)n_tok * (size_t)cols * sizeof *x), *dy = to_gpu(d, y0, n * sizeof *y0);
        float *got = malloc(n * sizeof *got);
        char what[320];
        snprintf(what, sizeof what, "%s matmul %s, %lld x %lld, %d token%s (%s)", d->name, f->spec, (long long)rows,
                 (long long)cols, n_tok, n_tok > 1 ? "s" : "", path);
        if (!op_failed(d->ops->matmul(d, &t, dx, dy, n_tok), what) &&
            !op_failed(d->ops->download(d, got, dy, n * sizeof *got), what)) {
            int bad = 0, first = -1;
            for (size_t i = 0; i < n; i++)
                if (!(fabs((double)got[i] - want[i]) <= (f16 ? 1.2e-3 * mag[i] + 2e-5 : 1e-4 * mag[i])))
                    bad++, first = first < 0 ? (int)i : first;
            if (bad)
                fprintf(stderr, "  %s: %d of %zu wrong; first token %d row %d: %.9g, want %.9g\n", what, bad, n,
                        first / (int)rows, first % (int)rows, got[first], want[first]);
            CU_ASSERT_EQUAL(bad, 0);
            wrong += bad;
        } else {
            wrong++;
        }
        d->ops->free(d, dx);
        d->ops->free(d, dy);
        free(x), free(want), free(mag), free(y0), free(got);
    }
    int n_ids = (int)(sizeof ids / sizeof ids[0]);
    size_t n = (size_t)n_ids * (size_t)cols;
    float *want = malloc(n * sizeof *want), *o0 = nan_floats(n), *dout = to_gpu(d, o0, n * sizeof *o0);
    for (int r = 0; r < n_ids; r++) memcpy(want + (size_t)r * cols, deq + (size_t)ids[r] * cols, (size_t)cols * sizeof *want);
    float *got = malloc(n * sizeof *got);
    char what[320];
    snprintf(what, sizeof what, "%s get_rows %s, %lld x %lld, rows 3, 0, 66 (%s)", d->name, f->spec, (long long)rows,
             (long long)cols, k ? "qrtn_dequant_kernel" : "dequantize_rows");
    if (!op_failed(d->ops->get_rows(d, &t, ids, n_ids, dout), what) &&
        !op_failed(d->ops->download(d, got, dout, n * sizeof *got), what)) {
        int bad = count_far(got, want, n, 0);
        if (bad) fprintf(stderr, "  %s: %d of %zu wrong\n", what, bad, n);
        CU_ASSERT_EQUAL(bad, 0);
        wrong += bad;
    } else {
        wrong++;
    }
    d->ops->free(d, dout);
    d->ops->free(d, t.data);
    free(want), free(o0), free(got);
    return wrong;
}

/* rtn at bits 2, 3, 4, 8 and groups 32, 64, 128 on rows of 96, 576 and 1056 columns (units of 64 + 32,
 * 4 x 128 + 64, 8 x 128 + 32; a group that does not divide the row leaves a short last group, as the
 * format allows), 67 rows; then gptq's kernels (the same layout, found through gptq's own hook) on
 * rtn's bytes. reg holds the rtn and gptq plugins. */
static void check_packed(hc_device *d, hc_registry *reg)
{
    static const int bits[] = { 2, 3, 4, 8 }, groups[] = { 32, 64, 128 };
    static const int64_t widths[] = { 96, 576, 1056 };
    const int64_t rows = 67;
    int cases = 0, failed = 0;
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int wi = 0; wi < 3; wi++) {
                int64_t cols = widths[wi];
                char spec[64];
                snprintf(spec, sizeof spec, "rtn:bits=%d,group=%d", bits[bi], groups[gi]);
                hc_quant_format *f = NULL, *gf = NULL;
                HC_ASSERT_OK(hc_quant_format_create(reg, spec, &f));
                HC_ASSERT_OK(f->ops->check_shape(f->params, rows, cols));
                float *w = rnd_floats((size_t)(rows * cols), 1.0f), *deq = malloc((size_t)(rows * cols) * sizeof *deq);
                uint8_t *packed = malloc(f->ops->packed_bytes(f->params, rows, cols));
                HC_ASSERT_OK(f->ops->quantize(f->params, w, rows, cols, NULL, packed));
                f->ops->dequantize_rows(f->params, packed, cols, rows, 0, rows, deq);
                int bad = check_packed_tensor(d, f, packed, deq, rows, cols);
                if (bits[bi] == 3 && cols == 576) { /* gptq: its hook loads the same kernels */
                    snprintf(spec, sizeof spec, "gptq:bits=3,group=%d", groups[gi]);
                    HC_ASSERT_OK(hc_quant_format_create(reg, spec, &gf));
                    bad += check_packed_tensor(d, gf, packed, deq, rows, cols);
                    cases++;
                    hc_quant_format_free(gf);
                }
                cases++;
                failed += bad > 0;
                hc_quant_format_free(f);
                free(w), free(deq), free(packed);
            }
    printf("\n  %s: packed rtn/gptq weights, %d formats x shapes: %s\n", d->name, cases,
           failed ? "MISMATCHES (see stderr)" : "all match dequantize_rows");
}

/* matmul_set: sets of weights sharing x, each output equal to what matmul gives for its weight alone:
 * three rtn weights and three Q4_K weights (rows of their own; one launch for one token), two f16
 * weights, and a Q4_K and an rtn weight (a matmul each), for one token and for three. */
static void check_matmul_set(hc_device *d, hc_registry *reg)
{
    CU_ASSERT_FATAL(d->ops->matmul_set != NULL);
    enum { NW = 8 };
    const int64_t cols = 1024, rows[NW] = { 64, 13, 600, 64, 13, 600, 40, 72 };
    const hc_dtype types[NW] = { HC_PACKED, HC_PACKED, HC_PACKED, HC_Q4_K, HC_Q4_K, HC_Q4_K, HC_F16, HC_F16 };
    hc_quant_format *f = NULL;
    HC_ASSERT_OK(hc_quant_format_create(reg, "rtn:bits=3,group=128", &f));
    hc_tensor t[NW];
    for (int m = 0; m < NW; m++) {
        size_t bytes;
        void *host;
        if (types[m] == HC_PACKED) {
            float *w = rnd_floats((size_t)(rows[m] * cols), 1.0f);
            bytes = f->ops->packed_bytes(f->params, rows[m], cols);
            host = malloc(bytes);
            HC_ASSERT_OK(f->ops->quantize(f->params, w, rows[m], cols, NULL, host));
            free(w);
        } else {
            host = hc_test_weights(types[m], rows[m], cols, &bytes, &rng_state);
        }
        t[m] = (hc_tensor){ .name = "w", .dtype = types[m], .n_dims = 2, .ne = { cols, rows[m], 1, 1 }, .nbytes = bytes,
                            .qfmt = types[m] == HC_PACKED ? f : NULL, .device = d };
        t[m].data = to_gpu(d, host, bytes);
        free(host);
    }
    const hc_tensor *sets[4][3] = { { &t[0], &t[1], &t[2] }, { &t[3], &t[4], &t[5] }, { &t[6], &t[7], NULL },
                                    { &t[3], &t[1], NULL } };
    const int sizes[4] = { 3, 3, 2, 2 };
    const char *names[4] = { "rtn", "q4_K", "f16", "mixed" };
    for (int n_tok = 1; n_tok <= 3; n_tok += 2) {
        float *x = packed_acts(n_tok, cols), *dx = to_gpu(d, x, (size_t)n_tok * cols * sizeof *x);
        for (int si = 0; si < 4; si++) {
            int n = sizes[si];
            float *y[3], *want[3];
            for (int m = 0; m < n; m++) {
                size_t nb = (size_t)n_tok * (size_t)sets[si][m]->ne[1] * sizeof(float);
                HC_ASSERT_OK(d->ops->alloc(d, nb, (void **)&y[m]));
                HC_ASSERT_OK(d->ops->alloc(d, nb, (void **)&want[m]));
                HC_ASSERT_OK(d->ops->matmul(d, sets[si][m], dx, want[m], n_tok));
            }
            HC_ASSERT_OK(d->ops->matmul_set(d, n, sets[si], dx, y, n_tok));
            for (int m = 0; m < n; m++) {
                size_t nf = (size_t)n_tok * (size_t)sets[si][m]->ne[1];
                float *got = from_gpu(d, y[m], nf), *ref = from_gpu(d, want[m], nf);
                int same = memcmp(got, ref, nf * sizeof *got) == 0;
                if (!same)
                    fprintf(stderr, "  matmul_set %s, %d tokens: weight %d differs from its matmul\n", names[si], n_tok, m);
                CU_ASSERT(same);
                free(got), free(ref);
                d->ops->free(d, y[m]);
                d->ops->free(d, want[m]);
            }
        }
        d->ops->free(d, dx);
        free(x);
    }
    CU_ASSERT_EQUAL(d->ops->matmul_set(d, HC_MATMUL_SET_MAX + 1, sets[0], NULL, NULL, 1), HC_E_ARG);
    for (int m = 0; m < NW; m++) d->ops->free(d, t[m].data);
    hc_quant_format_free(f);
}

/* One pass of check_graphs' ops on x (n floats) and y, the pass's scalar s changing as positions do;
 * on the host (g NULL) or on g (dx, dy), with a download of x half-way (into mid) that the device must
 * see the work before. */
static void graph_pass(hc_device *g, float *x, float *y, size_t n, int pass, float *mid)
{
    float s = 1.0f + 0.125f * (float)pass;
    for (int i = 0; i < 9; i++) {
        if (i == 4) { /* the host waits for the first stretch */
            if (g) HC_ASSERT_OK(g->ops->download(g, mid, x, n * sizeof *x));
            else memcpy(mid, x, n * sizeof *x);
        }
        if (g) {
            HC_ASSERT_OK(g->ops->scale(g, x, n, i % 2 ? s : 1.0f / s));
            HC_ASSERT_OK(g->ops->add(g, y, x, n));
        } else {
            for (size_t k = 0; k < n; k++) x[k] *= i % 2 ? s : 1.0f / s;
            for (size_t k = 0; k < n; k++) y[k] += x[k];
        }
    }
}

/* graph_step: passes recorded in stretches and replayed (CUDA graphs, updated each pass) compute what
 * plain launches do, a download in the middle of a pass sees the work before it, a device destroyed
 * inside a pass leaves nothing behind, and a bad HC_CUDA_GRAPH_OPS is refused when the device is made. */
static void check_graphs(const hc_device_plugin_ops *ops)
{
    hc_device_config cfg = { .device_index = 0 };
    hc_device *g = NULL;
    setenv("HC_CUDA_GRAPH_OPS", "5", 1); /* stretches of 5 ops: several per pass, one cut short by the download */
    hc_status st = ops->create(&cfg, &g);
    unsetenv("HC_CUDA_GRAPH_OPS");
    HC_ASSERT_OK(st);
    if (st != HC_OK) return;
    CU_ASSERT_PTR_NOT_NULL_FATAL(g->ops->graph_step);
    size_t n = 3000;
    float *x = rnd_floats(n, 1.0f), *y = calloc(n, sizeof *y), *mid = malloc(n * sizeof *mid), *got_mid = malloc(n * sizeof *mid);
    float *dx = to_gpu(g, x, n * sizeof *x), *dy = to_gpu(g, y, n * sizeof *y);
    for (int pass = 0; pass < 6; pass++) {
        graph_pass(NULL, x, y, n, pass, mid);
        HC_ASSERT_OK(g->ops->graph_step(g, 1));
        graph_pass(g, dx, dy, n, pass, got_mid);
        HC_ASSERT_OK(g->ops->graph_step(g, 0));
        float *got = from_gpu(g, dy, n);
        int bad_mid = count_far(got_mid, mid, n, 1e-6), bad = count_far(got, y, n, 1e-6);
        if (bad_mid || bad) fprintf(stderr, "  graph pass %d: %d values wrong half-way, %d at the end\n", pass, bad_mid, bad);
        CU_ASSERT_EQUAL(bad_mid, 0);
        CU_ASSERT_EQUAL(bad, 0);
        free(got);
    }
    HC_ASSERT_OK(g->ops->graph_step(g, 1)); /* destroyed inside a pass, a stretch being recorded (and */
    for (int i = 0; i < 3; i++) HC_ASSERT_OK(g->ops->add(g, dy, dx, n)); /* dx, dy freed by destroy) */
    g->ops->destroy(g);
    free(x), free(y), free(mid), free(got_mid);

    setenv("HC_CUDA_GRAPH_OPS", "12x", 1);
    g = NULL;
    CU_ASSERT_EQUAL(ops->create(&cfg, &g), HC_E_ARG);
    unsetenv("HC_CUDA_GRAPH_OPS");
    CU_ASSERT_PTR_NULL(g);
    CU_ASSERT(strstr(hc_last_error(), "HC_CUDA_GRAPH_OPS") != NULL);
}

/* A host thread that writes corrections and then their flag, some time after the device began to wait. */
typedef struct late_host {
    float *src;
    size_t n;
    uint32_t *flag, seq;
} late_host;

static void *late_host_fn(void *arg)
{
    late_host *h = arg;
    usleep(20000);
    for (size_t i = 0; i < h->n; i++) h->src[i] = (float)(i % 1024); /* exact in f32 */
    __atomic_store_n(h->flag, h->seq, __ATOMIC_RELEASE);
    return NULL;
}

/* The hand-off by flags: publish copies and then sets its flag; merge_when adds once the host's flag
 * comes (set before, set later by a thread, or no flag at all), and when it does not come within the
 * patience (HC_CUDA_HANDOFF_PATIENCE_MS) sets err and goes on. n floats: a decode step's (one kernel
 * each, reading and writing page-locked memory from the GPU) and a prompt's (the copy engine's path). */
static void check_flags_n(hc_device *g, size_t n)
{
    float *x = rnd_floats(n, 1.0f), *host = NULL, *src = NULL;
    uint32_t *flags = NULL;
    HC_ASSERT_OK(g->ops->host_alloc(g, n * sizeof(float), (void **)&host));
    HC_ASSERT_OK(g->ops->host_alloc(g, n * sizeof(float), (void **)&src));
    HC_ASSERT_OK(g->ops->host_alloc(g, 3 * sizeof(uint32_t), (void **)&flags));
    memset(flags, 0, 3 * sizeof(uint32_t));
    float *dx = to_gpu(g, x, n * sizeof *x), *dy = NULL;
    HC_ASSERT_OK(g->ops->publish(g, host, dx, n, &flags[0], 5));
    HC_ASSERT_OK(g->ops->synchronize(g));
    CU_ASSERT_EQUAL(flags[0], 5);
    CU_ASSERT(memcmp(host, x, n * sizeof *x) == 0);

    float *want = malloc(n * sizeof *want);
    HC_ASSERT_OK(g->ops->alloc(g, n * sizeof(float), (void **)&dy));
    HC_ASSERT_OK(g->ops->upload(g, dy, x, n * sizeof *x));
    for (size_t i = 0; i < n; i++) src[i] = 0.5f, want[i] = x[i] + 0.5f + 0.5f + (float)(i % 1024);
    flags[1] = 7; /* set before */
    HC_ASSERT_OK(g->ops->merge_when(g, dy, src, n, &flags[1], 7, &flags[2]));
    HC_ASSERT_OK(g->ops->merge_when(g, dy, src, n, NULL, 0, &flags[2])); /* no wait */
    HC_ASSERT_OK(g->ops->synchronize(g));
    late_host h = { .src = src, .n = n, .flag = &flags[1], .seq = 8 }; /* set 20 ms later, by another thread */
    HC_ASSERT_OK(g->ops->merge_when(g, dy, src, n, &flags[1], 8, &flags[2]));
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, late_host_fn, &h), 0);
    float *got = from_gpu(g, dy, n); /* waits for the device, which waits for the thread */
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(count_far(got, want, n, 1e-6), 0);
    CU_ASSERT_EQUAL(flags[2], 0);
    free(got);
    HC_ASSERT_OK(g->ops->merge_when(g, dy, src, n, &flags[1], 9, &flags[2])); /* never set: the patience runs out */
    HC_ASSERT_OK(g->ops->synchronize(g));
    CU_ASSERT_EQUAL(flags[2], 1);

    /* merge_set: dx and dy from src's halves once the flag comes (set 20 ms late, src rewritten before it),
       as merge_when each */
    flags[2] = 0;
    for (size_t i = 0; i < n; i++) src[i] = 0.25f;
    CU_ASSERT_FATAL(g->ops->merge_set != NULL);
    float *ys[2] = { dx, dy }, *wx = from_gpu(g, dx, n), *wy = from_gpu(g, dy, n);
    size_t len[2] = { n / 2, n - n / 2 };
    late_host h2 = { .src = src, .n = n, .flag = &flags[1], .seq = 10 };
    HC_ASSERT_OK(g->ops->merge_set(g, 2, ys, src, len, &flags[1], 10, &flags[2]));
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, late_host_fn, &h2), 0);
    float *gx = from_gpu(g, dx, len[0]), *gy = from_gpu(g, dy, len[1]);
    pthread_join(th, NULL);
    for (size_t i = 0; i < len[0]; i++) wx[i] += (float)(i % 1024);
    for (size_t i = 0; i < len[1]; i++) wy[i] += (float)((len[0] + i) % 1024);
    CU_ASSERT_EQUAL(count_far(gx, wx, len[0], 0), 0);
    CU_ASSERT_EQUAL(count_far(gy, wy, len[1], 0), 0);
    CU_ASSERT_EQUAL(flags[2], 0);
    free(wx), free(wy), free(gx), free(gy);
    g->ops->free(g, dx);
    g->ops->free(g, dy);
    g->ops->host_free(g, host);
    g->ops->host_free(g, src);
    g->ops->host_free(g, flags);
    free(x), free(want);
}

/* A merge by flags held back and folded into the op after it (HC_CUDA_FUSE, the default): add_rmsnorm
 * adds r's corrections, swiglu gate's and up's, rope_store q's, k's and v's in their own kernels, once
 * the host's flag comes (set 20 ms late by a thread, the corrections rewritten just before it: a kernel
 * that did not wait reads the old ones). The op's outputs, and its inputs with the corrections written
 * back, are bit for bit those of the merge launched on its own (a synchronize between); also q's
 * merge alone before rope_store. A merge before an op that folds none (add), or of an array the op does
 * not read (before add_rmsnorm), is launched on its own first, as right. */
enum { FOLD_NORM, FOLD_SWIGLU, FOLD_ROPE, FOLD_PART, FOLD_ADD, FOLD_OTHER };
#define FOLD_DIM 256
#define FOLD_BUFS 6

static void fold_op(hc_device *g, int op, float *const *b)
{
    static const int32_t pos[1] = { 5 };
    switch (op) {
    case FOLD_NORM: case FOLD_OTHER: HC_ASSERT_OK(g->ops->add_rmsnorm(g, b[1], b[0], b[2], b[3], 1, FOLD_DIM, 1e-5f)); break;
    case FOLD_SWIGLU: HC_ASSERT_OK(g->ops->swiglu(g, b[0], b[1], b[2], FOLD_DIM)); break;
    case FOLD_ADD: HC_ASSERT_OK(g->ops->add(g, b[1], b[0], FOLD_DIM)); break;
    default: /* q: 4 heads of 32 (128 floats), k and v: 2 heads; the KV cache's rows in b[3] and b[4] */
        HC_ASSERT_OK(g->ops->rope_store(g, b[0], b[1], b[2], 1, 4, 2, 32, 32, pos, 10000.0f, HC_ROPE_NEOX, b[3], b[4], HC_F32));
    }
}

/* One run of op after its merge (late: held back and folded; else launched first): the buffers after it. */
static float *fold_run(hc_device *g, int op, const float *init, float *src, uint32_t *flags, uint32_t seq, int late)
{
    static const size_t lens[][3] = { [FOLD_NORM] = { FOLD_DIM }, [FOLD_SWIGLU] = { FOLD_DIM, FOLD_DIM },
                                      [FOLD_ROPE] = { 128, 64, 64 }, [FOLD_PART] = { 128 }, [FOLD_ADD] = { FOLD_DIM },
                                      [FOLD_OTHER] = { FOLD_DIM } };
    const int n = op == FOLD_ROPE ? 3 : op == FOLD_SWIGLU ? 2 : 1;
    float *b[FOLD_BUFS];
    for (int i = 0; i < FOLD_BUFS; i++) b[i] = to_gpu(g, init + (size_t)i * FOLD_DIM, FOLD_DIM * sizeof(float));
    size_t total = 0;
    for (int k = 0; k < n; k++) total += lens[op][k];
    late_host h = { .src = src, .n = total, .flag = &flags[1], .seq = seq };
    for (size_t i = 0; i < total; i++) src[i] = late ? 0.5f : (float)(i % 1024);
    if (!late) flags[1] = seq;
    if (n == 1) HC_ASSERT_OK(g->ops->merge_when(g, b[op == FOLD_OTHER ? 5 : 0], src, lens[op][0], &flags[1], seq, &flags[2]));
    else HC_ASSERT_OK(g->ops->merge_set(g, n, b, src, lens[op], &flags[1], seq, &flags[2]));
    if (!late) HC_ASSERT_OK(g->ops->synchronize(g)); /* the merge launched on its own */
    pthread_t th;
    if (late) CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, late_host_fn, &h), 0);
    fold_op(g, op == FOLD_PART ? FOLD_ROPE : op, b);
    HC_ASSERT_OK(g->ops->synchronize(g));
    if (late) pthread_join(th, NULL);
    float *out = malloc(FOLD_BUFS * FOLD_DIM * sizeof *out);
    for (int i = 0; i < FOLD_BUFS; i++) {
        float *got = from_gpu(g, b[i], FOLD_DIM);
        memcpy(out + (size_t)i * FOLD_DIM, got, FOLD_DIM * sizeof *got);
        free(got);
        g->ops->free(g, b[i]);
    }
    return out;
}

static void check_folds(hc_device *g)
{
    static const char *const names[] = { "add_rmsnorm", "swiglu", "rope_store", "rope_store after q's merge alone",
                                         "add (not folded)", "add_rmsnorm after a merge of another array (not folded)" };
    float *src = NULL, *init = rnd_floats(FOLD_BUFS * FOLD_DIM, 1.0f);
    uint32_t *flags = NULL;
    HC_ASSERT_OK(g->ops->host_alloc(g, 3 * FOLD_DIM * sizeof(float), (void **)&src));
    HC_ASSERT_OK(g->ops->host_alloc(g, 3 * sizeof(uint32_t), (void **)&flags));
    memset(flags, 0, 3 * sizeof(uint32_t));
    for (int op = 0; op <= FOLD_OTHER; op++) {
        float *want = fold_run(g, op, init, src, flags, 20 + 2 * (uint32_t)op, 0);
        float *got = fold_run(g, op, init, src, flags, 21 + 2 * (uint32_t)op, 1);
        int bad = count_far(got, want, FOLD_BUFS * FOLD_DIM, 0);
        if (bad) fprintf(stderr, "  %s after a merge held back: %d of %d values differ\n", names[op], bad, FOLD_BUFS * FOLD_DIM);
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(flags[2], 0);
        free(want), free(got);
    }
    g->ops->host_free(g, src);
    g->ops->host_free(g, flags);
    free(init);
}

/* A publish folded into the kernel that makes its array (HC_CUDA_FUSE, once the device has published by a
 * kernel): add_rmsnorm (3 tokens: 3 blocks), swiglu (20000 floats: 79 blocks) and attention (4 heads
 * over 1 key, and over 300: its keys in splits, the second kernel publishing) also write their output
 * into page-locked memory, and their last block sets the flag; twice, so the blocks' count is back at 0.
 * Outputs bit for bit those of the op and the publish launched one after the other (a synchronize
 * between), the published array their output. A publish of another array (x) launches the op first. */
static void publish_run(hc_device *g, int op, float *const *b, size_t n, float *host, uint32_t *flag, uint32_t seq, int alone)
{
    const hc_attn_args a = { .q = b[0], .k_cache = b[1], .v_cache = b[2], .out = b[3], .n_tok = 1,
                             .pos0 = op == 4 ? 299 : 0, .n_ctx = 512, .n_head = 4, .n_head_kv = 2, .head_dim = 32,
                             .scale = 0.17677669f, .kv_dtype = HC_F32 };
    if (op == 0 || op == 2) HC_ASSERT_OK(g->ops->add_rmsnorm(g, b[0], b[1], b[2], b[3], 3, 256, 1e-5f));
    else if (op == 1) HC_ASSERT_OK(g->ops->swiglu(g, b[0], b[1], b[3], n));
    else HC_ASSERT_OK(g->ops->attention(g, &a));
    if (alone) HC_ASSERT_OK(g->ops->synchronize(g));
    HC_ASSERT_OK(g->ops->publish(g, host, b[op == 2 ? 0 : 3], n, flag, seq));
    HC_ASSERT_OK(g->ops->synchronize(g));
}

static void check_publish_folds(hc_device *g)
{
    static const char *const names[] = { "add_rmsnorm", "swiglu", "add_rmsnorm, then a publish of x", "attention",
                                         "attention in key splits" };
    const size_t big = 20000;
    float *init = rnd_floats(4 * big, 1.0f), *host = NULL;
    uint32_t *flags = NULL;
    HC_ASSERT_OK(g->ops->host_alloc(g, big * sizeof(float), (void **)&host));
    HC_ASSERT_OK(g->ops->host_alloc(g, sizeof(uint32_t), (void **)&flags));
    *flags = 0;
    float *b[4];
    for (int i = 0; i < 4; i++) b[i] = to_gpu(g, init + (size_t)i * big, big * sizeof(float));
    HC_ASSERT_OK(g->ops->publish(g, host, b[0], 10, flags, 1)); /* the device publishes by kernels */
    HC_ASSERT_OK(g->ops->synchronize(g));
    for (int op = 0; op < 5; op++) {
        const size_t n = op == 1 ? big : op >= 3 ? 128 : 3 * 256;
        float *want[4], *want_host;
        for (int i = 0; i < 4; i++) HC_ASSERT_OK(g->ops->upload(g, b[i], init + (size_t)i * big, big * sizeof(float)));
        publish_run(g, op, b, n, host, flags, 30 + 10 * (uint32_t)op, 1);
        for (int i = 0; i < 4; i++) want[i] = from_gpu(g, b[i], big);
        want_host = malloc(n * sizeof *want_host);
        memcpy(want_host, host, n * sizeof *host);
        CU_ASSERT_EQUAL(count_far(want_host, want[op == 2 ? 0 : 3], n, 0), 0);
        for (int rep = 1; rep <= 2; rep++) {
            for (int i = 0; i < 4; i++) HC_ASSERT_OK(g->ops->upload(g, b[i], init + (size_t)i * big, big * sizeof(float)));
            memset(host, 0, n * sizeof *host);
            const uint32_t seq = 30 + 10 * (uint32_t)op + (uint32_t)rep;
            publish_run(g, op, b, n, host, flags, seq, 0);
            int bad = count_far(host, want_host, n, 0);
            for (int i = 0; i < 4; i++) {
                float *got = from_gpu(g, b[i], big);
                bad += count_far(got, want[i], big, 0);
                free(got);
            }
            if (bad) fprintf(stderr, "  %s published (%d): %d values differ\n", names[op], rep, bad);
            CU_ASSERT_EQUAL(bad, 0);
            CU_ASSERT_EQUAL(*flags, seq);
        }
        for (int i = 0; i < 4; i++) free(want[i]);
        free(want_host);
    }
    for (int i = 0; i < 4; i++) g->ops->free(g, b[i]);
    g->ops->host_free(g, host);
    g->ops->host_free(g, flags);
    free(init);
}

static void check_flags(const hc_device_plugin_ops *ops)
{
    hc_device_config cfg = { .device_index = 0 };
    hc_device *g = NULL;
    setenv("HC_CUDA_HANDOFF_PATIENCE_MS", "200", 1);
    hc_status st = ops->create(&cfg, &g);
    unsetenv("HC_CUDA_HANDOFF_PATIENCE_MS");
    HC_ASSERT_OK(st);
    if (st != HC_OK) return;
    CU_ASSERT_FATAL(g->ops->publish && g->ops->merge_when);
    check_flags_n(g, 1000);
    check_flags_n(g, 100000);
    check_folds(g);
    check_publish_folds(g);
    g->ops->destroy(g);
}

/* The GEMV settings: HC_CUDA_GEMV_ROWS=1 (the block types' one-token GEMV a row a warp) and
 * HC_CUDA_GEMV_INT8=0 (x in f32) as right as the defaults (check_matmul's 67 rows: the last warp of 4
 * holds 3); other values are refused when the device is made. */
static void check_gemv_settings(const hc_device_plugin_ops *ops, hc_device *cpu)
{
    static const char *const names[] = { "HC_CUDA_GEMV_ROWS", "HC_CUDA_GEMV_INT8" }, *const good[] = { "1", "0" },
                             *const bad[] = { "3", "2" };
    hc_device_config cfg = { .device_index = 0 };
    for (int i = 0; i < 2; i++) {
        hc_device *g = NULL;
        setenv(names[i], good[i], 1);
        hc_status st = ops->create(&cfg, &g);
        unsetenv(names[i]);
        HC_ASSERT_OK(st);
        if (st == HC_OK) {
            check_matmul(g, cpu, i == 0);
            g->ops->destroy(g);
        }
        setenv(names[i], bad[i], 1);
        g = NULL;
        CU_ASSERT_EQUAL(ops->create(&cfg, &g), HC_E_ARG);
        unsetenv(names[i]);
        CU_ASSERT_PTR_NULL(g);
        CU_ASSERT(strstr(hc_last_error(), names[i]) != NULL);
    }
}

static void run_gpu_checks(const hc_device_plugin_ops *ops)
{
    pair p = { 0 };
    hc_device_config cfg = { .n_threads = 2, .device_index = 0 };
    HC_ASSERT_OK(ops->create(&cfg, &p.gpu));
    HC_ASSERT_OK(hc_cpu_device_create(&cfg, &p.cpu));
    CU_ASSERT_STRING_EQUAL(p.gpu->name, "cuda");
    CU_ASSERT_EQUAL(p.gpu->host_memory, 0);
    check_memory_ops(p.gpu);
    check_budget(ops);
    check_matmul(p.gpu, p.cpu, 1);
    check_get_rows(&p);
    check_row_ops(&p);
    check_moe(p.gpu, p.cpu);
    CU_ASSERT_EQUAL(p.gpu->ops->mem_used(p.gpu), 0);
    check_graphs(ops);
    check_flags(ops);
    check_gemv_settings(ops, p.cpu);
    hc_device_config bad = { .device_index = 999 };
    hc_device *none = NULL;
    CU_ASSERT_EQUAL(ops->create(&bad, &none), HC_E_ARG);
    CU_ASSERT_PTR_NULL(none);
    p.gpu->ops->destroy(p.gpu);
    p.cpu->ops->destroy(p.cpu);
}

/* Without a GPU, probe and create both fail with HC_E_DEVICE and a message naming CUDA. */
static void test_probe(void)
{
    hc_registry *reg;
    const hc_plugin *p = load_plugin(&reg, "probe");
    if (!p) return;
    const hc_device_plugin_ops *ops = p->desc->ops;
    hc_clear_error();
    hc_status st = ops->probe();
    if (st == HC_OK) {
        printf("a CUDA device is present: checking every op against the cpu device\n");
        run_gpu_checks(ops);
    } else {
        printf("probe: %s\n", hc_last_error());
        if (cuda_required()) CU_FAIL("HC_REQUIRE_CUDA is set but the probe found no usable GPU");
        CU_ASSERT_EQUAL(st, HC_E_DEVICE);
        CU_ASSERT(strstr(hc_last_error(), "no CUDA device") != NULL);
        CU_ASSERT(strstr(hc_last_error(), "cudaGetDeviceCount") != NULL);
        hc_device sentinel, *d = &sentinel; /* create must reset it to NULL */
        hc_device_config cfg = { 0 };
        CU_ASSERT_EQUAL(ops->create(&cfg, &d), HC_E_DEVICE);
        CU_ASSERT_PTR_NULL(d);
        CU_ASSERT(strstr(hc_last_error(), "CUDA") != NULL);
        /* probing again gives the same answer (nothing sticky, nothing cached wrongly) */
        CU_ASSERT_EQUAL(ops->probe(), HC_E_DEVICE);
    }
    hc_registry_free(reg);
}

/* The rtn/gptq packed format against its reference: on the cpu device always (which checks the
 * reference and the comparison themselves), on cuda where the probe finds a GPU, with the GEMVs' x in
 * int8 and in f32 (skipped otherwise, failed under HC_REQUIRE_CUDA=1, as in the probe case). */
static void test_packed(void)
{
    hc_registry *reg = NULL;
    const hc_plugin *p = load_plugin(&reg, "packed rtn/gptq kernels on cuda");
    if (!reg) HC_ASSERT_OK(hc_registry_create(&reg));
    const char *quant[] = { plugin_file("hc-quant-rtn.so"), plugin_file("hc-quant-gptq.so") };
    for (int i = 0; i < 2; i++) {
        hc_status st = hc_registry_load_file(reg, quant[i]);
        if (st != HC_OK) fprintf(stderr, "  loading %s: %s\n", quant[i], hc_last_error());
        CU_ASSERT_EQUAL_FATAL(st, HC_OK);
    }
    hc_device_config cfg = { .n_threads = 2, .device_index = 0 };
    hc_device *d = NULL;
    HC_ASSERT_OK(hc_cpu_device_create(&cfg, &d));
    check_packed(d, reg);
    d->ops->destroy(d);
    if (p) {
        const hc_device_plugin_ops *ops = p->desc->ops;
        if (ops->probe() == HC_OK) {
            for (int f32x = 0; f32x <= 1; f32x++) { /* x quantized to int8 for the GEMVs (the default), in f32 */
                if (f32x) setenv("HC_CUDA_GEMV_INT8", "0", 1);
                hc_status st = ops->create(&cfg, &d);
                unsetenv("HC_CUDA_GEMV_INT8");
                HC_ASSERT_OK(st);
                if (st != HC_OK) continue;
                check_packed(d, reg);
                check_matmul_set(d, reg);
                CU_ASSERT_EQUAL(d->ops->mem_used(d), 0);
                d->ops->destroy(d);
            }
        } else {
            printf("\n  SKIP packed rtn/gptq kernels on cuda: %s\n", hc_last_error());
            if (cuda_required()) CU_FAIL("HC_REQUIRE_CUDA is set but the probe found no usable GPU");
        }
    }
    hc_registry_free(reg);
}

int main(void)
{
    setenv("HC_CUDA_MOE_ROWS_BYTES", "16384", 0); /* a long MoE pass's sorted rows in chunks (check_moe) */
    static const hc_test_case cases[] = {
        { "descriptor", test_descriptor },
        { "found by the default plugin search", test_default_search },
        { "probe says why no GPU is usable (or every op matches the cpu device)", test_probe },
        { "packed rtn/gptq weights: matmul and get_rows match dequantize_rows (cpu; cuda with a GPU)", test_packed },
        { NULL, NULL },
    };
    return hc_test_run("cuda_plugin", cases);
}
