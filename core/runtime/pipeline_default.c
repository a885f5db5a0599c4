/* pipeline_default.c: the stage list of a Llama-family decoder, the same order llama2.c's
 * forward() computes (with gemma3's post norms and GeGLU); a Lua pipeline script may rearrange it. */
#include <stdio.h>
#include <stdlib.h>

#include "context.h"

typedef struct builder {
    hc_stage *s;
    int n, cap;
    hc_device *dev;
} builder;

static hc_stage *add(builder *b, const char *name, int layer, hc_stage_op op, hc_buf in0, hc_buf in1, hc_buf out)
{
    hc_stage *s = &b->s[b->n++];
    *s = (hc_stage){ .op = op, .layer = layer, .proj = -1, .in0 = in0, .in1 = in1, .out = out, .device = b->dev };
    if (layer >= 0) snprintf(s->name, sizeof s->name, "blk.%d.%s", layer, name);
    else snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static void add_linear(builder *b, const hc_layer *L, int layer, hc_proj p, hc_buf in, hc_buf out)
{
    hc_stage *s = add(b, hc_proj_name(p), layer, HC_OP_LINEAR, in, HC_BUF_NONE, out);
    s->proj = p;
    s->weight = &L->proj[p];
    s->bias = L->bias[p].data ? &L->bias[p] : NULL;
}

/* ---- mixture of experts (see moe.h for the data flow) ---- */

static void add_experts(builder *b, const hc_layer *L, int layer, hc_proj p, hc_buf in, hc_buf out)
{
    static const char *const names[HC_EXP_COUNT] = { "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps" };
    hc_stage *s = add(b, names[p - HC_PROJ_GATE], layer, HC_OP_MOE_LINEAR, in, HC_BUF_NONE, out);
    s->proj = p;
    s->weight = &L->moe.exps[p - HC_PROJ_GATE];
}

/* A MoE layer's FFN after ffn_norm: routed experts, then the gated shared expert if any. */
static void add_moe_ffn(builder *b, const hc_layer *L, int l)
{
    add(b, "ffn_gate_inp", l, HC_OP_MOE_ROUTE, HC_BUF_XN, HC_BUF_NONE, HC_BUF_MOE_X)->weight = &L->moe.router;
    add_experts(b, L, l, HC_PROJ_GATE, HC_BUF_MOE_X, HC_BUF_MOE_GATE);
    add_experts(b, L, l, HC_PROJ_UP, HC_BUF_MOE_X, HC_BUF_MOE_UP);
    add(b, "ffn_act_exps", l, HC_OP_MOE_ACT, HC_BUF_MOE_GATE, HC_BUF_MOE_UP, HC_BUF_MOE_HIDDEN);
    add_experts(b, L, l, HC_PROJ_DOWN, HC_BUF_MOE_HIDDEN, HC_BUF_MOE_OUT);
    add(b, "ffn_moe_out", l, HC_OP_MOE_COMBINE, HC_BUF_MOE_OUT, HC_BUF_NONE, HC_BUF_PROJ);
    add(b, "ffn_residual", l, HC_OP_ADD, HC_BUF_PROJ, HC_BUF_NONE, HC_BUF_X);
    if (!L->moe.shexp_gate.data) return;
    add_linear(b, L, l, HC_PROJ_GATE_SHEXP, HC_BUF_XN, HC_BUF_SHEXP_GATE);
    add_linear(b, L, l, HC_PROJ_UP_SHEXP, HC_BUF_XN, HC_BUF_SHEXP_UP);
    add(b, "ffn_act_shexp", l, HC_OP_SWIGLU, HC_BUF_SHEXP_GATE, HC_BUF_SHEXP_UP, HC_BUF_SHEXP_HIDDEN);
    add_linear(b, L, l, HC_PROJ_DOWN_SHEXP, HC_BUF_SHEXP_HIDDEN, HC_BUF_PROJ);
    add(b, "ffn_gate_inp_shexp", l, HC_OP_SHEXP_GATE, HC_BUF_XN, HC_BUF_NONE, HC_BUF_PROJ)->weight = &L->moe.shexp_gate;
    add(b, "ffn_residual_shexp", l, HC_OP_ADD, HC_BUF_PROJ, HC_BUF_NONE, HC_BUF_X);
}

hc_status hc_pipeline_default(const hc_model *m, hc_device *dev, hc_stage **stages, int *n_stages)
{
    builder b = { .cap = 3 + 32 * m->cfg.n_layer, .dev = dev }; /* at most 25 stages per layer (qwen2moe) */
    if (!(b.s = calloc((size_t)b.cap, sizeof *b.s))) return hc_error(HC_E_NOMEM, "pipeline: out of memory");
    add(&b, "token_embd", -1, HC_OP_EMBED, HC_BUF_NONE, HC_BUF_NONE, HC_BUF_X)->weight = &m->tok_embd;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const hc_layer *L = &m->layers[l];
        add(&b, "attn_norm", l, HC_OP_NORM, HC_BUF_X, HC_BUF_NONE, HC_BUF_XN)->weight = &L->attn_norm;
        add_linear(&b, L, l, HC_PROJ_Q, HC_BUF_XN, HC_BUF_Q);
        add_linear(&b, L, l, HC_PROJ_K, HC_BUF_XN, HC_BUF_K);
        add_linear(&b, L, l, HC_PROJ_V, HC_BUF_XN, HC_BUF_V);
        if (L->attn_q_norm.data) /* qwen3: RMS norm of each query and key head before rope; olmoe: of all q, all k */
            add(&b, "attn_q_norm", l, HC_OP_HEAD_NORM, HC_BUF_Q, HC_BUF_NONE, HC_BUF_NONE)->weight = &L->attn_q_norm;
        if (L->attn_k_norm.data)
            add(&b, "attn_k_norm", l, HC_OP_HEAD_NORM, HC_BUF_K, HC_BUF_NONE, HC_BUF_NONE)->weight = &L->attn_k_norm;
        add(&b, "rope", l, HC_OP_ROPE, HC_BUF_Q, HC_BUF_K, HC_BUF_NONE);
        add(&b, "kv_store", l, HC_OP_KV_STORE, HC_BUF_K, HC_BUF_V, HC_BUF_NONE);
        add(&b, "attention", l, HC_OP_ATTENTION, HC_BUF_Q, HC_BUF_NONE, HC_BUF_ATT);
        add_linear(&b, L, l, HC_PROJ_O, HC_BUF_ATT, HC_BUF_PROJ);
        if (L->attn_post_norm.data) /* gemma3: the attention's output normalised before the residual add */
            add(&b, "post_attention_norm", l, HC_OP_NORM, HC_BUF_PROJ, HC_BUF_NONE, HC_BUF_PROJ)->weight = &L->attn_post_norm;
        add(&b, "attn_residual", l, HC_OP_ADD, HC_BUF_PROJ, HC_BUF_NONE, HC_BUF_X);
        add(&b, "ffn_norm", l, HC_OP_NORM, HC_BUF_X, HC_BUF_NONE, HC_BUF_XN)->weight = &L->ffn_norm;
        if (m->cfg.n_expert > 0) {
            add_moe_ffn(&b, L, l);
            continue;
        }
        add_linear(&b, L, l, HC_PROJ_GATE, HC_BUF_XN, HC_BUF_GATE);
        add_linear(&b, L, l, HC_PROJ_UP, HC_BUF_XN, HC_BUF_UP);
        hc_stage_op act = m->cfg.ffn_act == HC_ACT_GELU_TANH ? HC_OP_GEGLU : HC_OP_SWIGLU;
        add(&b, "ffn_act", l, act, HC_BUF_GATE, HC_BUF_UP, HC_BUF_HIDDEN);
        add_linear(&b, L, l, HC_PROJ_DOWN, HC_BUF_HIDDEN, HC_BUF_PROJ);
        if (L->ffn_post_norm.data) /* gemma3 */
            add(&b, "post_ffw_norm", l, HC_OP_NORM, HC_BUF_PROJ, HC_BUF_NONE, HC_BUF_PROJ)->weight = &L->ffn_post_norm;
        add(&b, "ffn_residual", l, HC_OP_ADD, HC_BUF_PROJ, HC_BUF_NONE, HC_BUF_X);
    }
    add(&b, "output_norm", -1, HC_OP_NORM, HC_BUF_X, HC_BUF_NONE, HC_BUF_XN)->weight = &m->out_norm;
    add(&b, "output", -1, HC_OP_LINEAR, HC_BUF_XN, HC_BUF_NONE, HC_BUF_LOGITS)->weight = &m->output;
    *stages = b.s;
    *n_stages = b.n;
    return HC_OK;
}
