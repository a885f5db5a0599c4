/* compress.h: `hcinfer compress`: quantize every linear layer of a model with a quant plugin,
 * factor each quantization residual into a low-rank branch (ranks within a memory budget), and
 * write one GGUF file holding the packed backbone, the branches and the metadata to run it; one
 * decoder layer at a time, the source mapped, the output written as it goes. */
#ifndef HC_COMPRESS_H
#define HC_COMPRESS_H

#include <stdint.h>

#include "hc/hc_tensor.h"
#include "lowrank.h"
#include "registry.h"

/* The backbone `compress` uses when given no --quant: the best measured at or below llama.cpp
 * Q4_0's device bytes with 10% branches (scripts/RESULTS-accuracy.md); without --calib it then
 * calibrates on text the model samples itself (--calib self), since GPTQ needs calibration. */
#define HC_COMPRESS_DEFAULT_QUANT "gptq:bits=4,group=128,act_order=1,search=1"

/* The most --tensor-quant options one compress takes. */
#define HC_COMPRESS_MAX_TENSOR_QUANT 256

typedef void (*hc_compress_progress)(void *ctx, const char *phase, int64_t done, int64_t total);

typedef struct hc_compress_opts {
    const char *input;          /* GGUF or llama2.c checkpoint */
    const char *tokenizer;      /* llama2.c tokenizer file (needed for a llama2.c input) */
    const char *output;
    const char *quant;          /* backbone spec, "rtn:bits=3,group=128" */
    const char *head_quant;     /* spec for the output head (and the tied embedding), NULL: keep as stored */
    const char *const *tensor_quant; /* "PATTERN=SPEC": the linear layers whose names match in another format
                                   (compress_tensor_quant.h), the last match winning; n_tensor_quant of them */
    int n_tensor_quant;
    double budget;              /* branch bytes as a percentage of the backbone's; 0 with rank 0: no branches */
    int rank;                   /* the same rank for every layer instead of the budget (0: use the budget) */
    int rank_max;               /* directions factored per layer, the most a policy can give
                                   (0: min(in, out, max(4 x the uniform rank, 64))) */
    const char *calib;          /* calibration text file, NULL: none */
    int calib_tokens;           /* tokens of it to use (default 8192) */
    int calib_seq;              /* sequence length (default 512) */
    int calib_skip;             /* tokens of it skipped before those used (another draw of the text) */
    int calib_sequential;       /* --calib-forward compressed: calibrate each layer on the outputs of the layers
                                   before it as compressed (Q(W) + B A at the uniform rank), not the source's */
    unsigned calib_seed;        /* --calib self / --sens-source self: the sampler's seed (0: the default) */
    hc_whitening whitening;     /* how the factorization weighs errors (default: full when calibrated) */
    int whitening_given;        /* whitening was chosen explicitly */
    hc_dtype branch_dtype;      /* HC_F16 (default), HC_BF16, HC_F32 or HC_Q8_0 (f16 for layers whose
                                   widths are not multiples of 32) */
    const char *policy;         /* Lua rank policy file, NULL: uniform */
    int sens_tokens;            /* > 0: measure each layer's end-to-end sensitivity on this many calibration
                                   tokens (the KL from the source with only this layer quantized) */
    int sens_self;              /* the measurement tokens are sampled from the source model itself
                                   (--sens-source self) instead of taken from the calibration text */
    int joint_rounds;           /* > 0: quantization that knows its branch, alternating Q <- quant(W - B A)
                                   and B A <- svd_r(W - Q) this many rounds at the uniform rank (qjoint.c) */
    int awq;                    /* activation-aware scales (--awq, needs --calib): per-channel scales chosen
                                   on a grid of this many points, folded into the norms and the producing
                                   projections (compress_awq.c); 0: none */
    int threads;
    const hc_registry *registry;
    hc_compress_progress progress;
    void *progress_ctx;
} hc_compress_opts;

typedef struct hc_compress_report {
    size_t backbone_bytes;      /* every weight the device holds, as written */
    size_t budget_base_bytes;   /* what --budget is a percentage of (the backbone less an untied
                                   token-embedding table) */
    size_t branch_bytes;        /* A, B and sigma of every branch */
    size_t source_bytes;        /* the input's weights as stored */
    int n_linear;               /* compressed linear layers */
    int n_tensor_quant;         /* of which in a --tensor-quant format */
    int n_unfit;                /* linear layers kept as stored: their shape does not fit the format */
    char unfit_reason[256];     /* the first such layer and why */
    int n_branches;
    int rank_min, rank_max;
    double rank_mean;
    double error_total;         /* the factored layers' error with no branch (their sensitivity measure) */
    double error_removed;       /* of which the written ranks remove */
    const char *error_measure;  /* "activation" or "frobenius"; NULL without branches */
    int64_t calib_tokens;
    int64_t sens_tokens;        /* tokens the sensitivity was measured on (0: not measured) */
    double seconds_calib;       /* embedding, the layers' forward passes, their inputs' statistics */
    double seconds_source;      /* the source's layers read and converted to f32, their pages released */
    double seconds_quant;       /* the jobs: quantization, factorization, sensitivity (their packed bytes and
                                   factors are written to the file as they finish) */
    double seconds_measure, seconds_total;
    double seconds_write;       /* the file opened (the tensors kept as stored copied) and finished (branches
                                   truncated into place, the header, fsync) */
    double joint_first, joint_best; /* --joint: the error the uniform-rank branches leave (the factorization's
                                   measure, summed over layers) after the first quantization and as kept */
    int awq_groups, awq_scaled;   /* --awq: groups of layers sharing an input searched, and scaled (alpha > 0) */
    double awq_alpha_mean;        /* their alphas' mean over the groups searched */
    double awq_error_plain, awq_error_best; /* the search's output error (summed) at alpha 0 and as chosen */
} hc_compress_report;

hc_status hc_compress(const hc_compress_opts *o, hc_compress_report *report);

/* --calib self: the calibration text is sampled from the source model; the sensitivity measurement
 * then samples too, as it does with --sens-source self (compress_sample.c). */
int hc_compress_calib_is_self(const hc_compress_opts *o);
int hc_compress_sens_is_self(const hc_compress_opts *o);

#endif
