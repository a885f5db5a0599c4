/* test_quant_rtn.c: the quant plugin "rtn" loaded through the registry: options, shapes, exact
 * packed sizes, the documented bit layout, round-trip error within d/2 for every bits/group, and
 * the kernels: AVX2 equals the reference, both equal the float dot within the activation bound;
 * rows whose width is not a multiple of the group (a short last group) throughout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_cpu.h"
#include "hc/hc_device.h"
#include "hc/hc_plugin.h"
#include "hc/hc_quant.h"
#include "hc/hc_tensor.h"
#include "qrtn.h"
#include "registry.h"
#include "test_util.h"

/* ---- a small deterministic generator ---- */

typedef struct rng {
    uint64_t s;
} rng;

static uint32_t rnd_u32(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 16);
}

static float rnd_unit(rng *r) { return (float)rnd_u32(r) / 4294967296.0f * 2.0f - 1.0f; } /* [-1, 1) */

/* ---- the plugin ---- */

static hc_registry *reg;
static const hc_quant_ops *ops;

static int load_plugin(void)
{
    if (hc_registry_create(&reg) != HC_OK) return 0;
    if (hc_registry_load_file(reg, HC_PLUGIN_BUILD_DIR "/hc-quant-rtn.so") != HC_OK) {
        fprintf(stderr, "cannot load rtn: %s\n", hc_last_error());
        return 0;
    }
    const hc_plugin *p = hc_registry_find(reg, HC_PLUGIN_QUANT, "rtn");
    if (!p) return 0;
    ops = p->desc->ops;
    return 1;
}

static void *params_of(const char *options)
{
    void *p = NULL;
    hc_status st = ops->parse(options, &p);
    if (st != HC_OK) fprintf(stderr, "  parse(%s): %s\n", options, hc_last_error());
    CU_ASSERT_EQUAL_FATAL(st, HC_OK);
    return p;
}

static void test_descriptor(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(ops);
    const hc_plugin *p = hc_registry_find(reg, HC_PLUGIN_QUANT, "rtn");
    CU_ASSERT_EQUAL(p->desc->abi_version, HC_ABI_VERSION);
    CU_ASSERT_STRING_EQUAL(p->desc->version, "1.0.0");
    CU_ASSERT_PTR_NOT_NULL(p->desc->description);
    CU_ASSERT_PTR_NOT_NULL(ops->input_bytes);
    CU_ASSERT_PTR_NOT_NULL(ops->prepare_input);
    CU_ASSERT_PTR_NOT_NULL(ops->device_kernels); /* CUDA kernels: tests/test_qrtn_cuda_cpu.c */
}

/* ---- options ---- */

static void expect_format(const char *options, const char *canonical)
{
    void *p = params_of(options);
    char buf[128];
    HC_ASSERT_OK(ops->format_options(p, buf, sizeof buf));
    if (strcmp(buf, canonical)) printf("\n  '%s' -> '%s', expected '%s'\n", options ? options : "(null)", buf, canonical);
    CU_ASSERT_STRING_EQUAL(buf, canonical);
    ops->free_params(p);
}

static void expect_bad(const char *options, const char *part1, const char *part2)
{
    void *p = NULL;
    CU_ASSERT_EQUAL(ops->parse(options, &p), HC_E_ARG);
    CU_ASSERT_PTR_NULL(p);
    const char *msg = hc_last_error();
    if (!strstr(msg, part1) || !strstr(msg, part2)) printf("\n  message for '%s': %s\n", options, msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, part1));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, part2));
}

static void test_options(void)
{
    expect_format(NULL, "bits=4,group=128");
    expect_format("", "bits=4,group=128");
    expect_format("bits=3,group=128", "bits=3,group=128");
    expect_format("group=32", "bits=4,group=32");
    expect_format(" bits = 2 , group=64 ", "bits=2,group=64");
    expect_format("bits=8", "bits=8,group=128");
    expect_format("bits=3,search=1", "bits=3,group=128,search=1");
    expect_format("bits=3,search=0", "bits=3,group=128");
    expect_bad("search=2", "search", "0 or 1");
    expect_bad("act_order=1", "act_order", "bits, group, search");   /* gptq's */
    expect_bad("bits=5", "bits", "2, 3, 4, 8");
    expect_bad("bits=1", "bits", "2, 3, 4, 8");
    expect_bad("bits=3x", "bits", "2, 3, 4, 8");
    expect_bad("bits=", "bits", "2, 3, 4, 8");
    expect_bad("bits", "bits", "2, 3, 4, 8");
    expect_bad("group=48", "group", "32, 64, 128");
    expect_bad("group=256", "group", "32, 64, 128");
    expect_bad("foo=1", "foo", "bits, group");
    expect_bad("damp=0.01", "damp", "bits, group");   /* gptq's option, not rtn's */
    expect_bad("bits=3,bits=4", "bits", "twice");
    expect_bad("bits=3,,group=64", "empty", "bits, group");

    void *p = params_of("bits=3,group=128");
    char small[8];
    CU_ASSERT_EQUAL(ops->format_options(p, small, sizeof small), HC_E_ARG);
    ops->free_params(p);
}

/* ---- shapes and sizes ---- */

static void test_shapes_and_sizes(void)
{
    void *p = params_of("bits=3,group=128");
    HC_ASSERT_OK(ops->check_shape(p, 576, 576));   /* 576 = 4.5 groups of 128: the last one has 64 */
    HC_ASSERT_OK(ops->check_shape(p, 3, 160));     /* 128 + 32 */
    HC_ASSERT_OK(ops->check_shape(p, 3, 96));      /* one group of 96 */
    HC_ASSERT_OK(ops->check_shape(p, 3, 32));
    CU_ASSERT_EQUAL(ops->check_shape(p, 576, 584), HC_E_ARG);   /* not a multiple of 32 */
    const char *msg = hc_last_error();
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "576 x 584"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "multiple of 32"));
    CU_ASSERT_EQUAL(ops->check_shape(p, 4, 48), HC_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "4 x 48"));
    CU_ASSERT_EQUAL(ops->packed_bytes(p, 4, 48), 0u);
    CU_ASSERT_EQUAL(ops->check_shape(p, 4, 0), HC_E_ARG);
    CU_ASSERT_EQUAL(ops->check_shape(p, -1, 128), HC_E_ARG);
    HC_ASSERT_OK(ops->check_shape(p, 576, 1536));
    HC_ASSERT_OK(ops->check_shape(p, 0, 128));
    /* rows x (G f16 d + G f16 m + cols * bits / 8), G = ceil(cols / group) */
    CU_ASSERT_EQUAL(ops->packed_bytes(p, 576, 1536), 576u * (12 * 4 + 1536 * 3 / 8));
    CU_ASSERT_EQUAL(ops->packed_bytes(p, 576, 576), 576u * 236);   /* 5 groups: 20 + 216 (qrtn.h's example) */
    CU_ASSERT_EQUAL(ops->packed_bytes(p, 2, 160), 2u * (2 * 4 + 60));
    ops->free_params(p);
    /* the documented sizes of the tail cases, written out */
    static const struct { int bits, group; int64_t cols; size_t row; } sizes[] = {
        {2, 128, 576, 5 * 4 + 144}, {3, 128, 576, 5 * 4 + 216}, {4, 128, 576, 5 * 4 + 288}, {8, 128, 576, 5 * 4 + 576},
        {2, 64, 576, 9 * 4 + 144},  {3, 128, 160, 2 * 4 + 60},  {4, 128, 160, 2 * 4 + 80},  {8, 128, 160, 2 * 4 + 160},
        {2, 64, 96, 2 * 4 + 24},    {3, 64, 96, 2 * 4 + 36},    {4, 64, 96, 2 * 4 + 48},    {8, 64, 96, 2 * 4 + 96},
        {3, 128, 32, 1 * 4 + 12},   {2, 128, 224, 2 * 4 + 56},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        CU_ASSERT_EQUAL(hc_qrtn_row_bytes(sizes[i].bits, sizes[i].group, sizes[i].cols), sizes[i].row);
        CU_ASSERT_EQUAL(hc_qrtn_packed_bytes(sizes[i].bits, sizes[i].group, 3, sizes[i].cols), 3 * sizes[i].row);
    }
    CU_ASSERT_EQUAL(hc_qrtn_groups(128, 576), 5);
    CU_ASSERT_EQUAL(hc_qrtn_groups(64, 576), 9);
    CU_ASSERT_EQUAL(hc_qrtn_groups(128, 160), 2);
    CU_ASSERT_EQUAL(hc_qrtn_groups(128, 32), 1);

    static const int bits[] = {2, 3, 4, 8}, groups[] = {32, 64, 128};
    for (int b = 0; b < 4; b++)
        for (int g = 0; g < 3; g++) {
            char o[64];
            snprintf(o, sizeof o, "bits=%d,group=%d", bits[b], groups[g]);
            p = params_of(o);
            for (int64_t cols = 32; cols <= 1536; cols += 32) {
                HC_ASSERT_OK(ops->check_shape(p, 7, cols));
                size_t want = 7 * (size_t)((cols + groups[g] - 1) / groups[g] * 4 + cols * bits[b] / 8);
                CU_ASSERT_EQUAL(ops->packed_bytes(p, 7, cols), want);
                CU_ASSERT_EQUAL(ops->check_shape(p, 7, cols + 16), HC_E_ARG);
                CU_ASSERT_EQUAL(ops->packed_bytes(p, 7, cols + 16), 0u);
            }
            ops->free_params(p);
        }
}

