/* test_gguf.c: the GGUF reader on files whose bytes the test builds by hand (every value type,
 * arrays, nested arrays, alignment, tensors), the refusals, and the writer's round trip. */
#include "test_util.h"

#include "gguf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a byte-buffer builder, independent of the writer ---- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static void b_put(buf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void b_u8(buf *b, uint8_t v) { b_put(b, &v, 1); }
static void b_u16(buf *b, uint16_t v) { uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; b_put(b, x, 2); }
static void b_u32(buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    b_put(b, x, 4);
}
static void b_u64(buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    b_put(b, x, 8);
}
static void b_f32(buf *b, float f) { uint32_t u; memcpy(&u, &f, 4); b_u32(b, u); }
static void b_f64(buf *b, double f) { uint64_t u; memcpy(&u, &f, 8); b_u64(b, u); }
static void b_str(buf *b, const char *s) { b_u64(b, strlen(s)); b_put(b, s, strlen(s)); }
static void b_key(buf *b, const char *key, uint32_t type) { b_str(b, key); b_u32(b, type); }
static void b_pad(buf *b, size_t align) { while (b->len % align) b_u8(b, 0); }

static void b_tensor_info(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off)
{
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) b_u64(b, ne[i]);
    b_u32(b, type);
    b_u64(b, off);
}

/* ---- the reference file ---- */

static const float F32_DATA[8] = {1.0f, -2.0f, 0.5f, 3.25f, -0.125f, 100.0f, 7.0f, -8.5f};

/* A v3 file with every scalar type, a string, arrays of u8/i32/f32/string, a nested array,
 * general.alignment = 64 and tensors F32 [4,2], F16 [8], Q8_0 [64]. *data_start gets the data
 * section's offset. */
static buf build_reference(size_t *data_start)
{
    buf b = {0};
    b_put(&b, "GGUF", 4);
    b_u32(&b, 3);
    b_u64(&b, 3);    /* tensors */
    b_u64(&b, 20);   /* kv */
    b_key(&b, "general.alignment", HC_GGUF_UINT32); b_u32(&b, 64);
    b_key(&b, "t.u8", HC_GGUF_UINT8); b_u8(&b, 200);
    b_key(&b, "t.i8", HC_GGUF_INT8); b_u8(&b, (uint8_t)(int8_t)-100);
    b_key(&b, "t.u16", HC_GGUF_UINT16); b_u16(&b, 60000);
    b_key(&b, "t.i16", HC_GGUF_INT16); b_u16(&b, (uint16_t)(int16_t)-30000);
    b_key(&b, "t.u32", HC_GGUF_UINT32); b_u32(&b, 4000000000u);
    b_key(&b, "t.i32", HC_GGUF_INT32); b_u32(&b, (uint32_t)(int32_t)-2000000000);
    b_key(&b, "t.f32", HC_GGUF_FLOAT32); b_f32(&b, 1.5f);
    b_key(&b, "t.bool", HC_GGUF_BOOL); b_u8(&b, 1);
    b_key(&b, "t.str", HC_GGUF_STRING); b_str(&b, "hello, gguf");
    b_key(&b, "t.u64", HC_GGUF_UINT64); b_u64(&b, UINT64_MAX);
    b_key(&b, "t.i64", HC_GGUF_INT64); b_u64(&b, (uint64_t)INT64_C(-9000000000000000000));
    b_key(&b, "t.f64", HC_GGUF_FLOAT64); b_f64(&b, -2.25e100);
    b_key(&b, "a.u8", HC_GGUF_ARRAY); b_u32(&b, HC_GGUF_UINT8); b_u64(&b, 3);
    b_u8(&b, 1); b_u8(&b, 2); b_u8(&b, 3);
    b_key(&b, "a.i32", HC_GGUF_ARRAY); b_u32(&b, HC_GGUF_INT32); b_u64(&b, 3);
    b_u32(&b, (uint32_t)-1); b_u32(&b, 0); b_u32(&b, 70000);
    b_key(&b, "a.f32", HC_GGUF_ARRAY); b_u32(&b, HC_GGUF_FLOAT32); b_u64(&b, 3);
    b_f32(&b, 0.5f); b_f32(&b, -1.0f); b_f32(&b, 3.25f);
    b_key(&b, "a.str", HC_GGUF_ARRAY); b_u32(&b, HC_GGUF_STRING); b_u64(&b, 3);
    b_str(&b, "a"); b_str(&b, ""); b_str(&b, "\xc3\xbcn\xc3\xaf");
    /* [[1, 2] (u8), ["x"] (string)] */
    b_key(&b, "a.nested", HC_GGUF_ARRAY); b_u32(&b, HC_GGUF_ARRAY); b_u64(&b, 2);
    b_u32(&b, HC_GGUF_UINT8); b_u64(&b, 2); b_u8(&b, 1); b_u8(&b, 2);
    b_u32(&b, HC_GGUF_STRING); b_u64(&b, 1); b_str(&b, "x");
    b_key(&b, "t.after", HC_GGUF_UINT32); b_u32(&b, 7);
    b_key(&b, "a.empty", HC_GGUF_ARRAY); b_u32(&b, HC_GGUF_INT64); b_u64(&b, 0);

    uint64_t ne_f32[2] = {4, 2}, ne_f16[1] = {8}, ne_q8[1] = {64};
    b_tensor_info(&b, "w.f32", 2, ne_f32, HC_F32, 0);
    b_tensor_info(&b, "w.f16", 1, ne_f16, HC_F16, 64);
    b_tensor_info(&b, "w.q8", 1, ne_q8, HC_Q8_0, 128);
    b_pad(&b, 64);
    *data_start = b.len;
    for (int i = 0; i < 8; i++) b_f32(&b, F32_DATA[i]);
    b_pad(&b, 64);
    for (int i = 0; i < 8; i++) b_u16(&b, hc_f32_to_f16((float)i - 3.5f));
    b_pad(&b, 64);
    for (int blk = 0; blk < 2; blk++) {           /* d = 0.5 then 2; q[j] = j - 16 */
        b_u16(&b, blk ? 0x4000 : 0x3800);
        for (int j = 0; j < 32; j++) b_u8(&b, (uint8_t)(int8_t)(j - 16));
    }
    return b;
}

