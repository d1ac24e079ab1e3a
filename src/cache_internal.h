/* The dk_cache handle, shared by the library's dyld shared cache source files. */
#ifndef DYLDKIT_CACHE_INTERNAL_H
#define DYLDKIT_CACHE_INTERNAL_H

#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>

/* Bounds against hostile tables (real caches stay far below them). */
#define DK_MAX_CACHE_MAPPINGS 4096   /* per file; real files have < 10 */
#define DK_MAX_SUBCACHES 1024        /* iOS 18 has ~60 */
#define DK_MAX_CACHE_PATH 65536      /* bytes scanned for a path's NUL */

/* Per-mapping slide state: the parsed blob and a lazily built bitmap per page of
 * the 4-byte slots that are rebased (for pointer reads). */
typedef struct dk__slide_state {
    bool present;
    dk_slide_region region;
    dk_slide_info info;
    char name[96];
    _Atomic(uint8_t *) *pages;  /* page_starts_count entries; NULL until built */
} dk__slide_state;

/* A segment of some image, for address lookup (sorted by vmaddr). */
typedef struct dk__seg_rec {
    uint64_t vmaddr, vmsize;
    uint32_t image;
    uint32_t segment;
} dk__seg_rec;

/* An image's symbols sorted by address (address lookup). */
typedef struct dk__sym_rec {
    uint64_t address;
    const char *name;
} dk__sym_rec;

/* A section of an image, for address lookup without reopening the image. */
typedef struct dk__sect_rec {
    uint64_t addr, size;
    char sectname[17];
} dk__sect_rec;

typedef struct dk__image_syms {
    dk__sym_rec *recs;
    size_t count;
    char *names;  /* owned copies of export names */
    dk__sect_rec *sects;     /* the image's sections in load-command order */
    size_t nsects;
    char (*segnames)[17];    /* the image's segment names in order */
    size_t nsegnames;
} dk__image_syms;

/* Local-symbol entry, sorted by dylib offset. */
typedef struct dk__local_entry {
    uint64_t dylib_offset;
    uint32_t nlist_start, nlist_count;
} dk__local_entry;

struct dk_cache {
    char *path;
    const char *arch;
    char arch_buf[17];
    unsigned ptr_size;
    uint64_t base;

    dk_cache_file *files;       /* [0] main, then sub-caches */
    size_t nfiles;
    dk_cache_file *symbols;     /* NULL when none */
    char **owned;               /* strings we allocated (paths, suffixes) */
    size_t nowned;

    dk_cache_mapping *maps;
    size_t nmaps;
    uint32_t *map_order;        /* mapping indices by address (non-empty mappings) */
    size_t nmap_order;

    dk_cache_image *images;
    size_t nimages;
    dk_cache_image_text *texts;
    size_t ntexts;

    dk__slide_state *slides;    /* one per mapping */

    pthread_mutex_t lock;       /* guards the lazily built indexes below */
    bool segs_done;
    dk__seg_rec *segs;
    size_t nsegs;
    dk_status segs_status;
    dk__image_syms *image_syms; /* per image, built on first lookup */
    bool locals_done;
    dk_status locals_status;
    dk_cache_local_symbols locals;
    dk__local_entry *local_entries;
    size_t nlocal_entries;
};

/** Header field access for the current generation (cache.c). */
static inline const dk_cache_header *dk__main_header(const dk_cache *c) { return &c->files[0].header; }

/** Build the slide state of every mapping (slide.c); called by dk_cache_open. */
dk_status dk__cache_slide_init(dk_cache *c, dk_error *err);
void dk__cache_slide_free(dk_cache *c);
/** decode_ptr hook of cache images (slide.c). */
bool dk__cache_decode_ptr(void *ctx, uint64_t vmaddr, uint64_t raw, uint64_t *value);
/* The bitmap of rebased 4-byte slots of page PAGE of mapping MI (bit i, LSB
 * first: the slot at page start + 4*i), built on first use; NULL when the
 * mapping has no slide info, PAGE is past its page starts, or out of memory.
 * *PAGE_SIZE gets the slide info's page size (untouched when NULL). */
const uint8_t *dk__cache_page_bits(dk_cache *c, long mi, uint64_t page, uint32_t *page_size);

/** Parse the image and image-text tables (cache_images.c); called by dk_cache_open. */
dk_status dk__cache_images_init(dk_cache *c, dk_error *err);

/** Lazily build the segment index over every image (cache_images.c). */
dk_status dk__cache_segments(dk_cache *c, dk_error *err);
/** Image index whose segment holds ADDR, -1 if none; SEG receives the dk__seg_rec. */
long dk__cache_image_at(const dk_cache *c, uint64_t addr, const dk__seg_rec **seg);

/** Lazily parse the local-symbols area (cache_symbols.c). */
dk_status dk__cache_locals(dk_cache *c, dk_error *err);
void dk__cache_symbols_free(dk_cache *c);

/** A NUL-terminated string at file offset OFF of FILE, or NULL. */
const char *dk__cache_cstr(const dk_cache_file *f, uint64_t off);

#endif
