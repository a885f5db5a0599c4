/* policy_steps.c: fill_steps(), the building block of greedy rank policies that the host gives every
 * policy sandbox: rank steps in order of a policy's own value per step, until the bytes run out. */
#include <math.h>

#include <lauxlib.h>

#include "policy_steps.h"

#include "lua_host.h"

/* fill_steps(layers, ranks, bytes_left, ratio) -> bytes_left
 * ranks[i] is layer i's rank so far (changed in place). ratio(i, taken) is the value of layer i's
 * next step, from rank taken to taken + 1 (nil: no further step for this layer). The step of the
 * largest value goes first (ties: the lower i); it is taken when its layer's bytes_per_rank still
 * fit, else that layer gets no more steps; a layer never goes beyond its rank_max (ratio may change
 * ranks[] itself: a step is taken from the rank found then). bytes_per_rank must not be negative.
 * One value per layer waits at a time, in a binary heap here in C (a userdata: the sandbox's memory
 * limit counts it, and a Lua error raised inside ratio() leaks nothing). Every step is charged to
 * the sandbox's budget, so a ratio written in C (math.max) cannot loop unseen by its limits. */
typedef struct step {
    double value;
    lua_Integer layer;
} step;

static int before(const step *a, const step *b) { return a->value != b->value ? a->value > b->value : a->layer < b->layer; }

static void push(step *heap, int *n, step s)
{
    int i = (*n)++;
    heap[i] = s;
    while (i > 0 && before(&heap[i], &heap[(i - 1) / 2])) {
        step t = heap[i];
        heap[i] = heap[(i - 1) / 2];
        heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static step pop(step *heap, int *n)
{
    step top = heap[0];
    heap[0] = heap[--*n];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, best = i;
        if (l < *n && before(&heap[l], &heap[best])) best = l;
        if (r < *n && before(&heap[r], &heap[best])) best = r;
        if (best == i) break;
        step t = heap[i];
        heap[i] = heap[best];
        heap[best] = t;
        i = best;
    }
    return top;
}

/* layers[i][key] as an integer, raising an error naming the layer when it is not one. */
static lua_Integer layer_int(lua_State *S, lua_Integer i, const char *key)
{
    lua_geti(S, 1, i);
    if (lua_type(S, -1) != LUA_TTABLE) luaL_error(S, "fill_steps: layers[%d] is not a table", (int)i);
    lua_getfield(S, -1, key);
    int ok = 0;
    lua_Integer v = lua_tointegerx(S, -1, &ok);
    if (!ok) luaL_error(S, "fill_steps: layers[%d].%s is not an integer", (int)i, key);
    lua_pop(S, 2);
    return v;
}

static lua_Integer rank_of(lua_State *S, lua_Integer i)
{
    lua_geti(S, 2, i);
    int ok = 0;
    lua_Integer v = lua_type(S, -1) == LUA_TNUMBER ? lua_tointegerx(S, -1, &ok) : 0;
    if (!ok) luaL_error(S, "fill_steps: ranks[%d] is not an integer", (int)i);
    lua_pop(S, 1);
    return v;
}

/* Calls ratio(i, taken) and pushes its value on the heap (unless nil or rank_max is reached). */
static void offer(lua_State *S, step *heap, int *n, lua_Integer i, lua_Integer taken)
{
    if (taken >= layer_int(S, i, "rank_max")) return;
    lua_pushvalue(S, 4);
    lua_pushinteger(S, i);
    lua_pushinteger(S, taken);
    lua_call(S, 2, 1);
    if (lua_isnil(S, -1)) {
        lua_pop(S, 1);
        return;
    }
    if (lua_type(S, -1) != LUA_TNUMBER) /* no strings converted */
        luaL_error(S, "fill_steps: ratio(%d, %I) returned a %s, not a number or nil", (int)i, (LUAI_UACINT)taken, luaL_typename(S, -1));
    double v = lua_tonumber(S, -1);
    if (isnan(v)) luaL_error(S, "fill_steps: ratio(%d, %I) returned NaN", (int)i, (LUAI_UACINT)taken);
    lua_pop(S, 1);
    push(heap, n, (step){ v, i });
}

static int fill_steps(lua_State *S)
{
    luaL_checktype(S, 1, LUA_TTABLE);
    luaL_checktype(S, 2, LUA_TTABLE);
    lua_Integer left = luaL_checkinteger(S, 3);
    luaL_checktype(S, 4, LUA_TFUNCTION);
    lua_Integer n_layers = luaL_len(S, 1);
    if (n_layers < 0 || n_layers > (1 << 24)) return luaL_error(S, "fill_steps: %d layers", (int)n_layers);
    step *heap = lua_newuserdatauv(S, (size_t)(n_layers ? n_layers : 1) * sizeof *heap, 0);
    int n = 0;
    for (lua_Integer i = 1; i <= n_layers; i++) {
        hc_lua_charge(S, 1);
        offer(S, heap, &n, i, rank_of(S, i));
    }
    while (n > 0) {
        hc_lua_charge(S, 1);
        step s = pop(heap, &n);
        lua_Integer cost = layer_int(S, s.layer, "bytes_per_rank");
        if (cost < 0) return luaL_error(S, "fill_steps: layers[%d].bytes_per_rank is negative (%I)", (int)s.layer, (LUAI_UACINT)cost);
        if (cost > left) continue;
        /* the rank now: ratio() may have changed it, so it is checked against rank_max again */
        lua_Integer rank = rank_of(S, s.layer);
        if (rank >= layer_int(S, s.layer, "rank_max")) continue;
        left -= cost;  /* 0 <= cost <= left */
        lua_Integer taken = rank + 1;
        lua_pushinteger(S, taken);
        lua_seti(S, 2, s.layer);
        offer(S, heap, &n, s.layer, taken);
    }
    lua_pushinteger(S, left);
    return 1;
}

hc_status hc_policy_register_steps(struct hc_lua *L) { return hc_lua_register(L, "fill_steps", fill_steps, NULL); }
