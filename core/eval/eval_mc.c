/* eval_mc.c: multiple-choice accuracy by log-likelihood (ARC, PIQA as llm-foundry ships them):
 * each choice scored as a continuation of the query; acc and length-normalised acc_norm. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "eval_json.h"

/* ---------------------------------------------------------------- loading */

void hc_mc_set_free(hc_mc_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        hc_mc_item *it = &s->items[i];
        free(it->query);
        for (int k = 0; k < it->n_choices; k++) free(it->choices[k]);
        free(it->choices);
    }
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

/* A member that must be a string without NUL characters; *out is a malloc'd copy. */
static hc_status get_string(const hc_json *row, const char *key, char **out)
{
    const hc_json *v = hc_json_get(row, key);
    if (!v) return hc_error(HC_E_FORMAT, "no \"%s\" member", key);
    if (v->type != HC_JSON_STRING) return hc_error(HC_E_FORMAT, "\"%s\" is not a string", key);
    if (strlen(v->string) != v->string_len) return hc_error(HC_E_FORMAT, "\"%s\" holds a \\u0000 character", key);
    if (!(*out = strdup(v->string))) return hc_error(HC_E_NOMEM, "out of memory");
    return HC_OK;
}

typedef struct mc_loader {
    hc_mc_set *set;
    int cap;
} mc_loader;

static hc_status mc_row(void *user, const hc_json *row, int line)
{
    mc_loader *L = user;
    if (row->type != HC_JSON_OBJECT) return hc_error(HC_E_FORMAT, "a row must be a JSON object");
    const hc_json *choices = hc_json_get(row, "choices"), *gold = hc_json_get(row, "gold");
    if (!choices) return hc_error(HC_E_FORMAT, "no \"choices\" member");
    if (choices->type != HC_JSON_ARRAY) return hc_error(HC_E_FORMAT, "\"choices\" is not an array");
    if (choices->n < 2) return hc_error(HC_E_FORMAT, "\"choices\" has %d entries (at least 2 needed)", choices->n);
    if (!gold) return hc_error(HC_E_FORMAT, "no \"gold\" member");
    if (gold->type != HC_JSON_NUMBER || gold->number != floor(gold->number))
        return hc_error(HC_E_FORMAT, "\"gold\" is not an integer");
    if (gold->number < 0 || gold->number >= choices->n)
        return hc_error(HC_E_FORMAT, "\"gold\" %.0f is out of range (%d choices)", gold->number, choices->n);
    for (int k = 0; k < choices->n; k++) {
        const hc_json *ch = &choices->items[k];
        if (ch->type != HC_JSON_STRING) return hc_error(HC_E_FORMAT, "choice %d is not a string", k);
        if (strlen(ch->string) != ch->string_len) return hc_error(HC_E_FORMAT, "choice %d holds a \\u0000 character", k);
    }
    if (L->set->n == L->cap) {
        int nc = L->cap ? 2 * L->cap : 64;
        hc_mc_item *items = realloc(L->set->items, (size_t)nc * sizeof *items);
        if (!items) return hc_error(HC_E_NOMEM, "out of memory");
        L->set->items = items;
        L->cap = nc;
    }
    hc_mc_item *it = &L->set->items[L->set->n];
    memset(it, 0, sizeof *it);
    it->line = line;
    it->gold = (int)gold->number;
    hc_status st = get_string(row, "query", &it->query);
    if (st == HC_OK && !(it->choices = calloc((size_t)choices->n, sizeof *it->choices))) st = hc_error(HC_E_NOMEM, "out of memory");
    for (int k = 0; st == HC_OK && k < choices->n; k++) {
        if (!(it->choices[k] = strdup(choices->items[k].string))) st = hc_error(HC_E_NOMEM, "out of memory");
        else it->n_choices = k + 1;
    }
    L->set->n++; /* counted even when incomplete, so that hc_mc_set_free releases it */
    return st;
}

hc_status hc_mc_load(const char *path, int limit, hc_mc_set *out)
{
    memset(out, 0, sizeof *out);
    mc_loader L = { out, 0 };
    hc_status st = hc_jsonl_read(path, limit, mc_row, &L);
    if (st == HC_OK && out->n == 0) st = hc_error(HC_E_FORMAT, "%s: no rows", path);
    if (st != HC_OK) hc_mc_set_free(out);
    return st;
}

/* ---------------------------------------------------------------- scoring */

size_t hc_eval_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; }

