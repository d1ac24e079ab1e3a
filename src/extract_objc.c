/*
 * Extractor, Objective-C: undo selector uniquing.  Strings the cache coalesced
 * away (selectors, and class or type names when the builder coalesced them)
 * are copied into a new segment __OBJC_EXTRA (section __objc_methname) and
 * every pointer to them is rebased there (extract_ptrs.c); relative method
 * lists whose selectors the builder turned into offsets from the cache's
 * selector base (flag 0x40000000) point at selector references of the image
 * again -- existing ones, or new ones added in __OBJC_EXTRA,__objc_selrefs --
 * with the flag cleared; __objc_imageinfo loses the optimized-by-dyld bit.
 */
#include "arm64.h"
#include "extract_internal.h"

#define RELATIVE_LIST 0x80000000u
#define SELECTORS_ARE_OFFSETS 0x40000000u
#define OPTIMIZED_BY_DYLD (1u << 3)

/* Add the __OBJC_EXTRA segment of SIZE bytes after the image's last segment before LINKEDIT. */
static dk_status add_extra_segment(xstate *s, uint64_t size)
{
    if (s->nsegs >= XMAX_SEGS) return dk_fail(s->err, DK_E_LIMIT, "too many segments");
    uint64_t end = 0;
    for (size_t i = 0; i < s->nsegs; i++)
        if ((int)i != s->linkedit && s->segs[i].vmaddr + s->segs[i].vmsize > end) end = s->segs[i].vmaddr + s->segs[i].vmsize;
    s->segs[s->nsegs] = s->segs[s->linkedit];
    xseg *g = &s->segs[s->linkedit];
    memset(g, 0, sizeof *g);
    memcpy(g->name, "__OBJC_EXTRA", sizeof "__OBJC_EXTRA");
    g->src = -1;
    g->vmaddr = (end + s->page - 1) & ~(s->page - 1);
    g->vmsize = (size + s->page - 1) & ~(s->page - 1);
    g->maxprot = g->initprot = 3;
    g->data = calloc(1, g->vmsize ? g->vmsize : 1);
    if (!g->data) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
    s->extra_seg = s->linkedit;
    s->linkedit++;
    s->nsegs++;
    return DK_OK;
}

/* Map selector text -> existing selector reference of the image (after pointer classification). */
typedef struct selref_map {
    uint32_t string;   /* offset of the text in the map's own pool */
    uint64_t selref;
} selref_map;

static int selmap_cmp(const void *a, const void *b)
{
    const selref_map *x = a, *y = b;
    return x->string < y->string ? -1 : x->string > y->string;
}

/* A relative method list entry whose direct selector needs a selector reference,
 * or (CODE) an arm64 ADRP+ADD the builder made of an ADRP+LDR of a selector reference. */
typedef struct pending {
    uint64_t field;     /* address of the name field; CODE: of the ADRP */
    int64_t selref;     /* existing selref address, or -(1 + index into new_selrefs) */
    const char *text;   /* the selector (cache memory) */
    size_t len;
    uint32_t key;       /* its offset in the selector-text pool */
    bool code;          /* ADRP+ADD at FIELD */
    bool code_adr;      /* ADR at FIELD */
    uint8_t page_reg, dest_reg; /* CODE: ADRP's register, the ADD's destination */
} pending;

/* T (outside the image) holds a selector string the cache coalesced: in another
 * image's __objc_methname, libobjc's __OBJC_RO, or the shared selector strings. */
static const char *coalesced_selector(xstate *s, uint64_t t, size_t *len)
{
    dk_cache_location loc;
    bool known = s->x->selbuf_hi && t >= s->x->selbuf_lo && t < s->x->selbuf_hi;
    if (!known && dk_cache_lookup(s->c, t, &loc, NULL) == DK_OK) {
        if (loc.image >= 0) known = strcmp(loc.section, "__objc_methname") == 0 || strcmp(loc.segment, "__OBJC_RO") == 0;
        else known = !(dk_cache_mappings(s->c, NULL)[loc.mapping].initProt & 2); /* read-only, outside every image */
    }
    if (!known) return NULL;
    uint64_t avail;
    const uint8_t *p = dk_cache_read(s->c, t, 1, &avail);
    const uint8_t *z = p ? memchr(p, 0, avail > 4096 ? 4096 : avail) : NULL;
    if (!z || z == p) return NULL;
    for (const uint8_t *q = p; q < z; q++)
        if (*q < 0x21 || *q > 0x7e) return NULL;
    *len = (size_t)(z - p);
    return (const char *)p;
}

