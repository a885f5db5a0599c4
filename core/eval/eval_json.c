/* eval_json.c: a strict recursive-descent JSON parser (strings decoded to UTF-8, surrogate
 * pairs joined, depth-limited) and the line-by-line JSONL reader built on it. */
#include "eval_json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
} parser;

static hc_status fail(const parser *p, const char *fmt, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, what);
    return hc_error(HC_E_FORMAT, "column %zu: %s", p->pos + 1, msg);
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* What the next character is, for messages. */
static const char *describe(const parser *p, char *buf, size_t cap)
{
    if (p->pos >= p->len) return "the end of the line";
    unsigned char c = p->s[p->pos];
    if (c >= 0x20 && c < 0x7f) snprintf(buf, cap, "'%c'", c);
    else snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

/* ---- growable byte buffer for decoded strings ---- */
typedef struct sbuf {
    char *d;
    size_t n, cap;
} sbuf;

static int sbuf_put(sbuf *b, const void *src, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->n + n + 1) cap *= 2;
        char *d = realloc(b->d, cap);
        if (!d) return 0;
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->n, src, n);
    b->n += n;
    b->d[b->n] = '\0';
    return 1;
}

static size_t utf8_encode(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n) (no overlongs, no surrogates, <= U+10FFFF),
 * 0 when invalid. */
