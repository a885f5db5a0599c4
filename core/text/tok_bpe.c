/* tok_bpe.c: what both BPE encoders share: id lists, work buffers, the bigram heap, the merge loop,
 * and the pair tables they merge by (SPM: every split of a token; GPT-2: every merge). */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

/* ---- id lists, work buffers, the bigram heap and the merge loop ---- */

void hc_idvec_push(hc_idvec *ids, int32_t id)
{
    if (ids->failed) return;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *p = realloc(ids->v, cap * sizeof *p);
        if (!p) {
            ids->failed = 1;
            return;
        }
        ids->v = p;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
}

void hc_tok_work_free(hc_tok_work *w)
{
    free(w->buf);
    free(w->sym);
    free(w->heap);
    free(w->cps);
    free(w->flags);
    memset(w, 0, sizeof *w);
}

int hc_tok_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

int hc_tok_work_reserve_buf(hc_tok_work *w, size_t n) { return hc_tok_grow((void **)&w->buf, &w->buf_cap, n, 1); }
int hc_tok_work_reserve_sym(hc_tok_work *w, size_t n) { return hc_tok_grow((void **)&w->sym, &w->sym_cap, n, sizeof *w->sym); }

int hc_tok_work_reserve_cps(hc_tok_work *w, size_t n)
{
    if (n <= w->cp_cap) return 0;
    size_t cap = w->cp_cap;
    if (hc_tok_grow((void **)&w->cps, &cap, n, sizeof *w->cps) != 0) return -1;
    uint16_t *f = realloc(w->flags, cap * sizeof *f);
    if (!f) return -1;
    w->flags = f;
    w->cp_cap = cap;
    return 0;
}

uint64_t hc_bigram_key_score(float score, int left)
{
    /* order-preserving map of the float to uint32, then reversed: the best score is smallest */
    if (score == 0.0f) score = 0.0f;   /* -0 ties with +0, as a float comparison has it */
    uint32_t u;
    memcpy(&u, &score, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t)~u << 32) | (uint32_t)left;
}

uint64_t hc_bigram_key_rank(int rank, int left) { return ((uint64_t)(uint32_t)rank << 32) | (uint32_t)left; }

/* A 4-ary min-heap on key: shallower than a binary one for the long words that need it. */
int hc_bigram_push(hc_tok_work *w, hc_bigram b)
{
    if (hc_tok_grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof *w->heap) != 0) return -1;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (w->heap[parent].key <= b.key) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = b;
    return 0;
}

hc_bigram hc_bigram_pop(hc_tok_work *w)
{
    /* Floyd's way: walk the hole down along the smallest children to a leaf, then let the last
       element (usually a large key) rise from there: fewer comparisons than a plain sift-down */
    hc_bigram *h = w->heap;
    hc_bigram top = h[0];
    size_t n = --w->heap_n, i = 0;
    if (n == 0) return top;
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= n) break;
        size_t best = c, end = c + 4 < n ? c + 4 : n;
        for (size_t k = c + 1; k < end; k++)
            if (h[k].key < h[best].key) best = k;
        h[i] = h[best];
        i = best;
    }
    hc_bigram last = h[n];
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (h[parent].key <= last.key) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = last;
    return top;
}