static void check_reference(const hc_gguf *g, size_t data_start)
{
    CU_ASSERT_EQUAL(g->version, 3);
    CU_ASSERT_EQUAL(g->n_kv, 20);
    CU_ASSERT_EQUAL(g->n_tensors, 3);
    CU_ASSERT_EQUAL(g->alignment, 64);
    CU_ASSERT_EQUAL(g->data_offset, data_start);
    CU_ASSERT_EQUAL(g->data_offset % 64, 0);

    /* kvs in file order with their raw fields */
    CU_ASSERT_STRING_EQUAL(g->kv[0].key, "general.alignment");
    CU_ASSERT_STRING_EQUAL(g->kv[19].key, "a.empty");
    const hc_gguf_kv *kv = hc_gguf_find(g, "t.u8");
    CU_ASSERT_FATAL(kv != NULL);
    CU_ASSERT_EQUAL(kv->type, HC_GGUF_UINT8);
    CU_ASSERT_EQUAL(kv->v.u64, 200);
    kv = hc_gguf_find(g, "t.i8");
    CU_ASSERT_EQUAL(kv->type, HC_GGUF_INT8);
    CU_ASSERT_EQUAL(kv->v.i64, -100);
    CU_ASSERT_EQUAL(hc_gguf_find(g, "t.u16")->v.u64, 60000);
    CU_ASSERT_EQUAL(hc_gguf_find(g, "t.i16")->v.i64, -30000);
    CU_ASSERT_EQUAL(hc_gguf_find(g, "t.u32")->v.u64, 4000000000u);
    CU_ASSERT_EQUAL(hc_gguf_find(g, "t.i32")->v.i64, -2000000000);
    CU_ASSERT_EQUAL(hc_gguf_find(g, "t.f32")->v.f64, 1.5);
    CU_ASSERT_EQUAL(hc_gguf_find(g, "t.u64")->v.u64, UINT64_MAX);
    CU_ASSERT_EQUAL(hc_gguf_find(g, "t.i64")->v.i64, INT64_C(-9000000000000000000));
    CU_ASSERT_EQUAL(hc_gguf_find(g, "t.f64")->v.f64, -2.25e100);
    kv = hc_gguf_find(g, "t.str");
    CU_ASSERT_EQUAL(kv->type, HC_GGUF_STRING);
    CU_ASSERT_EQUAL(kv->v.str.len, 11);
    CU_ASSERT_STRING_EQUAL(kv->v.str.data, "hello, gguf");
    CU_ASSERT_PTR_NULL(hc_gguf_find(g, "t.missing"));

    /* typed getters */
    uint32_t u32;
    int64_t i64;
    float f;
    int bl;
    const char *s;
    HC_ASSERT_OK(hc_gguf_get_u32(g, "t.u32", &u32));
    CU_ASSERT_EQUAL(u32, 4000000000u);
    HC_ASSERT_OK(hc_gguf_get_u32(g, "t.u8", &u32));
    CU_ASSERT_EQUAL(u32, 200);
    CU_ASSERT_EQUAL(hc_gguf_get_u32(g, "t.u64", &u32), HC_E_FORMAT);                    /* does not fit */
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "t.u64"));
    CU_ASSERT_EQUAL(hc_gguf_get_u32(g, "t.i8", &u32), HC_E_FORMAT);                       /* negative */
    CU_ASSERT_EQUAL(hc_gguf_get_u32(g, "t.str", &u32), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "key 't.str' is string"));
    CU_ASSERT_EQUAL(hc_gguf_get_u32(g, "nope", &u32), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "missing key 'nope'"));
    HC_ASSERT_OK(hc_gguf_get_i64(g, "t.i64", &i64));
    CU_ASSERT_EQUAL(i64, INT64_C(-9000000000000000000));
    HC_ASSERT_OK(hc_gguf_get_i64(g, "t.u16", &i64));
    CU_ASSERT_EQUAL(i64, 60000);
    CU_ASSERT_EQUAL(hc_gguf_get_i64(g, "t.u64", &i64), HC_E_FORMAT);
    CU_ASSERT_EQUAL(hc_gguf_get_i64(g, "t.f32", &i64), HC_E_FORMAT);
    HC_ASSERT_OK(hc_gguf_get_f32(g, "t.f32", &f));
    CU_ASSERT_EQUAL(f, 1.5f);
    HC_ASSERT_OK(hc_gguf_get_f32(g, "t.i16", &f));
    CU_ASSERT_EQUAL(f, -30000.0f);
    CU_ASSERT_EQUAL(hc_gguf_get_f32(g, "t.bool", &f), HC_E_FORMAT);
    HC_ASSERT_OK(hc_gguf_get_bool(g, "t.bool", &bl));
    CU_ASSERT_EQUAL(bl, 1);
    CU_ASSERT_EQUAL(hc_gguf_get_bool(g, "t.u8", &bl), HC_E_FORMAT);
    HC_ASSERT_OK(hc_gguf_get_str(g, "t.str", &s));
    CU_ASSERT_STRING_EQUAL(s, "hello, gguf");
    HC_ASSERT_OK(hc_gguf_get_u32_or(g, "absent", 99, &u32));
    CU_ASSERT_EQUAL(u32, 99);
    HC_ASSERT_OK(hc_gguf_get_u32_or(g, "t.after", 99, &u32));
    CU_ASSERT_EQUAL(u32, 7);                      /* the key after the nested array */
    CU_ASSERT_EQUAL(hc_gguf_get_u32_or(g, "t.str", 99, &u32), HC_E_FORMAT);
    HC_ASSERT_OK(hc_gguf_get_f32_or(g, "absent", 0.25f, &f));
    CU_ASSERT_EQUAL(f, 0.25f);

    /* arrays */
    const void *data;
    uint64_t n;
    HC_ASSERT_OK(hc_gguf_get_arr(g, "a.u8", HC_GGUF_UINT8, &data, &n));
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(memcmp(data, "\x01\x02\x03", 3), 0);
    HC_ASSERT_OK(hc_gguf_get_arr(g, "a.i32", HC_GGUF_INT32, &data, &n));
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(((const int32_t *)data)[0], -1);
    CU_ASSERT_EQUAL(((const int32_t *)data)[1], 0);
    CU_ASSERT_EQUAL(((const int32_t *)data)[2], 70000);
    HC_ASSERT_OK(hc_gguf_get_arr(g, "a.f32", HC_GGUF_FLOAT32, &data, &n));
    CU_ASSERT_EQUAL(((const float *)data)[0], 0.5f);
    CU_ASSERT_EQUAL(((const float *)data)[1], -1.0f);
    CU_ASSERT_EQUAL(((const float *)data)[2], 3.25f);
    HC_ASSERT_OK(hc_gguf_get_arr(g, "a.str", HC_GGUF_STRING, &data, &n));
    CU_ASSERT_EQUAL(n, 3);
    const hc_gguf_str *strs = data;
    CU_ASSERT_STRING_EQUAL(strs[0].data, "a");
    CU_ASSERT_EQUAL(strs[1].len, 0);
    CU_ASSERT_STRING_EQUAL(strs[1].data, "");
    CU_ASSERT_EQUAL(strs[2].len, 5);
    CU_ASSERT_STRING_EQUAL(strs[2].data, "\xc3\xbcn\xc3\xaf");
    CU_ASSERT_EQUAL(hc_gguf_get_arr(g, "a.i32", HC_GGUF_UINT32, &data, &n), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "array of int32"));
    kv = hc_gguf_find(g, "a.nested");
    CU_ASSERT_EQUAL(kv->type, HC_GGUF_ARRAY);
    CU_ASSERT_EQUAL(kv->arr_type, HC_GGUF_ARRAY);
    CU_ASSERT_EQUAL(kv->arr_n, 2);
    CU_ASSERT_PTR_NULL(kv->arr);
    HC_ASSERT_OK(hc_gguf_get_arr(g, "a.empty", HC_GGUF_INT64, &data, &n));
    CU_ASSERT_EQUAL(n, 0);

    /* tensors */
    const hc_gguf_tensor *t = hc_gguf_find_tensor(g, "w.f32");
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(t, &g->tensors[0]);
    CU_ASSERT_EQUAL(t->n_dims, 2);
    CU_ASSERT_EQUAL(t->ne[0], 4);
    CU_ASSERT_EQUAL(t->ne[1], 2);
    CU_ASSERT_EQUAL(t->ne[2], 1);
    CU_ASSERT_EQUAL(t->ne[3], 1);
    CU_ASSERT_EQUAL(t->type, HC_F32);
    CU_ASSERT_EQUAL(t->offset, 0);
    CU_ASSERT_EQUAL(t->nbytes, 32);
    CU_ASSERT_PTR_EQUAL(t->data, g->base + data_start);
    CU_ASSERT_EQUAL(memcmp(t->data, F32_DATA, 32), 0);
    t = hc_gguf_find_tensor(g, "w.f16");
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(t->offset, 64);
    CU_ASSERT_EQUAL(t->nbytes, 16);
    CU_ASSERT_PTR_EQUAL(t->data, g->base + data_start + 64);
    float row[64];
    hc_dequantize_row(HC_F16, t->data, row, 8);
    CU_ASSERT_EQUAL(row[0], -3.5f);
    CU_ASSERT_EQUAL(row[7], 3.5f);
    t = hc_gguf_find_tensor(g, "w.q8");
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(t->type, HC_Q8_0);
    CU_ASSERT_EQUAL(t->offset, 128);
    CU_ASSERT_EQUAL(t->nbytes, 68);
    CU_ASSERT_PTR_EQUAL(t->data, g->base + data_start + 128);
    CU_ASSERT_EQUAL((const uint8_t *)t->data + t->nbytes, g->base + g->size);
    hc_dequantize_row(HC_Q8_0, t->data, row, 64);
    CU_ASSERT_EQUAL(row[0], -8.0f);
    CU_ASSERT_EQUAL(row[31], 7.5f);
    CU_ASSERT_EQUAL(row[32], -32.0f);
    CU_ASSERT_EQUAL(row[63], 30.0f);
    CU_ASSERT_PTR_NULL(hc_gguf_find_tensor(g, "w.none"));
}

