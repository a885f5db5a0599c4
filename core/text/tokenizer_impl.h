/* tokenizer_impl.h: the inside of hc_tokenizer, shared by tok_*.c (tables, vocabulary, loading, special
 * tokens, decoding) and the two encoders, tokenizer_spm.c and tokenizer_gpt2.c. Not a public header. */
#ifndef HC_TOKENIZER_IMPL_H
#define HC_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "pretokenize.h"
#include "tokenizer.h"

/* Token attributes (bits), from tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control,
 * 4 user-defined, 5 unused, 6 byte; anything else is "undefined" (0). */
enum {
    HC_TA_UNKNOWN = 1 << 0,
    HC_TA_UNUSED = 1 << 1,
    HC_TA_NORMAL = 1 << 2,
    HC_TA_CONTROL = 1 << 3,
    HC_TA_USER_DEFINED = 1 << 4,
    HC_TA_BYTE = 1 << 5,
    HC_TA_EOG = 1 << 8          /* ends generation (not a token type: derived) */
};

typedef struct hc_tok_entry {
    size_t off;         /* text in hc_tokenizer.text, NUL-terminated */
    uint32_t len;
    float score;
    uint16_t attr;
    uint8_t type;       /* tokenizer.ggml.token_type as the file gives it (llama2.c: derived) */
} hc_tok_entry;

/* Open-addressing hash table: slots hold (32-bit hash, index + 1); 0 marks an empty slot. */
typedef struct hc_tok_slot {
    uint32_t hash;
    uint32_t val;
} hc_tok_slot;

typedef struct hc_tok_map {
    hc_tok_slot *slots;
    uint32_t mask;      /* capacity - 1, capacity a power of two */
} hc_tok_map;

/* (left id, right id) -> what merging them gives, so the merge loops compare integers instead of
 * hashing strings. SPM: every pair of tokens whose joined text is a token; GPT-2: every merge whose
 * two sides are tokens. */
typedef struct hc_pair_slot {
    uint64_t key;       /* (left << 32 | right) + 1; 0 marks an empty slot */
    int32_t rank;       /* GPT-2: merge rank; SPM: unused */
    int32_t result;     /* the merged token, -1 when the joined text is no token */
} hc_pair_slot;

typedef struct hc_pair_map {
    hc_pair_slot *slots;
    uint64_t mask;
} hc_pair_map;

struct hc_tokenizer {
    hc_tokenizer_kind kind;
    int llama2c;                /* llama2.c file: characters split as its run.c does, and one
                                   missing from the vocabulary never merges (its texts are
                                   stored with "▁" like any SPM vocabulary) */
    int n_vocab;
    char *text;                 /* every token's text, NUL-terminated, back to back */
    hc_tok_entry *tok;
    hc_tok_map vocab;           /* text -> id */

    /* GPT-2 merges "left right", rank = index */
    int n_merges;
    char *merge_text;
    size_t *merge_off;
    uint32_t *merge_len;        /* whole "left right" length */
    uint32_t *merge_split;      /* length of left */
    hc_tok_map merges;          /* hash of "left right" -> rank */
    hc_pair_map pairs;          /* token pair -> merge (both kinds); without it (slots NULL) the
                                   encoders fall back to the plain string lookups */
    int32_t byte_char_token[256]; /* GPT-2: the token of each byte's code point, -1 when none */
    hc_pretok_info pre;

    int32_t bos, eos, unk, pad, eot, eom;   /* -1 when none */
    int add_bos, add_eos, add_space_prefix;

    int32_t *special;           /* control, user-defined and unknown tokens, longest text first */
    int n_special;
    int32_t byte_token[256];    /* SPM byte fallback: <0xXX> (or the byte itself), -1 when none */
    int spm_cut_at_space;       /* SPM: no token has a space mark right after another character,
                                   so merges never cross the start of a space after a non-space */
};

/* ---- hash tables (tok_maps.c) ---- */

/* The id of a token text, or -1. */
int32_t hc_tok_lookup(const hc_tokenizer *t, const char *s, size_t n);
/* The text hash the vocabulary table uses, built a byte at a time: h = hc_tok_hash_byte(h, c) from
 * HC_TOK_HASH_INIT over the bytes, then hc_tok_hash_fold(h) is what hc_tok_lookup_hashed takes. */
#define HC_TOK_HASH_INIT 0xcbf29ce484222325ull
static inline uint64_t hc_tok_hash_byte(uint64_t h, uint8_t c) { return (h ^ c) * 0x100000001b3ull; }
static inline uint32_t hc_tok_hash_fold(uint64_t h) { return (uint32_t)(h ^ (h >> 32)); }
/* hc_tok_lookup with the folded hash of s[0..n) already known. */
int32_t hc_tok_lookup_hashed(const hc_tokenizer *t, const char *s, size_t n, uint32_t h);
/* The rank of merging left and right, or -1. */
int hc_tok_merge_rank(const hc_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn);
/* The pair table entry of two token ids, or NULL. */
const hc_pair_slot *hc_tok_pair(const hc_tokenizer *t, int32_t left, int32_t right);
/* Sizes a table for n_keys (at most half full); 0 on success, -1 when out of memory. */
int hc_tok_map_alloc(hc_tok_map *m, size_t n_keys);
int hc_tok_pair_map_alloc(hc_pair_map *m, size_t n_keys);
/* Inserts token id into the text -> id table, merge k into the merge table, a pair into the pair
 * table (the first insertion of a key wins). */
