/* compress_write.c: the compressor's output: metadata (the source's, or synthesized for a llama2.c
 * checkpoint, plus the hc.* keys), kept tensors as stored, packed layers, branches; atomic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "compress_internal.h"
#include "gguf.h"
#include "suffix.h"

hc_status hc_compress_read_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return hc_error(HC_E_IO, "%s: cannot open", path);
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return hc_error(HC_E_IO, "%s: cannot seek", path);
    }
    long n = ftell(f);
    rewind(f);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return hc_error(HC_E_IO, "%s: cannot read", path);
    }
    fclose(f);
    buf[n] = '\0';
    *text = buf;
    *len = (size_t)n;
    return HC_OK;
}

void hc_compress_calib_progress(hc_compress_state *cs, int64_t done, int64_t total)
{
    if (cs->opts->progress) cs->opts->progress(cs->opts->progress_ctx, "calibrate", done, total);
}

hc_status hc_compress_tokenizer(hc_compress_state *cs, hc_tokenizer **out)
{
    if (cs->model->gguf) return hc_tokenizer_from_gguf(cs->model->gguf, out);
    char path[4096];
    const char *tp = cs->opts->tokenizer;
    if (!tp) {
        hc_status st = hc_llama2c_tokenizer_path(cs->opts->input, cs->model->cfg.n_vocab, path, sizeof path);
        if (st != HC_OK) return st;
        tp = path;
    }
    return hc_tokenizer_load_llama2c(tp, cs->model->cfg.n_vocab, out);
}

/* ---- the source's tensors ---- */

typedef struct source_tensor {
    uint32_t type, n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
} source_tensor;

/* A weight as the input file stores it (GGUF: its raw bytes; llama2.c: f32). */
static source_tensor source_of(const hc_compress_state *cs, const hc_tensor *t)
{
    if (cs->model->gguf) {
        const hc_gguf_tensor *g = hc_gguf_find_tensor(cs->model->gguf, t->name);
        if (g) return (source_tensor){ g->type, g->n_dims, { g->ne[0], g->ne[1], g->ne[2], g->ne[3] }, g->data, g->nbytes };
    }
    return (source_tensor){ HC_F32, (uint32_t)t->n_dims, { t->ne[0], t->ne[1], 1, 1 }, t->data, t->nbytes };
}

/* The job of a weight; of a 3-D expert tensor, its first expert's (the experts' jobs follow it in order). */
static const hc_compress_job *job_of(const hc_compress_state *cs, const char *name)
{
    for (int i = 0; i < cs->n_jobs; i++)
        if (!strcmp(cs->jobs[i].weight->name, name) || (cs->jobs[i].parent && !strcmp(cs->jobs[i].parent->name, name)))
            return &cs->jobs[i];
    return NULL;
}

typedef struct sum_ctx {
    const hc_compress_state *cs;
    size_t kept, all;
} sum_ctx;

static void sum_tensor(hc_tensor *t, void *arg)
{
    sum_ctx *c = arg;
    size_t n = source_of(c->cs, t).nbytes;
    c->all += n;
    if (!job_of(c->cs, t->name)) c->kept += n;
}

size_t hc_compress_kept_bytes(const hc_compress_state *cs)
{
    sum_ctx c = { .cs = cs };
    hc_model_for_each_tensor(cs->model, sum_tensor, &c);
    return c.kept;
}

size_t hc_compress_source_bytes(const hc_compress_state *cs)
{
    sum_ctx c = { .cs = cs };
    hc_model_for_each_tensor(cs->model, sum_tensor, &c);
    return c.all;
}

/* ---- metadata ---- */

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

