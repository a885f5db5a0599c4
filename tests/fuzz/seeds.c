/* seeds.c: hc-fuzz-seeds OUT writes each fuzzer's seed corpus into OUT/<target>/ with the project's
 * own code: tiny synthetic models of every architecture, a compressed one, llama2.c checkpoints and
 * tokenizer files, test vocabularies, the shipped Lua policies and pipelines, prompts, JSONL rows. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compress.h"
#include "fuzz_util.h"
#include "gguf.h"
#include "registry_default.h"
#include "synth.h"

static const char *out_dir;
static int n_written;

static void die(const char *what)
{
    fprintf(stderr, "hc-fuzz-seeds: %s: %s\n", what, hc_last_error()[0] ? hc_last_error() : strerror(errno));
    exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) die(path);
    n_written++;
}

static void put_str(const char *target, const char *name, const char *s) { put(target, name, s, strlen(s)); }

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) die(path);
    fclose(f);
    buf[len] = '\0';
    *n = (size_t)len;
    return buf;
}

/* A file as a seed of one or more targets. */
static void put_file(const char *path, const char *name, const char *t1, const char *t2)
{
    size_t n;
    char *b = slurp(path, &n);
    if (t1) put(t1, name, b, n);
    if (t2) put(t2, name, b, n);
    free(b);
}

/* ---- models ---- */

static int is_tokenizer_key(const char *key, void *ctx)
{
    (void)ctx;
    return !strncmp(key, "tokenizer.", 10);
}

/* A model file as a seed: whole for the GGUF reader; for model loading without its vocabulary
 * (loading reads none of it, and 259 token strings would be most of the parsing). */
static void put_model(const char *path, const char *name)
{
    put_file(path, name, "gguf", NULL);
    hc_gguf *g = NULL;
    hc_gguf_writer *w = NULL;
    if (hc_gguf_open(path, &g) != HC_OK || hc_gguf_writer_create(&w) != HC_OK) die(name);
    hc_status st = hc_gguf_copy_kv(w, g, is_tokenizer_key, NULL);
    for (uint64_t i = 0; st == HC_OK && i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        st = hc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    const char *bare = fuzz_tmp("bare.gguf");
    if (st == HC_OK) st = hc_gguf_writer_write(w, bare);
    if (st != HC_OK) die(name);
    hc_gguf_writer_free(w);
    hc_gguf_close(g);
    put_file(bare, name, "model", NULL);
}

static const char *tmp_model(const char *name)
{
    static char path[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s", fuzz_tmp(name));
    return path[k];
}

static void synth_seed(const char *name, hc_synth_opts o)
{
    const char *path = tmp_model(name);
    o.output = path;
    if (!o.n_vocab) o.n_vocab = 259;
    if (!o.seed) o.seed = 1;
    if (hc_synth(&o) != HC_OK) die(name);
    put_model(path, name);
}

/* A copy of src with the architecture's keys renamed from `from` to `to` (same tensors). */
static void rearch_seed(const char *name, const char *src, const char *from, const char *to)
{
    hc_gguf *g = NULL;
    hc_gguf_writer *w = NULL;
    if (hc_gguf_open(src, &g) != HC_OK || hc_gguf_writer_create(&w) != HC_OK) die(name);
    size_t fl = strlen(from);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const hc_gguf_kv *kv = &g->kv[i];
        char key[256];
        if (!strncmp(kv->key, from, fl) && kv->key[fl] == '.') snprintf(key, sizeof key, "%s%s", to, kv->key + fl);
        else snprintf(key, sizeof key, "%s", kv->key);
        hc_status st = HC_OK;
        if (!strcmp(kv->key, "general.architecture")) st = hc_gguf_set_str(w, key, to);
        else if (kv->type == HC_GGUF_STRING) st = hc_gguf_set_str(w, key, kv->v.str.data);
        else if (kv->type == HC_GGUF_UINT32) st = hc_gguf_set_u32(w, key, (uint32_t)kv->v.u64);
        else if (kv->type == HC_GGUF_INT32) st = hc_gguf_set_i32(w, key, (int32_t)kv->v.i64);
        else if (kv->type == HC_GGUF_UINT64) st = hc_gguf_set_u64(w, key, kv->v.u64);
        else if (kv->type == HC_GGUF_FLOAT32) st = hc_gguf_set_f32(w, key, (float)kv->v.f64);
        else if (kv->type == HC_GGUF_BOOL) st = hc_gguf_set_bool(w, key, (int)kv->v.u64);
        else if (kv->type == HC_GGUF_ARRAY && kv->arr_type == HC_GGUF_STRING) {
            const char **items = malloc((size_t)kv->arr_n * sizeof *items);
            for (uint64_t k = 0; k < kv->arr_n; k++) items[k] = ((const hc_gguf_str *)kv->arr)[k].data;
            st = hc_gguf_set_arr(w, key, HC_GGUF_STRING, items, kv->arr_n);
            free(items);
        } else if (kv->type == HC_GGUF_ARRAY && kv->arr) st = hc_gguf_set_arr(w, key, kv->arr_type, kv->arr, kv->arr_n);
        if (st != HC_OK) die(name);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        if (hc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes) != HC_OK) die(name);
    }
    const char *path = tmp_model(name);
    if (hc_gguf_writer_write(w, path) != HC_OK) die(name);
    hc_gguf_writer_free(w);
    hc_gguf_close(g);
    put_model(path, name);
}

