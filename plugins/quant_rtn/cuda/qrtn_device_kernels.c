/* qrtn_device_kernels.c: the device_kernels hook of the rtn and gptq plugins: for "cuda", the format's
 * CUDA kernels from hc-qrtn-cuda.so (kernels/ beside the plugin), loaded once, on first use.
 * HC_QRTN_CUDA_GEMV=plain (read then) picks the plain GEMV over the wide ones, for comparisons. */
#define _GNU_SOURCE
#include "qrtn_device_kernels.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_quant_cuda.h"
#include "qrtn.h"
#include "qrtn_cuda_api.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const hc_qrtn_cuda_api *api;
static int (*gemv_fn)(int bits, int group, void *stream, const void *w, int64_t cols, int64_t rows, const float *x, int n_tok,
                      float *y);
static int (*gemv_id_fn)(int bits, int group, void *stream, const void *w, size_t slice, const int32_t *ids, int64_t cols,
                         int64_t rows, const float *x, int x_div, int n_rows, float *y);
static int int8_x;      /* the int8 GEMVs offered (not with HC_QRTN_CUDA_GEMV=plain) */
static char why[600];   /* why there are no kernels, for the message of the device that asked */

static void load(void)
{
    Dl_info info;
    if (!dladdr((void *)&hc_qrtn_device_kernels, &info) || !info.dli_fname) {
        snprintf(why, sizeof why, "the plugin's own file could not be found (dladdr)");
        return;
    }
    char path[4096];
    const char *slash = strrchr(info.dli_fname, '/');
    int dir = slash ? (int)(slash - info.dli_fname) : 1;
    snprintf(path, sizeof path, "%.*s/kernels/%s", dir, slash ? info.dli_fname : ".", HC_QRTN_CUDA_LIB);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        snprintf(why, sizeof why, "its CUDA kernels %.300s could not be loaded (built only where nvcc was found): %.200s", path,
                 dlerror());
        return;
    }
    hc_qrtn_cuda_entry_fn entry;
    *(void **)&entry = dlsym(h, HC_QRTN_CUDA_ENTRY);
    const hc_qrtn_cuda_api *a = entry ? entry() : NULL;
    if (!a || a->api != HC_QRTN_CUDA_API) {
        snprintf(why, sizeof why, "%.300s is not the kernel library of this build (entry %s %s, version %u, expected %u)", path,
                 HC_QRTN_CUDA_ENTRY, entry ? "found" : "missing", a ? a->api : 0u, HC_QRTN_CUDA_API);
        return;
    }
    const char *v = getenv("HC_QRTN_CUDA_GEMV");
    if (v && *v && strcmp(v, "wide") != 0 && strcmp(v, "plain") != 0) {
        snprintf(why, sizeof why, "HC_QRTN_CUDA_GEMV='%.40s': give wide (the default) or plain", v);
        return;
    }
    int plain = v && !strcmp(v, "plain");
    gemv_fn = plain ? a->gemv_plain : a->gemv;
    gemv_id_fn = plain ? a->gemv_id_plain : a->gemv_id;
    int8_x = !plain;
    api = a;
}

static int check(const void *params, int64_t rows, int64_t cols)
{
    const hc_qrtn_params *p = params;
    return hc_qrtn_row_bytes(p->bits, p->group, cols) == 0 || rows < 0;
}

static int gemv(const void *params, void *stream, const void *w, int64_t cols, int64_t rows, const float *x, int n_tok,
                float *y)
{
    const hc_qrtn_params *p = params;
    return gemv_fn(p->bits, p->group, stream, w, cols, rows, x, n_tok, y);
}

static int dequant_rows(const void *params, void *stream, const void *w, int64_t cols, const int32_t *ids, int64_t row0,
                        int n_rows, void *out, int out_f16)
{
    const hc_qrtn_params *p = params;
    return api->dequant_rows(p->bits, p->group, stream, w, cols, ids, row0, n_rows, out, out_f16);
}

static int gemv_id(const void *params, void *stream, const void *w, size_t slice, const int32_t *ids, int64_t cols, int64_t rows,
                   const float *x, int x_div, int n_rows, float *y)
{
    const hc_qrtn_params *p = params;
    return gemv_id_fn(p->bits, p->group, stream, w, slice, ids, cols, rows, x, x_div, n_rows, y);
}

static int gemv_q8(const void *params, void *stream, const void *w, int64_t cols, int64_t rows, const float *x, int n_tok,
                   float *y)
{
    const hc_qrtn_params *p = params;
    return api->gemv_q8(p->bits, p->group, stream, w, cols, rows, x, n_tok, y);
}

static int gemv_id_q8(const void *params, void *stream, const void *w, size_t slice, const int32_t *ids, int64_t cols,
                      int64_t rows, const float *x, int x_div, int n_rows, float *y)
{
    const hc_qrtn_params *p = params;
    return api->gemv_id_q8(p->bits, p->group, stream, w, slice, ids, cols, rows, x, x_div, n_rows, y);
}

_Static_assert(HC_QRTN_CUDA_SET_MAX == HC_QUANT_CUDA_SET_MAX, "gemv_set's most matrices");

static int gemv_set(const void *params, void *stream, int n, const void *const *w, const int64_t *rows, int64_t cols,
                    const float *x, float *const *y, int q8)
{
    const hc_qrtn_params *p = params;
    return api->gemv_set(p->bits, p->group, stream, n, w, rows, cols, x, y, q8);
}

static hc_quant_cuda_kernels table = { HC_QUANT_CUDA_ABI, "qrtn", 0, check, gemv, dequant_rows, gemv_id, NULL, NULL, NULL };

const void *hc_qrtn_device_kernels(const void *params, const char *device_name)
{
    if (!device_name || strcmp(device_name, "cuda") != 0) return NULL;
    pthread_once(&once, load);
    if (!api) {
        hc_error(HC_E_UNSUPPORTED, "%s", why);
        return NULL;
    }
    table.max_fused_tokens = api->max_fused_tokens;
    table.gemv_q8 = int8_x ? gemv_q8 : NULL;
    table.gemv_id_q8 = int8_x ? gemv_id_q8 : NULL;
    table.gemv_set = int8_x ? gemv_set : NULL; /* the wide kernels' (not with HC_QRTN_CUDA_GEMV=plain) */
    return &table;
}
