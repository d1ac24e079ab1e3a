/* Subcommands: objc (not implemented yet). */
#include "cli.h"

const command cmds_objc[] = {
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
