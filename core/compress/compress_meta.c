/* compress_meta.c: the compressor's output metadata: the source's keys (or made up for llama2.c),
 * hc.* keys, the packed tensors' format/shape/routing keys, hc.sens.* per layer; set twice: sized
 * placeholders before the work (the header's room), the values at the end. */
#include "compress_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress_sens.h"
#include "compress_tensor_quant.h"
#include "compress_text.h"

static int skip_key(const char *key, void *ctx)
{
    return !strcmp(key, "general.file_type") || !strncmp(key, "hc.", 3);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A llama2.c checkpoint has no metadata: write what a GGUF Llama model holds, vocabulary included,
 * so the output file alone runs. */
static hc_status synthesize_metadata(hc_compress_state *cs, hc_gguf_writer *w)
{
    const hc_model_config *c = &cs->model->cfg;
    hc_tokenizer *tok = NULL;
    hc_status st = hc_compress_tokenizer(cs, &tok);
    if (st != HC_OK) return st;
    int n = hc_tokenizer_n_vocab(tok);
    const char **texts = malloc((size_t)n * sizeof *texts);
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    if (!texts || !scores || !types) st = hc_error(HC_E_NOMEM, "out of memory");
    for (int i = 0; st == HC_OK && i < n; i++) {
        texts[i] = hc_tokenizer_text(tok, i);
        scores[i] = hc_tokenizer_score(tok, i);
        types[i] = hc_tokenizer_token_type(tok, i);
    }
    char name[256];
    snprintf(name, sizeof name, "%s", base_name(cs->opts->input));
    char *dot = strrchr(name, '.');
    if (dot) *dot = '\0';
#define TRY(call) if (st == HC_OK) st = (call)
    TRY(hc_gguf_set_str(w, "general.architecture", "llama"));
    TRY(hc_gguf_set_str(w, "general.name", name));
    TRY(hc_gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layer));
    TRY(hc_gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim));
    TRY(hc_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->ffn_dim));
    TRY(hc_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_head));
    TRY(hc_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_head_kv));
    TRY(hc_gguf_set_u32(w, "llama.context_length", (uint32_t)c->n_ctx_train));
    TRY(hc_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->n_rot));
    TRY(hc_gguf_set_f32(w, "llama.rope.freq_base", c->rope_theta));
    TRY(hc_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->rms_eps));
    TRY(hc_gguf_set_str(w, "tokenizer.ggml.model", "llama"));
    TRY(hc_gguf_set_arr(w, "tokenizer.ggml.tokens", HC_GGUF_STRING, texts, (uint64_t)n));
    TRY(hc_gguf_set_arr(w, "tokenizer.ggml.scores", HC_GGUF_FLOAT32, scores, (uint64_t)n));
    TRY(hc_gguf_set_arr(w, "tokenizer.ggml.token_type", HC_GGUF_INT32, types, (uint64_t)n));
    if (hc_tokenizer_bos(tok) >= 0) TRY(hc_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)hc_tokenizer_bos(tok)));
    if (hc_tokenizer_eos(tok) >= 0) TRY(hc_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)hc_tokenizer_eos(tok)));
    TRY(hc_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1));
#undef TRY
    free(texts);
    free(scores);
    free(types);
    hc_tokenizer_free(tok);
    return st;
}

