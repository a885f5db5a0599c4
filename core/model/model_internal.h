/* model_internal.h: what the model format readers share inside the core: configuration checks
 * and the conversion of weights to f32. Not part of the public API. */
#ifndef HC_MODEL_INTERNAL_H
#define HC_MODEL_INTERNAL_H

#include "model_load.h"

hc_status hc_model_load_gguf(hc_model *m, const hc_model_load_opts *opts);
hc_status hc_model_load_llama2c(hc_model *m, const hc_model_load_opts *opts);
/* Sane ranges for every hyper-parameter (so a corrupt header cannot ask for terabytes). */
hc_status hc_model_check_config(const hc_model_config *c);
/* Binds the GGUF tensor `name` to t after checking its type and shape [ne0, ne1, ne2] (ne1 0: a
 * vector; a packed tensor's logical shape comes from hc.tensor.<name>.shape). A missing tensor is
 * an error when required, else t stays empty. */
hc_status hc_model_bind_tensor(hc_model *m, const hc_model_load_opts *opts, hc_tensor *t, const char *name, int64_t ne0,
                               int64_t ne1, int64_t ne2, int required);
/* The logical shape of packed tensor `name` (hc.tensor.<name>.shape: 2 or 3 int64): *n values into
 * s0, s1, s2 (left as they are past *n; *n is 0 for another count). */
hc_status hc_model_packed_shape(const hc_model *m, const char *name, unsigned *n, int64_t *s0, int64_t *s1, int64_t *s2);
/* The branch of the linear layer weight_name (<base>.lora_a/.lora_b/.lora_s), if the file has one;
 * b->name keeps the pointer weight_name, which must live as long as the model. */
hc_status hc_model_bind_branch(hc_model *m, hc_branch *b, const char *weight_name, int64_t in, int64_t out);
/* Mixture of experts (model_moe.c): the <arch>.expert_* keys into c (n_expert 0 when absent), and
 * a MoE layer's router, expert tensors, shared-expert gate and per-expert branches. */
hc_status hc_model_read_moe_config(const hc_gguf *g, const char *arch, hc_model_config *c);
hc_status hc_model_bind_moe(hc_model *m, const hc_model_load_opts *opts, int layer, int branches);
/* gemma3 (model_gemma3.c): its keys into c (nothing for another arch), and each layer's post norms
 * and sliding-window flag. */
hc_status hc_model_read_gemma3_config(const hc_gguf *g, const char *arch, hc_model_config *c);
hc_status hc_model_bind_gemma3(hc_model *m, const hc_model_load_opts *opts);
/* Replaces every weight by an f32 copy the model owns. */
hc_status hc_model_convert_f32(hc_model *m);

#endif
