/* fuzz_util.c: the harnesses' shared helpers (fuzz_util.h): the input as a memfd, a scratch folder,
 * the cursor, the model-in-file oracle, the tokenizer checks and the two test vocabularies. */
#define _GNU_SOURCE
#include "fuzz_util.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf.h"
#include "scratch_dir.h"
#include "synth.h"
#include "tokenizer.h"
#include "tokenizer_impl.h"
#include "unicode.h"

const hc_lua_limits fuzz_lua_limits = { .max_instructions = 100000, .max_memory = (size_t)4 << 20, .max_ms = 100 };

/* ---- files ---- */

const char *fuzz_file(const void *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("hc-fuzz-input", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz_file");
        abort();
    }
    return path;
}

const char *fuzz_tmp(const char *name)
{
    const char *path = hc_scratch_path("hc-fuzz", 1, name);
    if (!path) abort();
    return path;
}

/* ---- the cursor ---- */

uint8_t fuzz_u8(fuzz_cursor *c)
{
    if (!c->n) return 0;
    c->n--;
    return *c->p++;
}

uint32_t fuzz_u32(fuzz_cursor *c)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fuzz_u8(c) << (8 * i);
    return v;
}

const uint8_t *fuzz_bytes(fuzz_cursor *c, size_t n, size_t *got)
{
    const uint8_t *p = c->p;
    *got = n < c->n ? n : c->n;
    c->p += *got;
    c->n -= *got;
    return p;
}

char *fuzz_string(fuzz_cursor *c)
{
    const uint8_t *z = memchr(c->p, 0, c->n);
    size_t n = z ? (size_t)(z - c->p) : c->n, got;
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, fuzz_bytes(c, n, &got), n);
    s[n] = '\0';
    if (z) fuzz_u8(c);
    return s;
}

/* ---- the model oracle ---- */

typedef struct span_ctx {
    const hc_model *m;
    const uint8_t *base;
    size_t size;
} span_ctx;

/* data[0..n) lies in the file, or data is (the start of) a buffer the model owns. */
static void check_span(const span_ctx *c, const char *what, const char *name, const void *data, size_t n)
{
    if (!data) return;
    for (int i = 0; i < c->m->n_owned; i++)
        if (c->m->owned[i] == data) return;
    const uint8_t *d = data;
    FUZZ_CHECK(d >= c->base && d <= c->base + c->size && n <= (size_t)(c->base + c->size - d),
               "%s %s: %zu bytes at offset %td of a %zu-byte file", what, name ? name : "?", n, d - c->base, c->size);
}

static void check_tensor(hc_tensor *t, void *arg)
{
    const span_ctx *c = arg;
    if (!t->data) return;
    size_t want;
    if (t->dtype == HC_PACKED) {
        FUZZ_CHECK(t->qfmt != NULL, "packed tensor %s without a format", t->name);
        want = t->qfmt->ops->packed_bytes(t->qfmt->params, t->ne[1], t->ne[0]) * (size_t)(t->ne[2] > 1 ? t->ne[2] : 1);
    } else {
        FUZZ_CHECK(hc_dtype_is_known(t->dtype), "tensor %s of unknown type %d", t->name, (int)t->dtype);
        want = hc_dtype_row_bytes(t->dtype, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
    }
    FUZZ_CHECK(t->nbytes >= want, "tensor %s holds %zu bytes, its shape needs %zu", t->name, t->nbytes, want);
    check_span(c, "tensor", t->name, t->data, t->nbytes);
}

static void check_branch(const span_ctx *c, const hc_branch *b)
{
    if (b->rank <= 0) return;
    check_span(c, "branch A of", b->name, b->a, (size_t)b->rank * hc_dtype_row_bytes(b->dtype, b->in));
    check_span(c, "branch B of", b->name, b->b, (size_t)b->rank * hc_dtype_row_bytes(b->dtype, b->out));
    check_span(c, "branch sigma of", b->name, b->sigma, (size_t)b->rank * sizeof(float));
}

void fuzz_check_model_in_file(const hc_model *m)
{
    span_ctx c = { .m = m };
    if (m->gguf) {
        c.base = m->gguf->base;
        c.size = m->gguf->size;
    } else {
        c.base = m->map;
        c.size = m->map_size;
    }
    FUZZ_CHECK(c.base != NULL, "a loaded model without its file");
    hc_model_for_each_tensor((hc_model *)m, check_tensor, &c);
    check_branch(&c, &m->out_branch);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        for (int p = 0; p < HC_PROJ_COUNT; p++) check_branch(&c, &m->layers[l].branch[p]);
        for (int k = 0; k < HC_EXP_COUNT; k++)
            for (int e = 0; m->layers[l].moe.branch[k] && e < m->cfg.n_expert; e++) check_branch(&c, &m->layers[l].moe.branch[k][e]);
    }
}

/* ---- tokenizers ---- */

/* Strict UTF-8: shortest forms, no surrogates, at most U+10FFFF. */
int fuzz_valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return 0;
        uint32_t cp = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        static const uint32_t least[5] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (cp < least[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k;
    }
    return 1;
}

