/* fuzz_vocab.c: libFuzzer harness of vocabulary loading: a GGUF vocabulary or a llama2.c tokenizer
 * file from the input, then a short text encoded with it. Input: a byte (0 GGUF, 1 llama2.c; for
 * llama2.c a u16 vocabulary size follows), a u32 length and the file, then the text. */
#include <string.h>

#include "fuzz_util.h"
#include "gguf.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_cursor c = { data, size };
    int llama2c = fuzz_u8(&c) & 1, vocab_size = 0;
    if (llama2c) {
        vocab_size = fuzz_u8(&c);
        vocab_size |= fuzz_u8(&c) << 8;
    }
    size_t len;
    const uint8_t *file = fuzz_bytes(&c, fuzz_u32(&c), &len);
    hc_tokenizer *t = NULL;
    hc_status st;
    hc_clear_error();
    if (!llama2c) {
        hc_gguf *g = NULL;
        st = hc_gguf_open_memory(file, len, "fuzz", &g);
        if (st == HC_OK) st = hc_tokenizer_from_gguf(g, &t);
        hc_gguf_close(g); /* the tokenizer keeps copies of what it needs */
    } else {
        st = hc_tokenizer_load_llama2c(fuzz_file(file, len), vocab_size, &t);
    }
    if (st != HC_OK) {
        FUZZ_CHECK(hc_last_error()[0], "a refusal without a message");
        return 0;
    }
    fuzz_exercise_tokenizer(t, c.p, c.n < 256 ? c.n : 256, 0);
    hc_tokenizer_free(t);
    return 0;
}
