/* registry_default.h: the registry a program starts with: the built-in cpu device, the plugins
 * shipped beside libhc, then those of HC_PLUGIN_PATH. */
#ifndef HC_REGISTRY_DEFAULT_H
#define HC_REGISTRY_DEFAULT_H

#include "registry.h"

/* The built-in plugins, then the build's or installation's plugin folder (found next to libhc,
 * hc_registry_default_dir()), then the folders of HC_PLUGIN_PATH. */
HC_API hc_status hc_registry_load_default(hc_registry *r);

#endif
