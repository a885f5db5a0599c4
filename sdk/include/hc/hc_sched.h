/* hc_sched.h: the vtable of an overlap-scheduler plugin (kind HC_PLUGIN_SCHED): it decides when
 * and where each branch job runs relative to the backbone, through the runtime's callbacks. */
#ifndef HC_SCHED_H
#define HC_SCHED_H

#include <stdint.h>

#include "hc/hc_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A branch job: the compensation branches of the linear stages that share one input (q/k/v,
 * gate/up, o, down, the output head) for the current batch. Opaque to schedulers. */
typedef struct hc_branch_job hc_branch_job;

typedef struct hc_job_info {
    const char *name;          /* "blk.3.attn_qkv" */
    int layer;                 /* -1 outside the layers */
    int n_branches;
    int n_tok;
    uint64_t flops;            /* host work of this job at the active ranks */
    uint64_t last_host_ns;     /* host time of this job at the previous step (0: none yet) */
    uint64_t last_device_ns;   /* device time of its backbone stages at the previous step */
    int host_busy;             /* jobs submitted to the host and not yet done */
} hc_job_info;

/* What the runtime lets a scheduler do with a job. Each job must be merged exactly once, at the
 * latest when output_needed returns; the runtime refuses a scheduler that fails to. */
typedef struct hc_sched_runtime {
    void *rt;
    /* copy the job's input to the host and compute it on the host threads, waiting for it */
    hc_status (*run)(void *rt, hc_branch_job *job);
    /* the same without waiting: the host threads start it now */
    hc_status (*submit)(void *rt, hc_branch_job *job);
    /* block until a submitted job is done */
    hc_status (*wait)(void *rt, hc_branch_job *job);
    /* add the computed correction into the job's stage outputs on the device */
    hc_status (*merge)(void *rt, hc_branch_job *job);
    /* compute the job with the device's own ops instead of the host, and merge it */
    hc_status (*run_on_device)(void *rt, hc_branch_job *job);
    /* facts about the job for the decision */
    void (*info)(void *rt, const hc_branch_job *job, hc_job_info *out);
} hc_sched_runtime;

typedef struct hc_sched_ops {
    hc_status (*create)(const hc_sched_runtime *rt, void **state);
    void (*destroy)(void *state);
    /* the job's input is ready on the device; its backbone ops come next */
    hc_status (*input_ready)(void *state, hc_branch_job *job);
    /* the backbone ops of the job's stages have been issued */
    hc_status (*backbone_done)(void *state, hc_branch_job *job);
    /* a stage is about to read or overwrite an output of the job (or the step ends) */
    hc_status (*output_needed)(void *state, hc_branch_job *job);
} hc_sched_ops;

#ifdef __cplusplus
}
#endif
#endif
