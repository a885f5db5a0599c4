/* compare_devices.c: hc-compare-devices: the logits of one device against another's (cpu) on the same
 * model and tokens, over greedy decoding: max abs difference and top-1 agreement, one JSON line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "device_cpu.h"
#include "device_open.h"
#include "clock.h"
#include "model_load.h"
#include "sampler.h"

static const char usage[] =
    "usage: hc-compare-devices -m MODEL [--device NAME] [--ref NAME] [-n N] [-p N] [--sched NAME] [--no-comp]\n"
    "                          [--separate] [--kv-type f32|f16] [--handoff events|flags] [--threads N] [--bandwidth]\n"
    "                          [--moe-device-rows N] [--ref-f32act] [--plugin-dir DIR]\n"
    "Decodes N greedy tokens (default 64) after a fixed prompt of P tokens (default 8) on the reference\n"
    "device (default cpu) and feeds the same tokens to --device (default cuda): per step the largest\n"
    "absolute difference of the logits and whether the top-1 token agrees. Prints one JSON line.\n"
    "  --sched NAME   scheduler of the branches on --device (default async; the reference runs inline)\n"
    "  --no-comp      without the compensation branches\n"
    "  --separate     a cpu --device claims memory of its own (the runtime's path for a GPU)\n"
    "  --bandwidth    instead: the device-to-device copy bandwidth of --device (GB/s, read + write)\n"
    "  --moe-device-rows N  a MoE pass of up to N routed rows routes its experts on --device (0: none)\n"
    "  --ref-f32act   the reference (cpu) multiplies quantized weights with x in f32 (HC_CPU_ACT_INT8=0 for it\n"
    "                 alone): how far --device's arithmetic, x in int8 included, is from the exact product\n"
    "  --plugin-dir DIR  DIR's plugins before the default folders' (e.g. build/cuda-emu/plugins: the cuda\n"
    "                 device and rtn/gptq kernels on the CPU emulator of tests/cuda_emu)\n";

typedef struct side {
    hc_registry *reg;
    hc_device *dev;
    hc_model *m;
    hc_context *c;
} side;

static const char *plugin_dir; /* --plugin-dir */

static hc_status open_side(side *s, const char *model, const char *device, const char *sched, int comp, int separate,
                           hc_kv_type kv, hc_handoff handoff, int threads, int n_ctx, int moe_rows)
{
    memset(s, 0, sizeof *s);
    hc_status st = hc_bench_registry(plugin_dir, &s->reg);
    if (st == HC_OK) st = hc_bench_device(s->reg, device, threads, &s->dev);
    if (st == HC_OK && separate) s->dev->host_memory = 0;
    hc_model_load_opts lo = { .registry = s->reg, .no_branches = !comp };
    if (st == HC_OK) st = hc_model_load(model, &lo, &s->m);
    hc_context_params cp = { .n_ctx = n_ctx, .kv_type = kv, .registry = s->reg, .host_threads = 1, .handoff = handoff,
                             .moe_device_rows = moe_rows };
    if (st == HC_OK && comp && hc_model_branch_bytes(s->m) > 0) {
        const hc_plugin *c = hc_registry_find(s->reg, HC_PLUGIN_COMP, "host");
        const hc_plugin *p = c ? hc_registry_find(s->reg, HC_PLUGIN_SCHED, sched) : NULL;
        if (!c || !p) st = HC_E_PLUGIN;
        else cp.comp = c->desc->ops, cp.sched = p->desc->ops, cp.sched_name = sched;
    }
    if (st == HC_OK) st = hc_context_create(s->m, s->dev, &cp, &s->c);
    return st;
}

static void close_side(side *s)
{
    hc_context_free(s->c);
    hc_model_free(s->m);
    if (s->dev) s->dev->ops->destroy(s->dev);
    hc_registry_free(s->reg);
}

