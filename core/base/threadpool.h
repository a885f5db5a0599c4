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
HC_API hc_status hc_pool_create(int n_threads, const int *cpus, int n_cpus, hc_pool **out);
HC_API void hc_pool_free(hc_pool *p);
HC_API int hc_pool_threads(const hc_pool *p);

/* Runs fn on all threads and returns when every thread has finished. Not reentrant. */
HC_API void hc_pool_run(hc_pool *p, hc_pool_fn fn, void *ctx);

/* As hc_pool_run, for a job whose work the threads share dynamically, so that the calling thread
 * alone would finish it (hc_row_share): a worker that has not joined by the time the caller's own
 * call returns skips the job, and the caller waits only for the workers that joined. On a busy
 * machine a descheduled worker then costs nothing, instead of holding the join until it runs.
 * fn must not use nth to divide fixed parts of the work, nor wait for other threads. */
HC_API void hc_pool_run_shared(hc_pool *p, hc_pool_fn fn, void *ctx);

/* Splits [0, n) into nth nearly equal parts aligned to `align`; the part of thread ith. */
HC_API void hc_split_range(long n, int ith, int nth, long align, long *begin, long *end);

/* The first failure among the threads of a pool job: hc_error's message is per thread, so a
 * worker's message is copied here and raised again in the caller. */
typedef struct hc_pool_error {
    _Atomic int status;     /* hc_status; HC_OK while nothing failed */
    char message[1024];
} hc_pool_error;

/* Records st with the calling thread's hc_last_error() unless a failure was recorded before. */
HC_API void hc_pool_error_set(hc_pool_error *e, hc_status st);
/* In the caller after hc_pool_run: HC_OK, or the recorded status with its message set again. */
HC_API hc_status hc_pool_error_raise(hc_pool_error *e);

/* A barrier inside one pool job: every thread of the job calls hc_pool_barrier_wait once, and
 * none returns before all nth have called it. Zero it before hc_pool_run (single use). */
typedef struct hc_pool_barrier {
    _Atomic int arrived;
} hc_pool_barrier;

HC_API void hc_pool_barrier_wait(hc_pool_barrier *b, int nth);

/* Rows [0, n) shared by the nth threads of a pool job, one barrier's worth of synchronisation: each
 * thread owns the contiguous part hc_split_range gives it and takes chunks from its front (an
 * atomic on its own cache line, uncontended); a thread whose part is done takes chunks from the
 * back of another's part, so a thread that was descheduled on a busy machine or runs slower does
 * not hold the others at the join. Chunks are multiples of `align` rows (but the last). */
#define HC_SHARE_MAX 256   /* the pool's largest size */
typedef struct hc_row_share {
    struct {
        _Alignas(64) _Atomic unsigned long long range;   /* lo | hi << 32 */
    } part[HC_SHARE_MAX];
    int nth;
    long chunk, align;
} hc_row_share;

/* nth <= HC_SHARE_MAX (a pool's size). */
HC_API void hc_row_share_init(hc_row_share *s, long n, int nth, long align, long chunk);
/* Thread ith's next chunk [*begin, *end): 1, or 0 when no rows are left anywhere. *pf_end: where
 * the thread's coming rows likely end (its part's end), how far it may prefetch. */
HC_API int hc_row_share_next(hc_row_share *s, int ith, long *begin, long *end, long *pf_end);

/* Pins the calling thread to one CPU (no-op when cpu < 0). */
void hc_pin_thread(int cpu);

/* The CPUs this process may run on (its affinity mask: taskset, cgroups; else the online ones), at
 * least 1. */
HC_API int hc_usable_cpus(void);

#endif
