/* qrtn_cuda_api.h: the entry point of hc-qrtn-cuda.so, the CUDA kernels of the rtn/gptq packed format,
 * which the rtn and gptq plugins load on demand (a plugin without CUDA loads on any machine). */
#ifndef HC_QRTN_CUDA_API_H
#define HC_QRTN_CUDA_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HC_QRTN_CUDA_API 5u
#define HC_QRTN_CUDA_LIB "hc-qrtn-cuda.so"        /* in kernels/ beside the plugin */
#define HC_QRTN_CUDA_ENTRY "hc_qrtn_cuda_entry"
#define HC_QRTN_CUDA_SET_MAX 4                    /* gemv_set's most matrices: HC_QUANT_CUDA_SET_MAX */

/* The format's parameters travel as plain ints (bits 2/3/4/8, group 32/64/128); the rest as in
 * hc_quant_cuda_kernels (hc/hc_quant_cuda.h): device pointers, a cudaStream_t, cudaError_t results. */
typedef struct hc_qrtn_cuda_api {
    uint32_t api;               /* HC_QRTN_CUDA_API */
    int max_fused_tokens;
    int (*gemv)(int bits, int group, void *stream, const void *w, int64_t cols, int64_t rows, const float *x, int n_tok,
                float *y);
    int (*dequant_rows)(int bits, int group, void *stream, const void *w, int64_t cols, const int32_t *ids, int64_t row0,
                        int n_rows, void *out, int out_f16);
    int (*gemv_id)(int bits, int group, void *stream, const void *w, size_t slice, const int32_t *ids, int64_t cols,
                   int64_t rows, const float *x, int x_div, int n_rows, float *y);
    /* gemv's and gemv_id's plain kernel (a byte a lane), which their wide one is compared with in tests
       and benchmarks (HC_QRTN_CUDA_GEMV=plain makes the plugins use it) */
    int (*gemv_plain)(int bits, int group, void *stream, const void *w, int64_t cols, int64_t rows, const float *x,
                      int n_tok, float *y);
    int (*gemv_id_plain)(int bits, int group, void *stream, const void *w, size_t slice, const int32_t *ids, int64_t cols,
                         int64_t rows, const float *x, int x_div, int n_rows, float *y);
    /* gemv's and gemv_id's wide kernels with x quantized to int8 on the way (hc_quant_cuda.h's gemv_q8; x in
       f32 for a row's tail units, and where its codes would not fit the shared memory) */
    int (*gemv_q8)(int bits, int group, void *stream, const void *w, int64_t cols, int64_t rows, const float *x, int n_tok,
                   float *y);
    int (*gemv_id_q8)(int bits, int group, void *stream, const void *w, size_t slice, const int32_t *ids, int64_t cols,
                      int64_t rows, const float *x, int x_div, int n_rows, float *y);
    /* hc_quant_cuda.h's gemv_set: the wide gemv (q8 1: gemv_q8) of n <= HC_QUANT_CUDA_SET_MAX matrices
       sharing x, one token, in one launch */
    int (*gemv_set)(int bits, int group, void *stream, int n, const void *const *w, const int64_t *rows, int64_t cols,
                    const float *x, float *const *y, int q8);
} hc_qrtn_cuda_api;

typedef const hc_qrtn_cuda_api *(*hc_qrtn_cuda_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
