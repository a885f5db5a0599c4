/* tokenizer.h: text <-> token ids for the vocabularies hcinfer reads from model files:
 * SentencePiece-style BPE with scores and byte fallback, and GPT-2 byte-level BPE with merges. */
#ifndef HC_TOKENIZER_H
#define HC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "hc/hc_status.h"

typedef struct hc_tokenizer hc_tokenizer;

typedef enum hc_tokenizer_kind {
    HC_TOK_SPM = 1,   /* SentencePiece BPE: scores, "▁" for space, <0xXX> byte fallback */
    HC_TOK_GPT2 = 2   /* byte-level BPE: merges, bytes mapped to printable code points */
} hc_tokenizer_kind;

/* From a GGUF file's tokenizer.ggml.* keys (a vocabulary-only GGUF is enough). */
hc_status hc_tokenizer_from_gguf(const hc_gguf *g, hc_tokenizer **out);
/* From a llama2.c tokenizer file (tokenizer.bin / tok512.bin): max_token_length, then per token
 * a float score, an int32 length and the bytes. vocab_size comes from the model's header. */
hc_status hc_tokenizer_load_llama2c(const char *path, int vocab_size, hc_tokenizer **out);
void hc_tokenizer_free(hc_tokenizer *t);

/* Tokenizes text. add_special: prepend BOS (and whatever the vocabulary's add_bos/add_eos flags
 * ask) as llama.cpp's add_special does; parse_special: recognise special/control token texts
 * such as "<|im_start|>" in the text. *ids is malloc'd; the caller frees it. */
hc_status hc_tokenize(const hc_tokenizer *t, const char *text, size_t len, int add_special,
                      int parse_special, int32_t **ids, int *n_ids);

/* The bytes a token stands for when decoding (byte tokens become their byte, the space marks
 * "▁"/"Ġ" become spaces; control tokens give "" unless render_special). Returns the length
 * written (not NUL-terminated), or -1 when id is out of range. */
int hc_token_to_piece(const hc_tokenizer *t, int32_t id, int render_special, char *buf, size_t cap);

int hc_tokenizer_n_vocab(const hc_tokenizer *t);
hc_tokenizer_kind hc_tokenizer_kind_of(const hc_tokenizer *t);
int32_t hc_tokenizer_bos(const hc_tokenizer *t);   /* -1 when none */
int32_t hc_tokenizer_eos(const hc_tokenizer *t);   /* -1 when none */
/* 1 when generation should stop at id: EOS, EOT, "<|im_end|>", "<|endoftext|>" and the like. */
int hc_tokenizer_is_eog(const hc_tokenizer *t, int32_t id);
/* The vocabulary entry's text as stored (e.g. "Ġthe", "▁the", "<0x0A>"). */
const char *hc_tokenizer_text(const hc_tokenizer *t, int32_t id);
int32_t hc_tokenizer_find(const hc_tokenizer *t, const char *text); /* -1 when absent */
/* The vocabulary entry's score (SentencePiece merge priority; 0 for GPT-2 vocabularies). */
float hc_tokenizer_score(const hc_tokenizer *t, int32_t id);
/* The GGUF token type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. */
int hc_tokenizer_token_type(const hc_tokenizer *t, int32_t id);

/* ---- chat templates ---- */
typedef struct hc_chat_message {
    const char *role;     /* "system", "user", "assistant" */
    const char *content;
} hc_chat_message;

/* Formats messages with the model's chat template (tokenizer.chat_template). ChatML
 * (<|im_start|>role\ncontent<|im_end|>\n, SmolLM2's default system prompt when none is given)
 * and Gemma (<start_of_turn>role\ncontent<end_of_turn>\n, assistant as "model", a system message
 * in front of the first user turn) are recognised; add_assistant appends the assistant's header
 * ("<|im_start|>assistant\n", "<start_of_turn>model\n"). NULL: ChatML. *out is malloc'd. */
hc_status hc_chat_format(const char *template_text, const hc_chat_message *msgs, int n_msgs,
                         int add_assistant, char **out);
/* The template to use when a model file stores none: Gemma's when the vocabulary has
 * <start_of_turn> and <end_of_turn> (gemma GGUFs often come without a template), else NULL. */
const char *hc_chat_default_template(const hc_tokenizer *t);

#endif
