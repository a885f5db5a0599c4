/* test_eval.c: the evaluation module: JSON parser and JSONL reader, progress report, and
 * perplexity / multiple choice / LAMBADA on stories260K checked against direct hc_decode loops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device_cpu.h"
#include "eval.h"
#include "eval_json.h"
#include "model_load.h"
#include "test_util.h"

/* ------------------------------------------------------------------ JSON parser */

static int parses(const char *text)
{
    hc_json v;
    hc_status st = hc_json_parse(text, strlen(text), &v);
    hc_json_free(&v);
    return st == HC_OK;
}

static void test_json_values(void)
{
    const char *text = " {\"a\": [1, -2.5e2, 0, 1E+2, true, false, null], \"b\": {\"c\": \"d\"}, \"e\": [], \"f\": {}} ";
    hc_json v;
    HC_ASSERT_OK(hc_json_parse(text, strlen(text), &v));
    CU_ASSERT_EQUAL_FATAL(v.type, HC_JSON_OBJECT);
    CU_ASSERT_EQUAL(v.n, 4);
    const hc_json *a = hc_json_get(&v, "a");
    CU_ASSERT_FATAL(a && a->type == HC_JSON_ARRAY && a->n == 7);
    CU_ASSERT_EQUAL(a->items[0].type, HC_JSON_NUMBER);
    CU_ASSERT_DOUBLE_EQUAL(a->items[0].number, 1.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(a->items[1].number, -250.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(a->items[2].number, 0.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(a->items[3].number, 100.0, 0);
    CU_ASSERT(a->items[4].type == HC_JSON_BOOL && a->items[4].boolean == 1);
    CU_ASSERT(a->items[5].type == HC_JSON_BOOL && a->items[5].boolean == 0);
    CU_ASSERT_EQUAL(a->items[6].type, HC_JSON_NULL);
    const hc_json *c = hc_json_get(hc_json_get(&v, "b"), "c");
    CU_ASSERT_FATAL(c && c->type == HC_JSON_STRING);
    CU_ASSERT_STRING_EQUAL(c->string, "d");
    CU_ASSERT(hc_json_get(&v, "e")->type == HC_JSON_ARRAY && hc_json_get(&v, "e")->n == 0);
    CU_ASSERT(hc_json_get(&v, "f")->type == HC_JSON_OBJECT && hc_json_get(&v, "f")->n == 0);
    CU_ASSERT_PTR_NULL(hc_json_get(&v, "zz"));
    CU_ASSERT_PTR_NULL(hc_json_get(a, "a"));   /* not an object */
    hc_json_free(&v);
    CU_ASSERT_EQUAL(v.type, HC_JSON_NULL);
    CU_ASSERT(parses("\"top-level string\""));
    CU_ASSERT(parses("-0"));
    CU_ASSERT(parses("[[[[1]]]]"));
}

static void test_json_escapes(void)
{
    /* every simple escape, \u in the BMP, a surrogate pair, \u0000, raw UTF-8 passed through */
    const char *text = "[\"q\\\"b\\\\s\\/f\\bx\\fy\\nz\\rw\\tv\", \"\\u00e9\\u20AC\", \"\\ud83d\\ude00\", \"a\\u0000b\", "
                       "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"]";
    hc_json v;
    HC_ASSERT_OK(hc_json_parse(text, strlen(text), &v));
    CU_ASSERT_FATAL(v.type == HC_JSON_ARRAY && v.n == 5);
    CU_ASSERT_STRING_EQUAL(v.items[0].string, "q\"b\\s/f\bx\fy\nz\rw\tv");
    CU_ASSERT_STRING_EQUAL(v.items[1].string, "\xC3\xA9\xE2\x82\xAC");
    CU_ASSERT_STRING_EQUAL(v.items[2].string, "\xF0\x9F\x98\x80");
    CU_ASSERT_EQUAL(v.items[3].string_len, 3);
    CU_ASSERT(memcmp(v.items[3].string, "a\0b", 4) == 0);
    CU_ASSERT_STRING_EQUAL(v.items[4].string, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
    hc_json_free(&v);
}

/* text must be refused, with a message that holds "column <col>" and fragment. */
static void refused(const char *text, size_t len, int col, const char *fragment)
{
    hc_json v;
    hc_status st = hc_json_parse(text, len, &v);
    CU_ASSERT_EQUAL(st, HC_E_FORMAT);
    CU_ASSERT_EQUAL(v.type, HC_JSON_NULL);
    char want[32];
    snprintf(want, sizeof want, "column %d:", col);
    if (st != HC_E_FORMAT || !strstr(hc_last_error(), want) || !strstr(hc_last_error(), fragment))
        fprintf(stderr, "  [%.*s] -> '%s' (wanted %s ... %s)\n", (int)len, text, hc_last_error(), want, fragment);
    CU_ASSERT(strstr(hc_last_error(), want) != NULL);
    CU_ASSERT(strstr(hc_last_error(), fragment) != NULL);
}
#define REFUSED(lit, col, frag) refused(lit, sizeof(lit) - 1, col, frag)

static void test_json_errors(void)
{
    REFUSED("", 1, "value expected");
    REFUSED("   ", 4, "value expected");
    REFUSED("[1,]", 4, "value expected");
    REFUSED("{\"a\":1,}", 8, "member name");
    REFUSED("[1 2]", 4, "',' or ']'");
    REFUSED("{\"a\" 1}", 6, "':'");
    REFUSED("{a:1}", 2, "member name");
    REFUSED("01", 2, "leading zero");
    REFUSED("1.", 3, "digit expected after '.'");
    REFUSED(".5", 1, "value expected");
    REFUSED("1e", 3, "exponent");
    REFUSED("-", 2, "digit expected");
    REFUSED("+1", 1, "value expected");
    REFUSED("1e999", 1, "out of range");
    REFUSED("tru", 1, "value expected");
    REFUSED("nul", 1, "value expected");
    REFUSED("NaN", 1, "value expected");
    REFUSED("1 2", 3, "after the value");
    REFUSED("{} x", 4, "after the value");
    REFUSED("\"abc", 5, "unterminated");
    REFUSED("\"a\tb\"", 3, "control character");
    REFUSED("\"a\nb\"", 3, "control character");
    REFUSED("\"\\x\"", 3, "unknown escape");
    REFUSED("\"\\u12\"", 2, "four hex digits");
    REFUSED("\"\\ud800\"", 2, "high surrogate");
    REFUSED("\"\\ud800\\u0041\"", 2, "high surrogate");
    REFUSED("\"\\ud800x\"", 2, "high surrogate");
    REFUSED("\"\\udc00\"", 2, "lone low surrogate");
    REFUSED("\"\xC0\x80\"", 2, "UTF-8");            /* overlong */
    REFUSED("\"\xED\xA0\x80\"", 2, "UTF-8");        /* a surrogate encoded in UTF-8 */
    REFUSED("\"\xF4\x90\x80\x80\"", 2, "UTF-8");    /* above U+10FFFF */
    REFUSED("\"\xE2\x82\"", 2, "UTF-8");            /* truncated sequence */
    REFUSED("\"\xFF\"", 2, "UTF-8");
    REFUSED("{\"a\":1,\"a\":2}", 8, "duplicate");
    REFUSED("{\"a\\u0000\":1}", 2, "\\u0000");
    REFUSED("[1]\0", 4, "after the value");
    REFUSED("\xEF\xBB\xBF{}", 1, "byte-order mark");
    /* nesting: 64 levels parse, 65 do not */
    char deep[200];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    CU_ASSERT(parses(deep));
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    refused(deep, 130, 65, "nesting");
    /* errors release what was built so far (ASan checks this) */
    REFUSED("{\"a\":[\"x\",{\"b\":\"y\"},", 21, "value expected");
}

/* ------------------------------------------------------------------ JSONL data sets */

static const char *write_tmp(const char *name, const char *content)
{
    static char path[4][600];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, 600, "%s", hc_test_tmp(name));
    FILE *f = fopen(p, "wb");
    CU_ASSERT_FATAL(f != NULL);
    fputs(content, f);
    fclose(f);
    return p;
}

static int message_starts(const char *path, int line)
{
    char want[700];
    snprintf(want, sizeof want, "%s:%d: ", path, line);
    int ok = strncmp(hc_last_error(), want, strlen(want)) == 0;
    if (!ok) fprintf(stderr, "  message '%s' does not start with '%s'\n", hc_last_error(), want);
    return ok;
}

static void test_jsonl_mc_load(void)
{
    const char *good = write_tmp("mc.jsonl",
                                 "{\"query\": \"Q1\", \"choices\": [\"a\", \"b\"], \"gold\": 1, \"extra\": null}\n"
                                 "\n"
                                 "  \r\n"
                                 "{\"choices\": [\"x\", \"y\", \"\\u00e9\"], \"gold\": 2.0, \"query\": \"Q2\"}\r\n"
                                 "{\"query\": \"Q3\", \"choices\": [\"c\", \"d\"], \"gold\": 0}");
    hc_mc_set s;
    HC_ASSERT_OK(hc_mc_load(good, 0, &s));
    CU_ASSERT_EQUAL_FATAL(s.n, 3);
    CU_ASSERT_STRING_EQUAL(s.items[0].query, "Q1");
    CU_ASSERT_EQUAL(s.items[0].gold, 1);
    CU_ASSERT_EQUAL(s.items[0].line, 1);
    CU_ASSERT_EQUAL(s.items[1].n_choices, 3);
    CU_ASSERT_STRING_EQUAL(s.items[1].choices[2], "\xC3\xA9");
    CU_ASSERT_EQUAL(s.items[1].gold, 2);
    CU_ASSERT_EQUAL(s.items[1].line, 4);
    CU_ASSERT_EQUAL(s.items[2].line, 5);
    hc_mc_set_free(&s);
    HC_ASSERT_OK(hc_mc_load(good, 2, &s));
    CU_ASSERT_EQUAL(s.n, 2);
    hc_mc_set_free(&s);

    /* a malformed line is refused with its number, whatever came before */
    const char *bad = write_tmp("bad.jsonl",
                                "{\"query\": \"Q1\", \"choices\": [\"a\", \"b\"], \"gold\": 1}\n"
                                "\n"
                                "{\"query\": \"Q2\", \"choices\": [\"a\", \"b\",], \"gold\": 1}\n");
    CU_ASSERT_EQUAL(hc_mc_load(bad, 0, &s), HC_E_FORMAT);
    CU_ASSERT(message_starts(bad, 3));
    CU_ASSERT(strstr(hc_last_error(), "column 38") != NULL);
    CU_ASSERT_EQUAL(s.n, 0);
    CU_ASSERT_PTR_NULL(s.items);
    /* ... but not when --limit stops before it */
    HC_ASSERT_OK(hc_mc_load(bad, 1, &s));
    CU_ASSERT_EQUAL(s.n, 1);
    hc_mc_set_free(&s);

    struct { const char *row; const char *fragment; } cases[] = {
        { "[1, 2]", "JSON object" },
        { "{\"choices\": [\"a\", \"b\"], \"gold\": 0}", "\"query\"" },
        { "{\"query\": 3, \"choices\": [\"a\", \"b\"], \"gold\": 0}", "\"query\" is not a string" },
        { "{\"query\": \"q\", \"gold\": 0}", "\"choices\"" },
        { "{\"query\": \"q\", \"choices\": \"ab\", \"gold\": 0}", "not an array" },
        { "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0}", "at least 2" },
        { "{\"query\": \"q\", \"choices\": [\"a\", 5], \"gold\": 0}", "choice 1 is not a string" },
        { "{\"query\": \"q\", \"choices\": [\"a\", \"b\"]}", "\"gold\"" },
        { "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}", "out of range" },
        { "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": -1}", "out of range" },
        { "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0.5}", "not an integer" },
        { "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": \"0\"}", "not an integer" },
        { "{\"query\": \"q\\u0000\", \"choices\": [\"a\", \"b\"], \"gold\": 0}", "\\u0000" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char content[512];
        snprintf(content, sizeof content, "{\"query\": \"ok\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n%s\n", cases[i].row);
        const char *p = write_tmp("case.jsonl", content);
        CU_ASSERT_EQUAL(hc_mc_load(p, 0, &s), HC_E_FORMAT);
        CU_ASSERT(message_starts(p, 2));
        if (!strstr(hc_last_error(), cases[i].fragment)) fprintf(stderr, "  case %zu: '%s'\n", i, hc_last_error());
        CU_ASSERT(strstr(hc_last_error(), cases[i].fragment) != NULL);
    }
    CU_ASSERT_EQUAL(hc_mc_load(write_tmp("empty.jsonl", "\n\n"), 0, &s), HC_E_FORMAT);
    CU_ASSERT(strstr(hc_last_error(), "no rows") != NULL);
    CU_ASSERT_EQUAL(hc_mc_load(hc_test_tmp("absent.jsonl"), 0, &s), HC_E_IO);
}

static void test_jsonl_lambada_load(void)
{
    const char *good = write_tmp("lam.jsonl", "{\"context\": \"He said\", \"continuation\": \"hi\"}\n"
                                              "{\"context\": \"\\\"Quote\\\"\\n\", \"continuation\": \"end\"}\n");
    hc_lambada_set s;
    HC_ASSERT_OK(hc_lambada_load(good, 0, &s));
    CU_ASSERT_EQUAL_FATAL(s.n, 2);
    CU_ASSERT_STRING_EQUAL(s.items[1].context, "\"Quote\"\n");
    CU_ASSERT_STRING_EQUAL(s.items[1].continuation, "end");
    hc_lambada_set_free(&s);
    const char *bad = write_tmp("lam_bad.jsonl", "{\"context\": \"a\", \"continuation\": \"b\"}\n"
                                                 "{\"context\": \"a\", \"continuation\": \"b\"}\n"
                                                 "{\"context\": \"a\" \"continuation\": \"b\"}\n");
    CU_ASSERT_EQUAL(hc_lambada_load(bad, 0, &s), HC_E_FORMAT);
    CU_ASSERT(message_starts(bad, 3));
    const char *empty = write_tmp("lam_empty.jsonl", "{\"context\": \"a\", \"continuation\": \"  \"}\n");
    CU_ASSERT_EQUAL(hc_lambada_load(empty, 0, &s), HC_E_FORMAT);
    CU_ASSERT(message_starts(empty, 1));
    CU_ASSERT(strstr(hc_last_error(), "empty") != NULL);
    const char *missing = write_tmp("lam_missing.jsonl", "{\"context\": \"a\"}\n");
    CU_ASSERT_EQUAL(hc_lambada_load(missing, 0, &s), HC_E_FORMAT);
    CU_ASSERT(strstr(hc_last_error(), "\"continuation\"") != NULL);
}

/* ------------------------------------------------------------------ progress */

static void test_progress(void)
{
    const char *path = hc_test_tmp("progress.txt");
    char copy[600];
    snprintf(copy, sizeof copy, "%s", path);
    FILE *f = fopen(copy, "w+");
    CU_ASSERT_FATAL(f != NULL);
    hc_progress p;
    hc_progress_begin(&p, f, "mc", "rows", 200);
    CU_ASSERT_EQUAL(p.tty, 0);
    for (long i = 1; i <= 200; i++) hc_progress_update(&p, i);
    hc_progress_end(&p);
    fclose(f);
    char *text = hc_test_read_file(copy, NULL);
    CU_ASSERT_FATAL(text != NULL);
    int lines = 0;
    for (char *s = text; *s; s++) lines += *s == '\n';
    CU_ASSERT_EQUAL(lines, 10);   /* 10%, 20%, ... 90%, and the final line */
    CU_ASSERT(strstr(text, "mc 20/200 rows (10%)") != NULL);
    CU_ASSERT(strstr(text, "mc 180/200 rows (90%)") != NULL);
    CU_ASSERT(strstr(text, "mc 200/200 rows (100%)") != NULL);
    CU_ASSERT(strstr(text, "done in") != NULL);
    CU_ASSERT(strchr(text, '\r') == NULL && strchr(text, '\033') == NULL);
    free(text);

    /* the line itself: rate and ETA from the clock */
    hc_progress q;
    hc_progress_begin(&q, NULL, "ppl", "chunks", 100);
    q.t_start = 10.0;
    q.done = 25;
    char buf[256];
    hc_progress_format(&q, 15.0, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "ppl 25/100 chunks (25%), 5 chunks/s, ETA 0:15");
    q.total = 0;
    hc_progress_format(&q, 15.0, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "ppl 25 chunks, 5 chunks/s");
    hc_progress_update(&q, 50);   /* no stream: nothing happens, no crash */
    hc_progress_end(&q);
}

/* ------------------------------------------------------------------ the model */

typedef struct fixture {
    hc_device *dev;
    hc_model *model;
    hc_tokenizer *tok;
    hc_context *ctx;
    int n_vocab;
} fixture;

static int open_model(fixture *fx, int n_ctx, int n_batch, const char *test)
{
    memset(fx, 0, sizeof *fx);
    const char *mp = hc_test_shared("models/stories260K/stories260K.bin", test);
    if (!mp) return 0;
    char model_path[1024];
    snprintf(model_path, sizeof model_path, "%s", mp);
    const char *tp = hc_test_shared("models/stories260K/tok512.bin", test);
    if (!tp) return 0;
    hc_device_config cfg = { .n_threads = 1 };
    hc_status st = hc_cpu_device_create(&cfg, &fx->dev);
    if (st == HC_OK) st = hc_model_load(model_path, NULL, &fx->model);
    if (st == HC_OK) st = hc_tokenizer_load_llama2c(tp, fx->model->cfg.n_vocab, &fx->tok);
    hc_context_params cp = { .n_ctx = n_ctx, .n_batch = n_batch };
    if (st == HC_OK) st = hc_context_create(fx->model, fx->dev, &cp, &fx->ctx);
    if (st != HC_OK) fprintf(stderr, "  opening stories260K: %s\n", hc_last_error());
    CU_ASSERT_EQUAL_FATAL(st, HC_OK);
    fx->n_vocab = fx->model->cfg.n_vocab;
    return 1;
}

static void close_model(fixture *fx)
{
    hc_context_free(fx->ctx);
    hc_tokenizer_free(fx->tok);
    hc_model_free(fx->model);
    if (fx->dev) fx->dev->ops->destroy(fx->dev);
}

/* The reference log-softmax, written out here rather than taken from the module. */
static double ref_logprob(const float *row, int n_vocab, int32_t token)
{
    double max = row[0], sum = 0;
    for (int i = 1; i < n_vocab; i++) max = row[i] > max ? row[i] : max;
    for (int i = 0; i < n_vocab; i++) sum += exp(row[i] - max);
    return row[token] - max - log(sum);
}

/* Runs ids one token at a time from an empty cache; lp[i] = log p(ids[i] | ids[0..i)) for i >= 1. */
static void ref_token_logprobs(fixture *fx, const int32_t *ids, int n, double *lp)
{
    hc_context_reset(fx->ctx);
    lp[0] = 0;
    for (int i = 0; i < n - 1; i++) {
        const float *logits;
        HC_ASSERT_OK(hc_decode(fx->ctx, &ids[i], 1, 0, &logits));
        lp[i + 1] = ref_logprob(logits, fx->n_vocab, ids[i + 1]);
    }
}

static const char story[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high. Lily asked "
    "her mom for help. Her mom said, \"Let's get it together.\" They went to the tree and her mom "
    "picked up the ball. Lily was so happy. She said, \"Thank you, mom!\" They played with the ball "
    "all day. The sun was shining and the birds were singing. Lily and her mom had a lot of fun. "
    "At the end of the day, they went home and ate dinner. Lily went to bed with a big smile.";

static void test_ppl_chunks(void)
{
    fixture fx;
    if (!open_model(&fx, 128, 16, "ppl_chunks")) return;
    int32_t *ids = NULL;
    int n = 0;
    HC_ASSERT_OK(hc_tokenize(fx.tok, story, strlen(story), 1, 0, &ids, &n));
    CU_ASSERT_FATAL(n > 3 * 64);
    CU_ASSERT_EQUAL(ids[0], 1);   /* the vocabulary adds BOS */

    /* chunks of 64 with BOS first, second half scored: llama-perplexity's default */
    hc_ppl_params pp = { .n_ctx = 64, .max_chunks = 3 };
    hc_ppl_result r;
    HC_ASSERT_OK(hc_eval_ppl_text(fx.ctx, fx.tok, story, strlen(story), &pp, NULL, &r));
    CU_ASSERT_EQUAL(r.n_chunks, 3);
    CU_ASSERT_EQUAL(r.n_tokens, n);
    CU_ASSERT_EQUAL(r.n_scored, 3 * (64 - 32 - 1));

    double sum = 0, sum2 = 0;
    long count = 0;
    int32_t chunk[64];
    double lp[64];
    for (int k = 0; k < 3; k++) {
        memcpy(chunk, ids + 64 * k, sizeof chunk);
        chunk[0] = 1;
        ref_token_logprobs(&fx, chunk, 64, lp);
        for (int i = 33; i < 64; i++) {
            sum += -lp[i];
            sum2 += lp[i] * lp[i];
            count++;
        }
    }
    double mean = sum / count, ppl = exp(mean);
    double se = ppl * sqrt((sum2 / count - mean * mean) / (count - 1));
    CU_ASSERT_DOUBLE_EQUAL(r.ppl, ppl, 1e-4 * ppl);
    CU_ASSERT_DOUBLE_EQUAL(r.nll_mean, mean, 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(r.ppl_stderr, se, 1e-3 * se + 1e-9);
    CU_ASSERT(r.ppl > 1.0 && r.ppl < 100.0);   /* the model knows this kind of text */

    /* every chunk: as many as fit */
    HC_ASSERT_OK(hc_eval_ppl_tokens(fx.ctx, ids, n, 1, &(hc_ppl_params){ .n_ctx = 64 }, NULL, &r));
    CU_ASSERT_EQUAL(r.n_chunks, n / 64);

    /* bad requests */
    CU_ASSERT_EQUAL(hc_eval_ppl_tokens(fx.ctx, ids, n, 1, &(hc_ppl_params){ .n_ctx = 256 }, NULL, &r), HC_E_ARG);
    CU_ASSERT(strstr(hc_last_error(), "exceed the context") != NULL);
    CU_ASSERT_EQUAL(hc_eval_ppl_tokens(fx.ctx, ids, 40, 1, &(hc_ppl_params){ .n_ctx = 64 }, NULL, &r), HC_E_ARG);
    CU_ASSERT(strstr(hc_last_error(), "fewer than one chunk") != NULL);
    CU_ASSERT_EQUAL(hc_eval_ppl_tokens(fx.ctx, ids, n, 1, &(hc_ppl_params){ .n_ctx = 64, .stride = 64 }, NULL, &r), HC_E_ARG);
    free(ids);
    close_model(&fx);
}

static void test_ppl_stride(void)
{
    fixture fx;
    if (!open_model(&fx, 128, 16, "ppl_stride")) return;
    int32_t *ids = NULL;
    int n = 0;
    HC_ASSERT_OK(hc_tokenize(fx.tok, story, strlen(story), 1, 0, &ids, &n));
    /* windows of 48 every 16 tokens: window 0 scores tokens 1..47, window k tokens 48+16(k-1) .. 48+16k-1 */
    hc_ppl_params pp = { .n_ctx = 48, .stride = 16, .max_chunks = 4 };
    hc_ppl_result r;
    hc_progress prog;
    hc_progress_begin(&prog, NULL, "ppl", "windows", 0);
    HC_ASSERT_OK(hc_eval_ppl_tokens(fx.ctx, ids, n, 1, &pp, &prog, &r));
    CU_ASSERT_EQUAL(prog.total, 4);
    CU_ASSERT_EQUAL(prog.done, 4);
    CU_ASSERT_EQUAL(r.n_chunks, 4);
    CU_ASSERT_EQUAL(r.n_scored, 47 + 3 * 16);
    double sum = 0;
    long count = 0;
    int32_t win[48];
    double lp[48];
    for (int k = 0; k < 4; k++) {
        memcpy(win, ids + 16 * k, sizeof win);
        win[0] = 1;
        ref_token_logprobs(&fx, win, 48, lp);
        for (int i = k == 0 ? 1 : 48 - 16; i < 48; i++) {
            sum += -lp[i];
            count++;
        }
    }
    CU_ASSERT_EQUAL(count, r.n_scored);
    CU_ASSERT_DOUBLE_EQUAL(r.ppl, exp(sum / count), 1e-4 * exp(sum / count));
    free(ids);
    close_model(&fx);
}

/* Greedy continuation of text: n tokens by argmax, their text (malloc'd) and ids. */
static char *greedy_text(fixture *fx, const char *text, int n, int32_t *out_ids)
{
    int32_t *ids = NULL;
    int m = 0;
    HC_ASSERT_OK(hc_tokenize(fx->tok, text, strlen(text), 1, 0, &ids, &m));
    hc_context_reset(fx->ctx);
    const float *logits;
    HC_ASSERT_OK(hc_decode(fx->ctx, ids, m, 0, &logits));
    char *s = calloc(1, 256);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int32_t best = 0;
        for (int v = 1; v < fx->n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        out_ids[i] = best;
        char piece[64];
        int pl = hc_token_to_piece(fx->tok, best, 0, piece, sizeof piece);
        if (pl > 0 && len + (size_t)pl < 255) {
            memcpy(s + len, piece, (size_t)pl);
            len += (size_t)pl;
        }
        HC_ASSERT_OK(hc_decode(fx->ctx, &best, 1, 0, &logits));
    }
    free(ids);
    return s;
}

/* The reference log-likelihood of continuation after context: tokenize both, check the split,
 * run everything token by token. */
static double ref_continuation(fixture *fx, const char *context, const char *continuation, int *greedy)
{
    size_t lc = strlen(context), lk = strlen(continuation);
    char *whole = malloc(lc + lk + 1);
    memcpy(whole, context, lc);
    memcpy(whole + lc, continuation, lk + 1);
    int32_t *c_ids = NULL, *w_ids = NULL;
    int nc = 0, nw = 0;
    HC_ASSERT_OK(hc_tokenize(fx->tok, context, lc, 1, 0, &c_ids, &nc));
    HC_ASSERT_OK(hc_tokenize(fx->tok, whole, lc + lk, 1, 0, &w_ids, &nw));
    CU_ASSERT_FATAL(nw > nc && memcmp(c_ids, w_ids, (size_t)nc * sizeof *c_ids) == 0);
    double *lp = malloc((size_t)nw * sizeof *lp);
    hc_context_reset(fx->ctx);
    double sum = 0;
    int all = 1;
    for (int i = 0; i < nw - 1; i++) {
        const float *logits;
        HC_ASSERT_OK(hc_decode(fx->ctx, &w_ids[i], 1, 0, &logits));
        if (i + 1 >= nc) {
            sum += ref_logprob(logits, fx->n_vocab, w_ids[i + 1]);
            int32_t best = 0;
            for (int v = 1; v < fx->n_vocab; v++)
                if (logits[v] > logits[best]) best = v;
            all &= best == w_ids[i + 1];
        }
    }
    if (greedy) *greedy = all;
    free(lp);
    free(c_ids);
    free(w_ids);
    free(whole);
    return sum;
}

static void test_mc(void)
{
    fixture fx;
    if (!open_model(&fx, 256, 4, "mc")) return;
    /* row 0 by construction: choice 0 is the model's own greedy continuation */
    const char *q0 = "Once upon a time, there was a little girl named";
    int32_t g[3];
    char *greedy = greedy_text(&fx, q0, 3, g);
    CU_ASSERT_FATAL(greedy[0] == ' ');   /* a word follows */
    char *c00 = strdup(greedy + 1);
    char *choices0[] = { c00, "Xqzv bbb zz." };
    char *choices1[] = { "  red.", "happy.", "a ball." };
    char *choices2[] = { "to the park", "with her mom", "ziggurat qua" };
    hc_mc_item items[3] = {
        { (char *)q0, choices0, 2, 0, 0 },
        { "Question: What color was the ball?\n", choices1, 3, 0, 0 },
        { "Lily wanted to play", choices2, 3, 2, 0 },
    };
    hc_mc_set set = { items, 3 };

    for (int variant = 0; variant < 2; variant++) {
        const char *delim = variant == 0 ? NULL : "";
        const char *used = variant == 0 ? "\nAnswer:" : "";
        int picks[3] = { -1, -1, -1 }, picks_norm[3] = { -1, -1, -1 }, expect_pick[3], expect_pick_norm[3];
        hc_mc_params mp = { .delimiter = delim, .picks = picks, .picks_norm = picks_norm };
        int expect_acc = 0, expect_norm = 0;
        for (int i = 0; i < 3; i++) {
            /* the convention written out: strip the data, query + delimiter, a space, the choice */
            char context[256];
            const char *q = items[i].query;
            size_t ql = strlen(q);
            while (ql > 0 && (q[ql - 1] == '\n' || q[ql - 1] == ' ')) ql--;
            snprintf(context, sizeof context, "%.*s%s", (int)ql, q, used);
            double ll[3], ref[3];
            int cut = -1;
            long ran = 0;
            HC_ASSERT_OK(hc_eval_mc_item(fx.ctx, fx.tok, &mp, &items[i], ll, &cut, &ran));
            CU_ASSERT_EQUAL(cut, 0);
            CU_ASSERT(ran > 0);
            int best = 0, best_norm = 0;
            double norm[3];
            for (int k = 0; k < items[i].n_choices; k++) {
                const char *ch = items[i].choices[k];
                while (*ch == ' ') ch++;
                char cont[128];
                snprintf(cont, sizeof cont, " %s", ch);
                ref[k] = ref_continuation(&fx, context, cont, NULL);
                norm[k] = ref[k] / (double)strlen(ch);   /* ASCII: characters = bytes */
                CU_ASSERT_DOUBLE_EQUAL(ll[k], ref[k], 1e-3);
                if (ref[k] > ref[best]) best = k;
                if (norm[k] > norm[best_norm]) best_norm = k;
            }
            expect_acc += best == items[i].gold;
            expect_norm += best_norm == items[i].gold;
            expect_pick[i] = best;
            expect_pick_norm[i] = best_norm;
            if (i == 0) CU_ASSERT(ll[0] > ll[1]);   /* its own greedy words beat nonsense */
        }
        hc_mc_result r;
        HC_ASSERT_OK(hc_eval_mc(fx.ctx, fx.tok, &mp, &set, NULL, &r));
        CU_ASSERT_EQUAL(r.n, 3);
        CU_ASSERT_DOUBLE_EQUAL(r.acc, expect_acc / 3.0, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(r.acc_norm, expect_norm / 3.0, 1e-12);
        double p = expect_acc / 3.0;
        CU_ASSERT_DOUBLE_EQUAL(r.acc_stderr, sqrt(p * (1 - p) / 2), 1e-12);
        CU_ASSERT(expect_acc >= 1);   /* row 0 at least */
        for (int i = 0; i < 3; i++) { /* eval --items: the choice each row picked */
            CU_ASSERT_EQUAL(picks[i], expect_pick[i]);
            CU_ASSERT_EQUAL(picks_norm[i], expect_pick_norm[i]);
        }
    }
    /* a choice that is only whitespace is refused, naming the row */
    char *blank[] = { "a", "   " };
    hc_mc_item bad = { "q", blank, 2, 0, 7 };
    hc_mc_set bad_set = { &bad, 1 };
    hc_mc_result r;
    CU_ASSERT_EQUAL(hc_eval_mc(fx.ctx, fx.tok, NULL, &bad_set, NULL, &r), HC_E_FORMAT);
    CU_ASSERT(strstr(hc_last_error(), "line 7") != NULL && strstr(hc_last_error(), "choice 1 is empty") != NULL);
    free(c00);
    free(greedy);
    close_model(&fx);
}

static void test_mc_truncation(void)
{
    /* a query longer than the context is cut from the left, and the choices still score */
    fixture fx;
    if (!open_model(&fx, 32, 8, "mc_truncation")) return;
    char *choices[] = { "Lily.", "Tom." };
    hc_mc_item it = { (char *)story, choices, 2, 0, 0 };
    double ll[2];
    int cut = 0;
    HC_ASSERT_OK(hc_eval_mc_item(fx.ctx, fx.tok, NULL, &it, ll, &cut, NULL));
    CU_ASSERT_EQUAL(cut, 1);
    CU_ASSERT(ll[0] < 0 && ll[1] < 0 && isfinite(ll[0]) && isfinite(ll[1]));
    close_model(&fx);
}

static void test_lambada(void)
{
    fixture fx;
    if (!open_model(&fx, 256, 2, "lambada")) return;
    const char *ctx0 = "Once upon a time, there was a little girl named Lily. She loved to play outside in the";
    int32_t g[2];
    char *greedy = greedy_text(&fx, ctx0, 2, g);   /* e.g. " park." */
    CU_ASSERT_FATAL(greedy[0] == ' ');
    hc_lambada_item items[3] = {
        { (char *)ctx0, greedy + 1, 0 },            /* right by construction */
        { (char *)ctx0, "zebra", 0 },               /* wrong */
        { "Lily and her mom had a lot of", "fun", 0 },
    };
    double ref[3];
    int ref_greedy[3], right = 0;
    for (int i = 0; i < 3; i++) {
        char cont[64];
        snprintf(cont, sizeof cont, " %s", items[i].continuation);
        ref[i] = ref_continuation(&fx, items[i].context, cont, &ref_greedy[i]);
        double ll;
        int gr = -1, nc = 0;
        HC_ASSERT_OK(hc_eval_lambada_item(fx.ctx, fx.tok, &items[i], &ll, &gr, &nc, NULL, NULL));
        CU_ASSERT_DOUBLE_EQUAL(ll, ref[i], 1e-3);
        CU_ASSERT_EQUAL(gr, ref_greedy[i]);
        CU_ASSERT(nc >= 1);
        right += ref_greedy[i];
    }
    CU_ASSERT_EQUAL(ref_greedy[0], 1);
    CU_ASSERT_EQUAL(ref_greedy[1], 0);
    hc_lambada_set set = { items, 3 };
    hc_lambada_result r;
    HC_ASSERT_OK(hc_eval_lambada(fx.ctx, fx.tok, &set, NULL, &r));
    CU_ASSERT_EQUAL(r.n, 3);
    CU_ASSERT_DOUBLE_EQUAL(r.acc, right / 3.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(r.ppl, exp(-(ref[0] + ref[1] + ref[2]) / 3), 1e-3 * r.ppl);
    CU_ASSERT(r.ppl_token > 1.0 && r.ppl_token <= r.ppl);
    free(greedy);
    close_model(&fx);
}

/* ------------------------------------------------------------------ the command */

static int run_cli(const char *args, const char *out, const char *err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "eval %s", args);
    return hc_test_hcinfer(cmd, out, err);
}

static void test_cli(void)
{
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/hcinfer", HC_BIN_DIR);
    if (access(bin, X_OK) != 0) {
        printf("\n  SKIP cli: %s is not built\n", bin);
        return;
    }
    fixture fx;
    if (!open_model(&fx, 64, 16, "cli")) return;
    char model[1024], text[700], out[700], err[700], bad[700];
    snprintf(model, sizeof model, "%s", hc_test_shared("models/stories260K/stories260K.bin", "cli"));
    snprintf(text, sizeof text, "%s", write_tmp("story.txt", story));
    snprintf(out, sizeof out, "%s", hc_test_tmp("out.json"));
    snprintf(err, sizeof err, "%s", hc_test_tmp("err.txt"));
    snprintf(bad, sizeof bad, "%s", write_tmp("cli_bad.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n"
                                                               "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0\n"));
    char args[4096];
    snprintf(args, sizeof args, "-m '%s' --ppl '%s' --ctx 64 --limit 2 -c 64 --json", model, text);
    CU_ASSERT_EQUAL(run_cli(args, out, err), 0);
    size_t size = 0;
    char *json = hc_test_read_file(out, &size);
    CU_ASSERT_FATAL(json != NULL);
    hc_json v;
    HC_ASSERT_OK(hc_json_parse(json, size, &v));   /* exactly one JSON value on stdout */
    hc_ppl_result r;
    HC_ASSERT_OK(hc_eval_ppl_text(fx.ctx, fx.tok, story, strlen(story), &(hc_ppl_params){ .n_ctx = 64, .max_chunks = 2 }, NULL, &r));
    const hc_json *ppl = hc_json_get(&v, "ppl"), *n = hc_json_get(&v, "n"), *sec = hc_json_get(&v, "seconds");
    CU_ASSERT_FATAL(ppl && ppl->type == HC_JSON_NUMBER && n && n->type == HC_JSON_NUMBER && sec && sec->type == HC_JSON_NUMBER);
    CU_ASSERT_DOUBLE_EQUAL(ppl->number, r.ppl, 1e-4 * r.ppl);
    CU_ASSERT_EQUAL((long)n->number, r.n_scored);
    CU_ASSERT(hc_json_get(&v, "ppl_stderr") != NULL && hc_json_get(&v, "ppl_tokens") != NULL);
    CU_ASSERT(hc_json_get(&v, "model") && hc_json_get(&v, "model")->type == HC_JSON_STRING);
    hc_json_free(&v);
    free(json);

    /* a malformed JSONL line: refused with FILE:LINE before the model is loaded, non-zero exit */
    snprintf(args, sizeof args, "-m '%s' --mc '%s' --json", model, bad);
    CU_ASSERT_EQUAL(run_cli(args, out, err), 1);
    char *msg = hc_test_read_file(err, NULL);
    char want[800];
    snprintf(want, sizeof want, "%s:2: column", bad);
    CU_ASSERT(msg && strstr(msg, want) != NULL);
    free(msg);
    /* no task: a usage error */
    snprintf(args, sizeof args, "-m '%s'", model);
    CU_ASSERT_EQUAL(run_cli(args, out, err), 2);

    /* --items: one line per row with its gold and picks; none left when the run fails */
    char good[700], items[700];
    snprintf(good, sizeof good, "%s", write_tmp("cli_good.jsonl", "{\"query\": \"Lily wanted to\", \"choices\": [\"play.\", \"zq xv.\"], \"gold\": 0}\n"
                                                                 "{\"query\": \"The sky was\", \"choices\": [\"a\", \"blue.\", \"qq\"], \"gold\": 2}\n"));
    snprintf(items, sizeof items, "%s", hc_test_tmp("items.jsonl"));
    remove(items);
    snprintf(args, sizeof args, "-m '%s' --mc '%s' --items '%s' -c 64 --json --no-progress", model, good, items);
    CU_ASSERT_EQUAL(run_cli(args, out, err), 0);
    char *lines = hc_test_read_file(items, NULL);
    CU_ASSERT_FATAL(lines != NULL);
    int row, line, gold, pick, pick_norm, n_rows = 0;
    for (char *at = lines; at && sscanf(at, "{\"row\": %d, \"line\": %d, \"gold\": %d, \"pick\": %d, \"pick_norm\": %d}", &row, &line,
                                         &gold, &pick, &pick_norm) == 5; at = strchr(at, '\n') ? strchr(at, '\n') + 1 : NULL) {
        CU_ASSERT_EQUAL(row, n_rows);
        CU_ASSERT_EQUAL(line, n_rows + 1);
        CU_ASSERT_EQUAL(gold, n_rows == 0 ? 0 : 2);
        CU_ASSERT(pick >= 0 && pick < 2 + n_rows && pick_norm >= 0 && pick_norm < 2 + n_rows);
        n_rows++;
    }
    CU_ASSERT_EQUAL(n_rows, 2);
    free(lines);
    remove(items);
    snprintf(args, sizeof args, "-m '%s.missing' --mc '%s' --items '%s'", model, good, items);
    CU_ASSERT_EQUAL(run_cli(args, out, err), 1);
    CU_ASSERT(access(items, F_OK) != 0);
    char tmp_items[800];
    snprintf(tmp_items, sizeof tmp_items, "%s.tmp", items);
    CU_ASSERT(access(tmp_items, F_OK) != 0);
    snprintf(args, sizeof args, "-m '%s' --mc '%s' --items /nonexistent-dir/items.jsonl", model, good);
    CU_ASSERT_EQUAL(run_cli(args, out, err), 1);
    msg = hc_test_read_file(err, NULL);
    CU_ASSERT(msg && strstr(msg, "/nonexistent-dir/items.jsonl: cannot write the items file") != NULL);
    free(msg);
    snprintf(args, sizeof args, "-m '%s' --ppl '%s' --items '%s'", model, text, items);
    CU_ASSERT_EQUAL(run_cli(args, out, err), 2);
    close_model(&fx);
}

/* scripts/compare_items.sh on two items files whose paired statistics are known: 10 rows, A right
 * on rows 0-5, B on rows 2-8 (A only: 2, B only: 3, d = +0.1, paired s.e. sqrt((5 - 10*0.01)/9/10)). */
static void test_compare_items(void)
{
    char a[700], b[700], c[700], out[700], err[700], cmd[4096];
    char ta[2048] = "", tb[2048] = "";
    for (int i = 0; i < 10; i++) {
        char row[128];
        snprintf(row, sizeof row, "{\"row\": %d, \"line\": %d, \"gold\": 1, \"pick\": %d, \"pick_norm\": 1}\n", i, i + 1, i < 6 ? 1 : 0);
        strcat(ta, row);
        snprintf(row, sizeof row, "{\"row\": %d, \"line\": %d, \"gold\": 1, \"pick\": %d, \"pick_norm\": 0}\n", i, i + 1, i >= 2 && i < 9 ? 1 : 2);
        strcat(tb, row);
    }
    snprintf(a, sizeof a, "%s", write_tmp("items_a.jsonl", ta));
    snprintf(b, sizeof b, "%s", write_tmp("items_b.jsonl", tb));
    snprintf(c, sizeof c, "%s", write_tmp("items_c.jsonl", "{\"row\": 0, \"line\": 1, \"gold\": 2, \"pick\": 2, \"pick_norm\": 2}\n"));
    snprintf(out, sizeof out, "%s", hc_test_tmp("compare.txt"));
    snprintf(err, sizeof err, "%s", hc_test_tmp("compare_err.txt"));
    snprintf(cmd, sizeof cmd, "bash '%s/scripts/compare_items.sh' '%s' '%s' > '%s' 2> '%s'", HC_SOURCE_DIR, a, b, out, err);
    CU_ASSERT_EQUAL(system(cmd), 0);
    char *text = hc_test_read_file(out, NULL);
    CU_ASSERT_FATAL(text != NULL);
    char want[256];
    snprintf(want, sizeof want, "| acc | 10 | 60.00 | 70.00 | +10.00 | %.2f | +%.2f | 2 | 3 |", 100 * sqrt(4.9 / 90), 0.1 / sqrt(4.9 / 90));
    CU_ASSERT(strstr(text, want) != NULL);
    CU_ASSERT(strstr(text, "| acc_norm | 10 | 100.00 | 0.00 | -100.00 | 0.00 | +0.00 | 10 | 0 |") != NULL);
    free(text);
    /* files of different rows: refused, exit 1 */
    snprintf(cmd, sizeof cmd, "bash '%s/scripts/compare_items.sh' '%s' '%s' > '%s' 2> '%s'", HC_SOURCE_DIR, a, c, out, err);
    int rc = system(cmd);
    CU_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    char *msg = hc_test_read_file(err, NULL);
    CU_ASSERT(msg && strstr(msg, "is not the same row") != NULL);
    free(msg);
}

/* scripts/compare_draws.py on two draws of each configuration, 10 rows: A right on rows 0-5 and 0-3,
 * B on rows 2-8 and all; per row the draws' mean, A 0.5 and B 0.85 on average, d = +0.35 with a
 * paired s.e. sqrt(3.025/9/10) over the rows. */
static void test_compare_draws(void)
{
    char f[4][700], out[700], err[700], cmd[8192];
    static const int lo[4] = { 0, 0, 2, 0 }, hi[4] = { 6, 4, 9, 10 };
    for (int k = 0; k < 4; k++) {
        char text[2048] = "", row[128], name[32];
        for (int i = 0; i < 10; i++) {
            snprintf(row, sizeof row, "{\"row\": %d, \"line\": %d, \"gold\": 1, \"pick\": %d, \"pick_norm\": 1}\n", i, i + 1,
                     i >= lo[k] && i < hi[k] ? 1 : 0);
            strcat(text, row);
        }
        snprintf(name, sizeof name, "draw%d.jsonl", k);
        snprintf(f[k], sizeof f[k], "%s", write_tmp(name, text));
    }
    snprintf(out, sizeof out, "%s", hc_test_tmp("draws.txt"));
    snprintf(err, sizeof err, "%s", hc_test_tmp("draws_err.txt"));
    snprintf(cmd, sizeof cmd, "python3 '%s/scripts/compare_draws.py' x '%s,%s' '%s,%s' > '%s' 2> '%s'", HC_SOURCE_DIR, f[0], f[1], f[2], f[3],
             out, err);
    CU_ASSERT_EQUAL(system(cmd), 0);
    char *text = hc_test_read_file(out, NULL);
    CU_ASSERT_FATAL(text != NULL);
    char want[256];
    snprintf(want, sizeof want, "| x | mean of 2 draws | 50.00 | 85.00 | **+35.00** | %.2f | +%.2f |", 100 * sqrt(3.025 / 90),
             0.35 / sqrt(3.025 / 90));
    CU_ASSERT(strstr(text, want) != NULL);
    CU_ASSERT(strstr(text, "| x | draw 1 | 40.00 | 100.00 | +60.00 |") != NULL);
    free(text);
    /* a B file of other rows: refused, exit 1 */
    snprintf(f[3], sizeof f[3], "%s", write_tmp("draw_other.jsonl", "{\"row\": 0, \"line\": 1, \"gold\": 2, \"pick\": 2}\n"));
    snprintf(cmd, sizeof cmd, "python3 '%s/scripts/compare_draws.py' x '%s,%s' '%s,%s' > '%s' 2> '%s'", HC_SOURCE_DIR, f[0], f[1], f[2], f[3],
             out, err);
    int rc = system(cmd);
    CU_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    char *msg = hc_test_read_file(err, NULL);
    CU_ASSERT(msg && strstr(msg, "does not hold the rows of") != NULL);
    free(msg);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "json_values", test_json_values },
        { "json_escapes", test_json_escapes },
        { "json_errors", test_json_errors },
        { "jsonl_mc_load", test_jsonl_mc_load },
        { "jsonl_lambada_load", test_jsonl_lambada_load },
        { "progress", test_progress },
        { "ppl_chunks", test_ppl_chunks },
        { "ppl_stride", test_ppl_stride },
        { "mc", test_mc },
        { "mc_truncation", test_mc_truncation },
        { "lambada", test_lambada },
        { "cli", test_cli },
        { "compare_items", test_compare_items },
        { "compare_draws", test_compare_draws },
        { NULL, NULL },
    };
    return hc_test_run("eval", cases);
}
