/* tokenizer.c: the tokenizer's API: tokenize() (special tokens split out, then the SPM or GPT-2
 * encoder), token -> piece, and the accessors. Vocabularies are built by tok_vocab.c and tok_load.c. */
#define _GNU_SOURCE /* memmem */
#include "tokenizer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

/* ---- tokenize ---- */

typedef struct fragment {
    size_t off, len;
    int32_t token;      /* >= 0: a special token; -1: text [off, off + len) */
} fragment;

typedef struct frag_list {
    fragment *v;
    size_t n, cap;
} frag_list;

static int frag_push(frag_list *l, fragment f)
{
    if (hc_tok_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v) != 0) return -1;
    l->v[l->n++] = f;
    return 0;
}

/* Splits the text at the special tokens' texts, longest token first (llama.cpp's
 * tokenizer_st_partition): user-defined tokens always, control and unknown ones with parse_special. */
static hc_status partition(const hc_tokenizer *t, const char *text, size_t len, int parse_special, frag_list *out)
{
    frag_list cur = { 0 }, next = { 0 };
    *out = cur;
    if (len == 0) return HC_OK;
    if (frag_push(&cur, (fragment){ 0, len, -1 }) != 0) goto oom;
    for (int k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        const hc_tok_entry *e = &t->tok[id];
        if (!parse_special && (e->attr & (HC_TA_CONTROL | HC_TA_UNKNOWN))) continue;
        const char *s = t->text + e->off;
        if (!memmem(text, len, s, e->len)) continue;
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            fragment f = cur.v[i];
            if (f.token >= 0) {
                if (frag_push(&next, f) != 0) goto oom;
                continue;
            }
            size_t base = f.off, rem = f.len;
            while (rem > 0) {
                const char *m = memmem(text + base, rem, s, e->len);
                if (!m) {
                    if (frag_push(&next, (fragment){ base, rem, -1 }) != 0) goto oom;
                    break;
                }
                size_t at = (size_t)(m - text);
                if (at > base && frag_push(&next, (fragment){ base, at - base, -1 }) != 0) goto oom;
                if (frag_push(&next, (fragment){ 0, 0, id }) != 0) goto oom;
                rem -= at - base + e->len;
                base = at + e->len;
            }
        }
        frag_list tmp = cur;
        cur = next;
        next = tmp;
    }
    free(next.v);
    *out = cur;
    return HC_OK;
oom:
    free(cur.v);
    free(next.v);
    return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
}

hc_status hc_tokenize(const hc_tokenizer *t, const char *text, size_t len, int add_special, int parse_special,
                      int32_t **ids, int *n_ids)
{
    if (!t || !ids || !n_ids || (!text && len > 0)) return hc_error(HC_E_ARG, "hc_tokenize: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (len > (size_t)INT_MAX / 8) return hc_error(HC_E_ARG, "hc_tokenize: text of %zu bytes is too long", len);
    hc_idvec out = { 0 };
    hc_tok_work w = { 0 };
    frag_list frags = { 0 };
    hc_status st;
    if (add_special && t->add_bos && t->bos >= 0) hc_idvec_push(&out, t->bos);
    if ((st = partition(t, text, len, parse_special, &frags)) != HC_OK) goto done;
    int prev_special = 1;   /* SPM: a space is prefixed to text at the start and after a special token */
    for (size_t i = 0; i < frags.n && st == HC_OK; i++) {
        const fragment *f = &frags.v[i];
        if (f->token >= 0) {
            hc_idvec_push(&out, f->token);
            prev_special = 1;
            continue;
        }
        if (t->kind == HC_TOK_SPM) st = hc_spm_encode(t, text + f->off, f->len, t->add_space_prefix && prev_special, &w, &out);
        else st = hc_gpt2_encode(t, text + f->off, f->len, &w, &out);
        prev_special = 0;
    }
    if (st == HC_OK && add_special && t->add_eos && t->eos >= 0) hc_idvec_push(&out, t->eos);
    if (st == HC_OK && out.failed) st = hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    if (st == HC_OK && out.n > (size_t)INT_MAX) st = hc_error(HC_E_ARG, "hc_tokenize: too many tokens");
    if (st == HC_OK && !out.v && !(out.v = malloc(sizeof *out.v))) st = hc_error(HC_E_NOMEM, "tokenizer: out of memory");
done:
    free(frags.v);
    hc_tok_work_free(&w);
    if (st != HC_OK) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = (int)out.n;
    return HC_OK;
}

/* ---- decoding ---- */

static size_t put(char *buf, size_t cap, size_t at, const char *s, size_t n)
{
    for (size_t i = 0; i < n && at < cap; i++) buf[at++] = s[i];
    return at;
}

int hc_token_to_piece(const hc_tokenizer *t, int32_t id, int render_special, char *buf, size_t cap)
{
    if (!t || id < 0 || id >= t->n_vocab) return -1;
    if (!buf) cap = 0;
    const hc_tok_entry *e = &t->tok[id];
    const char *s = t->text + e->off;
    size_t at = 0;
    if (e->attr & (HC_TA_CONTROL | HC_TA_UNKNOWN)) {
        if (render_special) at = put(buf, cap, 0, s, e->len);
        return (int)at;
    }
    if (e->attr & HC_TA_USER_DEFINED) return (int)put(buf, cap, 0, s, e->len);
    if (e->attr & HC_TA_BYTE) {
        int b = hc_tok_byte_of_text(s, e->len);
        if (b < 0) return (int)put(buf, cap, 0, s, e->len);
        char c = (char)b;
        return (int)put(buf, cap, 0, &c, 1);
    }
    if (!(e->attr & HC_TA_NORMAL)) return 0;   /* unused and undefined tokens render as nothing */
    if (t->kind == HC_TOK_SPM) {
        for (size_t i = 0; i < e->len;) {
            if (i + 3 <= e->len && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                at = put(buf, cap, at, " ", 1);
                i += 3;
            } else {
                at = put(buf, cap, at, s + i, 1);
                i++;
            }
        }
        return (int)at;
    }
    /* GPT-2: each code point back to its byte; a code point outside the map is copied as it is */
    for (size_t i = 0; i < e->len;) {
        size_t used;
        uint32_t cp = hc_utf8_decode(s + i, e->len - i, &used);
        int b = hc_gpt2_cp_to_byte(cp);
        if (b >= 0) {
            char c = (char)b;
            at = put(buf, cap, at, &c, 1);
        } else {
            at = put(buf, cap, at, s + i, used);
        }
        i += used;
    }
    return (int)at;
}

/* ---- accessors ---- */

int hc_tokenizer_n_vocab(const hc_tokenizer *t) { return t ? t->n_vocab : 0; }
hc_tokenizer_kind hc_tokenizer_kind_of(const hc_tokenizer *t) { return t ? t->kind : HC_TOK_SPM; }
int32_t hc_tokenizer_bos(const hc_tokenizer *t) { return t ? t->bos : -1; }
int32_t hc_tokenizer_eos(const hc_tokenizer *t) { return t ? t->eos : -1; }

int hc_tokenizer_is_eog(const hc_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    return (t->tok[id].attr & HC_TA_EOG) != 0;
}

const char *hc_tokenizer_text(const hc_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return t->text + t->tok[id].off;
}

float hc_tokenizer_score(const hc_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab) return 0.0f;
    return t->tok[id].score;
}

int hc_tokenizer_token_type(const hc_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    return t->tok[id].type;
}

int32_t hc_tokenizer_find(const hc_tokenizer *t, const char *text)
{
    if (!t || !text) return -1;
    return hc_tok_lookup(t, text, strlen(text));
}
