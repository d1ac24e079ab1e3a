/*
 * dyldkit: stubs, lazy binding and symbol resolution across images.
 *
 * A stub is decoded from its instructions to the pointer slot it jumps
 * through; the slot's binding comes from the fixups; a lazy slot's initial
 * value leads to its __stub_helper entry and the lazy-bind offset that entry
 * hands to dyld_stub_binder.  An image set loads dependencies the way dyld
 * finds them (install names, @rpath, @loader_path, @executable_path under a
 * root directory) and resolves a symbol through export tries, re-exports and
 * umbrellas to the image and address that define it.
 */
#ifndef DYLDKIT_STUBS_H
#define DYLDKIT_STUBS_H

#include "dyldkit/macho.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ stubs */

typedef enum dk_stub_kind {
    DK_STUB_UNKNOWN,        /* bytes no known pattern matches */
    DK_STUB_X86_64,         /* jmp *slot(%rip) */
    DK_STUB_I386,           /* jmp *slot */
    DK_STUB_I386_SELFMOD,   /* __jump_table (5-byte self-modifying) */
    DK_STUB_ARM64,          /* adrp x16; ldr x16,[x16,#off]; br x16 */
    DK_STUB_ARM64_32,       /* adrp x16; ldr w16,[x16,#off]; br x16 */
    DK_STUB_ARM64E,         /* adrp x17; add x17,x17,#off; ldr x16,[x17]; braa x16,x17 */
    DK_STUB_ARM64_DIRECT,   /* adrp x16; add x16,x16,#off; br x16 (cache-optimised: no slot) */
    DK_STUB_ARM64_BRANCH,   /* b target (branch island) */
    DK_STUB_ARM_PIC,        /* __picsymbolstub4: ldr ip,[pc]; add ip,pc,ip; ldr pc,[ip]; .long */
    DK_STUB_ARM,            /* __symbol_stub4: ldr ip,[pc]; ldr pc,[ip]; .long slot */
    DK_STUB_OBJC_MSGSEND    /* __objc_stubs: load selector, then jump to objc_msgSend */
} dk_stub_kind;

typedef struct dk_stub {
    uint64_t address;          /* unslid address of the stub */
    uint32_t size;             /* bytes of this stub */
    int section;               /* index into dk_macho_sections() */
    dk_stub_kind kind;
    bool has_slot;
    uint64_t slot;             /* the pointer the stub loads and jumps through */
    int slot_section;          /* section of the slot, -1 if outside every section */
    uint64_t target;           /* DIRECT/BRANCH: where it jumps; OBJC small: the msgSend stub */
    const char *symbol;        /* from the indirect symbol table (NULL: local/absolute/none) */
    uint32_t indirect_index;   /* index into the indirect symbol table, UINT32_MAX if none */
    /* the binding of the slot, when one exists */
    bool bound;
    dk_fixup_kind bind_kind;   /* BIND or LAZY_BIND */
    int ordinal;
    const char *dylib;         /* install name, "self"/"main"/"flat"/"weak" */
    const char *bind_symbol;   /* the symbol the bind names (normally == symbol) */
    int64_t addend;
    bool weak_import;
    /* classic lazy binding */
    bool lazy;                 /* the slot is in an S_LAZY_SYMBOL_POINTERS section */
    bool has_helper;
    uint64_t helper;           /* the __stub_helper entry the slot initially points at */
    bool has_lazy_offset;
    uint32_t lazy_bind_offset; /* what that helper entry pushes */
    bool lazy_mismatch;        /* the lazy-bind record at that offset does not bind this slot */
    /* objc_msgSend stubs */
    uint64_t selref;           /* the __objc_selrefs slot the stub loads */
    const char *selector;      /* the selector string, when readable */
} dk_stub;

typedef int (*dk_stub_cb)(void *ctx, const dk_stub *stub);
/** Every stub of every S_SYMBOL_STUBS section and __objc_stubs, in address order.
 *  CB NULL: only check that they decode (the errors a full walk would give, cheaper). */
dk_status dk_macho_foreach_stub(dk_macho *m, dk_stub_cb cb, void *ctx, dk_error *err);
const char *dk_stub_kind_name(dk_stub_kind kind);

/** A PC-relative reference from arm64 code: what an instruction (pair) addresses. */
typedef enum dk_code_ref_kind {
    DK_CODE_ADRP_LDR,   /* ADRP + LDR Xt (a pointer load: GOT), or ADRP + ADD + LDR [x, #0] */
    DK_CODE_ADRP_ADD,   /* ADRP + ADD: an address */
    DK_CODE_ADRP,       /* an ADRP whose user is not adjacent: TARGET is the 4 KiB page */
    DK_CODE_ADR,        /* ADR */
    DK_CODE_LDR_LITERAL /* LDR (literal): a load from TARGET */
} dk_code_ref_kind;

typedef struct dk_code_ref {
    uint64_t address;  /* of the (first) instruction */
    uint64_t target;
    dk_code_ref_kind kind;
    int section;       /* the code section */
} dk_code_ref;

