/* lua_libs.h: the parts of Lua's standard library the sandbox carries in its own version, each loop
 * in C charged to the run's budget: the table library, and string's pattern functions and rep. */
#ifndef HC_LUA_LIBS_H
#define HC_LUA_LIBS_H

#include <lua.h>

/* The table library (lua_tablib.c), as luaopen_table. */
int hc_lua_open_table(lua_State *L);
/* Replaces find, match, gmatch, gsub and rep in the string table on top of the stack (lua_strlib.c). */
void hc_lua_bound_string(lua_State *L);

#endif
