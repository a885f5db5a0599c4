/* threadpool.h: a fork-join pool of compute threads (the caller is thread 0). Workers spin
 * briefly between jobs and then sleep on a futex, so small ops pay little to dispatch. */
#ifndef HC_THREADPOOL_H
#define HC_THREADPOOL_H

#include "hc/hc_status.h"

typedef struct hc_pool hc_pool;

/* Runs once on every thread of the pool: ith in [0, nth). */
typedef void (*hc_pool_fn)(void *ctx, int ith, int nth);

/* n_threads includes the calling thread (1 = no workers). cpus: optional list of CPU ids to pin
 * thread i to cpus[i % n_cpus] (NULL = no pinning). */
hc_status hc_pool_create(int n_threads, const int *cpus, int n_cpus, hc_pool **out);
void hc_pool_free(hc_pool *p);
int hc_pool_threads(const hc_pool *p);

/* Runs fn on all threads and returns when every thread has finished. Not reentrant. */
void hc_pool_run(hc_pool *p, hc_pool_fn fn, void *ctx);

/* Splits [0, n) into nth nearly equal parts aligned to `align`; the part of thread ith. */
void hc_split_range(long n, int ith, int nth, long align, long *begin, long *end);

/* The first failure among the threads of a pool job: hc_error's message is per thread, so a
 * worker's message is copied here and raised again in the caller. */
typedef struct hc_pool_error {
    _Atomic int status;     /* hc_status; HC_OK while nothing failed */
    char message[1024];
} hc_pool_error;

/* Records st with the calling thread's hc_last_error() unless a failure was recorded before. */
void hc_pool_error_set(hc_pool_error *e, hc_status st);
/* In the caller after hc_pool_run: HC_OK, or the recorded status with its message set again. */
hc_status hc_pool_error_raise(hc_pool_error *e);

/* A barrier inside one pool job: every thread of the job calls hc_pool_barrier_wait once, and
 * none returns before all nth have called it. Zero it before hc_pool_run (single use). */
typedef struct hc_pool_barrier {
    _Atomic int arrived;
} hc_pool_barrier;

void hc_pool_barrier_wait(hc_pool_barrier *b, int nth);

/* Pins the calling thread to one CPU (no-op when cpu < 0). */
void hc_pin_thread(int cpu);

#endif
