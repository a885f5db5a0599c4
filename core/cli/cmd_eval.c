/* cmd_eval.c: `hcinfer eval`: perplexity of a text file, multiple-choice accuracy (ARC, PIQA)
 * and LAMBADA on one model, as a readable summary or one JSON object; progress on stderr. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "clock.h"
#include "commands.h"
#include "eval.h"
#include "eval_json.h"
#include "session.h"

static const char eval_help[] =
    "usage: hcinfer eval -m MODEL [--ppl FILE] [--mc FILE.jsonl] [--lambada FILE.jsonl] [--limit N]\n"
    "                    [--ctx N] [--stride N] [--json] [shared options]\n"
    "Measures a model: at least one of --ppl, --mc, --lambada.\n"
    "      --ppl FILE          perplexity of a text file, as llama-perplexity: chunks of --ctx tokens,\n"
    "                          each from an empty cache with BOS first (when the vocabulary adds BOS),\n"
    "                          scoring the second half of each chunk\n"
    "      --ctx N             tokens per perplexity chunk (default 512)\n"
    "      --stride N          sliding windows every N tokens (N < --ctx) that score each token once\n"
    "                          (window 0 all of its tokens, every later one its last N)\n"
    "      --mc FILE.jsonl     multiple choice, rows {\"query\", \"choices\": [...], \"gold\"}: acc by the\n"
    "                          choices' summed log-likelihood, acc_norm by it per character\n"
    "      --mc-delim TEXT     text between query and choice (default \"\\nAnswer:\"; \\n and \\t understood)\n"
    "      --items FILE.jsonl  also write each --mc row's outcome, one JSON line per row (row, line,\n"
    "                          gold, pick, pick_norm), to compare two models on the same rows\n"
    "                          (scripts/compare_items.sh)\n"
    "      --lambada FILE.jsonl  rows {\"context\", \"continuation\"}: greedy accuracy on the last word,\n"
    "                          and its perplexity\n"
    "      --limit N           at most N perplexity chunks and N rows of each data set\n"
    "      --json              print one JSON object on stdout instead of the summary\n"
    "      --no-progress       no progress report on stderr\n"
    "%s";

typedef struct eval_opts {
    hc_session_opts session;
    const char *ppl, *mc, *lambada, *mc_delim, *items;
    int limit, ctx, stride, json, no_progress;
} eval_opts;

static hc_status parse(int argc, char **argv, eval_opts *o, int *help)
{
    hc_session_opts_init(&o->session);
    o->ctx = 512;
    hc_args a = { argc, argv, 0 };
    for (a.i = 1; a.i < argc; a.i++) {
        hc_status st = HC_OK;
        if (hc_session_parse_option(&o->session, &a, &st)) {}
        else if (hc_arg_is(&a, "-h", "--help")) *help = 1;
        else if (hc_arg_is(&a, "--ppl", NULL)) st = hc_arg_value(&a, &o->ppl);
        else if (hc_arg_is(&a, "--mc", NULL)) st = hc_arg_value(&a, &o->mc);
        else if (hc_arg_is(&a, "--mc-delim", NULL)) st = hc_arg_value(&a, &o->mc_delim);
        else if (hc_arg_is(&a, "--items", NULL)) st = hc_arg_value(&a, &o->items);
        else if (hc_arg_is(&a, "--lambada", NULL)) st = hc_arg_value(&a, &o->lambada);
        else if (hc_arg_is(&a, "--limit", NULL)) st = hc_arg_int(&a, 1, 1 << 30, &o->limit);
        else if (hc_arg_is(&a, "--ctx", NULL)) st = hc_arg_int(&a, 4, 1 << 20, &o->ctx);
        else if (hc_arg_is(&a, "--stride", NULL)) st = hc_arg_int(&a, 1, 1 << 20, &o->stride);
        else if (hc_arg_is(&a, "--json", NULL)) o->json = 1;
        else if (hc_arg_is(&a, "--no-progress", NULL)) o->no_progress = 1;
        else st = hc_error(HC_E_ARG, "unknown option '%s'", argv[a.i]);
        if (st != HC_OK) return st;
    }
    if (*help) return HC_OK;
    if (!o->ppl && !o->mc && !o->lambada) return hc_error(HC_E_ARG, "nothing to evaluate: give --ppl FILE, --mc FILE or --lambada FILE");
    if (o->items && !o->mc) return hc_error(HC_E_ARG, "--items needs a multiple-choice set (--mc FILE)");
    if (o->stride && o->stride >= o->ctx) return hc_error(HC_E_ARG, "--stride %d must be smaller than --ctx %d", o->stride, o->ctx);
    return HC_OK;
}

/* "\n", "\t" and "\\" in an option's text become the characters; malloc'd. */
static char *unescape(const char *s)
{
    char *d = malloc(strlen(s) + 1), *w = d;
    if (!d) return NULL;
    for (; *s; s++) {
        if (s[0] == '\\' && (s[1] == 'n' || s[1] == 't' || s[1] == '\\')) {
            *w++ = s[1] == 'n' ? '\n' : s[1] == 't' ? '\t' : '\\';
            s++;
        } else *w++ = *s;
    }
    *w = '\0';
    return d;
}