/* ---- layout ---- */

/* The documented bytes of a 3-bit unit of 128 and of 4-bit and 2-bit units, from known codes. */
static void test_layout_known_bytes(void)
{
    uint8_t q[128], row[4 + 48];
    uint16_t d = hc_f32_to_f16(1.0f), m = 0;
    for (int c = 0; c < 128; c++) q[c] = (uint8_t)((c * 5 + c / 32) & 7);
    hc_qrtn_write_row(3, 128, 128, q, &d, &m, row);
    const uint8_t *u = row + 4;
    const uint8_t *A = q, *B = q + 32, *C = q + 64, *D = q + 96;
    int ok = 1;
    for (int p = 0; p < 32; p++) ok &= u[p] == (uint8_t)(A[p] | B[p] << 3 | (D[p] >> 1) << 6);
    for (int j = 0; j < 16; j++)
        ok &= u[32 + j] == (uint8_t)(C[j] | (D[j] & 1) << 3 | C[j + 16] << 4 | (D[j + 16] & 1) << 7);
    CU_ASSERT(ok);

    uint8_t row4[4 + 64];
    for (int c = 0; c < 128; c++) q[c] = (uint8_t)((c * 7 + 3) & 15);
    hc_qrtn_write_row(4, 128, 128, q, &d, &m, row4);
    ok = 1;
    for (int p = 0; p < 32; p++) ok &= row4[4 + p] == (uint8_t)(q[p] | q[32 + p] << 4);
    for (int p = 0; p < 32; p++) ok &= row4[4 + 32 + p] == (uint8_t)(q[64 + p] | q[96 + p] << 4);
    CU_ASSERT(ok);

    uint8_t row2[4 + 8];   /* a 32-column row: one 2-bit 32-unit */
    for (int c = 0; c < 32; c++) q[c] = (uint8_t)(c & 3);
    hc_qrtn_write_row(2, 32, 32, q, &d, &m, row2);
    ok = 1;
    for (int j = 0; j < 8; j++) ok &= row2[4 + j] == (uint8_t)(q[j] | q[j + 8] << 2 | q[j + 16] << 4 | q[j + 24] << 6);
    CU_ASSERT(ok);

    uint8_t row8[4 + 32];
    for (int c = 0; c < 32; c++) q[c] = (uint8_t)(c * 9);
    hc_qrtn_write_row(8, 32, 32, q, &d, &m, row8);
    ok = 1;
    for (int c = 0; c < 32; c++) ok &= row8[4 + c] == (uint8_t)(q[c] ^ 0x80);
    CU_ASSERT(ok);
}

/* A 576-column 3-bit row in groups of 128: 5 scales, 5 minimums (the fifth for the last 64
 * columns), then four 128-units and a 64-unit at code byte 512 * 3 / 8 = 192; 236 bytes. */
static void test_layout_short_last_group(void)
{
    enum { COLS = 576, G = 5, RB = 4 * G + COLS * 3 / 8 };
    CU_ASSERT_EQUAL_FATAL(hc_qrtn_row_bytes(3, 128, COLS), RB);
    uint8_t q[COLS], back[COLS], row[RB + 1];
    uint16_t d16[G], m16[G];
    for (int c = 0; c < COLS; c++) q[c] = (uint8_t)((c * 5 + c / 7) & 7);
    for (int g = 0; g < G; g++) d16[g] = (uint16_t)(0x3c00 + g), m16[g] = (uint16_t)(0xb800 + 3 * g);
    row[RB] = 0xa5;   /* a guard byte: nothing is written past the row */
    hc_qrtn_write_row(3, 128, COLS, q, d16, m16, row);
    CU_ASSERT_EQUAL(row[RB], 0xa5);
    int ok = 1;
    for (int g = 0; g < G; g++) {
        uint16_t dd, mm;
        memcpy(&dd, row + 2 * g, 2);
        memcpy(&mm, row + 2 * (G + g), 2);
        ok &= dd == d16[g] && mm == m16[g];
    }
    CU_ASSERT(ok);
    const uint8_t *u = row + 4 * G + 192, *A = q + 512, *B = q + 544;   /* the 3-bit 64-unit */
    ok = 1;
    for (int j = 0; j < 16; j++)
        ok &= u[j] == (uint8_t)(A[j] | (B[j] >> 2) << 3 | A[j + 16] << 4 | (B[j + 16] >> 2) << 7);
    for (int j = 0; j < 8; j++)
        ok &= u[16 + j] == (uint8_t)((B[j] & 3) | (B[j + 8] & 3) << 2 | (B[j + 16] & 3) << 4 | (B[j + 24] & 3) << 6);
    CU_ASSERT(ok);
    hc_qrtn_read_codes(3, 128, COLS, row, back);
    CU_ASSERT(!memcmp(q, back, COLS));
}

/* Random codes survive write_row/read_codes for every bits and every unit mix (tails of 64, 32). */
static void test_layout_roundtrip(void)
{
    rng r = {0x1234567};
    static const int bits[] = {2, 3, 4, 8};
    static const int64_t cols_list[] = {32, 64, 96, 128, 160, 192, 224, 576, 608};
    for (int b = 0; b < 4; b++)
        for (size_t c = 0; c < sizeof cols_list / sizeof *cols_list; c++) {
            const int64_t cols = cols_list[c], G = cols / 32;
            uint8_t *q = malloc((size_t)cols), *back = malloc((size_t)cols);
            uint8_t *row = malloc(hc_qrtn_row_bytes(bits[b], 32, cols));
            uint16_t *dm = calloc((size_t)G * 2, sizeof(uint16_t));
            CU_ASSERT_PTR_NOT_NULL_FATAL(row);
            for (int64_t i = 0; i < cols; i++) q[i] = (uint8_t)(rnd_u32(&r) & ((1u << bits[b]) - 1));
            hc_qrtn_write_row(bits[b], 32, cols, q, dm, dm + G, row);
            hc_qrtn_read_codes(bits[b], 32, cols, row, back);
            if (memcmp(q, back, (size_t)cols)) printf("\n  codes differ: bits %d cols %lld\n", bits[b], (long long)cols);
            CU_ASSERT(!memcmp(q, back, (size_t)cols));
            free(q), free(back), free(row), free(dm);
        }
}

