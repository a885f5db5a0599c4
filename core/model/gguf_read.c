/* gguf_read.c: the GGUF reader (v2 and v3, little-endian): maps the file read-only, parses the
 * metadata and tensor infos, checks every length and offset against the file before use. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NESTING 32

/* ---- an arena for the copied strings and arrays, freed all at once ---- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
} arena_block;

typedef struct kv_span {
    uint64_t off, len;   /* the value's bytes in the file, from its type field to its end */
} kv_span;

typedef struct gguf_impl {
    void *map;                 /* the mmap'd file, or NULL for hc_gguf_open_memory */
    size_t map_len;
    arena_block *arena;
    kv_span *spans;            /* one per kv */
    const hc_gguf_kv **kv_sorted;
    const hc_gguf_tensor **t_sorted;
} gguf_impl;

static void *arena_alloc(gguf_impl *im, size_t n)
{
    const size_t A = sizeof(max_align_t);
    if (n > SIZE_MAX - A) return NULL;
    n = (n + A - 1) / A * A;
    if (!n) n = A;
    arena_block *b = im->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (cap > SIZE_MAX - sizeof(arena_block)) return NULL;
        b = malloc(sizeof(arena_block) + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        /* a big one-off block goes behind the current one so the current keeps filling */
        if (im->arena && n > 65536) {
            b->next = im->arena->next;
            im->arena->next = b;
        } else {
            b->next = im->arena;
            im->arena = b;
        }
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

/* ---- value types ---- */

size_t hc_gguf_scalar_size(uint32_t t)
{
    switch (t) {
    case HC_GGUF_UINT8: case HC_GGUF_INT8: case HC_GGUF_BOOL: return 1;
    case HC_GGUF_UINT16: case HC_GGUF_INT16: return 2;
    case HC_GGUF_UINT32: case HC_GGUF_INT32: case HC_GGUF_FLOAT32: return 4;
    case HC_GGUF_UINT64: case HC_GGUF_INT64: case HC_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *hc_gguf_type_name(hc_gguf_type t)
{
    switch (t) {
    case HC_GGUF_UINT8: return "uint8";
    case HC_GGUF_INT8: return "int8";
    case HC_GGUF_UINT16: return "uint16";
    case HC_GGUF_INT16: return "int16";
    case HC_GGUF_UINT32: return "uint32";
    case HC_GGUF_INT32: return "int32";
    case HC_GGUF_FLOAT32: return "float32";
    case HC_GGUF_BOOL: return "bool";
    case HC_GGUF_STRING: return "string";
    case HC_GGUF_ARRAY: return "array";
    case HC_GGUF_UINT64: return "uint64";
    case HC_GGUF_INT64: return "int64";
    case HC_GGUF_FLOAT64: return "float64";
    }
    return "unknown type";
}

static uint64_t le_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t le_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Widens one little-endian scalar into the kv's union. */
static void widen_scalar(uint32_t t, const uint8_t *p, hc_gguf_kv *kv)
{
    switch (t) {
    case HC_GGUF_UINT8: case HC_GGUF_BOOL: kv->v.u64 = p[0]; break;
    case HC_GGUF_INT8: kv->v.i64 = (int8_t)p[0]; break;
    case HC_GGUF_UINT16: kv->v.u64 = (uint16_t)(p[0] | (p[1] << 8)); break;
    case HC_GGUF_INT16: kv->v.i64 = (int16_t)(uint16_t)(p[0] | (p[1] << 8)); break;
    case HC_GGUF_UINT32: kv->v.u64 = le_u32(p); break;
    case HC_GGUF_INT32: kv->v.i64 = (int32_t)le_u32(p); break;
    case HC_GGUF_UINT64: kv->v.u64 = le_u64(p); break;
    case HC_GGUF_INT64: kv->v.i64 = (int64_t)le_u64(p); break;
    case HC_GGUF_FLOAT32: {
        uint32_t u = le_u32(p);
        float f;
        memcpy(&f, &u, 4);
        kv->v.f64 = f;
        break;
    }
    case HC_GGUF_FLOAT64: {
        uint64_t u = le_u64(p);
        memcpy(&kv->v.f64, &u, 8);
        break;
    }
    default: break;
    }
}

/* ---- the parser's cursor and its messages ---- */

typedef struct cursor {
    const uint8_t *base;
    size_t size, pos;
    const char *path;
    char where[192];      /* "header", "kv 3 ('general.name')", "tensor info 12 (blk.0.x)" */
    gguf_impl *im;
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

static hc_status truncated(const cursor *c)
{
    return hc_error(HC_E_FORMAT, "%s: truncated in %s", c->path, c->where);
}

static hc_status fail(const cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static hc_status fail(const cursor *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hc_error(HC_E_FORMAT, "%s: %s: %s", c->path, c->where, msg);
}

static int take_u32(cursor *c, uint32_t *v)
{
    if (left(c) < 4) return 0;
    *v = le_u32(c->base + c->pos);
    c->pos += 4;
    return 1;
}

static int take_u64(cursor *c, uint64_t *v)
{
    if (left(c) < 8) return 0;
    *v = le_u64(c->base + c->pos);
    c->pos += 8;
    return 1;
}

/* Reads a string into the arena (NUL-terminated copy). */
static hc_status take_str(cursor *c, hc_gguf_str *s)
{
    uint64_t len;
    if (!take_u64(c, &len)) return truncated(c);
    if (len > left(c))
        return hc_error(HC_E_FORMAT, "%s: truncated in %s (a string of %" PRIu64 " bytes, %zu left)",
                        c->path, c->where, len, left(c));
    char *p = arena_alloc(c->im, (size_t)len + 1);
    if (!p) return hc_error(HC_E_NOMEM, "%s: out of memory reading %s", c->path, c->where);
    memcpy(p, c->base + c->pos, (size_t)len);
    p[len] = '\0';
    c->pos += (size_t)len;
    s->len = len;
    s->data = p;
    return HC_OK;
}

/* A key or tensor name: nonempty, no NUL inside (it is used as a C string). */
static hc_status take_name(cursor *c, const char **out, const char *what)
{
    hc_gguf_str s;
    hc_status st = take_str(c, &s);
    if (st) return st;
    if (s.len == 0) return fail(c, "empty %s", what);
    if (strlen(s.data) != s.len) return fail(c, "%s contains a NUL byte", what);
    *out = s.data;
    return HC_OK;
}

/* Skips the body of an array (elements of elem_type), for arrays nested inside arrays. */
static hc_status skip_array(cursor *c, uint32_t elem_type, uint64_t n, int depth)
{
    if (depth > GGUF_MAX_NESTING) return fail(c, "arrays nested deeper than %d levels", GGUF_MAX_NESTING);
    size_t sz = hc_gguf_scalar_size(elem_type);
    if (sz) {
        if (n > left(c) / sz) return truncated(c);
        c->pos += (size_t)n * sz;
        return HC_OK;
    }
    if (elem_type == HC_GGUF_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            uint64_t len;
            if (!take_u64(c, &len) || len > left(c)) return truncated(c);
            c->pos += (size_t)len;
        }
        return HC_OK;
    }
    if (elem_type == HC_GGUF_ARRAY) {
        for (uint64_t i = 0; i < n; i++) {
            uint32_t t;
            uint64_t m;
            if (!take_u32(c, &t) || !take_u64(c, &m)) return truncated(c);
            hc_status st = skip_array(c, t, m, depth + 1);
            if (st) return st;
        }
        return HC_OK;
    }
    return fail(c, "unknown array element type %" PRIu32, elem_type);
}

/* An array of strings: a first pass checks every length without allocating, the second copies
 * them all into one allocation. */
static hc_status take_str_array(cursor *c, hc_gguf_kv *kv)
{
    uint64_t n = kv->arr_n;
    if (n > left(c) / 8) return truncated(c);
    size_t start = c->pos, total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        if (!take_u64(c, &len) || len > left(c)) return truncated(c);
        c->pos += (size_t)len;
        total += (size_t)len + 1;    /* bounded by the file size */
    }
    c->pos = start;
    if (n > (SIZE_MAX - total) / sizeof(hc_gguf_str)) return hc_error(HC_E_NOMEM, "%s: %s is too large", c->path, c->where);
    hc_gguf_str *arr = arena_alloc(c->im, (size_t)n * sizeof(hc_gguf_str) + total);
    if (!arr) return hc_error(HC_E_NOMEM, "%s: out of memory reading %s", c->path, c->where);
    char *chars = (char *)(arr + n);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = le_u64(c->base + c->pos);
        c->pos += 8;
        memcpy(chars, c->base + c->pos, (size_t)len);
        chars[len] = '\0';
        arr[i].len = len;
        arr[i].data = chars;
        chars += len + 1;
        c->pos += (size_t)len;
    }
    kv->arr = arr;
    return HC_OK;
}

static hc_status take_array(cursor *c, hc_gguf_kv *kv)
{
    uint32_t et;
    uint64_t n;
    if (!take_u32(c, &et) || !take_u64(c, &n)) return truncated(c);
    if (et > HC_GGUF_FLOAT64) return fail(c, "unknown array element type %" PRIu32, et);
    kv->arr_type = (hc_gguf_type)et;
    kv->arr_n = n;
    kv->arr = NULL;
    if (et == HC_GGUF_STRING) return take_str_array(c, kv);
    if (et == HC_GGUF_ARRAY) return skip_array(c, et, n, 1);
    size_t sz = hc_gguf_scalar_size(et);
    if (n > left(c) / sz) return truncated(c);
    size_t bytes = (size_t)n * sz;
    const uint8_t *src = c->base + c->pos;
    if (et == HC_GGUF_BOOL)
        for (size_t i = 0; i < bytes; i++)
            if (src[i] > 1) return fail(c, "bool element %zu is %u, not 0 or 1", i, src[i]);
    void *copy = arena_alloc(c->im, bytes);   /* aligned, so callers may index it as its type */
    if (!copy) return hc_error(HC_E_NOMEM, "%s: out of memory reading %s", c->path, c->where);
    memcpy(copy, src, bytes);
    kv->arr = copy;
    c->pos += bytes;
    return HC_OK;
}

static hc_status take_value(cursor *c, hc_gguf_kv *kv)
{
    uint32_t t;
    if (!take_u32(c, &t)) return truncated(c);
    if (t > HC_GGUF_FLOAT64) return fail(c, "unknown value type %" PRIu32, t);
    kv->type = (hc_gguf_type)t;
    if (t == HC_GGUF_STRING) return take_str(c, &kv->v.str);
    if (t == HC_GGUF_ARRAY) return take_array(c, kv);
    size_t sz = hc_gguf_scalar_size(t);
    if (left(c) < sz) return truncated(c);
    const uint8_t *p = c->base + c->pos;
    if (t == HC_GGUF_BOOL && p[0] > 1) return fail(c, "bool value is %u, not 0 or 1", p[0]);
    widen_scalar(t, p, kv);
    c->pos += sz;
    return HC_OK;
}

/* ---- sorted indexes: duplicate detection and lookup ---- */

static int cmp_kv(const void *a, const void *b)
{
    return strcmp((*(const hc_gguf_kv *const *)a)->key, (*(const hc_gguf_kv *const *)b)->key);
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp((*(const hc_gguf_tensor *const *)a)->name, (*(const hc_gguf_tensor *const *)b)->name);
}

const hc_gguf_kv *hc_gguf_find(const hc_gguf *g, const char *key)
{
    if (!g || !key) return NULL;
    const gguf_impl *im = g->impl;
    size_t lo = 0, hi = (size_t)g->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(im->kv_sorted[mid]->key, key);
        if (r == 0) return im->kv_sorted[mid];
        if (r < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

const hc_gguf_tensor *hc_gguf_find_tensor(const hc_gguf *g, const char *name)
{
    if (!g || !name) return NULL;
    const gguf_impl *im = g->impl;
    size_t lo = 0, hi = (size_t)g->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(im->t_sorted[mid]->name, name);
        if (r == 0) return im->t_sorted[mid];
        if (r < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

/* Used by gguf_write.c (hc_gguf_copy_kv): the exact bytes of a kv's value in the file. */
int hc_gguf_internal_kv_bytes(const hc_gguf *g, const hc_gguf_kv *kv, const uint8_t **bytes, size_t *len);
int hc_gguf_internal_kv_bytes(const hc_gguf *g, const hc_gguf_kv *kv, const uint8_t **bytes, size_t *len)
{
    if (!g || kv < g->kv || kv >= g->kv + g->n_kv) return 0;
    const gguf_impl *im = g->impl;
    const kv_span *s = &im->spans[kv - g->kv];
    *bytes = g->base + s->off;
    *len = (size_t)s->len;
    return 1;
}

/* ---- the parse ---- */

static hc_status grow(void **arr, uint64_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap) return HC_OK;
    uint64_t nc = *cap ? *cap * 2 : 16;
    if (nc < need) nc = need;
    if (nc > SIZE_MAX / elem) return HC_E_NOMEM;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return HC_E_NOMEM;
    *arr = p;
    *cap = nc;
    return HC_OK;
}

static hc_status parse_kvs(cursor *c, hc_gguf *g, uint64_t n_kv)
{
    gguf_impl *im = c->im;
    uint64_t cap = 0, cap2 = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        /* grown as entries are read, so a bogus count cannot ask for a huge allocation */
        if (grow((void **)&g->kv, &cap, i + 1, sizeof(hc_gguf_kv)) ||
            grow((void **)&im->spans, &cap2, i + 1, sizeof(kv_span)))
            return hc_error(HC_E_NOMEM, "%s: out of memory reading kv %" PRIu64, c->path, i);
        hc_gguf_kv *kv = &g->kv[i];
        memset(kv, 0, sizeof *kv);
        g->n_kv = i;   /* only the entries read so far count */
        snprintf(c->where, sizeof c->where, "kv %" PRIu64, i);
        hc_status st = take_name(c, &kv->key, "key");
        if (st) return st;
        snprintf(c->where, sizeof c->where, "kv %" PRIu64 " ('%.100s')", i, kv->key);
        size_t start = c->pos;
        st = take_value(c, kv);
        if (st) return st;
        im->spans[i].off = start;
        im->spans[i].len = c->pos - start;
        g->n_kv = i + 1;
    }
    return HC_OK;
}

static hc_status parse_tensor_infos(cursor *c, hc_gguf *g, uint64_t n_tensors)
{
    uint64_t cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (grow((void **)&g->tensors, &cap, i + 1, sizeof(hc_gguf_tensor)))
            return hc_error(HC_E_NOMEM, "%s: out of memory reading tensor info %" PRIu64, c->path, i);
        hc_gguf_tensor *t = &g->tensors[i];
        memset(t, 0, sizeof *t);
        g->n_tensors = i;
        snprintf(c->where, sizeof c->where, "tensor info %" PRIu64, i);
        hc_status st = take_name(c, &t->name, "tensor name");
        if (st) return st;
        snprintf(c->where, sizeof c->where, "tensor info %" PRIu64 " (%.100s)", i, t->name);
        if (!take_u32(c, &t->n_dims)) return truncated(c);
        if (t->n_dims > HC_MAX_DIMS)
            return fail(c, "%" PRIu32 " dimensions, at most %d are supported", t->n_dims, HC_MAX_DIMS);
        for (int d = 0; d < HC_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne;
            if (!take_u64(c, &ne)) return truncated(c);
            if (ne > (uint64_t)INT64_MAX) return fail(c, "dimension %" PRIu32 " is %" PRIu64 ", too large", d, ne);
            t->ne[d] = (int64_t)ne;
        }
        if (!take_u32(c, &t->type) || !take_u64(c, &t->offset)) return truncated(c);
        g->n_tensors = i + 1;
    }
    return HC_OK;
}

/* Sizes and places each tensor's data once the data section's start is known. */
static hc_status place_tensors(cursor *c, hc_gguf *g)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        hc_gguf_tensor *t = &g->tensors[i];
        snprintf(c->where, sizeof c->where, "tensor '%.100s'", t->name);
        if (t->offset % g->alignment)
            return fail(c, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32, t->offset, g->alignment);
        if (t->offset > (uint64_t)g->size || g->data_offset > (uint64_t)g->size - t->offset)
            return fail(c, "data offset %" PRIu64 " lies beyond the end of the file (%zu bytes)", t->offset, g->size);
        uint64_t start = g->data_offset + t->offset;
        hc_dtype dt = (hc_dtype)t->type;
        if (!hc_dtype_is_known(dt)) continue;    /* size unknown: nbytes 0, data NULL */
        uint64_t n = 1;
        for (int d = 0; d < HC_MAX_DIMS; d++) {
            uint64_t ne = (uint64_t)t->ne[d];
            if (ne && n > (uint64_t)INT64_MAX / ne) return fail(c, "too many elements");
            n *= ne;
        }
        int bs = hc_dtype_block_size(dt);
        if (t->ne[0] % bs)
            return fail(c, "a row of %" PRId64 " elements is not a multiple of %s's block of %d",
                        t->ne[0], hc_dtype_name(dt), bs);
        uint64_t blocks = n / (uint64_t)bs, bb = hc_dtype_block_bytes(dt);
        if (blocks > SIZE_MAX / bb) return fail(c, "data size overflows");
        uint64_t nbytes = blocks * bb;
        if (nbytes > (uint64_t)g->size - start)
            return fail(c, "data [%" PRIu64 ", %" PRIu64 ") lies beyond the end of the file (%zu bytes)",
                        start, start + nbytes, g->size);
        t->nbytes = (size_t)nbytes;
        t->data = nbytes ? g->base + start : NULL;
    }
    return HC_OK;
}

static hc_status find_alignment(cursor *c, hc_gguf *g)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const hc_gguf_kv *kv = hc_gguf_find(g, "general.alignment");
    if (!kv) return HC_OK;
    if (kv->type != HC_GGUF_UINT32)
        return hc_error(HC_E_FORMAT, "%s: key 'general.alignment' is %s, expected uint32", c->path,
                        hc_gguf_type_name(kv->type));
    uint64_t a = kv->v.u64;
    if (a == 0 || (a & (a - 1)))
        return hc_error(HC_E_FORMAT, "%s: key 'general.alignment' is %" PRIu64 ", expected a nonzero power of two",
                        c->path, a);
    g->alignment = (uint32_t)a;
    return HC_OK;
}

static hc_status parse(cursor *c, hc_gguf *g)
{
    snprintf(c->where, sizeof c->where, "header");
    if (c->size < 4) return truncated(c);
    if (memcmp(c->base, "GGUF", 4) != 0) return hc_error(HC_E_FORMAT, "%s: not a GGUF file (bad magic)", c->path);
    c->pos = 4;
    uint32_t version;
    uint64_t n_tensors, n_kv;
    if (!take_u32(c, &version)) return truncated(c);
    if (version == 1) return hc_error(HC_E_FORMAT, "%s: GGUF version 1 is not supported", c->path);
    if (version == 0x02000000u || version == 0x03000000u)
        return hc_error(HC_E_FORMAT, "%s: big-endian GGUF is not supported", c->path);
    if (version != 2 && version != 3)
        return hc_error(HC_E_FORMAT, "%s: GGUF version %" PRIu32 " is not supported", c->path, version);
    g->version = version;
    if (!take_u64(c, &n_tensors) || !take_u64(c, &n_kv)) return truncated(c);

    hc_status st = parse_kvs(c, g, n_kv);
    if (st) return st;
    st = parse_tensor_infos(c, g, n_tensors);
    if (st) return st;

    gguf_impl *im = c->im;
    im->kv_sorted = malloc((g->n_kv ? (size_t)g->n_kv : 1) * sizeof *im->kv_sorted);
    im->t_sorted = malloc((g->n_tensors ? (size_t)g->n_tensors : 1) * sizeof *im->t_sorted);
    if (!im->kv_sorted || !im->t_sorted) return hc_error(HC_E_NOMEM, "%s: out of memory", c->path);
    for (uint64_t i = 0; i < g->n_kv; i++) im->kv_sorted[i] = &g->kv[i];
    for (uint64_t i = 0; i < g->n_tensors; i++) im->t_sorted[i] = &g->tensors[i];
    qsort(im->kv_sorted, (size_t)g->n_kv, sizeof *im->kv_sorted, cmp_kv);
    qsort(im->t_sorted, (size_t)g->n_tensors, sizeof *im->t_sorted, cmp_tensor);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (!strcmp(im->kv_sorted[i - 1]->key, im->kv_sorted[i]->key))
            return hc_error(HC_E_FORMAT, "%s: duplicate key '%.100s'", c->path, im->kv_sorted[i]->key);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(im->t_sorted[i - 1]->name, im->t_sorted[i]->name))
            return hc_error(HC_E_FORMAT, "%s: duplicate tensor name '%.100s'", c->path, im->t_sorted[i]->name);

    st = find_alignment(c, g);
    if (st) return st;
    uint64_t a = g->alignment, data = ((uint64_t)c->pos + a - 1) / a * a;
    if (data > (uint64_t)c->size) {
        if (g->n_tensors) {
            snprintf(c->where, sizeof c->where, "the padding before the tensor data");
            return truncated(c);
        }
        data = c->size;   /* no tensors: the final padding may be absent */
    }
    g->data_offset = data;
    return place_tensors(c, g);
}

