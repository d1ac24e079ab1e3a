/*
 * Internal helpers shared by the library's source files: explicit-endian
 * readers, a bounded cursor, LEB128 readers with limits, error reporting and
 * a growable array.  Nothing here is part of the public API.
 */
#ifndef DYLDKIT_INTERNAL_H
#define DYLDKIT_INTERNAL_H

#include "dyldkit/dyldkit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define DK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define DK_PRINTF(a, b)
#define DK_UNLIKELY(x) (x)
#endif

/* Zero N bytes at P, N a compile-time size of 16 to 128, with 16-byte
 * stores.  GCC turns a memset of ~100 bytes into `rep stos`, whose start-up
 * costs more than the fixup decode it precedes (per pointer, on hot paths). */
typedef char dk__block16 __attribute__((vector_size(16), aligned(1), may_alias));
static inline void dk__zero_small(void *p, size_t n)
{
    char *c = p;
    dk__block16 z = {0};
    *(dk__block16 *)c = z;
    if (n > 32) *(dk__block16 *)(c + 16) = z;
    if (n > 48) *(dk__block16 *)(c + 32) = z;
    if (n > 64) *(dk__block16 *)(c + 48) = z;
    if (n > 80) *(dk__block16 *)(c + 64) = z;
    if (n > 96) *(dk__block16 *)(c + 80) = z;
    if (n > 112) *(dk__block16 *)(c + 96) = z;
    *(dk__block16 *)(c + n - 16) = z;
}
_Static_assert(sizeof(dk_fixup) >= 16 && sizeof(dk_fixup) <= 128, "dk__zero_small clears a dk_fixup");

/* ------------------------------------------------------------ byte readers */

static inline uint16_t dk_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t dk_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t dk_le64(const uint8_t *p) { return dk_le32(p) | ((uint64_t)dk_le32(p + 4) << 32); }
static inline uint16_t dk_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t dk_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline uint64_t dk_be64(const uint8_t *p) { return ((uint64_t)dk_be32(p) << 32) | dk_be32(p + 4); }
static inline uint32_t dk_rd32(bool be, const uint8_t *p) { return be ? dk_be32(p) : dk_le32(p); }
static inline uint64_t dk_rd64(bool be, const uint8_t *p) { return be ? dk_be64(p) : dk_le64(p); }
static inline uint16_t dk_rd16(bool be, const uint8_t *p) { return be ? dk_be16(p) : dk_le16(p); }
static inline void dk_wr32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void dk_wr64le(uint8_t *p, uint64_t v) { dk_wr32le(p, (uint32_t)v); dk_wr32le(p + 4, (uint32_t)(v >> 32)); }
static inline void dk_wr16le(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/** True when [off, off+len) lies inside [0, size) — overflow-safe. */
static inline bool dk_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

/** Copy a fixed-width, possibly unterminated name (segname[16]) into a C string. */
static inline void dk_copy_name16(char out[17], const uint8_t *p)
{
    memcpy(out, p, 16);
    out[16] = 0;
}

/* ------------------------------------------------------------------ errors */

/** Record a failure in ERR (if any) and return STATUS. */
dk_status dk_fail(dk_error *err, dk_status status, const char *fmt, ...) DK_PRINTF(3, 4);
/** Prefix an existing message with CONTEXT ("libfoo.dylib: "). */
void dk_error_prefix(dk_error *err, const char *fmt, ...) DK_PRINTF(2, 3);

/* --------------------------------------------------------------- LEB128 */

/**
 * Read a ULEB128 at *P (< END).  Fails (returns false) when the encoding runs
 * past END or does not fit in 64 bits.
 */
/* ULEB128 at *P (before END) into *OUT, advancing *P; false when malformed
 * (truncated, bits beyond 64 that are not zero, or more than 11 bytes).  The
 * usual 1 to 9 bytes (nothing to overflow) are read here; longer ones are
 * decoded again from the start by dk__uleb_long, with those checks. */
bool dk__uleb_long(const uint8_t **p, const uint8_t *end, uint64_t *out);
static inline bool dk_uleb(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    const uint8_t *q = *p;
    uint64_t v = 0;
    for (unsigned shift = 0; shift <= 56 && q < end; shift += 7) {
        uint8_t b = *q++;
        v |= (uint64_t)(b & 0x7f) << shift; /* 7 bits at 56 still fit */
        if (!(b & 0x80)) {
            *p = q;
            *out = v;
            return true;
        }
    }
    return dk__uleb_long(p, end, out);
}

static inline bool dk_sleb(const uint8_t **p, const uint8_t *end, int64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    const uint8_t *q = *p;
    uint8_t b;
    do {
        if (q >= end) return false;
        b = *q++;
        uint8_t slice = b & 0x7f;
        /* the 10th byte holds bit 63, the sign: the rest of it must repeat the sign (as in LLVM) */
        if (shift == 63 && slice != 0 && slice != 0x7f) return false;
        if (shift < 64) v |= (uint64_t)slice << shift;
        shift += 7;
        if (shift > 70) return false;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
    *p = q;
    *out = (int64_t)v;
    return true;
}

/* ----------------------------------------------------------- growable array */

typedef struct dk_vec {
    void *data;
    size_t len;
    size_t cap;
} dk_vec;

/** Make room for one more element of ELEM bytes; returns a pointer to it or NULL. */
void *dk_vec_push(dk_vec *v, size_t elem);
/** Ensure capacity for N elements total. */
bool dk_vec_reserve(dk_vec *v, size_t elem, size_t n);
void dk_vec_free(dk_vec *v);

/* A block of BYTES for an index filled straight after: 1 MiB and more is
 * mapped with its pages populated in one call (a page fault per page costs
 * more than filling it), smaller blocks come from malloc.  Free with
 * dk_big_free and the same size. */
void *dk_big_alloc(size_t bytes);
void dk_big_free(void *p, size_t bytes);
/** Grow a dk_big_alloc block from OLD to NEW bytes, contents kept (mapped
 *  blocks are moved by the kernel, not copied); NULL when out of memory (P is
 *  then still valid). */
void *dk_big_grow(void *p, size_t old_bytes, size_t new_bytes);

/** Checked multiplication for allocation sizes. */
static inline bool dk_mul_ok(size_t a, size_t b, size_t *out)
{
    if (b && a > SIZE_MAX / b) return false;
    *out = a * b;
    return true;
}

/* ------------------------------------------------------- resource bounds */

/* Bounds that keep hostile input from costing unbounded time or memory. */
#define DK_MAX_FAT_ARCHS 256        /* real fat files have < 20 slices */
#define DK_MAX_ARCHIVE_MEMBERS 65536
#define DK_MAX_TRIE_DEPTH 512       /* edges on one path */
#define DK_MAX_SYMBOL_NAME 65536    /* bytes in one export-trie name */

#endif
