/* Subcommands: stubs, resolve, verify (not implemented yet). */
#include "cli.h"

const command cmds_stubs[] = {
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
