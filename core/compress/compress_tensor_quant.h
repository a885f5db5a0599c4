/* compress_tensor_quant.h: --tensor-quant PATTERN=SPEC: another backbone format for the linear
 * layers whose names match (llama.cpp's quantize --tensor-type), for mixed-precision backbones. */
#ifndef HC_COMPRESS_TENSOR_QUANT_H
#define HC_COMPRESS_TENSOR_QUANT_H

#include "compress_state.h"

/* Whether a tensor name matches a pattern: a pattern with a wildcard (* ? [) is an fnmatch glob of
 * the whole name ("blk.[0-3].ffn_down.weight"); a plain one matches whole dot-separated parts of it
 * ("attn_v", "ffn_down", "blk.7": blk.7's layers, not blk.17's; "output": the head, not attn_output). */
int hc_compress_tensor_quant_matches(const char *pattern, const char *name);

/* Each opts->tensor_quant[i] split at its first '=' into a pattern and a spec whose format is
 * created; an error names the option and the reason (no '=', an empty side, an unknown format). */
hc_status hc_compress_tensor_quant_open(hc_compress_state *cs);

/* Every planned job (before its bytes are counted) whose name matches (an expert: its 3-D tensor's
 * name) takes the format of the last option that matches it; an option that matches no job is an
 * error (a misspelt pattern would otherwise quantize nothing). The head is a job only with --head-quant. */
hc_status hc_compress_tensor_quant_apply(hc_compress_state *cs);

/* Whether any job's format comes from the named quant plugin ("gptq": calibration is needed). */
int hc_compress_uses_plugin(const hc_compress_state *cs, const char *plugin);

/* The options as written to hc.quant.tensors: "PATTERN=SPEC;PATTERN=SPEC" with canonical specs. */
hc_status hc_compress_tensor_quant_text(const hc_compress_state *cs, char *buf, size_t size);

void hc_compress_tensor_quant_free(hc_compress_state *cs);

#endif
