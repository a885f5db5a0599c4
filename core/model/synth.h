/* synth.h: `hcinfer synth`: a model file with random weights for tests and benchmarks -- dense
 * llama/qwen3/gemma3 or mixture-of-experts qwen2moe/qwen3moe/mixtral-style llama -- with GGUF's tensor
 * names and metadata keys for the architecture and a small byte-level SentencePiece vocabulary. */
#ifndef HC_SYNTH_H
#define HC_SYNTH_H

#include <stdint.h>

#include "hc/hc_status.h"
#include "hc/hc_tensor.h"

typedef struct hc_synth_opts {
    const char *arch;        /* "llama", "qwen3", "gemma3", "qwen2moe", "qwen3moe", "olmoe" */
    const char *output;      /* the GGUF to write (atomically) */
    int dim, n_layer;
    int n_head, n_head_kv;   /* 0: dim / 64 heads (at least 1), kv = heads */
    int ffn_dim;             /* dense FFN width (0: 4 * dim rounded to 32); MoE archs store it too */
    int n_expert, n_expert_used;   /* 0 experts: dense */
    int expert_ffn_dim;      /* 0: ffn_dim / n_expert_used */
    int n_shared_expert;     /* qwen2moe: shared expert width = n_shared_expert * expert_ffn_dim (default 1) */
    int n_vocab;             /* >= 259 (0: 512) */
    int n_ctx;               /* training context (0: 2048) */
    uint64_t seed;
    hc_dtype type;           /* matrices: HC_F32 (default), HC_F16 or HC_Q8_0; norms and routers stay f32 */
    float norm_noise;        /* norm weights are 1 + N(0, norm_noise) (0: exactly 1) */
    /* gemma3: post norms, per-head q/k norms, GeGLU, a tied head and sliding-window layers */
    int head_dim;            /* 0: dim / n_head (gemma3 may set any even width) */
    int n_swa;               /* gemma3's sliding window (0: 512, the real model's) */
    int swa_period;          /* gemma3: layer l is local unless l % period == period - 1 (0: 6, the key is
                                not written then, as in the real file) */
    int n_threads;           /* threads drawing the numbers (0: the usable CPUs, at most 16); the file is
                                the same for any count */
} hc_synth_opts;

/* The defaults above filled in, every size checked (errors name the option and the reason). */
hc_status hc_synth_resolve(const hc_synth_opts *in, hc_synth_opts *out);

/* Writes the model. Weights are N(0, 1/in) per matrix (so activations keep their scale through the
 * layers), the embedding N(0, 1) (gemma3: N(0, 1/dim), which its sqrt(dim) scale brings to 1, and
 * its tied head then gives logits of unit scale), norms 1; each tensor's numbers depend only on
 * seed and its name. */
hc_status hc_synth(const hc_synth_opts *o);

#endif
