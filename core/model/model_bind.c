/* model_bind.c: binds GGUF tensors to a model's tensors and branches, each type and shape checked:
 * plain and packed (quant plugin) weights, and the lora_a/lora_b/lora_s factors of a branch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "quant_format.h"
#include "suffix.h"
#include "transpose.h"

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
hc_status hc_model_packed_shape(const hc_model *m, const char *name, unsigned *n, int64_t *s0, int64_t *s1, int64_t *s2)
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
    if ((st = hc_model_packed_shape(m, gt->name, &n, &s0, &s1, &s2)) != HC_OK) return st;
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
