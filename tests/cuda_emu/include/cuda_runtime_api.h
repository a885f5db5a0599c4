/* cuda_runtime_api.h (emulator): what the kernels' C entry points see of the CUDA runtime when the .cu
 * files run on the CPU through tests/cuda_emu (the types, and the few calls the .cu files make). */
#ifndef HC_CUDA_EMU_RUNTIME_API_H
#define HC_CUDA_EMU_RUNTIME_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorLaunchFailure = 719
} cudaError_t;

typedef struct hc_emu_stream *cudaStream_t;

/* The error of the last launch (a bad configuration, or a fault the emulator caught), then cleared. */
cudaError_t cudaGetLastError(void);
cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
