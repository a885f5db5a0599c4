/* compress_stream.h: the compressor's pass over the model, one decoder layer at a time: the
 * calibration states at the layer's input, that layer's statistics only, its jobs (quantized,
 * factored, written, freed), then the layer's forward pass for the next layer's inputs. */
#ifndef HC_COMPRESS_STREAM_H
#define HC_COMPRESS_STREAM_H

#include "compress_state.h"

/* Runs every job (the output must be open); fills the report's calibration figures and times. */
hc_status hc_compress_stream(hc_compress_state *cs, hc_compress_report *r);

#endif
