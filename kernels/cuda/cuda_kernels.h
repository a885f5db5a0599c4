/* cuda_kernels.h: the C entry points of the CUDA kernels (the .cu files beside it) that the cuda device
 * plugin calls. Each enqueues its kernel on the stream and returns the launch's cudaError_t. */
#ifndef HC_CUDA_KERNELS_H
#define HC_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "hc/hc_device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[r][0..width) = row (ids ? ids[r] : row0 + r) of w, dequantized to f32 (out_f16 0) or to IEEE
 * f16 rounded to nearest even (out_f16 1), for r < n_rows. w: rows of row_bytes bytes of type dtype
 * (hc_cu_dtype_supported); ids: device memory or NULL. */
cudaError_t hc_cu_dequant_rows(cudaStream_t s, int dtype, const void *w, size_t row_bytes, int64_t width,
                               const int32_t *ids, int64_t row0, int n_rows, void *out, int out_f16);

/* y[o] = sum_k W[o][k] x[k] for o < out (one token). warp_rows: the rows a warp holds where block types
 * are read by runs, 1 or HC_CU_GEMV_RUN_ROWS (dequant.cuh; other values: cudaErrorInvalidValue). xq:
 * NULL (x as floats), or device memory of hc_cu_q8x_bytes(1, in) bytes (16-byte aligned) where block
 * types read by runs quantize x to int8 first, as the cpu device does (dequant.cuh). */
cudaError_t hc_cu_gemv(cudaStream_t s, int dtype, const void *w, size_t row_bytes, int64_t in, int64_t out,
                       const float *x, float *y, int warp_rows, void *xq);

/* hc_cu_gemv of n (1 .. HC_CU_GEMV_SET_MAX) matrices of one type and width sharing x in one launch
 * (x quantized once where xq is given): y[m][o] = sum_k W_m[o][k] x[k] for o < out[m]; w, out and y are
 * host arrays (of device pointers). Each y[m] is what hc_cu_gemv gives for its matrix, bit for bit where
 * all the matrices meet the alignment of the kernel by runs as each does. Misaligned, or a block type a
 * row a warp (warp_rows 1): a launch a matrix. */
#define HC_CU_GEMV_SET_MAX 4 /* gemv_set.cuh's HC_CU_SET_MAX */
cudaError_t hc_cu_gemv_set(cudaStream_t s, int dtype, int n, const void *const *w, size_t row_bytes, int64_t in,
                           const int64_t *out, const float *x, float *const *y, int warp_rows, void *xq);

/* y[r][o] = sum_k W_e[o][k] x[r / x_div][k] for o < out, r < n_rows, e = ids[r] (device memory): the
 * routed experts' GEMVs, W_e at w + e slice (bytes); warp_rows as hc_cu_gemv's, xq too but of
 * hc_cu_q8x_bytes((n_rows - 1) / x_div + 1, in) bytes. */
cudaError_t hc_cu_gemv_id(cudaStream_t s, int dtype, const void *w, size_t slice, const int32_t *ids, size_t row_bytes,
                          int64_t in, int64_t out, const float *x, int x_div, float *y, int n_rows, int warp_rows, void *xq);

/* Per token t < n_tok: softmax of logits[t][0 .. n_expert), its k best experts (ties: the lower index)
 * into ids[t k + j] with their probabilities in weights[t k + j], divided by their sum when norm
 * (n_expert <= HC_CU_MOE_MAX_EXPERTS, k <= HC_CU_MOE_MAX_K). */
cudaError_t hc_cu_moe_topk(cudaStream_t s, const float *logits, int n_tok, int n_expert, int k, int norm, int32_t *ids,
                           float *weights);
/* The routed rows r < n_rows sorted by their expert ids[r] (< n_expert <= HC_CU_MOE_MAX_EXPERTS),
 * stably, rows of an id out of range last: position p holds row order[p], of expert sorted_ids[p],
 * reading row src_rows[p] = order[p] / x_div of the input. So the GEMVs by id of a long pass run the
 * rows of an expert one after another, its weights read from memory once and then from the cache. */
cudaError_t hc_cu_moe_sort(cudaStream_t s, const int32_t *ids, int n_rows, int n_expert, int x_div, int32_t *order,
                           int32_t *sorted_ids, int32_t *src_rows);
