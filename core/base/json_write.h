/* json_write.h: the one JSON string writer (quoted and escaped) of everything hcinfer writes as
 * JSON: bench lines, traces, evaluation items. */
#ifndef HC_JSON_WRITE_H
#define HC_JSON_WRITE_H

#include <stdio.h>

#include "hc/hc_api.h"

/* Writes s to f as a JSON string, quoted and escaped. */
HC_API void hc_json_write_string(FILE *f, const char *s);

#endif
