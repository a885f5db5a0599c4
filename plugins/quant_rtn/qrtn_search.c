/* qrtn_search.c: the activation-weighted grid of one group (as llama.cpp's importance-matrix
 * quantization chooses its K-quant scales): candidate ranges, codes, weighted least squares. */
#include <math.h>
#include <stddef.h>

#include "hc/hc_tensor.h"
#include "qrtn.h"

/* Candidates: the range shrunk by alpha in [ALPHA0, ALPHA0 + (NALPHA - 1) ALPHA_STEP], anchored at
 * the minimum, the maximum or the centre (clipping the top, the bottom or both). */
#define ALPHA0 0.45
#define ALPHA_STEP 0.025
#define NALPHA 25
#define REFINE 3   /* rounds of (codes, least squares) after each start */

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
    double sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
    for (int64_t i = 0; i < n; i++) {
        const double a = imp ? imp[i] : 1.0, l = q[i];
        sw += a, sl += a * l, sll += a * l * l, sx += a * w[i], sxl += a * w[i] * l;
    }
    const double D = sw * sll - sl * sl;
    if (!(D > 0.0)) return 0;
    *d = (sw * sxl - sx * sl) / D;
    *m = (sll * sx - sl * sxl) / D;
    return *d > 0.0 && isfinite(*d) && isfinite(*m);
}

/* Codes of w on the float grid (d, m); whether they changed. */
static int codes(const float *w, int64_t n, double d, double m, int qmax, uint8_t *q)
{
    int changed = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = nearbyint((w[i] - m) / d);
        const uint8_t c = (uint8_t)(t < 0 ? 0 : t > qmax ? qmax : t);
        changed |= c != q[i];
        q[i] = c;
    }
    return changed;
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
    if (st != HC_OK || n > 256) return st;               /* groups are at most 128 */
    double total = 0.0;
    for (int64_t i = 0; imp && i < n; i++) total += imp[i] > 0.0f ? imp[i] : 0.0f;
    if (!(total > 0.0)) imp = NULL;   /* nothing weighs: every weight counts the same */
    float lo = w[0], hi = w[0];
    for (int64_t i = 1; i < n; i++) lo = w[i] < lo ? w[i] : lo, hi = w[i] > hi ? w[i] : hi;
    if (!(hi > lo)) return HC_OK;
    const int qmax = (1 << bits) - 1;
    double best = hc_qrtn_grid_error(w, imp, n, bits, *d16, *m16);
    uint8_t q[256];
    for (int k = 0; k < NALPHA; k++) {
        const double d0 = (ALPHA0 + ALPHA_STEP * k) * ((double)hi - lo) / qmax;
        for (int anchor = 0; anchor < 3; anchor++) {
            double d = d0, m = anchor == 0 ? lo : anchor == 1 ? hi - qmax * d0 : 0.5 * ((double)lo + hi - qmax * d0);
            codes(w, n, d, m, qmax, q);
            for (int r = 0; r < REFINE; r++) {
                if (!fit(w, imp, q, n, &d, &m)) break;
                uint16_t dh, mh;
                if (to_f16(d, m, &dh, &mh)) {
                    const double e = hc_qrtn_grid_error(w, imp, n, bits, dh, mh);
                    if (e < best) best = e, *d16 = dh, *m16 = mh;
                }
                if (!codes(w, n, d, m, qmax, q)) break;
            }
        }
    }
    return HC_OK;
}
