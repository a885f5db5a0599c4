/* rtn.c: the quant plugin "rtn": group-wise asymmetric round-to-nearest (w ~ d q + m per group of
 * 32/64/128, 2/3/4/8 bits; search=1: each group's grid by weighted least squares), packed in the
 * layout of qrtn.h and run by the kernels beside it. */
#include <stdlib.h>

#include "hc/hc_plugin.h"
#include "hc/hc_quant.h"
#include "qrtn.h"
#include "qrtn_device_kernels.h"

#define WHO "rtn"

static hc_status rtn_parse(const char *options, void **params)
{
    hc_qrtn_params p;
    hc_status st = hc_qrtn_parse_options(WHO, options, 0, &p);
    if (st != HC_OK) return st;
    hc_qrtn_params *out = malloc(sizeof *out);
    if (!out) return hc_error(HC_E_NOMEM, WHO ": out of memory for the options");
    *out = p;
    *params = out;
    return HC_OK;
}

static void rtn_free_params(void *params) { free(params); }

static hc_status rtn_format_options(const void *params, char *buf, size_t cap)
{
    return hc_qrtn_format_options(WHO, params, 0, buf, cap);
}

static hc_status rtn_check_shape(const void *params, int64_t rows, int64_t cols)
{
    const hc_qrtn_params *p = params;
    return hc_qrtn_check_shape(WHO, p->bits, p->group, rows, cols);
}

static size_t rtn_packed_bytes(const void *params, int64_t rows, int64_t cols)
{
    const hc_qrtn_params *p = params;
    return hc_qrtn_packed_bytes(p->bits, p->group, rows, cols);
}

static hc_status rtn_quantize(const void *params, const float *w, int64_t rows, int64_t cols,
                              const hc_quant_calib *calib, void *packed)
{
    const hc_qrtn_params *p = params;
    if (!w || !packed) return hc_error(HC_E_ARG, WHO ": missing weights or output");
    if (p->search)   /* weighted by E[x_i^2] when calibrated, plain squared error otherwise */
        return hc_qrtn_quantize_rtn_search(p->bits, p->group, w, rows, cols, calib ? calib->x2_mean : NULL, packed);
    return hc_qrtn_quantize_rtn(p->bits, p->group, w, rows, cols, packed);
}

static void rtn_dequantize_rows(const void *params, const void *packed, int64_t cols, int64_t rows,
                                int64_t row0, int64_t n_rows, float *out)
{
    const hc_qrtn_params *p = params;
    (void)rows;
    hc_qrtn_dequantize_rows(p->bits, p->group, packed, cols, row0, n_rows, out);
}

static size_t rtn_input_bytes(const void *params, int64_t cols, int n_tok)
{
    const hc_qrtn_params *p = params;
    return hc_qrtn_input_bytes(p->bits, p->group, cols, n_tok);
}

static void rtn_prepare_input(const void *params, const float *x, int64_t cols, int n_tok, void *xq)
{
    const hc_qrtn_params *p = params;
    hc_qrtn_prepare_input(p->bits, p->group, x, cols, n_tok, xq);
}

static hc_status rtn_matmul_rows(const void *params, const void *packed, int64_t cols, int64_t rows,
                                 const float *x, const void *xq, int n_tok, float *y, int64_t ldy,
                                 int64_t row0, int64_t row1)
{
    const hc_qrtn_params *p = params;
    (void)x;   /* the kernel reads the prepared activations */
    return hc_qrtn_matmul_rows(p->bits, p->group, packed, cols, rows, xq, n_tok, y, ldy, row0, row1);
}

static const hc_quant_ops rtn_ops = {
    .parse = rtn_parse,
    .free_params = rtn_free_params,
    .format_options = rtn_format_options,
    .check_shape = rtn_check_shape,
    .packed_bytes = rtn_packed_bytes,
    .quantize = rtn_quantize,
    .dequantize_rows = rtn_dequantize_rows,
    .input_bytes = rtn_input_bytes,
    .prepare_input = rtn_prepare_input,
    .matmul_rows = rtn_matmul_rows,
    .device_kernels = hc_qrtn_device_kernels,
};

static const hc_plugin_desc rtn_desc = {
    HC_ABI_VERSION, HC_PLUGIN_QUANT, "rtn", "1.0.0",
    "group-wise asymmetric round-to-nearest, 2/3/4/8 bits, groups of 32/64/128; search=1: scales by "
    "activation-weighted least squares (bits=4,group=128)",
    &rtn_ops,
};

HC_PLUGIN_DEFINE(rtn_desc)
