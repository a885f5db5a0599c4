/* pipeline_lua.c: reads a pipeline script's `layer` and `head` stage lists in the Lua sandbox,
 * turns them into hc_stage records, and checks every buffer, width and ordering rule. */
#include "pipeline_lua.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SPECS 64

typedef struct stage_spec {
    char op[16], name[32], in0[16], in1[16], out[16], sched[65];
    int branch;
} stage_spec;

typedef struct spec_list {
    stage_spec layer[MAX_SPECS], head[MAX_SPECS];
    int n_layer, n_head;
    char default_sched[65];
    int on_step_every;
} spec_list;

/* the buffers a script may name, indexed by hc_buf (the first eleven) */
static const char *const buf_names[] = { "x", "xn", "q", "k", "v", "att", "proj", "gate", "up", "hidden", "logits" };
#define N_SCRIPT_BUFS (int)(sizeof buf_names / sizeof buf_names[0])
/* the ops a script may use, indexed by hc_stage_op (the first eight) */
static const char *const op_names[] = { "embed", "norm", "linear", "rope", "kv_store", "attention", "swiglu", "add" };
#define N_SCRIPT_OPS (int)(sizeof op_names / sizeof op_names[0])

/* Copies the string field `key` of the table on top of the stack (optional: "" when nil). */
static void read_string(lua_State *L, const char *list, int i, const char *key, char *dst, size_t cap, int required)
{
    lua_getfield(L, -1, key);
    if (lua_isnil(L, -1)) {
        if (required) luaL_error(L, "%s[%d]: the field '%s' is missing", list, i, key);
        dst[0] = '\0';
    } else if (lua_type(L, -1) != LUA_TSTRING) {
        luaL_error(L, "%s[%d]: the field '%s' must be a string, not a %s", list, i, key, luaL_typename(L, -1));
    } else {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (n >= cap) luaL_error(L, "%s[%d]: the field '%s' is longer than %d characters", list, i, key, (int)cap - 1);
        memcpy(dst, s, n + 1);
    }
    lua_pop(L, 1);
}

static int read_list(lua_State *L, const char *global, stage_spec *out, int *n, int required)
{
    lua_getglobal(L, global);
    if (lua_isnil(L, -1) && !required) {
        lua_pop(L, 1);
        *n = -1;
        return 0;
    }
    if (!lua_istable(L, -1)) return luaL_error(L, "the global '%s' must be a table of stages", global);
    lua_Integer len = luaL_len(L, -1);
    if (len < 1 || len > MAX_SPECS) return luaL_error(L, "'%s' must hold 1 to %d stages, not %d", global, MAX_SPECS, (int)len);
    for (int i = 1; i <= len; i++) {
        lua_geti(L, -1, i);
        if (!lua_istable(L, -1)) return luaL_error(L, "%s[%d] must be a table, not a %s", global, i, luaL_typename(L, -1));
        stage_spec *s = &out[i - 1];
        read_string(L, global, i, "op", s->op, sizeof s->op, 1);
        read_string(L, global, i, "name", s->name, sizeof s->name, 1);
        read_string(L, global, i, "input", s->in0, sizeof s->in0, 0);
        read_string(L, global, i, "input2", s->in1, sizeof s->in1, 0);
        read_string(L, global, i, "output", s->out, sizeof s->out, 0);
        read_string(L, global, i, "sched", s->sched, sizeof s->sched, 0);
        lua_getfield(L, -1, "branch");
        if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) return luaL_error(L, "%s[%d]: 'branch' must be true or false", global, i);
        s->branch = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    *n = (int)len;
    return 0;
}

static int read_script(lua_State *L)
{
    spec_list *sl = lua_touserdata(L, 1);
    read_list(L, "layer", sl->layer, &sl->n_layer, 1);
    read_list(L, "head", sl->head, &sl->n_head, 0);
    lua_getglobal(L, "sched");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "the global 'sched' must be a scheduler name");
        snprintf(sl->default_sched, sizeof sl->default_sched, "%s", lua_tostring(L, -1));
    }
    lua_getglobal(L, "on_step_every");
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > 1000000)
            return luaL_error(L, "the global 'on_step_every' must be an integer from 1 to 1000000");
        sl->on_step_every = (int)lua_tointeger(L, -1);
    }
    lua_pop(L, 2);
    return 0;
}

