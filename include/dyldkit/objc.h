/* dyldkit: Objective-C metadata (classes, methods, protocols, categories, selector references) */
#ifndef DYLDKIT_OBJC_H
#define DYLDKIT_OBJC_H

#include "dyldkit/macho.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif
