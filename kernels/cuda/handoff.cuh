/* handoff.cuh: the device's side of the hand-off by flags: a wait for the host's flag (one thread a block),
 * a job's corrections added by the kernel that reads them first (hc_cu_merge), its input published by
 * the kernel that makes it (hc_cu_publish_to). */
#ifndef HC_CUDA_HANDOFF_CUH
#define HC_CUDA_HANDOFF_CUH

#include "cuda_kernels.h"

#ifndef __CUDA_ARCH__
#include <sched.h>
#include <time.h>
#endif

/* Nanoseconds of a clock that advances while the kernel waits (the GPU's global timer). */
static __device__ inline unsigned long long hc_cu_now_ns(void)
{
#ifdef __CUDA_ARCH__
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
#endif
}

static __device__ inline void hc_cu_pause_a_little(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
    __nanosleep(500);
#elif !defined(__CUDA_ARCH__)
#ifdef HC_CUDA_EMU
    hc_emu_device_waits(); /* the emulator: the host may go on (HC_EMU_STREAMS=eager) */
#endif
    sched_yield(); /* the emulator: the host thread that sets the flag may need this core */
#endif
}

/* Until flag reaches seq (serial-number order), or patience runs out (*err = 1), or *err is set already
 * (another block of the kernel, or an earlier wait of the step, gave up: the step has failed). */
static __device__ inline void hc_cu_wait_for_flag(const unsigned *flag, unsigned seq, unsigned *err,
                                                  unsigned long long patience_ns)
{
    unsigned long long t0 = hc_cu_now_ns();
    while ((int)(*(const volatile unsigned *)flag - seq) < 0 && !*(volatile unsigned *)err) {
        if (hc_cu_now_ns() - t0 > patience_ns) {
            *(volatile unsigned *)err = 1u;
            break;
        }
        hc_cu_pause_a_little();
    }
    __threadfence_system(); /* what the host wrote before the flag is read after it */
}

/* m's wait in a kernel that folds it: the block's first thread waits for the flag (none: not at all),
 * the block after it. */
static __device__ inline void hc_cu_merge_wait(const hc_cu_merge &m)
{
    if (!m.flag) return;
    if (threadIdx.x == 0 && threadIdx.y == 0) hc_cu_wait_for_flag(m.flag, m.seq, m.err, (unsigned long long)m.patience_ns);
    __syncthreads();
}

/* Element i of the op's input k with its correction added, and written back (as the merge's own add
 * would leave it). The load is volatile: the host rewrites src every step. */
static __device__ inline float hc_cu_merged(const hc_cu_merge &m, int k, size_t i)
{
    float v = m.y[k][i] + ((const volatile float *)m.src[k])[i];
    m.y[k][i] = v;
    return v;
}

/* Elements [at, at + n) of the op's input k corrected by the block's threads (none for k: nothing), the
 * block after them: before a kernel body that reads them across its threads. */
static __device__ inline void hc_cu_merge_span(const hc_cu_merge &m, int k, size_t at, size_t n)
{
    if (!m.src[k]) return;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) (void)hc_cu_merged(m, k, at + i);
    __syncthreads();
}

/* *p, or all zeros (no merge, no publish) for p NULL: a host call's optional argument as a kernel's. */
template <class T> static inline T hc_cu_or_none(const T *p)
{
    T none = {};
    return p ? *p : none;
}

/* The end of a kernel that publishes its output (p.flag; none: nothing), every thread of every block
 * calling it once its writes to p.host_dst are done: they are made visible to the host, and the last
 * block to come sets the flag after them (and count back to 0 for the next launch). */
static __device__ inline void hc_cu_publish_end(const hc_cu_publish_to &p)
{
    if (!p.flag) return;
    __threadfence_system();
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && atomicAdd(p.count, 1u) == gridDim.x * gridDim.y - 1) {
        *p.count = 0;
        __threadfence_system();
        *(volatile unsigned *)p.flag = p.seq;
    }
}

#endif
