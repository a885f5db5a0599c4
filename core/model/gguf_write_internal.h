/* gguf_write_internal.h: what the GGUF writer (gguf_write.c) lends its streaming form
 * (gguf_stream.c): the header's bytes, the tensors' layout, a tensor's index. Not public. */
#ifndef HC_GGUF_WRITE_INTERNAL_H
#define HC_GGUF_WRITE_INTERNAL_H

#include "gguf.h"

/* The alignment, each tensor's data offset in declaration order (offsets may be NULL) and the
 * end of the data. */
hc_status hc_gguf_internal_layout(const hc_gguf_writer *w, uint32_t *align, uint64_t *offsets, uint64_t *end);
/* The header (magic to the last tensor info, tensors laid out in declaration order): padded with
 * zeros to the alignment when room is 0, else filled with a padding key to exactly room bytes
 * (HC_E_ARG when it does not fit). *out is malloc'd. */
hc_status hc_gguf_internal_header(const hc_gguf_writer *w, size_t room, uint8_t **out, size_t *len);
size_t hc_gguf_internal_n_tensors(const hc_gguf_writer *w);
long hc_gguf_internal_find_tensor(const hc_gguf_writer *w, const char *name);

#endif