static void test_reference_memory(void)
{
    size_t ds;
    buf b = build_reference(&ds);
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open_memory(b.p, b.len, "ref", &g));
    CU_ASSERT_STRING_EQUAL(g->path, "ref");
    CU_ASSERT_PTR_EQUAL(g->base, b.p);
    CU_ASSERT_EQUAL(g->size, b.len);
    check_reference(g, ds);
    hc_gguf_close(g);
    free(b.p);
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void test_reference_file(void)
{
    size_t ds;
    buf b = build_reference(&ds);
    char path[600];
    snprintf(path, sizeof path, "%s", hc_test_tmp("ref.gguf"));
    CU_ASSERT_FATAL(write_file(path, b.p, b.len));
    free(b.p);
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(path, &g));
    CU_ASSERT_STRING_EQUAL(g->path, path);
    check_reference(g, ds);
    hc_gguf_close(g);

    CU_ASSERT_EQUAL(hc_gguf_open(hc_test_tmp("absent.gguf"), &g), HC_E_IO);
    CU_ASSERT_PTR_NULL(g);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "absent.gguf"));
    CU_ASSERT_FATAL(write_file(hc_test_tmp("empty.gguf"), "", 0));
    CU_ASSERT_EQUAL(hc_gguf_open(hc_test_tmp("empty.gguf"), &g), HC_E_FORMAT);
}

