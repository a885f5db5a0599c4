/* plugin_check.h: per-kind validation of a plugin's ops table: every required function of the
 * kind's vtable must be present before the registry accepts the plugin. */
#ifndef HC_PLUGIN_CHECK_H
#define HC_PLUGIN_CHECK_H

#include "hc/hc_plugin.h"

/* HC_OK, or HC_E_PLUGIN naming the first missing function. */
hc_status hc_plugin_check_ops(const hc_plugin_desc *d);

#endif
