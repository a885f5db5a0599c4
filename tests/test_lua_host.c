/* test_lua_host.c: the Lua sandbox: what scripts cannot reach, the instruction, time and memory
 * limits (loops inside C functions included), error positions, calls and the stack, recovery. */
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lua_host.h"
#include "test_util.h"

static hc_lua *open_sandbox(uint64_t instructions, size_t memory)
{
    hc_lua_limits lim = { instructions, memory, 0 };
    hc_lua *L = NULL;
    HC_ASSERT_OK(hc_lua_open(&lim, &L));
    return L;
}

/* Runs code expecting an HC_E_SCRIPT whose message holds every one of the NULL-terminated needles. */
static void expect_error(hc_lua *L, const char *name, const char *code, hc_status want, ...)
{
    int top = lua_gettop(hc_lua_state(L));
    hc_status st = hc_lua_run_string(L, name, code);
    CU_ASSERT_EQUAL(st, want);
    va_list ap;
    va_start(ap, want);
    for (const char *needle; (needle = va_arg(ap, const char *));) {
        if (!strstr(hc_last_error(), needle)) {
            printf("\n  '%s': message '%s' lacks '%s'\n", code, hc_last_error(), needle);
            CU_FAIL("missing text in the error message");
        }
    }
    va_end(ap);
    CU_ASSERT_EQUAL(lua_gettop(hc_lua_state(L)), top);
}

/* The state answers normally: a global set, a function defined and called. */
static void expect_usable(hc_lua *L)
{
    lua_State *S = hc_lua_state(L);
    HC_ASSERT_OK(hc_lua_run_string(L, "ok", "function twice(x) return 2 * x end; answer = twice(21)"));
    lua_pushinteger(S, 50);
    HC_ASSERT_OK(hc_lua_call(L, "twice", 1, 1));
    CU_ASSERT_EQUAL(lua_tointeger(S, -1), 100);
    lua_pop(S, 1);
    CU_ASSERT_EQUAL(lua_gettop(S), 0);
}

static void test_absent(void)
{
    hc_lua *L = open_sandbox(0, 0);
    expect_error(L, "t", "os.execute('touch /tmp/hc-sandbox-escape')", HC_E_SCRIPT, "t:1:", "'os' is not available", NULL);
    expect_error(L, "t", "local f = io.open('/etc/passwd')", HC_E_SCRIPT, "t:1:", "'io' is not available", NULL);
    expect_error(L, "t", "local m = require('os')", HC_E_SCRIPT, "t:1:", "'require' is not available", NULL);
    expect_error(L, "t", "local f = load('return 1')", HC_E_SCRIPT, "t:1:", "'load' is not available", NULL);
    expect_error(L, "t", "dofile('/etc/passwd')", HC_E_SCRIPT, "t:1:", "'dofile' is not available", NULL);
    expect_error(L, "t", "loadfile('/etc/passwd')", HC_E_SCRIPT, "'loadfile' is not available", NULL);
    expect_error(L, "t", "local p = package.path", HC_E_SCRIPT, "'package' is not available", NULL);
    expect_error(L, "t", "debug.sethook()", HC_E_SCRIPT, "'debug' is not available", NULL);
    expect_error(L, "t", "local d = string.dump(print)", HC_E_SCRIPT, "t:1:", "dump", NULL);
    expect_error(L, "t", "collectgarbage('stop')", HC_E_SCRIPT, "t:1:", "collectgarbage('stop') is not allowed", NULL);
    expect_error(L, "t", "local s = ('x'):dump()", HC_E_SCRIPT, "t:1:", NULL);
    /* no escape through the raw global table either */
    HC_ASSERT_OK(hc_lua_run_string(L, "raw", "assert(rawget(_G, 'io') == nil and rawget(_G, 'os') == nil and rawget(_G, 'load') == nil)"));
    /* what a policy needs is there */
    HC_ASSERT_OK(hc_lua_run_string(L, "libs",
                                   "assert(type(string.format) == 'function' and type(table.sort) == 'function' and "
                                   "type(math.floor) == 'function' and type(pcall) == 'function' and collectgarbage('count') > 0)\n"
                                   "assert(undefined_name == nil)"));
    expect_usable(L);
    hc_lua_close(L);
}

