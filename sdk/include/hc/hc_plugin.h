/* hc_plugin.h: the plugin descriptor. A plugin is a shared object exporting one entry point,
 * hc_plugin_entry(), that returns {abi_version, kind, name, version, ops} (cf. GStreamer, ggml). */
#ifndef HC_PLUGIN_H
#define HC_PLUGIN_H

#include <stdint.h>

#include "hc/hc_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Raised whenever a struct reachable from a descriptor changes its layout or meaning.
 * The loader accepts only plugins built against exactly this version. */
#define HC_ABI_VERSION 6u

typedef enum hc_plugin_kind {
    HC_PLUGIN_QUANT = 1,  /* ops: const hc_quant_ops *  (hc_quant.h)  a weight quantization format */
    HC_PLUGIN_COMP = 2,   /* ops: const hc_comp_ops *   (hc_comp.h)   a host compensation kernel */
    HC_PLUGIN_SCHED = 3,  /* ops: const hc_sched_ops *  (hc_sched.h)  an overlap scheduler */
    HC_PLUGIN_DEVICE = 4  /* ops: const hc_device_plugin_ops * (hc_device.h) a device backend */
} hc_plugin_kind;

typedef struct hc_plugin_desc {
    uint32_t abi_version;     /* HC_ABI_VERSION of the headers the plugin was built with */
    hc_plugin_kind kind;
    const char *name;         /* unique within its kind: "rtn", "async", "cuda" */
    const char *version;      /* the plugin's own version, "1.0.0" */
    const char *description;  /* one line for `hcinfer plugins` */
    const void *ops;          /* the kind's vtable */
} hc_plugin_desc;

typedef const hc_plugin_desc *(*hc_plugin_entry_fn)(void);

#define HC_PLUGIN_ENTRY_SYMBOL "hc_plugin_entry"

#if defined(__GNUC__)
#define HC_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define HC_PLUGIN_EXPORT
#endif

/* In a plugin's source: HC_PLUGIN_DEFINE(my_descriptor) defines the entry point. */
#define HC_PLUGIN_DEFINE(desc)                                                     \
    HC_PLUGIN_EXPORT const hc_plugin_desc *hc_plugin_entry(void) { return &(desc); }

HC_API const char *hc_plugin_kind_name(hc_plugin_kind kind);

#ifdef __cplusplus
}
#endif
#endif
