/* cuda_emu_stats.h: what a C test asks of the emulator (tests/cuda_emu): launches run so far, and faults
 * (a launch outside the hardware's limits, a shuffle or barrier that cannot complete) with the last one. */
#ifndef HC_CUDA_EMU_STATS_H
#define HC_CUDA_EMU_STATS_H

#ifdef __cplusplus
extern "C" {
#endif

long hc_emu_launches(void);
/* the order blocks and a block's threads run in, as HC_EMU_ORDER gives it (forward, reverse or a seed:
   orders drawn anew for each launch and each round); -1 for another spec */
int hc_emu_set_order(const char *spec);
/* when streams run their work, as HC_EMU_STREAMS gives it: "lazy" (as late as a wait allows) or "eager"
   (as soon as it is enqueued); -1 for another mode */
int hc_emu_set_streams(const char *mode);
long hc_emu_faults(const char **last);
/* stream captures begun, graphs instantiated, instantiated graphs updated, graph launches */
void hc_emu_graph_counts(long *captures, long *instantiations, long *updates, long *launches);

/* the self-test kernels (selftest.cu): each returns the cudaError_t of its launch; *out their result */
int hc_emu_selftest_block_sum(int n_threads, float *out);
int hc_emu_selftest_half_warp_shuffle(void);
int hc_emu_selftest_divergent_barrier(void);
int hc_emu_selftest_oversized_block(void);
/* out[t] = what thread t of one block of n (<= 64) reads of thread t+1's write without a barrier between */
int hc_emu_selftest_missing_barrier(int n_threads, float *out);
/* out[b] = what block b of n (<= 64) finds in its static shared memory before writing it */
int hc_emu_selftest_fresh_shared(int n_blocks, float *out);
/* order[i] = the index of the i-th of n blocks (<= 64) to run */
int hc_emu_selftest_block_order(int n_blocks, unsigned *order);

#ifdef __cplusplus
}
#endif
#endif
