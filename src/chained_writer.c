/*
 * LC_DYLD_CHAINED_FIXUPS encoder, the inverse of src/chained.c, following
 * <mach-o/fixup-chains.h> and the layout ld64's ChainedInfoAtom writes:
 *
 *   dyld_chained_fixups_header            (7 x u32, padded to 8: starts_offset 32)
 *   dyld_chained_starts_in_image          { seg_count; seg_info_offset[seg_count] }  (0: no fixups)
 *   dyld_chained_starts_in_segment        per segment with fixups, 8-aligned:
 *       { u32 size; u16 page_size; u16 pointer_format; u64 segment_offset;
 *         u32 max_valid_pointer (0); u16 page_count; u16 page_start[page_count] }
 *   imports                               (4-aligned; 8 for DYLD_CHAINED_IMPORT_ADDEND64)
 *   symbol pool                           ("\0" then one name per import)
 *   padding to 8
 *
 * Chain entries, written into the segments' content (fields low bit first):
 *   DYLD_CHAINED_PTR_64 / _64_OFFSET (stride 4)
 *     rebase: target:36 (vmaddr / vm offset), high8:8, reserved:7, next:12, bind:1 = 0
 *     bind:   ordinal:24, addend:8, reserved:19, next:12, bind:1 = 1
 *   DYLD_CHAINED_PTR_ARM64E / _USERLAND / _USERLAND24 (stride 8)
 *     rebase:      target:43 (ARM64E: vmaddr, else vm offset), high8:8, next:11, bind:1 = 0, auth:1 = 0
 *     auth rebase: target:32 (vm offset), diversity:16, addrDiv:1, key:2, next:11, bind:1 = 0, auth:1 = 1
 *     bind:        ordinal:16 (24), zero:16 (8), addend:19 (signed), next:11, bind:1 = 1, auth:1 = 0
 *     auth bind:   ordinal:16 (24), zero:16 (8), diversity:16, addrDiv:1, key:2, next:11, bind:1 = 1, auth:1 = 1
 *
 * A bind's addend stays in the pointer when the format has room for it (0..255
 * for the 64-bit formats, +-0x3FFFF for unauthenticated arm64e binds, as
 * dyld's PointerFormat limits say) and its import has no addend of its own;
 * otherwise the bind goes through an extra import entry carrying the whole
 * addend (the import's plus the bind's), one per distinct (import, addend),
 * appended after the caller's imports.  The import format is the smallest
 * whose fields hold every ordinal, name offset and addend.
 *
 * Cost: one sort of the fixups by address, one of the few binds whose addend
 * does not fit, and linear passes; no allocation per fixup.
 */
#include "writer.h"

#include "macho_defs.h"

typedef struct pformat {
    unsigned stride;        /* bytes per unit of `next` */
    unsigned next_bits;
    unsigned ord_bits;      /* bind ordinal field width */
    bool arm64e;            /* auth bits, 43-bit rebase target, signed 19-bit addend */
    bool rebase_is_vmaddr;  /* unauthenticated rebase target is a vmaddr (else an offset from the image base) */
    int64_t addend_min, addend_max; /* inline bind addend (unauthenticated) */
} pformat;

static bool pointer_format(uint16_t f, pformat *p)
{
    memset(p, 0, sizeof *p);
    switch (f) {
    case DK_CHAINED_PTR_64: case DK_CHAINED_PTR_64_OFFSET:
        p->stride = 4;
        p->next_bits = 12;
        p->ord_bits = 24;
        p->rebase_is_vmaddr = f == DK_CHAINED_PTR_64;
        p->addend_min = 0;
        p->addend_max = 255;
        return true;
    case DK_CHAINED_PTR_ARM64E: case DK_CHAINED_PTR_ARM64E_USERLAND: case DK_CHAINED_PTR_ARM64E_USERLAND24:
        p->stride = 8;
        p->next_bits = 11;
        p->ord_bits = f == DK_CHAINED_PTR_ARM64E_USERLAND24 ? 24 : 16;
        p->arm64e = true;
        p->rebase_is_vmaddr = f == DK_CHAINED_PTR_ARM64E;
        p->addend_min = -0x3FFFF;
        p->addend_max = 0x3FFFF;
        return true;
    }
    return false;
}

