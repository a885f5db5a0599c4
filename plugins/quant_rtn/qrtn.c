/* qrtn.c: the group-wise integer formats shared by the rtn and gptq plugins: options, shapes, the
 * f16 grid of a group, packing codes into the layout of qrtn.h, dequantization, activation
 * preparation and the runtime dispatch of the matmul kernel (AVX-512 or AVX2 when the CPU has them). */
#include "qrtn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_tensor.h"

/* ---------------- options ---------------- */

static int valid_bits(int b) { return b == 2 || b == 3 || b == 4 || b == 8; }
static int valid_group(int g) { return g == 32 || g == 64 || g == 128; }

#define BITS_ALLOWED "2, 3, 4, 8"
#define GROUP_ALLOWED "32, 64, 128"
#define DAMP_ALLOWED "a number in (0, 1]"

static int parse_int(const char *s, size_t n, int *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end || v < -1000000 || v > 1000000) return 0;
    *out = (int)v;
    return 1;
}

static int parse_float(const char *s, size_t n, float *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (errno || *end || !isfinite(v)) return 0;
    *out = (float)v;
    return 1;
}

/* One option: its key, the plugins that take it, and where its value goes. */
typedef enum { OPT_BITS, OPT_GROUP, OPT_DAMP, OPT_ACT_ORDER, OPT_BLOCK, OPT_SEARCH, OPT_COUNT } opt_id;
static const struct {
    const char *key;
    int gptq_only;
    const char *allowed;
} opts[OPT_COUNT] = {
    [OPT_BITS] = {"bits", 0, BITS_ALLOWED},
    [OPT_GROUP] = {"group", 0, GROUP_ALLOWED},
    [OPT_DAMP] = {"damp", 1, DAMP_ALLOWED},
    [OPT_ACT_ORDER] = {"act_order", 1, "0 or 1"},
    [OPT_BLOCK] = {"block", 1, "an integer in 1..4096"},
    [OPT_SEARCH] = {"search", 0, "0 or 1"},
};

static int set_option(opt_id id, const char *v, size_t vlen, hc_qrtn_params *p)
{
    switch (id) {
    case OPT_BITS: return parse_int(v, vlen, &p->bits) && valid_bits(p->bits);
    case OPT_GROUP: return parse_int(v, vlen, &p->group) && valid_group(p->group);
    case OPT_DAMP: return parse_float(v, vlen, &p->damp) && p->damp > 0.0f && p->damp <= 1.0f;
    case OPT_ACT_ORDER: return parse_int(v, vlen, &p->act_order) && (p->act_order == 0 || p->act_order == 1);
    case OPT_BLOCK: return parse_int(v, vlen, &p->block) && p->block >= 1 && p->block <= 4096;
    case OPT_SEARCH: return parse_int(v, vlen, &p->search) && (p->search == 0 || p->search == 1);
    default: return 0;
    }
}

hc_status hc_qrtn_parse_options(const char *who, const char *options, int gptq, hc_qrtn_params *out)
{
    hc_qrtn_params p = {HC_QRTN_DEFAULT_BITS, HC_QRTN_DEFAULT_GROUP, HC_QRTN_DEFAULT_DAMP,
                        gptq ? HC_QRTN_DEFAULT_ACT_ORDER : 0, HC_QRTN_DEFAULT_BLOCK, 0};
    const char *keys = gptq ? "bits, group, damp, act_order, block, search" : "bits, group, search";
    int seen[OPT_COUNT] = {0};
    const char *s = options ? options : "";
    while (*s) {
        while (*s == ' ') s++;
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        while (len > 0 && s[len - 1] == ' ') len--;
        if (len == 0) {
            if (!end) break;
            return hc_error(HC_E_ARG, "%s: empty option in '%s' (allowed options: %s)", who, options, keys);
        }
        const char *eq = memchr(s, '=', len);
        size_t klen = eq ? (size_t)(eq - s) : len;
        while (klen > 0 && s[klen - 1] == ' ') klen--;
        const char *v = eq ? eq + 1 : NULL;
        while (v && *v == ' ') v++;
        size_t vlen = v ? len - (size_t)(v - s) : 0;
        int id = -1;
        for (int k = 0; k < OPT_COUNT && id < 0; k++)
            if ((gptq || !opts[k].gptq_only) && strlen(opts[k].key) == klen && !strncmp(s, opts[k].key, klen)) id = k;
        if (id < 0)
            return hc_error(HC_E_ARG, "%s: unknown option '%.*s' (allowed options: %s)", who, (int)klen, s, keys);
        if (seen[id]) return hc_error(HC_E_ARG, "%s: option %.*s given twice", who, (int)klen, s);
        seen[id] = 1;
        if (!v || !set_option((opt_id)id, v, vlen, &p))
            return hc_error(HC_E_ARG, "%s: bad value '%.*s' for option %s (allowed: %s)", who, (int)vlen, v ? v : "",
                            opts[id].key, opts[id].allowed);
        if (!end) break;
        s = end + 1;
    }
    *out = p;
    return HC_OK;
}

