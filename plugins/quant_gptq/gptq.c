/* gptq.c: the quant plugin "gptq" (Frantar et al. 2022): columns quantized in order, each one's
 * error spread over the later columns through the inverse Hessian of the layer's inputs; stored in
 * exactly the rtn layout (plugins/quant_rtn/qrtn.h), so dequantization and kernels are rtn's. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_plugin.h"
#include "hc/hc_quant.h"
#include "hc/hc_tensor.h"
#include "qrtn.h"
#include "qrtn_device_kernels.h"

#define WHO "gptq"
#define BLOCK 128   /* lazy batch: columns whose updates reach the rest of the matrix at once */

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

/* U, upper triangular with U^T U = (H + damp I)^-1, from the calibration Hessian (n x n). Dead
 * inputs (zero diagonal) get a unit diagonal and are flagged in dead[]. */
static hc_status inverse_hessian_factor(const float *hessian, int64_t n, float damp_frac, float *U, uint8_t *dead)
{
    double *H = malloc(sizeof(double) * (size_t)(n * n));
    if (!H) return hc_error(HC_E_NOMEM, WHO ": out of memory for a %lld x %lld Hessian", (long long)n, (long long)n);
    hc_status st = HC_OK;
    double diag_sum = 0.0;
    for (int64_t i = 0; i < n * n; i++) {
        if (!isfinite(hessian[i])) {
            st = hc_error(HC_E_ARG, WHO ": Hessian entry (%lld, %lld) is not finite", (long long)(i / n), (long long)(i % n));
            goto done;
        }
        H[i] = hessian[i];
    }
    for (int64_t i = 0; i < n; i++) {
        double *hii = &H[i * n + i];
        if (*hii < 0) {
            st = hc_error(HC_E_ARG, WHO ": Hessian diagonal %lld is negative (%g): not a mean of x x^T", (long long)i, *hii);
            goto done;
        }
        dead[i] = *hii == 0.0;
        if (dead[i]) *hii = 1.0;   /* a dead input: its weights do not matter (set to 0 by the caller) */
        diag_sum += *hii;
    }
    const double damp = (double)damp_frac * diag_sum / (double)n;
    for (int64_t i = 0; i < n; i++) H[i * n + i] += damp;
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, H, (lapack_int)n);
    if (info == 0) info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, H, (lapack_int)n);
    if (info != 0) {
        st = hc_error(HC_E_NUMERIC, WHO ": the dampened Hessian is not positive definite (LAPACK info %d); "
                      "raise damp (now %g)", (int)info, (double)damp_frac);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)   /* dpotri filled the lower triangle of the inverse */
        for (int64_t j = i + 1; j < n; j++) H[i * n + j] = H[j * n + i];
    info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', (lapack_int)n, H, (lapack_int)n);
    if (info != 0) {
        st = hc_error(HC_E_NUMERIC, WHO ": the inverse Hessian is not positive definite (LAPACK info %d); raise damp "
                      "(now %g)", (int)info, (double)damp_frac);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) U[i * n + j] = j >= i ? (float)H[i * n + j] : 0.0f;
done:
    free(H);
    return st;
}

static hc_status gptq_quantize(const void *params, const float *w, int64_t rows, int64_t cols,
                               const hc_quant_calib *calib, void *packed)
{
    const hc_qrtn_params *p = params;
    if (!calib || !calib->hessian) return hc_error(HC_E_ARG, "gptq needs calibration data (--calib)");
    if (!w || !packed) return hc_error(HC_E_ARG, WHO ": missing weights or output");
    hc_status st = hc_qrtn_check_shape(WHO, p->bits, p->group, rows, cols);
    if (st != HC_OK || rows == 0) return st;
    const int64_t n = cols, G = hc_qrtn_groups(p->group, cols);
    const int qmax = (1 << p->bits) - 1;
    const size_t rb = hc_qrtn_row_bytes(p->bits, p->group, cols);
    float *U = malloc(sizeof(float) * (size_t)(n * n)), *W = malloc(sizeof(float) * (size_t)rows * (size_t)n);
    float *E = malloc(sizeof(float) * (size_t)rows * BLOCK);
    uint8_t *Q = malloc((size_t)rows * (size_t)n), *dead = malloc((size_t)n);
    uint16_t *DM = malloc(sizeof(uint16_t) * 2 * (size_t)G * (size_t)rows);   /* row r: d[G], m[G] */
    if (!U || !W || !E || !Q || !dead || !DM) {
        st = hc_error(HC_E_NOMEM, WHO ": out of memory for a %lld x %lld weight", (long long)rows, (long long)cols);
        goto done;
    }
    st = inverse_hessian_factor(calib->hessian, n, p->damp, U, dead);
    if (st != HC_OK) goto done;
    memcpy(W, w, sizeof(float) * (size_t)rows * (size_t)n);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++)
            if (dead[i]) W[r * n + i] = 0.0f;

    for (int64_t i1 = 0; i1 < n; i1 += BLOCK) {
        const int64_t i2 = i1 + BLOCK < n ? i1 + BLOCK : n, nb = i2 - i1;
        for (int64_t r = 0; r < rows; r++) {
            float *wr = W + r * n, *er = E + r * nb;
            uint16_t *dr = DM + r * 2 * G, *mr = dr + G;
            float d = 0.0f, m = 0.0f;
            for (int64_t i = i1; i < i2; i++) {
                if (i % p->group == 0) {   /* a group starts: its grid from the error-updated weights */
                    const int64_t g = i / p->group, len = n - i < p->group ? n - i : p->group;   /* last: short */
                    st = hc_qrtn_grid(wr + i, len, p->bits, &dr[g], &mr[g]);
                    if (st != HC_OK) {
                        st = hc_error_context(st, WHO ": row %lld, columns %lld..%lld: ", (long long)r, (long long)i,
                                              (long long)(i + len - 1));
                        goto done;
                    }
                    d = hc_f16_to_f32(dr[g]);
                    m = hc_f16_to_f32(mr[g]);
                }
                const int q = hc_qrtn_code(wr[i], d, m, qmax);
                Q[r * n + i] = (uint8_t)q;
                const float err = (wr[i] - (d * (float)q + m)) / U[i * n + i];
                er[i - i1] = err;
                if (i + 1 < i2) cblas_saxpy((int)(i2 - i - 1), -err, U + i * n + i + 1, 1, wr + i + 1, 1);
            }
        }
        if (i2 < n)   /* the block's errors reach the later columns: W[:, i2:] -= E U[i1:i2, i2:] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(n - i2), (int)nb, -1.0f, E,
                        (int)nb, U + i1 * n + i2, (int)n, 1.0f, W + i2, (int)n);
    }
    for (int64_t r = 0; r < rows; r++)
        hc_qrtn_write_row(p->bits, p->group, cols, Q + r * n, DM + r * 2 * G, DM + r * 2 * G + G,
                          (uint8_t *)packed + (size_t)r * rb);
done:
    free(U), free(W), free(E), free(Q), free(dead), free(DM);
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
    HC_ABI_VERSION, HC_PLUGIN_QUANT, "gptq", "1.0.0",
    "GPTQ: Hessian-guided integers (needs --calib), stored in rtn's layout (bits=4,group=128,damp=0.01)",
    &gptq_ops,
};

HC_PLUGIN_DEFINE(gptq_desc)
