/* model_load.c: opening a model file of either format (GGUF by its magic, else a llama2.c
 * checkpoint); the readers are model_gguf.c and model_llama2c.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

static int has_gguf_magic(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[4] = { 0 };
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(magic, "GGUF", 4);
}

hc_status hc_model_load(const char *path, const hc_model_load_opts *opts, hc_model **out)
{
    int is_gguf = has_gguf_magic(path);
    if (is_gguf < 0) return hc_error(HC_E_IO, "%s: cannot open the model file", path);
    hc_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return hc_error(HC_E_NOMEM, "out of memory");
    }
    hc_status st = is_gguf ? hc_model_load_gguf(m, opts) : hc_model_load_llama2c(m, opts);
    if (st != HC_OK) {
        hc_model_free(m);
        return st;
    }
    *out = m;
    return HC_OK;
}