void fuzz_exercise_tokenizer(const hc_tokenizer *t, const uint8_t *text, size_t len, int round_trip)
{
    int n_vocab = hc_tokenizer_n_vocab(t);
    FUZZ_CHECK(n_vocab > 0, "an empty vocabulary was accepted");
    for (int mode = 0; mode < 4; mode += 3) { /* plain (round trip), and with BOS and special tokens */
        int32_t *ids = NULL;
        int n = 0;
        if (hc_tokenize(t, (const char *)text, len, mode & 1, mode >> 1, &ids, &n) != HC_OK) {
            FUZZ_CHECK(hc_last_error()[0], "a refusal without a message");
            continue;
        }
        size_t cap = 64 + (size_t)n * 8 + len * 4, at = 0;
        char *out = malloc(cap);
        char piece[512];
        for (int i = 0; i < n; i++) {
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < n_vocab, "id %d of %d", ids[i], n_vocab);
            int k = hc_token_to_piece(t, ids[i], 1, piece, sizeof piece);
            FUZZ_CHECK(k >= 0, "no piece for id %d", ids[i]);
            if (k > (int)sizeof piece) k = (int)sizeof piece;
            if (at + (size_t)k <= cap) memcpy(out + at, piece, (size_t)k);
            at += (size_t)k;
            (void)hc_tokenizer_is_eog(t, ids[i]);
            (void)hc_tokenizer_score(t, ids[i]);
            (void)hc_tokenizer_token_type(t, ids[i]);
            const char *s = hc_tokenizer_text(t, ids[i]);
            FUZZ_CHECK(s != NULL, "no text for id %d", ids[i]);
        }
        if (round_trip && mode == 0) {
            int prefix = t->kind == HC_TOK_SPM && t->add_space_prefix && len > 0;
            FUZZ_CHECK(at == len + (size_t)prefix && (!prefix || out[0] == ' ') && !memcmp(out + prefix, text, len),
                       "%zu bytes of valid UTF-8 decode to %zu others", len, at);
        }
        free(out);
        free(ids);
    }
    FUZZ_CHECK(hc_token_to_piece(t, n_vocab, 1, (char[8]){ 0 }, 8) == -1, "a piece past the vocabulary");
    FUZZ_CHECK(hc_token_to_piece(t, -1, 1, (char[8]){ 0 }, 8) == -1, "a piece of id -1");
    (void)hc_tokenizer_find(t, hc_tokenizer_text(t, n_vocab - 1));
}

/* ---- vocabularies ---- */

static int is_tokenizer_key(const char *key, void *ctx)
{
    (void)ctx;
    return strncmp(key, "tokenizer.", 10) != 0; /* skip everything else */
}

hc_status fuzz_write_spm_vocab(const char *path)
{
    char model[600];
    snprintf(model, sizeof model, "%s.model.gguf", path);
    hc_synth_opts o = { .arch = "llama", .output = model, .dim = 4, .n_layer = 1, .n_vocab = 320, .seed = 1 };
    hc_status st = hc_synth(&o);
    hc_gguf *g = NULL;
    hc_gguf_writer *w = NULL;
    if (st == HC_OK) st = hc_gguf_open(model, &g);
    if (st == HC_OK) st = hc_gguf_writer_create(&w);
    if (st == HC_OK) st = hc_gguf_copy_kv(w, g, is_tokenizer_key, NULL);
    if (st == HC_OK) st = hc_gguf_writer_write(w, path);
    hc_gguf_writer_free(w);
    hc_gguf_close(g);
    unlink(model);
    return st;
}

hc_status fuzz_write_gpt2_vocab(const char *path)
{
    static const char *const merges[] = { "t h", "th e", "i n", "a n", "e r", "\xC4\xA0 t", "\xC4\xA0t he", "o n", "r e", "\xC4\xA0 a",
                                          "e n", "in g", "o u", "\xC4\xA0 w", "a t", "e d", "i s", "o r", "\xC4\xA0 s", "l l" };
    static const char *const specials[] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };
    enum { N_MERGES = sizeof merges / sizeof merges[0], N = 256 + N_MERGES + 3 };
    char *texts[N];
    const char *tok[N];
    int32_t types[N];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        texts[n] = calloc(1, 8);
        hc_utf8_encode(hc_gpt2_byte_to_cp((uint8_t)b), texts[n]);
        types[n] = 1;
        tok[n] = texts[n];
        n++;
    }
    for (int k = 0; k < N_MERGES; k++) { /* the merge's result, as a token */
        const char *sp = strchr(merges[k], ' ');
        texts[n] = calloc(1, strlen(merges[k]));
        memcpy(texts[n], merges[k], (size_t)(sp - merges[k]));
        strcat(texts[n], sp + 1);
        types[n] = 1;
        tok[n] = texts[n];
        n++;
    }
    for (int k = 0; k < 3; k++) {
        texts[n] = strdup(specials[k]);
        types[n] = 3;
        tok[n] = texts[n];
        n++;
    }
    hc_gguf_writer *w = NULL;
    hc_status st = hc_gguf_writer_create(&w);
    if (st == HC_OK) st = hc_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (st == HC_OK) st = hc_gguf_set_str(w, "tokenizer.ggml.pre", "gpt2");
    if (st == HC_OK) st = hc_gguf_set_arr(w, "tokenizer.ggml.tokens", HC_GGUF_STRING, tok, (uint64_t)n);
    if (st == HC_OK) st = hc_gguf_set_arr(w, "tokenizer.ggml.token_type", HC_GGUF_INT32, types, (uint64_t)n);
    if (st == HC_OK) st = hc_gguf_set_arr(w, "tokenizer.ggml.merges", HC_GGUF_STRING, merges, N_MERGES);
    if (st == HC_OK) st = hc_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 3));
    if (st == HC_OK) st = hc_gguf_writer_write(w, path);
    hc_gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(texts[i]);
    return st;
}
