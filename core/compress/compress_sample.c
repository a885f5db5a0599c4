/* compress_sample.c: text the source model samples itself, for calibration (--calib self) and for
 * the sensitivity measurement (--sens-source self): no data set stands in for the model's own text. */
#include <stdlib.h>
#include <string.h>

#include "compress_sample.h"
#include "compress_text.h"
#include "sampler.h"

/* Sequences of SELF_SEQ tokens at temperature 1 (no top-k, no top-p: draws from the model's own
 * distribution), each from BOS, with a fixed seed (--calib-seed: another draw). Short sequences: many starts, so many topics,
 * from a budget of tokens. The measurement's mean KL over them estimates KL(P_source || P_model)
 * over whole sequences: the two models' own text distributions, with no data set standing in. */
#define SELF_SEQ 64
#define SELF_SEED 20261124u

int hc_compress_calib_is_self(const hc_compress_opts *o) { return o->calib && !strcmp(o->calib, "self"); }
int hc_compress_sens_is_self(const hc_compress_opts *o) { return o->sens_self || hc_compress_calib_is_self(o); }

hc_status hc_compress_self_ids(hc_compress_state *cs, int64_t want, int32_t **ids, int64_t *n, int *seq)
{
    *n = want;
    *seq = want < SELF_SEQ ? (int)want : SELF_SEQ;
    if (*seq > cs->model->cfg.n_ctx_train) *seq = cs->model->cfg.n_ctx_train;
    *ids = calloc((size_t)want, sizeof **ids);
    return *ids ? HC_OK : hc_error(HC_E_NOMEM, "out of memory for %lld sampled tokens", (long long)want);
}

hc_status hc_compress_sample_ids(hc_compress_state *cs, hc_context *ctx, int32_t *ids, int64_t n, int seq, const char *what)
{
    hc_tokenizer *tok = NULL;
    hc_sampler *smp = NULL;
    const hc_compress_opts *o = cs->opts;
    hc_sampler_params sp = { .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .repeat_penalty = 1.0f,
                             .seed = o->calib_seed ? o->calib_seed : SELF_SEED };
    hc_status st = hc_compress_tokenizer(cs, &tok);
    int32_t bos = st == HC_OK ? hc_tokenizer_bos(tok) : -1;
    if (st == HC_OK && bos < 0) bos = hc_tokenizer_eos(tok); /* a document boundary, where text starts */
    if (st == HC_OK && bos < 0) st = hc_error(HC_E_ARG, "the vocabulary has no BOS or EOS token to start from");
    if (st == HC_OK) st = hc_sampler_create(&sp, cs->model->cfg.n_vocab, &smp);
    for (int64_t at = 0; st == HC_OK && at < n; at += seq) {
        int len = (int)(n - at < seq ? n - at : seq);
        hc_context_reset(ctx);
        ids[at] = bos;
        for (int i = 1; st == HC_OK && i < len; i++) {
            const float *logits = NULL;
            st = hc_decode(ctx, &ids[at + i - 1], 1, 0, &logits);
            if (st == HC_OK) ids[at + i] = hc_sampler_sample(smp, logits, &ids[at], i);
        }
        if (o->progress) o->progress(o->progress_ctx, "sample", at + len, n);
    }
    hc_sampler_free(smp);
    hc_tokenizer_free(tok);
    if (st != HC_OK) return hc_error_context(st, "sampling the %s text: ", what);
    return HC_OK;
}
