/* qrtn.h: the packed layout of the group-wise asymmetric integer formats (quant plugins "rtn" and
 * "gptq"), their quantize / dequantize helpers and the CPU matmul kernels (AVX-512, AVX2, reference).
 *
 * Numbers. A weight matrix is rows x cols f32 (a row = one output, cols = the input width, any
 * positive multiple of 32). Each row is cut along cols from the left into G = ceil(cols / group)
 * groups (group = 32, 64 or 128): all of `group` weights except the last, which holds the
 * remainder cols - (G - 1) * group (a multiple of 32; the whole group when group divides cols).
 * E.g. cols 576, group 128: groups of 128, 128, 128, 128, 64. A group has an f16 scale d and an
 * f16 minimum m, and each weight is an unsigned code q in [0, 2^bits - 1] (bits 2, 3, 4, 8):
 * w ~ d * q + m.
 *
 * Row layout (every row independently addressable; row o starts at o * hc_qrtn_row_bytes()):
 *     [ d: G x f16 ][ m: G x f16 ][ codes: cols * bits / 8 bytes ]      G = ceil(cols / group)
 * so a row has 4 * ceil(cols / group) + cols * bits / 8 bytes (576 columns, 3 bits, group 128:
 * 20 + 216 = 236 bytes). The code units below do not depend on the group; groups start at
 * multiples of the group size, so a unit of 128 or 64 always starts a group, and a unit of 32 may
 * sit inside the short last group (128 + 96 columns in groups of 128: units 128, 64, 32).
 * The codes of a row are cut into units from the left: as many units of 128 columns as fit, then
 * one unit of 64 if 64 columns or more remain, then one unit of 32 if 32 remain. Unit u covering
 * columns [c, c + S) sits at byte c * bits / 8 of the codes. Within a unit, A, B, C, D are its
 * blocks of 32 (A[p] = code of column c + p, B[p] = column c + 32 + p, ...), p in 0..31,
 * j in 0..15 (or 0..7). Bytes of a unit:
 *   bits 2: 128 (32 B): byte p      = A[p] | B[p]<<2 | C[p]<<4 | D[p]<<6
 *            64 (16 B): byte j      = A[j] | B[j]<<2 | A[j+16]<<4 | B[j+16]<<6
 *            32  (8 B): byte j<8    = A[j] | A[j+8]<<2 | A[j+16]<<4 | A[j+24]<<6
 *   bits 3: 128 (48 B): byte p      = A[p] | B[p]<<3 | (D[p]>>1)<<6
 *                       byte 32+j   = C[j] | (D[j]&1)<<3 | C[j+16]<<4 | (D[j+16]&1)<<7
 *            64 (24 B): byte j      = A[j] | (B[j]>>2)<<3 | A[j+16]<<4 | (B[j+16]>>2)<<7
 *                       byte 16+j<8 = the 2-bit 32-unit layout of (B & 3)
 *            32 (12 B): bytes 0..7  = the 2-bit 32-unit layout of (A & 3)
 *                       byte 8+k<4  = bit i holds A[8k+i]>>2
 *   bits 4: 128 = two 64-units;  64 (32 B): byte p = A[p] | B[p]<<4
 *                                 32 (16 B): byte j = A[j] | A[j+16]<<4
 *   bits 8: every 32 columns, 32 bytes: byte p = A[p] ^ 0x80 (the code minus 128, as int8)
 * Why: each layout unpacks to 32 bytes per block with one broadcast load and one variable
 * shift at most, then a mask -- a block may come out as q * 2^a (a <= 4 keeps maddubs exact), the
 * 2^-a being folded into the activation multipliers below. In units of 128 the AVX2 kernel
 * spends 1.25 (2 bits), 2 (3 bits), 1.5 (4 bits) vector operations per block of 32 on unpacking
 * (Q4_0 needs 2); the tail units of 64 and 32 (rows not a multiple of 128) cost a little more.
 *
 * Activations (prepare_input, once per matmul): int8 per block of 32 whose scale is an integer
 * multiple of a base per weight group, so that a group's blocks add up as integers and the float
 * work is one convert and one FMA per group instead of per block. For group g of token t:
 *     D_g = max_b amax_b / (127 Cmax),  c_b = ceil(amax_b / (127 D_g)) in [0, Cmax],
 *     qx_i = round(x_i / (D_g c_b)) in [-127, 127]       (x_i ~ D_g c_b qx_i, error <= D_g c_b / 2)
 * with Cmax = 2047, 4095, 16383, 4095 for bits 2, 3, 4, 8, so that c_b << (A - a_b) fits int16
 * (A = the largest unpacking exponent, 4, 3, 0, 0) and a lane of a group's int32 sum, at most
 * 4 blocks x 4 products x qmax 2^A Cmax 127 (8 bits: 128 Cmax 127), stays below 2^31 (a short
 * last group has fewer blocks, D_g and c_b taken over its own blocks only). A
 * block's scale is thus exact to 1 part in Cmax of the group's largest block. Each token's row is
 *     [ NB blocks of 64 bytes: qx (32 x int8), then c_b << (A - a_b) as 16 x int16 ]
 *     [ dg: Gp x f32, D_g 2^-A ][ sg: Gp x f32, sum over the group of D_g c_b sum(qx) ]   padded to 64 B
 * NB = cols / 32, Gp = G (= ceil(cols / group)) rounded up to 8, the padding zero. The kernel computes per group
 *     d_g dg_g sum_{b in g} madd(maddubs(q_b 2^a_b, qx_b), c_b << (A - a_b))  +  m_g sg_g
 * (bits 8: the codes are stored minus 128, so the kernel uses m_g + 128 d_g as the minimum). */
