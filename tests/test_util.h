/* test_util.h: the small harness every CUnit suite uses: registering a suite and running it,
 * finding ../shared data (skipping with a reason when absent), temporary files, running hcinfer. */
#ifndef HC_TEST_UTIL_H
#define HC_TEST_UTIL_H

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hc_test_case {
    const char *name;
    void (*fn)(void);
} hc_test_case;

/* Registers one suite of the NULL-terminated cases and runs it; returns the process exit code
 * (0 when every assertion passed). */
int hc_test_run(const char *suite, const hc_test_case *cases);

/* Path of a file under ../shared (static buffer), or NULL after printing "SKIP: <why>" when the
 * file is absent. */
const char *hc_test_shared(const char *relative, const char *test_name);

/* A fresh path in a per-process temporary folder (removed at exit), e.g. "x.gguf". */
const char *hc_test_tmp(const char *name);

/* Runs the built `hcinfer ARGS` (args start with the subcommand) with stdout and stderr sent to the
 * files out and err; returns its exit status (-1 when it did not exit normally). */
int hc_test_hcinfer(const char *args, const char *out, const char *err);

/* A registry of the plugins built beside the tests (HC_PLUGIN_BUILD_DIR); NULL, after printing
 * why, when it cannot be made. */
struct hc_registry *hc_test_plugins(void);

/* Reads a whole file into memory (NUL-terminated); NULL on failure. */
char *hc_test_read_file(const char *path, size_t *size);

/* A standard normal draw (Box-Muller over a xorshift64 state, which must not be 0). */
double hc_test_gauss(uint64_t *state);

/* Asserts that a status is HC_OK and prints hc_last_error() when it is not. */
#define HC_ASSERT_OK(expr)                                                             \
    do {                                                                               \
        hc_status st__ = (expr);                                                       \
        if (st__ != HC_OK) fprintf(stderr, "  %s -> %s\n", #expr, hc_last_error());    \
        CU_ASSERT_EQUAL_FATAL(st__, HC_OK);                                            \
    } while (0)

#endif
