/*
 * Chained fixups (LC_DYLD_CHAINED_FIXUPS), following <mach-o/fixup-chains.h>:
 *
 *   dyld_chained_fixups_header { fixups_version, starts_offset, imports_offset,
 *       symbols_offset, imports_count, imports_format, symbols_format }   (7 x u32)
 *   dyld_chained_starts_in_image { seg_count; seg_info_offset[seg_count] }
 *   dyld_chained_starts_in_segment { u32 size; u16 page_size; u16 pointer_format;
 *       u64 segment_offset; u32 max_valid_pointer; u16 page_count; u16 page_start[] }
 *
 * Validation mirrors dyld's ChainedFixups::validLinkedit; walks are bounded by
 * the page (each step moves forward, and must stay inside its page).
 */
#include "macho_internal.h"

#include <stdio.h>

const char *dk_pointer_format_name(uint16_t f)
{
    static const char *const names[] = {NULL,
                                        "DYLD_CHAINED_PTR_ARM64E",
                                        "DYLD_CHAINED_PTR_64",
                                        "DYLD_CHAINED_PTR_32",
                                        "DYLD_CHAINED_PTR_32_CACHE",
                                        "DYLD_CHAINED_PTR_32_FIRMWARE",
                                        "DYLD_CHAINED_PTR_64_OFFSET",
                                        "DYLD_CHAINED_PTR_ARM64E_KERNEL",
                                        "DYLD_CHAINED_PTR_64_KERNEL_CACHE",
                                        "DYLD_CHAINED_PTR_ARM64E_USERLAND",
                                        "DYLD_CHAINED_PTR_ARM64E_FIRMWARE",
                                        "DYLD_CHAINED_PTR_X86_64_KERNEL_CACHE",
                                        "DYLD_CHAINED_PTR_ARM64E_USERLAND24",
                                        "DYLD_CHAINED_PTR_ARM64E_SHARED_CACHE",
                                        "DYLD_CHAINED_PTR_ARM64E_SEGMENTED"};
    if (f < sizeof names / sizeof names[0] && names[f]) return names[f];
    return "unknown";
}

unsigned dk_pointer_format_stride(uint16_t f)
{
    switch (f) {
    case DK_CHAINED_PTR_ARM64E: case DK_CHAINED_PTR_ARM64E_USERLAND: case DK_CHAINED_PTR_ARM64E_USERLAND24:
    case DK_CHAINED_PTR_ARM64E_SHARED_CACHE:
        return 8;
    case DK_CHAINED_PTR_64: case DK_CHAINED_PTR_32: case DK_CHAINED_PTR_32_CACHE: case DK_CHAINED_PTR_32_FIRMWARE:
    case DK_CHAINED_PTR_64_OFFSET: case DK_CHAINED_PTR_ARM64E_KERNEL: case DK_CHAINED_PTR_64_KERNEL_CACHE:
    case DK_CHAINED_PTR_ARM64E_FIRMWARE: case DK_CHAINED_PTR_ARM64E_SEGMENTED:
        return 4;
    case DK_CHAINED_PTR_X86_64_KERNEL_CACHE: return 1;
    }
    return 0;
}

static bool format_is64(uint16_t f)
{
    return !(f == DK_CHAINED_PTR_32 || f == DK_CHAINED_PTR_32_CACHE || f == DK_CHAINED_PTR_32_FIRMWARE);
}

static int64_t sext(uint64_t v, unsigned bits)
{
    uint64_t m = 1ull << (bits - 1);
    v &= (1ull << bits) - 1;
    return (int64_t)((v ^ m) - m);
}

#define BITS(v, lo, n) (((v) >> (lo)) & ((1ull << (n)) - 1))

/*
 * Decode one chain entry.  Returns DK_OK for a rebase or bind, DK_E_NOTFOUND for
 * a DYLD_CHAINED_PTR_32 entry above max_valid_pointer (a non-pointer value that
 * only rides the chain), DK_E_UNSUPPORTED for an unknown format.
 */
