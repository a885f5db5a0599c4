/* compress_policy.c: how the compressor spreads branch ranks over layers: each layer's sensitivity
 * (error removed per rank step), the uniform rank in C, and Lua rank policies run in the sandbox. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "compress_internal.h"
#include "lua_host.h"
#include "suffix.h"

const char *hc_sens_measure_name(hc_sens_measure m)
{
    switch (m) {
    case HC_SENS_ACTIVATION: return "activation";
    case HC_SENS_FROBENIUS: return "frobenius";
    }
    return "unknown";
}

/* ---- sensitivity ---- */

/* With E_k = R - sum_{i<=k} b_i a_i and H the input moment, the error after k steps is
 * tr(E_k H E_k^T), and step k removes
 *     gain_k = 2 b_k^T (R H a_k^T - sum_{i<k} b_i c_ik) - |b_k|^2 c_kk,   C = A H A^T,
 * so with T = R H, P = T A^T, Q = B^T P and D = B^T B:
 *     gain_k = 2 (Q_kk - sum_{i<k} D_ki C_ik) - D_kk C_kk.
 * Every step is computed, not inferred from the factorization's own weighting. */
hc_status hc_compress_step_gains(const float *r, const hc_lowrank *lr, const float *moment, float *gain, double *total)
{
    int64_t out = lr->out, in = lr->in;
    int k = lr->rank;
    const float *a = lr->a, *b = lr->b;
    float *t = moment ? malloc((size_t)(out * in) * sizeof *t) : NULL;
    float *g = moment ? malloc((size_t)(k * in) * sizeof *g) : NULL;
    float *p = malloc((size_t)(out * k) * sizeof *p);
    float *c = malloc((size_t)k * (size_t)k * sizeof *c), *q = malloc((size_t)k * (size_t)k * sizeof *q);
    float *d = malloc((size_t)k * (size_t)k * sizeof *d);
    if ((moment && (!t || !g)) || !p || !c || !q || !d) {
        free(t); free(g); free(p); free(c); free(q); free(d);
        return hc_error(HC_E_NOMEM, "sensitivity: out of memory for a %lld x %lld layer", (long long)out, (long long)in);
    }
    const float *rh = r, *ah = a; /* R H and A H (H = I without a moment) */
    if (moment) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)in, 1.0f, r, (int)in, moment, (int)in, 0.0f, t, (int)in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, (int)in, (int)in, 1.0f, a, (int)in, moment, (int)in, 0.0f, g, (int)in);
        rh = t;
        ah = g;
    }
    double e = 0;
    for (int64_t i = 0; i < out * in; i++) e += (double)r[i] * rh[i];
    *total = e;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, k, (int)in, 1.0f, rh, (int)in, a, (int)in, 0.0f, p, k);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, k, (int)in, 1.0f, ah, (int)in, a, (int)in, 0.0f, c, k);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)out, 1.0f, b, k, p, k, 0.0f, q, k);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)out, 1.0f, b, k, b, k, 0.0f, d, k);
    for (int s = 0; s < k; s++) {
        double cross = q[s * k + s];
        for (int i = 0; i < s; i++) cross -= (double)d[s * k + i] * c[i * k + s];
        gain[s] = (float)(2.0 * cross - (double)d[s * k + s] * c[s * k + s]);
    }
    free(t); free(g); free(p); free(c); free(q); free(d);
    return HC_OK;
}

/* tr(W H W^T), the layer's output energy under the input moment H (|W|_F^2 without one). */
static hc_status output_energy(const float *w, int64_t out, int64_t in, const float *moment, double *signal)
{
    double e = 0;
    if (!moment) {
        for (int64_t i = 0; i < out * in; i++) e += (double)w[i] * w[i];
        *signal = e;
        return HC_OK;
    }
    float *wh = malloc((size_t)(out * in) * sizeof *wh);
    if (!wh) return hc_error(HC_E_NOMEM, "sensitivity: out of memory for a %lld x %lld layer", (long long)out, (long long)in);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)in, 1.0f, w, (int)in, moment, (int)in, 0.0f, wh, (int)in);
    for (int64_t i = 0; i < out * in; i++) e += (double)w[i] * wh[i];
    free(wh);
    *signal = e;
    return HC_OK;
}