static int cmp_fixup_addr(const void *a, const void *b)
{
    const dk_chain_fixup *x = a, *y = b;
    return x->address < y->address ? -1 : x->address > y->address;
}

/* A bind whose addend goes to the import table: the fixup, its base import, the total addend. */
typedef struct spill {
    size_t fixup;
    uint32_t import;
    uint32_t id;      /* the extra import it binds through */
    int64_t addend;
} spill;

/* An import entry added for spilled addends: a copy of imports[base] with its own addend. */
typedef struct extra_import {
    uint32_t base;
    uint32_t name_offset;
    int64_t addend;
} extra_import;

static int cmp_spill_target(const void *a, const void *b)
{
    const spill *x = a, *y = b;
    if (x->import != y->import) return x->import < y->import ? -1 : 1;
    if (x->addend != y->addend) return x->addend < y->addend ? -1 : 1;
    return x->fixup < y->fixup ? -1 : x->fixup > y->fixup;
}

static int cmp_spill_fixup(const void *a, const void *b)
{
    const spill *x = a, *y = b;
    return x->fixup < y->fixup ? -1 : x->fixup > y->fixup;
}

/*
 * Whether F's addend can stay in the pointer.  As with ld64, a bind's addend is
 * either all inline (through an import without one) or all in the import
 * table: dyld adds the two, but llvm-objdump shows only the inline one when
 * both are set.
 */
static bool inline_addend(const pformat *p, const dk_chain_fixup *f, const dk_chain_import *imports)
{
    if (f->addend == 0) return true;
    if (f->auth || imports[f->import].addend != 0) return false;
    return f->addend >= p->addend_min && f->addend <= p->addend_max;
}

static void pad_from(dk_buf *out, size_t start, size_t align)
{
    size_t r = (out->len - start) & (align - 1);
    if (r) dk_buf_zeros(out, align - r);
}

typedef struct enc {
    uint16_t fmt;
    const char *fname;
    pformat p;
    uint64_t base;
    dk_error *err;
} enc;

/* The raw chain entry for F pointing NEXT strides ahead; BIND_ORDINAL is its final import index. */
static dk_status chain_value(const enc *e, const dk_chain_fixup *f, uint64_t next, uint32_t bind_ordinal, uint64_t *raw)
{
    const pformat *p = &e->p;
    uint64_t addr = f->address;
    if (f->auth && !p->arm64e)
        return dk_fail(e->err, DK_E_ARG, "chained fixups: fixup at 0x%llx is authenticated, which %s cannot express",
                       (unsigned long long)addr, e->fname);
    if (f->auth && f->key > 3)
        return dk_fail(e->err, DK_E_ARG, "chained fixups: fixup at 0x%llx has ptrauth key %u", (unsigned long long)addr, f->key);
    uint64_t v = next << 51;
    if (f->bind) {
        if (bind_ordinal >> p->ord_bits)
            return dk_fail(e->err, DK_E_LIMIT, "chained fixups: bind at 0x%llx uses import %u, past the %u-bit ordinal of %s",
                           (unsigned long long)addr, bind_ordinal, p->ord_bits, e->fname);
        v |= bind_ordinal;
        if (!p->arm64e) {
            v |= (uint64_t)(f->addend & 0xff) << 24 | 1ull << 63;
        } else {
            v |= 1ull << 62;
            if (f->auth)
                v |= (uint64_t)f->diversity << 32 | (uint64_t)f->addr_div << 48 | (uint64_t)f->key << 49 | 1ull << 63;
            else
                v |= ((uint64_t)f->addend & 0x7FFFF) << 32;
        }
        *raw = v;
        return DK_OK;
    }
    /* rebases */
    bool offset = f->auth || !p->rebase_is_vmaddr;
    if (offset && f->target < e->base)
        return dk_fail(e->err, DK_E_ARG, "chained fixups: rebase at 0x%llx targets 0x%llx, below the image base 0x%llx that %s counts from",
                       (unsigned long long)addr, (unsigned long long)f->target, (unsigned long long)e->base, e->fname);
    uint64_t t = offset ? f->target - e->base : f->target;
    unsigned tbits = f->auth ? 32 : p->arm64e ? 43 : 36;
    if (t >> tbits)
        return dk_fail(e->err, DK_E_LIMIT, "chained fixups: rebase at 0x%llx: target %s 0x%llx does not fit the %u-bit field of %s",
                       (unsigned long long)addr, offset ? "offset" : "address", (unsigned long long)t, tbits, e->fname);
    if (f->auth) {
        if (f->high8)
            return dk_fail(e->err, DK_E_ARG, "chained fixups: authenticated rebase at 0x%llx has high8 0x%x, which it cannot store",
                           (unsigned long long)addr, f->high8);
        v |= t | (uint64_t)f->diversity << 32 | (uint64_t)f->addr_div << 48 | (uint64_t)f->key << 49 | 1ull << 63;
    } else {
        v |= t | (uint64_t)f->high8 << tbits;
    }
    *raw = v;
    return DK_OK;
}