static void test_instruction_limit(void)
{
    hc_lua *L = open_sandbox(1000000, 0);
    expect_error(L, "loop", "local n = 0\nwhile true do n = n + 1 end", HC_E_SCRIPT, "loop:2:", "instruction limit of 1000000 exceeded",
                 "endless loop", NULL);
    /* catching the error does not help: it is raised again */
    expect_error(L, "catch", "while true do pcall(function() while true do end end) end", HC_E_SCRIPT,
                 "instruction limit of 1000000 exceeded", NULL);
    /* the limit still holds after it fired (the worker's hook survives) */
    expect_error(L, "again", "repeat until false", HC_E_SCRIPT, "again:1:", "instruction limit", NULL);
    /* a called function: the budget is reset per call, and the loop is located */
    HC_ASSERT_OK(hc_lua_run_string(L, "def", "function spin(n)\n  local i = 0\n  while i < n do i = i + 1 end\n  return i\nend"));
    lua_State *S = hc_lua_state(L);
    for (int k = 0; k < 3; k++) { /* three calls of ~400k instructions each: fine one by one */
        lua_pushinteger(S, 100000);
        HC_ASSERT_OK(hc_lua_call(L, "spin", 1, 1));
        CU_ASSERT_EQUAL(lua_tointeger(S, -1), 100000);
        lua_pop(S, 1);
    }
    lua_pushinteger(S, 100000000);
    CU_ASSERT_EQUAL(hc_lua_call(L, "spin", 1, 1), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "def:3:"));
    CU_ASSERT_EQUAL(lua_gettop(S), 0);
    expect_usable(L);
    hc_lua_close(L);
}

static void test_memory_limit(void)
{
    size_t limit = (size_t)4 << 20;
    hc_lua *L = open_sandbox(0, limit);
    expect_error(L, "grow", "local t = {}\nfor i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end", HC_E_SCRIPT, "grow:2:",
                 "memory limit of 4 MiB exceeded", NULL);
    CU_ASSERT(hc_lua_memory(L) <= limit);
    expect_error(L, "big", "local s = string.rep('x', 1 << 30)", HC_E_SCRIPT, "big:1:", "memory limit of 4 MiB exceeded", NULL);
    expect_error(L, "concat", "local s = 'x'\nwhile true do s = s .. s end", HC_E_SCRIPT, "concat:2:", "memory limit", NULL);
    /* a chunk too large to load */
    size_t n = (size_t)6 << 20;
    char *code = malloc(n + 16);
    memcpy(code, "x = '", 5);
    memset(code + 5, 'a', n);
    memcpy(code + 5 + n, "'", 2);
    CU_ASSERT_EQUAL(hc_lua_run_string(L, "huge", code), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "memory limit of 4 MiB exceeded"));
    free(code);
    /* what the failed runs held is garbage again: the state works within its limit */
    CU_ASSERT(hc_lua_memory(L) <= limit);
    expect_usable(L);
    HC_ASSERT_OK(hc_lua_run_string(L, "fits", "local t = {} for i = 1, 10000 do t[i] = i end assert(#t == 10000)"));
    hc_lua_close(L);
}

