/* compress_sample.h: text the source model samples itself, for calibration (--calib self) and for
 * the sensitivity measurement (--sens-source self). */
#ifndef HC_COMPRESS_SAMPLE_H
#define HC_COMPRESS_SAMPLE_H

#include "compress_state.h"
#include "context.h"

/* Room for `want` sampled tokens (*n = want) and their sequence length (64, capped by the model
 * and want): hc_compress_calib_ids' counterpart for --calib self, filled by hc_compress_sample_ids. */
hc_status hc_compress_self_ids(hc_compress_state *cs, int64_t want, int32_t **ids, int64_t *n, int *seq);
/* Fills ids[n] with sequences of seq tokens the source model (ctx) samples from BOS, temperature 1,
 * a fixed seed; `what` names the text in an error ("calibration", "measurement"). */
hc_status hc_compress_sample_ids(hc_compress_state *cs, hc_context *ctx, int32_t *ids, int64_t n, int seq, const char *what);

#endif
