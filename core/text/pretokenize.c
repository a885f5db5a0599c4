/* pretokenize.c: hand-written matchers for the pre-tokenizer regexes (no regex library); each pass
 * re-splits the previous words, matches and the unmatched stretches between them all becoming words. */
#include "pretokenize.h"

#include <stdlib.h>
#include <string.h>

#include "unicode.h"

/* ---- names ---- */

typedef struct pretok_name {
    const char *name;
    hc_pretok_kind kind;
    int ignore_merges;
    int add_bos;
} pretok_name;

/* tokenizer.ggml.pre values, grouped as llama.cpp's llama-vocab.cpp groups them. */
static const pretok_name k_names[] = {
    { "default", HC_PRETOK_DEFAULT, 0, 0 },
    { "gpt2", HC_PRETOK_GPT2, 0, 0 },
    { "gpt-2", HC_PRETOK_GPT2, 0, 0 },
    { "phi-2", HC_PRETOK_GPT2, 0, 0 },
    { "jina-es", HC_PRETOK_GPT2, 0, 0 },
    { "jina-de", HC_PRETOK_GPT2, 0, 0 },
    { "jina-v2-es", HC_PRETOK_GPT2, 0, 0 },
    { "jina-v2-de", HC_PRETOK_GPT2, 0, 0 },
    { "gigachat", HC_PRETOK_GPT2, 0, 0 },
    { "mpt", HC_PRETOK_GPT2, 0, 0 },
    { "olmo", HC_PRETOK_GPT2, 0, 0 },
    { "jais", HC_PRETOK_GPT2, 0, 0 },
    { "exaone4", HC_PRETOK_GPT2, 0, 0 },
    { "smollm", HC_PRETOK_DIGITS_GPT2, 0, 0 },
    { "starcoder", HC_PRETOK_DIGITS_GPT2, 0, 0 },
    { "refact", HC_PRETOK_DIGITS_GPT2, 0, 0 },
    { "command-r", HC_PRETOK_DIGITS_GPT2, 0, 0 },
    { "codeshell", HC_PRETOK_DIGITS_GPT2, 0, 0 },
    { "exaone", HC_PRETOK_DIGITS_GPT2, 0, 0 },
    { "minerva-7b", HC_PRETOK_DIGITS_GPT2, 0, 0 },
    { "llama3", HC_PRETOK_LLAMA3, 1, 1 },
    { "llama-v3", HC_PRETOK_LLAMA3, 1, 1 },
    { "llama-bpe", HC_PRETOK_LLAMA3, 1, 1 },
    { "falcon3", HC_PRETOK_LLAMA3, 1, 1 },
    { "pixtral", HC_PRETOK_LLAMA3, 1, 1 },
    { "dbrx", HC_PRETOK_LLAMA3, 0, 0 },
    { "smaug-bpe", HC_PRETOK_LLAMA3, 0, 0 },
    { "qwen2", HC_PRETOK_QWEN2, 0, 0 },
    { "deepseek-r1-qwen", HC_PRETOK_QWEN2, 0, 0 },
    { "stablelm2", HC_PRETOK_QWEN2, 0, 0 },
    { "megrez", HC_PRETOK_QWEN2, 0, 0 },
};

int hc_pretok_from_name(const char *name, hc_pretok_info *out)
{
    if (!name || !name[0]) name = "default";
    for (size_t i = 0; i < sizeof k_names / sizeof k_names[0]; i++) {
        if (strcmp(k_names[i].name, name) == 0) {
            out->kind = k_names[i].kind;
            out->ignore_merges = k_names[i].ignore_merges;
            out->add_bos = k_names[i].add_bos;
            return 1;
        }
    }
    return 0;
}

const char *hc_pretok_known_names(void)
{
    return "default, gpt2, gpt-2, phi-2, jina-es, jina-de, jina-v2-es, jina-v2-de, gigachat, mpt, olmo, jais, "
           "exaone4, smollm, starcoder, refact, command-r, codeshell, exaone, minerva-7b, llama3, llama-v3, "
           "llama-bpe, falcon3, pixtral, dbrx, smaug-bpe, qwen2, deepseek-r1-qwen, stablelm2, megrez";
}

