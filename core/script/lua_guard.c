/* lua_guard.c: string.rep and the table library stay Lua's own functions; the sandbox calls each through
 * a closure that works out the work a call is about to do and charges it (hc_lua_charge) first. */
#include "lua_host.h"
#include "lua_libs.h"

#include <lauxlib.h>
#include <limits.h>
#include <string.h>

/* A call about to be made. Measuring it may ask for the length of argument 1: when a __len
 * metamethod answered, the stock function must get that same answer (a second call of __len
 * could say more than was charged), so the wrapper pins it for the stock function's one query. */
typedef struct call {
    lua_State *L;
    int nargs;
    int pin;          /* the length came from a __len metamethod of the table at 1 */
    lua_Integer len;
} call;

/* What a call will do, in units of hc_lua_charge: 0 when the stock function will refuse its
 * arguments before any loop (the wrapper then lets it say so). */
typedef uint64_t (*measure_fn)(call *c);

typedef struct guard {
    const char *name;
    measure_fn measure;
} guard;

/* Fields a non-table needs in its metatable to pass as a table, as the table library checks. */
enum { NEED_INDEX = 1, NEED_NEWINDEX = 2, NEED_LEN = 4 };

static int accepted(lua_State *L, int idx, int need)
{
    static const char *const fields[] = { "__index", "__newindex", "__len" };
    if (lua_type(L, idx) == LUA_TTABLE) return 1;
    if (!lua_getmetatable(L, idx)) return 0;
    int ok = 1;
    for (int k = 0; k < 3 && ok; k++) {
        if (!(need & (1 << k))) continue;
        lua_pushstring(L, fields[k]);
        ok = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ok;
}

/* The integer argument arg (its default when absent and optional): 0 when it is not one. */
static int int_arg(lua_State *L, int arg, int optional, lua_Integer dflt, lua_Integer *v)
{
    if (optional && lua_isnoneornil(L, arg)) {
        *v = dflt;
        return 1;
    }
    int ok = 0;
    *v = lua_tointegerx(L, arg, &ok);
    return ok;
}

/* The elements from..to (none when to < from), saturated. */
static uint64_t span(lua_Integer from, lua_Integer to)
{
    if (to < from) return 0;
    uint64_t d = (uint64_t)((lua_Unsigned)to - (lua_Unsigned)from);
    return d == UINT64_MAX ? d : d + 1;
}

/* #arg1 as the stock function will see it (__len called once, here). */
static lua_Integer length(call *c)
{
    lua_State *L = c->L;
    if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
        lua_pushliteral(L, "__len");
        c->pin = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 2);
    }
    c->len = luaL_len(L, 1);
    return c->len;
}

/* ---- the measures: arguments read in the order the stock functions read them ---- */

static uint64_t measure_concat(call *c) /* (t [, sep [, i [, j]]]): j - i + 1 pieces */
{
    lua_State *L = c->L;
    if (!accepted(L, 1, NEED_INDEX | NEED_LEN)) return 0;
    lua_Integer last = length(c), i, j;
    int sep = lua_type(L, 2);
    if (sep > LUA_TNIL && sep != LUA_TSTRING && sep != LUA_TNUMBER) return 1;
    if (!int_arg(L, 3, 1, 1, &i) || !int_arg(L, 4, 1, last, &j)) return 1;
    return span(i, j) + 1;
}

static uint64_t measure_insert(call *c) /* (t, [pos,] v): the elements from pos up shift */
{
    lua_State *L = c->L;
    if (!accepted(L, 1, NEED_INDEX | NEED_NEWINDEX | NEED_LEN)) return 0;
    lua_Integer e = (lua_Integer)((lua_Unsigned)length(c) + 1u), pos;
    if (c->nargs != 3 || !int_arg(L, 2, 0, 0, &pos) || pos < 1 || pos > e) return 1;
    return span(pos, e) + 1;
}

static uint64_t measure_remove(call *c) /* (t [, pos]): the elements above pos shift */
{
    lua_State *L = c->L;
    if (!accepted(L, 1, NEED_INDEX | NEED_NEWINDEX | NEED_LEN)) return 0;
    lua_Integer size = length(c), pos;
    if (!int_arg(L, 2, 1, size, &pos) || pos < 1 || pos > size) return 1;
    return span(pos, size) + 1;
}

static uint64_t measure_move(call *c) /* (a1, f, e, t [, a2]): e - f + 1 elements */
{
    lua_State *L = c->L;
    lua_Integer f, e, t;
    if (!int_arg(L, 2, 0, 0, &f) || !int_arg(L, 3, 0, 0, &e) || !int_arg(L, 4, 0, 0, &t)) return 0;
    if (!accepted(L, 1, NEED_INDEX) || !accepted(L, lua_isnoneornil(L, 5) ? 1 : 5, NEED_NEWINDEX)) return 0;
    if (e < f) return 1;
    if (f <= 0 && e >= LUA_MAXINTEGER + f) return 0; /* refused: too many elements */
    if (t > LUA_MAXINTEGER - (e - f)) return 0;      /* refused: the destination wraps around */
    return span(f, e) + 1;
}

