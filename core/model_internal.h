/* model_internal.h: what the model format readers share inside the core: configuration checks
 * and the conversion of weights to f32. Not part of the public API. */
#ifndef HC_MODEL_INTERNAL_H
#define HC_MODEL_INTERNAL_H

#include "model.h"

hc_status hc_model_load_gguf(hc_model *m, const hc_model_load_opts *opts);
hc_status hc_model_load_llama2c(hc_model *m, const hc_model_load_opts *opts);
/* Sane ranges for every hyper-parameter (so a corrupt header cannot ask for terabytes). */
hc_status hc_model_check_config(const hc_model_config *c);
/* Replaces every weight by an f32 copy the model owns. */
hc_status hc_model_convert_f32(hc_model *m);

#endif