/* A malloc'd copy of s without leading and trailing whitespace, with suffix appended. */
static char *strip_dup(const char *s, const char *suffix)
{
    while (*s && is_space(*s)) s++;
    size_t n = strlen(s), ls = strlen(suffix);
    while (n > 0 && is_space(s[n - 1])) n--;
    char *d = malloc(n + ls + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    memcpy(d + n, suffix, ls + 1);
    return d;
}

hc_status hc_eval_mc_item(hc_context *c, const hc_tokenizer *t, const hc_mc_params *p, const hc_mc_item *item,
                          double *ll, int *truncated, long *n_tokens)
{
    const char *delim = p && p->delimiter ? p->delimiter : HC_MC_DEFAULT_DELIMITER;
    int nk = item->n_choices, n_vocab = c->model->cfg.n_vocab;
    char *context = strip_dup(item->query, delim);
    int32_t *ctx_ids = NULL, **cont = calloc((size_t)nk, sizeof *cont);
    int *n_cont = calloc((size_t)nk, sizeof *n_cont), n_ctx_ids = 0, cut = 0;
    float *last_row = malloc((size_t)n_vocab * sizeof *last_row);
    hc_status st = context && cont && n_cont && last_row ? HC_OK : hc_error(HC_E_NOMEM, "out of memory");
    int longest = 0;
    for (int k = 0; st == HC_OK && k < nk; k++) {
        char *choice = strip_dup(item->choices[k], "");
        if (!choice) st = hc_error(HC_E_NOMEM, "out of memory");
        else if (!choice[0]) st = hc_error(HC_E_FORMAT, "choice %d is empty", k);
        int32_t *ids = NULL;
        int n = 0;
        if (st == HC_OK) st = hc_eval_encode_pair(t, context, choice, &ids, &n, &cont[k], &n_cont[k]);
        free(choice);
        if (st == HC_OK && !ctx_ids) {
            ctx_ids = ids;
            n_ctx_ids = n;
        } else free(ids);
        if (st == HC_OK && n_cont[k] == 0) st = hc_error(HC_E_FORMAT, "choice %d gives no tokens", k);
        if (st == HC_OK && n_cont[k] > longest) longest = n_cont[k];
    }
    if (st == HC_OK) st = hc_eval_prefill(c, ctx_ids, n_ctx_ids, longest - 1, last_row, &cut);
    int n_prefix = c->n_past;
    long ran = n_prefix;
    for (int k = 0; st == HC_OK && k < nk; k++) {
        if ((st = hc_context_truncate(c, n_prefix)) == HC_OK) st = hc_eval_score_continuation(c, last_row, cont[k], n_cont[k], &ll[k], NULL);
        ran += n_cont[k] - 1;
    }
    if (st == HC_OK) {
        if (truncated) *truncated = cut;
        if (n_tokens) *n_tokens = ran;
    }
    for (int k = 0; cont && k < nk; k++) free(cont[k]);
    free(cont);
    free(n_cont);
    free(ctx_ids);
    free(context);
    free(last_row);
    return st;
}

static double binomial_stderr(double acc, int n) { return n > 1 ? sqrt(acc * (1.0 - acc) / (double)(n - 1)) : 0.0; }

hc_status hc_eval_mc(hc_context *c, const hc_tokenizer *t, const hc_mc_params *p, const hc_mc_set *set,
                     hc_progress *prog, hc_mc_result *out)
{
    memset(out, 0, sizeof *out);
    if (set->n <= 0) return hc_error(HC_E_ARG, "multiple choice: no rows");
    int max_choices = 0;
    for (int i = 0; i < set->n; i++)
        if (set->items[i].n_choices > max_choices) max_choices = set->items[i].n_choices;
    double *ll = malloc((size_t)max_choices * sizeof *ll);
    if (!ll) return hc_error(HC_E_NOMEM, "out of memory");
    int right = 0, right_norm = 0;
    hc_status st = HC_OK;
    for (int i = 0; i < set->n; i++) {
        const hc_mc_item *it = &set->items[i];
        int cut = 0;
        long ran = 0;
        st = hc_eval_mc_item(c, t, p, it, ll, &cut, &ran);
        if (st != HC_OK) {
            st = it->line ? hc_error_context(st, "multiple choice, line %d: ", it->line)
                          : hc_error_context(st, "multiple choice, row %d: ", i);
            break;
        }
        int best = 0, best_norm = 0;
        double best_norm_v = 0;
        for (int k = 0; k < it->n_choices; k++) {
            char *choice = strip_dup(it->choices[k], "");
            if (!choice) { st = hc_error(HC_E_NOMEM, "out of memory"); break; }
            size_t chars = hc_eval_utf8_chars(choice);
            free(choice);
            double v = ll[k] / (double)(chars ? chars : 1);
            if (ll[k] > ll[best]) best = k;
            if (k == 0 || v > best_norm_v) { best_norm = k; best_norm_v = v; }
        }
        if (st != HC_OK) break;
        right += best == it->gold;
        right_norm += best_norm == it->gold;
        if (p && p->picks) p->picks[i] = best;
        if (p && p->picks_norm) p->picks_norm[i] = best_norm;
        out->n_truncated += cut;
        out->n_tokens += ran;
        if (prog) hc_progress_update(prog, i + 1);
    }
    free(ll);
    if (st != HC_OK) return st;
    out->n = set->n;
    out->acc = (double)right / set->n;
    out->acc_norm = (double)right_norm / set->n;
    out->acc_stderr = binomial_stderr(out->acc, set->n);
    out->acc_norm_stderr = binomial_stderr(out->acc_norm, set->n);
    return HC_OK;
}
