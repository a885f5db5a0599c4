/* compress_measure.h: measured end-to-end sensitivity (compress --sens-tokens N): each layer's
 * loss, the KL from the source with only that layer quantized, run on the mapped source model. */
#ifndef HC_COMPRESS_MEASURE_H
#define HC_COMPRESS_MEASURE_H

#include "compress_state.h"

/* Each job's measured loss; call after the jobs ran (their packed bytes are read back from the
 * output). The options are checked by hc_compress: calibration text or --sens-source self. */
hc_status hc_compress_measure(hc_compress_state *cs);

#endif
