/* registry.c: loading plugins with dlopen and checking their descriptors before any use.
 * A refused file is unloaded again and its reason kept for `hcinfer plugins`. */
#define _GNU_SOURCE
#include "registry.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hc/hc_device.h"
#include "plugin_check.h"
#include "suffix.h"

const char *hc_plugin_kind_name(hc_plugin_kind kind)
{
    switch (kind) {
    case HC_PLUGIN_QUANT: return "quant";
    case HC_PLUGIN_COMP: return "comp";
    case HC_PLUGIN_SCHED: return "sched";
    case HC_PLUGIN_DEVICE: return "device";
    }
    return "unknown";
}

hc_status hc_registry_create(hc_registry **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return hc_error(HC_E_NOMEM, "plugin registry: out of memory");
    return HC_OK;
}

void hc_registry_free(hc_registry *r)
{
    if (!r) return;
    for (int i = r->n_plugins - 1; i >= 0; i--) {
        if (r->plugins[i].handle) dlclose(r->plugins[i].handle);
        free(r->plugins[i].path);
    }
    for (int i = 0; i < r->n_refused; i++) {
        free(r->refused[i].path);
        free(r->refused[i].reason);
    }
    free(r->plugins);
    free(r->refused);
    free(r);
}

static hc_status record_refusal(hc_registry *r, const char *path)
{
    if (r->n_refused == r->cap_refused) {
        int cap = r->cap_refused ? 2 * r->cap_refused : 8;
        hc_refusal *p = realloc(r->refused, (size_t)cap * sizeof *p);
        if (!p) return HC_E_NOMEM;
        r->refused = p;
        r->cap_refused = cap;
    }
    hc_refusal *f = &r->refused[r->n_refused];
    f->path = strdup(path);
    f->reason = strdup(hc_last_error());
    if (!f->path || !f->reason) {
        free(f->path);
        free(f->reason);
        return HC_E_NOMEM;
    }
    r->n_refused++;
    return HC_OK;
}

static const hc_plugin *find_plugin(const hc_registry *r, hc_plugin_kind kind, const char *name)
{
    for (int i = 0; i < r->n_plugins; i++)
        if (r->plugins[i].desc->kind == kind && !strcmp(r->plugins[i].desc->name, name))
            return &r->plugins[i];
    return NULL;
}

