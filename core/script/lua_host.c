/* lua_host.c: the Lua sandbox (after Redis' script_lua.c): a curated global table, a counting
 * allocator with a hard limit, an instruction and wall-clock hook, and errors as "file:line" text. */
#include "lua_host.h"

#include "clock.h"
#include "lua_libs.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every chunk and call runs in a worker thread (a coroutine of the main state) rather than on the
 * main state itself: when it fails, its call stack is not unwound, so the error can be located
 * even for errors that carry no position (out of memory, error objects that are not strings).
 * After a failure the worker is replaced: a thread that died inside a hook keeps hooks disabled. */
struct hc_lua {
    lua_State *L;               /* main state: arguments, results, globals */
    lua_State *co;              /* worker thread, NULL until (re)created */
    int co_ref;                 /* its anchor in the registry */
    size_t used, max_memory;
    int mem_refused;            /* the allocator refused a request since the last reset */
    uint64_t max_instructions, count;
    uint64_t max_ns, deadline;  /* wall-clock limit per run or call, and its end (hc_now_ns) */
    uint64_t unclocked;         /* units charged by C code since the clock was last read */
    int hook_every;             /* instructions between two hook calls */
    char chunk[256];            /* the last chunk loaded, for messages */
    const char *calling;        /* the global function hc_lua_call runs, for the call stack */
};

/* Globals that a script might look for but that the sandbox leaves out on purpose. */
static const char *const removed_globals[] = {
    "io", "os", "package", "require", "debug", "load", "loadfile", "dofile", "loadstring",
    "coroutine", "module", "setfenv", "getfenv", "newproxy", NULL
};

/* ---- limits ---- */

static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    hc_lua *h = ud;
    size_t old = ptr ? osize : 0; /* with ptr NULL, osize is the kind of object, not a size */
    if (nsize == 0) {
        free(ptr);
        h->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > h->max_memory - h->used) {
        h->mem_refused = 1;
        return NULL; /* Lua collects garbage, retries once, then raises a memory error */
    }
    void *p = realloc(ptr, nsize);
    if (!p) return nsize <= old ? ptr : NULL; /* Lua assumes shrinking never fails */
    h->used = h->used - old + nsize;
    return p;
}

static hc_lua *host_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

/* Which limit the current run or call has passed: 0 none, 1 instructions, 2 time. */
static int limit_passed(const hc_lua *h)
{
    if (h->count >= h->max_instructions) return 1;
    return hc_now_ns() >= h->deadline ? 2 : 0;
}

/* The limit's text, "instruction limit of N exceeded (endless loop?)" or the time's. */
static const char *limit_text(lua_State *L, const hc_lua *h, int which)
{
    if (which == 1) return lua_pushfstring(L, "instruction limit of %I exceeded (endless loop?)", (lua_Integer)h->max_instructions);
    return lua_pushfstring(L, "time limit of %I ms exceeded (endless loop?)", (lua_Integer)(h->max_ns / 1000000));
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    hc_lua *h = host_of(L);
    h->count += (uint64_t)h->hook_every;
    int which = limit_passed(h);
    if (!which) return;
    /* from now on the hook runs at every instruction and raises again each time, so that a
       script cannot pcall its way past the limit: the first instruction outside the pcall fails */
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: ", ar->short_src, ar->currentline);
    limit_text(L, h, which);
    lua_concat(L, 2);
    lua_error(L);
}

void hc_lua_charge(lua_State *S, uint64_t units)
{
    hc_lua *h = host_of(S);
    h->count = units > UINT64_MAX - h->count ? UINT64_MAX : h->count + units;
    h->unclocked += units;
    int which = 0;
    if (h->count >= h->max_instructions) which = 1;
    else if (h->unclocked >= 1024) {
        /* a large charge is work about to be done (a stock function's loop, lua_guard.c): at 1 ns a
           unit at the least, it must also end before the deadline */
        h->unclocked = 0;
        uint64_t now = hc_now_ns();
        if (now >= h->deadline || units > h->deadline - now) which = 2;
    }
    if (!which) return;
    lua_sethook(S, count_hook, LUA_MASKCOUNT, 1); /* as the hook does: every later instruction fails too */
    limit_text(S, h, which);
    lua_error(S); /* no position here: the host locates the script's line that called into C */
}

size_t hc_lua_memory_limit(lua_State *S) { return host_of(S)->max_memory; }

static void reset_budget(hc_lua *h)
{
    h->count = 0;
    h->unclocked = 0;
    h->deadline = hc_now_ns() + h->max_ns;
    h->mem_refused = 0;
    if (h->L) lua_sethook(h->L, count_hook, LUA_MASKCOUNT, h->hook_every);
}