hc_status hc_qrtn_format_options(const char *who, const hc_qrtn_params *p, int gptq, char *buf, size_t cap)
{
    int n = gptq ? snprintf(buf, cap, "bits=%d,group=%d,damp=%g,act_order=%d,block=%d,search=%d", p->bits, p->group,
                            (double)p->damp, p->act_order, p->block, p->search)
                 : snprintf(buf, cap, "bits=%d,group=%d%s", p->bits, p->group, p->search ? ",search=1" : "");
    if (n < 0 || (size_t)n >= cap)
        return hc_error(HC_E_ARG, "%s: the option string needs %d bytes, the buffer has %zu", who, n + 1, cap);
    return HC_OK;
}

/* ---------------- shapes ---------------- */

hc_status hc_qrtn_check_shape(const char *who, int bits, int group, int64_t rows, int64_t cols)
{
    if (!valid_bits(bits) || !valid_group(group))
        return hc_error(HC_E_ARG, "%s: bits=%d group=%d is not a valid format (bits: %s; group: %s)", who, bits,
                        group, BITS_ALLOWED, GROUP_ALLOWED);
    if (rows < 0)
        return hc_error(HC_E_ARG, "%s: a %lld x %lld weight cannot be stored: negative row count", who, (long long)rows,
                        (long long)cols);
    if (cols <= 0 || cols % 32 != 0)
        return hc_error(HC_E_ARG, "%s: a %lld x %lld weight cannot be stored: the row length %lld is not a positive "
                        "multiple of 32 (groups of %d, the last one of a row may be shorter but a multiple of 32)",
                        who, (long long)rows, (long long)cols, (long long)cols, group);
    if (cols > ((int64_t)1 << 30) || (rows > 0 && (uint64_t)rows > SIZE_MAX / 2 / (size_t)(cols + cols / 8)))
        return hc_error(HC_E_ARG, "%s: a %lld x %lld weight is too large", who, (long long)rows, (long long)cols);
    return HC_OK;
}

static int valid_cols(int64_t cols) { return cols > 0 && cols % 32 == 0 && cols <= ((int64_t)1 << 30); }

int64_t hc_qrtn_groups(int group, int64_t cols) { return (cols + group - 1) / group; }

size_t hc_qrtn_row_bytes(int bits, int group, int64_t cols)
{
    if (!valid_bits(bits) || !valid_group(group) || !valid_cols(cols)) return 0;
    return (size_t)hc_qrtn_groups(group, cols) * 4 + (size_t)cols * (size_t)bits / 8;
}

size_t hc_qrtn_packed_bytes(int bits, int group, int64_t rows, int64_t cols)
{
    size_t rb = hc_qrtn_row_bytes(bits, group, cols);
    if (rows < 0 || (rows > 0 && rb > SIZE_MAX / (size_t)rows)) return 0;
    return rb * (size_t)rows;
}

/* ---------------- the grid of a group ---------------- */

/* The smallest f16 >= v (v >= 0, finite). */
static uint16_t f16_round_up(double v)
{
    uint16_t h = hc_f32_to_f16((float)v);
    if ((double)hc_f16_to_f32(h) < v) h++;   /* positive: the next pattern is the next value */
    return h;
}

/* The largest f16 <= v (finite). */
static uint16_t f16_round_down(float v)
{
    uint16_t h = hc_f32_to_f16(v);
    if (hc_f16_to_f32(h) > v) {
        if (h & 0x8000) h++;              /* negative (or -0): one step away from zero */
        else if (h == 0) h = 0x8001;      /* +0 above a tiny negative: the smallest negative */
        else h--;
    }
    return h;
}