static void json_number(double v)
{
    if (isfinite(v)) printf("%.10g", v);
    else printf("null");
}

/* --items: one JSON line per multiple-choice row, in a file opened before the evaluation (an
 * unwritable path fails at once) and renamed into place when complete: no file on failure. The
 * rows are written when ok, else the file is removed. */
static hc_status items_close(hc_atomic_file *it, int ok, const hc_mc_set *set, const int *picks, const int *picks_norm)
{
    for (int i = 0; ok && it->f && i < set->n; i++)
        fprintf(it->f, "{\"row\": %d, \"line\": %d, \"gold\": %d, \"pick\": %d, \"pick_norm\": %d}\n", i,
                set->items[i].line, set->items[i].gold, picks[i], picks_norm[i]);
    return hc_atomic_close(it, ok);
}

typedef struct eval_results {
    int has_ppl, has_mc, has_lambada;
    hc_ppl_result ppl;
    hc_mc_result mc;
    hc_lambada_result lambada;
    double t_ppl, t_mc, t_lambada, t_total;
    size_t backbone_bytes, branch_bytes; /* the weights on the device, the branches in use (host) */
} eval_results;

static void print_json(const eval_opts *o, const eval_results *r)
{
    int tasks = r->has_ppl + r->has_mc + r->has_lambada;
    printf("{\"model\": ");
    hc_json_write_string(stdout, o->session.model);
    printf(", \"backbone_bytes\": %zu, \"branch_bytes\": %zu", r->backbone_bytes, r->branch_bytes);
    if (r->has_ppl) {
        printf(", \"ppl\": ");
        json_number(r->ppl.ppl);
        printf(", \"ppl_stderr\": ");
        json_number(r->ppl.ppl_stderr);
        printf(", \"ppl_tokens\": %ld, \"ppl_chunks\": %d, \"ppl_ctx\": %d, \"ppl_stride\": %d, \"ppl_file\": ", r->ppl.n_scored,
               r->ppl.n_chunks, o->ctx, o->stride);
        hc_json_write_string(stdout, o->ppl);
        printf(", \"ppl_seconds\": %.3f", r->t_ppl);
        if (tasks == 1) printf(", \"n\": %ld", r->ppl.n_scored);
    }
    if (r->has_mc) {
        printf(", \"mc\": {\"file\": ");
        hc_json_write_string(stdout, o->mc);
        printf(", \"acc\": ");
        json_number(r->mc.acc);
        printf(", \"acc_stderr\": ");
        json_number(r->mc.acc_stderr);
        printf(", \"acc_norm\": ");
        json_number(r->mc.acc_norm);
        printf(", \"acc_norm_stderr\": ");
        json_number(r->mc.acc_norm_stderr);
        printf(", \"n\": %d, \"truncated\": %d, \"tokens\": %ld, \"seconds\": %.3f}", r->mc.n, r->mc.n_truncated, r->mc.n_tokens, r->t_mc);
        if (tasks == 1) {
            printf(", \"acc\": ");
            json_number(r->mc.acc);
            printf(", \"acc_norm\": ");
            json_number(r->mc.acc_norm);
            printf(", \"n\": %d", r->mc.n);
        }
    }
    if (r->has_lambada) {
        printf(", \"lambada\": {\"file\": ");
        hc_json_write_string(stdout, o->lambada);
        printf(", \"acc\": ");
        json_number(r->lambada.acc);
        printf(", \"acc_stderr\": ");
        json_number(r->lambada.acc_stderr);
        printf(", \"ppl\": ");
        json_number(r->lambada.ppl);
        printf(", \"ppl_token\": ");
        json_number(r->lambada.ppl_token);
        printf(", \"n\": %d, \"truncated\": %d, \"tokens\": %ld, \"seconds\": %.3f}", r->lambada.n, r->lambada.n_truncated,
               r->lambada.n_tokens, r->t_lambada);
        if (tasks == 1) {
            printf(", \"acc\": ");
            json_number(r->lambada.acc);
            printf(", \"ppl\": ");
            json_number(r->lambada.ppl);
            printf(", \"n\": %d", r->lambada.n);
        }
    }
    printf(", \"seconds\": %.3f}\n", r->t_total);
}

static void print_summary(const eval_opts *o, const eval_results *r)
{
    printf("model: %s\n", o->session.model);
    if (r->has_ppl)
        printf("ppl (%s): %.4f +/- %.4f  over %ld tokens, %d %s of %d%s  [%.1f s]\n", o->ppl, r->ppl.ppl, r->ppl.ppl_stderr,
               r->ppl.n_scored, r->ppl.n_chunks, o->stride ? "windows" : "chunks", o->ctx, o->stride ? " (sliding)" : "", r->t_ppl);
    if (r->has_mc) {
        printf("mc (%s): acc %.4f +/- %.4f, acc_norm %.4f +/- %.4f, n %d", o->mc, r->mc.acc, r->mc.acc_stderr, r->mc.acc_norm,
               r->mc.acc_norm_stderr, r->mc.n);
        if (r->mc.n_truncated) printf(" (%d queries cut to fit)", r->mc.n_truncated);
        printf("  [%.1f s]\n", r->t_mc);
    }
    if (r->has_lambada) {
        printf("lambada (%s): acc %.4f +/- %.4f, ppl %.3f (per token %.3f), n %d", o->lambada, r->lambada.acc,
               r->lambada.acc_stderr, r->lambada.ppl, r->lambada.ppl_token, r->lambada.n);
        if (r->lambada.n_truncated) printf(" (%d contexts cut to fit)", r->lambada.n_truncated);
        printf("  [%.1f s]\n", r->t_lambada);
    }
    printf("total: %.1f s\n", r->t_total);
}

