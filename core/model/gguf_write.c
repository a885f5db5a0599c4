/* gguf_write.c: the GGUF writer: collects metadata and tensor references in memory, then writes
 * a v3 file with aligned tensor data, atomically (path.tmp, fsync, rename; no file on failure). */
#include "gguf.h"
#include "gguf_write_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32

/* From gguf_read.c: the exact bytes of a kv's value (type field onwards) in the file. */
int hc_gguf_internal_kv_bytes(const hc_gguf *g, const hc_gguf_kv *kv, const uint8_t **bytes, size_t *len);

typedef struct name_index {
    size_t *slot;
    size_t n, cap;       /* cap: a power of two */
} name_index;

typedef struct writer_kv {
    char *key;
    uint8_t *value;      /* serialized: the u32 type, then the value */
    size_t len;
} writer_kv;

typedef struct writer_tensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[HC_MAX_DIMS];
    const void *data;
    size_t nbytes;
} writer_tensor;

struct hc_gguf_writer {
    writer_kv *kv;
    size_t n_kv, cap_kv;
    writer_tensor *t;
    size_t n_t, cap_t;
    name_index kv_index, t_index;  /* key -> kv, name -> tensor: a model's thousands of keys and tensors */
};

/* ---- an index of names (open addressing on FNV-1a; slots hold index + 1, 0 is empty) ---- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* The index of `name` among n names (names(ctx, i) gives the i-th), or -1. */
static long index_find(const name_index *x, const char *name, const char *(*names)(const void *, size_t), const void *ctx)
{
    if (!x->cap) return -1;
    for (size_t i = name_hash(name) & (x->cap - 1);; i = (i + 1) & (x->cap - 1)) {
        if (!x->slot[i]) return -1;
        if (!strcmp(names(ctx, x->slot[i] - 1), name)) return (long)(x->slot[i] - 1);
    }
}

/* Adds entry `idx` (named name); grows to keep the table at most half full. */
static int index_add(name_index *x, const char *name, size_t idx, const char *(*names)(const void *, size_t), const void *ctx)
{
    if (2 * (x->n + 1) > x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 64;
        size_t *slot = calloc(cap, sizeof *slot);
        if (!slot) return 0;
        for (size_t i = 0; i < x->cap; i++) {
            if (!x->slot[i]) continue;
            size_t j = name_hash(names(ctx, x->slot[i] - 1)) & (cap - 1);
            while (slot[j]) j = (j + 1) & (cap - 1);
            slot[j] = x->slot[i];
        }
        free(x->slot);
        x->slot = slot;
        x->cap = cap;
    }
    size_t j = name_hash(name) & (x->cap - 1);
    while (x->slot[j]) j = (j + 1) & (x->cap - 1);
    x->slot[j] = idx + 1;
    x->n++;
    return 1;
}

static const char *kv_name(const void *w, size_t i) { return ((const hc_gguf_writer *)w)->kv[i].key; }
static const char *t_name(const void *w, size_t i) { return ((const hc_gguf_writer *)w)->t[i].name; }

/* ---- a growable byte buffer ---- */

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
    int oom;
} bytes;

static void put(bytes *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (n > SIZE_MAX - b->len) {
        b->oom = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->len + n) nc = nc > SIZE_MAX / 2 ? b->len + n : nc * 2;
        uint8_t *p = realloc(b->p, nc);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(bytes *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(bytes *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, 8);
}

static void put_str(bytes *b, const char *s, size_t len)
{
    put_u64(b, len);
    put(b, s, len);
}

/* ---- the writer ---- */

hc_status hc_gguf_writer_create(hc_gguf_writer **out)
{
    if (!out) return hc_error(HC_E_ARG, "hc_gguf_writer_create: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? HC_OK : hc_error(HC_E_NOMEM, "gguf writer: out of memory");
}

void hc_gguf_writer_free(hc_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].value);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w->kv_index.slot);
    free(w->t_index.slot);
    free(w);
}