static void compressed_seed(const hc_registry *reg)
{
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s", fuzz_tmp("c-src.gguf"));
    snprintf(dst, sizeof dst, "%s", fuzz_tmp("c-dst.gguf"));
    hc_synth_opts so = { .arch = "llama", .output = src, .dim = 32, .n_layer = 1, .n_vocab = 259, .ffn_dim = 32, .seed = 3, .type = HC_Q8_0 };
    if (hc_synth(&so) != HC_OK) die("compressed: synth");
    hc_compress_opts co = { .input = src, .output = dst, .quant = "rtn:bits=4,group=32", .head_quant = "rtn:bits=4,group=32",
                            .rank = 2, .threads = 1, .registry = reg };
    hc_compress_report rep;
    if (hc_compress(&co, &rep) != HC_OK) die("compressed: compress");
    put_model(dst, "llama-rtn4-rank2.gguf");
    co.branch_dtype = HC_Q8_0;
    co.quant = "rtn:bits=3,group=32";
    if (hc_compress(&co, &rep) != HC_OK) die("compressed: compress q8_0 branches");
    put_model(dst, "llama-rtn3-q8branches.gguf");
}

/* llama2.c's legacy checkpoint: the header, then every weight as f32 (llama2.c's order). */
static void llama2c_seed(const char *name, int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int seq)
{
    int32_t h[7] = { dim, hidden, layers, heads, kv_heads, vocab, seq };
    int hd = dim / heads, v = vocab < 0 ? -vocab : vocab;
    size_t n = (size_t)v * dim + (size_t)layers * dim * 2 + (size_t)layers * dim * (heads * hd) * 2 +
               (size_t)layers * dim * (kv_heads * hd) * 2 + (size_t)layers * dim * hidden * 3 + dim + (size_t)seq * hd;
    if (vocab < 0) n += (size_t)v * dim;
    size_t bytes = sizeof h + n * sizeof(float);
    uint8_t *b = malloc(bytes);
    memcpy(b, h, sizeof h);
    float *w = (float *)(b + sizeof h);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        w[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.5f;
    }
    put("model", name, b, bytes);
    free(b);
}

/* ---- tokenizers ---- */

/* A llama2.c tokenizer file: max_token_length, then per token a float score, an int32 length and
 * the bytes: <unk>, <s>, </s>, the 256 byte tokens, then some pieces. */