static hc_status open_common(const uint8_t *base, size_t size, const char *label, void *map, hc_gguf **out)
{
    *out = NULL;
    hc_gguf *g = calloc(1, sizeof *g);
    gguf_impl *im = calloc(1, sizeof *im);
    char *path = strdup(label);
    if (!g || !im || !path) {
        free(g);
        free(im);
        free(path);
        if (map) munmap(map, size);
        return hc_error(HC_E_NOMEM, "%s: out of memory", label);
    }
    im->map = map;
    im->map_len = size;
    g->impl = im;
    g->path = path;
    g->base = base;
    g->size = size;
    cursor c = {.base = base, .size = size, .pos = 0, .path = path, .im = im};
    hc_status st = parse(&c, g);
    if (st) {
        hc_gguf_close(g);
        return st;
    }
    *out = g;
    return HC_OK;
}

hc_status hc_gguf_open_memory(const void *buf, size_t size, const char *label, hc_gguf **out)
{
    if (!out) return hc_error(HC_E_ARG, "hc_gguf_open_memory: out is NULL");
    *out = NULL;
    if (!label) label = "<memory>";
    if (!buf && size) return hc_error(HC_E_ARG, "%s: NULL buffer", label);
    static const uint8_t empty[1] = {0};
    return open_common(buf ? buf : empty, size, label, NULL, out);
}

