/*
 * dyldkit extractor: any image of a dyld shared cache as a standalone,
 * loadable Mach-O.  VM addresses are kept (code stays valid); file offsets
 * are repacked; LINKEDIT is rebuilt for the image alone; every pointer the
 * slide info rebases becomes a rebase (into the image) or a bind (into another
 * image, named through the patch table or the target's export trie); stubs,
 * lazy pointers and call sites are restored; Objective-C selector uniquing is
 * undone.
 */
#ifndef DYLDKIT_EXTRACT_H
#define DYLDKIT_EXTRACT_H

#include "dyldkit/cache.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dk_extract_fixups {
    DK_EXTRACT_FIXUPS_DEFAULT, /* classic opcodes for x86_64/arm64, chained for arm64e */
    DK_EXTRACT_FIXUPS_CLASSIC, /* LC_DYLD_INFO_ONLY rebase/bind/lazy-bind opcodes */
    DK_EXTRACT_FIXUPS_CHAINED  /* LC_DYLD_CHAINED_FIXUPS (arm64e: auth data kept) */
} dk_extract_fixups;

typedef struct dk_extract_opts {
    dk_extract_fixups fixups;
    bool sign;                 /* ad-hoc code signature; otherwise none */
} dk_extract_opts;

/** What extraction did to one image (counts for reports and tests). */
typedef struct dk_extract_stats {
    size_t rebases, binds, lazy_binds;
    size_t unresolved;         /* pointers into other images no export names (left as plain values) */
    uint64_t unresolved_at;    /* the first such pointer's address, and where it points */
    uint64_t unresolved_target;
    size_t strings_copied;     /* coalesced ObjC strings copied back into the image */
    size_t selrefs_added;
    size_t protocols_restored; /* protocol references the cache uniqued, pointed back at the image's own definitions */
    size_t stubs_restored, calls_restored;
    size_t got_loads_restored; /* arm64 ADRP/LDR pairs the builder aimed at cache-wide uniqued GOT slots, aimed at the image's own slot again */
    size_t got_loads_lost;     /* such loads with no own slot for the target (left aimed outside the image) */
    size_t selector_loads_restored; /* arm64 ADRP+ADD of a uniqued selector string made ADRP+LDR of a selector reference again */
    uint64_t size;             /* bytes of the output file */
} dk_extract_stats;

/**
 * State shared by every extraction from one cache (export maps and the patch
 * table, built on first use and safe to use from several threads).
 */
typedef struct dk_extractor dk_extractor;

dk_status dk_extractor_new(dk_cache *cache, dk_extractor **out, dk_error *err);
void dk_extractor_close(dk_extractor *x);

/** Extract image INDEX into a malloc'd buffer (*DATA, *SIZE). */
dk_status dk_extract_image(dk_extractor *x, size_t index, const dk_extract_opts *opts, uint8_t **data, size_t *size,
                           dk_extract_stats *stats, dk_error *err);

/**
 * Extract image INDEX to DIR/<install path> (parent directories created),
 * written to a temporary file and renamed into place only when complete.
 * PATH_OUT (optional, PATH_MAX bytes) receives the final path.
 */
dk_status dk_extract_image_to_dir(dk_extractor *x, size_t index, const dk_extract_opts *opts, const char *dir,
                                  char *path_out, dk_extract_stats *stats, dk_error *err);

#ifdef __cplusplus
}
#endif

#endif
