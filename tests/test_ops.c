/* test_ops.c: the cpu device's decoder ops against naive references written here in double
 * precision: RMSNorm, RoPE (both modes), grouped-query attention with a KV cache, SwiGLU, f32
 * matmul on 1 and 2 threads, block-type matmuls through the device (1..40 tokens, 1..3 threads)
 * against the reference kernel; and the thread pool's range splitting, in-job barrier and wake-ups. */
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "device_cpu.h"
#include "matmul_ggml.h"
#include "test_util.h"
#include "threadpool.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static hc_device *make_device(int threads)
{
    hc_device *d = NULL;
    hc_device_config cfg = { .n_threads = threads };
    if (hc_cpu_device_create(&cfg, &d) != HC_OK) return NULL;
    return d;
}

static void test_rmsnorm(void)
{
    hc_device *d = make_device(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    enum { N = 3, D = 37 };
    float x[N * D], w[D], y[N * D];
    unsigned s = 1;
    for (int i = 0; i < N * D; i++) x[i] = frand(&s) * 3;
    for (int i = 0; i < D; i++) w[i] = frand(&s);
    HC_ASSERT_OK(d->ops->rmsnorm(d, x, w, y, N, D, 1e-5f));
    for (int t = 0; t < N; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[t * D + i] * x[t * D + i];
        double inv = 1.0 / sqrt(ss / D + 1e-5);
        for (int i = 0; i < D; i++) CU_ASSERT_DOUBLE_EQUAL(y[t * D + i], x[t * D + i] * inv * w[i], 1e-5);
    }
    d->ops->destroy(d);
}

/* naive RoPE: pairs (2i, 2i+1) for NORM, (i, i + n_rot/2) for NEOX, angle pos * theta^(-2i/n_rot) */
static void naive_rope(double *v, int head_dim, int n_rot, int pos, double theta, hc_rope_mode mode)
{
    for (int i = 0; i < n_rot / 2; i++) {
        double ang = pos * pow(theta, -2.0 * i / n_rot);
        int a = mode == HC_ROPE_NEOX ? i : 2 * i, b = mode == HC_ROPE_NEOX ? i + n_rot / 2 : 2 * i + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(ang) - x1 * sin(ang);
        v[b] = x0 * sin(ang) + x1 * cos(ang);
    }
    (void)head_dim;
}

static void check_rope(hc_rope_mode mode, int n_rot)
{
    hc_device *d = make_device(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    enum { T = 4, H = 3, HD = 16 };
    float x[T * H * HD];
    double ref[T * H * HD];
    int32_t pos[T] = { 0, 1, 17, 300 };
    unsigned s = 7;
    for (int i = 0; i < T * H * HD; i++) ref[i] = x[i] = frand(&s);
    HC_ASSERT_OK(d->ops->rope(d, x, T, H, HD, n_rot, pos, 10000.0f, mode));
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) naive_rope(ref + (t * H + h) * HD, HD, n_rot, pos[t], 10000.0, mode);
    for (int i = 0; i < T * H * HD; i++) CU_ASSERT_DOUBLE_EQUAL(x[i], ref[i], 1e-5);
    d->ops->destroy(d);
}

static void test_rope_norm(void) { check_rope(HC_ROPE_NORM, 16); }
static void test_rope_neox(void) { check_rope(HC_ROPE_NEOX, 16); }
static void test_rope_partial(void) { check_rope(HC_ROPE_NEOX, 8); } /* only part of each head rotates */

static void test_attention_gqa(void)
{
    enum { CTX = 16, T = 5, POS0 = 3, H = 4, HKV = 2, HD = 8 };
    float q[T * H * HD], k[CTX * HKV * HD], v[CTX * HKV * HD], out[T * H * HD];
    unsigned s = 3;
    for (int i = 0; i < T * H * HD; i++) q[i] = frand(&s);
    for (int i = 0; i < CTX * HKV * HD; i++) {
        k[i] = frand(&s);
        v[i] = frand(&s);
    }
    for (int threads = 1; threads <= 2; threads++) {
        hc_device *d = make_device(threads);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        hc_attn_args a = { .q = q, .k_cache = k, .v_cache = v, .out = out, .n_tok = T, .pos0 = POS0, .n_ctx = CTX,
                           .n_head = H, .n_head_kv = HKV, .head_dim = HD, .scale = 1.0f / sqrtf(HD) };
        HC_ASSERT_OK(d->ops->attention(d, &a));
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                int kvh = h / (H / HKV), n = POS0 + t + 1; /* causal: keys 0 .. pos0+t */
                double sc[CTX], mx = -1e30, sum = 0;
                for (int j = 0; j < n; j++) {
                    double dot = 0;
                    for (int i = 0; i < HD; i++) dot += (double)q[(t * H + h) * HD + i] * k[(j * HKV + kvh) * HD + i];
                    sc[j] = dot / sqrt(HD);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j < n; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < HD; i++) {
                    double o = 0;
                    for (int j = 0; j < n; j++) o += sc[j] / sum * v[(j * HKV + kvh) * HD + i];
                    CU_ASSERT_DOUBLE_EQUAL(out[(t * H + h) * HD + i], o, 1e-5);
                }
            }
        a.pos0 = CTX - 2; /* past the end of the cache */
        CU_ASSERT_EQUAL(d->ops->attention(d, &a), HC_E_STATE);
        d->ops->destroy(d);
    }
}

