/* compress_ranks.c: the compressor's ranks: the budget, the uniform rank and rank_max planned
 * before the work, and after it the ranks written (uniform in C, or a Lua policy's answer). */
#include <stdio.h>
#include <stdlib.h>

#include "compress_plan.h"
#include "compress_policy.h"
#include "compress_ranks.h"
#include "lua_host.h"

uint64_t hc_compress_budget_bytes(const hc_compress_state *cs)
{
    double b = cs->opts->budget / 100.0 * (double)cs->budget_base_bytes;
    return b > 0 ? (uint64_t)b : 0;
}

hc_status hc_compress_plan_ranks(hc_compress_state *cs)
{
    const hc_compress_opts *o = cs->opts;
    if (o->rank_max < 0 || o->rank_max > 65536) return hc_error(HC_E_ARG, "--rank-max %d is out of range (1..65536)", o->rank_max);
    if (o->policy && o->rank > 0) return hc_error(HC_E_ARG, "--policy and --rank exclude each other: the policy chooses the ranks");
    if (o->policy && o->budget <= 0) return hc_error(HC_E_ARG, "--policy %s needs a budget above 0 (--budget PCT)", o->policy);
    int r = o->rank;
    if (r <= 0 && o->budget > 0) {
        size_t per_rank = 0;
        for (int i = 0; i < cs->n_jobs; i++) per_rank += hc_compress_branch_cost(&cs->jobs[i], o->branch_dtype);
        double budget = (double)hc_compress_budget_bytes(cs);
        r = (int)(budget / (double)per_rank);
        /* a policy may still give some layers a branch where uniform ranks cannot */
        if (r < 1 && !o->policy)
            return hc_error(HC_E_ARG, "a budget of %.2f%% (%.0f KiB) is too small for even rank 1 on every layer (%.0f KiB)",
                            o->budget, budget / 1024, per_rank / 1024.0);
    }
    cs->uniform_rank = r > 0 ? r : 0;
    int branches = o->rank > 0 || o->budget > 0;
    int want = o->rank_max > 0 ? o->rank_max : (4 * cs->uniform_rank > 64 ? 4 * cs->uniform_rank : 64);
    size_t total = 0;
    for (int i = 0; i < cs->n_jobs; i++) {
        hc_compress_job *j = &cs->jobs[i];
        int64_t mn = j->in < j->out ? j->in : j->out;
        j->rank_max = branches ? (want < mn ? want : (int)mn) : 0;
        j->n_dirs = j->rank_max; /* the factorization's min(rank, in, out) */
        j->branch_dtype = hc_compress_branch_dtype(j, o->branch_dtype);
        total += 2 * (size_t)j->n_dirs;
    }
    if (!(cs->spectra = malloc((total ? total : 1) * sizeof *cs->spectra))) return hc_error(HC_E_NOMEM, "compress: out of memory");
    for (int i = 0, at = 0; i < cs->n_jobs; at += 2 * cs->jobs[i].n_dirs, i++) cs->jobs[i].slot = cs->spectra + at;
    if (!o->policy) return HC_OK;
    char path[4096];
    hc_status st = hc_policy_resolve(o->policy, path, sizeof path);
    if (st == HC_OK) st = hc_policy_open(path, NULL, &cs->policy);
    return st;
}

void hc_compress_policy_free(hc_compress_state *cs)
{
    hc_lua_close(cs->policy);
    cs->policy = NULL;
}

static hc_status policy_ranks(hc_compress_state *cs)
{
    const hc_compress_opts *o = cs->opts;
    hc_policy_layer *layers = calloc((size_t)cs->n_jobs, sizeof *layers);
    int *ranks = calloc((size_t)cs->n_jobs, sizeof *ranks);
    if (!layers || !ranks) {
        free(layers);
        free(ranks);
        return hc_error(HC_E_NOMEM, "rank policy: out of memory");
    }
    for (int i = 0; i < cs->n_jobs; i++) {
        const hc_compress_job *j = &cs->jobs[i];
        layers[i] = (hc_policy_layer){
            .name = j->weight->name,
            .kind = j->proj >= 0 ? hc_proj_name((hc_proj)j->proj) : "output",
            .layer = j->layer,
            .in = j->in,
            .out = j->out,
            .rank_max = j->n_dirs,
            .bytes_per_rank = hc_compress_branch_cost(j, o->branch_dtype),
            .flops_per_rank = (uint64_t)(2 * (j->in + j->out)),
            .spectrum = j->sigma,
            .gain = j->gain,
            .energy = j->energy,
            .signal = j->signal,
            .is_expert = j->parent != NULL,
            .expert = j->expert,
            .routing_frequency = j->routing_frequency,
            .loss = j->loss,
            .loss_measured = j->loss_measured,
        };
    }
    hc_policy_budget b = { hc_compress_budget_bytes(cs), o->budget, cs->budget_base_bytes };
    hc_status st = hc_policy_allocate(cs->policy, o->policy, &b, layers, cs->n_jobs, ranks);
    for (int i = 0; st == HC_OK && i < cs->n_jobs; i++) cs->jobs[i].rank = ranks[i];
    free(layers);
    free(ranks);
    return st;
}

hc_status hc_compress_choose_ranks(hc_compress_state *cs)
{
    hc_status st = HC_OK;
    if (cs->policy) st = policy_ranks(cs);
    else
        for (int i = 0; i < cs->n_jobs; i++) {
            hc_compress_job *j = &cs->jobs[i];
            j->rank = cs->uniform_rank < j->n_dirs ? cs->uniform_rank : j->n_dirs;
        }
    /* a direction whose factors f16 cannot hold is refused only where it is written */
    for (int i = 0; st == HC_OK && i < cs->n_jobs; i++) {
        const hc_compress_job *j = &cs->jobs[i];
        if (j->rank > j->f16_fits)
            st = hc_error(HC_E_NUMERIC, "the branch of %s does not fit f16 (largest factor %.3g): use --branch-dtype bf16",
                          j->weight->name, (double)j->f16_worst);
    }
    return st;
}