static uint8_t *llama2c_tokenizer(int *vocab, size_t *size)
{
    static const char *const pieces[] = { " t", "he", " a", "in", " the", "er", "on", " s", "ing", "ed" };
    size_t cap = 16384, n = 0;
    uint8_t *b = malloc(cap);
    int32_t maxlen = 16;
    memcpy(b, &maxlen, 4);
    n = 4;
    int count = 0;
    for (int i = 0; i < 3 + 256 + 10; i++) {
        char text[16];
        if (i == 0) snprintf(text, sizeof text, "<unk>");
        else if (i == 1) snprintf(text, sizeof text, "\n<s>\n");
        else if (i == 2) snprintf(text, sizeof text, "\n</s>\n");
        else if (i < 259) snprintf(text, sizeof text, "<0x%02X>", i - 3);
        else snprintf(text, sizeof text, "%s", pieces[i - 259]);
        float score = i < 259 ? 0.0f : -(float)(i - 259);
        int32_t len = (int32_t)strlen(text);
        memcpy(b + n, &score, 4);
        memcpy(b + n + 4, &len, 4);
        memcpy(b + n + 8, text, (size_t)len);
        n += 8 + (size_t)len;
        count++;
    }
    *vocab = count;
    *size = n;
    return b;
}

static void tokenizer_seeds(void)
{
    static const char *const texts[] = {
        "Hello world", " Once upon a time, there was a little girl.\n", "  spaces\tand\ttabs  \n\n",
        "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x99", "<|im_start|>user\nhi<|im_end|>\n<s></s>", "123 4567 89,!?",
        "\xC3\x28\xFF\xFE raw bytes", "I'd've they're",
    };
    char name[64];
    uint8_t buf[70000];
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (int mode = 0; mode < 2; mode++) {
            buf[0] = (uint8_t)mode;
            size_t n = strlen(texts[i]);
            memcpy(buf + 1, texts[i], n);
            snprintf(name, sizeof name, "builtin-%d-%zu", mode, i);
            put("tokenizer", name, buf, n + 1);
        }
    const char *vocab[2] = { fuzz_tmp("spm.gguf"), NULL };
    if (fuzz_write_spm_vocab(vocab[0]) != HC_OK) die("spm vocabulary");
    put_file(vocab[0], "spm-vocab.gguf", "gguf", NULL);
    char gpt2[600];
    snprintf(gpt2, sizeof gpt2, "%s", fuzz_tmp("gpt2.gguf"));
    vocab[1] = gpt2;
    if (fuzz_write_gpt2_vocab(gpt2) != HC_OK) die("gpt2 vocabulary");
    put_file(gpt2, "gpt2-vocab.gguf", "gguf", NULL);
    for (int v = 0; v < 2; v++) {
        size_t n;
        char *file = slurp(v == 0 ? vocab[0] : vocab[1], &n);
        const char *text = texts[v == 0 ? 1 : 4];
        size_t tl = strlen(text), at = 0;
        if (1 + 4 + n + tl > sizeof buf) die("vocabulary too large for a seed");
        buf[at++] = 0;
        uint32_t len = (uint32_t)n;
        memcpy(buf + at, &len, 4);
        memcpy(buf + at + 4, file, n);
        memcpy(buf + at + 4 + n, text, tl);
        snprintf(name, sizeof name, "gguf-vocab-%d", v);
        put("vocab", name, buf, at + 4 + n + tl);
        free(file);
    }
    int count;
    size_t n;
    uint8_t *file = llama2c_tokenizer(&count, &n);
    size_t at = 0;
    buf[at++] = 1;
    buf[at++] = (uint8_t)(count & 0xFF);
    buf[at++] = (uint8_t)(count >> 8);
    uint32_t len = (uint32_t)n;
    memcpy(buf + at, &len, 4);
    memcpy(buf + at + 4, file, n);
    memcpy(buf + at + 4 + n, texts[1], strlen(texts[1]));
    put("vocab", "llama2c-tok", buf, at + 4 + n + strlen(texts[1]));
    free(file);
}

