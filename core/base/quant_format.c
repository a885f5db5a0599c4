/* quant_format.c: binding a quantization spec to its plugin: lookup by name in the registry,
 * option parsing by the plugin, and the canonical spec written into model files. */
#include "quant_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hc_status hc_quant_format_create(const hc_registry *r, const char *spec, hc_quant_format **out)
{
    const char *colon = strchr(spec, ':');
    size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
    char name[65];
    if (name_len == 0 || name_len >= sizeof name) return hc_error(HC_E_ARG, "quantization spec '%s' has no valid format name", spec);
    memcpy(name, spec, name_len);
    name[name_len] = '\0';
    const hc_plugin *p = hc_registry_find(r, HC_PLUGIN_QUANT, name);
    if (!p) return hc_error_context(HC_E_ARG, "quantization spec '%s': ", spec);
    hc_quant_format *f = calloc(1, sizeof *f);
    if (!f) return hc_error(HC_E_NOMEM, "out of memory");
    f->ops = p->desc->ops;
    snprintf(f->plugin, sizeof f->plugin, "%s", name);
    snprintf(f->version, sizeof f->version, "%s", p->desc->version);
    hc_status st = f->ops->parse(colon ? colon + 1 : "", &f->params);
    if (st == HC_OK) st = f->ops->format_options(f->params, f->options, sizeof f->options);
    if (st != HC_OK) {
        if (f->params) f->ops->free_params(f->params);
        free(f);
        return hc_error_context(HC_E_ARG, "quantization spec '%s': ", spec);
    }
    snprintf(f->spec, sizeof f->spec, "%s%s%s", f->plugin, f->options[0] ? ":" : "", f->options);
    *out = f;
    return HC_OK;
}

void hc_quant_format_free(hc_quant_format *f)
{
    if (!f) return;
    if (f->params) f->ops->free_params(f->params);
    free(f);
}
