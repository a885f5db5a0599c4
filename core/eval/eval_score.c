/* eval_score.c: the log-likelihood primitives every evaluation shares: log-softmax and argmax
 * of a row of scores, the context/continuation token split, and scoring a continuation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"

double hc_eval_logprob(const float *logits, int n_vocab, int32_t token)
{
    float max = logits[0];
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - (double)max);
    return (double)logits[token] - (double)max - log(sum);
}

int32_t hc_eval_argmax(const float *logits, int n_vocab)
{
    int32_t best = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; }

hc_status hc_eval_encode_pair(const hc_tokenizer *t, const char *context, const char *continuation,
                              int32_t **ctx_ids, int *n_ctx, int32_t **cont_ids, int *n_cont)
{
    *ctx_ids = *cont_ids = NULL;
    *n_ctx = *n_cont = 0;
    size_t lc = strlen(context), lk = strlen(continuation), keep = lc;
    while (keep > 0 && is_space(context[keep - 1])) keep--;
    /* whole = context[0..keep) + moved whitespace + (space when needed) + continuation */
    int need_space = lc == keep && (lk == 0 || !is_space(continuation[0]));
    size_t cont_len = (lc - keep) + (size_t)need_space + lk;
    char *whole = malloc(keep + cont_len + 1);
    if (!whole) return hc_error(HC_E_NOMEM, "out of memory");
    memcpy(whole, context, lc);
    size_t at = lc;
    if (need_space) whole[at++] = ' ';
    memcpy(whole + at, continuation, lk);
    whole[at + lk] = '\0';
    const char *cont_text = whole + keep;

    int32_t *c_ids = NULL, *w_ids = NULL;
    int nc = 0, nw = 0;
    hc_status st = hc_tokenize(t, whole, keep, 1, 0, &c_ids, &nc);
    if (st == HC_OK) st = hc_tokenize(t, whole, keep + cont_len, 1, 0, &w_ids, &nw);
    if (st == HC_OK) {
        int prefix = nw > nc && (nc == 0 || !memcmp(w_ids, c_ids, (size_t)nc * sizeof *c_ids));
        if (prefix) {
            memmove(w_ids, w_ids + nc, (size_t)(nw - nc) * sizeof *w_ids);
            *cont_ids = w_ids;
            *n_cont = nw - nc;
            w_ids = NULL;
        } else {
            st = hc_tokenize(t, cont_text, cont_len, 0, 0, cont_ids, n_cont);
        }
    }
    free(w_ids);
    free(whole);
    if (st != HC_OK) {
        free(c_ids);
        free(*cont_ids);
        *cont_ids = NULL;
        *n_cont = 0;
        return st;
    }
    *ctx_ids = c_ids;
    *n_ctx = nc;
    return HC_OK;
}

hc_status hc_eval_score_continuation(hc_context *c, const float *last_row, const int32_t *cont, int n_cont,
                                     double *logprob, int *greedy)
{
    if (n_cont <= 0) return hc_error(HC_E_ARG, "scoring an empty continuation");
    int n_vocab = c->model->cfg.n_vocab;
    for (int i = 0; i < n_cont; i++)
        if (cont[i] < 0 || cont[i] >= n_vocab)
            return hc_error(HC_E_ARG, "continuation token %d is out of the vocabulary (0..%d)", (int)cont[i], n_vocab - 1);
    double lp = hc_eval_logprob(last_row, n_vocab, cont[0]);
    int all_greedy = hc_eval_argmax(last_row, n_vocab) == cont[0];
    for (int done = 0; done < n_cont - 1;) {
        int k = n_cont - 1 - done < c->n_batch ? n_cont - 1 - done : c->n_batch;
        const float *logits;
        hc_status st = hc_decode(c, cont + done, k, 1, &logits);
        if (st != HC_OK) return st;
        for (int r = 0; r < k; r++) {
            const float *row = logits + (size_t)r * n_vocab;
            int32_t target = cont[done + r + 1];
            lp += hc_eval_logprob(row, n_vocab, target);
            if (all_greedy && hc_eval_argmax(row, n_vocab) != target) all_greedy = 0;
        }
        done += k;
    }
    if (logprob) *logprob = lp;
    if (greedy) *greedy = all_greedy;
    return HC_OK;
}

hc_status hc_eval_prefill(hc_context *c, const int32_t *ids, int n, int reserve, float *last_row, int *truncated)
{
    int room = c->n_ctx - reserve, cut = 0;
    if (room < 1) return hc_error(HC_E_ARG, "a continuation of %d tokens leaves no room in the context of %d", reserve + 1, c->n_ctx);
    if (n > room) {
        cut = 1;
        ids += n - room;
        n = room;
    }
    if (n <= 0) return hc_error(HC_E_ARG, "the context gave no tokens (and the vocabulary adds no BOS)");
    hc_context_reset(c);
    const float *logits;
    hc_status st = hc_decode(c, ids, n, 0, &logits);
    if (st != HC_OK) return st;
    memcpy(last_row, logits, (size_t)c->model->cfg.n_vocab * sizeof *last_row);
    if (truncated) *truncated = cut;
    return HC_OK;
}
