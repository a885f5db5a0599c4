/* lowrank_apply_ref.c: the plain C reference of the low-rank branch kernels (down: t = A x,
 * up: y += B t) and the argument checks every implementation shares. */
#include <string.h>

#include "lowrank_apply.h"

int hc_branch_supports(hc_dtype t) { return t == HC_F32 || t == HC_F16 || t == HC_BF16 || t == HC_Q8_0; }

static const char *branch_name(const hc_branch *b) { return b->name ? b->name : "(unnamed)"; }

/* What down and up check alike: the branch itself and the active rank. */
static hc_status check_branch(const char *phase, const hc_branch *b, int rank, int n_tok)
{
    if (!b) return hc_error(HC_E_ARG, "branch %s: no branch given", phase);
    if (!hc_branch_supports(b->dtype))
        return hc_error(HC_E_ARG, "branch %s %s: storage type %s (%d) is not f32, f16, bf16 or q8_0", phase,
                        branch_name(b), hc_dtype_name(b->dtype), (int)b->dtype);
    if (b->in <= 0 || b->out <= 0 || b->rank < 0)
        return hc_error(HC_E_ARG, "branch %s %s: bad shape in %lld, out %lld, rank %d", phase, branch_name(b),
                        (long long)b->in, (long long)b->out, b->rank);
    if (b->dtype == HC_Q8_0 && (b->in % 32 || b->out % 32))
        return hc_error(HC_E_ARG, "branch %s %s: q8_0 factors need in and out multiples of 32, not %lld and %lld", phase,
                        branch_name(b), (long long)b->in, (long long)b->out);
    if (rank < 0 || rank > b->rank)
        return hc_error(HC_E_ARG, "branch %s %s: active rank %d is outside [0, %d]", phase, branch_name(b), rank,
                        b->rank);
    if (n_tok < 0) return hc_error(HC_E_ARG, "branch %s %s: negative token count %d", phase, branch_name(b), n_tok);
    return HC_OK;
}

hc_status hc_branch_check_down(const hc_branch *b, int rank, const float *x, int n_tok, const float *t,
                               int64_t ldt, int k0, int k1)
{
    hc_status st = check_branch("down", b, rank, n_tok);
    if (st != HC_OK) return st;
    if (k0 < 0 || k1 < k0 || k1 > rank)
        return hc_error(HC_E_ARG, "branch down %s: direction range [%d, %d) is outside the active rank %d",
                        branch_name(b), k0, k1, rank);
    if (n_tok == 0 || k0 == k1) return HC_OK;
    if (!b->a || !x || !t)
        return hc_error(HC_E_ARG, "branch down %s: missing %s", branch_name(b),
                        !b->a ? "matrix A" : !x ? "input x" : "output t");
    if (n_tok > 1 && ldt < k1)
        return hc_error(HC_E_ARG, "branch down %s: stride of t %lld is below the range end %d", branch_name(b),
                        (long long)ldt, k1);
    return HC_OK;
}

hc_status hc_branch_check_up(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok,
                             const float *y, int64_t ldy, int64_t o0, int64_t o1)
{
    hc_status st = check_branch("up", b, rank, n_tok);
    if (st != HC_OK) return st;
    if (o0 < 0 || o1 < o0 || o1 > b->out)
        return hc_error(HC_E_ARG, "branch up %s: output range [%lld, %lld) is outside [0, %lld)", branch_name(b),
                        (long long)o0, (long long)o1, (long long)b->out);
    if (n_tok == 0 || o0 == o1 || rank == 0) return HC_OK;
    if (!b->b || !t || !y)
        return hc_error(HC_E_ARG, "branch up %s: missing %s", branch_name(b),
                        !b->b ? "matrix B" : !t ? "input t" : "output y");
    if (n_tok > 1 && ldt < rank)
        return hc_error(HC_E_ARG, "branch up %s: stride of t %lld is below the active rank %d", branch_name(b),
                        (long long)ldt, rank);
    if (n_tok > 1 && ldy < o1)
        return hc_error(HC_E_ARG, "branch up %s: stride of y %lld is below the range end %lld", branch_name(b),
                        (long long)ldy, (long long)o1);
    return HC_OK;
}

/* Element i of a row stored as f32, f16, bf16 or q8_0 (block i / 32: f16 scale, then 32 int8). */
static float element(hc_dtype t, const void *row, int64_t i)
{
    uint16_t h;
    const char *blk = (const char *)row + (size_t)(i / 32) * 34;
    switch (t) {
    case HC_Q8_0: memcpy(&h, blk, 2); return hc_f16_to_f32(h) * (float)(int8_t)blk[2 + i % 32];
    case HC_F16: memcpy(&h, (const char *)row + 2 * i, 2); return hc_f16_to_f32(h);
    case HC_BF16: memcpy(&h, (const char *)row + 2 * i, 2); return hc_bf16_to_f32(h);
    default: return ((const float *)row)[i];
    }
}

hc_status hc_branch_down_ref(const hc_branch *b, int rank, const float *x, int n_tok, float *t, int64_t ldt,
                             int k0, int k1)
{
    hc_status st = hc_branch_check_down(b, rank, x, n_tok, t, ldt, k0, k1);
    if (st != HC_OK || n_tok == 0 || k0 == k1) return st;
    size_t row_bytes = hc_dtype_row_bytes(b->dtype, b->in);
    for (int j = 0; j < n_tok; j++) {
        const float *xj = x + (size_t)j * (size_t)b->in;
        for (int k = k0; k < k1; k++) {
            const char *row = (const char *)b->a + (size_t)k * row_bytes;
            double acc = 0.0;
            for (int64_t i = 0; i < b->in; i++) acc += (double)element(b->dtype, row, i) * (double)xj[i];
            t[(size_t)j * (size_t)ldt + (size_t)k] = (float)acc;
        }
    }
    return HC_OK;
}

hc_status hc_branch_up_ref(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                           int64_t ldy, int64_t o0, int64_t o1)
{
    hc_status st = hc_branch_check_up(b, rank, t, ldt, n_tok, y, ldy, o0, o1);
    if (st != HC_OK || n_tok == 0 || o0 == o1 || rank == 0) return st;
    size_t row_bytes = hc_dtype_row_bytes(b->dtype, b->out);
    for (int j = 0; j < n_tok; j++) {
        const float *tj = t + (size_t)j * (size_t)ldt;
        float *yj = y + (size_t)j * (size_t)ldy;
        for (int64_t o = o0; o < o1; o++) {
            double acc = 0.0;
            for (int k = 0; k < rank; k++)
                acc += (double)element(b->dtype, (const char *)b->b + (size_t)k * row_bytes, o) * (double)tj[k];
            yj[o] += (float)acc;
        }
    }
    return HC_OK;
}
