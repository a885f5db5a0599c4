/* model_moe.c: the mixture-of-experts part of a GGUF model: the <arch>.expert_* keys, each MoE
 * layer's router, 3-D expert tensors, shared-expert gate and the branches of single experts.
 *
 * Names follow GGUF/llama.cpp: blk.L.ffn_gate_inp.weight [dim, E] (router), blk.L.ffn_{gate,up}_exps
 * .weight [dim, expert_ffn, E], blk.L.ffn_down_exps.weight [expert_ffn, dim, E], blk.L.ffn_gate_inp_shexp
 * .weight [dim] and blk.L.ffn_{gate,up,down}_shexp.weight (qwen2moe). A compressed expert e of
 * blk.L.ffn_gate_exps has its branch in blk.L.ffn_gate_exps.e<e>.lora_a / .lora_b / .lora_s (hcinfer's
 * scheme: every expert is its own linear layer with its own rank). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

static const char *const exp_names[HC_EXP_COUNT] = { "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps" };

/* Routing weights renormalised over the top k by default (llama.cpp's build_moe_ffn norm_w flag). */
static int default_norm_topk(const char *arch)
{
    /* qwen3moe, mixtral (llama): yes; qwen2moe, olmoe (norm_topk_prob false): no */
    return strcmp(arch, "qwen2moe") != 0 && strcmp(arch, "olmoe") != 0;
}

int hc_arch_is_moe(const char *arch)
{
    return !strcmp(arch, "qwen2moe") || !strcmp(arch, "qwen3moe") || !strcmp(arch, "olmoe");
}

hc_status hc_model_read_moe_config(const hc_gguf *g, const char *arch, hc_model_config *c)
{
    char key[128];
    uint32_t v;
    hc_status st;
    int moe_arch = hc_arch_is_moe(arch);
    snprintf(key, sizeof key, "%s.expert_count", arch);
    if ((st = hc_gguf_get_u32_or(g, key, 0, &v)) != HC_OK) return st;
    if (v == 0) {
        c->n_expert = 0;
        if (moe_arch) return hc_error(HC_E_FORMAT, "a %s model needs %s > 0", arch, key);
        return HC_OK;
    }
    if (strcmp(arch, "llama") && !moe_arch)
        return hc_error(HC_E_UNSUPPORTED, "experts (%s = %u) are not supported for architecture %s", key, v, arch);
    /* every count is range-checked as the uint32 it is stored as, before it becomes an int */
    if (v > 4096) return hc_error(HC_E_FORMAT, "%s = %u is out of range (1..4096)", key, v);
    c->n_expert = (int)v;
    snprintf(key, sizeof key, "%s.expert_used_count", arch);
    if ((st = hc_gguf_get_u32(g, key, &v)) != HC_OK) return st;
    if (v < 1 || v > (uint32_t)c->n_expert)
        return hc_error(HC_E_FORMAT, "%s = %u does not fit %d experts", key, v, c->n_expert);
    c->n_expert_used = (int)v;
    /* llama.cpp's defaults when the widths are not stored */
    snprintf(key, sizeof key, "%s.expert_feed_forward_length", arch);
    uint32_t dflt = !strcmp(arch, "llama") ? (uint32_t)c->ffn_dim : (uint32_t)(c->ffn_dim / c->n_expert_used);
    if ((st = hc_gguf_get_u32_or(g, key, dflt, &v)) != HC_OK) return st;
    uint32_t routed = v;
    snprintf(key, sizeof key, "%s.expert_shared_feed_forward_length", arch);
    if ((st = hc_gguf_get_u32_or(g, key, !strcmp(arch, "qwen2moe") ? (uint32_t)c->ffn_dim : 0, &v)) != HC_OK) return st;
    if (routed < 1 || routed > (1u << 20) || v > (1u << 20))
        return hc_error(HC_E_FORMAT, "expert widths %u (routed) and %u (shared) are out of range", routed, v);
    c->expert_ffn_dim = (int)routed;
    c->shexp_ffn_dim = (int)v;
    snprintf(key, sizeof key, "%s.expert_weights_norm", arch);
    c->norm_topk_prob = default_norm_topk(arch);
    if (hc_gguf_find(g, key) && (st = hc_gguf_get_bool(g, key, &c->norm_topk_prob)) != HC_OK) return st;
    snprintf(key, sizeof key, "%s.expert_gating_func", arch); /* llama.cpp: 1 softmax, 2 sigmoid */
    if ((st = hc_gguf_get_u32_or(g, key, 1, &v)) != HC_OK) return st;
    if (v != 1) return hc_error(HC_E_UNSUPPORTED, "%s = %u: only softmax routing (1) is supported", key, v);
    return HC_OK;
}

/* The branches of every expert of one expert tensor; NULL when none of them has one. */
static hc_status bind_expert_branches(hc_model *m, int layer, int k, int64_t in, int64_t out, hc_branch **out_arr)
{
    int n = m->cfg.n_expert;
    char name[128];
    *out_arr = NULL;
    hc_branch *arr = NULL;
    for (int e = 0; e < n; e++) {
        snprintf(name, sizeof name, "blk.%d.%s.e%d.lora_a", layer, exp_names[k], e);
        int has_a = hc_gguf_find_tensor(m->gguf, name) != NULL;
        snprintf(name, sizeof name, "blk.%d.%s.e%d.lora_b", layer, exp_names[k], e);
        if (!has_a && !hc_gguf_find_tensor(m->gguf, name)) continue;
        if (!arr && !(arr = calloc((size_t)n, sizeof *arr))) return hc_error(HC_E_NOMEM, "out of memory");
        *out_arr = arr; /* owned by the model from here on (freed with its layers) */
        snprintf(name, sizeof name, "blk.%d.%s.e%d.weight", layer, exp_names[k], e);
        char *weight_name = strdup(name);
        if (!weight_name) return hc_error(HC_E_NOMEM, "out of memory");
        hc_status st = hc_model_own(m, weight_name);
        if (st == HC_OK) st = hc_model_bind_branch(m, &arr[e], weight_name, in, out);
        if (st != HC_OK) return st;
    }
    return HC_OK;
}

hc_status hc_model_bind_moe(hc_model *m, const hc_model_load_opts *opts, int layer, int branches)
{
    const hc_model_config *c = &m->cfg;
    hc_moe_layer *M = &m->layers[layer].moe;
    int64_t E = c->n_expert, f = c->expert_ffn_dim, d = c->dim;
    const int64_t shape[HC_EXP_COUNT][2] = { { d, f }, { d, f }, { f, d } };
    char name[128];
    snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", layer);
    hc_status st = hc_model_bind_tensor(m, opts, &M->router, name, d, E, 1, 1);
    if (st == HC_OK && M->router.dtype == HC_PACKED)
        st = hc_error(HC_E_FORMAT, "router %s must not be packed", name);
    for (int k = 0; k < HC_EXP_COUNT && st == HC_OK; k++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", layer, exp_names[k]);
        st = hc_model_bind_tensor(m, opts, &M->exps[k], name, shape[k][0], shape[k][1], E, 1);
        if (st == HC_OK && branches) st = bind_expert_branches(m, layer, k, shape[k][0], shape[k][1], &M->branch[k]);
    }
    if (st == HC_OK && c->shexp_ffn_dim > 0) {
        snprintf(name, sizeof name, "blk.%d.ffn_gate_inp_shexp.weight", layer);
        st = hc_model_bind_tensor(m, opts, &M->shexp_gate, name, d, 0, 1, 1);
    }
    return st;
}