/* dst[order[p]][c] = src[p][c] for p < n_rows, c < width: sorted rows put back (order a permutation) */
cudaError_t hc_cu_scatter_rows(cudaStream_t s, const float *src, const int32_t *order, int n_rows, int width, float *dst);
/* out[t][c] = sum_j weights[t k + j] y[t k + j][c] for t < n_tok, c < width */
cudaError_t hc_cu_moe_combine(cudaStream_t s, const float *y, const float *weights, int n_tok, int k, int width, float *out);

/* *flag = seq (page-locked host memory) once the stream's work before it is done */
cudaError_t hc_cu_set_flag(cudaStream_t s, uint32_t *flag, uint32_t seq);
/* the stream's later work waits until *flag (page-locked, set by the host) reaches seq in serial-number
 * order; after patience_ns, *err = 1 and the stream goes on (at once when *err is 1 already: the step failed) */
cudaError_t hc_cu_wait_flag(cudaStream_t s, const uint32_t *flag, uint32_t seq, uint32_t *err, uint64_t patience_ns);
/* The hand-off of up to HC_CU_HANDOFF_KERNEL_MAX floats in one kernel each, no copy on the copy engine:
 * publish writes host_dst[0 .. n) (page-locked) = src from one block of HC_CU_PUBLISH_THREADS, then sets
 * *flag = seq; wait_add_set waits as wait_flag (flag NULL: not at all; any block also stops once *err is
 * set), then y[k][i] += host_src[o_k + i] for i < len[k], k < n (1 .. HC_CU_ADD_SET_MAX; o_k the lengths
 * before k; y and len host arrays) read from page-locked memory, in at most HC_CU_WAIT_ADD_MAX_BLOCKS
 * blocks (each polls the flag): merge_when's add (n 1), or a branch job's corrections. Longer arrays (a
 * prompt's rows) take the copy engine: a copy and set_flag, wait_flag, a copy and add. */
#define HC_CU_HANDOFF_KERNEL_MAX 65536
#define HC_CU_PUBLISH_THREADS 512
#define HC_CU_WAIT_ADD_MAX_BLOCKS 32u
cudaError_t hc_cu_publish(cudaStream_t s, float *host_dst, const float *src, size_t n, uint32_t *flag, uint32_t seq);
cudaError_t hc_cu_wait_add_set(cudaStream_t s, int n, float *const *y, const float *host_src, const size_t *len,
                               const uint32_t *flag, uint32_t seq, uint32_t *err, uint64_t patience_ns);
/* wait_add_set folded into the kernel that reads its outputs first, no launch of its own: that kernel's
 * blocks wait for flag as wait_add_set's (flag NULL: not at all), then each adds y[k][i] += src[k][i]
 * (page-locked, volatile loads) to the elements of the op's input k that it reads, before reading them,
 * and writes them back. The inputs in the op's order (add_rmsnorm: r; swiglu: gate, up; rope_store: q,
 * k, v); y[k] is input k's buffer (writable), src[k] NULL: no correction for it. */
#define HC_CU_MERGE_MAX 3
typedef struct hc_cu_merge {
    float *y[HC_CU_MERGE_MAX];
    const float *src[HC_CU_MERGE_MAX];
    const uint32_t *flag;
    uint32_t seq;
    uint32_t *err;
    uint64_t patience_ns;
} hc_cu_merge;
/* publish folded into the kernel that makes the array (no launch of its own): that kernel writes its
 * output into host_dst (page-locked) too, and the last of its blocks to finish sets *flag = seq after
 * all the blocks' writes (count: device memory, 0 before the launch and again after it). */
typedef struct hc_cu_publish_to {
    float *host_dst;
    uint32_t *flag;
    uint32_t seq;
    uint32_t *count;
} hc_cu_publish_to;

/* y[t] = rmsnorm(x[t]) * w, for t < n_tok; p: NULL, or y published (hc_cu_publish_to) */
cudaError_t hc_cu_rmsnorm(cudaStream_t s, const float *x, const float *w, float *y, int n_tok, int dim, float eps,
                          const hc_cu_publish_to *p);
/* x[t] += r[t], then y[t] = rmsnorm(x[t]) * w, for t < n_tok (y may equal x or r); m: NULL, or r's
 * corrections (hc_cu_merge); p: NULL, or y published (hc_cu_publish_to) */