static writer_kv *find_kv(const hc_gguf_writer *w, const char *key)
{
    long i = index_find(&w->kv_index, key, kv_name, w);
    return i < 0 ? NULL : &w->kv[i];
}

/* Takes ownership of the serialized value b (freed on failure too). */
static hc_status set_value(hc_gguf_writer *w, const char *key, bytes *b)
{
    if (b->oom) {
        free(b->p);
        return hc_error(HC_E_NOMEM, "gguf writer: out of memory for key '%s'", key);
    }
    writer_kv *kv = find_kv(w, key);
    if (kv) {
        free(kv->value);
        kv->value = b->p;
        kv->len = b->len;
        return HC_OK;
    }
    if (w->n_kv == w->cap_kv) {
        size_t nc = w->cap_kv ? w->cap_kv * 2 : 16;
        writer_kv *p = realloc(w->kv, nc * sizeof *p);
        if (!p) {
            free(b->p);
            return hc_error(HC_E_NOMEM, "gguf writer: out of memory for key '%s'", key);
        }
        w->kv = p;
        w->cap_kv = nc;
    }
    char *k = strdup(key);
    if (!k) {
        free(b->p);
        return hc_error(HC_E_NOMEM, "gguf writer: out of memory for key '%s'", key);
    }
    w->kv[w->n_kv] = (writer_kv){k, b->p, b->len};
    if (!index_add(&w->kv_index, k, w->n_kv, kv_name, w)) {
        free(k);
        free(b->p);
        return hc_error(HC_E_NOMEM, "gguf writer: out of memory for key '%s'", key);
    }
    w->n_kv++;
    return HC_OK;
}

static hc_status check_key(const hc_gguf_writer *w, const char *key)
{
    if (!w) return hc_error(HC_E_ARG, "gguf writer: NULL writer");
    if (!key || !key[0]) return hc_error(HC_E_ARG, "gguf writer: empty key");
    return HC_OK;
}

static hc_status set_scalar(hc_gguf_writer *w, const char *key, hc_gguf_type t, const void *v, size_t n)
{
    hc_status st = check_key(w, key);
    if (st) return st;
    bytes b = {0};
    put_u32(&b, t);
    put(&b, v, n);   /* the host is little-endian (x86-64, aarch64) like the file */
    return set_value(w, key, &b);
}

hc_status hc_gguf_set_u32(hc_gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, HC_GGUF_UINT32, &v, 4);
}

hc_status hc_gguf_set_i32(hc_gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, HC_GGUF_INT32, &v, 4);
}

hc_status hc_gguf_set_u64(hc_gguf_writer *w, const char *key, uint64_t v)
{
    return set_scalar(w, key, HC_GGUF_UINT64, &v, 8);
}

hc_status hc_gguf_set_f32(hc_gguf_writer *w, const char *key, float v)
{
    return set_scalar(w, key, HC_GGUF_FLOAT32, &v, 4);
}

hc_status hc_gguf_set_bool(hc_gguf_writer *w, const char *key, int v)
{
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, HC_GGUF_BOOL, &b, 1);
}

hc_status hc_gguf_set_str(hc_gguf_writer *w, const char *key, const char *v)
{
    hc_status st = check_key(w, key);
    if (st) return st;
    if (!v) return hc_error(HC_E_ARG, "gguf writer: key '%s': NULL string", key);
    bytes b = {0};
    put_u32(&b, HC_GGUF_STRING);
    put_str(&b, v, strlen(v));
    return set_value(w, key, &b);
}

