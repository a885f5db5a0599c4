/* lua_pattern.c: the sandbox's matcher of Lua 5.4 patterns: items decoded as the engine reaches them,
 * a stack of choice points and capture undo records instead of recursion, every step charged. */
#include "lua_pattern.h"

#include "lua_host.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

/* Steps are charged by the batch: one call of hc_lua_charge per this many. */
enum { PAY_EVERY = 128 };

/* What an item of the pattern is, once decoded. */
enum { I_SINGLE, I_OPEN, I_POSITION, I_CLOSE, I_END, I_BALANCE, I_FRONTIER, I_BACKREF };
/* How a single-character item tests a character. */
enum { T_ANY, T_CHAR, T_CLASS, T_SET };

typedef struct item {
    uint8_t kind;
    uint8_t test;   /* I_SINGLE: T_* */
    uint8_t rep;    /* I_SINGLE: 0, or the repetition '*', '+', '-', '?' that follows it */
    uint8_t a, b;   /* T_CHAR: the char; T_CLASS: the class letter; I_BALANCE: open and close; I_BACKREF: the digit */
    uint8_t negate; /* T_SET, I_FRONTIER: [^...] */
    size_t lo, hi;  /* T_SET, I_FRONTIER: the set's members, p[lo .. hi) (hi is its ']') */
    size_t cost;    /* T_SET, I_FRONTIER: steps one test of a char costs (a set is read anew each time) */
    size_t next;    /* where the item ends in the pattern, its repetition included */
} item;

/* The stack's records. Each one stands for a level of nesting in Lua's own matcher, so the stack's
 * size gives the same "pattern too complex" limit. */
enum { R_OPENED, R_CLOSED, R_MAYBE, R_GREEDY, R_LAZY };

typedef struct record {
    uint8_t kind;
    item it;      /* R_LAZY: the item repeated, to try one more */
    size_t rest;  /* R_MAYBE, R_GREEDY, R_LAZY: where the pattern goes on after the repetition */
    size_t at;    /* R_MAYBE: where to go on without the optional char; R_GREEDY: the first char
                     repeated; R_LAZY: the next char to try */
    size_t n;     /* R_GREEDY: chars repeated in the current attempt; R_CLOSED: the capture closed */
} record;

void hc_pat_init(hc_pat *m, lua_State *L, const char *s, size_t slen, const char *p, size_t plen)
{
    m->L = L;
    m->s = (const unsigned char *)s;
    m->slen = slen;
    m->p = (const unsigned char *)p;
    m->plen = plen;
    m->ncap = 0;
    m->unpaid = 0;
}

void hc_pat_pay(hc_pat *m)
{
    uint32_t n = m->unpaid;
    m->unpaid = 0;
    if (n) hc_lua_charge(m->L, n);
}

void hc_pat_bill(hc_pat *m, size_t n)
{
    if (n >= PAY_EVERY - m->unpaid) {
        uint64_t all = (uint64_t)n + m->unpaid;
        m->unpaid = 0;
        hc_lua_charge(m->L, all);
    } else {
        m->unpaid += (uint32_t)n;
    }
}

static inline void step(hc_pat *m)
{
    if (++m->unpaid >= PAY_EVERY) hc_pat_pay(m);
}

/* ---- characters ---- */

/* Whether c is in the class named by the letter after '%' (%a, %D, ...); any other char stands
 * for itself. */
static int in_class(int letter, int c)
{
    int yes;
    switch (tolower(letter)) {
    case 'a': yes = isalpha(c); break;
    case 'c': yes = iscntrl(c); break;
    case 'd': yes = isdigit(c); break;
    case 'g': yes = isgraph(c); break;
    case 'l': yes = islower(c); break;
    case 'p': yes = ispunct(c); break;
    case 's': yes = isspace(c); break;
    case 'u': yes = isupper(c); break;
    case 'w': yes = isalnum(c); break;
    case 'x': yes = isxdigit(c); break;
    case 'z': yes = c == 0; break; /* deprecated, but still in Lua 5.4 */
    default: return letter == c;
    }
    yes = yes != 0;
    return isupper(letter) ? !yes : yes;
}

/* Whether c belongs to the set whose members are p[lo .. hi): %x escapes and classes, ranges x-y
 * (a '-' first or last is itself), single chars. */
static int in_set(const unsigned char *p, size_t lo, size_t hi, int negate, int c)
{
    for (size_t j = lo; j < hi; j++) {
        if (p[j] == '%') {
            j++;
            if (in_class(p[j], c)) return !negate;
        } else if (j + 2 < hi && p[j + 1] == '-') {
            if (p[j] <= c && c <= p[j + 2]) return !negate;
            j += 2;
        } else if (p[j] == c) {
            return !negate;
        }
    }
    return negate;
}

static int test_char(const hc_pat *m, const item *it, int c)
{
    switch (it->test) {
    case T_ANY: return 1;
    case T_CHAR: return c == it->a;
    case T_CLASS: return in_class(it->a, c);
    default: return in_set(m->p, it->lo, it->hi, it->negate, c);
    }
}

