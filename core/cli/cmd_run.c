/* cmd_run.c: `hcinfer run`: generate text from a prompt (or a chat turn), streaming tokens to
 * stdout, with prompt and decode speed on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "commands.h"
#include "sampler.h"
#include "session.h"

static const char run_help[] =
    "usage: hcinfer run -m MODEL [-p PROMPT] [-n N] [--temp T] [--seed S] [-t THREADS] [--chat]\n"
    "Generates text from the prompt and streams it to stdout; speeds go to stderr.\n"
    "  -p, --prompt TEXT       the prompt (default: empty, i.e. BOS only)\n"
    "  -f, --file FILE         read the prompt from a file\n"
    "  -n, --n-predict N       tokens to generate (default 128)\n"
    "      --chat              wrap the prompt as a user turn in the model's chat template\n"
    "      --system TEXT       system message for --chat\n"
    "      --temp T            temperature, 0 = greedy (default 0.8)\n"
    "      --top-k K           (default 40, 0 = off)\n"
    "      --top-p P           (default 0.95, 1 = off)\n"
    "      --repeat-penalty R  (default 1 = off) over the last --repeat-last-n N tokens (64)\n"
    "      --seed S            random seed (default: from the clock)\n"
    "      --ignore-eos        keep generating past end-of-generation tokens\n"
    "%s";

typedef struct run_opts {
    hc_session_opts session;
    const char *prompt, *prompt_file, *system;
    int n_predict, chat, ignore_eos, seed_given;
    hc_sampler_params sp;
} run_opts;

static hc_status parse(int argc, char **argv, run_opts *o, int *help)
{
    hc_session_opts_init(&o->session);
    o->n_predict = 128;
    o->sp = hc_sampler_defaults();
    hc_args a = { argc, argv, 0 };
    for (a.i = 1; a.i < argc; a.i++) {
        hc_status st = HC_OK;
        if (hc_session_parse_option(&o->session, &a, &st)) {}
        else if (hc_arg_is(&a, "-h", "--help")) *help = 1;
        else if (hc_arg_is(&a, "-p", "--prompt")) st = hc_arg_value(&a, &o->prompt);
        else if (hc_arg_is(&a, "-f", "--file")) st = hc_arg_value(&a, &o->prompt_file);
        else if (hc_arg_is(&a, "-n", "--n-predict")) st = hc_arg_int(&a, 0, 1 << 20, &o->n_predict);
        else if (hc_arg_is(&a, "--chat", NULL)) o->chat = 1;
        else if (hc_arg_is(&a, "--system", NULL)) st = hc_arg_value(&a, &o->system);
        else if (hc_arg_is(&a, "--temp", "--temperature")) st = hc_arg_float(&a, 0, 100, &o->sp.temperature);
        else if (hc_arg_is(&a, "--top-k", NULL)) st = hc_arg_int(&a, 0, 1 << 24, &o->sp.top_k);
        else if (hc_arg_is(&a, "--top-p", NULL)) st = hc_arg_float(&a, 1e-6, 1, &o->sp.top_p);
        else if (hc_arg_is(&a, "--repeat-penalty", NULL)) st = hc_arg_float(&a, 1e-3, 10, &o->sp.repeat_penalty);
        else if (hc_arg_is(&a, "--repeat-last-n", NULL)) st = hc_arg_int(&a, 0, 1 << 20, &o->sp.repeat_last_n);
        else if (hc_arg_is(&a, "--seed", NULL)) { st = hc_arg_u64(&a, &o->sp.seed); o->seed_given = 1; }
        else if (hc_arg_is(&a, "--ignore-eos", NULL)) o->ignore_eos = 1;
        else st = hc_error(HC_E_ARG, "unknown option '%s'", argv[a.i]);
        if (st != HC_OK) return st;
    }
    if (!o->seed_given) o->sp.seed = (uint64_t)time(NULL);
    return HC_OK;
}

/* The prompt's tokens: plain text, or a user turn in the chat template. */
static hc_status prompt_tokens(const run_opts *o, const hc_session *s, int32_t **ids, int *n)
{
    char *file_text = NULL, *chat_text = NULL;
    const char *text = o->prompt ? o->prompt : "";
    hc_status st = HC_OK;
    if (o->prompt_file && (st = hc_read_text_file(o->prompt_file, &file_text, NULL)) == HC_OK) text = file_text;
    if (st == HC_OK && o->chat) {
        const char *tmpl = NULL;
        if (s->model->gguf) hc_gguf_get_str(s->model->gguf, "tokenizer.chat_template", &tmpl);
        hc_clear_error();
        if (!tmpl) tmpl = hc_chat_default_template(s->tok);
        hc_chat_message msgs[2];
        int nm = 0;
        if (o->system) msgs[nm++] = (hc_chat_message){ "system", o->system };
        msgs[nm++] = (hc_chat_message){ "user", text };
        if ((st = hc_chat_format(tmpl, msgs, nm, 1, &chat_text)) == HC_OK) text = chat_text;
    }
    if (st == HC_OK) st = hc_tokenize(s->tok, text, strlen(text), 1, o->chat, ids, n);
    free(file_text);
    free(chat_text);
    return st;
}