#ifndef HC_QRTN_H
#define HC_QRTN_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "hc/hc_status.h"
#include "hc/hc_cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The options of both plugins: "bits=3,group=128[,search=1]" (rtn), plus damp, act_order and
 * block (gptq): "bits=3,group=128,damp=0.01,act_order=1,block=128,search=0". */
typedef struct hc_qrtn_params {
    int bits;      /* 2, 3, 4, 8; default 4 */
    int group;     /* 32, 64, 128; default 128 */
    float damp;    /* gptq: dampening as a fraction of the mean Hessian diagonal; default 0.01 */
    int act_order; /* gptq: columns in decreasing order of their Hessian diagonal (desc_act); default 1 */
    int block;     /* gptq: columns per lazy batch update; default 128 */
    int search;    /* each group's scale and minimum by an activation-weighted least-squares search
                      (hc_qrtn_grid_search) instead of the group's min and max; default 0 */
} hc_qrtn_params;

#define HC_QRTN_DEFAULT_BITS 4
#define HC_QRTN_DEFAULT_GROUP 128
#define HC_QRTN_DEFAULT_DAMP 0.01f
#define HC_QRTN_DEFAULT_ACT_ORDER 1
#define HC_QRTN_DEFAULT_BLOCK 128

/* Parses options (NULL or "" gives the defaults). who names the plugin in messages ("rtn");
 * gptq accepts gptq's keys too (damp, act_order, block). Unknown keys, repeated keys and bad
 * values are HC_E_ARG with a message naming the option and the allowed values. */
hc_status hc_qrtn_parse_options(const char *who, const char *options, int gptq, hc_qrtn_params *out);
/* The canonical option string, which parses back to the same parameters: rtn's
 * "bits=3,group=128" (",search=1" when on), gptq's with every key. */
hc_status hc_qrtn_format_options(const char *who, const hc_qrtn_params *p, int gptq, char *buf, size_t cap);

/* HC_OK when rows x cols can be stored (cols a positive multiple of 32 -- not necessarily of the
 * group: the last group of a row may be shorter -- and rows >= 0); otherwise HC_E_ARG naming the
 * shape. */
hc_status hc_qrtn_check_shape(const char *who, int bits, int group, int64_t rows, int64_t cols);
/* The groups of a row: ceil(cols / group); group g covers columns [g * group, min((g + 1) * group, cols)). */
int64_t hc_qrtn_groups(int group, int64_t cols);
/* Bytes of one packed row, 4 * ceil(cols / group) + cols * bits / 8, of a rows x cols matrix (0
 * for a shape check_shape refuses). */
size_t hc_qrtn_row_bytes(int bits, int group, int64_t cols);
size_t hc_qrtn_packed_bytes(int bits, int group, int64_t rows, int64_t cols);

/* The grid of one group of n weights: m = the group minimum rounded down to f16, d = (max - m)
 * / (2^bits - 1) rounded up to f16 (0 when max == m), so that every weight of the group lies in
 * [m, m + qmax d] and round-to-nearest codes err by at most d/2. HC_E_ARG when a weight is not
 * finite or the range does not fit f16. */
