/* test_sched.c: the heterogeneous runtime on a compressed stories260K: every scheduler (serial,
 * async, inline; 1 and 2 host threads) gives the same greedy tokens; broken schedulers are
 * refused; pipeline scripts report their errors with file and line and bad on_step answers are
 * refused; the rank controller lowers ranks when the host is slow. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress.h"
#include "context.h"
#include "device_cpu.h"
#include "eval_json.h"
#include "gguf.h"
#include "model_load.h"
#include "registry_default.h"
#include "sampler.h"
#include "suffix.h"
#include "transpose.h"
#include "test_util.h"

#define N_GEN 48

static char model_path[1024], q8_model_path[1024];

/* stories260K with 3-bit layers and rank-6 branches stored as `dtype`, compressed once into `path`
 * (q8_0: f16 where a width is not a multiple of 32, the ffn's 172). */
static const char *compress_stories(hc_dtype dtype, char *path, size_t size, const char *file)
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

static const char *compressed_model(void) { return compress_stories(HC_F16, model_path, sizeof model_path, "st-w4.gguf"); }

typedef struct run_opts {
    const char *sched;        /* NULL: branches off */
    int host_threads;
    const char *pipeline;
    double host_budget;
    int host_delay_us;
    const char *model;        /* NULL: the compressed stories260K */
    int separate_memory;      /* the cpu device claims memory of its own: weights, buffers and the
                                 inline scheduler's branch factors go through alloc/upload */
    const int32_t *force;     /* not NULL: these N_GEN tokens are fed instead of the greedy ones */
    float *last_logits;       /* not NULL: the logits of the last step are copied here */
} run_opts;

/* Greedy tokens from BOS; returns the status of the first failure. */
static hc_status generate(const run_opts *ro, int32_t *out, hc_context **keep)
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
    if (st == HC_OK) st = hc_model_load(ro->model ? ro->model : model_path, &lo, &m);
    hc_context_params cp = { .n_ctx = 128, .registry = r, .pipeline = ro->pipeline, .host_budget = ro->host_budget,
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
    for (int i = 0; i < N_GEN && st == HC_OK; i++) {
        st = hc_decode(c, &tok, 1, 0, &logits);
        if (st == HC_OK) out[i] = tok = ro->force ? ro->force[i] : hc_argmax(logits, m->cfg.n_vocab);
        if (st == HC_OK && ro->last_logits && i == N_GEN - 1) memcpy(ro->last_logits, logits, sizeof(float) * (size_t)m->cfg.n_vocab);
    }
    if (keep && st == HC_OK) {
        *keep = c; /* the caller inspects it, then frees everything through keep_free */
        return st;
    }
    hc_context_free(c);
    hc_model_free(m);
    if (d) d->ops->destroy(d);
    hc_registry_free(r);
    return st;
}

/* Frees what generate() kept alive for inspection. */
static void keep_free(hc_context *c)
{
    hc_model *m = c->model;
    hc_device *d = c->dev;
    const hc_registry *r = c->registry;
    hc_context_free(c);
    hc_model_free(m);
    d->ops->destroy(d);
    hc_registry_free((hc_registry *)r);
}

/* Every scheduler with 1 and 2 host threads, and on a device with memory of its own, gives the
 * serial scheduler's greedy tokens from `model`, which differ from the backbone's alone. */
