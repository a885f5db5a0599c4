/* session.h: what run, eval and bench share: the plugin registry, a device, a model with its
 * tokenizer and an inference context, opened from common options and closed in one call. */
#ifndef HC_CLI_SESSION_H
#define HC_CLI_SESSION_H

#include <stdio.h>

#include "args.h"
#include "context.h"
#include "model_load.h"
#include "registry.h"
#include "tokenizer.h"

typedef struct hc_session_opts {
    const char *model;        /* -m */
    const char *tokenizer;    /* -z: a llama2.c tokenizer file (GGUF models carry their own) */
    const char *device;       /* --device, default "cpu" */
    int threads;              /* -t (0: automatic, see hc_session_open) */
    int n_ctx;                /* -c */
    int n_batch;              /* -b */
    hc_kv_type kv_type;       /* --kv-type f32|f16 (default f32) */
    hc_handoff handoff;       /* --handoff events|flags (default events) */
    int moe_device_rows;      /* --moe-device-rows N (0: the model's default, -1: none) */
    int to_f32;               /* --f32 */
    int no_comp;              /* --no-comp: run the backbone alone */
    int max_rank;             /* --rank N: cap of the active rank of every branch */
    const char *comp;         /* --comp NAME: compensation kernel plugin (default "host") */
    const char *sched;        /* --sched NAME: overlap scheduler plugin (NULL: automatic, see session.c) */
    int host_threads;         /* --host-threads N (default 1) */
    const char *pipeline;     /* --pipeline FILE.lua */
    float host_budget;        /* --host-budget X: dynamic ranks keep host time <= X * device time */
} hc_session_opts;

typedef struct hc_session {
    hc_registry *registry;
    hc_device *device;
    hc_model *model;
    hc_tokenizer *tok;
    hc_context *ctx;
    hc_pipeline_source *pipeline; /* --pipeline: the Lua script the context builds from, or NULL */
    int device_threads;       /* the device's threads, as resolved */
    int host_threads;         /* threads running branches on the host (0: none) */
    const char *sched;        /* the scheduler, as resolved */
} hc_session;

void hc_session_opts_init(hc_session_opts *o);
/* One line on f: the branches in use, the scheduler and the threads (as resolved). */
void hc_session_describe(const hc_session *s, FILE *f);
/* Parses one of the shared options at a->argv[a->i]; returns 1 when it was one (st set). */
int hc_session_parse_option(hc_session_opts *o, hc_args *a, hc_status *st);
/* Text for --help listing the shared options. */
extern const char hc_session_help[];

hc_status hc_session_open(const hc_session_opts *o, hc_session *s);
void hc_session_close(hc_session *s);

/* Creates a device by plugin name (probe first: a device that is absent says so). */
hc_status hc_device_open(hc_registry *r, const char *name, const hc_device_config *cfg, hc_device **out);

#endif