hc_status hc_compress_sensitivity(hc_compress_job *j, const float *r, const float *moment, hc_whitening whitening)
{
    int k = j->lr.rank;
    hc_status st = output_energy(j->weight->data, j->out, j->in, moment, &j->signal);
    if (st != HC_OK) return st;
    free(j->gain);
    if (!(j->gain = malloc((size_t)(k > 0 ? k : 1) * sizeof *j->gain))) return hc_error(HC_E_NOMEM, "sensitivity: out of memory");
    if (!moment) {
        /* the plain SVD: sigma_k^2 is exactly the reduction of ||R||_F^2 */
        for (int s = 0; s < k; s++) j->gain[s] = j->lr.sigma[s] * j->lr.sigma[s];
        j->energy = j->lr.energy;
        j->measure = HC_SENS_FROBENIUS;
        return HC_OK;
    }
    /* With full whitening sigma_k^2 would be the reduction under the damped moment E[x x^T] + d I
       (d = 1% of its mean diagonal), which overstates small steps by a few percent; the exact
       reduction under the moment itself costs one more product of the layer's size. */
    (void)whitening;
    j->measure = HC_SENS_ACTIVATION;
    return hc_compress_step_gains(r, &j->lr, moment, j->gain, &j->energy);
}

/* ---- planning ---- */

uint64_t hc_compress_budget_bytes(const hc_compress_state *cs)
{
    double b = cs->opts->budget / 100.0 * (double)cs->backbone_bytes;
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
    for (int i = 0; i < cs->n_jobs; i++) {
        hc_compress_job *j = &cs->jobs[i];
        int64_t mn = j->in < j->out ? j->in : j->out;
        j->rank_max = branches ? (want < mn ? want : (int)mn) : 0;
    }
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
            .rank_max = j->lr.rank,
            .bytes_per_rank = hc_compress_branch_cost(j, o->branch_dtype),
            .flops_per_rank = (uint64_t)(2 * (j->in + j->out)),
            .spectrum = j->lr.sigma,
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
    hc_policy_budget b = { hc_compress_budget_bytes(cs), o->budget, cs->backbone_bytes };
    hc_status st = hc_policy_allocate(cs->policy, o->policy, &b, layers, cs->n_jobs, ranks);
    for (int i = 0; st == HC_OK && i < cs->n_jobs; i++) cs->jobs[i].rank = ranks[i];
    free(layers);
    free(ranks);
    return st;
}

hc_status hc_compress_choose_ranks(hc_compress_state *cs)
{
    if (cs->policy) return policy_ranks(cs);
    for (int i = 0; i < cs->n_jobs; i++) {
        hc_compress_job *j = &cs->jobs[i];
        j->rank = cs->uniform_rank < j->lr.rank ? cs->uniform_rank : j->lr.rank;
    }
    return HC_OK;
}

/* ---- Lua policies ---- */

static int readable(const char *path) { return access(path, R_OK) == 0; }

hc_status hc_policy_resolve(const char *name, char *path, size_t cap)
{
    if (!name || !*name) return hc_error(HC_E_ARG, "no rank policy given");
    snprintf(path, cap, "%s", name);
    if (readable(path)) return HC_OK;
    if (strchr(name, '/')) return hc_error(HC_E_IO, "rank policy %s: cannot read the file", name);
    static const char *const dirs[] = {
#ifdef HC_INSTALL_DATADIR
        HC_INSTALL_DATADIR "/policies",
#endif
#ifdef HC_SOURCE_DIR
        HC_SOURCE_DIR "/scripts/policies",
#endif
        NULL
    };
    int has_ext = hc_ends_with(name, ".lua");
    for (int i = 0; dirs[i]; i++) {
        snprintf(path, cap, "%s/%s%s", dirs[i], name, has_ext ? "" : ".lua");
        if (readable(path)) return HC_OK;
    }
    return hc_error(HC_E_IO, "rank policy '%s' not found (neither a file nor one of the shipped policies in %s)", name,
                    dirs[0] ? dirs[0] : "scripts/policies");
}

hc_status hc_policy_open(const char *path, const hc_lua_limits *lim, hc_lua **out)
{
    *out = NULL;
    hc_lua *L = NULL;
    hc_status st = hc_lua_open(lim, &L);
    if (st == HC_OK) st = hc_policy_register_steps(L);
    if (st == HC_OK) st = hc_lua_run_file(L, path);
    if (st == HC_OK && !hc_lua_has_function(L, "allocate"))
        st = hc_error(HC_E_SCRIPT, "rank policy %s defines no function allocate(budget, layers)", path);
    else if (st != HC_OK) hc_error_context(st, "rank policy: ");
    if (st != HC_OK) {
        hc_lua_close(L);
        return st;
    }
    *out = L;
    return HC_OK;
}

