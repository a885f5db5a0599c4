/* bench_device_gemv.c: hc-bench-device-gemv: a device's one-token matmul (the GEMV of decode) timed by
 * its events, per weight format at a model's shapes: microseconds, and GB/s of weights read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_open.h"
#include "hc/hc_quant.h"
#include "quant_format.h"
#include "weights_fixture.h"

static const char usage[] =
    "usage: hc-bench-device-gemv [--device NAME] [--plugin-dir DIR] [--format f16|SPEC]... [--shape OUTxIN]...\n"
    "                            [--reps N] [--cold-mib N] [--busy-mib N]\n"
    "Times y = W x for one token on the device (default cuda) with its events: per format (default f16,\n"
    "rtn:bits=3,group=128 and rtn:bits=4,group=128; SPEC: a quant plugin's, as compress --quant takes it, or a\n"
    "standard type such as q4_0, q4_K or q6_K: random blocks, for timing only) and\n"
    "shape (default a Llama-3-8B layer: 4096x4096 and 1024x4096 twice, 14336x4096 twice, 4096x14336),\n"
    "N calls (default 64) in passes of 32, each queued behind a device-to-device copy of --busy-mib MiB\n"
    "(default 512) so that the device reaches the pass only once the host has queued it: the events time the\n"
    "kernels, not the host's launches. The calls cycle through copies of the weights of at least --cold-mib MiB\n"
    "in all (default 256: beyond an H100's 50 MB of L2, so that the weights come from memory, as in decode).\n"
    "One JSON line per shape, then one per format: its matrices'\n"
    "bytes over their time (the default's shapes counted as often as the layer has them).\n";

#define MAX_ITEMS 16
#define PASS_OPS 32
#define MAX_COPIES 64

/* The copy each timed pass is queued behind (n 0: none). */
typedef struct busy_copy {
    void *a, *b;
    size_t n;
} busy_copy;

typedef struct shape {
    int64_t out, in;
    int times;          /* the shape's matrices in the layer (the per-format line counts each) */
} shape;

static uint64_t rng = 0x9e3779b97f4a7c15ull; /* the weights fixture's xorshift state */

/* The standard type named `name` (f16, q4_0 .. q6_K, ...), or -1. */
static int type_named(const char *name)
{
    for (int t = 0; t <= HC_Q6_K; t++)
        if (hc_dtype_is_known((hc_dtype)t) && !strcmp(name, hc_dtype_name((hc_dtype)t))) return t;
    return -1;
}

/* The weights of `spec` for a rows x cols matrix, in host memory: a standard type's random weights
 * (tests/weights_fixture.c: finite scales; the kernels' speed does not depend on the values), or a
 * quant plugin's spec quantizing random values. *t gets dtype, shape, nbytes and qfmt (*fmt, to free),
 * *host the bytes. */
static hc_status make_weights(hc_registry *reg, const char *spec, int64_t rows, int64_t cols, hc_tensor *t,
                              hc_quant_format **fmt, void **host)
{
    *t = (hc_tensor){ .name = spec, .n_dims = 2, .ne = { cols, rows, 1, 1 } };
    *host = NULL;
    size_t bytes = 0;
    int ty = type_named(spec);
    if (ty >= 0) {
        t->dtype = (hc_dtype)ty;
        if (!hc_dtype_row_bytes(t->dtype, cols))
            return hc_error(HC_E_ARG, "%s %lldx%lld: not whole blocks", spec, (long long)rows, (long long)cols);
        *host = hc_test_weights(t->dtype, rows, cols, &t->nbytes, &rng);
        return *host ? HC_OK : hc_error(HC_E_NOMEM, "%s %lldx%lld: out of memory", spec, (long long)rows, (long long)cols);
    }
    float *w = (float *)hc_test_weights(HC_F32, rows, cols, &bytes, &rng);
    if (!w) return hc_error(HC_E_NOMEM, "%s %lldx%lld: out of memory", spec, (long long)rows, (long long)cols);
    hc_status st = hc_quant_format_create(reg, spec, fmt);
    if (st == HC_OK) st = (*fmt)->ops->check_shape((*fmt)->params, rows, cols);
    if (st == HC_OK) {
        t->dtype = HC_PACKED;
        t->qfmt = *fmt;
        t->nbytes = (*fmt)->ops->packed_bytes((*fmt)->params, rows, cols);
        *host = malloc(t->nbytes);
        if (!*host) st = hc_error(HC_E_NOMEM, "%s weights: out of memory", spec);
    }
    if (st == HC_OK) st = (*fmt)->ops->quantize((*fmt)->params, w, rows, cols, NULL, *host);
    free(w);
    return st;
}

