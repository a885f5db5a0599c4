/* gptq_solve.h: the GPTQ column loop of the "gptq" plugin (Frantar et al. 2022, with act-order,
 * dampening, lazy batch updates and group grids chosen in processing order), apart from its vtable. */
#ifndef HC_GPTQ_SOLVE_H
#define HC_GPTQ_SOLVE_H

#include <stdint.h>

#include "hc/hc_status.h"
#include "qrtn.h"

/* Quantizes w (rows x n, row-major) under the Hessian h (n x n, a mean of x x^T) with the
 * options p: q[rows][n] receives the codes (in the columns' own order) and dm[rows][2 G] each
 * row's f16 scales then minimums (G = hc_qrtn_groups(p->group, n)), ready for hc_qrtn_write_row.
 *
 * Columns are quantized one at a time in processing order: by decreasing h_ii with act_order,
 * else left to right (inputs with h_ii = 0 are dead: their weights become 0, last in the order).
 * Each column's rounding error is spread over the columns not yet quantized through the Cholesky
 * factor of the dampened inverse Hessian, (H + damp mean(diag H) I)^-1 = U^T U; the updates reach
 * columns beyond the current block of p->block columns once per block (lazy batches), which
 * changes nothing but the order of float sums. A group's grid is chosen when its first column in
 * processing order comes up, from the current (updated) weights of all its columns, by min and max
 * or, with p->search, by hc_qrtn_grid_search weighted by h_ii. With h = I it is round-to-nearest. */
hc_status hc_gptq_solve(const hc_qrtn_params *p, const float *w, int64_t rows, int64_t n, const float *h, uint8_t *q,
                        uint16_t *dm);

#endif
