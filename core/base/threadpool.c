/* threadpool.c: fork-join pool on atomics. A job is published by bumping a generation counter;
 * workers spin (then futex-sleep) on it, run their share and count themselves done. */
#define _GNU_SOURCE
#include "threadpool.h"

#include <immintrin.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HC_SPIN_PAUSES 4096  /* about 100 us of pausing before a worker considers sleeping */
#define HC_SPIN_YIELDS 64

struct hc_worker {
    struct hc_pool *pool;
    pthread_t thread;
    int ith;
    int cpu;
};

struct hc_pool {
    int n_threads;
    struct hc_worker *workers;        /* n_threads - 1 of them */
    _Alignas(64) atomic_uint generation;
    _Alignas(64) atomic_uint n_done;  /* futex word the caller sleeps on when workers are slow */
    atomic_int caller_sleeping;
    atomic_int n_sleeping;
    atomic_int stop;
    /* who takes part in the current job: its generation << 32 | JOB_CLOSED | workers joined. A
     * worker joins before it reads fn and ctx; a shared job's caller closes it when its own call
     * returns, and a worker that comes later skips that job (see hc_pool_run_shared). */
    _Alignas(64) _Atomic unsigned long long join;
    hc_pool_fn fn;
    void *ctx;
};

#define JOB_CLOSED 0x80000000ull

static void futex_wait(atomic_uint *addr, unsigned expected)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_one(atomic_uint *addr)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *addr)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
}

void hc_pin_thread(int cpu)
{
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int hc_usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

/* Waits until the generation differs from seen; returns the new generation. */
static unsigned wait_for_job(struct hc_pool *p, unsigned seen)
{
    unsigned g;
    for (int i = 0; i < HC_SPIN_PAUSES; i++) {
        if ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) != seen) return g;
        _mm_pause();
    }
    for (int i = 0; i < HC_SPIN_YIELDS; i++) {
        if ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) != seen) return g;
        sched_yield();
    }
    /* Going to sleep: count ourselves, then look at the generation once more. The publisher stores
     * the generation, then looks at the count; all four are sequentially consistent, so one of the
     * two sees the other (a release store may pass the later load: a lost wake-up, a hang). */
    for (;;) {
        atomic_fetch_add(&p->n_sleeping, 1);
        if ((g = atomic_load(&p->generation)) == seen) futex_wait(&p->generation, seen);
        atomic_fetch_sub(&p->n_sleeping, 1);
        if ((g = atomic_load(&p->generation)) != seen) return g;
    }
}

static void *worker_main(void *arg)
{
    struct hc_worker *w = arg;
    struct hc_pool *p = w->pool;
    hc_pin_thread(w->cpu);
    unsigned seen = 0; /* the generation at creation: a job may be published before this thread runs */
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        unsigned long long j = atomic_load_explicit(&p->join, memory_order_acquire);
        int joined = 0;
        while ((unsigned)(j >> 32) == seen && !(j & JOB_CLOSED))
            if (atomic_compare_exchange_weak_explicit(&p->join, &j, j + 1, memory_order_acq_rel, memory_order_acquire)) {
                joined = 1;
                break;
            }
        if (!joined) continue;   /* a shared job finished without us (or a newer one is out) */
        p->fn(p->ctx, w->ith, p->n_threads);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_seq_cst);
        if (atomic_load(&p->caller_sleeping)) futex_wake_one(&p->n_done);
    }
    return NULL;
}

hc_status hc_pool_create(int n_threads, const int *cpus, int n_cpus, hc_pool **out)
{
    if (n_threads < 1 || n_threads > 256)
        return hc_error(HC_E_ARG, "thread pool: %d threads is out of range (1..256)", n_threads);
    struct hc_pool *p = calloc(1, sizeof *p);
    if (!p) return hc_error(HC_E_NOMEM, "thread pool: out of memory");
    p->n_threads = n_threads;
    if (n_threads > 1 && !(p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers))) {
        free(p);
        return hc_error(HC_E_NOMEM, "thread pool: out of memory");
    }
    if (cpus && n_cpus > 0) hc_pin_thread(cpus[0]);
    for (int i = 1; i < n_threads; i++) {
        struct hc_worker *w = &p->workers[i - 1];
        w->pool = p;
        w->ith = i;
        w->cpu = (cpus && n_cpus > 0) ? cpus[i % n_cpus] : -1;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            p->n_threads = i; /* only the started ones are joined */
            hc_pool_free(p);
            return hc_error(HC_E_NOMEM, "thread pool: could not start thread %d", i);
        }
    }
    *out = p;
    return HC_OK;
}

void hc_pool_free(hc_pool *p)
{
    if (!p) return;
    atomic_store(&p->stop, 1);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    futex_wake_all(&p->generation);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->workers[i - 1].thread, NULL);
    free(p->workers);
    free(p);
}

int hc_pool_threads(const hc_pool *p) { return p->n_threads; }