/* Index of the segment holding ADDR (trying HINT first), or -1. */
static long find_segment(const dk_chain_segment *segs, size_t nsegs, uint64_t addr, long hint)
{
    if (hint >= 0 && addr >= segs[hint].vmaddr && addr - segs[hint].vmaddr < segs[hint].vmsize) return hint;
    for (size_t s = 0; s < nsegs; s++)
        if (addr >= segs[s].vmaddr && addr - segs[s].vmaddr < segs[s].vmsize) return (long)s;
    return -1;
}

dk_status dk_chained_encode(uint16_t pointer_format_, uint32_t page_size, uint64_t image_base, dk_chain_segment *segs,
                            size_t nsegs, dk_chain_fixup *fixups, size_t nfixups, const dk_chain_import *imports,
                            size_t nimports, dk_buf *out, dk_error *err)
{
    enc e;
    e.fmt = pointer_format_;
    e.fname = dk_pointer_format_name(pointer_format_);
    e.base = image_base;
    e.err = err;
    if (!pointer_format(e.fmt, &e.p))
        return dk_fail(err, DK_E_UNSUPPORTED, "chained fixups: cannot write pointer_format %u (%s)", e.fmt, e.fname);
    if (page_size != 0x1000 && page_size != 0x4000)
        return dk_fail(err, DK_E_ARG, "chained fixups: page size 0x%x is not 4KB or 16KB", page_size);
    if (nsegs > UINT32_MAX / 4) return dk_fail(err, DK_E_LIMIT, "chained fixups: %zu segments", nsegs);
    if (nimports > UINT32_MAX) return dk_fail(err, DK_E_LIMIT, "chained fixups: %zu imports", nimports);
    if (out->oom) return dk_fail(err, DK_E_NOMEM, "chained fixups: output buffer already out of memory");
    const size_t start = out->len;
    dk_status st = DK_OK;
    long *seg_first = NULL;  /* first fixup (in address order) of each segment, -1 if none */
    size_t *seg_end = NULL;
    spill *spills = NULL;
    extra_import *extra = NULL;
    size_t nspills = 0, nextra = 0;

    /* ---- imports: every name present, ordinals encodable */
    uint64_t pool_size = 1;
    for (size_t i = 0; i < nimports; i++) {
        const dk_chain_import *im = &imports[i];
        if (!im->name) return dk_fail(err, DK_E_ARG, "chained fixups: import %zu has no name", i);
        if (im->ordinal < BIND_SPECIAL_DYLIB_WEAK_LOOKUP || im->ordinal > 0xFFF0)
            return dk_fail(err, DK_E_ARG, "chained fixups: import %zu (%s) has library ordinal %d, outside -3..65520", i, im->name,
                           im->ordinal);
        pool_size += strlen(im->name) + 1;
    }
    if (pool_size > UINT32_MAX) return dk_fail(err, DK_E_LIMIT, "chained fixups: symbol pool of %llu bytes", (unsigned long long)pool_size);

    /* ---- fixups: in address order, each inside a segment's content, never overlapping */
    if (nfixups) qsort(fixups, nfixups, sizeof *fixups, cmp_fixup_addr);
    seg_first = malloc(sizeof *seg_first * (nsegs ? nsegs : 1));
    seg_end = malloc(sizeof *seg_end * (nsegs ? nsegs : 1));
    if (!seg_first || !seg_end) {
        st = dk_fail(err, DK_E_NOMEM, "chained fixups: out of memory");
        goto out;
    }
    for (size_t s = 0; s < nsegs; s++) seg_first[s] = -1, seg_end[s] = 0;
    long cur = -1;
    for (size_t i = 0; i < nfixups; i++) {
        const dk_chain_fixup *f = &fixups[i];
        if (i && f->address - fixups[i - 1].address < 8) {
            st = dk_fail(err, DK_E_ARG, "chained fixups: fixups at 0x%llx and 0x%llx overlap", (unsigned long long)fixups[i - 1].address,
                         (unsigned long long)f->address);
            goto out;
        }
        long s = find_segment(segs, nsegs, f->address, cur);
        if (s < 0) {
            st = dk_fail(err, DK_E_ARG, "chained fixups: fixup at 0x%llx is in no segment", (unsigned long long)f->address);
            goto out;
        }
        uint64_t off = f->address - segs[s].vmaddr;
        if (!segs[s].content || off > segs[s].content_size || segs[s].content_size - off < 8) {
            st = dk_fail(err, DK_E_ARG, "chained fixups: fixup at 0x%llx (segment %ld + 0x%llx) is past the segment's 0x%llx content bytes",
                         (unsigned long long)f->address, s, (unsigned long long)off, (unsigned long long)segs[s].content_size);
            goto out;
        }
        if (s != cur) {
            if (seg_first[s] >= 0) {
                st = dk_fail(err, DK_E_ARG, "chained fixups: segment %ld overlaps another segment (fixup at 0x%llx)", s,
                             (unsigned long long)f->address);
                goto out;
            }
            seg_first[s] = (long)i;
            cur = s;
        }
        seg_end[s] = i + 1;
        if (f->bind) {
            if (f->import >= nimports) {
                st = dk_fail(err, DK_E_ARG, "chained fixups: bind at 0x%llx uses import %u of %zu", (unsigned long long)f->address,
                             f->import, nimports);
                goto out;
            }
            if (!inline_addend(&e.p, f, imports)) nspills++;
        }
    }

    /* ---- binds whose addend does not fit the pointer: one extra import per (import, total addend) */
    if (nspills) {
        spills = malloc(sizeof *spills * nspills);
        if (!spills) {
            st = dk_fail(err, DK_E_NOMEM, "chained fixups: out of memory for %zu import addends", nspills);
            goto out;
        }
        size_t k = 0;
        for (size_t i = 0; i < nfixups; i++) {
            const dk_chain_fixup *f = &fixups[i];
            if (!f->bind || inline_addend(&e.p, f, imports)) continue;
            spills[k].fixup = i;
            spills[k].import = f->import;
            spills[k].addend = (int64_t)((uint64_t)imports[f->import].addend + (uint64_t)f->addend);
            k++;
        }
        qsort(spills, nspills, sizeof *spills, cmp_spill_target);
        extra = malloc(sizeof *extra * nspills);
        if (!extra) {
            st = dk_fail(err, DK_E_NOMEM, "chained fixups: out of memory for %zu import addends", nspills);
            goto out;
        }
        for (size_t j = 0; j < nspills; j++) {
            if (j == 0 || spills[j].import != spills[j - 1].import || spills[j].addend != spills[j - 1].addend) {
                extra[nextra].base = spills[j].import;
                extra[nextra].addend = spills[j].addend;
                nextra++;
            }
            spills[j].id = (uint32_t)(nimports + nextra - 1);
        }
        /* back to address order, to be consumed alongside the fixups */
        qsort(spills, nspills, sizeof *spills, cmp_spill_fixup);
        /* name offsets: EXTRA is ordered by base import, the pool by import */
        uint32_t noff = 1;
        size_t x = 0;
        for (size_t i = 0; i < nimports && x < nextra; i++) {
            while (x < nextra && extra[x].base == i) extra[x++].name_offset = noff;
            noff += (uint32_t)strlen(imports[i].name) + 1;
        }
    }
    uint64_t nimp = (uint64_t)nimports + nextra;
    /* dyld (ChainedFixups::validLinkedit) wants imports_count below the format's largest ordinal */
    if (nimp && nimp >= (1ull << e.p.ord_bits) - 1) {
        st = dk_fail(err, DK_E_LIMIT, "chained fixups: %llu imports, more than %s's %u-bit ordinal allows", (unsigned long long)nimp,
                     e.fname, e.p.ord_bits);
        goto out;
    }

    /* ---- imports_format: the smallest that holds every field */
    bool zero_addends = true, addends32 = true, narrow = pool_size <= (1u << 23);
    for (size_t i = 0; i < nimports; i++) {
        int64_t a = imports[i].addend;
        if (a) zero_addends = false;
        if (a < INT32_MIN || a > INT32_MAX) addends32 = false;
        if (imports[i].ordinal > 0xF0) narrow = false; /* 8-bit lib_ordinal, 23-bit name_offset */
    }
    for (size_t j = 0; j < nextra; j++) {
        int64_t a = extra[j].addend;
        if (a) zero_addends = false;
        if (a < INT32_MIN || a > INT32_MAX) addends32 = false;
    }
    uint32_t imports_format = !narrow || !addends32 ? DYLD_CHAINED_IMPORT_ADDEND64
                              : zero_addends          ? DYLD_CHAINED_IMPORT
                                                      : DYLD_CHAINED_IMPORT_ADDEND;

    /* ---- header and starts */
    dk_buf_zeros(out, 32); /* dyld_chained_fixups_header, 28 bytes padded to 8 */
    const size_t starts_offset = 32;
    dk_buf_u32(out, (uint32_t)nsegs);
    size_t seg_info_at = dk_buf_reserve(out, 4 * nsegs);
    size_t sp = 0; /* next spill, in fixup order */
    for (size_t s = 0; s < nsegs && !out->oom; s++) {
        if (seg_first[s] < 0) continue;
        const dk_chain_segment *g = &segs[s];
        uint64_t page_count = (g->vmsize + page_size - 1) / page_size;
        if (page_count > 0xFFFF) {
            st = dk_fail(err, DK_E_LIMIT, "chained fixups: segment %zu spans %llu pages of 0x%x, more than page_count holds", s,
                         (unsigned long long)page_count, page_size);
            goto out;
        }
        if (g->vmaddr < image_base) {
            st = dk_fail(err, DK_E_ARG, "chained fixups: segment %zu starts at 0x%llx, below the image base 0x%llx", s,
                         (unsigned long long)g->vmaddr, (unsigned long long)image_base);
            goto out;
        }
        pad_from(out, start, 8);
        size_t at = out->len;
        if (!out->oom) dk_wr32le(out->data + seg_info_at + 4 * s, (uint32_t)(at - start - starts_offset));
        dk_buf_u32(out, (uint32_t)(22 + 2 * page_count)); /* size */
        dk_buf_u16(out, (uint16_t)page_size);
        dk_buf_u16(out, e.fmt);
        dk_buf_u64(out, g->vmaddr - image_base); /* segment_offset */
        dk_buf_u32(out, 0);                       /* max_valid_pointer: only DYLD_CHAINED_PTR_32 uses it */
        dk_buf_u16(out, (uint16_t)page_count);
        size_t page_start_at = dk_buf_reserve(out, 2 * page_count);
        if (out->oom) goto out;
        for (uint64_t pg = 0; pg < page_count; pg++) dk_wr16le(out->data + page_start_at + 2 * pg, DYLD_CHAINED_PTR_START_NONE);
        uint64_t max_next = (1u << e.p.next_bits) - 1;
        for (size_t i = (size_t)seg_first[s]; i < seg_end[s]; i++) {
            const dk_chain_fixup *f = &fixups[i];
            uint64_t off = f->address - g->vmaddr, pg = off / page_size;
            if (i == (size_t)seg_first[s] || (fixups[i - 1].address - g->vmaddr) / page_size != pg)
                dk_wr16le(out->data + page_start_at + 2 * pg, (uint16_t)(off % page_size));
            uint64_t next = 0;
            if (i + 1 < seg_end[s] && (fixups[i + 1].address - g->vmaddr) / page_size == pg) {
                uint64_t delta = fixups[i + 1].address - f->address;
                if (delta % e.p.stride) {
                    st = dk_fail(err, DK_E_ARG, "chained fixups: fixups at 0x%llx and 0x%llx are 0x%llx apart, not a multiple of %s's %u-byte stride",
                                 (unsigned long long)f->address, (unsigned long long)fixups[i + 1].address, (unsigned long long)delta,
                                 e.fname, e.p.stride);
                    goto out;
                }
                next = delta / e.p.stride;
                if (next > max_next) {
                    st = dk_fail(err, DK_E_LIMIT, "chained fixups: fixups at 0x%llx and 0x%llx are 0x%llx apart, farther than %s's %u-bit next can reach",
                                 (unsigned long long)f->address, (unsigned long long)fixups[i + 1].address, (unsigned long long)delta,
                                 e.fname, e.p.next_bits);
                    goto out;
                }
            }
            dk_chain_fixup v = *f;
            uint32_t ordinal = f->import;
            if (sp < nspills && spills[sp].fixup == i) {
                ordinal = spills[sp++].id;
                v.addend = 0; /* the whole addend is in the extra import */
            }
            uint64_t raw = 0;
            if ((st = chain_value(&e, &v, next, ordinal, &raw))) goto out;
            dk_wr64le(g->content + off, raw);
        }
    }

    /* ---- imports and the symbol pool */
    pad_from(out, start, imports_format == DYLD_CHAINED_IMPORT_ADDEND64 ? 8 : 4);
    size_t imports_offset = out->len - start;
    uint32_t name_off = 1;
    for (size_t i = 0; i < nimp && !out->oom; i++) {
        const dk_chain_import *im;
        int64_t addend;
        uint32_t noff;
        if (i < nimports) {
            im = &imports[i];
            addend = im->addend;
            noff = name_off;
            name_off += (uint32_t)strlen(im->name) + 1;
        } else {
            const extra_import *x = &extra[i - nimports];
            im = &imports[x->base];
            addend = x->addend;
            noff = x->name_offset;
        }
        uint32_t ord = (uint32_t)im->ordinal; /* specials as their two's complement, in 8 or 16 bits */
        switch (imports_format) {
        case DYLD_CHAINED_IMPORT:
            dk_buf_u32(out, (ord & 0xff) | (uint32_t)im->weak_import << 8 | noff << 9);
            break;
        case DYLD_CHAINED_IMPORT_ADDEND:
            dk_buf_u32(out, (ord & 0xff) | (uint32_t)im->weak_import << 8 | noff << 9);
            dk_buf_u32(out, (uint32_t)(int32_t)addend);
            break;
        default:
            dk_buf_u64(out, (ord & 0xffff) | (uint64_t)im->weak_import << 16 | (uint64_t)noff << 32);
            dk_buf_u64(out, (uint64_t)addend);
            break;
        }
    }
    size_t symbols_offset = out->len - start;
    dk_buf_u8(out, 0);
    for (size_t i = 0; i < nimports; i++) dk_buf_cstr(out, imports[i].name);
    pad_from(out, start, 8);
    if (out->len - start > UINT32_MAX) {
        st = dk_fail(err, DK_E_LIMIT, "chained fixups: %zu bytes, more than LC_DYLD_CHAINED_FIXUPS can describe", out->len - start);
        goto out;
    }
    if (!out->oom) {
        uint8_t *h = out->data + start;
        dk_wr32le(h + 0, 0); /* fixups_version */
        dk_wr32le(h + 4, (uint32_t)starts_offset);
        dk_wr32le(h + 8, (uint32_t)imports_offset);
        dk_wr32le(h + 12, (uint32_t)symbols_offset);
        dk_wr32le(h + 16, (uint32_t)nimp);
        dk_wr32le(h + 20, imports_format);
        dk_wr32le(h + 24, 0); /* symbols_format: uncompressed */
    }
out:
    free(seg_first);
    free(extra);
    free(seg_end);
    free(spills);
    if (!st && out->oom) st = dk_fail(err, DK_E_NOMEM, "chained fixups: out of memory");
    if (st && out->len > start) out->len = start;
    return st;
}