/* Streams the piece of token id; after BOS a SentencePiece leading space is dropped. */
static void print_piece(const hc_tokenizer *tok, int32_t prev, int32_t id)
{
    char buf[256];
    int len = hc_token_to_piece(tok, id, 0, buf, sizeof buf);
    if (len <= 0) return;
    const char *p = buf;
    if (prev == hc_tokenizer_bos(tok) && hc_tokenizer_kind_of(tok) == HC_TOK_SPM && p[0] == ' ') {
        p++;
        len--;
    }
    fwrite(p, 1, (size_t)len, stdout);
    fflush(stdout);
}

int hc_cmd_run(int argc, char **argv)
{
    run_opts o = { 0 };
    int help = 0;
    hc_status st = parse(argc, argv, &o, &help);
    if (help) {
        printf(run_help, hc_session_help);
        return 0;
    }
    if (st != HC_OK) return hc_cli_fail("run", st);
    hc_session s;
    if ((st = hc_session_open(&o.session, &s)) != HC_OK) return hc_cli_fail("run", st);
    hc_session_describe(&s, stderr);

    hc_sampler *sampler = NULL;
    int32_t *tokens = NULL;
    int n_prompt = 0;
    st = prompt_tokens(&o, &s, &tokens, &n_prompt);
    if (st == HC_OK && n_prompt == 0) st = hc_error(HC_E_ARG, "the prompt gave no tokens and the vocabulary adds no BOS");
    if (st == HC_OK && n_prompt + o.n_predict > s.ctx->n_ctx)
        st = hc_error(HC_E_ARG, "%d prompt tokens + %d to generate exceed the context of %d (use -c)", n_prompt, o.n_predict, s.ctx->n_ctx);
    int32_t *all = NULL;
    if (st == HC_OK && !(all = malloc((size_t)(n_prompt + o.n_predict + 1) * sizeof *all))) st = hc_error(HC_E_NOMEM, "out of memory");
    if (st == HC_OK) st = hc_sampler_create(&o.sp, s.model->cfg.n_vocab, &sampler);
    int n_gen = 0, n_eval = 0;
    double t_prompt = 0, t_decode = 0;
    if (st == HC_OK) {
        memcpy(all, tokens, (size_t)n_prompt * sizeof *all);
        const float *logits;
        double t0 = hc_now_seconds();
        st = hc_decode(s.ctx, tokens, n_prompt, 0, &logits);
        t_prompt = hc_now_seconds() - t0;
        int n_all = n_prompt;
        while (st == HC_OK && n_gen < o.n_predict) {
            int32_t next = hc_sampler_sample(sampler, logits, all, n_all);
            if (!o.ignore_eos && hc_tokenizer_is_eog(s.tok, next)) break;
            print_piece(s.tok, all[n_all - 1], next);
            all[n_all++] = next;
            n_gen++;
            if (n_gen == o.n_predict) break;
            t0 = hc_now_seconds();
            st = hc_decode(s.ctx, &next, 1, 0, &logits);
            t_decode += hc_now_seconds() - t0;
            n_eval++;
        }
        printf("\n");
        fflush(stdout); /* the text before the statistics on stderr, also when both go to one file */
    }
    if (st == HC_OK) {
        fprintf(stderr, "prompt: %d tokens in %.3f s, %.1f tok/s\n", n_prompt, t_prompt, n_prompt / (t_prompt > 0 ? t_prompt : 1e-9));
        fprintf(stderr, "decode: %d tokens in %.3f s, %.1f tok/s (%d generated)\n", n_eval, t_decode,
                n_eval > 0 ? n_eval / t_decode : 0.0, n_gen);
    }
    free(all);
    free(tokens);
    hc_sampler_free(sampler);
    hc_session_close(&s);
    return st == HC_OK ? 0 : hc_cli_fail("run", st);
}