static void pool_run(hc_pool *p, hc_pool_fn fn, void *ctx, int shared)
{
    if (p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    unsigned g = atomic_load_explicit(&p->generation, memory_order_relaxed) + 1;   /* the only publisher */
    atomic_store_explicit(&p->join, (unsigned long long)g << 32, memory_order_relaxed);
    atomic_store(&p->generation, g);   /* seq_cst: not passed by the load below (see wait_for_job) */
    if (atomic_load(&p->n_sleeping) > 0) futex_wake_all(&p->generation);
    fn(ctx, 0, p->n_threads);
    unsigned want = (unsigned)p->n_threads - 1, seen;
    if (shared)   /* close the job: wait only for the workers that joined it */
        want = (unsigned)(atomic_fetch_or_explicit(&p->join, JOB_CLOSED, memory_order_acq_rel) & 0x7fffffffu);
    for (int i = 0; i < HC_SPIN_PAUSES; i++) {
        if (atomic_load_explicit(&p->n_done, memory_order_acquire) == want) return;
        _mm_pause();
    }
    /* a worker is late (descheduled on a busy machine): sleep until the last one wakes us */
    atomic_store(&p->caller_sleeping, 1);
    while ((seen = atomic_load(&p->n_done)) != want) futex_wait(&p->n_done, seen);
    atomic_store(&p->caller_sleeping, 0);
}

void hc_pool_run(hc_pool *p, hc_pool_fn fn, void *ctx) { pool_run(p, fn, ctx, 0); }

void hc_pool_run_shared(hc_pool *p, hc_pool_fn fn, void *ctx) { pool_run(p, fn, ctx, 1); }

void hc_pool_barrier_wait(hc_pool_barrier *b, int nth)
{
    atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel);
    /* spin, then yield: a thread of the job may have been descheduled on a busy machine */
    for (int i = 0; atomic_load_explicit(&b->arrived, memory_order_acquire) < nth; i++) {
        if (i < HC_SPIN_PAUSES) _mm_pause();
        else sched_yield();
    }
}

static unsigned long long pack_range(long lo, long hi) { return (unsigned long long)lo | (unsigned long long)hi << 32; }

void hc_row_share_init(hc_row_share *s, long n, int nth, long align, long chunk)
{
    s->nth = nth;
    s->align = align < 1 ? 1 : align;
    s->chunk = chunk < s->align ? s->align : chunk / s->align * s->align;
    for (int i = 0; i < nth; i++) {
        long b, e;
        hc_split_range(n, i, nth, s->align, &b, &e);
        atomic_store_explicit(&s->part[i].range, pack_range(b, e), memory_order_relaxed);
    }
}

int hc_row_share_next(hc_row_share *s, int ith, long *begin, long *end, long *pf_end)
{
    /* the front of our own part */
    _Atomic unsigned long long *own = &s->part[ith].range;
    unsigned long long v = atomic_load_explicit(own, memory_order_relaxed);
    for (;;) {
        long lo = (long)(v & 0xffffffffu), hi = (long)(v >> 32);
        if (lo >= hi) break;
        long e = lo + s->chunk < hi ? lo + s->chunk : hi;
        if (atomic_compare_exchange_weak_explicit(own, &v, pack_range(e, hi), memory_order_relaxed, memory_order_relaxed)) {
            *begin = lo, *end = e, *pf_end = hi;
            return 1;
        }
    }
    /* the back of the others' parts */
    for (int d = 1; d < s->nth; d++) {
        _Atomic unsigned long long *other = &s->part[(ith + d) % s->nth].range;
        v = atomic_load_explicit(other, memory_order_relaxed);
        for (;;) {
            long lo = (long)(v & 0xffffffffu), hi = (long)(v >> 32);
            if (lo >= hi) break;
            long b = (hi - s->chunk) / s->align * s->align;   /* chunk boundaries stay aligned */
            if (b < lo) b = lo;
            if (atomic_compare_exchange_weak_explicit(other, &v, pack_range(lo, b), memory_order_relaxed, memory_order_relaxed)) {
                *begin = b, *end = hi, *pf_end = hi;
                return 1;
            }
        }
    }
    return 0;
}

void hc_split_range(long n, int ith, int nth, long align, long *begin, long *end)
{
    if (align < 1) align = 1;
    long blocks = (n + align - 1) / align;
    long per = blocks / nth, extra = blocks % nth;
    long b = ith * per + (ith < extra ? ith : extra);
    long e = b + per + (ith < extra ? 1 : 0);
    *begin = b * align < n ? b * align : n;
    *end = e * align < n ? e * align : n;
}

void hc_pool_error_set(hc_pool_error *e, hc_status st)
{
    int expected = HC_OK;
    if (st == HC_OK) return;
    /* claim the slot with a placeholder first so that the message is written by one thread only */
    if (atomic_compare_exchange_strong(&e->status, &expected, -1)) {
        snprintf(e->message, sizeof e->message, "%s", hc_last_error());
        atomic_store(&e->status, (int)st);
    }
}

hc_status hc_pool_error_raise(hc_pool_error *e)
{
    int st = atomic_load(&e->status);
    if (st == HC_OK) return HC_OK;
    return hc_error((hc_status)st, "%s", e->message);
}