/* ---- the sandboxed library ---- */

static int sandbox_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *k = lua_tostring(L, 2);
        for (int i = 0; removed_globals[i]; i++)
            if (!strcmp(k, removed_globals[i]))
                return luaL_error(L, "'%s' is not available in the hcinfer Lua sandbox (no files, processes, modules or bytecode)", k);
    }
    return 0;
}

static int sandbox_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (!strcmp(opt, "count")) {
        lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) + (lua_Number)lua_gc(L, LUA_GCCOUNTB) / 1024.0);
        return 1;
    }
    if (!strcmp(opt, "collect")) {
        lua_gc(L, LUA_GCCOLLECT);
        lua_pushinteger(L, 0);
        return 1;
    }
    if (!strcmp(opt, "step")) {
        lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, (int)luaL_optinteger(L, 2, 0)));
        return 1;
    }
    return luaL_error(L, "collectgarbage('%s') is not allowed in the sandbox (only count, collect, step)", opt);
}

/* setmetatable without finalizers: Lua runs __gc with debug hooks off, so a looping finalizer
 * would escape the instruction limit. An object is only finalized when its metatable had __gc
 * when it was set, so refusing it here is enough. */
static int sandbox_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) return luaL_error(L, "cannot change a protected metatable");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "metatables with __gc are not allowed in the sandbox (finalizers would run without the instruction limit)");
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int sandbox_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "lua: ");
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    fputs(lua_tostring(L, -1), stderr);
    return 0;
}

static void set_global_nil(lua_State *L, const char *name)
{
    lua_pushnil(L);
    lua_setglobal(L, name);
}

/* The worker thread, created (again) in protected mode: the old one is released first. */
static int renew_worker(lua_State *L)
{
    hc_lua *h = lua_touserdata(L, 1);
    if (h->co_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, h->co_ref);
    h->co_ref = LUA_NOREF;
    h->co = NULL;
    lua_State *co = lua_newthread(L);
    lua_sethook(co, count_hook, LUA_MASKCOUNT, h->hook_every);
    h->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    h->co = co;
    return 0;
}

static int open_sandbox(lua_State *L)
{
    hc_lua *h = lua_touserdata(L, 1);
    static const struct { const char *name; lua_CFunction open; } libs[] = {
        { LUA_GNAME, luaopen_base }, { LUA_STRLIBNAME, luaopen_string },
        { LUA_TABLIBNAME, luaopen_table }, { LUA_MATHLIBNAME, luaopen_math },
    };
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].open, 1);
        lua_pop(L, 1);
    }
    set_global_nil(L, "dofile");
    set_global_nil(L, "loadfile");
    set_global_nil(L, "load");
    set_global_nil(L, "warn");
    lua_register(L, "collectgarbage", sandbox_collectgarbage);
    lua_register(L, "print", sandbox_print);
    lua_register(L, "setmetatable", sandbox_setmetatable);
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump"); /* bytecode is never loaded, so never produced either */
    /* loops in C that a script could make endless are charged to the budget: the pattern
       functions are the sandbox's own, rep and the table library are guarded (lua_libs.h) */
    hc_lua_set_patterns(L);
    hc_lua_guard_string(L);
    lua_pop(L, 1);
    lua_getglobal(L, LUA_TABLIBNAME);
    hc_lua_guard_table(L);
    lua_pop(L, 1);
    /* a fixed seed: the same script gives the same answer every run */
    lua_getglobal(L, LUA_MATHLIBNAME);
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, 0x2545F491);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    /* reading a removed global says why it is absent */
    lua_pushglobaltable(L);
    lua_newtable(L);
    lua_pushcfunction(L, sandbox_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    /* finalizers and metamethods that run on the main state are counted too */
    lua_sethook(L, count_hook, LUA_MASKCOUNT, h->hook_every);
    lua_pushcfunction(L, renew_worker);
    lua_pushlightuserdata(L, h);
    lua_call(L, 1, 0);
    return 0;
}

