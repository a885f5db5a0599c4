/* clock.h: the one clock hcinfer times itself with: the monotonic clock, in nanoseconds or in
 * seconds, for stage timings, progress rates and benchmarks. */
#ifndef HC_CLOCK_H
#define HC_CLOCK_H

#include <stdint.h>

#include "hc/hc_api.h"

/* Nanoseconds on the monotonic clock (an arbitrary origin). */
HC_API uint64_t hc_now_ns(void);
/* The same in seconds. */
HC_API double hc_now_seconds(void);

#endif