static void test_format_value(void)
{
    size_t ds;
    buf b = build_reference(&ds);
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open_memory(b.p, b.len, NULL, &g));
    CU_ASSERT_STRING_EQUAL(g->path, "<memory>");
    char text[128];
    hc_gguf_format_value(hc_gguf_find(g, "t.str"), text, sizeof text, 4);
    CU_ASSERT_STRING_EQUAL(text, "\"hello, gguf\"");
    hc_gguf_format_value(hc_gguf_find(g, "t.i32"), text, sizeof text, 4);
    CU_ASSERT_STRING_EQUAL(text, "-2000000000");
    hc_gguf_format_value(hc_gguf_find(g, "t.bool"), text, sizeof text, 4);
    CU_ASSERT_STRING_EQUAL(text, "true");
    hc_gguf_format_value(hc_gguf_find(g, "t.f32"), text, sizeof text, 4);
    CU_ASSERT_STRING_EQUAL(text, "1.5");
    hc_gguf_format_value(hc_gguf_find(g, "a.i32"), text, sizeof text, 2);
    CU_ASSERT_STRING_EQUAL(text, "[-1, 0, ... 3 items]");
    hc_gguf_format_value(hc_gguf_find(g, "a.str"), text, sizeof text, 5);
    CU_ASSERT_STRING_EQUAL(text, "[\"a\", \"\", \"\xc3\xbcn\xc3\xaf\"]");
    hc_gguf_format_value(hc_gguf_find(g, "a.nested"), text, sizeof text, 5);
    CU_ASSERT_STRING_EQUAL(text, "[2 nested arrays]");
    hc_gguf_format_value(hc_gguf_find(g, "t.str"), text, 8, 4);   /* cut short, still terminated */
    CU_ASSERT_EQUAL(strlen(text), 7);
    CU_ASSERT_STRING_EQUAL(text, "\"hel...");
    hc_gguf_format_value(hc_gguf_find(g, "a.f32"), text, sizeof text, 5);
    CU_ASSERT_STRING_EQUAL(text, "[0.5, -1, 3.25]");
    hc_gguf_format_value(hc_gguf_find(g, "t.f64"), text, sizeof text, 5);
    CU_ASSERT_STRING_EQUAL(text, "-2.25e+100");
    hc_gguf_format_value(hc_gguf_find(g, "t.u64"), text, sizeof text, 5);
    CU_ASSERT_STRING_EQUAL(text, "18446744073709551615");
    CU_ASSERT_STRING_EQUAL(hc_gguf_type_name(HC_GGUF_FLOAT64), "float64");
    hc_gguf_close(g);
    free(b.p);
}

/* A v2 file: no alignment key (32), one tensor. */
static void test_v2(void)
{
    buf b = {0};
    b_put(&b, "GGUF", 4);
    b_u32(&b, 2);
    b_u64(&b, 1);
    b_u64(&b, 2);
    b_key(&b, "general.architecture", HC_GGUF_STRING); b_str(&b, "llama");
    b_key(&b, "llama.block_count", HC_GGUF_UINT32); b_u32(&b, 2);
    uint64_t ne[2] = {32, 2};
    b_tensor_info(&b, "tok", 2, ne, HC_Q4_0, 0);
    b_pad(&b, 32);
    size_t ds = b.len;
    for (int i = 0; i < 2 * 18; i++) b_u8(&b, (uint8_t)i);
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open_memory(b.p, b.len, "v2.gguf", &g));
    CU_ASSERT_EQUAL(g->version, 2);
    CU_ASSERT_EQUAL(g->alignment, 32);
    CU_ASSERT_EQUAL(g->data_offset, ds);
    const char *arch;
    HC_ASSERT_OK(hc_gguf_get_str(g, "general.architecture", &arch));
    CU_ASSERT_STRING_EQUAL(arch, "llama");
    CU_ASSERT_EQUAL(g->tensors[0].nbytes, 36);
    CU_ASSERT_PTR_EQUAL(g->tensors[0].data, b.p + ds);
    hc_gguf_close(g);
    free(b.p);
}

/* ---- refusals ---- */

typedef struct variant {
    char magic[5];
    uint32_t version;
    uint32_t alignment;     /* 0: no key; otherwise general.alignment's value */
    uint32_t n_dims;        /* of the second tensor */
    uint64_t q_offset;      /* the second tensor's offset */
    int dup_key, dup_tensor, unknown_type, cut;
} variant;

static variant base_variant(void)
{
    variant v = {"GGUF", 3, 0, 1, 32, 0, 0, 0, 0};
    return v;
}

/* Two tensors: "a" F32 [8] at 0, "b" F32 [8] at q_offset (or [8,1,1,1,1] when n_dims = 5). */
static buf build_variant(const variant *v)
{
    buf b = {0};
    b_put(&b, v->magic, 4);
    b_u32(&b, v->version);
    b_u64(&b, 2);
    b_u64(&b, (v->alignment ? 1 : 0) + 1 + (v->dup_key ? 1 : 0));
    if (v->alignment) { b_key(&b, "general.alignment", HC_GGUF_UINT32); b_u32(&b, v->alignment); }
    b_key(&b, "general.name", HC_GGUF_STRING); b_str(&b, "x");
    if (v->dup_key) { b_key(&b, "general.name", HC_GGUF_STRING); b_str(&b, "y"); }
    uint64_t ne[5] = {8, 1, 1, 1, 1};
    b_tensor_info(&b, "a", 1, ne, HC_F32, 0);
    b_tensor_info(&b, v->dup_tensor ? "a" : "b", v->n_dims, ne, v->unknown_type ? 23 : HC_F32, v->q_offset);
    size_t a = v->alignment && !(v->alignment & (v->alignment - 1)) ? v->alignment : 32;
    b_pad(&b, a);
    for (int i = 0; i < 64; i++) b_u8(&b, (uint8_t)i);
    if (v->cut) b.len -= (size_t)v->cut;
    return b;
}

