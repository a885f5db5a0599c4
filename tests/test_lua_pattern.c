/* test_lua_pattern.c: the sandbox's pattern functions and guarded library against stock Lua 5.4, side by
 * side: hand-written cases for every feature and thousands of random patterns, results and errors. */
#define _GNU_SOURCE /* memmem */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_host.h"
#include "test_util.h"

/* Loaded in both states: probe(s, p, init) runs find (pattern and plain), match, gmatch (every
 * iteration) and gsub (string, table and function replacements, a max count) and writes each
 * result, or "error: message", on a line of its own. */
static const char probe_lua[] =
    "local function ser(...)\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do\n"
    "    local v = select(i, ...)\n"
    "    if type(v) == 'string' then out[i] = string.format('%q', v) else out[i] = type(v) .. ':' .. tostring(v) end\n"
    "  end\n"
    "  return '(' .. table.concat(out, ',') .. ')'\n"
    "end\n"
    "local function try(f, ...)\n"
    "  local r = table.pack(pcall(f, ...))\n"
    "  if not r[1] then return 'error: ' .. tostring(r[2]) end\n"
    "  return ser(table.unpack(r, 2, r.n))\n"
    "end\n"
    "local function all(it)\n"
    "  local acc = {}\n"
    "  for k = 1, 40 do\n"
    "    local r = table.pack(it())\n"
    "    if r[1] == nil then acc[k] = 'end' break end\n"
    "    acc[k] = ser(table.unpack(r, 1, r.n))\n"
    "  end\n"
    "  return table.concat(acc, ';')\n"
    "end\n"
    "local repls = { '%0', '<%1>', '%2%1', '%%', '', 'x%', '%a', '%9', 7,\n"
    "  { a = 'A', b = false, ['('] = 1.5, [1] = 'one', [2] = {}, [3] = true },\n"
    "  function(...)\n"
    "    local n, v = select('#', ...), ...\n"
    "    if v == 'b' then return false elseif v == 'ab' then return {} elseif math.type(v) == 'integer' then return v * 2 end\n"
    "    return n .. tostring(v)\n"
    "  end }\n"
    "function probe(s, p, init)\n"
    "  local out = {}\n"
    "  out[#out + 1] = try(string.find, s, p, init)\n"
    "  out[#out + 1] = try(string.find, s, p, init, true)\n"
    "  out[#out + 1] = try(string.match, s, p, init)\n"
    "  out[#out + 1] = try(function() return all(string.gmatch(s, p, init)) end)\n"
    "  for i = 1, #repls do out[#out + 1] = try(string.gsub, s, p, repls[i]) end\n"
    "  out[#out + 1] = try(string.gsub, s, p, '[%0]', init)\n"
    "  return table.concat(out, '\\n')\n"
    "end\n";

