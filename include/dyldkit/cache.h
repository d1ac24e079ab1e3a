/*
 * dyldkit dyld shared cache reader (see docs in ../shared/docs/dsc-format.md and
 * Apple's <mach-o/dyld_cache_format.h>).
 */
#ifndef DYLDKIT_CACHE_H
#define DYLDKIT_CACHE_H

#include "dyldkit/dyldkit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dk_cache dk_cache;

#ifdef __cplusplus
}
#endif

#endif
