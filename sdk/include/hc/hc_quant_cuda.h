/* hc_quant_cuda.h: what a quant plugin's device_kernels(params, "cuda") returns: the CUDA kernels of
 * its packed format, which the cuda device launches on its stream (no CUDA header needed here). */
#ifndef HC_QUANT_CUDA_H
#define HC_QUANT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raised whenever this table changes; the cuda device refuses a table of another version. */
#define HC_QUANT_CUDA_ABI 4u
/* The most matrices gemv_set takes at once. */
#define HC_QUANT_CUDA_SET_MAX 4

/* Every pointer but params is device memory; stream is a cudaStream_t. A kernel returns the
 * cudaError_t of its launch (0: enqueued). The kernels must be built against the same CUDA runtime
 * as the device (the shared libcudart), so that streams and errors mean the same to both. */
typedef struct hc_quant_cuda_kernels {
    uint32_t abi;              /* HC_QUANT_CUDA_ABI */
    const char *name;          /* the kernels' name for messages ("qrtn") */
    int max_fused_tokens;      /* gemv takes 1 .. this many tokens in one pass over the weights */
    /* 0 when a rows x cols weight can be read by these kernels, else nonzero */
    int (*check)(const void *params, int64_t rows, int64_t cols);
    /* y[t * rows + o] = sum_i W[o][i] x[t * cols + i] for o < rows, t < n_tok (1 .. max_fused_tokens):
       the weights are read once, dequantized in registers (decode) */
    int (*gemv)(const void *params, void *stream, const void *w, int64_t cols, int64_t rows, const float *x,
                int n_tok, float *y);
    /* out[r][0 .. cols) = row (ids ? ids[r] : row0 + r) of W for r < n_rows, as f32 (out_f16 0) or
       as IEEE f16 (out_f16 1): embeddings, and tiles for a GEMM on many tokens (prefill) */
    int (*dequant_rows)(const void *params, void *stream, const void *w, int64_t cols, const int32_t *ids,
                        int64_t row0, int n_rows, void *out, int out_f16);
    /* since version 2, optional (NULL: experts in this format are routed through the host): the routed
       experts' GEMVs, y[r * rows + o] = sum_i W_e[o][i] x[(r / x_div) * cols + i] for r < n_rows, with
       e = ids[r] and W_e the slice at w + e * slice (bytes) */
    int (*gemv_id)(const void *params, void *stream, const void *w, size_t slice, const int32_t *ids, int64_t cols,
                   int64_t rows, const float *x, int x_div, int n_rows, float *y);
    /* since version 3, optional (NULL: gemv and gemv_id only): gemv and gemv_id with x quantized to int8 on
       the way, in blocks of 32 (x[i] ~ d q[i], d = max |x| / 127, q in [-127, 127]), as the device's GEMVs
       of GGUF's block types take x; the device calls these when HC_CUDA_GEMV_INT8 asks for x in int8 (its
       default) */
    int (*gemv_q8)(const void *params, void *stream, const void *w, int64_t cols, int64_t rows, const float *x,
                   int n_tok, float *y);
    int (*gemv_id_q8)(const void *params, void *stream, const void *w, size_t slice, const int32_t *ids, int64_t cols,
                      int64_t rows, const float *x, int x_div, int n_rows, float *y);
    /* since version 4, optional (NULL: a gemv each): y[m][o] = sum_i W_m[o][i] x[i] for o < rows[m] and
       m < n (1 .. HC_QUANT_CUDA_SET_MAX), one token, the matrices w[m] (of these params, cols each)
       sharing x: q, k and v, or gate and up, in one launch, each y[m] as gemv (q8 0) or gemv_q8 (q8 1)
       gives it. w, rows and y are host arrays of device pointers and counts. */
    int (*gemv_set)(const void *params, void *stream, int n, const void *const *w, const int64_t *rows, int64_t cols,
                    const float *x, float *const *y, int q8);
} hc_quant_cuda_kernels;

#ifdef __cplusplus
}
#endif
#endif