/* The hand-written corpus, as Lua: pairs { subject, pattern }. */
static const char corpus_lua[] =
    "local text = 'Hello World! 123 \\t\\n x0FfZ.%]zq-^$()[]\\0\\1\\127\\200\\255 end'\n"
    "local c = {}\n"
    "local function add(s, list) for _, p in ipairs(list) do c[#c + 1] = { s, p } end end\n"
    "add(text, { '%a+', '%A+', '%c+', '%C', '%d+', '%D+', '%g+', '%G', '%l+', '%L+', '%p+', '%P+', '%s+', '%S+',\n"
    "  '%u+', '%U+', '%w+', '%W+', '%x+', '%X+', '%.', '%%', '%z', '%q', '%]', '%-', '%^', '%$', '%(%)', '\\0', '%\\0',\n"
    "  '[aeiou]+', '[^aeiou]+', '[a-f]+', '[%a_][%w_]*', '[]]', '[^]]+', '[]-a]+', '[a-]', '[-a]', '[%-]+', '[a%-z]+',\n"
    "  '[%d%s]+', '[^%s]+', '[.]', '[[]', '[%a-z]+', '[a-%d]+', '[%]]', '[%%]', '[^%a%d]+', '[\\0-\\31]+', '[\\200-\\255]+',\n"
    "  '[^', '[a', '[%', '[a-z', '[]', '[^]', '[^]]', '[%]', 'x[', '%', 'a%', '[a-]]', '[]a]+', '[^-]+', '[z-a]' })\n"
    "for _, s in ipairs({ '', 'a', 'aaa', 'aab', 'abab', 'baaac', 'xyz' }) do\n"
    "  add(s, { 'a*', 'a+', 'a-', 'a?', '.-b', '.*b', 'a-b', 'a?b?c', 'x*', '.-', '.*', '.+', '.?', '(a*(.)%w(%s*))', '^a*$',\n"
    "    '^a', '^', '$', '^$', 'a$', '$a', 'a^', '^^', '%$', '$$', 'a$b', 'b*$', '^(a-)b', 'a-$', '^.-$', '()', '()a()',\n"
    "    '(a)(b)', '(a(b)c)', '((a)(b))', '(', ')', '(()', '())', 'a)', '(a%)', '(a', 'a(', '(a)%1', '(.)%1', '%1', '(a%1)',\n"
    "    '%0', '()%1', '(a)(b)%2%1', '(%w+)%1', '%9', '(a*)%1', '(a)-', '()*', '%b()', '%b', '%ba', '%bab', '%baa',\n"
    "    '%f[a]', '%f[^a]', '%f', '%fa', '%f[', '%f[a', '%f[%z]', '%f[%w]%w+', '(a+)(b?)', 'a-a-a-', 'a*a*a*b', '[ab]-b',\n"
    "    '^(a+)', '%a*%f[%A]', '(%a)()%1*', '.-(.-)b' })\n"
    "end\n"
    "add('THE (quick) fox', { '%f[%a]%a+', '%f[%W]', '%b()', '(%b())', '%s*(%a+)%s*', '%((%a+)%)', '^(%u+)' })\n"
    "add('x(a(b)c)y((z)', { '%b()', '%b)(', '%b((', '%bxy', '%b%%', '%bx)', '%b(' })\n"
    "add('key = value; k2=v2', { '(%w+)%s*=%s*(%w+)', '^(%w+)%s*=%s*(%w+)$', '[^;]+', '%s*;%s*', '(%w+)=(%w+)' })\n"
    "add('a\\0b\\0c', { '%z', '\\0', '[\\0]', '[^\\0]+', '%f[%z]', '%f[\\0]', '.\\0.', 'b\\0?' })\n"
    "add('hello world from Lua', { '%w+', '(%w+) (%w+)', '%s', 'o', 'l+', '' })\n"
    "local as = string.rep('a', 250)\n"
    "for _, n in ipairs({ 31, 32, 33 }) do add(as, { ('()'):rep(n), ('(a)'):rep(n), ('(a*)'):rep(n), 'b' .. ('()'):rep(n) }) end\n"
    "for _, n in ipairs({ 98, 99, 100, 101, 198, 199, 200, 201 }) do\n"
    "  add('', { ('a*'):rep(n), ('a-'):rep(n), ('a?'):rep(n), ('a+'):rep(n) })\n"
    "  add(as, { ('a?'):rep(n), ('a'):rep(n), ('a'):rep(n) .. 'b' })\n"
    "  if n >= 200 then add(as, { ('a*'):rep(n) .. 'b', ('a-'):rep(n) .. 'b' }) end -- too complex before it backtracks\n"
    "  add('b', { ('a*'):rep(n), ('a+'):rep(n), ('x'):rep(n) })\n"
    "end\n"
    "add(('ab'):rep(60), { '(ab)', 'b*', 'a', '()', 'x*', '(a)(b)' })\n"
    "return c\n";

typedef struct pat_case {
    char *s, *p;
    size_t ls, lp;
} pat_case;

/* The errors a corpus should reach, each counted in stock Lua's answers. */
static const char *const error_kinds[] = {
    "pattern too complex", "too many captures", "missing ']'", "ends with '%'", "missing arguments to '%b'",
    "missing '[' after '%f'", "invalid pattern capture", "unfinished capture", "invalid capture index",
    "invalid use of '%' in replacement", "invalid replacement value", NULL,
};
enum { NKINDS = sizeof error_kinds / sizeof error_kinds[0] - 1 };

/* The stock state, the sandbox, and what comparing them found. */
typedef struct duel {
    lua_State *stock;
    hc_lua *box;
    long probes, lines, errors, wording, mismatches;
    long kinds[NKINDS];
} duel;

#define NO_INIT ((lua_Integer)0x7ffffffffffffff0)

static void push_case(lua_State *S, const pat_case *c, lua_Integer init)
{
    lua_pushlstring(S, c->s, c->ls);
    lua_pushlstring(S, c->p, c->lp);
    if (init == NO_INIT) lua_pushnil(S);
    else lua_pushinteger(S, init);
}

static void print_escaped(const char *what, const char *s, size_t n)
{
    printf("  %s \"", what);
    for (size_t i = 0; i < n && i < 200; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 32 && ch < 127 && ch != '"' && ch != '\\') putchar(ch);
        else printf("\\%u", ch);
    }
    printf("%s\" (%zu bytes)\n", n > 200 ? "..." : "", n);
}

