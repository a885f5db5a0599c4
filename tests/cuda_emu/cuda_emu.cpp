/* cuda_emu.cpp: the fiber scheduler behind cuda_emu.h: a launch runs its blocks one after another, each
 * block's threads as fibers on this thread, switching only at __syncthreads and shuffles (HC_EMU_ORDER: in
 * which order). */
#include "cuda_emu.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
/* AddressSanitizer is told of every switch between stacks, so that the kernels' accesses are
   checked on the fibers' stacks as on any other */
#define HC_EMU_ASAN 1
#endif

/* ---- switching stacks: on x86-64 six callee-saved registers and the stack pointer (ucontext's
   swapcontext would also save the signal mask: a system call at every switch); elsewhere ucontext ---- */
#if defined(__x86_64__)
extern "C" void hc_emu_switch(void **save_sp, void *to_sp);
asm(".text\n"
    ".globl hc_emu_switch\n"
    ".type hc_emu_switch,@function\n"
    "hc_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size hc_emu_switch,.-hc_emu_switch\n"
    ".section .note.GNU-stack,\"\",@progbits\n"
    ".text\n");

namespace {
struct emu_ctx {
    void *sp;
};

/* A context that starts fn on the stack [base, base + size): its first switch "returns" into fn. */
void ctx_make(emu_ctx *c, char *base, size_t size, void (*fn)())
{
    uintptr_t top = ((uintptr_t)(base + size)) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = nullptr;        /* fn's return address: fn never returns */
    *--sp = (void *)fn;     /* where hc_emu_switch's ret goes; fn then sees rsp % 16 == 8, as after a call */
    for (int i = 0; i < 6; i++) *--sp = nullptr; /* rbp rbx r12 r13 r14 r15 */
    c->sp = sp;
}

void ctx_swap(emu_ctx *from, emu_ctx *to) { hc_emu_switch(&from->sp, to->sp); }
} // namespace
#else
namespace {
struct emu_ctx {
    ucontext_t uc;
};

void ctx_make(emu_ctx *c, char *base, size_t size, void (*fn)())
{
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = base;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, fn, 0);
}

void ctx_swap(emu_ctx *from, emu_ctx *to) { swapcontext(&from->uc, &to->uc); }
} // namespace
#endif