/* Device-to-device copies of 1 GiB timed by the device's events. */
static int bandwidth(const char *device, int threads)
{
    hc_registry *r = NULL;
    hc_device *d = NULL;
    hc_status st = hc_bench_registry(plugin_dir, &r);
    if (st == HC_OK) st = hc_bench_device(r, device, threads, &d);
    size_t n = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    hc_event *e0 = NULL, *e1 = NULL;
    if (st == HC_OK && !d->ops->event_elapsed) st = hc_error(HC_E_UNSUPPORTED, "device '%s' has no event timing", device);
    if (st == HC_OK) st = d->ops->alloc(d, n, &a);
    if (st == HC_OK) st = d->ops->alloc(d, n, &b);
    if (st == HC_OK) st = d->ops->event_create(d, &e0);
    if (st == HC_OK) st = d->ops->event_create(d, &e1);
    if (st == HC_OK) st = d->ops->copy(d, b, a, n); /* warm-up */
    uint64_t ns = 0;
    const int reps = 10;
    if (st == HC_OK) st = d->ops->event_record(d, e0);
    for (int i = 0; i < reps && st == HC_OK; i++) st = d->ops->copy(d, i % 2 ? a : b, i % 2 ? b : a, n);
    if (st == HC_OK) st = d->ops->event_record(d, e1);
    if (st == HC_OK) st = d->ops->synchronize(d);
    if (st == HC_OK) st = d->ops->event_wait(d, e1);
    if (st == HC_OK) st = d->ops->event_elapsed(d, e0, e1, &ns);
    if (st == HC_OK)
        printf("{\"device\": \"%s\", \"copy_bytes\": %zu, \"reps\": %d, \"copy_gbs_read_plus_write\": %.1f}\n", device, n, reps,
               ns ? 2.0 * (double)n * reps / (double)ns : 0.0);
    else fprintf(stderr, "hc-compare-devices: %s\n", hc_last_error());
    if (d) {
        if (e0) d->ops->event_destroy(d, e0);
        if (e1) d->ops->event_destroy(d, e1);
        d->ops->free(d, a);
        d->ops->free(d, b);
        d->ops->destroy(d);
    }
    hc_registry_free(r);
    return st == HC_OK ? 0 : 1;
}

