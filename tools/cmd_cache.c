/* Subcommands: cache * (not implemented yet). */
#include "cli.h"

const command cmds_cache[] = {
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