void hc_tok_vocab_insert(hc_tokenizer *t, int32_t id);
void hc_tok_merge_insert(hc_tokenizer *t, uint32_t k);
void hc_tok_pair_insert(hc_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t result);

/* ---- building a vocabulary (tok_vocab.c) ---- */

/* A tokenizer of n_vocab empty tokens with room for text_bytes of token text, or NULL. */
hc_tokenizer *hc_tok_new(hc_tokenizer_kind kind, int n_vocab, size_t text_bytes);
/* Sets token i (its text is copied at *text_off, which advances). */
void hc_tok_vocab_set(hc_tokenizer *t, int i, const char *s, size_t len, float score, int32_t type, size_t *text_off);
/* Once every token is set: the lookup tables, byte tokens, special tokens and pair tables. */
hc_status hc_tok_vocab_finish(hc_tokenizer *t);
/* The byte of a byte token's text "<0xXX>", or -1. */
int hc_tok_byte_of_text(const char *s, size_t n);

/* A growing list of token ids; `failed` is set when memory ran out. */
typedef struct hc_idvec {
    int32_t *v;
    size_t n, cap;
    int failed;
} hc_idvec;

void hc_idvec_push(hc_idvec *ids, int32_t id);

/* Symbols of a word being merged: a doubly linked list over the word's bytes. */
typedef struct hc_tok_sym {
    int prev, next;     /* -1 at the ends */
    uint32_t off, n;    /* bytes in the work buffer; n == 0 once merged into its left neighbour */
    int32_t id;         /* the token of the symbol's text, -1 when none */
    int frozen;         /* never merges (llama2.c: a character missing from the vocabulary) */
} hc_tok_sym;

/* A candidate merge of a symbol with its right neighbour. The heap pops the smallest key first:
 * the high 32 bits order by merge (SPM: higher score first, GPT-2: lower rank first), the low 32
 * bits are the left symbol's index, so ties go to the leftmost pair. */
typedef struct hc_bigram {
    uint64_t key;
    uint32_t size;      /* left.n + right.n when queued: a different sum now means stale */
    int32_t result;     /* the merged token, -1 when unknown (looked up on merging) */
} hc_bigram;

/* Heap keys: SPM by descending score, GPT-2 by ascending rank. */
uint64_t hc_bigram_key_score(float score, int left);
uint64_t hc_bigram_key_rank(int rank, int left);

/* Buffers reused across the fragments and words of one hc_tokenize call. */
typedef struct hc_tok_work {
    char *buf;
    size_t buf_cap;
    hc_tok_sym *sym;
    size_t sym_cap;
    hc_bigram *heap;
    size_t heap_n, heap_cap;
    uint32_t *cps;
    uint16_t *flags;
    size_t cp_cap;
} hc_tok_work;

/* ---- BPE merging (tok_bpe.c) ---- */

/* Grows *p to hold need elements of elem bytes (doubling); 0 on success, -1 when out of memory. */
int hc_tok_grow(void **p, size_t *cap, size_t need, size_t elem);
void hc_tok_work_free(hc_tok_work *w);
/* Grow the buffers; 0 on success, -1 when out of memory. */
int hc_tok_work_reserve_buf(hc_tok_work *w, size_t n);
int hc_tok_work_reserve_sym(hc_tok_work *w, size_t n);
int hc_tok_work_reserve_cps(hc_tok_work *w, size_t n);
int hc_bigram_push(hc_tok_work *w, hc_bigram b);
hc_bigram hc_bigram_pop(hc_tok_work *w);

/* Merges the symbols sym[0..n) (already linked) by repeatedly applying the cheapest queued
 * bigram; `add` queues the bigram of two adjacent symbols when one exists. */
typedef void (*hc_bigram_add_fn)(const hc_tokenizer *t, hc_tok_work *w, int left, int right, int *oom);
int hc_tok_merge_symbols(const hc_tokenizer *t, hc_tok_work *w, size_t n, hc_bigram_add_fn add);
/* The pair table of a finished vocabulary (SPM: every split of a token into two tokens; GPT-2:
 * every merge whose sides are tokens), and GPT-2's byte tokens. */
hc_status hc_tok_build_pairs(hc_tokenizer *t);
/* SPM: 1 when every space mark inside a token follows another one (words may be cut at spaces). */
int hc_tok_spm_space_marks_lead(const hc_tokenizer *t);

/* ---- the encoders: text without special tokens -> ids appended to out ---- */

/* SentencePiece BPE: optional leading space, spaces as U+2581, highest-score merges, byte
 * fallback. Returns HC_OK or HC_E_NOMEM. */
hc_status hc_spm_encode(const hc_tokenizer *t, const char *text, size_t len, int add_space_prefix,
                        hc_tok_work *w, hc_idvec *out);
/* Byte-level BPE: pre-tokenizer words, bytes mapped to code points, lowest-rank merges. */
hc_status hc_gpt2_encode(const hc_tokenizer *t, const char *text, size_t len, hc_tok_work *w, hc_idvec *out);

#endif
