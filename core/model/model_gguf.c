/* model_gguf.c: reads a Llama-family model from a GGUF file: the hyper-parameters from the
 * "<arch>.*" keys and the weights by GGUF's tensor names, every shape and type checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "model_internal.h"
#include "quant_format.h"
#include "suffix.h"
#include "transpose.h"

typedef struct arch_info {
    const char *name;
    hc_rope_mode rope;
} arch_info;

static const arch_info known_archs[] = {
    { "llama", HC_ROPE_NORM },
    { "qwen2", HC_ROPE_NEOX },
    { "qwen3", HC_ROPE_NEOX },     /* + per-head q/k RMS norms */
    { "qwen2moe", HC_ROPE_NEOX },  /* mixture of experts with a gated shared expert (model_moe.c) */
    { "qwen3moe", HC_ROPE_NEOX },  /* mixture of experts, q/k norms */
    { "olmoe", HC_ROPE_NORM },     /* mixture of experts, q/k norms over the whole projection */
    { "gemma3", HC_ROPE_NEOX },    /* post norms, GeGLU, sliding-window layers (model_gemma3.c) */
};

static hc_status read_config(hc_model *m, const hc_gguf *g)
{
    hc_model_config *c = &m->cfg;
    const char *arch;
    hc_status st = hc_gguf_get_str(g, "general.architecture", &arch);
    if (st != HC_OK) return st;
    const arch_info *info = NULL;
    for (size_t i = 0; i < sizeof known_archs / sizeof known_archs[0]; i++)
        if (!strcmp(arch, known_archs[i].name)) info = &known_archs[i];
    if (!info) return hc_error(HC_E_UNSUPPORTED, "architecture '%s' is not supported (supported: llama, qwen2, qwen3, qwen2moe, qwen3moe, olmoe, gemma3)", arch);
    snprintf(c->arch, sizeof c->arch, "%s", arch);
    c->rope_mode = info->rope;

    char key[128];
    uint32_t v;
#define GET_U32(field, suffix)                                                   \
    snprintf(key, sizeof key, "%s." suffix, arch);                               \
    if ((st = hc_gguf_get_u32(g, key, &v)) != HC_OK) return st;                  \
    c->field = (int)v;
    GET_U32(n_layer, "block_count");
    GET_U32(dim, "embedding_length");
    GET_U32(ffn_dim, "feed_forward_length");
    GET_U32(n_head, "attention.head_count");
#undef GET_U32
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    if ((st = hc_gguf_get_u32_or(g, key, (uint32_t)c->n_head, &v)) != HC_OK) return st;
    c->n_head_kv = (int)v;
    if (c->n_head <= 0 || c->n_head_kv <= 0 || c->n_head % c->n_head_kv)
        return hc_error(HC_E_FORMAT, "%d attention heads and %d kv heads do not fit grouped-query attention", c->n_head, c->n_head_kv);
    snprintf(key, sizeof key, "%s.attention.key_length", arch);
    if ((st = hc_gguf_get_u32_or(g, key, c->dim / c->n_head, &v)) != HC_OK) return st;
    c->head_dim = (int)v;
    snprintf(key, sizeof key, "%s.rope.dimension_count", arch);
    if ((st = hc_gguf_get_u32_or(g, key, (uint32_t)c->head_dim, &v)) != HC_OK) return st;
    c->n_rot = (int)v;
    snprintf(key, sizeof key, "%s.context_length", arch);
    if ((st = hc_gguf_get_u32_or(g, key, 2048, &v)) != HC_OK) return st;
    c->n_ctx_train = (int)v;
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if ((st = hc_gguf_get_f32_or(g, key, 10000.0f, &c->rope_theta)) != HC_OK) return st;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if ((st = hc_gguf_get_f32_or(g, key, 1e-5f, &c->rms_eps)) != HC_OK) return st;
    if (c->n_rot <= 0 || c->n_rot > c->head_dim || c->n_rot % 2)
        return hc_error(HC_E_FORMAT, "rope dimension count %d does not fit head size %d", c->n_rot, c->head_dim);
    if ((st = hc_model_read_moe_config(g, arch, c)) != HC_OK) return st;
    if ((st = hc_model_read_gemma3_config(g, arch, c)) != HC_OK) return st;
    return hc_model_check_config(c);
}

static hc_status bind(hc_model *m, const hc_model_load_opts *opts, hc_tensor *t, const char *name, int64_t ne0, int64_t ne1,
                      int required)
{
    return hc_model_bind_tensor(m, opts, t, name, ne0, ne1, 1, required);
}

/* The rows of the token embedding: a packed one (compress --head-quant) is stored as bytes, its
 * rows are in its logical shape. */
static int64_t embedding_rows(const hc_model *m, const hc_gguf_tensor *emb)
{
    int64_t cols, rows = emb->ne[1], slices;
    unsigned n;
    if (hc_model_packed_shape(m, emb->name, &n, &cols, &rows, &slices) != HC_OK || n != 2) return emb->ne[1];
    return rows;
}

