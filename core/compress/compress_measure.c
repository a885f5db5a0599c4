/* compress_measure.c: measured end-to-end sensitivity (compress --sens-tokens N): how far the model
 * moves from the source when only one layer (or one MoE tensor's experts) is quantized, on
 * calibration text or on text the source model samples itself (--sens-source self). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress_measure.h"
#include "compress_awq.h"
#include "compress_out.h"
#include "compress_sample.h"
#include "compress_source.h"
#include "compress_text.h"
#include "context.h"

/* The calibration loss is the mean KL divergence KL(p_source || p_model) of the next-token
 * distributions over the measurement tokens: it needs no labels, and it is what compensation is for
 * (matching the source). A layer's loss is that of the source model with only this layer replaced
 * by its quantized weights, no branch: measured next to the source, where one layer's error is the
 * only one, it is a KL divergence, positive and smooth in that error. (Measured instead by leaving one
 * branch out of the whole compressed model, on SmolLM2-135M W3 at 10% and 256 tokens, half of the
 * layers came out negative: the other layers' errors make that difference noise, and greedy on it
 * was worse than uniform.) Over the layer's error with no branch it is the layer's exchange rate
 * from error to loss, which greedy.lua uses. */
typedef struct measure {
    hc_compress_state *cs;
    int32_t *ids;
    int64_t n;
    int seq;
    int self;                /* the tokens are sampled from the source model */
    int n_vocab;
    float *ref;              /* [n][n_vocab] log-probabilities of the source model */
} measure;

static void log_softmax(const float *z, int n, float *out)
{
    float mx = z[0];
    for (int i = 1; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)(z[i] - mx));
    float lse = mx + (float)log(sum);
    for (int i = 0; i < n; i++) out[i] = z[i] - lse;
}

