/* step_hook.c: what runs after every step of the forward pass: the dynamic-rank controller, then
 * the pipeline source's on_step policy (a Lua script's, core/script/on_step_lua.c) when it has one. */
#include "step_hook.h"

#include "context.h"
#include "rank_control.h"

hc_status hc_step_hooks_run(hc_context *c, int n_tok)
{
    c->steps++;
    if (!c->brt) return HC_OK;
    hc_rank_control_step(&c->rank_control, c);
    const hc_pipeline_source *src = c->source;
    if (src && src->on_step && c->steps % src->on_step_every(src->self) == 0) return src->on_step(src->self, c, n_tok);
    return HC_OK;
}
