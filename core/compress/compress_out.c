/* compress_out.c: the compressor's output file through a GGUF stream: the backbone declared from
 * the plan, kept tensors copied from the mapped source, packed layers and factors written as jobs
 * finish, branches truncated from the scratch room into place at the end (a forward copy in the file). */
#include "compress_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress_meta.h"
#include "compress_plan.h"
#include "compress_source.h"
#include "gguf.h"
#include "suffix.h"

#define ALIGN 32

static uint64_t aligned(uint64_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* Bytes of a job's factors at r directions: A, B, sigma, each aligned. */
static uint64_t factor_bytes(const hc_compress_job *j, int r, uint64_t *a, uint64_t *b)
{
    *a = aligned(hc_dtype_row_bytes(j->branch_dtype, j->in) * (size_t)r);
    *b = aligned(hc_dtype_row_bytes(j->branch_dtype, j->out) * (size_t)r);
    return *a + *b + aligned((uint64_t)r * sizeof(float));
}

typedef struct declare_ctx {
    hc_compress_state *cs;
    hc_status st;
} declare_ctx;

static void declare_tensor(hc_tensor *t, void *arg)
{
    declare_ctx *c = arg;
    if (c->st != HC_OK) return;
    const hc_compress_job *j = hc_compress_job_of(c->cs, t->name);
    if (!j) {
        hc_source_raw s = hc_source_raw_of(c->cs->model, t);
        c->st = hc_gguf_declare_tensor(c->cs->meta, t->name, s.type, s.n_dims, s.ne, NULL, s.nbytes);
        return;
    }
    int64_t ne[1] = { (int64_t)(j->packed_bytes * (j->parent ? (size_t)t->ne[2] : 1)) };
    c->st = hc_gguf_declare_tensor(c->cs->meta, t->name, HC_I8, 1, ne, NULL, (size_t)ne[0]);
}

static void write_kept(hc_tensor *t, void *arg)
{
    declare_ctx *c = arg;
    if (c->st != HC_OK || hc_compress_job_of(c->cs, t->name)) return;
    hc_source_raw s = hc_source_raw_of(c->cs->model, t);
    uint64_t off = 0;
    c->st = hc_gguf_stream_offset(c->cs->out, t->name, &off);
    if (c->st == HC_OK) c->st = hc_gguf_stream_pwrite(c->cs->out, off, s.data, s.nbytes);
    hc_source_release(s.data, s.nbytes);
}

/* The names of a job's branch tensors: <base>.lora_a, .lora_b, .lora_s. */
static void branch_name(const hc_compress_job *j, const char *suffix, char *name, size_t cap)
{
    size_t len = hc_len_without(j->weight->name, ".weight");
    snprintf(name, cap, "%.*s.%s", (int)len, j->weight->name, suffix);
}

hc_status hc_compress_out_open(hc_compress_state *cs)
{
    hc_compress_report none = { 0 };
    hc_status st = hc_gguf_writer_create(&cs->meta);
    if (st == HC_OK) st = hc_compress_meta_source(cs, cs->meta);
    if (st == HC_OK) st = hc_compress_meta_keys(cs, cs->meta, &none, 1);
    declare_ctx c = { .cs = cs, .st = st };
    if (st == HC_OK) {
        hc_model_for_each_tensor(cs->model, declare_tensor, &c);
        st = c.st;
    }
    /* the header at its largest: every factored job with a branch */
    size_t header = st == HC_OK ? hc_gguf_writer_header_bytes(cs->meta) : 0;
    uint64_t scratch = 0;
    for (int i = 0; st == HC_OK && i < cs->n_jobs; i++) {
        hc_compress_job *j = &cs->jobs[i];
        if (j->n_dirs <= 0) continue;
        char name[200];
        const char *sfx[3] = { "lora_a", "lora_b", "lora_s" };
        for (int k = 0; k < 3; k++) {
            branch_name(j, sfx[k], name, sizeof name);
            header += hc_gguf_tensor_info_bytes(name, k < 2 ? 2 : 1);
        }
        uint64_t a, b;
        j->scratch = scratch;
        scratch += factor_bytes(j, j->n_dirs, &a, &b);
    }
    cs->header_room = hc_gguf_header_room(header, ALIGN);
    if (st == HC_OK) st = hc_gguf_stream_open(cs->meta, cs->opts->output, cs->header_room, scratch, &cs->out);
    if (st != HC_OK) return st;
    /* the packed bytes' offsets, and the scratch room past the backbone */
    uint64_t end = hc_gguf_stream_data_end(cs->out);
    for (int i = 0; st == HC_OK && i < cs->n_jobs; i++) {
        hc_compress_job *j = &cs->jobs[i];
        st = hc_gguf_stream_offset(cs->out, j->parent ? j->parent->name : j->weight->name, &j->offset);
        if (j->parent) j->offset += (uint64_t)j->expert * j->packed_bytes;
        j->scratch += end;
    }
    if (st == HC_OK) {
        hc_model_for_each_tensor(cs->model, write_kept, &c);
        st = c.st;
    }
    return st;
}

hc_status hc_compress_out_packed(hc_compress_state *cs, const hc_compress_job *j, const void *packed)
{
    return hc_gguf_stream_pwrite(cs->out, j->offset, packed, j->packed_bytes);
}

hc_status hc_compress_out_kept_f32(hc_compress_state *cs, const hc_tensor *t, const float *v)
{
    hc_source_raw s = hc_source_raw_of(cs->model, t);
    if (s.type != HC_F32 || hc_compress_job_of(cs, t->name))
        return hc_error(HC_E_STATE, "%s: not an f32 tensor kept as stored", t->name);
    uint64_t off = 0;
    hc_status st = hc_gguf_stream_offset(cs->out, t->name, &off);
    if (st == HC_OK) st = hc_gguf_stream_pwrite(cs->out, off, v, s.nbytes);
    return st;
}

hc_status hc_compress_out_read_packed(const hc_compress_state *cs, const hc_compress_job *j, void *packed)
{
    return hc_gguf_stream_pread(cs->out, j->offset, packed, j->packed_bytes);
}

hc_status hc_compress_out_factors(hc_compress_state *cs, const hc_compress_job *j, const void *a, const void *b)
{
    uint64_t sa, sb;
    factor_bytes(j, j->n_dirs, &sa, &sb);
    hc_status st = hc_gguf_stream_pwrite(cs->out, j->scratch, a, hc_dtype_row_bytes(j->branch_dtype, j->in) * (size_t)j->n_dirs);
    if (st == HC_OK) st = hc_gguf_stream_pwrite(cs->out, j->scratch + sa, b, hc_dtype_row_bytes(j->branch_dtype, j->out) * (size_t)j->n_dirs);
    if (st == HC_OK) st = hc_gguf_stream_pwrite(cs->out, j->scratch + sa + sb, j->sigma, (size_t)j->n_dirs * sizeof(float));
    return st;
}

/* Moves n bytes from src to dst <= src in the file, front to back (what is overwritten was read). */
static hc_status move_down(hc_gguf_stream *s, uint64_t dst, uint64_t src, uint64_t n, char *buf, size_t cap)
{
    if (dst == src) return HC_OK;
    for (uint64_t done = 0; done < n;) {
        size_t k = n - done < cap ? (size_t)(n - done) : cap;
        hc_status st = hc_gguf_stream_pread(s, src + done, buf, k);
        if (st == HC_OK) st = hc_gguf_stream_pwrite(s, dst + done, buf, k);
        if (st != HC_OK) return st;
        done += k;
    }
    return HC_OK;
}

/* Declares a job's branch tensors at its rank and moves their prefixes out of the scratch room
 * (every destination lies at or before its source: prefixes are no longer, the order is kept). */
static hc_status write_branch(hc_compress_state *cs, const hc_compress_job *j, char *buf, size_t cap)
{
    hc_dtype t = j->branch_dtype;
    int r = j->rank;
    uint64_t sa, sb, off;
    factor_bytes(j, j->n_dirs, &sa, &sb);
    size_t bytes[3] = { hc_dtype_row_bytes(t, j->in) * (size_t)r, hc_dtype_row_bytes(t, j->out) * (size_t)r, (size_t)r * sizeof(float) };
    uint64_t src[3] = { j->scratch, j->scratch + sa, j->scratch + sa + sb };
    int64_t ne[3][2] = { { j->in, r }, { j->out, r }, { r, 1 } };
    const char *sfx[3] = { "lora_a", "lora_b", "lora_s" };
    hc_status st = HC_OK;
    for (int k = 0; k < 3 && st == HC_OK; k++) {
        char name[200];
        branch_name(j, sfx[k], name, sizeof name);
        st = hc_gguf_stream_add_tensor(cs->out, name, k < 2 ? t : HC_F32, k < 2 ? 2 : 1, ne[k], bytes[k], &off);
        if (st == HC_OK) st = move_down(cs->out, off, src[k], bytes[k], buf, cap);
    }
    return st;
}

hc_status hc_compress_out_finish(hc_compress_state *cs, const hc_compress_report *r)
{
    size_t cap = (size_t)8 << 20;
    char *buf = malloc(cap);
    hc_status st = buf ? HC_OK : hc_error(HC_E_NOMEM, "out of memory");
    for (int i = 0; st == HC_OK && i < cs->n_jobs; i++)
        if (cs->jobs[i].rank > 0) st = write_branch(cs, &cs->jobs[i], buf, cap);
    free(buf);
    if (st == HC_OK) st = hc_compress_meta_keys(cs, cs->meta, r, 0);
    if (st == HC_OK) {
        st = hc_gguf_stream_finish(cs->out);
        cs->out = NULL;
    }
    return st;
}

void hc_compress_out_abort(hc_compress_state *cs)
{
    hc_gguf_stream_abort(cs->out);
    cs->out = NULL;
}
