/* The dk_macho handle, shared by the library's Mach-O source files. */
#ifndef DYLDKIT_MACHO_INTERNAL_H
#define DYLDKIT_MACHO_INTERNAL_H

#include "internal.h"
#include "macho_defs.h"

/* A file range of LINKEDIT data named by a load command. */
typedef struct dk_blob {
    bool present;
    uint32_t cmd_index;
    uint32_t off;
    uint32_t size;
} dk_blob;

/*
 * Where an image's bytes come from.  Standalone images are one contiguous
 * buffer; images inside a dyld cache have their segments spread over the
 * cache's mappings (and files), which MAP translates.
 */
typedef const uint8_t *(*dk_vm_map_fn)(void *ctx, uint64_t vmaddr, uint64_t *avail);

typedef struct dk_macho_source {
    const uint8_t *data;   /* mach_header */
    size_t size;           /* bytes readable from data (whole slice, or the rest of a cache mapping) */
    dk_vm_map_fn map;      /* NULL for standalone images */
    void *map_ctx;
    /* Decode a raw pointer stored at VMADDR (cache slide info); may be NULL. */
    bool (*decode_ptr)(void *ctx, uint64_t vmaddr, uint64_t raw, uint64_t *value);
} dk_macho_source;

struct dk_macho {
    char *name;
    const uint8_t *data;
    size_t size;
    dk_header hdr;
    const char *arch;
    bool be;
    bool in_cache;
    dk_macho_source src;

    dk_loadcmd *cmds;
    size_t ncmds;
    dk_segment *segs;
    const uint8_t **seg_data; /* file-backed content of each segment, NULL when none */
    uint64_t *seg_avail;      /* bytes of content available at seg_data[i] */
    size_t nsegs;
    dk_section *sects;
    size_t nsects;
    dk_dylib *dylibs;
    size_t ndylibs;
    const char *install_name;
    dk_macho_info info;
    const char **rpaths;
    uint64_t base;

    struct {
        bool present;
        uint32_t cmd_index, symoff, nsyms, stroff, strsize;
    } symtab;
    struct {
        bool present;
        uint32_t cmd_index;
        uint32_t ilocalsym, nlocalsym, iextdefsym, nextdefsym, iundefsym, nundefsym;
        uint32_t tocoff, ntoc, modtaboff, nmodtab, extrefsymoff, nextrefsyms;
        uint32_t indirectsymoff, nindirectsyms, extreloff, nextrel, locreloff, nlocrel;
    } dysymtab;
    struct {
        bool present;
        uint32_t cmd_index, cmd;
        dk_blob rebase, bind, weak_bind, lazy_bind, export_;
    } dyld_info;
    dk_blob exports_trie, chained, function_starts, data_in_code, code_signature, split_info;

    dk_vec owned;             /* char* copies the handle owns (unterminated names) */

    /* lazily built caches (the handle is not thread-safe while they fill) */
    dk_symbol *syms;
    size_t nsyms;
    bool syms_done;
    uint32_t *indirect;
    size_t nindirect;
    bool indirect_done;
    dk_chained_import *imports;
    size_t nimports;
    bool imports_done;
    dk_fixup *fixidx;
    size_t nfixidx;
    bool fixidx_done;
    size_t fixidx_bytes; /* dk_big_alloc size */
    dk_error *fixidx_err; /* why the index could not be built (kept: callers that go on
                             past a failure must not walk the streams again each time) */
    bool dyldinfo_checked; /* a whole walk of the opcode streams passed every location
                              check: later walks skip them (the mapped bytes do not change) */
};

/** Open an image from a source (standalone or in-cache). */
dk_status dk__macho_open_src(const dk_macho_source *src, const char *name, dk_macho **out, dk_error *err);

/** LINKEDIT bytes [off, off+size) named by a load command, or NULL when not present. */
const uint8_t *dk__linkedit(const dk_macho *m, uint64_t off, uint64_t size);

