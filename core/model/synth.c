/* synth.c: random-weight GGUF models (`hcinfer synth`): option checks, seeded normal weights per
 * tensor, f16/q8_0 encoding, the architecture's metadata and a byte-level SentencePiece vocabulary. */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model_load.h"
#include "threadpool.h"

/* ---------------- options ---------------- */


hc_status hc_synth_resolve(const hc_synth_opts *in, hc_synth_opts *o)
{
    *o = *in;
    if (!o->arch) o->arch = "llama";
    const char *a = o->arch;
    int gemma = hc_arch_is_gemma3(a);
    if (strcmp(a, "llama") && strcmp(a, "qwen3") && !gemma && !hc_arch_is_moe(a))
        return hc_error(HC_E_ARG, "--arch %s: not one of llama, qwen3, gemma3, qwen2moe, qwen3moe, olmoe", a);
    if (!o->output || !o->output[0]) return hc_error(HC_E_ARG, "no output file given (-o FILE)");
#define RANGE(v, lo, hi, opt)                                                                               \
    if ((v) < (lo) || (v) > (hi)) return hc_error(HC_E_ARG, opt " %d is out of range (%d..%d)", (int)(v), (int)(lo), (int)(hi));
    if (!o->n_threads) {
        int n = hc_usable_cpus();
        o->n_threads = n > 16 ? 16 : n;
    }
    RANGE(o->n_threads, 1, 256, "--threads");
    RANGE(o->dim, 2, 1 << 16, "--dim");
    RANGE(o->n_layer, 1, 1024, "--layers");
    if (!o->n_head) o->n_head = o->dim >= 128 ? o->dim / 64 : 1;
    if (!o->n_head_kv) o->n_head_kv = o->n_head;
    RANGE(o->n_head, 1, 1024, "--heads");
    RANGE(o->n_head_kv, 1, o->n_head, "--kv-heads");
    if (o->head_dim && !gemma) return hc_error(HC_E_ARG, "--head-dim: only gemma3's heads may differ from --dim / --heads");
    if (!o->head_dim && o->dim % o->n_head) return hc_error(HC_E_ARG, "--dim %d is not a multiple of --heads %d", o->dim, o->n_head);
    if (o->n_head % o->n_head_kv) return hc_error(HC_E_ARG, "--heads %d is not a multiple of --kv-heads %d", o->n_head, o->n_head_kv);
    if (!o->head_dim) o->head_dim = o->dim / o->n_head;
    RANGE(o->head_dim, 2, 1 << 12, "--head-dim");
    if (o->head_dim % 2) return hc_error(HC_E_ARG, "the head size %d must be even for rope", o->head_dim);
    if ((o->n_swa || o->swa_period) && !gemma) return hc_error(HC_E_ARG, "--window and --swa-period: only gemma3 has sliding-window layers");
    if (gemma && !o->n_swa) o->n_swa = 512;
    RANGE(o->n_swa, 0, 1 << 24, "--window");
    RANGE(o->swa_period, 0, 1024, "--swa-period");
    if (gemma && o->n_expert) return hc_error(HC_E_ARG, "--arch gemma3 is dense: it has no experts");
    if (!o->ffn_dim) o->ffn_dim = (4 * o->dim + 31) / 32 * 32;
    RANGE(o->ffn_dim, 1, 1 << 20, "--ffn");
    int moe = hc_arch_is_moe(a);
    if (moe && o->n_expert <= 0) return hc_error(HC_E_ARG, "--arch %s needs --experts E (and --top-k K)", a);
    if (!strcmp(a, "qwen3") && o->n_expert) return hc_error(HC_E_ARG, "--arch qwen3 is dense: use qwen3moe for experts");
    if (o->n_expert) {
        RANGE(o->n_expert, 1, 4096, "--experts");
        if (!o->n_expert_used) o->n_expert_used = o->n_expert < 2 ? 1 : 2;
        RANGE(o->n_expert_used, 1, o->n_expert, "--top-k");
        if (!o->expert_ffn_dim) o->expert_ffn_dim = !strcmp(a, "llama") ? o->ffn_dim : o->ffn_dim / o->n_expert_used;
        RANGE(o->expert_ffn_dim, 1, 1 << 20, "--expert-ffn");
        if (!strcmp(a, "qwen2moe") && !o->n_shared_expert) o->n_shared_expert = 1;
    } else if (o->n_expert_used || o->expert_ffn_dim) {
        return hc_error(HC_E_ARG, "--top-k and --expert-ffn need --experts");
    }
    if (o->n_shared_expert && strcmp(a, "qwen2moe"))
        return hc_error(HC_E_ARG, "--shared-experts: only qwen2moe has a shared expert");
    RANGE(o->n_shared_expert, 0, 64, "--shared-experts");
    if (!o->n_vocab) o->n_vocab = 512;
    RANGE(o->n_vocab, 259, 1 << 20, "--vocab");
    if (!o->n_ctx) o->n_ctx = 2048;
    RANGE(o->n_ctx, 1, 1 << 24, "--ctx");
#undef RANGE
    if (o->type != HC_F32 && o->type != HC_F16 && o->type != HC_Q8_0)
        return hc_error(HC_E_ARG, "--type %s: only f32, f16 and q8_0 are written", hc_dtype_name(o->type));
    if (o->type == HC_Q8_0) {
        const int widths[] = { o->dim, o->ffn_dim, o->expert_ffn_dim, o->n_shared_expert * o->expert_ffn_dim, o->n_head * o->head_dim };
        const char *names[] = { "--dim", "--ffn", "--expert-ffn", "the shared expert's width", "the query width (--heads x --head-dim)" };
        for (int i = 0; i < 5; i++)
            if (widths[i] % 32)
                return hc_error(HC_E_ARG, "--type q8_0 needs rows that are multiples of 32: %s is %d", names[i], widths[i]);
    }
    if (!(o->norm_noise >= 0 && o->norm_noise < 10)) return hc_error(HC_E_ARG, "norm noise %g is out of range", o->norm_noise);
    return HC_OK;
}

