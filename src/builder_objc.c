/*
 * Cache builder, Objective-C: selector uniquing.  Every image's
 * __TEXT,__objc_methname strings are coalesced into one shared buffer in the
 * TEXT mapping (SectionCoalescer in Apple's builder); every pointer into them
 * (selector references, pointer method-list names, ivar names) is redirected;
 * relative method lists get their selector offsets rewritten (format 1042:
 * offsets from the shared selector base with flag 0x40000000, as
 * CacheDylib::convertObjCMethodListsToOffsets does; format 832: still through
 * their selector references, re-aimed for the new layout); every image's
 * __objc_imageinfo gets the optimized-by-dyld bit; the image's own copy of
 * the strings is cleared (coalesced away).  Protocols are uniqued: every
 * protocol list and reference points at one definition per name.
 */
#include "arm64.h"
#include "builder_internal.h"
#include "strpool.h"

#define RELATIVE_LIST 0x80000000u
#define SELECTORS_ARE_OFFSETS 0x40000000u
#define OPTIMIZED_BY_DYLD (1u << 3)

/* One image's methname section: [old_lo, old_hi) and, per byte, its shared offset. */
typedef struct methname {
    size_t image;
    uint64_t old_lo, old_hi;
    uint32_t *offsets;
} methname;

typedef struct objc_state {
    dk_strpool pool;     /* the shared selector strings, exactly as written to the cache */
    methname *secs;
    size_t nsecs;
} objc_state;

dk_status bld_objc_plan(builder *b, uint64_t *bytes)
{
    *bytes = 0;
    objc_state *o = calloc(1, sizeof *o);
    if (!o) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    b->objc = o;
    for (size_t i = 0; i < b->nimgs; i++) {
        dk_macho *m = b->imgs[i].m;
        size_t nsect;
        const dk_section *secs = dk_macho_sections(m, &nsect);
        for (size_t s = 0; s < nsect; s++) {
            if (strcmp(secs[s].sectname, "__objc_methname") != 0 || !secs[s].size) continue;
            const uint8_t *p = dk_macho_read(m, secs[s].addr, secs[s].size);
            if (!p) continue;
            methname *ms = realloc(o->secs, (o->nsecs + 1) * sizeof *ms);
            if (!ms) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
            o->secs = ms;
            methname *mn = &o->secs[o->nsecs++];
            mn->image = i;
            mn->old_lo = secs[s].addr;
            mn->old_hi = secs[s].addr + secs[s].size;
            mn->offsets = malloc(sizeof(uint32_t) * secs[s].size);
            if (!mn->offsets) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
            uint64_t k = 0;
            while (k < secs[s].size) {
                const uint8_t *z = memchr(p + k, 0, secs[s].size - k);
                size_t len = z ? (size_t)(z - (p + k)) : secs[s].size - k;
                uint32_t off = dk_strpool_add(&o->pool, (const char *)p + k, len);
                if (off == UINT32_MAX) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
                for (size_t q = 0; q <= len && k + q < secs[s].size; q++) mn->offsets[k + q] = off + (uint32_t)q;
                k += len + 1;
            }
        }
    }
    b->stats->selectors = o->pool.count;
    *bytes = o->pool.buf.len;
    return DK_OK;
}

bool bld_objc_override(const builder *b, size_t image, uint64_t old, uint64_t *out)
{
    const objc_state *o = b->objc;
    if (!o) return false;
    for (size_t i = 0; i < o->nsecs; i++) {
        const methname *mn = &o->secs[i];
        if (mn->image != image || old < mn->old_lo || old >= mn->old_hi) continue;
        *out = b->selstr_addr + mn->offsets[old - mn->old_lo];
        return true;
    }
    return false;
}

void bld_objc_free(builder *b)
{
    objc_state *o = b->objc;
    if (!o) return;
    for (size_t i = 0; i < o->nsecs; i++) free(o->secs[i].offsets);
    free(o->secs);
    dk_strpool_free(&o->pool);
    free(o);
    b->objc = NULL;
}