static int lookup(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}

static int buffer_width(const hc_model_config *c, int b)
{
    switch (b) {
    case HC_BUF_X: case HC_BUF_XN: case HC_BUF_PROJ: return c->dim;
    case HC_BUF_Q: case HC_BUF_ATT: return c->n_head * c->head_dim;
    case HC_BUF_K: case HC_BUF_V: return c->n_head_kv * c->head_dim;
    case HC_BUF_GATE: case HC_BUF_UP: case HC_BUF_HIDDEN: return c->ffn_dim;
    default: return c->n_vocab;
    }
}

typedef struct build_ctx {
    const hc_model *m;
    hc_device *dev;
    const char *path;
    hc_stage *stages;
    hc_stage_sched *sched;
    int n;
} build_ctx;

/* Turns one description into a stage of `layer` (-1: the head), checking it against what the
 * stages before it in the same list have written. */
static hc_status add_stage(build_ctx *b, const stage_spec *sp, int pos, int layer, int *written, int *stored_kv)
{
    const hc_model_config *c = &b->m->cfg;
    const char *list = layer >= 0 ? "layer" : "head";
    hc_stage *s = &b->stages[b->n];
    int op = lookup(op_names, N_SCRIPT_OPS, sp->op);
    if (op < 0 || op == HC_OP_EMBED)
        return hc_error(HC_E_SCRIPT, "%s: %s[%d] (%s): unknown op '%s' (norm, linear, rope, kv_store, attention, swiglu, add)",
                        b->path, list, pos, sp->name, sp->op);
    int in0 = sp->in0[0] ? lookup(buf_names, N_SCRIPT_BUFS, sp->in0) : -1;
    int in1 = sp->in1[0] ? lookup(buf_names, N_SCRIPT_BUFS, sp->in1) : -1;
    int out = sp->out[0] ? lookup(buf_names, N_SCRIPT_BUFS, sp->out) : -1;
    const char *bad = (sp->in0[0] && in0 < 0) ? sp->in0 : (sp->in1[0] && in1 < 0) ? sp->in1 : (sp->out[0] && out < 0) ? sp->out : NULL;
    if (bad)
        return hc_error(HC_E_SCRIPT, "%s: %s[%d] (%s): '%s' is not a buffer (x, xn, q, k, v, att, proj, gate, up, hidden, logits)",
                        b->path, list, pos, sp->name, bad);
    /* which buffers the op needs */
    int need_in1 = op == HC_OP_ROPE || op == HC_OP_KV_STORE || op == HC_OP_SWIGLU;
    int need_out = op != HC_OP_ROPE && op != HC_OP_KV_STORE;
    if (in0 < 0 || (need_in1 && in1 < 0) || (need_out && out < 0))
        return hc_error(HC_E_SCRIPT, "%s: %s[%d] (%s): op '%s' needs %s%s%s", b->path, list, pos, sp->name, sp->op, "input",
                        need_in1 ? ", input2" : "", need_out ? " and output" : "");
    int ins[2] = { in0, need_in1 ? in1 : -1 };
    for (int k = 0; k < 2; k++)
        if (ins[k] >= 0 && !written[ins[k]])
            return hc_error(HC_E_SCRIPT, "%s: %s[%d] (%s): reads '%s' before any stage of the %s wrote it", b->path, list, pos,
                            sp->name, buf_names[ins[k]], layer >= 0 ? "layer" : "head");
    *s = (hc_stage){ .op = (hc_stage_op)op, .layer = layer, .proj = -1, .in0 = (hc_buf)in0, .in1 = need_in1 ? (hc_buf)in1 : HC_BUF_NONE,
                     .out = need_out ? (hc_buf)out : HC_BUF_NONE, .device = b->dev };
    if (layer >= 0) snprintf(s->name, sizeof s->name, "blk.%d.%s", layer, sp->name);
    else snprintf(s->name, sizeof s->name, "%s", sp->name);
    int w_in = buffer_width(c, in0), w_out = need_out ? buffer_width(c, out) : 0;
    const hc_tensor *w = NULL;
    const char *why = NULL;
    switch (op) {
    case HC_OP_NORM:
        if (layer >= 0 && !strcmp(sp->name, "attn_norm")) w = &b->m->layers[layer].attn_norm;
        else if (layer >= 0 && !strcmp(sp->name, "ffn_norm")) w = &b->m->layers[layer].ffn_norm;
        else if (layer < 0 && !strcmp(sp->name, "output_norm")) w = &b->m->out_norm;
        else why = layer >= 0 ? "a layer's norm is named attn_norm or ffn_norm" : "the head's norm is named output_norm";
        if (!why && (w_in != c->dim || w_out != c->dim)) why = "a norm reads and writes dim-wide buffers (x, xn, proj)";
        s->weight = w;
        break;
    case HC_OP_LINEAR:
        if (layer >= 0) {
            int p = -1;
            for (int k = 0; k < HC_PROJ_COUNT; k++)
                if (!strcmp(sp->name, hc_proj_name(k))) p = k;
            if (p < 0) {
                why = "a layer's linear stage is named attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up or ffn_down";
                break;
            }
            s->proj = p;
            w = &b->m->layers[layer].proj[p];
            s->bias = b->m->layers[layer].bias[p].data ? &b->m->layers[layer].bias[p] : NULL;
        } else if (!strcmp(sp->name, "output")) {
            w = &b->m->output;
        } else {
            why = "the head's linear stage is named output";
            break;
        }
        s->weight = w;
        if (w->ne[0] != w_in || w->ne[1] != w_out) {
            static char msg[160];
            snprintf(msg, sizeof msg, "the weight is %lld -> %lld but '%s' is %d wide and '%s' %d wide", (long long)w->ne[0],
                     (long long)w->ne[1], buf_names[in0], w_in, buf_names[out], w_out);
            why = msg;
        }
        break;
    case HC_OP_ROPE:
        if (w_in != c->n_head * c->head_dim || buffer_width(c, in1) != c->n_head_kv * c->head_dim)
            why = "rope rotates the queries (input, e.g. q) and the keys (input2, e.g. k)";
        break;
    case HC_OP_KV_STORE:
        if (w_in != c->n_head_kv * c->head_dim || buffer_width(c, in1) != c->n_head_kv * c->head_dim)
            why = "kv_store takes the keys (input) and the values (input2)";
        else if (layer < 0) why = "kv_store belongs in a layer";
        else *stored_kv = 1;
        break;
    case HC_OP_ATTENTION:
        if (layer < 0) why = "attention belongs in a layer";
        else if (!*stored_kv) why = "attention needs a kv_store stage earlier in the layer";
        else if (w_in != c->n_head * c->head_dim || w_out != c->n_head * c->head_dim) why = "attention reads queries and writes a query-wide buffer (att)";
        break;
    case HC_OP_SWIGLU:
        if (w_in != buffer_width(c, in1) || w_in != w_out) why = "swiglu's input, input2 and output must have the same width";
        break;
    case HC_OP_ADD:
        if (w_in != w_out) why = "add's input and output must have the same width";
        break;
    }
    if (why) return hc_error(HC_E_SCRIPT, "%s: %s[%d] (%s): %s", b->path, list, pos, sp->name, why);
    if (op == HC_OP_LINEAR && !sp->branch) s->branch_enabled = -1; /* the script turned this branch off */
    snprintf(b->sched[b->n].name, sizeof b->sched[b->n].name, "%s", sp->sched);
    if (need_out) written[out] = 1;
    b->n++;
    return HC_OK;
}

