/* Subcommands: call (not implemented yet). */
#include "cli.h"

const command cmds_call[] = {
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
