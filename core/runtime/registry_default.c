/* registry_default.c: hc_registry_load_default(): what the runtime adds to the base registry, the
 * built-in cpu device, before the plugin folders are scanned. */
#include "registry_default.h"

#include <stdlib.h>

#include "device_cpu.h"

hc_status hc_registry_load_default(hc_registry *r)
{
    hc_status st = hc_registry_add_builtin(r, hc_cpu_device_descriptor());
    if (st != HC_OK) return st;
    const char *dir = hc_registry_default_dir();
    if (dir && (st = hc_registry_scan(r, dir)) != HC_OK) return st;
    return hc_registry_scan(r, getenv("HC_PLUGIN_PATH"));
}