/* Relative method lists (__objc_methlist): {u32 entsizeAndFlags; u32 count; {i32 name, types, imp}[]} back to back. */
static dk_status rewrite_methlists(builder *b, bimage *im, size_t image)
{
    size_t nsect;
    const dk_section *secs = dk_macho_sections(im->m, &nsect);
    bool offsets = b->o->format == 1042;
    for (size_t s = 0; s < nsect; s++) {
        const dk_section *sec = &secs[s];
        if (strcmp(sec->sectname, "__objc_methlist") != 0) continue;
        const bseg *sg = &im->segs[sec->segment];
        uint8_t *p = sg->out + (sec->addr - sg->old_addr);
        uint64_t off = 0;
        while (off + 8 <= sec->size) {
            uint32_t flags = dk_le32(p + off), count = dk_le32(p + off + 4);
            uint32_t entsize = flags & 0xFFFC;
            if (!(flags & RELATIVE_LIST) || entsize != 12 || (uint64_t)count * 12 > sec->size - off - 8) {
                off += 4; /* not a list header (alignment padding): resynchronise */
                continue;
            }
            for (uint32_t e = 0; e < count; e++) {
                uint64_t field = sec->addr + off + 8 + 12ull * e; /* the name field, old address */
                uint8_t *fp = p + off + 8 + 12ull * e;
                uint64_t selref = field + (uint64_t)(int64_t)(int32_t)dk_le32(fp);
                uint64_t nselref, nfield;
                if (!bld_xlate(b, im, selref, &nselref) || !bld_xlate(b, im, field, &nfield))
                    return dk_fail(b->err, DK_E_MALFORMED, "%s: relative method list entry at 0x%llx names a selector reference outside the image",
                                   im->install_name, (unsigned long long)field);
                if (offsets) {
                    /* the selector string the reference points at (already redirected) */
                    const uint8_t *rp = bld_at(b, nselref, b->ptr);
                    uint64_t str = rp ? (b->ptr == 8 ? dk_le64(rp) : dk_le32(rp)) & 0x00FFFFFFFFFFFFFFull : 0;
                    if (str < b->selstr_addr || str >= b->selstr_addr + b->selstr_size)
                        return dk_fail(b->err, DK_E_UNSUPPORTED, "%s: method list entry at 0x%llx: selector is not a coalesced string", im->install_name,
                                       (unsigned long long)field);
                    dk_wr32le(fp, (uint32_t)(str - b->selstr_addr));
                } else {
                    dk_wr32le(fp, (uint32_t)(int32_t)(int64_t)(nselref - nfield));
                }
            }
            if (offsets) dk_wr32le(p + off, flags | SELECTORS_ARE_OFFSETS);
            off += 8 + 12ull * count;
        }
    }
    (void)image;
    return DK_OK;
}

/* ------------------------------------------------------------ protocols */

/* A protocol definition: its name and new address, or a reference to re-aim. */
typedef struct proto_def {
    const char *name;    /* in the cache buffer */
    uint64_t addr;
    size_t image;
} proto_def;

typedef struct proto_fix {
    uint64_t loc;        /* the pointer's new address */
    uint64_t target;     /* the canonical definition */
} proto_fix;

static int proto_def_cmp(const void *a, const void *b)
{
    const proto_def *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->image < y->image ? -1 : x->image > y->image;
}

static int proto_name_cmp(const void *a, const void *b)
{
    return strcmp(((const proto_def *)a)->name, ((const proto_def *)b)->name);
}

static int proto_fix_cmp(const void *a, const void *b)
{
    const proto_fix *x = a, *y = b;
    return x->loc < y->loc ? -1 : x->loc > y->loc;
}

/* The name of the protocol_t at ADDR (already relocated), or NULL. */
static const char *proto_name(builder *b, uint64_t addr)
{
    const uint8_t *p = bld_at(b, addr + b->ptr, b->ptr);
    if (!p) return NULL;
    uint64_t n = (b->ptr == 8 ? dk_le64(p) : dk_le32(p)) & 0x00FFFFFFFFFFFFFFull;
    for (int r = 0; r < R_COUNT; r++) {
        const region *g = &b->regions[r];
        if (!g->buf || n < g->addr || n - g->addr >= g->size) continue;
        const uint8_t *str = g->buf + (n - g->addr);
        return memchr(str, 0, g->size - (n - g->addr)) ? (const char *)str : NULL;
    }
    return NULL;
}

typedef void (*proto_slot_cb)(builder *b, size_t image, uint64_t loc, uint64_t target, void *ctx);

/* Every pointer of __objc_protolist and __objc_protorefs, with where it points now. */
static void foreach_proto_slot(builder *b, proto_slot_cb cb, void *ctx)
{
    for (size_t i = 0; i < b->nimgs; i++) {
        bimage *im = &b->imgs[i];
        size_t nsect;
        const dk_section *secs = dk_macho_sections(im->m, &nsect);
        for (size_t s = 0; s < nsect; s++) {
            if (strcmp(secs[s].sectname, "__objc_protolist") != 0 && strcmp(secs[s].sectname, "__objc_protorefs") != 0) continue;
            for (uint64_t off = 0; off + b->ptr <= secs[s].size; off += b->ptr) {
                uint64_t loc;
                if (!bld_xlate(b, im, secs[s].addr + off, &loc)) continue;
                const uint8_t *p = bld_at(b, loc, b->ptr);
                uint64_t t = p ? (b->ptr == 8 ? dk_le64(p) : dk_le32(p)) & 0x00FFFFFFFFFFFFFFull : 0;
                if (t) cb(b, i, loc, t, ctx);
            }
        }
    }
}

