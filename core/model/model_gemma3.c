/* model_gemma3.c: what a gemma3 GGUF adds to a Llama-family decoder: its keys (sliding window and
 * which layers use it, their RoPE base, query scale, logit soft-capping) and the post-norm tensors.
 *
 * Facts from the published model and llama.cpp's gemma3 graph: embeddings times sqrt(dim); RMS norms
 * before and after attention and the FFN (the converter stores gemma's 1 + w as w); per-head q/k RMS
 * norms before NEOX RoPE; GeGLU with GELU's tanh form; local layers attend within
 * <arch>.attention.sliding_window with RoPE base <arch>.rope.freq_base_swa (10000 when absent), the
 * others globally with <arch>.rope.freq_base; the pattern is <arch>.attention.sliding_window_pattern
 * (a period P, layer l local when l % P < P - 1, or one bool per layer), period 6 when absent; the
 * query scale is <arch>.attention.scale, else 1/sqrt(key_length); the head is the tied embedding. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gguf.h"
#include "model_internal.h"

int hc_arch_is_gemma3(const char *arch) { return !strcmp(arch, "gemma3"); }

hc_status hc_model_read_gemma3_config(const hc_gguf *g, const char *arch, hc_model_config *c)
{
    if (!hc_arch_is_gemma3(arch)) return HC_OK;
    char key[128];
    uint32_t v;
    hc_status st;
    snprintf(key, sizeof key, "%s.attention.value_length", arch);
    if ((st = hc_gguf_get_u32_or(g, key, (uint32_t)c->head_dim, &v)) != HC_OK) return st;
    if ((int)v != c->head_dim)
        return hc_error(HC_E_UNSUPPORTED, "%s = %u differs from the key length %d (not supported)", key, v, c->head_dim);
    c->embd_scale = sqrtf((float)c->dim);
    c->ffn_act = HC_ACT_GELU_TANH;
    snprintf(key, sizeof key, "%s.attention.scale", arch);
    if ((st = hc_gguf_get_f32_or(g, key, 1.0f / sqrtf((float)c->head_dim), &c->attn_scale)) != HC_OK) return st;
    if (!(c->attn_scale > 0.0f && c->attn_scale < 1e3f)) return hc_error(HC_E_FORMAT, "%s = %g is out of range", key, c->attn_scale);
    snprintf(key, sizeof key, "%s.final_logit_softcapping", arch);
    if ((st = hc_gguf_get_f32_or(g, key, 0.0f, &c->logit_softcap)) != HC_OK) return st;
    if (!(c->logit_softcap >= 0.0f && c->logit_softcap < 1e6f))
        return hc_error(HC_E_FORMAT, "%s = %g is out of range", key, c->logit_softcap);
    snprintf(key, sizeof key, "%s.attention.sliding_window", arch);
    if ((st = hc_gguf_get_u32_or(g, key, 0, &v)) != HC_OK) return st;
    if (v > (1u << 24)) return hc_error(HC_E_FORMAT, "%s = %u is out of range", key, v);
    c->n_swa = (int)v;
    snprintf(key, sizeof key, "%s.rope.freq_base_swa", arch);
    if ((st = hc_gguf_get_f32_or(g, key, 10000.0f, &c->rope_theta_swa)) != HC_OK) return st;
    if (!(c->rope_theta_swa > 0.0f)) return hc_error(HC_E_FORMAT, "%s = %g is not positive", key, c->rope_theta_swa);
    return HC_OK;
}

/* Which layers are local: the pattern key as a period or as one bool per layer (llama.cpp's two forms). */
static hc_status read_swa_layers(hc_model *m, const char *arch)
{
    const hc_model_config *c = &m->cfg;
    if (c->n_swa <= 0) return HC_OK; /* no window: every layer global */
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch);
    const hc_gguf_kv *kv = hc_gguf_find(m->gguf, key);
    if (kv && kv->type == HC_GGUF_ARRAY) {
        const void *data;
        uint64_t n;
        hc_status st = hc_gguf_get_arr(m->gguf, key, HC_GGUF_BOOL, &data, &n);
        if (st != HC_OK) return st;
        if (n != (uint64_t)c->n_layer) return hc_error(HC_E_FORMAT, "%s has %llu entries for %d layers", key, (unsigned long long)n, c->n_layer);
        for (int l = 0; l < c->n_layer; l++) m->layers[l].swa = ((const uint8_t *)data)[l] != 0;
        return HC_OK;
    }
    uint32_t period;
    hc_status st = hc_gguf_get_u32_or(m->gguf, key, 6, &period);
    if (st != HC_OK) return st;
    for (int l = 0; l < c->n_layer; l++) m->layers[l].swa = period == 0 || (uint32_t)l % period < period - 1;
    return HC_OK;
}

hc_status hc_model_bind_gemma3(hc_model *m, const hc_model_load_opts *opts)
{
    if (!hc_arch_is_gemma3(m->cfg.arch)) return HC_OK;
    hc_status st = read_swa_layers(m, m->cfg.arch);
    char name[96];
    for (int l = 0; l < m->cfg.n_layer && st == HC_OK; l++) {
        hc_layer *L = &m->layers[l];
        snprintf(name, sizeof name, "blk.%d.post_attention_norm.weight", l);
        st = hc_model_bind_tensor(m, opts, &L->attn_post_norm, name, m->cfg.dim, 0, 1, 1);
        snprintf(name, sizeof name, "blk.%d.post_ffw_norm.weight", l);
        if (st == HC_OK) st = hc_model_bind_tensor(m, opts, &L->ffn_post_norm, name, m->cfg.dim, 0, 1, 1);
    }
    return st;
}
