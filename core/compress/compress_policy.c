/* compress_policy.c: rank policies in Lua, usable without a compressor: found by name among the
 * shipped ones, loaded in the sandbox, called with the budget and the layers, the answer checked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "compress_policy.h"
#include "lua_host.h"
#include "policy_steps.h"
#include "suffix.h"

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
    hc_lua_set_int(S, "backbone_bytes", (lua_Integer)a->budget->base_bytes);
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
        double pct = b->base_bytes ? 100.0 * (double)bytes / (double)b->base_bytes : 0;
        return hc_error(HC_E_SCRIPT,
                        "rank policy %s: the ranks take %llu bytes (%.2f%% of the budget's base), above the budget of %llu bytes (%.2f%%); "
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
