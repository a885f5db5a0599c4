/* handoff.cu: the branches' hand-off without the host's driver calls: a flag set in page-locked host
 * memory once the work before it is done, and a wait (one thread) until the host sets its flag. */
#include "cuda_kernels.h"

#ifndef __CUDA_ARCH__
#include <sched.h>
#include <time.h>
#endif

/* Nanoseconds of a clock that advances while the kernel waits (the GPU's global timer). */
static __device__ inline unsigned long long now_ns(void)
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

static __device__ inline void pause_a_little(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
    __nanosleep(500);
#elif !defined(__CUDA_ARCH__)
    sched_yield(); /* the emulator: the host thread that sets the flag may need this core */
#endif
}

/* flag = seq after the writes before it (the copies the stream ran first) */
__global__ void set_flag_kernel(unsigned *flag, unsigned seq)
{
    __threadfence_system();
    *(volatile unsigned *)flag = seq;
}

/* until flag reaches seq (serial-number order) or patience runs out (err = 1) */
__global__ void wait_flag_kernel(const unsigned *flag, unsigned seq, unsigned *err, unsigned long long patience_ns)
{
    unsigned long long t0 = now_ns();
    while ((int)(*(const volatile unsigned *)flag - seq) < 0) {
        if (now_ns() - t0 > patience_ns) {
            *(volatile unsigned *)err = 1u;
            break;
        }
        pause_a_little();
    }
    __threadfence_system(); /* what the host wrote before the flag is read after it */
}

extern "C" cudaError_t hc_cu_set_flag(cudaStream_t s, uint32_t *flag, uint32_t seq)
{
    set_flag_kernel<<<1, 1, 0, s>>>(flag, seq);
    return cudaGetLastError();
}

extern "C" cudaError_t hc_cu_wait_flag(cudaStream_t s, const uint32_t *flag, uint32_t seq, uint32_t *err, uint64_t patience_ns)
{
    wait_flag_kernel<<<1, 1, 0, s>>>(flag, seq, err, (unsigned long long)patience_ns);
    return cudaGetLastError();
}
