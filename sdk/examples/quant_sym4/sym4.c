/* sym4.c: the example quant plugin "sym4", built outside hcinfer's tree against the installed SDK:
 * symmetric 4-bit weights with one f16 scale per group of 32 or 64, w = d * q, q in [-8, 7]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hc/hc_plugin.h>
#include <hc/hc_quant.h>
#include <hc/hc_tensor.h>

/* The ABI this plugin declares: that of the headers it is compiled with. scripts/test_sdk.sh
 * rebuilds it with -DSYM4_FORCE_ABI=N to check that hcinfer refuses another ABI version. */
#ifdef SYM4_FORCE_ABI
#define SYM4_ABI SYM4_FORCE_ABI
#else
#define SYM4_ABI HC_ABI_VERSION
#endif

/* Layout of a rows x cols matrix: row after row, each row cols/group blocks, each block
 *   2 bytes  the scale d as IEEE half (little endian)
 *   group/2  bytes of 4-bit codes: byte i holds element 2i in its low nibble and element 2i+1 in
 *            its high nibble, each stored as q + 8 (0..15)
 * Nothing is aligned, so the packed data can sit anywhere in a model file. */
typedef struct sym4_params {
    int group;   /* 32 or 64 */
} sym4_params;

static size_t block_bytes(int group) { return 2 + (size_t)group / 2; }

static size_t row_bytes(int group, int64_t cols) { return (size_t)(cols / group) * block_bytes(group); }

/* ------------------------------------------------------------------ options */

static hc_status parse_group(const char *value, int *group)
{
    if (!strcmp(value, "32")) *group = 32;
    else if (!strcmp(value, "64")) *group = 64;
    else return hc_error(HC_E_ARG, "sym4: group=%s is not one of 32, 64", value);
    return HC_OK;
}

/* options: "" or a comma-separated list of key=value; the only key is group (32 or 64) */
static hc_status sym4_parse(const char *options, void **params)
{
    sym4_params p = { .group = 32 };
    const char *s = options ? options : "";
    while (*s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char item[64];
        if (len >= sizeof item) return hc_error(HC_E_ARG, "sym4: option '%.*s...' is too long", 20, s);
        memcpy(item, s, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        if (!eq) return hc_error(HC_E_ARG, "sym4: option '%s' is not key=value (allowed: group=32|64)", item);
        *eq = '\0';
        if (strcmp(item, "group"))
            return hc_error(HC_E_ARG, "sym4: unknown option '%s' (allowed: group=32|64)", item);
        hc_status st = parse_group(eq + 1, &p.group);
        if (st != HC_OK) return st;
        s += len;
        if (*s == ',') s++;
    }
    sym4_params *out = malloc(sizeof *out);
    if (!out) return hc_error(HC_E_NOMEM, "sym4: out of memory for the options");
    *out = p;
    *params = out;
    return HC_OK;
}

static void sym4_free_params(void *params) { free(params); }

static hc_status sym4_format_options(const void *params, char *buf, size_t cap)
{
    const sym4_params *p = params;
    int n = snprintf(buf, cap, "group=%d", p->group);
    if (n < 0 || (size_t)n >= cap) return hc_error(HC_E_ARG, "sym4: no room for the options (%zu bytes)", cap);
    return HC_OK;
}

/* ------------------------------------------------------------------ shape and size */

static hc_status sym4_check_shape(const void *params, int64_t rows, int64_t cols)
{
    const sym4_params *p = params;
    if (rows <= 0 || cols <= 0 || cols % p->group)
        return hc_error(HC_E_UNSUPPORTED,
                        "sym4: a %lld x %lld weight cannot be stored: the row length %lld is not a positive "
                        "multiple of the group size %d", (long long)rows, (long long)cols, (long long)cols, p->group);
    return HC_OK;
}

static size_t sym4_packed_bytes(const void *params, int64_t rows, int64_t cols)
{
    const sym4_params *p = params;
    if (rows <= 0 || cols <= 0 || cols % p->group) return 0;
    return (size_t)rows * row_bytes(p->group, cols);
}

/* ------------------------------------------------------------------ quantize / dequantize */

/* One group: d = max|w| / 7 (rounded to f16), q = round(w / d) clamped to [-8, 7]. */
static void quantize_block(const float *w, int group, unsigned char *blk)
{
    float amax = 0.0f;
    for (int i = 0; i < group; i++) amax = fmaxf(amax, fabsf(w[i]));
    uint16_t dh = hc_f32_to_f16(amax / 7.0f);
    float d = hc_f16_to_f32(dh);         /* quantize with the scale that will be read back */
    float id = d > 0.0f ? 1.0f / d : 0.0f;
    memcpy(blk, &dh, 2);
    unsigned char *codes = blk + 2;
    for (int i = 0; i < group; i += 2) {
        int q0 = (int)lrintf(w[i] * id), q1 = (int)lrintf(w[i + 1] * id);
        q0 = q0 < -8 ? -8 : q0 > 7 ? 7 : q0;
        q1 = q1 < -8 ? -8 : q1 > 7 ? 7 : q1;
        codes[i / 2] = (unsigned char)((q0 + 8) | ((q1 + 8) << 4));
    }
}

/* Decodes one block into group floats. */
static void dequantize_block(const unsigned char *blk, int group, float *out)
{
    uint16_t dh;
    memcpy(&dh, blk, 2);
    float d = hc_f16_to_f32(dh);
    const unsigned char *codes = blk + 2;
    for (int i = 0; i < group; i += 2) {
        out[i] = d * (float)((codes[i / 2] & 15) - 8);
        out[i + 1] = d * (float)((codes[i / 2] >> 4) - 8);
    }
}

/* Called from several threads at once on different matrices: it touches only its arguments. */
static hc_status sym4_quantize(const void *params, const float *w, int64_t rows, int64_t cols,
                               const hc_quant_calib *calib, void *packed)
{
    const sym4_params *p = params;
    (void)calib;   /* plain round-to-nearest ignores the calibration statistics */
    if (!w || !packed) return hc_error(HC_E_ARG, "sym4: missing weights or output buffer");
    hc_status st = sym4_check_shape(params, rows, cols);
    if (st != HC_OK) return st;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            if (!isfinite(w[r * cols + c]))
                return hc_error(HC_E_NUMERIC, "sym4: weight [%lld][%lld] is not a finite number", (long long)r,
                                (long long)c);
    unsigned char *dst = packed;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c += p->group, dst += block_bytes(p->group))
            quantize_block(w + r * cols + c, p->group, dst);
    return HC_OK;
}

