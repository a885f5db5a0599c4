/* tok_load.c: the two tokenizer sources: the tokenizer.ggml.* keys of a GGUF file, and a llama2.c
 * tokenizer file; both build the vocabulary with tok_vocab.c. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "unicode.h"

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
    if (!t->merge_text || !t->merge_off || !t->merge_len || !t->merge_split || hc_tok_map_alloc(&t->merges, (size_t)n) != 0)
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
        if (sp) hc_tok_merge_insert(t, k);
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
    hc_tokenizer *t = hc_tok_new(kind, (int)n, text_bytes);
    if (!t) return hc_error(HC_E_NOMEM, "tokenizer: out of memory for %llu tokens", (unsigned long long)n);
    size_t text_off = 0;
    for (uint64_t i = 0; i < n; i++) {
        float score = 0.0f;
        if (scores) score = scores_f32 ? arr_f32(scores, i) : (float)arr_i32(scores, i);
        int32_t type = types ? arr_i32(types, i) : 1;   /* without types every token is normal */
        hc_tok_vocab_set(t, (int)i, toks[i].data, toks[i].len, score, type, &text_off);
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
    if ((st = hc_tok_vocab_finish(t)) != HC_OK) goto fail;
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
    if (!(t = hc_tok_new(HC_TOK_SPM, vocab_size, text_bytes)) || !(piece = malloc(3 * max_len + 1))) {
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
        } else if (hc_tok_byte_of_text(s, len) >= 0) {
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
        hc_tok_vocab_set(t, i, piece, n, score, type, &text_off);
    }
    t->llama2c = 1;
    t->bos = 1;
    t->eos = 2;
    t->unk = 0;
    t->add_bos = 1;
    t->add_space_prefix = 1;
    st = hc_tok_vocab_finish(t);
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
