/* cmd_plugins.c: `hcinfer plugins`: every plugin loaded (kind, name, version, ABI, file) and
 * every file on the plugin path that was refused, with the reason. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "registry_default.h"

int hc_cmd_plugins(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: hcinfer plugins\nLists the loaded plugins and the refused ones. Search path: the plugin\n"
                   "folder beside libhc (%s), then the folders of HC_PLUGIN_PATH (':'-separated).\n",
                   hc_registry_default_dir() ? hc_registry_default_dir() : "?");
            return 0;
        }
        return hc_cli_fail("plugins", hc_error(HC_E_ARG, "unknown option '%s'", argv[i]));
    }
    hc_registry *r;
    hc_status st = hc_registry_create(&r);
    if (st == HC_OK) st = hc_registry_load_default(r);
    if (st != HC_OK) {
        hc_registry_free(r);
        return hc_cli_fail("plugins", st);
    }
    printf("%-7s %-12s %-9s %-4s %s\n", "kind", "name", "version", "abi", "file");
    for (int i = 0; i < r->n_plugins; i++) {
        const hc_plugin *p = &r->plugins[i];
        printf("%-7s %-12s %-9s %-4u %s\n", hc_plugin_kind_name(p->desc->kind), p->desc->name, p->desc->version,
               p->desc->abi_version, p->path);
    }
    if (r->n_refused) printf("\nrefused:\n");
    for (int i = 0; i < r->n_refused; i++) printf("  %s\n", r->refused[i].reason);
    hc_registry_free(r);
    return 0;
}