static void expect_refusal(const variant *v, const char *needle)
{
    buf b = build_variant(v);
    hc_gguf *g = (hc_gguf *)&g;
    hc_clear_error();
    hc_status st = hc_gguf_open_memory(b.p, b.len, "bad.gguf", &g);
    CU_ASSERT_EQUAL(st, HC_E_FORMAT);
    CU_ASSERT_PTR_NULL(g);
    if (!strstr(hc_last_error(), needle)) fprintf(stderr, "  message '%s' lacks '%s'\n", hc_last_error(), needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), needle));
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "bad.gguf"));
    if (st == HC_OK) hc_gguf_close(g);
    free(b.p);
}

static void test_refusals(void)
{
    variant v = base_variant();
    buf b = build_variant(&v);   /* the base variant itself is fine */
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open_memory(b.p, b.len, "ok.gguf", &g));
    CU_ASSERT_EQUAL(g->tensors[1].nbytes, 32);
    hc_gguf_close(g);
    free(b.p);

    v = base_variant(); memcpy(v.magic, "GGUX", 4);
    expect_refusal(&v, "bad magic");
    v = base_variant(); v.version = 1;
    expect_refusal(&v, "GGUF version 1 is not supported");
    v = base_variant(); v.version = 4;
    expect_refusal(&v, "version 4");
    v = base_variant(); v.version = 0x03000000;
    expect_refusal(&v, "big-endian");
    v = base_variant(); v.alignment = 3;
    expect_refusal(&v, "key 'general.alignment' is 3");
    v = base_variant(); v.n_dims = 5;
    expect_refusal(&v, "tensor info 1 (b): 5 dimensions");
    v = base_variant(); v.q_offset = 64;          /* data [64, 96) past the 64 data bytes */
    expect_refusal(&v, "beyond the end of the file");
    v = base_variant(); v.q_offset = 4096;
    expect_refusal(&v, "beyond the end of the file");
    v = base_variant(); v.q_offset = 16;          /* not a multiple of 32 */
    expect_refusal(&v, "not a multiple of the alignment");
    v = base_variant(); v.cut = 1;                /* last tensor one byte short */
    expect_refusal(&v, "tensor 'b'");
    v = base_variant(); v.dup_key = 1;
    expect_refusal(&v, "duplicate key 'general.name'");
    v = base_variant(); v.dup_tensor = 1;
    expect_refusal(&v, "duplicate tensor name 'a'");

    /* general.alignment = 0, and of the wrong type */
    buf z = {0};
    b_put(&z, "GGUF", 4); b_u32(&z, 3); b_u64(&z, 0); b_u64(&z, 1);
    b_key(&z, "general.alignment", HC_GGUF_UINT32); b_u32(&z, 0);
    g = NULL;
    CU_ASSERT_EQUAL(hc_gguf_open_memory(z.p, z.len, "a0.gguf", &g), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "a0.gguf: key 'general.alignment' is 0"));
    z.len = 0;
    b_put(&z, "GGUF", 4); b_u32(&z, 3); b_u64(&z, 0); b_u64(&z, 1);
    b_key(&z, "general.alignment", HC_GGUF_UINT64); b_u64(&z, 64);
    CU_ASSERT_EQUAL(hc_gguf_open_memory(z.p, z.len, "a64.gguf", &g), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "key 'general.alignment' is uint64, expected uint32"));
    /* a huge string length and a huge array count fail without a huge allocation */
    z.len = 0;
    b_put(&z, "GGUF", 4); b_u32(&z, 3); b_u64(&z, 0); b_u64(&z, 1);
    b_key(&z, "k", HC_GGUF_ARRAY); b_u32(&z, HC_GGUF_STRING); b_u64(&z, UINT64_C(1) << 60);
    CU_ASSERT_EQUAL(hc_gguf_open_memory(z.p, z.len, "big.gguf", &g), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "big.gguf: truncated in kv 0 ('k')"));
    z.len = 0;
    b_put(&z, "GGUF", 4); b_u32(&z, 3); b_u64(&z, UINT64_MAX); b_u64(&z, UINT64_MAX);
    b_u64(&z, UINT64_MAX - 3);
    CU_ASSERT_EQUAL(hc_gguf_open_memory(z.p, z.len, "big.gguf", &g), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "truncated in kv 0"));
    /* a bool that is neither 0 nor 1, an unknown value type */
    z.len = 0;
    b_put(&z, "GGUF", 4); b_u32(&z, 3); b_u64(&z, 0); b_u64(&z, 1);
    b_key(&z, "flag", HC_GGUF_BOOL); b_u8(&z, 2);
    CU_ASSERT_EQUAL(hc_gguf_open_memory(z.p, z.len, "b.gguf", &g), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "kv 0 ('flag')"));
    z.len = 0;
    b_put(&z, "GGUF", 4); b_u32(&z, 3); b_u64(&z, 0); b_u64(&z, 1);
    b_key(&z, "odd", 13); b_u8(&z, 0);
    CU_ASSERT_EQUAL(hc_gguf_open_memory(z.p, z.len, "b.gguf", &g), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "unknown value type 13"));
    /* a tensor info cut in its middle names the tensor */
    z.len = 0;
    b_put(&z, "GGUF", 4); b_u32(&z, 3); b_u64(&z, 13); b_u64(&z, 0);
    uint64_t ne[1] = {32};
    for (int i = 0; i < 12; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        b_tensor_info(&z, name, 1, ne, HC_F32, (uint64_t)i * 128);
    }
    b_str(&z, "name");
    b_u32(&z, 1);
    CU_ASSERT_EQUAL(hc_gguf_open_memory(z.p, z.len, "cut.gguf", &g), HC_E_FORMAT);
    CU_ASSERT_STRING_EQUAL(hc_last_error(), "cut.gguf: truncated in tensor info 12 (name)");
    free(z.p);
}

