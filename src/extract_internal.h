/* The extractor's state, shared by src/extract*.c. */
#ifndef DYLDKIT_EXTRACT_INTERNAL_H
#define DYLDKIT_EXTRACT_INTERNAL_H

#include "macho_internal.h"
#include "strpool.h"
#include "writer.h"

#include "dyldkit/extract.h"
#include "dyldkit/stubs.h"

#include <pthread.h>

#define XMAX_SEGS 64

/* An export of a cache image, for naming pointers into it. */
typedef struct xexport {
    uint64_t address;
    uint32_t name;      /* offset in the image's name pool */
    uint32_t flags;     /* DK_EXPORT_* */
} xexport;

typedef struct ximage_exports {
    bool done;
    dk_status status;
    xexport *v;         /* sorted by address */
    size_t n;
    dk_strpool names;
} ximage_exports;

/* A use recorded in the patch table: the client's pointer and what it names. */
typedef struct xuse {
    uint64_t location;
    uint32_t client;    /* UINT32_MAX: a uniqued GOT slot (patch table v3+) */
    uint32_t image;     /* exporting image */
    const char *name;   /* in the cache's memory */
    uint64_t addend;
    bool weak_import;
} xuse;

struct dk_extractor {
    dk_cache *c;
    pthread_mutex_t lock;
    size_t nimages;
    ximage_exports *exports;
    bool uses_done;
    dk_status uses_status;
    xuse *uses;          /* sorted by location */
    size_t nuses;
    bool objc_done;
    bool has_objc;
    dk_cache_objc_opt objc;
    uint64_t selbuf_lo, selbuf_hi;  /* the shared selector strings, when known */
};

typedef struct xseg {
    char name[17];
    int src;             /* segment index in the cache image, -1 for a segment we add */
    uint64_t vmaddr, vmsize;
    uint32_t maxprot, initprot, flags;
    uint8_t *data;       /* vmsize bytes (owned) */
    uint64_t fileoff, filesize;
} xseg;

enum { XF_REBASE, XF_BIND, XF_LAZY };

typedef struct xfix {
    uint64_t addr;
    int kind;            /* XF_* */
    uint64_t target;     /* rebase: unslid target (high8 separate) */
    uint8_t high8;
    int ordinal;
    const char *symbol;
    int64_t addend;
    bool weak_import;
    bool auth;
    uint8_t key;
    uint16_t diversity;
    bool addr_div;
    uint64_t helper;     /* XF_LAZY: the __stub_helper entry whose pushed offset names this record */
    bool string;         /* XF_REBASE to a copied string: TARGET is set once the strings are placed */
    uint32_t str_off;    /* its offset in xstate.strings */
} xfix;

typedef struct xstate {
    dk_extractor *x;
    dk_cache *c;
    size_t index;
    const dk_extract_opts *o;
    dk_error *err;
    dk_extract_stats *st;
    dk_macho *m;
    const char *install_name;
    uint64_t base;
    bool arm64, arm64e, x86_64, is64;
    unsigned ptr;
    uint64_t page;
    xseg segs[XMAX_SEGS];
    size_t nsegs;
    int linkedit;        /* index in segs */
    dk_vec fixes;        /* xfix */
    /* ObjC strings and selector references added to the image */
    dk_strpool strings;
    dk_vec new_selrefs;  /* uint32 string offsets */
    int extra_seg;       /* index in segs of __OBJC_EXTRA, -1 */
    /* dependency reachability: for each cache image, the ordinal (1-based) of the
     * dependency that reaches it through re-exports, 0 when none */
    int *reach;
    dk_at_memo sect_memo; /* section lookups of pointer targets */
} xstate;

/* extract.c */
uint8_t *x_at(xstate *s, uint64_t addr, uint64_t size);
int x_seg_of(const xstate *s, uint64_t addr);
bool x_in_image(const xstate *s, uint64_t addr);
dk_status x_add_fix(xstate *s, const xfix *f);
/** Sort the fixups by address (rebases before binds at one address). */
void x_sort_fixes(xstate *s);
/** The fixups at ADDR (sorted fixups only): first and count, NULL when none. */
xfix *x_fixes_at(xstate *s, uint64_t addr, size_t *count);
/** The bind or lazy bind at ADDR (sorted fixups only), NULL when none. */
xfix *x_bind_at(xstate *s, uint64_t addr);

/* extract_ptrs.c */
dk_status x_classify_pointers(xstate *s);
dk_status x_extractor_exports(dk_extractor *x, size_t image, const ximage_exports **out, dk_error *err);
/** Name (and addend) of the export of IMAGE at or below ADDR; false if none fits. */
bool x_name_address(xstate *s, size_t image, uint64_t addr, const char **name, int64_t *addend);
/** A dependency's export just above ADDR (negative addend), for pointers laid out past another image. */
bool x_name_below(xstate *s, uint64_t addr, size_t *image, const char **name, int64_t *addend);
/** The patch table's use at LOCATION (an image's pointer or a uniqued GOT slot), NULL when none. */
const xuse *x_find_use(xstate *s, uint64_t location);
/** Ordinal under which this image reaches cache image J (-2 when only a flat lookup would). */
int x_ordinal_for(xstate *s, size_t j);

/* extract_objc.c */
dk_status x_objc_finish(xstate *s);

/* extract_code.c */
dk_status x_restore_stubs(xstate *s);

/* extract_linkedit.c */
dk_status x_write_image(xstate *s, uint8_t **data, size_t *size);

#endif
