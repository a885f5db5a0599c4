/* hc_tensor.h: the tensor every part of hcinfer passes around: element type, shape, data, and
 * the device its data lives on. Type ids of the standard types are GGUF's (ggml's) ids. */
#ifndef HC_TENSOR_H
#define HC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "hc/hc_api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hc_dtype {
    HC_F32 = 0,
    HC_F16 = 1,
    HC_Q4_0 = 2,   /* blocks of 32: f16 scale d, 16 bytes of 4-bit q; w = d*(q-8) */
    HC_Q4_1 = 3,   /* blocks of 32: f16 d, f16 min m, 16 bytes of 4-bit q; w = d*q + m */
    HC_Q5_0 = 6,   /* blocks of 32: f16 d, 32 high bits, 16 bytes of low nibbles; w = d*(q-16) */
    HC_Q5_1 = 7,   /* blocks of 32: f16 d, f16 m, 32 high bits, 16 bytes of nibbles; w = d*q + m */
    HC_Q8_0 = 8,   /* blocks of 32: f16 d, 32 int8 q; w = d*q */
    HC_Q2_K = 10,  /* K-quants: super-blocks of 256 elements with per-16/32 sub-block scales */
    HC_Q3_K = 11,
    HC_Q4_K = 12,
    HC_Q5_K = 13,
    HC_Q6_K = 14,
    HC_I8 = 24,
    HC_I16 = 25,
    HC_I32 = 26,
    HC_I64 = 27,
    HC_F64 = 28,
    HC_BF16 = 30,
    HC_PACKED = 1000 /* an opaque block format owned by a quant plugin (hc_quant.h) */
} hc_dtype;

#define HC_MAX_DIMS 4

struct hc_device;
struct hc_quant_format;

typedef struct hc_tensor {
    const char *name;
    hc_dtype dtype;
    int n_dims;
    int64_t ne[HC_MAX_DIMS];     /* ne[0] is the contiguous (innermost) dimension, as in GGUF:
                                    a linear layer's weight has ne[0] = in, ne[1] = out */
    void *data;
    size_t nbytes;
    struct hc_device *device;    /* where data lives; NULL means plain host memory */
    const struct hc_quant_format *qfmt; /* the owning quant format when dtype == HC_PACKED */
} hc_tensor;

/* Elements per block of a standard type (1 for plain types), 0 for an unknown type. */
HC_API int hc_dtype_block_size(hc_dtype t);
/* Bytes per block of a standard type, 0 for an unknown type. */
HC_API size_t hc_dtype_block_bytes(hc_dtype t);
/* Bytes of a row of n elements (n must be a multiple of the block size), 0 on error. */
HC_API size_t hc_dtype_row_bytes(hc_dtype t, int64_t n);
HC_API const char *hc_dtype_name(hc_dtype t);
/* 1 when t is a standard type hcinfer can dequantize (see hc_dequantize_row). */
HC_API int hc_dtype_is_known(hc_dtype t);

HC_API int64_t hc_tensor_nelements(const hc_tensor *t);
/* Rows of a 2-D (or higher) tensor: the product of ne[1..]. */
HC_API int64_t hc_tensor_nrows(const hc_tensor *t);

/* Converts n elements (one row or several whole rows) of a standard type to f32. Reference code. */
HC_API void hc_dequantize_row(hc_dtype t, const void *src, float *dst, int64_t n);
/* Converts n floats (a multiple of 32) to Q8_0 blocks: per block d = max|x| / 127 (f16) and
 * q = round(x / d). Reference code. */
HC_API void hc_quantize_row_q8_0(const float *x, void *dst, int64_t n);

/* Half precision helpers (IEEE binary16 and bfloat16). */
HC_API float hc_f16_to_f32(uint16_t h);
HC_API uint16_t hc_f32_to_f16(float f);
HC_API float hc_bf16_to_f32(uint16_t h);
HC_API uint16_t hc_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
