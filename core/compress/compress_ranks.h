/* compress_ranks.h: how the compressor spreads branch ranks over its jobs: before the work, the
 * uniform rank and each job's rank_max (and the policy loaded, so a broken one fails at once);
 * after every job is factored, the ranks written (uniform, or the Lua policy's answer, checked). */
#ifndef HC_COMPRESS_RANKS_H
#define HC_COMPRESS_RANKS_H

#include "compress_state.h"

/* The budget in bytes (budget percent of the backbone). */
uint64_t hc_compress_budget_bytes(const hc_compress_state *cs);
/* The uniform rank, each job's rank_max (--rank-max, or min(in, out, max(4 x uniform, 64))),
 * n_dirs and branch type; loads the policy script. */
hc_status hc_compress_plan_ranks(hc_compress_state *cs);
/* The ranks written, once every job has its spectrum and gains. */
hc_status hc_compress_choose_ranks(hc_compress_state *cs);
void hc_compress_policy_free(hc_compress_state *cs);

#endif