/* Whether the single-character item matches the subject's char at offset at. */
static inline int matches_at(hc_pat *m, const item *it, size_t at)
{
    if (at >= m->slen) return 0;
    if (it->test == T_SET && it->cost) hc_pat_bill(m, it->cost);
    return test_char(m, it, m->s[at]);
}

/* ---- decoding ---- */

/* The set that opens with '[' at offset b: its members and closing ']'. The first char (after a
 * '^') is a member even when it is ']'; "%x" pairs are read together. */
static void decode_set(hc_pat *m, size_t b, item *it)
{
    const unsigned char *p = m->p;
    size_t n = m->plen, j = b + 1;
    it->negate = j < n && p[j] == '^';
    if (it->negate) j++;
    it->lo = j;
    for (;;) {
        if (j >= n) luaL_error(m->L, "malformed pattern (missing ']')");
        if (p[j++] == '%' && j < n) j++;
        if (j < n && p[j] == ']') break;
    }
    it->hi = j;
    it->cost = (j - it->lo) / 32;
    hc_pat_bill(m, it->cost); /* finding the ']' read it once */
}

/* The item at offset at (< plen). A malformed one raises here: the engine decodes an item only
 * when it reaches it, so a fault later in a pattern than any match goes can never show, as in Lua. */
static void decode(hc_pat *m, size_t at, item *it)
{
    const unsigned char *p = m->p;
    size_t n = m->plen, q;
    it->rep = 0;
    switch (p[at]) {
    case '(':
        if (at + 1 < n && p[at + 1] == ')') {
            it->kind = I_POSITION;
            it->next = at + 2;
        } else {
            it->kind = I_OPEN;
            it->next = at + 1;
        }
        return;
    case ')':
        it->kind = I_CLOSE;
        it->next = at + 1;
        return;
    case '$':
        if (at + 1 == n) {
            it->kind = I_END;
            it->next = n;
            return;
        }
        break; /* elsewhere a plain '$' */
    case '%':
        if (at + 1 == n) luaL_error(m->L, "malformed pattern (ends with '%%')");
        if (p[at + 1] == 'b') {
            if (at + 3 >= n) luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
            it->kind = I_BALANCE;
            it->a = p[at + 2];
            it->b = p[at + 3];
            it->next = at + 4;
            return;
        }
        if (p[at + 1] == 'f') {
            if (at + 2 >= n || p[at + 2] != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
            decode_set(m, at + 2, it);
            it->kind = I_FRONTIER;
            it->next = it->hi + 1;
            return;
        }
        if (isdigit(p[at + 1])) {
            it->kind = I_BACKREF;
            it->a = p[at + 1];
            it->next = at + 2;
            return;
        }
        break;
    }
    it->kind = I_SINGLE;
    switch (p[at]) {
    case '.':
        it->test = T_ANY;
        q = at + 1;
        break;
    case '%':
        it->test = T_CLASS;
        it->a = p[at + 1];
        q = at + 2;
        break;
    case '[':
        it->test = T_SET;
        decode_set(m, at, it);
        q = it->hi + 1;
        break;
    default:
        it->test = T_CHAR;
        it->a = p[at];
        q = at + 1;
        break;
    }
    if (q < n && (p[q] == '*' || p[q] == '+' || p[q] == '-' || p[q] == '?')) it->rep = p[q++];
    it->next = q;
}

/* ---- the engine ---- */

/* %bxy at offset at: the end of the balanced run, or 0 when there is none. */
static size_t balanced(hc_pat *m, const item *it, size_t at)
{
    if (at >= m->slen || m->s[at] != it->a) return 0;
    size_t open = 1;
    for (size_t j = at + 1; j < m->slen; j++) {
        step(m);
        if (m->s[j] == it->b) {
            if (--open == 0) return j + 1;
        } else if (m->s[j] == it->a) {
            open++;
        }
    }
    return 0;
}

/* %f[set] at offset at: the char before is out of the set, the char at is in it (the subject's
 * ends count as '\0'). */
static int frontier(hc_pat *m, const item *it, size_t at)
{
    hc_pat_bill(m, 2 * it->cost);
    int before = at == 0 ? 0 : m->s[at - 1];
    int here = at < m->slen ? m->s[at] : 0;
    return !in_set(m->p, it->lo, it->hi, it->negate, before) && in_set(m->p, it->lo, it->hi, it->negate, here);
}

/* %1 .. %9 at offset at: the subject again holds capture d's text there; its length, or -1. */
static ptrdiff_t repeats(hc_pat *m, int digit, size_t at)
{
    int l = digit - '1';
    if (l < 0 || l >= m->ncap || m->cap[l].len == HC_PAT_OPEN) luaL_error(m->L, "invalid capture index %%%d", l + 1);
    ptrdiff_t len = m->cap[l].len;
    if (len < 0) return -1; /* a position capture repeats nowhere */
    hc_pat_bill(m, (size_t)len / 64);
    if ((size_t)len <= m->slen - at && memcmp(m->s + m->cap[l].start, m->s + at, (size_t)len) == 0) return len;
    return -1;
}

ptrdiff_t hc_pat_match(hc_pat *m, size_t at, size_t pi)
{
    record stack[HC_PAT_MAXDEPTH - 1]; /* the match itself is the first level */
    int depth = 0;
    item it;
    m->ncap = 0;
#define PUSH(k)                                                                        \
    do {                                                                               \
        if (depth == HC_PAT_MAXDEPTH - 1) luaL_error(m->L, "pattern too complex");     \
        stack[depth].kind = (k);                                                       \
        r = &stack[depth++];                                                           \
    } while (0)
    for (;;) {
        record *r;
        step(m);
        if (pi == m->plen) return (ptrdiff_t)at;
        decode(m, pi, &it);
        switch (it.kind) {
        case I_OPEN:
        case I_POSITION:
            if (m->ncap >= HC_PAT_MAXCAPTURES) luaL_error(m->L, "too many captures");
            m->cap[m->ncap].start = at;
            m->cap[m->ncap].len = it.kind == I_OPEN ? HC_PAT_OPEN : HC_PAT_POSITION;
            m->ncap++;
            PUSH(R_OPENED);
            pi = it.next;
            continue;
        case I_CLOSE: {
            int l = m->ncap - 1;
            while (l >= 0 && m->cap[l].len != HC_PAT_OPEN) l--;
            if (l < 0) luaL_error(m->L, "invalid pattern capture");
            m->cap[l].len = (ptrdiff_t)(at - m->cap[l].start);
            PUSH(R_CLOSED);
            r->n = (size_t)l;
            pi = it.next;
            continue;
        }
        case I_END:
            if (at != m->slen) break;
            pi = it.next;
            continue;
        case I_BALANCE: {
            size_t end = balanced(m, &it, at);
            if (!end) break;
            at = end;
            pi = it.next;
            continue;
        }
        case I_FRONTIER:
            if (!frontier(m, &it, at)) break;
            pi = it.next;
            continue;
        case I_BACKREF: {
            ptrdiff_t len = repeats(m, it.a, at);
            if (len < 0) break;
            at += (size_t)len;
            pi = it.next;
            continue;
        }
        default: /* I_SINGLE */
            if (!matches_at(m, &it, at)) {
                if (it.rep == '*' || it.rep == '?' || it.rep == '-') { /* none of it, and no choice left */
                    pi = it.next;
                    continue;
                }
                break;
            }
            /* it matches here: a repetition becomes a choice point (and a level of nesting) */
            switch (it.rep) {
            case 0:
                at++;
                pi = it.next;
                continue;
            case '?': /* with the char, else without */
                PUSH(R_MAYBE);
                r->rest = it.next;
                r->at = at;
                at++;
                pi = it.next;
                continue;
            case '-': /* none, else one more at a time */
                PUSH(R_LAZY);
                r->it = it;
                r->rest = it.next;
                r->at = at;
                pi = it.next;
                continue;
            default: { /* '*' and '+' (which keeps its first): all there are, else one fewer at a time */
                size_t base = it.rep == '+' ? at + 1 : at, n = 0;
                while (matches_at(m, &it, base + n)) {
                    n++;
                    step(m);
                }
                PUSH(R_GREEDY);
                r->rest = it.next;
                r->at = base;
                r->n = n;
                at = base + n;
                pi = it.next;
                continue;
            }
            }
        }
        /* no match from here: back to the latest choice, undoing captures on the way */
        for (;;) {
            if (depth == 0) return -1;
            step(m);
            r = &stack[depth - 1];
            if (r->kind == R_OPENED) {
                m->ncap--;
            } else if (r->kind == R_CLOSED) {
                m->cap[r->n].len = HC_PAT_OPEN;
            } else if (r->kind == R_MAYBE) {
                at = r->at; /* without the optional char */
                pi = r->rest;
                depth--;
                break;
            } else if (r->kind == R_GREEDY) {
                if (r->n > 0) { /* one char fewer */
                    r->n--;
                    at = r->at + r->n;
                    pi = r->rest;
                    break;
                }
            } else if (matches_at(m, &r->it, r->at)) { /* R_LAZY: one char more */
                r->at++;
                at = r->at;
                pi = r->rest;
                break;
            }
            depth--;
        }
    }
#undef PUSH
}

/* ---- captures ---- */

void hc_pat_push_capture(hc_pat *m, int i, size_t s, size_t e)
{
    lua_State *L = m->L;
    if (i >= m->ncap) {
        if (i != 0) luaL_error(L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(L, (const char *)m->s + s, e - s);
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == HC_PAT_OPEN) luaL_error(L, "unfinished capture");
    if (len == HC_PAT_POSITION) lua_pushinteger(L, (lua_Integer)m->cap[i].start + 1);
    else lua_pushlstring(L, (const char *)m->s + m->cap[i].start, (size_t)len);
}

int hc_pat_push_captures(hc_pat *m, size_t s, size_t e, int whole)
{
    int n = m->ncap == 0 && whole ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) hc_pat_push_capture(m, i, s, e);
    return n;
}