static void test_error_positions(void)
{
    hc_lua *L = open_sandbox(0, 0);
    expect_error(L, "syn", "x = = 1", HC_E_SCRIPT, "syn:1:", "unexpected symbol", NULL);
    expect_error(L, "syn3", "local a = 1\nlocal b = 2\nif a then\n", HC_E_SCRIPT, "syn3:4:", "'end' expected", NULL);
    expect_error(L, "rt", "local t = nil\nlocal x = t.field", HC_E_SCRIPT, "rt:2:", "attempt to index a nil value", NULL);
    expect_error(L, "obj", "local a = 1\nerror({})", HC_E_SCRIPT, "obj:2:", "error object is a table value", NULL);
    expect_error(L, "lvl0", "local a = 1\nerror('plain', 0)", HC_E_SCRIPT, "lvl0:2: plain", NULL);

    /* a file: syntax error with its path and line */
    const char *bad = hc_test_tmp("bad.lua");
    FILE *f = fopen(bad, "w");
    fputs("-- a policy\nfunction allocate(budget, layers)\n  return {1, 2,, 3}\nend\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(hc_lua_run_file(L, bad), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "bad.lua:3:"));

    /* a runtime error inside a called function names that function's file and line */
    const char *good = hc_test_tmp("calls.lua");
    f = fopen(good, "w");
    fputs("local function helper(x)\n"
          "  return x.field + 1\n"
          "end\n"
          "function outer(a)\n"
          "  local v = helper(a)\n"
          "  return v\n"
          "end\n"
          "function fails(msg)\n"
          "  error(msg)\n"
          "end\n",
          f);
    fclose(f);
    HC_ASSERT_OK(hc_lua_run_file(L, good));
    CU_ASSERT(hc_lua_has_function(L, "outer"));
    CU_ASSERT(!hc_lua_has_function(L, "helper"));
    CU_ASSERT(!hc_lua_has_function(L, "os"));
    lua_State *S = hc_lua_state(L);
    lua_pushnil(S);
    CU_ASSERT_EQUAL(hc_lua_call(L, "outer", 1, 1), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "calls.lua:2: attempt to index a nil value (local 'x')"));
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "calls.lua:5: in function 'outer'"));
    CU_ASSERT_EQUAL(lua_gettop(S), 0);
    lua_pushstring(S, "boom");
    CU_ASSERT_EQUAL(hc_lua_call(L, "fails", 1, 0), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "calls.lua:9: boom"));
    CU_ASSERT_EQUAL(hc_lua_call(L, "missing", 0, 0), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "defines no function missing()"));
    CU_ASSERT_EQUAL(lua_gettop(S), 0);

    /* an absent file is an i/o error; a binary chunk is refused */
    CU_ASSERT_EQUAL(hc_lua_run_file(L, hc_test_tmp("absent.lua")), HC_E_IO);
    const char *bin = hc_test_tmp("bin.lua");
    f = fopen(bin, "wb");
    fputs("\x1bLua\x54\x00 binary", f);
    fclose(f);
    CU_ASSERT_EQUAL(hc_lua_run_file(L, bin), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "binary"));
    CU_ASSERT_EQUAL(lua_gettop(S), 0);
    expect_usable(L);
    hc_lua_close(L);
}

static void test_calls(void)
{
    hc_lua *L = open_sandbox(0, 0);
    lua_State *S = hc_lua_state(L);
    HC_ASSERT_OK(hc_lua_run_string(L, "c", "function three() return 1, 2, 3 end\nfunction sum(a, b) return a + b end"));
    lua_pushstring(S, "below"); /* the caller's own values are left alone */
    HC_ASSERT_OK(hc_lua_call(L, "three", 0, 2));
    CU_ASSERT_EQUAL(lua_gettop(S), 3);
    CU_ASSERT_EQUAL(lua_tointeger(S, -2), 1);
    CU_ASSERT_EQUAL(lua_tointeger(S, -1), 2);
    lua_pop(S, 2);
    HC_ASSERT_OK(hc_lua_call(L, "three", 0, 5));
    CU_ASSERT_EQUAL(lua_gettop(S), 6);
    CU_ASSERT_EQUAL(lua_tointeger(S, -3), 3);
    CU_ASSERT(lua_isnil(S, -1));
    lua_pop(S, 5);
    HC_ASSERT_OK(hc_lua_call(L, "three", 0, LUA_MULTRET));
    CU_ASSERT_EQUAL(lua_gettop(S), 4);
    lua_pop(S, 3);
    lua_pushinteger(S, 40);
    lua_pushinteger(S, 2);
    HC_ASSERT_OK(hc_lua_call(L, "sum", 2, 1));
    CU_ASSERT_EQUAL(lua_tointeger(S, -1), 42);
    lua_pop(S, 1);
    lua_pushinteger(S, 1);
    lua_pushnil(S);
    CU_ASSERT_EQUAL(hc_lua_call(L, "sum", 2, 1), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "c:2:"));
    CU_ASSERT_EQUAL(lua_gettop(S), 1);
    CU_ASSERT_STRING_EQUAL(lua_tostring(S, 1), "below");
    lua_pop(S, 1);
    hc_lua_close(L);
}