/*
 * Apple's builder turned `adrp xP, selref@PAGE; ldr xD, [xP, selref@PAGEOFF]`
 * into `adrp xP, sel@PAGE; add xD, xP, sel@PAGEOFF`, addressing the uniqued
 * selector string (outside the image) directly.  Each such adjacent pair is
 * queued to load from the image's reference for that selector again; so is
 * an ADR of one (the linker's literal form `ldr xD, selref`, made `adr xD, sel`).
 */
static dk_status code_selector_loads(xstate *s, dk_vec *pend, dk_strpool *keys, const dk_vec *map)
{
    if (!s->arm64) return DK_OK;
    size_t nsect;
    const dk_section *sects = dk_macho_sections(s->m, &nsect);
    for (size_t si = 0; si < nsect; si++) {
        const dk_section *sec = &sects[si];
        if (!(sec->flags & 0x80000000u) || (sec->flags & SECTION_TYPE) == S_SYMBOL_STUBS) continue;
        const uint8_t *p = x_at(s, sec->addr, sec->size);
        if (!p) continue;
        for (uint64_t off = 0; off + 4 <= sec->size; off += 4) {
            uint64_t pc = sec->addr + off, page;
            unsigned rp, rd, rn;
            uint32_t imm;
            bool adr = a64_adr(dk_le32(p + off), pc, &rd, &page);
            if (adr) {
                rp = rd;
                imm = 0;
                if (x_in_image(s, page)) continue;
            } else {
                uint32_t add = off + 8 <= sec->size ? dk_le32(p + off + 4) : 0;
                if (!a64_adrp(dk_le32(p + off), pc, &rp, &page) || !a64_add_imm(add, &rd, &rn, &imm) || rn != rp ||
                    (add & (1u << 22)) || x_in_image(s, page + imm))
                    continue;
            }
            size_t len;
            const char *text = coalesced_selector(s, page + imm, &len);
            if (!text) continue;
            pending *pd = dk_vec_push(pend, sizeof *pd);
            if (!pd) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
            memset(pd, 0, sizeof *pd);
            pd->field = pc;
            pd->text = text;
            pd->len = len;
            pd->key = dk_strpool_add(keys, text, len);
            pd->code = !adr;
            pd->code_adr = adr;
            pd->page_reg = (uint8_t)rp;
            pd->dest_reg = (uint8_t)rd;
            selref_map key = {pd->key, 0};
            selref_map *hit = map->len ? bsearch(&key, map->data, map->len, sizeof key, selmap_cmp) : NULL;
            pd->selref = hit ? (int64_t)hit->selref : INT64_MIN;
            if (!adr) off += 4;
        }
    }
    return DK_OK;
}

typedef struct key_index {
    uint32_t key;
    size_t index;
} key_index;