/* One format at one shape: *us per call and the bytes a call reads. */
static hc_status time_shape(hc_device *d, hc_registry *reg, const char *spec, shape s, int reps, size_t cold,
                            const busy_copy *busy, double *us, size_t *bytes)
{
    hc_tensor t = { 0 };
    hc_quant_format *fmt = NULL;
    void *host = NULL, *copy[MAX_COPIES] = { 0 }, *x = NULL, *y = NULL;
    hc_event *e0 = NULL, *e1 = NULL;
    int n_copies = 0;
    hc_status st = make_weights(reg, spec, s.out, s.in, &t, &fmt, &host);
    if (st == HC_OK) {
        size_t k = (cold + t.nbytes - 1) / t.nbytes;
        n_copies = k < 1 ? 1 : k > MAX_COPIES ? MAX_COPIES : (int)k;
    }
    for (int i = 0; i < n_copies && st == HC_OK; i++) {
        st = d->ops->alloc(d, t.nbytes, &copy[i]);
        if (st == HC_OK) st = d->ops->upload(d, copy[i], host, t.nbytes);
    }
    size_t x_bytes = 0;
    float *xh = (float *)hc_test_weights(HC_F32, 1, s.in, &x_bytes, &rng);
    if (st == HC_OK && !xh) st = hc_error(HC_E_NOMEM, "x: out of memory");
    if (st == HC_OK) st = d->ops->alloc(d, (size_t)s.in * sizeof(float), &x);
    if (st == HC_OK) st = d->ops->upload(d, x, xh, (size_t)s.in * sizeof(float));
    if (st == HC_OK) st = d->ops->alloc(d, (size_t)s.out * sizeof(float), &y);
    if (st == HC_OK) st = d->ops->event_create(d, &e0);
    if (st == HC_OK) st = d->ops->event_create(d, &e1);
    /* passes of PASS_OPS calls, the first a warm-up; each timed one queued behind the busy copy and
       timed by its own events */
    int passes = (reps + PASS_OPS - 1) / PASS_OPS, calls = 0, seq = 0;
    double ns = 0;
    for (int p = -1; p < passes && st == HC_OK; p++) {
        if (p >= 0 && busy->n) st = d->ops->copy(d, busy->b, busy->a, busy->n);
        if (st == HC_OK && p >= 0) st = d->ops->event_record(d, e0);
        for (int i = 0; i < PASS_OPS && st == HC_OK; i++) {
            t.data = copy[seq++ % n_copies];
            st = d->ops->matmul(d, &t, x, y, 1);
        }
        if (st != HC_OK || p < 0) continue;
        uint64_t pass_ns = 0;
        st = d->ops->event_record(d, e1);
        if (st == HC_OK) st = d->ops->synchronize(d);
        if (st == HC_OK) st = d->ops->event_elapsed(d, e0, e1, &pass_ns);
        ns += (double)pass_ns;
        calls += PASS_OPS;
    }
    *us = calls ? ns / 1e3 / calls : 0.0;
    *bytes = t.nbytes;
    if (e0) d->ops->event_destroy(d, e0);
    if (e1) d->ops->event_destroy(d, e1);
    for (int i = 0; i < n_copies; i++) d->ops->free(d, copy[i]);
    d->ops->free(d, x);
    d->ops->free(d, y);
    free(xh);
    free(host);
    hc_quant_format_free(fmt);
    return st;
}

static int parse_shape(const char *v, shape *s)
{
    long long o = 0, i = 0;
    char tail;
    return sscanf(v, "%lldx%lld%c", &o, &i, &tail) == 2 && o > 0 && i > 0 && o <= (1 << 24) && i <= (1 << 24)
               ? (*s = (shape){ o, i, 1 }, 1)
               : 0;
}