static int c_scaled(lua_State *S)
{
    const int *k = lua_touserdata(S, lua_upvalueindex(1));
    lua_pushinteger(S, *k * luaL_checkinteger(S, 1));
    return 1;
}

static int build_table(lua_State *S)
{
    const int *n = lua_touserdata(S, 1);
    lua_createtable(S, *n, 0);
    for (int i = 1; i <= *n; i++) {
        lua_pushinteger(S, i * i);
        lua_rawseti(S, -2, i);
    }
    return 1;
}

static void test_c_side(void)
{
    hc_lua *L = open_sandbox(0, (size_t)1 << 20);
    lua_State *S = hc_lua_state(L);
    int k = 7;
    HC_ASSERT_OK(hc_lua_register(L, "scaled", c_scaled, &k));
    HC_ASSERT_OK(hc_lua_run_string(L, "reg", "assert(scaled(6) == 42)\nfunction count(t) return #t, t[3] end"));
    int n = 10;
    HC_ASSERT_OK(hc_lua_pcall_c(L, build_table, &n, 1));
    HC_ASSERT_OK(hc_lua_call(L, "count", 1, 2));
    CU_ASSERT_EQUAL(lua_tointeger(S, -2), 10);
    CU_ASSERT_EQUAL(lua_tointeger(S, -1), 9);
    lua_pop(S, 2);
    /* building beyond the memory limit fails cleanly instead of aborting */
    n = 1 << 22;
    CU_ASSERT_EQUAL(hc_lua_pcall_c(L, build_table, &n, 1), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "memory limit of 1 MiB exceeded"));
    CU_ASSERT_EQUAL(lua_gettop(S), 0);
    expect_usable(L);
    hc_lua_close(L);
}

static void test_deterministic_random(void)
{
    lua_Integer v[2];
    for (int i = 0; i < 2; i++) {
        hc_lua *L = open_sandbox(0, 0);
        HC_ASSERT_OK(hc_lua_run_string(L, "rnd", "function r() local s = 0 for i = 1, 10 do s = s * 7 + math.random(1, 1000) end return s end"));
        HC_ASSERT_OK(hc_lua_call(L, "r", 0, 1));
        v[i] = lua_tointeger(hc_lua_state(L), -1);
        lua_pop(hc_lua_state(L), 1);
        hc_lua_close(L);
    }
    CU_ASSERT_EQUAL(v[0], v[1]);
}

/* Finalizers run with hooks off, so none may exist: a looping one would hang the state. */
static void test_no_finalizers(void)
{
    hc_lua *L = open_sandbox(1000000, 0);
    expect_error(L, "gc", "keep = setmetatable({}, { __gc = function() while true do end end })", HC_E_SCRIPT, "gc:1:",
                 "__gc are not allowed", NULL);
    /* __gc added later is never called (the object was not marked): closing returns */
    HC_ASSERT_OK(hc_lua_run_string(L, "late", "local mt = {}\nkeep = setmetatable({}, mt)\nmt.__gc = function() while true do end end\n"
                                                "local p = setmetatable({}, { __metatable = 'locked' })\n"
                                                "assert(not pcall(setmetatable, p, {}))"));
    expect_usable(L);
    hc_lua_close(L);
    CU_PASS("closed");
}

static hc_lua *open_timed(uint64_t instructions, uint32_t max_ms)
{
    hc_lua_limits lim = { .max_instructions = instructions, .max_ms = max_ms };
    hc_lua *L = NULL;
    HC_ASSERT_OK(hc_lua_open(&lim, &L));
    return L;
}

/* The wall-clock limit: a loop that the instruction limit would allow for hours stops after the
 * time given, with the script's name and line; a caught error is raised again; calls and runs
 * each get their own time; the state stays usable. */
