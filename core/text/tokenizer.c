/* tokenizer.c: the vocabulary (texts, scores, types, text -> id and merge hash tables), loading it
 * from GGUF keys or a llama2.c tokenizer file, special tokens, tokenize() and token -> piece. */
#define _GNU_SOURCE /* memmem */
#include "tokenizer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

/* ---- hashing ---- */

#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t fnv1a(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint32_t fold(uint64_t h) { return (uint32_t)(h ^ (h >> 32)); }

static int map_alloc(hc_tok_map *m, size_t n_keys)
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
    if (!t->vocab.slots) return -1;
    uint32_t h = fold(fnv1a(s, n, FNV_INIT));
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
static void vocab_map_insert(hc_tokenizer *t, int32_t id)
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

static void merge_map_insert(hc_tokenizer *t, uint32_t k)
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

static int grow(void **p, size_t *cap, size_t need, size_t elem)
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

int hc_tok_work_reserve_buf(hc_tok_work *w, size_t n) { return grow((void **)&w->buf, &w->buf_cap, n, 1); }
int hc_tok_work_reserve_sym(hc_tok_work *w, size_t n) { return grow((void **)&w->sym, &w->sym_cap, n, sizeof *w->sym); }

int hc_tok_work_reserve_cps(hc_tok_work *w, size_t n)
{
    if (n <= w->cp_cap) return 0;
    size_t cap = w->cp_cap;
    if (grow((void **)&w->cps, &cap, n, sizeof *w->cps) != 0) return -1;
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
    if (grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof *w->heap) != 0) return -1;
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
static void pair_insert(hc_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t result)
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

static int pair_map_alloc(hc_pair_map *m, size_t n_keys)
{
    size_t cap = 16;
    while (cap < n_keys * 2) cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) return -1;
    m->mask = cap - 1;
    return 0;
}

/* SPM: whether every space mark "▁" inside a token follows another one. */
static int spm_space_marks_lead(const hc_tokenizer *t)
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

/* SPM: every split of a token's text into two tokens. */
static hc_status spm_build_pairs(hc_tokenizer *t)
{
    size_t n_pairs = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t id = 0; id < t->n_vocab; id++) {
            const hc_tok_entry *e = &t->tok[id];
            const char *s = t->text + e->off;
            for (uint32_t k = 1; k < e->len; k++) {
                int32_t a = hc_tok_lookup(t, s, k);
                if (a < 0) continue;
                int32_t b = hc_tok_lookup(t, s + k, e->len - k);
                if (b < 0) continue;
                if (pass == 0) n_pairs++;
                else pair_insert(t, a, b, 0, hc_tok_lookup(t, s, e->len));
            }
        }
        if (pass == 0 && pair_map_alloc(&t->pairs, n_pairs) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    }
    return HC_OK;
}

