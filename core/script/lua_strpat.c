/* lua_strpat.c: string.find, match, gmatch and gsub for the sandbox, on the matcher of lua_pattern.c:
 * Lua 5.4's arguments and results (reference manual, 6.4), every step charged to the run's budget. */
#include "lua_libs.h"
#include "lua_pattern.h"

#include <lauxlib.h>
#include <string.h>

/* The 0-based offset where a search starts, from its 1-based init (negative: from the end); it
 * may be past the end, which callers check. */
static size_t start_offset(lua_State *L, int arg, size_t len)
{
    lua_Integer init = luaL_optinteger(L, arg, 1);
    if (init > 0) return (size_t)init - 1;
    if (init == 0 || init < -(lua_Integer)len) return 0;
    return len - (size_t)(-init);
}

/* Whether the pattern uses none of the chars that make a pattern more than a plain string (read
 * whole, so charged by its length). */
static int is_plain(hc_pat *m, const char *p, size_t n)
{
    hc_pat_bill(m, n / 64);
    for (size_t i = 0; i < n; i++) {
        switch (p[i]) {
        case '^': case '$': case '*': case '+': case '?': case '.': case '(': case '[': case '%': case '-': return 0;
        default: break;
        }
    }
    return 1;
}

/* The first occurrence of p[0 .. n) in s[at .. len), every byte looked at charged: its offset, or -1. */
static ptrdiff_t plain_find(hc_pat *m, const char *s, size_t len, size_t at, const char *p, size_t n)
{
    if (n == 0) return (ptrdiff_t)at;
    if (n > len - at) return -1;
    size_t last = len - n; /* the last offset where p can start */
    while (at <= last) {
        const char *c = memchr(s + at, p[0], last - at + 1);
        if (!c) {
            hc_pat_bill(m, (last - at + 1) / 64 + 1);
            return -1;
        }
        size_t found = (size_t)(c - s);
        hc_pat_bill(m, (found - at) / 64 + 1);
        size_t k = 1;
        while (k < n) { /* compared in chunks, each charged */
            size_t chunk = n - k < 64 ? n - k : 64;
            hc_pat_bill(m, 1);
            if (memcmp(s + found + k, p + k, chunk) != 0) break;
            k += chunk;
        }
        if (k >= n) return (ptrdiff_t)found;
        at = found + 1;
    }
    return -1;
}

/* find (with indices) and match (captures only). */
static int search(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t at = start_offset(L, 3, ls);
    if (at > ls) {
        luaL_pushfail(L);
        return 1;
    }
    hc_pat m;
    hc_pat_init(&m, L, s, ls, p, lp);
    if (find && (lua_toboolean(L, 4) || is_plain(&m, p, lp))) {
        ptrdiff_t where = plain_find(&m, s, ls, at, p, lp);
        hc_pat_pay(&m);
        if (where < 0) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)where + 1);
        lua_pushinteger(L, (lua_Integer)((size_t)where + lp));
        return 2;
    }
    size_t p0 = lp > 0 && p[0] == '^'; /* anchored: only at the start */
    for (;;) {
        ptrdiff_t end = hc_pat_match(&m, at, p0);
        if (end >= 0) {
            hc_pat_pay(&m);
            if (!find) return hc_pat_push_captures(&m, at, (size_t)end, 1);
            lua_pushinteger(L, (lua_Integer)at + 1);
            lua_pushinteger(L, (lua_Integer)end);
            return 2 + hc_pat_push_captures(&m, 0, 0, 0);
        }
        if (p0 || at >= ls) break;
        at++;
    }
    hc_pat_pay(&m);
    luaL_pushfail(L);
    return 1;
}

static int str_find(lua_State *L) { return search(L, 1); }

static int str_match(lua_State *L) { return search(L, 0); }

/* gmatch's iterator state: where the next search starts, and where the last match ended (a match
 * ending there again, empty after it, is skipped). */
typedef struct gmatch_state {
    size_t at;
    size_t last;
    int matched;
} gmatch_state;

