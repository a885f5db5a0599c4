/* pipeline_source.c: a Lua pipeline script as the context's pipeline source: build reads the
 * script (pipeline_lua.c), on_step calls its policy (on_step_lua.c). */
#include <stdio.h>
#include <stdlib.h>

#include "on_step_lua.h"
#include "pipeline_lua.h"

typedef struct lua_source {
    hc_pipeline_source src;
    char path[1024];
    hc_lua_limits lim;
    int has_lim;
    hc_pipeline_script *script;   /* after build */
} lua_source;

static hc_status build(void *self, const hc_model *m, hc_device *dev, hc_stage **stages, int *n_stages, hc_stage_sched **sched)
{
    lua_source *ls = self;
    hc_pipeline_script_free(ls->script);
    ls->script = NULL;
    return hc_pipeline_from_lua(m, dev, ls->path, ls->has_lim ? &ls->lim : NULL, stages, n_stages, sched, &ls->script);
}

static const char *default_sched(void *self)
{
    lua_source *ls = self;
    return ls->script ? ls->script->default_sched : "";
}

static hc_status on_step(void *self, hc_context *c, int n_tok)
{
    lua_source *ls = self;
    return ls->script && ls->script->has_on_step ? hc_on_step_lua(ls->script, c, n_tok) : HC_OK;
}

static int on_step_every(void *self)
{
    lua_source *ls = self;
    return ls->script && ls->script->on_step_every > 0 ? ls->script->on_step_every : 1;
}

hc_status hc_pipeline_lua_open(const char *path, const hc_lua_limits *lim, hc_pipeline_source **out)
{
    lua_source *ls = calloc(1, sizeof *ls);
    if (!ls) return hc_error(HC_E_NOMEM, "pipeline %s: out of memory", path);
    snprintf(ls->path, sizeof ls->path, "%s", path);
    if (lim) ls->lim = *lim, ls->has_lim = 1;
    ls->src = (hc_pipeline_source){ .name = ls->path, .self = ls, .build = build, .default_sched = default_sched,
                                    .on_step = on_step, .on_step_every = on_step_every };
    *out = &ls->src;
    return HC_OK;
}

void hc_pipeline_lua_close(hc_pipeline_source *src)
{
    if (!src) return;
    lua_source *ls = src->self;
    hc_pipeline_script_free(ls->script);
    free(ls);
}
