/* on_step_lua.c: a pipeline script's per-step policy call. The stats table (per linear stage with a branch: times,
 * ranks, scheduler) is built in the sandbox, on_step is called, and its answer -- per stage a
 * rank, whether the branch runs, and which scheduler drives it -- is validated in full before any
 * of it is applied; a bad answer stops the run with a message naming the script. */
#include "on_step_lua.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "lua_host.h"
#include "rank_control.h"
#include "registry.h"

typedef struct decision {
    int set_rank, rank;
    int set_branch, branch;
    int set_sched, sched;
    char sched_name[65];
} decision;

typedef struct hook_ctx {
    hc_context *c;
    int n_tok;
    decision *d;              /* per stage */
    int set_budget;
    double budget;
    char err[512];            /* a validation failure found while reading the answer */
} hook_ctx;

static const char *kind_of(const hc_stage *s)
{
    const char *dot = s->layer >= 0 ? strchr(s->name + 4, '.') : NULL;
    return dot ? dot + 1 : s->name;
}

static int push_stats(lua_State *L)
{
    hook_ctx *h = lua_touserdata(L, 1);
    hc_context *c = h->c;
    lua_createtable(L, 0, 5);
    hc_lua_set_int(L, "step", c->steps);
    hc_lua_set_int(L, "tokens", h->n_tok);
    hc_lua_set_int(L, "position", c->n_past);
    hc_lua_set_num(L, "host_budget", c->rank_control.host_budget);
    lua_newtable(L);
    int k = 0;
    for (int i = 0; i < c->n_stages; i++) {
        const hc_stage *s = &c->stages[i];
        if (!s->branch) continue;
        hc_job_times t = { 0 };
        int job = c->brt ? hc_branch_rt_job_of_stage(c->brt, i) : -1;
        if (job >= 0) hc_branch_rt_job_times(c->brt, job, &t);
        lua_createtable(L, 0, 11);
        hc_lua_set_str(L, "name", s->name);
        hc_lua_set_str(L, "kind", kind_of(s));
        hc_lua_set_int(L, "layer", s->layer);
        hc_lua_set_num(L, "device_ms", s->device_ns / 1e6);
        hc_lua_set_num(L, "host_ms", t.host_ns / 1e6);
        hc_lua_set_num(L, "wait_ms", t.wait_ns / 1e6);
        hc_lua_set_num(L, "window_ms", t.window_ns / 1e6);
        hc_lua_set_int(L, "rank", s->active_rank);
        hc_lua_set_int(L, "rank_max", s->branch->rank);
        hc_lua_set_bool(L, "branch", s->branch_enabled);
        hc_lua_set_str(L, "sched", c->brt ? hc_branch_rt_scheduler_name(c->brt, s->sched) : "");
        lua_rawseti(L, -2, ++k);
    }
    lua_setfield(L, -2, "stages");
    return 1;
}

static int stage_by_name(const hc_context *c, const char *name)
{
    for (int i = 0; i < c->n_stages; i++)
        if (c->stages[i].branch && !strcmp(c->stages[i].name, name)) return i;
    return -1;
}

static const char answer_key = 0; /* registry slot holding on_step's answer while it is read */

