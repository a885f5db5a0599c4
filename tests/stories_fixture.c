/* stories_fixture.c: stories260K compressed once per process, greedy generation under a chosen
 * scheduler (and device memory model), and the helpers of the CLI tests (see stories_fixture.h). */
#include "stories_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress.h"
#include "device_cpu.h"
#include "model_load.h"
#include "pipeline_lua.h"
#include "registry_default.h"
#include "sampler.h"
#include "test_util.h"

char hc_fix_path[1024], hc_fix_q8_path[1024];

/* stories260K with 3-bit layers and rank-6 branches stored as `dtype`, compressed once into `path`
 * (q8_0: f16 where a width is not a multiple of 32, the ffn's 172). */
const char *hc_fix_compress_stories(hc_dtype dtype, char *path, size_t size, const char *file)
{
    if (path[0]) return path;
    const char *src = hc_test_shared("models/stories260K/stories260K.bin", "compressed stories260K");
    if (!src) return NULL;
    char source[1024];
    snprintf(source, sizeof source, "%s", src);
    hc_registry *r;
    if (hc_registry_create(&r) != HC_OK || hc_registry_load_default(r) != HC_OK) return NULL;
    snprintf(path, size, "%s", hc_test_tmp(file));
    hc_compress_opts o = { .input = source, .output = path, .quant = "rtn:bits=3,group=32", .rank = 6,
                           .threads = 2, .branch_dtype = dtype, .registry = r };
    hc_compress_report rep;
    hc_status st = hc_compress(&o, &rep);
    if (st != HC_OK) printf("\n  compress: %s\n", hc_last_error());
    hc_registry_free(r);
    if (st != HC_OK) path[0] = '\0';
    return st == HC_OK ? path : NULL;
}

const char *hc_fix_model(void) { return hc_fix_compress_stories(HC_F16, hc_fix_path, sizeof hc_fix_path, "st-w4.gguf"); }

/* Greedy tokens from BOS; returns the status of the first failure. */
hc_status hc_fix_generate(const hc_fix_run *ro, int32_t *out, hc_context **keep)
{
    hc_registry *r = NULL;
    hc_device *d = NULL;
    hc_model *m = NULL;
    hc_context *c = NULL;
    hc_status st = hc_registry_create(&r);
    if (st == HC_OK) st = hc_registry_load_default(r);
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/sched_lazy", HC_TEST_PLUGIN_DIR);
    if (st == HC_OK) st = hc_registry_scan(r, dir);
    hc_device_config dc = { .n_threads = 1 };
    if (st == HC_OK) st = hc_cpu_device_create(&dc, &d);
    if (st == HC_OK && ro->separate_memory) d->host_memory = 0;
    hc_model_load_opts lo = { .registry = r, .no_branches = ro->sched == NULL };
    if (st == HC_OK) st = hc_model_load(ro->model ? ro->model : hc_fix_path, &lo, &m);
    hc_pipeline_source *src = NULL;
    if (st == HC_OK && ro->pipeline) st = hc_pipeline_lua_open(ro->pipeline, NULL, &src);
    hc_context_params cp = { .n_ctx = 128, .registry = r, .pipeline = src, .host_budget = ro->host_budget,
                             .host_threads = ro->host_threads };
    if (st == HC_OK && ro->sched) {
        const hc_plugin *comp = hc_registry_find(r, HC_PLUGIN_COMP, "host");
        const hc_plugin *sp = hc_registry_find(r, HC_PLUGIN_SCHED, ro->sched);
        if (!comp || !sp) st = HC_E_PLUGIN;
        else {
            cp.comp = comp->desc->ops;
            cp.sched = sp->desc->ops;
            cp.sched_name = ro->sched;
        }
    }
    if (st == HC_OK) st = hc_context_create(m, d, &cp, &c);
    if (st == HC_OK && c->brt) hc_branch_rt_set_host_delay(c->brt, ro->host_delay_us);
    int32_t tok = 1;
    const float *logits;
    for (int i = 0; i < HC_FIX_N_GEN && st == HC_OK; i++) {
        st = hc_decode(c, &tok, 1, 0, &logits);
        if (st == HC_OK) out[i] = tok = ro->force ? ro->force[i] : hc_argmax(logits, m->cfg.n_vocab);
        if (st == HC_OK && ro->last_logits && i == HC_FIX_N_GEN - 1) memcpy(ro->last_logits, logits, sizeof(float) * (size_t)m->cfg.n_vocab);
    }
    if (keep && st == HC_OK) {
        *keep = c; /* the caller inspects it, then frees everything through keep_free */
        return st;
    }
    hc_context_free(c);
    hc_pipeline_lua_close(src);
    hc_model_free(m);
    if (d) d->ops->destroy(d);
    hc_registry_free(r);
    return st;
}