hc_status hc_gguf_open(const char *path, hc_gguf **out)
{
    if (!out || !path) return hc_error(HC_E_ARG, "hc_gguf_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hc_error(HC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return hc_error(HC_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return hc_error(HC_E_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return hc_error(HC_E_FORMAT, "%s: truncated in header (the file is empty)", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return hc_error(HC_E_IO, "%s: too large to map", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return hc_error(HC_E_IO, "%s: cannot map: %s", path, strerror(e));
    return open_common(map, size, path, map, out);
}

void hc_gguf_close(hc_gguf *g)
{
    if (!g) return;
    gguf_impl *im = g->impl;
    if (im) {
        if (im->map) munmap(im->map, im->map_len);
        arena_block *b = im->arena;
        while (b) {
            arena_block *next = b->next;
            free(b);
            b = next;
        }
        free(im->spans);
        free(im->kv_sorted);
        free(im->t_sorted);
        free(im);
    }
    free(g->kv);
    free(g->tensors);
    free(g->path);
    free(g);
}

/* ---- typed getters ---- */

static int is_unsigned(hc_gguf_type t)
{
    return t == HC_GGUF_UINT8 || t == HC_GGUF_UINT16 || t == HC_GGUF_UINT32 || t == HC_GGUF_UINT64;
}

static int is_signed(hc_gguf_type t)
{
    return t == HC_GGUF_INT8 || t == HC_GGUF_INT16 || t == HC_GGUF_INT32 || t == HC_GGUF_INT64;
}

static hc_status lookup(const hc_gguf *g, const char *key, const hc_gguf_kv **kv)
{
    *kv = hc_gguf_find(g, key);
    if (!*kv) return hc_error(HC_E_FORMAT, "%s: missing key '%s'", g ? g->path : "<null>", key ? key : "(null)");
    return HC_OK;
}

static hc_status wrong_type(const hc_gguf *g, const hc_gguf_kv *kv, const char *expected)
{
    if (kv->type == HC_GGUF_ARRAY)
        return hc_error(HC_E_FORMAT, "%s: key '%s' is an array of %s, expected %s", g->path, kv->key,
                        hc_gguf_type_name(kv->arr_type), expected);
    return hc_error(HC_E_FORMAT, "%s: key '%s' is %s, expected %s", g->path, kv->key,
                    hc_gguf_type_name(kv->type), expected);
}

hc_status hc_gguf_get_u32(const hc_gguf *g, const char *key, uint32_t *out)
{
    const hc_gguf_kv *kv;
    hc_status st = lookup(g, key, &kv);
    if (st) return st;
    if (is_unsigned(kv->type) && kv->v.u64 <= UINT32_MAX) {
        *out = (uint32_t)kv->v.u64;
        return HC_OK;
    }
    if (is_signed(kv->type) && kv->v.i64 >= 0 && kv->v.i64 <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)kv->v.i64;
        return HC_OK;
    }
    if (is_unsigned(kv->type) || is_signed(kv->type)) {
        char v[64];
        hc_gguf_format_value(kv, v, sizeof v, 0);
        return hc_error(HC_E_FORMAT, "%s: key '%s' is %s, which does not fit in uint32", g->path, key, v);
    }
    return wrong_type(g, kv, "an integer");
}

