/* on_step_lua.h: a pipeline script's on_step(stats): the stats of the last step in, the answer (per
 * stage a rank, whether the branch runs, its scheduler, and the host budget) checked, then applied. */
#ifndef HC_ON_STEP_LUA_H
#define HC_ON_STEP_LUA_H

#include "context.h"
#include "pipeline_lua.h"

/* Calls the script's on_step with the stats of the step that just ran over n_tok tokens; a bad
 * answer is refused as a whole (HC_E_SCRIPT naming the script), nothing of it applied. */
hc_status hc_on_step_lua(const hc_pipeline_script *ps, hc_context *c, int n_tok);

#endif