/* A tensor of a type hcinfer does not know loads with nbytes 0 and data NULL. */
static void test_unknown_tensor_type(void)
{
    variant v = base_variant();
    v.unknown_type = 1;
    buf b = build_variant(&v);
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open_memory(b.p, b.len, "u.gguf", &g));
    CU_ASSERT_EQUAL(g->tensors[1].type, 23);
    CU_ASSERT_EQUAL(g->tensors[1].nbytes, 0);
    CU_ASSERT_PTR_NULL(g->tensors[1].data);
    CU_ASSERT_EQUAL(g->tensors[0].nbytes, 32);
    hc_gguf_close(g);
    free(b.p);
}

/* ---- the writer ---- */

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static void test_writer_round_trip(void)
{
    hc_gguf_writer *w = NULL;
    HC_ASSERT_OK(hc_gguf_writer_create(&w));
    HC_ASSERT_OK(hc_gguf_writer_set_alignment(w, 64));
    CU_ASSERT_EQUAL(hc_gguf_writer_set_alignment(w, 48), HC_E_ARG);
    HC_ASSERT_OK(hc_gguf_set_u32(w, "k.u32", 123));
    HC_ASSERT_OK(hc_gguf_set_i32(w, "k.i32", -5));
    HC_ASSERT_OK(hc_gguf_set_u64(w, "k.u64", UINT64_C(1) << 40));
    HC_ASSERT_OK(hc_gguf_set_f32(w, "k.f32", -0.75f));
    HC_ASSERT_OK(hc_gguf_set_bool(w, "k.bool", 7));
    HC_ASSERT_OK(hc_gguf_set_str(w, "k.str", "first"));
    HC_ASSERT_OK(hc_gguf_set_str(w, "k.str", "second, replaced"));   /* replaces */
    const char *toks[] = {"<s>", "", "hello world"};
    HC_ASSERT_OK(hc_gguf_set_arr(w, "k.toks", HC_GGUF_STRING, toks, 3));
    const int32_t ints[] = {1, -2, 3, -4};
    HC_ASSERT_OK(hc_gguf_set_arr(w, "k.ints", HC_GGUF_INT32, ints, 4));
    const float fl[] = {0.5f, 1e-3f};
    HC_ASSERT_OK(hc_gguf_set_arr(w, "k.floats", HC_GGUF_FLOAT32, fl, 2));
    const uint8_t bytes[] = {9, 8, 7};
    HC_ASSERT_OK(hc_gguf_set_arr(w, "k.bytes", HC_GGUF_UINT8, bytes, 3));
    const double dbl[] = {-1.0e200};
    HC_ASSERT_OK(hc_gguf_set_arr(w, "k.dbl", HC_GGUF_FLOAT64, dbl, 1));
    CU_ASSERT_EQUAL(hc_gguf_set_arr(w, "k.bad", HC_GGUF_ARRAY, ints, 1), HC_E_ARG);

    float f32[12];
    for (int i = 0; i < 12; i++) f32[i] = (float)i * 0.5f - 2.0f;
    uint16_t f16[5];
    for (int i = 0; i < 5; i++) f16[i] = hc_f32_to_f16((float)i);
    uint8_t q4[2 * 18];
    for (int i = 0; i < 36; i++) q4[i] = (uint8_t)(i * 7);
    int64_t ne_a[2] = {4, 3}, ne_b[1] = {5}, ne_c[2] = {32, 2};
    HC_ASSERT_OK(hc_gguf_add_tensor(w, "a", HC_F32, 2, ne_a, f32, sizeof f32));
    HC_ASSERT_OK(hc_gguf_add_tensor(w, "b", HC_F16, 1, ne_b, f16, sizeof f16));
    HC_ASSERT_OK(hc_gguf_add_tensor(w, "c", HC_Q4_0, 2, ne_c, q4, sizeof q4));
    CU_ASSERT_EQUAL(hc_gguf_add_tensor(w, "c", HC_Q4_0, 2, ne_c, q4, sizeof q4), HC_E_ARG);   /* twice */
    CU_ASSERT_EQUAL(hc_gguf_add_tensor(w, "d", HC_Q4_0, 2, ne_c, q4, 35), HC_E_ARG);          /* size */
    int64_t ne_bad[1] = {33};
    CU_ASSERT_EQUAL(hc_gguf_add_tensor(w, "e", HC_Q4_0, 1, ne_bad, q4, 36), HC_E_ARG);        /* block */

    char path[600];
    snprintf(path, sizeof path, "%s", hc_test_tmp("rt.gguf"));
    HC_ASSERT_OK(hc_gguf_writer_write(w, path));
    hc_gguf_writer_free(w);
    char tmp[620];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CU_ASSERT_FALSE(file_exists(tmp));

    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(path, &g));
    CU_ASSERT_EQUAL(g->version, 3);
    CU_ASSERT_EQUAL(g->alignment, 64);
    CU_ASSERT_EQUAL(g->data_offset % 64, 0);
    CU_ASSERT_EQUAL(g->n_kv, 12);
    CU_ASSERT_STRING_EQUAL(g->kv[0].key, "general.alignment");
    CU_ASSERT_STRING_EQUAL(g->kv[1].key, "k.u32");
    uint32_t u32;
    int64_t i64;
    float f;
    int bl;
    const char *s;
    HC_ASSERT_OK(hc_gguf_get_u32(g, "k.u32", &u32));
    CU_ASSERT_EQUAL(u32, 123);
    CU_ASSERT_EQUAL(hc_gguf_find(g, "k.i32")->type, HC_GGUF_INT32);
    HC_ASSERT_OK(hc_gguf_get_i64(g, "k.i32", &i64));
    CU_ASSERT_EQUAL(i64, -5);
    CU_ASSERT_EQUAL(hc_gguf_find(g, "k.u64")->type, HC_GGUF_UINT64);
    HC_ASSERT_OK(hc_gguf_get_i64(g, "k.u64", &i64));
    CU_ASSERT_EQUAL(i64, INT64_C(1) << 40);
    HC_ASSERT_OK(hc_gguf_get_f32(g, "k.f32", &f));
    CU_ASSERT_EQUAL(f, -0.75f);
    HC_ASSERT_OK(hc_gguf_get_bool(g, "k.bool", &bl));
    CU_ASSERT_EQUAL(bl, 1);
    HC_ASSERT_OK(hc_gguf_get_str(g, "k.str", &s));
    CU_ASSERT_STRING_EQUAL(s, "second, replaced");
    const void *data;
    uint64_t n;
    HC_ASSERT_OK(hc_gguf_get_arr(g, "k.toks", HC_GGUF_STRING, &data, &n));
    CU_ASSERT_EQUAL(n, 3);
    for (int i = 0; i < 3; i++) CU_ASSERT_STRING_EQUAL(((const hc_gguf_str *)data)[i].data, toks[i]);
    HC_ASSERT_OK(hc_gguf_get_arr(g, "k.ints", HC_GGUF_INT32, &data, &n));
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_EQUAL(memcmp(data, ints, sizeof ints), 0);
    HC_ASSERT_OK(hc_gguf_get_arr(g, "k.floats", HC_GGUF_FLOAT32, &data, &n));
    CU_ASSERT_EQUAL(memcmp(data, fl, sizeof fl), 0);
    HC_ASSERT_OK(hc_gguf_get_arr(g, "k.bytes", HC_GGUF_UINT8, &data, &n));
    CU_ASSERT_EQUAL(memcmp(data, bytes, 3), 0);
    HC_ASSERT_OK(hc_gguf_get_arr(g, "k.dbl", HC_GGUF_FLOAT64, &data, &n));
    CU_ASSERT_EQUAL(((const double *)data)[0], -1.0e200);

    CU_ASSERT_EQUAL(g->n_tensors, 3);
    const hc_gguf_tensor *t = hc_gguf_find_tensor(g, "a");
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(t->n_dims, 2);
    CU_ASSERT_EQUAL(t->ne[0], 4);
    CU_ASSERT_EQUAL(t->ne[1], 3);
    CU_ASSERT_EQUAL(t->offset, 0);
    CU_ASSERT_EQUAL(t->nbytes, sizeof f32);
    CU_ASSERT_EQUAL(memcmp(t->data, f32, sizeof f32), 0);
    t = hc_gguf_find_tensor(g, "b");
    CU_ASSERT_EQUAL(t->offset, 64);
    CU_ASSERT_EQUAL(t->type, HC_F16);
    CU_ASSERT_EQUAL(memcmp(t->data, f16, sizeof f16), 0);
    t = hc_gguf_find_tensor(g, "c");
    CU_ASSERT_EQUAL(t->offset, 128);
    CU_ASSERT_EQUAL(t->type, HC_Q4_0);
    CU_ASSERT_EQUAL(t->ne[1], 2);
    CU_ASSERT_EQUAL(memcmp(t->data, q4, sizeof q4), 0);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        CU_ASSERT_EQUAL(((uintptr_t)g->tensors[i].data - (uintptr_t)g->base) % 64, 0);
    hc_gguf_close(g);
}

