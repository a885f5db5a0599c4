/* host_pool.h: the host threads that run compensation branches asynchronously: a queue of jobs
 * the submitter does not wait for; every host thread takes part in every job, in order. */
#ifndef HC_HOST_POOL_H
#define HC_HOST_POOL_H

#include <stdatomic.h>
#include <stdint.h>

#include "threadpool.h"

typedef struct hc_host_pool hc_host_pool;

typedef struct hc_host_job {
    hc_pool_fn fn;            /* run as fn(ctx, ith, nth) on each host thread */
    void *ctx;
    atomic_uint pending;      /* host threads that have not finished it */
    atomic_uint done;         /* set by the last thread after the timings (futex word) */
    atomic_int waiter;        /* the submitter sleeps on done */
    uint64_t t_start_ns, t_end_ns; /* when thread 0 began and the last thread ended */
    hc_pool_error err;
} hc_host_job;

/* n_threads >= 1; cpus (optional) pins host thread i to cpus[i % n_cpus]. */
hc_status hc_host_pool_create(int n_threads, const int *cpus, int n_cpus, hc_host_pool **out);
void hc_host_pool_free(hc_host_pool *p);
int hc_host_pool_threads(const hc_host_pool *p);

/* Queues a job (its fn and ctx set by the caller) and returns at once. The job must stay alive
 * until hc_host_pool_wait returns for it. */
hc_status hc_host_pool_submit(hc_host_pool *p, hc_host_job *job);
/* Blocks until the job is done; returns its status (a thread's error message is raised here). */
hc_status hc_host_pool_wait(hc_host_pool *p, hc_host_job *job);
/* 1 when the job is done (no waiting). */
int hc_host_job_done(const hc_host_job *job);

/* Inside a job: waits until every host thread reached this point (between two phases). */
void hc_host_pool_barrier(hc_host_pool *p);

#endif