static inline __attribute__((always_inline)) dk_status chained_decode(uint16_t fmt, uint64_t raw, uint64_t base,
                                                                      const uint64_t *seg_addrs, size_t nseg,
                                                                      uint32_t max_valid_pointer, dk_fixup *f,
                                                                      uint32_t *next)
{
    dk__zero_small(f, sizeof *f);
    f->pointer_format = fmt;
    f->raw = raw;
    f->width = format_is64(fmt) ? 8 : 4;
    f->type = 1;
    f->kind = DK_FIXUP_REBASE;
    *next = 0;
    switch (fmt) {
    case DK_CHAINED_PTR_ARM64E: case DK_CHAINED_PTR_ARM64E_KERNEL: case DK_CHAINED_PTR_ARM64E_USERLAND:
    case DK_CHAINED_PTR_ARM64E_FIRMWARE: case DK_CHAINED_PTR_ARM64E_USERLAND24: {
        bool auth = BITS(raw, 63, 1), bind = BITS(raw, 62, 1);
        unsigned ordbits = fmt == DK_CHAINED_PTR_ARM64E_USERLAND24 ? 24 : 16;
        bool unauth_vmaddr = fmt == DK_CHAINED_PTR_ARM64E || fmt == DK_CHAINED_PTR_ARM64E_FIRMWARE;
        *next = (uint32_t)BITS(raw, 51, 11);
        if (auth) {
            f->auth = true;
            f->diversity = (uint16_t)BITS(raw, 32, 16);
            f->addr_div = BITS(raw, 48, 1);
            f->key = (uint8_t)BITS(raw, 49, 2);
        }
        if (bind) {
            f->kind = DK_FIXUP_BIND;
            f->import_index = (uint32_t)BITS(raw, 0, ordbits);
            if (!auth) f->addend = sext(BITS(raw, 32, 19), 19);
        } else if (auth) {
            f->target = base + BITS(raw, 0, 32);
        } else {
            uint64_t t = BITS(raw, 0, 43);
            f->target = unauth_vmaddr ? t : base + t;
            f->high8 = (uint8_t)BITS(raw, 43, 8);
        }
        return DK_OK;
    }
    case DK_CHAINED_PTR_64: case DK_CHAINED_PTR_64_OFFSET:
        *next = (uint32_t)BITS(raw, 51, 12);
        if (BITS(raw, 63, 1)) {
            f->kind = DK_FIXUP_BIND;
            f->import_index = (uint32_t)BITS(raw, 0, 24);
            f->addend = (int64_t)BITS(raw, 24, 8);
        } else {
            uint64_t t = BITS(raw, 0, 36);
            f->target = fmt == DK_CHAINED_PTR_64 ? t : base + t;
            f->high8 = (uint8_t)BITS(raw, 36, 8);
        }
        return DK_OK;
    case DK_CHAINED_PTR_32:
        *next = (uint32_t)BITS(raw, 26, 5);
        if (BITS(raw, 31, 1)) {
            f->kind = DK_FIXUP_BIND;
            f->import_index = (uint32_t)BITS(raw, 0, 20);
            f->addend = (int64_t)BITS(raw, 20, 6);
            return DK_OK;
        }
        f->target = BITS(raw, 0, 26);
        if (max_valid_pointer && f->target > max_valid_pointer) {
            /* a non-pointer value co-opted into the chain: value = target - bias */
            f->target -= (0x04000000u + max_valid_pointer) / 2;
            return DK_E_NOTFOUND;
        }
        return DK_OK;
    case DK_CHAINED_PTR_32_CACHE:
        *next = (uint32_t)BITS(raw, 30, 2);
        f->target = base + BITS(raw, 0, 30);
        return DK_OK;
    case DK_CHAINED_PTR_32_FIRMWARE:
        *next = (uint32_t)BITS(raw, 26, 6);
        f->target = BITS(raw, 0, 26);
        return DK_OK;
    case DK_CHAINED_PTR_64_KERNEL_CACHE: case DK_CHAINED_PTR_X86_64_KERNEL_CACHE:
        *next = (uint32_t)BITS(raw, 51, 12);
        f->target = base + BITS(raw, 0, 30);
        if (BITS(raw, 63, 1)) {
            f->auth = true;
            f->diversity = (uint16_t)BITS(raw, 32, 16);
            f->addr_div = BITS(raw, 48, 1);
            f->key = (uint8_t)BITS(raw, 49, 2);
        }
        return DK_OK;
    case DK_CHAINED_PTR_ARM64E_SHARED_CACHE:
        *next = (uint32_t)BITS(raw, 52, 11);
        f->target = base + BITS(raw, 0, 34);
        if (BITS(raw, 63, 1)) {
            f->auth = true;
            f->diversity = (uint16_t)BITS(raw, 34, 16);
            f->addr_div = BITS(raw, 50, 1);
            f->key = BITS(raw, 51, 1) ? DK_KEY_DA : DK_KEY_IA;
        } else {
            f->high8 = (uint8_t)BITS(raw, 34, 8);
        }
        return DK_OK;
    case DK_CHAINED_PTR_ARM64E_SEGMENTED: {
        *next = (uint32_t)BITS(raw, 51, 12);
        uint32_t segi = (uint32_t)BITS(raw, 28, 4);
        uint64_t off = BITS(raw, 0, 28);
        f->target = (seg_addrs && segi < nseg) ? seg_addrs[segi] + off : off;
        if (BITS(raw, 63, 1)) {
            f->auth = true;
            f->diversity = (uint16_t)BITS(raw, 32, 16);
            f->addr_div = BITS(raw, 48, 1);
            f->key = (uint8_t)BITS(raw, 49, 2);
        }
        if (seg_addrs && segi >= nseg) return DK_E_MALFORMED;
        return DK_OK;
    }
    }
    return DK_E_UNSUPPORTED;
}

