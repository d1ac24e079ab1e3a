/*
 * dyldkit — a C11 library for Apple's Mach-O format and the dyld shared cache.
 * Include this one header for the whole API; conventions are described in
 * dyldkit/base.h.
 */
#ifndef DYLDKIT_DYLDKIT_H
#define DYLDKIT_DYLDKIT_H

#include "dyldkit/base.h"
#include "dyldkit/macho.h"
#include "dyldkit/stubs.h"
#include "dyldkit/objc.h"
#include "dyldkit/cache.h"
#include "dyldkit/extract.h"
#include "dyldkit/builder.h"
#include "dyldkit/loader.h"

#endif
