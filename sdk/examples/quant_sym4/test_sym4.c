/* test_sym4.c: checks the sym4 plugin through its descriptor, without hcinfer: option parsing,
 * the quantization error bound, and the kernel against the reference (dequantize, then dot). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hc/hc_plugin.h>
#include <hc/hc_quant.h>

const hc_plugin_desc *hc_plugin_entry(void);   /* defined by HC_PLUGIN_DEFINE in sym4.c */

static int n_passed, n_failed;

#define CHECK(cond, ...)                                                 \
    do {                                                                 \
        if (cond) n_passed++;                                            \
        else {                                                           \
            n_failed++;                                                  \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            printf(__VA_ARGS__);                                         \
            printf("\n");                                                \
        }                                                                \
    } while (0)

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

static void test_options(const hc_quant_ops *q)
{
    void *p = NULL;
    char buf[64];
    CHECK(q->parse("", &p) == HC_OK, "%s", hc_last_error());
    CHECK(q->format_options(p, buf, sizeof buf) == HC_OK && !strcmp(buf, "group=32"), "default options '%s'", buf);
    q->free_params(p);
    CHECK(q->parse("group=64", &p) == HC_OK, "%s", hc_last_error());
    CHECK(q->format_options(p, buf, sizeof buf) == HC_OK && !strcmp(buf, "group=64"), "options '%s'", buf);
    CHECK(q->format_options(p, buf, 4) == HC_E_ARG, "a short buffer is refused");
    q->free_params(p);
    p = NULL;
    CHECK(q->parse("group=48", &p) == HC_E_ARG && strstr(hc_last_error(), "group=48"), "'%s'", hc_last_error());
    CHECK(q->parse("bits=4", &p) == HC_E_ARG && strstr(hc_last_error(), "unknown option 'bits'"), "'%s'",
          hc_last_error());
    CHECK(q->parse("group", &p) == HC_E_ARG, "a key without a value is refused");
    CHECK(p == NULL, "no params are returned on failure");
}

static void test_shape(const hc_quant_ops *q)
{
    void *p;
    if (q->parse("group=32", &p) != HC_OK) { CHECK(0, "%s", hc_last_error()); return; }
    CHECK(q->check_shape(p, 64, 288) == HC_OK, "288 = 9 groups of 32");
    CHECK(q->check_shape(p, 64, 172) != HC_OK && strstr(hc_last_error(), "172"), "'%s'", hc_last_error());
    CHECK(q->packed_bytes(p, 3, 64) == 3 * 2 * 18, "%zu bytes", q->packed_bytes(p, 3, 64));
    q->free_params(p);
}

/* every weight within half a step (d/2) of its value, and the kernel equal to the reference */
static void test_quantize_and_kernel(const hc_quant_ops *q, const char *options)
{
    enum { ROWS = 37, COLS = 192, NTOK = 3 };
    void *p;
    if (q->parse(options, &p) != HC_OK) { CHECK(0, "%s", hc_last_error()); return; }
    int group = strstr(options, "64") ? 64 : 32;
    float *w = malloc(sizeof(float) * ROWS * COLS), *deq = malloc(sizeof(float) * ROWS * COLS);
    float *x = malloc(sizeof(float) * NTOK * COLS);
    float y[NTOK][ROWS], ref[NTOK][ROWS];
    void *packed = malloc(q->packed_bytes(p, ROWS, COLS));
    unsigned seed = 7;
    for (int i = 0; i < ROWS * COLS; i++) w[i] = frand(&seed) * (1.0f + (float)(i % 5));
    for (int i = 0; i < NTOK * COLS; i++) x[i] = frand(&seed);
    w[5] = 0.0f;   /* an all-zero group must not divide by zero */
    for (int i = 0; i < group; i++) w[COLS + i] = 0.0f;

    CHECK(q->quantize(p, w, ROWS, COLS, NULL, packed) == HC_OK, "%s", hc_last_error());
    q->dequantize_rows(p, packed, COLS, ROWS, 0, ROWS, deq);
    int bad = 0;
    for (int r = 0; r < ROWS; r++)
        for (int g = 0; g < COLS; g += group) {
            float amax = 0.0f;
            for (int i = 0; i < group; i++) amax = fmaxf(amax, fabsf(w[r * COLS + g + i]));
            float tol = amax / 7.0f * 0.5f * 1.01f + 1e-6f;   /* half a step, f16 rounding of d */
            for (int i = 0; i < group; i++)
                if (fabsf(deq[r * COLS + g + i] - w[r * COLS + g + i]) > tol) bad++;
        }
    CHECK(bad == 0, "%d weights off by more than half a step (%s)", bad, options);
    CHECK(deq[COLS] == 0.0f && deq[COLS + group - 1] == 0.0f, "a zero group dequantizes to zeros");

    /* a single row range and the same split in three, as the device's threads do */
    for (int t = 0; t < NTOK; t++)
        for (int o = 0; o < ROWS; o++) {
            double acc = 0.0;
            for (int i = 0; i < COLS; i++) acc += (double)deq[o * COLS + i] * x[t * COLS + i];
            ref[t][o] = (float)acc;
        }
    for (int split = 1; split <= 3; split++) {
        memset(y, 0xff, sizeof y);   /* NaN: the kernel must write every output it owns */
        for (int s = 0; s < split; s++) {
            int64_t r0 = (int64_t)ROWS * s / split, r1 = (int64_t)ROWS * (s + 1) / split;
            CHECK(q->matmul_rows(p, packed, COLS, ROWS, x, NULL, NTOK, &y[0][0], ROWS, r0, r1) == HC_OK, "%s",
                  hc_last_error());
        }
        float worst = 0.0f;
        for (int t = 0; t < NTOK; t++)
            for (int o = 0; o < ROWS; o++) {
                float e = fabsf(y[t][o] - ref[t][o]);
                worst = isnan(e) ? INFINITY : fmaxf(worst, e);
            }
        CHECK(worst < 1e-3f, "kernel differs from the reference by %g (%s, %d ranges)", worst, options, split);
    }
    CHECK(q->matmul_rows(p, packed, COLS, ROWS, x, NULL, NTOK, &y[0][0], ROWS, 0, ROWS + 1) == HC_E_ARG,
          "a row range past the end is refused");
    w[3] = NAN;
    CHECK(q->quantize(p, w, ROWS, COLS, NULL, packed) == HC_E_NUMERIC, "a NaN weight is refused");
    free(w);
    free(deq);
    free(x);
    free(packed);
    q->free_params(p);
}

int main(void)
{
    const hc_plugin_desc *d = hc_plugin_entry();
    CHECK(d->kind == HC_PLUGIN_QUANT && !strcmp(d->name, "sym4"), "descriptor %s", d->name);
    const hc_quant_ops *q = d->ops;
    test_options(q);
    test_shape(q);
    test_quantize_and_kernel(q, "group=32");
    test_quantize_and_kernel(q, "group=64");
    printf("test_sym4: %d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
