/* eval_ppl.c: perplexity of a text, in llama-perplexity's chunks (score the second half of each
 * chunk, BOS at its start) or in sliding windows that score every token once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"

/* Rows [s0, s1) of a chunk are scored: row r predicts the chunk's token r + 1. */
static void scored_rows(int n_ctx, int stride, long k, int *s0, int *s1)
{
    *s1 = n_ctx - 1;
    if (stride == 0) *s0 = n_ctx / 2;
    else *s0 = k == 0 ? 0 : n_ctx - stride - 1;
}

hc_status hc_eval_ppl_tokens(hc_context *c, const int32_t *tokens, long n_tokens, int32_t bos,
                             const hc_ppl_params *p, hc_progress *prog, hc_ppl_result *out)
{
    memset(out, 0, sizeof *out);
    int n_ctx = p && p->n_ctx > 0 ? p->n_ctx : 512;
    int stride = p ? p->stride : 0;
    if (n_ctx < 2) return hc_error(HC_E_ARG, "perplexity: chunks of %d tokens are too short (at least 2)", n_ctx);
    if (stride < 0 || (stride > 0 && stride >= n_ctx))
        return hc_error(HC_E_ARG, "perplexity: stride %d must be between 1 and the chunk length %d - 1", stride, n_ctx);
    if (n_ctx > c->n_ctx)
        return hc_error(HC_E_ARG, "perplexity: chunks of %d tokens exceed the context of %d tokens (raise -c)", n_ctx, c->n_ctx);
    if (n_tokens < n_ctx)
        return hc_error(HC_E_ARG, "perplexity: the text has %ld tokens, fewer than one chunk of %d", n_tokens, n_ctx);
    long n_chunks = stride ? (n_tokens - n_ctx) / stride + 1 : n_tokens / n_ctx;
    if (p && p->max_chunks > 0 && n_chunks > p->max_chunks) n_chunks = p->max_chunks;
    if (prog && prog->total <= 0) prog->total = n_chunks;

    int n_vocab = c->model->cfg.n_vocab, n_batch = c->n_batch;
    int32_t *piece = malloc((size_t)n_batch * sizeof *piece);
    if (!piece) return hc_error(HC_E_NOMEM, "perplexity: out of memory");
    double nll = 0.0, nll2 = 0.0;
    long count = 0;
    hc_status st = HC_OK;
    for (long k = 0; k < n_chunks && st == HC_OK; k++) {
        long start = stride ? k * stride : k * n_ctx;
        int s0, s1;
        scored_rows(n_ctx, stride, k, &s0, &s1);
        hc_context_reset(c);
        /* the chunk's last token predicts nothing inside the chunk: it is not run */
        for (int j = 0; j < s1 && st == HC_OK;) {
            int kb = s1 - j < n_batch ? s1 - j : n_batch;
            memcpy(piece, tokens + start + j, (size_t)kb * sizeof *piece);
            if (j == 0 && bos >= 0) piece[0] = bos;
            int r0 = s0 > j ? s0 - j : 0, r1 = kb;
            const float *logits;
            st = hc_decode(c, piece, kb, r0 < r1, &logits);
            if (st != HC_OK) break;
            for (int r = r0; r < r1; r++) {
                double v = -hc_eval_logprob(logits + (size_t)r * n_vocab, n_vocab, tokens[start + j + r + 1]);
                nll += v;
                nll2 += v * v;
                count++;
            }
            j += kb;
        }
        if (st == HC_OK && prog) hc_progress_update(prog, k + 1);
    }
    free(piece);
    if (st != HC_OK) return hc_error_context(st, "perplexity: ");
    if (count == 0) return hc_error(HC_E_ARG, "perplexity: chunks of %d tokens leave no token to score", n_ctx);
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    out->nll_mean = mean;
    out->ppl = exp(mean);
    out->ppl_stderr = count > 1 && var > 0 ? out->ppl * sqrt(var / (double)(count - 1)) : 0.0;
    out->n_scored = count;
    out->n_tokens = n_tokens;
    out->n_chunks = (int)n_chunks;
    return HC_OK;
}

hc_status hc_eval_ppl_text(hc_context *c, const hc_tokenizer *t, const char *text, size_t len,
                           const hc_ppl_params *p, hc_progress *prog, hc_ppl_result *out)
{
    memset(out, 0, sizeof *out);
    int32_t *ids = NULL;
    int n = 0;
    hc_status st = hc_tokenize(t, text, len, 1, 0, &ids, &n);
    if (st != HC_OK) return hc_error_context(st, "perplexity: tokenizing the text: ");
    int32_t bos = hc_tokenizer_bos(t);
    int adds_bos = bos >= 0 && n > 0 && ids[0] == bos;
    st = hc_eval_ppl_tokens(c, ids, n, adds_bos ? bos : -1, p, prog, out);
    free(ids);
    return st;
}
