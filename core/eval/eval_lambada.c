/* eval_lambada.c: LAMBADA: does greedy decoding reproduce a passage's last word given the rest
 * (teacher-forced, every token the argmax), and the perplexity of those last words. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "eval_json.h"

void hc_lambada_set_free(hc_lambada_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->items[i].context);
        free(s->items[i].continuation);
    }
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

typedef struct lambada_loader {
    hc_lambada_set *set;
    int cap;
} lambada_loader;

static hc_status get_string(const hc_json *row, const char *key, char **out)
{
    const hc_json *v = hc_json_get(row, key);
    if (!v) return hc_error(HC_E_FORMAT, "no \"%s\" member", key);
    if (v->type != HC_JSON_STRING) return hc_error(HC_E_FORMAT, "\"%s\" is not a string", key);
    if (strlen(v->string) != v->string_len) return hc_error(HC_E_FORMAT, "\"%s\" holds a \\u0000 character", key);
    if (!(*out = strdup(v->string))) return hc_error(HC_E_NOMEM, "out of memory");
    return HC_OK;
}

static hc_status lambada_row(void *user, const hc_json *row, int line)
{
    lambada_loader *L = user;
    if (row->type != HC_JSON_OBJECT) return hc_error(HC_E_FORMAT, "a row must be a JSON object");
    if (L->set->n == L->cap) {
        int nc = L->cap ? 2 * L->cap : 64;
        hc_lambada_item *items = realloc(L->set->items, (size_t)nc * sizeof *items);
        if (!items) return hc_error(HC_E_NOMEM, "out of memory");
        L->set->items = items;
        L->cap = nc;
    }
    hc_lambada_item *it = &L->set->items[L->set->n++];
    memset(it, 0, sizeof *it);
    it->line = line;
    hc_status st = get_string(row, "context", &it->context);
    if (st == HC_OK) st = get_string(row, "continuation", &it->continuation);
    if (st == HC_OK && !it->continuation[strspn(it->continuation, " \t\r\n\v\f")])
        st = hc_error(HC_E_FORMAT, "\"continuation\" is empty");
    return st;
}

hc_status hc_lambada_load(const char *path, int limit, hc_lambada_set *out)
{
    memset(out, 0, sizeof *out);
    lambada_loader L = { out, 0 };
    hc_status st = hc_jsonl_read(path, limit, lambada_row, &L);
    if (st == HC_OK && out->n == 0) st = hc_error(HC_E_FORMAT, "%s: no rows", path);
    if (st != HC_OK) hc_lambada_set_free(out);
    return st;
}

hc_status hc_eval_lambada_item(hc_context *c, const hc_tokenizer *t, const hc_lambada_item *item, double *ll,
                               int *greedy, int *n_cont, int *truncated, long *n_tokens)
{
    int32_t *ctx_ids = NULL, *cont = NULL;
    int n_ctx_ids = 0, nc = 0, cut = 0;
    float *last_row = malloc((size_t)c->model->cfg.n_vocab * sizeof *last_row);
    hc_status st = last_row ? HC_OK : hc_error(HC_E_NOMEM, "out of memory");
    if (st == HC_OK) st = hc_eval_encode_pair(t, item->context, item->continuation, &ctx_ids, &n_ctx_ids, &cont, &nc);
    if (st == HC_OK && nc == 0) st = hc_error(HC_E_FORMAT, "the continuation gives no tokens");
    if (st == HC_OK) st = hc_eval_prefill(c, ctx_ids, n_ctx_ids, nc - 1, last_row, &cut);
    long ran = c->n_past;
    if (st == HC_OK) st = hc_eval_score_continuation(c, last_row, cont, nc, ll, greedy);
    if (st == HC_OK) {
        if (n_cont) *n_cont = nc;
        if (truncated) *truncated = cut;
        if (n_tokens) *n_tokens = ran + nc - 1;
    }
    free(ctx_ids);
    free(cont);
    free(last_row);
    return st;
}

hc_status hc_eval_lambada(hc_context *c, const hc_tokenizer *t, const hc_lambada_set *set, hc_progress *prog,
                          hc_lambada_result *out)
{
    memset(out, 0, sizeof *out);
    if (set->n <= 0) return hc_error(HC_E_ARG, "lambada: no rows");
    int right = 0;
    double sum_ll = 0.0;
    for (int i = 0; i < set->n; i++) {
        const hc_lambada_item *it = &set->items[i];
        double ll = 0;
        int greedy = 0, nc = 0, cut = 0;
        long ran = 0;
        hc_status st = hc_eval_lambada_item(c, t, it, &ll, &greedy, &nc, &cut, &ran);
        if (st != HC_OK)
            return it->line ? hc_error_context(st, "lambada, line %d: ", it->line) : hc_error_context(st, "lambada, row %d: ", i);
        right += greedy;
        sum_ll += ll;
        out->n_cont_tokens += nc;
        out->n_truncated += cut;
        out->n_tokens += ran;
        if (prog) hc_progress_update(prog, i + 1);
    }
    out->n = set->n;
    out->acc = (double)right / set->n;
    out->acc_stderr = set->n > 1 ? sqrt(out->acc * (1.0 - out->acc) / (double)(set->n - 1)) : 0.0;
    out->ppl = exp(-sum_ll / set->n);
    out->ppl_token = exp(-sum_ll / (double)out->n_cont_tokens);
    return HC_OK;
}