/* ---- scripts and text ---- */

/* A malloc'd copy of s with every `from` replaced by `to`. */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + fl, from)) n++;
    char *out = malloc(strlen(s) + n * tl + 1), *o = out;
    for (const char *p; (p = strstr(s, from)); s = p + fl) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        memcpy(o, to, tl);
        o += tl;
    }
    strcpy(o, s);
    return out;
}

static void script_seeds(void)
{
    static const char *const policies[] = { "greedy", "relative", "uniform" };
    char path[1024];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/scripts/policies/%s.lua", HC_SOURCE_DIR, policies[i]);
        snprintf(path + 900, 100, "%s.lua", policies[i]);
        put_file(path, path + 900, "lua", NULL);
    }
    static const char *const snippets[] = {
        "local s = ('hello world'):gsub('o', '0') local a, b = s:find('w(%a+)') for w in s:gmatch('%a+') do end return s:match('^(%w+)')",
        "local t = {5, 3, 1} table.sort(t) table.insert(t, 2, 9) table.remove(t) return table.concat(t, ','), table.unpack(t)",
        "function allocate(b, l) local r = {} for i = 1, #l do r[i] = 0 end fill_steps(l, r, b.bytes, function(i, t) return l[i].gain[t + 1] end) return r end",
        "function allocate(b, l) local r = {} for _, x in ipairs(l) do r[x.name] = 1 end return r end",
        "local ok, e = pcall(error, {code = 1}) local mt = setmetatable({}, {__index = function(t, k) return k end}) return mt.x, string.format('%q %5.2f %d', 'a', 1.5, 3)",
        "local s = string.rep('ab', 10, '-') return #s, s:byte(1, -1), string.char(65, 66), s:sub(2, 5), s:upper(), s:reverse()",
        "local x = math.maxinteger // -1 local y = math.mininteger % -1 return math.tointeger(3.0), math.floor(-0.5), 7 // 0.0, x, y",
        "local t = table.move({1, 2, 3}, 1, 3, 2) return #t, select('#', table.unpack(t)), next(t), rawlen(t), rawequal(t, t)",
    };
    char name[32];
    for (size_t i = 0; i < sizeof snippets / sizeof snippets[0]; i++) {
        snprintf(name, sizeof name, "snippet-%zu.lua", i);
        put_str("lua", name, snippets[i]);
    }
    /* the shipped pipelines, as they are and with the inline scheduler (the only one fuzz_pipeline
       loads: see there) */
    static const char *const pipelines[] = { "default", "adaptive" };
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/scripts/pipelines/%s.lua", HC_SOURCE_DIR, pipelines[i]);
        snprintf(path + 900, 100, "%s.lua", pipelines[i]);
        put_file(path, path + 900, "pipeline", NULL);
        size_t n;
        char *text = slurp(path, &n), *inl = replace_all(text, "\"async\"", "\"inline\"");
        snprintf(path + 900, 100, "%s-inline.lua", pipelines[i]);
        put_str("pipeline", path + 900, inl);
        free(inl);
        free(text);
    }
    size_t n;
    snprintf(path, sizeof path, "%s/scripts/pipelines/default.lua", HC_SOURCE_DIR);
    char *orig = slurp(path, &n), *base = replace_all(orig, "\"async\"", "\"inline\"");
    free(orig);
    n = strlen(base);
    static const char *const answers[] = {
        "function on_step(s) local a = {} for _, st in ipairs(s.stages) do a[st.name] = { rank = st.rank_max // 2, branch = st.layer % 2 == 0 } end return a end",
        "on_step_every = 2 function on_step(s) return { host_budget = 5, ['blk.0.attn_q'] = { sched = 'inline' }, ['blk.1.ffn_down'] = { sched = 'async' } } end",
        "function on_step(s) return { ['blk.0.attn_v'] = { rank = 0 }, output = { branch = false } } end",
    };
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        size_t al = strlen(answers[i]);
        char *s = malloc(n + al + 2);
        memcpy(s, base, n);
        s[n] = '\n';
        memcpy(s + n + 1, answers[i], al + 1);
        snprintf(name, sizeof name, "on-step-%zu.lua", i);
        put_str("pipeline", name, s);
        free(s);
    }
    free(base);
}

