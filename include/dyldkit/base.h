/*
 * dyldkit base definitions, shared by every public header.
 *
 * dyldkit — a C11 library for Apple's Mach-O format and the dyld shared cache.
 *
 * Conventions shared by every part of the API:
 *  - Handles are opaque; every *_close(NULL) is a no-op.
 *  - Views (strings, struct pointers, arrays) returned by a handle stay valid
 *    while the handle lives; the library never copies file contents it can
 *    point at.
 *  - Every fallible call returns a dk_status and, when given a dk_error, fills
 *    it with a message naming the structure and the file offset where the
 *    problem was found.  Malformed input is an ordinary result, never an abort.
 *  - The library never prints, never exits and keeps no global state.
 */
#ifndef DYLDKIT_BASE_H
#define DYLDKIT_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DYLDKIT_VERSION_MAJOR 0
#define DYLDKIT_VERSION_MINOR 1
#define DYLDKIT_VERSION_PATCH 0
#define DYLDKIT_VERSION_STRING "0.1.0"

/** Result of every fallible call. */
typedef enum dk_status {
    DK_OK = 0,
    DK_E_MALFORMED,   /* the input violates the format */
    DK_E_UNSUPPORTED, /* valid input that dyldkit (or dyld) does not handle */
    DK_E_IO,          /* open/mmap/write failed */
    DK_E_NOMEM,       /* allocation failed */
    DK_E_NOTFOUND,    /* a looked-up name, address or slice does not exist */
    DK_E_ARG,         /* the caller passed something invalid */
    DK_E_LIMIT,       /* a resource bound was hit (count, depth, size) */
    DK_E_STOPPED      /* a callback asked to stop the walk */
} dk_status;

/** Caller-owned error record; functions fill it when they fail. */
typedef struct dk_error {
    dk_status status;
    char message[512]; /* "LC_DYLD_INFO_ONLY: bind_off+bind_size past end of file (0x4c20 > 0x4a00)" */
} dk_error;

/** Static text for a status ("malformed input", ...). */
const char *dk_strerror(dk_status status);

/** Version of the library at run time (compare with DYLDKIT_VERSION_STRING). */
const char *dk_version(void);

#ifdef __cplusplus
}
#endif


#endif
