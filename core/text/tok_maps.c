/* tok_maps.c: the hash tables of a vocabulary: token text -> id, merge (left, right) -> rank, and
 * token pair (left id, right id) -> what merging them gives; open addressing, power-of-two sizes. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

/* ---- hashing ---- */

#define FNV_INIT HC_TOK_HASH_INIT

static uint64_t fnv1a(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) h = hc_tok_hash_byte(h, (uint8_t)s[i]);
    return h;
}

static uint32_t fold(uint64_t h) { return hc_tok_hash_fold(h); }

int hc_tok_map_alloc(hc_tok_map *m, size_t n_keys)
{
    size_t cap = 16;
    while (cap < n_keys * 2) cap *= 2;
    if (cap > (size_t)UINT32_MAX) return -1;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) return -1;
    m->mask = (uint32_t)(cap - 1);
    return 0;
}

int32_t hc_tok_lookup(const hc_tokenizer *t, const char *s, size_t n)
{
    return hc_tok_lookup_hashed(t, s, n, fold(fnv1a(s, n, FNV_INIT)));
}

int32_t hc_tok_lookup_hashed(const hc_tokenizer *t, const char *s, size_t n, uint32_t h)
{
    if (!t->vocab.slots) return -1;
    for (uint32_t i = h & t->vocab.mask;; i = (i + 1) & t->vocab.mask) {
        const hc_tok_slot *sl = &t->vocab.slots[i];
        if (!sl->val) return -1;
        if (sl->hash == h) {
            const hc_tok_entry *e = &t->tok[sl->val - 1];
            if (e->len == n && memcmp(t->text + e->off, s, n) == 0) return (int32_t)(sl->val - 1);
        }
    }
}

/* Adds id under its text unless the text is already there (the first id keeps it). */
void hc_tok_vocab_insert(hc_tokenizer *t, int32_t id)
{
    const hc_tok_entry *e = &t->tok[id];
    const char *s = t->text + e->off;
    uint32_t h = fold(fnv1a(s, e->len, FNV_INIT));
    for (uint32_t i = h & t->vocab.mask;; i = (i + 1) & t->vocab.mask) {
        hc_tok_slot *sl = &t->vocab.slots[i];
        if (!sl->val) {
            sl->hash = h;
            sl->val = (uint32_t)id + 1;
            return;
        }
        if (sl->hash == h) {
            const hc_tok_entry *o = &t->tok[sl->val - 1];
            if (o->len == e->len && memcmp(t->text + o->off, s, e->len) == 0) return;
        }
    }
}

static uint32_t merge_hash(const char *l, size_t ln, const char *r, size_t rn)
{
    return fold(fnv1a(r, rn, fnv1a(" ", 1, fnv1a(l, ln, FNV_INIT))));
}

int hc_tok_merge_rank(const hc_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn)
{
    if (!t->merges.slots) return -1;
    uint32_t h = merge_hash(l, ln, r, rn);
    for (uint32_t i = h & t->merges.mask;; i = (i + 1) & t->merges.mask) {
        const hc_tok_slot *sl = &t->merges.slots[i];
        if (!sl->val) return -1;
        if (sl->hash == h) {
            uint32_t k = sl->val - 1;
            const char *m = t->merge_text + t->merge_off[k];
            if (t->merge_split[k] == ln && t->merge_len[k] == ln + 1 + rn && memcmp(m, l, ln) == 0 &&
                memcmp(m + ln + 1, r, rn) == 0)
                return (int)k;
        }
    }
}

void hc_tok_merge_insert(hc_tokenizer *t, uint32_t k)
{
    const char *m = t->merge_text + t->merge_off[k];
    size_t ln = t->merge_split[k], rn = t->merge_len[k] - ln - 1;
    uint32_t h = merge_hash(m, ln, m + ln + 1, rn);
    for (uint32_t i = h & t->merges.mask;; i = (i + 1) & t->merges.mask) {
        hc_tok_slot *sl = &t->merges.slots[i];
        if (!sl->val) {
            sl->hash = h;
            sl->val = k + 1;
            return;
        }
        if (sl->hash == h) {   /* the same pair again: the lower rank stays */
            uint32_t o = sl->val - 1;
            if (t->merge_len[o] == t->merge_len[k] && t->merge_split[o] == ln &&
                memcmp(t->merge_text + t->merge_off[o], m, t->merge_len[k]) == 0)
                return;
        }
    }
}

/* ---- token pairs ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t pair_key(int32_t l, int32_t r) { return (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1; }

const hc_pair_slot *hc_tok_pair(const hc_tokenizer *t, int32_t left, int32_t right)
{
    if (!t->pairs.slots) return NULL;
    uint64_t key = pair_key(left, right);
    for (uint64_t i = mix64(key) & t->pairs.mask;; i = (i + 1) & t->pairs.mask) {
        const hc_pair_slot *sl = &t->pairs.slots[i];
        if (sl->key == key) return sl;
        if (!sl->key) return NULL;
    }
}

/* Adds a pair unless present (the first one, i.e. the lowest rank, stays). */
void hc_tok_pair_insert(hc_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t result)
{
    uint64_t key = pair_key(left, right);
    for (uint64_t i = mix64(key) & t->pairs.mask;; i = (i + 1) & t->pairs.mask) {
        hc_pair_slot *sl = &t->pairs.slots[i];
        if (sl->key == key) return;
        if (!sl->key) {
            sl->key = key;
            sl->rank = rank;
            sl->result = result;
            return;
        }
    }
}

int hc_tok_pair_map_alloc(hc_pair_map *m, size_t n_keys)
{
    size_t cap = 16;
    while (cap < n_keys * 2) cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) return -1;
    m->mask = cap - 1;
    return 0;
}
