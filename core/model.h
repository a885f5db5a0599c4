/* model.h: a Llama-family decoder model in memory: its configuration and weight tensors, read
 * from a GGUF file or a llama2.c checkpoint, optionally converted to f32, placed on a device. */
#ifndef HC_MODEL_H
#define HC_MODEL_H

#include "gguf.h"
#include "hc/hc_comp.h"
#include "hc/hc_device.h"
#include "hc/hc_quant.h"
#include "hc/hc_tensor.h"

struct hc_registry;

typedef struct hc_model_config {
    char arch[32];          /* "llama" (GGUF general.architecture, or "llama2c") */
    int n_layer;
    int dim;                /* embedding width */
    int n_head, n_head_kv, head_dim;
    int ffn_dim;
    int n_vocab;
    int n_ctx_train;        /* context length the model was trained with */
    int n_rot;              /* dims rotated by RoPE per head */
    float rope_theta;
    hc_rope_mode rope_mode;
    float rms_eps;
    int tied_output;        /* the output head is the token embedding */
} hc_model_config;

/* The linear projections of a decoder layer, in a fixed order (stage names use these). */
typedef enum hc_proj {
    HC_PROJ_Q, HC_PROJ_K, HC_PROJ_V, HC_PROJ_O, HC_PROJ_GATE, HC_PROJ_UP, HC_PROJ_DOWN, HC_PROJ_COUNT
} hc_proj;

const char *hc_proj_name(hc_proj p);   /* "attn_q", ..., "ffn_down" (GGUF's names) */

typedef struct hc_layer {
    hc_tensor attn_norm, ffn_norm;
    hc_tensor proj[HC_PROJ_COUNT];
    hc_tensor bias[HC_PROJ_COUNT];      /* data NULL when the architecture has none */
    hc_branch branch[HC_PROJ_COUNT];    /* compensation branches; rank 0 when none */
} hc_layer;

typedef struct hc_model {
    hc_model_config cfg;
    hc_tensor tok_embd;     /* [dim, n_vocab] */
    hc_tensor out_norm;     /* [dim] */
    hc_tensor output;       /* [dim, n_vocab]; a copy of tok_embd's description when tied */
    hc_branch out_branch;   /* compensation of the output head; rank 0 when none */
    hc_layer *layers;
    hc_quant_format **formats; /* quant formats of HC_PACKED tensors, owned */
    int n_formats;
    char *path;
    hc_gguf *gguf;          /* the GGUF it came from (metadata, tokenizer), or NULL */
    void *map;              /* llama2.c checkpoint mapping */
    size_t map_size;
    void **owned;           /* buffers the model allocated (f32 conversions), freed with it */
    int n_owned, cap_owned;
    hc_device *device;      /* where the weights were placed (NULL: host) */
} hc_model;

typedef struct hc_model_load_opts {
    int to_f32;             /* convert every weight to f32 on load (the reference path) */
    const struct hc_registry *registry; /* quant plugins for compressed (HC_PACKED) tensors */
    int no_branches;        /* ignore compensation branches in the file */
} hc_model_load_opts;

/* Reads a GGUF (by magic) or a llama2.c checkpoint. Refuses unknown architectures, missing
 * tensors, wrong shapes and unknown tensor types with a message naming the file and tensor. */
hc_status hc_model_load(const char *path, const hc_model_load_opts *opts, hc_model **out);
void hc_model_free(hc_model *m);

/* Calls fn for every weight tensor (embedding, norms, projections, biases, output). */
void hc_model_for_each_tensor(hc_model *m, void (*fn)(hc_tensor *t, void *ctx), void *ctx);

/* Makes the weights usable by dev: in place when dev->host_memory, else copied to the device. */
hc_status hc_model_place(hc_model *m, hc_device *dev);

/* Bytes of weights one decoded token reads (every projection, norms, the output head, one
 * embedding row): the memory traffic figure `hcinfer bench` reports. */
size_t hc_model_bytes_per_token(const hc_model *m);

/* Bytes of the compensation branches at their stored ranks. */
size_t hc_model_branch_bytes(const hc_model *m);
/* Bytes of the backbone: every weight the device holds (packed or not). */
size_t hc_model_backbone_bytes(const hc_model *m);

/* The llama2.c tokenizer file beside a llama2.c checkpoint: tokenizer.bin, then tok<n_vocab>.bin. */
hc_status hc_llama2c_tokenizer_path(const char *model_path, int n_vocab, char *buf, size_t cap);

/* Registers a buffer to be freed with the model. */
hc_status hc_model_own(hc_model *m, void *buffer);

#endif