hc_status hc_qrtn_grid(const float *w, int64_t n, int bits, uint16_t *d16, uint16_t *m16)
{
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(w[i])) return hc_error(HC_E_ARG, "weight %lld of the group is not finite (%g)", (long long)i, (double)w[i]);
        lo = w[i] < lo ? w[i] : lo;
        hi = w[i] > hi ? w[i] : hi;
    }
    uint16_t mh = f16_round_down(lo);
    float m = hc_f16_to_f32(mh);
    if (!isfinite(m) || hi > 65504.0f)
        return hc_error(HC_E_ARG, "weights in [%g, %g] do not fit the f16 range (|w| <= 65504)", (double)lo, (double)hi);
    double range = (double)hi - (double)m;
    uint16_t dh = 0;
    if (range > 0) {
        dh = f16_round_up(range / (double)((1 << bits) - 1));
        if (!isfinite(hc_f16_to_f32(dh)))
            return hc_error(HC_E_ARG, "weights in [%g, %g] need a scale beyond the f16 range", (double)lo, (double)hi);
    }
    *d16 = dh;
    *m16 = mh;
    return HC_OK;
}

/* ---------------- packing ---------------- */

/* 32 codes as the 2-bit 32-unit: byte j = A[j] | A[j+8]<<2 | A[j+16]<<4 | A[j+24]<<6 (low 2 bits). */
static void pack2_32(const uint8_t *a, uint8_t *dst)
{
    for (int j = 0; j < 8; j++)
        dst[j] = (uint8_t)((a[j] & 3) | (a[j + 8] & 3) << 2 | (a[j + 16] & 3) << 4 | (a[j + 24] & 3) << 6);
}

static void unpack2_32(const uint8_t *src, uint8_t *a)
{
    for (int j = 0; j < 8; j++)
        for (int k = 0; k < 4; k++) a[8 * k + j] = (uint8_t)((src[j] >> (2 * k)) & 3);
}

/* One unit of S (128, 64, 32) codes q into dst (bits * S / 8 bytes). */
static void pack_unit(int bits, int S, const uint8_t *q, uint8_t *dst)
{
    const uint8_t *A = q, *B = q + 32, *C = q + 64, *D = q + 96;
    switch (bits) {
    case 2:
        if (S == 128)
            for (int p = 0; p < 32; p++) dst[p] = (uint8_t)(A[p] | B[p] << 2 | C[p] << 4 | D[p] << 6);
        else if (S == 64)
            for (int j = 0; j < 16; j++) dst[j] = (uint8_t)(A[j] | B[j] << 2 | A[j + 16] << 4 | B[j + 16] << 6);
        else
            pack2_32(A, dst);
        break;
    case 3:
        if (S == 128) {
            for (int p = 0; p < 32; p++) dst[p] = (uint8_t)(A[p] | B[p] << 3 | (D[p] >> 1) << 6);
            for (int j = 0; j < 16; j++)
                dst[32 + j] = (uint8_t)(C[j] | (D[j] & 1) << 3 | C[j + 16] << 4 | (D[j + 16] & 1) << 7);
        } else if (S == 64) {
            for (int j = 0; j < 16; j++)
                dst[j] = (uint8_t)(A[j] | (B[j] >> 2) << 3 | A[j + 16] << 4 | (B[j + 16] >> 2) << 7);
            pack2_32(B, dst + 16);
        } else {
            pack2_32(A, dst);
            for (int k = 0; k < 4; k++) {
                uint8_t h = 0;
                for (int i = 0; i < 8; i++) h |= (uint8_t)((A[8 * k + i] >> 2) << i);
                dst[8 + k] = h;
            }
        }
        break;
    case 4:
        if (S == 128) {
            pack_unit(4, 64, q, dst);
            pack_unit(4, 64, q + 64, dst + 32);
        } else if (S == 64) {
            for (int p = 0; p < 32; p++) dst[p] = (uint8_t)(A[p] | B[p] << 4);
        } else {
            for (int j = 0; j < 16; j++) dst[j] = (uint8_t)(A[j] | A[j + 16] << 4);
        }
        break;
    default: /* 8 */
        for (int i = 0; i < S; i++) dst[i] = (uint8_t)(q[i] ^ 0x80);
        break;
    }
}

