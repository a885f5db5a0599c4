/* emu_runtime.cpp: the CUDA runtime and cuBLAS calls of include/ on the CPU: "device" memory is host
 * memory kept in a table, so copies are checked against the allocations their direction names; a
 * stream's work waits in its queue until it must have run (a synchronization, an event waited for)
 * or the process left the device idle for a while, so a missing wait shows as stale data; a captured
 * stream's work becomes a graph's nodes, and the calls a capture forbids are refused; the BLAS calls
 * check their arguments as cuBLAS documents. */
#include "cuda_emu.h"

#include <time.h>

#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "cublas_v2.h"
#include "cuda_common.cuh"

struct hc_emu_graph_node {
    int kind;                   /* hc_emu::node_kind, a copy's with its direction (NODE_MEMCPY + 16 * kind) */
    std::function<void()> op;
};
struct hc_emu_graph {
    std::vector<hc_emu_graph_node> nodes; /* in stream order: each depends on the one before */
};
struct hc_emu_graph_exec {
    std::vector<hc_emu_graph_node> nodes;
};
struct hc_emu_stream {
    unsigned flags;
    std::deque<std::function<void()>> work; /* enqueued, not run yet */
    hc_emu_graph *capture;      /* being captured: work goes here instead */
    bool capture_invalid;       /* a call the capture forbids was made: EndCapture fails */
    int capture_mode;
    std::thread::id capture_thread;
    uint64_t queued;            /* work enqueued so far (under qlock) */
    std::atomic<uint64_t> ran;  /* of which run */
};
struct hc_emu_event {
    unsigned flags;
    cudaStream_t stream;        /* where it was last recorded */
    uint64_t recorded, reached; /* records so far; the last one the stream has run past */
    double ms;                  /* when the stream reached it */
};
struct hc_emu_blas {
    cudaStream_t stream;
};

