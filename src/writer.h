/*
 * Encoders for the Mach-O structures dyldkit writes (the cache builder and the
 * extractor): a growable byte buffer, the export trie, classic rebase/bind
 * opcode streams and chained fixups.  Every encoder is the inverse of a
 * decoder in src/ (trie.c, dyldinfo.c, chained.c), and is tested by decoding
 * what it wrote.  Internal API.
 */
#ifndef DYLDKIT_WRITER_H
#define DYLDKIT_WRITER_H

#include "internal.h"

/* ------------------------------------------------------------- byte buffer */

typedef struct dk_buf {
    uint8_t *data;
    size_t len, cap;
    bool oom; /* an allocation failed; further writes are dropped */
} dk_buf;

void dk_buf_bytes(dk_buf *b, const void *p, size_t n);
void dk_buf_zeros(dk_buf *b, size_t n);
void dk_buf_u8(dk_buf *b, uint8_t v);
void dk_buf_u16(dk_buf *b, uint16_t v); /* little-endian */
void dk_buf_u32(dk_buf *b, uint32_t v);
void dk_buf_u64(dk_buf *b, uint64_t v);
void dk_buf_uleb(dk_buf *b, uint64_t v);
void dk_buf_sleb(dk_buf *b, int64_t v);
void dk_buf_cstr(dk_buf *b, const char *s); /* with its NUL */
/** Pad with zeros to a multiple of ALIGN (a power of two). */
void dk_buf_align(dk_buf *b, size_t align);
/** Reserve N zero bytes and return their offset (check `oom` before writing into them). */
size_t dk_buf_reserve(dk_buf *b, size_t n);
void dk_buf_free(dk_buf *b);
static inline size_t dk_uleb_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* ------------------------------------------------------------- export trie */

typedef struct dk_trie_entry {
    const char *name;
    uint64_t flags;        /* EXPORT_SYMBOL_FLAGS_* as stored */
    uint64_t address;      /* offset from the image base (absolute: the value) */
    uint64_t other;        /* stub-and-resolver: resolver offset; function variant: table index */
    uint64_t ordinal;      /* re-export: library ordinal */
    const char *import_name; /* re-export: name in that library ("" or NULL when the same) */
} dk_trie_entry;

/**
 * Build an export trie for ENTRIES (any order; names unique) the way ld64
 * does: a prefix tree with nodes laid out breadth-first and offsets iterated
 * until their ULEB sizes settle.  The result decodes with dk_trie_foreach.
 * Appended to OUT (offsets relative to its start, no padding after it); the
 * same entries in any order give the same bytes; no entries give ld64's bare
 * root (00 00).  Duplicate names, undefined flag bits and paths deeper than a
 * reader accepts (DK_MAX_TRIE_DEPTH) are errors.  On error OUT is unchanged.
 */
dk_status dk_trie_build(const dk_trie_entry *entries, size_t n, dk_buf *out, dk_error *err);

/* --------------------------------------------------- classic opcode streams */

typedef struct dk_rebase_loc {
    uint32_t seg;      /* segment index */
    uint64_t segoff;   /* offset of the pointer in that segment */
    uint8_t type;      /* REBASE_TYPE_POINTER (1), TEXT_ABSOLUTE32 (2); 0 reads as POINTER */
} dk_rebase_loc;

/*
 * The opcode encoders append to OUT the compact stream ld64 writes (folded
 * runs, immediate forms; see src/opcodes_writer.c), with no padding after it,
 * and write nothing for an empty set.  Segments are indices 0-15 (the opcode's
 * immediate).  On error OUT is unchanged.
 */

/** Rebase opcodes for LOCS (sorted here by type, segment and offset, as ld64 does), ending with DONE. */
dk_status dk_rebase_encode(dk_rebase_loc *locs, size_t n, unsigned ptrsize, dk_buf *out, dk_error *err);

