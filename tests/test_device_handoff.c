/* test_device_handoff.c: the runtime's path for a device with memory of its own, on the cpu device
 * that claims it: the asynchronous branch hand-off, real stage timings, checks before upload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "context.h"
#include "device_cpu.h"
#include "model_load.h"
#include "registry_default.h"
#include "sampler.h"
#include "synth.h"
#include "test_util.h"

#define N_STEPS 12

/* ---------------- a spy on the cpu device's ops ---------------- */

typedef struct counts {
    long alloc, free, upload, download, synchronize, host_alloc, download_async, upload_copyq, queue_wait, event_wait;
} counts;

static counts cnt;
static hc_device_ops spy_ops;
static const hc_device_ops *real;
static int refuse_packed; /* check_weights says no to packed weights (a device without their kernels) */

static hc_status spy_alloc(hc_device *d, size_t n, void **p) { cnt.alloc++; return real->alloc(d, n, p); }
static void spy_free(hc_device *d, void *p) { cnt.free += p != NULL; real->free(d, p); }
static hc_status spy_upload(hc_device *d, void *dst, const void *src, size_t n) { cnt.upload++; return real->upload(d, dst, src, n); }
static hc_status spy_download(hc_device *d, void *dst, const void *src, size_t n) { cnt.download++; return real->download(d, dst, src, n); }
static hc_status spy_synchronize(hc_device *d) { cnt.synchronize++; return real->synchronize(d); }
static hc_status spy_host_alloc(hc_device *d, size_t n, void **p) { cnt.host_alloc++; return real->host_alloc(d, n, p); }
static hc_status spy_download_async(hc_device *d, void *dst, const void *src, size_t n, hc_event *ev)
{
    cnt.download_async++;
    return real->download_async(d, dst, src, n, ev);
}
static hc_status spy_upload_copyq(hc_device *d, void *dst, const void *src, size_t n, hc_event *after, hc_event *done)
{
    cnt.upload_copyq++;
    return real->upload_copyq(d, dst, src, n, after, done);
}
static hc_status spy_queue_wait(hc_device *d, hc_event *ev) { cnt.queue_wait++; return real->queue_wait(d, ev); }
static hc_status spy_event_wait(hc_device *d, hc_event *ev) { __atomic_add_fetch(&cnt.event_wait, 1, __ATOMIC_RELAXED); return real->event_wait(d, ev); }
static hc_status spy_check_weights(hc_device *d, const hc_tensor *w)
{
    if (refuse_packed && w->dtype == HC_PACKED)
        return hc_error(HC_E_UNSUPPORTED, "spy device: %s: weights in the packed format of quant plugin '%s' have no kernel",
                        w->name, w->qfmt ? w->qfmt->plugin : "?");
    return real->check_weights(d, w);
}

/* A cpu device that claims memory of its own, its ops spied on. */
static hc_device *spy_device(size_t budget)
{
    hc_device_config cfg = { .n_threads = 1, .mem_budget = budget };
    hc_device *d = NULL;
    HC_ASSERT_OK(hc_cpu_device_create(&cfg, &d));
    real = d->ops;
    spy_ops = *real;
    spy_ops.alloc = spy_alloc, spy_ops.free = spy_free, spy_ops.upload = spy_upload, spy_ops.download = spy_download;
    spy_ops.synchronize = spy_synchronize, spy_ops.host_alloc = spy_host_alloc, spy_ops.download_async = spy_download_async;
    spy_ops.upload_copyq = spy_upload_copyq, spy_ops.queue_wait = spy_queue_wait, spy_ops.event_wait = spy_event_wait;
    spy_ops.check_weights = spy_check_weights;
    d->ops = &spy_ops;
    d->host_memory = 0;
    memset(&cnt, 0, sizeof cnt);
    return d;
}

/* ---------------- a small compressed model ---------------- */

static char model_path[1024];

