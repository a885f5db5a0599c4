/* cuda_emu_stats.h: what a C test asks of the emulator (tests/cuda_emu): launches run so far, and faults
 * (a launch outside the hardware's limits, a shuffle or barrier that cannot complete) with the last one. */
#ifndef HC_CUDA_EMU_STATS_H
#define HC_CUDA_EMU_STATS_H

#ifdef __cplusplus
extern "C" {
#endif

long hc_emu_launches(void);
long hc_emu_faults(const char **last);
/* stream captures begun, graphs instantiated, instantiated graphs updated, graph launches */
void hc_emu_graph_counts(long *captures, long *instantiations, long *updates, long *launches);

/* the self-test kernels (selftest.cu): each returns the cudaError_t of its launch; *out their result */
int hc_emu_selftest_block_sum(int n_threads, float *out);
int hc_emu_selftest_half_warp_shuffle(void);
int hc_emu_selftest_divergent_barrier(void);
int hc_emu_selftest_oversized_block(void);

#ifdef __cplusplus
}
#endif
#endif