dk_status dk_chained_decode(uint16_t fmt, uint64_t raw, uint64_t base, const uint64_t *seg_addrs, size_t nseg,
                            uint32_t max_valid_pointer, dk_fixup *f, uint32_t *next)
{
    return chained_decode(fmt, raw, base, seg_addrs, nseg, max_valid_pointer, f, next);
}

/* ------------------------------------------------------------- the header */

typedef struct chained_view {
    const uint8_t *data;
    uint32_t size;
    dk_chained_header h;
} chained_view;

static dk_status load_header(const dk_macho *m, chained_view *v, dk_error *err)
{
    memset(v, 0, sizeof *v);
    if (!m->chained.present) return dk_fail(err, DK_E_NOTFOUND, "no LC_DYLD_CHAINED_FIXUPS");
    v->size = m->chained.size;
    v->data = dk__linkedit(m, m->chained.off, m->chained.size);
    if (!v->data)
        return dk_fail(err, DK_E_MALFORMED, "LC_DYLD_CHAINED_FIXUPS: dataoff 0x%x + datasize 0x%x not inside the image's LINKEDIT",
                       m->chained.off, m->chained.size);
    if (v->size < 28)
        return dk_fail(err, DK_E_MALFORMED, "LC_DYLD_CHAINED_FIXUPS at offset 0x%x: datasize %u too small for dyld_chained_fixups_header",
                       m->chained.off, v->size);
    const uint8_t *p = v->data;
    dk_chained_header *h = &v->h;
    h->fixups_version = dk_le32(p);
    h->starts_offset = dk_le32(p + 4);
    h->imports_offset = dk_le32(p + 8);
    h->symbols_offset = dk_le32(p + 12);
    h->imports_count = dk_le32(p + 16);
    h->imports_format = dk_le32(p + 20);
    h->symbols_format = dk_le32(p + 24);
    h->dataoff = m->chained.off;
    h->datasize = m->chained.size;
    uint32_t fo = m->chained.off;
    if (h->fixups_version != 0)
        return dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: unknown fixups_version %u", fo, h->fixups_version);
    if (h->starts_offset >= v->size || v->size - h->starts_offset < 4)
        return dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: starts_offset 0x%x exceeds datasize 0x%x", fo,
                       h->starts_offset, v->size);
    h->seg_count = dk_le32(p + h->starts_offset);
    if ((uint64_t)h->seg_count * 4 > v->size - h->starts_offset - 4)
        return dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: seg_count %u overruns the data", fo, h->seg_count);
    if (h->imports_offset > v->size)
        return dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: imports_offset 0x%x exceeds datasize 0x%x", fo,
                       h->imports_offset, v->size);
    if (h->symbols_offset > v->size)
        return dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: symbols_offset 0x%x exceeds datasize 0x%x", fo,
                       h->symbols_offset, v->size);
    unsigned esize;
    switch (h->imports_format) {
    case DYLD_CHAINED_IMPORT: esize = 4; break;
    case DYLD_CHAINED_IMPORT_ADDEND: esize = 8; break;
    case DYLD_CHAINED_IMPORT_ADDEND64: esize = 16; break;
    default:
        return dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: unknown imports_format %u", fo, h->imports_format);
    }
    if ((uint64_t)h->imports_offset + (uint64_t)h->imports_count * esize > v->size)
        return dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: %u imports at 0x%x overrun datasize 0x%x", fo,
                       h->imports_count, h->imports_offset, v->size);
    if (h->imports_count && (uint64_t)h->imports_offset + (uint64_t)h->imports_count * esize > h->symbols_offset)
        return dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: imports array overlaps symbols", fo);
    return DK_OK;
}

