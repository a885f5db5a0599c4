/* registry.h: the plugin registry. Loads plugin shared objects with dlopen from a search path,
 * checks each descriptor (ABI, kind, name, ops) and records why any file was refused. */
#ifndef HC_REGISTRY_H
#define HC_REGISTRY_H

#include "hc/hc_plugin.h"
#include "hc/hc_status.h"

typedef struct hc_plugin {
    const hc_plugin_desc *desc;
    char *path;          /* the file it came from, or "<built-in>" */
    void *handle;        /* dlopen handle; NULL for built-in plugins */
} hc_plugin;

typedef struct hc_refusal {
    char *path;
    char *reason;
} hc_refusal;

typedef struct hc_registry {
    hc_plugin *plugins;
    int n_plugins, cap_plugins;
    hc_refusal *refused;
    int n_refused, cap_refused;
} hc_registry;

HC_API hc_status hc_registry_create(hc_registry **out);
HC_API void hc_registry_free(hc_registry *r);

/* Registers a descriptor compiled into the program (the cpu device). */
hc_status hc_registry_add_builtin(hc_registry *r, const hc_plugin_desc *desc);

/* Loads one file. On refusal returns HC_E_PLUGIN with "<file>: <reason>" and records it. */
HC_API hc_status hc_registry_load_file(hc_registry *r, const char *path);

/* Loads every *.so in each folder of a ':'-separated list (in name order). Refusals are recorded,
 * not fatal; a folder that does not exist is skipped. */
HC_API hc_status hc_registry_scan(hc_registry *r, const char *dirs);

/* The folder holding the plugins shipped with this libhc (lib/hcinfer/plugins beside it). */
HC_API const char *hc_registry_default_dir(void);

/* Looks a plugin up; when absent sets an error listing the loaded plugins of that kind. */
HC_API const hc_plugin *hc_registry_find(const hc_registry *r, hc_plugin_kind kind, const char *name);

#endif