/* ---- quantize / dequantize ---- */

/* Weights with a different scale and offset per group, some constant groups, an outlier. */
static float *make_weights(rng *r, int64_t rows, int64_t cols)
{
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    for (int64_t o = 0; o < rows; o++)
        for (int64_t c0 = 0; c0 < cols; c0 += 32) {
            float scale = powf(10.0f, 2.0f * rnd_unit(r) - 1.0f), off = 0.3f * scale * rnd_unit(r);
            int constant = rnd_u32(r) % 11 == 0;
            for (int64_t i = c0; i < c0 + 32; i++)
                w[o * cols + i] = constant ? off : off + scale * rnd_unit(r);
        }
    w[cols / 2] = 40.0f;   /* an outlier in row 0 */
    return w;
}

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return hc_f16_to_f32(h);
}

static void check_roundtrip(int bits, int group, int64_t rows, int64_t cols)
{
    rng r = {(uint64_t)(bits * 1000 + group * 7 + cols)};
    char o[64];
    snprintf(o, sizeof o, "bits=%d,group=%d", bits, group);
    void *p = params_of(o);
    float *w = make_weights(&r, rows, cols), *deq = malloc(sizeof(float) * (size_t)(rows * cols));
    size_t n = ops->packed_bytes(p, rows, cols);
    uint8_t *packed = malloc(n);
    uint8_t *q = malloc((size_t)cols);
    CU_ASSERT_PTR_NOT_NULL_FATAL(packed);
    HC_ASSERT_OK(ops->quantize(p, w, rows, cols, NULL, packed));
    ops->dequantize_rows(p, packed, cols, rows, 0, rows, deq);
    const size_t rb = n / (size_t)rows;
    const int64_t G = (cols + group - 1) / group;
    const int qmax = (1 << bits) - 1;
    CU_ASSERT_EQUAL(rb, (size_t)(4 * G + cols * bits / 8));
    int bad = 0, bad_grid = 0, bad_own = 0;
    for (int64_t row = 0; row < rows; row++) {
        const uint8_t *pr = packed + (size_t)row * rb;
        hc_qrtn_read_codes(bits, group, cols, pr, q);
        /* each group's grid is made of its own columns only (the last: up to the row's end):
           m = its minimum rounded down to f16, d = its range / qmax rounded up to f16 */
        for (int64_t g = 0; g < G; g++) {
            float lo = INFINITY, hi = -INFINITY;
            for (int64_t i = g * group; i < cols && i < (g + 1) * group; i++) {
                lo = fminf(lo, w[row * cols + i]);
                hi = fmaxf(hi, w[row * cols + i]);
            }
            const float d = f16_at(pr + 2 * g), m = f16_at(pr + 2 * (G + g));
            const double v = ((double)hi - m) / qmax;
            int own = m <= lo && m > lo - fabsf(lo) / 512.0f - 6e-8f;
            own &= hi == m ? d == 0.0f : ((double)d >= v && (double)d <= v * (1.0 + 1.0 / 1024) + 6e-8);
            if (!own && bad_own++ < 3)
                printf("\n  bits %d group %d cols %lld row %lld group %lld: d %g m %g, own min %g max %g", bits, group,
                       (long long)cols, (long long)row, (long long)g, (double)d, (double)m, (double)lo, (double)hi);
        }
        for (int64_t i = 0; i < cols; i++) {
            const int64_t g = i / group;
            const float d = f16_at(pr + 2 * g), m = f16_at(pr + 2 * (G + g));
            const float x = w[row * cols + i], y = deq[row * cols + i];
            /* the bound: half a step, plus the float rounding of d q + m */
            const float bound = 0.5f * d * (1.0f + 1e-6f) + 1e-6f * (fabsf(m) + (float)qmax * d) + 1e-30f;
            if (!(fabsf(x - y) <= bound)) {
                if (bad++ < 3)
                    printf("\n  bits %d group %d row %lld col %lld: w %g deq %g d %g m %g", bits, group,
                           (long long)row, (long long)i, (double)x, (double)y, (double)d, (double)m);
            }
            if (y != d * (float)q[i] + m || q[i] > qmax) bad_grid++;   /* deq is exactly d q + m */
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(bad_grid, 0);
    CU_ASSERT_EQUAL(bad_own, 0);

    /* a row range not starting at 0 gives the same rows */
    float *part = malloc(sizeof(float) * (size_t)(3 * cols));
    ops->dequantize_rows(p, packed, cols, rows, rows - 3, 3, part);
    CU_ASSERT(!memcmp(part, deq + (rows - 3) * cols, sizeof(float) * (size_t)(3 * cols)));
    free(part), free(w), free(deq), free(packed), free(q);
    ops->free_params(p);
}

static void test_roundtrip_all_formats(void)
{
    static const int bits[] = {2, 3, 4, 8}, groups[] = {32, 64, 128};
    for (int b = 0; b < 4; b++)
        for (int g = 0; g < 3; g++) {
            check_roundtrip(bits[b], groups[g], 9, 1536);
            check_roundtrip(bits[b], groups[g], 5, groups[g] == 128 ? 640 : 576);
            if (groups[g] == 32) check_roundtrip(bits[b], 32, 4, 224);   /* units 128 + 64 + 32 */
        }
}

/* Rows whose width is not a multiple of the group: the last group is short. */
static void test_roundtrip_short_last_group(void)
{
    static const int bits[] = {2, 3, 4, 8};
    for (int b = 0; b < 4; b++) {
        check_roundtrip(bits[b], 128, 6, 576);   /* 4 x 128 + 64 */
        check_roundtrip(bits[b], 64, 6, 576);    /* 9 x 64 (no tail: the same rule) */
        check_roundtrip(bits[b], 128, 5, 160);   /* 128 + 32 */
        check_roundtrip(bits[b], 64, 5, 96);     /* 64 + 32 */
        check_roundtrip(bits[b], 128, 4, 224);   /* 128 + 96 (units 64 + 32 in the last group) */
        check_roundtrip(bits[b], 128, 4, 96);    /* one group of 96 */
        check_roundtrip(bits[b], 64, 3, 4128);   /* several kernel segments, a last group of 32 */
    }
}

static void test_quantize_edge_cases(void)
{
    void *p = params_of("bits=3,group=32");
    float w[64];
    uint8_t packed[2 * (4 + 12)];
    float deq[64];
    /* an all-zero group and a constant group are exact */
    for (int i = 0; i < 32; i++) w[i] = 0.0f, w[32 + i] = -2.5f;
    HC_ASSERT_OK(ops->quantize(p, w, 2, 32, NULL, packed));
    ops->dequantize_rows(p, packed, 32, 2, 0, 2, deq);
    int exact = 1;
    for (int i = 0; i < 64; i++) exact &= deq[i] == w[i];
    CU_ASSERT(exact);
    /* a tiny range still gets a positive step (the f16 scale rounds up) */
    for (int i = 0; i < 32; i++) w[i] = 1e-9f * (float)i;
    HC_ASSERT_OK(ops->quantize(p, w, 1, 32, NULL, packed));
    ops->dequantize_rows(p, packed, 32, 1, 0, 1, deq);
    int close = 1;
    for (int i = 0; i < 32; i++) close &= fabsf(deq[i] - w[i]) < 1e-7f;
    CU_ASSERT(close);
    /* not finite, or beyond f16: refused with the row and columns named */
    w[5] = NAN;
    CU_ASSERT_EQUAL(ops->quantize(p, w, 1, 32, NULL, packed), HC_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "row 0"));
    w[5] = 1e6f;
    CU_ASSERT_EQUAL(ops->quantize(p, w, 1, 32, NULL, packed), HC_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "f16"));
    CU_ASSERT_EQUAL(ops->quantize(p, w, 1, 48, NULL, packed), HC_E_ARG);   /* bad shape */
    ops->free_params(p);
}