static void unpack_unit(int bits, int S, const uint8_t *src, uint8_t *q)
{
    uint8_t *A = q, *B = q + 32, *C = q + 64, *D = q + 96;
    switch (bits) {
    case 2:
        if (S == 128)
            for (int p = 0; p < 32; p++) {
                A[p] = src[p] & 3;
                B[p] = (src[p] >> 2) & 3;
                C[p] = (src[p] >> 4) & 3;
                D[p] = (uint8_t)(src[p] >> 6);
            }
        else if (S == 64)
            for (int j = 0; j < 16; j++) {
                A[j] = src[j] & 3;
                B[j] = (src[j] >> 2) & 3;
                A[j + 16] = (src[j] >> 4) & 3;
                B[j + 16] = (uint8_t)(src[j] >> 6);
            }
        else
            unpack2_32(src, A);
        break;
    case 3:
        if (S == 128) {
            for (int p = 0; p < 32; p++) {
                A[p] = src[p] & 7;
                B[p] = (src[p] >> 3) & 7;
                D[p] = (uint8_t)((src[p] >> 6) << 1);
            }
            for (int j = 0; j < 16; j++) {
                uint8_t v = src[32 + j];
                C[j] = v & 7;
                D[j] |= (v >> 3) & 1;
                C[j + 16] = (v >> 4) & 7;
                D[j + 16] |= (uint8_t)(v >> 7);
            }
        } else if (S == 64) {
            unpack2_32(src + 16, B);
            for (int j = 0; j < 16; j++) {
                A[j] = src[j] & 7;
                B[j] |= (uint8_t)(((src[j] >> 3) & 1) << 2);
                A[j + 16] = (src[j] >> 4) & 7;
                B[j + 16] |= (uint8_t)((src[j] >> 7) << 2);
            }
        } else {
            unpack2_32(src, A);
            for (int p = 0; p < 32; p++) A[p] |= (uint8_t)(((src[8 + p / 8] >> (p % 8)) & 1) << 2);
        }
        break;
    case 4:
        if (S == 128) {
            unpack_unit(4, 64, src, q);
            unpack_unit(4, 64, src + 32, q + 64);
        } else if (S == 64) {
            for (int p = 0; p < 32; p++) {
                A[p] = src[p] & 15;
                B[p] = (uint8_t)(src[p] >> 4);
            }
        } else {
            for (int j = 0; j < 16; j++) {
                A[j] = src[j] & 15;
                A[j + 16] = (uint8_t)(src[j] >> 4);
            }
        }
        break;
    default:
        for (int i = 0; i < S; i++) q[i] = (uint8_t)(src[i] ^ 0x80);
        break;
    }
}

/* The size of the unit starting at column c of a row of cols columns. */
static int unit_at(int64_t c, int64_t cols)
{
    int64_t left = cols - c;
    return left >= 128 ? 128 : left >= 64 ? 64 : 32;
}

void hc_qrtn_write_row(int bits, int group, int64_t cols, const uint8_t *q, const uint16_t *d16,
                       const uint16_t *m16, void *row)
{
    const int64_t G = hc_qrtn_groups(group, cols);
    uint8_t *r = row, *codes = r + 4 * G;
    memcpy(r, d16, (size_t)G * 2);
    memcpy(r + 2 * G, m16, (size_t)G * 2);
    for (int64_t c = 0; c < cols;) {
        int S = unit_at(c, cols);
        pack_unit(bits, S, q + c, codes + c * bits / 8);
        c += S;
    }
}

void hc_qrtn_read_codes(int bits, int group, int64_t cols, const void *row, uint8_t *q)
{
    const uint8_t *codes = (const uint8_t *)row + 4 * hc_qrtn_groups(group, cols);
    for (int64_t c = 0; c < cols;) {
        int S = unit_at(c, cols);
        unpack_unit(bits, S, codes + c * bits / 8, q + c);
        c += S;
    }
}

