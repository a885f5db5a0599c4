/* tokenizer_gpt2.c: GPT-2 byte-level BPE as llama.cpp does it: pre-tokenizer words, each byte of a
 * word mapped to a printable code point, then the adjacent pair with the lowest merge rank merged first. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

static void bpe_add_bigram(const hc_tokenizer *t, hc_tok_work *w, int left, int right, int *oom)
{
    if (left < 0 || right < 0) return;
    const hc_tok_sym *l = &w->sym[left], *r = &w->sym[right];
    int rank;
    int32_t result = -1;
    if (l->id >= 0 && r->id >= 0 && t->pairs.slots) {   /* fast path; the strings say the same */
        const hc_pair_slot *p = hc_tok_pair(t, l->id, r->id);
        if (!p) return;
        rank = p->rank;
        result = p->result;
    } else {   /* a symbol that is no token: only the merge strings can tell */
        rank = hc_tok_merge_rank(t, w->buf + l->off, l->n, w->buf + r->off, r->n);
        if (rank < 0) return;
    }
    hc_bigram b = { hc_bigram_key_rank(rank, left), l->n + r->n, result };
    if (hc_bigram_push(w, b) != 0) *oom = 1;
}

/* Sets up the symbols of the word cps[0..n): one per byte of its UTF-8, the byte written as the
 * UTF-8 of its GPT-2 code point into w->buf. Returns the symbol count, or -1 (out of memory). */
static long word_symbols(const hc_tokenizer *t, hc_tok_work *w, const uint32_t *cps, size_t n, size_t *len)
{
    if (hc_tok_work_reserve_buf(w, n * 8) != 0 || hc_tok_work_reserve_sym(w, n * 4) != 0) return -1;
    size_t at = 0, n_sym = 0;
    for (size_t i = 0; i < n; i++) {
        char u[4];
        int k = hc_utf8_encode(cps[i], u);
        for (int j = 0; j < k; j++) {
            uint8_t byte = (uint8_t)u[j];
            hc_tok_sym *s = &w->sym[n_sym];
            s->off = (uint32_t)at;
            s->n = (uint32_t)hc_utf8_encode(hc_gpt2_byte_to_cp(byte), w->buf + at);
            at += s->n;
            s->prev = (int)n_sym - 1;
            s->next = (int)n_sym + 1;
            s->id = t->byte_char_token[byte];
            s->frozen = 0;
            n_sym++;
        }
    }
    w->sym[n_sym - 1].next = -1;
    *len = at;
    return (long)n_sym;
}

/* BPE over one word, appending its tokens. Returns 0, or -1 (out of memory). */
static int bpe_word(const hc_tokenizer *t, hc_tok_work *w, const uint32_t *cps, size_t n_cps, hc_idvec *out)
{
    size_t len;
    long n_sym = word_symbols(t, w, cps, n_cps, &len);
    if (n_sym < 0) return -1;
    if (t->pre.ignore_merges) {
        int32_t id = hc_tok_lookup(t, w->buf, len);
        if (id >= 0) {
            hc_idvec_push(out, id);
            return out->failed ? -1 : 0;
        }
    }
    if (hc_tok_merge_symbols(t, w, (size_t)n_sym, bpe_add_bigram) != 0) return -1;
    for (int i = 0; i != -1; i = w->sym[i].next) {
        const hc_tok_sym *s = &w->sym[i];
        if (s->id >= 0) {
            hc_idvec_push(out, s->id);
            continue;
        }
        /* as llama.cpp: each byte of an unknown symbol as a one-byte token, when there is one */
        for (size_t j = 0; j < s->n; j++) {
            int32_t b = hc_tok_lookup(t, w->buf + s->off + j, 1);
            if (b >= 0) hc_idvec_push(out, b);
        }
    }
    return out->failed ? -1 : 0;
}

hc_status hc_gpt2_encode(const hc_tokenizer *t, const char *text, size_t len, hc_tok_work *w, hc_idvec *out)
{
    if (len == 0) return HC_OK;
    /* code points (malformed bytes become U+FFFD, as in llama.cpp) and their classes */
    if (hc_tok_work_reserve_cps(w, len) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        size_t used;
        uint32_t cp = hc_utf8_decode(text + off, len - off, &used);
        w->cps[n] = cp;
        w->flags[n] = hc_unicode_flags(cp);
        n++;
        off += used;
    }
    size_t *lens = NULL, n_words = 0;
    hc_status st = hc_pretokenize(t->pre.kind, w->cps, w->flags, n, &lens, &n_words);
    if (st != HC_OK) return st;
    size_t start = 0;
    for (size_t i = 0; i < n_words; i++) {
        int r = bpe_word(t, w, w->cps + start, lens[i], out);
        start += lens[i];
        if (r != 0) {
            free(lens);
            return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
        }
    }
    free(lens);
    return HC_OK;
}