hc_status hc_qrtn_grid(const float *w, int64_t n, int bits, uint16_t *d16, uint16_t *m16);

/* The grid of one group chosen by search (qrtn_search.c): the (d, m), both f16, that minimise
 * sum_i imp_i (w_i - d q_i - m)^2 with q_i = hc_qrtn_code(w_i, d, m) over a set of candidates
 * that includes hc_qrtn_grid's, so its weighted error never exceeds that of the min-max grid
 * (clipping the range is allowed: codes clamp). imp NULL (or all zero): every weight counts the
 * same. HC_E_ARG as hc_qrtn_grid. */
hc_status hc_qrtn_grid_search(const float *w, const float *imp, int64_t n, int bits, uint16_t *d16, uint16_t *m16);
/* sum_i imp_i (w_i - (d q_i + m))^2 on the grid (d16, m16) (imp NULL: weights 1). */
double hc_qrtn_grid_error(const float *w, const float *imp, int64_t n, int bits, uint16_t d16, uint16_t m16);

/* The code of w on the grid (d, m) (as floats): round((w - m) / d) clamped to [0, qmax]. */
static inline int hc_qrtn_code(float w, float d, float m, int qmax)
{
    if (!(d > 0.0f)) return 0;
    float t = nearbyintf((w - m) / d);
    return t < 0.0f ? 0 : t > (float)qmax ? qmax : (int)t;
}

/* Writes one packed row from its codes q[cols], scales d16[G] and minimums m16[G] (G = hc_qrtn_groups). */
void hc_qrtn_write_row(int bits, int group, int64_t cols, const uint8_t *q, const uint16_t *d16,
                       const uint16_t *m16, void *row);
/* Reads the codes of one packed row back (q[cols], each in [0, 2^bits - 1]). */
void hc_qrtn_read_codes(int bits, int group, int64_t cols, const void *row, uint8_t *q);

/* Round-to-nearest quantization of w (rows x cols) into packed (hc_qrtn_packed_bytes): each
 * group's grid by hc_qrtn_grid, or with imp (the importance of each input, cols floats, e.g.
 * E[x_i^2]; may be NULL for equal weights) by hc_qrtn_grid_search. */
hc_status hc_qrtn_quantize_rtn(int bits, int group, const float *w, int64_t rows, int64_t cols, void *packed);
hc_status hc_qrtn_quantize_rtn_search(int bits, int group, const float *w, int64_t rows, int64_t cols,
                                      const float *imp, void *packed);

/* Rows [row0, row0 + n_rows) dequantized into out (n_rows x cols): d * q + m. */
void hc_qrtn_dequantize_rows(int bits, int group, const void *packed, int64_t cols, int64_t row0,
                             int64_t n_rows, float *out);

/* Prepared activations: bytes per token row (the layout above), for n_tok rows (the rows, plus the
 * AVX-512 kernels' own layout of them when the CPU runs those: see hc_qrtn_avx512_prepare), and the
 * preparation. hc_qrtn_matmul_rows takes what hc_qrtn_prepare_input made for the same n_tok. */
size_t hc_qrtn_input_row_bytes(int bits, int group, int64_t cols);
size_t hc_qrtn_input_bytes(int bits, int group, int64_t cols, int n_tok);
/* xq: hc_qrtn_input_bytes; 64-byte aligned for speed (the blocks then never straddle cache lines). */
void hc_qrtn_prepare_input(int bits, int group, const float *x, int64_t cols, int n_tok, void *xq);
/* The plain C reference of the rows (the same bytes; n_tok * hc_qrtn_input_row_bytes of them, no
 * AVX-512 section: for hc_qrtn_matmul_rows_ref and _avx2). */
void hc_qrtn_prepare_input_ref(int bits, int group, const float *x, int64_t cols, int n_tok, void *xq);
/* What one prepared token row stands for: xhat[i] = D_g c_b qx_i, the value the kernels use, and
 * step[i] = D_g c_b, its quantization step (|x_i - xhat[i]| <= step[i] / 2). Either may be NULL. */
void hc_qrtn_input_values(int bits, int group, int64_t cols, const void *xq_row, float *xhat, float *step);

