/* test_sampler.c: choosing the next token: argmax ties, greedy with a repetition penalty (once per
 * distinct token, in its window, both signs), top-k and top-p cut-offs, the sampled distribution
 * and temperature against their exact values, seeds, and the refusal of out-of-range parameters. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sampler.h"
#include "test_util.h"

static hc_sampler *make(float temp, int top_k, float top_p, float penalty, int last_n, uint64_t seed, int n_vocab)
{
    hc_sampler_params p = { .temperature = temp, .top_k = top_k, .top_p = top_p, .repeat_penalty = penalty,
                            .repeat_last_n = last_n, .seed = seed };
    hc_sampler *s = NULL;
    HC_ASSERT_OK(hc_sampler_create(&p, n_vocab, &s));
    return s;
}

static void test_argmax(void)
{
    const float a[] = { -3.0f, 2.0f, 7.5f, 7.5f, -1.0f };
    CU_ASSERT_EQUAL(hc_argmax(a, 5), 2);   /* ties: the lowest index */
    const float b[] = { -5.0f, -2.0f, -9.0f };
    CU_ASSERT_EQUAL(hc_argmax(b, 3), 1);
    CU_ASSERT_EQUAL(hc_argmax(b, 1), 0);
}

/* temperature 0 is the argmax of the penalized logits; the logits themselves are not modified */
static void test_greedy_and_penalty(void)
{
    float logits[] = { 4.0f, 1.5f, 0.5f };
    float copy[3];
    memcpy(copy, logits, sizeof copy);
    hc_sampler *s = make(0.0f, 40, 0.95f, 1.0f, 64, 1, 3);
    const int32_t hist[] = { 0, 0, 0 };
    CU_ASSERT_EQUAL(hc_sampler_sample(s, logits, hist, 3), 0);   /* no penalty */
    hc_sampler_free(s);
    /* penalty 2 on token 0, seen three times: applied once (4 -> 2 > 1.5), not three times */
    s = make(0.0f, 40, 0.95f, 2.0f, 64, 1, 3);
    CU_ASSERT_EQUAL(hc_sampler_sample(s, logits, hist, 3), 0);
    /* penalty 3: 4 -> 1.33 < 1.5 */
    hc_sampler_free(s);
    s = make(0.0f, 40, 0.95f, 3.0f, 64, 1, 3);
    CU_ASSERT_EQUAL(hc_sampler_sample(s, logits, hist, 3), 1);
    CU_ASSERT_EQUAL(memcmp(logits, copy, sizeof copy), 0);
    hc_sampler_free(s);
    /* a negative logit is multiplied: -1 * 2 = -2 < -1.5 */
    const float neg[] = { -1.0f, -1.5f };
    const int32_t h0[] = { 0 };
    s = make(0.0f, 40, 0.95f, 2.0f, 64, 1, 2);
    CU_ASSERT_EQUAL(hc_sampler_sample(s, neg, h0, 1), 1);
    hc_sampler_free(s);
    /* the window: only the last 2 tokens count, so token 0 (earlier) keeps its logit */
    const int32_t far[] = { 0, 2, 2 };
    s = make(0.0f, 40, 0.95f, 3.0f, 2, 1, 3);
    CU_ASSERT_EQUAL(hc_sampler_sample(s, logits, far, 3), 0);
    hc_sampler_free(s);
    /* ids outside the vocabulary in the history are ignored */
    const int32_t bad[] = { -7, 99 };
    s = make(0.0f, 40, 0.95f, 3.0f, 64, 1, 3);
    CU_ASSERT_EQUAL(hc_sampler_sample(s, logits, bad, 2), 0);
    hc_sampler_free(s);
}

/* top-k 1 and a tiny top-p both leave only the best token, whatever the temperature */
static void test_cutoffs(void)
{
    const float logits[] = { 0.1f, 0.3f, 0.2f, 0.25f };
    hc_sampler *k1 = make(5.0f, 1, 1.0f, 1.0f, 64, 7, 4);
    hc_sampler *p0 = make(5.0f, 0, 1e-6f, 1.0f, 64, 7, 4);
    for (int i = 0; i < 200; i++) {
        CU_ASSERT_EQUAL(hc_sampler_sample(k1, logits, NULL, 0), 1);
        CU_ASSERT_EQUAL(hc_sampler_sample(p0, logits, NULL, 0), 1);
    }
    hc_sampler_free(k1);
    hc_sampler_free(p0);
    /* top-k 2: only the two best (1 and 3) are ever drawn */
    hc_sampler *k2 = make(5.0f, 2, 1.0f, 1.0f, 64, 7, 4);
    int seen[4] = { 0 };
    for (int i = 0; i < 400; i++) seen[hc_sampler_sample(k2, logits, NULL, 0)]++;
    CU_ASSERT(seen[0] == 0 && seen[2] == 0 && seen[1] > 0 && seen[3] > 0);
    hc_sampler_free(k2);
}

/* n draws; freq[i] the share of token i */
static void draw(hc_sampler *s, const float *logits, int n_vocab, int n, double *freq)
{
    int count[8] = { 0 };
    for (int i = 0; i < n; i++) count[hc_sampler_sample(s, logits, NULL, 0)]++;
    for (int i = 0; i < n_vocab; i++) freq[i] = (double)count[i] / n;
}