/* ---- kernels ---- */

/* ---- the activation-weighted grid search ---- */

/* On random groups (Gaussian with outliers, uniform; random importance or none) the searched grid
 * never errs more than the min-max grid under the same weights, and at 2-4 bits it errs clearly
 * less on average; the plugin's search=1 uses E[x^2] as the weights. */
static void test_grid_search(void)
{
    rng r = {77};
    for (int bits = 2; bits <= 8; bits = bits == 4 ? 8 : bits + 1) {
        double sum_ratio = 0;
        int cases = 0;
        for (int t = 0; t < 300; t++) {
            const int n = t % 3 == 0 ? 128 : t % 3 == 1 ? 64 : 32;
            float w[128], imp[128];
            for (int i = 0; i < n; i++) {
                float g = 0;
                for (int k = 0; k < 4; k++) g += rnd_unit(&r);   /* near-Gaussian */
                w[i] = t % 2 ? g : rnd_unit(&r);
                if (i == t % n) w[i] *= 4.0f;                     /* one outlier */
                imp[i] = t % 5 == 0 ? 0.0f : 0.01f + fabsf(rnd_unit(&r)) * (i % 7 == 0 ? 100.0f : 1.0f);
            }
            const float *im = t % 4 == 3 ? NULL : imp;
            uint16_t d0, m0, d1, m1;
            HC_ASSERT_OK(hc_qrtn_grid(w, n, bits, &d0, &m0));
            HC_ASSERT_OK(hc_qrtn_grid_search(w, im, n, bits, &d1, &m1));
            const double e0 = hc_qrtn_grid_error(w, im, n, bits, d0, m0), e1 = hc_qrtn_grid_error(w, im, n, bits, d1, m1);
            CU_ASSERT(e1 <= e0);
            CU_ASSERT(hc_f16_to_f32(d1) > 0.0f);
            if (e0 > 0) sum_ratio += e1 / e0, cases++;
        }
        printf("\n  %d bits: searched / min-max error %.3f on average", bits, sum_ratio / cases);
        if (bits <= 4) CU_ASSERT(sum_ratio / cases < 0.9);
    }
    /* a constant group keeps the exact grid; a non-finite weight is refused */
    float c[32], bad[32];
    uint16_t d, m;
    for (int i = 0; i < 32; i++) c[i] = 0.375f, bad[i] = (float)i;
    HC_ASSERT_OK(hc_qrtn_grid_search(c, NULL, 32, 3, &d, &m));
    CU_ASSERT_EQUAL(hc_qrtn_grid_error(c, NULL, 32, 3, d, m), 0.0);
    bad[5] = NAN;
    CU_ASSERT_EQUAL(hc_qrtn_grid_search(bad, NULL, 32, 3, &d, &m), HC_E_ARG);

    /* the plugin: search=1 with E[x^2] errs less than plain rtn in that measure */
    enum { ROWS = 8, COLS = 576 };
    float *w = malloc(sizeof(float) * ROWS * COLS), *x2 = malloc(sizeof(float) * COLS);
    float *d0q = malloc(sizeof(float) * ROWS * COLS), *d1q = malloc(sizeof(float) * ROWS * COLS);
    for (int i = 0; i < ROWS * COLS; i++) w[i] = rnd_unit(&r) + 0.3f * rnd_unit(&r);
    for (int i = 0; i < COLS; i++) x2[i] = 0.05f + (i % 11 == 0 ? 30.0f : 1.0f) * fabsf(rnd_unit(&r));
    void *p0 = params_of("bits=3,group=128"), *p1 = params_of("bits=3,group=128,search=1");
    size_t bytes = ops->packed_bytes(p0, ROWS, COLS);
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    hc_quant_calib calib = {x2, NULL};
    HC_ASSERT_OK(ops->quantize(p0, w, ROWS, COLS, &calib, a));
    HC_ASSERT_OK(ops->quantize(p1, w, ROWS, COLS, &calib, b));
    ops->dequantize_rows(p0, a, COLS, ROWS, 0, ROWS, d0q);
    ops->dequantize_rows(p1, b, COLS, ROWS, 0, ROWS, d1q);
    double e0 = 0, e1 = 0;
    for (int i = 0; i < ROWS * COLS; i++) {
        const double x = x2[i % COLS], u = w[i] - d0q[i], v = w[i] - d1q[i];
        e0 += x * u * u, e1 += x * v * v;
    }
    printf("\n  plugin, 3 bits g128, E[x^2]-weighted error: search %.4g, min-max %.4g", e1, e0);
    CU_ASSERT(e1 < 0.9 * e0);
    free(w), free(x2), free(d0q), free(d1q), free(a), free(b);
    ops->free_params(p0), ops->free_params(p1);
}

/* Activations with unequal block scales, one all-zero block, and a block with a spike. */
static float *make_acts(rng *r, int64_t cols, int n_tok)
{
    float *x = malloc(sizeof(float) * (size_t)(cols * n_tok));
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    for (int t = 0; t < n_tok; t++)
        for (int64_t c0 = 0; c0 < cols; c0 += 32) {
            float s = powf(10.0f, rnd_unit(r));
            for (int64_t i = c0; i < c0 + 32; i++) x[t * cols + i] = s * rnd_unit(r);
        }
    if (cols >= 64)
        for (int t = 0; t < n_tok; t++) {
            for (int i = 32; i < 64; i++) x[t * cols + i] = 0.0f;
            x[t * cols + cols - 1] = 25.0f;
        }
    return x;
}

#define SENTINEL 12345.0f

/* The kernels compared with the reference: the plugin's (dispatched), and each SIMD one the CPU runs. */
enum { K_PLUGIN, K_AVX2, K_AVX512, N_KERNELS };
static const char *const kernel_name[N_KERNELS] = {"plugin", "avx2", "avx512"};