/* A llama of dim 64, 2 layers, quantized by rtn (3 bits, groups of 32) with rank-8 branches. */
static const char *small_model(void)
{
    if (model_path[0]) return model_path;
    char src[1024];
    snprintf(src, sizeof src, "%s", hc_test_tmp("handoff-src.gguf")); /* hc_test_tmp's buffer is reused */
    hc_synth_opts so = { .arch = "llama", .output = src, .dim = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .ffn_dim = 160,
                         .n_vocab = 300, .seed = 7 };
    HC_ASSERT_OK(hc_synth(&so));
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    HC_ASSERT_OK(hc_registry_load_default(r));
    snprintf(model_path, sizeof model_path, "%s", hc_test_tmp("handoff.hc.gguf"));
    hc_compress_opts o = { .input = src, .output = model_path, .quant = "rtn:bits=3,group=32", .rank = 8, .threads = 1,
                           .branch_dtype = HC_F16, .registry = r };
    hc_compress_report rep;
    hc_status st = hc_compress(&o, &rep);
    if (st != HC_OK) fprintf(stderr, "  compress: %s\n", hc_last_error());
    hc_registry_free(r);
    CU_ASSERT_EQUAL_FATAL(st, HC_OK);
    return model_path;
}

typedef struct session {
    hc_registry *reg;
    hc_model *m;
    hc_context *c;
} session;

/* Loads the model and makes a context on d with scheduler sched (NULL: branches off), the rank
 * controller keeping the host within host_budget of the device's time (0: off). */
static hc_status open_with(hc_device *d, const char *sched, double host_budget, session *s)
{
    memset(s, 0, sizeof *s);
    hc_status st = hc_registry_create(&s->reg);
    if (st == HC_OK) st = hc_registry_load_default(s->reg);
    hc_model_load_opts lo = { .registry = s->reg, .no_branches = sched == NULL };
    if (st == HC_OK) st = hc_model_load(small_model(), &lo, &s->m);
    hc_context_params cp = { .n_ctx = 64, .n_batch = 8, .registry = s->reg, .host_threads = 2, .host_budget = host_budget };
    if (st == HC_OK && sched) {
        cp.comp = hc_registry_find(s->reg, HC_PLUGIN_COMP, "host")->desc->ops;
        cp.sched = hc_registry_find(s->reg, HC_PLUGIN_SCHED, sched)->desc->ops;
        cp.sched_name = sched;
    }
    if (st == HC_OK) st = hc_context_create(s->m, d, &cp, &s->c);
    return st;
}

static hc_status open_on(hc_device *d, const char *sched, session *s) { return open_with(d, sched, 0.0, s); }

static void close_session(session *s, hc_device *d)
{
    hc_context_free(s->c);
    hc_model_free(s->m);
    hc_registry_free(s->reg);
    if (d) d->ops->destroy(d);
}

/* A prompt of 5 tokens, then N_STEPS greedy ones; per-token counters from the second decode step. */
static void decode(session *s, int32_t *out, counts *per_step)
{
    const int32_t prompt[5] = { 1, 40, 41, 42, 43 };
    const float *logits;
    HC_ASSERT_OK(hc_decode(s->c, prompt, 5, 0, &logits));
    int32_t tok = hc_argmax(logits, s->m->cfg.n_vocab);
    for (int i = 0; i < N_STEPS; i++) {
        if (i == 1) memset(&cnt, 0, sizeof cnt);
        HC_ASSERT_OK(hc_decode(s->c, &tok, 1, 0, &logits));
        out[i] = tok = hc_argmax(logits, s->m->cfg.n_vocab);
    }
    if (per_step) *per_step = cnt;
}

/* The tokens of the cpu device using its memory as host memory, the reference. */
static void reference_tokens(const char *sched, int32_t *out)
{
    hc_device_config cfg = { .n_threads = 1 };
    hc_device *d = NULL;
    HC_ASSERT_OK(hc_cpu_device_create(&cfg, &d));
    session s;
    HC_ASSERT_OK(open_on(d, sched, &s));
    decode(&s, out, NULL);
    close_session(&s, d);
}

/* async: inputs go down by download_async, corrections come back by upload_copyq + queue_wait; no
 * allocation, no synchronous copy but the logits', no stream drain per token; the same tokens. */
