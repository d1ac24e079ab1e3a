/*
 * Shared by objc.c (objc2 metadata) and objc_old.c (objc1, the __OBJC
 * segment): the dk_objc handle, its arena, and bounded readers that turn an
 * address into bytes, a pointer (as dyld sees it) or a C string, failing with
 * a message that names the structure, its address and its file offset.
 */
#ifndef DYLDKIT_OBJC_INTERNAL_H
#define DYLDKIT_OBJC_INTERNAL_H

#include "dyldkit/objc.h"
#include "macho_internal.h"

/* Fixed-size blocks; arrays are allocated once their count is known, so views never move. */
typedef struct objc_block {
    struct objc_block *next;
    size_t used, cap;
    _Alignas(16) uint8_t data[];
} objc_block;

struct dk_objc {
    dk_objc_abi abi;
    dk_objc_image_info image_info;
    objc_block *blocks;
    dk_objc_class *classes;
    size_t nclasses;
    dk_objc_protocol *protocols;
    size_t nprotocols;
    dk_objc_category *categories;
    size_t ncategories;
    dk_objc_selref *selrefs;
    size_t nselrefs;
    dk_objc_xref *classrefs, *superrefs, *protorefs;
    size_t nclassrefs, nsuperrefs, nprotorefs;
    /* (address, index) of every class, sorted by address */
    struct objc_addr_index { uint64_t address; size_t index; } *by_addr;
    size_t nby_addr;
};

/* What a pointer-sized location holds once dyld ran. */
typedef struct objc_ptr {
    enum { OBJC_PTR_NULL, OBJC_PTR_LOCAL, OBJC_PTR_BOUND } kind;
    uint64_t addr;          /* LOCAL: unslid target (top byte and auth bits dropped) */
    const char *symbol;     /* BOUND */
} objc_ptr;

/* Decoding state. */
typedef struct objc_parse {
    dk_macho *m;
    dk_objc *o;
    dk_error *err;
    unsigned ps;            /* pointer size: 4 or 8 */
    bool be;
    uint64_t budget;        /* list entries left to decode (hostile lists may overlap) */
    dk_objc_options opts;
    /* MH_OBJECT: pointer relocations by address (built on first use) */
    struct objc_reloc { uint64_t address; uint32_t symbolnum; bool external; } *relocs;
    size_t nrelocs;
    bool relocs_done;
} objc_parse;

/* Entries decoded across all lists, at least; more for large images (see objc_budget). */
#define DK_OBJC_MIN_BUDGET (1u << 22)
/* Longest C string accepted as a name (class names of real images are < 4 KiB). */
#define DK_OBJC_MAX_STRING (1u << 20)

void *objc_alloc(objc_parse *p, size_t n, size_t size);
/** Charge N entries against the budget; fails with DK_E_LIMIT when exhausted. */
dk_status objc_charge(objc_parse *p, uint64_t n, const char *what, uint64_t addr);
/** "0x4190 (file offset 0x4190)" for messages. */
const char *objc_where(const objc_parse *p, uint64_t addr, char buf[64]);
/** Fail with DK_E_MALFORMED: "WHAT at ADDR (file offset OFF): DETAIL". */
dk_status objc_bad(objc_parse *p, const char *what, uint64_t addr, const char *fmt, ...) DK_PRINTF(4, 5);

/** SIZE bytes at ADDR (the image's segments, or for cache images the whole cache), or NULL. */
const uint8_t *objc_bytes(const objc_parse *p, uint64_t addr, uint64_t size);
/** Bytes of STRUCT_NAME (SIZE of them) at ADDR, or a malformed error. */
dk_status objc_struct(objc_parse *p, const char *what, uint64_t addr, uint64_t size, const uint8_t **out);
/** The pointer at ADDR as dyld sees it. */
dk_status objc_pointer(objc_parse *p, const char *what, uint64_t addr, objc_ptr *out);
/** The NUL-terminated string at ADDR (which must be inside the file). */
dk_status objc_string(objc_parse *p, const char *what, uint64_t addr, const char **out);
/** A pointer to a string: NULL pointer gives NULL, a bound pointer is an error. */
dk_status objc_string_ptr(objc_parse *p, const char *what, uint64_t addr, const char **out);

static inline uint32_t objc_u32(const objc_parse *p, const uint8_t *b) { return dk_rd32(p->be, b); }
static inline uint16_t objc_u16(const objc_parse *p, const uint8_t *b) { return dk_rd16(p->be, b); }

/** Decode the objc1 metadata of the __OBJC segment (objc_old.c). */
dk_status dk__objc1_parse(objc_parse *p);
/** True when the image has an __OBJC segment with objc1 sections. */
bool dk__objc1_present(const dk_macho *m);

#endif