typedef struct dk_bind_rec {
    uint32_t seg;
    uint64_t segoff;
    int ordinal;         /* library ordinal incl. specials 0, -1, -2, -3 (dyld takes -3 here; llvm-objdump-22 does not) */
    const char *symbol;
    uint8_t flags;       /* BIND_SYMBOL_FLAGS_WEAK_IMPORT / _NON_WEAK_DEFINITION */
    int64_t addend;
    uint8_t type;        /* BIND_TYPE_POINTER (1); 0 reads as POINTER */
} dk_bind_rec;

/** Bind opcodes (BINDS sorted here by library, symbol, flags, type, then location, ld64's order) ending with DONE. */
dk_status dk_bind_encode(dk_bind_rec *binds, size_t n, unsigned ptrsize, dk_buf *out, dk_error *err);
/**
 * Weak-bind opcodes (sorted by symbol, then location): no ordinals; a
 * NON_WEAK_DEFINITION record has no location (seg == UINT32_MAX; the flag is
 * added), and only those records may carry that flag.
 */
dk_status dk_weak_bind_encode(dk_bind_rec *binds, size_t n, unsigned ptrsize, dk_buf *out, dk_error *err);
/**
 * Lazy-bind opcodes, one self-contained record per bind (in the given order),
 * each ending with DONE; OFFSETS[i] (if OFFSETS is not NULL) receives the
 * offset of record i from the start of this stream, which is what the matching
 * __stub_helper entry pushes.
 */
dk_status dk_lazy_bind_encode(const dk_bind_rec *binds, size_t n, unsigned ptrsize, dk_buf *out, uint32_t *offsets,
                              dk_error *err);

/* ----------------------------------------------------------- chained fixups */

typedef struct dk_chain_fixup {
    uint64_t address;      /* unslid VM address of the pointer */
    bool bind;
    uint64_t target;       /* rebase: unslid target address (high8 separate) */
    uint8_t high8;
    uint32_t import;       /* bind: index into the imports */
    int64_t addend;        /* bind: added to the import's; inline when it fits and the import has none, else in an extra import */
    bool auth;
    uint8_t key;
    uint16_t diversity;
    bool addr_div;
} dk_chain_fixup;

typedef struct dk_chain_import {
    int ordinal;
    const char *name;
    bool weak_import;
    int64_t addend;        /* import-table addend (imports_format ADDEND / ADDEND64) */
} dk_chain_import;

/* One segment of the image being written: chain values are stored into CONTENT. */
typedef struct dk_chain_segment {
    uint64_t vmaddr;
    uint64_t vmsize;
    uint8_t *content;      /* the segment's bytes as they will be written (vmsize or filesize long) */
    uint64_t content_size;
} dk_chain_segment;

/**
 * Encode LC_DYLD_CHAINED_FIXUPS data for FIXUPS (any order) in POINTER_FORMAT
 * (DYLD_CHAINED_PTR_64, _64_OFFSET or ARM64E / ARM64E_USERLAND / _USERLAND24): writes each
 * chain entry into its segment's content, builds the header, starts (page size
 * PAGE_SIZE, one start per page; fixups too far apart for the next field are an
 * error) and the imports table (format chosen from the addends), and appends
 * the blob to OUT.  IMAGE_BASE is the preferred load address (for *_OFFSET and
 * userland formats).
 * SEGS lists every segment of the image in load-command order, __LINKEDIT
 * included (seg_count must match; segments without fixups may have no content).
 * FIXUPS is sorted here by address.  Binds whose addend cannot stay in the
 * pointer bind through extra imports appended after IMPORTS (indices
 * NIMPORTS..), so IMPORTS' own indices keep their meaning.  The blob's internal
 * alignment is relative to its start and it is padded to 8 bytes; place it
 * 8-aligned.  Targets, ordinals or strides a format cannot hold are errors,
 * never truncated.  On error OUT is unchanged (segment content may be partly
 * written).
 */
dk_status dk_chained_encode(uint16_t pointer_format, uint32_t page_size, uint64_t image_base, dk_chain_segment *segs,
                            size_t nsegs, dk_chain_fixup *fixups, size_t nfixups, const dk_chain_import *imports,
                            size_t nimports, dk_buf *out, dk_error *err);

#endif
