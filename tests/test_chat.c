/* test_chat.c: ChatML prompt formatting: with and without a system message, SmolLM2's default
 * system prompt taken from its template, the assistant header, refused templates and bad input;
 * Gemma's turn template. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "tokenizer.h"

/* SmolLM2-135M-Instruct's tokenizer.chat_template, as stored in its GGUF. */
static const char smollm2_template[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/* A ChatML template without a default system prompt. */
static const char plain_chatml[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

static void expect(const char *tmpl, const hc_chat_message *msgs, int n, int add_assistant, const char *want)
{
    char *out = NULL;
    HC_ASSERT_OK(hc_chat_format(tmpl, msgs, n, add_assistant, &out));
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    if (strcmp(out, want) != 0) fprintf(stderr, "\n  got:\n%s\n  expected:\n%s\n", out, want);
    CU_ASSERT_STRING_EQUAL(out, want);
    free(out);
}

static void test_null_template_is_chatml(void)
{
    const hc_chat_message user[] = { { "user", "Hi" } };
    expect(NULL, user, 1, 1, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    expect(NULL, user, 1, 0, "<|im_start|>user\nHi<|im_end|>\n");
    const hc_chat_message sys_user[] = { { "system", "Be brief." }, { "user", "Hi" } };
    expect(NULL, sys_user, 2, 1,
           "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

static void test_smollm2_default_system(void)
{
    const hc_chat_message user[] = { { "user", "What is the capital of France?" } };
    expect(smollm2_template, user, 1, 1,
           "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
           "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n");
}

static void test_smollm2_with_system(void)
{
    const hc_chat_message msgs[] = { { "system", "You answer in French." }, { "user", "Hello" } };
    expect(smollm2_template, msgs, 2, 1,
           "<|im_start|>system\nYou answer in French.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
           "<|im_start|>assistant\n");
}

static void test_multi_turn(void)
{
    const hc_chat_message msgs[] = { { "user", "Hi" }, { "assistant", "Hello! How can I help?" }, { "user", "2+2?" } };
    expect(smollm2_template, msgs, 3, 0,
           "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
           "<|im_start|>user\n2+2?<|im_end|>\n");
    /* a plain ChatML template has no default system prompt */
    expect(plain_chatml, msgs, 3, 1,
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
           "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
    /* no messages: the template's loop does not run, so no default system prompt either */
    expect(smollm2_template, NULL, 0, 1, "<|im_start|>assistant\n");
    expect(smollm2_template, NULL, 0, 0, "");
}

static void test_escaped_newline_template(void)
{
    /* the default system prompt written with a "\n" escape instead of a newline */
    const char tmpl[] = "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are Tiny.<|im_end|>\\n' }}"
                        "{% endif %}{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + "
                        "'<|im_end|>\\n'}}{% endfor %}";
    const hc_chat_message user[] = { { "user", "Hi" } };
    expect(tmpl, user, 1, 1,
           "<|im_start|>system\nYou are Tiny.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

static void test_refused(void)
{
    const hc_chat_message user[] = { { "user", "Hi" } };
    char *out = (char *)1;
    const char llama2[] = "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}";
    CU_ASSERT_EQUAL(hc_chat_format(llama2, user, 1, 1, &out), HC_E_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT(strstr(hc_last_error(), "ChatML") != NULL);
    const hc_chat_message bad[] = { { "user", NULL } };
    CU_ASSERT_EQUAL(hc_chat_format(NULL, bad, 1, 1, &out), HC_E_ARG);
    const hc_chat_message no_role[] = { { NULL, "x" } };
    CU_ASSERT_EQUAL(hc_chat_format(NULL, no_role, 1, 1, &out), HC_E_ARG);
    CU_ASSERT_EQUAL(hc_chat_format(NULL, NULL, 1, 1, &out), HC_E_ARG);
    CU_ASSERT_EQUAL(hc_chat_format(NULL, user, -1, 1, &out), HC_E_ARG);
    CU_ASSERT_EQUAL(hc_chat_format(NULL, user, 1, 1, NULL), HC_E_ARG);
}

/* Gemma: turns, assistant as "model", content trimmed, the system message in front of the first
 * user turn; hc_chat_default_template gives Gemma's for a vocabulary with its turn tokens. */
static void test_gemma_turns(void)
{
    const char *tmpl = "{{ bos_token }}{{ '<start_of_turn>' + role + '\\n' + (message['content'] | trim) + '<end_of_turn>\\n' }}";
    const hc_chat_message user[] = { { "user", " What is the capital of France?\n" } };
    expect(tmpl, user, 1, 1, "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n");
    const hc_chat_message msgs[] = { { "system", "Be brief." }, { "user", "Hi" }, { "assistant", "Hello!" }, { "user", "Bye" } };
    expect(tmpl, msgs, 4, 1,
           "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
           "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
    expect(tmpl, msgs + 1, 2, 0, "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n");
    CU_ASSERT_PTR_NULL(hc_chat_default_template(NULL));
}

#define SMOLLM2 HC_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf"

/* The template stored in the model file gives the same prompt as the copy above. */
static void test_smollm2_gguf_template(void)
{
    const char *path = SMOLLM2;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        printf("\n  SKIP smollm2_gguf_template: %s is absent\n", path);
        return;
    }
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(path, &g));
    const char *tmpl = NULL;
    HC_ASSERT_OK(hc_gguf_get_str(g, "tokenizer.chat_template", &tmpl));
    CU_ASSERT_STRING_EQUAL(tmpl, smollm2_template);
    const hc_chat_message user[] = { { "user", "Hi" } };
    expect(tmpl, user, 1, 1,
           "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    hc_gguf_close(g);
}

/* The default model, greedy, answers the chat question with Paris (hcinfer run, end to end). */
static void test_smollm2_answers_paris(void)
{
    struct stat sb;
    if (stat(SMOLLM2, &sb) != 0) {
        printf("\n  SKIP smollm2_answers_paris: %s is absent\n", SMOLLM2);
        return;
    }
    FILE *p = popen(HC_BIN_DIR "/hcinfer run -m '" SMOLLM2 "' --chat -p 'What is the capital of France?' --temp 0 -n 24 -t 1 2>/dev/null", "r");
    CU_ASSERT_FATAL(p != NULL);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, p);
    text[n] = 0;
    CU_ASSERT_EQUAL(pclose(p), 0);
    if (!strstr(text, "Paris")) printf("\n    the answer was: %s\n", text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "Paris"));
}

int main(void)
{
    const hc_test_case cases[] = {
        {"null_template_is_chatml", test_null_template_is_chatml},
        {"smollm2_default_system", test_smollm2_default_system},
        {"smollm2_with_system", test_smollm2_with_system},
        {"multi_turn", test_multi_turn},
        {"escaped_newline_template", test_escaped_newline_template},
        {"refused", test_refused},
        {"gemma_turns", test_gemma_turns},
        {"smollm2_gguf_template", test_smollm2_gguf_template},
        {"smollm2_answers_paris", test_smollm2_answers_paris},
        {NULL, NULL},
    };
    return hc_test_run("chat", cases);
}