dk_status dk_macho_chained_header(const dk_macho *m, dk_chained_header *out, dk_error *err)
{
    chained_view v;
    dk_status st = load_header(m, &v, err);
    if (!st) *out = v.h;
    return st;
}

static int special_ordinal(uint32_t v, unsigned bits)
{
    uint32_t limit = bits == 8 ? 0xF0 : 0xFFF0;
    if (v > limit) return bits == 8 ? (int)(int8_t)v : (int)(int16_t)v;
    return (int)v;
}

dk_status dk_macho_chained_imports(dk_macho *m, const dk_chained_import **out, size_t *count, dk_error *err)
{
    if (m->imports_done) {
        *out = m->imports;
        *count = m->nimports;
        return DK_OK;
    }
    *out = NULL;
    *count = 0;
    chained_view v;
    dk_status st = load_header(m, &v, err);
    if (st) return st;
    const dk_chained_header *h = &v.h;
    if (h->symbols_format != 0 && h->imports_count)
        return dk_fail(err, DK_E_UNSUPPORTED, "chained fixups at offset 0x%x: symbols_format %u (zlib-compressed symbol names) is unsupported, as in dyld",
                       h->dataoff, h->symbols_format);
    dk_chained_import *imps = calloc(h->imports_count ? h->imports_count : 1, sizeof *imps);
    if (!imps) return dk_fail(err, DK_E_NOMEM, "out of memory for %u imports", h->imports_count);
    uint32_t poolsize = v.size - h->symbols_offset;
    const char *pool = (const char *)v.data + h->symbols_offset;
    for (uint32_t i = 0; i < h->imports_count; i++) {
        dk_chained_import *e = &imps[i];
        const uint8_t *p;
        switch (h->imports_format) {
        case DYLD_CHAINED_IMPORT: {
            p = v.data + h->imports_offset + 4 * (size_t)i;
            uint32_t w = dk_le32(p);
            e->lib_ordinal = special_ordinal(w & 0xff, 8);
            e->weak_import = (w >> 8) & 1;
            e->name_offset = w >> 9;
            break;
        }
        case DYLD_CHAINED_IMPORT_ADDEND: {
            p = v.data + h->imports_offset + 8 * (size_t)i;
            uint32_t w = dk_le32(p);
            e->lib_ordinal = special_ordinal(w & 0xff, 8);
            e->weak_import = (w >> 8) & 1;
            e->name_offset = w >> 9;
            e->addend = (int32_t)dk_le32(p + 4);
            break;
        }
        default: {
            p = v.data + h->imports_offset + 16 * (size_t)i;
            uint64_t w = dk_le64(p);
            e->lib_ordinal = special_ordinal((uint32_t)(w & 0xffff), 16);
            e->weak_import = (w >> 16) & 1;
            e->name_offset = (uint32_t)(w >> 32);
            e->addend = (int64_t)dk_le64(p + 8);
            break;
        }
        }
        if (e->name_offset >= poolsize || !memchr(pool + e->name_offset, 0, poolsize - e->name_offset)) {
            st = dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: imports[%u].name_offset 0x%x out of range (symbol pool is 0x%x bytes)",
                         h->dataoff, i, e->name_offset, poolsize);
            free(imps); /* after formatting: E points into IMPS */
            return st;
        }
        e->name = pool + e->name_offset;
        if (e->lib_ordinal < -3 || (e->lib_ordinal > 0 && (size_t)e->lib_ordinal > m->ndylibs)) {
            st = dk_fail(err, DK_E_MALFORMED, "chained fixups at offset 0x%x: imports[%u] (%s) has library ordinal %d but only %zu dylibs",
                         h->dataoff, i, e->name, e->lib_ordinal, m->ndylibs);
            free(imps);
            return st;
        }
    }
    m->imports = imps;
    m->nimports = h->imports_count;
    m->imports_done = true;
    *out = imps;
    *count = h->imports_count;
    return DK_OK;
}

