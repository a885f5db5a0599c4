/* host_pool.c: a single-producer job ring read by every host thread. Threads spin for the next job
 * (up to SPIN_NS), then sleep on a futex; the submitter waits on the job's own counter likewise. */
#define _GNU_SOURCE
#include "host_pool.h"

#include <immintrin.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define RING 256
#define SPIN_PAUSES 8192
/* How a host thread or a waiting submitter waits: it spins (pause) for up to SPIN_NS, then sleeps
 * on a futex. Decode issues a job every 50-200 us but pauses for milliseconds (output head,
 * sampling), and a sleeping vCPU can take that long again to wake, so the spin covers a token's gap.
 * When the cores are shared with other work, spinning only burns the time slice the awaited thread
 * may need: a spinner that finds it was descheduled (the clock jumped by PREEMPTED_NS between two
 * looks) sleeps at once, and the kernel's wake-up then brings it back quickly. */
#define SPIN_NS 5000000ull
#define PREEMPTED_NS 200000ull

typedef struct host_thread {
    struct hc_host_pool *pool;
    pthread_t thread;
    int ith, cpu;
} host_thread;

struct hc_host_pool {
    int n_threads;
    host_thread *threads;
    hc_host_job *ring[RING];
    _Alignas(64) atomic_uint head;       /* jobs submitted (futex word) */
    _Alignas(64) atomic_uint tail;       /* jobs finished by every thread */
    atomic_int sleeping;
    atomic_int stop;
    _Alignas(64) atomic_uint barrier_count;
    atomic_uint barrier_gen;
};

typedef struct spin_wait {
    uint64_t t0, last;
    int n;
} spin_wait;

static spin_wait spin_start(void)
{
    uint64_t now = hc_now_ns();
    return (spin_wait){ now, now, 0 };
}

/* One step of waiting: a pause; 0 when it is time to sleep instead. */
static int keep_spinning(spin_wait *w)
{
    _mm_pause();
    if ((++w->n & 63) != 0) return 1;
    uint64_t now = hc_now_ns();
    if (now - w->last > PREEMPTED_NS || now - w->t0 > SPIN_NS) return 0;
    w->last = now;
    return 1;
}

static void futex_wait(atomic_uint *a, unsigned v) { syscall(SYS_futex, (unsigned *)a, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0); }
static void futex_wake(atomic_uint *a, int n) { syscall(SYS_futex, (unsigned *)a, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0); }

static unsigned wait_head(hc_host_pool *p, unsigned seen)
{
    unsigned h;
    for (spin_wait w = spin_start();;) {
        if ((h = atomic_load_explicit(&p->head, memory_order_acquire)) != seen) return h;
        if (atomic_load_explicit(&p->stop, memory_order_relaxed) || !keep_spinning(&w)) break;
    }
    for (;;) {
        atomic_fetch_add(&p->sleeping, 1);
        if ((h = atomic_load(&p->head)) == seen && !atomic_load(&p->stop)) futex_wait(&p->head, seen);
        atomic_fetch_sub(&p->sleeping, 1);
        if ((h = atomic_load(&p->head)) != seen || atomic_load(&p->stop)) return h;
    }
}

static void *host_main(void *arg)
{
    host_thread *t = arg;
    hc_host_pool *p = t->pool;
    hc_pin_thread(t->cpu);
    unsigned next = 0;
    for (;;) {
        unsigned head = atomic_load_explicit(&p->head, memory_order_acquire);
        if (head == next) head = wait_head(p, next);
        if (atomic_load(&p->stop) && head == next) break;
        hc_host_job *job = p->ring[next % RING];
        if (t->ith == 0) job->t_start_ns = hc_now_ns();
        job->fn(job->ctx, t->ith, p->n_threads);
        next++;
        if (atomic_fetch_sub(&job->pending, 1) == 1) {
            job->t_end_ns = hc_now_ns();
            atomic_store(&p->tail, next);
            atomic_store_explicit(&job->done, 1, memory_order_seq_cst);
            if (atomic_load(&job->waiter)) futex_wake(&job->done, 1);
        }
    }
    return NULL;
}

hc_status hc_host_pool_create(int n_threads, const int *cpus, int n_cpus, hc_host_pool **out)
{
    if (n_threads < 1 || n_threads > 64) return hc_error(HC_E_ARG, "host pool: %d threads is out of range (1..64)", n_threads);
    hc_host_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)n_threads, sizeof *p->threads))) {
        free(p);
        return hc_error(HC_E_NOMEM, "host pool: out of memory");
    }
    p->n_threads = n_threads;
    for (int i = 0; i < n_threads; i++) {
        host_thread *t = &p->threads[i];
        *t = (host_thread){ .pool = p, .ith = i, .cpu = cpus && n_cpus > 0 ? cpus[i % n_cpus] : -1 };
        if (pthread_create(&t->thread, NULL, host_main, t) != 0) {
            p->n_threads = i;
            hc_host_pool_free(p);
            return hc_error(HC_E_NOMEM, "host pool: could not start thread %d", i);
        }
    }
    *out = p;
    return HC_OK;
}

void hc_host_pool_free(hc_host_pool *p)
{
    if (!p) return;
    atomic_store(&p->stop, 1);
    futex_wake(&p->head, 1 << 30);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i].thread, NULL);
    free(p->threads);
    free(p);
}

int hc_host_pool_threads(const hc_host_pool *p) { return p->n_threads; }

hc_status hc_host_pool_submit(hc_host_pool *p, hc_host_job *job)
{
    unsigned head = atomic_load(&p->head);
    if (head - atomic_load(&p->tail) >= RING) return hc_error(HC_E_STATE, "host pool: more than %d jobs pending", RING);
    atomic_store(&job->pending, (unsigned)p->n_threads);
    atomic_store(&job->done, 0);
    atomic_store(&job->waiter, 0);
    atomic_store(&job->err.status, HC_OK);
    job->t_start_ns = job->t_end_ns = 0;
    p->ring[head % RING] = job;
    /* seq_cst, as the sleeper's count-then-look in wait_head: a release store may pass the load of
     * the count, and a thread going to sleep just then would not be woken */
    atomic_store(&p->head, head + 1);
    if (atomic_load(&p->sleeping)) futex_wake(&p->head, 1 << 30);
    return HC_OK;
}

int hc_host_job_done(const hc_host_job *job)
{
    return atomic_load_explicit(&((hc_host_job *)job)->done, memory_order_acquire) != 0;
}

hc_status hc_host_pool_wait(hc_host_pool *p, hc_host_job *job)
{
    for (spin_wait w = spin_start();;) {
        if (hc_host_job_done(job)) return hc_pool_error_raise(&job->err);
        if (!keep_spinning(&w)) break;
    }
    atomic_store(&job->waiter, 1);
    while (!atomic_load(&job->done)) futex_wait(&job->done, 0);
    return hc_pool_error_raise(&job->err);
}

void hc_host_pool_barrier(hc_host_pool *p)
{
    if (p->n_threads == 1) return;
    unsigned gen = atomic_load(&p->barrier_gen);
    if (atomic_fetch_add(&p->barrier_count, 1) + 1 == (unsigned)p->n_threads) {
        atomic_store(&p->barrier_count, 0);
        atomic_fetch_add(&p->barrier_gen, 1);
        futex_wake(&p->barrier_gen, 1 << 30);
        return;
    }
    for (int i = 0; i < SPIN_PAUSES; i++) {
        if (atomic_load(&p->barrier_gen) != gen) return;
        _mm_pause();
    }
    while (atomic_load(&p->barrier_gen) == gen) futex_wait(&p->barrier_gen, gen);
}
