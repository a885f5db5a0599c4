/* hc_status.h: status codes and the per-thread error message of the hcinfer library.
 * Every fallible call returns an hc_status; on failure hc_last_error() says what and why. */
#ifndef HC_STATUS_H
#define HC_STATUS_H

#include <stdarg.h>

#include "hc/hc_api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hc_status {
    HC_OK = 0,
    HC_E_ARG,         /* a bad argument, option or specification */
    HC_E_IO,          /* a file could not be opened, read or written */
    HC_E_FORMAT,      /* a file's content is malformed or truncated */
    HC_E_UNSUPPORTED, /* valid, but not implemented here (a tensor type, an architecture) */
    HC_E_NOMEM,       /* an allocation failed or a size overflowed */
    HC_E_PLUGIN,      /* a plugin was refused or failed */
    HC_E_SCRIPT,      /* a Lua script failed or answered badly */
    HC_E_DEVICE,      /* a device is absent or failed */
    HC_E_STATE,       /* a call at the wrong time (full context, closed object) */
    HC_E_NUMERIC      /* a numerical method failed (factorization not positive definite, no convergence) */
} hc_status;

/* The message of the last failure on this thread ("" when none). */
HC_API const char *hc_last_error(void);

/* Sets this thread's message (printf-style) and returns code, so that callers write
 * `return hc_error(HC_E_FORMAT, "%s: truncated", path);`. */
HC_API hc_status hc_error(hc_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
HC_API hc_status hc_verror(hc_status code, const char *fmt, va_list ap);

/* Prepends context to the current message ("model.gguf: " + old message) and returns code. */
HC_API hc_status hc_error_context(hc_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

HC_API void hc_clear_error(void);
HC_API const char *hc_status_name(hc_status code);

#ifdef __cplusplus
}
#endif
#endif