static int panic(lua_State *L)
{
    fprintf(stderr, "hcinfer: unprotected Lua error: %s\n", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    return 0;
}

/* ---- errors ---- */

/* 1 when the message already begins with a position "where:123:". */
static int has_position(const char *msg)
{
    for (const char *p = msg; *p && *p != '\n'; p++) {
        if (*p != ':' || p == msg) continue;
        const char *q = p + 1;
        while (*q >= '0' && *q <= '9') q++;
        if (q > p + 1 && *q == ':') return 1;
    }
    return 0;
}

/* The error at the top of th (status != LUA_OK) as HC_E_SCRIPT; th's stack, when not unwound,
 * gives the position and the call stack. Nothing here allocates Lua memory. */
static hc_status script_error(hc_lua *h, lua_State *th, int status)
{
    char msg[640], tmp[sizeof msg];
    /* a memory error re-raised as a plain error (by a loader, or by a script's own pcall) */
    if (status == LUA_ERRRUN && h->mem_refused && lua_type(th, -1) == LUA_TSTRING && !strcmp(lua_tostring(th, -1), "not enough memory"))
        status = LUA_ERRMEM;
    if (status == LUA_ERRMEM) {
        if (h->mem_refused) snprintf(msg, sizeof msg, "memory limit of %.4g MiB exceeded", (double)h->max_memory / 1048576.0);
        else snprintf(msg, sizeof msg, "out of memory");
    } else if (lua_type(th, -1) == LUA_TSTRING) {
        snprintf(msg, sizeof msg, "%s", lua_tostring(th, -1));
    } else if (lua_type(th, -1) == LUA_TNUMBER) {
        snprintf(msg, sizeof msg, "%.14g", (double)lua_tonumber(th, -1));
    } else {
        snprintf(msg, sizeof msg, "(error object is a %s value)", luaL_typename(th, -1));
    }
    char trace[384] = "";
    size_t len = 0;
    int located = has_position(msg), frames = 0;
    lua_Debug ar;
    for (int level = 0; frames < 6 && lua_getstack(th, level, &ar); level++) {
        if (!lua_getinfo(th, "Sln", &ar)) break;
        if (!located && ar.currentline > 0) {
            snprintf(tmp, sizeof tmp, "%.80s:%d: %.540s", ar.short_src, ar.currentline, msg);
            memcpy(msg, tmp, sizeof msg);
            located = 1;
        }
        /* the function hc_lua_call called is the bottom frame: Lua knows no name for it */
        lua_Debug below;
        const char *name = ar.name;
        if (!name && h->calling && *ar.what == 'L' && !lua_getstack(th, level + 1, &below)) name = h->calling;
        char fname[160];
        if (name) snprintf(fname, sizeof fname, "function '%.100s'", name);
        else if (*ar.what == 'm') snprintf(fname, sizeof fname, "main chunk");
        else if (*ar.what == 'L') snprintf(fname, sizeof fname, "function <%.100s:%d>", ar.short_src, ar.linedefined);
        else snprintf(fname, sizeof fname, "?");
        int n;
        if (ar.currentline > 0) n = snprintf(trace + len, sizeof trace - len, "\n  %s:%d: in %s", ar.short_src, ar.currentline, fname);
        else n = snprintf(trace + len, sizeof trace - len, "\n  [C]: in %s", fname);
        if (n < 0 || (size_t)n >= sizeof trace - len) break;
        len += (size_t)n;
        frames++;
    }
    lua_pop(th, 1); /* the error object (for LUA_ERRMEM Lua's preallocated message) */
    /* a one-frame trace repeats the position: only deeper stacks are worth printing */
    return hc_error(HC_E_SCRIPT, "%s%s", msg, frames > 1 ? trace : "");
}

/* Replaces the worker after a failure (its stack is released; hooks are set on the new one). */
static void drop_worker(hc_lua *h)
{
    if (h->co) {
        lua_resetthread(h->co);
        lua_settop(h->co, 0);
    }
    lua_State *L = h->L;
    if (!lua_checkstack(L, 2)) return;
    lua_pushcfunction(L, renew_worker);
    lua_pushlightuserdata(L, h);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1); /* tried again before the next run */
}

/* Runs the function under nargs arguments at the top of the main stack in the worker. */
static hc_status execute(hc_lua *h, int nargs, int nresults)
{
    lua_State *L = h->L;
    if (!h->co) {
        drop_worker(h);
        if (!h->co) {
            lua_pop(L, nargs + 1);
            return hc_error(HC_E_SCRIPT, "%s: memory limit of %.4g MiB reached before the call", h->chunk,
                            (double)h->max_memory / 1048576.0);
        }
    }
    lua_State *co = h->co;
    if (!lua_checkstack(co, nargs + 1 + LUA_MINSTACK)) {
        lua_pop(L, nargs + 1);
        return hc_error(HC_E_SCRIPT, "%s: no stack space for %d arguments", h->chunk, nargs);
    }
    lua_xmove(L, co, nargs + 1);
    reset_budget(h);
    int nres = 0;
    int status = lua_resume(co, L, nargs, &nres);
    if (status == LUA_OK) {
        if (nresults == LUA_MULTRET) nresults = nres;
        if (nres > nresults) lua_pop(co, nres - nresults);
        int moved = nres < nresults ? nres : nresults;
        if (!lua_checkstack(L, nresults + LUA_MINSTACK)) {
            lua_settop(co, 0);
            return hc_error(HC_E_SCRIPT, "%s: no stack space for %d results", h->chunk, nresults);
        }
        lua_xmove(co, L, moved);
        for (int i = moved; i < nresults; i++) lua_pushnil(L);
        lua_settop(co, 0);
        return HC_OK;
    }
    hc_status st;
    if (status == LUA_YIELD) st = hc_error(HC_E_SCRIPT, "%s: the script yielded, which the host does not resume", h->chunk);
    else st = script_error(h, co, status);
    drop_worker(h);
    return st;
}

