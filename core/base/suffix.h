/* suffix.h: a name's suffix, the one string test the core repeats: a tensor's base name without
 * ".weight", a plugin file's ".so", a policy's ".lua". */
#ifndef HC_SUFFIX_H
#define HC_SUFFIX_H

#include <string.h>

/* 1 when s is longer than suffix and ends with it. */
static inline int hc_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

/* The length of s without suffix when it ends with it, else strlen(s). */
static inline size_t hc_len_without(const char *s, const char *suffix)
{
    return strlen(s) - (hc_ends_with(s, suffix) ? strlen(suffix) : 0);
}

#endif
