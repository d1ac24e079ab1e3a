/*
 * Patch tables: for each exported symbol that other cache images use, where
 * they use it (Apple's common/CachePatching.h and DyldSharedCache.cpp
 * patchInfoVersion / forEachPatchableExport / forEachPatchableUseOfExport).
 *
 *  v1 (dyld_cache_patch_info_v1, caches before split caches; chosen when
 *     mappingOffset <= offsetof(swiftOptsSize)): per image {exportsStart,
 *     count}; exports {cacheOffsetOfImpl, locationsStart, locationsCount,
 *     exportNameOffset}; locations {u32 cacheOffset; u32 high7:7, addend:5,
 *     authenticated:1, usesAddressDiversity:1, key:2, discriminator:16}.
 *  v2 (dyld_cache_patch_info_v2, first u32 = version): per image {clients
 *     range, exports range}; image exports {dylibOffsetOfImpl;
 *     exportNameOffset:28, patchKind:4}; clients {clientDylibIndex, exports
 *     range}; client exports {imageExportIndex, locations range}; locations
 *     {dylibOffsetOfUse; the v1 bit-field}.
 *  v3 adds GOT clients (one per image) whose locations are
 *     {u64 cacheOffsetOfUse; the v1 bit-field; pad}.
 *  v4 keeps the v3 tables with a new location bit-field: authenticated:1,
 *     high7:7, isWeakImport:1, then addend:5, usesAddressDiversity:1,
 *     keyIsD:1, discriminator:16 (auth) or addend:23 (regular).
 * Every array is checked to lie inside one mapping and every index against its
 * array before use.
 */
#include "cache_internal.h"

#include <stdio.h>

#define FAIL(err, ...) dk_fail((err), DK_E_MALFORMED, __VA_ARGS__)

dk_status dk_cache_patch_table(const dk_cache *c, dk_cache_patch_info *out, dk_error *err)
{
    memset(out, 0, sizeof *out);
    const dk_cache_header *h = dk__main_header(c);
    /* before dyld-832 the slot at 0x98 held dylibsImageGroupAddr, not a patch table */
    if (!dk_cache_header_has(h, "mappingWithSlideCount") || !h->patchInfoAddr)
        return dk_fail(err, DK_E_NOTFOUND, "the cache has no patch table");
    uint64_t a = h->patchInfoAddr;
    if (h->mappingOffset <= 0x180) {
        const uint8_t *p = dk_cache_read(c, a, 64, NULL);
        if (!p) return FAIL(err, "dyld_cache_patch_info_v1 at 0x%llx is not inside a mapping", (unsigned long long)a);
        out->version = 1;
        out->patchTableArrayAddr = dk_le64(p);
        out->patchTableArrayCount = dk_le64(p + 8);
        out->patchImageExportsArrayAddr = dk_le64(p + 16);
        out->patchImageExportsArrayCount = dk_le64(p + 24);
        out->patchLocationArrayAddr = dk_le64(p + 32);
        out->patchLocationArrayCount = dk_le64(p + 40);
        out->patchExportNamesAddr = dk_le64(p + 48);
        out->patchExportNamesSize = dk_le64(p + 56);
        return DK_OK;
    }
    const uint8_t *p = dk_cache_read(c, a, 104, NULL);
    if (!p) return FAIL(err, "dyld_cache_patch_info_v2 at 0x%llx is not inside a mapping", (unsigned long long)a);
    out->version = dk_le32(p);
    if (out->version < 2 || out->version > 4)
        return dk_fail(err, DK_E_UNSUPPORTED, "dyld_cache_patch_info at 0x%llx: unknown patchTableVersion %u", (unsigned long long)a,
                       out->version);
    out->patchLocationVersion = dk_le32(p + 4);
    uint64_t *f[] = {&out->patchTableArrayAddr, &out->patchTableArrayCount, &out->patchImageExportsArrayAddr,
                     &out->patchImageExportsArrayCount, &out->patchClientsArrayAddr, &out->patchClientsArrayCount,
                     &out->patchClientExportsArrayAddr, &out->patchClientExportsArrayCount, &out->patchLocationArrayAddr,
                     &out->patchLocationArrayCount, &out->patchExportNamesAddr, &out->patchExportNamesSize,
                     &out->gotClientsArrayAddr, &out->gotClientsArrayCount, &out->gotClientExportsArrayAddr,
                     &out->gotClientExportsArrayCount, &out->gotLocationArrayAddr, &out->gotLocationArrayCount};
    unsigned nf = out->version >= 3 ? 18 : 12;
    if (out->version >= 3 && !(p = dk_cache_read(c, a, 8 + 8 * nf, NULL)))
        return FAIL(err, "dyld_cache_patch_info_v%u at 0x%llx is not inside a mapping", out->version, (unsigned long long)a);
    for (unsigned i = 0; i < nf; i++) *f[i] = dk_le64(p + 8 + 8 * i);
    return DK_OK;
}

/* An array of COUNT elements of SIZE bytes at ADDR, inside one mapping. */
typedef struct parray {
    const uint8_t *p;
    uint64_t count;
    unsigned size;
} parray;

static dk_status get_array(const dk_cache *c, const char *name, uint64_t addr, uint64_t count, unsigned size, parray *a,
                           dk_error *err)
{
    a->count = count;
    a->size = size;
    a->p = NULL;
    if (!count) return DK_OK;
    if (count > UINT64_MAX / size || !(a->p = dk_cache_read(c, addr, count * size, NULL)))
        return FAIL(err, "patch table: %s (0x%llx, %llu x %u bytes) is not inside one mapping", name, (unsigned long long)addr,
                    (unsigned long long)count, size);
    return DK_OK;
}

static const uint8_t *elem(const parray *a, uint64_t i) { return a->p + i * a->size; }

/* Check that [start, start+n) lies in array A. */
static dk_status range_ok(const parray *a, uint64_t start, uint64_t n, const char *what, const char *array, uint64_t owner,
                          dk_error *err)
{
    if (start > a->count || n > a->count - start)
        return FAIL(err, "patch table: %s %llu: range %llu+%llu past the %llu entries of %s", what, (unsigned long long)owner,
                    (unsigned long long)start, (unsigned long long)n, (unsigned long long)a->count, array);
    return DK_OK;
}

static dk_status export_name(const parray *names, uint64_t off, const char **out, dk_error *err)
{
    if (off >= names->count) {
        *out = ""; /* as Apple's forEachPatchableExport */
        return DK_OK;
    }
    const char *s = (const char *)names->p + off;
    if (!memchr(s, 0, (size_t)(names->count - off)))
        return FAIL(err, "patch table: export name at offset 0x%llx is not NUL-terminated", (unsigned long long)off);
    *out = s;
    return DK_OK;
}

/* The v1..v3 location bit-field. */
static void bits_v1(uint32_t b, dk_cache_patch *p)
{
    p->high8 = (uint8_t)((b & 0x7f) << 1);
    p->addend = (b >> 7) & 0x1f;
    p->auth = (b >> 12) & 1;
    p->addr_div = (b >> 13) & 1;
    p->key = (uint8_t)((b >> 14) & 3);
    p->diversity = (uint16_t)(b >> 16);
    p->weak_import = false;
}

/* The v4 location bit-field (dyld_cache_patchable_location_v4::Auth / ::Regular). */
static void bits_v4(uint32_t b, dk_cache_patch *p)
{
    p->auth = b & 1;
    p->high8 = (uint8_t)(((b >> 1) & 0x7f) << 1);
    p->weak_import = (b >> 8) & 1;
    if (p->auth) {
        p->addend = (b >> 9) & 0x1f;
        p->addr_div = (b >> 14) & 1;
        p->key = ((b >> 15) & 1) ? DK_KEY_DA : DK_KEY_IA;
        p->diversity = (uint16_t)(b >> 16);
    } else {
        p->addend = b >> 9;
        p->addr_div = false;
        p->key = 0;
        p->diversity = 0;
    }
}

static dk_status foreach_v1(dk_cache *c, const dk_cache_patch_info *in, size_t i0, size_t i1, dk_cache_patch_cb cb,
                            void *ctx, dk_error *err)
{
    parray images, exports, locs, names;
    dk_status st;
    if ((st = get_array(c, "patchTableArray", in->patchTableArrayAddr, in->patchTableArrayCount, 8, &images, err)) ||
        (st = get_array(c, "patchExportArray", in->patchImageExportsArrayAddr, in->patchImageExportsArrayCount, 16, &exports, err)) ||
        (st = get_array(c, "patchLocationArray", in->patchLocationArrayAddr, in->patchLocationArrayCount, 8, &locs, err)) ||
        (st = get_array(c, "patchExportNames", in->patchExportNamesAddr, in->patchExportNamesSize, 1, &names, err)))
        return st;
    bool have_segs = dk__cache_segments(c, NULL) == DK_OK;
    for (size_t i = i0; i < i1 && i < images.count; i++) {
        const uint8_t *ip = elem(&images, i);
        uint32_t start = dk_le32(ip), n = dk_le32(ip + 4);
        if ((st = range_ok(&exports, start, n, "image", "patchExportArray", i, err))) return st;
        for (uint32_t k = 0; k < n; k++) {
            const uint8_t *e = elem(&exports, (uint64_t)start + k);
            dk_cache_patch p;
            memset(&p, 0, sizeof p);
            p.event = DK_PATCH_EXPORT;
            p.image = (uint32_t)i;
            p.export_address = c->base + dk_le32(e);
            p.client = -1;
            uint32_t lstart = dk_le32(e + 4), ln = dk_le32(e + 8);
            if ((st = export_name(&names, dk_le32(e + 12), &p.export_name, err))) return st;
            if ((st = range_ok(&locs, lstart, ln, "export", "patchLocationArray", (uint64_t)start + k, err))) return st;
            if (cb(ctx, &p)) return DK_E_STOPPED;
            for (uint32_t l = 0; l < ln; l++) {
                const uint8_t *q = elem(&locs, (uint64_t)lstart + l);
                dk_cache_patch u = p;
                u.event = DK_PATCH_USE;
                u.location = c->base + dk_le32(q);
                bits_v1(dk_le32(q + 4), &u);
                u.client = have_segs ? dk__cache_image_at(c, u.location, NULL) : -1;
                if (cb(ctx, &u)) return DK_E_STOPPED;
            }
        }
    }
    return DK_OK;
}

static dk_status foreach_v2(dk_cache *c, const dk_cache_patch_info *in, size_t i0, size_t i1, dk_cache_patch_cb cb,
                            void *ctx, dk_error *err)
{
    parray images, iexports, clients, cexports, locs, names, gclients, gexports, glocs;
    dk_status st;
    bool v3 = in->version >= 3, v4 = in->version >= 4;
    if ((st = get_array(c, "patchTableArray", in->patchTableArrayAddr, in->patchTableArrayCount, 16, &images, err)) ||
        (st = get_array(c, "patchImageExportsArray", in->patchImageExportsArrayAddr, in->patchImageExportsArrayCount, 8,
                        &iexports, err)) ||
        (st = get_array(c, "patchClientsArray", in->patchClientsArrayAddr, in->patchClientsArrayCount, 12, &clients, err)) ||
        (st = get_array(c, "patchClientExportsArray", in->patchClientExportsArrayAddr, in->patchClientExportsArrayCount, 12,
                        &cexports, err)) ||
        (st = get_array(c, "patchLocationArray", in->patchLocationArrayAddr, in->patchLocationArrayCount, 8, &locs, err)) ||
        (st = get_array(c, "patchExportNames", in->patchExportNamesAddr, in->patchExportNamesSize, 1, &names, err)) ||
        (st = get_array(c, "gotClientsArray", in->gotClientsArrayAddr, v3 ? in->gotClientsArrayCount : 0, 8, &gclients, err)) ||
        (st = get_array(c, "gotClientExportsArray", in->gotClientExportsArrayAddr, v3 ? in->gotClientExportsArrayCount : 0, 12,
                        &gexports, err)) ||
        (st = get_array(c, "gotLocationArray", in->gotLocationArrayAddr, v3 ? in->gotLocationArrayCount : 0, 16, &glocs, err)))
        return st;
    for (size_t i = i0; i < i1 && i < images.count; i++) {
        const uint8_t *ip = elem(&images, i);
        uint32_t cstart = dk_le32(ip), cn = dk_le32(ip + 4), estart = dk_le32(ip + 8), en = dk_le32(ip + 12);
        if ((st = range_ok(&clients, cstart, cn, "image", "patchClientsArray", i, err)) ||
            (st = range_ok(&iexports, estart, en, "image", "patchImageExportsArray", i, err)))
            return st;
        uint64_t base = i < c->nimages ? c->images[i].address : c->base;
        dk_cache_patch p;
        memset(&p, 0, sizeof p);
        p.image = (uint32_t)i;
        p.client = -1;
        /* exports of image i */
        for (uint32_t k = 0; k < en; k++) {
            const uint8_t *e = elem(&iexports, (uint64_t)estart + k);
            uint32_t w = dk_le32(e + 4);
            p.event = DK_PATCH_EXPORT;
            p.export_address = base + dk_le32(e);
            p.patch_kind = w >> 28;
            if ((st = export_name(&names, w & 0x0FFFFFFF, &p.export_name, err))) return st;
            if (cb(ctx, &p)) return DK_E_STOPPED;
        }
        /* uses by client images */
        for (uint32_t k = 0; k < cn; k++) {
            const uint8_t *cl = elem(&clients, (uint64_t)cstart + k);
            uint32_t client = dk_le32(cl), xstart = dk_le32(cl + 4), xn = dk_le32(cl + 8);
            if (client >= c->nimages)
                return FAIL(err, "patch table: image %zu: client image index %u out of range (%zu images)", i, client, c->nimages);
            if ((st = range_ok(&cexports, xstart, xn, "client", "patchClientExportsArray", (uint64_t)cstart + k, err))) return st;
            for (uint32_t x = 0; x < xn; x++) {
                const uint8_t *ce = elem(&cexports, (uint64_t)xstart + x);
                uint32_t ei = dk_le32(ce), lstart = dk_le32(ce + 4), ln = dk_le32(ce + 8);
                if (ei >= iexports.count)
                    return FAIL(err, "patch table: client export %llu: imageExportIndex %u out of range (%llu exports)",
                                (unsigned long long)xstart + x, ei, (unsigned long long)iexports.count);
                if ((st = range_ok(&locs, lstart, ln, "client export", "patchLocationArray", (uint64_t)xstart + x, err)))
                    return st;
                const uint8_t *e = elem(&iexports, ei);
                uint32_t w = dk_le32(e + 4);
                dk_cache_patch u = p;
                u.event = DK_PATCH_USE;
                u.export_address = base + dk_le32(e);
                u.patch_kind = w >> 28;
                u.client = client;
                if ((st = export_name(&names, w & 0x0FFFFFFF, &u.export_name, err))) return st;
                for (uint32_t l = 0; l < ln; l++) {
                    const uint8_t *q = elem(&locs, (uint64_t)lstart + l);
                    u.location = c->images[client].address + dk_le32(q);
                    if (v4) bits_v4(dk_le32(q + 4), &u);
                    else bits_v1(dk_le32(q + 4), &u);
                    if (cb(ctx, &u)) return DK_E_STOPPED;
                }
            }
        }
        /* uses through uniqued GOTs (v3+) */
        if (v3 && i < gclients.count) {
            const uint8_t *g = elem(&gclients, i);
            uint32_t xstart = dk_le32(g), xn = dk_le32(g + 4);
            if ((st = range_ok(&gexports, xstart, xn, "image", "gotClientExportsArray", i, err))) return st;
            for (uint32_t x = 0; x < xn; x++) {
                const uint8_t *ce = elem(&gexports, (uint64_t)xstart + x);
                uint32_t ei = dk_le32(ce), lstart = dk_le32(ce + 4), ln = dk_le32(ce + 8);
                if (ei >= iexports.count)
                    return FAIL(err, "patch table: GOT client export %llu: imageExportIndex %u out of range (%llu exports)",
                                (unsigned long long)xstart + x, ei, (unsigned long long)iexports.count);
                if ((st = range_ok(&glocs, lstart, ln, "GOT client export", "gotLocationArray", (uint64_t)xstart + x, err)))
                    return st;
                const uint8_t *e = elem(&iexports, ei);
                uint32_t w = dk_le32(e + 4);
                dk_cache_patch u = p;
                u.event = DK_PATCH_GOT_USE;
                u.export_address = base + dk_le32(e);
                u.patch_kind = w >> 28;
                if ((st = export_name(&names, w & 0x0FFFFFFF, &u.export_name, err))) return st;
                for (uint32_t l = 0; l < ln; l++) {
                    const uint8_t *q = elem(&glocs, (uint64_t)lstart + l);
                    u.location = c->base + dk_le64(q);
                    if (v4) bits_v4(dk_le32(q + 8), &u);
                    else bits_v1(dk_le32(q + 8), &u);
                    if (cb(ctx, &u)) return DK_E_STOPPED;
                }
            }
        }
    }
    return DK_OK;
}

dk_status dk_cache_foreach_patch(dk_cache *c, long image, dk_cache_patch_cb cb, void *ctx, dk_error *err)
{
    dk_cache_patch_info in;
    dk_status st = dk_cache_patch_table(c, &in, err);
    if (st) return st;
    if (image >= 0 && (size_t)image >= c->nimages) return dk_fail(err, DK_E_ARG, "no image %ld", image);
    size_t i0 = image >= 0 ? (size_t)image : 0, i1 = image >= 0 ? (size_t)image + 1 : c->nimages;
    return in.version == 1 ? foreach_v1(c, &in, i0, i1, cb, ctx, err) : foreach_v2(c, &in, i0, i1, cb, ctx, err);
}
