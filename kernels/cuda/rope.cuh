/* rope.cuh: the RoPE kernel's index arithmetic and angle: one block per (token, head), each thread
 * rotates pairs i, i + threads, ... of the first n_rot dims, in the adjacent (norm) or halves (neox) layout. */
#ifndef HC_CUDA_ROPE_CUH
#define HC_CUDA_ROPE_CUH

#include "cuda_common.cuh"

#define HC_CU_ROPE_THREADS 64
#define HC_CU_ROPE_NEOX 2   /* hc_rope_mode's HC_ROPE_NEOX */

/* Blocks are (token, head) pairs flattened on x, so a batch of any size fits the grid. */
static inline HC_CU_HD hc_cu_launch hc_cu_rope_geometry(int n_tok, int n_head)
{
    return hc_cu_launch_1d((unsigned)((size_t)n_tok * (size_t)n_head), HC_CU_ROPE_THREADS, 0);
}

static inline HC_CU_HD void hc_cu_rope_block(unsigned block, int n_head, int *t, int *h)
{
    *t = (int)(block / (unsigned)n_head);
    *h = (int)(block % (unsigned)n_head);
}

/* Position of token t: pos[t] when the positions were uploaded, else pos0 + t (consecutive). */
static inline HC_CU_HD int hc_cu_rope_pos(const int32_t *pos, int pos0, int t) { return pos ? pos[t] : pos0 + t; }

/* The two dims pair i (0 <= i < n_rot/2) rotates. */
static inline HC_CU_HD void hc_cu_rope_pair(int mode, int i, int half, int *a, int *b)
{
    if (mode == HC_CU_ROPE_NEOX) {
        *a = i;
        *b = i + half;
    } else {
        *a = 2 * i;
        *b = 2 * i + 1;
    }
}

/* pos * theta^(-2i/n_rot), in double as the CPU's table is (large positions keep their precision). */
static inline HC_CU_HD double hc_cu_rope_angle(int pos, int i, int n_rot, float theta)
{
    return (double)pos * pow((double)theta, -2.0 * i / n_rot);
}

static inline HC_CU_HD void hc_cu_rope_rotate(float *v, int a, int b, float c, float s)
{
    float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
}

/* Everything thread tid of block (t, h) does; x is [n_tok][n_head][head_dim]. */
static inline HC_CU_HD void hc_cu_rope_thread(float *x, int t, int h, int tid, int n_threads, int n_head, int head_dim,
                                              int n_rot, int p, float theta, int mode)
{
    float *v = x + ((size_t)t * n_head + h) * head_dim;
    int half = n_rot / 2;
    for (int i = tid; i < half; i += n_threads) {
        int a, b;
        hc_cu_rope_pair(mode, i, half, &a, &b);
        double ang = hc_cu_rope_angle(p, i, n_rot, theta);
        hc_cu_rope_rotate(v, a, b, (float)cos(ang), (float)sin(ang));
    }
}

#endif