static void check_kernels(int bits, int group, int64_t rows, int64_t cols, int n_tok, int64_t row0, int64_t row1)
{
    rng r = {(uint64_t)(bits * 77 + group * 3 + cols * 11 + n_tok)};
    char o[64];
    snprintf(o, sizeof o, "bits=%d,group=%d", bits, group);
    void *p = params_of(o);
    float *w = make_weights(&r, rows, cols), *x = make_acts(&r, cols, n_tok);
    float *deq = malloc(sizeof(float) * (size_t)(rows * cols));
    uint8_t *packed = malloc(ops->packed_bytes(p, rows, cols));
    size_t xb = ops->input_bytes(p, cols, n_tok);
    void *xq = malloc(xb);
    float *y = malloc(sizeof(float) * (size_t)(rows * n_tok)), *yr = malloc(sizeof(float) * (size_t)(rows * n_tok));
    CU_ASSERT_PTR_NOT_NULL_FATAL(yr);
    CU_ASSERT_EQUAL(xb, hc_qrtn_input_bytes(bits, group, cols, n_tok));
    HC_ASSERT_OK(ops->quantize(p, w, rows, cols, NULL, packed));
    ops->dequantize_rows(p, packed, cols, rows, 0, rows, deq);
    ops->prepare_input(p, x, cols, n_tok, xq);
    for (int64_t i = 0; i < rows * n_tok; i++) yr[i] = SENTINEL;
    HC_ASSERT_OK(hc_qrtn_matmul_rows_ref(bits, group, packed, cols, rows, xq, n_tok, yr, rows, row0, row1));
    const size_t xrb = hc_qrtn_input_row_bytes(bits, group, cols), rb = hc_qrtn_row_bytes(bits, group, cols);
    const int64_t G = (cols + group - 1) / group;
    float *xhat = malloc(sizeof(float) * (size_t)cols), *step = malloc(sizeof(float) * (size_t)cols);
    for (int k = 0; k < N_KERNELS; k++) {
        if ((k == K_AVX2 && !hc_cpu_has_avx2()) || (k == K_AVX512 && !hc_cpu_has_avx512())) continue;
        for (int64_t i = 0; i < rows * n_tok; i++) y[i] = SENTINEL;
        if (k == K_PLUGIN)
            HC_ASSERT_OK(ops->matmul_rows(p, packed, cols, rows, x, xq, n_tok, y, rows, row0, row1));
        else if (k == K_AVX2 && n_tok > 0 && row0 < row1)
            hc_qrtn_matmul_rows_avx2(bits, group, packed, cols, xq, n_tok, y, rows, row0, row1);
        else if (k == K_AVX512 && n_tok > 0 && row0 < row1)
            hc_qrtn_matmul_rows_avx512(bits, group, packed, cols, rows, xq, n_tok, y, rows, row0, row1);
        int bad_ref = 0, bad_float = 0, touched = 0;
        for (int t = 0; t < n_tok; t++) {
            hc_qrtn_input_values(bits, group, cols, (const uint8_t *)xq + (size_t)t * xrb, xhat, step);
            for (int64_t o2 = 0; o2 < rows; o2++) {
                const float ya = y[t * rows + o2], yb = yr[t * rows + o2];
                if (o2 < row0 || o2 >= row1) {
                    touched += ya != SENTINEL || yb != SENTINEL;
                    continue;
                }
                /* exact: sum deq * x; the kernels see xhat with |x - xhat| <= step / 2 per element.
                   mag: the size of the terms the kernels add, d q xhat and m xhat separately (8 bits: the
                   codes are stored minus 128, the terms are d (q - 128) xhat and (m + 128 d) xhat) */
                const uint8_t *pr = packed + (size_t)o2 * rb;
                double exact = 0, mag = 0, act_bound = 0;
                for (int64_t i = 0; i < cols; i++) {
                    const double wd = deq[o2 * cols + i], xi = x[t * cols + i], m = f16_at(pr + 2 * (G + i / group));
                    const double d8 = bits == 8 ? 256.0 * f16_at(pr + 2 * (i / group)) : 0.0;
                    exact += wd * xi;
                    mag += (fabs(wd) + 2 * fabs(m) + d8) * fabs((double)xhat[i]) + fabs(wd * xi);
                    act_bound += 0.5 * (double)step[i] * fabs(wd);
                }
                const double tight = 2e-6 * mag + 1e-6;
                if (!(fabs((double)ya - (double)yb) <= tight)) {
                    if (bad_ref++ < 3)
                        printf("\n  %s: bits %d group %d cols %lld tok %d/%d row %lld: kernel %.9g ref %.9g (tol %.3g)",
                               kernel_name[k], bits, group, (long long)cols, t, n_tok, (long long)o2, (double)ya, (double)yb,
                               tight);
                }
                const double loose = act_bound * 1.0001 + 1e-5 * mag + 1e-6;
                if (!(fabs((double)ya - exact) <= loose) || !(fabs((double)yb - exact) <= loose)) {
                    if (bad_float++ < 3)
                        printf("\n  %s: bits %d group %d cols %lld tok %d row %lld: kernel %.9g ref %.9g float %.9g (bound %.3g)",
                               kernel_name[k], bits, group, (long long)cols, t, (long long)o2, (double)ya, (double)yb, exact,
                               loose);
                }
            }
        }
        CU_ASSERT_EQUAL(bad_ref, 0);
        CU_ASSERT_EQUAL(bad_float, 0);
        CU_ASSERT_EQUAL(touched, 0);
    }
    free(xhat), free(step);
    free(w), free(x), free(deq), free(packed), free(xq), free(y), free(yr);
    ops->free_params(p);
}

static void test_kernels_match(void)
{
    static const int bits[] = {2, 3, 4, 8}, groups[] = {32, 64, 128};
    static const int toks[] = {1, 3, 7, 9};   /* 9: a group of 8 tokens and one left */
    for (int b = 0; b < 4; b++)
        for (int g = 0; g < 3; g++)
            for (int k = 0; k < 4; k++) {
                const int t = toks[k];
                check_kernels(bits[b], groups[g], 37, 1536, t, 0, 37);
                check_kernels(bits[b], groups[g], 37, groups[g] == 128 ? 640 : 576, t, 5, 31);
                if (groups[g] == 32) {
                    check_kernels(bits[b], 32, 13, 224, t, 3, 13);   /* units 128 + 64 + 32 */
                    check_kernels(bits[b], 32, 6, 32, t, 1, 6);      /* one 32-unit: the scales' copy */
                    check_kernels(bits[b], 32, 5, 96, t, 0, 5);      /* 64 + 32 */
                }
                if (groups[g] == 64) check_kernels(bits[b], 64, 9, 4160, t, 2, 9);   /* several segments + tail */
            }
    check_kernels(3, 64, 19, 576, 70, 1, 19);   /* more tokens than one round of activation views */
}

/* 1..40 tokens (the decode kernels below HC_QRTN_BATCH_MIN, the prefill kernel's tiles of 16 from it,
 * partly filled), odd row counts and ranges, units 128 + 64 + 32 (a short last group of 96 or 32),
 * several K blocks of the prefill kernel (4160, 4128 columns). */
static void test_kernels_tokens(void)
{
    for (int n_tok = 1; n_tok <= 40; n_tok++) {
        check_kernels(3, 128, 21, 224, n_tok, 3, 20);
        check_kernels(4, 64, 13, 736, n_tok, 0, 13);
        check_kernels(n_tok % 2 ? 2 : 8, n_tok % 3 ? 32 : 128, 11, 480, n_tok, 1, 10);
    }
    static const int toks[] = {1, 5, 8, 17, 33};
    for (int k = 0; k < 5; k++) {
        check_kernels(3, 64, 9, 4160, toks[k], 1, 9);
        check_kernels(4, 128, 10, 4128, toks[k], 0, 10);
        check_kernels(8, 128, 3, 4128, toks[k], 0, 3);
        check_kernels(2, 32, 17, 2080, toks[k], 2, 17);
    }
}

/* Short last groups: 576 in groups of 128 (last 64) and of 64, 160 in groups of 128 (last 32),
 * 96 in groups of 64 (last 32), 224 in groups of 128 (last 96 = units 64 + 32), 4128 in groups
 * of 64 / 128 (several segments, last 32); 1 and 7 tokens (and 9: groups of 8 and 1), row ranges. */