hc_status hc_gguf_get_i64(const hc_gguf *g, const char *key, int64_t *out)
{
    const hc_gguf_kv *kv;
    hc_status st = lookup(g, key, &kv);
    if (st) return st;
    if (is_signed(kv->type)) {
        *out = kv->v.i64;
        return HC_OK;
    }
    if (is_unsigned(kv->type)) {
        if (kv->v.u64 > (uint64_t)INT64_MAX)
            return hc_error(HC_E_FORMAT, "%s: key '%s' is %" PRIu64 ", which does not fit in int64", g->path, key,
                            kv->v.u64);
        *out = (int64_t)kv->v.u64;
        return HC_OK;
    }
    return wrong_type(g, kv, "an integer");
}

hc_status hc_gguf_get_f32(const hc_gguf *g, const char *key, float *out)
{
    const hc_gguf_kv *kv;
    hc_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->type == HC_GGUF_FLOAT32 || kv->type == HC_GGUF_FLOAT64) *out = (float)kv->v.f64;
    else if (is_signed(kv->type)) *out = (float)kv->v.i64;
    else if (is_unsigned(kv->type)) *out = (float)kv->v.u64;
    else return wrong_type(g, kv, "a number");
    return HC_OK;
}

hc_status hc_gguf_get_bool(const hc_gguf *g, const char *key, int *out)
{
    const hc_gguf_kv *kv;
    hc_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->type != HC_GGUF_BOOL) return wrong_type(g, kv, "bool");
    *out = kv->v.u64 != 0;
    return HC_OK;
}