/* ---------------------------------------------------------------- walking */

typedef struct chain_walk {
    dk_macho *m;
    dk_chain_cb chain_cb; /* detailed events (chains view) or NULL */
    dk_fixup_cb fixup_cb; /* fixups only */
    void *ctx;
    dk_error *err;
    const dk_chained_import *imports;
    size_t nimports;
    uint64_t *seg_addrs;
    uint64_t budget; /* chain entries left before DK_E_LIMIT */
    dk_at_memo at_seg, at_sect; /* segment (read) and section of the last entry */
} chain_walk;

/* Bound on chain entries per image: the chains of a real image never overlap,
 * so each entry is a distinct word (4 bytes or more) of the file.  Without it,
 * thousands of starts re-walking one long chain (multi-start pages sharing an
 * overflow list, or __chain_starts entries) cost quadratic time. */
static uint64_t chain_budget(const dk_macho *m) { return (uint64_t)m->size / 4 + 1; }

static dk_status deliver(chain_walk *w, dk_chain_item *item)
{
    if (w->chain_cb && w->chain_cb(w->ctx, item)) return DK_E_STOPPED;
    return DK_OK;
}

/* Walk one chain that starts at byte OFFSET of page PAGE of segment SEG;
 * without DELIVER_ITEMS only check it (walk_chain compiles both forms). */
