/* test_pipeline.c: Lua pipeline scripts on the compressed stories260K: errors reported with file and
 * line, bad on_step answers refused, the instruction limit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stories_fixture.h"
#include "test_util.h"

static char *default_script(void)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/scripts/pipelines/default.lua", HC_SOURCE_DIR);
    return hc_test_read_file(path, NULL);
}

static void test_pipeline_errors(void)
{
    if (!hc_fix_model()) return;
    int32_t got[HC_FIX_N_GEN];
    char p1[1100], p2[1100], p3[1100], p4[1100];
    snprintf(p1, sizeof p1, "%s", hc_fix_write_script("syntax.lua", "layer = {\n  { op = 'norm', name = 'attn_norm' \n}}\nfunction (\n"));
    hc_fix_run ro = { .sched = "async", .host_threads = 1, .pipeline = p1 };
    CU_ASSERT_EQUAL(hc_fix_generate(&ro, got, NULL), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "syntax.lua:4:")); /* file and line */

    snprintf(p2, sizeof p2, "%s", hc_fix_write_script("runtime.lua", "local x = nil\nlayer = x.field\n"));
    ro.pipeline = p2;
    CU_ASSERT_EQUAL(hc_fix_generate(&ro, got, NULL), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "runtime.lua:2:"));

    snprintf(p3, sizeof p3, "%s", hc_fix_write_script("order.lua",
             "layer = {\n { op = 'linear', name = 'attn_q', input = 'xn', output = 'q' },\n}\n"));
    ro.pipeline = p3;
    CU_ASSERT_EQUAL(hc_fix_generate(&ro, got, NULL), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "layer[1] (attn_q): reads 'xn' before any stage"));

    /* on_step answers: a rank above the stored one, and an unknown stage, are refused */
    char *base = default_script();
    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    const char *answers[] = { "function on_step(s) return { ['blk.0.attn_q'] = { rank = 999 } } end\n",
                              "function on_step(s) return { ['blk.99.attn_q'] = { rank = 1 } } end\n",
                              "function on_step(s) return { ['blk.0.attn_q'] = { sched = 'nonexistent' } } end\n",
                              "function on_step(s) while true do end end\n" };
    const char *expect[] = { "rank must be an integer from 0 to 6", "not a stage with a branch", "not loaded", "instruction limit" };
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(base) + strlen(answers[i]) + 1;
        char *text = malloc(n);
        snprintf(text, n, "%s%s", base, answers[i]);
        snprintf(p4, sizeof p4, "%s", hc_fix_write_script("answer.lua", text));
        free(text);
        ro.pipeline = p4;
        CU_ASSERT_EQUAL(hc_fix_generate(&ro, got, NULL), HC_E_SCRIPT);
        if (!strstr(hc_last_error(), expect[i])) printf("\n  answer %d: %s\n", i, hc_last_error());
        CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), expect[i]));
    }
    /* a good answer is applied: every branch ends up switched off */
    const char *off = "function on_step(s) local a = {} for _, st in ipairs(s.stages) do a[st.name] = { branch = false } end return a end\n";
    size_t n = strlen(base) + strlen(off) + 1;
    char *text = malloc(n);
    snprintf(text, n, "%s%s", base, off);
    snprintf(p4, sizeof p4, "%s", hc_fix_write_script("off.lua", text));
    free(text);
    ro.pipeline = p4;
    hc_context *c = NULL;
    HC_ASSERT_OK(hc_fix_generate(&ro, got, &c));
    int on = 0, branches = 0;
    for (int i = 0; i < c->n_stages; i++) {
        branches += c->stages[i].branch != NULL;
        on += c->stages[i].branch && c->stages[i].branch_enabled;
    }
    CU_ASSERT(branches > 0);
    CU_ASSERT_EQUAL(on, 0);
    hc_fix_keep_free(c);
    free(base);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "pipeline script errors", test_pipeline_errors },
        { NULL, NULL },
    };
    return hc_test_run("pipeline", cases);
}
