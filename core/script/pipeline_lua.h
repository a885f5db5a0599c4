/* pipeline_lua.h: pipeline composition from a Lua script (scripts/pipelines/NAME.lua): the stages of
 * a decoder layer and of the head, which linear stages get a branch and which scheduler drives
 * it, checked for consistency before anything runs. */
#ifndef HC_PIPELINE_LUA_H
#define HC_PIPELINE_LUA_H

#include "context.h"
#include "hc/hc_stage.h"
#include "lua_host.h"
#include "model.h"

typedef struct hc_pipeline_script {
    hc_lua *lua;              /* kept open for the script's on_step function */
    char path[1024];
    char default_sched[65];   /* the script's global `sched` ("" when unset) */
    int has_on_step;
    int on_step_every;        /* call on_step every N steps (global on_step_every, default 1) */
} hc_pipeline_script;

/* Builds the full stage list (embed, n_layer x the script's `layer`, the script's `head`) and
 * per stage the scheduler name it asks for (sched[i].name, "" = the default). The script's sandbox
 * gets the limits lim (NULL: the defaults), for loading and for every on_step call. Errors name
 * the script and, for a bad stage description, the stage's position and name. */
hc_status hc_pipeline_from_lua(const hc_model *m, hc_device *dev, const char *path, const hc_lua_limits *lim,
                               hc_stage **stages, int *n_stages, hc_stage_sched **sched, hc_pipeline_script **script);
void hc_pipeline_script_free(hc_pipeline_script *s);

/* The pipeline source (context.h) of the script at path: the script is read when a context builds
 * its stages, and its on_step runs after the steps, in a sandbox of limits lim (NULL: lua_host.h's
 * defaults). One context at a time; close it after that context is freed. */
hc_status hc_pipeline_lua_open(const char *path, const hc_lua_limits *lim, hc_pipeline_source **out);
void hc_pipeline_lua_close(hc_pipeline_source *src);

#endif