static inline __attribute__((always_inline)) dk_status walk_chain_body(chain_walk *w, const dk_chained_starts *s,
                                                                       uint32_t page, uint64_t page_addr,
                                                                       uint32_t offset, bool deliver_items)
{
    dk_macho *m = w->m;
    const dk_segment *seg = &m->segs[s->seg_index];
    unsigned stride = dk_pointer_format_stride(s->pointer_format);
    unsigned width = format_is64(s->pointer_format) ? 8 : 4; /* may straddle the page end, as dyld allows */
    for (;;) {
        uint64_t addr = page_addr + offset;
        uint64_t raw;
        if (w->budget-- == 0)
            return dk_fail(w->err, DK_E_LIMIT, "chained fixups: segment %u (%s) page %u: more than %llu chain entries in a %zu-byte file (chains overlap)",
                           s->seg_index, seg->segname, page, (unsigned long long)chain_budget(m), m->size);
        if (!dk__read_word_memo(m, addr, width, &raw, &w->at_seg))
            return dk_fail(w->err, DK_E_MALFORMED, "chained fixups: segment %u (%s) page %u: chain entry at 0x%llx is not in the file",
                           s->seg_index, seg->segname, page, (unsigned long long)addr);
        dk_fixup f;
        uint32_t next;
        dk_status ds = chained_decode(s->pointer_format, raw, m->base, w->seg_addrs, m->nsegs, s->max_valid_pointer, &f, &next);
        if (ds == DK_E_MALFORMED)
            return dk_fail(w->err, DK_E_MALFORMED, "chained fixups: entry at 0x%llx names segment index %u of %zu",
                           (unsigned long long)addr, (unsigned)BITS(raw, 28, 4), m->nsegs);
        if (ds == DK_E_UNSUPPORTED)
            return dk_fail(w->err, DK_E_UNSUPPORTED, "chained fixups: unknown pointer_format %u", s->pointer_format);
        f.address = addr;
        f.segment = (int)s->seg_index;
        f.section = deliver_items ? dk__section_at_memo(m, addr, &w->at_sect) : -1;
        if (f.kind == DK_FIXUP_BIND) {
            if (f.import_index >= w->nimports)
                return dk_fail(w->err, DK_E_MALFORMED, "chained fixups: bind at 0x%llx uses import %u but there are %zu imports",
                               (unsigned long long)addr, f.import_index, w->nimports);
            const dk_chained_import *imp = &w->imports[f.import_index];
            f.symbol = imp->name;
            f.ordinal = imp->lib_ordinal;
            f.addend += imp->addend;
            f.weak_import = imp->weak_import;
        }
        if (ds == DK_OK && deliver_items) {
            if (w->fixup_cb && w->fixup_cb(w->ctx, &f)) return DK_E_STOPPED;
            if (w->chain_cb) {
                dk_chain_item it = {DK_CHAIN_FIXUP, s, page, 0, &f, next};
                dk_status st = deliver(w, &it);
                if (st) return st;
            }
        }
        if (next == 0) return DK_OK;
        offset += next * stride;
        if (offset >= s->page_size)
            return dk_fail(w->err, DK_E_MALFORMED, "chained fixups: segment %u (%s) page %u: chain continues past its page (next offset 0x%x, page_size 0x%x)",
                           s->seg_index, seg->segname, page, offset, s->page_size);
    }
}

static dk_status walk_chain(chain_walk *w, const dk_chained_starts *s, uint32_t page, uint64_t page_addr, uint32_t offset)
{
    if (w->fixup_cb || w->chain_cb) return walk_chain_body(w, s, page, page_addr, offset, true);
    return walk_chain_body(w, s, page, page_addr, offset, false);
}

