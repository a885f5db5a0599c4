/* chat.c: turning chat messages into a prompt with the model's chat template, recognised (no Jinja
 * interpreter) as ChatML ("<|im_start|>role\ncontent<|im_end|>\n") or Gemma's turns. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

typedef struct strbuf {
    char *s;
    size_t n, cap;
    int failed;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void chatml_turn(strbuf *b, const char *role, const char *content, size_t content_len)
{
    sb_str(b, "<|im_start|>");
    sb_str(b, role);
    sb_str(b, "\n");
    sb_put(b, content, content_len);
    sb_str(b, "<|im_end|>\n");
}

/* A default system prompt written as one literal "<|im_start|>system\n...<|im_end|>" in the
 * template (SmolLM2's "You are a helpful AI assistant named SmolLM, trained by Hugging Face"):
 * *out gets the text between (malloc'd), or NULL when the template has none. The newline may be a
 * real one or a "\n" escape; the text must not contain quotes or braces (it would not be a single
 * literal then). Returns -1 when out of memory. */
static int default_system_prompt(const char *tmpl, char **out)
{
    *out = NULL;
    static const char head[] = "<|im_start|>system";
    for (const char *p = strstr(tmpl, head); p; p = strstr(p + 1, head)) {
        const char *q = p + sizeof head - 1;
        if (*q == '\n') q += 1;
        else if (q[0] == '\\' && q[1] == 'n') q += 2;
        else continue;
        const char *end = strstr(q, "<|im_end|>");
        if (!end || end == q) continue;
        size_t n = (size_t)(end - q);
        if (memchr(q, '\'', n) || memchr(q, '"', n) || memchr(q, '{', n) || memchr(q, '}', n)) continue;
        char *s = malloc(n + 1);
        if (!s) return -1;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (q[i] == '\\' && i + 1 < n && q[i + 1] == 'n') {
                s[k++] = '\n';
                i++;
            } else {
                s[k++] = q[i];
            }
        }
        s[k] = '\0';
        *out = s;
        return 0;
    }
    return 0;
}

/* ChatML: a default system turn first when the template has one and the first message is not one
 * (as the template's loop.first test). Returns -1 when out of memory. */
static int chatml_format(strbuf *b, const char *template_text, const hc_chat_message *msgs, int n_msgs, int add_assistant)
{
    if (template_text && n_msgs > 0 && strcmp(msgs[0].role, "system") != 0) {
        char *sys;
        if (default_system_prompt(template_text, &sys) != 0) return -1;
        if (sys) {
            chatml_turn(b, "system", sys, strlen(sys));
            free(sys);
        }
    }
    for (int i = 0; i < n_msgs; i++) chatml_turn(b, msgs[i].role, msgs[i].content, strlen(msgs[i].content));
    if (add_assistant) sb_str(b, "<|im_start|>assistant\n");
    return 0;
}

/* Gemma's template: "<start_of_turn>role\ncontent<end_of_turn>\n" with content trimmed, the assistant
 * role named "model", a system message put in front of the first user turn followed by a blank line
 * (Gemma has no system role); BOS comes from the tokenizer, not from here. */
static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

static void gemma_content(strbuf *b, const char *s)
{
    size_t n = strlen(s);
    while (n && is_space(*s)) s++, n--;
    while (n && is_space(s[n - 1])) n--;
    sb_put(b, s, n);
}

static void gemma_format(strbuf *b, const hc_chat_message *msgs, int n_msgs, int add_assistant)
{
    const char *system = NULL;
    int i = 0;
    if (n_msgs > 0 && !strcmp(msgs[0].role, "system")) system = msgs[i++].content;
    for (int first = 1; i < n_msgs; i++, first = 0) {
        sb_str(b, "<start_of_turn>");
        sb_str(b, !strcmp(msgs[i].role, "assistant") ? "model" : msgs[i].role);
        sb_str(b, "\n");
        if (first && system) {
            gemma_content(b, system);
            sb_str(b, "\n\n");
        }
        gemma_content(b, msgs[i].content);
        sb_str(b, "<end_of_turn>\n");
    }
    if (add_assistant) sb_str(b, "<start_of_turn>model\n");
}

const char *hc_chat_default_template(const hc_tokenizer *t)
{
    if (t && hc_tokenizer_find(t, "<start_of_turn>") >= 0 && hc_tokenizer_find(t, "<end_of_turn>") >= 0)
        return "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}";
    return NULL;
}

hc_status hc_chat_format(const char *template_text, const hc_chat_message *msgs, int n_msgs, int add_assistant,
                         char **out)
{
    if (!out || n_msgs < 0 || (n_msgs > 0 && !msgs)) return hc_error(HC_E_ARG, "hc_chat_format: bad arguments");
    *out = NULL;
    for (int i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content || !msgs[i].role[0])
            return hc_error(HC_E_ARG, "hc_chat_format: message %d has no role or no content", i);
    int gemma = template_text && strstr(template_text, "<start_of_turn>") != NULL;
    if (template_text && !gemma && !strstr(template_text, "<|im_start|>"))
        return hc_error(HC_E_UNSUPPORTED, "chat template not recognised: only ChatML (with <|im_start|>) and Gemma "
                                          "(<start_of_turn>) templates are supported");

    strbuf b = { 0 };
    if (gemma) gemma_format(&b, msgs, n_msgs, add_assistant);
    else if (chatml_format(&b, template_text, msgs, n_msgs, add_assistant) != 0)
        b.failed = 1;
    if (!b.failed && !b.s) sb_put(&b, "", 0);
    if (b.failed) {
        free(b.s);
        return hc_error(HC_E_NOMEM, "hc_chat_format: out of memory");
    }
    *out = b.s;
    return HC_OK;
}
