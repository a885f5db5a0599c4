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
    if (!info) return hc_error(HC_E_UNSUPPORTED, "architecture '%s' is not supported (supported: llama, qwen2, qwen3, qwen2moe, qwen3moe, olmoe)", arch);
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
    return hc_model_check_config(c);
}

/* The format of a packed tensor (shared by every tensor with the same spec), created on first use. */
static hc_status format_for(hc_model *m, const hc_model_load_opts *opts, const char *spec, hc_quant_format **out)
{
    for (int i = 0; i < m->n_formats; i++)
        if (!strcmp(m->formats[i]->spec, spec)) {
            *out = m->formats[i];
            return HC_OK;
        }
    if (!opts || !opts->registry)
        return hc_error(HC_E_PLUGIN, "this is a compressed model (format %s) and needs the quant plugins: load it through hcinfer", spec);
    hc_quant_format **grown = realloc(m->formats, (size_t)(m->n_formats + 1) * sizeof *grown);
    if (!grown) return hc_error(HC_E_NOMEM, "out of memory");
    m->formats = grown;
    hc_status st = hc_quant_format_create(opts->registry, spec, &m->formats[m->n_formats]);
    if (st != HC_OK) return st;
    *out = m->formats[m->n_formats++];
    /* the canonical spec may differ from the stored text; the stored one must round-trip */
    if (strcmp((*out)->spec, spec))
        return hc_error(HC_E_FORMAT, "quant format '%s' reads back as '%s' (plugin version %s)", spec, (*out)->spec, (*out)->version);
    return HC_OK;
}

/* The logical shape of packed tensor `name` (hc.tensor.<name>.shape: 2 or 3 int64): *n values into
 * s0, s1, s2 (left as they are past *n; *n is 0 for another count). */
static hc_status packed_shape(const hc_model *m, const char *name, unsigned *n, int64_t *s0, int64_t *s1, int64_t *s2)
{
    char key[160];
    snprintf(key, sizeof key, "hc.tensor.%s.shape", name);
    const void *shape;
    uint64_t count;
    hc_status st = hc_gguf_get_arr(m->gguf, key, HC_GGUF_INT64, &shape, &count);
    if (st != HC_OK) return st;
    *n = count == 2 || count == 3 ? (unsigned)count : 0;
    int64_t *dst[3] = { s0, s1, s2 };
    for (unsigned i = 0; i < *n; i++) memcpy(dst[i], (const int64_t *)shape + i, sizeof(int64_t));
    return HC_OK;
}

/* A packed tensor: GGUF type I8 holding the bytes, its format and logical shape in metadata. */
static hc_status bind_packed(hc_model *m, const hc_model_load_opts *opts, hc_tensor *t, const hc_gguf_tensor *gt,
                             const char *format_key, int64_t ne0, int64_t ne1, int64_t ne2)
{
    const char *spec;
    hc_status st = hc_gguf_get_str(m->gguf, format_key, &spec);
    if (st != HC_OK) return st;
    int64_t s0 = -1, s1 = -1, s2 = 1;
    unsigned n;
    if ((st = packed_shape(m, gt->name, &n, &s0, &s1, &s2)) != HC_OK) return st;
    unsigned want_n = ne2 > 1 ? 3 : 2; /* a 3-D packed tensor holds ne2 packed [ne0, ne1] matrices, one after the other */
    if (n != want_n || s0 != ne0 || s1 != ne1 || s2 != ne2)
        return hc_error(HC_E_FORMAT, "packed tensor %s has shape [%lld, %lld, %lld], expected [%lld, %lld, %lld]", gt->name,
                        (long long)s0, (long long)s1, (long long)s2, (long long)ne0, (long long)ne1, (long long)ne2);
    hc_quant_format *f = NULL;
    if ((st = format_for(m, opts, spec, &f)) != HC_OK) return hc_error_context(st, "tensor %s: ", gt->name);
    if ((st = f->ops->check_shape(f->params, ne1, ne0)) != HC_OK) return hc_error_context(st, "tensor %s: ", gt->name);
    size_t want = f->ops->packed_bytes(f->params, ne1, ne0) * (size_t)ne2;
    if (gt->type != HC_I8 || gt->nbytes != want)
        return hc_error(HC_E_FORMAT, "packed tensor %s holds %zu bytes of type %s, format %s needs %zu", gt->name, gt->nbytes,
                        hc_dtype_name((hc_dtype)gt->type), spec, want);
    *t = (hc_tensor){ .name = gt->name, .dtype = HC_PACKED, .n_dims = ne2 > 1 ? 3 : 2, .ne = { ne0, ne1, ne2, 1 },
                      .data = (void *)gt->data, .nbytes = gt->nbytes, .qfmt = f };
    return HC_OK;
}