int hc_qrtn_block_shift(int bits, int64_t cols, int64_t b)
{
    static const int8_t s128[9][4] = {[2] = {0, 2, 4, 4}, [3] = {0, 3, 0, 3}};
    static const int8_t s64[9][2] = {[2] = {0, 2}, [3] = {0, 1}};
    const int64_t n128 = cols / 128;
    if (bits != 2 && bits != 3) return 0;
    if (b < 4 * n128) return s128[bits][b % 4];
    b -= 4 * n128;
    if (cols - 128 * n128 >= 64 && b < 2) return s64[bits][b];
    return 0;
}

/* ---------------- quantize / dequantize ---------------- */

static uint16_t rd16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

static hc_status quantize_rows(int bits, int group, const float *w, int64_t rows, int64_t cols, int search,
                               const float *imp, void *packed)
{
    hc_status st = hc_qrtn_check_shape("rtn", bits, group, rows, cols);
    if (st != HC_OK) return st;
    const int64_t G = hc_qrtn_groups(group, cols);
    const int qmax = (1 << bits) - 1;
    const size_t rb = hc_qrtn_row_bytes(bits, group, cols);
    uint8_t *q = malloc((size_t)cols);
    uint16_t *dm = malloc((size_t)G * 4);
    if (!q || !dm) {
        free(q), free(dm);
        return hc_error(HC_E_NOMEM, "rtn: out of memory for a row of %lld weights", (long long)cols);
    }
    for (int64_t o = 0; o < rows && st == HC_OK; o++) {
        const float *wr = w + (size_t)o * (size_t)cols;
        for (int64_t g = 0; g < G; g++) {
            const int64_t c0 = g * group, n = cols - c0 < group ? cols - c0 : group;   /* the last may be short */
            st = search ? hc_qrtn_grid_search(wr + c0, imp ? imp + c0 : NULL, n, bits, &dm[g], &dm[G + g])
                        : hc_qrtn_grid(wr + c0, n, bits, &dm[g], &dm[G + g]);
            if (st != HC_OK) {
                st = hc_error_context(st, "rtn: row %lld, columns %lld..%lld: ", (long long)o, (long long)c0,
                                      (long long)(c0 + n - 1));
                break;
            }
            float d = hc_f16_to_f32(dm[g]), m = hc_f16_to_f32(dm[G + g]);
            for (int64_t i = 0; i < n; i++) q[c0 + i] = (uint8_t)hc_qrtn_code(wr[c0 + i], d, m, qmax);
        }
        if (st == HC_OK) hc_qrtn_write_row(bits, group, cols, q, dm, dm + G, (uint8_t *)packed + (size_t)o * rb);
    }
    free(q), free(dm);
    return st;
}

hc_status hc_qrtn_quantize_rtn(int bits, int group, const float *w, int64_t rows, int64_t cols, void *packed)
{
    return quantize_rows(bits, group, w, rows, cols, 0, NULL, packed);
}

hc_status hc_qrtn_quantize_rtn_search(int bits, int group, const float *w, int64_t rows, int64_t cols,
                                      const float *imp, void *packed)
{
    return quantize_rows(bits, group, w, rows, cols, 1, imp, packed);
}

void hc_qrtn_dequantize_rows(int bits, int group, const void *packed, int64_t cols, int64_t row0,
                             int64_t n_rows, float *out)
{
    const int64_t G = hc_qrtn_groups(group, cols);
    const size_t rb = hc_qrtn_row_bytes(bits, group, cols);
    uint8_t q[128];
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *row = (const uint8_t *)packed + (size_t)(row0 + r) * rb, *codes = row + 4 * G;
        float *y = out + (size_t)r * (size_t)cols;
        for (int64_t c = 0; c < cols;) {
            int S = unit_at(c, cols);
            unpack_unit(bits, S, codes + c * bits / 8, q);
            for (int i = 0; i < S; i++) {
                int64_t g = (c + i) / group;
                y[c + i] = hc_f16_to_f32(rd16(row + 2 * g)) * (float)q[i] + hc_f16_to_f32(rd16(row + 2 * (G + g)));
            }
            c += S;
        }
    }
}

/* ---------------- activations ---------------- */

static int64_t round8(int64_t n) { return (n + 7) & ~(int64_t)7; }

int hc_qrtn_shift_max(int bits) { return bits == 2 ? 4 : bits == 3 ? 3 : 0; }
int hc_qrtn_cmax(int bits) { return bits == 2 ? 2047 : bits == 3 ? 4095 : bits == 4 ? 16383 : 4095; }

