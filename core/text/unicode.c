/* unicode.c: UTF-8 decoding/encoding, code point class lookup in the generated range table, and
 * GPT-2's byte <-> printable code point map, computed arithmetically instead of tabulated. */
#include "unicode.h"

uint16_t hc_unicode_flags(uint32_t cp)
{
    if (cp < 256) return hc_unicode_latin1_flags[cp];
    if (cp >= HC_UNICODE_MAX) return HC_UC_UNASSIGNED;
    /* the last range whose first <= cp */
    size_t lo = 0, hi = hc_unicode_n_ranges;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (hc_unicode_ranges[mid].first <= cp) lo = mid;
        else hi = mid;
    }
    return hc_unicode_ranges[lo].flags;
}

size_t hc_utf8_len(uint8_t first)
{
    static const uint8_t by_high_nibble[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return by_high_nibble[first >> 4];
}

static int is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

uint32_t hc_utf8_decode(const char *str, size_t n, size_t *used)
{
    const uint8_t *s = (const uint8_t *)str;
    uint8_t b0 = s[0];
    *used = 1;
    if (b0 < 0x80) return b0;
    if (b0 < 0xC0) return HC_UNICODE_REPLACEMENT;            /* stray continuation byte */
    if (b0 < 0xE0) {
        if (n < 2 || !is_cont(s[1])) return HC_UNICODE_REPLACEMENT;
        *used = 2;
        return ((uint32_t)(b0 & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (b0 < 0xF0) {
        if (n < 3 || !is_cont(s[1]) || !is_cont(s[2])) return HC_UNICODE_REPLACEMENT;
        *used = 3;
        return ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    if (b0 < 0xF8) {
        if (n < 4 || !is_cont(s[1]) || !is_cont(s[2]) || !is_cont(s[3])) return HC_UNICODE_REPLACEMENT;
        *used = 4;
        return ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
               (s[3] & 0x3F);
    }
    return HC_UNICODE_REPLACEMENT;
}

int hc_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= HC_UNICODE_MAX) cp = HC_UNICODE_REPLACEMENT;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 keeps the printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF as themselves and gives the
 * other 68 bytes, in increasing order, the code points 256, 257, ...: 0x00..0x20 -> 256..288,
 * 0x7F..0xA0 -> 289..322, 0xAD -> 323. */
static int gpt2_byte_is_printable(uint8_t b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

uint32_t hc_gpt2_byte_to_cp(uint8_t b)
{
    if (gpt2_byte_is_printable(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (uint32_t)(b - 0x7F);
    return 256u + 67u; /* 0xAD */
}

int hc_gpt2_cp_to_byte(uint32_t cp)
{
    if (cp < 256) return gpt2_byte_is_printable((uint8_t)cp) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(0x7F + (cp - 256 - 33));
    if (cp == 256 + 67) return 0xAD;
    return -1;
}