static hc_status write_hc_keys(hc_compress_state *cs, hc_gguf_writer *w, const hc_compress_report *r, int placeholder)
{
    const hc_compress_opts *o = cs->opts;
    static const char *const whitening[] = { "none", "diag", "full" };
    char versions[512];
    int used = snprintf(versions, sizeof versions, "%s %s", cs->fmt->plugin, cs->fmt->version);
    const hc_quant_format *listed[2 + HC_COMPRESS_MAX_TENSOR_QUANT] = { cs->fmt };
    int n_listed = 1;
    for (int k = -1; k < cs->n_tensor_quant; k++) { /* the head's plugin, then --tensor-quant's, each once */
        const hc_quant_format *f = k < 0 ? cs->head_fmt : cs->tensor_quant[k].fmt;
        int seen = !f;
        for (int i = 0; i < n_listed && !seen; i++) seen = !strcmp(listed[i]->plugin, f->plugin);
        if (seen) continue;
        listed[n_listed++] = f;
        if (used >= 0 && (size_t)used < sizeof versions)
            used += snprintf(versions + used, sizeof versions - (size_t)used, "; %s %s", f->plugin, f->version);
    }
    hc_status st = hc_gguf_set_u32(w, "hc.format_version", HC_FORMAT_VERSION);
#define TRY(call) if (st == HC_OK) st = (call)
    TRY(hc_gguf_set_str(w, "hc.source", base_name(o->input)));
    TRY(hc_gguf_set_str(w, "hc.quant", cs->fmt->spec));
    TRY(hc_gguf_set_str(w, "hc.quant.plugins", versions));
    TRY(hc_gguf_set_str(w, "hc.head_quant", cs->head_fmt ? cs->head_fmt->spec : "none"));
    if (cs->n_tensor_quant > 0) { /* which layers are in another format (each tensor's own key says which) */
        char tensors[32768];
        TRY(hc_compress_tensor_quant_text(cs, tensors, sizeof tensors));
        TRY(hc_gguf_set_str(w, "hc.quant.tensors", tensors));
    }
    TRY(hc_gguf_set_str(w, "hc.comp.dtype", hc_dtype_name(o->branch_dtype)));
    TRY(hc_gguf_set_str(w, "hc.comp.whitening", o->calib ? whitening[o->whitening] : "none"));
    TRY(hc_gguf_set_f32(w, "hc.comp.budget", (float)o->budget));
    TRY(hc_gguf_set_str(w, "hc.comp.policy", o->policy ? base_name(o->policy) : (o->rank > 0 ? "fixed" : "uniform")));
    TRY(hc_gguf_set_u64(w, "hc.comp.bytes", (uint64_t)r->branch_bytes));
    TRY(hc_gguf_set_u64(w, "hc.backbone.bytes", (uint64_t)r->backbone_bytes));
    TRY(hc_gguf_set_str(w, "hc.calib.file", o->calib ? base_name(o->calib) : "none"));
    TRY(hc_gguf_set_u64(w, "hc.calib.tokens", (uint64_t)r->calib_tokens));
    if (o->awq > 0) TRY(hc_gguf_set_u32(w, "hc.awq.groups_scaled", (uint32_t)r->awq_scaled));
    if (o->calib_skip > 0) TRY(hc_gguf_set_u64(w, "hc.calib.skip", (uint64_t)o->calib_skip));
    if (o->calib_seed > 0) TRY(hc_gguf_set_u32(w, "hc.calib.seed", o->calib_seed));
    /* what the hc.sens.* arrays measure (the first factored layer's measure; all share it) */
    for (int i = 0; i < cs->n_jobs; i++)
        if (placeholder ? cs->jobs[i].n_dirs > 0 : cs->jobs[i].gain != NULL) {
            TRY(hc_gguf_set_str(w, "hc.sens.measure", placeholder ? "activation" : hc_sens_measure_name(cs->jobs[i].measure)));
            break;
        }
    if (placeholder ? o->sens_tokens > 0 : cs->loss_tokens > 0) { /* --sens-tokens, --sens-source */
        TRY(hc_gguf_set_u64(w, "hc.sens.loss_tokens", (uint64_t)cs->loss_tokens));
        TRY(hc_gguf_set_str(w, "hc.sens.loss_source", placeholder || !hc_compress_sens_is_self(cs->opts) ? "calib" : "self"));
    }
#undef TRY
    return st;
}

/* hc.sens.<weight> = the error removed by each of the rank_max steps; hc.sens.<weight>.total = the
 * error with no branch; hc.sens.<weight>.signal = the layer's output energy in the same measure;
 * measured (--sens-tokens): hc.sens.<weight>.loss, the KL from the source with only this layer quantized
 * (an expert: its share of the loss with its MoE tensor's experts quantized, by frequency x error).
 * A later policy (or `hcinfer inspect`) reads them without refactoring. */
