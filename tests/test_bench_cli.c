/* test_bench_cli.c: hcinfer bench on the compressed stories260K: its JSON, a result per scheduler,
 * the controller's ranks, and the refusal of unknown schedulers and out-of-range options. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval_json.h"
#include "stories_fixture.h"
#include "test_util.h"

static int run_bench(const char *args, const char *out, const char *err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "bench %s", args);
    return hc_test_hcinfer(cmd, out, err);
}

static double json_num(const hc_json *o, const char *key)
{
    const hc_json *v = hc_json_get(o, key);
    CU_ASSERT_FATAL(v && v->type == HC_JSON_NUMBER);
    return v->number;
}

/* hcinfer bench: one JSON object, a result per scheduler (repetitions interleaved); the schedulers
 * with branches decode the same tokens and read branch bytes, the backbone alone none; with the
 * controller and a slow host the active ranks are reported; unknown schedulers and out-of-range
 * options exit non-zero, naming them. */
static void test_bench_cli(void)
{
    char out[800], err[800], args[4096];
    if (!hc_fix_cli_ready("bench", out, err, sizeof out)) return;
    snprintf(args, sizeof args, "-m '%s' --sched none,serial,async -n 8 -p 4 -r 2 -t 1 --host-threads 1 --json", hc_fix_path);
    CU_ASSERT_EQUAL_FATAL(run_bench(args, out, err), 0);
    size_t size = 0;
    char *text = hc_test_read_file(out, &size);
    CU_ASSERT_FATAL(text != NULL);
    hc_json v;
    HC_ASSERT_OK(hc_json_parse(text, size, &v));
    CU_ASSERT_EQUAL(json_num(&v, "reps"), 2);
    const hc_json *res = hc_json_get(&v, "results");
    CU_ASSERT_FATAL(res && res->type == HC_JSON_ARRAY && res->n == 3);
    const char *names[3] = { "none", "serial", "async" };
    for (int k = 0; k < 3; k++) {
        const hc_json *r = &res->items[k], *name = hc_json_get(r, "sched"), *same = hc_json_get(r, "same_tokens");
        CU_ASSERT_FATAL(name && name->type == HC_JSON_STRING && same);
        CU_ASSERT_STRING_EQUAL(name->string, names[k]);
        CU_ASSERT(json_num(r, "decode_tok_s") > 0 && json_num(r, "prompt_tok_s") > 0);
        /* paired speed over the first scheduler: quartiles in order, exactly 1 for the first itself */
        const hc_json *pq = hc_json_get(r, "paired_vs_first");
        CU_ASSERT_FATAL(pq && pq->type == HC_JSON_ARRAY && pq->n == 3);
        CU_ASSERT(pq->items[0].number > 0 && pq->items[0].number <= pq->items[1].number &&
                  pq->items[1].number <= pq->items[2].number);
        if (k == 0) CU_ASSERT(pq->items[0].number == 1.0 && pq->items[2].number == 1.0);
        if (k == 0) {
            CU_ASSERT_EQUAL(same->type, HC_JSON_NULL);
            CU_ASSERT_EQUAL(json_num(r, "branch_bytes_touched_per_token"), 0);
        } else {
            CU_ASSERT(same->type == HC_JSON_BOOL && same->boolean);
            CU_ASSERT(json_num(r, "branch_bytes_touched_per_token") > 0 && json_num(r, "host_ms") > 0);
        }
    }
    hc_json_free(&v);
    free(text);

    snprintf(args, sizeof args, "-m '%s' --sched none,async -n 16 -p 4 -r 1 -t 1 --host-threads 1 --host-budget 0.9 --host-slowdown 20 --json",
             hc_fix_path);
    CU_ASSERT_EQUAL_FATAL(run_bench(args, out, err), 0);
    text = hc_test_read_file(out, &size);
    CU_ASSERT_FATAL(text != NULL);
    HC_ASSERT_OK(hc_json_parse(text, size, &v));
    res = hc_json_get(&v, "results");
    CU_ASSERT_FATAL(res && res->type == HC_JSON_ARRAY && res->n == 2);
    double end = json_num(&res->items[1], "rank_share_end"), low = json_num(&res->items[1], "rank_share_min");
    CU_ASSERT(end >= 0 && end <= 1 && low >= 0 && low <= end);
    hc_json_free(&v);
    free(text);

    const char *bad[][2] = { { "--sched none,bogus", "no sched plugin named 'bogus' is loaded" },
                             { "--sched none,serial,bogus", "no sched plugin named 'bogus' is loaded" },
                             { "--host-slowdown 1000", "--host-slowdown" } };
    const int want_rc[] = { 1, 1, 2 };
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "bench -m '%s' -n 2 -p 2 -r 1 %s", hc_fix_path, bad[i][0]);
        hc_fix_check_cli(args, out, err, want_rc[i], bad[i][1]);
    }
    remove(out);
    remove(err);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "hcinfer bench", test_bench_cli },
        { NULL, NULL },
    };
    return hc_test_run("bench_cli", cases);
}
