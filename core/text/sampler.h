/* sampler.h: choosing the next token from the logits: greedy (temperature 0), or temperature
 * with top-k, top-p (nucleus) and a repetition penalty, from a seeded generator. */
#ifndef HC_SAMPLER_H
#define HC_SAMPLER_H

#include <stdint.h>

#include "hc/hc_status.h"

typedef struct hc_sampler_params {
    float temperature;      /* 0 = greedy */
    int top_k;              /* 0 = off */
    float top_p;            /* 1 = off */
    float repeat_penalty;   /* 1 = off; > 1 discourages tokens seen in the last repeat_last_n */
    int repeat_last_n;
    uint64_t seed;
} hc_sampler_params;

typedef struct hc_sampler hc_sampler;

hc_sampler_params hc_sampler_defaults(void);   /* temp 0.8, top_k 40, top_p 0.95, no repetition penalty (llama.cpp's defaults) */
/* Checks the ranges (temperature >= 0, top_p in (0,1], ...) and names a bad one. */
hc_status hc_sampler_create(const hc_sampler_params *p, int n_vocab, hc_sampler **out);
void hc_sampler_free(hc_sampler *s);
/* Picks a token from logits (not modified); history: tokens so far (for the penalty). */
int32_t hc_sampler_sample(hc_sampler *s, const float *logits, const int32_t *history, int n_history);
/* The index of the largest logit (ties: the lowest index). */
int32_t hc_argmax(const float *logits, int n);

#endif