static hc_status write_hc_keys(hc_compress_state *cs, hc_gguf_writer *w, const hc_compress_report *r)
{
    const hc_compress_opts *o = cs->opts;
    static const char *const whitening[] = { "none", "diag", "full" };
    char versions[256];
    snprintf(versions, sizeof versions, "%s %s%s%s%s%s", cs->fmt->plugin, cs->fmt->version, cs->head_fmt ? "; " : "",
             cs->head_fmt ? cs->head_fmt->plugin : "", cs->head_fmt ? " " : "", cs->head_fmt ? cs->head_fmt->version : "");
    hc_status st = hc_gguf_set_u32(w, "hc.format_version", HC_FORMAT_VERSION);
#define TRY(call) if (st == HC_OK) st = (call)
    TRY(hc_gguf_set_str(w, "hc.source", base_name(o->input)));
    TRY(hc_gguf_set_str(w, "hc.quant", cs->fmt->spec));
    TRY(hc_gguf_set_str(w, "hc.quant.plugins", versions));
    TRY(hc_gguf_set_str(w, "hc.head_quant", cs->head_fmt ? cs->head_fmt->spec : "none"));
    TRY(hc_gguf_set_str(w, "hc.comp.dtype", hc_dtype_name(o->branch_dtype)));
    TRY(hc_gguf_set_str(w, "hc.comp.whitening", cs->calib ? whitening[o->whitening] : "none"));
    TRY(hc_gguf_set_f32(w, "hc.comp.budget", (float)o->budget));
    TRY(hc_gguf_set_str(w, "hc.comp.policy", o->policy ? base_name(o->policy) : (o->rank > 0 ? "fixed" : "uniform")));
    TRY(hc_gguf_set_u64(w, "hc.comp.bytes", (uint64_t)r->branch_bytes));
    TRY(hc_gguf_set_u64(w, "hc.backbone.bytes", (uint64_t)r->backbone_bytes));
    TRY(hc_gguf_set_str(w, "hc.calib.file", o->calib ? base_name(o->calib) : "none"));
    TRY(hc_gguf_set_u64(w, "hc.calib.tokens", (uint64_t)r->calib_tokens));
    if (o->calib_skip > 0) TRY(hc_gguf_set_u64(w, "hc.calib.skip", (uint64_t)o->calib_skip));
    if (o->calib_seed > 0) TRY(hc_gguf_set_u32(w, "hc.calib.seed", o->calib_seed));
    /* what the hc.sens.* arrays measure (the first factored layer's measure; all share it) */
    for (int i = 0; i < cs->n_jobs; i++)
        if (cs->jobs[i].gain) {
            TRY(hc_gguf_set_str(w, "hc.sens.measure", hc_sens_measure_name(cs->jobs[i].measure)));
            break;
        }
    if (cs->loss_tokens > 0) { /* --sens-tokens, --sens-source */
        TRY(hc_gguf_set_u64(w, "hc.sens.loss_tokens", (uint64_t)cs->loss_tokens));
        TRY(hc_gguf_set_str(w, "hc.sens.loss_source", hc_compress_sens_is_self(cs->opts) ? "self" : "calib"));
    }
#undef TRY
    return st;
}

/* ---- tensors ---- */

typedef struct writer_ctx {
    hc_compress_state *cs;
    hc_gguf_writer *w;
    void **keep;               /* converted buffers, alive until the file is written */
    int n_keep, cap_keep;
    hc_status st;
} writer_ctx;

