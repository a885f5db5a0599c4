/* model_load.h: reading a model file (GGUF, or a llama2.c checkpoint) into an hc_model
 * (base/model.h), and freeing it. */
#ifndef HC_MODEL_LOAD_H
#define HC_MODEL_LOAD_H

#include "gguf.h"
#include "model.h"

struct hc_registry;

typedef struct hc_model_load_opts {
    int to_f32;             /* convert every weight to f32 on load (the reference path) */
    const struct hc_registry *registry; /* quant plugins for compressed (HC_PACKED) tensors */
    int no_branches;        /* ignore compensation branches in the file */
} hc_model_load_opts;

/* Reads a GGUF (by magic) or a llama2.c checkpoint. Refuses unknown architectures, missing
 * tensors, wrong shapes and unknown tensor types with a message naming the file and tensor. */
hc_status hc_model_load(const char *path, const hc_model_load_opts *opts, hc_model **out);
/* 1 for the architectures whose layers are all mixtures of experts (qwen2moe, qwen3moe, olmoe);
 * llama may have experts (Mixtral) or not. */
int hc_arch_is_moe(const char *arch);
/* 1 for "gemma3" (model_gemma3.c). */
int hc_arch_is_gemma3(const char *arch);
void hc_model_free(hc_model *m);

/* The llama2.c tokenizer file beside a llama2.c checkpoint: tokenizer.bin, then tok<n_vocab>.bin. */
hc_status hc_llama2c_tokenizer_path(const char *model_path, int n_vocab, char *buf, size_t cap);

#endif