/* ---------------- random numbers ---------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

/* Numbers i0 .. i1 - 1 (i0 even) of the sequence of normal numbers N(mean, std^2) that seed gives,
 * Box-Muller on pairs of splitmix64 draws: the state after i0 draws is seed + i0 * its increment, so
 * that any part of the sequence is drawn on its own, the same as in one pass. */
static void fill_normal(float *x, size_t i0, size_t i1, uint64_t seed, float mean, float std)
{
    uint64_t s = seed + (uint64_t)i0 * 0x9E3779B97F4A7C15ull;
    for (size_t i = i0; i < i1; i += 2) {
        double u1 = ((splitmix64(&s) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
        double u2 = (splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
        double r = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2;
        x[i] = mean + std * (float)(r * cos(a));
        if (i + 1 < i1) x[i + 1] = mean + std * (float)(r * sin(a));
    }
}

/* A tensor's numbers drawn and stored as its type, a part per thread (parts of whole q8_0 blocks). */
typedef struct draw_job {
    float *f;
    void *data;
    size_t n;
    uint64_t seed;
    float mean, std;
    hc_dtype type;
} draw_job;

static void draw_part(void *arg, int ith, int nth)
{
    const draw_job *j = arg;
    long i0, i1;
    hc_split_range((long)j->n, ith, nth, 64, &i0, &i1);
    if (i0 >= i1) return;
    fill_normal(j->f, (size_t)i0, (size_t)i1, j->seed, j->mean, j->std);
    if (j->type == HC_F16)
        for (long i = i0; i < i1; i++) ((uint16_t *)j->data)[i] = hc_f32_to_f16(j->f[i]);
    else if (j->type == HC_Q8_0)
        hc_quantize_row_q8_0(j->f + i0, (char *)j->data + (size_t)(i0 / 32) * hc_dtype_block_bytes(HC_Q8_0), i1 - i0);
}

/* ---------------- tensors ---------------- */

/* Tensors are made twice over: declared first (shapes: the file's layout), then drawn one at a
 * time and written to the stream, so that memory holds one tensor, not the model. */
typedef struct synth {
    const hc_synth_opts *o;
    hc_gguf_writer *w;
    hc_gguf_stream *out;     /* NULL while declaring */
    hc_pool *pool;           /* the threads that draw (o->n_threads) */
    void **keep;             /* the vocabulary's arrays, alive until the file is written */
    int n_keep, cap_keep;
    hc_status st;
} synth;

static void *keep(synth *s, size_t n)
{
    if (s->n_keep == s->cap_keep) {
        int cap = s->cap_keep ? 2 * s->cap_keep : 64;
        void **p = realloc(s->keep, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        s->keep = p;
        s->cap_keep = cap;
    }
    void *b = malloc(n ? n : 1);
    if (b) s->keep[s->n_keep++] = b;
    return b;
}

/* A tensor of ne[0] x ne[1] x ne[2] random numbers, stored as type: declared, or drawn and written. */
static void add_random(synth *s, const char *name, hc_dtype type, int n_dims, int64_t ne0, int64_t ne1, int64_t ne2, float mean, float std)
{
    if (s->st != HC_OK) return;
    size_t n = (size_t)(ne0 * ne1 * ne2);
    size_t bytes = hc_dtype_row_bytes(type, ne0) * (size_t)(ne1 * ne2);
    const int64_t ne[3] = { ne0, ne1, ne2 };
    if (!s->out) {
        s->st = hc_gguf_declare_tensor(s->w, name, type, (uint32_t)n_dims, ne, NULL, bytes);
        return;
    }
    float *f = malloc(n * sizeof *f);
    void *data = type == HC_F32 ? f : malloc(bytes);
    if (!f || !data) {
        if (data != f) free(data);
        free(f);
        s->st = hc_error(HC_E_NOMEM, "out of memory for tensor %s (%zu MiB)", name, bytes >> 20);
        return;
    }
    draw_job job = { .f = f, .data = data, .n = n, .seed = s->o->seed ^ name_hash(name), .mean = mean, .std = std, .type = type };
    hc_pool_run(s->pool, draw_part, &job);
    uint64_t off = 0;
    s->st = hc_gguf_stream_offset(s->out, name, &off);
    if (s->st == HC_OK) s->st = hc_gguf_stream_pwrite(s->out, off, data, bytes);
    if (data != f) free(data);
    free(f);
}

/* A weight matrix (or n_mat of them) [in, out]: N(0, 1/in). */
static void add_matrix(synth *s, const char *name, int64_t in, int64_t out, int64_t n_mat, hc_dtype type)
{
    add_random(s, name, type, n_mat > 1 ? 3 : 2, in, out, n_mat, 0.0f, 1.0f / sqrtf((float)in));
}

static void add_norm(synth *s, const char *name, int64_t n)
{
    add_random(s, name, HC_F32, 1, n, 1, 1, 1.0f, s->o->norm_noise);
}

static void add_layer(synth *s, int l)
{
    const hc_synth_opts *o = s->o;
    int hd = o->head_dim, q = o->n_head * hd, kv = o->n_head_kv * hd, gemma = hc_arch_is_gemma3(o->arch);
    char name[96];
#define NAME(fmt) (snprintf(name, sizeof name, "blk.%d." fmt, l), name)
    add_norm(s, NAME("attn_norm.weight"), o->dim);
    add_matrix(s, NAME("attn_q.weight"), o->dim, q, 1, o->type);
    add_matrix(s, NAME("attn_k.weight"), o->dim, kv, 1, o->type);
    add_matrix(s, NAME("attn_v.weight"), o->dim, kv, 1, o->type);
    if (!strcmp(o->arch, "qwen2moe")) { /* qwen2's q/k/v biases */
        add_random(s, NAME("attn_q.bias"), HC_F32, 1, q, 1, 1, 0.0f, 0.02f);
        add_random(s, NAME("attn_k.bias"), HC_F32, 1, kv, 1, 1, 0.0f, 0.02f);
        add_random(s, NAME("attn_v.bias"), HC_F32, 1, kv, 1, 1, 0.0f, 0.02f);
    }
    if (!strncmp(o->arch, "qwen3", 5) || gemma) {
        add_norm(s, NAME("attn_q_norm.weight"), hd);
        add_norm(s, NAME("attn_k_norm.weight"), hd);
    } else if (!strcmp(o->arch, "olmoe")) { /* over the whole q and k */
        add_norm(s, NAME("attn_q_norm.weight"), q);
        add_norm(s, NAME("attn_k_norm.weight"), kv);
    }
    add_matrix(s, NAME("attn_output.weight"), q, o->dim, 1, o->type);
    if (gemma) add_norm(s, NAME("post_attention_norm.weight"), o->dim);
    add_norm(s, NAME("ffn_norm.weight"), o->dim);
    if (!o->n_expert) {
        add_matrix(s, NAME("ffn_gate.weight"), o->dim, o->ffn_dim, 1, o->type);
        add_matrix(s, NAME("ffn_up.weight"), o->dim, o->ffn_dim, 1, o->type);
        add_matrix(s, NAME("ffn_down.weight"), o->ffn_dim, o->dim, 1, o->type);
        if (gemma) add_norm(s, NAME("post_ffw_norm.weight"), o->dim);
        return;
    }
    int E = o->n_expert, f = o->expert_ffn_dim;
    add_matrix(s, NAME("ffn_gate_inp.weight"), o->dim, E, 1, HC_F32);
    add_matrix(s, NAME("ffn_gate_exps.weight"), o->dim, f, E, o->type);
    add_matrix(s, NAME("ffn_up_exps.weight"), o->dim, f, E, o->type);
    add_matrix(s, NAME("ffn_down_exps.weight"), f, o->dim, E, o->type);
    if (o->n_shared_expert) {
        int sf = o->n_shared_expert * f;
        add_random(s, NAME("ffn_gate_inp_shexp.weight"), HC_F32, 1, o->dim, 1, 1, 0.0f, 1.0f / sqrtf((float)o->dim));
        add_matrix(s, NAME("ffn_gate_shexp.weight"), o->dim, sf, 1, o->type);
        add_matrix(s, NAME("ffn_up_shexp.weight"), o->dim, sf, 1, o->type);
        add_matrix(s, NAME("ffn_down_shexp.weight"), sf, o->dim, 1, o->type);
    }
#undef NAME
}

/* ---------------- metadata ---------------- */

/* A SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens, then pieces of common letters
 * (single characters, pairs, triples ...) that BPE merges reach pair by pair. */
static hc_status add_vocab(synth *s)
{
    int n = s->o->n_vocab;
    const char **texts = keep(s, (size_t)n * sizeof *texts);
    float *scores = keep(s, (size_t)n * sizeof *scores);
    int32_t *types = keep(s, (size_t)n * sizeof *types);
    char *pool = keep(s, (size_t)n * 16);
    if (!texts || !scores || !types || !pool) return hc_error(HC_E_NOMEM, "out of memory for the vocabulary");
    static const char *const special[3] = { "<unk>", "<s>", "</s>" };
    char *p = pool;
    for (int i = 0; i < n; i++) {
        texts[i] = p;
        scores[i] = 0;
        if (i < 3) {
            types[i] = i == 0 ? 2 : 3;
            p += sprintf(p, "%s", special[i]) + 1;
        } else if (i < 259) {
            types[i] = 6;
            p += sprintf(p, "<0x%02X>", i - 3) + 1;
        }
    }
    /* pieces: "▁" and the 94 printable characters, then strings over a 27-symbol alphabet by length */
    static const char *const alpha[27] = { "\xE2\x96\x81", "e", "t", "a", "o", "i", "n", "s", "h", "r", "d", "l", "u", "c",
                                           "m", "f", "w", "y", "p", "v", "b", "g", "k", "j", "q", "x", "z" };
    int id = 259;
    for (int c = 0; c <= 94 && id < n; c++, id++) {
        texts[id] = p;
        types[id] = 1;
        scores[id] = -(float)(id - 259);
        if (c == 0) p += sprintf(p, "%s", alpha[0]) + 1;
        else p += sprintf(p, "%c", 0x20 + c) + 1;
    }
    for (int len = 2; id < n && len <= 4; len++) {
        int count = 1;
        for (int k = 0; k < len; k++) count *= 27;
        for (int v = 0; v < count && id < n; v++, id++) {
            texts[id] = p;
            types[id] = 1;
            scores[id] = -(float)(id - 259);
            for (int k = 0, x = v; k < len; k++, x /= 27) p += sprintf(p, "%s", alpha[x % 27]);
            p++;
        }
    }
    for (; id < n; id++) { /* a vocabulary larger than the pieces (27^4 + ...): unused entries */
        texts[id] = p;
        types[id] = 5;
        p += sprintf(p, "<unused%d>", id) + 1;
    }
    hc_status st = hc_gguf_set_str(s->w, "tokenizer.ggml.model", "llama");
#define TRY(call) if (st == HC_OK) st = (call)
    TRY(hc_gguf_set_arr(s->w, "tokenizer.ggml.tokens", HC_GGUF_STRING, texts, (uint64_t)n));
    TRY(hc_gguf_set_arr(s->w, "tokenizer.ggml.scores", HC_GGUF_FLOAT32, scores, (uint64_t)n));
    TRY(hc_gguf_set_arr(s->w, "tokenizer.ggml.token_type", HC_GGUF_INT32, types, (uint64_t)n));
    TRY(hc_gguf_set_u32(s->w, "tokenizer.ggml.unknown_token_id", 0));
    TRY(hc_gguf_set_u32(s->w, "tokenizer.ggml.bos_token_id", 1));
    TRY(hc_gguf_set_u32(s->w, "tokenizer.ggml.eos_token_id", 2));
    TRY(hc_gguf_set_bool(s->w, "tokenizer.ggml.add_bos_token", 1));
    TRY(hc_gguf_set_bool(s->w, "tokenizer.ggml.add_eos_token", 0));
#undef TRY
    return st;
}

static hc_status add_metadata(synth *s)
{
    const hc_synth_opts *o = s->o;
    hc_gguf_writer *w = s->w;
    const char *a = o->arch;
    char key[128], name[96];
    int hd = o->head_dim;
    snprintf(name, sizeof name, "synthetic %s %dx%d%s", a, o->n_layer, o->dim, o->n_expert ? " moe" : "");
    hc_status st = hc_gguf_set_str(w, "general.architecture", a);
#define TRY(call) if (st == HC_OK) st = (call)
#define U32(suffix, v) (snprintf(key, sizeof key, "%s." suffix, a), hc_gguf_set_u32(w, key, (uint32_t)(v)))
    TRY(hc_gguf_set_str(w, "general.name", name));
    TRY(hc_gguf_set_u64(w, "general.seed", o->seed)); /* not a standard key: how the weights were drawn */
    TRY(U32("block_count", o->n_layer));
    TRY(U32("context_length", o->n_ctx));
    TRY(U32("embedding_length", o->dim));
    TRY(U32("feed_forward_length", o->ffn_dim));
    TRY(U32("attention.head_count", o->n_head));
    TRY(U32("attention.head_count_kv", o->n_head_kv));
    TRY(U32("attention.key_length", hd));
    TRY(U32("attention.value_length", hd));
    TRY(U32("rope.dimension_count", hd));
    TRY(U32("vocab_size", o->n_vocab));
    snprintf(key, sizeof key, "%s.rope.freq_base", a);
    TRY(hc_gguf_set_f32(w, key, !strcmp(a, "llama") ? 10000.0f : 1000000.0f));
    if (hc_arch_is_gemma3(a)) { /* the window, the local layers' RoPE base; the period only when asked */
        TRY(U32("attention.sliding_window", o->n_swa));
        snprintf(key, sizeof key, "%s.rope.freq_base_swa", a);
        TRY(hc_gguf_set_f32(w, key, 10000.0f));
        if (o->swa_period) TRY(U32("attention.sliding_window_pattern", o->swa_period));
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
    TRY(hc_gguf_set_f32(w, key, !strcmp(a, "llama") ? 1e-5f : 1e-6f));
    if (o->n_expert) {
        TRY(U32("expert_count", o->n_expert));
        TRY(U32("expert_used_count", o->n_expert_used));
        TRY(U32("expert_feed_forward_length", o->expert_ffn_dim));
        if (o->n_shared_expert) TRY(U32("expert_shared_feed_forward_length", o->n_shared_expert * o->expert_ffn_dim));
    }
#undef U32
#undef TRY
    return st == HC_OK ? add_vocab(s) : st;
}

hc_status hc_synth(const hc_synth_opts *in)
{
    hc_synth_opts o;
    hc_status st = hc_synth_resolve(in, &o);
    if (st != HC_OK) return st;
    synth s = { .o = &o, .st = HC_OK };
    if ((st = hc_pool_create(o.n_threads, NULL, 0, &s.pool)) != HC_OK) return st;
    if ((st = hc_gguf_writer_create(&s.w)) != HC_OK) {
        hc_pool_free(s.pool);
        return st;
    }
    st = add_metadata(&s);
    for (int pass = 0; pass < 2 && st == HC_OK; pass++) { /* declare, then draw and write */
        if (pass == 1) st = hc_gguf_stream_open(s.w, o.output, hc_gguf_header_room(hc_gguf_writer_header_bytes(s.w), 32), 0, &s.out);
        if (st != HC_OK) break;
        /* gemma3 scales embeddings by sqrt(dim) and its head is the embedding: N(0, 1/dim) keeps both at unit scale */
        float emb_std = hc_arch_is_gemma3(o.arch) ? 1.0f / sqrtf((float)o.dim) : 1.0f;
        add_random(&s, "token_embd.weight", o.type, 2, o.dim, o.n_vocab, 1, 0.0f, emb_std);
        for (int l = 0; l < o.n_layer; l++) add_layer(&s, l);
        add_norm(&s, "output_norm.weight", o.dim);
        if (!hc_arch_is_gemma3(o.arch)) add_matrix(&s, "output.weight", o.dim, o.n_vocab, 1, o.type); /* gemma3: tied */
        st = s.st;
    }
    if (st == HC_OK) {
        st = hc_gguf_stream_finish(s.out);
        s.out = NULL;
    }
    hc_gguf_stream_abort(s.out);
    for (int i = 0; i < s.n_keep; i++) free(s.keep[i]);
    free(s.keep);
    hc_gguf_writer_free(s.w);
    hc_pool_free(s.pool);
    return st == HC_OK ? HC_OK : hc_error_context(st, "%s: ", o.output);
}
