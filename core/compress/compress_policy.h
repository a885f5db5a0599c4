/* compress_policy.h: rank policies in Lua (scripts/policies), usable without a compressor state:
 * allocate(budget, layers) answers one rank per layer, checked against rank_max and the budget. */
#ifndef HC_COMPRESS_POLICY_H
#define HC_COMPRESS_POLICY_H

#include <stdint.h>

#include "hc/hc_status.h"

struct hc_lua;

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
    double percent;           /* of base_bytes */
    uint64_t base_bytes;      /* the backbone less an untied token-embedding table */
} hc_policy_budget;

/* Finds a policy by path, or by name among the shipped ones (scripts/policies, installed or in
 * the source tree; ".lua" may be left out). */
hc_status hc_policy_resolve(const char *name, char *path, size_t cap);
/* Loads the script in a sandbox (with fill_steps(), policy_steps.c) and checks that it defines
 * allocate(budget, layers). lim: the sandbox's limits (NULL: lua_host.h's defaults). */
struct hc_lua_limits;
hc_status hc_policy_open(const char *path, const struct hc_lua_limits *lim, struct hc_lua **out);
/* Calls allocate(budget, layers) and checks the answer: one integer rank in [0, rank_max] per
 * layer (an array in layer order or a table name -> rank) within the budget. Any violation is
 * HC_E_SCRIPT naming the script, the layer and the bound; ranks is written only on success. */
hc_status hc_policy_allocate(struct hc_lua *L, const char *script, const hc_policy_budget *budget,
                             const hc_policy_layer *layers, int n, int *ranks);

#endif