/* The draws follow softmax(logits / T) (and the top-p-renormalised one) within 4 standard errors. */
static void test_distribution(void)
{
    const double p[3] = { 0.5, 0.3, 0.2 };
    float logits[3];
    for (int i = 0; i < 3; i++) logits[i] = (float)log(p[i]);
    const int n = 40000;
    double freq[3], se;
    hc_sampler *s = make(1.0f, 0, 1.0f, 1.0f, 64, 12345, 3);
    draw(s, logits, 3, n, freq);
    for (int i = 0; i < 3; i++) {
        se = sqrt(p[i] * (1 - p[i]) / n);
        if (fabs(freq[i] - p[i]) > 4 * se) printf("\n  T=1: token %d drawn %.4f, expected %.4f\n", i, freq[i], p[i]);
        CU_ASSERT(fabs(freq[i] - p[i]) <= 4 * se);
    }
    hc_sampler_free(s);
    /* T = 0.5 squares the probabilities: 0.25, 0.09, 0.04 over 0.38 */
    s = make(0.5f, 0, 1.0f, 1.0f, 64, 999, 3);
    draw(s, logits, 3, n, freq);
    for (int i = 0; i < 3; i++) {
        double q = p[i] * p[i] / 0.38;
        se = sqrt(q * (1 - q) / n);
        CU_ASSERT(fabs(freq[i] - q) <= 4 * se);
    }
    hc_sampler_free(s);
    /* top-p 0.7 keeps the smallest prefix reaching it, {0.5, 0.3}, renormalised to 0.625, 0.375 */
    s = make(1.0f, 0, 0.7f, 1.0f, 64, 4242, 3);
    draw(s, logits, 3, n, freq);
    CU_ASSERT_EQUAL(freq[2], 0.0);
    se = sqrt(0.625 * 0.375 / n);
    CU_ASSERT(fabs(freq[0] - 0.625) <= 4 * se);
    hc_sampler_free(s);
}

/* the same seed draws the same sequence, another seed another one */
static void test_seeds(void)
{
    float logits[16];
    for (int i = 0; i < 16; i++) logits[i] = 0.1f * (float)i;
    hc_sampler *a = make(1.0f, 0, 1.0f, 1.0f, 64, 42, 16), *b = make(1.0f, 0, 1.0f, 1.0f, 64, 42, 16);
    hc_sampler *c = make(1.0f, 0, 1.0f, 1.0f, 64, 43, 16);
    int same_ab = 1, same_ac = 1;
    for (int i = 0; i < 64; i++) {
        int32_t x = hc_sampler_sample(a, logits, NULL, 0), y = hc_sampler_sample(b, logits, NULL, 0);
        int32_t z = hc_sampler_sample(c, logits, NULL, 0);
        same_ab &= x == y;
        same_ac &= x == z;
    }
    CU_ASSERT(same_ab);
    CU_ASSERT(!same_ac);
    hc_sampler_free(a);
    hc_sampler_free(b);
    hc_sampler_free(c);
}

static void test_refusals(void)
{
    const struct {
        hc_sampler_params p;
        int n_vocab;
        const char *msg;
    } bad[] = {
        { { .temperature = -1, .top_p = 1, .repeat_penalty = 1 }, 8, "temperature -1 is out of range" },
        { { .temperature = NAN, .top_p = 1, .repeat_penalty = 1 }, 8, "temperature nan is out of range" },
        { { .temperature = 1, .top_k = -1, .top_p = 1, .repeat_penalty = 1 }, 8, "top-k -1 is negative" },
        { { .temperature = 1, .top_p = 0, .repeat_penalty = 1 }, 8, "top-p 0 is out of range" },
        { { .temperature = 1, .top_p = 1.5f, .repeat_penalty = 1 }, 8, "top-p 1.5 is out of range" },
        { { .temperature = 1, .top_p = 1, .repeat_penalty = 0 }, 8, "repetition penalty 0 is out of range" },
        { { .temperature = 1, .top_p = 1, .repeat_penalty = 1, .repeat_last_n = -2 }, 8, "repeat-last-n -2 is negative" },
        { { .temperature = 1, .top_p = 1, .repeat_penalty = 1 }, 0, "empty vocabulary" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hc_sampler *s = NULL;
        CU_ASSERT_EQUAL(hc_sampler_create(&bad[i].p, bad[i].n_vocab, &s), HC_E_ARG);
        CU_ASSERT_PTR_NULL(s);
        if (!strstr(hc_last_error(), bad[i].msg)) printf("\n  case %zu: '%s'\n", i, hc_last_error());
        CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), bad[i].msg));
    }
    hc_sampler_params d = hc_sampler_defaults();
    CU_ASSERT(d.temperature > 0 && d.top_k == 40 && d.top_p > 0.9f && d.repeat_penalty == 1.0f);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "argmax", test_argmax },
        { "greedy and the repetition penalty", test_greedy_and_penalty },
        { "top-k and top-p cut-offs", test_cutoffs },
        { "the sampled distribution and temperature", test_distribution },
        { "seeds", test_seeds },
        { "out-of-range parameters refused", test_refusals },
        { NULL, NULL },
    };
    return hc_test_run("sampler", cases);
}
