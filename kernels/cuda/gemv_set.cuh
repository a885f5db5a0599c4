/* gemv_set.cuh: a set of matrices that share their input x (q, k and v; gate and up) as one GEMV launch:
 * matrix m's blocks are start[m] .. start[m + 1) of the grid, as its own launch's would be 0 .. n_m. */
#ifndef HC_CUDA_GEMV_SET_CUH
#define HC_CUDA_GEMV_SET_CUH

#include "cuda_common.cuh"

#define HC_CU_SET_MAX 4

/* A kernel parameter, by value. */
typedef struct hc_cu_set {
    const uint8_t *w[HC_CU_SET_MAX];
    float *y[HC_CU_SET_MAX];
    int64_t rows[HC_CU_SET_MAX];
    unsigned start[HC_CU_SET_MAX + 1];
    int n;
} hc_cu_set;

/* Appends matrix w (rows rows, into y) with the blocks its own launch would have; s starts zeroed. */
static inline void hc_cu_set_add(hc_cu_set *s, const void *w, float *y, int64_t rows, unsigned blocks)
{
    s->w[s->n] = (const uint8_t *)w;
    s->y[s->n] = y;
    s->rows[s->n] = rows;
    s->start[s->n + 1] = s->start[s->n] + blocks;
    s->n++;
}

/* The grid's blocks in all. */
static inline unsigned hc_cu_set_blocks(const hc_cu_set *s) { return s->start[s->n]; }

#ifdef __cplusplus /* the .cu files (nvcc, or g++ on the emulator) */
/* This block's matrix of the set, and its block index within that matrix's blocks (constant indices:
 * the set stays in the parameter bank). */
static __device__ inline unsigned hc_cu_set_pick(const hc_cu_set &s, const uint8_t **w, float **y, int64_t *rows)
{
    unsigned b0 = 0;
    *w = s.w[0], *y = s.y[0], *rows = s.rows[0];
    HC_CU_UNROLL
    for (int m = 1; m < HC_CU_SET_MAX; m++)
        if (m < s.n && blockIdx.x >= s.start[m]) *w = s.w[m], *y = s.y[m], *rows = s.rows[m], b0 = s.start[m];
    return blockIdx.x - b0;
}
#endif

#endif