static void test_swiglu(void)
{
    hc_device *d = make_device(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    float g[5] = { -3, -0.5f, 0, 0.5f, 4 }, u[5] = { 1, 2, 3, -1, 0.25f }, o[5];
    HC_ASSERT_OK(d->ops->swiglu(d, g, u, o, 5));
    for (int i = 0; i < 5; i++) CU_ASSERT_DOUBLE_EQUAL(o[i], g[i] / (1 + exp(-g[i])) * u[i], 1e-6);
    d->ops->destroy(d);
}

static void test_matmul_f32(void)
{
    enum { IN = 67, OUT = 45, T = 3 };
    float *w = malloc(sizeof(float) * IN * OUT), x[T * IN], y[T * OUT];
    unsigned s = 11;
    for (int i = 0; i < IN * OUT; i++) w[i] = frand(&s);
    for (int i = 0; i < T * IN; i++) x[i] = frand(&s);
    hc_tensor wt = { .name = "w", .dtype = HC_F32, .n_dims = 2, .ne = { IN, OUT, 1, 1 }, .data = w, .nbytes = sizeof(float) * IN * OUT };
    for (int threads = 1; threads <= 2; threads++)
        for (int n_tok = 1; n_tok <= T; n_tok += 2) {
            hc_device *d = make_device(threads);
            CU_ASSERT_PTR_NOT_NULL_FATAL(d);
            HC_ASSERT_OK(d->ops->matmul(d, &wt, x, y, n_tok));
            for (int t = 0; t < n_tok; t++)
                for (int o = 0; o < OUT; o++) {
                    double acc = 0;
                    for (int i = 0; i < IN; i++) acc += (double)w[o * IN + i] * x[t * IN + i];
                    CU_ASSERT_DOUBLE_EQUAL(y[t * OUT + o], acc, 1e-4);
                }
            d->ops->destroy(d);
        }
    free(w);
}

static void test_memory_budget(void)
{
    hc_device_config cfg = { .n_threads = 1, .mem_budget = 1 << 20 };
    hc_device *d;
    HC_ASSERT_OK(hc_cpu_device_create(&cfg, &d));
    void *a, *b;
    HC_ASSERT_OK(d->ops->alloc(d, 700 << 10, &a));
    CU_ASSERT_EQUAL(d->ops->alloc(d, 700 << 10, &b), HC_E_NOMEM);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "memory budget"));
    CU_ASSERT_EQUAL(d->ops->mem_used(d), 700 << 10);
    d->ops->free(d, a);
    CU_ASSERT_EQUAL(d->ops->mem_used(d), 0);
    d->ops->destroy(d);
}

/* Q4_0 and Q6_K weights through the device: its threads, its activation quantization (by the
 * calling thread below 16 tokens, split over the threads with a barrier from 16 on) and the
 * dispatcher's kernels, against the reference kernel on the same quantized activations. */