static void test_writer_failure(void)
{
    hc_gguf_writer *w = NULL;
    HC_ASSERT_OK(hc_gguf_writer_create(&w));
    HC_ASSERT_OK(hc_gguf_set_u32(w, "x", 1));
    char dir_path[600], path[700], tmp[720];
    snprintf(dir_path, sizeof dir_path, "%s", hc_test_tmp("no-such-dir"));
    snprintf(path, sizeof path, "%s/out.gguf", dir_path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CU_ASSERT_EQUAL(hc_gguf_writer_write(w, path), HC_E_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "out.gguf.tmp"));
    CU_ASSERT_FALSE(file_exists(path));
    CU_ASSERT_FALSE(file_exists(tmp));
    /* a path that is a non-empty directory: the .tmp is written, the rename fails, it is removed */
    char inner[720];
    snprintf(path, sizeof path, "%s", hc_test_tmp("a-dir"));
    snprintf(inner, sizeof inner, "%s/f", path);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    CU_ASSERT_FATAL(write_file(inner, "x", 1));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CU_ASSERT_EQUAL(hc_gguf_writer_write(w, path), HC_E_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "cannot rename"));
    CU_ASSERT_FALSE(file_exists(tmp));
    unlink(inner);
    rmdir(path);
    /* a bad general.alignment set by hand is refused at write time */
    HC_ASSERT_OK(hc_gguf_set_u32(w, "general.alignment", 24));
    snprintf(path, sizeof path, "%s", hc_test_tmp("bad-align.gguf"));
    CU_ASSERT_EQUAL(hc_gguf_writer_write(w, path), HC_E_ARG);
    CU_ASSERT_FALSE(file_exists(path));
    hc_gguf_writer_free(w);
}

/* Metadata only (a vocabulary file): no data section and no padding after the metadata. */
static void test_writer_no_tensors(void)
{
    hc_gguf_writer *w = NULL;
    HC_ASSERT_OK(hc_gguf_writer_create(&w));
    HC_ASSERT_OK(hc_gguf_set_str(w, "tokenizer.ggml.model", "gpt2"));
    char path[600];
    snprintf(path, sizeof path, "%s", hc_test_tmp("vocab.gguf"));
    HC_ASSERT_OK(hc_gguf_writer_write(w, path));
    hc_gguf_writer_free(w);
    size_t size = 0;
    char *bytes = hc_test_read_file(path, &size);
    CU_ASSERT_EQUAL(size, 4 + 4 + 8 + 8 + (8 + 20) + 4 + (8 + 4));
    free(bytes);
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(path, &g));
    CU_ASSERT_EQUAL(g->n_tensors, 0);
    CU_ASSERT_EQUAL(g->data_offset, size);
    const char *s;
    HC_ASSERT_OK(hc_gguf_get_str(g, "tokenizer.ggml.model", &s));
    CU_ASSERT_STRING_EQUAL(s, "gpt2");
    hc_gguf_close(g);
}

static int skip_str_keys(const char *key, void *ctx)
{
    (*(int *)ctx)++;
    return strcmp(key, "t.str") == 0;
}

