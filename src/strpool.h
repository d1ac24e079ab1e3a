/*
 * A deduplicating string pool: interned strings laid out NUL-terminated in one
 * buffer, each added once (the builder's merged nlist string table and the
 * shared selector strings; the extractor's string tables).  Internal API.
 */
#ifndef DYLDKIT_STRPOOL_H
#define DYLDKIT_STRPOOL_H

#include "writer.h"

typedef struct dk_strpool {
    dk_buf buf;            /* the strings, each followed by its NUL */
    struct dk_strslot *table;
    size_t cap, count;
} dk_strpool;

/** Offset of S (N bytes, no NUL needed) in the pool, adding it if new; UINT32_MAX when out of memory. */
uint32_t dk_strpool_add(dk_strpool *p, const char *s, size_t n);
static inline uint32_t dk_strpool_cstr(dk_strpool *p, const char *s) { return dk_strpool_add(p, s, strlen(s)); }
void dk_strpool_free(dk_strpool *p);

#endif
