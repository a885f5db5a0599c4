/* args.h: option parsing for the hcinfer subcommands: values with range checks and messages
 * that name the option ("--temp: 'abc' is not a number"). */
#ifndef HC_CLI_ARGS_H
#define HC_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "hc/hc_status.h"

typedef struct hc_args {
    int argc;
    char **argv;
    int i;               /* index of the option being parsed */
} hc_args;

/* The option's value (the next argument); error when missing. */
hc_status hc_arg_value(hc_args *a, const char **out);
hc_status hc_arg_int(hc_args *a, long lo, long hi, int *out);
hc_status hc_arg_u64(hc_args *a, uint64_t *out);
hc_status hc_arg_float(hc_args *a, double lo, double hi, float *out);
/* 1 when argv[i] equals one of the names (NULL-terminated list is not needed: 1 or 2 names). */
int hc_arg_is(const hc_args *a, const char *name, const char *alias);
/* Prints "hcinfer CMD: <message>" to stderr and returns the exit code 1 (or 2 for usage errors). */
int hc_cli_fail(const char *cmd, hc_status st);
/* Reads a whole file into a malloc'd NUL-terminated buffer. */
hc_status hc_read_text_file(const char *path, char **out, size_t *len);

#endif