static void *keep_alloc(writer_ctx *c, size_t n)
{
    if (c->n_keep == c->cap_keep) {
        int cap = c->cap_keep ? 2 * c->cap_keep : 256;
        void **p = realloc(c->keep, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        c->keep = p;
        c->cap_keep = cap;
    }
    void *b = malloc(n ? n : 1);
    if (b) c->keep[c->n_keep++] = b;
    return b;
}

/* A row of n floats in the branch's storage type (q8_0: n a multiple of 32). */
static void store_row(hc_dtype t, const float *v, int64_t n, void *dst)
{
    if (t == HC_Q8_0) hc_quantize_row_q8_0(v, dst, n);
    else if (t == HC_F32) memcpy(dst, v, (size_t)n * sizeof *v);
    else
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = t == HC_F16 ? hc_f32_to_f16(v[i]) : hc_f32_to_bf16(v[i]);
}

/* Writes the branch tensors of a job: <base>.lora_a [in, r], .lora_b [out, r], .lora_s [r] (GGUF
 * dimensions, fastest first: A and B row-major by direction, as hc_branch reads them). Each
 * direction's two factors are balanced (equal largest magnitude) so that f16 cannot overflow. */
static hc_status write_branch(writer_ctx *c, const hc_compress_job *j)
{
    hc_dtype t = hc_compress_branch_dtype(j, c->cs->opts->branch_dtype);
    int r = j->rank, lr = j->lr.rank;
    int64_t in = j->in, out = j->out;
    size_t row_a = hc_dtype_row_bytes(t, in), row_b = hc_dtype_row_bytes(t, out);
    void *a = keep_alloc(c, (size_t)r * row_a), *b = keep_alloc(c, (size_t)r * row_b);
    float *s = keep_alloc(c, (size_t)r * sizeof *s), *row = malloc((size_t)(in > out ? in : out) * sizeof *row);
    if (!a || !b || !s || !row) {
        free(row);
        return hc_error(HC_E_NOMEM, "out of memory writing the branch of %s", j->weight->name);
    }
    for (int k = 0; k < r; k++) {
        float ma = 0, mb = 0;
        for (int64_t i = 0; i < in; i++) ma = fmaxf(ma, fabsf(j->lr.a[k * in + i]));
        for (int64_t o = 0; o < out; o++) mb = fmaxf(mb, fabsf(j->lr.b[o * lr + k]));
        float alpha = (ma > 0 && mb > 0) ? sqrtf(ma / mb) : 1.0f; /* b *= alpha, a /= alpha */
        if (fmaxf(ma / alpha, mb * alpha) > 60000.0f && t == HC_F16) {
            free(row);
            return hc_error(HC_E_NUMERIC, "the branch of %s does not fit f16 (largest factor %.3g): use --branch-dtype bf16",
                            j->weight->name, (double)fmaxf(ma / alpha, mb * alpha));
        }
        for (int64_t i = 0; i < in; i++) row[i] = j->lr.a[k * in + i] / alpha;
        store_row(t, row, in, (char *)a + (size_t)k * row_a);
        for (int64_t o = 0; o < out; o++) row[o] = j->lr.b[o * lr + k] * alpha;
        store_row(t, row, out, (char *)b + (size_t)k * row_b);
        s[k] = j->lr.sigma[k];
    }
    free(row);
    char base[160], name[200];
    size_t len = hc_len_without(j->weight->name, ".weight");
    snprintf(base, sizeof base, "%.*s", (int)len, j->weight->name);
    int64_t ne_a[2] = { in, r }, ne_b[2] = { out, r }, ne_s[1] = { r };
    snprintf(name, sizeof name, "%s.lora_a", base);
    hc_status st = hc_gguf_add_tensor(c->w, name, t, 2, ne_a, a, (size_t)r * row_a);
    snprintf(name, sizeof name, "%s.lora_b", base);
    if (st == HC_OK) st = hc_gguf_add_tensor(c->w, name, t, 2, ne_b, b, (size_t)r * row_b);
    snprintf(name, sizeof name, "%s.lora_s", base);
    if (st == HC_OK) st = hc_gguf_add_tensor(c->w, name, HC_F32, 1, ne_s, s, (size_t)r * sizeof *s);
    return st;
}

static hc_status write_sensitivity(writer_ctx *c, const hc_compress_job *j);

/* ---- mixture of experts: one packed tensor for all experts of a 3-D tensor (compress_moe.c) ---- */

static hc_status write_experts(writer_ctx *c, const hc_tensor *t, const hc_compress_job *first)
{
    int n = (int)t->ne[2];
    const hc_compress_job *end = c->cs->jobs + c->cs->n_jobs;
    if (first + n > end) return hc_error(HC_E_STATE, "%s: %d experts planned, %d written", t->name, (int)(end - first), n);
    size_t pb = first->packed_bytes;
    char *packed = keep_alloc(c, pb * (size_t)n);
    float *freq = keep_alloc(c, (size_t)n * sizeof *freq);
    if (!packed || !freq) return hc_error(HC_E_NOMEM, "out of memory writing %s", t->name);
    int calibrated = 0;
    for (int e = 0; e < n; e++) {
        const hc_compress_job *j = first + e;
        if (j->parent != t || j->expert != e || j->packed_bytes != pb)
            return hc_error(HC_E_STATE, "%s: the jobs of its experts are out of order at expert %d", t->name, e);
        memcpy(packed + (size_t)e * pb, j->packed, pb);
        freq[e] = (float)j->routing_frequency;
        calibrated |= j->routing_frequency >= 0;
    }
    char key[200];
    int64_t shape[3] = { first->in, first->out, n }, ne[1] = { (int64_t)(pb * (size_t)n) };
    snprintf(key, sizeof key, "hc.tensor.%s.format", t->name);
    hc_status st = hc_gguf_set_str(c->w, key, first->fmt->spec);
    snprintf(key, sizeof key, "hc.tensor.%s.shape", t->name);
    if (st == HC_OK) st = hc_gguf_set_arr(c->w, key, HC_GGUF_INT64, shape, 3);
    snprintf(key, sizeof key, "hc.tensor.%s.routing_frequency", t->name);
    if (st == HC_OK && calibrated) st = hc_gguf_set_arr(c->w, key, HC_GGUF_FLOAT32, freq, (uint64_t)n);
    if (st == HC_OK) st = hc_gguf_add_tensor(c->w, t->name, HC_I8, 1, ne, packed, pb * (size_t)n);
    for (int e = 0; e < n && st == HC_OK; e++) {
        if (first[e].rank > 0) st = write_branch(c, &first[e]);
        if (st == HC_OK && first[e].gain && first[e].lr.rank > 0) st = write_sensitivity(c, &first[e]);
    }
    return st;
}

/* hc.sens.<weight> = the error removed by each of the rank_max steps; hc.sens.<weight>.total = the
 * error with no branch; hc.sens.<weight>.signal = the layer's output energy in the same measure;
 * measured (--sens-tokens): hc.sens.<weight>.loss, the KL from the source with only this layer quantized
 * (an expert: its share of the loss with its MoE tensor's experts quantized, by frequency x error).
 * A later policy (or `hcinfer inspect`) reads them without refactoring. */
static hc_status write_sensitivity(writer_ctx *c, const hc_compress_job *j)
{
    char key[220];
    snprintf(key, sizeof key, "hc.sens.%s", j->weight->name);
    hc_status st = hc_gguf_set_arr(c->w, key, HC_GGUF_FLOAT32, j->gain, (uint64_t)j->lr.rank);
    snprintf(key, sizeof key, "hc.sens.%s.total", j->weight->name);
    if (st == HC_OK) st = hc_gguf_set_f32(c->w, key, (float)j->energy);
    snprintf(key, sizeof key, "hc.sens.%s.signal", j->weight->name);
    if (st == HC_OK) st = hc_gguf_set_f32(c->w, key, (float)j->signal);
    snprintf(key, sizeof key, "hc.sens.%s.loss", j->weight->name);
    if (st == HC_OK && j->loss_measured) st = hc_gguf_set_f32(c->w, key, (float)j->loss);
    return st;
}

static void write_tensor(hc_tensor *t, void *arg)
{
    writer_ctx *c = arg;
    if (c->st != HC_OK) return;
    const hc_compress_job *j = job_of(c->cs, t->name);
    if (j && j->parent) {
        c->st = write_experts(c, t, j);
        return;
    }
    if (!j) {
        source_tensor s = source_of(c->cs, t);
        c->st = hc_gguf_add_tensor(c->w, t->name, s.type, s.n_dims, s.ne, s.data, s.nbytes);
        return;
    }
    char key[200];
    int64_t shape[2] = { j->in, j->out }, ne[1] = { (int64_t)j->packed_bytes };
    snprintf(key, sizeof key, "hc.tensor.%s.format", t->name);
    c->st = hc_gguf_set_str(c->w, key, j->fmt->spec);
    snprintf(key, sizeof key, "hc.tensor.%s.shape", t->name);
    if (c->st == HC_OK) c->st = hc_gguf_set_arr(c->w, key, HC_GGUF_INT64, shape, 2);
    if (c->st == HC_OK) c->st = hc_gguf_add_tensor(c->w, t->name, HC_I8, 1, ne, j->packed, j->packed_bytes);
    if (c->st == HC_OK && j->rank > 0) c->st = write_branch(c, j);
    if (c->st == HC_OK && j->gain && j->lr.rank > 0) c->st = write_sensitivity(c, j);
}

static void fill_report(const hc_compress_state *cs, hc_compress_report *r)
{
    r->backbone_bytes = cs->backbone_bytes;
    r->n_linear = cs->n_jobs;
    r->rank_min = -1;
    double sum = 0;
    for (int i = 0; i < cs->n_jobs; i++) {
        const hc_compress_job *j = &cs->jobs[i];
        if (j->rank > 0) {
            r->n_branches++;
            r->branch_bytes += (size_t)j->rank * hc_compress_branch_cost(j, cs->opts->branch_dtype);
        }
        if (j->gain) {
            r->error_total += j->energy;
            for (int k = 0; k < j->rank && k < j->lr.rank; k++) r->error_removed += j->gain[k];
            r->error_measure = hc_sens_measure_name(j->measure);
        }
        if (r->rank_min < 0 || j->rank < r->rank_min) r->rank_min = j->rank;
        if (j->rank > r->rank_max) r->rank_max = j->rank;
        sum += j->rank;
    }
    r->rank_mean = cs->n_jobs ? sum / cs->n_jobs : 0;
    if (r->rank_min < 0) r->rank_min = 0;
}

hc_status hc_compress_write(hc_compress_state *cs, hc_compress_report *report)
{
    fill_report(cs, report);
    hc_gguf_writer *w = NULL;
    hc_status st = hc_gguf_writer_create(&w);
    if (st != HC_OK) return st;
    writer_ctx c = { .cs = cs, .w = w, .st = HC_OK };
    if (cs->model->gguf) st = hc_gguf_copy_kv(w, cs->model->gguf, skip_key, NULL);
    else st = synthesize_metadata(cs, w);
    if (st == HC_OK) st = write_hc_keys(cs, w, report);
    if (st == HC_OK) {
        hc_model_for_each_tensor(cs->model, write_tensor, &c);
        st = c.st;
    }
    if (st == HC_OK && cs->opts->progress) cs->opts->progress(cs->opts->progress_ctx, "write", 0, 1);
    if (st == HC_OK) st = hc_gguf_writer_write(w, cs->opts->output);
    if (st == HC_OK && cs->opts->progress) cs->opts->progress(cs->opts->progress_ctx, "write", 1, 1);
    for (int i = 0; i < c.n_keep; i++) free(c.keep[i]);
    free(c.keep);
    hc_gguf_writer_free(w);
    return st;
}