/* KL(p || q) of one row: p given as log-probabilities, q as logits. */
static double kl_row(const float *logp, const float *z, int n)
{
    float mx = z[0];
    for (int i = 1; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    double sum = 0, cross = 0;
    for (int i = 0; i < n; i++) {
        sum += exp((double)(z[i] - mx));
        double p = exp((double)logp[i]);
        cross += p * ((double)logp[i] - (double)(z[i] - mx));
    }
    return cross + log(sum); /* sum_i p_i (log p_i - z_i + mx) + log sum exp(z - mx) */
}

/* Runs the measurement tokens through ctx, sequence by sequence from an empty cache: stores the
 * log-probabilities (ref != NULL) or returns the mean KL from the stored ones in *kl. */
static hc_status run(measure *m, hc_context *ctx, float *ref, double *kl)
{
    double sum = 0;
    for (int64_t at = 0; at < m->n; at += m->seq) {
        int len = (int)(m->n - at < m->seq ? m->n - at : m->seq);
        const float *logits = NULL;
        hc_context_reset(ctx);
        hc_status st = hc_decode(ctx, m->ids + at, len, 1, &logits);
        if (st != HC_OK) return st;
        for (int i = 0; i < len; i++) {
            const float *z = logits + (size_t)i * m->n_vocab;
            float *row = (ref ? ref : m->ref) + (size_t)(at + i) * m->n_vocab;
            if (ref) log_softmax(z, m->n_vocab, row);
            else sum += kl_row(row, z, m->n_vocab);
        }
    }
    if (kl) *kl = sum / (double)m->n;
    return HC_OK;
}

/* An expert's weight in its tensor's loss: error x routing frequency (1 when not calibrated). */
static double expert_share(const hc_compress_job *j)
{
    return j->energy * (j->routing_frequency >= 0 ? j->routing_frequency : 1.0);
}

/* The experts of one 3-D tensor of a MoE layer (its jobs from `first` on, consecutive): one pass
 * with all of them quantized, the loss shared among them in proportion to routing frequency x
 * error (an expert's error reaches the loss only on the tokens routed to it; one pass per expert
 * would cost n_expert times as much). Returns the end of the group in *end. */
static hc_status measure_experts(measure *m, hc_context *ctx, int first, int *end)
{
    hc_compress_state *cs = m->cs;
    hc_tensor *parent = (hc_tensor *)cs->jobs[first].parent; /* the model's own tensor, read by the forward */
    int last = first;
    while (last < cs->n_jobs && cs->jobs[last].parent == parent) last++;
    *end = last;
    size_t per = (size_t)(cs->jobs[first].out * cs->jobs[first].in);
    float *deq = malloc((size_t)parent->ne[2] * per * sizeof *deq);
    void *packed = malloc(cs->jobs[first].packed_bytes);
    hc_status st = deq && packed ? HC_OK : hc_error(HC_E_NOMEM, "%s: out of memory", parent->name);
    for (int i = first; i < last && st == HC_OK; i++) {
        hc_compress_job *j = &cs->jobs[i];
        if ((st = hc_compress_out_read_packed(cs, j, packed)) == HC_OK)
            j->fmt->ops->dequantize_rows(j->fmt->params, packed, j->in, j->out, 0, j->out, deq + (size_t)j->expert * per);
    }
    free(packed);
    /* the source tensor (the model's own, read by the forward) points at the copy while it runs */
    hc_tensor source = *parent;
    double loss = 0, total = 0;
    if (st == HC_OK) {
        parent->data = deq;
        parent->dtype = HC_F32;
        parent->nbytes = (size_t)parent->ne[2] * per * sizeof *deq;
        st = run(m, ctx, NULL, &loss);
        *parent = source;
    }
    free(deq);
    if (st != HC_OK) return hc_error_context(st, "%s: ", parent->name);
    for (int i = first; i < last; i++) total += expert_share(&cs->jobs[i]);
    for (int i = first; i < last; i++) {
        hc_compress_job *j = &cs->jobs[i];
        j->loss = total > 0 ? loss * expert_share(j) / total : 0;
        j->loss_measured = 1;
    }
    return HC_OK;
}

/* Each job's loss: its dequantized weights in place of the source's for one pass over the tokens
 * (the tensor points at a copy: the source may be a read-only mapping of the input file); the
 * experts of a MoE tensor together (measure_experts). */
static hc_status measure_layers(measure *m, hc_context *ctx)
{
    hc_compress_state *cs = m->cs;
    const hc_compress_opts *o = cs->opts;
    int total = 0, done = 0;
    for (int i = 0; i < cs->n_jobs; i++) total += cs->jobs[i].rank_max > 0;
    hc_status st = HC_OK;
    for (int i = 0; st == HC_OK && i < cs->n_jobs; i++) {
        hc_compress_job *j = &cs->jobs[i];
        if (j->parent) {
            int end = i;
            st = measure_experts(m, ctx, i, &end);
            for (int k = i; k < end; k++) done += cs->jobs[k].rank_max > 0;
            if (st == HC_OK && o->progress) o->progress(o->progress_ctx, "measure", done, total);
            i = end - 1;
            continue;
        }
        if (j->rank_max <= 0) continue;
        float *deq = malloc((size_t)(j->out * j->in) * sizeof *deq);
        void *packed = malloc(j->packed_bytes);
        st = deq && packed ? HC_OK : hc_error(HC_E_NOMEM, "%s: out of memory", j->weight->name);
        if (st == HC_OK) st = hc_compress_out_read_packed(cs, j, packed);
        if (st == HC_OK) {
            j->fmt->ops->dequantize_rows(j->fmt->params, packed, j->in, j->out, 0, j->out, deq);
            hc_compress_awq_unscale(j, deq); /* --awq: back in the source's frame */
            hc_tensor source = *j->weight;
            j->weight->data = deq;
            j->weight->dtype = HC_F32;
            j->weight->nbytes = (size_t)(j->out * j->in) * sizeof *deq;
            st = run(m, ctx, NULL, &j->loss);
            *j->weight = source;
        }
        free(packed);
        free(deq);
        j->loss_measured = st == HC_OK;
        if (o->progress) o->progress(o->progress_ctx, "measure", ++done, total);
    }
    return st;
}

/* The source model's next-token log-probabilities on the tokens, then each layer's loss. */
static hc_status measure_all(measure *m)
{
    hc_device *dev = NULL;
    hc_context *ctx = NULL;
    float *ref = malloc((size_t)m->n * (size_t)m->n_vocab * sizeof *ref);
    hc_status st = ref ? HC_OK : hc_error(HC_E_NOMEM, "out of memory for %lld x %d log-probabilities", (long long)m->n, m->n_vocab);
    if (st == HC_OK) st = hc_source_context(m->cs->model, m->cs->opts->threads, m->seq, 0, &dev, &ctx);
    if (st == HC_OK && m->self) st = hc_compress_sample_ids(m->cs, ctx, m->ids, m->n, m->seq, "measurement");
    if (st == HC_OK) st = run(m, ctx, ref, NULL);
    if (st == HC_OK) {
        m->ref = ref;
        ref = NULL;
        st = measure_layers(m, ctx);
    }
    hc_source_context_close(m->cs->model, dev, ctx);
    free(ref);
    return st;
}

hc_status hc_compress_measure(hc_compress_state *cs)
{
    const hc_compress_opts *o = cs->opts;
    if (o->sens_tokens <= 0) return HC_OK;
    measure m = { .cs = cs, .n_vocab = cs->model->cfg.n_vocab, .self = hc_compress_sens_is_self(o) };
    hc_status st = m.self ? hc_compress_self_ids(cs, o->sens_tokens, &m.ids, &m.n, &m.seq)
                          : hc_compress_calib_ids(cs, o->sens_tokens, &m.ids, &m.n, &m.seq);
    if (st == HC_OK) st = measure_all(&m);
    if (st == HC_OK) cs->loss_tokens = m.n;
    for (int i = 0; st != HC_OK && i < cs->n_jobs; i++) cs->jobs[i].loss_measured = 0;
    free(m.ref);
    free(m.ids);
    if (st != HC_OK) return hc_error_context(st, "measured sensitivity: ");
    return HC_OK;
}