static void test_matmul_blocks(void)
{
    static const hc_dtype types[] = { HC_Q4_0, HC_Q6_K };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const hc_dtype t = types[ti];
        const int IN = 512, OUT = 37, T = 40;
        size_t rb = hc_dtype_row_bytes(t, IN), bb = hc_dtype_block_bytes(t);
        uint8_t *w = malloc(rb * OUT);
        float *x = malloc(sizeof(float) * IN * T), *y = malloc(sizeof(float) * OUT * T), *yr = malloc(sizeof(float) * OUT * T);
        void *xq = malloc(hc_act_q8_bytes(IN) * T);
        CU_ASSERT_PTR_NOT_NULL_FATAL(w && x && y && yr && xq);
        unsigned s = 5 + (unsigned)ti;
        for (size_t i = 0; i < rb * OUT; i++) w[i] = (uint8_t)(frand(&s) * 127.0f);
        for (size_t b = 0; b < rb * OUT / bb; b++) {   /* sane f16 scales: Q4_0 at 0, Q6_K at 208 */
            uint16_t h = hc_f32_to_f16(0.01f + 0.01f * fabsf(frand(&s)));
            memcpy(w + b * bb + (t == HC_Q6_K ? 208 : 0), &h, 2);
        }
        for (int i = 0; i < IN * T; i++) x[i] = frand(&s);
        hc_tensor wt = { .name = "w", .dtype = t, .n_dims = 2, .ne = { IN, OUT, 1, 1 }, .data = w, .nbytes = rb * OUT };
        static const int toks[] = { 1, 5, 16, 17, 40 };
        for (int threads = 1; threads <= 3; threads++) {
            hc_device *d = make_device(threads);
            CU_ASSERT_PTR_NOT_NULL_FATAL(d);
            for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++) {
                int n_tok = toks[k];
                for (int i = 0; i < n_tok; i++)
                    hc_act_quantize_q8_ref(x + i * IN, (hc_q8_block *)((char *)xq + hc_act_q8_bytes(IN) * i), IN);
                HC_ASSERT_OK(hc_matmul_rows_ref(t, w, IN, NULL, xq, n_tok, yr, OUT, 0, OUT));
                HC_ASSERT_OK(d->ops->matmul(d, &wt, x, y, n_tok));
                int bad = 0;
                for (int i = 0; i < OUT * n_tok; i++) bad += fabsf(y[i] - yr[i]) > 1e-4f * (1.0f + fabsf(yr[i]));
                if (bad) printf("\n  %s, %d threads, %d tokens: %d values differ", hc_dtype_name(t), threads, n_tok, bad);
                CU_ASSERT_EQUAL(bad, 0);
            }
            d->ops->destroy(d);
        }
        free(w), free(x), free(y), free(yr), free(xq);
    }
}

/* Every thread writes its slot, waits at the barrier, then reads all slots: none may be missing. */
typedef struct barrier_job {
    hc_pool_barrier bar;
    _Atomic long slot[8];
    int bad;
    int round;
} barrier_job;

static void barrier_task(void *arg, int ith, int nth)
{
    barrier_job *j = arg;
    j->slot[ith] = j->round;
    hc_pool_barrier_wait(&j->bar, nth);
    for (int i = 0; i < nth; i++)
        if (j->slot[i] != j->round) j->bad = 1;
}

typedef struct sum_job {
    long n;
    long partial[8];
} sum_job;

static void sum_task(void *arg, int ith, int nth)
{
    sum_job *j = arg;
    long b, e;
    hc_split_range(j->n, ith, nth, 4, &b, &e);
    long s = 0;
    for (long i = b; i < e; i++) s += i;
    j->partial[ith] = s;
}

/* Shared rows: every row is taken exactly once, chunks aligned, whichever thread is late (thread
 * 1 sleeps first in some rounds, so that the others steal its rows), with hc_pool_run and with
 * hc_pool_run_shared (where a late thread may skip the job altogether). */
typedef struct share_job {
    hc_row_share share;
    _Atomic int *count;
    long n;
    int late, bad;
    _Atomic int stolen;
} share_job;

static void share_task(void *arg, int ith, int nth)
{
    share_job *j = arg;
    if (ith == j->late) {
        struct timespec ts = { 0, 2000000 };
        nanosleep(&ts, NULL);
    }
    long b, e, pf, own_b, own_e;
    hc_split_range(j->n, ith, nth, 16, &own_b, &own_e);
    while (hc_row_share_next(&j->share, ith, &b, &e, &pf)) {
        if (b >= e || b % 16 || (e % 16 && e != j->n) || pf < e) j->bad = 1;
        if (b < own_b || b >= own_e) atomic_fetch_add(&j->stolen, 1);
        for (long i = b; i < e; i++) atomic_fetch_add(&j->count[i], 1);
    }
}

static void test_row_share(void)
{
    int stolen = 0;
    for (int threads = 1; threads <= 4; threads++) {
        hc_pool *p;
        HC_ASSERT_OK(hc_pool_create(threads, NULL, 0, &p));
        for (long n = 1; n < 3000; n = n * 3 + 7)
            for (int late = -1; late < 2; late++) {
                share_job *j = calloc(1, sizeof *j);
                CU_ASSERT_PTR_NOT_NULL_FATAL(j);
                j->n = n, j->late = late;
                j->count = calloc((size_t)n, sizeof *j->count);
                hc_row_share_init(&j->share, n, threads, 16, 40);   /* chunks of 32 rows */
                if (n % 2) hc_pool_run(p, share_task, j);
                else hc_pool_run_shared(p, share_task, j);   /* the late thread may skip the job */
                sum_job sj = { .n = n };   /* a job for every thread right after: the pool is whole */
                hc_pool_run(p, sum_task, &sj);
                long sum = 0;
                for (int i = 0; i < threads; i++) sum += sj.partial[i];
                CU_ASSERT_EQUAL(sum, n * (n - 1) / 2);
                int wrong = 0;
                for (long i = 0; i < n; i++) wrong += j->count[i] != 1;
                CU_ASSERT_EQUAL(wrong, 0);
                CU_ASSERT_EQUAL(j->bad, 0);
                stolen += j->stolen;
                free((void *)j->count);
                free(j);
            }
        hc_pool_free(p);
    }
    CU_ASSERT(stolen > 0);   /* the late threads' rows were taken by the others */
}