hc_status hc_gguf_get_str(const hc_gguf *g, const char *key, const char **out)
{
    const hc_gguf_kv *kv;
    hc_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->type != HC_GGUF_STRING) return wrong_type(g, kv, "string");
    *out = kv->v.str.data;
    return HC_OK;
}

hc_status hc_gguf_get_arr(const hc_gguf *g, const char *key, hc_gguf_type type, const void **data, uint64_t *n)
{
    const hc_gguf_kv *kv;
    hc_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->type != HC_GGUF_ARRAY || kv->arr_type != type) {
        char expected[48];
        snprintf(expected, sizeof expected, "an array of %s", hc_gguf_type_name(type));
        return wrong_type(g, kv, expected);
    }
    *data = kv->arr;
    *n = kv->arr_n;
    return HC_OK;
}

hc_status hc_gguf_get_u32_or(const hc_gguf *g, const char *key, uint32_t dflt, uint32_t *out)
{
    if (!hc_gguf_find(g, key)) {
        *out = dflt;
        return HC_OK;
    }
    return hc_gguf_get_u32(g, key, out);
}

hc_status hc_gguf_get_f32_or(const hc_gguf *g, const char *key, float dflt, float *out)
{
    if (!hc_gguf_find(g, key)) {
        *out = dflt;
        return HC_OK;
    }
    return hc_gguf_get_f32(g, key, out);
}