hc_status hc_gguf_set_arr(hc_gguf_writer *w, const char *key, hc_gguf_type type, const void *data, uint64_t n)
{
    hc_status st = check_key(w, key);
    if (st) return st;
    if (n && !data) return hc_error(HC_E_ARG, "gguf writer: key '%s': NULL array data", key);
    size_t sz = hc_gguf_scalar_size(type);
    if (!sz && type != HC_GGUF_STRING)
        return hc_error(HC_E_ARG, "gguf writer: key '%s': arrays of %s cannot be written", key, hc_gguf_type_name(type));
    if (sz && n > SIZE_MAX / sz) return hc_error(HC_E_NOMEM, "gguf writer: key '%s': array too large", key);
    bytes b = {0};
    put_u32(&b, HC_GGUF_ARRAY);
    put_u32(&b, type);
    put_u64(&b, n);
    if (type == HC_GGUF_STRING) {
        const char *const *s = data;
        for (uint64_t i = 0; i < n; i++) {
            if (!s[i]) {
                free(b.p);
                return hc_error(HC_E_ARG, "gguf writer: key '%s': string %" PRIu64 " is NULL", key, i);
            }
            put_str(&b, s[i], strlen(s[i]));
        }
    } else if (type == HC_GGUF_BOOL) {
        for (uint64_t i = 0; i < n; i++) {
            uint8_t v = ((const uint8_t *)data)[i] ? 1 : 0;
            put(&b, &v, 1);
        }
    } else {
        put(&b, data, (size_t)n * sz);
    }
    return set_value(w, key, &b);
}

hc_status hc_gguf_writer_set_alignment(hc_gguf_writer *w, uint32_t alignment)
{
    if (!w) return hc_error(HC_E_ARG, "gguf writer: NULL writer");
    if (alignment == 0 || (alignment & (alignment - 1)))
        return hc_error(HC_E_ARG, "gguf writer: alignment %" PRIu32 " is not a nonzero power of two", alignment);
    return hc_gguf_set_u32(w, "general.alignment", alignment);
}

hc_status hc_gguf_copy_kv(hc_gguf_writer *w, const hc_gguf *g, int (*skip)(const char *key, void *ctx), void *ctx)
{
    if (!w || !g) return hc_error(HC_E_ARG, "gguf writer: hc_gguf_copy_kv: NULL argument");
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const hc_gguf_kv *kv = &g->kv[i];
        if (skip && skip(kv->key, ctx)) continue;
        const uint8_t *raw;
        size_t len;
        if (!hc_gguf_internal_kv_bytes(g, kv, &raw, &len))
            return hc_error(HC_E_ARG, "gguf writer: %s: key '%s' has no stored bytes", g->path, kv->key);
        bytes b = {0};
        put(&b, raw, len);
        hc_status st = set_value(w, kv->key, &b);
        if (st) return st;
    }
    return HC_OK;
}

hc_status hc_gguf_add_tensor(hc_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                             const int64_t *ne, const void *data, size_t nbytes)
{
    if (nbytes && !data) return hc_error(HC_E_ARG, "gguf writer: tensor '%s': NULL data", name ? name : "");
    return hc_gguf_declare_tensor(w, name, type, n_dims, ne, data, nbytes);
}