static const stage_spec default_head[2] = {
    { .op = "norm", .name = "output_norm", .in0 = "x", .out = "xn", .branch = 1 },
    { .op = "linear", .name = "output", .in0 = "xn", .out = "logits", .branch = 1 },
};

hc_status hc_pipeline_from_lua(const hc_model *m, hc_device *dev, const char *path, const hc_lua_limits *lim,
                               hc_stage **stages, int *n_stages, hc_stage_sched **sched, hc_pipeline_script **script)
{
    if (m->cfg.ffn_act != HC_ACT_SILU || (m->cfg.n_layer > 0 && m->layers[0].attn_post_norm.data))
        return hc_error(HC_E_SCRIPT, "%s: a Lua pipeline cannot describe %s's layer (post norms, GeGLU): run it without a pipeline script",
                        path, m->cfg.arch);
    hc_pipeline_script *ps = calloc(1, sizeof *ps);
    spec_list *sl = calloc(1, sizeof *sl);
    build_ctx b = { .m = m, .dev = dev, .path = path };
    hc_status st = (!ps || !sl) ? hc_error(HC_E_NOMEM, "pipeline: out of memory") : HC_OK;
    if (st == HC_OK) {
        snprintf(ps->path, sizeof ps->path, "%s", path);
        sl->on_step_every = 1;
        st = hc_lua_open(lim, &ps->lua);
    }
    if (st == HC_OK) st = hc_lua_run_file(ps->lua, path);
    if (st == HC_OK) st = hc_lua_pcall_c(ps->lua, read_script, sl, 0);
    if (st == HC_OK) {
        const stage_spec *head = sl->n_head > 0 ? sl->head : default_head;
        int n_head = sl->n_head > 0 ? sl->n_head : 2;
        int cap = 1 + m->cfg.n_layer * sl->n_layer + n_head;
        b.stages = calloc((size_t)cap, sizeof *b.stages);
        b.sched = calloc((size_t)cap, sizeof *b.sched);
        if (!b.stages || !b.sched) st = hc_error(HC_E_NOMEM, "pipeline: out of memory");
        if (st == HC_OK) {
            b.stages[0] = (hc_stage){ .op = HC_OP_EMBED, .layer = -1, .proj = -1, .in0 = HC_BUF_NONE, .in1 = HC_BUF_NONE,
                                      .out = HC_BUF_X, .weight = &m->tok_embd, .device = dev };
            snprintf(b.stages[0].name, sizeof b.stages[0].name, "token_embd");
            b.n = 1;
        }
        for (int l = 0; l < m->cfg.n_layer && st == HC_OK; l++) {
            int written[HC_BUF_COUNT] = { [HC_BUF_X] = 1 }, stored_kv = 0;
            for (int i = 0; i < sl->n_layer && st == HC_OK; i++) st = add_stage(&b, &sl->layer[i], i + 1, l, written, &stored_kv);
        }
        int written[HC_BUF_COUNT] = { [HC_BUF_X] = 1 }, stored_kv = 0;
        for (int i = 0; i < n_head && st == HC_OK; i++) st = add_stage(&b, &head[i], i + 1, -1, written, &stored_kv);
        if (st == HC_OK && !written[HC_BUF_LOGITS]) st = hc_error(HC_E_SCRIPT, "%s: the head never writes 'logits'", path);
    }
    if (st == HC_OK) {
        snprintf(ps->default_sched, sizeof ps->default_sched, "%s", sl->default_sched);
        ps->on_step_every = sl->on_step_every;
        ps->has_on_step = hc_lua_has_function(ps->lua, "on_step");
        *stages = b.stages;
        *n_stages = b.n;
        *sched = b.sched;
        *script = ps;
    } else {
        free(b.stages);
        free(b.sched);
        hc_pipeline_script_free(ps);
    }
    free(sl);
    return st;
}

void hc_pipeline_script_free(hc_pipeline_script *s)
{
    if (!s) return;
    if (s->lua) hc_lua_close(s->lua);
    free(s);
}