static void text_seeds(void)
{
    /* chat: flags, template, then role/content pairs, 0-separated */
    static const char smol[] = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                               "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM<|im_end|>\\n' }}{% endif %}"
                               "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
    const char *parts[][5] = {
        { "\x02", smol, "user", "What is 2 + 2?", NULL },
        { "\x06", "<|im_start|>system\nBe brief.<|im_end|>", "system", "Be brief.", "user" },
        { "\x01", "", "assistant", "<|im_end|> inside", NULL },
        { "\x00", "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", "user", "hi", NULL },
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char buf[2048];
        size_t at = 0;
        buf[at++] = parts[i][0][0];
        for (int k = 1; k < 5 && parts[i][k]; k++) {
            size_t l = strlen(parts[i][k]);
            memcpy(buf + at, parts[i][k], l);
            at += l;
            buf[at++] = '\0';
        }
        char name[32];
        snprintf(name, sizeof name, "chat-%zu", i);
        put("chat", name, buf, at);
    }
    static const char *const jsonl[] = {
        ("{\"query\": \"Question: What is the capital of France?\\nAnswer:\", \"choices\": [\"Paris\", \"Lyon\"], \"gold\": 0}\n"
         "{\"query\": \"2 + 2 =\", \"choices\": [\"3\", \"4\", \"5\"], \"gold\": 1, \"id\": \"x\"}\n"),
        "{\"context\": \"He opened the door and saw his\", \"continuation\": \"dog\"}\n\n{\"context\": \"a\", \"continuation\": \"b\"}\n",
        "[1, -2.5e3, true, false, null, \"\\u00e9\\ud83e\\udd99\\n\", {\"a\": {\"b\": []}}]",
        "{\"query\": \"\", \"choices\": [], \"gold\": 2}\n{bad json\n",
    };
    for (size_t i = 0; i < sizeof jsonl / sizeof jsonl[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "rows-%zu.jsonl", i);
        put_str("jsonl", name, jsonl[i]);
    }
}

