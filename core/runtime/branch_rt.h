/* branch_rt.h: the runtime of the compensation branches: groups the linear stages that share an
 * input into branch jobs, owns the host threads, and drives scheduler plugins through the step. */
#ifndef HC_BRANCH_RT_H
#define HC_BRANCH_RT_H

#include <stdint.h>

#include "hc/hc_comp.h"
#include "hc/hc_sched.h"

struct hc_context;
typedef struct hc_branch_rt hc_branch_rt;

/* How branches travel between a device with memory of its own and the host threads. */
typedef enum hc_handoff {
    HC_HANDOFF_AUTO = 0,  /* events */
    HC_HANDOFF_EVENTS,    /* the input by download_async, the host waiting for its event; the corrections by
                             upload_copyq after the host job is waited for, the compute queue waiting for
                             their event: driver calls on the host at each job's points of the step */
    HC_HANDOFF_FLAGS      /* publish and merge_when: the device sets and waits for flags in page-locked
                             memory, so the host enqueues a step without waiting for any job (the experts'
                             jobs keep the events) */
} hc_handoff;

/* Counters since the last reset (nanoseconds). */
typedef struct hc_branch_stats {
    uint64_t device_ns;       /* time in backbone stages (the device thread) */
    uint64_t host_ns;         /* time host threads spent on branch jobs (wall, per job) */
    uint64_t wait_ns;         /* time the device thread waited for the host (on a device timed with
                                 events: the device's own wait, in the timed_steps passes only) */
    uint64_t inline_ns;       /* time the device spent computing branches itself */
    uint64_t jobs, steps;
    uint64_t timed_steps;     /* passes whose device waits were measured (hc_branch_rt_device_timed) */
    uint64_t flops;           /* host branch FLOPs */
    uint64_t bytes_touched;   /* branch parameter bytes read (A and B at the active ranks, each branch
                                 once per step and job: of a MoE layer only the routed experts') */
} hc_branch_stats;

hc_status hc_branch_rt_create(struct hc_context *c, const hc_comp_ops *comp, int host_threads, const int *host_cpus,
                              int n_host_cpus, hc_handoff handoff, hc_branch_rt **out);
void hc_branch_rt_free(hc_branch_rt *r);

/* Registers a scheduler plugin instance; returns its index (>= 0) or -1 with an error set. */
HC_API int hc_branch_rt_add_scheduler(hc_branch_rt *r, const char *name, const hc_sched_ops *ops);
/* Makes every linear stage use scheduler `index`. */
HC_API void hc_branch_rt_use(hc_branch_rt *r, int index);
int hc_branch_rt_find_scheduler(const hc_branch_rt *r, const char *name); /* -1 when absent */
HC_API const char *hc_branch_rt_scheduler_name(const hc_branch_rt *r, int index);

/* The executor's hooks around stage i (rows: tokens in this pass), and at the end of a step. */
hc_status hc_branch_rt_before_stage(hc_branch_rt *r, int i, int rows);
hc_status hc_branch_rt_after_stage(hc_branch_rt *r, int i, uint64_t stage_ns);
/* 1 when, after before_stage(i), neither after_stage(i) nor before_stage(i + 1) would do anything (no job
 * ends at stage i or opens at i + 1, no correction waits for i + 1's buffers): the two stages may run as
 * one device op. */
int hc_branch_rt_joinable(const hc_branch_rt *r, int i);
hc_status hc_branch_rt_end_step(hc_branch_rt *r);
/* After the step's output was read from the device: the host jobs it did not wait for (flags) waited
 * for, their failures raised, and the device's patience checked. */
hc_status hc_branch_rt_step_done(hc_branch_rt *r);
/* Whether the expert jobs read a layer's routing from the device (the hand-off: the experts' ids come
 * down with the input), so that a layer with running expert branches may be routed there. */
int hc_branch_rt_reads_device_routing(const hc_branch_rt *r);

/* The last step's timings of a job (the jobs are numbered 0 .. n_jobs-1). */
typedef struct hc_job_times {
    uint64_t host_ns;         /* host threads' time on it */
    uint64_t wait_ns;         /* the device thread waited for it */
    uint64_t window_ns;       /* device-thread time from its input being ready to its output being needed */
    int ran;                  /* it had active branches in the last step */
} hc_job_times;

HC_API int hc_branch_rt_n_jobs(const hc_branch_rt *r);
HC_API void hc_branch_rt_job_times(const hc_branch_rt *r, int job, hc_job_times *out);
/* The linear stages of a job (returns their count, at most 4). */
int hc_branch_rt_job_stages(const hc_branch_rt *r, int job, int *stages);
/* The job a stage belongs to, or -1. */
HC_API int hc_branch_rt_job_of_stage(const hc_branch_rt *r, int stage);

/* A device without host memory whose events time it: after each step (its events done), the
 * device's time in the stages and its real waits and windows per job (see branch_rt.c). */
HC_API int hc_branch_rt_device_timed(const hc_branch_rt *r);
hc_status hc_branch_rt_device_times(hc_branch_rt *r, uint64_t step_device_ns);

HC_API void hc_branch_rt_stats(const hc_branch_rt *r, hc_branch_stats *out);
HC_API void hc_branch_rt_reset_stats(hc_branch_rt *r);
/* Sets a synthetic extra delay added to every host job (microseconds), to emulate a slow host. */
HC_API void hc_branch_rt_set_host_delay(hc_branch_rt *r, int us);
/* A synthetic slow host for benchmarks: host jobs take `factor` times their compute time (1: off). */
HC_API void hc_branch_rt_set_host_slowdown(hc_branch_rt *r, double factor);

#endif