/* A JSON number, or null for inf and NaN (logits a device got wrong), which JSON has no number for. */
static const char *json_num(char *buf, size_t cap, double v)
{
    if (isfinite(v)) snprintf(buf, cap, "%.6g", v);
    else snprintf(buf, cap, "null");
    return buf;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *device = "cuda", *ref = "cpu", *sched = "async";
    int n_gen = 64, n_prompt = 8, comp = 1, separate = 0, threads = 4, bw = 0, moe_rows = 0, ref_f32act = 0;
    hc_kv_type kv = HC_KV_F32;
    hc_handoff handoff = HC_HANDOFF_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-m") && v) model = v, i++;
        else if (!strcmp(a, "--device") && v) device = v, i++;
        else if (!strcmp(a, "--ref") && v) ref = v, i++;
        else if (!strcmp(a, "--sched") && v) sched = v, i++;
        else if (!strcmp(a, "-n") && v) n_gen = atoi(v), i++;
        else if (!strcmp(a, "-p") && v) n_prompt = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--kv-type") && v) kv = !strcmp(v, "f16") ? HC_KV_F16 : HC_KV_F32, i++;
        else if (!strcmp(a, "--handoff") && v && (!strcmp(v, "flags") || !strcmp(v, "events")))
            handoff = !strcmp(v, "flags") ? HC_HANDOFF_FLAGS : HC_HANDOFF_EVENTS, i++;
        else if (!strcmp(a, "--moe-device-rows") && v) moe_rows = atoi(v) > 0 ? atoi(v) : -1, i++;
        else if (!strcmp(a, "--no-comp")) comp = 0;
        else if (!strcmp(a, "--separate")) separate = 1;
        else if (!strcmp(a, "--bandwidth")) bw = 1;
        else if (!strcmp(a, "--ref-f32act")) ref_f32act = 1;
        else if (!strcmp(a, "--plugin-dir") && v) plugin_dir = v, i++;
        else {
            fprintf(stderr, "%s", usage);
            return 2;
        }
    }
    if (bw) return bandwidth(device, threads);
    if (!model || n_gen < 1 || n_prompt < 1 || threads < 1) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    if (ref_f32act && strcmp(ref, "cpu")) {
        fprintf(stderr, "hc-compare-devices: --ref-f32act needs the cpu device as the reference (--ref %s)\n", ref);
        return 2;
    }
    side r, t;
    int n_ctx = n_prompt + n_gen + 1;
    /* the reference's activations: HC_CPU_ACT_INT8=0 while it is created (the cpu device reads it then) */
    const char *act_env = getenv("HC_CPU_ACT_INT8");
    char *act_saved = act_env ? strdup(act_env) : NULL;
    if (ref_f32act) setenv("HC_CPU_ACT_INT8", "0", 1);
    hc_status st = open_side(&r, model, ref, "inline", comp, 0, HC_KV_F32, HC_HANDOFF_AUTO, threads, n_ctx, 0);
    if (ref_f32act) {
        if (act_saved) setenv("HC_CPU_ACT_INT8", act_saved, 1);
        else unsetenv("HC_CPU_ACT_INT8");
    }
    free(act_saved);
    if (st == HC_OK) st = open_side(&t, model, device, sched, comp, separate, kv, handoff, threads, n_ctx, moe_rows);
    else memset(&t, 0, sizeof t);
    int n_vocab = st == HC_OK ? r.m->cfg.n_vocab : 0;
    int32_t *tokens = malloc((size_t)(n_prompt + n_gen) * sizeof *tokens);
    uint64_t seed = 12345;
    for (int i = 0; i < n_prompt && tokens && n_vocab; i++) { /* the fixed prompt of hcinfer bench */
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((seed >> 33) % (uint64_t)n_vocab);
    }
    double max_abs = 0, sum_abs = 0, max_ref = 0;
    int agree = 0, steps = 0;
    const float *lr = NULL, *lt = NULL;
    double t0 = hc_now_ns() / 1e9;
    if (st == HC_OK) st = hc_decode(r.c, tokens, n_prompt, 0, &lr);
    if (st == HC_OK) st = hc_decode(t.c, tokens, n_prompt, 0, &lt);
    for (int i = 0; st == HC_OK; i++) {
        int a = hc_argmax(lr, n_vocab), b = hc_argmax(lt, n_vocab);
        double step_max = 0;
        for (int k = 0; k < n_vocab; k++) {
            double d = fabs((double)lr[k] - (double)lt[k]);
            if (!(d <= step_max)) step_max = isnan(d) ? INFINITY : d;
            sum_abs += isnan(d) ? INFINITY : d;
            if (fabs(lr[k]) > max_ref) max_ref = fabs(lr[k]);
        }
        if (step_max > max_abs) max_abs = step_max;
        agree += a == b;
        steps++;
        if (i == n_gen) break;
        tokens[n_prompt + i] = a; /* both continue with the reference's token */
        st = hc_decode(r.c, &tokens[n_prompt + i], 1, 0, &lr);
        if (st == HC_OK) st = hc_decode(t.c, &tokens[n_prompt + i], 1, 0, &lt);
    }
    char b1[32], b2[32], b3[32];
    if (st == HC_OK)
        printf("{\"model\": \"%s\", \"device\": \"%s\", \"ref\": \"%s\", \"branches\": %s, \"sched\": \"%s\", \"separate\": %s, "
               "\"prompt\": %d, \"steps\": %d, \"max_abs_diff\": %s, \"mean_abs_diff\": %s, \"max_abs_ref_logit\": %s, "
               "\"top1_agree\": %.4f, \"ref_f32act\": %s, \"seconds\": %.2f}\n",
               model, device, ref, comp && t.c->brt ? "true" : "false", comp && t.c->brt ? sched : "none",
               separate ? "true" : "false", n_prompt, steps, json_num(b1, sizeof b1, max_abs),
               json_num(b2, sizeof b2, sum_abs / ((double)steps * n_vocab)), json_num(b3, sizeof b3, max_ref),
               (double)agree / steps, ref_f32act ? "true" : "false", hc_now_ns() / 1e9 - t0);
    else fprintf(stderr, "hc-compare-devices: %s\n", hc_last_error());
    free(tokens);
    close_side(&t);
    close_side(&r);
    return st == HC_OK ? 0 : 1;
}
