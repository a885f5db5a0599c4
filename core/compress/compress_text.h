/* compress_text.h: the text the compressor calibrates on: the input's tokenizer, a calibration
 * file read and tokenized into sequences that start with BOS. */
#ifndef HC_COMPRESS_TEXT_H
#define HC_COMPRESS_TEXT_H

#include "compress_state.h"
#include "tokenizer.h"

/* The tokenizer of the input (GGUF vocabulary, or the llama2.c tokenizer file). */
hc_status hc_compress_tokenizer(const hc_compress_state *cs, hc_tokenizer **out);
hc_status hc_compress_read_file(const char *path, char **text, size_t *len);
/* The first `want` tokens of the calibration text (fewer when it is shorter), BOS at the start of
 * every sequence of *seq tokens (the calibration sequence length, capped by the model and n). */
hc_status hc_compress_calib_ids(hc_compress_state *cs, int64_t want, int32_t **ids, int64_t *n, int *seq);

#endif
