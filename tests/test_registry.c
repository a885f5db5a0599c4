/* test_registry.c: the plugin loader: a good plugin loads and is found by kind and name; another
 * ABI, no entry point, a null descriptor, a missing function, a duplicate and a non-library are
 * each refused with a message naming the file and the reason. */
#include <stdio.h>
#include <string.h>

#include "registry_default.h"
#include "test_util.h"

static char path[1024];

static const char *plugin(const char *name)
{
    snprintf(path, sizeof path, "%s/%s/%s.so", HC_TEST_PLUGIN_DIR, name, name);
    return path;
}

static void expect_refused(const char *name, const char *reason_part)
{
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    CU_ASSERT_EQUAL(hc_registry_load_file(r, plugin(name)), HC_E_PLUGIN);
    const char *msg = hc_last_error();
    if (!strstr(msg, reason_part) || !strstr(msg, name)) printf("\n  message for %s: %s\n", name, msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, reason_part));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, name)); /* the file is named */
    CU_ASSERT_EQUAL(r->n_plugins, 0);
    CU_ASSERT_EQUAL(r->n_refused, 1);
    hc_registry_free(r);
}

static void test_good_plugin_loads(void)
{
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    HC_ASSERT_OK(hc_registry_load_file(r, plugin("good")));
    const hc_plugin *p = hc_registry_find(r, HC_PLUGIN_DEVICE, "testdev");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_STRING_EQUAL(p->desc->version, "0.1.0");
    CU_ASSERT_PTR_NOT_NULL(strstr(p->path, "good.so"));
    CU_ASSERT_PTR_NULL(hc_registry_find(r, HC_PLUGIN_QUANT, "testdev")); /* kinds are separate */
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "no quant plugin named 'testdev'"));
    hc_registry_free(r);
}

static void test_wrong_abi(void)
{
    char want[128];
    snprintf(want, sizeof want, "ABI version %u, but this hcinfer has ABI version %u", HC_ABI_VERSION + 1, HC_ABI_VERSION);
    expect_refused("wrong_abi", want);
}
static void test_no_entry(void) { expect_refused("no_entry", "no entry point"); }
static void test_null_descriptor(void) { expect_refused("null_desc", "returned no descriptor"); }
static void test_missing_function(void) { expect_refused("missing_fn", "lacks the required function create"); }
static void test_not_a_library(void) { expect_refused("not_a_library", "not a loadable shared library"); }

static void test_duplicate_name(void)
{
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    HC_ASSERT_OK(hc_registry_load_file(r, plugin("good")));
    char first[1024];
    snprintf(first, sizeof first, "%s", path);
    CU_ASSERT_EQUAL(hc_registry_load_file(r, plugin("good_twin")), HC_E_PLUGIN);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "already loaded from"));
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), first));       /* names the first file */
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "good_twin")); /* and the refused one */
    CU_ASSERT_EQUAL(r->n_plugins, 1);
    hc_registry_free(r);
}

static void test_scan_records_refusals(void)
{
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s/good:%s/wrong_abi:%s/not_a_library:/nonexistent/folder", HC_TEST_PLUGIN_DIR,
             HC_TEST_PLUGIN_DIR, HC_TEST_PLUGIN_DIR);
    HC_ASSERT_OK(hc_registry_scan(r, dirs));
    CU_ASSERT_EQUAL(r->n_plugins, 1);
    CU_ASSERT_EQUAL(r->n_refused, 2);
    hc_registry_free(r);
}

static void test_default_has_cpu(void)
{
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    HC_ASSERT_OK(hc_registry_load_default(r));
    CU_ASSERT_PTR_NOT_NULL(hc_registry_find(r, HC_PLUGIN_DEVICE, "cpu"));
    CU_ASSERT_EQUAL(r->n_refused, 0); /* every plugin the build ships loads */
    for (int i = 0; i < r->n_refused; i++) printf("\n  refused: %s\n", r->refused[i].reason);
    hc_registry_free(r);
}

/* The messages behind the refusals: hc_error_context puts the context before the message, and a
 * message longer than the 1023 characters kept is cut at its end. */
static void test_error_context(void)
{
    CU_ASSERT_EQUAL(hc_error(HC_E_FORMAT, "bad magic"), HC_E_FORMAT);
    CU_ASSERT_EQUAL(hc_error_context(HC_E_FORMAT, "%s: ", "m.gguf"), HC_E_FORMAT);
    CU_ASSERT_STRING_EQUAL(hc_last_error(), "m.gguf: bad magic");
    char big[1500];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    hc_error(HC_E_IO, "%s", big);
    hc_error_context(HC_E_IO, "ctx: ");
    CU_ASSERT_EQUAL(strlen(hc_last_error()), 1023);
    CU_ASSERT_EQUAL(strncmp(hc_last_error(), "ctx: xxx", 8), 0);
    hc_error(HC_E_IO, "tail");
    hc_error_context(HC_E_IO, "%s", big);
    CU_ASSERT_EQUAL(strlen(hc_last_error()), 1023);
    CU_ASSERT_EQUAL(strspn(hc_last_error(), "x"), 1023);
    hc_clear_error();
}

int main(void)
{
    const hc_test_case cases[] = {
        { "good plugin loads", test_good_plugin_loads },
        { "other ABI refused", test_wrong_abi },
        { "no entry point refused", test_no_entry },
        { "null descriptor refused", test_null_descriptor },
        { "missing function refused", test_missing_function },
        { "non-library refused", test_not_a_library },
        { "duplicate name refused", test_duplicate_name },
        { "scan records refusals", test_scan_records_refusals },
        { "default registry has cpu", test_default_has_cpu },
        { "error messages: context first, cut at 1023 characters", test_error_context },
        { NULL, NULL },
    };
    return hc_test_run("registry", cases);
}
