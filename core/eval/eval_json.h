/* eval_json.h: a small strict JSON (RFC 8259) parser for the evaluation data sets, a JSONL reader
 * that reports a bad row as "FILE:LINE: reason", and the writer of a JSON string. */
#ifndef HC_EVAL_JSON_H
#define HC_EVAL_JSON_H

#include <stddef.h>
#include <stdio.h>

#include "hc/hc_status.h"
#include "json_write.h"

#define HC_JSON_MAX_DEPTH 64

typedef enum hc_json_type {
    HC_JSON_NULL = 0,
    HC_JSON_BOOL,
    HC_JSON_NUMBER,
    HC_JSON_STRING,
    HC_JSON_ARRAY,
    HC_JSON_OBJECT
} hc_json_type;

typedef struct hc_json hc_json;
struct hc_json {
    hc_json_type type;
    int boolean;          /* BOOL */
    double number;        /* NUMBER */
    char *string;         /* STRING: UTF-8, NUL-terminated (escapes decoded) */
    size_t string_len;    /* STRING: bytes, without the terminator (a "\u0000" counts) */
    int n;                /* ARRAY / OBJECT: elements or members */
    hc_json *items;       /* ARRAY: elements; OBJECT: member values */
    char **keys;          /* OBJECT: member names (a name holding "\u0000" is refused) */
};

/* Parses exactly one JSON value (surrounded by optional whitespace) from text[0..len). Strict:
 * no comments, no trailing commas, no leading zeros, no raw control characters in strings,
 * valid UTF-8 only, \uXXXX surrogates only in pairs, no duplicate member names, nesting at most
 * HC_JSON_MAX_DEPTH. On failure the message is "column C: reason" and *out is left empty. */
hc_status hc_json_parse(const char *text, size_t len, hc_json *out);
/* Frees what a value holds (not the struct itself); leaves it NULL-typed. */
void hc_json_free(hc_json *v);

/* The member named key of an object; NULL when v is not an object or has no such member. */
const hc_json *hc_json_get(const hc_json *v, const char *key);

/* Calls fn for every non-blank line of a JSONL file, parsed, with its 1-based line number, up to
 * limit rows (0: all). A line that does not parse, or for which fn fails, stops the reading
 * with the message "PATH:LINE: reason". */
typedef hc_status (*hc_jsonl_row_fn)(void *user, const hc_json *row, int line);
hc_status hc_jsonl_read(const char *path, int limit, hc_jsonl_row_fn fn, void *user);

#endif
