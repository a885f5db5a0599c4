/* device_open.c: the registry and a device as the device tools open them (hc-compare-devices,
 * hc-bench-device-gemv): the default plugins, a plugin folder's first when one is given. */
#include "device_open.h"

#include "registry_default.h"

hc_status hc_bench_registry(const char *plugin_dir, hc_registry **r)
{
    hc_status st = hc_registry_create(r);
    if (st == HC_OK && plugin_dir) {
        st = hc_registry_scan(*r, plugin_dir);
        if (st == HC_OK && !hc_registry_find(*r, HC_PLUGIN_DEVICE, "cuda") && !hc_registry_find(*r, HC_PLUGIN_QUANT, "rtn"))
            st = hc_error(HC_E_PLUGIN, "--plugin-dir %s: no plugin found there", plugin_dir);
    }
    if (st == HC_OK) st = hc_registry_load_default(*r);
    return st;
}

hc_status hc_bench_device(hc_registry *r, const char *name, int threads, hc_device **out)
{
    hc_device_config cfg = { .n_threads = threads };
    const hc_plugin *p = hc_registry_find(r, HC_PLUGIN_DEVICE, name);
    if (!p) return hc_error(HC_E_DEVICE, "no device plugin '%s'", name);
    const hc_device_plugin_ops *ops = p->desc->ops;
    hc_status st = ops->probe();
    if (st != HC_OK) return hc_error_context(st, "device '%s' is not usable: ", name);
    return ops->create(&cfg, out);
}
