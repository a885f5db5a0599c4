/* hc_api.h: HC_API marks what libhc exports. libhc is built with hidden visibility, so a function
 * that the CLI, the plugins or an SDK user may call carries HC_API in its declaration. */
#ifndef HC_API_H
#define HC_API_H

#if defined(__GNUC__) || defined(__clang__)
#define HC_API __attribute__((visibility("default")))
#else
#define HC_API
#endif

#endif