/* GPT-2: every merge whose two sides are tokens, with the token it makes. */
static hc_status gpt2_build_pairs(hc_tokenizer *t)
{
    if (pair_map_alloc(&t->pairs, (size_t)t->n_merges) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    char *joined = NULL;
    size_t cap = 0;
    for (int k = 0; k < t->n_merges; k++) {
        if (t->merge_split[k] == UINT32_MAX) continue;
        const char *m = t->merge_text + t->merge_off[k];
        size_t ln = t->merge_split[k], rn = t->merge_len[k] - ln - 1;
        int32_t a = hc_tok_lookup(t, m, ln), b = hc_tok_lookup(t, m + ln + 1, rn);
        if (a < 0 || b < 0) continue;
        if (grow((void **)&joined, &cap, ln + rn, 1) != 0) {
            free(joined);
            return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
        }
        memcpy(joined, m, ln);
        memcpy(joined + ln, m + ln + 1, rn);
        pair_insert(t, a, b, k, hc_tok_lookup(t, joined, ln + rn));
    }
    free(joined);
    for (int b = 0; b < 256; b++) {
        char u[4];
        int k = hc_utf8_encode(hc_gpt2_byte_to_cp((uint8_t)b), u);
        t->byte_char_token[b] = hc_tok_lookup(t, u, (size_t)k);
    }
    return HC_OK;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a byte token's text "<0xXX>", or -1. */
static int byte_of_text(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* ---- building a vocabulary ---- */

static hc_tokenizer *tokenizer_new(hc_tokenizer_kind kind, int n_vocab, size_t text_bytes)
{
    hc_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->bos = t->eos = t->unk = t->pad = t->eot = t->eom = -1;
    t->tok = calloc((size_t)n_vocab, sizeof *t->tok);
    t->text = malloc(text_bytes ? text_bytes : 1);
    if (!t->tok || !t->text) {
        hc_tokenizer_free(t);
        return NULL;
    }
    return t;
}

static uint16_t attr_of_type(int32_t type)
{
    switch (type) {
    case 1: return HC_TA_NORMAL;
    case 2: return HC_TA_UNKNOWN;
    case 3: return HC_TA_CONTROL;
    case 4: return HC_TA_USER_DEFINED;
    case 5: return HC_TA_UNUSED;
    case 6: return HC_TA_BYTE;
    default: return 0;
    }
}

/* Copies token i's text at *text_off (advanced past its NUL). */
static void vocab_set(hc_tokenizer *t, int i, const char *s, size_t len, float score, int32_t type, size_t *text_off)
{
    hc_tok_entry *e = &t->tok[i];
    e->off = *text_off;
    e->len = (uint32_t)len;
    e->score = score;
    e->type = type >= 0 && type <= 255 ? (uint8_t)type : 0;
    e->attr = attr_of_type(type);
    if (len) memcpy(t->text + e->off, s, len);
    t->text[e->off + len] = '\0';
    *text_off += len + 1;
}

/* Texts that mark a token as ending generation (llama.cpp's list, in the order EOT is chosen). */
static const char *const k_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "<end_of_utterance>", "<|eom_id|>", "</s>",
};
#define N_EOT_TEXTS 9   /* the first ones can be the EOT token; "<|eom_id|>" and "</s>" only end generation */

typedef struct special_key {
    uint32_t len;
    int32_t id;
} special_key;

static int special_key_cmp(const void *a, const void *b)
{
    const special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;   /* longest first */
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Hash tables, byte fallback, EOT/EOG detection and the special-token list, once ids are set. */
static hc_status vocab_finish(hc_tokenizer *t)
{
    if (map_alloc(&t->vocab, (size_t)t->n_vocab) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i].len > 0) vocab_map_insert(t, i);

    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = hc_tok_lookup(t, hex, 6);
        if (id < 0) {
            char c = (char)b;
            id = hc_tok_lookup(t, &c, 1);
        }
        t->byte_token[b] = id;
    }

    hc_status st = t->kind == HC_TOK_SPM ? spm_build_pairs(t) : gpt2_build_pairs(t);
    if (st != HC_OK) return st;
    if (t->kind == HC_TOK_SPM) t->spm_cut_at_space = spm_space_marks_lead(t);

    /* EOT by text when the file names none; such tokens become control tokens, as in llama.cpp */
    if (t->eot < 0) {
        for (int k = 0; k < N_EOT_TEXTS && t->eot < 0; k++) {
            int32_t id = hc_tok_lookup(t, k_eog_texts[k], strlen(k_eog_texts[k]));
            if (id >= 0) t->eot = id;
        }
        if (t->eot >= 0) t->tok[t->eot].attr |= HC_TA_CONTROL;
    }
    for (size_t k = 0; k < sizeof k_eog_texts / sizeof k_eog_texts[0]; k++) {
        int32_t id = hc_tok_lookup(t, k_eog_texts[k], strlen(k_eog_texts[k]));
        if (id >= 0) t->tok[id].attr |= HC_TA_EOG | HC_TA_CONTROL;
    }
    if (t->eos >= 0) t->tok[t->eos].attr |= HC_TA_EOG;
    if (t->eot >= 0) t->tok[t->eot].attr |= HC_TA_EOG;
    if (t->eom >= 0) t->tok[t->eom].attr |= HC_TA_EOG;

    int n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if ((t->tok[i].attr & (HC_TA_CONTROL | HC_TA_USER_DEFINED | HC_TA_UNKNOWN)) && t->tok[i].len > 0) n++;
    special_key *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    t->special = malloc((size_t)(n ? n : 1) * sizeof *t->special);
    if (!keys || !t->special) {
        free(keys);
        return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    }
    n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if ((t->tok[i].attr & (HC_TA_CONTROL | HC_TA_USER_DEFINED | HC_TA_UNKNOWN)) && t->tok[i].len > 0)
            keys[n++] = (special_key){ t->tok[i].len, i };
    qsort(keys, (size_t)n, sizeof *keys, special_key_cmp);
    for (int i = 0; i < n; i++) t->special[i] = keys[i].id;
    t->n_special = n;
    free(keys);
    return HC_OK;
}

void hc_tokenizer_free(hc_tokenizer *t)
{
    if (!t) return;
    free(t->text);
    free(t->tok);
    free(t->vocab.slots);
    free(t->merge_text);
    free(t->merge_off);
    free(t->merge_len);
    free(t->merge_split);
    free(t->merges.slots);
    free(t->pairs.slots);
    free(t->special);
    free(t);
}

/* ---- GGUF ---- */

/* Array elements may sit unaligned in the mapped file: read them with memcpy. */
static int32_t arr_i32(const void *arr, uint64_t i)
{
    int32_t v;
    memcpy(&v, (const char *)arr + i * 4, 4);
    return v;
}

static float arr_f32(const void *arr, uint64_t i)
{
    float v;
    memcpy(&v, (const char *)arr + i * 4, 4);
    return v;
}

/* An optional array of int32 or float32 with at least n elements; *arr NULL when absent. */
static hc_status optional_arr(const hc_gguf *g, const char *key, int allow_f32, uint64_t n, const void **arr,
                              int *is_f32)
{
    *arr = NULL;
    *is_f32 = 0;
    const hc_gguf_kv *kv = hc_gguf_find(g, key);
    if (!kv) return HC_OK;
    if (kv->type != HC_GGUF_ARRAY ||
        !(kv->arr_type == HC_GGUF_INT32 || (allow_f32 && kv->arr_type == HC_GGUF_FLOAT32)))
        return hc_error(HC_E_FORMAT, "%s: key '%s' should be an array of %s", g->path, key,
                        allow_f32 ? "float32 or int32" : "int32");
    if (kv->arr_n < n)
        return hc_error(HC_E_FORMAT, "%s: key '%s' has %llu entries for %llu tokens", g->path, key,
                        (unsigned long long)kv->arr_n, (unsigned long long)n);
    *arr = kv->arr;
    *is_f32 = kv->arr_type == HC_GGUF_FLOAT32;
    return HC_OK;
}

/* A token id key: absent leaves *id; an id outside the vocabulary is ignored (as llama.cpp does). */
static hc_status id_key(const hc_gguf *g, const char *key, int n_vocab, int32_t *id)
{
    if (!hc_gguf_find(g, key)) return HC_OK;
    uint32_t v;
    hc_status st = hc_gguf_get_u32(g, key, &v);
    if (st != HC_OK) return st;
    if (v < (uint32_t)n_vocab) *id = (int32_t)v;
    return HC_OK;
}

static hc_status bool_key(const hc_gguf *g, const char *key, int *flag)
{
    if (!hc_gguf_find(g, key)) return HC_OK;
    return hc_gguf_get_bool(g, key, flag);
}

static hc_status load_merges(hc_tokenizer *t, const hc_gguf *g)
{
    const void *data;
    uint64_t n;
    hc_status st = hc_gguf_get_arr(g, "tokenizer.ggml.merges", HC_GGUF_STRING, &data, &n);
    if (st != HC_OK) return st;
    if (n > (uint64_t)INT_MAX - 1) return hc_error(HC_E_FORMAT, "%s: too many merges (%llu)", g->path, (unsigned long long)n);
    const hc_gguf_str *m = data;
    size_t bytes = 1;
    for (uint64_t i = 0; i < n; i++) {
        if (m[i].len > UINT32_MAX - 2) return hc_error(HC_E_FORMAT, "%s: merge %llu is too long", g->path, (unsigned long long)i);
        bytes += m[i].len + 1;
    }
    t->merge_text = malloc(bytes);
    t->merge_off = malloc((size_t)(n ? n : 1) * sizeof *t->merge_off);
    t->merge_len = malloc((size_t)(n ? n : 1) * sizeof *t->merge_len);
    t->merge_split = malloc((size_t)(n ? n : 1) * sizeof *t->merge_split);
    if (!t->merge_text || !t->merge_off || !t->merge_len || !t->merge_split || map_alloc(&t->merges, (size_t)n) != 0)
        return hc_error(HC_E_NOMEM, "tokenizer: out of memory for %llu merges", (unsigned long long)n);
    size_t off = 0;
    for (uint32_t k = 0; k < (uint32_t)n; k++) {
        /* "left right", split at the first space after the first byte (as llama.cpp); the rank is
           the index in the file. An entry without a space is kept (so ranks stay) but never matches. */
        const char *s = m[k].data;
        const char *sp = m[k].len > 1 ? memchr(s + 1, ' ', m[k].len - 1) : NULL;
        t->merge_off[k] = off;
        t->merge_len[k] = (uint32_t)m[k].len;
        t->merge_split[k] = sp ? (uint32_t)(sp - s) : UINT32_MAX;
        memcpy(t->merge_text + off, s, m[k].len);
        t->merge_text[off + m[k].len] = '\0';
        off += m[k].len + 1;
        if (sp) merge_map_insert(t, k);
    }
    t->n_merges = (int)n;
    return HC_OK;
}

hc_status hc_tokenizer_from_gguf(const hc_gguf *g, hc_tokenizer **out)
{
    if (!g || !out) return hc_error(HC_E_ARG, "hc_tokenizer_from_gguf: NULL argument");
    *out = NULL;
    const char *model;
    hc_status st = hc_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (st != HC_OK) return st;
    hc_tokenizer_kind kind;
    if (strcmp(model, "llama") == 0) kind = HC_TOK_SPM;
    else if (strcmp(model, "gpt2") == 0) kind = HC_TOK_GPT2;
    else
        return hc_error(HC_E_UNSUPPORTED,
                        "%s: tokenizer.ggml.model '%s' is not supported (only 'llama' = SentencePiece BPE and "
                        "'gpt2' = byte-level BPE)", g->path, model);

    hc_pretok_info pre = { HC_PRETOK_DEFAULT, 0, 0 };
    if (kind == HC_TOK_GPT2) {
        const char *pre_name = NULL;
        if (hc_gguf_find(g, "tokenizer.ggml.pre") && (st = hc_gguf_get_str(g, "tokenizer.ggml.pre", &pre_name)) != HC_OK)
            return st;
        if (!hc_pretok_from_name(pre_name, &pre))
            return hc_error(HC_E_UNSUPPORTED, "%s: pre-tokenizer tokenizer.ggml.pre = '%s' is not supported (known: %s)",
                            g->path, pre_name, hc_pretok_known_names());
    }

    const void *tok_data;
    uint64_t n;
    if ((st = hc_gguf_get_arr(g, "tokenizer.ggml.tokens", HC_GGUF_STRING, &tok_data, &n)) != HC_OK) return st;
    if (n == 0 || n > (uint64_t)INT_MAX - 1)
        return hc_error(HC_E_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", g->path, (unsigned long long)n);
    const hc_gguf_str *toks = tok_data;
    const void *scores, *types;
    int scores_f32, types_f32;
    if ((st = optional_arr(g, "tokenizer.ggml.scores", 1, n, &scores, &scores_f32)) != HC_OK) return st;
    if ((st = optional_arr(g, "tokenizer.ggml.token_type", 0, n, &types, &types_f32)) != HC_OK) return st;

    size_t text_bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (toks[i].len > UINT32_MAX - 1)
            return hc_error(HC_E_FORMAT, "%s: token %llu is too long", g->path, (unsigned long long)i);
        text_bytes += toks[i].len + 1;
    }
    hc_tokenizer *t = tokenizer_new(kind, (int)n, text_bytes);
    if (!t) return hc_error(HC_E_NOMEM, "tokenizer: out of memory for %llu tokens", (unsigned long long)n);
    size_t text_off = 0;
    for (uint64_t i = 0; i < n; i++) {
        float score = 0.0f;
        if (scores) score = scores_f32 ? arr_f32(scores, i) : (float)arr_i32(scores, i);
        int32_t type = types ? arr_i32(types, i) : 1;   /* without types every token is normal */
        vocab_set(t, (int)i, toks[i].data, toks[i].len, score, type, &text_off);
    }
    t->pre = pre;

    /* llama.cpp's defaults per kind, then the file's keys */
    if (kind == HC_TOK_SPM) {
        t->bos = n > 1 ? 1 : -1;
        t->eos = n > 2 ? 2 : -1;
        t->unk = 0;
        t->add_space_prefix = 1;
        t->add_bos = 1;
    } else {
        t->add_bos = pre.add_bos;
    }
    int nv = (int)n;
    if ((st = id_key(g, "tokenizer.ggml.bos_token_id", nv, &t->bos)) != HC_OK ||
        (st = id_key(g, "tokenizer.ggml.eos_token_id", nv, &t->eos)) != HC_OK ||
        (st = id_key(g, "tokenizer.ggml.unknown_token_id", nv, &t->unk)) != HC_OK ||
        (st = id_key(g, "tokenizer.ggml.padding_token_id", nv, &t->pad)) != HC_OK ||
        (st = id_key(g, "tokenizer.ggml.eot_token_id", nv, &t->eot)) != HC_OK ||
        (st = id_key(g, "tokenizer.ggml.eom_token_id", nv, &t->eom)) != HC_OK ||
        (st = bool_key(g, "tokenizer.ggml.add_bos_token", &t->add_bos)) != HC_OK ||
        (st = bool_key(g, "tokenizer.ggml.add_eos_token", &t->add_eos)) != HC_OK ||
        (st = bool_key(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix)) != HC_OK)
        goto fail;
    if (t->add_bos && t->bos < 0) {
        st = hc_error(HC_E_FORMAT, "%s: tokenizer.ggml.add_bos_token is true but there is no valid tokenizer.ggml.bos_token_id",
                      g->path);
        goto fail;
    }
    if (t->add_eos && t->eos < 0) {
        st = hc_error(HC_E_FORMAT, "%s: tokenizer.ggml.add_eos_token is true but there is no valid tokenizer.ggml.eos_token_id",
                      g->path);
        goto fail;
    }
    if (kind == HC_TOK_GPT2 && (st = load_merges(t, g)) != HC_OK) goto fail;
    if ((st = vocab_finish(t)) != HC_OK) goto fail;
    *out = t;
    return HC_OK;
fail:
    hc_tokenizer_free(t);
    return st;
}

/* ---- llama2.c tokenizer file ---- */

/* Reads a whole (small) file; *size its length. */
static hc_status read_file(const char *path, char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return hc_error(HC_E_IO, "%s: cannot open the tokenizer file", path);
    hc_status st = HC_OK;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) st = hc_error(HC_E_IO, "%s: cannot find the file size", path);
    else if (!(buf = malloc((size_t)n + 1))) st = hc_error(HC_E_NOMEM, "%s: out of memory for %ld bytes", path, n);
    else if (fread(buf, 1, (size_t)n, f) != (size_t)n) st = hc_error(HC_E_IO, "%s: read error", path);
    fclose(f);
    if (st != HC_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    *size = (size_t)n;
    return HC_OK;
}

static int32_t get_i32(const char *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

hc_status hc_tokenizer_load_llama2c(const char *path, int vocab_size, hc_tokenizer **out)
{
    if (!path || !out) return hc_error(HC_E_ARG, "hc_tokenizer_load_llama2c: NULL argument");
    *out = NULL;
    if (vocab_size < 3) return hc_error(HC_E_ARG, "%s: vocabulary size %d is too small (BOS is 1, EOS 2)", path, vocab_size);
    char *data = NULL, *piece = NULL;
    size_t size = 0;
    hc_status st = read_file(path, &data, &size);
    if (st != HC_OK) return st;
    hc_tokenizer *t = NULL;
    /* first pass: check the layout (int32 max_token_length, then per token float, int32, bytes)
       and size the texts, whose spaces become "▁" (3 bytes) */
    size_t pos = 4, text_bytes = 0, max_len = 0;
    if (size < 4 || get_i32(data) < 0) {
        st = hc_error(HC_E_FORMAT, "%s: truncated or bad header (max_token_length)", path);
        goto done;
    }
    for (int i = 0; i < vocab_size; i++) {
        if (size - pos < 8) {
            st = hc_error(HC_E_FORMAT, "%s: truncated at token %d of %d", path, i, vocab_size);
            goto done;
        }
        int32_t len = get_i32(data + pos + 4);
        if (len < 0 || (size_t)len > size - pos - 8) {
            st = hc_error(HC_E_FORMAT, "%s: token %d has a length of %d bytes, past the end of the file", path, i, (int)len);
            goto done;
        }
        pos += 8 + (size_t)len;
        text_bytes += 3 * (size_t)len + 1;
        if ((size_t)len > max_len) max_len = (size_t)len;
    }
    if (!(t = tokenizer_new(HC_TOK_SPM, vocab_size, text_bytes)) || !(piece = malloc(3 * max_len + 1))) {
        st = hc_error(HC_E_NOMEM, "%s: out of memory for %d tokens", path, vocab_size);
        goto done;
    }
    pos = 4;
    size_t text_off = 0;
    for (int i = 0; i < vocab_size; i++) {
        float score;
        memcpy(&score, data + pos, 4);
        size_t len = (size_t)get_i32(data + pos + 4);
        const char *s = data + pos + 8;
        pos += 8 + len;
        int32_t type = 1;   /* GGUF token types: 1 normal, 2 unknown, 3 control, 6 byte */
        if (i == 0) {
            type = 2;
        } else if (i == 1 || i == 2) {
            type = 3;
            /* the exporter writes BOS/EOS as "\n<s>\n" and "\n</s>\n": keep the bare token text */
            if (len >= 2 && s[0] == '\n' && s[len - 1] == '\n') {
                s++;
                len -= 2;
            }
        } else if (byte_of_text(s, len) >= 0) {
            type = 6;
        }
        /* the exporter turned SentencePiece's "▁" into ' ': turn it back, so that the vocabulary
           is an ordinary SPM one (and reads the same once written to a GGUF) */
        size_t n = 0;
        for (size_t k = 0; k < len; k++) {
            if (s[k] == ' ') {
                memcpy(piece + n, "\xE2\x96\x81", 3);
                n += 3;
            } else {
                piece[n++] = s[k];
            }
        }
        vocab_set(t, i, piece, n, score, type, &text_off);
    }
    t->llama2c = 1;
    t->bos = 1;
    t->eos = 2;
    t->unk = 0;
    t->add_bos = 1;
    t->add_space_prefix = 1;
    st = vocab_finish(t);
done:
    free(data);
    free(piece);
    if (st != HC_OK) {
        hc_tokenizer_free(t);
        return st;
    }
    *out = t;
    return HC_OK;
}

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
    if (grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v) != 0) return -1;
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
        int b = byte_of_text(s, e->len);
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