/* ---- the API ---- */

hc_status hc_lua_open(const hc_lua_limits *lim, hc_lua **out)
{
    *out = NULL;
    hc_lua *h = calloc(1, sizeof *h);
    if (!h) return hc_error(HC_E_NOMEM, "lua: out of memory");
    h->max_instructions = lim && lim->max_instructions ? lim->max_instructions : HC_LUA_DEFAULT_INSTRUCTIONS;
    h->max_memory = lim && lim->max_memory ? lim->max_memory : HC_LUA_DEFAULT_MEMORY;
    h->max_ns = (uint64_t)(lim && lim->max_ms ? lim->max_ms : HC_LUA_DEFAULT_MS) * 1000000u;
    h->deadline = UINT64_MAX;
    h->hook_every = h->max_instructions < 1000 ? (int)h->max_instructions : 1000;
    h->co_ref = LUA_NOREF;
    snprintf(h->chunk, sizeof h->chunk, "lua");
    h->L = lua_newstate(sandbox_alloc, h);
    if (!h->L) {
        free(h);
        return hc_error(HC_E_NOMEM, "lua: cannot create a state within %zu bytes", lim && lim->max_memory ? lim->max_memory : HC_LUA_DEFAULT_MEMORY);
    }
    lua_atpanic(h->L, panic);
    lua_pushcfunction(h->L, open_sandbox);
    lua_pushlightuserdata(h->L, h);
    int status = lua_pcall(h->L, 1, 0, 0);
    if (status != LUA_OK) {
        hc_status st = script_error(h, h->L, status);
        hc_error_context(st, "lua: opening the sandbox: ");
        hc_lua_close(h);
        return st;
    }
    *out = h;
    return HC_OK;
}

void hc_lua_close(hc_lua *h)
{
    if (!h) return;
    reset_budget(h); /* finalizers run on close get a full budget */
    if (h->L) lua_close(h->L);
    free(h);
}

lua_State *hc_lua_state(hc_lua *h) { return h->L; }

size_t hc_lua_memory(const hc_lua *h) { return h->used; }

uint64_t hc_lua_instructions(const hc_lua *h) { return h->count; }

typedef struct load_req {
    const char *path;       /* a file, or */
    const char *chunkname;  /* the name and text of a string chunk */
    const char *code;
    int status;             /* luaL_load* status */
} load_req;

static int load_chunk(lua_State *L)
{
    load_req *r = lua_touserdata(L, 1);
    if (r->path) r->status = luaL_loadfilex(L, r->path, "t");
    else r->status = luaL_loadbufferx(L, r->code, strlen(r->code), r->chunkname, "t");
    if (r->status != LUA_OK) return lua_error(L);
    return 1;
}

static hc_status load_and_run(hc_lua *h, load_req *r)
{
    lua_State *L = h->L;
    if (!lua_checkstack(L, 3)) return hc_error(HC_E_SCRIPT, "lua: no stack space");
    reset_budget(h);
    lua_pushcfunction(L, load_chunk);
    lua_pushlightuserdata(L, r);
    int status = lua_pcall(L, 1, 1, 0);
    if (status != LUA_OK) {
        if (r->status == LUA_ERRFILE) {
            hc_error(HC_E_IO, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
            return HC_E_IO;
        }
        return script_error(h, L, status);
    }
    return execute(h, 0, 0);
}

hc_status hc_lua_run_file(hc_lua *h, const char *path)
{
    if (!path) return hc_error(HC_E_ARG, "lua: no script file given");
    snprintf(h->chunk, sizeof h->chunk, "%s", path);
    load_req r = { .path = path };
    return load_and_run(h, &r);
}

hc_status hc_lua_run_string(hc_lua *h, const char *name, const char *code)
{
    if (!code) return hc_error(HC_E_ARG, "lua: no code given");
    char chunkname[256];
    snprintf(chunkname, sizeof chunkname, "=%s", name ? name : "string");
    snprintf(h->chunk, sizeof h->chunk, "%s", chunkname + 1);
    load_req r = { .chunkname = chunkname, .code = code };
    return load_and_run(h, &r);
}

/* The global `name` (raw: without the sandbox's __index), pushed. */
static int get_global(lua_State *L)
{
    const char *name = lua_touserdata(L, 1);
    lua_pushglobaltable(L);
    lua_pushstring(L, name);
    lua_rawget(L, -2);
    return 1;
}

int hc_lua_has_function(hc_lua *h, const char *fn)
{
    lua_State *L = h->L;
    if (!fn || !lua_checkstack(L, 3)) return 0;
    lua_pushcfunction(L, get_global);
    lua_pushlightuserdata(L, (void *)fn);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return 0;
    }
    int yes = lua_type(L, -1) == LUA_TFUNCTION;
    lua_pop(L, 1);
    return yes;
}