static void test_pool_barrier(void)
{
    for (int threads = 1; threads <= 4; threads++) {
        hc_pool *p;
        HC_ASSERT_OK(hc_pool_create(threads, NULL, 0, &p));
        for (int round = 1; round <= 300; round++) {
            barrier_job j = { .round = round };
            hc_pool_run(p, barrier_task, &j);
            CU_ASSERT_EQUAL_FATAL(j.bad, 0);
        }
        hc_pool_free(p);
    }
}

/* Lost wake-ups: jobs published just as a worker gives up spinning and goes to sleep. A worker that
 * sleeps through its job leaves the others at the job's barrier (or the caller waiting) for ever.
 * The rounds (random gaps up to 300 us, across a worker's spin, yield and sleep; 2 threads, then 3
 * on the 2 CPUs) run in a child process for WAKE_SECONDS each; the test fails when the child's
 * count of rounds stands still for 3 s. A race, so a net with holes: with the generation stored by
 * release (not seq_cst) this test stalled in 1 run of 6 here, test_policy in 3 of 16. */
#define WAKE_SECONDS 2.0

typedef struct wake_job {
    hc_pool_barrier bar;
} wake_job;

static void wake_task(void *arg, int ith, int nth)
{
    (void)ith;
    hc_pool_barrier_wait(&((wake_job *)arg)->bar, nth);
}

static int pool_wakeup_rounds(_Atomic long *rounds)
{
    unsigned seed = 1;
    for (int threads = 2; threads <= 3; threads++) {
        hc_pool *p;
        if (hc_pool_create(threads, NULL, 0, &p) != HC_OK) return 2;
        for (double t0 = hc_now_seconds(); hc_now_seconds() - t0 < WAKE_SECONDS;) {
            seed = seed * 1103515245u + 12345u;
            double gap = 1e-9 * (double)((seed >> 8) % 300000u);
            for (double g0 = hc_now_seconds(); hc_now_seconds() - g0 < gap;) {}
            wake_job j = { 0 };
            hc_pool_run(p, wake_task, &j);
            atomic_fetch_add(rounds, 1);
        }
        hc_pool_free(p);
    }
    return 0;
}

static void test_pool_wakeups(void)
{
    _Atomic long *rounds = mmap(NULL, sizeof *rounds, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(rounds != MAP_FAILED);
    atomic_store(rounds, 0);
    fflush(stdout);
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) _exit(pool_wakeup_rounds(rounds));
    int status = 0;
    long seen = -1;
    double moved = hc_now_seconds();
    while (waitpid(child, &status, WNOHANG) == 0) {
        nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
        long r = atomic_load(rounds);
        if (r != seen) seen = r, moved = hc_now_seconds();
        if (hc_now_seconds() - moved > 3.0) {
            printf("\n  no round for 3 s after %ld: a worker slept through its job\n", r);
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            CU_FAIL("a job's wake-up was lost");
            munmap(rounds, sizeof *rounds);
            return;
        }
    }
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT(atomic_load(rounds) > 100);
    munmap(rounds, sizeof *rounds);
}

static void test_thread_pool(void)
{
    for (int threads = 1; threads <= 4; threads++) {
        hc_pool *p;
        HC_ASSERT_OK(hc_pool_create(threads, NULL, 0, &p));
        for (long n = 0; n < 200; n += 13)
            for (int rep = 0; rep < 50; rep++) { /* many small jobs back to back */
                sum_job j = { .n = n };
                hc_pool_run(p, sum_task, &j);
                long s = 0;
                for (int i = 0; i < threads; i++) s += j.partial[i];
                CU_ASSERT_EQUAL_FATAL(s, n * (n - 1) / 2);
            }
        hc_pool_free(p);
    }
    hc_pool *p;
    CU_ASSERT_EQUAL(hc_pool_create(0, NULL, 0, &p), HC_E_ARG);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "rmsnorm", test_rmsnorm },
        { "rope norm", test_rope_norm },
        { "rope neox", test_rope_neox },
        { "rope partial rotation", test_rope_partial },
        { "attention gqa causal", test_attention_gqa },
        { "swiglu", test_swiglu },
        { "matmul f32", test_matmul_f32 },
        { "matmul q4_0, q6_K through the device", test_matmul_blocks },
        { "device memory budget", test_memory_budget },
        { "thread pool", test_thread_pool },
        { "thread pool barrier", test_pool_barrier },
        { "thread pool: no wake-up lost", test_pool_wakeups },
        { "rows shared by a pool's threads", test_row_share },
        { NULL, NULL },
    };
    return hc_test_run("ops", cases);
}