size_t hc_qrtn_input_row_bytes(int bits, int group, int64_t cols)
{
    if (!valid_bits(bits) || !valid_group(group) || !valid_cols(cols)) return 0;
    size_t n = (size_t)(cols / 32) * HC_QRTN_XBLOCK + (size_t)(2 * round8(hc_qrtn_groups(group, cols))) * sizeof(float);
    return (n + 63) & ~(size_t)63;
}

size_t hc_qrtn_input_bytes(int bits, int group, int64_t cols, int n_tok)
{
    if (n_tok < 0) return 0;
    size_t n = hc_qrtn_input_row_bytes(bits, group, cols) * (size_t)n_tok;
    return n && hc_cpu_has_avx512() ? n + hc_qrtn_avx512_section_bytes(bits, group, cols, n_tok) : n;
}

float hc_qrtn_group_base(float top, int cmax) { return top >= 0x1p-100f ? top / (127.0f * (float)cmax) : 0.0f; }

int hc_qrtn_block_mult(float amax, float top, float D, int cmax)
{
    if (!(amax > 0.0f) || !(D > 0.0f)) return 0;
    /* the smallest multiple of D that spans the block; the ratio is in (0, cmax] for finite values,
       but an infinite or NaN activation (from broken weights) gives inf/inf: no float-to-int
       conversion outside int's range then, cmax instead */
    const float r = amax / top * (float)cmax;
    int c = r < (float)cmax ? (int)ceilf(r) : cmax;
    c = c < 1 ? 1 : c > cmax ? cmax : c;
    while (c < cmax && 127.0f * D * (float)c < amax) c++;
    return c;
}

/* One group of bpg blocks of x into the prepared blocks at out; D_g and the group sum of s. */
void hc_qrtn_prepare_group_ref(int bits, int64_t cols, int64_t b0, int bpg, const float *x, uint8_t *out, float *dg,
                               float *sg)
{
    const int cmax = hc_qrtn_cmax(bits), smax = hc_qrtn_shift_max(bits);
    float amax[4], top = 0.0f;
    for (int k = 0; k < bpg; k++) {
        float m = 0.0f;
        for (int i = 0; i < 32; i++) m = fmaxf(m, fabsf(x[32 * k + i]));
        amax[k] = m;
        top = fmaxf(top, m);
    }
    const float D = hc_qrtn_group_base(top, cmax);
    int64_t qc = 0;   /* sum over the blocks of c_b * sum(qx) */
    for (int k = 0; k < bpg; k++) {
        const int c = hc_qrtn_block_mult(amax[k], top, D, cmax);
        const float step = D * (float)c, inv = c ? 1.0f / step : 0.0f;
        int8_t *q = (int8_t *)(out + (size_t)k * HC_QRTN_XBLOCK);
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            long v = lrintf(x[32 * k + i] * inv);
            v = v < -127 ? -127 : v > 127 ? 127 : v;
            q[i] = (int8_t)v;
            sum += (int)v;
        }
        const int16_t cs = (int16_t)(c << (smax - hc_qrtn_block_shift(bits, cols, b0 + k)));
        for (int i = 0; i < 16; i++) memcpy(out + (size_t)k * HC_QRTN_XBLOCK + 32 + 2 * i, &cs, 2);
        qc += (int64_t)c * sum;
    }
    *dg = ldexpf(D, -smax);
    *sg = D * (float)qc;
}

typedef void (*prepare_group_fn)(int bits, int64_t cols, int64_t b0, int bpg, const float *x, uint8_t *out, float *dg,
                                 float *sg);

static void prepare_rows(prepare_group_fn group_fn, int bits, int group, const float *x, int64_t cols, int n_tok,
                         void *xq)
{
    const int64_t nb = cols / 32, G = hc_qrtn_groups(group, cols);
    const int bpg = group / 32;
    const size_t xrb = hc_qrtn_input_row_bytes(bits, group, cols);
    for (int t = 0; t < n_tok; t++) {
        uint8_t *base = (uint8_t *)xq + (size_t)t * xrb;
        float *dg = (float *)(base + (size_t)nb * HC_QRTN_XBLOCK), *sg = dg + round8(G);
        for (int64_t g = 0; g < G; g++) {
            const int64_t b0 = g * bpg;
            const int n = nb - b0 < bpg ? (int)(nb - b0) : bpg;   /* the last group may be short */
            group_fn(bits, cols, b0, n, x + (size_t)t * (size_t)cols + g * group, base + (size_t)b0 * HC_QRTN_XBLOCK,
                     &dg[g], &sg[g]);
        }
        for (int64_t g = G; g < round8(G); g++) dg[g] = sg[g] = 0.0f;
    }
}

