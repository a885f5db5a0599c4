/* step_hook.h: what runs after every step of the forward pass: the dynamic-rank controller, then a
 * pipeline source's on_step (a Lua script's: core/script/on_step_lua.c). */
#ifndef HC_STEP_HOOK_H
#define HC_STEP_HOOK_H

#include "hc/hc_status.h"

struct hc_context;

/* Called by hc_decode after each forward pass. */
hc_status hc_step_hooks_run(struct hc_context *c, int n_tok);

#endif
