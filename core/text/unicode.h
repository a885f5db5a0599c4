/* unicode.h: what the tokenizers need of Unicode: UTF-8 decoding and encoding (invalid bytes
 * handled as llama.cpp does), code point classes (\p{L}, \p{N}, White_Space ...) and GPT-2's byte map. */
#ifndef HC_UNICODE_H
#define HC_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Class flags of a code point: exactly one general-category group, plus White_Space.
 * The values are the ones scripts/gen_unicode_tables.py writes into unicode_tables.c. */
enum {
    HC_UC_UNASSIGNED = 0x001,   /* Cn */
    HC_UC_NUMBER = 0x002,       /* \p{N} */
    HC_UC_LETTER = 0x004,       /* \p{L} */
    HC_UC_SEPARATOR = 0x008,    /* \p{Z} */
    HC_UC_MARK = 0x010,         /* \p{M} */
    HC_UC_PUNCTUATION = 0x020,  /* \p{P} */
    HC_UC_SYMBOL = 0x040,       /* \p{S} */
    HC_UC_CONTROL = 0x080,      /* \p{C} except Cn */
    HC_UC_WHITESPACE = 0x100    /* White_Space (what \s matches) */
};

typedef struct hc_unicode_range {
    uint32_t first;     /* the run lasts until the next range's first */
    uint16_t flags;
} hc_unicode_range;

/* Generated tables (unicode_tables.c). */
extern const char hc_unicode_version[];
extern const uint16_t hc_unicode_latin1_flags[256];
extern const hc_unicode_range hc_unicode_ranges[];
extern const size_t hc_unicode_n_ranges;

#define HC_UNICODE_MAX 0x110000u
#define HC_UNICODE_REPLACEMENT 0xFFFDu

/* The flags of a code point; beyond U+10FFFF: HC_UC_UNASSIGNED. */
uint16_t hc_unicode_flags(uint32_t cp);

/* Length of a UTF-8 sequence from its first byte alone (1 for continuation and invalid bytes). */
size_t hc_utf8_len(uint8_t first);

/* Decodes one code point at s[0..n) (n > 0) and sets *used. A malformed or truncated sequence
 * gives U+FFFD and consumes one byte (as llama.cpp's unicode_cpts_from_utf8). */
uint32_t hc_utf8_decode(const char *s, size_t n, size_t *used);

/* Writes the UTF-8 of cp (cp <= U+10FFFF; others become U+FFFD); returns the length (1..4). */
int hc_utf8_encode(uint32_t cp, char out[4]);

/* GPT-2's reversible map of the 256 byte values onto printable code points ("Ġ" for space). */
uint32_t hc_gpt2_byte_to_cp(uint8_t byte);
/* The byte a code point stands for, or -1 when it is not one of the 256 mapped code points. */
int hc_gpt2_cp_to_byte(uint32_t cp);

#endif