typedef struct proto_walk {
    dk_vec defs;   /* proto_def */
    dk_vec fixes;  /* proto_fix */
    bool oom;
} proto_walk;

static void collect_def(builder *b, size_t image, uint64_t loc, uint64_t target, void *ctx)
{
    proto_walk *w = ctx;
    bimage *im = &b->imgs[image];
    /* a definition of this image (its protolist entries point into its own data) */
    bool own = bld_seg_at(im, target) >= 0;
    const char *name = own ? proto_name(b, target) : NULL;
    if (!name) return;
    proto_def *d = dk_vec_push(&w->defs, sizeof *d);
    if (!d) {
        w->oom = true;
        return;
    }
    *d = (proto_def){name, target, image};
    (void)loc;
}

static void collect_fix(builder *b, size_t image, uint64_t loc, uint64_t target, void *ctx)
{
    proto_walk *w = ctx;
    const char *name = proto_name(b, target);
    if (!name) return;
    proto_def key = {name, 0, 0};
    const proto_def *d = w->defs.len ? bsearch(&key, w->defs.data, w->defs.len, sizeof key, proto_name_cmp) : NULL;
    (void)image;
    if (!d || d->addr == target) return;
    proto_fix *f = dk_vec_push(&w->fixes, sizeof *f);
    if (!f) {
        w->oom = true;
        return;
    }
    *f = (proto_fix){loc, d->addr};
}

/*
 * Protocol uniquing (Apple's ProtocolOptimizer): every protocol name gets one
 * canonical definition, the first image's in cache order, and every image's
 * __objc_protolist and __objc_protorefs entries point at it.
 */
static dk_status unique_protocols(builder *b)
{
    proto_walk w = {{0}, {0}, false};
    foreach_proto_slot(b, collect_def, &w);
    dk_status st = DK_OK;
    if (w.oom) st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
    if (!st && w.defs.len) {
        /* one definition per name: the first image's */
        qsort(w.defs.data, w.defs.len, sizeof(proto_def), proto_def_cmp);
        proto_def *d = w.defs.data;
        size_t n = 0;
        for (size_t k = 0; k < w.defs.len; k++)
            if (!n || strcmp(d[n - 1].name, d[k].name) != 0) d[n++] = d[k];
        w.defs.len = n;
        foreach_proto_slot(b, collect_fix, &w);
        if (w.oom) st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
    }
    if (!st && w.fixes.len) {
        proto_fix *f = w.fixes.data;
        qsort(f, w.fixes.len, sizeof *f, proto_fix_cmp);
        for (size_t k = 0; k < w.fixes.len; k++) bld_write_ptr(b, f[k].loc, f[k].target);
        /* and the slide records of those pointers */
        for (int r = 0; r < R_COUNT; r++) {
            region *g = &b->regions[r];
            for (size_t i = 0; i < g->nptrs; i++) {
                proto_fix key = {g->ptrs[i].addr, 0};
                const proto_fix *hit = bsearch(&key, f, w.fixes.len, sizeof key, proto_fix_cmp);
                if (hit) g->ptrs[i].target = hit->target;
            }
        }
        b->stats->protocols_uniqued = w.fixes.len;
    }
    dk_vec_free(&w.defs);
    dk_vec_free(&w.fixes);
    return st;
}

/*
 * The old builder's selector-load optimisation (what the corpus's old-format
 * caches show): `adrp xP, selref@PAGE; ldr xD, [xP, selref@PAGEOFF]` becomes
 * `adrp xP, sel@PAGE; add xD, xP, sel@PAGEOFF`, the uniqued selector string
 * addressed directly.  Only adjacent pairs (see a64_got_load) and only
 * selector references that hold a coalesced string.  The linker's literal
 * form (LOH: `nop; ldr xD, selref`) becomes `adr xD, sel; nop` in range, or
 * `adrp xD, sel@PAGE; add xD, xD, sel@PAGEOFF` in the NOP's place.
 */
