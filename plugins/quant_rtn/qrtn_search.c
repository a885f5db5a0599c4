/* qrtn_search.c: the activation-weighted grid of one group (as llama.cpp's importance-matrix
 * quantization chooses its K-quant scales): candidate ranges, codes, weighted least squares. */
#include <math.h>
#include <stddef.h>

#include "hc/hc_tensor.h"
#include "qrtn.h"

/* Candidates: the range shrunk by alpha in [ALPHA0, ALPHA0 + (NALPHA - 1) ALPHA_STEP], anchored at
 * the minimum, the maximum or the centre (clipping the top, the bottom or both). */
#define ALPHA0 0.45
#define ALPHA_STEP 0.05
#define NALPHA 13
#define REFINE 2   /* rounds of (codes, least squares) after each start */

double hc_qrtn_grid_error(const float *w, const float *imp, int64_t n, int bits, uint16_t d16, uint16_t m16)
{
    const float d = hc_f16_to_f32(d16), m = hc_f16_to_f32(m16);
    const int qmax = (1 << bits) - 1;
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double r = (double)w[i] - (double)(d * (float)hc_qrtn_code(w[i], d, m, qmax) + m);
        e += (imp ? (double)imp[i] : 1.0) * r * r;
    }
    return e;
}

/* The weighted least-squares (d, m) for fixed codes q: min sum imp (w - d q - m)^2. 0 when the
 * codes do not determine them (all equal) or the scale comes out non-positive. */
static int fit(const float *w, const float *imp, const uint8_t *q, int64_t n, double *d, double *m)
{
    /* eight lanes of partial sums (n is a multiple of 32): independent chains the compiler can
       keep in vector registers */
    float sw[8] = {0}, sl[8] = {0}, sll[8] = {0}, sx[8] = {0}, sxl[8] = {0};
    for (int64_t i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++) {
            const float a = imp[i + k], l = q[i + k], al = a * l;
            sw[k] += a, sl[k] += al, sll[k] += al * l, sx[k] += a * w[i + k], sxl[k] += al * w[i + k];
        }
    double Sw = 0, Sl = 0, Sll = 0, Sx = 0, Sxl = 0;
    for (int k = 0; k < 8; k++) Sw += sw[k], Sl += sl[k], Sll += sll[k], Sx += sx[k], Sxl += sxl[k];
    const double D = Sw * Sll - Sl * Sl;
    if (!(D > 0.0)) return 0;
    *d = (Sw * Sxl - Sx * Sl) / D;
    *m = (Sll * Sx - Sl * Sxl) / D;
    return *d > 0.0 && isfinite(*d) && isfinite(*m);
}

/* round((w - m) / d) clamped to [0, qmax], halves rounded up: no library call on the way (the
 * exact hc_qrtn_code, which rounds halves to even, decides the final choice). */
static inline int fast_code(float w, float m, float id, int qmax)
{
    float t = (w - m) * id + 0.5f;
    t = t > 0.0f ? t : 0.0f;                       /* branch-free clamps (maxss, minss) */
    t = t < (float)qmax ? t : (float)qmax;
    return (int)t;
}

/* Codes of w on the grid (m, 1 / id); whether they changed. */
static int codes(const float *w, int64_t n, float m, float id, int qmax, uint8_t *q)
{
    int changed = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t c = (uint8_t)fast_code(w[i], m, id, qmax);
        changed |= c != q[i];
        q[i] = c;
    }
    return changed;
}

/* The weighted error on the f16 grid (d16, m16) with fast_code's rounding. */
static float fast_error(const float *w, const float *imp, int64_t n, int qmax, uint16_t d16, uint16_t m16)
{
    const float d = hc_f16_to_f32(d16), m = hc_f16_to_f32(m16), id = 1.0f / d;
    float e[8] = {0};
    for (int64_t i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++) {
            const float r = w[i + k] - (d * (float)fast_code(w[i + k], m, id, qmax) + m);
            e[k] += imp[i + k] * r * r;
        }
    return ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]));
}

/* (d, m) to f16, when both fit and d > 0. */
static int to_f16(double d, double m, uint16_t *d16, uint16_t *m16)
{
    *d16 = hc_f32_to_f16((float)d);
    *m16 = hc_f32_to_f16((float)m);
    const float df = hc_f16_to_f32(*d16), mf = hc_f16_to_f32(*m16);
    return df > 0.0f && isfinite(df) && isfinite(mf);
}

hc_status hc_qrtn_grid_search(const float *w, const float *imp, int64_t n, int bits, uint16_t *d16, uint16_t *m16)
{
    hc_status st = hc_qrtn_grid(w, n, bits, d16, m16);   /* the min-max grid: checks, and the first candidate */
    if (st != HC_OK || n > 256 || n % 8) return st;     /* groups: 32..128 weights */
    double total = 0.0;
    for (int64_t i = 0; imp && i < n; i++) total += imp[i] > 0.0f ? imp[i] : 0.0f;
    float ones[256];
    if (!(total > 0.0)) {   /* nothing weighs: every weight counts the same */
        for (int64_t i = 0; i < n; i++) ones[i] = 1.0f;
        imp = ones;
    }
    float lo = w[0], hi = w[0];
    for (int64_t i = 1; i < n; i++) lo = w[i] < lo ? w[i] : lo, hi = w[i] > hi ? w[i] : hi;
    if (!(hi > lo)) return HC_OK;
    const int qmax = (1 << bits) - 1;
    const uint16_t d_mm = *d16, m_mm = *m16;
    float best = fast_error(w, imp, n, qmax, d_mm, m_mm);
    uint8_t q[256];
    for (int k = 0; k < NALPHA; k++) {
        const double d0 = (ALPHA0 + ALPHA_STEP * k) * ((double)hi - lo) / qmax;
        for (int anchor = 0; anchor < 3; anchor++) {
            double d = d0, m = anchor == 0 ? lo : anchor == 1 ? hi - qmax * d0 : 0.5 * ((double)lo + hi - qmax * d0);
            codes(w, n, (float)m, (float)(1.0 / d), qmax, q);
            for (int r = 0; r < REFINE; r++) {
                if (!fit(w, imp, q, n, &d, &m)) break;
                uint16_t dh, mh;
                if (to_f16(d, m, &dh, &mh)) {
                    const float e = fast_error(w, imp, n, qmax, dh, mh);
                    if (e < best) best = e, *d16 = dh, *m16 = mh;
                }
                if (!codes(w, n, (float)m, (float)(1.0 / d), qmax, q)) break;
            }
        }
    }
    /* the promise holds in the exact measure: never worse than the min-max grid */
    if (hc_qrtn_grid_error(w, imp, n, bits, *d16, *m16) > hc_qrtn_grid_error(w, imp, n, bits, d_mm, m_mm))
        *d16 = d_mm, *m16 = m_mm;
    return HC_OK;
}