static void check_schedulers_agree(const char *model)
{
    int32_t base[N_GEN], bare[N_GEN], got[N_GEN];
    run_opts ro = { .sched = "serial", .host_threads = 1, .model = model };
    HC_ASSERT_OK(generate(&ro, base, NULL));
    const char *scheds[] = { "serial", "async", "inline" };
    for (int s = 0; s < 3; s++)
        for (int h = 1; h <= 2; h++) {
            ro = (run_opts){ .sched = scheds[s], .host_threads = h, .model = model };
            HC_ASSERT_OK(generate(&ro, got, NULL));
            if (memcmp(base, got, sizeof got)) printf("\n  %s with %d host threads differs\n", scheds[s], h);
            CU_ASSERT_EQUAL(memcmp(base, got, sizeof got), 0);
        }
    /* a device without host memory computes the branches with its own matmul, on copies of the
       factors (B transposed to its weight layout): the same tokens */
    for (int s = 0; s < 3; s++) {
        ro = (run_opts){ .sched = scheds[s], .host_threads = 1, .separate_memory = 1, .model = model };
        HC_ASSERT_OK(generate(&ro, got, NULL));
        if (memcmp(base, got, sizeof got)) printf("\n  %s on a device with memory of its own differs\n", scheds[s]);
        CU_ASSERT_EQUAL(memcmp(base, got, sizeof got), 0);
    }
    ro = (run_opts){ .sched = NULL, .model = model };
    HC_ASSERT_OK(generate(&ro, bare, NULL));
    CU_ASSERT_NOT_EQUAL(memcmp(base, bare, sizeof bare), 0); /* the branches do change the output */
    char path[1200];
    snprintf(path, sizeof path, "%s/scripts/pipelines/default.lua", HC_SOURCE_DIR);
    ro = (run_opts){ .sched = "serial", .host_threads = 1, .pipeline = path, .model = model };
    HC_ASSERT_OK(generate(&ro, got, NULL));
    CU_ASSERT_EQUAL(memcmp(base, got, sizeof got), 0); /* the default script is the default pipeline */
}

static void test_schedulers_agree(void)
{
    if (compressed_model()) check_schedulers_agree(model_path);
}

static float max_abs_diff(const float *a, const float *b, int n)
{
    float d = 0;
    for (int i = 0; i < n; i++) d = fabsf(a[i] - b[i]) > d ? fabsf(a[i] - b[i]) : d;
    return d;
}

static void write_format(const char *src, const char *dst, uint32_t version);

/* Branches stored as q8_0 (compress --branch-dtype q8_0): the layers of width 64 and 32 get q8_0
 * factors, the ffn (172) f16; fewer bytes; a file of format 1 with them is refused; every scheduler
 * agrees; and along the same tokens the logits stay within a tenth of what the branches change
 * from the f16-branch model's. */
static void test_q8_branches(void)
{
    if (!compressed_model() || !compress_stories(HC_Q8_0, q8_model_path, sizeof q8_model_path, "st-w4-q8.gguf")) return;
    hc_registry *r = NULL;
    hc_model *m8 = NULL, *m16 = NULL;
    hc_model_load_opts lo = { 0 };
    HC_ASSERT_OK(hc_registry_create(&r));
    lo.registry = r;
    HC_ASSERT_OK(hc_registry_load_default(r));
    HC_ASSERT_OK(hc_model_load(q8_model_path, &lo, &m8));
    HC_ASSERT_OK(hc_model_load(model_path, &lo, &m16));
    if (m8 && m16) {
        CU_ASSERT_EQUAL(m8->layers[0].branch[HC_PROJ_Q].dtype, HC_Q8_0);
        CU_ASSERT_EQUAL(m8->layers[0].branch[HC_PROJ_K].dtype, HC_Q8_0);
        CU_ASSERT_EQUAL(m8->layers[0].branch[HC_PROJ_UP].dtype, HC_F16);
        CU_ASSERT_EQUAL(m8->layers[0].branch[HC_PROJ_Q].rank, 6);
        size_t b8 = hc_model_branch_bytes(m8), b16 = hc_model_branch_bytes(m16);
        printf("\n  branch bytes: q8_0 %zu, f16 %zu\n", b8, b16);
        CU_ASSERT(b8 < b16 * 8 / 10);
    }
    hc_model_free(m8);
    hc_model_free(m16);
    const char *v1 = hc_test_tmp("q8-format1.gguf");
    write_format(q8_model_path, v1, 1);
    hc_model *bad = NULL;
    CU_ASSERT_EQUAL(hc_model_load(v1, &lo, &bad), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "q8_0 factors need format 2"));
    CU_ASSERT_PTR_NULL(bad);
    hc_registry_free(r);
    check_schedulers_agree(q8_model_path);

    int32_t base[N_GEN], got[N_GEN];
    float l16[512], l8[512], lbare[512];
    run_opts ro = { .sched = "serial", .host_threads = 1, .model = model_path, .last_logits = l16 };
    HC_ASSERT_OK(generate(&ro, base, NULL));
    ro = (run_opts){ .sched = "async", .host_threads = 1, .model = q8_model_path, .force = base, .last_logits = l8 };
    HC_ASSERT_OK(generate(&ro, got, NULL));
    ro = (run_opts){ .sched = NULL, .model = model_path, .force = base, .last_logits = lbare };
    HC_ASSERT_OK(generate(&ro, got, NULL));
    float d8 = max_abs_diff(l8, l16, 512), dbare = max_abs_diff(lbare, l16, 512);
    printf("  last logits: q8_0 branches %.4f, no branches %.4f from the f16 branches'\n", (double)d8, (double)dbare);
    CU_ASSERT(d8 < 0.1f * dbare);
}

