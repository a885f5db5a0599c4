/* status.c: the per-thread error message behind hc_error() / hc_last_error().
 * Thread-local, so concurrent threads (device pool, host pool) never overwrite each other. */
#include "hc/hc_status.h"

#include <stdio.h>
#include <string.h>

#define HC_ERROR_MAX 1024

static _Thread_local char hc_message[HC_ERROR_MAX];

const char *hc_last_error(void) { return hc_message; }

void hc_clear_error(void) { hc_message[0] = '\0'; }

hc_status hc_verror(hc_status code, const char *fmt, va_list ap)
{
    vsnprintf(hc_message, sizeof hc_message, fmt, ap);
    return code;
}

hc_status hc_error(hc_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hc_verror(code, fmt, ap);
    va_end(ap);
    return code;
}

hc_status hc_error_context(hc_status code, const char *fmt, ...)
{
    char old[HC_ERROR_MAX], prefix[HC_ERROR_MAX];
    va_list ap;
    memcpy(old, hc_message, sizeof old);
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* the context, then the old message as far as it fits */
    const size_t n = strlen(prefix), m = strnlen(old, sizeof hc_message - 1 - n);
    memcpy(hc_message, prefix, n);
    memcpy(hc_message + n, old, m);
    hc_message[n + m] = '\0';
    return code;
}

const char *hc_status_name(hc_status code)
{
    switch (code) {
    case HC_OK: return "ok";
    case HC_E_ARG: return "bad argument";
    case HC_E_IO: return "i/o error";
    case HC_E_FORMAT: return "bad format";
    case HC_E_UNSUPPORTED: return "unsupported";
    case HC_E_NOMEM: return "out of memory";
    case HC_E_PLUGIN: return "plugin error";
    case HC_E_SCRIPT: return "script error";
    case HC_E_DEVICE: return "device error";
    case HC_E_STATE: return "bad state";
    case HC_E_NUMERIC: return "numerical failure";
    }
    return "unknown status";
}
