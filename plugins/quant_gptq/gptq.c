/* gptq.c: the quant plugin "gptq" (Frantar et al. 2022; the column loop in gptq_solve.c), stored in
 * exactly the rtn layout (plugins/quant_rtn/qrtn.h), so dequantization and kernels are rtn's. */
#include <stdlib.h>

#include "hc/hc_plugin.h"
#include "hc/hc_quant.h"
#include "hc/hc_tensor.h"
#include "gptq_solve.h"
#include "qrtn.h"
#include "qrtn_device_kernels.h"

#define WHO "gptq"

static hc_status gptq_parse(const char *options, void **params)
{
    hc_qrtn_params p;
    hc_status st = hc_qrtn_parse_options(WHO, options, 1, &p);
    if (st != HC_OK) return st;
    hc_qrtn_params *out = malloc(sizeof *out);
    if (!out) return hc_error(HC_E_NOMEM, WHO ": out of memory for the options");
    *out = p;
    *params = out;
    return HC_OK;
}

static void gptq_free_params(void *params) { free(params); }

static hc_status gptq_format_options(const void *params, char *buf, size_t cap)
{
    return hc_qrtn_format_options(WHO, params, 1, buf, cap);
}

static hc_status gptq_check_shape(const void *params, int64_t rows, int64_t cols)
{
    const hc_qrtn_params *p = params;
    return hc_qrtn_check_shape(WHO, p->bits, p->group, rows, cols);
}

static size_t gptq_packed_bytes(const void *params, int64_t rows, int64_t cols)
{
    const hc_qrtn_params *p = params;
    return hc_qrtn_packed_bytes(p->bits, p->group, rows, cols);
}

static hc_status gptq_quantize(const void *params, const float *w, int64_t rows, int64_t cols,
                               const hc_quant_calib *calib, void *packed)
{
    const hc_qrtn_params *p = params;
    if (!calib || !calib->hessian) return hc_error(HC_E_ARG, "gptq needs calibration data (--calib)");
    if (!w || !packed) return hc_error(HC_E_ARG, WHO ": missing weights or output");
    hc_status st = hc_qrtn_check_shape(WHO, p->bits, p->group, rows, cols);
    if (st != HC_OK || rows == 0) return st;
    const int64_t G = hc_qrtn_groups(p->group, cols);
    const size_t rb = hc_qrtn_row_bytes(p->bits, p->group, cols);
    uint8_t *Q = malloc((size_t)rows * (size_t)cols);
    uint16_t *DM = malloc(sizeof(uint16_t) * 2 * (size_t)G * (size_t)rows);   /* row r: d[G], m[G] */
    if (!Q || !DM) st = hc_error(HC_E_NOMEM, WHO ": out of memory for a %lld x %lld weight", (long long)rows, (long long)cols);
    if (st == HC_OK) st = hc_gptq_solve(p, w, rows, cols, calib->hessian, Q, DM);
    for (int64_t r = 0; st == HC_OK && r < rows; r++)
        hc_qrtn_write_row(p->bits, p->group, cols, Q + r * cols, DM + r * 2 * G, DM + r * 2 * G + G,
                          (uint8_t *)packed + (size_t)r * rb);
    free(Q), free(DM);
    return st;
}

/* The stored form is rtn's: the rest of the vtable is the shared layout's. */

static void gptq_dequantize_rows(const void *params, const void *packed, int64_t cols, int64_t rows,
                                 int64_t row0, int64_t n_rows, float *out)
{
    const hc_qrtn_params *p = params;
    (void)rows;
    hc_qrtn_dequantize_rows(p->bits, p->group, packed, cols, row0, n_rows, out);
}

static size_t gptq_input_bytes(const void *params, int64_t cols, int n_tok)
{
    const hc_qrtn_params *p = params;
    return hc_qrtn_input_bytes(p->bits, p->group, cols, n_tok);
}

static void gptq_prepare_input(const void *params, const float *x, int64_t cols, int n_tok, void *xq)
{
    const hc_qrtn_params *p = params;
    hc_qrtn_prepare_input(p->bits, p->group, x, cols, n_tok, xq);
}

static hc_status gptq_matmul_rows(const void *params, const void *packed, int64_t cols, int64_t rows,
                                  const float *x, const void *xq, int n_tok, float *y, int64_t ldy,
                                  int64_t row0, int64_t row1)
{
    const hc_qrtn_params *p = params;
    (void)x;
    return hc_qrtn_matmul_rows(p->bits, p->group, packed, cols, rows, xq, n_tok, y, ldy, row0, row1);
}

static const hc_quant_ops gptq_ops = {
    .parse = gptq_parse,
    .free_params = gptq_free_params,
    .format_options = gptq_format_options,
    .check_shape = gptq_check_shape,
    .packed_bytes = gptq_packed_bytes,
    .quantize = gptq_quantize,
    .dequantize_rows = gptq_dequantize_rows,
    .input_bytes = gptq_input_bytes,
    .prepare_input = gptq_prepare_input,
    .matmul_rows = gptq_matmul_rows,
    .device_kernels = hc_qrtn_device_kernels,
};

static const hc_plugin_desc gptq_desc = {
    HC_ABI_VERSION, HC_PLUGIN_QUANT, "gptq", "1.1.0",
    "GPTQ: Hessian-guided integers (needs --calib), stored in rtn's layout "
    "(bits=4,group=128,damp=0.01,act_order=1,block=128,search=0)",
    &gptq_ops,
};

HC_PLUGIN_DEFINE(gptq_desc)
