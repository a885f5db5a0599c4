/* hc_cpu.h: what the host CPU can run, read once with CPUID and XGETBV (the instruction sets and
 * that the OS saves their registers), for kernels that dispatch at run time. */
#ifndef HC_CPU_H
#define HC_CPU_H

#include "hc/hc_api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the CPU runs AVX2 + FMA + F16C code (and the OS saves the YMM registers), else 0. */
HC_API int hc_cpu_has_avx2(void);
/* 1 when it also runs AVX-512 F, BW, VL, DQ and VNNI, GFNI and BMI2 (and the OS saves the ZMM and
 * mask registers), and the environment does not say HC_CPU_ISA=avx2 (read once: that leaves the
 * AVX-512 kernels out, for side-by-side comparisons). */
HC_API int hc_cpu_has_avx512(void);

#ifdef __cplusplus
}
#endif
#endif