static int key_index_cmp(const void *a, const void *b)
{
    const key_index *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

dk_status x_objc_finish(xstate *s)
{
    const dk_section *sects;
    size_t nsect;
    sects = dk_macho_sections(s->m, &nsect);
    dk_status st = DK_OK;
    /* existing selector references, by the text they point at: a copied string or
       one still inside the image (libobjc keeps its selectors in __OBJC_RO) */
    dk_vec map = {0};
    dk_strpool keys = {0};
    const dk_section *selrefs = dk_macho_find_section(s->m, NULL, "__objc_selrefs");
    xfix *fx = s->fixes.data;
    if (selrefs) {
        for (size_t i = 0; i < s->fixes.len; i++) {
            if (fx[i].kind != XF_REBASE || fx[i].addr < selrefs->addr || fx[i].addr - selrefs->addr >= selrefs->size) continue;
            const char *text = NULL;
            size_t len = 0;
            if (fx[i].string) {
                text = (const char *)s->strings.buf.data + fx[i].str_off;
                len = strlen(text);
            } else {
                int g = x_seg_of(s, fx[i].target);
                const uint8_t *p = g >= 0 ? x_at(s, fx[i].target, 1) : NULL;
                const uint8_t *z = p ? memchr(p, 0, s->segs[g].vmaddr + s->segs[g].vmsize - fx[i].target) : NULL;
                if (z) text = (const char *)p, len = (size_t)(z - p);
            }
            if (!text) continue;
            selref_map *e = dk_vec_push(&map, sizeof *e);
            if (!e) {
                dk_vec_free(&map);
                dk_strpool_free(&keys);
                return dk_fail(s->err, DK_E_NOMEM, "out of memory");
            }
            e->string = dk_strpool_add(&keys, text, len);
            e->selref = fx[i].addr;
        }
    }
    if (map.len) qsort(map.data, map.len, sizeof(selref_map), selmap_cmp);
    /* relative method lists with selector offsets: collect strings and the selector references they need */
    dk_vec pend = {0};
    /* relative type strings the builder coalesced out of the image: copied back */
    typedef struct pending_str {
        uint64_t field;
        uint32_t str_off;
    } pending_str;
    dk_vec pstr = {0};
    uint64_t base = s->x->objc.selector_base;
    for (size_t si = 0; si < nsect && !st; si++) {
        const dk_section *sec = &sects[si];
        if (strcmp(sec->sectname, "__objc_methlist") != 0) continue;
        uint8_t *p = x_at(s, sec->addr, sec->size);
        if (!p) continue;
        uint64_t off = 0;
        while (off + 8 <= sec->size && !st) {
            uint32_t flags = dk_le32(p + off), count = dk_le32(p + off + 4);
            if (!(flags & RELATIVE_LIST) || (flags & 0xFFFC) != 12 || (uint64_t)count * 12 > sec->size - off - 8) {
                off += 4; /* not a list header (alignment padding): resynchronise */
                continue;
            }
            if (flags & SELECTORS_ARE_OFFSETS) {
                for (uint32_t e = 0; e < count && !st; e++) {
                    uint64_t field = sec->addr + off + 8 + 12ull * e;
                    uint64_t avail;
                    /* the selector string itself: from the cache's selector base (objc_opt_t v16,
                       ObjCOptimizationHeader), or in older caches from the field */
                    int64_t rel = (int32_t)dk_le32(p + off + 8 + 12ull * e);
                    const uint8_t *str = dk_cache_read(s->c, (base ? base : field) + (uint64_t)rel, 1, &avail);
                    const uint8_t *z = str ? memchr(str, 0, avail > 65536 ? 65536 : avail) : NULL;
                    if (!z) {
                        st = dk_fail(s->err, DK_E_MALFORMED, "method list entry at 0x%llx: selector offset 0x%x is not a string",
                                     (unsigned long long)field, dk_le32(p + off + 8 + 12ull * e));
                        break;
                    }
                    pending *pd = dk_vec_push(&pend, sizeof *pd);
                    if (!pd) {
                        st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
                        break;
                    }
                    memset(pd, 0, sizeof *pd);
                    pd->field = field;
                    pd->text = (const char *)str;
                    pd->len = (size_t)(z - str);
                    pd->key = dk_strpool_add(&keys, pd->text, pd->len);
                    selref_map key = {pd->key, 0};
                    selref_map *hit = map.len ? bsearch(&key, map.data, map.len, sizeof key, selmap_cmp) : NULL;
                    pd->selref = hit ? (int64_t)hit->selref : INT64_MIN; /* INT64_MIN: needs a new reference */
                }
                if (!st) dk_wr32le(p + off, flags & ~SELECTORS_ARE_OFFSETS);
            }
            for (uint32_t e = 0; e < count && !st; e++) {
                uint64_t field = sec->addr + off + 8 + 12ull * e + 4;
                int64_t rel = (int32_t)dk_le32(p + off + 8 + 12ull * e + 4);
                if (!rel || x_in_image(s, field + (uint64_t)rel)) continue;
                uint64_t avail;
                const uint8_t *str = dk_cache_read(s->c, field + (uint64_t)rel, 1, &avail);
                const uint8_t *z = str ? memchr(str, 0, avail > 65536 ? 65536 : avail) : NULL;
                if (!z) {
                    st = dk_fail(s->err, DK_E_MALFORMED, "method list entry at 0x%llx: type string at 0x%llx is not readable",
                                 (unsigned long long)(field - 4), (unsigned long long)(field + (uint64_t)rel));
                    break;
                }
                pending_str *ps = dk_vec_push(&pstr, sizeof *ps);
                if (!ps) {
                    st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
                    break;
                }
                ps->field = field;
                ps->str_off = dk_strpool_add(&s->strings, (const char *)str, (size_t)(z - str));
                s->st->strings_copied++;
            }
            off += 8 + 12ull * count;
        }
    }
    if (!st) st = code_selector_loads(s, &pend, &keys, &map);
    dk_vec_free(&map);
    if (!st && keys.buf.oom) st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
    /* one new selector reference per distinct selector no existing reference names */
    if (!st && pend.len) {
        pending *pv = pend.data;
        key_index *order = malloc(sizeof(key_index) * pend.len);
        size_t nneed = 0;
        if (!order) st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
        for (size_t k = 0; !st && k < pend.len; k++)
            if (pv[k].selref == INT64_MIN) order[nneed++] = (key_index){pv[k].key, k};
        if (nneed) qsort(order, nneed, sizeof *order, key_index_cmp);
        for (size_t k = 0; !st && k < nneed; k++) {
            pending *pd = &pv[order[k].index];
            if (k == 0 || order[k - 1].key != order[k].key) {
                uint32_t so = dk_strpool_add(&s->strings, pd->text, pd->len);
                uint32_t *slot = dk_vec_push(&s->new_selrefs, sizeof *slot);
                if (so == UINT32_MAX || !slot) {
                    st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
                    break;
                }
                *slot = so;
                s->st->selrefs_added++;
            }
            pd->selref = -(int64_t)s->new_selrefs.len;
        }
        free(order);
    }
    dk_strpool_free(&keys);
    if (!st && s->strings.buf.oom) st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
    /* where the strings go: back into the image's own __objc_methname when they fit
     * there (the builder coalesced it away but kept its room) and no selector
     * reference has to be added; else a new __OBJC_EXTRA segment */
    uint64_t strings = s->strings.buf.len, str_base = 0, sel_base = 0;
    if (!st && (strings || s->new_selrefs.len)) {
        const dk_section *own = NULL;
        for (size_t i = 0; i < nsect; i++)
            if (strcmp(sects[i].sectname, "__objc_methname") == 0 && x_at(s, sects[i].addr, sects[i].size) &&
                (!own || sects[i].size > own->size))
                own = &sects[i];
        if (own && strings <= own->size && !s->new_selrefs.len) {
            uint8_t *p = x_at(s, own->addr, own->size);
            memset(p, 0, own->size);
            memcpy(p, s->strings.buf.data, strings);
            str_base = own->addr;
        } else {
            uint64_t sel_off = (strings + 7) & ~7ull;
            st = add_extra_segment(s, sel_off + s->new_selrefs.len * s->ptr);
            if (!st) {
                xseg *extra = &s->segs[s->extra_seg];
                memcpy(extra->data, s->strings.buf.data, strings);
                str_base = extra->vmaddr;
                sel_base = extra->vmaddr + sel_off;
            }
        }
    }
    /* pointers to strings get their targets */
    fx = s->fixes.data;
    for (size_t i = 0; i < s->fixes.len && !st; i++) {
        if (!fx[i].string) continue;
        fx[i].target = str_base + fx[i].str_off;
        uint8_t *p = x_at(s, fx[i].addr, s->ptr);
        if (!p) continue;
        uint64_t v = fx[i].auth ? fx[i].target : (fx[i].target | ((uint64_t)fx[i].high8 << 56));
        if (s->ptr == 8) dk_wr64le(p, v);
        else dk_wr32le(p, (uint32_t)v);
    }
    /* the new selector references, and the method lists that use them */
    uint32_t *ns = s->new_selrefs.data;
    for (size_t k = 0; k < s->new_selrefs.len && !st; k++) {
        xseg *extra = &s->segs[s->extra_seg];
        uint64_t a = sel_base + k * s->ptr, t = str_base + ns[k];
        uint8_t *p = extra->data + (a - extra->vmaddr);
        if (s->ptr == 8) dk_wr64le(p, t);
        else dk_wr32le(p, (uint32_t)t);
        xfix f;
        memset(&f, 0, sizeof f);
        f.addr = a;
        f.kind = XF_REBASE;
        f.target = t;
        st = x_add_fix(s, &f);
        s->st->rebases++;
    }
    pending *pd = pend.data;
    for (size_t k = 0; k < pend.len && !st; k++) {
        uint64_t selref = pd[k].selref >= 0 ? (uint64_t)pd[k].selref : sel_base + (uint64_t)(-pd[k].selref - 1) * s->ptr;
        if (pd[k].code_adr) {
            /* ldr xD, selref (literal) in range; else adrp+ldr in a NOP beside it */
            uint8_t *ip = x_at(s, pd[k].field, 4);
            uint64_t pc = pd[k].field;
            uint32_t lit = (s->ptr == 8 ? 0x58000000u : 0x18000000u) | pd[k].dest_reg; /* LDR Xt|Wt, literal */
            uint8_t *prev = pc >= 4 ? x_at(s, pc - 4, 4) : NULL, *next = x_at(s, pc + 4, 4);
            if (!ip) continue;
            if (a64_retarget(ip, prev, next, pc, lit, selref, false) == A64_RT_NONE) continue; /* no room: left addressing the string */
            s->st->selector_loads_restored++;
            continue;
        }
        if (pd[k].code) {
            /* adrp xP, selref@PAGE; ldr xD, [xP, selref@PAGEOFF] (ldr wD for 4-byte pointers) */
            uint8_t *ip = x_at(s, pd[k].field, 8);
            if (!ip) continue;
            uint32_t lo = (uint32_t)(selref & 0xFFF);
            dk_wr32le(ip, a64_enc_adrp(pd[k].page_reg, pd[k].field, selref));
            dk_wr32le(ip + 4, s->ptr == 8 ? a64_enc_ldr_x(pd[k].dest_reg, pd[k].page_reg, lo)
                                         : 0xB9400000u | ((lo / 4) << 10) | ((uint32_t)pd[k].page_reg << 5) | pd[k].dest_reg);
            s->st->selector_loads_restored++;
            continue;
        }
        uint8_t *fp = x_at(s, pd[k].field, 4);
        if (fp) dk_wr32le(fp, (uint32_t)(int32_t)(int64_t)(selref - pd[k].field));
    }
    dk_vec_free(&pend);
    pending_str *ps = pstr.data;
    for (size_t k = 0; k < pstr.len && !st; k++) {
        int64_t d = (int64_t)(str_base + ps[k].str_off - ps[k].field);
        if (d < INT32_MIN || d > INT32_MAX)
            st = dk_fail(s->err, DK_E_UNSUPPORTED, "method list entry at 0x%llx: its copied type string is out of a 32-bit offset's reach",
                         (unsigned long long)(ps[k].field - 4));
        uint8_t *fp = x_at(s, ps[k].field, 4);
        if (fp && !st) dk_wr32le(fp, (uint32_t)(int32_t)d);
    }
    dk_vec_free(&pstr);
    if (st) return st;
    /* image info: no longer optimized by dyld */
    const dk_section *ii = dk_macho_find_section(s->m, NULL, "__objc_imageinfo");
    if (ii && ii->size >= 8) {
        uint8_t *p = x_at(s, ii->addr, 8);
        if (p) dk_wr32le(p + 4, dk_le32(p + 4) & ~OPTIMIZED_BY_DYLD);
    }
    return DK_OK;
}