static int skip_format_version(const char *key, void *ctx) { return !strcmp(key, "hc.format_version"); }

/* A copy of the compressed model marked as file format `version`; for version 1, with lora_b in that
 * format's layout, [out][rank] (GGUF dimensions {rank, out}), except q8_0 factors (kept as they are:
 * format 1 had none, such a file is to be refused). */
static void write_format(const char *src, const char *dst, uint32_t version)
{
    hc_gguf *g = NULL;
    hc_gguf_writer *w = NULL;
    HC_ASSERT_OK(hc_gguf_open(src, &g));
    HC_ASSERT_OK(hc_gguf_writer_create(&w));
    HC_ASSERT_OK(hc_gguf_copy_kv(w, g, skip_format_version, NULL));
    HC_ASSERT_OK(hc_gguf_set_u32(w, "hc.format_version", version));
    void **copies = calloc(g->n_tensors, sizeof *copies);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        if (version == 1 && hc_ends_with(t->name, ".lora_b") && t->type != HC_Q8_0) {
            int64_t out = t->ne[0], r = t->ne[1], ne[2] = { r, out };
            size_t es = hc_dtype_row_bytes(t->type, 1);
            char *b = copies[i] = malloc(t->nbytes);
            hc_transpose(b, t->data, r, out, es);
            HC_ASSERT_OK(hc_gguf_add_tensor(w, t->name, t->type, 2, ne, b, t->nbytes));
        } else {
            HC_ASSERT_OK(hc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
        }
    }
    HC_ASSERT_OK(hc_gguf_writer_write(w, dst));
    for (uint64_t i = 0; i < g->n_tensors; i++) free(copies[i]);
    free(copies);
    hc_gguf_writer_free(w);
    hc_gguf_close(g);
}

/* Files of format 1 (lora_b stored [out][rank]) still run, transposed on load: the same tokens;
 * a file of a newer format than this build knows is refused with its version named. */
static void test_file_formats(void)
{
    if (!compressed_model()) return;
    int32_t base[N_GEN], got[N_GEN];
    run_opts ro = { .sched = "serial", .host_threads = 1 };
    HC_ASSERT_OK(generate(&ro, base, NULL));
    char v1[1200], v3[1200];
    snprintf(v1, sizeof v1, "%s", hc_test_tmp("st-w4-format1.gguf"));
    snprintf(v3, sizeof v3, "%s", hc_test_tmp("st-w4-format3.gguf"));
    write_format(model_path, v1, 1);
    write_format(model_path, v3, HC_FORMAT_VERSION + 1);
    ro.model = v1;
    HC_ASSERT_OK(generate(&ro, got, NULL));
    CU_ASSERT_EQUAL(memcmp(base, got, sizeof got), 0);
    hc_model *m = NULL;
    hc_model_load_opts lo = { 0 };
    CU_ASSERT_EQUAL(hc_model_load(v3, &lo, &m), HC_E_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "hc.format_version 3 is newer"));
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "format3.gguf"));
    remove(v1);
    remove(v3);
}

/* The compressed model and the built program are there (else the CLI tests skip); out and err get
 * temporary files named after stem. */
static int cli_ready(const char *stem, char *out, char *err, size_t n)
{
    char bin[1200];
    snprintf(bin, sizeof bin, "%s/hcinfer", HC_BIN_DIR);
    if (!compressed_model() || access(bin, X_OK) != 0) return 0;
    char name[64];
    snprintf(name, sizeof name, "%s.out", stem);
    snprintf(out, n, "%s", hc_test_tmp(name));
    snprintf(name, sizeof name, "%s.err", stem);
    snprintf(err, n, "%s", hc_test_tmp(name));
    return 1;
}