/* ---- word lists ---- */

typedef struct word_list {
    size_t *len;
    size_t n, cap;
    int failed;
} word_list;

static void wl_push(word_list *w, size_t len)
{
    if (w->failed) return;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        size_t *p = realloc(w->len, cap * sizeof *p);
        if (!p) {
            w->failed = 1;
            return;
        }
        w->len = p;
        w->cap = cap;
    }
    w->len[w->n++] = len;
}

/* One fragment [ini, end) being split: reads past its end see no code point (flags 0). */
typedef struct span {
    const uint32_t *cps;
    const uint16_t *fl;
    size_t end;
    size_t prev_end;   /* where the next word starts */
    word_list *out;
} span;

#define OUT_OF_RANGE 0xFFFFFFFFu

static uint32_t cp_at(const span *s, size_t p) { return p < s->end ? s->cps[p] : OUT_OF_RANGE; }
static uint16_t fl_at(const span *s, size_t p) { return p < s->end ? s->fl[p] : 0; }

/* Ends the current word at `end`; returns its length. */
static size_t add_word(span *s, size_t end)
{
    size_t len = end - s->prev_end;
    if (len > 0) wl_push(s->out, len);
    s->prev_end = end;
    return len;
}

static int is_ascii_lower(uint32_t c, char lower)
{
    return c == (uint32_t)lower || c == (uint32_t)(lower - 'a' + 'A');
}

/* 's|'t|'re|'ve|'m|'ll|'d at pos (case-insensitive when `any_case`): the match length or 0. */
static size_t match_contraction(const span *s, size_t pos, int any_case)
{
    if (cp_at(s, pos) != '\'' || pos + 1 >= s->end) return 0;
    uint32_t a = cp_at(s, pos + 1);
    uint32_t b = pos + 2 < s->end ? cp_at(s, pos + 2) : OUT_OF_RANGE;
    if (!any_case) {
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
        return 0;
    }
    if (is_ascii_lower(a, 's') || is_ascii_lower(a, 't') || is_ascii_lower(a, 'm') || is_ascii_lower(a, 'd')) return 2;
    if ((is_ascii_lower(a, 'r') && is_ascii_lower(b, 'e')) || (is_ascii_lower(a, 'v') && is_ascii_lower(b, 'e')) ||
        (is_ascii_lower(a, 'l') && is_ascii_lower(b, 'l')))
        return 3;
    return 0;
}

#define WS HC_UC_WHITESPACE
#define LETTER HC_UC_LETTER
#define NUMBER HC_UC_NUMBER

/* The GPT-2 regex on one span. */
static void split_gpt2(span *s, size_t pos)
{
    while (pos < s->end) {
        uint32_t c = s->cps[pos];
        uint16_t f = s->fl[pos];
        size_t k = match_contraction(s, pos, 0);
        if (k) {
            pos += add_word(s, pos + k);
            continue;
        }
        uint16_t f2 = c == ' ' ? fl_at(s, pos + 1) : f;
        if (f2 & LETTER) {                                     /*  ?\p{L}+ */
            pos += (c == ' ');
            while (fl_at(s, pos) & LETTER) pos++;
            add_word(s, pos);
            continue;
        }
        if (f2 & NUMBER) {                                     /*  ?\p{N}+ */
            pos += (c == ' ');
            while (fl_at(s, pos) & NUMBER) pos++;
            add_word(s, pos);
            continue;
        }
        if (!(f2 & (WS | LETTER | NUMBER)) && f2) {            /*  ?[^\s\p{L}\p{N}]+ */
            pos += (c == ' ');
            for (;;) {
                uint16_t g = fl_at(s, pos);
                if ((g & (WS | LETTER | NUMBER)) || !g) break;
                pos++;
            }
            add_word(s, pos);
            continue;
        }
        size_t n_ws = 0;
        while (fl_at(s, pos + n_ws) & WS) n_ws++;
        if (n_ws > 1 && cp_at(s, pos + n_ws) != OUT_OF_RANGE) { /* \s+(?!\S) */
            pos += n_ws - 1;
            add_word(s, pos);
            continue;
        }
        if (n_ws > 0) {                                        /* \s+ */
            pos += n_ws;
            add_word(s, pos);
            continue;
        }
        add_word(s, ++pos);                                    /* no match: one code point */
    }
}