/* y[t*ldy + o] = sum_i W[o][i] x[t][i] for o in [row0, row1), t in [0, n_tok), from the
 * prepared activations xq; nothing else of y is written. Safe to call concurrently on disjoint
 * row ranges. HC_E_ARG for a bad shape, range, stride or a missing input. */
hc_status hc_qrtn_matmul_rows(int bits, int group, const void *packed, int64_t cols, int64_t rows,
                              const void *xq, int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1);
/* The plain C reference: the same contract and the same products, summed in double. */
hc_status hc_qrtn_matmul_rows_ref(int bits, int group, const void *packed, int64_t cols, int64_t rows,
                                  const void *xq, int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1);

/* ---- internals shared by the implementations (and the tests) ---- */

hc_status hc_qrtn_matmul_check(int bits, int group, const void *packed, int64_t cols, int64_t rows,
                               const void *xq, int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1);
/* The unpacking exponent a of block b (0-based, of 32 columns) of a row of cols columns; the
 * largest over the layouts (A above); the activation multiplier bound Cmax. */
int hc_qrtn_block_shift(int bits, int64_t cols, int64_t b);
int hc_qrtn_shift_max(int bits);
int hc_qrtn_cmax(int bits);
/* A group's base D_g = top / (127 cmax), top its largest magnitude; 0 for a group below 2^-100, which
 * is zeros (as the GPU zeroes such blocks): its base would be denormal or 0 and its steps' reciprocals
 * infinite (0 x inf: NaN codes). */
float hc_qrtn_group_base(float top, int cmax);
/* The multiplier c_b of a block of largest magnitude amax in a group of largest magnitude top,
 * D = D_g: the smallest c in [1, cmax] with 127 D c >= amax (0 for an all-zero block, or a base of 0). */
int hc_qrtn_block_mult(float amax, float top, float D, int cmax);
/* One group of bpg blocks of x (32 floats each) into its prepared blocks at out, with D_g 2^-A
 * and the group sum (dg, sg above): the plain version and the AVX2 one (the same bytes; call it
 * only when hc_cpu_has_avx2()). */
void hc_qrtn_prepare_group_ref(int bits, int64_t cols, int64_t b0, int bpg, const float *x, uint8_t *out, float *dg,
                               float *sg);
void hc_qrtn_prepare_group_avx2(int bits, int64_t cols, int64_t b0, int bpg, const float *x, uint8_t *out, float *dg,
                                float *sg);
/* Bytes of one prepared block: 32 int8 activations, then 16 int16 multipliers. */
#define HC_QRTN_XBLOCK 64
/* The AVX2 kernel: checked arguments, n_tok >= 1, row0 < row1; call only when hc_cpu_has_avx2(). */
void hc_qrtn_matmul_rows_avx2(int bits, int group, const void *packed, int64_t cols, const void *xq,
                              int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1);

/* The AVX-512 kernels (qrtn_avx512.c decodes, qrtn_batch_avx512.c prefills from HC_QRTN_BATCH_MIN
 * tokens on) read a layout of their own that hc_qrtn_prepare_input writes after the standard one,
 * at xq + n_tok * hc_qrtn_input_row_bytes(), when hc_cpu_has_avx512() (hc_qrtn_input_bytes counts
 * it then): the section's bytes for n_tok tokens, and its making from the standard rows at xq. */
#define HC_QRTN_BATCH_MIN 8
size_t hc_qrtn_avx512_section_bytes(int bits, int group, int64_t cols, int n_tok);
void hc_qrtn_avx512_prepare(int bits, int group, int64_t cols, int n_tok, void *xq);
size_t hc_qrtn_avx512_decode_bytes(int64_t cols);
size_t hc_qrtn_avx512_batch_bytes(int group, int64_t cols, int n_tok);
void hc_qrtn_avx512_batch_prepare(int bits, int group, int64_t cols, int n_tok, void *xq);
/* The AVX-512 kernel: checked arguments, n_tok >= 1, row0 < row1, xq with its section (above);
 * call only when hc_cpu_has_avx512(). rows: the matrix's (prefetching stays inside it). */
void hc_qrtn_matmul_rows_avx512(int bits, int group, const void *packed, int64_t cols, int64_t rows, const void *xq,
                                int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1);
void hc_qrtn_matmul_batch_avx512(int bits, int group, const void *packed, int64_t cols, const void *xq, int n_tok,
                                 float *y, int64_t ldy, int64_t row0, int64_t row1);

#ifdef __cplusplus
}
#endif
#endif
