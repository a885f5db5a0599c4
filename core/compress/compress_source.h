/* compress_source.h: the source model as the compressor reads it: mapped from its file, one layer's
 * weights in f32 at a time (their pages released afterwards), the raw bytes of the tensors kept. */
#ifndef HC_COMPRESS_SOURCE_H
#define HC_COMPRESS_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct hc_context;
struct hc_pool;

/* A weight as the input file stores it (GGUF: its raw bytes; llama2.c: f32). */
typedef struct hc_source_raw {
    uint32_t type, n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
} hc_source_raw;

hc_source_raw hc_source_raw_of(const hc_model *m, const hc_tensor *t);

/* Drops the pages of a mapped range from the process (they are read again if touched). */
void hc_source_release(const void *data, size_t n);

/* The weights of one decoder layer (or the head, layer -1: output and out_norm) in f32 while it is
 * worked on: the model's tensors point at f32 copies until close restores them, frees the copies
 * and releases the source's pages. */
#define HC_SOURCE_LAYER_MAX 32
typedef struct hc_source_layer {
    hc_tensor *t[HC_SOURCE_LAYER_MAX];
    hc_tensor saved[HC_SOURCE_LAYER_MAX]; /* as the file maps them */
    float *copy[HC_SOURCE_LAYER_MAX];     /* NULL: already f32 in the file */
    int n;
} hc_source_layer;

/* pool: the threads that convert the weights to f32 (NULL: the calling thread). */
hc_status hc_source_layer_open(hc_model *m, int layer, struct hc_pool *pool, hc_source_layer *sl);
void hc_source_layer_close(hc_source_layer *sl);
/* The f32 values of one of the open layer's tensors, writable (an f32 tensor of the file, mapped
 * read-only, gets a copy of its own until close): NULL and an error when t is not in the layer. */
float *hc_source_layer_writable(hc_source_layer *sl, hc_tensor *t);

/* A context of seq tokens on a CPU device over the source model as it is mapped (calibration, the
 * sampled text, the sensitivity measurement run it); layers_only: for hc_context_run_layer alone
 * (no logits buffers). Closing it leaves the weights where they are. */
hc_status hc_source_context(hc_model *m, int threads, int seq, int layers_only, hc_device **dev, struct hc_context **ctx);
void hc_source_context_close(hc_model *m, hc_device *dev, struct hc_context *ctx);

#endif
