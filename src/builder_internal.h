/* The cache builder's state, shared by src/builder*.c. */
#ifndef DYLDKIT_BUILDER_INTERNAL_H
#define DYLDKIT_BUILDER_INTERNAL_H

#include "macho_internal.h"
#include "writer.h"

#include "dyldkit/builder.h"
#include "dyldkit/stubs.h"

/* Regions of the cache, in layout order.  Each non-empty region is one mapping. */
enum {
    R_TEXT,
    R_DATA_CONST,
    R_DATA,
    R_DATA_DIRTY,
    R_AUTH_CONST,
    R_AUTH,
    R_LINKEDIT,
    R_COUNT
};

/* dyld_cache_mapping_and_slide_info.flags */
#define DK_MAPPING_AUTH_DATA 1u
#define DK_MAPPING_DIRTY_DATA 2u
#define DK_MAPPING_CONST_DATA 4u

/* One input segment and where it goes. */
typedef struct bseg {
    int region;          /* R_* */
    uint64_t old_addr, old_size;
    uint64_t new_addr;
    uint8_t *out;        /* its bytes in the region buffer (old_size bytes, rounded up) */
} bseg;

/* A pointer the cache carries (slide info describes it). */
typedef struct slide_ptr {
    uint64_t addr;       /* unslid location */
    uint64_t target;     /* unslid target, high8 not included */
    uint8_t high8;
    bool auth;
    uint8_t key;
    uint16_t diversity;
    bool addr_div;
} slide_ptr;

/* An import the cache keeps as a bind (unresolved, --allow-unresolved). */
typedef struct kept_bind {
    uint64_t addr;       /* new location */
    int ordinal;
    const char *symbol;
    int64_t addend;
    bool weak_import;
    dk_fixup_kind kind;
} kept_bind;

/* A use of an export by a client, for the patch table. */
typedef struct patch_use {
    uint32_t client;     /* image index of the user */
    uint32_t target_image;
    uint64_t impl;       /* new address of the export */
    const char *name;
    uint64_t use;        /* new address of the pointer */
    int64_t addend;
    bool weak_import;
    bool auth;
    uint8_t key;
    uint16_t diversity;
    bool addr_div;
    uint8_t high8;
    bool got;            /* USE is a cache-wide uniqued GOT slot (patch table v3 GOT clients) */
} patch_use;

typedef struct bimage {
    const char *path;
    dk_file *file;
    dk_macho *m;
    const char *install_name;
    int set_index;       /* in the image set */
    bseg *segs;          /* one per input segment */
    size_t nsegs;
    int text_seg, linkedit_seg;
    uint64_t new_base;   /* new address of the mach header */
    uint8_t *hdr;        /* its mach header in the TEXT region buffer */
    kept_bind *kept;
    size_t nkept, capkept;
    /* LINKEDIT products (offsets within the LINKEDIT region) */
    uint64_t symoff, nsyms, nextdef, nundef, nlocals_total;
    uint64_t indirect_off;
    uint32_t nindirect;
    uint64_t trie_off, trie_size;
    uint64_t fstarts_off, fstarts_size;
    uint64_t dic_off, dic_size;
    uint64_t bind_off, bind_size, lazy_off, lazy_size, weak_off, weak_size;
    uint32_t local_start, local_count;   /* in the local-symbols nlist array */
    uint32_t path_offset;                /* file offset of its path string (main file) */
} bimage;

typedef struct region {
    const char *name;
    uint64_t addr, size;         /* VM range */
    uint8_t *buf;                /* size bytes */
    uint32_t prot;
    uint32_t flags;              /* DK_MAPPING_* */
    int file;                    /* 0 main, 1 data sub-cache, 2 linkedit sub-cache */
    uint64_t file_off;           /* offset of the mapping's first byte in its file */
    uint64_t map_addr, map_size; /* the mapping (may start earlier to cover a sub-cache header) */
    slide_ptr *ptrs;
    size_t nptrs, capptrs;
    uint64_t at;         /* the pointer being encoded: an encoding error names its image */
    dk_buf slide;                /* encoded slide info */
    uint64_t slide_file_off;
} region;

