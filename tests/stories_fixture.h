/* stories_fixture.h: what the runtime suites share: stories260K compressed once per process (3-bit
 * layers, rank-6 branches), greedy generation under a chosen scheduler, and the CLI helpers. */
#ifndef HC_STORIES_FIXTURE_H
#define HC_STORIES_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "hc/hc_tensor.h"

#define HC_FIX_N_GEN 48

/* The compressed models' paths ("" until compressed). */
extern char hc_fix_path[1024], hc_fix_q8_path[1024];

/* stories260K compressed with branches stored as dtype into path (once; NULL, after printing why,
 * when the model is absent or compression failed). */
const char *hc_fix_compress_stories(hc_dtype dtype, char *path, size_t size, const char *file);
/* The f16-branch model (hc_fix_path), compressed on first use. */
const char *hc_fix_model(void);

typedef struct hc_fix_run {
    const char *sched;        /* NULL: branches off */
    int host_threads;
    const char *pipeline;
    double host_budget;
    int host_delay_us;
    const char *model;        /* NULL: the compressed stories260K */
    int separate_memory;      /* the cpu device claims memory of its own: weights, buffers and the
                                 inline scheduler's branch factors go through alloc/upload */
    const int32_t *force;     /* not NULL: these HC_FIX_N_GEN tokens are fed instead of the greedy ones */
    float *last_logits;       /* not NULL: the logits of the last step are copied here */
} hc_fix_run;

/* HC_FIX_N_GEN greedy tokens from BOS into out; returns the status of the first failure. With keep,
 * the context (and its model, device, registry) stays alive for inspection: free it with
 * hc_fix_keep_free. */
hc_status hc_fix_generate(const hc_fix_run *ro, int32_t *out, hc_context **keep);
void hc_fix_keep_free(hc_context *c);
/* Every scheduler with 1 and 2 host threads, and on a device with memory of its own, gives the
 * serial scheduler's greedy tokens from model, which differ from the backbone's alone (asserts). */
void hc_fix_check_schedulers_agree(const char *model);
float hc_fix_max_abs_diff(const float *a, const float *b, int n);

/* The compressed model and the built program are there (else the CLI tests skip); out and err get
 * temporary files named after stem. */
int hc_fix_cli_ready(const char *stem, char *out, char *err, size_t n);
/* Runs hcinfer with args: it must exit with want_rc and say `want` on stderr. */
void hc_fix_check_cli(const char *args, const char *out, const char *err, int want_rc, const char *want);
/* Writes text to a temporary file called name; returns its path. */
const char *hc_fix_write_script(const char *name, const char *text);

#endif
