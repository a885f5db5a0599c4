/* compress_text.c: calibration text: the input's tokenizer (GGUF vocabulary or the llama2.c file),
 * the calibration file tokenized (--calib-skip applied) into sequences that start with BOS. */
#include "compress_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_load.h"

hc_status hc_compress_read_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return hc_error(HC_E_IO, "%s: cannot open", path);
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return hc_error(HC_E_IO, "%s: cannot seek", path);
    }
    long n = ftell(f);
    rewind(f);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return hc_error(HC_E_IO, "%s: cannot read", path);
    }
    fclose(f);
    buf[n] = '\0';
    *text = buf;
    *len = (size_t)n;
    return HC_OK;
}

hc_status hc_compress_tokenizer(const hc_compress_state *cs, hc_tokenizer **out)
{
    if (cs->model->gguf) return hc_tokenizer_from_gguf(cs->model->gguf, out);
    char path[4096];
    const char *tp = cs->opts->tokenizer;
    if (!tp) {
        hc_status st = hc_llama2c_tokenizer_path(cs->opts->input, cs->model->cfg.n_vocab, path, sizeof path);
        if (st != HC_OK) return st;
        tp = path;
    }
    return hc_tokenizer_load_llama2c(tp, cs->model->cfg.n_vocab, out);
}

hc_status hc_compress_calib_ids(hc_compress_state *cs, int64_t want, int32_t **ids, int64_t *n, int *seq)
{
    const hc_compress_opts *o = cs->opts;
    hc_tokenizer *tok = NULL;
    char *text = NULL;
    int32_t *t = NULL;
    int n_ids = 0;
    size_t len = 0;
    *ids = NULL;
    hc_status st = hc_compress_read_file(o->calib, &text, &len);
    if (st == HC_OK) st = hc_compress_tokenizer(cs, &tok);
    if (st == HC_OK) st = hc_tokenize(tok, text, len, 1, 0, &t, &n_ids);
    if (st == HC_OK && n_ids < 2) st = hc_error(HC_E_ARG, "calibration file %s holds no text", o->calib);
    if (st == HC_OK && o->calib_skip > 0) { /* --calib-skip: the text from token N on */
        if (o->calib_skip > n_ids - 2)
            st = hc_error(HC_E_ARG, "--calib-skip %d: calibration file %s holds only %d tokens", o->calib_skip, o->calib, n_ids);
        else {
            n_ids -= o->calib_skip;
            memmove(t, t + o->calib_skip, (size_t)n_ids * sizeof *t);
        }
    }
    if (st == HC_OK) {
        int s = o->calib_seq > 0 ? o->calib_seq : 512;
        if (want > n_ids) want = n_ids;
        if (s > cs->model->cfg.n_ctx_train) s = cs->model->cfg.n_ctx_train;
        if (s > want) s = (int)want;
        /* every sequence starts with BOS, as the model saw text in training */
        int32_t bos = hc_tokenizer_bos(tok);
        for (int64_t i = 0; bos >= 0 && i < want; i += s) t[i] = bos;
        *ids = t;
        *n = want;
        *seq = s;
        t = NULL;
    }
    free(t);
    hc_tokenizer_free(tok);
    free(text);
    return st;
}
