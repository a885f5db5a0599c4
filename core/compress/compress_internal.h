/* compress_internal.h: the compressor's shared state between its files (planning and
 * quantization in compress.c, rank policies in compress_policy.c, output in compress_write.c). */
#ifndef HC_COMPRESS_INTERNAL_H
#define HC_COMPRESS_INTERNAL_H

#include "calib.h"
#include "compress.h"
#include "lowrank.h"
#include "model_load.h"
#include "policy_steps.h"
#include "tokenizer.h"

struct hc_lua;

/* What a layer's sensitivity measures (stored as hc.sens.measure). */
typedef enum hc_sens_measure {
    HC_SENS_ACTIVATION = 0, /* calibrated: the exact reduction of E||R x||^2 per token under the
                               calibration moment E[x x^T], whatever the factorization's whitening
                               (with full whitening it is sigma_k^2 up to the Cholesky damping) */
    HC_SENS_FROBENIUS       /* no calibration: sigma_k^2 of the plain SVD, the reduction of ||R||_F^2 */
} hc_sens_measure;

const char *hc_sens_measure_name(hc_sens_measure m);

typedef struct hc_compress_job {
    int layer;                /* -1: the output head */
    int proj;                 /* hc_proj, -1 for the head */
    hc_tensor *weight;        /* f32 source weights, rows = out, cols = in */
    hc_quant_format *fmt;
    int64_t in, out;
    size_t packed_bytes;
    void *packed;
    int rank;                 /* rank written to the file (a prefix of the factors) */
    int rank_max;             /* directions factored: the most a policy can give (0: none) */
    hc_lowrank lr;            /* factors, lr.rank = rank_max directions in decreasing order */
    float *gain;              /* [rank_max] reduction of the layer's error by each rank step */
    double energy;            /* the layer's error with no branch, in the same measure */
    double signal;            /* the layer's output energy, tr(W H W^T) (or |W|_F^2), same measure */
    hc_sens_measure measure;  /* what gain, energy and signal measure */
    /* one expert of a MoE layer's 3-D expert tensor (compress_moe.c) when parent is not NULL */
    const hc_tensor *parent;  /* the 3-D tensor, e.g. blk.3.ffn_gate_exps.weight; weight is the expert's
                                 slice, named blk.3.ffn_gate_exps.e<expert>.weight */
    int expert;               /* its index (meaningful with parent) */
    double routing_frequency; /* share of calibration tokens routed to the expert (0..1), -1 unknown */
    double loss;              /* measured (--sens-tokens): the calibration loss (KL from the source, nats per
                                 token) of the source with only this layer quantized, no branch */
    int loss_measured;
    double joint_first, joint_best; /* --joint: the error its rank-uniform branch leaves, first Q and kept Q */
} hc_compress_job;

typedef struct hc_compress_state {
    const hc_compress_opts *opts;
    hc_model *model;
    hc_quant_format *fmt, *head_fmt;
    hc_compress_job *jobs;
    int n_jobs;
    size_t backbone_bytes;    /* packed layers + the tensors kept as stored */
    hc_calib *calib;
    int n_unfit;              /* linear layers the format cannot hold, kept as stored */
    char unfit_reason[256];
    struct hc_compress_experts *experts; /* views of single experts (compress_moe.c), NULL for dense models */
    int uniform_rank;         /* --rank, or the largest rank the budget gives every layer */
    struct hc_lua *policy;    /* the loaded rank policy (--policy), NULL: uniform */
    int64_t loss_tokens;      /* measured (--sens-tokens): tokens the losses were measured on, 0: not measured */
} hc_compress_state;

/* The storage of a job's branch: the requested type, but f16 for q8_0 where a width is not a
 * multiple of 32 (q8_0 rows are blocks of 32). */
hc_dtype hc_compress_branch_dtype(const hc_compress_job *j, hc_dtype requested);
/* Bytes of one direction of a job's branch (a row of A, a row of B and its sigma). */
size_t hc_compress_branch_cost(const hc_compress_job *j, hc_dtype requested);
/* Bytes of the source tensors that are written unchanged / of all source weights. */
size_t hc_compress_kept_bytes(const hc_compress_state *cs);
size_t hc_compress_source_bytes(const hc_compress_state *cs);
/* The tokenizer of the input (GGUF vocabulary, or the llama2.c tokenizer file). */
hc_status hc_compress_tokenizer(hc_compress_state *cs, hc_tokenizer **out);
hc_status hc_compress_read_file(const char *path, char **text, size_t *len);
/* The first `want` tokens of the calibration text (fewer when it is shorter), BOS at the start of
 * every sequence of *seq tokens (the calibration sequence length, capped by the model and n). */
hc_status hc_compress_calib_ids(hc_compress_state *cs, int64_t want, int32_t **ids, int64_t *n, int *seq);
/* Room for `want` sampled tokens (*n = want) and their sequence length (64, capped by the model
 * and want): hc_compress_calib_ids' counterpart for --calib self, filled by hc_compress_sample_ids. */
