/* compress_awq.h: --awq for one decoder layer: the activation-aware scales of each group of linear
 * layers sharing an input, folded into what makes that input (a norm, or a projection's rows). */
#ifndef HC_COMPRESS_AWQ_H
#define HC_COMPRESS_AWQ_H

#include "calib.h"
#include "compress_source.h"
#include "compress_state.h"

/* --awq: the quantizer the search measures with: rtn at the backbone's bits and group size (with
 * its scale search when the backbone has one; GPTQ's own solve would cost too much per candidate);
 * an error when the backbone's format has no bits and group options (compress checks --calib). */
hc_status hc_compress_awq_open(hc_compress_state *cs);

/* Before the layer's jobs, with its inputs observed: per group (q/k/v after the attention norm,
 * gate/up after the FFN norm, down after up, o after v when every head has its own v) the scales
 * s of awq.h; when alpha > 0 the group's columns are multiplied by s, the norm (written to the
 * output again) or the producing rows divided by s, the calibration rows divided by s, and each
 * job records what it quantizes (awq_col, awq_row). A group is left alone when one of its layers
 * is not a job of its own (kept as stored, a MoE expert), its norm is not f32, or a bias would
 * have to change. The report gathers the searches. */
hc_status hc_compress_awq_layer(hc_compress_state *cs, hc_calib *calib, hc_source_layer *sl, int layer,
                                hc_compress_report *r);

/* The job's weights as the source holds them from what was quantized: w (out x in) divided by
 * awq_row (rows) and awq_col (columns); nothing without --awq scales. */
void hc_compress_awq_unscale(const hc_compress_job *j, float *w);

/* The jobs' scales and the search's quantizer, freed (the state's end). */
void hc_compress_awq_free(hc_compress_state *cs);

#endif
