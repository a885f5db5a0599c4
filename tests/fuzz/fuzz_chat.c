/* fuzz_chat.c: libFuzzer harness of the chat template: a template text and messages (pieces of the
 * input between 0 bytes: flags, template, then role and content pairs) are formatted; the prompt
 * holds every turn in order and tokenizes with special tokens parsed (the GPT-2 test vocabulary). */
#include <string.h>

#include "fuzz_util.h"
#include "gguf.h"
#include "tokenizer.h"

static hc_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = fuzz_tmp("gpt2.gguf");
    hc_gguf *g = NULL;
    if (fuzz_write_gpt2_vocab(path) != HC_OK || hc_gguf_open(path, &g) != HC_OK || hc_tokenizer_from_gguf(g, &tok) != HC_OK) {
        fprintf(stderr, "fuzz_chat: the test vocabulary: %s\n", hc_last_error());
        abort();
    }
    hc_gguf_close(g);
    return 0;
}

enum { MAX_MSGS = 8 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_cursor c = { data, size };
    uint8_t flags = fuzz_u8(&c);
    char *tmpl = fuzz_string(&c);
    char *role[MAX_MSGS], *content[MAX_MSGS];
    hc_chat_message msgs[MAX_MSGS];
    int n = 0;
    while (c.n && n < MAX_MSGS) {
        role[n] = fuzz_string(&c);
        content[n] = fuzz_string(&c);
        msgs[n] = (hc_chat_message){ role[n], content[n] };
        n++;
    }
    char *out = NULL;
    hc_clear_error();
    hc_status st = hc_chat_format(flags & 1 ? NULL : tmpl, msgs, n, flags & 2, &out);
    if (st == HC_OK) {
        FUZZ_CHECK(out != NULL, "no prompt");
        const char *at = out;
        for (int i = 0; i < n; i++) { /* each turn, in order */
            const char *r = strstr(at, role[i]);
            FUZZ_CHECK(r != NULL, "turn %d's role is missing", i);
            const char *t = strstr(r, content[i]);
            FUZZ_CHECK(t != NULL, "turn %d's content is missing", i);
            at = t + strlen(content[i]);
        }
        if (flags & 2) {
            size_t len = strlen(out), k = strlen("<|im_start|>assistant\n");
            FUZZ_CHECK(len >= k && !strcmp(out + len - k, "<|im_start|>assistant\n"), "no assistant prompt at the end");
        }
        int32_t *ids = NULL;
        int n_ids = 0;
        if (hc_tokenize(tok, out, strlen(out), flags & 4, 1, &ids, &n_ids) == HC_OK)
            for (int i = 0; i < n_ids; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < hc_tokenizer_n_vocab(tok), "id %d", ids[i]);
        free(ids);
        free(out);
    } else {
        FUZZ_CHECK(hc_last_error()[0] && out == NULL, "a refusal without a message");
    }
    for (int i = 0; i < n; i++) {
        free(role[i]);
        free(content[i]);
    }
    free(tmpl);
    return 0;
}
