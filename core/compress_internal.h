/* compress_internal.h: the compressor's shared state between its files (planning and
 * quantization in compress.c, rank policies in compress_policy.c, output in compress_write.c). */
#ifndef HC_COMPRESS_INTERNAL_H
#define HC_COMPRESS_INTERNAL_H

#include "calib.h"
#include "compress.h"
#include "lowrank.h"
#include "model.h"
#include "tokenizer.h"

typedef struct hc_compress_job {
    int layer;                /* -1: the output head */
    int proj;                 /* hc_proj, -1 for the head */
    hc_tensor *weight;        /* f32 source weights, rows = out, cols = in */
    hc_quant_format *fmt;
    int64_t in, out;
    size_t packed_bytes;
    void *packed;
    int rank;                 /* rank written to the file */
    hc_lowrank lr;            /* factors (at least rank directions) */
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
} hc_compress_state;

/* Bytes per rank of a branch of this layer (A row + B column + sigma). */
size_t hc_compress_branch_cost(const hc_compress_job *j, hc_dtype dtype);
/* Bytes of the source tensors that are written unchanged / of all source weights. */
size_t hc_compress_kept_bytes(const hc_compress_state *cs);
size_t hc_compress_source_bytes(const hc_compress_state *cs);
/* The tokenizer of the input (GGUF vocabulary, or the llama2.c tokenizer file). */
hc_status hc_compress_tokenizer(hc_compress_state *cs, hc_tokenizer **out);
hc_status hc_compress_read_file(const char *path, char **text, size_t *len);
void hc_compress_calib_progress(hc_compress_state *cs, int64_t done, int64_t total);
/* Ranks from a Lua policy script (the rank-policy module). */
hc_status hc_compress_policy_ranks(hc_compress_state *cs);
/* Writes the output file atomically and fills the report's sizes and rank figures. */
hc_status hc_compress_write(hc_compress_state *cs, hc_compress_report *report);

#endif
