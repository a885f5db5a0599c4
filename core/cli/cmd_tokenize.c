/* cmd_tokenize.c: `hcinfer tokenize`: the token ids of a text, space-separated on one line, as
 * llama.cpp's llama-tokenize prints them; a vocabulary-only GGUF is enough. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "gguf.h"
#include "tokenizer.h"

static const char tokenize_help[] =
    "usage: hcinfer tokenize -m MODEL [-p TEXT | -f FILE] [--no-bos] [--no-parse-special] [--pieces]\n"
    "Prints the token ids of the text, space-separated. MODEL: a GGUF (a vocabulary-only one is\n"
    "enough) or a llama2.c tokenizer file with -z.\n"
    "  -z, --tokenizer FILE    llama2.c tokenizer file (needs --vocab N)\n"
    "      --vocab N           vocabulary size of a llama2.c tokenizer file\n"
    "      --no-bos            do not add the BOS token\n"
    "      --no-parse-special  treat special-token texts like <|im_start|> as plain text\n"
    "      --pieces            print id and piece per line instead\n";

int hc_cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL, *file = NULL, *tok_file = NULL;
    int add_special = 1, parse_special = 1, pieces = 0, vocab = 0;
    hc_args a = { argc, argv, 0 };
    hc_status st = HC_OK;
    for (a.i = 1; a.i < argc && st == HC_OK; a.i++) {
        if (hc_arg_is(&a, "-h", "--help")) {
            printf(tokenize_help);
            return 0;
        } else if (hc_arg_is(&a, "-m", "--model")) st = hc_arg_value(&a, &model);
        else if (hc_arg_is(&a, "-p", "--prompt")) st = hc_arg_value(&a, &text);
        else if (hc_arg_is(&a, "-f", "--file")) st = hc_arg_value(&a, &file);
        else if (hc_arg_is(&a, "-z", "--tokenizer")) st = hc_arg_value(&a, &tok_file);
        else if (hc_arg_is(&a, "--vocab", NULL)) st = hc_arg_int(&a, 1, 1 << 24, &vocab);
        else if (hc_arg_is(&a, "--no-bos", NULL)) add_special = 0;
        else if (hc_arg_is(&a, "--no-parse-special", NULL)) parse_special = 0;
        else if (hc_arg_is(&a, "--pieces", NULL)) pieces = 1;
        else st = hc_error(HC_E_ARG, "unknown option '%s'", argv[a.i]);
    }
    if (st == HC_OK && !model && !tok_file) st = hc_error(HC_E_ARG, "no model given (-m FILE)");
    if (st == HC_OK && text && file) st = hc_error(HC_E_ARG, "give either -p TEXT or -f FILE, not both");
    if (st == HC_OK && tok_file && !vocab) st = hc_error(HC_E_ARG, "a llama2.c tokenizer file needs --vocab N");
    if (st != HC_OK) return hc_cli_fail("tokenize", st);

    char *file_text = NULL;
    size_t len = text ? strlen(text) : 0;
    hc_gguf *g = NULL;
    hc_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    int n = 0;
    if (file) st = hc_read_text_file(file, &file_text, &len);
    if (st == HC_OK) {
        if (tok_file) st = hc_tokenizer_load_llama2c(tok_file, vocab, &tok);
        else if ((st = hc_gguf_open(model, &g)) == HC_OK) st = hc_tokenizer_from_gguf(g, &tok);
    }
    if (st == HC_OK) st = hc_tokenize(tok, file_text ? file_text : (text ? text : ""), len, add_special, parse_special, &ids, &n);
    if (st == HC_OK) {
        char piece[256];
        for (int i = 0; i < n; i++) {
            if (pieces) {
                int pl = hc_token_to_piece(tok, ids[i], 1, piece, sizeof piece);
                printf("%6d -> '%.*s'\n", (int)ids[i], pl > 0 ? pl : 0, piece);
            } else printf("%s%d", i ? " " : "", (int)ids[i]);
        }
        if (!pieces) printf("\n");
    }
    free(ids);
    free(file_text);
    hc_tokenizer_free(tok);
    hc_gguf_close(g);
    return st == HC_OK ? 0 : hc_cli_fail("tokenize", st);
}