static void direct_selector_loads(builder *b, bimage *im)
{
    const dk_section *sr = dk_macho_find_section(im->m, NULL, "__objc_selrefs");
    uint64_t sr_lo, sr_hi;
    if (!sr || !bld_xlate(b, im, sr->addr, &sr_lo)) return;
    sr_hi = sr_lo + sr->size;
    size_t nsect;
    const dk_section *secs = dk_macho_sections(im->m, &nsect);
    for (size_t s = 0; s < nsect; s++) {
        const dk_section *sec = &secs[s];
        if (!(sec->flags & 0x80000000u) || (sec->flags & SECTION_TYPE) == S_SYMBOL_STUBS || !sec->size) continue;
        const bseg *ts = &im->segs[sec->segment];
        if (ts->region != R_TEXT) continue;
        uint8_t *out = ts->out + (sec->addr - ts->old_addr);
        uint64_t base = ts->new_addr + (sec->addr - ts->old_addr);
        for (uint64_t off = 0; off + 4 <= sec->size; off += 4) {
            uint64_t pc = base + off, slot, page;
            unsigned rp = 0, rd = 0, rn, size;
            uint32_t lo;
            bool gpr;
            uint32_t insn = dk_le32(out + off);
            if (a64_literal(insn, pc, &rd, &slot, &size, &gpr) && gpr && size == 8 && (insn >> 30) == 1 && slot >= sr_lo &&
                slot < sr_hi) {
                const uint8_t *lv = bld_at(b, slot, 8);
                uint64_t s2 = lv ? dk_le64(lv) & 0x00FFFFFFFFFFFFFFull : 0;
                if (s2 < b->selstr_addr || s2 >= b->selstr_addr + b->selstr_size) continue;
                a64_retarget_kind k = a64_retarget_in(out, sec->size, off, pc, 0x10000000u | rd /* ADR xD */, s2, false);
                if (k == A64_RT_NEXT) off += 4;
                if (k != A64_RT_NONE) b->stats->selector_loads_direct++;
                continue;
            }
            if (off + 8 > sec->size) break;
            uint32_t ldr = dk_le32(out + off + 4);
            if ((ldr & 0xFFC00000u) != 0xF9400000u || !a64_got_load(out + off, (size_t)((sec->size - off) / 4), pc, &slot) ||
                slot < sr_lo || slot >= sr_hi)
                continue;
            const uint8_t *v = bld_at(b, slot, 8);
            uint64_t str = v ? dk_le64(v) & 0x00FFFFFFFFFFFFFFull : 0;
            if (str < b->selstr_addr || str >= b->selstr_addr + b->selstr_size) continue;
            a64_adrp(dk_le32(out + off), pc, &rp, &page);
            a64_ldr_uimm(ldr, &rd, &rn, &lo, &size);
            dk_wr32le(out + off, a64_enc_adrp(rp, pc, str));
            dk_wr32le(out + off + 4, a64_enc_add_imm(rd, rp, (uint32_t)(str & 0xFFF)));
            b->stats->selector_loads_direct++;
            off += 4;
        }
    }
}

dk_status bld_objc_apply(builder *b)
{
    objc_state *o = b->objc;
    dk_status st = DK_OK;
    if (o && o->pool.buf.len) {
        uint8_t *dst = bld_at(b, b->selstr_addr, o->pool.buf.len);
        if (!dst) return dk_fail(b->err, DK_E_MALFORMED, "selector buffer outside the TEXT mapping");
        memcpy(dst, o->pool.buf.data, o->pool.buf.len);
        b->selstr_out = dst;
        for (size_t i = 0; i < b->nimgs && !st; i++) st = rewrite_methlists(b, &b->imgs[i], i);
        /* the old builder's direct selector loads (832; arm64) */
        if (b->arm64 && b->is64 && b->o->format == 832)
            for (size_t i = 0; i < b->nimgs; i++) direct_selector_loads(b, &b->imgs[i]);
        /* the images' own copies are coalesced away */
        for (size_t i = 0; i < o->nsecs && !st; i++) {
            bimage *im = &b->imgs[o->secs[i].image];
            uint64_t n;
            if (bld_xlate(b, im, o->secs[i].old_lo, &n)) {
                uint8_t *p = bld_at(b, n, o->secs[i].old_hi - o->secs[i].old_lo);
                if (p) memset(p, 0, o->secs[i].old_hi - o->secs[i].old_lo);
            }
        }
    }
    if (!st) st = unique_protocols(b);
    /* image info: optimized by dyld */
    for (size_t i = 0; i < b->nimgs && !st; i++) {
        bimage *im = &b->imgs[i];
        const dk_section *ii = dk_macho_find_section(im->m, NULL, "__objc_imageinfo");
        if (!ii || ii->size < 8) continue;
        uint64_t n;
        if (!bld_xlate(b, im, ii->addr, &n)) continue;
        uint8_t *p = bld_at(b, n, 8);
        if (p) dk_wr32le(p + 4, dk_le32(p + 4) | OPTIMIZED_BY_DYLD);
    }
    /* ObjCOptimizationHeader v2 (format 1042): the selector base for relative method lists */
    if (!st && b->objc_opt_addr) {
        uint8_t *h = bld_at(b, b->objc_opt_addr, 72);
        if (h) {
            memset(h, 0, 72);
            dk_wr32le(h, 2);                                   /* version */
            dk_wr64le(h + 48, b->selstr_addr - b->base);       /* relativeMethodSelectorBaseAddressOffset */
            dk_wr64le(h + 56, b->selstr_size);                 /* relativeMethodSelectorBufferSize */
        }
    }
    return st;
}