static void test_kernels_short_last_group(void)
{
    static const int bits[] = {2, 3, 4, 8};
    static const int toks[] = {1, 7, 9};
    for (int b = 0; b < 4; b++)
        for (int k = 0; k < 3; k++) {
            const int t = toks[k];
            check_kernels(bits[b], 128, 37, 576, t, 0, 37);
            check_kernels(bits[b], 128, 37, 576, t, 5, 31);
            check_kernels(bits[b], 64, 37, 576, t, 3, 34);
            check_kernels(bits[b], 128, 13, 160, t, 0, 13);
            check_kernels(bits[b], 128, 13, 160, t, 2, 11);
            check_kernels(bits[b], 64, 11, 96, t, 0, 11);
            check_kernels(bits[b], 64, 11, 96, t, 4, 9);
            check_kernels(bits[b], 128, 6, 224, t, 1, 6);
            check_kernels(bits[b], 128, 5, 32, t, 0, 5);   /* one group of 32: the scales' copy */
            check_kernels(bits[b], 64, 5, 4128, t, 1, 5);
            check_kernels(bits[b], 128, 5, 4128, t, 0, 4);
        }
    check_kernels(3, 128, 19, 576, 70, 1, 19);   /* more tokens than one round of activation views */
}

/* The largest sums the kernel can meet: every code at the far end of its range (bits 2-4: qmax;
 * 8 bits: code 0, stored as -128), every activation block at full scale (multiplier Cmax, |qx| =
 * 127), groups of 4 blocks. The int32 group sums must not overflow: both kernels equal the
 * float dot of the dequantized weights with the activations the kernels see. */
static void test_kernel_extremes(void)
{
    const int64_t rows = 8, cols = 512;
    float *w = malloc(sizeof(float) * rows * cols), x[512], y[8], yr[8], xhat[512], deq[512];
    for (int i = 0; i < 512; i++) x[i] = 1.0f;
    for (int bits = 2; bits <= 8; bits++) {
        if (bits > 4 && bits < 8) continue;
        for (int64_t i = 0; i < rows * cols; i++)   /* one odd weight per group fixes the grid */
            w[i] = bits == 8 ? (i % 128 == 0 ? 1.0f : 0.0f) : (i % 128 == 0 ? 0.0f : 1.0f);
        char o[64];
        snprintf(o, sizeof o, "bits=%d,group=128", bits);
        void *p = params_of(o);
        uint8_t *packed = malloc(ops->packed_bytes(p, rows, cols));
        void *xq = malloc(ops->input_bytes(p, cols, 1));
        HC_ASSERT_OK(ops->quantize(p, w, rows, cols, NULL, packed));
        ops->prepare_input(p, x, cols, 1, xq);
        hc_qrtn_input_values(bits, 128, cols, xq, xhat, NULL);
        HC_ASSERT_OK(ops->matmul_rows(p, packed, cols, rows, x, xq, 1, y, rows, 0, rows));
        HC_ASSERT_OK(hc_qrtn_matmul_rows_ref(bits, 128, packed, cols, rows, xq, 1, yr, rows, 0, rows));
        int ok = 1;
        for (int r = 0; r < rows; r++) {
            ops->dequantize_rows(p, packed, cols, rows, r, 1, deq);
            double want = 0;
            for (int i = 0; i < cols; i++) want += (double)deq[i] * xhat[i];
            ok &= fabs(y[r] - want) <= 1e-5 * (1.0 + fabs(want)) && fabs(yr[r] - want) <= 1e-5 * (1.0 + fabs(want));
            if (r == 0 && !ok) printf("\n  bits %d: avx2 %g ref %g want %g", bits, (double)y[0], (double)yr[0], want);
        }
        CU_ASSERT(ok);
        free(packed), free(xq);
        ops->free_params(p);
    }
    free(w);
}

static void test_kernel_bad_calls(void)
{
    void *p = params_of("bits=3,group=64");
    rng r = {99};
    float *w = make_weights(&r, 8, 128), x[128 * 2], y[16];
    uint8_t packed[8 * (8 + 48)];
    void *xq = malloc(ops->input_bytes(p, 128, 2));
    for (int i = 0; i < 256; i++) x[i] = rnd_unit(&r);
    HC_ASSERT_OK(ops->quantize(p, w, 8, 128, NULL, packed));
    ops->prepare_input(p, x, 128, 2, xq);
    CU_ASSERT_EQUAL(ops->matmul_rows(p, packed, 128, 8, x, NULL, 1, y, 8, 0, 8), HC_E_ARG);   /* no xq */
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "xq"));
    CU_ASSERT_EQUAL(ops->matmul_rows(p, packed, 128, 8, x, xq, 1, y, 8, 0, 9), HC_E_ARG);     /* past the rows */
    CU_ASSERT_EQUAL(ops->matmul_rows(p, packed, 128, 8, x, xq, 1, y, 8, 5, 4), HC_E_ARG);     /* reversed */
    CU_ASSERT_EQUAL(ops->matmul_rows(p, packed, 128, 8, x, xq, 2, y, 4, 0, 8), HC_E_ARG);     /* ldy < row1 */
    CU_ASSERT_EQUAL(ops->matmul_rows(p, packed, 80, 8, x, xq, 1, y, 8, 0, 8), HC_E_ARG);      /* cols % 32 */
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "8 x 80"));
    CU_ASSERT_EQUAL(hc_qrtn_matmul_rows_ref(3, 64, packed, 128, 8, NULL, 1, y, 8, 0, 8), HC_E_ARG);
    HC_ASSERT_OK(ops->matmul_rows(p, packed, 128, 8, x, xq, 0, y, 8, 0, 8));                  /* nothing to do */
    HC_ASSERT_OK(ops->matmul_rows(p, packed, 128, 8, x, xq, 2, y, 8, 3, 3));
    free(w), free(xq);
    ops->free_params(p);
}

/* The prepared activations: each element within half its step, the steps integer multiples
 * (c_b <= Cmax, stored shifted by A - a_b) of a group base sized to the group's largest block,
 * the group sums, the zero padding; an all-zero group. */
