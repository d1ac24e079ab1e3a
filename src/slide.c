/*
 * Slide info: where the cache's interior pointers are and what they point to.
 * Follows Apple's <mach-o/dyld_cache_format.h> (dyld_cache_slide_info,
 * dyld_cache_slide_info2/3/4/5, dyld_cache_slide_pointer3/5) and the runtime
 * walks in common/DyldSharedCache.cpp / dyld/SharedCacheRuntime.cpp
 * (rebaseChainV2/V4, the v3/v5 loops, "initial offset is byte based").
 *
 *  v1  a bitmap per 4 KiB page (toc -> 128-byte entry); the word itself is the target.
 *  v2  per-page chains in unused pointer bits (delta_mask), page extras for
 *      pages needing several chains; value + value_add.
 *  v3  arm64e: plain pointers pack a 51-bit target (high8 in bits 43-50),
 *      authenticated ones a 32-bit offset from auth_value_add plus PAC data.
 *  v4  32-bit: like v2 with small positive/negative non-pointers in the chain.
 *  v5  arm64e caches > 4 GB: 34-bit runtimeOffset from value_add, high8, PAC.
 *
 * Every walk is bounded: each 4-byte slot of a page may be visited once (a
 * chain that loops or two chains that cross are errors), chains must stay in
 * their page, and every index is range-checked.
 */
#include "cache_internal.h"

#include <stdio.h>

#define V2_ATTR_EXTRA 0x8000u
#define V2_ATTR_NO_REBASE 0x4000u
#define V2_ATTR_END 0x8000u
#define V4_NO_REBASE 0xFFFFu
#define V4_INDEX 0x7FFFu
#define V4_USE_EXTRA 0x8000u
#define V4_EXTRA_END 0x8000u
#define V35_NO_REBASE 0xFFFFu

static bool page_size_ok(uint32_t ps) { return ps >= 1024 && ps <= 65536 && (ps & (ps - 1)) == 0; }

static unsigned ctz64(uint64_t v)
{
    if (!v) return 64;
    unsigned n = 0;
    while (!(v & 1)) {
        v >>= 1;
        n++;
    }
    return n;
}

/* deltaShift = ctz(delta_mask) - 2 (a delta counts 4-byte units); false for a mask without one. */
static bool delta_shift(const dk_slide_info *in, unsigned *shift)
{
    unsigned tz = ctz64(in->delta_mask);
    if (tz < 2 || tz >= 64) return false;
    *shift = tz - 2;
    return true;
}

uint16_t dk_slide_page_start(const dk_slide_info *in, uint32_t i)
{
    if (i >= in->page_starts_count) return 0;
    uint32_t off = in->version == 1 ? in->toc_offset : in->page_starts_offset;
    return dk_le16(in->blob + off + (uint64_t)i * 2);
}

uint16_t dk_slide_page_extra(const dk_slide_info *in, uint32_t i)
{
    if (i >= in->page_extras_count || (in->version != 2 && in->version != 4)) return 0;
    return dk_le16(in->blob + in->page_extras_offset + (uint64_t)i * 2);
}

/* Messages name the slide info version, the mapping and the blob's file offset. */
static dk_status slide_fail_v(dk_error *err, const dk_slide_region *r, uint32_t version, const char *fmt, va_list ap)
{
    if (!err) return DK_E_MALFORMED;
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return dk_fail(err, DK_E_MALFORMED, "slide info v%u of %s (file offset 0x%llx): %s", version,
                   r->name ? r->name : "mapping", (unsigned long long)r->blob_file_offset, msg);
}

typedef struct slide_walk {
    const dk_slide_region *r;
    const dk_slide_info *in;
    dk_error *err;
} slide_walk;

