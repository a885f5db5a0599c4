/* fuzz_chat.c: libFuzzer harness of the chat template: a template text and messages (pieces of the
 * input between 0 bytes: flags, template, then role and content pairs) are formatted as ChatML or
 * Gemma turns; the prompt holds every turn in order and tokenizes with special tokens parsed. */
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

/* Gemma's turns hold the content without surrounding whitespace: the span [*at, *at + *len) */
static void trimmed(const char *s, const char **at, size_t *len)
{
    size_t n = strlen(s);
    while (n && strchr(" \t\n\r", *s)) s++, n--;
    while (n && strchr(" \t\n\r", s[n - 1])) n--;
    *at = s, *len = n;
}

/* the next occurrence of s[0, len) at or after *at, which moves past it */
static void expect(const char **at, const char *s, size_t len, int turn, const char *what)
{
    char *piece = strndup(s, len);
    FUZZ_CHECK(piece != NULL, "out of memory");
    const char *hit = strstr(*at, piece);
    FUZZ_CHECK(hit != NULL, "turn %d's %s is missing", turn, what);
    free(piece);
    *at = hit + len;
}

/* the turns of out, in order: each role as the template names it, then its content; Gemma puts a
 * leading system message (trimmed) after the first turn's role, and trims every content */
static void check_turns(const char *out, hc_chat_message *msgs, int n, int gemma)
{
    const char *at = out, *sys = NULL;
    int i = 0;
    if (gemma && n > 0 && !strcmp(msgs[0].role, "system")) sys = msgs[i++].content;
    for (int first = 1; i < n; i++, first = 0) {
        const char *role = msgs[i].role, *content = msgs[i].content;
        size_t len = strlen(content);
        if (gemma && !strcmp(role, "assistant")) role = "model";
        expect(&at, role, strlen(role), i, "role");
        if (gemma && first && sys) {
            const char *s;
            size_t k;
            trimmed(sys, &s, &k);
            expect(&at, s, k, 0, "system content");
        }
        if (gemma) trimmed(content, &content, &len);
        expect(&at, content, len, i, "content");
    }
}

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
    const char *t_used = flags & 1 ? NULL : tmpl;
    hc_status st = hc_chat_format(t_used, msgs, n, flags & 2, &out);
    if (st == HC_OK) {
        FUZZ_CHECK(out != NULL, "no prompt");
        const int gemma = t_used && strstr(t_used, "<start_of_turn>");
        check_turns(out, msgs, n, gemma);
        if (flags & 2) {
            const char *ask = gemma ? "<start_of_turn>model\n" : "<|im_start|>assistant\n";
            size_t len = strlen(out), k = strlen(ask);
            FUZZ_CHECK(len >= k && !strcmp(out + len - k, ask), "no assistant prompt at the end");
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