typedef struct builder {
    const dk_build_opts *o;
    dk_error *err;
    dk_build_stats *stats;
    const char *arch;
    uint32_t cputype, cpusubtype;
    bool arm64, arm64e, x86_64, is64;
    unsigned ptr;                /* pointer size */
    uint64_t page;               /* VM page size (segment alignment) */
    uint64_t base;               /* sharedRegionStart */
    int slide_version;
    bimage *imgs;
    size_t nimgs;
    dk_imageset *set;
    region regions[R_COUNT];
    /* header area at the start of TEXT */
    uint64_t header_size;        /* mappingOffset */
    uint64_t header_area;        /* header + tables + paths, page aligned */
    /* ObjC */
    uint64_t selstr_addr, selstr_size;   /* the shared selector strings (in TEXT) */
    uint64_t objc_opt_addr;              /* ObjCOptimizationHeader (format 1042) */
    uint8_t *selstr_out;
    struct objc_state *objc;             /* builder_objc.c's coalescing state */
    /* LINKEDIT */
    dk_buf linkedit;
    dk_buf strings;              /* merged string pool (placed in LINKEDIT) */
    dk_buf locals_nlist, locals_strings;
    patch_use *uses;
    size_t nuses, capuses;
    /* GOT uniquing (builder_got.c): chunk 0 plain slots (DATA_CONST), 1 authenticated (AUTH_CONST) */
    bool unique_gots;
    struct got_state *got;
    uint64_t got_addr[2];
    size_t got_count[2];
    uint64_t patch_addr, patch_size, dylibs_trie_addr, dylibs_trie_size;
} builder;

/* builder.c */
void bld_warn(builder *b, const char *fmt, ...) DK_PRINTF(2, 3);
/** New address for OLD in image I (segment-relative translation); false if OLD is in no segment. */
bool bld_xlate(const builder *b, const bimage *im, uint64_t old, uint64_t *out);
/** Index of IM's segment holding the new address ADDR, -1 if none. */
int bld_seg_at(const bimage *im, uint64_t addr);
/** The image one of whose segments holds the new address ADDR (NULL: none). */
const bimage *bld_image_at(const builder *b, uint64_t addr);
/** Every fixup of M sorted by address (the index dk__fixups_at builds); *ST set on failure. */
const dk_fixup *bld_fixup_index(dk_macho *m, size_t *n, dk_error *err, dk_status *st);
/** The builder's image index of image-set image SET_INDEX, -1 when it is not an input. */
int bld_image_of_set_index(const builder *b, int set_index);
/** Bytes at new address A (any region), or NULL. */
uint8_t *bld_at(builder *b, uint64_t a, uint64_t size);
/** Record a pointer for slide info. */
dk_status bld_add_ptr(builder *b, const slide_ptr *p);
/** Write a pointer-sized value at new address A. */
void bld_write_ptr(builder *b, uint64_t a, uint64_t value);

/* builder_fixups.c */
dk_status bld_add_use(builder *b, const patch_use *u);
dk_status bld_apply_fixups(builder *b);
dk_status bld_fix_code(builder *b);

/* builder_got.c */
/** Find the GOT binds to unique (before layout: sizes the chunks). */
dk_status bld_got_plan(builder *b);
/** The shared slot replacing IM's own GOT slot OLD_SLOT (input address); false when it has none. */
bool bld_got_slot(const builder *b, const bimage *im, uint64_t old_slot, uint64_t *shared);
/** Write the shared slots, their slide info and patch-table GOT uses (after layout). */
dk_status bld_got_emit(builder *b);
void bld_got_free(builder *b);

/* builder_objc.c */
dk_status bld_objc_plan(builder *b, uint64_t *bytes);
dk_status bld_objc_apply(builder *b);
/** Old target OLD of image IMAGE moved by coalescing: its new address. */
bool bld_objc_override(const builder *b, size_t image, uint64_t old_target, uint64_t *new_target);
void bld_objc_free(builder *b);

/* builder_linkedit.c */
dk_status bld_linkedit(builder *b);

/* builder_slide.c */
dk_status bld_slide_encode(builder *b, region *r);

#endif