typedef struct policy_args {
    const hc_policy_budget *budget;
    const hc_policy_layer *layers;
    int n;
} policy_args;

static void set_array(lua_State *S, const char *key, const float *v, int n)
{
    lua_createtable(S, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(S, v ? v[i] : 0);
        lua_rawseti(S, -2, i + 1);
    }
    lua_setfield(S, -2, key);
}

/* Pushes budget and layers (run in protected mode: the tables count against the memory limit). */
static int push_args(lua_State *S)
{
    const policy_args *a = lua_touserdata(S, 1);
    lua_createtable(S, 0, 3);
    hc_lua_set_int(S, "bytes", (lua_Integer)a->budget->bytes);
    hc_lua_set_num(S, "percent", a->budget->percent);
    hc_lua_set_int(S, "backbone_bytes", (lua_Integer)a->budget->backbone_bytes);
    lua_createtable(S, a->n, 0);
    for (int i = 0; i < a->n; i++) {
        const hc_policy_layer *l = &a->layers[i];
        lua_createtable(S, 0, 12);
        hc_lua_set_str(S, "name", l->name);
        hc_lua_set_str(S, "kind", l->kind);
        hc_lua_set_int(S, "layer", l->layer);
        hc_lua_set_int(S, "in", (lua_Integer)l->in);
        hc_lua_set_int(S, "out", (lua_Integer)l->out);
        hc_lua_set_int(S, "rank_max", l->rank_max);
        hc_lua_set_int(S, "bytes_per_rank", (lua_Integer)l->bytes_per_rank);
        hc_lua_set_int(S, "flops_per_rank", (lua_Integer)l->flops_per_rank);
        set_array(S, "spectrum", l->spectrum, l->rank_max);
        set_array(S, "gain", l->gain, l->rank_max);
        hc_lua_set_num(S, "energy", l->energy);
        hc_lua_set_num(S, "signal", l->signal);
        if (l->loss_measured) hc_lua_set_num(S, "loss", l->loss); /* compress --sens-tokens */
        if (l->is_expert) { /* MoE: the expert and how often calibration routed to it */
            hc_lua_set_int(S, "expert", l->expert);
            if (l->routing_frequency >= 0) hc_lua_set_num(S, "routing_frequency", l->routing_frequency);
        }
        lua_rawseti(S, -2, i + 1);
    }
    return 2;
}

/* One rank value (at the top of S) for layer l, checked. */
static hc_status check_rank(lua_State *S, const char *script, const hc_policy_layer *l, int *rank)
{
    int t = lua_type(S, -1);
    if (t != LUA_TNUMBER)
        return hc_error(HC_E_SCRIPT, "rank policy %s: the rank of %s is a %s, not an integer", script, l->name, lua_typename(S, t));
    lua_Integer v;
    if (lua_isinteger(S, -1)) v = lua_tointeger(S, -1);
    else {
        lua_Number x = lua_tonumber(S, -1);
        if (!isfinite(x) || x != floor(x) || fabs(x) > 1e15)
            return hc_error(HC_E_SCRIPT, "rank policy %s: the rank of %s is %g, not an integer", script, l->name, (double)x);
        v = (lua_Integer)x;
    }
    if (v < 0) return hc_error(HC_E_SCRIPT, "rank policy %s: the rank of %s is %lld, below 0", script, l->name, (long long)v);
    if (v > l->rank_max)
        return hc_error(HC_E_SCRIPT, "rank policy %s: the rank of %s is %lld, above its rank_max %d", script, l->name, (long long)v,
                        l->rank_max);
    *rank = (int)v;
    return HC_OK;
}

/* The answer at the top of S: an array of n ranks, or a table layer name -> rank. Reads with raw
 * access only (no metamethods, no allocation). */