/* Reads the stashed answer into h->d; a bad answer fills h->err (no Lua error). */
static int read_answer(lua_State *L)
{
    hook_ctx *h = lua_touserdata(L, 1);
    hc_context *c = h->c;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &answer_key);
    if (lua_isnil(L, -1)) return 0;
    if (!lua_istable(L, -1)) {
        snprintf(h->err, sizeof h->err, "on_step returned a %s; expected nil or a table", luaL_typename(L, -1));
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(h->err, sizeof h->err, "on_step's answer has a key of type %s; keys are stage names or host_budget", luaL_typename(L, -2));
            return 0;
        }
        const char *key = lua_tostring(L, -2);
        if (!strcmp(key, "host_budget")) {
            if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) < 0 || lua_tonumber(L, -1) > 100) {
                snprintf(h->err, sizeof h->err, "host_budget must be a number from 0 to 100");
                return 0;
            }
            h->set_budget = 1;
            h->budget = lua_tonumber(L, -1);
            lua_pop(L, 1);
            continue;
        }
        int i = stage_by_name(c, key);
        if (i < 0) {
            snprintf(h->err, sizeof h->err, "on_step names '%s', which is not a stage with a branch", key);
            return 0;
        }
        if (!lua_istable(L, -1)) {
            snprintf(h->err, sizeof h->err, "on_step's entry for %s must be a table {rank=, branch=, sched=}", key);
            return 0;
        }
        decision *d = &h->d[i];
        const hc_stage *s = &c->stages[i];
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            const char *f = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
            if (!strcmp(f, "rank")) {
                if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > s->branch->rank) {
                    snprintf(h->err, sizeof h->err, "%s: rank must be an integer from 0 to %d", key, s->branch->rank);
                    return 0;
                }
                d->set_rank = 1;
                d->rank = (int)lua_tointeger(L, -1);
            } else if (!strcmp(f, "branch")) {
                if (!lua_isboolean(L, -1)) {
                    snprintf(h->err, sizeof h->err, "%s: branch must be true or false", key);
                    return 0;
                }
                d->set_branch = 1;
                d->branch = lua_toboolean(L, -1);
            } else if (!strcmp(f, "sched")) {
                if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) >= sizeof d->sched_name) {
                    snprintf(h->err, sizeof h->err, "%s: sched must be a scheduler name", key);
                    return 0;
                }
                d->set_sched = 1;
                snprintf(d->sched_name, sizeof d->sched_name, "%s", lua_tostring(L, -1));
            } else {
                snprintf(h->err, sizeof h->err, "%s: unknown field '%s' (rank, branch, sched)", key, f);
                return 0;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return 0;
}

hc_status hc_on_step_lua(const hc_pipeline_script *ps, hc_context *c, int n_tok)
{
    lua_State *L = hc_lua_state(ps->lua);
    hook_ctx h = { .c = c, .n_tok = n_tok };
    if (!(h.d = calloc((size_t)c->n_stages, sizeof *h.d))) return hc_error(HC_E_NOMEM, "on_step: out of memory");
    hc_status st = hc_lua_pcall_c(ps->lua, push_stats, &h, 1);
    if (st == HC_OK) st = hc_lua_call(ps->lua, "on_step", 1, 1);
    if (st == HC_OK) {
        lua_rawsetp(L, LUA_REGISTRYINDEX, &answer_key); /* pops the answer */
        st = hc_lua_pcall_c(ps->lua, read_answer, &h, 0);
        lua_pushnil(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &answer_key);
    }
    if (st == HC_OK && h.err[0]) st = hc_error(HC_E_SCRIPT, "%s: %s (the answer was not applied)", ps->path, h.err);
    /* schedulers named by the answer must exist before anything changes */
    for (int i = 0; i < c->n_stages && st == HC_OK; i++) {
        decision *d = &h.d[i];
        if (!d->set_sched) continue;
        const hc_plugin *p = c->registry ? hc_registry_find(c->registry, HC_PLUGIN_SCHED, d->sched_name) : NULL;
        if (!p) st = hc_error(HC_E_SCRIPT, "%s: on_step asks for scheduler '%s' for %s, which is not loaded (the answer was not applied)",
                              ps->path, d->sched_name, c->stages[i].name);
        else if ((d->sched = hc_branch_rt_add_scheduler(c->brt, d->sched_name, p->desc->ops)) < 0) st = HC_E_PLUGIN;
    }
    for (int i = 0; i < c->n_stages && st == HC_OK; i++) {
        hc_stage *s = &c->stages[i];
        decision *d = &h.d[i];
        if (d->set_rank) s->active_rank = d->rank;
        if (d->set_branch) s->branch_enabled = d->branch;
        if (d->set_sched) s->sched = d->sched;
    }
    if (st == HC_OK && h.set_budget) c->rank_control.host_budget = h.budget;
    free(h.d);
    return st;
}