namespace hc_emu {
namespace {

enum fiber_state { RUNNABLE, AT_SYNC, AT_SHUFFLE, DONE };

struct fiber {
    emu_ctx ctx;
    char *stack;
    thread_ctx tc;
    fiber_state st;
    int warp, lane;
    void *fake_stack; /* AddressSanitizer's, while the fiber is switched out */
};

constexpr size_t STACK_BYTES = 128 << 10;     /* the kernels keep small arrays of registers */
constexpr size_t MAX_SHARED = 48 << 10;       /* dynamic shared memory without opting in */

emu_ctx scheduler;
std::vector<fiber> fibers;
std::vector<char> stacks;
std::vector<unsigned char> dyn;
std::vector<uint32_t> slots;                  /* a word per lane, for the shuffles */
/* the running block's static shared arrays (__shared__ T name[N]), by their declaration's key */
struct static_array {
    const void *key;
    size_t bytes;
    std::unique_ptr<max_align_t[]> mem;
};
std::vector<static_array> statics;
fiber *cur;
dim3 cur_block, cur_grid;
const std::function<void()> *cur_body;
stats counts;
cudaError_t last_error = cudaSuccess;

/* HC_EMU_ORDER: the order a launch's blocks run in, and a block's threads from one switch point to the
   next: "forward" (the default: by index), "reverse", or a number, the seed of orders drawn anew for each
   launch and each round. A GPU keeps no order, so a kernel whose result depends on it (a thread reading
   another's write without a barrier between, a block reading another block's output) gives other results
   or faults under another order: forward catches a lower index reading what a higher one writes, reverse
   the other way round. */
enum order_kind { ORDER_FORWARD, ORDER_REVERSE, ORDER_SHUFFLE };
order_kind order = ORDER_FORWARD;
uint64_t order_state;
std::vector<unsigned> block_order, thread_order;

/* spec: forward, reverse or a seed; false (and the order unchanged) for anything else */
bool order_set(const char *spec)
{
    if (!spec || !strcmp(spec, "forward")) order = ORDER_FORWARD;
    else if (!strcmp(spec, "reverse")) order = ORDER_REVERSE;
    else {
        char *end;
        unsigned long long seed = strtoull(spec, &end, 10);
        if (!*spec || *end) return false;
        order = ORDER_SHUFFLE;
        order_state = seed;
    }
    return true;
}

std::mutex launch_lock; /* launches may come from any host thread; the fibers are shared */
bool order_read; /* HC_EMU_ORDER read (or hc_emu_set_order called) */

void order_init()
{
    if (order_read) return;
    order_read = true;
    const char *v = getenv("HC_EMU_ORDER");
    if (v && *v && !order_set(v))
        fprintf(stderr, "cuda_emu: HC_EMU_ORDER='%s' is none of forward, reverse or a seed (a number); running forward\n", v);
}

/* splitmix64: the shuffles' numbers */
uint64_t order_next()
{
    uint64_t z = (order_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* o: 0..n-1 in the order HC_EMU_ORDER asks for */
void order_fill(std::vector<unsigned> &o, unsigned n)
{
    o.resize(n);
    for (unsigned i = 0; i < n; i++) o[i] = order == ORDER_REVERSE ? n - 1 - i : i;
    if (order == ORDER_SHUFFLE)
        for (unsigned i = n; i > 1; i--) std::swap(o[i - 1], o[order_next() % i]);
}
#ifdef HC_EMU_ASAN
const void *sched_bottom; /* the scheduler's stack, as AddressSanitizer reports it */
size_t sched_size;
#endif

/* Around each switch: from the scheduler into fiber f, and from a fiber back (f: the fiber leaving,
   dying: it will not come back). */
void to_fiber(fiber &f)
{
#ifdef HC_EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, STACK_BYTES);
    ctx_swap(&scheduler, &f.ctx);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    ctx_swap(&scheduler, &f.ctx);
#endif
}

void arrived()
{
#ifdef HC_EMU_ASAN
    __sanitizer_finish_switch_fiber(cur->fake_stack, &sched_bottom, &sched_size);
#endif
}

void record(cudaError_t e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(counts.last_fault, sizeof counts.last_fault, fmt, ap);
    va_end(ap);
    counts.faults++;
    last_error = e;
}

void entry()
{
    cur->fake_stack = nullptr;
    arrived();
    (*cur_body)();
    cur->st = DONE;
#ifdef HC_EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, sched_bottom, sched_size); /* this stack is done with */
#endif
    ctx_swap(&cur->ctx, &scheduler); /* never comes back */
}

void yield(fiber_state st)
{
    fiber *f = cur;
    f->st = st;
#ifdef HC_EMU_ASAN
    __sanitizer_start_switch_fiber(&f->fake_stack, sched_bottom, sched_size);
#endif
    ctx_swap(&f->ctx, &scheduler);
    cur = f;
    arrived();
}

/* Runs one block to its end; false when its threads stop at barriers that cannot complete. */
bool run_block(unsigned nt)
{
    for (;;) {
        if (order == ORDER_SHUFFLE || thread_order.size() != nt) order_fill(thread_order, nt);
        for (unsigned i : thread_order)
            if (fibers[i].st == RUNNABLE) {
                cur = &fibers[i];
                to_fiber(fibers[i]);
            }
        unsigned done = 0, at_sync = 0, at_shuffle = 0;
        for (unsigned i = 0; i < nt; i++) {
            done += fibers[i].st == DONE;
            at_sync += fibers[i].st == AT_SYNC;
            at_shuffle += fibers[i].st == AT_SHUFFLE;
        }
        if (done == nt) return true;
        bool released = false;
        for (unsigned w = 0; w * 32 < nt; w++) { /* a warp goes on once all its lanes are at the shuffle */
            unsigned n = nt - 32 * w < 32 ? nt - 32 * w : 32, at = 0, gone = 0;
            for (unsigned l = 0; l < n; l++) {
                at += fibers[32 * w + l].st == AT_SHUFFLE;
                gone += fibers[32 * w + l].st == DONE;
            }
            if (at == 0 || at + gone < n) continue;
            if (gone || n < 32)
                record(cudaErrorLaunchFailure, "a shuffle in warp %u of block (%u,%u,%u) with %u of 32 lanes (the rest exited or do not exist)",
                       w, fibers[32 * w].tc.block_idx.x, fibers[32 * w].tc.block_idx.y, fibers[32 * w].tc.block_idx.z, at);
            for (unsigned l = 0; l < n; l++)
                if (fibers[32 * w + l].st == AT_SHUFFLE) fibers[32 * w + l].st = RUNNABLE;
            released = true;
        }
        if (!released && at_sync && at_sync + done == nt) { /* exited threads count as arrived */
            for (unsigned i = 0; i < nt; i++)
                if (fibers[i].st == AT_SYNC) fibers[i].st = RUNNABLE;
            released = true;
        }
        if (!released) {
            record(cudaErrorLaunchFailure, "block (%u,%u,%u) hangs: %u threads at __syncthreads, %u at shuffles, %u exited",
                   fibers[0].tc.block_idx.x, fibers[0].tc.block_idx.y, fibers[0].tc.block_idx.z, at_sync, at_shuffle, done);
            return false;
        }
    }
}

} // namespace

thread_ctx *current() { return &cur->tc; }
const dim3 &block_dim() { return cur_block; }
const dim3 &grid_dim() { return cur_grid; }
void *dyn_shared() { return dyn.data(); }

void *block_shared(const void *key, size_t bytes)
{
    for (static_array &a : statics)
        if (a.key == key) return a.mem.get();
    size_t n = (bytes + sizeof(max_align_t) - 1) / sizeof(max_align_t), total = bytes + dyn.size();
    for (const static_array &a : statics) total += a.bytes;
    if (total > MAX_SHARED) fault("a block's static and dynamic shared memory exceed 48 KiB");
    statics.push_back({key, bytes, std::unique_ptr<max_align_t[]>(new max_align_t[n ? n : 1])});
    memset(statics.back().mem.get(), 0xff, n * sizeof(max_align_t)); /* garbage (NaN), as dynamic shared memory */
    return statics.back().mem.get();
}
stats &counters() { return counts; }
void fault(const char *what) { record(cudaErrorLaunchFailure, "%s", what); }

void syncthreads() { yield(AT_SYNC); }

uint32_t shuffle(uint32_t v, int kind, int arg)
{
    fiber *f = cur;
    const unsigned base = 32u * (unsigned)f->warp;
    slots[base + (unsigned)f->lane] = v;
    yield(AT_SHUFFLE); /* every lane has written */
    int src = kind == 0 ? (f->lane ^ arg) : f->lane + arg;
    uint32_t r = src >= 0 && src < 32 ? slots[base + (unsigned)src] : v;
    yield(AT_SHUFFLE); /* every lane has read: the slots may be written again */
    return r;
}

bool launch_ok(dim3 grid, dim3 block, size_t shared_bytes)
{
    unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    if (!nt || nt > 1024 || block.z > 64 || !grid.x || !grid.y || !grid.z || grid.x > 2147483647u || grid.y > 65535 ||
        grid.z > 65535) {
        record(cudaErrorInvalidConfiguration, "launch of grid (%u,%u,%u) x block (%u,%u,%u): outside the hardware's limits",
               grid.x, grid.y, grid.z, block.x, block.y, block.z);
        return false;
    }
    if ((unsigned long long)grid.x * grid.y * grid.z > 0xffffffffull) {
        record(cudaErrorInvalidConfiguration, "launch of grid (%u,%u,%u): 2^32 blocks or more, beyond what the emulator runs",
               grid.x, grid.y, grid.z);
        return false;
    }
    if (shared_bytes > MAX_SHARED) {
        record(cudaErrorInvalidConfiguration, "launch asks %zu bytes of dynamic shared memory (at most %zu)", shared_bytes, MAX_SHARED);
        return false;
    }
    return true;
}

void run(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()> &body)
{
    std::lock_guard<std::mutex> g(launch_lock);
    counts.launches++; /* hc_emu_launch checked the configuration (launch_ok) */
    unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    cur_block = block;
    cur_grid = grid;
    cur_body = &body;
    fibers.resize(nt);
    if (stacks.size() < nt * STACK_BYTES) stacks.resize(nt * STACK_BYTES);
    dyn.assign(shared_bytes ? shared_bytes : 1, 0xff);
    slots.assign(((nt + 31) / 32) * 32, 0);
    order_init();
    thread_order.clear();
    /* blocks by linear index (x fastest) in HC_EMU_ORDER's order; a grid has fewer than 2^32 (launch_ok) */
    order_fill(block_order, grid.x * grid.y * grid.z);
    for (unsigned b : block_order) {
        memset(dyn.data(), 0xff, dyn.size()); /* shared memory starts as garbage (NaN) */
        statics.clear();
        for (unsigned i = 0; i < nt; i++) {
            fiber &f = fibers[i];
            f.stack = stacks.data() + (size_t)i * STACK_BYTES;
            ctx_make(&f.ctx, f.stack, STACK_BYTES, entry);
            f.tc.block_idx = dim3(b % grid.x, b / grid.x % grid.y, b / (grid.x * grid.y));
            f.tc.thread_idx = dim3(i % block.x, i / block.x % block.y, i / (block.x * block.y));
            f.st = RUNNABLE;
            f.warp = (int)(i / 32);
            f.lane = (int)(i % 32);
        }
        if (!run_block((unsigned)nt)) {
            cur = nullptr;
            return;
        }
    }
    cur = nullptr;
}

} // namespace hc_emu

namespace hc_emu {
cudaError_t fail(cudaError_t e)
{
    if (e != cudaSuccess) last_error = e;
    return e;
}
} // namespace hc_emu

extern "C" cudaError_t cudaGetLastError(void)
{
    cudaError_t e = hc_emu::last_error;
    hc_emu::last_error = cudaSuccess;
    return e;
}

extern "C" void hc_emu_check_aligned(const void *p, unsigned align)
{
    if ((uintptr_t)p % align) hc_emu::record(cudaErrorLaunchFailure, "a %u-byte load from %p: misaligned address", align, p);
}

extern "C" int hc_emu_set_order(const char *spec)
{
    std::lock_guard<std::mutex> g(hc_emu::launch_lock);
    hc_emu::order_read = true;
    return hc_emu::order_set(spec) ? 0 : -1;
}

extern "C" long hc_emu_launches(void) { return hc_emu::counts.launches; }

extern "C" long hc_emu_faults(const char **last)
{
    if (last) *last = hc_emu::counts.last_fault;
    return hc_emu::counts.faults;
}