cudaError_t hc_cu_add_rmsnorm(cudaStream_t s, float *x, const float *r, const float *w, float *y, int n_tok, int dim, float eps,
                              const hc_cu_merge *m, const hc_cu_publish_to *p);

/* pos: device memory [n_tok], or NULL for the consecutive positions pos0, pos0 + 1, ... */
cudaError_t hc_cu_rope(cudaStream_t s, float *x, int n_tok, int n_head, int head_dim, int n_rot, const int32_t *pos,
                       int pos0, float theta, int mode);
/* rope of q (n_head heads a token) and of k (n_head_kv; none when k is NULL) at the same positions, one launch */
cudaError_t hc_cu_rope_qk(cudaStream_t s, float *q, float *k, int n_tok, int n_head, int n_head_kv, int head_dim, int n_rot,
                          const int32_t *pos, int pos0, float theta, int mode);
/* hc_cu_rope_qk of q and k (n_head_kv >= 1), then k's and v's n_tok x n_head_kv x head_dim values stored into
 * k_dst and v_dst, f32 or (kv_f16 1) f16: RoPE and the KV cache's rows in one launch; m: NULL, or q's,
 * k's and v's corrections (hc_cu_merge) */
cudaError_t hc_cu_rope_store(cudaStream_t s, float *q, float *k, const float *v, int n_tok, int n_head, int n_head_kv,
                             int head_dim, int n_rot, const int32_t *pos, int pos0, float theta, int mode, void *k_dst,
                             void *v_dst, int kv_f16, const hc_cu_merge *m);

/* a's pointers are device memory; head_dim <= HC_CU_ATTN_MAX_DIM (the caller checks). The keys are
 * cut into n_splits (1 .. HC_CU_ATTN_MAX_SPLITS, hc_cu_attn_n_splits) merged by a second kernel;
 * scratch: device memory of hc_cu_attn_scratch_floats floats when n_splits > 1, else unused; p: NULL, or
 * the output published (hc_cu_publish_to). */
cudaError_t hc_cu_attention(cudaStream_t s, const hc_attn_args *a, int n_splits, float *scratch, const hc_cu_publish_to *p);

/* m: NULL, or gate's and up's corrections (hc_cu_merge; then in at most HC_CU_WAIT_ADD_MAX_BLOCKS blocks);
 * p: NULL, or out published (hc_cu_publish_to) */
cudaError_t hc_cu_swiglu(cudaStream_t s, const float *gate, const float *up, float *out, size_t n, const hc_cu_merge *m,
                         const hc_cu_publish_to *p);
cudaError_t hc_cu_geglu(cudaStream_t s, const float *gate, const float *up, float *out, size_t n);
cudaError_t hc_cu_add(cudaStream_t s, float *y, const float *x, size_t n);
/* y[k][i] += x[o_k + i] for i < len[k], k < n (1 .. HC_CU_ADD_SET_MAX), o_k the lengths before k; y and len
 * host arrays: a branch job's packed corrections added into its stages' outputs in one launch */
#define HC_CU_ADD_SET_MAX 4
cudaError_t hc_cu_add_set(cudaStream_t s, int n, float *const *y, const float *x, const size_t *len);
cudaError_t hc_cu_add_bias(cudaStream_t s, float *y, const float *b, int n_tok, int width);
/* y[t][i] *= sigmoid(g[t]) */
cudaError_t hc_cu_gate_rows(cudaStream_t s, float *y, const float *g, int n_tok, int width);
cudaError_t hc_cu_scale(cudaStream_t s, float *x, size_t n, float f);
/* y (n IEEE f16) = x rounded to nearest even: rows of an f16 KV cache */
cudaError_t hc_cu_to_f16(cudaStream_t s, const float *x, void *y, size_t n);
/* y (n IEEE f16) = x / s rounded to nearest even, s = hc_cu_f16_input_scale(max |x|): the activations
 * of a tensor-core GEMM. consts: HC_CU_F16_CONSTS floats of device memory; [1] gets s. */
cudaError_t hc_cu_to_f16_scaled(cudaStream_t s, const float *x, size_t n, void *y, float *consts);
/* y[i] *= consts[1] for i < n (the s of hc_cu_to_f16_scaled, read on the device; exact: a power of two) */
cudaError_t hc_cu_scale_by(cudaStream_t s, float *y, size_t n, const float *consts);

#ifdef __cplusplus
}
#endif
#endif
