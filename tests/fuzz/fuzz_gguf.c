/* fuzz_gguf.c: libFuzzer harness of the GGUF reader: every accessor on every key and tensor of an
 * accepted file, tensor data inside the buffer, and a write/read round trip that keeps everything. */
#include <string.h>

#include "fuzz_util.h"
#include "gguf.h"

/* Every getter on one key: any status, but the values they give are the stored ones. */
static void read_key(const hc_gguf *g, const hc_gguf_kv *kv)
{
    FUZZ_CHECK(hc_gguf_find(g, kv->key) == kv, "key '%s' is not found as itself", kv->key);
    uint32_t u32;
    int64_t i64;
    float f32;
    int b;
    const char *s;
    const void *arr;
    uint64_t n;
    (void)hc_gguf_get_u32(g, kv->key, &u32);
    (void)hc_gguf_get_i64(g, kv->key, &i64);
    (void)hc_gguf_get_f32(g, kv->key, &f32);
    (void)hc_gguf_get_bool(g, kv->key, &b);
    (void)hc_gguf_get_u32_or(g, kv->key, 7, &u32);
    (void)hc_gguf_get_f32_or(g, kv->key, 7.0f, &f32);
    if (hc_gguf_get_str(g, kv->key, &s) == HC_OK)
        FUZZ_CHECK(kv->type == HC_GGUF_STRING && s == kv->v.str.data && strlen(s) <= kv->v.str.len, "string '%s'", kv->key);
    /* the array getter with the stored element type, and with another one */
    hc_gguf_type tries[2] = { kv->arr_type, (hc_gguf_type)((kv->arr_type + 1) % (HC_GGUF_FLOAT64 + 1)) };
    for (int k = 0; k < 2; k++) {
        hc_gguf_type t = tries[k];
        if (hc_gguf_get_arr(g, kv->key, t, &arr, &n) == HC_OK) {
            FUZZ_CHECK(kv->type == HC_GGUF_ARRAY && kv->arr_type == (hc_gguf_type)t && n == kv->arr_n, "array '%s'", kv->key);
            if (t == HC_GGUF_STRING)
                for (uint64_t i = 0; i < n; i++) FUZZ_CHECK(strlen(((const hc_gguf_str *)arr)[i].data) <= ((const hc_gguf_str *)arr)[i].len, "item");
            else if (hc_gguf_scalar_size((hc_gguf_type)t) && n) { /* read the last element: ASan sees the array's end */
                volatile uint8_t last = ((const uint8_t *)arr)[n * hc_gguf_scalar_size((hc_gguf_type)t) - 1];
                (void)last;
            }
        }
    }
    char text[512];
    hc_gguf_format_value(kv, text, sizeof text, 16);
    FUZZ_CHECK(strlen(text) < sizeof text, "format_value overflow");
}

static void same_value(const hc_gguf_kv *a, const hc_gguf_kv *b)
{
    FUZZ_CHECK(a->type == b->type && a->arr_type == b->arr_type && a->arr_n == b->arr_n, "key '%s' changed kind", a->key);
    char ta[512], tb[512];
    hc_gguf_format_value(a, ta, sizeof ta, 16);
    hc_gguf_format_value(b, tb, sizeof tb, 16);
    FUZZ_CHECK(!strcmp(ta, tb), "key '%s': %s became %s", a->key, ta, tb);
    if (a->type == HC_GGUF_STRING)
        FUZZ_CHECK(a->v.str.len == b->v.str.len && !memcmp(a->v.str.data, b->v.str.data, a->v.str.len), "string '%s'", a->key);
    else if (a->type == HC_GGUF_ARRAY && a->arr_type == HC_GGUF_STRING)
        for (uint64_t i = 0; i < a->arr_n; i++) {
            const hc_gguf_str *x = (const hc_gguf_str *)a->arr + i, *y = (const hc_gguf_str *)b->arr + i;
            FUZZ_CHECK(x->len == y->len && !memcmp(x->data, y->data, x->len), "'%s'[%llu]", a->key, (unsigned long long)i);
        }
    else if (a->type == HC_GGUF_ARRAY && hc_gguf_scalar_size(a->arr_type))
        FUZZ_CHECK(!memcmp(a->arr, b->arr, a->arr_n * hc_gguf_scalar_size(a->arr_type)), "array '%s'", a->key);
    else if (a->type != HC_GGUF_ARRAY)
        FUZZ_CHECK(a->v.u64 == b->v.u64 || (a->type == HC_GGUF_FLOAT32 || a->type == HC_GGUF_FLOAT64), "scalar '%s'", a->key);
}