/* copy_kv carries every kv (arrays of strings, nested arrays) except the skipped ones. */
static void test_copy_kv(void)
{
    size_t ds;
    buf b = build_reference(&ds);
    hc_gguf *src = NULL;
    HC_ASSERT_OK(hc_gguf_open_memory(b.p, b.len, "ref", &src));
    hc_gguf_writer *w = NULL;
    HC_ASSERT_OK(hc_gguf_writer_create(&w));
    HC_ASSERT_OK(hc_gguf_set_str(w, "a.str", "to be replaced by the copy"));
    int calls = 0;
    HC_ASSERT_OK(hc_gguf_copy_kv(w, src, skip_str_keys, &calls));
    CU_ASSERT_EQUAL(calls, 20);
    const hc_gguf_tensor *t = hc_gguf_find_tensor(src, "w.q8");
    HC_ASSERT_OK(hc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
    char path[600];
    snprintf(path, sizeof path, "%s", hc_test_tmp("copy.gguf"));
    HC_ASSERT_OK(hc_gguf_writer_write(w, path));
    hc_gguf_writer_free(w);

    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(path, &g));
    CU_ASSERT_EQUAL(g->n_kv, 19);
    CU_ASSERT_EQUAL(g->alignment, 64);          /* the copied general.alignment is obeyed */
    CU_ASSERT_PTR_NULL(hc_gguf_find(g, "t.str"));
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const hc_gguf_kv *a = &src->kv[i], *c = hc_gguf_find(g, a->key);
        if (!strcmp(a->key, "t.str")) continue;
        CU_ASSERT_FATAL(c != NULL);
        char ta[256], tc[256];
        hc_gguf_format_value(a, ta, sizeof ta, 10);
        hc_gguf_format_value(c, tc, sizeof tc, 10);
        CU_ASSERT_STRING_EQUAL(ta, tc);
        CU_ASSERT_EQUAL(a->type, c->type);
        CU_ASSERT_EQUAL(a->arr_type, c->arr_type);
        CU_ASSERT_EQUAL(a->arr_n, c->arr_n);
    }
    const void *data;
    uint64_t n;
    HC_ASSERT_OK(hc_gguf_get_arr(g, "a.str", HC_GGUF_STRING, &data, &n));
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_STRING_EQUAL(((const hc_gguf_str *)data)[2].data, "\xc3\xbcn\xc3\xaf");
    uint32_t after;
    HC_ASSERT_OK(hc_gguf_get_u32(g, "t.after", &after));
    CU_ASSERT_EQUAL(after, 7);
    const hc_gguf_tensor *c = hc_gguf_find_tensor(g, "w.q8");
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(c->nbytes, 68);
    CU_ASSERT_EQUAL(memcmp(c->data, t->data, 68), 0);
    hc_gguf_close(g);
    hc_gguf_close(src);
    free(b.p);
}

/* A real vocabulary-only GGUF from ../shared. */
static void test_gpt2_vocab(void)
{
    const char *path = hc_test_shared("tokenizer-tests/ggml-vocab-gpt-2.gguf", "gpt2_vocab");
    if (!path) return;
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(path, &g));
    CU_ASSERT_EQUAL(g->version, 3);
    CU_ASSERT_EQUAL(g->n_tensors, 0);
    CU_ASSERT_EQUAL(g->n_kv, 16);
    const char *s;
    HC_ASSERT_OK(hc_gguf_get_str(g, "tokenizer.ggml.model", &s));
    CU_ASSERT_STRING_EQUAL(s, "gpt2");
    HC_ASSERT_OK(hc_gguf_get_str(g, "general.architecture", &s));
    CU_ASSERT_STRING_EQUAL(s, "gpt2");
    const void *data;
    uint64_t n;
    HC_ASSERT_OK(hc_gguf_get_arr(g, "tokenizer.ggml.tokens", HC_GGUF_STRING, &data, &n));
    CU_ASSERT_EQUAL(n, 50257);
    CU_ASSERT_STRING_EQUAL(((const hc_gguf_str *)data)[0].data, "!");
    CU_ASSERT_STRING_EQUAL(((const hc_gguf_str *)data)[4].data, "%");
    HC_ASSERT_OK(hc_gguf_get_arr(g, "tokenizer.ggml.merges", HC_GGUF_STRING, &data, &n));
    CU_ASSERT_EQUAL(n, 50000);
    CU_ASSERT_STRING_EQUAL(((const hc_gguf_str *)data)[0].data, "\xc4\xa0 t");   /* "Ġ t" */
    HC_ASSERT_OK(hc_gguf_get_arr(g, "tokenizer.ggml.token_type", HC_GGUF_INT32, &data, &n));
    CU_ASSERT_EQUAL(n, 50257);
    uint32_t bos;
    HC_ASSERT_OK(hc_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos));
    CU_ASSERT_EQUAL(bos, 50256);
    float eps;
    HC_ASSERT_OK(hc_gguf_get_f32(g, "gpt2.attention.layer_norm_epsilon", &eps));
    CU_ASSERT_TRUE(fabsf(eps - 1e-5f) < 1e-12f);
    char text[64];
    hc_gguf_format_value(hc_gguf_find(g, "gpt2.attention.layer_norm_epsilon"), text, sizeof text, 4);
    CU_ASSERT_STRING_EQUAL(text, "1e-05");
    hc_gguf_close(g);
}

int main(void)
{
    static const hc_test_case cases[] = {
        {"reference_memory", test_reference_memory},
        {"reference_file", test_reference_file},
        {"format_value", test_format_value},
        {"v2", test_v2},
        {"refusals", test_refusals},
        {"unknown_tensor_type", test_unknown_tensor_type},
        {"writer_round_trip", test_writer_round_trip},
        {"writer_failure", test_writer_failure},
        {"writer_no_tensors", test_writer_no_tensors},
        {"copy_kv", test_copy_kv},
        {"gpt2_vocab", test_gpt2_vocab},
        {NULL, NULL},
    };
    return hc_test_run("gguf", cases);
}