static void test_time_limit(void)
{
    hc_lua *L = open_timed(UINT64_MAX, 200);
    double t0 = hc_now_seconds();
    expect_error(L, "spin.lua", "local n = 0\nwhile true do n = n + 1 end", HC_E_SCRIPT, "spin.lua:2:",
                 "time limit of 200 ms exceeded", "endless loop", NULL);
    double took = hc_now_seconds() - t0;
    CU_ASSERT(took >= 0.19 && took < 3.0);
    expect_error(L, "catch.lua", "while true do pcall(function() while true do end end) end", HC_E_SCRIPT,
                 "time limit of 200 ms exceeded", NULL);
    HC_ASSERT_OK(hc_lua_run_string(L, "def", "function spin(n)\n  local i = 0\n  while i < n do i = i + 1 end\n  return i\nend"));
    lua_State *S = hc_lua_state(L);
    lua_pushinteger(S, 1000);
    HC_ASSERT_OK(hc_lua_call(L, "spin", 1, 1));
    lua_pop(S, 1);
    lua_pushinteger(S, LUA_MAXINTEGER);
    CU_ASSERT_EQUAL(hc_lua_call(L, "spin", 1, 1), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "def:3: time limit of 200 ms exceeded"));
    expect_usable(L);
    hc_lua_close(L);
}

/* Runs code that must fail within both limits with msg, named "c.lua" at line 1, in under 5 s. */
static void expect_bounded(hc_lua *L, const char *code, const char *msg)
{
    double t0 = hc_now_seconds();
    expect_error(L, "c.lua", code, HC_E_SCRIPT, "c.lua:1:", msg, NULL);
    double took = hc_now_seconds() - t0;
    if (took >= 5.0) printf("\n  '%s' took %.1f s\n", code, took);
    CU_ASSERT(took < 5.0);
}

/* Loops inside the library's C functions run no Lua instruction, so the hook alone never sees
 * them (issue 22, finding 5: Lua's pattern matcher backtracking without bound). Each is charged to
 * the budget: the instruction limit stops it, or the time limit when the instructions would not. */
static void test_c_loops(void)
{
    static const char *const loops[] = {
        /* the matcher: backtracking of many a*, in find, match, gmatch and gsub; and plain find */
        "string.find(('a'):rep(40), ('a*'):rep(20) .. 'b')",
        "local s = ('a'):rep(40) return s:match(('a*'):rep(20) .. 'b')",
        "for w in (('a'):rep(40)):gmatch(('a-'):rep(20) .. 'b') do end",
        "string.gsub(('a'):rep(40), ('a?'):rep(30) .. ('a*'):rep(10) .. 'b', 'x')",
        "string.find(('a'):rep(1 << 20), ('a'):rep(1 << 19) .. 'b', 1, true)",
        "string.find(('('):rep(1 << 20), '%b()')",
        /* a long pattern read whole at each call, to see that it is plain */
        "local p = ('a'):rep(1 << 20) for i = 1, 1e6 do string.find('x', p) end",
        /* long sets, read anew at each test */
        "local set = ('b'):rep(1 << 16) string.find(('a'):rep(1 << 16), '[' .. set .. ']')",
        "local set = ('b'):rep(1 << 16) string.find(('a'):rep(1 << 16), '[' .. set .. 'a]*d')",
        "local set = ('b'):rep(1 << 16) string.find(('a'):rep(1 << 16), '%f[' .. set .. ']')",
        /* table functions whose loops run in C over lengths or ranges a script chooses */
        "table.move({}, 1, math.maxinteger, 1)",
        "table.move({}, 1, math.maxinteger - 1, 2, {})",
        "table.remove(setmetatable({}, { __len = function() return math.maxinteger end }), 1)",
        "table.insert(setmetatable({}, { __len = function() return math.maxinteger - 1 end }), 1, 0)",
        "table.concat(setmetatable({}, { __index = table.concat }), '', 1, math.maxinteger)",
        "table.sort(setmetatable({}, { __len = function() return (1 << 31) - 2 end, __index = rawlen, __newindex = rawequal }))",
        "table.unpack(setmetatable({}, { __index = table.concat }), 1, 999000) while true do end",
    };
    hc_lua *L = open_timed(1000000, 0);
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) expect_bounded(L, loops[i], "instruction limit of 1000000 exceeded");
    hc_lua_close(L);
    L = open_timed(UINT64_MAX, 300);
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) expect_bounded(L, loops[i], "time limit of 300 ms exceeded");
    /* a __len that answers more the second time: the stock function gets the length charged */
    HC_ASSERT_OK(hc_lua_run_string(L, "len", "local n = 0\n"
                                              "local mt = { __len = function() n = n + 1 return n == 1 and 2 or math.maxinteger end }\n"
                                              "local t = setmetatable({ 1, 2 }, mt)\n"
                                              "for _, f in ipairs({ table.sort, table.concat, table.unpack, table.remove }) do n = 0 f(t) end\n"
                                              "n = 0 table.insert(t, 1, 5) n = 0 table.remove(t, 1) assert(rawget(t, 1) == 1 and rawget(t, 2) == nil)"));
    /* string.rep of empty pieces is "" at once (it made n empty copies) */
    HC_ASSERT_OK(hc_lua_run_string(L, "rep", "assert(string.rep('', math.maxinteger) == '' and ('x'):rep(0) == '')\n"
                                              "assert(string.rep('', math.maxinteger, '') == '' and ('ab'):rep(3, ',') == 'ab,ab,ab')"));
    expect_usable(L);
    hc_lua_close(L);
}