static dk_status walk_all(chain_walk *w)
{
    dk_macho *m = w->m;
    chained_view v;
    dk_status st = load_header(m, &v, w->err);
    if (st) return st;
    if ((st = dk_macho_chained_imports(m, &w->imports, &w->nimports, w->err))) return st;
    const dk_chained_header *h = &v.h;
    uint32_t fo = h->dataoff;
    if (h->seg_count > m->nsegs)
        return dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: seg_count (%u) exceeds the number of segments (%zu)", fo,
                       h->seg_count, m->nsegs);
    /* dyld allows fewer only when the missing last segment is __CTF (inserted by ctf_insert after linking) */
    if (h->seg_count < m->nsegs && strcmp(m->segs[m->nsegs - 1].segname, "__CTF") != 0)
        return dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: seg_count (%u) does not match the number of segments (%zu)", fo,
                       h->seg_count, m->nsegs);
    w->seg_addrs = malloc(sizeof(uint64_t) * (m->nsegs ? m->nsegs : 1));
    if (!w->seg_addrs) return dk_fail(w->err, DK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m->nsegs; i++) w->seg_addrs[i] = m->segs[i].vmaddr;
    const uint8_t *img = v.data + h->starts_offset;
    uint32_t img_size = v.size - h->starts_offset;
    uint16_t format_all = 0;
    for (uint32_t i = 0; i < h->seg_count && !st; i++) {
        uint32_t info = dk_le32(img + 4 + 4 * (size_t)i);
        if (info == 0) continue;
        if (info > img_size || img_size - info < 22) {
            st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: seg_info_offset[%u] (0x%x) overruns the data", fo, i, info);
            break;
        }
        const uint8_t *p = img + info;
        dk_chained_starts s;
        s.seg_index = i;
        s.info_offset = info;
        s.size = dk_le32(p);
        s.page_size = dk_le16(p + 4);
        s.pointer_format = dk_le16(p + 6);
        s.segment_offset = dk_le64(p + 8);
        s.max_valid_pointer = dk_le32(p + 16);
        s.page_count = dk_le16(p + 20);
        /* starts may run up to the imports table (dyld) or the end of the data */
        uint64_t limit = (h->imports_offset > h->starts_offset + info) ? h->imports_offset - h->starts_offset - info : img_size - info;
        if (s.size > limit || s.size > img_size - info) {
            st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: dyld_chained_starts_in_segment for segment %u (size %u) overruns the data",
                         fo, i, s.size);
            break;
        }
        if (s.page_size != 0x1000 && s.page_size != 0x4000) {
            st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: page_size 0x%x not 4KB or 16KB in segment %u", fo, s.page_size, i);
            break;
        }
        if (s.pointer_format == 0 || s.pointer_format > DK_CHAINED_PTR_ARM64E_SEGMENTED) {
            st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: unknown pointer_format %u in segment %u", fo, s.pointer_format, i);
            break;
        }
        if (format_all && s.pointer_format != format_all) {
            st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: pointer_format not the same for all segments (%u and %u)", fo,
                         format_all, s.pointer_format);
            break;
        }
        format_all = s.pointer_format;
        if (22 + 2ull * s.page_count > s.size) {
            st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: segment %u page_start array (%u pages) overflows size %u", fo, i,
                         s.page_count, s.size);
            break;
        }
        if ((uint64_t)s.page_count * s.page_size > m->segs[i].vmsize + s.page_size) {
            st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: segment %u (%s) has %u pages of 0x%x but vmsize 0x%llx", fo, i,
                         m->segs[i].segname, s.page_count, s.page_size, (unsigned long long)m->segs[i].vmsize);
            break;
        }
        dk_chain_item it = {DK_CHAIN_SEGMENT, &s, 0, 0, NULL, 0};
        if ((st = deliver(w, &it))) break;
        uint32_t max_overflow = (s.size - 22) / 2;
        for (uint32_t pg = 0; pg < s.page_count && !st; pg++) {
            uint16_t start = dk_le16(p + 22 + 2 * (size_t)pg);
            uint64_t page_addr = m->segs[i].vmaddr + (uint64_t)pg * s.page_size;
            dk_chain_item pi = {DK_CHAIN_PAGE, &s, pg, start, NULL, 0};
            if ((st = deliver(w, &pi))) break;
            if (start == DYLD_CHAINED_PTR_START_NONE) continue;
            if (start & DYLD_CHAINED_PTR_START_MULTI) {
                uint32_t idx = start & ~DYLD_CHAINED_PTR_START_MULTI;
                uint32_t last = 0;
                bool first = true;
                for (;;) {
                    if (idx >= max_overflow) {
                        st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: segment %u page %u: chain overflow index %u out of range (max %u)",
                                     fo, i, pg, idx, max_overflow);
                        break;
                    }
                    uint16_t e = dk_le16(p + 22 + 2 * (size_t)idx);
                    uint32_t off = e & ~DYLD_CHAINED_PTR_START_LAST;
                    if (off >= s.page_size || (!first && off <= last)) {
                        st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: segment %u page %u: overflow start 0x%x out of order or past the page",
                                     fo, i, pg, off);
                        break;
                    }
                    if ((st = walk_chain(w, &s, pg, page_addr, off))) break;
                    first = false;
                    last = off;
                    if (e & DYLD_CHAINED_PTR_START_LAST) break;
                    idx++;
                }
            } else {
                if (start >= s.page_size) {
                    st = dk_fail(w->err, DK_E_MALFORMED, "chained fixups at offset 0x%x: segment %u page %u: page_start 0x%x exceeds page size 0x%x",
                                 fo, i, pg, start, s.page_size);
                    break;
                }
                st = walk_chain(w, &s, pg, page_addr, start);
            }
        }
    }
    free(w->seg_addrs);
    w->seg_addrs = NULL;
    return st;
}

