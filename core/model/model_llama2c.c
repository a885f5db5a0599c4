/* model_llama2c.c: reads a llama2.c checkpoint (karpathy/llama2.c "legacy" format): seven int32
 * hyper-parameters, then every weight as f32 in a fixed order; a negative vocab = own classifier. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"

typedef struct llama2c_header {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} llama2c_header;

/* Names the tensor (the model owns the string) and points it at n floats of the checkpoint. */
static hc_status take(hc_model *m, hc_tensor *t, const float **cursor, const char *name, int64_t ne0, int64_t ne1)
{
    char *copy = strdup(name);
    if (!copy) return hc_error(HC_E_NOMEM, "out of memory");
    hc_status st = hc_model_own(m, copy);
    if (st != HC_OK) return st;
    *t = (hc_tensor){ .name = copy, .dtype = HC_F32, .n_dims = ne1 > 1 ? 2 : 1, .ne = { ne0, ne1, 1, 1 },
                      .data = (void *)*cursor, .nbytes = (size_t)(ne0 * ne1) * sizeof(float) };
    *cursor += ne0 * ne1;
    return HC_OK;
}

static hc_status bind_weights(hc_model *m, const float *w, int shared_classifier)
{
    const hc_model_config *c = &m->cfg;
    int q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim, L = c->n_layer;
    /* llama2.c stores each kind of weight for all layers together, in this order */
    const struct { int proj; int64_t in, out; } order[] = {
        { HC_PROJ_Q, c->dim, q_dim }, { HC_PROJ_K, c->dim, kv_dim }, { HC_PROJ_V, c->dim, kv_dim }, { HC_PROJ_O, q_dim, c->dim },
    };
    const float *cur = w;
    char name[96];
    hc_status st = take(m, &m->tok_embd, &cur, "token_embd.weight", c->dim, c->n_vocab);
    for (int l = 0; l < L && st == HC_OK; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        st = take(m, &m->layers[l].attn_norm, &cur, name, c->dim, 1);
    }
    for (size_t k = 0; k < 4; k++)
        for (int l = 0; l < L && st == HC_OK; l++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, hc_proj_name(order[k].proj));
            st = take(m, &m->layers[l].proj[order[k].proj], &cur, name, order[k].in, order[k].out);
        }
    for (int l = 0; l < L && st == HC_OK; l++) {
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        st = take(m, &m->layers[l].ffn_norm, &cur, name, c->dim, 1);
    }
    const struct { int proj; int64_t in, out; } ffn[] = {
        { HC_PROJ_GATE, c->dim, c->ffn_dim }, { HC_PROJ_DOWN, c->ffn_dim, c->dim }, { HC_PROJ_UP, c->dim, c->ffn_dim },
    };
    for (size_t k = 0; k < 3; k++)
        for (int l = 0; l < L && st == HC_OK; l++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, hc_proj_name(ffn[k].proj));
            st = take(m, &m->layers[l].proj[ffn[k].proj], &cur, name, ffn[k].in, ffn[k].out);
        }
    if (st == HC_OK) st = take(m, &m->out_norm, &cur, "output_norm.weight", c->dim, 1);
    if (st != HC_OK) return st;
    cur += (size_t)c->n_ctx_train * c->head_dim; /* freq_cis_real and freq_cis_imag: unused, RoPE is computed */
    if (shared_classifier) m->output = m->tok_embd;
    else st = take(m, &m->output, &cur, "output.weight", c->dim, c->n_vocab);
    return st;
}

static size_t expected_floats(const hc_model_config *c, int shared_classifier)
{
    size_t d = (size_t)c->dim, L = (size_t)c->n_layer, q = (size_t)c->n_head * c->head_dim, kv = (size_t)c->n_head_kv * c->head_dim;
    size_t n = (size_t)c->n_vocab * d + L * d /* attn norm */ + L * d * q + 2 * L * d * kv + L * q * d + L * d /* ffn norm */
               + 3 * L * d * (size_t)c->ffn_dim + d /* final norm */ + (size_t)c->n_ctx_train * c->head_dim;
    if (!shared_classifier) n += (size_t)c->n_vocab * d;
    return n;
}

