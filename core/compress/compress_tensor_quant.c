/* compress_tensor_quant.c: --tensor-quant PATTERN=SPEC: the named linear layers in another backbone
 * format than --quant's (mixed precision: 4 bits where a 3-bit backbone loses most), checked first. */
#include "compress_tensor_quant.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "quant_format.h"

int hc_compress_tensor_quant_matches(const char *pattern, const char *name)
{
    if (strpbrk(pattern, "*?[")) return fnmatch(pattern, name, 0) == 0;
    size_t n = strlen(pattern);
    if (!n) return 0;
    for (const char *at = strstr(name, pattern); at; at = strstr(at + 1, pattern)) {
        int starts = at == name || at[-1] == '.' || pattern[0] == '.';
        int ends = at[n] == '\0' || at[n] == '.' || pattern[n - 1] == '.';
        if (starts && ends) return 1;
    }
    return 0;
}

hc_status hc_compress_tensor_quant_open(hc_compress_state *cs)
{
    const hc_compress_opts *o = cs->opts;
    if (o->n_tensor_quant <= 0) return HC_OK;
    if (o->n_tensor_quant > HC_COMPRESS_MAX_TENSOR_QUANT)
        return hc_error(HC_E_ARG, "--tensor-quant: %d options, at most %d", o->n_tensor_quant, HC_COMPRESS_MAX_TENSOR_QUANT);
    cs->tensor_quant = calloc((size_t)o->n_tensor_quant, sizeof *cs->tensor_quant);
    if (!cs->tensor_quant) return hc_error(HC_E_NOMEM, "compress: out of memory");
    for (int i = 0; i < o->n_tensor_quant; i++) {
        hc_compress_tensor_quant *t = &cs->tensor_quant[i];
        const char *arg = o->tensor_quant[i], *eq = arg ? strchr(arg, '=') : NULL;
        if (!eq) return hc_error(HC_E_ARG, "--tensor-quant '%s': expected PATTERN=SPEC (e.g. ffn_down=gptq:bits=4,group=128)", arg ? arg : "");
        size_t n = (size_t)(eq - arg);
        if (n == 0 || !eq[1]) return hc_error(HC_E_ARG, "--tensor-quant '%s': the pattern and the spec must not be empty", arg);
        if (n >= sizeof t->pattern) return hc_error(HC_E_ARG, "--tensor-quant '%s': the pattern is longer than %zu characters", arg, sizeof t->pattern - 1);
        memcpy(t->pattern, arg, n);
        t->pattern[n] = '\0';
        cs->n_tensor_quant = i + 1;
        hc_status st = hc_quant_format_create(o->registry, eq + 1, &t->fmt);
        if (st != HC_OK) return hc_error_context(st, "--tensor-quant '%s': ", arg);
    }
    return HC_OK;
}

hc_status hc_compress_tensor_quant_apply(hc_compress_state *cs)
{
    for (int i = 0; i < cs->n_jobs; i++) {
        hc_compress_job *j = &cs->jobs[i];
        const char *name = j->parent ? j->parent->name : j->weight->name;
        for (int k = 0; k < cs->n_tensor_quant; k++)
            if (hc_compress_tensor_quant_matches(cs->tensor_quant[k].pattern, name)) {
                j->fmt = cs->tensor_quant[k].fmt;
                cs->tensor_quant[k].matched++;
            }
    }
    for (int k = 0; k < cs->n_tensor_quant; k++)
        if (!cs->tensor_quant[k].matched)
            return hc_error(HC_E_ARG, "--tensor-quant '%s=%s': no linear layer's name matches '%s' (names look like %s%s)",
                            cs->tensor_quant[k].pattern, cs->tensor_quant[k].fmt->spec, cs->tensor_quant[k].pattern,
                            cs->n_jobs ? cs->jobs[0].weight->name : "blk.0.ffn_down.weight",
                            cs->head_fmt ? "" : "; the output head is a linear layer only with --head-quant");
    return HC_OK;
}

int hc_compress_uses_plugin(const hc_compress_state *cs, const char *plugin)
{
    if (cs->fmt && !strcmp(cs->fmt->plugin, plugin)) return 1;
    if (cs->head_fmt && !strcmp(cs->head_fmt->plugin, plugin)) return 1;
    for (int k = 0; k < cs->n_tensor_quant; k++)
        if (cs->tensor_quant[k].fmt && !strcmp(cs->tensor_quant[k].fmt->plugin, plugin)) return 1;
    return 0;
}

hc_status hc_compress_tensor_quant_text(const hc_compress_state *cs, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < cs->n_tensor_quant; k++) {
        int n = snprintf(buf + used, size - used, "%s%s=%s", k ? ";" : "", cs->tensor_quant[k].pattern, cs->tensor_quant[k].fmt->spec);
        if (n < 0 || (size_t)n >= size - used) return hc_error(HC_E_ARG, "--tensor-quant: the options are longer than %zu characters", size - 1);
        used += (size_t)n;
    }
    return HC_OK;
}

void hc_compress_tensor_quant_free(hc_compress_state *cs)
{
    for (int k = 0; k < cs->n_tensor_quant; k++) hc_quant_format_free(cs->tensor_quant[k].fmt);
    free(cs->tensor_quant);
    cs->tensor_quant = NULL;
    cs->n_tensor_quant = 0;
}