static dk_status wfail(const slide_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static dk_status wfail(const slide_walk *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dk_status st = slide_fail_v(w->err, w->r, w->in->version, fmt, ap);
    va_end(ap);
    return st;
}

/* ----------------------------------------------------------------- parse */

dk_status dk_slide_parse(const dk_slide_region *r, dk_slide_info *out, dk_error *err)
{
    memset(out, 0, sizeof *out);
    const uint8_t *b = r->blob;
    uint64_t bs = r->blob_size;
    slide_walk w = {r, out, err};
    if (bs < 4) {
        out->version = 0;
        return wfail(&w, "blob of %llu bytes has no version", (unsigned long long)bs);
    }
    out->version = dk_le32(b);
    out->blob = b;
    out->blob_size = bs;
    out->pointer_size = r->pointer_size;
    uint64_t npages;
    switch (out->version) {
    case 1:
        if (bs < 24) return wfail(&w, "header (24 bytes) extends past the blob (%llu bytes)", (unsigned long long)bs);
        out->toc_offset = dk_le32(b + 4);
        out->toc_count = dk_le32(b + 8);
        out->entries_offset = dk_le32(b + 12);
        out->entries_count = dk_le32(b + 16);
        out->entries_size = dk_le32(b + 20);
        out->page_size = 4096;
        out->page_starts_offset = out->toc_offset;
        out->page_starts_count = out->toc_count;
        if (out->entries_size != 128)
            return wfail(&w, "entries_size %u is not 128 (one bit per 4-byte word of a 4 KiB page)", out->entries_size);
        if (!dk_range_ok(out->toc_offset, (uint64_t)out->toc_count * 2, bs))
            return wfail(&w, "toc (offset 0x%x, %u entries) extends past the blob (0x%llx bytes)", out->toc_offset,
                         out->toc_count, (unsigned long long)bs);
        if (!dk_range_ok(out->entries_offset, (uint64_t)out->entries_count * 128, bs))
            return wfail(&w, "entries (offset 0x%x, %u x 128 bytes) extend past the blob (0x%llx bytes)", out->entries_offset,
                         out->entries_count, (unsigned long long)bs);
        break;
    case 2:
    case 4:
        if (bs < 40) return wfail(&w, "header (40 bytes) extends past the blob (%llu bytes)", (unsigned long long)bs);
        out->page_size = dk_le32(b + 4);
        out->page_starts_offset = dk_le32(b + 8);
        out->page_starts_count = dk_le32(b + 12);
        out->page_extras_offset = dk_le32(b + 16);
        out->page_extras_count = dk_le32(b + 20);
        out->delta_mask = dk_le64(b + 24);
        out->value_add = dk_le64(b + 32);
        if (out->version == 4) out->pointer_size = 4;
        if (!page_size_ok(out->page_size)) return wfail(&w, "bad page_size 0x%x", out->page_size);
        if (!dk_range_ok(out->page_starts_offset, (uint64_t)out->page_starts_count * 2, bs))
            return wfail(&w, "page_starts (offset 0x%x, %u entries) extend past the blob (0x%llx bytes)",
                         out->page_starts_offset, out->page_starts_count, (unsigned long long)bs);
        if (!dk_range_ok(out->page_extras_offset, (uint64_t)out->page_extras_count * 2, bs))
            return wfail(&w, "page_extras (offset 0x%x, %u entries) extend past the blob (0x%llx bytes)",
                         out->page_extras_offset, out->page_extras_count, (unsigned long long)bs);
        if (out->delta_mask == 0 || ctz64(out->delta_mask) < 2)
            return wfail(&w, "delta_mask 0x%llx has no usable delta bits", (unsigned long long)out->delta_mask);
        if (out->pointer_size == 4 && out->delta_mask > 0xFFFFFFFFull)
            return wfail(&w, "delta_mask 0x%llx does not fit a 32-bit pointer", (unsigned long long)out->delta_mask);
        break;
    case 3:
    case 5:
        if (bs < 24) return wfail(&w, "header (24 bytes) extends past the blob (%llu bytes)", (unsigned long long)bs);
        out->page_size = dk_le32(b + 4);
        out->page_starts_count = dk_le32(b + 8);
        out->value_add = dk_le64(b + 16);
        out->page_starts_offset = 24;
        out->pointer_size = 8;
        if (!page_size_ok(out->page_size)) return wfail(&w, "bad page_size 0x%x", out->page_size);
        if (!dk_range_ok(24, (uint64_t)out->page_starts_count * 2, bs))
            return wfail(&w, "page_starts (%u entries) extend past the blob (0x%llx bytes)", out->page_starts_count,
                         (unsigned long long)bs);
        break;
    default:
        return dk_fail(err, DK_E_UNSUPPORTED, "slide info of %s (file offset 0x%llx): unknown version %u",
                       r->name ? r->name : "mapping", (unsigned long long)r->blob_file_offset, out->version);
    }
    if (out->pointer_size != 4 && out->pointer_size != 8) return wfail(&w, "pointer size %u", out->pointer_size);
    npages = (r->data_size + out->page_size - 1) / out->page_size;
    if (out->page_starts_count > npages)
        return wfail(&w, "%s (%u) is larger than the mapping's %llu pages of 0x%x bytes",
                     out->version == 1 ? "toc_count" : "page_starts_count", out->page_starts_count,
                     (unsigned long long)npages, out->page_size);
    return DK_OK;
}

/* ---------------------------------------------------------------- decode */

bool dk_slide_decode(const dk_slide_info *in, uint64_t address, uint64_t raw, dk_slide_pointer *p)
{
    memset(p, 0, sizeof *p);
    p->address = address;
    p->raw = raw;
    switch (in->version) {
    case 1:
        p->target = raw;
        return true;
    case 2: {
        unsigned shift;
        if (!delta_shift(in, &shift)) return false;
        if (in->pointer_size == 4) {
            uint32_t mask = (uint32_t)in->delta_mask, r32 = (uint32_t)raw;
            p->raw = r32;
            p->next = (r32 & mask) >> shift;
            uint32_t value = r32 & ~mask;
            if (value == 0) return false;
            p->target = (uint32_t)(value + (uint32_t)in->value_add);
            return true;
        }
        p->next = (uint32_t)((raw & in->delta_mask) >> shift);
        uint64_t value = raw & ~in->delta_mask;
        if (value == 0) return false;
        p->target = value + in->value_add;
        p->high8 = (uint8_t)(p->target >> 56);
        return true;
    }
    case 3:
        p->next = (uint32_t)((raw >> 51) & 0x7FF);
        if (raw >> 63) {
            p->auth = true;
            p->diversity = (uint16_t)(raw >> 32);
            p->addr_div = (raw >> 48) & 1;
            p->key = (uint8_t)((raw >> 49) & 3);
            p->target = in->value_add + (raw & 0xFFFFFFFFull);
        } else {
            uint64_t v51 = raw & 0x7FFFFFFFFFFFFull;
            p->high8 = (uint8_t)(v51 >> 43);
            p->target = ((uint64_t)p->high8 << 56) | (v51 & 0x7FFFFFFFFFFull);
        }
        return true;
    case 4: {
        uint32_t mask = (uint32_t)in->delta_mask, r32 = (uint32_t)raw;
        unsigned shift;
        if (!delta_shift(in, &shift)) return false;
        p->raw = r32;
        p->next = (r32 & mask) >> shift;
        uint32_t value = r32 & ~mask;
        if ((value & 0xFFFF8000u) == 0) return false;                 /* small positive non-pointer */
        if ((value & 0x3FFF8000u) == 0x3FFF8000u) return false;       /* small negative non-pointer */
        p->target = (uint32_t)(value + (uint32_t)in->value_add);
        return true;
    }
    case 5: {
        p->next = (uint32_t)((raw >> 52) & 0x7FF);
        uint64_t off = raw & 0x3FFFFFFFFull;
        p->target = in->value_add + off;
        if (raw >> 63) {
            p->auth = true;
            p->diversity = (uint16_t)(raw >> 34);
            p->addr_div = (raw >> 50) & 1;
            p->key = ((raw >> 51) & 1) ? DK_KEY_DA : DK_KEY_IA; /* only A keys */
        } else {
            p->high8 = (uint8_t)(raw >> 34);
            p->target |= (uint64_t)p->high8 << 56;
        }
        return true;
    }
    }
    return false;
}

/* ------------------------------------------------------------------ walks */

/* One page's bytes: [base, base+len) of the mapping. */
typedef struct page_view {
    uint32_t index;
    uint64_t base;     /* offset of the page in the mapping */
    uint32_t len;      /* bytes of the page inside the mapping */
    uint8_t *visited;  /* one bit per 4-byte slot */
    uint8_t *ptrs;     /* slots that hold pointers */
} page_view;

static bool bit_get(const uint8_t *b, uint32_t i) { return (b[i >> 3] >> (i & 7)) & 1; }
static void bit_set(uint8_t *b, uint32_t i) { b[i >> 3] |= (uint8_t)(1u << (i & 7)); }

static uint64_t read_raw(const slide_walk *w, const page_view *pg, uint32_t off)
{
    const uint8_t *q = w->r->data + pg->base + off;
    return w->in->pointer_size == 8 ? dk_le64(q) : dk_le32(q);
}

/* Mark the slot at OFF visited (errors on a revisit or a location outside the page). */
static dk_status visit(const slide_walk *w, page_view *pg, uint32_t off, uint32_t chain_start)
{
    unsigned ps = w->in->pointer_size;
    if (off >= pg->len || pg->len - off < ps)
        return wfail(w, "page %u: chain starting at page offset 0x%x leaves the page at offset 0x%x (page has 0x%x bytes)",
                     pg->index, chain_start, off, pg->len);
    if (off & 3) return wfail(w, "page %u: chain location 0x%x is not 4-byte aligned", pg->index, off);
    uint32_t slot = off / 4;
    if (bit_get(pg->visited, slot))
        return wfail(w, "page %u: chain starting at page offset 0x%x visits offset 0x%x a second time (loop)", pg->index,
                     chain_start, off);
    bit_set(pg->visited, slot);
    return DK_OK;
}

/* Walk one v2/v4 chain from byte offset START. */
static dk_status chain_delta(const slide_walk *w, page_view *pg, uint32_t start)
{
    uint64_t off = start;
    for (;;) {
        if (off > UINT32_MAX) off = UINT32_MAX;
        dk_status st = visit(w, pg, (uint32_t)off, start);
        if (st) return st;
        uint64_t raw = read_raw(w, pg, (uint32_t)off);
        dk_slide_pointer p;
        if (dk_slide_decode(w->in, w->r->address + pg->base + off, raw, &p)) bit_set(pg->ptrs, (uint32_t)off / 4);
        if (p.next == 0) return DK_OK;
        off += p.next;
    }
}

/* Walk one v3/v5 chain from byte offset START (8-byte stride). */
static dk_status chain_stride8(const slide_walk *w, page_view *pg, uint32_t start)
{
    uint64_t off = (start / 8) * 8; /* Apple: the initial offset is byte based, then in pointer units */
    for (;;) {
        if (off > UINT32_MAX) off = UINT32_MAX;
        dk_status st = visit(w, pg, (uint32_t)off, start);
        if (st) return st;
        uint64_t raw = read_raw(w, pg, (uint32_t)off);
        dk_slide_pointer p;
        dk_slide_decode(w->in, w->r->address + pg->base + off, raw, &p);
        bit_set(pg->ptrs, (uint32_t)off / 4);
        if (p.next == 0) return DK_OK;
        off += (uint64_t)p.next * 8;
    }
}

/* Fill PG->ptrs (and visited) for one page. */
static dk_status walk_page(const slide_walk *w, page_view *pg)
{
    const dk_slide_info *in = w->in;
    uint16_t s = dk_slide_page_start(in, pg->index);
    switch (in->version) {
    case 1: {
        if (s >= in->entries_count)
            return wfail(w, "page %u: toc entry %u out of range (entries_count %u)", pg->index, s, in->entries_count);
        const uint8_t *bm = in->blob + in->entries_offset + (uint64_t)s * 128;
        for (uint32_t k = 0; k < 1024; k++) {
            if (!bit_get(bm, k)) continue;
            dk_status st = visit(w, pg, k * 4, k * 4);
            if (st) return st;
            bit_set(pg->ptrs, k);
        }
        return DK_OK;
    }
    case 2:
    case 4: {
        bool v2 = in->version == 2;
        if (v2 ? s == V2_ATTR_NO_REBASE : s == V4_NO_REBASE) return DK_OK;
        if (s & (v2 ? V2_ATTR_EXTRA : V4_USE_EXTRA)) {
            uint32_t idx = s & (v2 ? 0x3FFFu : V4_INDEX);
            for (;;) {
                if (idx >= in->page_extras_count)
                    return wfail(w, "page %u: page_extras index %u out of range (page_extras_count %u)", pg->index, idx,
                                 in->page_extras_count);
                uint16_t e = dk_slide_page_extra(in, idx);
                uint32_t start = (uint32_t)(e & (v2 ? 0x3FFFu : V4_INDEX)) * 4;
                dk_status st = chain_delta(w, pg, start);
                if (st) return st;
                if (e & (v2 ? V2_ATTR_END : V4_EXTRA_END)) return DK_OK;
                idx++;
            }
        }
        return chain_delta(w, pg, (uint32_t)s * 4);
    }
    case 3:
    case 5:
        if (s == V35_NO_REBASE) return DK_OK;
        return chain_stride8(w, pg, s);
    }
    return wfail(w, "unknown version");
}

static dk_status page_setup(const dk_slide_region *r, const dk_slide_info *in, uint32_t page, page_view *pg)
{
    pg->index = page;
    pg->base = (uint64_t)page * in->page_size;
    uint64_t left = r->data_size > pg->base ? r->data_size - pg->base : 0;
    pg->len = (uint32_t)(left < in->page_size ? left : in->page_size);
    memset(pg->visited, 0, in->page_size / 32);
    memset(pg->ptrs, 0, in->page_size / 32);
    return DK_OK;
}

dk_status dk_slide_foreach(const dk_slide_region *r, dk_slide_cb cb, void *ctx, dk_error *err)
{
    dk_slide_info in;
    dk_status st = dk_slide_parse(r, &in, err);
    if (st) return st;
    slide_walk w = {r, &in, err};
    page_view pg;
    size_t bm = in.page_size / 32;
    pg.visited = malloc(bm);
    pg.ptrs = malloc(bm);
    if (!pg.visited || !pg.ptrs) {
        free(pg.visited);
        free(pg.ptrs);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < in.page_starts_count && !st; i++) {
        page_setup(r, &in, i, &pg);
        if ((st = walk_page(&w, &pg))) break;
        uint32_t nslots = pg.len / 4;
        for (uint32_t k = 0; k < nslots; k++) {
            if (!bit_get(pg.ptrs, k)) continue;
            uint64_t off = pg.base + (uint64_t)k * 4;
            dk_slide_pointer p;
            dk_slide_decode(&in, r->address + off, read_raw(&w, &pg, k * 4), &p);
            p.page = i;
            if (cb(ctx, &p)) {
                st = DK_E_STOPPED;
                break;
            }
        }
    }
    free(pg.visited);
    free(pg.ptrs);
    return st;
}

/* ------------------------------------------------------- cache integration */

dk_status dk__cache_slide_init(dk_cache *c, dk_error *err)
{
    c->slides = calloc(c->nmaps ? c->nmaps : 1, sizeof *c->slides);
    if (!c->slides) return dk_fail(err, DK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < c->nmaps; i++) {
        const dk_cache_mapping *m = &c->maps[i];
        dk__slide_state *s = &c->slides[i];
        if (!m->slideInfoFileOffset) continue;
        const dk_cache_file *f = &c->files[m->file];
        snprintf(s->name, sizeof s->name, "mapping %zu (%s)", i, f->name);
        s->region.blob = f->data + m->slideInfoFileOffset;
        s->region.blob_size = m->slideInfoFileSize;
        s->region.data = f->data + m->fileOffset;
        s->region.data_size = m->size;
        s->region.address = m->address;
        s->region.pointer_size = c->ptr_size;
        s->region.name = s->name;
        s->region.blob_file_offset = m->slideInfoFileOffset;
        dk_status st = dk_slide_parse(&s->region, &s->info, err);
        if (st) return st;
        s->pages = calloc(s->info.page_starts_count ? s->info.page_starts_count : 1, sizeof *s->pages);
        if (!s->pages) return dk_fail(err, DK_E_NOMEM, "out of memory");
        s->present = true;
    }
    return DK_OK;
}

void dk__cache_slide_free(dk_cache *c)
{
    if (!c->slides) return;
    for (size_t i = 0; i < c->nmaps; i++) {
        dk__slide_state *s = &c->slides[i];
        if (!s->pages) continue;
        for (uint32_t p = 0; p < s->info.page_starts_count; p++) free(atomic_load(&s->pages[p]));
        free(s->pages);
    }
    free(c->slides);
    c->slides = NULL;
}

dk_status dk_cache_slide_info(const dk_cache *c, size_t mapping, dk_slide_info *out, dk_error *err)
{
    if (mapping >= c->nmaps) return dk_fail(err, DK_E_ARG, "no mapping %zu", mapping);
    if (!c->slides[mapping].present) return dk_fail(err, DK_E_NOTFOUND, "mapping %zu has no slide info", mapping);
    *out = c->slides[mapping].info;
    return DK_OK;
}

dk_status dk_cache_foreach_slide_pointer(const dk_cache *c, size_t mapping, dk_slide_cb cb, void *ctx, dk_error *err)
{
    if (mapping >= c->nmaps) return dk_fail(err, DK_E_ARG, "no mapping %zu", mapping);
    if (!c->slides[mapping].present) return dk_fail(err, DK_E_NOTFOUND, "mapping %zu has no slide info", mapping);
    return dk_slide_foreach(&c->slides[mapping].region, cb, ctx, err);
}

/* The pointer bitmap of one page, built on first use (lock-free publish). A page
 * whose chains are malformed gets an empty bitmap: its words read as plain values. */
static const uint8_t *page_ptr_bits(dk__slide_state *s, uint32_t page)
{
    uint8_t *bits = atomic_load(&s->pages[page]);
    if (bits) return bits;
    size_t bm = s->info.page_size / 32;
    uint8_t *visited = malloc(bm);
    bits = malloc(bm);
    if (!visited || !bits) {
        free(visited);
        free(bits);
        return NULL;
    }
    page_view pg;
    pg.visited = visited;
    pg.ptrs = bits;
    page_setup(&s->region, &s->info, page, &pg);
    slide_walk w = {&s->region, &s->info, NULL};
    if (walk_page(&w, &pg)) memset(bits, 0, bm);
    free(visited);
    uint8_t *expected = NULL;
    if (!atomic_compare_exchange_strong(&s->pages[page], &expected, bits)) {
        free(bits);
        return expected;
    }
    return bits;
}

/* Is ADDR (in mapping MI) on a slide chain, as a pointer? */
static bool on_chain(dk_cache *c, long mi, uint64_t addr)
{
    dk__slide_state *s = &c->slides[mi];
    if (!s->present) return false;
    uint64_t off = addr - c->maps[mi].address;
    if (off & 3) return false;
    uint64_t page = off / s->info.page_size;
    if (page >= s->info.page_starts_count) return false;
    const uint8_t *bits = page_ptr_bits(s, (uint32_t)page);
    if (!bits) return false;
    return bit_get(bits, (uint32_t)((off % s->info.page_size) / 4));
}

const uint8_t *dk__cache_page_bits(dk_cache *c, long mi, uint64_t page, uint32_t *page_size)
{
    dk__slide_state *s = &c->slides[mi];
    if (!s->present) return NULL;
    *page_size = s->info.page_size;
    if (page >= s->info.page_starts_count) return NULL;
    return page_ptr_bits(s, (uint32_t)page);
}

bool dk__cache_decode_ptr(void *ctx, uint64_t vmaddr, uint64_t raw, uint64_t *value)
{
    dk_cache *c = ctx;
    long mi = dk_cache_mapping_at(c, vmaddr);
    if (mi < 0 || !on_chain(c, mi, vmaddr)) return false;
    dk_slide_pointer p;
    if (!dk_slide_decode(&c->slides[mi].info, vmaddr, raw, &p)) return false;
    *value = p.target;
    return true;
}

dk_status dk_cache_read_pointer(dk_cache *c, uint64_t addr, dk_slide_pointer *out, bool *rebased, dk_error *err)
{
    memset(out, 0, sizeof *out);
    *rebased = false;
    long mi = dk_cache_mapping_at(c, addr);
    if (mi < 0) return dk_fail(err, DK_E_NOTFOUND, "address 0x%llx is not in any mapping", (unsigned long long)addr);
    unsigned ps = c->slides[mi].present ? c->slides[mi].info.pointer_size : c->ptr_size;
    const uint8_t *p = dk_cache_read(c, addr, ps, NULL);
    if (!p) return dk_fail(err, DK_E_MALFORMED, "pointer at 0x%llx crosses the end of its mapping", (unsigned long long)addr);
    uint64_t raw = ps == 8 ? dk_le64(p) : dk_le32(p);
    if (on_chain(c, mi, addr) && dk_slide_decode(&c->slides[mi].info, addr, raw, out)) {
        *rebased = true;
        return DK_OK;
    }
    out->address = addr;
    out->raw = raw;
    out->target = raw;
    return DK_OK;
}
