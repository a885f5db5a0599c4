/* plugin_check.c: the required functions of each plugin kind's vtable. A plugin missing one is
 * refused at load time rather than failing (or crashing) when first used. */
#include "plugin_check.h"

#include "hc/hc_comp.h"
#include "hc/hc_device.h"
#include "hc/hc_quant.h"
#include "hc/hc_sched.h"

#define REQUIRE(ops, fn)                                                                            \
    do {                                                                                            \
        if (!(ops)->fn)                                                                             \
            return hc_error(HC_E_PLUGIN, "%s plugin '%s' lacks the required function %s",           \
                            hc_plugin_kind_name(d->kind), d->name, #fn);                            \
    } while (0)

static hc_status check_device(const hc_plugin_desc *d)
{
    const hc_device_plugin_ops *o = d->ops;
    REQUIRE(o, probe);
    REQUIRE(o, create);
    return HC_OK;
}

static hc_status check_quant(const hc_plugin_desc *d)
{
    const hc_quant_ops *o = d->ops;
    REQUIRE(o, parse);
    REQUIRE(o, free_params);
    REQUIRE(o, format_options);
    REQUIRE(o, check_shape);
    REQUIRE(o, packed_bytes);
    REQUIRE(o, quantize);
    REQUIRE(o, dequantize_rows);
    REQUIRE(o, matmul_rows);
    if (!o->input_bytes != !o->prepare_input)
        return hc_error(HC_E_PLUGIN, "quant plugin '%s' must define both input_bytes and prepare_input, or neither", d->name);
    return HC_OK;
}

static hc_status check_comp(const hc_plugin_desc *d)
{
    const hc_comp_ops *o = d->ops;
    REQUIRE(o, supports);
    REQUIRE(o, down);
    REQUIRE(o, up);
    return HC_OK;
}

static hc_status check_sched(const hc_plugin_desc *d)
{
    const hc_sched_ops *o = d->ops;
    REQUIRE(o, create);
    REQUIRE(o, destroy);
    REQUIRE(o, input_ready);
    REQUIRE(o, backbone_done);
    REQUIRE(o, output_needed);
    return HC_OK;
}

hc_status hc_plugin_check_ops(const hc_plugin_desc *d)
{
    switch (d->kind) {
    case HC_PLUGIN_DEVICE: return check_device(d);
    case HC_PLUGIN_QUANT: return check_quant(d);
    case HC_PLUGIN_COMP: return check_comp(d);
    case HC_PLUGIN_SCHED: return check_sched(d);
    }
    return hc_error(HC_E_PLUGIN, "unknown plugin kind %d", (int)d->kind);
}
