/* tokenizer_spm.c: SentencePiece-style BPE as llama.cpp's SPM tokenizer (and llama2.c's run.c)
 * do it: characters as symbols, the adjacent pair forming the best-scoring token merged first. */
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

#define SPM_SPACE "\xE2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */

/* Queues the merge of two adjacent symbols when their joined text is a token. */
static void spm_add_bigram(const hc_tokenizer *t, hc_tok_work *w, int left, int right, int *oom)
{
    if (left < 0 || right < 0) return;
    const hc_tok_sym *l = &w->sym[left], *r = &w->sym[right];
    if (l->frozen || r->frozen) return;
    int32_t id;
    if (l->id >= 0 && r->id >= 0 && t->pairs.slots) {   /* fast path; the strings say the same */
        const hc_pair_slot *p = hc_tok_pair(t, l->id, r->id);
        id = p ? p->result : -1;
    } else {
        id = hc_tok_lookup(t, w->buf + l->off, (size_t)l->n + r->n);
    }
    if (id < 0) return;
    hc_bigram b = { hc_bigram_key_score(t->tok[id].score, left), l->n + r->n, id };
    if (hc_bigram_push(w, b) != 0) *oom = 1;
}

/* Length of the character at s[0..n): llama.cpp takes it from the first byte; llama2.c's run.c
 * takes a byte and the continuation bytes after it, up to 4 bytes. */
static size_t spm_char_len(const hc_tokenizer *t, const char *s, size_t n)
{
    size_t k;
    if (t->llama2c) {
        k = 1;
        while (k < n && k < 4 && ((uint8_t)s[k] & 0xC0) == 0x80) k++;
    } else {
        k = hc_utf8_len((uint8_t)s[0]);
        if (k > n) k = n;
    }
    return k;
}

/* Merges the symbols sym[0..n) of one segment and appends their tokens; a symbol that is no
 * token falls back to its bytes. Returns 0, or -1 (out of memory). */
static int spm_segment(const hc_tokenizer *t, hc_tok_work *w, size_t n, hc_idvec *out)
{
    if (n == 0) return 0;
    w->sym[n - 1].next = -1;
    if (hc_tok_merge_symbols(t, w, n, spm_add_bigram) != 0) return -1;
    for (int i = 0; i != -1; i = w->sym[i].next) {
        const hc_tok_sym *s = &w->sym[i];
        if (s->id >= 0) {
            hc_idvec_push(out, s->id);
            continue;
        }
        for (size_t j = 0; j < s->n; j++) {
            int32_t b = t->byte_token[(uint8_t)w->buf[s->off + j]];
            if (b < 0) b = t->unk;
            if (b >= 0) hc_idvec_push(out, b);
        }
    }
    return out->failed ? -1 : 0;
}

hc_status hc_spm_encode(const hc_tokenizer *t, const char *text, size_t len, int add_space_prefix,
                        hc_tok_work *w, hc_idvec *out)
{
    /* the text to merge: " " + text when asked, spaces escaped as U+2581 */
    size_t total = len + (add_space_prefix ? 1 : 0);
    if (total == 0) return HC_OK;
    if (hc_tok_work_reserve_buf(w, total * 3) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < total; i++) {
        char c = (add_space_prefix && i == 0) ? ' ' : text[i - (add_space_prefix ? 1 : 0)];
        if (c == ' ') {
            memcpy(w->buf + n, SPM_SPACE, 3);
            n += 3;
        } else {
            w->buf[n++] = c;
        }
    }

    /* one symbol per character; where no token can span a space mark's start (the vocabulary
       has none with a mark after another character), the segments merge independently: same
       result, far smaller queues */
    const char *mark = SPM_SPACE;
    const size_t mark_len = 3;
    if (hc_tok_work_reserve_sym(w, n) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    size_t n_sym = 0;
    for (size_t off = 0; off < n;) {
        if (n_sym > 0 && t->spm_cut_at_space && off >= mark_len && n - off >= mark_len &&
            memcmp(w->buf + off, mark, mark_len) == 0 && memcmp(w->buf + off - mark_len, mark, mark_len) != 0) {
            if (spm_segment(t, w, n_sym, out) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
            n_sym = 0;
        }
        size_t k = spm_char_len(t, w->buf + off, n - off);
        hc_tok_sym *s = &w->sym[n_sym];
        s->off = (uint32_t)off;
        s->n = (uint32_t)k;
        s->prev = (int)n_sym - 1;
        s->next = (int)n_sym + 1;
        s->id = hc_tok_lookup(t, w->buf + off, k);
        s->frozen = t->llama2c && s->id < 0;
        n_sym++;
        off += k;
    }
    if (spm_segment(t, w, n_sym, out) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    return out->failed ? hc_error(HC_E_NOMEM, "tokenizer: out of memory") : HC_OK;
}
