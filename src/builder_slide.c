/*
 * Cache builder, slide info: encode every pointer of a data mapping the way
 * dyld_cache_format.h defines each version (dsc-format.md section 3):
 *   v1 bitmap (one bit per 4-byte word), v2 delta chains (arm64, x86_64),
 *   v3 arm64e chains with pointer authentication, v4 32-bit chains with page
 *   extras, v5 arm64e chains with 34-bit runtime offsets.
 * The pointer values were written unslid into the mapping by the fixup pass;
 * here they are re-encoded in place.
 */
#include "builder_internal.h"

static int ptr_cmp(const void *a, const void *b)
{
    const slide_ptr *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Sort and drop duplicate addresses (the last record wins). */
static void sort_ptrs(region *r)
{
    if (r->nptrs > 1) qsort(r->ptrs, r->nptrs, sizeof *r->ptrs, ptr_cmp);
    size_t w = 0;
    for (size_t i = 0; i < r->nptrs; i++) {
        if (w && r->ptrs[w - 1].addr == r->ptrs[i].addr) w--;
        r->ptrs[w++] = r->ptrs[i];
    }
    r->nptrs = w;
}

static uint8_t *loc(region *r, uint64_t a) { return r->buf + (a - r->addr); }

static dk_status encode_v2(builder *b, region *r)
{
    const uint64_t page = 4096, mask = 0x00FFFF0000000000ull;
    const unsigned shift = 38; /* ctz(mask) - 2: deltas are stored in 4-byte units */
    uint64_t value_add = b->x86_64 ? b->base : 0;
    uint64_t npages = (r->map_size + page - 1) / page;
    dk_buf *o = &r->slide;
    dk_buf_u32(o, 2);
    dk_buf_u32(o, (uint32_t)page);
    dk_buf_u32(o, 40);                 /* page_starts_offset */
    dk_buf_u32(o, (uint32_t)npages);   /* page_starts_count */
    dk_buf_u32(o, (uint32_t)(40 + 2 * npages)); /* page_extras_offset */
    dk_buf_u32(o, 0);                  /* page_extras_count */
    dk_buf_u64(o, mask);
    dk_buf_u64(o, value_add);
    size_t starts = dk_buf_reserve(o, 2 * npages);
    for (uint64_t pg = 0; pg < npages && !o->oom; pg++) dk_wr16le(o->data + starts + 2 * pg, 0x4000); /* DYLD_CACHE_SLIDE_PAGE_ATTR_NO_REBASE */
    size_t i = 0;
    while (i < r->nptrs) {
        uint64_t pg = (r->ptrs[i].addr - r->map_addr) / page;
        size_t j = i;
        while (j < r->nptrs && (r->ptrs[j].addr - r->map_addr) / page == pg) j++;
        r->at = r->ptrs[i].addr;
        if (r->ptrs[i].addr % 4) return dk_fail(b->err, DK_E_UNSUPPORTED, "pointer at 0x%llx is not 4-byte aligned", (unsigned long long)r->ptrs[i].addr);
        if (!o->oom) dk_wr16le(o->data + starts + 2 * pg, (uint16_t)(((r->ptrs[i].addr - r->map_addr) % page) / 4));
        for (size_t k = i; k < j; k++) {
            const slide_ptr *p = &r->ptrs[k];
            r->at = p->addr;
            if (p->auth)
                return dk_fail(b->err, DK_E_UNSUPPORTED, "authenticated pointer at 0x%llx cannot be described by slide info v2",
                               (unsigned long long)p->addr);
            uint64_t v = (p->target | ((uint64_t)p->high8 << 56)) - value_add;
            if (v & mask)
                return dk_fail(b->err, DK_E_UNSUPPORTED, "pointer at 0x%llx (target 0x%llx) collides with the v2 delta bits",
                               (unsigned long long)p->addr, (unsigned long long)p->target);
            if (v == 0) return dk_fail(b->err, DK_E_UNSUPPORTED, "pointer at 0x%llx stores 0, which v2 reads as no pointer", (unsigned long long)p->addr);
            uint64_t delta = k + 1 < j ? r->ptrs[k + 1].addr - p->addr : 0;
            if (delta % 4 || delta / 4 > 0xFFFF)
                return dk_fail(b->err, DK_E_UNSUPPORTED, "pointers at 0x%llx and 0x%llx cannot be chained", (unsigned long long)p->addr,
                               (unsigned long long)(p->addr + delta));
            dk_wr64le(loc(r, p->addr), v | ((delta << shift) & mask));
        }
        i = j;
    }
    return DK_OK;
}

/* v3 / v5: arm64e chains, 8-byte stride, byte-offset page starts. */
static dk_status encode_v35(builder *b, region *r, int version)
{
    const uint64_t page = version == 5 ? 16384 : 4096;
    uint64_t npages = (r->map_size + page - 1) / page;
    dk_buf *o = &r->slide;
    dk_buf_u32(o, (uint32_t)version);
    dk_buf_u32(o, (uint32_t)page);
    dk_buf_u32(o, (uint32_t)npages);
    dk_buf_u32(o, 0);
    dk_buf_u64(o, b->base); /* auth_value_add (v3) / value_add (v5) */
    size_t starts = dk_buf_reserve(o, 2 * npages);
    for (uint64_t pg = 0; pg < npages && !o->oom; pg++) dk_wr16le(o->data + starts + 2 * pg, 0xFFFF);
    size_t i = 0;
    while (i < r->nptrs) {
        uint64_t pg = (r->ptrs[i].addr - r->map_addr) / page;
        size_t j = i;
        while (j < r->nptrs && (r->ptrs[j].addr - r->map_addr) / page == pg) j++;
        if (!o->oom) dk_wr16le(o->data + starts + 2 * pg, (uint16_t)((r->ptrs[i].addr - r->map_addr) % page));
        for (size_t k = i; k < j; k++) {
            const slide_ptr *p = &r->ptrs[k];
            r->at = p->addr;
            uint64_t delta = k + 1 < j ? r->ptrs[k + 1].addr - p->addr : 0;
            if (p->addr % 8 || delta % 8 || delta / 8 > 0x7FF)
                return dk_fail(b->err, DK_E_UNSUPPORTED, "arm64e pointer at 0x%llx is not 8-byte aligned or too far from the next",
                               (unsigned long long)p->addr);
            uint64_t next = delta / 8, v;
            if (version == 3) {
                if (p->auth) {
                    uint64_t off = p->target - b->base;
                    if (off >> 32) return dk_fail(b->err, DK_E_UNSUPPORTED, "auth pointer at 0x%llx: target beyond 4GB of the cache (use v5)", (unsigned long long)p->addr);
                    v = off | ((uint64_t)p->diversity << 32) | ((uint64_t)p->addr_div << 48) | ((uint64_t)(p->key & 3) << 49) | (next << 51) |
                        (1ull << 63);
                } else {
                    if (p->target >> 43) return dk_fail(b->err, DK_E_UNSUPPORTED, "pointer at 0x%llx: target does not fit 43 bits", (unsigned long long)p->addr);
                    v = p->target | ((uint64_t)p->high8 << 43) | (next << 51);
                }
            } else {
                uint64_t off = p->target - b->base;
                if (off >> 34) return dk_fail(b->err, DK_E_UNSUPPORTED, "pointer at 0x%llx: target beyond 16GB of the cache", (unsigned long long)p->addr);
                if (p->auth) {
                    if (p->key == DK_KEY_IB || p->key == DK_KEY_DB)
                        return dk_fail(b->err, DK_E_UNSUPPORTED, "pointer at 0x%llx uses key %s; slide info v5 carries only the A keys",
                                       (unsigned long long)p->addr, dk_key_name(p->key));
                    v = off | ((uint64_t)p->diversity << 34) | ((uint64_t)p->addr_div << 50) | ((uint64_t)(p->key == DK_KEY_DA) << 51) |
                        (next << 52) | (1ull << 63);
                } else {
                    v = off | ((uint64_t)p->high8 << 34) | (next << 52);
                }
            }
            dk_wr64le(loc(r, p->addr), v);
        }
        i = j;
    }
    return DK_OK;
}

/* v1: one 128-byte bitmap per 4 KiB page (a bit per 4-byte word), identical pages share an entry. */
static dk_status encode_v1(builder *b, region *r)
{
    const uint64_t page = 4096;
    uint64_t npages = (r->map_size + page - 1) / page;
    uint8_t *maps = calloc(npages ? npages : 1, 128);
    uint16_t *toc = calloc(npages ? npages : 1, sizeof *toc);
    if (!maps || !toc) {
        free(maps);
        free(toc);
        return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->nptrs; i++) {
        const slide_ptr *p = &r->ptrs[i];
        r->at = p->addr;
        if (p->auth) {
            free(maps);
            free(toc);
            return dk_fail(b->err, DK_E_UNSUPPORTED, "authenticated pointer at 0x%llx cannot be described by slide info v1", (unsigned long long)p->addr);
        }
        uint64_t off = p->addr - r->map_addr;
        uint64_t word = (off % page) / 4;
        maps[(off / page) * 128 + word / 8] |= (uint8_t)(1u << (word % 8));
        bld_write_ptr(b, p->addr, p->target | ((uint64_t)p->high8 << 56));
    }
    /* dedupe the bitmaps */
    uint64_t nentries = 0;
    uint8_t *entries = malloc((npages ? npages : 1) * 128);
    if (!entries) {
        free(maps);
        free(toc);
        return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    }
    for (uint64_t pg = 0; pg < npages; pg++) {
        uint64_t e = 0;
        while (e < nentries && memcmp(entries + e * 128, maps + pg * 128, 128) != 0) e++;
        if (e == nentries) memcpy(entries + nentries++ * 128, maps + pg * 128, 128);
        if (e > 0xFFFF) {
            free(maps);
            free(toc);
            free(entries);
            return dk_fail(b->err, DK_E_LIMIT, "slide info v1: more than 65536 distinct pages");
        }
        toc[pg] = (uint16_t)e;
    }
    dk_buf *o = &r->slide;
    uint32_t toc_off = 24, entries_off = (uint32_t)((24 + 2 * npages + 127) & ~(uint64_t)127);
    dk_buf_u32(o, 1);
    dk_buf_u32(o, toc_off);
    dk_buf_u32(o, (uint32_t)npages);
    dk_buf_u32(o, entries_off);
    dk_buf_u32(o, (uint32_t)nentries);
    dk_buf_u32(o, 128);
    for (uint64_t pg = 0; pg < npages; pg++) dk_buf_u16(o, toc[pg]);
    dk_buf_zeros(o, entries_off - o->len);
    dk_buf_bytes(o, entries, nentries * 128);
    free(maps);
    free(toc);
    free(entries);
    return DK_OK;
}

/* v4: 32-bit chains (delta mask 0xC0000000: next pointer at most 12 bytes on), so pages need extras. */
static dk_status encode_v4(builder *b, region *r)
{
    const uint64_t page = 4096;
    const uint32_t mask = 0xC0000000u;
    uint64_t npages = (r->map_size + page - 1) / page;
    uint64_t value_add = b->base;
    dk_buf starts = {0}, extras = {0};
    size_t nextras = 0;
    size_t i = 0;
    uint64_t pg_next = 0;
    dk_status st = DK_OK;
    while (i <= r->nptrs && pg_next < npages) {
        uint64_t pg = i < r->nptrs ? (r->ptrs[i].addr - r->map_addr) / page : npages;
        for (; pg_next < pg && pg_next < npages; pg_next++) dk_buf_u16(&starts, 0xFFFF); /* DYLD_CACHE_SLIDE4_PAGE_NO_REBASE */
        if (i == r->nptrs) break;
        size_t j = i;
        while (j < r->nptrs && (r->ptrs[j].addr - r->map_addr) / page == pg) j++;
        /* split the page's pointers into chains whose links are at most 12 bytes */
        size_t chains_start = nextras;
        size_t c0 = i;
        for (size_t k = i; k < j; k++) {
            const slide_ptr *p = &r->ptrs[k];
            r->at = p->addr;
            if (p->auth) {
                st = dk_fail(b->err, DK_E_UNSUPPORTED, "authenticated pointer at 0x%llx in a 32-bit cache", (unsigned long long)p->addr);
                goto out;
            }
            uint64_t v = p->target - value_add;
            if ((v & mask) || (v & 0xFFFF8000u) == 0 || (v & 0x3FFF8000u) == 0x3FFF8000u) {
                st = dk_fail(b->err, DK_E_UNSUPPORTED, "pointer at 0x%llx (target 0x%llx) cannot be encoded in slide info v4",
                             (unsigned long long)p->addr, (unsigned long long)p->target);
                goto out;
            }
            uint64_t delta = k + 1 < j ? r->ptrs[k + 1].addr - p->addr : 0;
            bool link = delta && delta <= 12 && delta % 4 == 0;
            dk_wr32le(loc(r, p->addr), (uint32_t)v | (uint32_t)(link ? (delta << 28) & mask : 0));
            if (k == c0) {
                dk_buf_u16(&extras, (uint16_t)(((p->addr - r->map_addr) % page) / 4));
                nextras++;
            }
            if (!link) c0 = k + 1;
        }
        if (nextras - chains_start == 1) {
            /* a single chain: the start goes in page_starts directly */
            nextras--;
            extras.len -= 2;
            dk_buf_u16(&starts, (uint16_t)(((r->ptrs[i].addr - r->map_addr) % page) / 4));
        } else {
            /* last extra of the page carries DYLD_CACHE_SLIDE4_PAGE_EXTRA_END */
            if (!extras.oom) dk_wr16le(extras.data + extras.len - 2, (uint16_t)(dk_le16(extras.data + extras.len - 2) | 0x8000));
            if (chains_start > 0x7FFF) {
                st = dk_fail(b->err, DK_E_LIMIT, "slide info v4: too many page extras");
                goto out;
            }
            dk_buf_u16(&starts, (uint16_t)(0x8000 | chains_start)); /* DYLD_CACHE_SLIDE4_PAGE_USE_EXTRA */
        }
        pg_next = pg + 1;
        i = j;
    }
    for (; pg_next < npages; pg_next++) dk_buf_u16(&starts, 0xFFFF);
    {
        dk_buf *o = &r->slide;
        dk_buf_u32(o, 4);
        dk_buf_u32(o, (uint32_t)page);
        dk_buf_u32(o, 40);
        dk_buf_u32(o, (uint32_t)npages);
        dk_buf_u32(o, (uint32_t)(40 + starts.len));
        dk_buf_u32(o, (uint32_t)nextras);
        dk_buf_u64(o, mask);
        dk_buf_u64(o, value_add);
        dk_buf_bytes(o, starts.data, starts.len);
        dk_buf_bytes(o, extras.data, extras.len);
    }
out:
    dk_buf_free(&starts);
    dk_buf_free(&extras);
    return st;
}

dk_status bld_slide_encode(builder *b, region *r)
{
    sort_ptrs(r);
    r->at = UINT64_MAX;
    dk_status st;
    switch (b->slide_version) {
    case 1: st = encode_v1(b, r); break;
    case 2: st = encode_v2(b, r); break;
    case 3: st = encode_v35(b, r, 3); break;
    case 4: st = encode_v4(b, r); break;
    case 5: st = encode_v35(b, r, 5); break;
    default: return dk_fail(b->err, DK_E_ARG, "unknown slide info version %d", b->slide_version);
    }
    if (!st && r->slide.oom) st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
    if (st) {
        const bimage *im = r->at != UINT64_MAX ? bld_image_at(b, r->at) : NULL;
        if (im) dk_error_prefix(b->err, "%s: %s mapping: ", im->path, r->name);
        else dk_error_prefix(b->err, "%s mapping: ", r->name);
    }
    return st;
}