/* Compares the two probes line by line: equal, error messages included (a difference in wording
 * alone is counted apart). */
static void compare(duel *d, const pat_case *c, lua_Integer init, const char *a, const char *b)
{
    int bad = 0;
    while (*a || *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        int ea_err = !strncmp(a, "error: ", 7), eb_err = !strncmp(b, "error: ", 7);
        d->lines++;
        if (ea_err && eb_err) {
            d->errors++;
            for (int k = 0; k < NKINDS; k++)
                if (memmem(a, la, error_kinds[k], strlen(error_kinds[k]))) d->kinds[k]++;
            if (la != lb || memcmp(a, b, la)) {
                if (d->wording++ < 5) printf("\n  wording: stock '%.*s', sandbox '%.*s'", (int)la, a, (int)lb, b);
            }
        } else if (la != lb || memcmp(a, b, la)) {
            if (!bad && d->mismatches < 12) {
                print_escaped("\n  subject", c->s, c->ls);
                print_escaped("pattern", c->p, c->lp);
                if (init == NO_INIT) printf("  init nil\n");
                else printf("  init %lld\n", (long long)init);
            }
            if (d->mismatches < 12) printf("    stock   %.*s\n    sandbox %.*s\n", (int)la, a, (int)lb, b);
            bad = 1;
        }
        a += la + (ea != NULL);
        b += lb + (eb != NULL);
    }
    if (bad) d->mismatches++;
}

static void run_case(duel *d, const pat_case *c, lua_Integer init)
{
    lua_State *S = d->stock;
    lua_getglobal(S, "probe");
    push_case(S, c, init);
    if (lua_pcall(S, 3, 1, 0) != LUA_OK) {
        printf("\n  stock probe failed: %s\n", lua_tostring(S, -1));
        CU_FAIL("stock probe");
        lua_pop(S, 1);
        return;
    }
    lua_State *B = hc_lua_state(d->box);
    push_case(B, c, init);
    hc_status st = hc_lua_call(d->box, "probe", 3, 1);
    if (st != HC_OK) {
        printf("\n  sandbox probe failed: %s\n", hc_last_error());
        CU_FAIL("sandbox probe");
        lua_pop(S, 1);
        return;
    }
    compare(d, c, init, lua_tostring(S, -1), lua_tostring(B, -1));
    d->probes++;
    lua_pop(S, 1);
    lua_pop(B, 1);
}

static void duel_open(duel *d)
{
    memset(d, 0, sizeof *d);
    d->stock = luaL_newstate();
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->stock);
    luaL_openlibs(d->stock);
    if (luaL_loadbuffer(d->stock, probe_lua, sizeof probe_lua - 1, "=probe") != LUA_OK || lua_pcall(d->stock, 0, 0, 0) != LUA_OK) {
        printf("\n  %s\n", lua_tostring(d->stock, -1));
        CU_FAIL_FATAL("the probe does not load in stock Lua");
    }
    HC_ASSERT_OK(hc_lua_open(NULL, &d->box));
    HC_ASSERT_OK(hc_lua_run_string(d->box, "probe", probe_lua));
}

static void duel_close(duel *d, const char *what)
{
    printf("\n  %s: %ld probes, %ld results compared (%ld errors in both, %ld worded differently), %ld probes differ\n", what,
           d->probes, d->lines, d->errors, d->wording, d->mismatches);
    CU_ASSERT_EQUAL(d->mismatches, 0);
    CU_ASSERT_EQUAL(d->wording, 0);
    CU_ASSERT_EQUAL(lua_gettop(hc_lua_state(d->box)), 0);
    hc_lua_close(d->box);
    lua_close(d->stock);
}

