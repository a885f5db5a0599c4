/* lua_libs.h: how the sandbox keeps stock library functions whose loops run in C within its budget:
 * its own pattern functions (lua_strpat.c), and guards around string.rep and the table library. */
#ifndef HC_LUA_LIBS_H
#define HC_LUA_LIBS_H

#include <stddef.h>

#include <lua.h>

/* Sets find, match, gmatch and gsub in the table on top of the stack (the string library) to the
 * sandbox's own (lua_strpat.c, on the matcher of lua_pattern.c). */
void hc_lua_set_patterns(lua_State *L);

/* Wraps string.rep (the string table on top of the stack) and the table library's concat, insert,
 * move, remove, sort and unpack (the table table on top): each wrapper charges the work the stock
 * function is about to do, then calls it (lua_guard.c). */
void hc_lua_guard_string(lua_State *L);
void hc_lua_guard_table(lua_State *L);

/* The memory limit of the sandbox that S runs in, in bytes (lua_host.c). */
size_t hc_lua_memory_limit(lua_State *S);

#endif