hc_status hc_gguf_declare_tensor(hc_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                 const int64_t *ne, const void *data, size_t nbytes)
{
    if (!w || !name || !name[0]) return hc_error(HC_E_ARG, "gguf writer: tensor without a name");
    if (n_dims > HC_MAX_DIMS || (n_dims && !ne))
        return hc_error(HC_E_ARG, "gguf writer: tensor '%s': %" PRIu32 " dimensions, at most %d", name, n_dims, HC_MAX_DIMS);
    if (index_find(&w->t_index, name, t_name, w) >= 0) return hc_error(HC_E_ARG, "gguf writer: tensor '%s' added twice", name);
    writer_tensor t = {.type = type, .n_dims = n_dims, .data = data, .nbytes = nbytes};
    uint64_t n = 1;
    for (int d = 0; d < HC_MAX_DIMS; d++) t.ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0) return hc_error(HC_E_ARG, "gguf writer: tensor '%s': dimension %" PRIu32 " is negative", name, d);
        t.ne[d] = ne[d];
        if (ne[d] && n > (uint64_t)INT64_MAX / (uint64_t)ne[d])
            return hc_error(HC_E_ARG, "gguf writer: tensor '%s': too many elements", name);
        n *= (uint64_t)ne[d];
    }
    hc_dtype dt = (hc_dtype)type;
    if (hc_dtype_is_known(dt)) {
        int bs = hc_dtype_block_size(dt);
        if (t.ne[0] % bs)
            return hc_error(HC_E_ARG, "gguf writer: tensor '%s': a row of %" PRId64 " is not a multiple of %s's block of %d",
                            name, t.ne[0], hc_dtype_name(dt), bs);
        uint64_t want = n / (uint64_t)bs * hc_dtype_block_bytes(dt);
        if (want != nbytes)
            return hc_error(HC_E_ARG, "gguf writer: tensor '%s': %zu bytes given, %s of this shape takes %" PRIu64,
                            name, nbytes, hc_dtype_name(dt), want);
    }
    if (w->n_t == w->cap_t) {
        size_t nc = w->cap_t ? w->cap_t * 2 : 16;
        writer_tensor *p = realloc(w->t, nc * sizeof *p);
        if (!p) return hc_error(HC_E_NOMEM, "gguf writer: out of memory for tensor '%s'", name);
        w->t = p;
        w->cap_t = nc;
    }
    t.name = strdup(name);
    if (!t.name) return hc_error(HC_E_NOMEM, "gguf writer: out of memory for tensor '%s'", name);
    w->t[w->n_t] = t;
    if (!index_add(&w->t_index, t.name, w->n_t, t_name, w)) {
        free(t.name);
        return hc_error(HC_E_NOMEM, "gguf writer: out of memory for tensor '%s'", name);
    }
    w->n_t++;
    return HC_OK;
}

/* The alignment the file will declare: general.alignment when set, else 32. */
static hc_status writer_alignment(const hc_gguf_writer *w, uint32_t *out)
{
    *out = GGUF_DEFAULT_ALIGNMENT;
    const writer_kv *kv = find_kv(w, "general.alignment");
    if (!kv) return HC_OK;
    uint32_t t = kv->value[0] | (kv->value[1] << 8) | (kv->value[2] << 16) | ((uint32_t)kv->value[3] << 24);
    uint32_t a = 0;
    if (t == HC_GGUF_UINT32 && kv->len == 8) memcpy(&a, kv->value + 4, 4);
    if (a == 0 || (a & (a - 1)))
        return hc_error(HC_E_ARG, "gguf writer: key 'general.alignment' must be a uint32 power of two");
    *out = a;
    return HC_OK;
}

/* The key that fills a streamed file's header to the room reserved for it: an array of u8 zeros. */
#define PAD_KEY "hc.header_padding"
#define PAD_OVERHEAD (8 + sizeof PAD_KEY - 1 + 4 + 4 + 8)

size_t hc_gguf_tensor_info_bytes(const char *name, uint32_t n_dims)
{
    return 8 + strlen(name) + 4 + 8 * (size_t)n_dims + 4 + 8;
}

size_t hc_gguf_writer_header_bytes(const hc_gguf_writer *w)
{
    size_t n = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++) n += 8 + strlen(w->kv[i].key) + w->kv[i].len;
    for (size_t i = 0; i < w->n_t; i++) n += hc_gguf_tensor_info_bytes(w->t[i].name, w->t[i].n_dims);
    return n;
}

size_t hc_gguf_header_room(size_t header_bytes, uint32_t alignment)
{
    size_t n = header_bytes + PAD_OVERHEAD;
    return (n + alignment - 1) / alignment * alignment;
}

hc_status hc_gguf_internal_layout(const hc_gguf_writer *w, uint32_t *align, uint64_t *offsets, uint64_t *end)
{
    hc_status st = writer_alignment(w, align);
    if (st) return st;
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const writer_tensor *t = &w->t[i];
        uint64_t padded = ((uint64_t)t->nbytes + *align - 1) / *align * *align;
        if (padded < t->nbytes || offset > UINT64_MAX - padded) return hc_error(HC_E_ARG, "gguf writer: tensor data too large");
        if (offsets) offsets[i] = offset;
        offset += padded;
    }
    *end = offset;
    return HC_OK;
}

