/* harness.c: CUnit runner, shared-data lookup, temporary files and the hcinfer runner for the test suites (test_util.h).
 * A suite fails the process (non-zero exit) when any assertion fails. */
#include "test_util.h"

#include "registry.h"
#include "scratch_dir.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct hc_registry *hc_test_plugins(void)
{
    hc_registry *reg = NULL;
    if (hc_registry_create(&reg) == HC_OK && hc_registry_scan(reg, HC_PLUGIN_BUILD_DIR) == HC_OK) return reg;
    fprintf(stderr, "plugins: %s\n", hc_last_error());
    hc_registry_free(reg);
    return NULL;
}

const char *hc_test_tmp(const char *name) { return hc_scratch_path("hc-test", 0, name); }

const char *hc_test_shared(const char *relative, const char *test_name)
{
    static char path[1024];
    const char *dir = getenv("HC_SHARED_DIR");
    if (!dir) dir = HC_SHARED_DIR;
    snprintf(path, sizeof path, "%s/%s", dir, relative);
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("\n  SKIP %s: %s is absent (set HC_SHARED_DIR to the shared data folder)\n", test_name, path);
        return NULL;
    }
    return path;
}

char *hc_test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (size) *size = (size_t)n;
    }
    return buf;
}

int hc_test_hcinfer(const char *args, const char *out, const char *err)
{
    size_t cap = strlen(args) + strlen(out) + strlen(err) + 2048;
    char *cmd = malloc(cap);
    if (!cmd) return -1;
    snprintf(cmd, cap, "%s/hcinfer %s > '%s' 2> '%s'", HC_BIN_DIR, args, out, err);
    int rc = system(cmd);
    free(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int hc_test_run(const char *suite_name, const hc_test_case *cases)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    if (!suite) return 2;
    for (const hc_test_case *c = cases; c->name; c++)
        if (!CU_add_test(suite, c->name, c->fn)) return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

double hc_test_gauss(uint64_t *s)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
        u[i] = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}
