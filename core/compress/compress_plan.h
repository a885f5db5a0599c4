/* compress_plan.h: what the compressor will do, fixed before any work: a job per linear layer the
 * format can hold (the rest kept as stored), the backbone's size, the branches' storage per job. */
#ifndef HC_COMPRESS_PLAN_H
#define HC_COMPRESS_PLAN_H

#include "compress_state.h"

/* Lists the jobs (dense layers, experts, the head with --head-quant) and the backbone's size. */
hc_status hc_compress_plan(hc_compress_state *cs);
/* The storage of a job's branch: the requested type, but f16 for q8_0 where a width is not a
 * multiple of 32 (q8_0 rows are blocks of 32). */
hc_dtype hc_compress_branch_dtype(const hc_compress_job *j, hc_dtype requested);
/* Bytes of one direction of a job's branch (a row of A, a row of B and its sigma). */
size_t hc_compress_branch_cost(const hc_compress_job *j, hc_dtype requested);
/* The job of a weight; of a 3-D expert tensor, its first expert's (the experts' jobs follow it in order). */
hc_compress_job *hc_compress_job_of(const hc_compress_state *cs, const char *name);
/* A job's f32 weights [out][in] while its layer is open (compress_source.h); NULL otherwise. */
const float *hc_compress_job_weights(const hc_compress_job *j);

#endif