static void test_hand_written(void)
{
    duel d;
    duel_open(&d);
    lua_State *S = d.stock;
    if (luaL_loadbuffer(S, corpus_lua, sizeof corpus_lua - 1, "=corpus") != LUA_OK || lua_pcall(S, 0, 1, 0) != LUA_OK) {
        printf("\n  %s\n", lua_tostring(S, -1));
        CU_FAIL_FATAL("the corpus does not load");
    }
    lua_Integer n = luaL_len(S, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(S, -1, i);
        lua_geti(S, -1, 1);
        lua_geti(S, -2, 2);
        pat_case c;
        const char *s = lua_tolstring(S, -2, &c.ls), *p = lua_tolstring(S, -1, &c.lp);
        c.s = (char *)s;
        c.p = (char *)p;
        const lua_Integer len = (lua_Integer)c.ls;
        const lua_Integer inits[] = { NO_INIT, 1, 2, 0, -1, -3, len, len + 1, len + 2, LUA_MININTEGER, LUA_MAXINTEGER };
        /* the strings stay on the stock stack while both states run them */
        for (size_t k = 0; k < sizeof inits / sizeof inits[0]; k++) run_case(&d, &c, inits[k]);
        lua_pop(S, 3);
    }
    lua_pop(S, 1);
    for (int k = 0; k < NKINDS; k++) { /* the corpus reaches every error */
        printf("\n  %-36s %6ld", error_kinds[k], d.kinds[k]);
        CU_ASSERT(d.kinds[k] > 0);
    }
    duel_close(&d, "hand-written");
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void random_string(uint64_t *x, char *out, size_t max, const char *alphabet, size_t *len)
{
    size_t n = (size_t)(rnd(x) % (max + 1)), k = strlen(alphabet);
    for (size_t i = 0; i < n; i++) out[i] = alphabet[rnd(x) % k];
    out[n] = '\0';
    *len = n;
}

/* Random small patterns over the pattern language's own characters, against random subjects. */
static void test_random(void)
{
    enum { PATTERNS = 4000, SUBJECTS = 3 };
    duel d;
    duel_open(&d);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char p[16], s[16];
    for (int i = 0; i < PATTERNS; i++) {
        pat_case c = { s, p, 0, 0 };
        random_string(&x, p, 8, "ab().%[]^$*+-?f1", &c.lp);
        for (int j = 0; j < SUBJECTS; j++) {
            random_string(&x, s, 10, "aab()b.[]%-^$", &c.ls);
            const lua_Integer inits[] = { NO_INIT, 2, -2, (lua_Integer)c.ls + 1 };
            run_case(&d, &c, inits[rnd(&x) % 4]);
        }
    }
    duel_close(&d, "random");
}

/* string.rep and the table library, guarded in the sandbox, answer as stock Lua's, argument errors
 * included (the guard names the function as the script called it); a __len metamethod is called
 * once per call, as in stock Lua, and stays in place. */
static const char library_lua[] =
    "local function ser(...)\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do local v = select(i, ...) out[i] = type(v) == 'table' and 'table' or tostring(v) end\n"
    "  return table.concat(out, ',')\n"
    "end\n"
    "local function try(f, ...)\n"
    "  local r = table.pack(pcall(f, ...))\n"
    "  return (r[1] and '' or 'error ') .. ser(table.unpack(r, 2, r.n))\n"
    "end\n"
    "local function list(t) local out = {} for i = 1, rawlen(t) do out[i] = tostring(t[i]) end return table.concat(out, ' ') end\n"
    "function library()\n"
    "  local out = {}\n"
    "  local function say(v) out[#out + 1] = v end\n"
    "  say(try(string.rep, 'ab', 3, ',')) say(try(string.rep, '', 5)) say(try(string.rep, 'x', 0)) say(try(string.rep, 'x', -1, 'y'))\n"
    "  say(try(string.rep, 'x', 2, '')) say(try(string.rep)) say(try(string.rep, 'x')) say(try(string.rep, 'x', 1.5)) say(try(string.rep, 5, 2))\n"
    "  say(try(string.rep, 'x', math.maxinteger, 'y'))\n"
    "  local t = { 5, 3, 8, 1 }\n"
    "  say(try(table.concat, t, ',')) say(try(table.concat, t, ',', 2, 3)) say(try(table.concat, t, ',', 3, 2)) say(try(table.concat, {}, 'x'))\n"
    "  say(try(table.concat, { 1, {} })) say(try(table.concat, t, {})) say(try(table.concat, nil)) say(try(table.concat, t, '', 1, 9))\n"
    "  say(try(table.concat, t, '', 'a'))\n"
    "  say(try(table.insert, t, 9)) say(list(t)) say(try(table.insert, t, 1, 0)) say(list(t)) say(try(table.insert, t, 8, 0))\n"
    "  say(try(table.insert, t, 0, 0)) say(try(table.insert, t)) say(try(table.insert, t, 1, 2, 3)) say(try(table.insert, nil, 1))\n"
    "  say(try(table.insert, t, 'x', 1)) say(list(t))\n"
    "  say(try(table.remove, t)) say(try(table.remove, t, 1)) say(list(t)) say(try(table.remove, t, 9)) say(try(table.remove, {}))\n"
    "  say(try(table.remove, {}, 0)) say(try(table.remove, t, #t + 1)) say(try(table.remove, 'x')) say(list(t))\n"
    "  say(try(table.move, { 1, 2, 3 }, 1, 3, 2)) say(list(table.move({ 1, 2, 3 }, 1, 3, 3))) say(list(table.move({ 1, 2, 3 }, 2, 3, 1)))\n"
    "  say(list(table.move({ 1, 2, 3 }, 1, 3, 1, {}))) say(try(table.move, {}, 1, 2)) say(try(table.move, {}, -1, math.maxinteger, 1))\n"
    "  say(try(table.move, {}, 1, math.maxinteger, 2)) say(try(table.move, {}, 3, 1, 1)) say(try(table.move, 1, 1, 1, 1))\n"
    "  say(try(table.unpack, { 1, 2, 3 })) say(try(table.unpack, { 1, 2, 3 }, 2)) say(try(table.unpack, { 1, 2, 3 }, 2, 5))\n"
    "  say(try(table.unpack, { 1, 2 }, 3, 1)) say(try(table.unpack, {}, 1, 1e8)) say(try(table.unpack, 'abc'))\n"
    "  say(try(table.unpack, {}, 'x')) say(try(table.unpack, nil)) say(try(table.unpack, {}, math.mininteger, math.maxinteger))\n"
    "  local u = { 3, 1, 2, 5, 4 } say(try(table.sort, u)) say(list(u)) say(try(table.sort, u, function(a, b) return a > b end)) say(list(u))\n"
    "  say(try(table.sort, { 1, 'x' })) say(try(table.sort, u, 3)) say(try(table.sort, nil)) say(try(table.sort, { 1, 2, 3 }, function() return true end))\n"
    "  local calls, mt = 0, {}\n"
    "  local len = function() calls = calls + 1 return calls == 1 and 3 or math.maxinteger end\n"
    "  mt.__len = len\n"
    "  local f = setmetatable({ 1, 2, 3 }, mt)\n"
    "  for _, fn in ipairs({ function() return table.remove(f, 1) end, function() return table.insert(f, 1, 0) end,\n"
    "      function() return table.insert(f, 9) end, function() return table.sort(f) end,\n"
    "      function() return table.concat(f, '-') end, function() return table.unpack(f) end, function() return table.remove(f) end }) do\n"
    "    calls = 0\n"
    "    say(try(fn)) say(tostring(calls) .. tostring(mt.__len == len)) say(list(f))\n"
    "  end\n"
    "  local m = setmetatable({}, { __index = function(_, k) return k * 10 end, __len = function() return 3 end })\n"
    "  say(try(table.concat, m, ' ')) say(try(table.unpack, m)) say(try(table.sort, setmetatable({}, { __len = function() return 1.5 end })))\n"
    "  return table.concat(out, '\\n')\n"
    "end\n";

static void test_library(void)
{
    duel d;
    duel_open(&d);
    lua_State *S = d.stock;
    CU_ASSERT_FATAL(luaL_loadbuffer(S, library_lua, sizeof library_lua - 1, "=library") == LUA_OK && lua_pcall(S, 0, 0, 0) == LUA_OK);
    HC_ASSERT_OK(hc_lua_run_string(d.box, "library", library_lua));
    lua_getglobal(S, "library");
    CU_ASSERT_FATAL(lua_pcall(S, 0, 1, 0) == LUA_OK);
    HC_ASSERT_OK(hc_lua_call(d.box, "library", 0, 1));
    const char *a = lua_tostring(S, -1), *b = lua_tostring(hc_lua_state(d.box), -1);
    int line = 1;
    while (*a || *b) { /* exactly the same, error messages included */
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || memcmp(a, b, la)) {
            printf("\n  line %d: stock '%.*s', sandbox '%.*s'", line, (int)la, a, (int)lb, b);
            CU_FAIL("the guarded library answers otherwise");
        }
        a += la + (a[la] != 0);
        b += lb + (b[lb] != 0);
        line++;
    }
    printf("\n  library: %d results compared\n", line - 1);
    lua_pop(S, 1);
    lua_pop(hc_lua_state(d.box), 1);
    hc_lua_close(d.box);
    lua_close(S);
}

int main(void)
{
    static const hc_test_case cases[] = {
        {"hand-written patterns: the sandbox answers as stock Lua", test_hand_written},
        {"random patterns: the sandbox answers as stock Lua", test_random},
        {"string.rep and the table library answer as stock Lua", test_library},
        {NULL, NULL},
    };
    return hc_test_run("lua_pattern", cases);
}