static void test_prepare_input(void)
{
    rng r = {5};
    float *x = make_acts(&r, 320, 2);
    for (int i = 64; i < 96; i++) x[i] *= 1e-3f;   /* a small block beside large ones */
    for (int i = 160; i < 192; i++) x[i] = 0.0f;    /* an all-zero block, */
    x[200] = -0.0f, x[201] = 1e-40f, x[202] = -1e-39f;   /* signed zero and subnormals, */
    for (int i = 320 + 224; i < 320 + 256; i++) x[i] = (float)(i % 7) - 3.0f;   /* and a block of small integers */
    static const int bits_list[] = {2, 3, 4, 8};
    /* units 128 + 64 + 32; 128 + 128 + 64; then short last groups: 64 x 3 + 32, 128 + 96, 128 x 2 + 64, 128 + 32 */
    static const int shapes[][2] = {{32, 224}, {64, 320}, {64, 224}, {128, 224}, {128, 320}, {128, 160}};
    for (int bi = 0; bi < 4; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            const int group = shapes[si][0];
            const int64_t cols = shapes[si][1], nb = cols / 32;
            const int bits = bits_list[bi], bpg = group / 32, G = (int)((cols + group - 1) / group), A = hc_qrtn_shift_max(bits);
            const int cmax = hc_qrtn_cmax(bits);
            const size_t xrb = hc_qrtn_input_row_bytes(bits, group, cols);
            CU_ASSERT_EQUAL(xrb % 64, 0);
            uint8_t *xq = malloc(hc_qrtn_input_bytes(bits, group, cols, 2));   /* with the AVX-512 section */
            float xhat[320], step[320];
            hc_qrtn_prepare_input(bits, group, x, cols, 2, xq);
            uint8_t *xq_ref = malloc(2 * xrb);   /* the dispatched (AVX2) preparation: the reference's bytes */
            memset(xq_ref, 0xa5, 2 * xrb);
            hc_qrtn_prepare_input_ref(bits, group, x, cols, 2, xq_ref);
            CU_ASSERT(!memcmp(xq, xq_ref, 2 * xrb));
            free(xq_ref);
            for (int t = 0; t < 2; t++) {
                const uint8_t *base = xq + t * xrb;
                const float *xt = x + t * cols, *dg = (const float *)(base + cols / 32 * HC_QRTN_XBLOCK), *sg = dg + 8;
                hc_qrtn_input_values(bits, group, cols, base, xhat, step);
                int ok = 1;
                for (int i = 0; i < cols; i++) ok &= fabsf(xt[i] - xhat[i]) <= 0.5f * step[i] * 1.0001f + 1e-30f;
                CU_ASSERT(ok);
                for (int g = 0; g < G; g++) {
                    float top = 0.0f, sum = 0.0f;
                    const int b_end = (g + 1) * bpg < nb ? (g + 1) * bpg : (int)nb;   /* the last group may be short */
                    for (int i = 32 * bpg * g; i < 32 * b_end; i++) top = fmaxf(top, fabsf(xt[i]));
                    for (int b = g * bpg; b < b_end; b++) {
                        const uint8_t *blk = base + b * HC_QRTN_XBLOCK;
                        int16_t cs;
                        memcpy(&cs, blk + 32, 2);
                        const int a = hc_qrtn_block_shift(bits, cols, b), c = cs >> (A - a);
                        CU_ASSERT_EQUAL(cs, c << (A - a));
                        CU_ASSERT(c >= 0 && c <= cmax);
                        float amax = 0.0f;
                        for (int i = 32 * b; i < 32 * b + 32; i++) {
                            amax = fmaxf(amax, fabsf(xt[i]));
                            sum += xhat[i];
                        }
                        /* the step is the ideal amax/127, rounded up to a multiple of top/(127 Cmax) */
                        CU_ASSERT(step[32 * b] >= amax / 127.0f * 0.9999f);
                        CU_ASSERT(step[32 * b] <= (amax + top / (float)cmax) / 127.0f * 1.0001f);
                    }
                    CU_ASSERT(fabsf(sg[g] - sum) <= 1e-5f * top * 64 + 1e-30f);
                    CU_ASSERT_EQUAL(ldexpf(dg[g], A), top / (127.0f * (float)cmax));
                }
                for (int g = G; g < 8; g++) CU_ASSERT(dg[g] == 0.0f && sg[g] == 0.0f);
            }
            free(xq);
        }
    /* an all-zero input: zero steps, zero values */
    float z[64] = {0}, zh[64], zs[64];
    uint8_t *xq = malloc(hc_qrtn_input_bytes(3, 64, 64, 1));
    hc_qrtn_prepare_input(3, 64, z, 64, 1, xq);
    hc_qrtn_input_values(3, 64, 64, xq, zh, zs);
    int zero = 1;
    for (int i = 0; i < 64; i++) zero &= zh[i] == 0.0f && zs[i] == 0.0f;
    CU_ASSERT(zero);
    free(xq);
    free(x);
}

/* Through the cpu device: an HC_PACKED tensor bound to the plugin, matmul on 2 threads (row
 * ranges split among them, one prepare_input) equals the reference; get_rows dequantizes. */
static void cpu_device_case(int group)
{
    const int64_t rows = 70, cols = 576;
    rng r = {2024};
    char opt[64];
    snprintf(opt, sizeof opt, "bits=3,group=%d", group);
    hc_quant_format fmt = {.ops = ops, .params = params_of(opt), .plugin = "rtn"};
    snprintf(fmt.options, sizeof fmt.options, "%s", opt);
    float *w = make_weights(&r, rows, cols), *x = make_acts(&r, cols, 3);
    uint8_t *packed = malloc(ops->packed_bytes(fmt.params, rows, cols));
    void *xq = malloc(ops->input_bytes(fmt.params, cols, 3));
    float y[3 * 70], yr[3 * 70], row[576], deq[576];
    HC_ASSERT_OK(ops->quantize(fmt.params, w, rows, cols, NULL, packed));
    hc_tensor t = {.name = "w", .dtype = HC_PACKED, .n_dims = 2, .ne = {cols, rows, 1, 1}, .data = packed,
                   .nbytes = ops->packed_bytes(fmt.params, rows, cols), .qfmt = &fmt};
    hc_device_config cfg = {.n_threads = 2};
    hc_device *dev = NULL;
    HC_ASSERT_OK(hc_cpu_device_create(&cfg, &dev));
    for (int n_tok = 1; n_tok <= 3; n_tok += 2) {
        HC_ASSERT_OK(dev->ops->matmul(dev, &t, x, y, n_tok));
        ops->prepare_input(fmt.params, x, cols, n_tok, xq);
        HC_ASSERT_OK(hc_qrtn_matmul_rows_ref(3, group, packed, cols, rows, xq, n_tok, yr, rows, 0, rows));
        int ok = 1;
        for (int i = 0; i < n_tok * rows; i++) ok &= fabsf(y[i] - yr[i]) <= 1e-4f * (1.0f + fabsf(yr[i]));
        CU_ASSERT(ok);
    }
    const int32_t id = 41;
    HC_ASSERT_OK(dev->ops->get_rows(dev, &t, &id, 1, row));
    ops->dequantize_rows(fmt.params, packed, cols, rows, id, 1, deq);
    CU_ASSERT(!memcmp(row, deq, sizeof row));
    dev->ops->destroy(dev);
    ops->free_params(fmt.params);
    free(w), free(x), free(packed), free(xq);
}

/* Activations with inf and NaN (a model with broken weights makes them): the preparation, plain and
 * AVX2, gives every block a multiplier in [0, cmax] instead of converting inf/inf to int, which is
 * undefined (found by tests/fuzz/fuzz_model: "-nan is outside the range of representable values
 * of type 'int'" in hc_qrtn_block_mult). */
static void test_prepare_non_finite(void)
{
    for (int bits = 2; bits <= 8; bits = bits == 4 ? 8 : bits + 1) {
        const int cmax = hc_qrtn_cmax(bits);
        CU_ASSERT_EQUAL(hc_qrtn_block_mult(INFINITY, INFINITY, INFINITY, cmax), cmax);
        CU_ASSERT_EQUAL(hc_qrtn_block_mult(NAN, NAN, NAN, cmax), 0);
        CU_ASSERT_EQUAL(hc_qrtn_block_mult(1.0f, INFINITY, INFINITY, cmax), 1);
        int c = hc_qrtn_block_mult(INFINITY, INFINITY, 1.0f, cmax);
        CU_ASSERT(c >= 1 && c <= cmax);
        float x[128];
        for (int i = 0; i < 128; i++) x[i] = (float)(i % 5) - 2.0f;
        x[3] = INFINITY;
        x[40] = NAN;
        x[70] = -INFINITY;
        x[71] = NAN;
        const size_t xrb = hc_qrtn_input_row_bytes(bits, 64, 128);
        uint8_t *a = malloc(xrb), *b = malloc(hc_qrtn_input_bytes(bits, 64, 128, 1));
        hc_qrtn_prepare_input_ref(bits, 64, x, 128, 1, a);
        hc_qrtn_prepare_input(bits, 64, x, 128, 1, b);
        for (int blk = 0; blk < 4; blk++) {
            int16_t ca, cb;
            memcpy(&ca, a + blk * HC_QRTN_XBLOCK + 32, 2);
            memcpy(&cb, b + blk * HC_QRTN_XBLOCK + 32, 2);
            CU_ASSERT(ca >= 0 && cb >= 0);
        }
        free(a);
        free(b);
    }
}

/* A group whose largest |x| is below 2^-100 prepares to zeros, plain and AVX2, as the GPU zeroes such
 * blocks: at 1e-38 its base top / (127 cmax) is denormal, 1 / step beyond float's range, and its zeros
 * (0 x inf: NaN) and values became codes of -127. A group beside it is prepared as ever. */