/*
 * Firmware images carry their chain starts in __TEXT,__chain_starts
 * (dyld_chained_starts_offsets { u32 pointer_format; u32 starts_count; u32 chain_starts[] },
 * each start a VM offset from the image base) and have no imports.
 */
static dk_status walk_section_starts(chain_walk *w, const dk_section *sec)
{
    dk_macho *m = w->m;
    const uint8_t *p = dk_macho_read(m, sec->addr, sec->size);
    if (!p || sec->size < 8)
        return dk_fail(w->err, DK_E_MALFORMED, "__TEXT,__chain_starts: section at 0x%llx not readable", (unsigned long long)sec->addr);
    uint32_t fmt = dk_le32(p), count = dk_le32(p + 4);
    if ((uint64_t)count * 4 > sec->size - 8)
        return dk_fail(w->err, DK_E_MALFORMED, "__TEXT,__chain_starts: starts_count %u overruns the section", count);
    if (!dk_pointer_format_stride((uint16_t)fmt))
        return dk_fail(w->err, DK_E_MALFORMED, "__TEXT,__chain_starts: unknown pointer_format %u", fmt);
    w->imports = NULL;
    w->nimports = 0;
    w->seg_addrs = malloc(sizeof(uint64_t) * (m->nsegs ? m->nsegs : 1));
    if (!w->seg_addrs) return dk_fail(w->err, DK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m->nsegs; i++) w->seg_addrs[i] = m->segs[i].vmaddr;
    dk_status st = DK_OK;
    for (uint32_t i = 0; i < count && !st; i++) {
        uint64_t addr = m->base + dk_le32(p + 8 + 4 * (size_t)i);
        int seg = dk_macho_segment_at(m, addr);
        if (seg < 0) {
            st = dk_fail(w->err, DK_E_MALFORMED, "__TEXT,__chain_starts: start %u (0x%llx) not in any segment", i, (unsigned long long)addr);
            break;
        }
        /* treat the rest of the segment as one long "page" for bounds */
        dk_chained_starts s = {(uint32_t)seg, 0, 0, 0, (uint16_t)fmt, 0, 0, 0};
        uint64_t segoff = addr - m->segs[seg].vmaddr;
        uint64_t remain = m->segs[seg].vmsize - segoff;
        s.page_size = remain > 0xFFFF ? 0xFFFF : (uint16_t)remain;
        /* one "page" starting at the chain start */
        st = walk_chain(w, &s, 0, addr, 0);
    }
    free(w->seg_addrs);
    w->seg_addrs = NULL;
    return st;
}

dk_status dk_macho_foreach_chain(dk_macho *m, dk_chain_cb cb, void *ctx, dk_error *err)
{
    chain_walk w;
    memset(&w, 0, sizeof w);
    w.m = m;
    w.chain_cb = cb;
    w.ctx = ctx;
    w.err = err;
    w.budget = chain_budget(m);
    return walk_all(&w);
}

dk_status dk__chained_fixups(dk_macho *m, dk_fixup_cb cb, void *ctx, dk_error *err)
{
    chain_walk w;
    memset(&w, 0, sizeof w);
    w.m = m;
    w.fixup_cb = cb;
    w.ctx = ctx;
    w.err = err;
    w.budget = chain_budget(m);
    if (m->chained.present) return walk_all(&w);
    const dk_section *cs = dk_macho_find_section(m, "__TEXT", "__chain_starts");
    if (cs) return walk_section_starts(&w, cs);
    return DK_OK;
}
