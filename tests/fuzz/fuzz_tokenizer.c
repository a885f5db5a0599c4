/* fuzz_tokenizer.c: libFuzzer harness of the encoders: arbitrary bytes through the two test
 * vocabularies (SentencePiece and byte-level GPT-2, every byte covered): every id and piece in
 * range, and valid UTF-8 decodes back to itself. Input: a byte choosing the vocabulary, the text. */
#define _GNU_SOURCE
#include <string.h>

#include "fuzz_util.h"
#include "gguf.h"
#include "tokenizer.h"

static hc_tokenizer *builtin[2];

static hc_tokenizer *open_vocab(const char *path)
{
    hc_gguf *g = NULL;
    hc_tokenizer *t = NULL;
    hc_status st = hc_gguf_open(path, &g);
    if (st == HC_OK) st = hc_tokenizer_from_gguf(g, &t);
    hc_gguf_close(g);
    return st == HC_OK ? t : NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *spm = fuzz_tmp("spm.gguf");
    if (fuzz_write_spm_vocab(spm) == HC_OK) builtin[0] = open_vocab(spm);
    const char *gpt2 = fuzz_tmp("gpt2.gguf");
    if (fuzz_write_gpt2_vocab(gpt2) == HC_OK) builtin[1] = open_vocab(gpt2);
    if (!builtin[0] || !builtin[1]) {
        fprintf(stderr, "fuzz_tokenizer: the test vocabularies: %s\n", hc_last_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    int which = data[0] & 1;
    const uint8_t *text = data + 1;
    size_t len = size - 1;
    /* "\xE2\x96\x81" is SentencePiece's own space mark: it decodes as a space */
    int round_trip = fuzz_valid_utf8(text, len) && !(which == 0 && memmem(text, len, "\xE2\x96\x81", 3));
    fuzz_exercise_tokenizer(builtin[which], text, len, round_trip);
    return 0;
}
