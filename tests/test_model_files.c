/* test_model_files.c: model files written to break the loader -- the reproducers the fuzzers found
 * (issue 22 and tests/fuzz) -- are refused with a message, without undefined behaviour. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_load.h"
#include "test_util.h"

static const char *write_bytes(const char *name, const void *data, size_t n)
{
    const char *path = hc_test_tmp(name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t w = fwrite(data, 1, n, f);
    fclose(f);
    return w == n ? path : NULL;
}

/* Loading path fails with HC_E_FORMAT and a message holding want. */
static void expect_refused(const char *path, const char *want)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    hc_model *m = NULL;
    hc_clear_error();
    hc_status st = hc_model_load(path, NULL, &m);
    CU_ASSERT_EQUAL(st, HC_E_FORMAT);
    CU_ASSERT_PTR_NULL(m);
    if (!strstr(hc_last_error(), want)) {
        printf("\n  %s: message '%s' lacks '%s'\n", path, hc_last_error(), want);
        CU_FAIL("wrong message");
    }
    hc_model_free(m);
}

/* Issue 22, finding 1: a 28-byte llama2.c header, all zero but vocab_size = INT32_MIN, made the
 * reader compute -INT32_MIN (undefined behaviour; UBSan stops there). Every field at INT32_MIN
 * and INT32_MAX is refused by name too. */
static void test_llama2c_extreme_header(void)
{
    int32_t h[7] = { 0 };
    h[5] = INT32_MIN;
    expect_refused(write_bytes("vocab_min.bin", h, sizeof h), "vocab_size = -2147483648 is out of range");
    for (int field = 0; field < 7; field++)
        for (int k = 0; k < 2; k++) {
            int32_t g[7] = { 64, 128, 2, 4, 4, 32, 16 };
            g[field] = k ? INT32_MAX : INT32_MIN;
            expect_refused(write_bytes("extreme.bin", g, sizeof g), "out of range");
        }
}

int main(void)
{
    static const hc_test_case cases[] = {
        {"llama2c: extreme header fields are refused", test_llama2c_extreme_header},
        {NULL, NULL},
    };
    return hc_test_run("model_files", cases);
}