void hc_qrtn_prepare_input_ref(int bits, int group, const float *x, int64_t cols, int n_tok, void *xq)
{
    prepare_rows(hc_qrtn_prepare_group_ref, bits, group, x, cols, n_tok, xq);
}

void hc_qrtn_prepare_input(int bits, int group, const float *x, int64_t cols, int n_tok, void *xq)
{
    prepare_rows(hc_cpu_has_avx2() ? hc_qrtn_prepare_group_avx2 : hc_qrtn_prepare_group_ref, bits, group, x, cols,
                 n_tok, xq);
    if (hc_cpu_has_avx512()) hc_qrtn_avx512_prepare(bits, group, cols, n_tok, xq);
}

void hc_qrtn_input_values(int bits, int group, int64_t cols, const void *xq_row, float *xhat, float *step)
{
    const int64_t nb = cols / 32, bpg = group / 32;
    const int smax = hc_qrtn_shift_max(bits);
    const uint8_t *base = xq_row;
    const float *dg = (const float *)(base + (size_t)nb * HC_QRTN_XBLOCK);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = base + (size_t)b * HC_QRTN_XBLOCK;
        int16_t cs;
        memcpy(&cs, blk + 32, 2);
        const int c = cs >> (smax - hc_qrtn_block_shift(bits, cols, b));
        const float e = ldexpf(dg[b / bpg], smax) * (float)c;
        for (int i = 0; i < 32; i++) {
            if (xhat) xhat[32 * b + i] = e * (float)(int8_t)blk[i];
            if (step) step[32 * b + i] = e;
        }
    }
}

/* ---------------- the matmul ---------------- */

hc_status hc_qrtn_matmul_check(int bits, int group, const void *packed, int64_t cols, int64_t rows,
                               const void *xq, int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    hc_status st = hc_qrtn_check_shape("qrtn matmul", bits, group, rows, cols);
    if (st != HC_OK) return st;
    if (row0 < 0 || row1 < row0 || row1 > rows)
        return hc_error(HC_E_ARG, "qrtn matmul: bad row range [%lld, %lld) of %lld rows", (long long)row0,
                        (long long)row1, (long long)rows);
    if (n_tok < 0) return hc_error(HC_E_ARG, "qrtn matmul: negative token count %d", n_tok);
    if (n_tok == 0 || row0 == row1) return HC_OK;
    if (!packed || !y) return hc_error(HC_E_ARG, "qrtn matmul: missing weights or output");
    if (!xq) return hc_error(HC_E_ARG, "qrtn matmul: the prepared activations (xq, from prepare_input) are missing");
    if (n_tok > 1 && ldy < row1)
        return hc_error(HC_E_ARG, "qrtn matmul: output stride %lld is below the row range end %lld", (long long)ldy,
                        (long long)row1);
    return HC_OK;
}

hc_status hc_qrtn_matmul_rows(int bits, int group, const void *packed, int64_t cols, int64_t rows,
                              const void *xq, int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    if (!hc_cpu_has_avx2()) return hc_qrtn_matmul_rows_ref(bits, group, packed, cols, rows, xq, n_tok, y, ldy, row0, row1);
    hc_status st = hc_qrtn_matmul_check(bits, group, packed, cols, rows, xq, n_tok, y, ldy, row0, row1);
    if (st != HC_OK || n_tok == 0 || row0 == row1) return st;
    if (hc_cpu_has_avx512())
        hc_qrtn_matmul_rows_avx512(bits, group, packed, cols, rows, xq, n_tok, y, ldy, row0, row1);
    else
        hc_qrtn_matmul_rows_avx2(bits, group, packed, cols, xq, n_tok, y, ldy, row0, row1);
    return HC_OK;
}
