/* eval.h: model quality measures on an inference context: perplexity of a text (llama.cpp's
 * chunked way or a sliding window), multiple-choice accuracy by log-likelihood, and LAMBADA. */
#ifndef HC_EVAL_H
#define HC_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "progress.h"
#include "tokenizer.h"

/* ---------------------------------------------------------------- scoring primitives */

/* log softmax(logits)[token], in double precision. */
double hc_eval_logprob(const float *logits, int n_vocab, int32_t token);
/* Index of the largest score (the first one on ties, as numpy's argmax). */
int32_t hc_eval_argmax(const float *logits, int n_vocab);

/* Splits context + continuation into tokens the way lm-evaluation-harness does: trailing
 * whitespace of the context moves to the front of the continuation; ctx = tokenize(context)
 * (with BOS as the vocabulary asks), whole = tokenize(context + continuation), and the
 * continuation's tokens are whole[len(ctx):] when ctx is a prefix of whole -- else (a merge
 * across the join) the continuation tokenized alone, without BOS. Both arrays are malloc'd. */
hc_status hc_eval_encode_pair(const hc_tokenizer *t, const char *context, const char *continuation,
                              int32_t **ctx_ids, int *n_ctx, int32_t **cont_ids, int *n_cont);

/* Scores a continuation on top of what the context holds: last_row is the model's scores after
 * the cached tokens (n_vocab floats, a copy), cont[0..n) the continuation. Runs cont[0..n-1)
 * through the model (in pieces of n_batch) and returns the sum of log p(cont[i]) and, in
 * *greedy, 1 when every cont[i] is the argmax of its row (teacher-forced greedy match). The
 * cache grows by n-1 tokens. Any output pointer may be NULL. */
hc_status hc_eval_score_continuation(hc_context *c, const float *last_row, const int32_t *cont, int n_cont,
                                     double *logprob, int *greedy);

/* Empties the cache and runs the context tokens ids[0..n), keeping only the last
 * c->n_ctx - reserve of them when they do not fit (*truncated = 1, else 0; may be NULL), and
 * copies the scores after the last one into last_row (n_vocab floats). */
hc_status hc_eval_prefill(hc_context *c, const int32_t *ids, int n, int reserve, float *last_row, int *truncated);

/* ---------------------------------------------------------------- perplexity */

typedef struct hc_ppl_params {
    int n_ctx;        /* tokens per chunk / window (default 512) */
    int stride;       /* 0: llama.cpp's chunks; 0 < stride < n_ctx: sliding windows every stride tokens */
    int max_chunks;   /* chunks (windows) to evaluate, 0: all */
} hc_ppl_params;

typedef struct hc_ppl_result {
    double ppl;          /* exp(mean NLL) */
    double ppl_stderr;   /* llama.cpp's: ppl * sqrt(var(NLL) / (n - 1)) */
    double nll_mean;     /* mean negative log-likelihood, nats per token */
    long n_scored;       /* tokens whose NLL went into the mean */
    long n_tokens;       /* tokens of the whole text */
    int n_chunks;        /* chunks (windows) evaluated */
} hc_ppl_result;

/* Perplexity of a token sequence. bos >= 0: the first token of every chunk is replaced by it
 * (as llama-perplexity does when the vocabulary adds BOS); -1: left as is.
 * Chunks (stride 0): chunk k is tokens [k*n_ctx, (k+1)*n_ctx), evaluated from an empty cache,
 * and the tokens at chunk positions n_ctx/2+1 .. n_ctx-1 are scored (each predicted from all
 * tokens before it in the chunk) -- exactly llama-perplexity's default.
 * Windows (stride S): window k is tokens [k*S, k*S+n_ctx), from an empty cache; window 0 scores
 * its positions 1 .. n_ctx-1, every later window its last S positions (those not scored yet). */
hc_status hc_eval_ppl_tokens(hc_context *c, const int32_t *tokens, long n_tokens, int32_t bos,
                             const hc_ppl_params *p, hc_progress *prog, hc_ppl_result *out);
/* Tokenizes text (BOS as the vocabulary asks, special-token texts as plain text) and runs
 * hc_eval_ppl_tokens, replacing each chunk's first token by BOS when the vocabulary adds one. */
