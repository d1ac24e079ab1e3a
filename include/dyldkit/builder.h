/*
 * dyldkit cache builder: turn a set of dylibs into a dyld shared cache the way
 * Apple's builder does (see ../shared/docs/dsc-format.md section 5).
 */
#ifndef DYLDKIT_BUILDER_H
#define DYLDKIT_BUILDER_H

#include "dyldkit/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dk_build_opts {
    const char *output;            /* main cache file; sub-caches and .symbols go beside it */
    const char *const *inputs;     /* dylib paths (thin or universal), in image-table order */
    size_t ninputs;
    const char *arch;              /* slice of universal inputs; default: the only/first common one */
    int format;                    /* 832: one file (old builder); 1042: split main + sub-caches + .symbols */
    int slide_version;             /* 0: the architecture's default (v2 arm64/x86_64, v3 arm64e, v4 arm64_32) */
    bool symbols_file;             /* local symbols in OUTPUT.symbols (always for 1042) */
    bool allow_unresolved;         /* keep unresolvable imports as binds instead of failing */
    int unique_gots;               /* GOT uniquing (arm64/arm64e/x86_64, format 1042): 0 as Apple's builder of that
                                      format does (on for 1042), 1 on, -1 off */
    /* diagnostics that are not errors (one line each); may be NULL */
    void (*warn)(void *ctx, const char *message);
    void *warn_ctx;
} dk_build_opts;

/** Statistics of a build. */
typedef struct dk_build_stats {
    size_t images;
    size_t mappings;
    size_t files;
    uint64_t cache_size;           /* bytes written over all files */
    size_t rebases;                /* pointers described by slide info */
    size_t binds_resolved;
    size_t binds_kept;             /* unresolved binds kept as opcodes (--allow-unresolved) */
    size_t selectors;              /* unique selector strings */
    size_t protocols_uniqued;      /* protocol list/reference entries re-aimed at another image's definition */
    size_t calls_bypassed;         /* arm64 call sites pointed straight at their targets */
    size_t gots_uniqued;           /* images' GOT entries that share a cache-wide slot */
    size_t got_slots;              /* the cache-wide slots */
    size_t got_loads_redirected;   /* arm64 ADRP/LDR pairs aimed at a cache-wide slot */
    size_t selector_loads_direct;  /* arm64 selector-reference loads made ADRP+ADD of the uniqued string (832) */
} dk_build_stats;

/**
 * Build a cache.  Every missing dependency and unresolvable import is named
 * in ERR (the first ones, with a count).  Output files are written to
 * temporary names and renamed only when all of them are complete.
 */
dk_status dk_cache_build(const dk_build_opts *opts, dk_build_stats *stats, dk_error *err);

#ifdef __cplusplus
}
#endif

#endif
