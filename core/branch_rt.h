/* branch_rt.h: the runtime of the compensation branches: groups the linear stages that share an
 * input into branch jobs, owns the host threads, and drives scheduler plugins through the step. */
#ifndef HC_BRANCH_RT_H
#define HC_BRANCH_RT_H

#include <stdint.h>

#include "hc/hc_comp.h"
#include "hc/hc_sched.h"

struct hc_context;
typedef struct hc_branch_rt hc_branch_rt;

/* Counters since the last reset (nanoseconds). */
typedef struct hc_branch_stats {
    uint64_t device_ns;       /* time in backbone stages (the device thread) */
    uint64_t host_ns;         /* time host threads spent on branch jobs (wall, per job) */
    uint64_t wait_ns;         /* time the device thread waited for the host */
    uint64_t inline_ns;       /* time the device spent computing branches itself */
    uint64_t jobs, steps;
    uint64_t flops;           /* host branch FLOPs */
} hc_branch_stats;

hc_status hc_branch_rt_create(struct hc_context *c, const hc_comp_ops *comp, int host_threads, const int *host_cpus,
                              int n_host_cpus, hc_branch_rt **out);
void hc_branch_rt_free(hc_branch_rt *r);

/* Registers a scheduler plugin instance; returns its index (>= 0) or -1 with an error set. */
int hc_branch_rt_add_scheduler(hc_branch_rt *r, const char *name, const hc_sched_ops *ops);
/* Makes every linear stage use scheduler `index`. */
void hc_branch_rt_use(hc_branch_rt *r, int index);
int hc_branch_rt_find_scheduler(const hc_branch_rt *r, const char *name); /* -1 when absent */
const char *hc_branch_rt_scheduler_name(const hc_branch_rt *r, int index);

/* The executor's hooks around stage i (rows: tokens in this pass), and at the end of a step. */
hc_status hc_branch_rt_before_stage(hc_branch_rt *r, int i, int rows);
hc_status hc_branch_rt_after_stage(hc_branch_rt *r, int i, uint64_t stage_ns);
hc_status hc_branch_rt_end_step(hc_branch_rt *r);

void hc_branch_rt_stats(const hc_branch_rt *r, hc_branch_stats *out);
void hc_branch_rt_reset_stats(hc_branch_rt *r);
/* Sets a synthetic extra delay added to every host job (microseconds), to emulate a slow host. */
void hc_branch_rt_set_host_delay(hc_branch_rt *r, int us);

#endif