int hc_cmd_eval(int argc, char **argv)
{
    eval_opts o = { 0 };
    int help = 0;
    hc_status st = parse(argc, argv, &o, &help);
    if (help) {
        printf(eval_help, hc_session_help);
        return 0;
    }
    if (st != HC_OK) return hc_cli_fail("eval", st);

    double t0 = hc_now_seconds();
    FILE *progress_out = o.no_progress ? NULL : stderr;
    hc_mc_set mc = { 0 };
    hc_lambada_set lambada = { 0 };
    char *text = NULL, *delim = NULL;
    int *picks = NULL, *picks_norm = NULL;
    hc_atomic_file items = { 0 };
    size_t text_len = 0;
    /* read every data file first: a bad row fails before the model is loaded */
    if (o.mc) st = hc_mc_load(o.mc, o.limit, &mc);
    if (st == HC_OK && o.lambada) st = hc_lambada_load(o.lambada, o.limit, &lambada);
    if (st == HC_OK && o.ppl) st = hc_read_text_file(o.ppl, &text, &text_len);
    if (st == HC_OK && o.mc_delim && !(delim = unescape(o.mc_delim))) st = hc_error(HC_E_NOMEM, "out of memory");
    if (st == HC_OK && o.items) {
        picks = malloc((size_t)mc.n * sizeof *picks);
        picks_norm = malloc((size_t)mc.n * sizeof *picks_norm);
        st = picks && picks_norm ? hc_atomic_open(&items, o.items, "items file") : hc_error(HC_E_NOMEM, "out of memory");
    }
    if (st != HC_OK) {
        items_close(&items, 0, NULL, NULL, NULL);
        free(picks);
        free(picks_norm);
        hc_mc_set_free(&mc);
        hc_lambada_set_free(&lambada);
        free(text);
        free(delim);
        return hc_cli_fail("eval", st);
    }

    hc_session s;
    st = hc_session_open(&o.session, &s);
    eval_results r = { 0 };
    if (st == HC_OK) {
        r.backbone_bytes = hc_model_backbone_bytes(s.model);
        r.branch_bytes = s.ctx->brt ? hc_model_branch_bytes(s.model) : 0;
    }
    if (st == HC_OK && o.ppl) {
        hc_ppl_params pp = { .n_ctx = o.ctx, .stride = o.stride, .max_chunks = o.limit };
        hc_progress prog;
        hc_progress_begin(&prog, progress_out, "ppl", "chunks", 0);
        double t = hc_now_seconds();
        st = hc_eval_ppl_text(s.ctx, s.tok, text, text_len, &pp, &prog, &r.ppl);
        hc_progress_end(&prog);
        r.t_ppl = hc_now_seconds() - t;
        r.has_ppl = st == HC_OK;
    }
    if (st == HC_OK && o.mc) {
        hc_mc_params mp = { .delimiter = delim, .picks = picks, .picks_norm = picks_norm };
        hc_progress prog;
        hc_progress_begin(&prog, progress_out, "mc", "rows", mc.n);
        double t = hc_now_seconds();
        st = hc_eval_mc(s.ctx, s.tok, &mp, &mc, &prog, &r.mc);
        hc_progress_end(&prog);
        r.t_mc = hc_now_seconds() - t;
        r.has_mc = st == HC_OK;
    }
    if (o.items) {
        hc_status sti = items_close(&items, st == HC_OK, &mc, picks, picks_norm);
        if (st == HC_OK) st = sti;
    }
    if (st == HC_OK && o.lambada) {
        hc_progress prog;
        hc_progress_begin(&prog, progress_out, "lambada", "rows", lambada.n);
        double t = hc_now_seconds();
        st = hc_eval_lambada(s.ctx, s.tok, &lambada, &prog, &r.lambada);
        hc_progress_end(&prog);
        r.t_lambada = hc_now_seconds() - t;
        r.has_lambada = st == HC_OK;
    }
    r.t_total = hc_now_seconds() - t0;
    if (st == HC_OK) {
        if (o.json) print_json(&o, &r);
        else print_summary(&o, &r);
    }
    if (s.ctx) hc_session_close(&s);
    hc_mc_set_free(&mc);
    hc_lambada_set_free(&lambada);
    free(text);
    free(delim);
    free(picks);
    free(picks_norm);
    return st == HC_OK ? 0 : hc_cli_fail("eval", st);
}
