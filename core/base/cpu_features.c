/* cpu_features.c: the host CPU's instruction sets for run-time kernel dispatch, read with CPUID
 * and XGETBV (no compiler built-ins, so gcc and clang both build it); x86-64 only, else none.
 * HC_CPU_ISA=avx2 in the environment caps it at AVX2. */
#include "hc/hc_cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

enum { F_AVX2 = 1, F_AVX512 = 2 };

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx || __get_cpuid_max(0, NULL) < 7) return 0;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0;                 /* XMM and YMM state */
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1;
    int f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    int bmi2 = (b >> 8) & 1, vnni = (c >> 11) & 1, gfni = (c >> 8) & 1;
    int flags = 0;
    if (avx2 && fma && f16c) flags |= F_AVX2;
    const char *cap = getenv("HC_CPU_ISA");   /* "avx2": leave the AVX-512 kernels out */
    if ((flags & F_AVX2) && f512 && dq && bw && vl && vnni && gfni && bmi2 && (xcr0 & 0xe0) == 0xe0 &&
        !(cap && !strcmp(cap, "avx2")))
        flags |= F_AVX512;
    return flags;
}

/* A pure function of the hardware: recomputing it in a race gives the same answer. */
static int features(void)
{
    static _Atomic int cached = -1;
    int f = atomic_load_explicit(&cached, memory_order_relaxed);
    if (f < 0) {
        f = detect();
        atomic_store_explicit(&cached, f, memory_order_relaxed);
    }
    return f;
}

int hc_cpu_has_avx2(void) { return (features() & F_AVX2) != 0; }
int hc_cpu_has_avx512(void) { return (features() & F_AVX512) != 0; }
#else
int hc_cpu_has_avx2(void) { return 0; }
int hc_cpu_has_avx512(void) { return 0; }
#endif
