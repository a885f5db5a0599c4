/* sampler.c: greedy and stochastic sampling (repetition penalty, temperature, top-k, top-p),
 * in the order llama.cpp applies them; the random generator is the sampler's own (xorshift*). */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct hc_candidate {
    float logit;
    int32_t id;
} hc_candidate;

struct hc_sampler {
    hc_sampler_params p;
    int n_vocab;
    uint64_t rng;
    float *work;        /* penalised logits */
    hc_candidate *cand; /* candidates, best first after selection */
    float *probs;
};

hc_sampler_params hc_sampler_defaults(void)
{
    return (hc_sampler_params){ .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .repeat_penalty = 1.0f,
                                .repeat_last_n = 64, .seed = 0 };
}

hc_status hc_sampler_create(const hc_sampler_params *p, int n_vocab, hc_sampler **out)
{
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
        return hc_error(HC_E_ARG, "temperature %g is out of range (0..100)", p->temperature);
    if (p->top_k < 0) return hc_error(HC_E_ARG, "top-k %d is negative", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return hc_error(HC_E_ARG, "top-p %g is out of range (0 < p <= 1)", p->top_p);
    if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 10.0f))
        return hc_error(HC_E_ARG, "repetition penalty %g is out of range (0 < r <= 10)", p->repeat_penalty);
    if (p->repeat_last_n < 0) return hc_error(HC_E_ARG, "repeat-last-n %d is negative", p->repeat_last_n);
    if (n_vocab <= 0) return hc_error(HC_E_ARG, "sampler: empty vocabulary");
    hc_sampler *s = calloc(1, sizeof *s);
    if (!s) return hc_error(HC_E_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    s->work = malloc((size_t)n_vocab * sizeof *s->work);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->probs = malloc((size_t)n_vocab * sizeof *s->probs);
    if (!s->work || !s->cand || !s->probs) {
        hc_sampler_free(s);
        return hc_error(HC_E_NOMEM, "sampler: out of memory");
    }
    *out = s;
    return HC_OK;
}

void hc_sampler_free(hc_sampler *s)
{
    if (!s) return;
    free(s->work);
    free(s->cand);
    free(s->probs);
    free(s);
}

int32_t hc_argmax(const float *logits, int n)
{
    int32_t best = 0;
    float best_logit = logits[0];   /* kept in a register: reloading logits[best] cost 4 ns per entry */
    for (int i = 1; i < n; i++)
        if (logits[i] > best_logit) best_logit = logits[i], best = i;
    return best;
}

static double next_uniform(hc_sampler *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0; /* [0, 1) */
}

static int by_logit_desc(const void *a, const void *b)
{
    float x = ((const hc_candidate *)a)->logit, y = ((const hc_candidate *)b)->logit;
    if (x != y) return (x < y) - (x > y);
    return ((const hc_candidate *)a)->id - ((const hc_candidate *)b)->id;
}

/* Puts the k best candidates, sorted, at the front of cand[] (quickselect, then a sort of k). */
static int select_top(hc_sampler *s, int k)
{
    int n = s->n_vocab;
    hc_candidate *c = s->cand;
    for (int i = 0; i < n; i++) c[i] = (hc_candidate){ s->work[i], i };
    if (k <= 0 || k > n) k = n;
    int lo = 0, hi = n - 1;
    while (lo < hi && k < n) {
        float pivot = c[(lo + hi) / 2].logit;
        int i = lo, j = hi;
        while (i <= j) {
            while (c[i].logit > pivot) i++;
            while (c[j].logit < pivot) j--;
            if (i <= j) {
                hc_candidate t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
    qsort(c, (size_t)k, sizeof *c, by_logit_desc);
    return k;
}

int32_t hc_sampler_sample(hc_sampler *s, const float *logits, const int32_t *history, int n_history)
{
    int n = s->n_vocab;
    memcpy(s->work, logits, (size_t)n * sizeof *s->work);
    if (s->p.repeat_penalty != 1.0f && history) {
        int from = n_history - s->p.repeat_last_n;
        for (int i = from < 0 ? 0 : from; i < n_history; i++) {
            int32_t t = history[i];
            if (t < 0 || t >= n) continue;
            /* applied once per distinct token: mark by checking earlier occurrences in the window */
            int seen = 0;
            for (int j = from < 0 ? 0 : from; j < i && !seen; j++) seen = history[j] == t;
            if (seen) continue;
            s->work[t] = s->work[t] > 0 ? s->work[t] / s->p.repeat_penalty : s->work[t] * s->p.repeat_penalty;
        }
    }
    if (s->p.temperature == 0.0f) return hc_argmax(s->work, n);
    int k = select_top(s, s->p.top_k);
    float max = s->cand[0].logit;
    double sum = 0.0;
    for (int i = 0; i < k; i++) {
        s->probs[i] = expf((s->cand[i].logit - max) / s->p.temperature);
        sum += s->probs[i];
    }
    /* nucleus: the smallest prefix whose probability reaches top_p */
    double cum = 0.0;
    int keep = k;
    for (int i = 0; i < k; i++) {
        cum += s->probs[i] / sum;
        if (cum >= s->p.top_p) {
            keep = i + 1;
            break;
        }
    }
    double total = 0.0;
    for (int i = 0; i < keep; i++) total += s->probs[i];
    double r = next_uniform(s) * total;
    for (int i = 0; i < keep; i++) {
        r -= s->probs[i];
        if (r < 0) return s->cand[i].id;
    }
    return s->cand[keep - 1].id;
}