static hc_status check_answer(lua_State *S, const char *script, const hc_policy_budget *b, const hc_policy_layer *layers, int n,
                              int *ranks, char *seen)
{
    if (lua_type(S, -1) != LUA_TTABLE)
        return hc_error(HC_E_SCRIPT, "rank policy %s: allocate() returned a %s, not a table of ranks", script, luaL_typename(S, -1));
    int by_pos = 0, by_name = 0;
    hc_status st = HC_OK;
    lua_pushnil(S);
    while (st == HC_OK && lua_next(S, -2)) {
        int kt = lua_type(S, -2), idx = -1;
        if (kt == LUA_TNUMBER) {
            lua_Integer k = lua_isinteger(S, -2) ? lua_tointeger(S, -2) : 0;
            if (k < 1 || k > n) {
                double kv = lua_tonumber(S, -2);
                st = hc_error(HC_E_SCRIPT, "rank policy %s: returned a rank at position %g, outside 1..%d (there are %d layers)", script, kv,
                              n, n);
            } else idx = (int)k - 1;
            by_pos = 1;
        } else if (kt == LUA_TSTRING) {
            const char *name = lua_tostring(S, -2);
            for (int i = 0; i < n && idx < 0; i++)
                if (!strcmp(layers[i].name, name)) idx = i;
            if (idx < 0) st = hc_error(HC_E_SCRIPT, "rank policy %s: returned a rank for '%s', which names no layer", script, name);
            by_name = 1;
        } else {
            st = hc_error(HC_E_SCRIPT, "rank policy %s: the answer has a %s key; expected positions 1..%d or layer names", script,
                          lua_typename(S, kt), n);
        }
        if (st == HC_OK && by_pos && by_name)
            st = hc_error(HC_E_SCRIPT, "rank policy %s: the answer mixes positions and layer names", script);
        if (st == HC_OK) {
            st = check_rank(S, script, &layers[idx], &ranks[idx]);
            seen[idx] = 1;
        }
        lua_pop(S, 1);
    }
    if (st != HC_OK) {
        lua_pop(S, 1); /* the key lua_next left */
        return st;
    }
    int given = 0;
    for (int i = 0; i < n; i++) given += seen[i];
    for (int i = 0; i < n; i++) {
        if (seen[i]) continue;
        if (by_name) return hc_error(HC_E_SCRIPT, "rank policy %s: the answer gives no rank for layer %s", script, layers[i].name);
        return hc_error(HC_E_SCRIPT, "rank policy %s: returned %d ranks for %d layers (none for layer %d, %s)", script, given, n, i + 1,
                        layers[i].name);
    }
    uint64_t bytes = 0, worst = 0;
    int wi = 0;
    for (int i = 0; i < n; i++) {
        uint64_t lb = (uint64_t)ranks[i] * layers[i].bytes_per_rank;
        bytes += lb;
        if (lb > worst) {
            worst = lb;
            wi = i;
        }
    }
    if (bytes > b->bytes) {
        double pct = b->backbone_bytes ? 100.0 * (double)bytes / (double)b->backbone_bytes : 0;
        return hc_error(HC_E_SCRIPT,
                        "rank policy %s: the ranks take %llu bytes (%.2f%% of the backbone), above the budget of %llu bytes (%.2f%%); "
                        "the largest branch is %s at rank %d (%llu bytes)",
                        script, (unsigned long long)bytes, pct, (unsigned long long)b->bytes, b->percent, layers[wi].name, ranks[wi],
                        (unsigned long long)worst);
    }
    return HC_OK;
}

hc_status hc_policy_allocate(hc_lua *L, const char *script, const hc_policy_budget *budget, const hc_policy_layer *layers, int n,
                             int *ranks)
{
    if (!L || n < 0) return hc_error(HC_E_ARG, "rank policy: no script loaded");
    lua_State *S = hc_lua_state(L);
    int top = lua_gettop(S);
    policy_args a = { budget, layers, n };
    hc_status st = hc_lua_pcall_c(L, push_args, &a, 2);
    if (st != HC_OK) return hc_error_context(st, "rank policy %s: passing %d layers: ", script, n);
    if ((st = hc_lua_call(L, "allocate", 2, 1)) != HC_OK) return hc_error_context(st, "rank policy: ");
    int *tmp = calloc((size_t)(n > 0 ? n : 1), sizeof *tmp);
    char *seen = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!tmp || !seen) st = hc_error(HC_E_NOMEM, "rank policy: out of memory");
    if (st == HC_OK) st = check_answer(S, script, budget, layers, n, tmp, seen);
    if (st == HC_OK) memcpy(ranks, tmp, (size_t)n * sizeof *ranks);
    free(tmp);
    free(seen);
    lua_settop(S, top);
    return st;
}
