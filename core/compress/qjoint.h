/* qjoint.h: quantization that knows its branch: one layer's backbone chosen for the residual a
 * rank-r branch leaves, by alternating Q <- quant(W - B A) and B A <- svd_r((W - Q) S). */
#ifndef HC_QJOINT_H
#define HC_QJOINT_H

#include <stdint.h>

#include "hc/hc_quant.h"
#include "lowrank.h"
#include "whiten.h"

typedef struct hc_qjoint_opts {
    int rank;                 /* the rank of the branch the backbone is chosen for */
    int rounds;               /* alternations after the first quantization (0: quantize once) */
    const hc_whiten *whiten;  /* how the branch weighs errors (S), the factorization's own (whiten.h) */
    uint64_t seed;            /* of the randomized SVD */
} hc_qjoint_opts;

/* What the alternation achieved, in the branch's measure ||(W - Q - B A) S||_F^2 with the
 * rank-r B A fitted to each Q: after the first quantization and for the Q returned. */
typedef struct hc_qjoint_report {
    double error_first, error_best;
    int best_round;           /* 0: the first quantization was kept */
} hc_qjoint_report;

/* A pure function of one layer: w (out x in f32) quantized with fmt (calib passed to its
 * quantize as is) into packed (fmt's packed_bytes). Round 0 is quant(W); each further round
 * fits the rank-r branch of the last residual under the whitening and quantizes W - B A; the Q
 * whose residual leaves the least error after its own rank-r branch is kept (so never worse
 * than round 0 in that measure). The caller factors W - Q afterwards as usual. report may be NULL. */
hc_status hc_qjoint_quantize(const hc_quant_format *fmt, const float *w, int64_t out, int64_t in,
                             const hc_quant_calib *calib, const hc_qjoint_opts *o, void *packed,
                             hc_qjoint_report *report);

#endif