static hc_status bind_weights(hc_model *m, const hc_model_load_opts *opts)
{
    const hc_model_config *c = &m->cfg;
    int q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    const hc_gguf_tensor *emb = hc_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) return hc_error(HC_E_FORMAT, "missing tensor token_embd.weight");
    int64_t n_vocab = embedding_rows(m, emb);
    if (n_vocab < 1 || n_vocab > INT32_MAX) return hc_error(HC_E_FORMAT, "token_embd.weight has %lld rows", (long long)n_vocab);
    m->cfg.n_vocab = (int)n_vocab;
    hc_status st = bind(m, opts, &m->tok_embd, "token_embd.weight", c->dim, c->n_vocab, 1);
    if (st == HC_OK) st = bind(m, opts, &m->out_norm, "output_norm.weight", c->dim, 0, 1);
    if (st == HC_OK) st = bind(m, opts, &m->output, "output.weight", c->dim, c->n_vocab, 0);
    if (st != HC_OK) return st;
    m->cfg.tied_output = m->output.data == NULL;
    if (m->cfg.tied_output) m->output = m->tok_embd;
    int branches = !(opts && opts->no_branches);
    if (branches && (st = hc_model_bind_branch(m, &m->out_branch, m->output.name, c->dim, c->n_vocab)) != HC_OK) return st;

    const int64_t shape[HC_PROJ_COUNT][2] = {
        { c->dim, q_dim }, { c->dim, kv_dim }, { c->dim, kv_dim }, { q_dim, c->dim },
        { c->dim, c->ffn_dim }, { c->dim, c->ffn_dim }, { c->ffn_dim, c->dim },
        { c->dim, c->shexp_ffn_dim }, { c->dim, c->shexp_ffn_dim }, { c->shexp_ffn_dim, c->dim },
    };
    /* q/k RMS norms: qwen3 per head (head_dim weights), olmoe over the whole q and k (their widths) */
    int olmoe = !strcmp(c->arch, "olmoe"), qk_norm = !strncmp(c->arch, "qwen3", 5) || olmoe || hc_arch_is_gemma3(c->arch);
    int64_t q_norm_len = olmoe ? q_dim : c->head_dim, k_norm_len = olmoe ? kv_dim : c->head_dim;
    char name[96];
    for (int l = 0; l < c->n_layer && st == HC_OK; l++) {
        hc_layer *L = &m->layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        if ((st = bind(m, opts, &L->attn_norm, name, c->dim, 0, 1)) != HC_OK) break;
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        if ((st = bind(m, opts, &L->ffn_norm, name, c->dim, 0, 1)) != HC_OK) break;
        for (int p = 0; p < HC_PROJ_COUNT && st == HC_OK; p++) {
            /* a MoE layer has experts instead of ffn_gate/up/down, and maybe a shared expert */
            int moe_layer = c->n_expert > 0, is_shexp = p >= HC_PROJ_GATE_SHEXP, is_ffn = p >= HC_PROJ_GATE && !is_shexp;
            if ((is_ffn && moe_layer) || (is_shexp && (!moe_layer || c->shexp_ffn_dim <= 0))) continue;
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, hc_proj_name(p));
            st = bind(m, opts, &L->proj[p], name, shape[p][0], shape[p][1], 1);
            if (st == HC_OK && branches) st = hc_model_bind_branch(m, &L->branch[p], L->proj[p].name, shape[p][0], shape[p][1]);
            snprintf(name, sizeof name, "blk.%d.%s.bias", l, hc_proj_name(p));
            if (st == HC_OK) st = bind(m, opts, &L->bias[p], name, shape[p][1], 0, 0);
        }
        snprintf(name, sizeof name, "blk.%d.attn_q_norm.weight", l);
        if (st == HC_OK) st = bind(m, opts, &L->attn_q_norm, name, q_norm_len, 0, qk_norm);
        snprintf(name, sizeof name, "blk.%d.attn_k_norm.weight", l);
        if (st == HC_OK) st = bind(m, opts, &L->attn_k_norm, name, k_norm_len, 0, qk_norm);
        if (st == HC_OK && c->n_expert > 0) st = hc_model_bind_moe(m, opts, l, branches);
    }
    if (st == HC_OK) st = hc_model_bind_gemma3(m, opts);
    return st;
}

hc_status hc_model_load_gguf(hc_model *m, const hc_model_load_opts *opts)
{
    hc_status st = hc_gguf_open(m->path, &m->gguf);
    if (st != HC_OK) return st;
    if ((st = read_config(m, m->gguf)) != HC_OK) return hc_error_context(st, "%s: ", m->path);
    if ((st = hc_gguf_get_u32_or(m->gguf, "hc.format_version", 0, &m->hc_format)) != HC_OK)
        return hc_error_context(st, "%s: ", m->path);
    if (m->hc_format > HC_FORMAT_VERSION)
        return hc_error(HC_E_UNSUPPORTED, "%s: hc.format_version %u is newer than this hcinfer reads (up to %d)", m->path,
                        m->hc_format, HC_FORMAT_VERSION);
    m->layers = calloc((size_t)m->cfg.n_layer, sizeof *m->layers);
    if (!m->layers) return hc_error(HC_E_NOMEM, "%s: out of memory", m->path);
    if ((st = bind_weights(m, opts)) != HC_OK) return hc_error_context(st, "%s: ", m->path);
    if (opts && opts->to_f32 && (st = hc_model_convert_f32(m)) != HC_OK) return st;
    return HC_OK;
}
