/* gguf.h: reading and writing GGUF files (v2 and v3): metadata of every value type and arrays,
 * tensor infos, alignment; the reader maps the file and validates every offset before use. */
#ifndef HC_GGUF_H
#define HC_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "hc/hc_status.h"
#include "hc/hc_tensor.h"

typedef enum hc_gguf_type {
    HC_GGUF_UINT8 = 0, HC_GGUF_INT8 = 1, HC_GGUF_UINT16 = 2, HC_GGUF_INT16 = 3,
    HC_GGUF_UINT32 = 4, HC_GGUF_INT32 = 5, HC_GGUF_FLOAT32 = 6, HC_GGUF_BOOL = 7,
    HC_GGUF_STRING = 8, HC_GGUF_ARRAY = 9, HC_GGUF_UINT64 = 10, HC_GGUF_INT64 = 11,
    HC_GGUF_FLOAT64 = 12
} hc_gguf_type;

typedef struct hc_gguf_str {
    uint64_t len;
    const char *data;   /* NUL-terminated copy owned by the hc_gguf (len excludes the NUL) */
} hc_gguf_str;

typedef struct hc_gguf_kv {
    const char *key;
    hc_gguf_type type;          /* a scalar type, STRING or ARRAY */
    hc_gguf_type arr_type;      /* element type when type == ARRAY (nested arrays: ARRAY) */
    uint64_t arr_n;             /* element count when type == ARRAY */
    union {
        uint64_t u64; int64_t i64; double f64; /* scalars, widened */
        hc_gguf_str str;
    } v;
    const void *arr;            /* ARRAY of scalars: the elements, native little-endian, packed;
                                   ARRAY of STRING: an hc_gguf_str[arr_n]; nested ARRAY: NULL */
} hc_gguf_kv;

typedef struct hc_gguf_tensor {
    const char *name;
    uint32_t n_dims;
    int64_t ne[HC_MAX_DIMS];    /* unused dims are 1 */
    uint32_t type;              /* ggml type id (hc_dtype for the standard ones) */
    uint64_t offset;            /* from the start of the data section */
    size_t nbytes;              /* 0 when the type's size is unknown to hcinfer */
    const void *data;           /* inside the mapping; NULL when nbytes is 0 */
} hc_gguf_tensor;

typedef struct hc_gguf {
    uint32_t version;
    uint64_t n_kv;
    hc_gguf_kv *kv;
    uint64_t n_tensors;
    hc_gguf_tensor *tensors;
    uint32_t alignment;         /* general.alignment or 32 */
    uint64_t data_offset;       /* start of the tensor data section in the file */
    const uint8_t *base;        /* the whole file */
    size_t size;
    char *path;                 /* for messages ("<memory>" for hc_gguf_open_memory) */
    void *impl;                 /* mapping and allocations */
} hc_gguf;

/* Bytes of one element of a scalar value type (u8 .. f64, bool), 0 for string, array or a type
 * id hcinfer does not know (any uint32_t read from a file may be passed). */
size_t hc_gguf_scalar_size(uint32_t type);

/* Maps and parses a file. Any malformed or truncated content gives HC_E_FORMAT naming the file
 * and what is wrong; never reads outside the file. */
hc_status hc_gguf_open(const char *path, hc_gguf **out);
/* Parses a buffer (not copied: it must outlive the hc_gguf). */
hc_status hc_gguf_open_memory(const void *buf, size_t size, const char *label, hc_gguf **out);
void hc_gguf_close(hc_gguf *g);

const hc_gguf_kv *hc_gguf_find(const hc_gguf *g, const char *key);
const hc_gguf_tensor *hc_gguf_find_tensor(const hc_gguf *g, const char *name);

/* Typed getters. A missing key gives HC_E_FORMAT ("missing key K"), a value of another kind
 * HC_E_FORMAT ("key K is T, expected ..."). Integer getters accept any integer type whose value
 * fits; get_f32 accepts float32/float64 and integers. */
hc_status hc_gguf_get_u32(const hc_gguf *g, const char *key, uint32_t *out);
hc_status hc_gguf_get_i64(const hc_gguf *g, const char *key, int64_t *out);
hc_status hc_gguf_get_f32(const hc_gguf *g, const char *key, float *out);
hc_status hc_gguf_get_bool(const hc_gguf *g, const char *key, int *out);
hc_status hc_gguf_get_str(const hc_gguf *g, const char *key, const char **out);
/* Array getters: the element type must match (`type`), *n receives the count. */
hc_status hc_gguf_get_arr(const hc_gguf *g, const char *key, hc_gguf_type type, const void **data, uint64_t *n);
/* Like the getters above but with a default when the key is absent (a wrong type is still an error). */
hc_status hc_gguf_get_u32_or(const hc_gguf *g, const char *key, uint32_t dflt, uint32_t *out);
hc_status hc_gguf_get_f32_or(const hc_gguf *g, const char *key, float dflt, float *out);

const char *hc_gguf_type_name(hc_gguf_type t);
/* Writes a value as text (strings quoted, arrays shortened to their first `max_items` items). */
void hc_gguf_format_value(const hc_gguf_kv *kv, char *buf, size_t cap, int max_items);