static hc_status write_sensitivity(hc_gguf_writer *w, const hc_compress_job *j, const float *zeros, int placeholder, int measured)
{
    char key[220];
    snprintf(key, sizeof key, "hc.sens.%s", j->weight->name);
    hc_status st = hc_gguf_set_arr(w, key, HC_GGUF_FLOAT32, placeholder ? zeros : j->gain, (uint64_t)j->n_dirs);
    snprintf(key, sizeof key, "hc.sens.%s.total", j->weight->name);
    if (st == HC_OK) st = hc_gguf_set_f32(w, key, (float)j->energy);
    snprintf(key, sizeof key, "hc.sens.%s.signal", j->weight->name);
    if (st == HC_OK) st = hc_gguf_set_f32(w, key, (float)j->signal);
    snprintf(key, sizeof key, "hc.sens.%s.loss", j->weight->name);
    if (st == HC_OK && (placeholder ? measured : j->loss_measured)) st = hc_gguf_set_f32(w, key, (float)j->loss);
    return st;
}


/* hc.tensor.<name>.format/.shape of a packed tensor; of a 3-D expert tensor (its jobs from
 * `first` on), [in, out, n_expert] and the experts' routing frequencies when calibrated. */
static hc_status write_tensor_keys(hc_compress_state *cs, hc_gguf_writer *w, const hc_compress_job *first, int placeholder)
{
    const hc_tensor *t = first->parent ? first->parent : first->weight;
    int n = first->parent ? (int)t->ne[2] : 1;
    char key[200];
    int64_t shape[3] = { first->in, first->out, n };
    snprintf(key, sizeof key, "hc.tensor.%s.format", t->name);
    hc_status st = hc_gguf_set_str(w, key, first->fmt->spec);
    snprintf(key, sizeof key, "hc.tensor.%s.shape", t->name);
    if (st == HC_OK) st = hc_gguf_set_arr(w, key, HC_GGUF_INT64, shape, first->parent ? 3 : 2);
    if (st != HC_OK || !first->parent) return st;
    float *freq = malloc((size_t)n * sizeof *freq);
    if (!freq) return hc_error(HC_E_NOMEM, "out of memory");
    int calibrated = 0;
    for (int e = 0; e < n; e++) {
        freq[e] = placeholder ? 0.0f : (float)first[e].routing_frequency;
        calibrated |= placeholder ? cs->opts->calib != NULL : first[e].routing_frequency >= 0;
    }
    snprintf(key, sizeof key, "hc.tensor.%s.routing_frequency", t->name);
    if (calibrated) st = hc_gguf_set_arr(w, key, HC_GGUF_FLOAT32, freq, (uint64_t)n);
    free(freq);
    return st;
}

hc_status hc_compress_meta_source(hc_compress_state *cs, hc_gguf_writer *w)
{
    if (cs->model->gguf) return hc_gguf_copy_kv(w, cs->model->gguf, skip_key, NULL);
    return synthesize_metadata(cs, w);
}

hc_status hc_compress_meta_keys(hc_compress_state *cs, hc_gguf_writer *w, const hc_compress_report *r, int placeholder)
{
    hc_status st = write_hc_keys(cs, w, r, placeholder);
    int most = 1;
    for (int i = 0; i < cs->n_jobs; i++) most = cs->jobs[i].n_dirs > most ? cs->jobs[i].n_dirs : most;
    float *zeros = calloc((size_t)most, sizeof *zeros);
    if (!zeros) return hc_error(HC_E_NOMEM, "out of memory");
    for (int i = 0; st == HC_OK && i < cs->n_jobs; i++) {
        const hc_compress_job *j = &cs->jobs[i];
        if (!j->parent || j->expert == 0) st = write_tensor_keys(cs, w, j, placeholder);
        if (st == HC_OK && (placeholder ? j->n_dirs > 0 : j->gain && j->n_dirs > 0))
            st = write_sensitivity(w, j, zeros, placeholder, cs->opts->sens_tokens > 0);
    }
    free(zeros);
    return st;
}