/* Runs hcinfer with args: it must exit with want_rc and say `want` on stderr. */
static void check_cli(const char *args, const char *out, const char *err, int want_rc, const char *want)
{
    CU_ASSERT_EQUAL(hc_test_hcinfer(args, out, err), want_rc);
    char *msg = hc_test_read_file(err, NULL);
    if (!msg || !strstr(msg, want)) printf("\n  hcinfer %s: '%s'\n", args, msg ? msg : "");
    CU_ASSERT(msg && strstr(msg, want));
    free(msg);
}

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
    if (!cli_ready("bench", out, err, sizeof out)) return;
    snprintf(args, sizeof args, "-m '%s' --sched none,serial,async -n 8 -p 4 -r 2 -t 1 --host-threads 1 --json", model_path);
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
             model_path);
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
        snprintf(args, sizeof args, "bench -m '%s' -n 2 -p 2 -r 1 %s", model_path, bad[i][0]);
        check_cli(args, out, err, want_rc[i], bad[i][1]);
    }
    remove(out);
    remove(err);
}

/* hcinfer run says which scheduler and threads it uses: on the cpu device the branches run inline
 * on all the device threads unless another scheduler, or the rank controller (async), is asked for. */
static void test_default_scheduler(void)
{
    char out[800], err[800], args[4096];
    if (!cli_ready("run", out, err, sizeof out)) return;
    const char *cases[][2] = { { "-t 2", "scheduler inline, 2 device thread(s), 0 host thread(s)" },
                               { "-t 1 --sched async --host-threads 1", "scheduler async, 1 device thread(s), 1 host thread(s)" },
                               { "-t 1 --host-budget 0.9", "scheduler async, 1 device thread(s), 1 host thread(s)" },
                               { "--no-comp -t 1", "1 device thread(s), no branches in use" } };
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "run -m '%s' -n 4 --temp 0 %s", model_path, cases[i][0]);
        check_cli(args, out, err, 0, cases[i][1]);
    }
    remove(out);
    remove(err);
}

static void test_broken_schedulers(void)
{
    if (!compressed_model()) return;
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    char path[2048];
    snprintf(path, sizeof path, "%s/sched_missing_fn/sched_missing_fn.so", HC_TEST_PLUGIN_DIR);
    CU_ASSERT_EQUAL(hc_registry_load_file(r, path), HC_E_PLUGIN);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "lacks the required function output_needed"));
    hc_registry_free(r);
    /* a scheduler that never merges: the runtime stops at the first job whose output is needed */
    int32_t got[N_GEN];
    run_opts ro = { .sched = "lazy", .host_threads = 1 };
    CU_ASSERT_EQUAL(generate(&ro, got, NULL), HC_E_PLUGIN);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "scheduler 'lazy' left branch job"));
}

static const char *write_script(const char *name, const char *text)
{
    const char *p = hc_test_tmp(name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static char *default_script(void)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/scripts/pipelines/default.lua", HC_SOURCE_DIR);
    return hc_test_read_file(path, NULL);
}

static void test_pipeline_errors(void)
{
    if (!compressed_model()) return;
    int32_t got[N_GEN];
    char p1[1100], p2[1100], p3[1100], p4[1100];
    snprintf(p1, sizeof p1, "%s", write_script("syntax.lua", "layer = {\n  { op = 'norm', name = 'attn_norm' \n}}\nfunction (\n"));
    run_opts ro = { .sched = "async", .host_threads = 1, .pipeline = p1 };
    CU_ASSERT_EQUAL(generate(&ro, got, NULL), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "syntax.lua:4:")); /* file and line */

    snprintf(p2, sizeof p2, "%s", write_script("runtime.lua", "local x = nil\nlayer = x.field\n"));
    ro.pipeline = p2;
    CU_ASSERT_EQUAL(generate(&ro, got, NULL), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "runtime.lua:2:"));

    snprintf(p3, sizeof p3, "%s", write_script("order.lua",
             "layer = {\n { op = 'linear', name = 'attn_q', input = 'xn', output = 'q' },\n}\n"));
    ro.pipeline = p3;
    CU_ASSERT_EQUAL(generate(&ro, got, NULL), HC_E_SCRIPT);
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
        snprintf(p4, sizeof p4, "%s", write_script("answer.lua", text));
        free(text);
        ro.pipeline = p4;
        CU_ASSERT_EQUAL(generate(&ro, got, NULL), HC_E_SCRIPT);
        if (!strstr(hc_last_error(), expect[i])) printf("\n  answer %d: %s\n", i, hc_last_error());
        CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), expect[i]));
    }
    /* a good answer is applied: every branch ends up switched off */
    const char *off = "function on_step(s) local a = {} for _, st in ipairs(s.stages) do a[st.name] = { branch = false } end return a end\n";
    size_t n = strlen(base) + strlen(off) + 1;
    char *text = malloc(n);
    snprintf(text, n, "%s%s", base, off);
    snprintf(p4, sizeof p4, "%s", write_script("off.lua", text));
    free(text);
    ro.pipeline = p4;
    hc_context *c = NULL;
    HC_ASSERT_OK(generate(&ro, got, &c));
    int on = 0, branches = 0;
    for (int i = 0; i < c->n_stages; i++) {
        branches += c->stages[i].branch != NULL;
        on += c->stages[i].branch && c->stages[i].branch_enabled;
    }
    CU_ASSERT(branches > 0);
    CU_ASSERT_EQUAL(on, 0);
    keep_free(c);
    free(base);
}