/* The Llama 3 regex on one span; max_digits 3 (Llama 3) or 1 (Qwen2). */
static void split_llama3(span *s, size_t pos, size_t max_digits)
{
    while (pos < s->end) {
        uint32_t c = s->cps[pos];
        uint16_t f = s->fl[pos];
        size_t k = match_contraction(s, pos, 1);
        if (k) {
            pos += add_word(s, pos + k);
            continue;
        }
        if (!(c == '\r' || c == '\n' || (f & NUMBER)) && ((f & LETTER) || (fl_at(s, pos + 1) & LETTER))) {
            pos++;                                             /* [^\r\n\p{L}\p{N}]?\p{L}+ */
            while (fl_at(s, pos) & LETTER) pos++;
            add_word(s, pos);
            continue;
        }
        if (f & NUMBER) {                                      /* \p{N}{1,max} */
            size_t ini = pos;
            while (fl_at(s, pos) & NUMBER) {
                if (++pos - ini >= max_digits) {
                    add_word(s, pos);
                    ini = pos;
                }
            }
            add_word(s, pos);
            continue;
        }
        uint16_t f2 = c == ' ' ? fl_at(s, pos + 1) : f;
        if (!(f2 & (WS | LETTER | NUMBER)) && f) {             /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
            pos += (c == ' ');
            for (;;) {
                uint16_t g = fl_at(s, pos);
                if ((g & (WS | LETTER | NUMBER)) || !g) break;
                pos++;
            }
            while (cp_at(s, pos) == '\r' || cp_at(s, pos) == '\n') pos++;
            add_word(s, pos);
            continue;
        }
        size_t n_ws = 0, last_rn = 0;
        while (fl_at(s, pos + n_ws) & WS) {
            uint32_t c2 = cp_at(s, pos + n_ws);
            if (c2 == '\r' || c2 == '\n') last_rn = pos + n_ws + 1;
            n_ws++;
        }
        if (last_rn > 0) {                                     /* \s*[\r\n]+ */
            pos = last_rn;
            add_word(s, pos);
            continue;
        }
        if (n_ws > 1 && cp_at(s, pos + n_ws) != OUT_OF_RANGE) { /* \s+(?!\S) */
            pos += n_ws - 1;
            add_word(s, pos);
            continue;
        }
        if (n_ws > 0) {                                        /* \s+ */
            pos += n_ws;
            add_word(s, pos);
            continue;
        }
        add_word(s, ++pos);
    }
}

/* Matches of X+ (chunk 0) or of exactly `chunk` X's in a row (X{chunk}), X being `pred`; the
 * stretches between matches stay words of their own. A run's leftover shorter than `chunk` is no
 * match, so it stays with the stretch that follows it, as with a regex scanning left to right.
 * Covers \p{N}, \p{N}+, [0-9][0-9][0-9] and [\p{P}$+<=>^~|]+. */
typedef int (*cp_pred)(uint32_t c, uint16_t f);

static void split_runs(span *s, size_t pos, cp_pred pred, size_t chunk)
{
    while (pos < s->end) {
        if (!pred(s->cps[pos], s->fl[pos])) {
            pos++;
            continue;
        }
        size_t ini = pos;
        while (pos < s->end && pred(s->cps[pos], s->fl[pos])) pos++;
        if (chunk == 0) {
            add_word(s, ini);                                  /* the stretch before the match */
            add_word(s, pos);
            continue;
        }
        size_t n_full = (pos - ini) / chunk;
        if (n_full == 0) continue;
        add_word(s, ini);
        for (size_t j = 1; j <= n_full; j++) add_word(s, ini + j * chunk);
    }
    add_word(s, s->end);
}

