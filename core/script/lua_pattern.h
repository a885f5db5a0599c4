/* lua_pattern.h: the sandbox's matcher of Lua 5.4 patterns (reference manual, 6.4.1), written for
 * hcinfer: a backtracking engine with an explicit stack whose every step is charged to the budget. */
#ifndef HC_LUA_PATTERN_H
#define HC_LUA_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* Lua's limits, which the engine keeps so that the same patterns fail the same way: at most 32
 * captures ("too many captures"), and at most 200 nested levels, counting the match itself plus one
 * per capture boundary and per repetition still open ("pattern too complex"). */
#define HC_PAT_MAXCAPTURES 32
#define HC_PAT_MAXDEPTH 200

/* A capture's length while open, and for a position capture "()". */
#define HC_PAT_OPEN ((ptrdiff_t)-1)
#define HC_PAT_POSITION ((ptrdiff_t)-2)

typedef struct hc_pat_capture {
    size_t start;  /* offset in the subject */
    ptrdiff_t len; /* >= 0 when closed, else HC_PAT_OPEN or HC_PAT_POSITION */
} hc_pat_capture;

/* One subject and one pattern; errors (malformed patterns, the limits) are Lua errors raised on L,
 * at the moment the engine reaches the faulty item, as in Lua. */
typedef struct hc_pat {
    lua_State *L;
    const unsigned char *s, *p;
    size_t slen, plen;
    int ncap;                                  /* captures of the last match */
    hc_pat_capture cap[HC_PAT_MAXCAPTURES];
    uint32_t unpaid;                           /* steps not yet charged */
} hc_pat;

void hc_pat_init(hc_pat *m, lua_State *L, const char *s, size_t slen, const char *p, size_t plen);

/* Matches the pattern from its offset p0 (1 after an anchor '^') against the subject from offset
 * at: the offset where the match ends, or -1. The captures are in m->cap[0 .. m->ncap). */
ptrdiff_t hc_pat_match(hc_pat *m, size_t at, size_t p0);

/* Charges steps counted but not yet charged (the engine charges in batches). */
void hc_pat_pay(hc_pat *m);
/* Adds n steps to the bill (work done for the engine's callers: copies, plain searches). */
void hc_pat_bill(hc_pat *m, size_t n);

/* Pushes capture i of a match [s, e): the whole match when the pattern has no captures and i is
 * 0, a position as an integer, else the text. Raises for an unknown or unfinished capture. */
void hc_pat_push_capture(hc_pat *m, int i, size_t s, size_t e);
/* Pushes every capture (or the whole match when there is none and whole is set): their number. */
int hc_pat_push_captures(hc_pat *m, size_t s, size_t e, int whole);

#endif