namespace {

const size_t DEVICE_BYTES = (size_t)80 << 30; /* what cudaMemGetInfo reports: an 80 GiB GPU */

std::mutex lock;                               /* the tables: ops come from any host thread */
std::map<const char *, size_t> device_allocs;  /* start -> bytes */
std::map<const char *, size_t> host_allocs;   /* pinned: cudaMallocHost's */
std::recursive_mutex order;                   /* the queues: a wait may run other streams' work */
std::mutex qlock;                             /* the queues' contents (work, queued, capture): held briefly, so
                                                 that enqueuing never waits for work that runs (order) */
thread_local int tl_order_depth;              /* how often this thread holds order */
/* order held by this thread, counted (an eager enqueue does not wait for work while its thread holds it) */
struct order_lock {
    order_lock()
    {
        order.lock();
        tl_order_depth++;
    }
    ~order_lock()
    {
        tl_order_depth--;
        order.unlock();
    }
    order_lock(const order_lock &) = delete;
    order_lock &operator=(const order_lock &) = delete;
};
std::set<cudaStream_t> streams;
std::set<cudaEvent_t> events;
std::set<cublasHandle_t> handles;
std::set<cudaGraph_t> graphs;
std::set<cudaGraphExec_t> graph_execs;
size_t device_used;
/* the stream this thread captures in a mode other than relaxed: its unsafe calls are refused */
thread_local cudaStream_t tl_capture;

double now_ms()
{
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* 1 when [p, p + n) lies inside one allocation of the table (start -> bytes) */
bool inside(const std::map<const char *, size_t> &allocs, const void *p, size_t n)
{
    std::lock_guard<std::mutex> g(lock);
    auto it = allocs.upper_bound((const char *)p);
    if (it == allocs.begin()) return false;
    --it;
    return (const char *)p >= it->first && (const char *)p + n <= it->first + it->second;
}

bool on_device(const void *p, size_t n) { return inside(device_allocs, p, n); }
bool pinned(const void *p) { return inside(host_allocs, p, 1); }    /* cudaMallocHost's memory */
bool on_host(const void *p) { return !inside(device_allocs, p, 1); } /* in no device allocation */

bool stream_ok(cudaStream_t s)
{
    std::lock_guard<std::mutex> g(lock);
    return !s || streams.count(s);
}

/* h is a live handle of its table (not null) */
template <class T> bool known(const std::set<T> &table, T h)
{
    std::lock_guard<std::mutex> g(lock);
    return h && table.count(h);
}

bool handle_ok(cublasHandle_t h) { return known(handles, h); }
bool event_ok(cudaEvent_t e) { return known(events, e); }
bool graph_ok(cudaGraph_t g) { return known(graphs, g); }
bool exec_ok(cudaGraphExec_t e) { return known(graph_execs, e); }

/* When work was last enqueued or run (ms, now_ms): the device's idle watch (idle_watch) reads it. */
std::atomic<double> last_activity_ms;

/* Runs stream s's queued work: all of it, or until event e reaches record number gen. */
void run_stream(cudaStream_t s, cudaEvent_t e = nullptr, uint64_t gen = 0)
{
    order_lock g;
    last_activity_ms = now_ms();
    while (s && !(e && e->reached >= gen)) {
        std::function<void()> op;
        {
            std::lock_guard<std::mutex> q(qlock);
            if (s->work.empty()) break;
            op = std::move(s->work.front());
            s->work.pop_front();
        }
        op();
        s->ran++;
    }
}

void run_all()
{
    order_lock g;
    std::vector<cudaStream_t> all;
    {
        std::lock_guard<std::mutex> t(lock); /* the table, not held while the work runs */
        all.assign(streams.begin(), streams.end());
    }
    for (cudaStream_t s : all) run_stream(s);
}

/* HC_EMU_STREAMS=eager: a stream's work runs as soon as it is enqueued (after what was queued before it), as early
   as a GPU could run it, instead of as late as it must (lazy, the default). A host that writes pinned
   memory after enqueuing the copy that reads it passes lazily and fails eagerly; one that reuses a pinned
   buffer before the copy that reads it ran fails lazily. */
std::atomic<int> eager_mode{-1}; /* 1 eager, 0 lazy, -1 HC_EMU_STREAMS not read yet */

/* mode: 1 eager, 0 lazy (also for none), -1 neither */
int streams_mode(const char *mode) { return !mode || !strcmp(mode, "lazy") ? 0 : !strcmp(mode, "eager") ? 1 : -1; }

bool eager()
{
    if (eager_mode < 0) {
        const char *v = getenv("HC_EMU_STREAMS");
        int m = streams_mode(v && *v ? v : nullptr);
        if (m < 0) fprintf(stderr, "cuda_emu: HC_EMU_STREAMS='%s' is neither lazy nor eager; running lazily\n", v);
        eager_mode = m == 1;
    }
    return eager_mode == 1;
}

/* A GPU runs its queues on its own. Here work runs when something waits for it, and the rest of the
 * time it is late: but a process whose host threads all wait outside CUDA (a host thread spinning on
 * a flag that queued work would set, the others waiting for it) would never let it run. So when
 * work has waited in a queue and no thread has enqueued or run any for IDLE_MS, this thread runs
 * every queue, as the GPU would long have done. Started with the first stream; stopped at exit. */
class idle_watch {
  public:
    static constexpr double IDLE_MS = 20.0;
    void start()
    {
        std::call_once(once, [this] { thread = std::thread([this] { loop(); }); });
    }
    /* eager: run the queues now */
    void kick()
    {
        {
            std::lock_guard<std::mutex> g(m);
            kicked = true;
        }
        cv.notify_all();
    }
    ~idle_watch()
    {
        {
            std::lock_guard<std::mutex> g(m);
            stop = true;
        }
        cv.notify_all();
        if (thread.joinable()) thread.join();
    }

  private:
    void loop();
    std::once_flag once;
    std::thread thread;
    std::mutex m;
    std::condition_variable cv;
    bool stop = false, kicked = false;
};

/* The host (or a stream) needs event e's record number gen reached: its stream runs up to it. */
void reach(cudaEvent_t e, uint64_t gen)
{
    order_lock g;
    if (e->reached < gen) run_stream(e->stream, e, gen);
}

cudaError_t complain(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cudaError_t complain(cudaError_t e, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cuda_emu: %s\n", msg);
    hc_emu::fault(msg);
    return hc_emu::fail(e);
}

/* A call that waits for or allocates on the device, made by a thread that is capturing a stream (not
   relaxed): refused, and the capture invalidated, as CUDA does. */
cudaError_t capture_forbids(const char *call)
{
    if (!tl_capture) return cudaSuccess;
    tl_capture->capture_invalid = true;
    return complain(cudaErrorStreamCaptureUnsupported, "%s while this thread captures a stream", call);
}

/* Work that may not go into a capture (an event, a pageable copy): refused, the capture invalidated. */
cudaError_t capture_refuses(cudaStream_t s, cudaError_t e, const char *what)
{
    s->capture_invalid = true;
    return complain(e, "%s on a stream being captured", what);
}

long n_captures, n_instantiations, n_updates, n_graph_launches, n_recorded;

} // namespace

/* HC_EMU_STATS=1: at exit, what the process asked of the device (how many launches a decode step
   makes, for one: the host's cost per token on a GPU) */
namespace {
long n_enqueued, n_copies, n_blas, n_syncs;
struct stats_at_exit {
    ~stats_at_exit()
    {
        const char *v = getenv("HC_EMU_STATS");
        if (v && *v && strcmp(v, "0") != 0)
            fprintf(stderr, "cuda_emu: %ld kernel launches, %ld copies, %ld cuBLAS calls, %ld host synchronizations, %ld stream ops; "
                            "%ld of them recorded in %ld graphs captured, %ld instantiated, %ld updated, %ld launched\n",
                    hc_emu::counters().launches, n_copies, n_blas, n_syncs, n_enqueued, n_recorded, n_captures, n_instantiations,
                    n_updates, n_graph_launches);
    }
} stats_printer;
} // namespace

void idle_watch::loop()
{
    std::unique_lock<std::mutex> g(m);
    for (;;) {
        cv.wait_for(g, std::chrono::milliseconds(eager() ? 1 : 5), [this] { return stop || kicked; });
        if (stop) return;
        kicked = false;
        if (!eager() && now_ms() - last_activity_ms < IDLE_MS) continue;
        std::unique_lock<std::recursive_mutex> o(order, std::try_to_lock); /* held: some thread runs work */
        if (!o.owns_lock()) continue;
        bool waiting = false;
        {
            std::lock_guard<std::mutex> t(lock);
            std::lock_guard<std::mutex> q(qlock);
            for (cudaStream_t s : streams) waiting |= !s->work.empty();
        }
        if (!waiting) continue;
        g.unlock(); /* exit does not wait for the lock while the work runs */
        run_all();
        g.lock();
    }
}

namespace {
idle_watch watch; /* after the tables it reads: destroyed (joined) before them */
}

/* eager: the watch thread runs s's work, and the caller waits until the first target pieces of it ran
   (a GPU's queue starts at once), or until a kernel waits for the host (a flag the host sets after the
   call, which the GPU waits for beside the host), at most EAGER_WAIT_MS. Not while this thread holds
   order (the watch thread needs it): then the work runs right after. */
static std::atomic<uint64_t> device_waits; /* hc_emu_device_waits's calls */

void hc_emu_device_waits(void) { device_waits++; }

extern "C" int hc_emu_set_streams(const char *mode)
{
    int m = streams_mode(mode);
    if (m < 0) return -1;
    eager_mode = m;
    return 0;
}

static void ran_soon(cudaStream_t s, uint64_t target)
{
    const double EAGER_WAIT_MS = 1000.0;
    if (tl_order_depth) return;
    watch.kick();
    double t0 = now_ms();
    uint64_t w0 = device_waits;
    while (s->ran < target && device_waits == w0 && now_ms() - t0 < EAGER_WAIT_MS)
        std::this_thread::sleep_for(std::chrono::microseconds(20));
}

void hc_emu::enqueue(cudaStream_t s, std::function<void()> op, int kind)
{
    n_enqueued++;
    last_activity_ms = now_ms();
    if (!s) {
        if (tl_capture) { /* the legacy stream would join the capture implicitly: CUDA refuses it */
            tl_capture->capture_invalid = true;
            complain(cudaErrorStreamCaptureImplicit, "work on the legacy stream while this thread captures a stream");
            return;
        }
        op();
        return;
    }
    uint64_t target;
    {
        std::lock_guard<std::mutex> q(qlock);
        if (s->capture) {
            s->capture->nodes.push_back({ kind, std::move(op) });
            n_recorded++;
            return;
        }
        s->work.push_back(std::move(op));
        target = ++s->queued;
    }
    if (eager()) ran_soon(s, target);
}


extern "C" {

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureIsolation: return "dependency created on uncaptured work in another stream";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    case cudaErrorGraphExecUpdateFailure: return "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update";
    }
    return "unknown error";
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureIsolation: return "cudaErrorStreamCaptureIsolation";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    case cudaErrorGraphExecUpdateFailure: return "cudaErrorGraphExecUpdateFailure";
    }
    return "cudaErrorUnknown";
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : hc_emu::fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device)
{
    if (device != 0) return hc_emu::fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "hcinfer CUDA emulator (CPU)");
    prop->totalGlobalMem = DEVICE_BYTES;
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 132;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v)
{
    *v = 13000;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v)
{
    *v = 13000;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    std::lock_guard<std::mutex> g(lock);
    *total_bytes = DEVICE_BYTES;
    *free_bytes = device_used < DEVICE_BYTES ? DEVICE_BYTES - device_used : 0;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = nullptr;
    if (capture_forbids("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
    {
        std::lock_guard<std::mutex> g(lock);
        if (n > DEVICE_BYTES - device_used) return hc_emu::fail(cudaErrorMemoryAllocation);
    }
    char *q = (char *)aligned_alloc(256, (n + 255) / 256 * 256 + 256); /* cudaMalloc's alignment */
    if (!q) return hc_emu::fail(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> g(lock);
    device_allocs[q] = n ? n : 1;
    device_used += n ? n : 1;
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    if (capture_forbids("cudaFree")) return cudaErrorStreamCaptureUnsupported;
    run_all(); /* cudaFree waits for the device */
    std::lock_guard<std::mutex> g(lock);
    auto it = device_allocs.find((const char *)p);
    if (it == device_allocs.end()) {
        fprintf(stderr, "cuda_emu: cudaFree(%p): not a device allocation\n", p);
        return hc_emu::fail(cudaErrorInvalidValue);
    }
    device_used -= it->second;
    device_allocs.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t n)
{
    *p = nullptr;
    if (capture_forbids("cudaMallocHost")) return cudaErrorStreamCaptureUnsupported;
    *p = malloc(n ? n : 1);
    if (!*p) return hc_emu::fail(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> g(lock);
    host_allocs[(const char *)*p] = n ? n : 1;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p)
{
    if (!p) return cudaSuccess;
    if (capture_forbids("cudaFreeHost")) return cudaErrorStreamCaptureUnsupported;
    run_all(); /* as cudaFree */
    std::lock_guard<std::mutex> g(lock);
    if (!host_allocs.erase((const char *)p)) {
        fprintf(stderr, "cuda_emu: cudaFreeHost(%p): not from cudaMallocHost\n", p);
        return hc_emu::fail(cudaErrorInvalidValue);
    }
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t s)
{
    if (!stream_ok(s)) return complain(cudaErrorInvalidResourceHandle, "cudaMemsetAsync on a stream that does not exist");
    if (n && !on_device(p, n)) return complain(cudaErrorInvalidValue, "cudaMemsetAsync of %zu bytes at %p: not device memory", n, p);
    hc_emu::enqueue(s, [=] { memset(p, value, n); }, hc_emu::NODE_MEMSET);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s)
{
    if (!stream_ok(s)) return complain(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync on a stream that does not exist");
    if (!n) return cudaSuccess;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind > cudaMemcpyDeviceToDevice) return complain(cudaErrorInvalidValue, "cudaMemcpyAsync: kind %d", (int)kind);
    if (dst_dev ? !on_device(dst, n) : !on_host(dst))
        return complain(cudaErrorInvalidValue, "cudaMemcpyAsync (kind %d) of %zu bytes: the destination %p is not %s memory", (int)kind,
                        n, dst, dst_dev ? "device" : "host");
    if (src_dev ? !on_device(src, n) : !on_host(src))
        return complain(cudaErrorInvalidValue, "cudaMemcpyAsync (kind %d) of %zu bytes: the source %p is not %s memory", (int)kind, n,
                        src, src_dev ? "device" : "host");
    if (s && s->capture && ((!src_dev && !pinned(src)) || (!dst_dev && !pinned(dst))))
        return capture_refuses(s, cudaErrorStreamCaptureUnsupported, "cudaMemcpyAsync of pageable host memory");
    n_copies++;
    int node = hc_emu::NODE_MEMCPY + 16 * (int)kind;
    if (src_dev || pinned(src)) { /* read when the copy runs */
        hc_emu::enqueue(s, [=] { memmove(dst, src, n); }, node);
    } else { /* pageable memory is read before the call returns (staged), as CUDA does */
        std::vector<char> staged((const char *)src, (const char *)src + n);
        hc_emu::enqueue(s, [=] { memmove(dst, staged.data(), n); }, node);
    }
    if (!dst_dev && !pinned(dst)) run_stream(s); /* to pageable memory: done when the call returns */
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    *s = new hc_emu_stream{ flags, {}, nullptr, false, 0, {}, 0, {0} };
    watch.start();
    std::lock_guard<std::mutex> g(lock);
    streams.insert(*s);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (!s || !stream_ok(s)) return hc_emu::fail(cudaErrorInvalidResourceHandle);
    if (capture_forbids("cudaStreamDestroy")) return cudaErrorStreamCaptureUnsupported;
    if (s->capture) return complain(cudaErrorIllegalState, "cudaStreamDestroy of a stream being captured");
    run_stream(s); /* its work completes first */
    order_lock o;
    std::lock_guard<std::mutex> g(lock);
    streams.erase(s);
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    if (!stream_ok(s)) return complain(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize of a stream that does not exist");
    if (capture_forbids("cudaStreamSynchronize")) return cudaErrorStreamCaptureUnsupported;
    if (s && s->capture) return capture_refuses(s, cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize");
    n_syncs++;
    run_stream(s);
    return cudaSuccess;
}

/* s's later work runs after e's last record: when s runs this point, e's stream runs up to it */
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned)
{
    if (!stream_ok(s) || !event_ok(e)) return complain(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: no such stream or event");
    if (s && s->capture) return capture_refuses(s, cudaErrorStreamCaptureIsolation, "cudaStreamWaitEvent");
    uint64_t gen = e->recorded;
    if (gen) hc_emu::enqueue(s, [=] { reach(e, gen); }, hc_emu::NODE_WAIT);
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    *e = new hc_emu_event{ flags, nullptr, 0, 0, 0.0 };
    std::lock_guard<std::mutex> g(lock);
    events.insert(*e);
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    if (!event_ok(e)) return hc_emu::fail(cudaErrorInvalidResourceHandle);
    order_lock o;
    reach(e, e->recorded); /* the marks still queued refer to it */
    std::lock_guard<std::mutex> g(lock);
    events.erase(e);
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    if (!stream_ok(s) || !event_ok(e)) return complain(cudaErrorInvalidResourceHandle, "cudaEventRecord: no such stream or event");
    if (s && s->capture) return capture_refuses(s, cudaErrorStreamCaptureUnsupported, "cudaEventRecord");
    order_lock o;
    if (e->stream && e->stream != s) reach(e, e->recorded); /* re-recorded elsewhere: the old mark first */
    uint64_t gen = ++e->recorded;
    e->stream = s;
    hc_emu::enqueue(s, [=] {
        e->ms = now_ms();
        e->reached = gen;
    }, hc_emu::NODE_EVENT);
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    if (!event_ok(e)) return complain(cudaErrorInvalidResourceHandle, "cudaEventSynchronize of an event that does not exist");
    if (capture_forbids("cudaEventSynchronize")) return cudaErrorStreamCaptureUnsupported;
    n_syncs++;
    reach(e, e->recorded);
    return cudaSuccess;
}

/* Both events must be done (cudaErrorNotReady otherwise): a caller that asks too early is told. */
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!event_ok(start) || !event_ok(end)) return complain(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: no such event");
    if ((start->flags | end->flags) & cudaEventDisableTiming)
        return complain(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime of an event created with cudaEventDisableTiming");
    if (!start->recorded || !end->recorded) return hc_emu::fail(cudaErrorInvalidResourceHandle);
    order_lock o;
    if (start->reached < start->recorded || end->reached < end->recorded)
        return complain(cudaErrorNotReady, "cudaEventElapsedTime of an event its stream has not reached yet");
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}

/* ---------------- stream capture and graphs ---------------- */

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode)
{
    if (!s) return complain(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture of the legacy stream");
    if (!stream_ok(s)) return complain(cudaErrorInvalidResourceHandle, "cudaStreamBeginCapture of a stream that does not exist");
    if (mode < cudaStreamCaptureModeGlobal || mode > cudaStreamCaptureModeRelaxed)
        return complain(cudaErrorInvalidValue, "cudaStreamBeginCapture: mode %d", (int)mode);
    order_lock o;
    if (s->capture) return complain(cudaErrorIllegalState, "cudaStreamBeginCapture of a stream already being captured");
    if (mode != cudaStreamCaptureModeRelaxed && tl_capture)
        return complain(cudaErrorIllegalState, "cudaStreamBeginCapture: this thread captures another stream already (not emulated)");
    {
        std::lock_guard<std::mutex> q(qlock);
        s->capture = new hc_emu_graph;
    }
    s->capture_invalid = false;
    s->capture_mode = (int)mode;
    s->capture_thread = std::this_thread::get_id();
    if (mode != cudaStreamCaptureModeRelaxed) tl_capture = s;
    n_captures++;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph)
{
    *graph = nullptr;
    if (!s || !stream_ok(s)) return complain(cudaErrorInvalidResourceHandle, "cudaStreamEndCapture: no such stream");
    order_lock o;
    if (!s->capture) return complain(cudaErrorIllegalState, "cudaStreamEndCapture of a stream that is not being captured");
    if (s->capture_mode != cudaStreamCaptureModeRelaxed && s->capture_thread != std::this_thread::get_id())
        return complain(cudaErrorStreamCaptureWrongThread, "cudaStreamEndCapture from a thread that did not begin the capture");
    hc_emu_graph *g = s->capture;
    {
        std::lock_guard<std::mutex> q(qlock);
        s->capture = nullptr;
    }
    if (tl_capture == s) tl_capture = nullptr;
    if (s->capture_invalid) { /* the refused call said why */
        delete g;
        return hc_emu::fail(cudaErrorStreamCaptureInvalidated);
    }
    std::lock_guard<std::mutex> t(lock);
    graphs.insert(g);
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status)
{
    if (!stream_ok(s)) return complain(cudaErrorInvalidResourceHandle, "cudaStreamIsCapturing: no such stream");
    order_lock o;
    *status = !s || !s->capture ? cudaStreamCaptureStatusNone
              : s->capture_invalid ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    *exec = nullptr;
    if (!graph_ok(graph)) return complain(cudaErrorInvalidValue, "cudaGraphInstantiate of a graph that does not exist");
    if (flags) return complain(cudaErrorInvalidValue, "cudaGraphInstantiate: flags %llu are not emulated", flags);
    hc_emu_graph_exec *e = new hc_emu_graph_exec{ graph->nodes };
    std::lock_guard<std::mutex> t(lock);
    graph_execs.insert(e);
    n_instantiations++;
    *exec = e;
    return cudaSuccess;
}

/* As CUDA: the same number of nodes, each of the same type (a copy in the same direction); kernels'
   arguments and launch shapes, and copies' addresses and sizes may change. All or nothing. */
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, cudaGraphExecUpdateResultInfo *info)
{
    if (!exec_ok(exec) || !graph_ok(graph)) return complain(cudaErrorInvalidValue, "cudaGraphExecUpdate: no such graph");
    info->errorNode = info->errorFromNode = nullptr;
    info->result = cudaGraphExecUpdateSuccess;
    if (exec->nodes.size() != graph->nodes.size()) info->result = cudaGraphExecUpdateErrorTopologyChanged;
    for (size_t i = 0; i < graph->nodes.size() && info->result == cudaGraphExecUpdateSuccess; i++)
        if (exec->nodes[i].kind != graph->nodes[i].kind)
            info->result = (exec->nodes[i].kind & 15) == (graph->nodes[i].kind & 15) ? cudaGraphExecUpdateErrorParametersChanged
                                                                                     : cudaGraphExecUpdateErrorNodeTypeChanged;
    if (info->result != cudaGraphExecUpdateSuccess) return hc_emu::fail(cudaErrorGraphExecUpdateFailure);
    for (size_t i = 0; i < graph->nodes.size(); i++) exec->nodes[i].op = graph->nodes[i].op;
    n_updates++;
    return cudaSuccess;
}

/* The graph's nodes join the stream's queue, in order, as one launch. */
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s)
{
    if (!exec_ok(exec)) return complain(cudaErrorInvalidValue, "cudaGraphLaunch of a graph that does not exist");
    if (!stream_ok(s)) return complain(cudaErrorInvalidResourceHandle, "cudaGraphLaunch on a stream that does not exist");
    if (s && s->capture) return capture_refuses(s, cudaErrorStreamCaptureUnsupported, "cudaGraphLaunch (a child graph, not emulated)");
    n_graph_launches++;
    if (!s) {
        for (const hc_emu_graph_node &n : exec->nodes) n.op();
        return cudaSuccess;
    }
    uint64_t target;
    {
        std::lock_guard<std::mutex> q(qlock);
        for (const hc_emu_graph_node &n : exec->nodes) s->work.push_back(n.op);
        target = s->queued += exec->nodes.size();
    }
    if (eager()) ran_soon(s, target);
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    std::lock_guard<std::mutex> t(lock);
    if (!graph || !graphs.erase(graph)) return hc_emu::fail(cudaErrorInvalidValue);
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    std::lock_guard<std::mutex> t(lock);
    if (!exec || !graph_execs.erase(exec)) return hc_emu::fail(cudaErrorInvalidValue);
    delete exec; /* launches already queued keep their own copies of the nodes */
    return cudaSuccess;
}

void hc_emu_graph_counts(long *captures, long *instantiations, long *updates, long *launches)
{
    *captures = n_captures;
    *instantiations = n_instantiations;
    *updates = n_updates;
    *launches = n_graph_launches;
}

/* ---------------- cuBLAS ---------------- */

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = new hc_emu_blas{ nullptr };
    std::lock_guard<std::mutex> g(lock);
    handles.insert(*h);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    std::lock_guard<std::mutex> g(lock);
    if (!h || !handles.erase(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    if (!h || !stream_ok(s)) return CUBLAS_STATUS_INVALID_VALUE;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

} // extern "C"

namespace {

cublasStatus_t blas_complain(cublasStatus_t st, const char *what)
{
    fprintf(stderr, "cuda_emu: %s\n", what);
    hc_emu::fault(what);
    return st;
}

/* C (m x n, column-major, ldc) = alpha op(A) op(B) + beta C with op(A) m x k and op(B) k x n; the
 * elements read through get_a / get_b; beta 0: C is not read (as cuBLAS). Arguments as cuBLAS checks
 * them, and the operands must lie in device memory. */
template <class GA, class GB>
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void *A,
                    size_t asz, int lda, const void *B, size_t bsz, int ldb, float beta, float *C, int ldc, GA get_a, GB get_b)
{
    if (!handle_ok(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0) return blas_complain(CUBLAS_STATUS_INVALID_VALUE, "gemm: a negative size");
    int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
    if (lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) || ldc < (m > 1 ? m : 1))
        return blas_complain(CUBLAS_STATUS_INVALID_VALUE, "gemm: a leading dimension below its matrix's rows");
    if (!m || !n) return CUBLAS_STATUS_SUCCESS;
    int a_cols = ta == CUBLAS_OP_N ? k : m, b_cols = tb == CUBLAS_OP_N ? n : k;
    if (k && (!on_device(A, ((size_t)(a_cols - 1) * lda + a_rows) * asz) || !on_device(B, ((size_t)(b_cols - 1) * ldb + b_rows) * bsz)))
        return blas_complain(CUBLAS_STATUS_INVALID_VALUE, "gemm: A or B reaches outside its device allocation");
    if (!on_device(C, ((size_t)(n - 1) * ldc + m) * sizeof(float)))
        return blas_complain(CUBLAS_STATUS_INVALID_VALUE, "gemm: C reaches outside its device allocation");
    n_blas++;
    hc_emu::enqueue(h->stream, [=] { /* in the handle's stream; alpha and beta were read now (host pointers) */
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    size_t ai = ta == CUBLAS_OP_N ? (size_t)i + (size_t)p * lda : (size_t)p + (size_t)i * lda;
                    size_t bi = tb == CUBLAS_OP_N ? (size_t)p + (size_t)j * ldb : (size_t)j + (size_t)p * ldb;
                    s += (double)get_a(A, ai) * get_b(B, bi);
                }
                float *c = C + (size_t)i + (size_t)j * ldc;
                *c = (float)(alpha * s + (beta != 0.0f ? (double)beta * *c : 0.0));
            }
    }, hc_emu::NODE_BLAS);
    return CUBLAS_STATUS_SUCCESS;
}

float get_f32(const void *p, size_t i) { return ((const float *)p)[i]; }
float get_f16(const void *p, size_t i) { return hc_cu_f16_to_f32(((const uint16_t *)p)[i]); }

} // namespace

extern "C" {

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *alpha,
                           const float *A, int lda, const float *B, int ldb, const float *beta, float *C, int ldc)
{
    return gemm(h, ta, tb, m, n, k, *alpha, A, 4, lda, B, 4, ldb, *beta, C, ldc, get_f32, get_f32);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb, const void *beta,
                            void *C, cudaDataType ct, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t)
{
    if (compute != CUBLAS_COMPUTE_32F || ct != CUDA_R_32F || at != bt || (at != CUDA_R_16F && at != CUDA_R_32F))
        return blas_complain(CUBLAS_STATUS_NOT_SUPPORTED, "GemmEx: a type combination that is not emulated");
    if (at == CUDA_R_16F)
        return gemm(h, ta, tb, m, n, k, *(const float *)alpha, A, 2, lda, B, 2, ldb, *(const float *)beta, (float *)C, ldc, get_f16,
                    get_f16);
    return gemm(h, ta, tb, m, n, k, *(const float *)alpha, A, 4, lda, B, 4, ldb, *(const float *)beta, (float *)C, ldc, get_f32,
                get_f32);
}

} // extern "C"
