/* pretokenize.h: the pre-tokenizers of byte-level BPE vocabularies: split text (as code points)
 * into the words BPE merges within, following the regex of each `tokenizer.ggml.pre` type. */
#ifndef HC_PRETOKENIZE_H
#define HC_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "hc/hc_status.h"

typedef enum hc_pretok_kind {
    /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    HC_PRETOK_GPT2 = 1,
    /* every \p{N} alone first, then the GPT-2 regex (SmolLM, StarCoder, Command-R ...) */
    HC_PRETOK_DIGITS_GPT2,
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
     * \s*[\r\n]+|\s+(?!\S)|\s+ (Llama 3) */
    HC_PRETOK_LLAMA3,
    /* as LLAMA3 but \p{N} one at a time (Qwen2) */
    HC_PRETOK_QWEN2,
    /* llama.cpp's fallback for a BPE vocabulary without a known type: runs of
     * [\p{P}$+<=>^~|], then GPT-2, then runs of \p{N}, then [0-9]{3} */
    HC_PRETOK_DEFAULT
} hc_pretok_kind;

typedef struct hc_pretok_info {
    hc_pretok_kind kind;
    int ignore_merges;   /* a word that is a whole token is taken as is (Llama 3) */
    int add_bos;         /* llama.cpp's default add_bos for this type (the GGUF flag overrides) */
} hc_pretok_info;

/* The pre-tokenizer of a tokenizer.ggml.pre name (NULL or "" is "default"); 0 when unknown. */
int hc_pretok_from_name(const char *name, hc_pretok_info *out);
/* The names accepted, for messages. */
const char *hc_pretok_known_names(void);

/* Splits cps[0..n) into words: on success *lens (malloc'd, the caller frees) holds *n_words word
 * lengths in code points, summing to n. `flags` are hc_unicode_flags of each code point. */
hc_status hc_pretokenize(hc_pretok_kind kind, const uint32_t *cps, const uint16_t *flags, size_t n,
                         size_t **lens, size_t *n_words);

#endif
