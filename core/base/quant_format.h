/* quant_format.h: a quantization spec such as "rtn:bits=3,group=128" turned into a bound format
 * (the quant plugin found in the registry plus its parsed options), and back into text. */
#ifndef HC_QUANT_FORMAT_H
#define HC_QUANT_FORMAT_H

#include "hc/hc_quant.h"
#include "registry.h"

/* spec: "NAME" or "NAME:OPTIONS". Unknown plugins and bad options are HC_E_ARG naming them. */
HC_API hc_status hc_quant_format_create(const hc_registry *r, const char *spec, hc_quant_format **out);
HC_API void hc_quant_format_free(hc_quant_format *f);

#endif