/** Segment index holding file offset range [off, off+size) (for cache images), or -1. */
int dk__segment_for_fileoff(const dk_macho *m, uint64_t off, uint64_t size);

/** Find the segment (index) that a SET_SEGMENT opcode/starts table names, bounds checked. */
static inline bool dk__seg_ok(const dk_macho *m, uint64_t seg) { return seg < m->nsegs; }

/** Section index for an address, -1 if none. */
int dk__section_index_at(const dk_macho *m, uint64_t vmaddr);
/* dk_macho_segment_at / dk__section_index_at for walks that ask about
 * neighbouring addresses: the last answer is kept with the address range
 * [lo, hi) it holds for (its entry's range, when no earlier entry overlaps
 * it: the tables are searched first match first).  Zero-initialise. */
typedef struct dk_at_memo {
    uint64_t lo, hi;
    int index;
} dk_at_memo;
int dk__segment_at_miss(const dk_macho *m, uint64_t vmaddr, dk_at_memo *memo);
int dk__section_at_miss(const dk_macho *m, uint64_t vmaddr, dk_at_memo *memo);
/* (inline: the hit is a range check, called per fixup) */
static inline int dk__segment_at_memo(const dk_macho *m, uint64_t a, dk_at_memo *memo)
{
    return a - memo->lo < memo->hi - memo->lo ? memo->index : dk__segment_at_miss(m, a, memo);
}
static inline int dk__section_at_memo(const dk_macho *m, uint64_t a, dk_at_memo *memo)
{
    return a - memo->lo < memo->hi - memo->lo ? memo->index : dk__section_at_miss(m, a, memo);
}
/* dk__read_word through a segment memo. */
static inline __attribute__((always_inline)) bool dk__read_word_memo(const dk_macho *m, uint64_t a, unsigned width, uint64_t *out, dk_at_memo *memo)
{
    int i = dk__segment_at_memo(m, a, memo); /* the segment dk_macho_read would pick */
    if (i < 0) return false;
    uint64_t off = a - m->segs[i].vmaddr;
    if (!m->seg_data[i] || !dk_range_ok(off, width, m->seg_avail[i])) return false;
    const uint8_t *p = m->seg_data[i] + off;
    *out = width == 8 ? dk_rd64(m->be, p) : width == 4 ? dk_rd32(m->be, p) : dk_rd16(m->be, p);
    return true;
}

/** VMADDR lies in a LC_DATA_IN_CODE range (entries sorted by offset, as the
 *  linkers write them: a binary search, so unsorted hostile input stays bounded). */
bool dk__in_data_in_code(const dk_macho *m, uint64_t vmaddr);

/** Read a pointer-width value at VMADDR in the image's byte order; false if absent. */
bool dk__read_word(const dk_macho *m, uint64_t vmaddr, unsigned width, uint64_t *out);

/** Pointer width of the image (4 or 8). */
static inline unsigned dk__ptr_size(const dk_macho *m) { return m->hdr.is64 ? 8u : 4u; }

/** Every fixup record at ADDRESS (rebase, bind, lazy bind...), from the sorted index. */
dk_status dk__fixups_at(dk_macho *m, uint64_t address, const dk_fixup **first, size_t *count, dk_error *err);

/** Decode the symbol stub of SIZE bytes P at ADDR for CPU (stubs.c): kind, slot or direct target. */
struct dk_stub;
void dk__stub_decode(uint32_t cpu, const uint8_t *p, uint64_t addr, uint32_t size, struct dk_stub *s);

/** Walk the classic opcode streams (dyldinfo.c). */
dk_status dk__dyldinfo_fixups(dk_macho *m, dk_fixup_cb cb, void *ctx, dk_error *err);
/** Walk chained fixups (chained.c). */
dk_status dk__chained_fixups(dk_macho *m, dk_fixup_cb cb, void *ctx, dk_error *err);

#endif