hc_status hc_model_load_llama2c(hc_model *m, const hc_model_load_opts *opts)
{
    int fd = open(m->path, O_RDONLY);
    if (fd < 0) return hc_error(HC_E_IO, "%s: cannot open the model file", m->path);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (size_t)sb.st_size < sizeof(llama2c_header)) {
        close(fd);
        return hc_error(HC_E_FORMAT, "%s: neither a GGUF file nor a llama2.c checkpoint (too short for a header)", m->path);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return hc_error(HC_E_IO, "%s: cannot map the file", m->path);
    m->map = map;
    m->map_size = (size_t)sb.st_size;

    llama2c_header h;
    memcpy(&h, map, sizeof h);
    hc_model_config *c = &m->cfg;
    int shared = h.vocab_size > 0;
    /* the magnitude in 64 bits: -INT32_MIN does not fit an int32 */
    int64_t vocab = shared ? (int64_t)h.vocab_size : -(int64_t)h.vocab_size;
    if (vocab < 1 || vocab > (1 << 24))
        return hc_error(HC_E_FORMAT, "%s: not a valid llama2.c checkpoint (and no GGUF magic): vocab_size = %lld is out of range",
                        m->path, (long long)h.vocab_size);
    *c = (hc_model_config){ .n_layer = h.n_layers, .dim = h.dim, .n_head = h.n_heads, .n_head_kv = h.n_kv_heads,
                            .ffn_dim = h.hidden_dim, .n_vocab = (int)vocab,
                            .n_ctx_train = h.seq_len, .rope_theta = 10000.0f, .rope_mode = HC_ROPE_NORM,
                            .rms_eps = 1e-5f, .tied_output = shared };
    snprintf(c->arch, sizeof c->arch, "llama2c");
    if (c->n_head > 0 && c->dim % c->n_head == 0) c->head_dim = c->dim / c->n_head;
    c->n_rot = c->head_dim;
    hc_status st = hc_model_check_config(c);
    if (st != HC_OK)
        return hc_error_context(st, "%s: not a valid llama2.c checkpoint (and no GGUF magic): ", m->path);
    size_t want = sizeof h + expected_floats(c, shared) * sizeof(float);
    if (m->map_size != want)
        return hc_error(HC_E_FORMAT, "%s: llama2.c checkpoint of %zu bytes, but its header (dim %d, %d layers, vocab %d) implies %zu bytes",
                        m->path, m->map_size, c->dim, c->n_layer, c->n_vocab, want);
    if (!(m->layers = calloc((size_t)c->n_layer, sizeof *m->layers))) return hc_error(HC_E_NOMEM, "%s: out of memory", m->path);
    if ((st = bind_weights(m, (const float *)((const char *)map + sizeof h), shared)) != HC_OK) return st;
    if (opts && opts->to_f32) return hc_model_convert_f32(m); /* already f32: nothing to do */
    return HC_OK;
}

hc_status hc_llama2c_tokenizer_path(const char *model, int n_vocab, char *buf, size_t cap)
{
    const char *slash = strrchr(model, '/');
    int dir_len = slash ? (int)(slash - model + 1) : 0;
    snprintf(buf, cap, "%.*stokenizer.bin", dir_len, model);
    if (access(buf, R_OK) == 0) return HC_OK;
    snprintf(buf, cap, "%.*stok%d.bin", dir_len, model, n_vocab);
    if (access(buf, R_OK) == 0) return HC_OK;
    return hc_error(HC_E_ARG, "%s is a llama2.c checkpoint and carries no vocabulary: give its tokenizer with -z FILE "
                              "(no tokenizer.bin or tok%d.bin beside it)", model, n_vocab);
}
