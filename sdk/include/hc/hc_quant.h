/* hc_quant.h: the vtable of a quantization-format plugin (kind HC_PLUGIN_QUANT): parse options,
 * quantize f32 weights to a packed layout, dequantize it (the reference) and the CPU kernels. */
#ifndef HC_QUANT_H
#define HC_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "hc/hc_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Optional statistics of a layer's input, gathered from calibration text. */
typedef struct hc_quant_calib {
    const float *x2_mean;   /* [cols] mean of x_i^2 over calibration tokens, or NULL */
    const float *hessian;   /* [cols][cols] mean of x x^T (row-major), or NULL */
} hc_quant_calib;

typedef struct hc_quant_ops {
    /* "bits=3,group=128" -> params (malloc'd by the plugin). Unknown keys, bad values:
       HC_E_ARG with a message naming the option and the allowed values. */
    hc_status (*parse)(const char *options, void **params);
    void (*free_params)(void *params);
    /* The canonical option string ("bits=3,group=128"), stored in model files. */
    hc_status (*format_options)(const void *params, char *buf, size_t cap);
    /* Whether a weight of this shape can be stored (e.g. cols divisible by the group size). */
    hc_status (*check_shape)(const void *params, int64_t rows, int64_t cols);
    /* Bytes of the packed form of a rows x cols matrix. */
    size_t (*packed_bytes)(const void *params, int64_t rows, int64_t cols);
    /* w: rows x cols f32, row-major (a row = one output). calib may be NULL. Pure function of
       its inputs; may be called from several threads at once on different matrices. */
    hc_status (*quantize)(const void *params, const float *w, int64_t rows, int64_t cols,
                          const hc_quant_calib *calib, void *packed);
    /* The reference dequantization of rows [row0, row0 + n_rows) into out (n_rows x cols). */
    void (*dequantize_rows)(const void *params, const void *packed, int64_t cols, int64_t rows,
                            int64_t row0, int64_t n_rows, float *out);
    /* Optional: bytes for a prepared (e.g. int8-quantized) copy of n_tok activation rows, and
       the preparation, done once per matmul before the row ranges run on several threads. */
    size_t (*input_bytes)(const void *params, int64_t cols, int n_tok);
    void (*prepare_input)(const void *params, const float *x, int64_t cols, int n_tok, void *xq);
    /* The CPU kernel: y[t*ldy + o] = sum_i W[o][i] x[t][i] for o in [row0, row1); called
       concurrently by the device's threads with disjoint row ranges. xq is NULL when the
       format has no prepare_input. */
    hc_status (*matmul_rows)(const void *params, const void *packed, int64_t cols, int64_t rows,
                             const float *x, const void *xq, int n_tok, float *y, int64_t ldy,
                             int64_t row0, int64_t row1);
    /* Optional: kernels for another device, by device name ("cuda"): a device-specific table. */
    const void *(*device_kernels)(const void *params, const char *device_name);
} hc_quant_ops;

/* A quant plugin bound to parsed options: what an HC_PACKED tensor points to. */
typedef struct hc_quant_format {
    const hc_quant_ops *ops;
    void *params;
    char plugin[65];         /* plugin name, "rtn" */
    char version[32];        /* plugin version */
    char options[128];       /* canonical options, "bits=3,group=128" */
    char spec[200];          /* plugin:options, "rtn:bits=3,group=128" */
} hc_quant_format;

#ifdef __cplusplus
}
#endif
#endif