/* The reference: rows [row0, row0 + n_rows) as f32. */
static void sym4_dequantize_rows(const void *params, const void *packed, int64_t cols, int64_t rows,
                                 int64_t row0, int64_t n_rows, float *out)
{
    const sym4_params *p = params;
    (void)rows;
    const unsigned char *src = (const unsigned char *)packed + (size_t)row0 * row_bytes(p->group, cols);
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < cols; c += p->group, src += block_bytes(p->group))
            dequantize_block(src, p->group, out + r * cols + c);
}

/* ------------------------------------------------------------------ the CPU kernel */

/* y[t*ldy + o] = sum_i W[o][i] x[t][i] for rows o in [row0, row1), every token t < n_tok.
 * The device's threads call this at the same time with disjoint row ranges. Each block is decoded
 * once and used for all tokens, so a prompt of many tokens costs one decode per block. */
static hc_status sym4_matmul_rows(const void *params, const void *packed, int64_t cols, int64_t rows,
                                  const float *x, const void *xq, int n_tok, float *y, int64_t ldy,
                                  int64_t row0, int64_t row1)
{
    const sym4_params *p = params;
    (void)xq;   /* sym4 has no prepare_input: the kernel reads the f32 activations */
    if (row0 < 0 || row1 < row0 || row1 > rows)
        return hc_error(HC_E_ARG, "sym4: row range [%lld, %lld) is outside [0, %lld)", (long long)row0,
                        (long long)row1, (long long)rows);
    float wb[64];
    for (int64_t o = row0; o < row1; o++) {
        const unsigned char *blk = (const unsigned char *)packed + (size_t)o * row_bytes(p->group, cols);
        for (int t = 0; t < n_tok; t++) y[t * ldy + o] = 0.0f;
        for (int64_t c = 0; c < cols; c += p->group, blk += block_bytes(p->group)) {
            dequantize_block(blk, p->group, wb);
            for (int t = 0; t < n_tok; t++) {
                const float *xt = x + t * cols + c;
                float acc = 0.0f;
                for (int i = 0; i < p->group; i++) acc += wb[i] * xt[i];
                y[t * ldy + o] += acc;
            }
        }
    }
    return HC_OK;
}

/* ------------------------------------------------------------------ the descriptor */

static const hc_quant_ops sym4_ops = {
    .parse = sym4_parse,
    .free_params = sym4_free_params,
    .format_options = sym4_format_options,
    .check_shape = sym4_check_shape,
    .packed_bytes = sym4_packed_bytes,
    .quantize = sym4_quantize,
    .dequantize_rows = sym4_dequantize_rows,
    .input_bytes = NULL,      /* optional, with prepare_input: both or neither */
    .prepare_input = NULL,
    .matmul_rows = sym4_matmul_rows,
    .device_kernels = NULL,   /* CPU only */
};

static const hc_plugin_desc sym4_desc = {
    .abi_version = SYM4_ABI,
    .kind = HC_PLUGIN_QUANT,
    .name = "sym4",
    .version = "1.0.0",
    .description = "example: symmetric 4-bit, one f16 scale per group of 32/64 (group=32)",
    .ops = &sym4_ops,
};

HC_PLUGIN_DEFINE(sym4_desc)