/* ---- values as text ---- */

typedef struct textbuf {
    char *p;
    size_t cap, len;   /* len may pass cap: the rest is dropped */
} textbuf;

static void tb_printf(textbuf *tb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(textbuf *tb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = tb->len < tb->cap ? tb->cap - tb->len : 0;
    int n = vsnprintf(room ? tb->p + tb->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) tb->len += (size_t)n;
}

static void tb_quoted(textbuf *tb, const char *s, uint64_t len)
{
    tb_printf(tb, "\"");
    for (uint64_t i = 0; i < len && tb->len < tb->cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') tb_printf(tb, "\\%c", ch);
        else if (ch == '\n') tb_printf(tb, "\\n");
        else if (ch == '\t') tb_printf(tb, "\\t");
        else if (ch < 0x20 || ch == 0x7f) tb_printf(tb, "\\x%02x", ch);
        else tb_printf(tb, "%c", ch);
    }
    tb_printf(tb, "\"");
}

static void tb_scalar(textbuf *tb, hc_gguf_type t, const hc_gguf_kv *kv)
{
    switch (t) {
    case HC_GGUF_BOOL: tb_printf(tb, "%s", kv->v.u64 ? "true" : "false"); break;
    case HC_GGUF_FLOAT32: case HC_GGUF_FLOAT64: {
        /* the shortest text that reads back as the same value (1e-05, not 9.99999975e-06) */
        char num[40];
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(num, sizeof num, "%.*g", prec, kv->v.f64);
            double back = strtod(num, NULL);
            if (t == HC_GGUF_FLOAT32 ? (float)back == (float)kv->v.f64 : back == kv->v.f64) break;
        }
        tb_printf(tb, "%s", num);
        break;
    }
    default:
        if (is_signed(t)) tb_printf(tb, "%" PRId64, kv->v.i64);
        else tb_printf(tb, "%" PRIu64, kv->v.u64);
    }
}