/* Validates a descriptor; on failure sets the reason (without the file name). */
static hc_status check_descriptor(const hc_registry *r, const hc_plugin_desc *d)
{
    if (!d) return hc_error(HC_E_PLUGIN, "entry point %s returned no descriptor", HC_PLUGIN_ENTRY_SYMBOL);
    if (d->abi_version != HC_ABI_VERSION)
        return hc_error(HC_E_PLUGIN, "built for plugin ABI version %u, but this hcinfer has ABI version %u",
                        d->abi_version, HC_ABI_VERSION);
    if (d->kind < HC_PLUGIN_QUANT || d->kind > HC_PLUGIN_DEVICE)
        return hc_error(HC_E_PLUGIN, "unknown plugin kind %d", (int)d->kind);
    if (!d->name || !d->name[0]) return hc_error(HC_E_PLUGIN, "descriptor has no name");
    if (strlen(d->name) > 64) return hc_error(HC_E_PLUGIN, "descriptor name is longer than 64 characters");
    for (const char *c = d->name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
            return hc_error(HC_E_PLUGIN, "name '%s' may only hold a-z, 0-9, '_' and '-'", d->name);
    if (!d->version || !d->version[0]) return hc_error(HC_E_PLUGIN, "%s plugin '%s' has no version", hc_plugin_kind_name(d->kind), d->name);
    if (!d->ops) return hc_error(HC_E_PLUGIN, "%s plugin '%s' has no ops table", hc_plugin_kind_name(d->kind), d->name);
    const hc_plugin *dup = find_plugin(r, d->kind, d->name);
    if (dup)
        return hc_error(HC_E_PLUGIN, "a %s plugin named '%s' is already loaded from %s",
                        hc_plugin_kind_name(d->kind), d->name, dup->path);
    return hc_plugin_check_ops(d);
}

static hc_status append_plugin(hc_registry *r, const hc_plugin_desc *d, const char *path, void *handle)
{
    if (r->n_plugins == r->cap_plugins) {
        int cap = r->cap_plugins ? 2 * r->cap_plugins : 8;
        hc_plugin *p = realloc(r->plugins, (size_t)cap * sizeof *p);
        if (!p) return hc_error(HC_E_NOMEM, "plugin registry: out of memory");
        r->plugins = p;
        r->cap_plugins = cap;
    }
    char *copy = strdup(path);
    if (!copy) return hc_error(HC_E_NOMEM, "plugin registry: out of memory");
    r->plugins[r->n_plugins++] = (hc_plugin){ .desc = d, .path = copy, .handle = handle };
    return HC_OK;
}

hc_status hc_registry_add_builtin(hc_registry *r, const hc_plugin_desc *desc)
{
    hc_status st = check_descriptor(r, desc);
    if (st != HC_OK) return hc_error_context(st, "built-in plugin: ");
    return append_plugin(r, desc, "<built-in>", NULL);
}

hc_status hc_registry_load_file(hc_registry *r, const char *path)
{
    hc_status st;
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        st = hc_error(HC_E_PLUGIN, "not a loadable shared library (%s)", why ? why : "dlopen failed");
        goto refuse;
    }
    hc_plugin_entry_fn entry;
    *(void **)&entry = dlsym(h, HC_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        st = hc_error(HC_E_PLUGIN, "no entry point: the library does not export %s()", HC_PLUGIN_ENTRY_SYMBOL);
        goto refuse;
    }
    const hc_plugin_desc *d = entry();
    st = check_descriptor(r, d);
    if (st != HC_OK) goto refuse;
    st = append_plugin(r, d, path, h);
    if (st != HC_OK) goto refuse;
    return HC_OK;
refuse:
    if (h) dlclose(h);
    hc_error_context(HC_E_PLUGIN, "plugin %s refused: ", path);
    record_refusal(r, path);
    return HC_E_PLUGIN;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static hc_status scan_dir(hc_registry *r, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return HC_OK;
    char **names = NULL;
    size_t n = 0, cap = 0;
    hc_status st = HC_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!hc_ends_with(e->d_name, ".so")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) { st = hc_error(HC_E_NOMEM, "plugin scan: out of memory"); break; }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) { st = hc_error(HC_E_NOMEM, "plugin scan: out of memory"); break; }
        n++;
    }
    closedir(d);
    if (st == HC_OK && n > 1) qsort(names, n, sizeof *names, compare_names);
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        if (st == HC_OK) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            hc_registry_load_file(r, path); /* a refusal is recorded, not fatal */
        }
        free(names[i]);
    }
    free(names);
    if (st == HC_OK) hc_clear_error();
    return st;
}

hc_status hc_registry_scan(hc_registry *r, const char *dirs)
{
    if (!dirs) return HC_OK;
    char *copy = strdup(dirs);
    if (!copy) return hc_error(HC_E_NOMEM, "plugin scan: out of memory");
    hc_status st = HC_OK;
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir && st == HC_OK; dir = strtok_r(NULL, ":", &save))
        if (dir[0]) st = scan_dir(r, dir);
    free(copy);
    return st;
}

const char *hc_registry_default_dir(void)
{
    static _Thread_local char dir[PATH_MAX + 32];
    Dl_info info;
    if (!dladdr((void *)hc_registry_default_dir, &info) || !info.dli_fname) return NULL;
    char real[PATH_MAX];
    if (!realpath(info.dli_fname, real)) return NULL;
    char *slash = strrchr(real, '/');
    if (!slash) return NULL;
    *slash = '\0';
    snprintf(dir, sizeof dir, "%s/hcinfer/plugins", real);
    return dir;
}

const hc_plugin *hc_registry_find(const hc_registry *r, hc_plugin_kind kind, const char *name)
{
    const hc_plugin *p = find_plugin(r, kind, name);
    if (p) return p;
    char list[512] = "";
    size_t len = 0;
    for (int i = 0; i < r->n_plugins; i++) {
        if (r->plugins[i].desc->kind != kind) continue;
        len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0, "%s%s",
                                len ? ", " : "", r->plugins[i].desc->name);
        if (len >= sizeof list) break;
    }
    hc_error(HC_E_PLUGIN, "no %s plugin named '%s' is loaded (available: %s)", hc_plugin_kind_name(kind),
             name, list[0] ? list : "none");
    return NULL;
}
