/* compress_source.c: the source model's weights one layer at a time: f32 copies of a layer while
 * it is worked on (the file stays mapped, never converted whole), pages released with madvise. */
#include "compress_source.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "context.h"
#include "device_cpu.h"
#include "gguf.h"
#include "threadpool.h"

hc_source_raw hc_source_raw_of(const hc_model *m, const hc_tensor *t)
{
    if (m->gguf) {
        const hc_gguf_tensor *g = hc_gguf_find_tensor(m->gguf, t->name);
        if (g) return (hc_source_raw){ g->type, g->n_dims, { g->ne[0], g->ne[1], g->ne[2], g->ne[3] }, g->data, g->nbytes };
    }
    return (hc_source_raw){ HC_F32, (uint32_t)t->n_dims, { t->ne[0], t->ne[1], 1, 1 }, t->data, t->nbytes };
}

void hc_source_release(const void *data, size_t n)
{
    if (!data || !n) return;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t b = (uintptr_t)data / (uintptr_t)page * (uintptr_t)page, e = (uintptr_t)data + n;
    madvise((void *)b, e - b, MADV_DONTNEED); /* clean file pages: read again if touched */
}

/* A tensor converted to f32 in parts, one per thread, each a run of whole blocks of its type. */
typedef struct convert_job {
    hc_dtype type;
    const uint8_t *src;
    float *dst;
    int64_t n_blocks;
    int block;
    size_t block_bytes;
} convert_job;

static void convert_part(void *arg, int ith, int nth)
{
    const convert_job *j = arg;
    int64_t b0 = j->n_blocks * ith / nth, b1 = j->n_blocks * (ith + 1) / nth;
    if (b1 > b0)
        hc_dequantize_row(j->type, j->src + (size_t)b0 * j->block_bytes, j->dst + b0 * j->block, (b1 - b0) * j->block);
}

static void add(hc_source_layer *sl, hc_tensor *t)
{
    if (t->data && sl->n < HC_SOURCE_LAYER_MAX) sl->t[sl->n++] = t;
}

hc_status hc_source_layer_open(hc_model *m, int layer, hc_pool *pool, hc_source_layer *sl)
{
    memset(sl, 0, sizeof *sl);
    if (layer < 0) {
        add(sl, &m->out_norm);
        add(sl, &m->output);
    } else {
        hc_layer *L = &m->layers[layer];
        add(sl, &L->attn_norm);
        add(sl, &L->ffn_norm);
        for (int p = 0; p < HC_PROJ_COUNT; p++) {
            add(sl, &L->proj[p]);
            add(sl, &L->bias[p]);
        }
        add(sl, &L->attn_q_norm);
        add(sl, &L->attn_k_norm);
        add(sl, &L->moe.router);
        for (int k = 0; k < HC_EXP_COUNT; k++) add(sl, &L->moe.exps[k]);
        add(sl, &L->moe.shexp_gate);
    }
    for (int i = 0; i < sl->n; i++) {
        hc_tensor *t = sl->t[i];
        sl->saved[i] = *t;
        if (t->dtype == HC_F32) continue;
        if (t->dtype == HC_PACKED) {
            hc_source_layer_close(sl);
            return hc_error(HC_E_ARG, "%s: the source holds a packed tensor; compress the original model", t->name);
        }
        int64_t n = hc_tensor_nelements(t);
        float *f = malloc((size_t)n * sizeof *f);
        if (!f) {
            hc_source_layer_close(sl);
            return hc_error(HC_E_NOMEM, "out of memory for %s in f32 (%lld MiB)", t->name, (long long)(n >> 18));
        }
        int block = hc_dtype_block_size(t->dtype);
        convert_job j = { t->dtype, t->data, f, block > 0 ? n / block : 0, block, hc_dtype_block_bytes(t->dtype) };
        if (pool && block > 0 && n % block == 0) hc_pool_run(pool, convert_part, &j);
        else hc_dequantize_row(t->dtype, t->data, f, n);
        hc_source_release(t->data, t->nbytes);
        sl->copy[i] = f;
        t->dtype = HC_F32;
        t->data = f;
        t->nbytes = (size_t)n * sizeof *f;
    }
    return HC_OK;
}

float *hc_source_layer_writable(hc_source_layer *sl, hc_tensor *t)
{
    for (int i = 0; i < sl->n; i++) {
        if (sl->t[i] != t) continue;
        if (sl->copy[i]) return sl->copy[i];
        float *f = malloc(t->nbytes);
        if (!f) {
            hc_error(HC_E_NOMEM, "out of memory for a copy of %s (%zu bytes)", t->name, t->nbytes);
            return NULL;
        }
        memcpy(f, t->data, t->nbytes);
        sl->copy[i] = f;
        t->data = f;
        return f;
    }
    hc_error(HC_E_STATE, "%s is not a tensor of the open layer", t->name);
    return NULL;
}

void hc_source_layer_close(hc_source_layer *sl)
{
    for (int i = 0; i < sl->n; i++) {
        if (!sl->saved[i].data) continue;
        *sl->t[i] = sl->saved[i];
        free(sl->copy[i]);
        hc_source_release(sl->saved[i].data, sl->saved[i].nbytes);
    }
    memset(sl, 0, sizeof *sl);
}

hc_status hc_source_context(hc_model *m, int threads, int seq, int layers_only, hc_device **dev, hc_context **ctx)
{
    hc_device_config dc = { .n_threads = threads };
    hc_context_params cp = { .n_ctx = seq, .n_batch = seq, .layers_only = layers_only };
    *dev = NULL;
    *ctx = NULL;
    hc_status st = hc_cpu_device_create(&dc, dev);
    if (st == HC_OK) st = hc_context_create(m, *dev, &cp, ctx);
    return st;
}

void hc_source_context_close(hc_model *m, hc_device *dev, hc_context *ctx)
{
    hc_context_free(ctx);
    if (dev) {
        m->device = NULL; /* the weights stay where they are: host memory */
        dev->ops->destroy(dev);
    }
}
