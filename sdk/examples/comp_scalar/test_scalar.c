/* test_scalar.c: checks the scalar plugin through its descriptor, without hcinfer: a branch small
 * enough to compute by hand, in f32 and f16, with strides, split ranges and a truncated rank. */
#include <stdio.h>
#include <string.h>

#include <hc/hc_comp.h>
#include <hc/hc_plugin.h>
#include <hc/hc_tensor.h>

const hc_plugin_desc *hc_plugin_entry(void);   /* defined by HC_PLUGIN_DEFINE in scalar.c */

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

/* A = [[1 2 3] [0 -1 1]] (rank 2, in 3), B = [[1 0] [2 1]] (out 2), stored by direction: [[1 2] [0 1]];
 * token 0: x = [1 2 3] -> t = [14 1] -> B t = [14 29];  token 1: x = [1 1 1] -> t = [6 0] -> [6 12] */
static const float A[6] = { 1, 2, 3, 0, -1, 1 }, B[4] = { 1, 2, 0, 1 }, X[6] = { 1, 2, 3, 1, 1, 1 };

static void run(const hc_comp_ops *c, hc_dtype dtype)
{
    uint16_t a16[6], b16[4];
    for (int i = 0; i < 6; i++) a16[i] = hc_f32_to_f16(A[i]);
    for (int i = 0; i < 4; i++) b16[i] = hc_f32_to_f16(B[i]);
    hc_branch br = { .name = "test", .dtype = dtype, .in = 3, .out = 2, .rank = 2,
                     .a = dtype == HC_F16 ? (const void *)a16 : A, .b = dtype == HC_F16 ? (const void *)b16 : B };
    const char *tn = hc_dtype_name(dtype);
    CHECK(c->supports(dtype), "%s is supported", tn);

    float t[2][4], y[2][5];   /* strides ldt = 4, ldy = 5 */
    memset(t, 0, sizeof t);
    memset(y, 0, sizeof y);
    y[0][1] = 100.0f;   /* up adds to what is there */
    CHECK(c->down(&br, 2, X, 2, &t[0][0], 4, 0, 1) == HC_OK && c->down(&br, 2, X, 2, &t[0][0], 4, 1, 2) == HC_OK,
          "%s", hc_last_error());
    CHECK(t[0][0] == 14 && t[0][1] == 1 && t[1][0] == 6 && t[1][1] == 0, "%s t = %g %g / %g %g", tn, t[0][0],
          t[0][1], t[1][0], t[1][1]);
    CHECK(c->up(&br, 2, &t[0][0], 4, 2, &y[0][0], 5, 0, 1) == HC_OK && c->up(&br, 2, &t[0][0], 4, 2, &y[0][0], 5, 1, 2) == HC_OK,
          "%s", hc_last_error());
    CHECK(y[0][0] == 14 && y[0][1] == 129 && y[1][0] == 6 && y[1][1] == 12, "%s y = %g %g / %g %g", tn, y[0][0],
          y[0][1], y[1][0], y[1][1]);

    /* active rank 1: only the first direction (the first rows of A and B) */
    memset(y, 0, sizeof y);
    CHECK(c->down(&br, 1, X, 1, &t[0][0], 4, 0, 1) == HC_OK && c->up(&br, 1, &t[0][0], 4, 1, &y[0][0], 5, 0, 2) == HC_OK,
          "%s", hc_last_error());
    CHECK(y[0][0] == 14 && y[0][1] == 28, "%s rank 1: y = %g %g", tn, y[0][0], y[0][1]);

    CHECK(c->down(&br, 2, X, 1, &t[0][0], 4, 0, 3) == HC_E_ARG, "a direction range past the rank is refused");
    CHECK(c->up(&br, 3, &t[0][0], 4, 1, &y[0][0], 5, 0, 2) == HC_E_ARG, "an active rank above the stored one is refused");
    CHECK(c->up(&br, 2, &t[0][0], 4, 1, &y[0][0], 5, 0, 3) == HC_E_ARG, "an output range past the end is refused");
}

int main(void)
{
    const hc_plugin_desc *d = hc_plugin_entry();
    CHECK(d->kind == HC_PLUGIN_COMP && !strcmp(d->name, "scalar"), "descriptor %s", d->name);
    const hc_comp_ops *c = d->ops;
    run(c, HC_F32);
    run(c, HC_F16);
    CHECK(!c->supports(HC_BF16), "bf16 is not supported");
    hc_branch bf = { .name = "bf", .dtype = HC_BF16, .in = 3, .out = 2, .rank = 2, .a = A, .b = B };
    float t[2];
    CHECK(c->down(&bf, 2, X, 1, t, 2, 0, 2) == HC_E_UNSUPPORTED && strstr(hc_last_error(), "bf16"), "'%s'",
          hc_last_error());
    printf("test_scalar: %d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
