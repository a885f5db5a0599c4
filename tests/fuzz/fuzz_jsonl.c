/* fuzz_jsonl.c: libFuzzer harness of the evaluation data reader: the input as one JSON value (an
 * accepted one is written out and must parse back equal) and as a JSONL file read row by row, as
 * multiple-choice rows and as LAMBADA rows. */
#define _GNU_SOURCE
#include <math.h>
#include <string.h>

#include "eval.h"
#include "eval_json.h"
#include "fuzz_util.h"

/* Writes v as JSON text; 0 when it cannot be written exactly (a string with a NUL, a number that
 * is not finite). */
static int write_json(FILE *f, const hc_json *v)
{
    switch (v->type) {
    case HC_JSON_NULL: fputs("null", f); return 1;
    case HC_JSON_BOOL: fputs(v->boolean ? "true" : "false", f); return 1;
    case HC_JSON_NUMBER:
        if (!isfinite(v->number)) return 0;
        fprintf(f, "%.17g", v->number);
        return 1;
    case HC_JSON_STRING:
        if (strlen(v->string) != v->string_len) return 0;
        hc_json_write_string(f, v->string);
        return 1;
    case HC_JSON_ARRAY:
    case HC_JSON_OBJECT:
        fputc(v->type == HC_JSON_ARRAY ? '[' : '{', f);
        for (int i = 0; i < v->n; i++) {
            if (i) fputc(',', f);
            if (v->type == HC_JSON_OBJECT) {
                hc_json_write_string(f, v->keys[i]);
                fputc(':', f);
            }
            if (!write_json(f, &v->items[i])) return 0;
        }
        fputc(v->type == HC_JSON_ARRAY ? ']' : '}', f);
        return 1;
    }
    return 0;
}

static int equal(const hc_json *a, const hc_json *b)
{
    if (a->type != b->type) return 0;
    switch (a->type) {
    case HC_JSON_NULL: return 1;
    case HC_JSON_BOOL: return a->boolean == b->boolean;
    case HC_JSON_NUMBER: return a->number == b->number;
    case HC_JSON_STRING: return a->string_len == b->string_len && !memcmp(a->string, b->string, a->string_len);
    case HC_JSON_ARRAY:
    case HC_JSON_OBJECT:
        if (a->n != b->n) return 0;
        for (int i = 0; i < a->n; i++) {
            if (a->type == HC_JSON_OBJECT && (strcmp(a->keys[i], b->keys[i]) || hc_json_get(a, a->keys[i]) != &a->items[i])) return 0;
            if (!equal(&a->items[i], &b->items[i])) return 0;
        }
        return 1;
    }
    return 0;
}

static void round_trip(const hc_json *v)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return;
    int ok = write_json(f, v);
    fclose(f);
    if (ok) {
        hc_json w;
        hc_status st = hc_json_parse(text, len, &w);
        FUZZ_CHECK(st == HC_OK, "'%.200s' does not parse back: %s", text, hc_last_error());
        FUZZ_CHECK(equal(v, &w), "'%.200s' parses back to another value", text);
        hc_json_free(&w);
    }
    free(text);
}

static hc_status row(void *user, const hc_json *r, int line)
{
    int *rows = user;
    FUZZ_CHECK(line >= 1 && r != NULL, "row at line %d", line);
    (*rows)++;
    (void)hc_json_get(r, "query");
    (void)hc_json_get(r, "choices");
    return HC_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hc_json v;
    hc_clear_error();
    if (hc_json_parse((const char *)data, size, &v) == HC_OK) {
        round_trip(&v);
        hc_json_free(&v);
    } else {
        FUZZ_CHECK(hc_last_error()[0] && v.type == HC_JSON_NULL, "a refusal without a message, or a value left");
    }
    const char *path = fuzz_file(data, size);
    int rows = 0;
    hc_clear_error();
    if (hc_jsonl_read(path, 0, row, &rows) != HC_OK) FUZZ_CHECK(hc_last_error()[0], "a JSONL refusal without a message");
    hc_mc_set mc = { 0 };
    if (hc_mc_load(path, 0, &mc) == HC_OK) {
        for (int i = 0; i < mc.n; i++) {
            const hc_mc_item *it = &mc.items[i];
            FUZZ_CHECK(it->query && it->n_choices > 0 && it->gold >= 0 && it->gold < it->n_choices, "row %d accepted", i);
            for (int k = 0; k < it->n_choices; k++) FUZZ_CHECK(it->choices[k] != NULL, "choice");
        }
        hc_mc_set_free(&mc);
    }
    hc_lambada_set lb = { 0 };
    if (hc_lambada_load(path, 0, &lb) == HC_OK) {
        for (int i = 0; i < lb.n; i++) FUZZ_CHECK(lb.items[i].context && lb.items[i].continuation, "row %d accepted", i);
        hc_lambada_set_free(&lb);
    }
    return 0;
}