/* A GGUF of every value type, arrays of strings and of numbers, and three tensors. */
static void kv_types_seed(void)
{
    hc_gguf_writer *w = NULL;
    static float f32[16];
    static uint16_t f16[16];
    static uint8_t q8[34 * 2];
    for (int i = 0; i < 16; i++) {
        f32[i] = (float)i;
        f16[i] = hc_f32_to_f16((float)-i);
    }
    const char *toks[] = { "<unk>", "<s>", "\xe2\x96\x81world", "" };
    const int32_t types[] = { 2, 3, 1, 1 };
    const double f64[] = { 1.5, -2.25 };
    int64_t ne_a[2] = { 8, 2 }, ne_b[1] = { 64 }, ne_c[1] = { 16 };
    hc_status st = hc_gguf_writer_create(&w);
    st = st ? st : hc_gguf_set_str(w, "general.architecture", "llama");
    st = st ? st : hc_gguf_set_u32(w, "llama.block_count", 2);
    st = st ? st : hc_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    st = st ? st : hc_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    st = st ? st : hc_gguf_set_u64(w, "general.size", 123456789);
    st = st ? st : hc_gguf_set_i32(w, "general.quality", -3);
    st = st ? st : hc_gguf_set_arr(w, "tokenizer.ggml.tokens", HC_GGUF_STRING, toks, 4);
    st = st ? st : hc_gguf_set_arr(w, "tokenizer.ggml.token_type", HC_GGUF_INT32, types, 4);
    st = st ? st : hc_gguf_set_arr(w, "general.f64", HC_GGUF_FLOAT64, f64, 2);
    st = st ? st : hc_gguf_writer_set_alignment(w, 64);
    st = st ? st : hc_gguf_add_tensor(w, "a", HC_F32, 2, ne_a, f32, sizeof f32);
    st = st ? st : hc_gguf_add_tensor(w, "b", HC_Q8_0, 1, ne_b, q8, sizeof q8);
    st = st ? st : hc_gguf_add_tensor(w, "c", HC_F16, 1, ne_c, f16, sizeof f16);
    const char *path = fuzz_tmp("kv.gguf");
    st = st ? st : hc_gguf_writer_write(w, path);
    hc_gguf_writer_free(w);
    if (st != HC_OK) die("kv types");
    put_file(path, "kv-types.gguf", "gguf", NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hc-fuzz-seeds OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0755);
    hc_registry *reg = NULL;
    if (hc_registry_create(&reg) != HC_OK || hc_registry_load_default(reg) != HC_OK) die("registry");
    synth_seed("llama-f32.gguf", (hc_synth_opts){ .arch = "llama", .dim = 4, .n_layer = 1, .ffn_dim = 8 });
    synth_seed("llama-f16-2layers.gguf", (hc_synth_opts){ .arch = "llama", .dim = 8, .n_layer = 2, .n_head = 2, .n_head_kv = 1, .ffn_dim = 8, .type = HC_F16 });
    synth_seed("llama-q8_0.gguf", (hc_synth_opts){ .arch = "llama", .dim = 32, .n_layer = 1, .ffn_dim = 32, .type = HC_Q8_0 });
    synth_seed("qwen3-f16.gguf", (hc_synth_opts){ .arch = "qwen3", .dim = 8, .n_layer = 1, .n_head = 2, .ffn_dim = 8, .type = HC_F16 });
    synth_seed("qwen2moe.gguf", (hc_synth_opts){ .arch = "qwen2moe", .dim = 4, .n_layer = 1, .ffn_dim = 8, .n_expert = 2, .n_expert_used = 1 });
    synth_seed("qwen3moe.gguf", (hc_synth_opts){ .arch = "qwen3moe", .dim = 4, .n_layer = 1, .ffn_dim = 8, .n_expert = 2, .n_expert_used = 2 });
    synth_seed("mixtral.gguf", (hc_synth_opts){ .arch = "llama", .dim = 4, .n_layer = 1, .ffn_dim = 8, .n_expert = 2, .n_expert_used = 1 });
    char src[600];
    snprintf(src, sizeof src, "%s", fuzz_tmp("re-src.gguf"));
    hc_synth_opts o = { .arch = "llama", .output = src, .dim = 4, .n_layer = 1, .ffn_dim = 8, .n_vocab = 259, .seed = 5 };
    if (hc_synth(&o) != HC_OK) die("qwen2 source");
    rearch_seed("qwen2.gguf", src, "llama", "qwen2");
    o = (hc_synth_opts){ .arch = "qwen3moe", .output = src, .dim = 4, .n_layer = 1, .n_head = 1, .ffn_dim = 8, .n_expert = 2,
                         .n_expert_used = 1, .n_vocab = 259, .seed = 6 };
    if (hc_synth(&o) != HC_OK) die("olmoe source");
    rearch_seed("olmoe.gguf", src, "qwen3moe", "olmoe");
    compressed_seed(reg);
    llama2c_seed("llama2c-shared.bin", 8, 16, 1, 2, 2, 32, 4);
    llama2c_seed("llama2c-own-head-gqa.bin", 8, 16, 2, 2, 1, -32, 4);
    kv_types_seed();
    tokenizer_seeds();
    script_seeds();
    text_seeds();
    hc_registry_free(reg);
    printf("hc-fuzz-seeds: %d seeds in %s\n", n_written, out_dir);
    return 0;
}