int hc_tok_merge_symbols(const hc_tokenizer *t, hc_tok_work *w, size_t n, hc_bigram_add_fn add)
{
    int oom = 0;
    w->heap_n = 0;
    for (size_t i = 1; i < n; i++) add(t, w, (int)i - 1, (int)i, &oom);
    while (w->heap_n > 0 && !oom) {
        hc_bigram b = hc_bigram_pop(w);
        int left = (int)(uint32_t)b.key;
        hc_tok_sym *l = &w->sym[left];
        if (l->n == 0 || l->next < 0) continue;                 /* merged away, or now last */
        hc_tok_sym *r = &w->sym[l->next];
        if (l->n + r->n != b.size) continue;                     /* one side changed: stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (l->next >= 0) w->sym[l->next].prev = left;
        l->id = b.result >= 0 ? b.result : hc_tok_lookup(t, w->buf + l->off, l->n);
        add(t, w, l->prev, left, &oom);
        add(t, w, left, l->next, &oom);
    }
    return oom ? -1 : 0;
}

/* SPM: whether every space mark "▁" inside a token follows another one. */
int hc_tok_spm_space_marks_lead(const hc_tokenizer *t)
{
    const char *mark = "\xE2\x96\x81";
    const size_t ml = 3;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const hc_tok_entry *e = &t->tok[id];
        const char *s = t->text + e->off;
        for (size_t k = 1; k + ml <= e->len; k++)
            if (memcmp(s + k, mark, ml) == 0 && (k < ml || memcmp(s + k - ml, mark, ml) != 0)) return 0;
    }
    return 1;
}

/* The vocabulary by the hash of each token's text read backwards (the first id of a text wins, as
 * in t->vocab), so that a token's suffixes can be hashed a byte at a time from its end. */
static void rev_insert(const hc_tokenizer *t, hc_tok_map *m, int32_t id)
{
    const hc_tok_entry *e = &t->tok[id];
    const char *s = t->text + e->off;
    uint64_t h = HC_TOK_HASH_INIT;
    for (uint32_t i = e->len; i-- > 0;) h = hc_tok_hash_byte(h, (uint8_t)s[i]);
    uint32_t f = hc_tok_hash_fold(h);
    for (uint32_t i = f & m->mask;; i = (i + 1) & m->mask) {
        hc_tok_slot *sl = &m->slots[i];
        if (!sl->val) {
            sl->hash = f;
            sl->val = (uint32_t)id + 1;
            return;
        }
        const hc_tok_entry *o = &t->tok[sl->val - 1];
        if (sl->hash == f && o->len == e->len && memcmp(t->text + o->off, s, e->len) == 0) return;
    }
}

/* The id of s[0..n), whose backwards hash (folded) is f, or -1. */
static int32_t rev_lookup(const hc_tokenizer *t, const hc_tok_map *m, const char *s, size_t n, uint32_t f)
{
    for (uint32_t i = f & m->mask;; i = (i + 1) & m->mask) {
        const hc_tok_slot *sl = &m->slots[i];
        if (!sl->val) return -1;
        const hc_tok_entry *e = &t->tok[sl->val - 1];
        if (sl->hash == f && e->len == n && memcmp(t->text + e->off, s, n) == 0) return (int32_t)(sl->val - 1);
    }
}

/* SPM: every split of a token's text into two tokens. A token's prefixes are hashed forwards a byte
 * at a time, its suffixes backwards, and a suffix is looked up only where the prefix before it is a
 * token: O(n) hashing for a token of n bytes plus a comparison per prefix or suffix that is a token
 * (hashing each prefix and suffix anew was O(n^2): a 256 KB token took 145 s to load). */
static hc_status spm_build_pairs(hc_tokenizer *t)
{
    uint32_t longest = 1;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].len > longest) longest = t->tok[id].len;
    hc_tok_map rev = { 0 };
    int32_t *prefix = malloc((size_t)longest * sizeof *prefix); /* prefix[k]: the token s[0..k), or -1 */
    if (!prefix || hc_tok_map_alloc(&rev, (size_t)t->n_vocab) != 0) {
        free(prefix);
        return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    }
    for (int32_t id = 0; id < t->n_vocab; id++) rev_insert(t, &rev, id);
    hc_status st = HC_OK;
    size_t n_pairs = 0;
    for (int pass = 0; pass < 2 && st == HC_OK; pass++) {
        for (int32_t id = 0; id < t->n_vocab; id++) {
            const hc_tok_entry *e = &t->tok[id];
            const char *s = t->text + e->off;
            uint32_t n = e->len;
            int any = 0;
            uint64_t h = HC_TOK_HASH_INIT;
            for (uint32_t k = 1; k < n; k++) {
                h = hc_tok_hash_byte(h, (uint8_t)s[k - 1]);
                prefix[k] = hc_tok_lookup_hashed(t, s, k, hc_tok_hash_fold(h));
                any |= prefix[k] >= 0;
            }
            if (!any) continue;
            int32_t whole = pass == 1 ? hc_tok_lookup(t, s, n) : -1;
            h = HC_TOK_HASH_INIT;
            for (uint32_t k = n - 1; k >= 1; k--) {
                h = hc_tok_hash_byte(h, (uint8_t)s[k]);
                if (prefix[k] < 0) continue;
                int32_t b = rev_lookup(t, &rev, s + k, n - k, hc_tok_hash_fold(h));
                if (b < 0) continue;
                if (pass == 0) n_pairs++;
                else hc_tok_pair_insert(t, prefix[k], b, 0, whole);
            }
        }
        if (pass == 0 && hc_tok_pair_map_alloc(&t->pairs, n_pairs) != 0) st = hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    }
    free(rev.slots);
    free(prefix);
    return st;
}

/* GPT-2: every merge whose two sides are tokens, with the token it makes. */
static hc_status gpt2_build_pairs(hc_tokenizer *t)
{
    if (hc_tok_pair_map_alloc(&t->pairs, (size_t)t->n_merges) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    char *joined = NULL;
    size_t cap = 0;
    for (int k = 0; k < t->n_merges; k++) {
        if (t->merge_split[k] == UINT32_MAX) continue;
        const char *m = t->merge_text + t->merge_off[k];
        size_t ln = t->merge_split[k], rn = t->merge_len[k] - ln - 1;
        int32_t a = hc_tok_lookup(t, m, ln), b = hc_tok_lookup(t, m + ln + 1, rn);
        if (a < 0 || b < 0) continue;
        if (hc_tok_grow((void **)&joined, &cap, ln + rn, 1) != 0) {
            free(joined);
            return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
        }
        memcpy(joined, m, ln);
        memcpy(joined + ln, m + ln + 1, rn);
        hc_tok_pair_insert(t, a, b, k, hc_tok_lookup(t, joined, ln + rn));
    }
    free(joined);
    for (int b = 0; b < 256; b++) {
        char u[4];
        int k = hc_utf8_encode(hc_gpt2_byte_to_cp((uint8_t)b), u);
        t->byte_char_token[b] = hc_tok_lookup(t, u, (size_t)k);
    }
    return HC_OK;
}

hc_status hc_tok_build_pairs(hc_tokenizer *t)
{
    return t->kind == HC_TOK_SPM ? spm_build_pairs(t) : gpt2_build_pairs(t);
}