hc_status hc_gguf_internal_header(const hc_gguf_writer *w, size_t room, uint8_t **out, size_t *len)
{
    uint32_t align;
    uint64_t end;
    hc_status st = hc_gguf_internal_layout(w, &align, NULL, &end);
    if (st) return st;
    size_t natural = hc_gguf_writer_header_bytes(w);
    if (room && (room % align || room < natural + PAD_OVERHEAD))
        return hc_error(HC_E_ARG, "gguf writer: a header of %zu bytes does not fit the %zu reserved for it", natural, room);
    bytes h = {0};
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, w->n_t);
    put_u64(&h, w->n_kv + (room ? 1 : 0));
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        put(&h, w->kv[i].value, w->kv[i].len);
    }
    if (room) { /* the padding key first among the tensor infos' predecessors: its length makes room */
        uint64_t n = room - natural - PAD_OVERHEAD;
        put_str(&h, PAD_KEY, sizeof PAD_KEY - 1);
        put_u32(&h, HC_GGUF_ARRAY);
        put_u32(&h, HC_GGUF_UINT8);
        put_u64(&h, n);
        for (uint64_t k = 0; k < n; k++) put(&h, "", 1);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const writer_tensor *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(&h, (uint64_t)t->ne[d]);
        put_u32(&h, t->type);
        put_u64(&h, offset);
        offset += ((uint64_t)t->nbytes + align - 1) / align * align;
    }
    size_t pad = !room && w->n_t ? (align - h.len % align) % align : 0;   /* no data section: no padding */
    while (pad--) put(&h, "", 1);
    if (h.oom) {
        free(h.p);
        return hc_error(HC_E_NOMEM, "gguf writer: out of memory for the header");
    }
    *out = h.p;
    *len = h.len;
    return HC_OK;
}

size_t hc_gguf_internal_n_tensors(const hc_gguf_writer *w) { return w->n_t; }

long hc_gguf_internal_find_tensor(const hc_gguf_writer *w, const char *name) { return index_find(&w->t_index, name, t_name, w); }

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n) {
        ssize_t k = write(fd, s, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        s += k;
        n -= (size_t)k;
    }
    return 1;
}

static const uint8_t ZEROS[256];

static int write_zeros(int fd, size_t n)
{
    while (n) {
        size_t k = n < sizeof ZEROS ? n : sizeof ZEROS;
        if (!write_all(fd, ZEROS, k)) return 0;
        n -= k;
    }
    return 1;
}

hc_status hc_gguf_writer_write(hc_gguf_writer *w, const char *path)
{
    if (!w || !path) return hc_error(HC_E_ARG, "gguf writer: NULL argument");
    for (size_t i = 0; i < w->n_t; i++)
        if (w->t[i].nbytes && !w->t[i].data)
            return hc_error(HC_E_ARG, "gguf writer: %s: tensor '%s' was declared without its data", path, w->t[i].name);
    uint32_t align;
    uint64_t end;
    hc_status st = hc_gguf_internal_layout(w, &align, NULL, &end);
    uint8_t *hp = NULL;
    size_t hlen = 0;
    if (st == HC_OK) st = hc_gguf_internal_header(w, 0, &hp, &hlen);
    if (st) return hc_error_context(st, "%s: ", path);

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        free(hp);
        return hc_error(HC_E_NOMEM, "gguf writer: %s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = hc_error(HC_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(hp);
        free(tmp);
        return st;
    }
    int ok = write_all(fd, hp, hlen);
    free(hp);
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const writer_tensor *t = &w->t[i];
        ok = write_all(fd, t->data, t->nbytes) && write_zeros(fd, (align - t->nbytes % align) % align);
    }
    if (!ok) st = hc_error(HC_E_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (ok && fsync(fd) != 0) {
        ok = 0;
        st = hc_error(HC_E_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    }
    if (close(fd) != 0 && ok) {
        ok = 0;
        st = hc_error(HC_E_IO, "%s: close failed: %s", tmp, strerror(errno));
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        st = hc_error(HC_E_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    }
    if (!ok) unlink(tmp);
    free(tmp);
    return ok ? HC_OK : st;
}