hc_status hc_eval_ppl_text(hc_context *c, const hc_tokenizer *t, const char *text, size_t len,
                           const hc_ppl_params *p, hc_progress *prog, hc_ppl_result *out);

/* ---------------------------------------------------------------- multiple choice */

typedef struct hc_mc_item {
    char *query;        /* as in the file */
    char **choices;     /* [n_choices] */
    int n_choices;
    int gold;           /* index of the right choice */
    int line;           /* line in the file (0 when built in memory) */
} hc_mc_item;

typedef struct hc_mc_set {
    hc_mc_item *items;
    int n;
} hc_mc_set;

/* Reads rows {"query": str, "choices": [str, ...], "gold": int} (other members ignored), up to
 * limit rows (0: all). A bad row fails with "PATH:LINE: reason". */
hc_status hc_mc_load(const char *path, int limit, hc_mc_set *out);
void hc_mc_set_free(hc_mc_set *s);

/* How a row becomes text: context = strip(query) + delimiter, continuation = strip(choice)
 * (llm-foundry strips the data), joined by hc_eval_encode_pair (which adds the one space before
 * the choice when neither side has one). */
#define HC_MC_DEFAULT_DELIMITER "\nAnswer:"

typedef struct hc_mc_params {
    const char *delimiter;   /* NULL: HC_MC_DEFAULT_DELIMITER */
    int *picks, *picks_norm; /* optional, [set->n]: the choice each row picked by acc and by acc_norm
                                (for paired comparisons of two models on the same rows) */
} hc_mc_params;

typedef struct hc_mc_result {
    int n;                    /* rows */
    double acc, acc_stderr;             /* argmax of the summed log-likelihood */
    double acc_norm, acc_norm_stderr;   /* argmax of the sum / the choice's length in characters */
    long n_tokens;            /* tokens run through the model */
    int n_truncated;          /* rows whose query was cut from the left to fit the context */
} hc_mc_result;

/* The log-likelihood of each choice of one row (ll[n_choices]): the query is evaluated once,
 * every choice on top of it (the cache truncated back to the query between choices).
 * *truncated (may be NULL) is set to 1 when the query had to be cut from the left. */
hc_status hc_eval_mc_item(hc_context *c, const hc_tokenizer *t, const hc_mc_params *p, const hc_mc_item *item,
                          double *ll, int *truncated, long *n_tokens);
/* Accuracy over a set; standard errors as lm-evaluation-harness: sqrt(p(1-p)/(n-1)). */
hc_status hc_eval_mc(hc_context *c, const hc_tokenizer *t, const hc_mc_params *p, const hc_mc_set *set,
                     hc_progress *prog, hc_mc_result *out);
/* Length of a UTF-8 string in code points (Python's len()), for acc_norm. */
size_t hc_eval_utf8_chars(const char *s);

/* ---------------------------------------------------------------- LAMBADA */

typedef struct hc_lambada_item {
    char *context;
    char *continuation;   /* the last word, as in the file */
    int line;
} hc_lambada_item;

typedef struct hc_lambada_set {
    hc_lambada_item *items;
    int n;
} hc_lambada_set;

/* Reads rows {"context": str, "continuation": str} (other members ignored). */
hc_status hc_lambada_load(const char *path, int limit, hc_lambada_set *out);
void hc_lambada_set_free(hc_lambada_set *s);

typedef struct hc_lambada_result {
    int n;
    double acc, acc_stderr;  /* share of rows whose every continuation token is the greedy argmax */
    double ppl;              /* lm-evaluation-harness' lambada perplexity: exp(-mean over rows of the
                                continuation's summed log-likelihood) */
    double ppl_token;        /* exp(-sum of log-likelihoods / continuation tokens) */
    long n_cont_tokens;      /* continuation tokens scored */
    long n_tokens;           /* tokens run through the model */
    int n_truncated;         /* rows whose context was cut from the left to fit */
} hc_lambada_result;

/* One row: summed log-likelihood of the continuation, whether greedy decoding reproduces it,
 * and its token count. */
hc_status hc_eval_lambada_item(hc_context *c, const hc_tokenizer *t, const hc_lambada_item *item, double *ll,
                               int *greedy, int *n_cont, int *truncated, long *n_tokens);
hc_status hc_eval_lambada(hc_context *c, const hc_tokenizer *t, const hc_lambada_set *set, hc_progress *prog,
                          hc_lambada_result *out);

#endif
