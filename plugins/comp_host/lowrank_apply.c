/* lowrank_apply.c: runtime dispatch of the low-rank branch kernels: the AVX-512 versions (f32,
 * f16, bf16) or the AVX2/FMA/F16C ones when the CPU has them, the plain reference otherwise. */
#include "lowrank_apply.h"

#include "hc/hc_cpu.h"

hc_status hc_branch_down(const hc_branch *b, int rank, const float *x, int n_tok, float *t, int64_t ldt,
                         int k0, int k1)
{
    if (!hc_cpu_has_avx2()) return hc_branch_down_ref(b, rank, x, n_tok, t, ldt, k0, k1);
    hc_status st = hc_branch_check_down(b, rank, x, n_tok, t, ldt, k0, k1);
    if (st != HC_OK || n_tok == 0 || k0 == k1) return st;
    if (hc_cpu_has_avx512() && hc_branch_avx512_has(b->dtype))
        hc_branch_down_avx512(b, x, n_tok, t, ldt, k0, k1);
    else
        hc_branch_down_avx2(b, x, n_tok, t, ldt, k0, k1);
    return HC_OK;
}

hc_status hc_branch_up(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                       int64_t ldy, int64_t o0, int64_t o1)
{
    if (!hc_cpu_has_avx2()) return hc_branch_up_ref(b, rank, t, ldt, n_tok, y, ldy, o0, o1);
    hc_status st = hc_branch_check_up(b, rank, t, ldt, n_tok, y, ldy, o0, o1);
    if (st != HC_OK || n_tok == 0 || o0 == o1 || rank == 0) return st;
    if (hc_cpu_has_avx512() && hc_branch_avx512_has(b->dtype))
        hc_branch_up_avx512(b, rank, t, ldt, n_tok, y, ldy, o0, o1);
    else
        hc_branch_up_avx2(b, rank, t, ldt, n_tok, y, ldy, o0, o1);
    return HC_OK;
}
