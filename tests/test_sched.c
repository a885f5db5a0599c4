/* test_sched.c: the heterogeneous runtime on a compressed stories260K: every scheduler (serial,
 * async, inline; 1 and 2 host threads) gives the same greedy tokens; the default scheduler of
 * hcinfer run; broken schedulers are refused; the rank controller lowers ranks when the host is slow. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry_default.h"
#include "stories_fixture.h"
#include "test_util.h"

static void test_schedulers_agree(void)
{
    if (hc_fix_model()) hc_fix_check_schedulers_agree(hc_fix_path);
}

/* hcinfer run says which scheduler and threads it uses: on the cpu device the branches run inline
 * on all the device threads unless another scheduler, or the rank controller (async), is asked for. */
static void test_default_scheduler(void)
{
    char out[800], err[800], args[4096];
    if (!hc_fix_cli_ready("run", out, err, sizeof out)) return;
    const char *cases[][2] = { { "-t 2", "scheduler inline, 2 device thread(s), 0 host thread(s)" },
                               { "-t 1 --sched async --host-threads 1", "scheduler async, 1 device thread(s), 1 host thread(s)" },
                               { "-t 1 --host-budget 0.9", "scheduler async, 1 device thread(s), 1 host thread(s)" },
                               { "--no-comp -t 1", "1 device thread(s), no branches in use" } };
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "run -m '%s' -n 4 --temp 0 %s", hc_fix_path, cases[i][0]);
        hc_fix_check_cli(args, out, err, 0, cases[i][1]);
    }
    remove(out);
    remove(err);
}

static void test_broken_schedulers(void)
{
    if (!hc_fix_model()) return;
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    char path[2048];
    snprintf(path, sizeof path, "%s/sched_missing_fn/sched_missing_fn.so", HC_TEST_PLUGIN_DIR);
    CU_ASSERT_EQUAL(hc_registry_load_file(r, path), HC_E_PLUGIN);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "lacks the required function output_needed"));
    hc_registry_free(r);
    /* a scheduler that never merges: the runtime stops at the first job whose output is needed */
    int32_t got[HC_FIX_N_GEN];
    hc_fix_run ro = { .sched = "lazy", .host_threads = 1 };
    CU_ASSERT_EQUAL(hc_fix_generate(&ro, got, NULL), HC_E_PLUGIN);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "scheduler 'lazy' left branch job"));
}

static void test_rank_controller(void)
{
    if (!hc_fix_model()) return;
    int32_t got[HC_FIX_N_GEN];
    hc_context *c = NULL;
    /* a host 300 us slower per job than the device can hide: the controller must cut the ranks */
    hc_fix_run ro = { .sched = "async", .host_threads = 1, .host_budget = 0.9, .host_delay_us = 300 };
    HC_ASSERT_OK(hc_fix_generate(&ro, got, &c));
    double mean_share, min_share, mean_rank;
    hc_rank_control_summary(c, &mean_share, &min_share, &mean_rank);
    CU_ASSERT(mean_share < 0.5);
    hc_fix_keep_free(c);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "schedulers agree", test_schedulers_agree },
        { "hcinfer run: the default scheduler", test_default_scheduler },
        { "broken schedulers refused", test_broken_schedulers },
        { "rank controller under a slow host", test_rank_controller },
        { NULL, NULL },
    };
    return hc_test_run("sched", cases);
}