static uint64_t measure_unpack(call *c) /* (t [, i [, j]]): j - i + 1 values */
{
    lua_State *L = c->L;
    lua_Integer i, j;
    if (!int_arg(L, 2, 1, 1, &i)) return 0;
    if (lua_isnoneornil(L, 3)) j = length(c);
    else if (!int_arg(L, 3, 0, 0, &j)) return 0;
    uint64_t n = span(i, j);
    return n > 1000000 ? 0 : n + 1; /* beyond Lua's stack: refused ("too many results") */
}

static uint64_t measure_sort(call *c) /* (t [, comp]): n log n steps (comp's own work is Lua, counted) */
{
    lua_State *L = c->L;
    if (!accepted(L, 1, NEED_INDEX | NEED_NEWINDEX | NEED_LEN)) return 0;
    lua_Integer n = length(c);
    int comp = lua_type(L, 2);
    if (n <= 1 || n >= INT_MAX || (comp > LUA_TNIL && comp != LUA_TFUNCTION)) return 1;
    uint64_t log = 1;
    while (((uint64_t)1 << log) < (uint64_t)n) log++;
    return (uint64_t)n * log;
}

static const guard table_guards[] = {
    { "concat", measure_concat }, { "insert", measure_insert }, { "move", measure_move },
    { "remove", measure_remove }, { "sort", measure_sort },     { "unpack", measure_unpack },
};

/* ---- calling the stock function ---- */

/* The __len of argument 1's metatable while pinned: puts the real one back, answers the length
 * charged. Upvalues: that length, the metatable, the real __len. */
static int pinned_len(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushliteral(L, "__len");
    lua_pushvalue(L, lua_upvalueindex(3));
    lua_rawset(L, -3);
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}

/* Raises the stock function's error again. Called from C, it named itself '?' in argument errors;
 * raised from here they name the function as the script called it, as in stock Lua. */
static int reraise(lua_State *L)
{
    static const char head[] = "bad argument #", mid[] = " to '?' (";
    size_t n = 0;
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (msg && n > sizeof head && !memcmp(msg, head, sizeof head - 1) && msg[n - 1] == ')') {
        const char *q = msg + sizeof head - 1;
        int arg = 0;
        while (*q >= '0' && *q <= '9' && arg < 100000) arg = arg * 10 + (*q++ - '0');
        if (arg > 0 && !strncmp(q, mid, sizeof mid - 1)) {
            q += sizeof mid - 1;
            lua_pushlstring(L, q, (size_t)(msg + n - 1 - q));
            return luaL_argerror(L, arg, lua_tostring(L, -1));
        }
    }
    return lua_error(L);
}

/* A guarded table function. Upvalues: the stock function, its guard. */
static int guarded(lua_State *L)
{
    const guard *g = lua_touserdata(L, lua_upvalueindex(2));
    call c = { L, lua_gettop(L), 0, 0 };
    hc_lua_charge(L, g->measure(&c)); /* raises before anything runs when the work is over budget */
    int base = 0;
    if (c.pin) { /* below the arguments: the metatable, its __len, the pin (set as its __len) */
        lua_getmetatable(L, 1);
        lua_pushliteral(L, "__len");
        lua_rawget(L, -2);
        lua_pushinteger(L, c.len);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_pushcclosure(L, pinned_len, 3);
        lua_pushliteral(L, "__len");
        lua_pushvalue(L, -2);
        lua_rawset(L, -5);
        lua_rotate(L, 1, 3);
        base = 3;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, base + 1);
    int status = lua_pcall(L, c.nargs, LUA_MULTRET, 0);
    if (c.pin) { /* unpinned unless the stock function asked (it asks first thing) */
        lua_pushliteral(L, "__len");
        lua_rawget(L, 1);
        if (lua_rawequal(L, -1, 3)) {
            lua_pushliteral(L, "__len");
            lua_pushvalue(L, 2);
            lua_rawset(L, 1);
        }
        lua_pop(L, 1);
    }
    if (status != LUA_OK) return reraise(L);
    return lua_gettop(L) - base;
}

/* string.rep(s, n [, sep]) guarded. Upvalue: the stock function. */
static int guarded_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) { /* nothing, or n empty pieces: the stock loop would copy nothing n times */
        lua_pushliteral(L, "");
        return 1;
    }
    size_t piece = l + lsep;
    /* a result that can fit in memory is charged per piece and per 64 bytes; any other is refused
       by the stock function ("too large", or out of memory) before it copies anything */
    if (piece >= l && piece <= hc_lua_memory_limit(L) / (lua_Unsigned)n) hc_lua_charge(L, (uint64_t)n + (uint64_t)n * piece / 64);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

void hc_lua_guard_table(lua_State *L)
{
    for (size_t i = 0; i < sizeof table_guards / sizeof table_guards[0]; i++) {
        lua_getfield(L, -1, table_guards[i].name);
        lua_pushlightuserdata(L, (void *)&table_guards[i]);
        lua_pushcclosure(L, guarded, 2);
        lua_setfield(L, -2, table_guards[i].name);
    }
}

void hc_lua_guard_string(lua_State *L)
{
    lua_getfield(L, -1, "rep");
    lua_pushcclosure(L, guarded_rep, 1);
    lua_setfield(L, -2, "rep");
}
