/* dyldkit: stubs, lazy binding and symbol resolution across images */
#ifndef DYLDKIT_STUBS_H
#define DYLDKIT_STUBS_H

#include "dyldkit/macho.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif
