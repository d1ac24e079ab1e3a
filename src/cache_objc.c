/*
 * The cache's global ObjC optimisation header, two generations:
 *  - ObjCOptimizationHeader at header + objcOptsOffset (dyld-1042+,
 *    common/DyldSharedCache.h): version, flags, then u64 cache-relative offsets
 *    headerInfoRO/RW, selector/class/protocol hash tables,
 *    relativeMethodSelectorBaseAddressOffset; version 2 adds the selector and
 *    type buffer sizes.
 *  - objc_opt_t in libobjc's __TEXT,__objc_opt_ro (include/objc-shared-cache.h):
 *    i32 offsets relative to the struct; v12 {version, selopt, headeropt,
 *    clsopt}, v13 adds protocolopt, v15 {version, flags, selopt, headeropt_ro,
 *    clsopt, protocolopt|unused, headeropt_rw[, protocolopt]}, v16 the current
 *    layout ending with an i64 relativeMethodSelectorBaseAddressOffset.
 * headerInfoRO = {u32 count; u32 entsize; {intptr mhdr_offset; intptr info_offset}[]}
 * with mhdr_offset relative to the entry (common/OptimizerObjC.h
 * objc_header_info_ro_t); an image's ObjC index is its position in it.
 */
#include "cache_internal.h"

#include <stdio.h>

#define FAIL(err, ...) dk_fail((err), DK_E_MALFORMED, __VA_ARGS__)

static dk_status new_header(dk_cache *c, dk_cache_objc_opt *o, dk_error *err)
{
    const dk_cache_header *h = dk__main_header(c);
    o->is_new = true;
    o->address = c->base + h->objcOptsOffset;
    const uint8_t *p = dk_cache_read(c, o->address, 56, NULL);
    if (!p)
        return FAIL(err, "ObjCOptimizationHeader at 0x%llx (objcOptsOffset 0x%llx) is not inside a mapping",
                    (unsigned long long)o->address, (unsigned long long)h->objcOptsOffset);
    o->version = dk_le32(p);
    o->flags = dk_le32(p + 4);
    o->headerInfoROCacheOffset = dk_le64(p + 8);
    o->headerInfoRWCacheOffset = dk_le64(p + 16);
    o->selectorHashTableCacheOffset = dk_le64(p + 24);
    o->classHashTableCacheOffset = dk_le64(p + 32);
    o->protocolHashTableCacheOffset = dk_le64(p + 40);
    o->relativeMethodSelectorBaseAddressOffset = dk_le64(p + 48);
    if (o->version >= 2) {
        p = dk_cache_read(c, o->address, 72, NULL);
        if (!p)
            return FAIL(err, "ObjCOptimizationHeader version %u at 0x%llx (72 bytes) is not inside a mapping", o->version,
                        (unsigned long long)o->address);
        o->relativeMethodSelectorBufferSize = dk_le64(p + 56);
        o->relativeMethodTypesBufferSize = dk_le64(p + 64);
    }
    if (o->headerInfoROCacheOffset) o->header_info_ro = c->base + o->headerInfoROCacheOffset;
    if (o->headerInfoRWCacheOffset) o->header_info_rw = c->base + o->headerInfoRWCacheOffset;
    if (o->relativeMethodSelectorBaseAddressOffset) o->selector_base = c->base + o->relativeMethodSelectorBaseAddressOffset;
    return DK_OK;
}

static dk_status old_header(dk_cache *c, dk_cache_objc_opt *o, dk_error *err)
{
    size_t idx;
    if (dk_cache_find_image(c, "libobjc.A.dylib", &idx, NULL))
        return dk_fail(err, DK_E_NOTFOUND, "the cache has no ObjC optimisation header (no libobjc.A.dylib)");
    dk_macho *m;
    dk_status st = dk_cache_open_image(c, idx, &m, err);
    if (st) return st;
    const dk_section *s = dk_macho_find_section(m, NULL, "__objc_opt_ro");
    if (!s) {
        dk_macho_close(m);
        return dk_fail(err, DK_E_NOTFOUND, "the cache has no ObjC optimisation header (libobjc has no __objc_opt_ro)");
    }
    uint64_t addr = s->addr, size = s->size;
    dk_macho_close(m);
    o->address = addr;
    const uint8_t *p = size >= 16 ? dk_cache_read(c, addr, size < 48 ? size : 48, NULL) : NULL;
    if (!p)
        return FAIL(err, "objc_opt_t (libobjc __objc_opt_ro at 0x%llx, 0x%llx bytes) is not readable", (unsigned long long)addr,
                    (unsigned long long)size);
    o->version = dk_le32(p);
    int64_t ro = 0, rw = 0;
    switch (o->version) {
    case 12:
    case 13:
        o->selopt_offset = (int32_t)dk_le32(p + 4);
        o->headeropt_ro_offset = (int32_t)dk_le32(p + 8);
        o->clsopt_offset = (int32_t)dk_le32(p + 12);
        if (o->version == 13 && size >= 20) o->protocolopt_offset = (int32_t)dk_le32(p + 16);
        break;
    case 15:
    case 16:
        if (size < (o->version == 16 ? 48u : 28u))
            return FAIL(err, "objc_opt_t version %u at 0x%llx: __objc_opt_ro (0x%llx bytes) too small", o->version,
                        (unsigned long long)addr, (unsigned long long)size);
        o->flags = dk_le32(p + 4);
        o->selopt_offset = (int32_t)dk_le32(p + 8);
        o->headeropt_ro_offset = (int32_t)dk_le32(p + 12);
        o->clsopt_offset = (int32_t)dk_le32(p + 16);
        o->headeropt_rw_offset = (int32_t)dk_le32(p + 24);
        if (o->version == 15) {
            /* v15a: protocolopt @20; v15b: unused @20, protocolopt @28 */
            o->protocolopt_offset = (int32_t)dk_le32(p + (size >= 32 && dk_le32(p + 20) == 0 ? 28 : 20));
        } else {
            o->largeSharedCachesClassOffset = (int32_t)dk_le32(p + 32);
            o->largeSharedCachesProtocolOffset = (int32_t)dk_le32(p + 36);
            int64_t rel = (int64_t)dk_le64(p + 40);
            o->relativeMethodSelectorBaseAddressOffset = (uint64_t)rel;
            if (rel) o->selector_base = addr + (uint64_t)rel;
        }
        break;
    default:
        return dk_fail(err, DK_E_UNSUPPORTED, "objc_opt_t at 0x%llx: unsupported version %u", (unsigned long long)addr,
                       o->version);
    }
    ro = o->headeropt_ro_offset;
    rw = o->headeropt_rw_offset;
    if (ro) o->header_info_ro = addr + (uint64_t)ro;
    if (rw) o->header_info_rw = addr + (uint64_t)rw;
    return DK_OK;
}

dk_status dk_cache_objc_opt_info(dk_cache *c, dk_cache_objc_opt *out, dk_error *err)
{
    memset(out, 0, sizeof *out);
    const dk_cache_header *h = dk__main_header(c);
    if (dk_cache_header_has(h, "objcOptsSize") && h->objcOptsOffset) return new_header(c, out, err);
    return old_header(c, out, err);
}

dk_status dk_cache_objc_image_index(dk_cache *c, size_t index, uint32_t *objc_index, dk_error *err)
{
    if (index >= c->nimages) return dk_fail(err, DK_E_ARG, "no image %zu", index);
    dk_cache_objc_opt o;
    dk_status st = dk_cache_objc_opt_info(c, &o, err);
    if (st) return st;
    if (!o.header_info_ro) return dk_fail(err, DK_E_NOTFOUND, "the ObjC optimisation header has no headerInfoRO");
    const uint8_t *p = dk_cache_read(c, o.header_info_ro, 8, NULL);
    if (!p) return FAIL(err, "objc_headeropt_ro_t at 0x%llx is not inside a mapping", (unsigned long long)o.header_info_ro);
    uint32_t count = dk_le32(p), entsize = dk_le32(p + 4);
    unsigned ps = c->ptr_size;
    if (entsize < 2 * ps)
        return FAIL(err, "objc_headeropt_ro_t at 0x%llx: entsize %u smaller than two pointers", (unsigned long long)o.header_info_ro,
                    entsize);
    uint64_t first = o.header_info_ro + 8;
    if (!dk_cache_read(c, first, (uint64_t)count * entsize, NULL))
        return FAIL(err, "objc_headeropt_ro_t at 0x%llx: %u entries of %u bytes extend past the mapping",
                    (unsigned long long)o.header_info_ro, count, entsize);
    uint64_t want = c->images[index].address;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t e = first + (uint64_t)i * entsize;
        const uint8_t *q = dk_cache_read(c, e, ps, NULL);
        int64_t off = ps == 8 ? (int64_t)dk_le64(q) : (int64_t)(int32_t)dk_le32(q);
        if (e + (uint64_t)off == want) {
            *objc_index = i;
            return DK_OK;
        }
    }
    return dk_fail(err, DK_E_NOTFOUND, "image %zu (%s) is not in the ObjC header list", index, c->images[index].path);
}
