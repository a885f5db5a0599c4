/* tok_vocab.c: building a vocabulary: token texts, scores and types, byte tokens, special tokens,
 * the lookup tables (tok_maps.c, tok_bpe.c), and freeing it. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a byte token's text "<0xXX>", or -1. */
int hc_tok_byte_of_text(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* ---- building a vocabulary ---- */

hc_tokenizer *hc_tok_new(hc_tokenizer_kind kind, int n_vocab, size_t text_bytes)
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
void hc_tok_vocab_set(hc_tokenizer *t, int i, const char *s, size_t len, float score, int32_t type, size_t *text_off)
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
hc_status hc_tok_vocab_finish(hc_tokenizer *t)
{
    if (hc_tok_map_alloc(&t->vocab, (size_t)t->n_vocab) != 0) return hc_error(HC_E_NOMEM, "tokenizer: out of memory");
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i].len > 0) hc_tok_vocab_insert(t, i);

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

    hc_status st = hc_tok_build_pairs(t);
    if (st != HC_OK) return st;
    if (t->kind == HC_TOK_SPM) t->spm_cut_at_space = hc_tok_spm_space_marks_lead(t);

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