hc_status hc_compress_self_ids(hc_compress_state *cs, int64_t want, int32_t **ids, int64_t *n, int *seq);
/* Fills ids[n] with sequences of seq tokens the source model (ctx) samples from BOS, temperature 1,
 * a fixed seed; `what` names the text in an error ("calibration", "measurement"). */
hc_status hc_compress_sample_ids(hc_compress_state *cs, hc_context *ctx, int32_t *ids, int64_t n, int seq, const char *what);
/* A context of seq tokens on a CPU device over the source model's f32 weights (calibration and the
 * sensitivity measurement run it); closing it leaves the weights where they are, in host memory. */
hc_status hc_compress_source_open(hc_compress_state *cs, int seq, hc_device **dev, hc_context **ctx);
void hc_compress_source_close(hc_compress_state *cs, hc_device *dev, hc_context *ctx);
/* --sens-tokens: each layer's measured loss (compress_measure.c); call after factoring (the options
 * are checked by hc_compress: calibration text given, a dense model). */
hc_status hc_compress_measure(hc_compress_state *cs);
void hc_compress_calib_progress(hc_compress_state *cs, int64_t done, int64_t total);
/* ---- rank allocation (compress_policy.c) ---- */

/* The budget in bytes (budget percent of the backbone). */
uint64_t hc_compress_budget_bytes(const hc_compress_state *cs);
/* Before factoring: the uniform rank and each layer's rank_max (--rank-max, or
 * min(in, out, max(4 x uniform, 64))); loads the policy script so that a broken one fails early. */
hc_status hc_compress_plan_ranks(hc_compress_state *cs);
/* After factoring: each layer's sensitivity from its residual r [out][in], its factors and the
 * calibration moment [in][in] (NULL without calibration). */
hc_status hc_compress_sensitivity(hc_compress_job *j, const float *r, const float *moment, hc_whitening whitening);
/* After factoring: the ranks written (uniform, or the policy's answer, checked). */
hc_status hc_compress_choose_ranks(hc_compress_state *cs);
void hc_compress_policy_free(hc_compress_state *cs);

/* The reduction of E||R x||^2 (x with second moment `moment`, or ||R||_F^2 when NULL) by each
 * rank step of the factorization R ~ B A (prefix property): gain[k] for k < lr->rank, and the
 * error with no branch in *total. */
hc_status hc_compress_step_gains(const float *r, const hc_lowrank *lr, const float *moment, float *gain, double *total);

/* ---- rank policies in Lua, usable without a compressor state ---- */

typedef struct hc_policy_layer {
    const char *name;         /* weight name, "blk.3.attn_q.weight" */
    const char *kind;         /* "attn_q", ..., "ffn_down", "output" */
    int layer;                /* block index, -1 for the output head */
    int64_t in, out;
    int rank_max;
    uint64_t bytes_per_rank;  /* (in + out) x element size + 4 */
    uint64_t flops_per_rank;  /* host FLOPs per token: 2 (in + out) */
    const float *spectrum;    /* [rank_max] singular values, decreasing */
    const float *gain;        /* [rank_max] error reduction per rank step */
    double energy;            /* error with no branch */
    double signal;            /* output energy of the source layer, same measure */
    double loss;              /* with loss_measured: KL from the source with only this layer quantized */
    int loss_measured;
    int is_expert;            /* one expert of a MoE layer (0: a dense layer) */
    int expert;               /* with is_expert: its index */
    double routing_frequency; /* with is_expert: its share of calibration tokens (0..1), < 0 unknown */
} hc_policy_layer;

typedef struct hc_policy_budget {
    uint64_t bytes;           /* the most the branches may take */
    double percent;           /* of the backbone */
    uint64_t backbone_bytes;
} hc_policy_budget;

/* Finds a policy by path, or by name among the shipped ones (scripts/policies, installed or in
 * the source tree; ".lua" may be left out). */
hc_status hc_policy_resolve(const char *name, char *path, size_t cap);
/* Loads the script in a sandbox (with fill_steps(), policy_steps.c) and checks that it defines
 * allocate(budget, layers). */
hc_status hc_policy_open(const char *path, struct hc_lua **out);
/* Calls allocate(budget, layers) and checks the answer: one integer rank in [0, rank_max] per
 * layer (an array in layer order or a table name -> rank) within the budget. Any violation is
 * HC_E_SCRIPT naming the script, the layer and the bound; ranks is written only on success. */
hc_status hc_policy_allocate(struct hc_lua *L, const char *script, const hc_policy_budget *budget,
                             const hc_policy_layer *layers, int n, int *ranks);
/* Mixture of experts (compress_moe.c): how many expert jobs the model has; appends one job per
 * expert and projection (expert = its index, parent = the 3-D tensor); fills their routing
 * frequency from the calibration; frees the views. */
int hc_compress_expert_job_count(const hc_model *m);
hc_status hc_compress_plan_experts(hc_compress_state *cs);
void hc_compress_experts_calibrated(hc_compress_state *cs);
void hc_compress_experts_free(hc_compress_state *cs);
/* Writes the output file atomically and fills the report's sizes and rank figures. */
hc_status hc_compress_write(hc_compress_state *cs, hc_compress_report *report);

#endif