/* The iterator; upvalues: the subject, the pattern, the state. */
static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    hc_pat m;
    hc_pat_init(&m, L, s, ls, p, lp);
    for (size_t at = g->at; at <= ls; at++) {
        ptrdiff_t end = hc_pat_match(&m, at, 0);
        if (end >= 0 && !(g->matched && (size_t)end == g->last)) {
            g->at = g->last = (size_t)end;
            g->matched = 1;
            hc_pat_pay(&m);
            return hc_pat_push_captures(&m, at, (size_t)end, 1);
        }
    }
    hc_pat_pay(&m);
    return 0;
}

static int str_gmatch(lua_State *L)
{
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t at = start_offset(L, 3, ls);
    lua_settop(L, 2); /* the subject and pattern, as strings, become upvalues */
    gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->at = at > ls ? ls + 1 : at;
    g->last = 0;
    g->matched = 0;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Appends the replacement string (argument 3) for the match [s, e): %0 the match, %1-%9 captures,
 * %% a '%'. */
static void add_string(hc_pat *m, luaL_Buffer *b, size_t s, size_t e)
{
    lua_State *L = m->L;
    size_t n;
    const char *r = lua_tolstring(L, 3, &n);
    const char *end = r + n;
    while (r < end) {
        const char *pct = memchr(r, '%', (size_t)(end - r));
        size_t plain = pct ? (size_t)(pct - r) : (size_t)(end - r);
        luaL_addlstring(b, r, plain);
        hc_pat_bill(m, plain / 64 + 1);
        if (!pct) break;
        r = pct + 1;
        if (r == end) luaL_error(L, "invalid use of '%%' in replacement string");
        if (*r == '%') {
            luaL_addchar(b, '%');
        } else if (*r == '0') {
            luaL_addlstring(b, (const char *)m->s + s, e - s);
            hc_pat_bill(m, (e - s) / 64);
        } else if (*r >= '1' && *r <= '9') {
            hc_pat_push_capture(m, *r - '1', s, e);
            luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        r++;
    }
}

/* Appends what replaces the match [s, e), per the type of argument 3. */
static void add_replacement(hc_pat *m, luaL_Buffer *b, size_t s, size_t e, int type)
{
    lua_State *L = m->L;
    if (type == LUA_TSTRING || type == LUA_TNUMBER) {
        add_string(m, b, s, e);
        return;
    }
    if (type == LUA_TTABLE) {
        hc_pat_push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else { /* a function */
        lua_pushvalue(L, 3);
        int n = hc_pat_push_captures(m, s, e, 1);
        lua_call(L, n, 1);
    }
    if (!lua_toboolean(L, -1)) { /* false or nil: the match stays */
        lua_pop(L, 1);
        luaL_addlstring(b, (const char *)m->s + s, e - s);
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int str_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int type = lua_type(L, 3);
    lua_Integer most = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION || type == LUA_TTABLE, 3,
                     "string/function/table");
    size_t p0 = lp > 0 && p[0] == '^';
    hc_pat m;
    hc_pat_init(&m, L, s, ls, p, lp);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t at = 0, last = 0;
    int matched = 0;
    lua_Integer n = 0;
    while (n < most) {
        ptrdiff_t end = hc_pat_match(&m, at, p0);
        if (end >= 0 && !(matched && (size_t)end == last)) {
            n++;
            add_replacement(&m, &b, at, (size_t)end, type);
            at = last = (size_t)end;
            matched = 1;
        } else if (at < ls) {
            luaL_addchar(&b, s[at++]);
        } else {
            break;
        }
        if (p0) break;
    }
    hc_pat_bill(&m, (ls - at) / 64);
    hc_pat_pay(&m);
    luaL_addlstring(&b, s + at, ls - at);
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

void hc_lua_set_patterns(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "find", str_find }, { "match", str_match }, { "gmatch", str_gmatch }, { "gsub", str_gsub }, { NULL, NULL },
    };
    luaL_setfuncs(L, fns, 0);
}
