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

/* What finding a token's inner tokens needs: the tables, and per token (by id) the longest proper
 * prefix and suffix that are tokens (-1: none), known for every token shorter than the current. */
typedef struct pair_build {
    const hc_tokenizer *t;
    hc_tok_map rev;
    int32_t *lp, *ls;
    int32_t *prefix;            /* the current token's prefix of each length as a token, or -1 */
} pair_build;

/* The token s[0..k) (hash f), given that the longest token s[0..kn), kn < k, is `known` (-1 and 0:
 * none). A token of that hash and length is that text exactly when its own longest proper prefix
 * token is `known` and its bytes kn..k match: bytes before kn are never compared again, so the
 * comparisons of one token cost O(its length) however many of its prefixes are tokens. */
static int32_t prefix_token(const pair_build *b, const char *s, uint32_t k, uint32_t f, int32_t known, uint32_t kn)
{
    const hc_tokenizer *t = b->t;
    const hc_tok_map *m = &t->vocab;
    for (uint32_t i = f & m->mask;; i = (i + 1) & m->mask) {
        const hc_tok_slot *sl = &m->slots[i];
        if (!sl->val) return -1;
        int32_t c = (int32_t)sl->val - 1;
        const hc_tok_entry *e = &t->tok[c];
        if (sl->hash == f && e->len == k && b->lp[c] == known && memcmp(t->text + e->off + kn, s + kn, k - kn) == 0) return c;
    }
}

/* The same for the suffix s[n-k..n) (backwards hash f), the longest shorter suffix token `known`
 * of length kn: the candidate's first k - kn bytes are compared. */
static int32_t suffix_token(const pair_build *b, const char *s, uint32_t n, uint32_t k, uint32_t f, int32_t known, uint32_t kn)
{
    const hc_tokenizer *t = b->t;
    const hc_tok_map *m = &b->rev;
    for (uint32_t i = f & m->mask;; i = (i + 1) & m->mask) {
        const hc_tok_slot *sl = &m->slots[i];
        if (!sl->val) return -1;
        int32_t c = (int32_t)sl->val - 1;
        const hc_tok_entry *e = &t->tok[c];
        if (sl->hash == f && e->len == k && b->ls[c] == known && memcmp(t->text + e->off, s + n - k, k - kn) == 0) return c;
    }
}

/* Token id's splits into two tokens: counted into *n_pairs, or inserted when insert is set. Fills
 * lp[id] and ls[id]. */
static void token_splits(pair_build *b, int32_t id, int insert, size_t *n_pairs)
{
    hc_tokenizer *t = (hc_tokenizer *)b->t;
    const hc_tok_entry *e = &t->tok[id];
    const char *s = t->text + e->off;
    uint32_t n = e->len, kn = 0;
    int32_t known = -1;
    uint64_t h = HC_TOK_HASH_INIT;
    for (uint32_t k = 1; k < n; k++) {
        h = hc_tok_hash_byte(h, (uint8_t)s[k - 1]);
        int32_t c = prefix_token(b, s, k, hc_tok_hash_fold(h), known, kn);
        b->prefix[k] = c;
        if (c >= 0) {
            known = c;
            kn = k;
        }
    }
    b->lp[id] = known;
    int32_t whole = known >= 0 && insert ? hc_tok_lookup(t, s, n) : -1;
    known = -1;
    kn = 0;
    h = HC_TOK_HASH_INIT;
    for (uint32_t k = 1; k < n; k++) { /* the suffix of k bytes, after the prefix of n - k */
        h = hc_tok_hash_byte(h, (uint8_t)s[n - k]);
        int32_t c = suffix_token(b, s, n, k, hc_tok_hash_fold(h), known, kn);
        if (c < 0) continue;
        if (b->prefix[n - k] >= 0) {
            if (insert) hc_tok_pair_insert(t, b->prefix[n - k], c, 0, whole);
            else (*n_pairs)++;
        }
        known = c;
        kn = k;
    }
    b->ls[id] = known;
}

/* Keys length << 32 | id: sorted, the ids shortest first (ties by id). */
static int by_key(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

/* SPM: every split of a token's text into two tokens. Tokens are taken shortest first; a token's
 * prefixes are hashed forwards a byte at a time and its suffixes backwards (against a table of the
 * texts' backwards hashes), and a candidate is confirmed from where the last confirmed one ended
 * (prefix_token): O(n) for a token of n bytes, whatever the vocabulary. Hashing each prefix and
 * suffix anew was O(n^2) per token (a 256 KB token took 145 s to load), and confirming each by a
 * full comparison O(n^2) for a token whose every prefix is a token (a, aa, ..., a^4000: 12 s). */
static hc_status spm_build_pairs(hc_tokenizer *t)
{
    uint32_t longest = 1;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].len > longest) longest = t->tok[id].len;
    size_t nv = t->n_vocab > 0 ? (size_t)t->n_vocab : 1;
    pair_build b = { .t = t };
    uint64_t *order = malloc(nv * sizeof *order);
    b.lp = malloc(nv * sizeof *b.lp);
    b.ls = malloc(nv * sizeof *b.ls);
    b.prefix = malloc((size_t)longest * sizeof *b.prefix);
    hc_status st = HC_OK;
    if (!order || !b.lp || !b.ls || !b.prefix || hc_tok_map_alloc(&b.rev, (size_t)t->n_vocab) != 0)
        st = hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    if (st == HC_OK) {
        for (int32_t id = 0; id < t->n_vocab; id++) {
            rev_insert(t, &b.rev, id);
            order[id] = (uint64_t)t->tok[id].len << 32 | (uint32_t)id;
            b.lp[id] = b.ls[id] = -1;
        }
        qsort(order, (size_t)t->n_vocab, sizeof *order, by_key);
        size_t n_pairs = 0;
        for (int32_t i = 0; i < t->n_vocab; i++) token_splits(&b, (int32_t)(uint32_t)order[i], 0, &n_pairs);
        if (hc_tok_pair_map_alloc(&t->pairs, n_pairs) != 0) st = hc_error(HC_E_NOMEM, "tokenizer: out of memory");
        for (int32_t i = 0; st == HC_OK && i < t->n_vocab; i++) token_splits(&b, (int32_t)(uint32_t)order[i], 1, &n_pairs);
    }
    free(b.rev.slots);
    free(order);
    free(b.lp);
    free(b.ls);
    free(b.prefix);
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