static int pred_number(uint32_t c, uint16_t f) { (void)c; return (f & NUMBER) != 0; }
static int pred_ascii_digit(uint32_t c, uint16_t f) { (void)f; return c >= '0' && c <= '9'; }
static int pred_punct_like(uint32_t c, uint16_t f)
{
    return (f & HC_UC_PUNCTUATION) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
           c == '~' || c == '|';
}

typedef enum pass_kind { PASS_GPT2, PASS_LLAMA3, PASS_QWEN2, PASS_EACH_NUMBER, PASS_NUMBER_RUNS, PASS_DIGITS3,
                         PASS_PUNCT_RUNS } pass_kind;

/* Applies one pass to every word of `in`, appending the new words to `out`. */
static void run_pass(pass_kind kind, const uint32_t *cps, const uint16_t *fl, const word_list *in, word_list *out)
{
    size_t start = 0;
    for (size_t i = 0; i < in->n; i++) {
        span s = { cps, fl, start + in->len[i], start, out };
        switch (kind) {
        case PASS_GPT2: split_gpt2(&s, start); break;
        case PASS_LLAMA3: split_llama3(&s, start, 3); break;
        case PASS_QWEN2: split_llama3(&s, start, 1); break;
        case PASS_EACH_NUMBER: split_runs(&s, start, pred_number, 1); break;
        case PASS_NUMBER_RUNS: split_runs(&s, start, pred_number, 0); break;
        case PASS_DIGITS3: split_runs(&s, start, pred_ascii_digit, 3); break;
        case PASS_PUNCT_RUNS: split_runs(&s, start, pred_punct_like, 0); break;
        }
        start = s.end;
    }
}

hc_status hc_pretokenize(hc_pretok_kind kind, const uint32_t *cps, const uint16_t *flags, size_t n, size_t **lens,
                         size_t *n_words)
{
    static const pass_kind gpt2[] = { PASS_GPT2 };
    static const pass_kind digits_gpt2[] = { PASS_EACH_NUMBER, PASS_GPT2 };
    static const pass_kind llama3[] = { PASS_LLAMA3 };
    static const pass_kind qwen2[] = { PASS_QWEN2 };
    static const pass_kind dflt[] = { PASS_PUNCT_RUNS, PASS_GPT2, PASS_NUMBER_RUNS, PASS_DIGITS3 };
    const pass_kind *passes;
    size_t n_passes;
    switch (kind) {
    case HC_PRETOK_GPT2: passes = gpt2; n_passes = 1; break;
    case HC_PRETOK_DIGITS_GPT2: passes = digits_gpt2; n_passes = 2; break;
    case HC_PRETOK_LLAMA3: passes = llama3; n_passes = 1; break;
    case HC_PRETOK_QWEN2: passes = qwen2; n_passes = 1; break;
    case HC_PRETOK_DEFAULT: passes = dflt; n_passes = 4; break;
    default: return hc_error(HC_E_ARG, "unknown pre-tokenizer kind %d", (int)kind);
    }
    *lens = NULL;
    *n_words = 0;
    word_list cur = { 0 };
    if (n > 0) wl_push(&cur, n);
    for (size_t p = 0; p < n_passes && !cur.failed; p++) {
        word_list next = { 0 };
        run_pass(passes[p], cps, flags, &cur, &next);
        free(cur.len);
        cur = next;
    }
    if (cur.failed) {
        free(cur.len);
        return hc_error(HC_E_NOMEM, "pre-tokenizer: out of memory for the word list");
    }
    *lens = cur.len;
    *n_words = cur.n;
    return HC_OK;
}