hc_status hc_lua_call(hc_lua *h, const char *fn, int nargs, int nresults)
{
    lua_State *L = h->L;
    if (nargs < 0 || lua_gettop(L) < nargs)
        return hc_error(HC_E_ARG, "lua: calling %s with %d arguments but the stack holds %d", fn ? fn : "?", nargs, lua_gettop(L));
    if (!fn || (nresults < 0 && nresults != LUA_MULTRET)) {
        lua_pop(L, nargs);
        return hc_error(HC_E_ARG, "lua: %s", fn ? "bad result count" : "no function name given");
    }
    if (!lua_checkstack(L, 3)) {
        lua_pop(L, nargs);
        return hc_error(HC_E_SCRIPT, "lua: no stack space");
    }
    reset_budget(h);
    lua_pushcfunction(L, get_global);
    lua_pushlightuserdata(L, (void *)fn);
    int status = lua_pcall(L, 1, 1, 0);
    if (status != LUA_OK) {
        hc_status st = script_error(h, L, status);
        lua_pop(L, nargs);
        return st;
    }
    if (lua_type(L, -1) != LUA_TFUNCTION) {
        int t = lua_type(L, -1);
        lua_pop(L, nargs + 1);
        return hc_error(HC_E_SCRIPT, "%s defines no function %s()%s%s", h->chunk, fn, t == LUA_TNIL ? "" : ": it is a ",
                        t == LUA_TNIL ? "" : lua_typename(L, t));
    }
    lua_insert(L, -(nargs + 1));
    h->calling = fn;
    hc_status st = execute(h, nargs, nresults);
    h->calling = NULL;
    return st;
}

typedef struct pcall_req {
    lua_CFunction fn;
    void *ud;
} pcall_req;

hc_status hc_lua_pcall_c(hc_lua *h, lua_CFunction fn, void *ud, int nresults)
{
    lua_State *L = h->L;
    if (!lua_checkstack(L, 2 + (nresults > 0 ? nresults : 0))) return hc_error(HC_E_SCRIPT, "lua: no stack space");
    reset_budget(h);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    int status = lua_pcall(L, 1, nresults, 0);
    if (status != LUA_OK) return script_error(h, L, status);
    return HC_OK;
}

typedef struct register_req {
    const char *name;
    lua_CFunction fn;
    void *ud;
} register_req;

static int register_fn(lua_State *L)
{
    register_req *r = lua_touserdata(L, 1);
    lua_pushlightuserdata(L, r->ud);
    lua_pushcclosure(L, r->fn, 1);
    lua_setglobal(L, r->name);
    return 0;
}

hc_status hc_lua_register(hc_lua *h, const char *name, lua_CFunction fn, void *ud)
{
    if (!name || !fn) return hc_error(HC_E_ARG, "lua: registering needs a name and a function");
    register_req r = { name, fn, ud };
    return hc_lua_pcall_c(h, register_fn, &r, 0);
}

void hc_lua_set_int(lua_State *S, const char *key, lua_Integer v)
{
    lua_pushinteger(S, v);
    lua_setfield(S, -2, key);
}

void hc_lua_set_num(lua_State *S, const char *key, lua_Number v)
{
    lua_pushnumber(S, v);
    lua_setfield(S, -2, key);
}

void hc_lua_set_str(lua_State *S, const char *key, const char *v)
{
    lua_pushstring(S, v);
    lua_setfield(S, -2, key);
}

void hc_lua_set_bool(lua_State *S, const char *key, int v)
{
    lua_pushboolean(S, v);
    lua_setfield(S, -2, key);
}