static void test_rank_controller(void)
{
    if (!compressed_model()) return;
    int32_t got[N_GEN];
    hc_context *c = NULL;
    /* a host 300 us slower per job than the device can hide: the controller must cut the ranks */
    run_opts ro = { .sched = "async", .host_threads = 1, .host_budget = 0.9, .host_delay_us = 300 };
    HC_ASSERT_OK(generate(&ro, got, &c));
    double mean_share, min_share, mean_rank;
    hc_rank_control_summary(c, &mean_share, &min_share, &mean_rank);
    CU_ASSERT(mean_share < 0.5);
    keep_free(c);
}

/* compress --head-quant packs the tied embedding too: the file loads (its vocabulary from the
 * packed tensor's logical shape, not its bytes), and with 8-bit backbone and head the greedy tokens
 * are the source's. */
static void test_head_quant(void)
{
    const char *src = hc_test_shared("models/stories260K/stories260K.bin", "head quantization");
    if (!src) return;
    char source[1024], packed[1024];
    snprintf(source, sizeof source, "%s", src);
    snprintf(packed, sizeof packed, "%s", hc_test_tmp("st-head8.gguf"));
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    HC_ASSERT_OK(hc_registry_load_default(r));
    hc_compress_opts o = { .input = source, .output = packed, .quant = "rtn:bits=8,group=32",
                           .head_quant = "rtn:bits=8,group=32", .rank = 0, .threads = 2, .branch_dtype = HC_F16,
                           .registry = r };
    hc_compress_report rep;
    HC_ASSERT_OK(hc_compress(&o, &rep));
    hc_model *m = NULL;
    hc_model_load_opts lo = { .registry = r };
    HC_ASSERT_OK(hc_model_load(packed, &lo, &m));
    if (m) {
        CU_ASSERT_EQUAL(m->cfg.n_vocab, 512);
        CU_ASSERT_EQUAL(m->tok_embd.dtype, HC_PACKED);
        CU_ASSERT(m->cfg.tied_output && m->output.data == m->tok_embd.data);
    }
    hc_model_free(m);
    hc_registry_free(r);
    int32_t want[N_GEN], got[N_GEN];
    run_opts ro = { .model = source };
    HC_ASSERT_OK(generate(&ro, want, NULL));
    ro.model = packed;
    HC_ASSERT_OK(generate(&ro, got, NULL));
    CU_ASSERT_EQUAL(memcmp(want, got, sizeof got), 0);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "schedulers agree", test_schedulers_agree },
        { "q8_0 branch factors", test_q8_branches },
        { "files of format 1 run, newer formats are refused", test_file_formats },
        { "hcinfer bench", test_bench_cli },
        { "hcinfer run: the default scheduler", test_default_scheduler },
        { "broken schedulers refused", test_broken_schedulers },
        { "pipeline script errors", test_pipeline_errors },
        { "rank controller under a slow host", test_rank_controller },
        { "a model with a quantized head and tied embedding", test_head_quant },
        { NULL, NULL },
    };
    return hc_test_run("sched", cases);
}
