/* compress_meta.h: the output's metadata: the source's keys (or a llama2.c checkpoint's, made up),
 * the hc.* keys, each packed tensor's format and shape, each layer's sensitivity. */
#ifndef HC_COMPRESS_META_H
#define HC_COMPRESS_META_H

#include "compress_state.h"
#include "gguf.h"

/* The source's keys (GGUF) or those of a GGUF Llama model (llama2.c), vocabulary included. */
hc_status hc_compress_meta_source(hc_compress_state *cs, hc_gguf_writer *w);
/* The hc.* keys. placeholder: before the work, values of the largest size they can take (the
 * header's room is reserved from them); else the final values (the report's sizes). */
hc_status hc_compress_meta_keys(hc_compress_state *cs, hc_gguf_writer *w, const hc_compress_report *r, int placeholder);

#endif