void hc_gguf_format_value(const hc_gguf_kv *kv, char *buf, size_t cap, int max_items)
{
    if (!buf || !cap) return;
    buf[0] = '\0';
    if (!kv) return;
    textbuf tb = {buf, cap, 0};
    if (kv->type == HC_GGUF_STRING) {
        tb_quoted(&tb, kv->v.str.data, kv->v.str.len);
    } else if (kv->type != HC_GGUF_ARRAY) {
        tb_scalar(&tb, kv->type, kv);
    } else if (kv->arr_type == HC_GGUF_ARRAY || !kv->arr) {
        tb_printf(&tb, "[%" PRIu64 " nested arrays]", kv->arr_n);
    } else {
        uint64_t shown = max_items < 0 ? 0 : (uint64_t)max_items;
        if (shown > kv->arr_n) shown = kv->arr_n;
        tb_printf(&tb, "[");
        size_t sz = hc_gguf_scalar_size(kv->arr_type);
        for (uint64_t i = 0; i < shown && tb.len < tb.cap; i++) {
            if (i) tb_printf(&tb, ", ");
            if (kv->arr_type == HC_GGUF_STRING) {
                const hc_gguf_str *s = (const hc_gguf_str *)kv->arr + i;
                tb_quoted(&tb, s->data, s->len);
            } else {
                hc_gguf_kv one;
                memset(&one, 0, sizeof one);
                widen_scalar(kv->arr_type, (const uint8_t *)kv->arr + i * sz, &one);
                tb_scalar(&tb, kv->arr_type, &one);
            }
        }
        if (shown < kv->arr_n) tb_printf(&tb, "%s... %" PRIu64 " items", shown ? ", " : "", kv->arr_n);
        tb_printf(&tb, "]");
    }
    if (tb.len >= cap && cap >= 4) memcpy(buf + cap - 4, "...", 4);   /* show the cut */
}
