/* compress_out.h: the compressor's output file, written as the work goes: tensors declared from the
 * plan (offsets fixed), packed layers written as they finish, factors at n_dirs kept in a scratch
 * room past the backbone until the ranks are chosen, then written truncated; atomic, room checked. */
#ifndef HC_COMPRESS_OUT_H
#define HC_COMPRESS_OUT_H

#include "compress_state.h"

/* Declares the backbone, reserves the header's room and the scratch room, checks the disk and
 * creates OUT.tmp (HC_E_IO before anything is written when it cannot hold the file), then writes
 * the tensors kept as stored (their pages released). Call after hc_compress_plan_ranks. */
hc_status hc_compress_out_open(hc_compress_state *cs);
/* A job's packed bytes, at their place. */
hc_status hc_compress_out_packed(hc_compress_state *cs, const hc_compress_job *j, const void *packed);
/* A tensor kept as stored (f32 in the source, e.g. a norm), written again with new values. */
hc_status hc_compress_out_kept_f32(hc_compress_state *cs, const hc_tensor *t, const float *v);
/* A job's factors at n_dirs: A's rows (in) and B's rows (out) in j->branch_dtype, and j->sigma. */
hc_status hc_compress_out_factors(hc_compress_state *cs, const hc_compress_job *j, const void *a, const void *b);
/* A job's packed bytes read back (the measurement runs them). */
hc_status hc_compress_out_read_packed(const hc_compress_state *cs, const hc_compress_job *j, void *packed);
/* With the ranks chosen and the report's sizes: the branches truncated to their ranks, the final
 * metadata and header; renames the file into place. */
hc_status hc_compress_out_finish(hc_compress_state *cs, const hc_compress_report *r);
/* Removes the temporary file (nothing left on failure). */
void hc_compress_out_abort(hc_compress_state *cs);

#endif