/* The sandbox's own string and table functions answer as Lua's. */
static void test_library_answers(void)
{
    hc_lua *L = open_sandbox(0, 0);
    HC_ASSERT_OK(hc_lua_run_string(L, "lib",
        "assert(('hello world'):gsub('o', '0') == 'hell0 w0rld')\n"
        "assert(select(2, ('hello world'):gsub('o', '0')) == 2)\n"
        "assert(('key = value'):match('^(%w+)%s*=%s*(%w+)$') == 'key')\n"
        "assert(select(2, ('key = value'):match('^(%w+)%s*=%s*(%w+)$')) == 'value')\n"
        "local s, e = string.find('a.b.c', '.', 1, true) assert(s == 2 and e == 2)\n"
        "s, e = string.find('abc', 'b()') assert(s == 2 and e == 2)\n"
        "assert(select(3, string.find('abc', 'b()')) == 3)\n"
        "local w = {} for k in ('one two  three'):gmatch('%a+') do w[#w + 1] = k end\n"
        "assert(#w == 3 and w[3] == 'three')\n"
        "assert(('THE (quick) fox'):find('%f[%a]%a+', 5) == 6)\n"
        "assert(('x(a(b)c)y'):match('%b()') == '(a(b)c)')\n"
        "assert(('abc'):gsub('%w', { a = 'A', b = false }) == 'Abc')\n"
        "assert(('abc'):gsub('(%w)', function(c) return c .. c end) == 'aabbcc')\n"
        "assert(('hello'):gsub('l+', '%0%0') == 'hellllo')\n"
        "assert(not pcall(string.find, 'x', '[a'))\n"
        "assert(not pcall(string.gsub, 'x', 'x', '%2'))\n"
        "local t = {5, 3, 8, 1} table.sort(t) assert(table.concat(t, ',') == '1,3,5,8')\n"
        "table.sort(t, function(a, b) return a > b end) assert(table.concat(t, ',') == '8,5,3,1')\n"
        "table.insert(t, 1, 9) table.insert(t, 0) assert(table.concat(t, ',') == '9,8,5,3,1,0')\n"
        "assert(table.remove(t, 1) == 9 and table.remove(t) == 0 and #t == 4)\n"
        "local m = table.move(t, 1, 4, 2, {}) assert(m[1] == nil and m[5] == 1)\n"
        "assert(select('#', table.unpack({1, 2, 3})) == 3 and table.pack(1, nil, 3).n == 3)"));
    hc_lua_close(L);
}

int main(void)
{
    static const hc_test_case cases[] = {
        {"io, os, require, load, dofile, package are absent", test_absent},
        {"an endless loop stops at the instruction limit", test_instruction_limit},
        {"an unbounded allocation stops at the memory limit", test_memory_limit},
        {"syntax and runtime errors name file and line", test_error_positions},
        {"calls: arguments, result counts, the stack", test_calls},
        {"C functions and protected building", test_c_side},
        {"math.random repeats", test_deterministic_random},
        {"no finalizers: __gc is refused", test_no_finalizers},
        {"an endless loop stops at the time limit", test_time_limit},
        {"loops inside C functions are bounded", test_c_loops},
        {"the sandbox's string and table functions answer as Lua's", test_library_answers},
        {NULL, NULL},
    };
    return hc_test_run("lua_host", cases);
}
