/* compress_moe.h: the compressor's view of a mixture-of-experts model: every expert's gate, up and
 * down is a linear layer (a job) of its own, on a 2-D view of its slice of the 3-D tensor. */
#ifndef HC_COMPRESS_MOE_H
#define HC_COMPRESS_MOE_H

#include "compress_state.h"

/* How many expert jobs the model has. */
int hc_compress_expert_job_count(const hc_model *m);
/* Appends one job per expert and projection (expert = its index, parent = the 3-D tensor). */
hc_status hc_compress_plan_experts(hc_compress_state *cs);
void hc_compress_experts_free(hc_compress_state *cs);

#endif