/* Frees what hc_fix_generate() kept alive for inspection. */
void hc_fix_keep_free(hc_context *c)
{
    hc_model *m = c->model;
    hc_device *d = c->dev;
    const hc_registry *r = c->registry;
    hc_pipeline_source *src = (hc_pipeline_source *)c->source;
    hc_context_free(c);
    hc_pipeline_lua_close(src);
    hc_model_free(m);
    d->ops->destroy(d);
    hc_registry_free((hc_registry *)r);
}

float hc_fix_max_abs_diff(const float *a, const float *b, int n)
{
    float d = 0;
    for (int i = 0; i < n; i++) d = fabsf(a[i] - b[i]) > d ? fabsf(a[i] - b[i]) : d;
    return d;
}

/* The compressed model and the built program are there (else the CLI tests skip); out and err get
 * temporary files named after stem. */
int hc_fix_cli_ready(const char *stem, char *out, char *err, size_t n)
{
    char bin[1200];
    snprintf(bin, sizeof bin, "%s/hcinfer", HC_BIN_DIR);
    if (!hc_fix_model() || access(bin, X_OK) != 0) return 0;
    char name[64];
    snprintf(name, sizeof name, "%s.out", stem);
    snprintf(out, n, "%s", hc_test_tmp(name));
    snprintf(name, sizeof name, "%s.err", stem);
    snprintf(err, n, "%s", hc_test_tmp(name));
    return 1;
}

/* Runs hcinfer with args: it must exit with want_rc and say `want` on stderr. */
void hc_fix_check_cli(const char *args, const char *out, const char *err, int want_rc, const char *want)
{
    CU_ASSERT_EQUAL(hc_test_hcinfer(args, out, err), want_rc);
    char *msg = hc_test_read_file(err, NULL);
    if (!msg || !strstr(msg, want)) printf("\n  hcinfer %s: '%s'\n", args, msg ? msg : "");
    CU_ASSERT(msg && strstr(msg, want));
    free(msg);
}

const char *hc_fix_write_script(const char *name, const char *text)
{
    const char *p = hc_test_tmp(name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

/* Every scheduler with 1 and 2 host threads, and on a device with memory of its own, gives the
 * serial scheduler's greedy tokens from `model`, which differ from the backbone's alone. */
void hc_fix_check_schedulers_agree(const char *model)
{
    int32_t base[HC_FIX_N_GEN], bare[HC_FIX_N_GEN], got[HC_FIX_N_GEN];
    hc_fix_run ro = { .sched = "serial", .host_threads = 1, .model = model };
    HC_ASSERT_OK(hc_fix_generate(&ro, base, NULL));
    const char *scheds[] = { "serial", "async", "inline" };
    for (int s = 0; s < 3; s++)
        for (int h = 1; h <= 2; h++) {
            ro = (hc_fix_run){ .sched = scheds[s], .host_threads = h, .model = model };
            HC_ASSERT_OK(hc_fix_generate(&ro, got, NULL));
            if (memcmp(base, got, sizeof got)) printf("\n  %s with %d host threads differs\n", scheds[s], h);
            CU_ASSERT_EQUAL(memcmp(base, got, sizeof got), 0);
        }
    /* a device without host memory computes the branches with its own matmul, on copies of the
       factors (B transposed to its weight layout): the same tokens */
    for (int s = 0; s < 3; s++) {
        ro = (hc_fix_run){ .sched = scheds[s], .host_threads = 1, .separate_memory = 1, .model = model };
        HC_ASSERT_OK(hc_fix_generate(&ro, got, NULL));
        if (memcmp(base, got, sizeof got)) printf("\n  %s on a device with memory of its own differs\n", scheds[s]);
        CU_ASSERT_EQUAL(memcmp(base, got, sizeof got), 0);
    }
    ro = (hc_fix_run){ .sched = NULL, .model = model };
    HC_ASSERT_OK(hc_fix_generate(&ro, bare, NULL));
    CU_ASSERT_NOT_EQUAL(memcmp(base, bare, sizeof bare), 0); /* the branches do change the output */
    char path[1200];
    snprintf(path, sizeof path, "%s/scripts/pipelines/default.lua", HC_SOURCE_DIR);
    ro = (hc_fix_run){ .sched = "serial", .host_threads = 1, .pipeline = path, .model = model };
    HC_ASSERT_OK(hc_fix_generate(&ro, got, NULL));
    CU_ASSERT_EQUAL(memcmp(base, got, sizeof got), 0); /* the default script is the default pipeline */
}
