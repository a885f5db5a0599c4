/* lua_host.h: a sandboxed Lua 5.4 interpreter for policy and pipeline scripts: base, string, table
 * and math only (no files, processes, modules or bytecode), bounded instructions, time and memory. */
#ifndef HC_LUA_HOST_H
#define HC_LUA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "hc/hc_status.h"

typedef struct hc_lua hc_lua;

/* 0 selects the default: 1e8 VM instructions and 10 s of wall-clock time per run or call, 64 MiB
 * of Lua memory in all. The library's loops in C (pattern matching, table.move, fill_steps, ...)
 * count against the instructions too, and check the time, so no call escapes either bound. */
typedef struct hc_lua_limits {
    uint64_t max_instructions;
    size_t max_memory;
    uint32_t max_ms;
} hc_lua_limits;

#define HC_LUA_DEFAULT_INSTRUCTIONS 100000000ull
#define HC_LUA_DEFAULT_MEMORY ((size_t)64 << 20)
#define HC_LUA_DEFAULT_MS 10000u

/* A fresh sandbox. Globals: the base library without dofile, loadfile and load (collectgarbage
 * accepts only "count", "collect" and "step"; print writes to stderr), string without dump,
 * table, math (random seeded with a fixed seed, so runs repeat). Reading one of the removed
 * globals (io, os, package, require, debug, load, loadfile, dofile, ...) raises an error naming
 * it; any other absent global is nil as usual. */
hc_status hc_lua_open(const hc_lua_limits *lim, hc_lua **out);
void hc_lua_close(hc_lua *L);

/* Loads a text chunk (binary chunks are refused) and runs it with a fresh instruction budget.
 * Errors: HC_E_SCRIPT with "file:line: message" (plus the Lua call stack); an unreadable file
 * is HC_E_IO. The state stays usable after any error. */
hc_status hc_lua_run_file(hc_lua *L, const char *path);
hc_status hc_lua_run_string(hc_lua *L, const char *name, const char *code);

/* The interpreter, to push arguments and read results. Anything that allocates (tables, strings)
 * can raise a Lua error once the memory limit is reached: build arguments inside hc_lua_pcall_c. */
lua_State *hc_lua_state(hc_lua *L);

/* Calls the global function `fn` with the nargs values the caller pushed, with a fresh
 * instruction budget. On success exactly nresults values (LUA_MULTRET: all) replace the
 * arguments; on failure the arguments are popped, nothing is pushed, and the error is
 * HC_E_SCRIPT naming the file and line where the error was raised. */
hc_status hc_lua_call(hc_lua *L, const char *fn, int nargs, int nresults);

/* 1 when the global `fn` is a function. */
int hc_lua_has_function(hc_lua *L, const char *fn);

/* Runs the C function fn in protected mode with one argument, ud as a light userdata; it leaves
 * nresults values on the stack. A Lua error inside (out of memory included) becomes HC_E_SCRIPT
 * and leaves nothing. Lua code it triggers (metamethods) gets a fresh instruction budget. */
hc_status hc_lua_pcall_c(hc_lua *L, lua_CFunction fn, void *ud, int nresults);

/* Sets the global `name` to the C function fn with ud as its first upvalue
 * (lua_touserdata(L, lua_upvalueindex(1)) inside fn). */
hc_status hc_lua_register(hc_lua *L, const char *name, lua_CFunction fn, void *ud);

/* t[key] = v for the table on top of the stack (the table stays there). */
void hc_lua_set_int(lua_State *S, const char *key, lua_Integer v);
void hc_lua_set_num(lua_State *S, const char *key, lua_Number v);
void hc_lua_set_str(lua_State *S, const char *key, const char *v);
void hc_lua_set_bool(lua_State *S, const char *key, int v);

/* For C functions the sandbox runs (library loops, host helpers such as fill_steps): counts units
 * of work against the instruction budget of the current run or call and, every 1024 units, checks
 * its deadline; a charge of 1024 units or more, work about to be done, must also fit in the time
 * left at 1 ns a unit. Past either, it raises the same error as the instruction hook ("instruction
 * limit of N exceeded" or "time limit of N ms exceeded", located at the calling script's line by
 * the host) and keeps raising at every later instruction, so that a pcall cannot swallow it. */
HC_API void hc_lua_charge(lua_State *S, uint64_t units);

/* Lua memory in use now, and the VM instructions the last run or call executed (counted in
 * steps of the hook's granularity, at most 1000). */
size_t hc_lua_memory(const hc_lua *L);
uint64_t hc_lua_instructions(const hc_lua *L);

#endif