static size_t utf8_valid(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static int hex4(const parser *p, size_t at, uint32_t *out)
{
    if (at + 4 > p->len) return 0;
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        unsigned char c = p->s[at + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* At the opening quote; decodes into b. */
static hc_status parse_string_raw(parser *p, sbuf *b)
{
    p->pos++; /* '"' */
    for (;;) {
        if (p->pos >= p->len) return fail(p, "%s", "unterminated string");
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            if (!b->d && !sbuf_put(b, "", 0)) return hc_error(HC_E_NOMEM, "out of memory");
            return HC_OK;
        }
        if (c < 0x20) return fail(p, "%s", "raw control character in a string (escape it)");
        if (c == '\\') {
            if (p->pos + 1 >= p->len) return fail(p, "%s", "unterminated string");
            unsigned char e = p->s[p->pos + 1];
            const char *simple = NULL;
            switch (e) {
            case '"': simple = "\""; break;
            case '\\': simple = "\\"; break;
            case '/': simple = "/"; break;
            case 'b': simple = "\b"; break;
            case 'f': simple = "\f"; break;
            case 'n': simple = "\n"; break;
            case 'r': simple = "\r"; break;
            case 't': simple = "\t"; break;
            case 'u': break;
            default: p->pos++; return fail(p, "%s", "unknown escape in a string");
            }
            if (simple) {
                if (!sbuf_put(b, simple, 1)) return hc_error(HC_E_NOMEM, "out of memory");
                p->pos += 2;
                continue;
            }
            uint32_t cp;
            if (!hex4(p, p->pos + 2, &cp)) return fail(p, "%s", "\\u needs four hex digits");
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, "%s", "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                size_t at = p->pos + 6;
                if (at + 2 > p->len || p->s[at] != '\\' || p->s[at + 1] != 'u' || !hex4(p, at + 2, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF)
                    return fail(p, "%s", "high surrogate in \\u escape not followed by a low surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->pos += 6;
            }
            unsigned char u[4];
            if (!sbuf_put(b, u, utf8_encode(cp, u))) return hc_error(HC_E_NOMEM, "out of memory");
            p->pos += 6;
            continue;
        }
        size_t n = utf8_valid(p->s + p->pos, p->len - p->pos);
        if (!n) return fail(p, "%s", "invalid UTF-8 in a string");
        if (!sbuf_put(b, p->s + p->pos, n)) return hc_error(HC_E_NOMEM, "out of memory");
        p->pos += n;
    }
}

static hc_status parse_number(parser *p, hc_json *out)
{
    size_t start = p->pos, i = p->pos;
    const unsigned char *s = p->s;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') { p->pos = i; return fail(p, "%s", "a digit expected in a number"); }
    if (s[i] == '0') {
        i++;
        if (i < p->len && s[i] >= '0' && s[i] <= '9') { p->pos = i; return fail(p, "%s", "leading zero in a number"); }
    } else {
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') { p->pos = i; return fail(p, "%s", "a digit expected after '.'"); }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') { p->pos = i; return fail(p, "%s", "a digit expected in an exponent"); }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    size_t n = i - start;
    char small[64], *tmp = n < sizeof small ? small : malloc(n + 1);
    if (!tmp) return hc_error(HC_E_NOMEM, "out of memory");
    memcpy(tmp, s + start, n);
    tmp[n] = '\0';
    errno = 0;
    double v = strtod(tmp, NULL);
    if (tmp != small) free(tmp);
    if (!isfinite(v)) return fail(p, "%s", "number out of range");
    out->type = HC_JSON_NUMBER;
    out->number = v;
    p->pos = i;
    return HC_OK;
}

static hc_status parse_value(parser *p, hc_json *out, int depth);

static hc_status parse_array(parser *p, hc_json *out, int depth)
{
    out->type = HC_JSON_ARRAY;
    p->pos++; /* '[' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') { p->pos++; return HC_OK; }
    int cap = 0;
    for (;;) {
        if (out->n == cap) {
            int nc = cap ? cap * 2 : 4;
            hc_json *items = realloc(out->items, (size_t)nc * sizeof *items);
            if (!items) return hc_error(HC_E_NOMEM, "out of memory");
            out->items = items;
            cap = nc;
        }
        memset(&out->items[out->n], 0, sizeof out->items[0]);
        out->n++;
        hc_status st = parse_value(p, &out->items[out->n - 1], depth + 1);
        if (st != HC_OK) return st;
        skip_ws(p);
        char d[32];
        if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->len && p->s[p->pos] == ']') { p->pos++; return HC_OK; }
        return fail(p, "',' or ']' expected in an array, not %s", describe(p, d, sizeof d));
    }
}

static hc_status parse_object(parser *p, hc_json *out, int depth)
{
    out->type = HC_JSON_OBJECT;
    p->pos++; /* '{' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') { p->pos++; return HC_OK; }
    int cap = 0;
    char d[32];
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "a member name (string) expected, not %s", describe(p, d, sizeof d));
        if (out->n == cap) {
            int nc = cap ? cap * 2 : 4;
            hc_json *items = realloc(out->items, (size_t)nc * sizeof *items);
            if (!items) return hc_error(HC_E_NOMEM, "out of memory");
            out->items = items;
            char **keys = realloc(out->keys, (size_t)nc * sizeof *keys);
            if (!keys) return hc_error(HC_E_NOMEM, "out of memory");
            out->keys = keys;
            cap = nc;
        }
        memset(&out->items[out->n], 0, sizeof out->items[0]);
        out->keys[out->n] = NULL;
        out->n++;
        size_t key_pos = p->pos;
        sbuf kb = { 0 };
        hc_status st = parse_string_raw(p, &kb);
        out->keys[out->n - 1] = kb.d;
        if (st != HC_OK) return st;
        if (strlen(kb.d) != kb.n) { p->pos = key_pos; return fail(p, "%s", "a member name holds \\u0000"); }
        for (int k = 0; k < out->n - 1; k++)
            if (!strcmp(out->keys[k], kb.d)) { p->pos = key_pos; return fail(p, "duplicate member name \"%.100s\"", kb.d); }
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, "':' expected after a member name, not %s", describe(p, d, sizeof d));
        p->pos++;
        st = parse_value(p, &out->items[out->n - 1], depth + 1);
        if (st != HC_OK) return st;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->len && p->s[p->pos] == '}') { p->pos++; return HC_OK; }
        return fail(p, "',' or '}' expected in an object, not %s", describe(p, d, sizeof d));
    }
}

static int literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->pos + n > p->len || memcmp(p->s + p->pos, word, n) != 0) return 0;
    p->pos += n;
    return 1;
}

static hc_status parse_value(parser *p, hc_json *out, int depth)
{
    if (depth > HC_JSON_MAX_DEPTH) return fail(p, "nesting deeper than %s levels", "64");
    skip_ws(p);
    char d[32];
    if (p->pos >= p->len) return fail(p, "%s", "a value expected, not the end of the line");
    switch (p->s[p->pos]) {
    case '{': return parse_object(p, out, depth);
    case '[': return parse_array(p, out, depth);
    case '"': {
        sbuf b = { 0 };
        hc_status st = parse_string_raw(p, &b);
        out->type = HC_JSON_STRING;
        out->string = b.d;
        out->string_len = b.n;
        return st;
    }
    case 't':
        if (literal(p, "true")) { out->type = HC_JSON_BOOL; out->boolean = 1; return HC_OK; }
        break;
    case 'f':
        if (literal(p, "false")) { out->type = HC_JSON_BOOL; out->boolean = 0; return HC_OK; }
        break;
    case 'n':
        if (literal(p, "null")) { out->type = HC_JSON_NULL; return HC_OK; }
        break;
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9')) return parse_number(p, out);
        break;
    }
    return fail(p, "a value expected, not %s", describe(p, d, sizeof d));
}

void hc_json_free(hc_json *v)
{
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        if (v->items) hc_json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    memset(v, 0, sizeof *v);
}

hc_status hc_json_parse(const char *text, size_t len, hc_json *out)
{
    memset(out, 0, sizeof *out);
    parser p = { (const unsigned char *)text, len, 0 };
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) return hc_error(HC_E_FORMAT, "column 1: byte-order mark before the value");
    hc_status st = parse_value(&p, out, 1);
    if (st == HC_OK) {
        skip_ws(&p);
        char d[32];
        if (p.pos < p.len) st = fail(&p, "unexpected %s after the value", describe(&p, d, sizeof d));
    }
    if (st != HC_OK) hc_json_free(out);
    return st;
}

const hc_json *hc_json_get(const hc_json *v, const char *key)
{
    if (!v || v->type != HC_JSON_OBJECT) return NULL;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key)) return &v->items[i];
    return NULL;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

hc_status hc_jsonl_read(const char *path, int limit, hc_jsonl_row_fn fn, void *user)
{
    FILE *f = fopen(path, "rb");
    if (!f) return hc_error(HC_E_IO, "%s: cannot open (%s)", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int line_no = 0, rows = 0;
    hc_status st = HC_OK;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&line, &cap, f);
        if (n < 0) {
            if (ferror(f)) st = hc_error(HC_E_IO, "%s: read error after line %d (%s)", path, line_no, strerror(errno));
            break;
        }
        line_no++;
        if (blank(line, (size_t)n)) continue;
        if (limit > 0 && rows >= limit) break;
        hc_json row;
        if ((st = hc_json_parse(line, (size_t)n, &row)) != HC_OK) {
            st = hc_error_context(st, "%s:%d: ", path, line_no);
            break;
        }
        st = fn(user, &row, line_no);
        hc_json_free(&row);
        if (st != HC_OK) {
            st = hc_error_context(st, "%s:%d: ", path, line_no);
            break;
        }
        rows++;
    }
    free(line);
    fclose(f);
    return st;
}
