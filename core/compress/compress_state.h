/* compress_state.h: the compressor's plain data, shared by its modules (types only): a job per
 * linear layer (shapes, where its bytes go in the output, its spectrum and gains) and the state. */
#ifndef HC_COMPRESS_STATE_H
#define HC_COMPRESS_STATE_H

#include <stdint.h>

#include "compress.h"
#include "model.h"
#include "quant_format.h"

struct hc_lua;
struct hc_compress_experts;
struct hc_gguf_writer;
struct hc_gguf_stream;

/* What a layer's sensitivity measures (stored as hc.sens.measure). */
typedef enum hc_sens_measure {
    HC_SENS_ACTIVATION = 0, /* calibrated: the exact reduction of E||R x||^2 per token under the
                               calibration moment E[x x^T], whatever the factorization's whitening
                               (with full whitening it is sigma_k^2 up to the Cholesky damping) */
    HC_SENS_FROBENIUS       /* no calibration: sigma_k^2 of the plain SVD, the reduction of ||R||_F^2 */
} hc_sens_measure;

typedef struct hc_compress_job {
    int layer;                /* -1: the output head */
    int proj;                 /* hc_proj, -1 for the head */
    hc_tensor *weight;        /* the source weight (an expert: a 2-D view of its slice); f32 while its layer is open */
    hc_quant_format *fmt;
    int64_t in, out;
    size_t packed_bytes;
    uint64_t offset;          /* output data offset of its packed bytes */
    int rank;                 /* rank written to the file (a prefix of the factors) */
    int rank_max;             /* directions to factor: the most a policy can give (0: none) */
    int n_dirs;               /* directions factored: min(rank_max, in, out), in decreasing order */
    hc_dtype branch_dtype;    /* how its factors are stored */
    uint64_t scratch;         /* output data offset of its factors at n_dirs (A's rows, B's rows, sigma),
                                 kept past the backbone until the ranks are known */
    float *slot;              /* [2 n_dirs] room for sigma and gain in the state's spectra */
    float *sigma;             /* [n_dirs] singular values of the whitened residual, decreasing (NULL: not factored) */
    float *gain;              /* [n_dirs] reduction of the layer's error by each rank step (NULL: not factored) */
    double energy;            /* the layer's error with no branch, in the same measure */
    double signal;            /* the layer's output energy, tr(W H W^T) (or |W|_F^2), same measure */
    hc_sens_measure measure;  /* what gain, energy and signal measure */
    int f16_fits;             /* f16 storage: directions before the first that overflows (n_dirs: all) */
    float f16_worst;          /* that direction's largest balanced factor */
    /* one expert of a MoE layer's 3-D expert tensor (compress_moe.c) when parent is not NULL */
    const hc_tensor *parent;  /* the 3-D tensor, e.g. blk.3.ffn_gate_exps.weight; weight is the expert's
                                 slice, named blk.3.ffn_gate_exps.e<expert>.weight */
    int expert;               /* its index (meaningful with parent) */
    double routing_frequency; /* share of calibration tokens routed to the expert (0..1), -1 unknown */
    double loss;              /* measured (--sens-tokens): the calibration loss (KL from the source, nats per
                                 token) of the source with only this layer quantized, no branch */
    int loss_measured;
    double joint_first, joint_best; /* --joint: the error its uniform-rank branch leaves, first Q and kept Q */
    float *awq_col, *awq_row; /* --awq: what was quantized is diag(awq_row) W diag(awq_col) (NULL: ones) */
} hc_compress_job;

typedef struct hc_compress_tensor_quant {
    char pattern[128];        /* --tensor-quant PATTERN=SPEC: the names it picks */
    hc_quant_format *fmt;     /* and their format */
    int matched;              /* jobs it gave its format to */
} hc_compress_tensor_quant;

typedef struct hc_compress_state {
    const hc_compress_opts *opts;
    hc_model *model;          /* the source: its weights mapped from the file, never converted whole */
    hc_quant_format *fmt, *head_fmt;
    hc_compress_tensor_quant *tensor_quant; /* --tensor-quant, in the order given (the last match wins) */
    int n_tensor_quant;
    hc_compress_job *jobs;    /* dense layers (layer by layer), then experts, then the head */
    int n_jobs;
    size_t source_bytes;      /* every source weight as stored */
    size_t backbone_bytes;    /* packed layers + the tensors kept as stored */
    size_t budget_base_bytes; /* what --budget is a percentage of: the backbone less an untied
                                 token-embedding table (a lookup, of which a token reads one row) */
    int n_unfit;              /* linear layers the format cannot hold, kept as stored */
    char unfit_reason[256];
    hc_quant_format *awq_fmt; /* --awq: the plain quantizer standing in for fmt in the scales' search */
    struct hc_compress_experts *experts; /* views of single experts (compress_moe.c), NULL for dense models */
    int uniform_rank;         /* --rank, or the largest rank the budget gives every layer */
    struct hc_lua *policy;    /* the loaded rank policy (--policy), NULL: uniform */
    int64_t loss_tokens;      /* measured (--sens-tokens): tokens the losses were measured on, 0: not measured */
    int64_t calib_tokens;     /* tokens calibrated on (0: none) */
    float *spectra;           /* every job's sigma and gain, one block made before the work: what lives to
                                 the end is not scattered among the layers' passing buffers (whose memory
                                 malloc could then not give back) */
    struct hc_gguf_writer *meta;  /* the output's metadata and tensor list */
    struct hc_gguf_stream *out;   /* the output file being written (compress_out.c) */
    size_t header_room;
} hc_compress_state;

#endif
