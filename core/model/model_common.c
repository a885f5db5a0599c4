/* model_common.c: what the model file readers share: range checks of the hyper-parameters, the
 * optional conversion of every weight to f32, and freeing what a reader made. */
#include <stdlib.h>
#include <sys/mman.h>

#include "gguf.h"
#include "hc/hc_quant.h"
#include "model_internal.h"
#include "quant_format.h"

hc_status hc_model_check_config(const hc_model_config *c)
{
#define RANGE(field, lo, hi)                                                                   \
    if (c->field < (lo) || c->field > (hi))                                                    \
        return hc_error(HC_E_FORMAT, #field " = %d is out of range (%d..%d)", (int)c->field, (int)(lo), (int)(hi));
    RANGE(n_layer, 1, 1024);
    RANGE(dim, 1, 1 << 16);
    RANGE(n_head, 1, 1024);
    RANGE(n_head_kv, 1, 1024);
    RANGE(head_dim, 2, 1 << 12);
    RANGE(ffn_dim, 1, 1 << 20);
    RANGE(n_ctx_train, 1, 1 << 24);
#undef RANGE
    if (c->n_head % c->n_head_kv)
        return hc_error(HC_E_FORMAT, "n_head = %d is not a multiple of n_head_kv = %d", c->n_head, c->n_head_kv);
    if (!(c->rms_eps > 0.0f && c->rms_eps < 1.0f)) return hc_error(HC_E_FORMAT, "rms epsilon %g is out of range", c->rms_eps);
    if (!(c->rope_theta > 0.0f)) return hc_error(HC_E_FORMAT, "rope base %g is not positive", c->rope_theta);
    return HC_OK;
}

typedef struct convert_ctx {
    hc_model *m;
    hc_status st;
} convert_ctx;

static void convert_tensor(hc_tensor *t, void *arg)
{
    convert_ctx *c = arg;
    if (c->st != HC_OK || t->dtype == HC_F32 || !t->data) return;
    int64_t n = hc_tensor_nelements(t), width = t->ne[0], rows = n / width;
    float *f = malloc((size_t)n * sizeof *f);
    if (!f) {
        c->st = hc_error(HC_E_NOMEM, "%s: out of memory converting %s to f32", c->m->path, t->name);
        return;
    }
    if (t->dtype == HC_PACKED) {
        /* a 3-D packed tensor (experts) holds ne[2] packed matrices one after the other */
        int64_t slices = t->ne[2] > 1 ? t->ne[2] : 1, per = rows / slices;
        size_t slice_bytes = t->nbytes / (size_t)slices;
        for (int64_t s = 0; s < slices; s++)
            t->qfmt->ops->dequantize_rows(t->qfmt->params, (const char *)t->data + (size_t)s * slice_bytes, width, per, 0, per,
                                          f + (size_t)(s * per * width));
    } else
        hc_dequantize_row(t->dtype, t->data, f, n);
    if ((c->st = hc_model_own(c->m, f)) != HC_OK) return;
    t->dtype = HC_F32;
    t->data = f;
    t->nbytes = (size_t)n * sizeof *f;
    t->qfmt = NULL;
}

hc_status hc_model_convert_f32(hc_model *m)
{
    convert_ctx c = { .m = m, .st = HC_OK };
    hc_model_for_each_tensor(m, convert_tensor, &c);
    if (m->cfg.tied_output) m->output = m->tok_embd;
    return c.st;
}

void hc_model_free(hc_model *m)
{
    if (!m) return;
    hc_model_unplace(m);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    for (int i = 0; i < m->n_formats; i++) hc_quant_format_free(m->formats[i]);
    free(m->formats);
    free(m->owned);
    for (int l = 0; m->layers && l < m->cfg.n_layer; l++)
        for (int k = 0; k < HC_EXP_COUNT; k++) free(m->layers[l].moe.branch[k]);
    free(m->layers);
    if (m->map) munmap(m->map, m->map_size);
    hc_gguf_close(m->gguf);
    free(m->path);
    free(m);
}
