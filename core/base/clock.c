/* clock.c: the monotonic clock behind hc_now_ns() and hc_now_seconds(), the only place hcinfer
 * reads the time of day for its measurements. */
#include "clock.h"

#include <time.h>

uint64_t hc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double hc_now_seconds(void) { return 1e-9 * (double)hc_now_ns(); }
