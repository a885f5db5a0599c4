/* test_gguf_fuzz.c: the GGUF reader on damaged input: every truncation of a valid file must be
 * refused with a message, and random byte flips in the metadata must never crash or mislead. */
#include "test_util.h"

#include "gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A small valid file made with the writer: several kv types, arrays of strings, 3 tensors. The
 * last tensor's size is a multiple of the alignment, so the file ends with its data and every
 * truncation cuts something the reader needs. */
static uint8_t *make_file(size_t *size)
{
    hc_gguf_writer *w = NULL;
    if (hc_gguf_writer_create(&w)) return NULL;
    static float f32[16];
    static uint8_t q8[34 * 2];
    static uint16_t f16[16];
    for (int i = 0; i < 16; i++) {
        f32[i] = (float)i;
        f16[i] = hc_f32_to_f16((float)-i);
    }
    for (int i = 0; i < (int)sizeof q8; i++) q8[i] = (uint8_t)(i * 3);
    const char *toks[] = {"<unk>", "<s>", "</s>", "hello", "\xe2\x96\x81world", ""};
    const int32_t types[] = {2, 3, 3, 1, 1, 1};
    const float scores[] = {0.0f, -1.0f, -2.0f, -3.5f, -4.25f, -5.0f};
    const char *merges[] = {"h e", "l l", "he ll"};
    int64_t ne_a[2] = {8, 2}, ne_b[1] = {64}, ne_c[1] = {16};
    hc_status st = HC_OK;
    st = st ? st : hc_gguf_set_str(w, "general.architecture", "llama");
    st = st ? st : hc_gguf_set_u32(w, "llama.block_count", 2);
    st = st ? st : hc_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    st = st ? st : hc_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    st = st ? st : hc_gguf_set_u64(w, "general.size", 123456789);
    st = st ? st : hc_gguf_set_i32(w, "general.quality", -3);
    st = st ? st : hc_gguf_set_arr(w, "tokenizer.ggml.tokens", HC_GGUF_STRING, toks, 6);
    st = st ? st : hc_gguf_set_arr(w, "tokenizer.ggml.token_type", HC_GGUF_INT32, types, 6);
    st = st ? st : hc_gguf_set_arr(w, "tokenizer.ggml.scores", HC_GGUF_FLOAT32, scores, 6);
    st = st ? st : hc_gguf_set_arr(w, "tokenizer.ggml.merges", HC_GGUF_STRING, merges, 3);
    st = st ? st : hc_gguf_add_tensor(w, "a", HC_F32, 2, ne_a, f32, sizeof f32);
    st = st ? st : hc_gguf_add_tensor(w, "b", HC_Q8_0, 1, ne_b, q8, sizeof q8);
    st = st ? st : hc_gguf_add_tensor(w, "c", HC_F16, 1, ne_c, f16, sizeof f16);
    char path[600];
    snprintf(path, sizeof path, "%s", hc_test_tmp("fuzz.gguf"));
    st = st ? st : hc_gguf_writer_write(w, path);
    hc_gguf_writer_free(w);
    if (st) {
        fprintf(stderr, "  make_file: %s\n", hc_last_error());
        return NULL;
    }
    return (uint8_t *)hc_test_read_file(path, size);
}

static void test_valid(void)
{
    size_t size;
    uint8_t *file = make_file(&size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open_memory(file, size, "fuzz", &g));
    CU_ASSERT_EQUAL(g->n_kv, 10);
    CU_ASSERT_EQUAL(g->n_tensors, 3);
    const hc_gguf_tensor *c = hc_gguf_find_tensor(g, "c");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL((const uint8_t *)c->data + c->nbytes, file + size);   /* ends the file */
    hc_gguf_close(g);
    free(file);
}

/* Every prefix of the file is refused with a message; each prefix sits in a buffer of exactly its
 * size so that AddressSanitizer catches any read past it. */
static void test_truncations(void)
{
    size_t size;
    uint8_t *file = make_file(&size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    int accepted = 0, silent = 0;
    for (size_t len = 0; len < size; len++) {
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, file, len);
        hc_gguf *g = NULL;
        hc_clear_error();
        hc_status st = hc_gguf_open_memory(cut, len, "cut", &g);
        if (st == HC_OK) {
            accepted++;
            hc_gguf_close(g);
        } else if (!hc_last_error()[0]) {
            silent++;
        }
        if (st == HC_OK || !hc_last_error()[0]) fprintf(stderr, "  length %zu: status %d '%s'\n", len, st, hc_last_error());
        free(cut);
    }
    CU_ASSERT_EQUAL(accepted, 0);
    CU_ASSERT_EQUAL(silent, 0);
    free(file);
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Random flips in the header and metadata: any status, but no crash, and when accepted every
 * tensor's data lies inside the buffer and every value can be looked up and printed. */
static void test_random_flips(void)
{
    size_t size;
    uint8_t *file = make_file(&size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    hc_gguf *g0 = NULL;
    HC_ASSERT_OK(hc_gguf_open_memory(file, size, "fuzz", &g0));
    size_t meta = (size_t)g0->data_offset;
    hc_gguf_close(g0);

    uint64_t seed = UINT64_C(0x9E3779B97F4A7C15);
    int ok_count = 0, outside = 0, unnamed = 0;
    uint8_t *buf = malloc(size);
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(buf, file, size);
        int flips = 1 + (int)(rng_next(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(rng_next(&seed) % meta);
            uint64_t r = rng_next(&seed);
            switch (r % 4) {
            case 0: buf[at] ^= (uint8_t)(1u << ((r >> 8) % 8)); break;   /* one bit */
            case 1: buf[at] = (uint8_t)(r >> 16); break;                /* any byte */
            case 2: buf[at] = 0xFF; break;
            default: buf[at] = 0x00; break;
            }
        }
        hc_gguf *g = NULL;
        hc_clear_error();
        hc_status st = hc_gguf_open_memory(buf, size, "flip", &g);
        if (st != HC_OK) {
            if (!hc_last_error()[0]) unnamed++;
            continue;
        }
        ok_count++;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const hc_gguf_tensor *t = &g->tensors[i];
            if (!t->data) continue;
            const uint8_t *d = t->data;
            if (d < buf || d > buf + size || t->nbytes > (size_t)(buf + size - d)) outside++;
            CU_ASSERT_PTR_EQUAL(hc_gguf_find_tensor(g, t->name), t);
        }
        char text[256];
        for (uint64_t i = 0; i < g->n_kv; i++) {
            CU_ASSERT_PTR_EQUAL(hc_gguf_find(g, g->kv[i].key), &g->kv[i]);
            hc_gguf_format_value(&g->kv[i], text, sizeof text, 8);
        }
        hc_gguf_close(g);
    }
    free(buf);
    free(file);
    printf("\n  %d of 4000 damaged files were accepted\n", ok_count);
    CU_ASSERT_EQUAL(outside, 0);
    CU_ASSERT_EQUAL(unnamed, 0);
}

int main(void)
{
    static const hc_test_case cases[] = {
        {"valid", test_valid},
        {"truncations", test_truncations},
        {"random_flips", test_random_flips},
        {NULL, NULL},
    };
    return hc_test_run("gguf_fuzz", cases);
}