int main(int argc, char **argv)
{
    const char *device = "cuda", *plugin_dir = NULL, *formats[MAX_ITEMS];
    shape shapes[MAX_ITEMS];
    int n_formats = 0, n_shapes = 0, reps = 64;
    long cold_mib = 256, busy_mib = 512;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "hc-bench-device-gemv: %s needs a value\n%s", a, usage);
            return 2;
        }
        i++;
        char *end = NULL;
        if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--plugin-dir")) plugin_dir = v;
        else if (!strcmp(a, "--format") && n_formats < MAX_ITEMS) formats[n_formats++] = v;
        else if (!strcmp(a, "--shape") && n_shapes < MAX_ITEMS && parse_shape(v, &shapes[n_shapes])) n_shapes++;
        else if (!strcmp(a, "--reps") && (reps = (int)strtol(v, &end, 10)) >= 1 && reps <= 100000 && !*end) continue;
        else if (!strcmp(a, "--cold-mib") && (cold_mib = strtol(v, &end, 10)) >= 0 && cold_mib <= 65536 && !*end) continue;
        else if (!strcmp(a, "--busy-mib") && (busy_mib = strtol(v, &end, 10)) >= 0 && busy_mib <= 65536 && !*end) continue;
        else {
            fprintf(stderr, "hc-bench-device-gemv: bad option %s %s (at most %d formats and shapes; shapes as OUTxIN, "
                            "reps 1..100000, cold-mib and busy-mib 0..65536)\n%s", a, v, MAX_ITEMS, usage);
            return 2;
        }
    }
    if (!n_formats) {
        formats[n_formats++] = "f16";
        formats[n_formats++] = "rtn:bits=3,group=128";
        formats[n_formats++] = "rtn:bits=4,group=128";
    }
    if (!n_shapes) {
        /* q and output; k and v; gate and up; down */
        static const shape layer[] = { { 4096, 4096, 2 }, { 1024, 4096, 2 }, { 14336, 4096, 2 }, { 4096, 14336, 1 } };
        memcpy(shapes, layer, sizeof layer);
        n_shapes = (int)(sizeof layer / sizeof layer[0]);
    }
    hc_registry *reg = NULL;
    hc_device *d = NULL;
    hc_status st = hc_bench_registry(plugin_dir, &reg);
    if (st == HC_OK) st = hc_bench_device(reg, device, 1, &d);
    if (st == HC_OK && !d->ops->event_elapsed) st = hc_error(HC_E_UNSUPPORTED, "device '%s' has no event timing", device);
    busy_copy busy = { NULL, NULL, (size_t)busy_mib << 20 };
    if (st == HC_OK && busy.n) st = d->ops->alloc(d, busy.n, &busy.a);
    if (st == HC_OK && busy.n) st = d->ops->alloc(d, busy.n, &busy.b);
    int n_matrices = 0;
    for (int k = 0; k < n_shapes; k++) n_matrices += shapes[k].times;
    for (int f = 0; f < n_formats && st == HC_OK; f++) {
        double us_all = 0;
        size_t bytes_all = 0;
        for (int k = 0; k < n_shapes && st == HC_OK; k++) {
            double us = 0;
            size_t bytes = 0;
            st = time_shape(d, reg, formats[f], shapes[k], reps, (size_t)cold_mib << 20, &busy, &us, &bytes);
            if (st != HC_OK) break;
            us_all += us * shapes[k].times;
            bytes_all += bytes * (size_t)shapes[k].times;
            printf("{\"device\": \"%s\", \"format\": \"%s\", \"rows\": %lld, \"cols\": %lld, \"bytes\": %zu, \"us\": %.3f, "
                   "\"gbs\": %.1f}\n", device, formats[f], (long long)shapes[k].out, (long long)shapes[k].in, bytes, us,
                   us > 0 ? (double)bytes / us / 1e3 : 0.0);
        }
        if (st == HC_OK)
            printf("{\"device\": \"%s\", \"format\": \"%s\", \"matrices\": %d, \"bytes\": %zu, \"us\": %.3f, \"gbs\": %.1f}\n",
                   device, formats[f], n_matrices, bytes_all, us_all, us_all > 0 ? (double)bytes_all / us_all / 1e3 : 0.0);
        else st = hc_error_context(st, "format %s: ", formats[f]);
    }
    if (st != HC_OK) fprintf(stderr, "hc-bench-device-gemv: %s\n", hc_last_error());
    if (d) {
        d->ops->free(d, busy.a);
        d->ops->free(d, busy.b);
        d->ops->destroy(d);
    }
    hc_registry_free(reg);
    return st == HC_OK ? 0 : 1;
}
