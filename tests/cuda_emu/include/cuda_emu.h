/* cuda_emu.h: CUDA's kernel language on the CPU, for the tests: each block's threads run as fibers on
 * one host thread, with __syncthreads, warp shuffles, shared memory and launches checked as a GPU would. */
#ifndef HC_CUDA_EMU_H
#define HC_CUDA_EMU_H

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>

#include "cuda_runtime_api.h"

#define HC_CUDA_EMU 1 /* cuda_common.cuh: vector loads check their alignment */

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
/* cu2cpp.py writes every __shared__ declaration as a reference into the block's shared memory: one left
   (a header's, which cu2cpp does not see) stops the build here */
#define __shared__ __shared___is_for_cu2cpp_py_to_write
#define __launch_bounds__(...)
#define __restrict__ __restrict

namespace hc_emu {
struct thread_ctx {
    dim3 thread_idx, block_idx;
};
thread_ctx *current();
const dim3 &block_dim();
const dim3 &grid_dim();
void syncthreads();
/* the calling lane's word from lane (lane ^ arg) (kind 0) or (lane + arg) (kind 1; its own word past
 * lane 31) of its warp, once every lane of the warp has given its word */
uint32_t shuffle(uint32_t v, int kind, int arg);
void *dyn_shared();
/* the running block's static shared array of this key (a declaration's own static), bytes long: the same
   for each of its threads, garbage (0xff bytes, NaN) at each block's start */
void *block_shared(const void *key, size_t bytes);
void fault(const char *what); /* a misuse the GPU would not forgive: counted, and the launch's error */
cudaError_t fail(cudaError_t e); /* e (not cudaSuccess) becomes the last error; returns e */
/* body run by every thread of every block (a configuration launch_ok accepted) */
void run(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()> &body);
/* false (and the launch's error recorded) when a launch is outside the hardware's limits */
bool launch_ok(dim3 grid, dim3 block, size_t shared_bytes);
/* the kind of a graph node, which cudaGraphExecUpdate compares (a memcpy's direction is part of it) */
enum node_kind { NODE_KERNEL = 1, NODE_MEMCPY = 2, NODE_MEMSET = 3, NODE_BLAS = 4, NODE_WAIT = 5, NODE_EVENT = 6 };
/* op (a node of this kind) on stream s: run when the stream's work up to it is needed (a
   synchronization, an event waited for, a copy to pageable memory), as a GPU would have run it by
   then at the latest; at once on the legacy stream (0); recorded instead while s is captured */
void enqueue(cudaStream_t s, std::function<void()> op, int kind);
/* what the test counts: launches, and faults (a bad configuration, a barrier or shuffle that
 * could not complete, shared memory asked beyond the limit) with their last message */
struct stats {
    long launches, faults;
    char last_fault[256];
};
stats &counters();
} // namespace hc_emu

#define threadIdx (hc_emu::current()->thread_idx)
#define blockIdx (hc_emu::current()->block_idx)
#define blockDim (hc_emu::block_dim())
#define gridDim (hc_emu::grid_dim())

static inline void __syncthreads() { hc_emu::syncthreads(); }
/* the host threads of the test see a block's writes in order */
static inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <class T> static inline uint32_t hc_emu_bits(T v)
{
    static_assert(sizeof(T) == 4, "32-bit shuffles only");
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}
template <class T> static inline T hc_emu_from_bits(uint32_t u)
{
    T v;
    memcpy(&v, &u, 4);
    return v;
}
/* the mask must name every lane of the warp: the kernels only use full warps */
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int off)
{
    if (mask != 0xffffffffu) hc_emu::fault("a shuffle's mask names less than the whole warp");
    return hc_emu_from_bits<T>(hc_emu::shuffle(hc_emu_bits(v), 0, off));
}
template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned off)
{
    if (mask != 0xffffffffu) hc_emu::fault("a shuffle's mask names less than the whole warp");
    return hc_emu_from_bits<T>(hc_emu::shuffle(hc_emu_bits(v), 1, (int)off));
}

/* blocks and threads run one at a time: atomics are plain read-modify-writes */
static inline unsigned atomicMax(unsigned *p, unsigned v)
{
    unsigned o = *p;
    if (v > o) *p = v;
    return o;
}
static inline unsigned atomicAdd(unsigned *p, unsigned v)
{
    unsigned o = *p;
    *p = o + v;
    return o;
}
static inline unsigned __float_as_uint(float f) { return hc_emu_bits(f); }
static inline float __uint_as_float(unsigned u) { return hc_emu_from_bits<float>(u); }

template <class D> static inline dim3 hc_cu_dim3(D d) { return dim3(d.x, d.y, d.z); }

/* kernel<<<grid, block, shared, stream>>>(args) as cu2cpp.py writes it: the configuration is checked
 * now, the kernel runs in its stream's order (its arguments are copied now, as CUDA does) */
template <typename... P, typename... A>
static inline void hc_emu_launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, void (*kernel)(P...), A... args)
{
    if (!hc_emu::launch_ok(grid, block, shared_bytes)) return;
    std::tuple<P...> params(static_cast<P>(args)...);
    hc_emu::enqueue(stream, [=]() { hc_emu::run(grid, block, shared_bytes, [&] { std::apply(kernel, params); }); },
                    hc_emu::NODE_KERNEL);
}

/* a kernel waits for the host (a flag the host sets): an eager enqueue stops waiting for it (emu_runtime.cpp) */
void hc_emu_device_waits(void);

/* extern __shared__ T name[] and __shared__ T name[N] as cu2cpp.py writes them */
#define hc_emu_dyn_shared() hc_emu::dyn_shared()
#define hc_emu_block_shared(key, bytes) hc_emu::block_shared(key, bytes)

#endif