/* Writes g again with the writer (its keys, and the tensors whose type hcinfer knows) and reads it
 * back: the same keys with the same values, the same tensors with the same bytes. */
static void round_trip(const hc_gguf *g)
{
    hc_gguf_writer *w = NULL;
    FUZZ_CHECK(hc_gguf_writer_create(&w) == HC_OK, "writer");
    hc_status st = hc_gguf_copy_kv(w, g, NULL, NULL);
    FUZZ_CHECK(st == HC_OK, "copy_kv: %s", hc_last_error());
    uint64_t written = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        if (!t->data) continue;
        st = hc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
        FUZZ_CHECK(st == HC_OK, "add_tensor %s: %s", t->name, hc_last_error());
        written++;
    }
    const char *path = fuzz_tmp("rt.gguf");
    st = hc_gguf_writer_write(w, path);
    hc_gguf_writer_free(w);
    if (st != HC_OK) return; /* e.g. a key the writer refuses to write; the reader took it */
    hc_gguf *h = NULL;
    st = hc_gguf_open(path, &h);
    FUZZ_CHECK(st == HC_OK, "the written file does not read back: %s", hc_last_error());
    FUZZ_CHECK(h->n_kv == g->n_kv && h->n_tensors == written, "%llu keys and %llu tensors became %llu and %llu",
               (unsigned long long)g->n_kv, (unsigned long long)written, (unsigned long long)h->n_kv, (unsigned long long)h->n_tensors);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const hc_gguf_kv *b = hc_gguf_find(h, g->kv[i].key);
        FUZZ_CHECK(b != NULL, "key '%s' lost", g->kv[i].key);
        same_value(&g->kv[i], b);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        if (!t->data) continue;
        const hc_gguf_tensor *u = hc_gguf_find_tensor(h, t->name);
        FUZZ_CHECK(u && u->type == t->type && u->n_dims == t->n_dims && !memcmp(u->ne, t->ne, sizeof t->ne) && u->nbytes == t->nbytes &&
                       !memcmp(u->data, t->data, t->nbytes),
                   "tensor %s changed", t->name);
    }
    hc_gguf_close(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hc_gguf *g = NULL;
    hc_clear_error();
    if (hc_gguf_open_memory(data, size, "fuzz", &g) != HC_OK) {
        FUZZ_CHECK(hc_last_error()[0], "a refusal without a message");
        return 0;
    }
    for (uint64_t i = 0; i < g->n_kv; i++) read_key(g, &g->kv[i]);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        FUZZ_CHECK(hc_gguf_find_tensor(g, t->name) == t, "tensor %s not found as itself", t->name);
        if (!t->data) continue;
        const uint8_t *d = t->data;
        FUZZ_CHECK(d >= data && d <= data + size && t->nbytes <= (size_t)(data + size - d), "tensor %s outside the file", t->name);
        if (hc_dtype_is_known((hc_dtype)t->type)) {
            int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
            FUZZ_CHECK(t->nbytes == hc_dtype_row_bytes((hc_dtype)t->type, t->ne[0]) * (size_t)rows, "tensor %s: size", t->name);
        }
    }
    (void)hc_gguf_find(g, "general.architecture");
    (void)hc_gguf_find_tensor(g, "token_embd.weight");
    round_trip(g);
    hc_gguf_close(g);
    return 0;
}
