/* test_plugin.c: one source for the registry's test plugins; a compile-time variant makes it a
 * good device plugin or one of the broken ones the loader must refuse. */
#include "hc/hc_device.h"
#include "hc/hc_plugin.h"

static hc_status fake_probe(void) { return hc_error(HC_E_DEVICE, "the test device has no hardware"); }
__attribute__((unused)) static hc_status fake_create(const hc_device_config *cfg, hc_device **out) { return HC_E_DEVICE; }

#ifdef HC_TEST_VARIANT_MISSING_FN
static const hc_device_plugin_ops ops = { .probe = fake_probe, .create = 0 };
#else
static const hc_device_plugin_ops ops = { .probe = fake_probe, .create = fake_create };
#endif

__attribute__((unused)) static const hc_plugin_desc desc = {
#ifdef HC_TEST_VARIANT_WRONG_ABI
    .abi_version = HC_ABI_VERSION + 1,
#else
    .abi_version = HC_ABI_VERSION,
#endif
    .kind = HC_PLUGIN_DEVICE,
    .name = "testdev",
    .version = "0.1.0",
    .description = "a device plugin for the registry tests",
    .ops = &ops,
};

#if defined(HC_TEST_VARIANT_NULL_DESC)
HC_PLUGIN_EXPORT const hc_plugin_desc *hc_plugin_entry(void) { return 0; }
#elif defined(HC_TEST_VARIANT_NO_ENTRY)
HC_PLUGIN_EXPORT const hc_plugin_desc *some_other_symbol(void) { return &desc; }
#else
HC_PLUGIN_DEFINE(desc)
#endif