static void test_prepare_tiny_group(void)
{
    for (int bits = 2; bits <= 8; bits = bits == 4 ? 8 : bits + 1) {
        float x[128] = {0};
        for (int i = 0; i < 64; i += 3) x[i] = i % 2 ? 1e-38f : -3e-39f;   /* group 0: tiny values and zeros */
        for (int i = 64; i < 128; i++) x[i] = (float)(i % 7) - 3.0f;         /* group 1: ordinary values */
        const size_t xrb = hc_qrtn_input_row_bytes(bits, 64, 128);
        uint8_t *a = malloc(xrb), *b = malloc(hc_qrtn_input_bytes(bits, 64, 128, 1));
        hc_qrtn_prepare_input_ref(bits, 64, x, 128, 1, a);
        hc_qrtn_prepare_input(bits, 64, x, 128, 1, b);
        float xhat[128];
        for (int k = 0; k < 2; k++) {
            const uint8_t *p = k ? b : a;
            hc_qrtn_input_values(bits, 64, 128, p, xhat, NULL);
            int bad = 0;
            for (int i = 0; i < 128; i++)
                bad += i < 64 ? xhat[i] != 0.0f : !(fabsf(xhat[i] - x[i]) <= 3.0f / 127.0f);
            for (int blk = 0; blk < 2; blk++)   /* group 0's codes and multipliers: zeros, not -127 */
                for (int i = 0; i < 34; i++) bad += p[blk * HC_QRTN_XBLOCK + i] != 0;
            CU_ASSERT_EQUAL(bad, 0);
        }
        CU_ASSERT(!memcmp(a, b, xrb));
        free(a);
        free(b);
    }
}

static void test_cpu_device(void)
{
    cpu_device_case(64);
    cpu_device_case(128);   /* 576 = 4 x 128 + 64: W3 g128 on SmolLM2's width */
}

/* HC_CPU_ACT_INT8=0: the cpu device multiplies the dequantized rows with x in f32 (the reference of
 * device comparisons), packed and GGUF block types alike: the dot products of the dequantized rows in
 * double within f32 rounding, which the int8 activations are far from; a value other than 0 or 1 is
 * refused, naming the variable. */
static void test_cpu_device_f32_acts(void)
{
    const int64_t rows = 70, cols = 576;
    rng r = {77};
    hc_quant_format fmt = {.ops = ops, .params = params_of("bits=3,group=128"), .plugin = "rtn"};
    float *w = make_weights(&r, rows, cols), *x = make_acts(&r, cols, 3);
    uint8_t *packed = malloc(ops->packed_bytes(fmt.params, rows, cols));
    uint8_t *q8 = malloc((size_t)rows * hc_dtype_row_bytes(HC_Q8_0, cols));
    float *deq = malloc((size_t)rows * cols * sizeof *deq), y[3 * 70];
    HC_ASSERT_OK(ops->quantize(fmt.params, w, rows, cols, NULL, packed));
    for (int64_t o = 0; o < rows; o++) hc_quantize_row_q8_0(w + o * cols, q8 + o * hc_dtype_row_bytes(HC_Q8_0, cols), cols);
    hc_tensor tp = {.name = "w", .dtype = HC_PACKED, .n_dims = 2, .ne = {cols, rows, 1, 1}, .data = packed, .qfmt = &fmt};
    hc_tensor tq = {.name = "w8", .dtype = HC_Q8_0, .n_dims = 2, .ne = {cols, rows, 1, 1}, .data = q8};
    hc_device_config cfg = {.n_threads = 2};
    for (int mode = 0; mode < 2; mode++) {
        setenv("HC_CPU_ACT_INT8", mode ? "0" : "1", 1);
        hc_device *dev = NULL;
        hc_status st = hc_cpu_device_create(&cfg, &dev);
        unsetenv("HC_CPU_ACT_INT8");
        HC_ASSERT_OK(st);
        for (int k = 0; k < 2; k++) {
            const hc_tensor *t = k ? &tq : &tp;
            if (!k) ops->dequantize_rows(fmt.params, packed, cols, rows, 0, rows, deq);
            for (int64_t o = 0; k && o < rows; o++)
                hc_dequantize_row(HC_Q8_0, q8 + o * hc_dtype_row_bytes(HC_Q8_0, cols), deq + o * cols, cols);
            HC_ASSERT_OK(dev->ops->matmul(dev, t, x, y, 3));
            double worst = 0;   /* the largest error relative to the sum of |terms| */
            for (int tok = 0; tok < 3; tok++)
                for (int64_t o = 0; o < rows; o++) {
                    double ref = 0, mag = 0;
                    for (int64_t i = 0; i < cols; i++) {
                        ref += (double)deq[o * cols + i] * x[tok * cols + i];
                        mag += fabs((double)deq[o * cols + i] * x[tok * cols + i]);
                    }
                    double e = fabs(y[tok * rows + o] - ref) / mag;
                    if (e > worst) worst = e;
                }
            /* f32: rounding; int8 activations: a part in a few hundred of a block's largest */
            int ok = mode ? worst < 1e-6 : worst > 1e-5;
            CU_ASSERT(ok);
            if (!ok) fprintf(stderr, "  %s, int8 %s: error %.3g of the terms\n", t->name, mode ? "off" : "on", worst);
        }
        dev->ops->destroy(dev);
    }
    setenv("HC_CPU_ACT_INT8", "yes", 1);
    hc_device *dev = NULL;
    CU_ASSERT_EQUAL(hc_cpu_device_create(&cfg, &dev), HC_E_ARG);
    unsetenv("HC_CPU_ACT_INT8");
    CU_ASSERT_PTR_NULL(dev);
    CU_ASSERT(strstr(hc_last_error(), "HC_CPU_ACT_INT8 is 'yes'") != NULL);
    ops->free_params(fmt.params);
    free(w), free(x), free(packed), free(q8), free(deq);
}

static int setup(void) { return load_plugin() ? 0 : 1; }

int main(void)
{
    if (setup()) {
        fprintf(stderr, "test_quant_rtn: the rtn plugin did not load\n");
        hc_registry_free(reg);
        return 1;
    }
    static const hc_test_case cases[] = {
        {"descriptor", test_descriptor},
        {"options", test_options},
        {"shapes and sizes", test_shapes_and_sizes},
        {"layout: documented bytes", test_layout_known_bytes},
        {"layout: codes round-trip", test_layout_roundtrip},
        {"layout: a short last group", test_layout_short_last_group},
        {"round-trip within d/2, every format", test_roundtrip_all_formats},
        {"round-trip within d/2, short last groups", test_roundtrip_short_last_group},
        {"quantize edge cases", test_quantize_edge_cases},
        {"activation-weighted grid search", test_grid_search},
        {"prepared activations", test_prepare_input},
        {"prepared activations: inf and NaN", test_prepare_non_finite},
        {"prepared activations: a group below 2^-100 is zeros", test_prepare_tiny_group},
        {"kernels: avx2 = avx512 = reference = float dot", test_kernels_match},
        {"kernels: short last groups", test_kernels_short_last_group},
        {"kernels: 1..40 tokens", test_kernels_tokens},
        {"kernels: extreme sums", test_kernel_extremes},
        {"kernels: bad calls", test_kernel_bad_calls},
        {"through the cpu device", test_cpu_device},
        {"through the cpu device, x in f32 (HC_CPU_ACT_INT8=0)", test_cpu_device_f32_acts},
        {NULL, NULL},
    };
    int rc = hc_test_run("quant_rtn", cases);
    hc_registry_free(reg);
    return rc;
}