/* ---- writer: builds metadata and tensors in memory, then writes atomically ---- */
typedef struct hc_gguf_writer hc_gguf_writer;

hc_status hc_gguf_writer_create(hc_gguf_writer **out);   /* version 3, alignment 32 */
void hc_gguf_writer_free(hc_gguf_writer *w);
hc_status hc_gguf_writer_set_alignment(hc_gguf_writer *w, uint32_t alignment); /* power of two */
/* Setting a key twice replaces its value. */
hc_status hc_gguf_set_u32(hc_gguf_writer *w, const char *key, uint32_t v);
hc_status hc_gguf_set_i32(hc_gguf_writer *w, const char *key, int32_t v);
hc_status hc_gguf_set_u64(hc_gguf_writer *w, const char *key, uint64_t v);
hc_status hc_gguf_set_f32(hc_gguf_writer *w, const char *key, float v);
hc_status hc_gguf_set_bool(hc_gguf_writer *w, const char *key, int v);
hc_status hc_gguf_set_str(hc_gguf_writer *w, const char *key, const char *v);
/* An array of scalars (data: n packed elements of `type`) or of strings (data: const char *[n]). */
hc_status hc_gguf_set_arr(hc_gguf_writer *w, const char *key, hc_gguf_type type, const void *data, uint64_t n);
/* Copies every key of g except those for which skip(key, ctx) returns nonzero (skip may be NULL). */
hc_status hc_gguf_copy_kv(hc_gguf_writer *w, const hc_gguf *g, int (*skip)(const char *key, void *ctx), void *ctx);
/* Adds a tensor; data is referenced, not copied, and must stay valid until write returns.
 * nbytes must equal the size implied by type and ne (for standard types). */
hc_status hc_gguf_add_tensor(hc_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                             const int64_t *ne, const void *data, size_t nbytes);
/* Like add_tensor, but data may be NULL: the tensor's bytes are written later through a stream
 * (hc_gguf_writer_write refuses a tensor declared without them). */
hc_status hc_gguf_declare_tensor(hc_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                 const int64_t *ne, const void *data, size_t nbytes);
/* Writes to path + ".tmp" and renames it into place; on any failure removes the temporary file
 * and leaves no file at path. */
hc_status hc_gguf_writer_write(hc_gguf_writer *w, const char *path);

/* Bytes the header of the writer's current metadata and tensor infos takes; bytes a tensor info
 * adds to it; the room to reserve for a header of at most header_bytes (padding key included). */
size_t hc_gguf_writer_header_bytes(const hc_gguf_writer *w);
size_t hc_gguf_tensor_info_bytes(const char *name, uint32_t n_dims);
size_t hc_gguf_header_room(size_t header_bytes, uint32_t alignment);

/* ---- streaming: a file written while its tensors are made (gguf_stream.c) ----
 * The tensors declared on the writer when the stream opens have their offsets fixed; their bytes
 * are written whenever they are ready, in any order; more tensors may be appended after them; the
 * header (the writer's metadata as it is at the end) is written last, into room reserved ahead of
 * the data (a key hc.header_padding fills what it leaves). The file is path.tmp until
 * hc_gguf_stream_finish renames it; hc_gguf_stream_abort, or any failure, removes it. */
typedef struct hc_gguf_stream hc_gguf_stream;

/* Opens path.tmp for w (borrowed until finish or abort) with `room` header bytes (a multiple of
 * the alignment, from hc_gguf_header_room) and `extra` bytes the caller will write beyond the
 * declared tensors. The whole size is checked against the free space of the file system and the
 * process's file size limit (RLIMIT_FSIZE) and reserved (fallocate) before anything is written:
 * HC_E_IO naming both sizes when it does not fit, and no file left. */
hc_status hc_gguf_stream_open(hc_gguf_writer *w, const char *path, size_t room, uint64_t extra, hc_gguf_stream **out);
/* The data offset (from the start of the data section) of tensor `name`. */
hc_status hc_gguf_stream_offset(const hc_gguf_stream *s, const char *name, uint64_t *offset);
/* The end of the declared tensors' data (where appended tensors, or scratch bytes, go). */
uint64_t hc_gguf_stream_data_end(const hc_gguf_stream *s);
/* Bytes at a data offset: written, or read back. */
hc_status hc_gguf_stream_pwrite(hc_gguf_stream *s, uint64_t offset, const void *data, size_t n);
hc_status hc_gguf_stream_pread(const hc_gguf_stream *s, uint64_t offset, void *data, size_t n);
/* Declares one more tensor after the others (its offset in *offset); write its bytes with pwrite. */
hc_status hc_gguf_stream_add_tensor(hc_gguf_stream *s, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                                    size_t nbytes, uint64_t *offset);
/* Writes the header, cuts the file at the end of the data, syncs and renames it into place;
 * frees s (the temporary file is removed on failure). */
hc_status hc_gguf_stream_finish(hc_gguf_stream *s);
/* Removes the temporary file and frees s (NULL: nothing). */
void hc_gguf_stream_abort(hc_gguf_stream *s);

#endif
