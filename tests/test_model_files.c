/* test_model_files.c: model files written to break the loader -- the reproducers the fuzzers found
 * (issue 22 and tests/fuzz) -- are refused with a message, without undefined behaviour. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model_load.h"
#include "synth.h"
#include "test_util.h"

static const char *write_bytes(const char *name, const void *data, size_t n)
{
    const char *path = hc_test_tmp(name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t w = fwrite(data, 1, n, f);
    fclose(f);
    return w == n ? path : NULL;
}

/* Loading path fails with HC_E_FORMAT and a message holding want. */
static void expect_refused(const char *path, const char *want)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    hc_model *m = NULL;
    hc_clear_error();
    hc_status st = hc_model_load(path, NULL, &m);
    CU_ASSERT_EQUAL(st, HC_E_FORMAT);
    CU_ASSERT_PTR_NULL(m);
    if (!strstr(hc_last_error(), want)) {
        printf("\n  %s: message '%s' lacks '%s'\n", path, hc_last_error(), want);
        CU_FAIL("wrong message");
    }
    hc_model_free(m);
}

/* Issue 22, finding 1: a 28-byte llama2.c header, all zero but vocab_size = INT32_MIN, made the
 * reader compute -INT32_MIN (undefined behaviour; UBSan stops there). Every field at INT32_MIN
 * and INT32_MAX is refused by name too. */
static void test_llama2c_extreme_header(void)
{
    int32_t h[7] = { 0 };
    h[5] = INT32_MIN;
    expect_refused(write_bytes("vocab_min.bin", h, sizeof h), "vocab_size = -2147483648 is out of range");
    for (int field = 0; field < 7; field++)
        for (int k = 0; k < 2; k++) {
            int32_t g[7] = { 64, 128, 2, 4, 4, 32, 16 };
            g[field] = k ? INT32_MAX : INT32_MIN;
            expect_refused(write_bytes("extreme.bin", g, sizeof g), "out of range");
        }
}

static int skip_key(const char *key, void *ctx) { return !strcmp(key, (const char *)ctx); }

/* A tiny synthetic model (synth options o) with the uint32 key set to v, written as name. */
static const char *synth_with(const char *name, hc_synth_opts o, const char *key, uint32_t v)
{
    char src[600];
    snprintf(src, sizeof src, "%s", hc_test_tmp("synth-src.gguf"));
    o.output = src;
    if (hc_synth(&o) != HC_OK) return NULL;
    hc_gguf *g = NULL;
    hc_gguf_writer *w = NULL;
    hc_status st = hc_gguf_open(src, &g);
    if (st == HC_OK) st = hc_gguf_writer_create(&w);
    if (st == HC_OK) st = hc_gguf_copy_kv(w, g, skip_key, (void *)key);
    if (st == HC_OK) st = hc_gguf_set_u32(w, key, v);
    for (uint64_t i = 0; st == HC_OK && i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        st = hc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    const char *path = hc_test_tmp(name);
    if (st == HC_OK) st = hc_gguf_writer_write(w, path);
    hc_gguf_writer_free(w);
    hc_gguf_close(g);
    return st == HC_OK ? path : NULL;
}

/* Found by tests/fuzz/fuzz_model: the expert counts and widths were range-checked after becoming
 * an int, so llama.expert_used_count = 4060086273 (negative as an int) passed "v > n_expert" and
 * the context asked for a buffer of 0xfffffffe40000080 bytes; a count or shared width above
 * INT_MAX passed the same way. Each is now refused by name. */
static void test_moe_counts(void)
{
    hc_synth_opts mixtral = { .arch = "llama", .dim = 4, .n_layer = 1, .ffn_dim = 8, .n_expert = 2, .n_expert_used = 1, .n_vocab = 259, .seed = 1 };
    hc_synth_opts qwen2moe = mixtral;
    qwen2moe.arch = "qwen2moe";
    expect_refused(synth_with("used.gguf", mixtral, "llama.expert_used_count", 4060086273u), "llama.expert_used_count = 4060086273 does not fit 2 experts");
    expect_refused(synth_with("used0.gguf", mixtral, "llama.expert_used_count", 0), "does not fit 2 experts");
    expect_refused(synth_with("count.gguf", mixtral, "llama.expert_count", 0x80000000u), "llama.expert_count = 2147483648 is out of range");
    expect_refused(synth_with("width.gguf", mixtral, "llama.expert_feed_forward_length", 0xFFFFFFFFu), "expert widths 4294967295 (routed)");
    expect_refused(synth_with("shared.gguf", qwen2moe, "qwen2moe.expert_shared_feed_forward_length", 0xFFFFFFFFu),
                   "and 4294967295 (shared) are out of range");
    /* the unchanged models load */
    const char *ok = synth_with("ok.gguf", mixtral, "llama.expert_used_count", 2);
    hc_model *m = NULL;
    HC_ASSERT_OK(hc_model_load(ok, NULL, &m));
    CU_ASSERT_EQUAL(m->cfg.n_expert_used, 2);
    hc_model_free(m);
}

/* synth draws a tensor's numbers in parts, one per thread: the file is the same byte for byte for any
 * count (each part starts the splitmix64 sequence where the one-pass draw would be), for f32, f16 and
 * q8_0 matrices and tensors not a multiple of the parts. */
static void test_synth_threads(void)
{
    static const hc_dtype types[] = { HC_F32, HC_F16, HC_Q8_0 };
    for (int k = 0; k < 3; k++) {
        hc_synth_opts o = { .arch = "qwen2moe", .dim = 96, .n_layer = 2, .n_head = 3, .n_head_kv = 1, .ffn_dim = 160,
                            .n_expert = 3, .n_expert_used = 2, .expert_ffn_dim = 32, .n_vocab = 301, .seed = 7,
                            .type = types[k], .norm_noise = 0.1f };
        char *file[3] = { NULL };
        size_t size[3] = { 0 };
        static const int threads[3] = { 1, 3, 7 };
        for (int t = 0; t < 3; t++) {
            o.n_threads = threads[t];
            o.output = hc_test_tmp("threads.gguf");
            HC_ASSERT_OK(hc_synth(&o));
            file[t] = hc_test_read_file(o.output, &size[t]);
            CU_ASSERT_PTR_NOT_NULL_FATAL(file[t]);
        }
        for (int t = 1; t < 3; t++) {
            CU_ASSERT_EQUAL(size[t], size[0]);
            CU_ASSERT(size[t] == size[0] && memcmp(file[t], file[0], size[0]) == 0);
        }
        for (int t = 0; t < 3; t++) free(file[t]);
    }
}

int main(void)
{
    static const hc_test_case cases[] = {
        {"llama2c: extreme header fields are refused", test_llama2c_extreme_header},
        {"MoE: expert counts and widths past INT_MAX are refused", test_moe_counts},
        {"synth: the same file for any number of threads", test_synth_threads},
        {NULL, NULL},
    };
    return hc_test_run("model_files", cases);
}
