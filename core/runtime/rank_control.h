/* rank_control.h: the dynamic-rank controller: after every step it lowers or raises the active
 * rank of each branch job so that its host time stays within a share (the host budget) of the
 * device time it overlaps with -- the host never stalls the device. */
#ifndef HC_RANK_CONTROL_H
#define HC_RANK_CONTROL_H

#include "hc/hc_api.h"

struct hc_context;

typedef struct hc_rank_control {
    double host_budget;     /* host time allowed per unit of overlapped device time (0: off) */
    int steps;              /* steps controlled so far */
    int n_jobs;             /* size of the arrays below (made at the first step; -1: out of memory) */
    int *probe_in;          /* per job: steps until a job switched off (rank 0) runs again at rank 1;
                               -1: that probe runs in this step */
    int *backoff;           /* per job: its wait before the next probe (8, 16, ... 256 steps) */
} hc_rank_control;

/* One control step over every branch job of the context (ranks of its stages change in place). */
void hc_rank_control_step(hc_rank_control *rc, struct hc_context *c);

void hc_rank_control_free(hc_rank_control *rc);

/* Mean and minimum active rank over the branches that are on, relative to their stored rank. */
HC_API void hc_rank_control_summary(const struct hc_context *c, double *mean_share, double *min_share, double *mean_rank);

#endif