/* Binds a GGUF tensor to t, checking type and shape; a missing optional tensor leaves t empty. */
hc_status hc_model_bind_tensor(hc_model *m, const hc_model_load_opts *opts, hc_tensor *t, const char *name, int64_t ne0,
                               int64_t ne1, int64_t ne2, int required)
{
    const hc_gguf_tensor *gt = hc_gguf_find_tensor(m->gguf, name);
    if (!gt) {
        if (!required) return HC_OK;
        return hc_error(HC_E_FORMAT, "missing tensor %s", name);
    }
    char format_key[160];
    snprintf(format_key, sizeof format_key, "hc.tensor.%s.format", name);
    if (hc_gguf_find(m->gguf, format_key)) return bind_packed(m, opts, t, gt, format_key, ne0, ne1 > 0 ? ne1 : 1, ne2);
    if (!gt->data || !hc_dtype_is_known((hc_dtype)gt->type))
        return hc_error(HC_E_UNSUPPORTED, "tensor %s has type %u, which hcinfer cannot read", name, gt->type);
    int64_t want_ne1 = ne1 > 0 ? ne1 : 1;
    int dims_ok = gt->ne[0] == ne0 && gt->ne[1] == want_ne1 && gt->ne[2] == ne2 && gt->ne[3] == 1;
    if (!dims_ok)
        return hc_error(HC_E_FORMAT, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]", name,
                        (long long)gt->ne[0], (long long)gt->ne[1], (long long)gt->ne[2], (long long)gt->ne[3],
                        (long long)ne0, (long long)want_ne1, (long long)ne2);
    *t = (hc_tensor){ .name = gt->name, .dtype = (hc_dtype)gt->type, .n_dims = ne2 > 1 ? 3 : ne1 > 0 ? 2 : 1,
                      .ne = { ne0, want_ne1, ne2, 1 }, .data = (void *)gt->data, .nbytes = gt->nbytes };
    return HC_OK;
}

static hc_status bind(hc_model *m, const hc_model_load_opts *opts, hc_tensor *t, const char *name, int64_t ne0, int64_t ne1,
                      int required)
{
    return hc_model_bind_tensor(m, opts, t, name, ne0, ne1, 1, required);
}

/* lora_b of format 1, [out][r], as the [r][out] hc_branch reads, in a buffer the model owns. */
static hc_status transpose_lora_b(hc_model *m, const hc_gguf_tensor *bt, int64_t r, int64_t out, const void **data)
{
    size_t es = hc_dtype_row_bytes(bt->type, 1);
    char *dst = malloc((size_t)(r * out) * es);
    if (!dst) return hc_error(HC_E_NOMEM, "out of memory transposing %s", bt->name);
    hc_transpose(dst, bt->data, out, r, es);
    *data = dst;
    return hc_model_own(m, dst);
}

/* The branch of a linear layer: <base>.lora_a [in, r], <base>.lora_b [out, r] (format 1: [r, out]),
 * <base>.lora_s [r] (GGUF dimensions, fastest first). */
hc_status hc_model_bind_branch(hc_model *m, hc_branch *b, const char *weight_name, int64_t in, int64_t out)
{
    char base[128], name[160];
    size_t len = hc_len_without(weight_name, ".weight");
    snprintf(base, sizeof base, "%.*s", (int)len, weight_name);
    snprintf(name, sizeof name, "%s.lora_a", base);
    const hc_gguf_tensor *a = hc_gguf_find_tensor(m->gguf, name);
    snprintf(name, sizeof name, "%s.lora_b", base);
    const hc_gguf_tensor *bt = hc_gguf_find_tensor(m->gguf, name);
    snprintf(name, sizeof name, "%s.lora_s", base);
    const hc_gguf_tensor *s = hc_gguf_find_tensor(m->gguf, name);
    if (!a && !bt) return HC_OK;
    if (!a || !bt) return hc_error(HC_E_FORMAT, "branch of %s has only one of lora_a and lora_b", weight_name);
    int64_t r = a->ne[1];
    int by_direction = m->hc_format >= 2; /* lora_b [r][out] */
    if (a->type != bt->type || (a->type != HC_F32 && a->type != HC_F16 && a->type != HC_BF16 && a->type != HC_Q8_0))
        return hc_error(HC_E_FORMAT, "branch of %s: factors must both be f32, f16, bf16 or q8_0", weight_name);
    if (a->type == HC_Q8_0 && (!by_direction || in % 32 || out % 32))
        return hc_error(HC_E_FORMAT, "branch of %s: q8_0 factors need format 2 and a layer whose widths are multiples of 32", weight_name);
    if (a->ne[0] != in || r < 1 || r > (in < out ? in : out) || bt->ne[0] != (by_direction ? out : r) ||
        bt->ne[1] != (by_direction ? r : out) || a->n_dims != 2 || bt->n_dims != 2)
        return hc_error(HC_E_FORMAT, "branch of %s: lora_a [%lld, %lld] and lora_b [%lld, %lld] do not fit a %lld -> %lld layer (format %u)",
                        weight_name, (long long)a->ne[0], (long long)a->ne[1], (long long)bt->ne[0], (long long)bt->ne[1],
                        (long long)in, (long long)out, m->hc_format);
    if (s && (s->type != HC_F32 || s->ne[0] != r || s->n_dims != 1))
        return hc_error(HC_E_FORMAT, "branch of %s: lora_s must be f32 [%lld]", weight_name, (long long)r);
    const void *b_data = bt->data;
    if (!by_direction) {
        hc_status st = transpose_lora_b(m, bt, r, out, &b_data);
        if (st != HC_OK) return st;
    }
    *b = (hc_branch){ .name = weight_name, .dtype = (hc_dtype)a->type, .in = in, .out = out, .rank = (int)r, .a = a->data,
                      .b = b_data, .sigma = s ? s->data : NULL };
    return HC_OK;
}

/* The rows of the token embedding: a packed one (compress --head-quant) is stored as bytes, its
 * rows are in its logical shape. */
static int64_t embedding_rows(const hc_model *m, const hc_gguf_tensor *emb)
{
    int64_t cols, rows = emb->ne[1], slices;
    unsigned n;
    if (packed_shape(m, emb->name, &n, &cols, &rows, &slices) != HC_OK || n != 2) return emb->ne[1];
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
    int olmoe = !strcmp(c->arch, "olmoe"), qk_norm = !strncmp(c->arch, "qwen3", 5) || olmoe;
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