typedef int (*dk_code_ref_cb)(void *ctx, const dk_code_ref *ref);
/**
 * Every PC-relative data reference of the arm64/arm64_32 code sections
 * (S_ATTR_PURE_INSTRUCTIONS, data-in-code ranges skipped), in address order;
 * nothing for other CPUs.  What a standalone image's code may address is its
 * own segments: anything else is left over from a cache (verify checks it).
 */
dk_status dk_macho_foreach_code_ref(dk_macho *m, dk_code_ref_cb cb, void *ctx, dk_error *err);

/** The stub (if any) whose indirect symbol is SYMBOL; DK_E_NOTFOUND otherwise. */
dk_status dk_macho_find_stub(dk_macho *m, const char *symbol, dk_stub *out, dk_error *err);

/* ------------------------------------------------------------- image sets */

typedef struct dk_imageset dk_imageset;

/** How dependencies are found. */
typedef struct dk_imageset_opts {
    const char *root;             /* absolute install names are looked up under ROOT */
    const char *const *libdirs;   /* extra directories searched by basename (-L) */
    size_t nlibdirs;
    const char *arch;             /* slice to pick from universal dylibs (default: the main image's) */
    bool no_filesystem;           /* dependencies only among images already in the set (cache builder) */
} dk_imageset_opts;

/** One image of the set. */
typedef struct dk_image {
    const char *path;             /* file it was loaded from */
    const char *install_name;     /* LC_ID_DYLIB, or the path for executables/bundles */
    dk_macho *macho;
    int parent;                   /* index of the image that loaded it, -1 for the main image */
} dk_image;

dk_status dk_imageset_new(const dk_imageset_opts *opts, dk_imageset **out, dk_error *err);
void dk_imageset_close(dk_imageset *set);
/** Load the main image (index 0) from PATH. */
dk_status dk_imageset_load_main(dk_imageset *set, const char *path, int *index, dk_error *err);
/** Add an already-open image (not owned) as the main image, e.g. one from a dyld cache. */
dk_status dk_imageset_add_macho(dk_imageset *set, dk_macho *m, const char *path, int *index, dk_error *err);
/** Load (or find already loaded) dependency ordinal ORDINAL (1-based) of image FROM. */
dk_status dk_imageset_load_dependency(dk_imageset *set, int from, int ordinal, int *index, dk_error *err);
/** Load the whole dependency closure of image FROM (missing weak dylibs are skipped). */
dk_status dk_imageset_load_all(dk_imageset *set, int from, dk_error *err);
size_t dk_imageset_count(const dk_imageset *set);
const dk_image *dk_imageset_image(const dk_imageset *set, size_t index);

/** One step of a resolution, for display. */
typedef enum dk_hop_kind {
    DK_HOP_ORDINAL,   /* the bind's ordinal and its install name */
    DK_HOP_IMAGE,     /* the image searched (install name, path) */
    DK_HOP_REEXPORT,  /* followed an LC_REEXPORT_DYLIB or a re-export trie entry */
    DK_HOP_FLAT,      /* flat-namespace / weak search over all images */
    DK_HOP_EXPORT     /* the defining export */
} dk_hop_kind;

typedef struct dk_hop {
    dk_hop_kind kind;
    int ordinal;
    const char *install_name;
    const char *path;
    const char *symbol;           /* name looked up at this hop (re-exports may rename) */
    uint64_t address;             /* EXPORT */
    uint32_t flags;               /* EXPORT: DK_EXPORT_* */
    uint64_t resolver;            /* EXPORT with DK_EXPORT_RESOLVER */
} dk_hop;

typedef int (*dk_hop_cb)(void *ctx, const dk_hop *hop);

/** Where a symbol is defined. */
typedef struct dk_resolved {
    int image;                    /* index in the set */
    const char *symbol;           /* the name in the defining image */
    uint64_t address;             /* unslid address there (absolute: the value) */
    uint32_t flags;               /* DK_EXPORT_* */
    uint64_t resolver;
} dk_resolved;

/**
 * Resolve SYMBOL bound with library ORDINAL from image FROM the way dyld does:
 * two-level lookup in that dylib's export trie, then its re-exported dylibs in
 * order (recursively), following re-export trie entries to their imported
 * names; ordinal 0 = FROM itself, -1 = the main image, -2 flat and -3 weak
 * lookups over every image in load order.  HOP (may be NULL) sees each step.
 * DK_E_NOTFOUND (with a message naming what is missing) when it cannot.
 */
dk_status dk_imageset_resolve(dk_imageset *set, int from, int ordinal, const char *symbol, dk_hop_cb hop, void *ctx,
                              dk_resolved *out, dk_error *err);

/** Search for SYMBOL in image IMAGE and what it re-exports. */
dk_status dk_imageset_find_export(dk_imageset *set, int image, const char *symbol, dk_hop_cb hop, void *ctx,
                                  dk_resolved *out, dk_error *err);

#ifdef __cplusplus
}
#endif

#endif