static void test_async_handoff(void)
{
    int32_t want[N_STEPS], got[N_STEPS];
    reference_tokens("async", want);
    hc_device *d = spy_device(0);
    session s;
    HC_ASSERT_OK(open_on(d, "async", &s));
    CU_ASSERT(hc_branch_rt_device_timed(s.c->brt));
    counts k;
    decode(&s, got, &k);
    long steps = N_STEPS - 1, jobs = hc_branch_rt_n_jobs(s.c->brt);
    CU_ASSERT(jobs >= 8); /* 2 layers x (qkv, o, gate+up, down) */
    CU_ASSERT_EQUAL(k.alloc, 0);
    CU_ASSERT_EQUAL(k.free, 0);
    CU_ASSERT_EQUAL(k.host_alloc, 0);
    CU_ASSERT_EQUAL(k.upload, 0);
    CU_ASSERT_EQUAL(k.download, steps);        /* the logits */
    CU_ASSERT_EQUAL(k.synchronize, 0);
    CU_ASSERT_EQUAL(k.download_async, steps * jobs);
    CU_ASSERT_EQUAL(k.upload_copyq, steps * jobs);
    CU_ASSERT_EQUAL(k.queue_wait, steps * jobs);
    CU_ASSERT(k.event_wait >= steps * jobs);   /* the host threads wait for the inputs */
    CU_ASSERT_EQUAL(memcmp(want, got, sizeof got), 0);
    /* stage times come from events: every stage was timed, the context's total is their sum */
    uint64_t sum = 0;
    for (int i = 0; i < s.c->n_stages; i++) sum += s.c->stages[i].device_ns;
    CU_ASSERT(sum > 0);
    hc_branch_stats bs;
    hc_branch_rt_stats(s.c->brt, &bs);
    CU_ASSERT(bs.device_ns > 0);
    CU_ASSERT(bs.jobs >= (uint64_t)(steps * jobs));
    close_session(&s, d);
}

/* serial is serial: the device finishes the backbone before the host starts each job. */
static void test_serial_is_serial(void)
{
    int32_t want[N_STEPS], got[N_STEPS];
    reference_tokens("serial", want);
    hc_device *d = spy_device(0);
    session s;
    HC_ASSERT_OK(open_on(d, "serial", &s));
    counts k;
    decode(&s, got, &k);
    long steps = N_STEPS - 1, jobs = hc_branch_rt_n_jobs(s.c->brt);
    CU_ASSERT_EQUAL(k.synchronize, steps * jobs);
    CU_ASSERT_EQUAL(k.upload_copyq, steps * jobs);
    CU_ASSERT_EQUAL(memcmp(want, got, sizeof got), 0);
    close_session(&s, d);
}

/* A format the device has no kernel for is refused by check_weights before any byte is copied. */
static void test_refused_before_upload(void)
{
    hc_device *d = spy_device(0);
    refuse_packed = 1;
    session s;
    hc_status st = open_on(d, NULL, &s);
    refuse_packed = 0;
    CU_ASSERT_EQUAL(st, HC_E_UNSUPPORTED);
    CU_ASSERT(strstr(hc_last_error(), "packed format of quant plugin 'rtn'") != NULL);
    CU_ASSERT(strstr(hc_last_error(), "blk.") != NULL);          /* names the tensor */
    CU_ASSERT(strstr(hc_last_error(), "cannot run on device 'cpu'") != NULL);
    CU_ASSERT_EQUAL(cnt.upload, 0);
    CU_ASSERT_EQUAL(cnt.alloc, 0);
    CU_ASSERT_PTR_NULL(s.c);
    close_session(&s, d);
}

/* The memory budget: the backbone, KV cache, activations and branches must fit, or nothing is copied. */
static void test_memory_budget(void)
{
    hc_device *d = spy_device((size_t)64 << 10); /* 64 KiB: far too little */
    session s;
    hc_status st = open_on(d, "async", &s);
    CU_ASSERT_EQUAL(st, HC_E_NOMEM);
    const char *e = hc_last_error();
    CU_ASSERT(strstr(e, "does not fit device 'cpu'") != NULL);
    CU_ASSERT(strstr(e, "backbone") && strstr(e, "KV cache of 64 tokens") && strstr(e, "activations") && strstr(e, "branches"));
    CU_ASSERT(strstr(e, "0.1 MiB are available") != NULL);
    CU_ASSERT_EQUAL(cnt.upload, 0);
    CU_ASSERT_EQUAL(cnt.alloc, 0);
    close_session(&s, d);
    /* a budget that fits: the same model opens */
    d = spy_device((size_t)64 << 20);
    HC_ASSERT_OK(open_on(d, "async", &s));
    size_t avail = 0, total = 0;
    HC_ASSERT_OK(d->ops->mem_info(d, &avail, &total));
    CU_ASSERT_EQUAL(total, (size_t)64 << 20);
    CU_ASSERT_EQUAL(avail, total - d->ops->mem_used(d));
    close_session(&s, d);
}

/* The f16 KV cache with memory of its own (store_rows): the tokens of the host-memory run with it. */
static void test_f16_kv(void)
{
    int32_t want[N_STEPS], got[N_STEPS];
    for (int pass = 0; pass < 2; pass++) {
        hc_device *d = pass ? spy_device(0) : NULL;
        if (!d) {
            hc_device_config cfg = { .n_threads = 1 };
            HC_ASSERT_OK(hc_cpu_device_create(&cfg, &d));
        }
        session s;
        memset(&s, 0, sizeof s);
        HC_ASSERT_OK(hc_registry_create(&s.reg));
        HC_ASSERT_OK(hc_registry_load_default(s.reg));
        hc_model_load_opts lo = { .registry = s.reg, .no_branches = 1 };
        HC_ASSERT_OK(hc_model_load(small_model(), &lo, &s.m));
        hc_context_params cp = { .n_ctx = 64, .n_batch = 8, .kv_type = HC_KV_F16 };
        HC_ASSERT_OK(hc_context_create(s.m, d, &cp, &s.c));
        CU_ASSERT_EQUAL(s.c->kv_dtype, HC_F16);
        decode(&s, pass ? got : want, NULL);
        close_session(&s, d);
    }
    CU_ASSERT_EQUAL(memcmp(want, got, sizeof got), 0);
}

/* Stage times by events every HC_STAGE_TIMING_PERIOD-th pass while the rank controller steers by
 * them, HC_STAGE_TIMING_UNSTEERED times more seldom when only reports read them: with branches
 * but no controller as without branches (async then pays for no more unreplayed passes). */
static void test_timing_period(void)
{
    const int n = 4 * HC_STAGE_TIMING_PERIOD; /* the controller's 4 timed passes leave rank 8 at >= 4 */
    const struct { const char *sched; double budget; int want; } runs[] = {
        { NULL, 0.0, n / (HC_STAGE_TIMING_PERIOD * HC_STAGE_TIMING_UNSTEERED) },
        { "async", 0.0, n / (HC_STAGE_TIMING_PERIOD * HC_STAGE_TIMING_UNSTEERED) },
        { "async", 100.0, n / HC_STAGE_TIMING_PERIOD },
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        hc_device *d = spy_device(0);
        session s;
        HC_ASSERT_OK(open_with(d, runs[r].sched, runs[r].budget, &s));
        const int32_t prompt[5] = { 1, 40, 41, 42, 43 };
        const float *logits;
        HC_ASSERT_OK(hc_decode(s.c, prompt, 5, 0, &logits));
        CU_ASSERT(s.c->stage_timed); /* the first pass */
        int timed = 0;
        for (int i = 0; i < n; i++) {
            int32_t tok = hc_argmax(logits, s.m->cfg.n_vocab);
            HC_ASSERT_OK(hc_decode(s.c, &tok, 1, 0, &logits));
            timed += s.c->stage_timed;
        }
        if (timed != runs[r].want)
            fprintf(stderr, "  %s, budget %g: %d timed passes of %d\n", runs[r].sched ? runs[r].sched : "none", runs[r].budget, timed, n);
        CU_ASSERT_EQUAL(timed, runs[r].want);
        close_session(&s, d);
    }
}

int main(void)
{
    static const hc_test_case cases[] = {
        { "async hand-off: copy queue, events, no allocation or drain per token", test_async_handoff },
        { "serial waits for the device before each host job", test_serial_is_serial },
        { "a format without a kernel is refused before upload", test_refused_before_upload },
        { "the device memory budget is checked before loading", test_memory_budget },
        { "f16 KV cache on a device with memory of its own", test_f16_kv },
        { "stage times taken more seldom when nothing steers by them", test_timing_period },
        { NULL, NULL },
    };
    return hc_test_run("device_handoff", cases);
}
