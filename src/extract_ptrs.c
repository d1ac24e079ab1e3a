/*
 * Extractor: classify every pointer of the image.  The cache pre-bound every
 * pointer to an absolute address and describes it only by slide info; here
 * each becomes a rebase (target inside the image), a bind (target in another
 * image: named by the patch table entry for that very location when the
 * cache has one, else by the target image's export trie -- exact address, or
 * the export just below with an addend), or a rebase to a copy of a string
 * the cache coalesced outside every image.  Binds the cache kept as opcodes
 * (old builders, unresolved imports) are carried over as they are.
 */
#include "cache_internal.h"
#include "extract_internal.h"

/* ------------------------------------------------------------ export maps */

static int xexport_cmp(const void *a, const void *b)
{
    const xexport *x = a, *y = b;
    if (x->address != y->address) return x->address < y->address ? -1 : 1;
    /* prefer regular over weak definitions, then a stable order */
    if ((x->flags & DK_EXPORT_WEAK) != (y->flags & DK_EXPORT_WEAK)) return (x->flags & DK_EXPORT_WEAK) ? 1 : -1;
    return x->name < y->name ? -1 : x->name > y->name;
}

typedef struct exp_build {
    ximage_exports *e;
    dk_vec v;
    bool oom;
} exp_build;

static int collect(void *ctx, const dk_export *e)
{
    exp_build *b = ctx;
    if (e->flags & (DK_EXPORT_REEXPORT | DK_EXPORT_ABSOLUTE)) return 0;
    xexport *x = dk_vec_push(&b->v, sizeof *x);
    uint32_t name = dk_strpool_cstr(&b->e->names, e->name);
    if (!x || name == UINT32_MAX) {
        b->oom = true;
        return 1;
    }
    x->address = e->address;
    x->name = name;
    x->flags = e->flags;
    return 0;
}

dk_status x_extractor_exports(dk_extractor *x, size_t image, const ximage_exports **out, dk_error *err)
{
    if (image >= x->nimages) return dk_fail(err, DK_E_ARG, "image %zu out of range", image);
    pthread_mutex_lock(&x->lock);
    ximage_exports *e = &x->exports[image];
    if (!e->done) {
        dk_macho *m;
        exp_build b = {e, {0}, false};
        e->status = dk_cache_open_image(x->c, image, &m, err);
        if (!e->status) {
            e->status = dk_macho_foreach_export(m, collect, &b, err);
            if (b.oom) e->status = dk_fail(err, DK_E_NOMEM, "out of memory");
            dk_macho_close(m);
        }
        if (!e->status) {
            e->v = b.v.data;
            e->n = b.v.len;
            if (e->n) qsort(e->v, e->n, sizeof *e->v, xexport_cmp);
        } else {
            dk_vec_free(&b.v);
        }
        e->done = true;
    }
    dk_status st = e->status;
    pthread_mutex_unlock(&x->lock);
    if (st && st != DK_E_NOTFOUND) return dk_fail(err, st, "exports of image %zu cannot be read", image);
    *out = e; /* an image without an export trie has an empty map */
    return DK_OK;
}

bool x_name_address(xstate *s, size_t image, uint64_t addr, const char **name, int64_t *addend)
{
    const ximage_exports *e = NULL;
    if (x_extractor_exports(s->x, image, &e, NULL) || !e || !e->n) return false;
    size_t lo = 0, hi = e->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->v[mid].address <= addr) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return false;
    const xexport *x = &e->v[lo - 1];
    /* all exports at that address: the first (regular) one */
    while (lo - 1 > 0 && e->v[lo - 2].address == x->address) {
        lo--;
        x = &e->v[lo - 1];
    }
    if (x->address != addr) {
        /* &symbol[n]: only inside the export's own section, and never into code */
        dk_cache_location a, b;
        if (dk_cache_lookup(s->c, addr, &a, NULL) || dk_cache_lookup(s->c, x->address, &b, NULL)) return false;
        if (a.image != b.image || strcmp(a.segment, b.segment) != 0 || strcmp(a.section, b.section) != 0) return false;
        if (strcmp(a.section, "__text") == 0 || strstr(a.section, "stub") != NULL) return false;
    }
    *name = (const char *)e->names.buf.data + x->name;
    *addend = (int64_t)(addr - x->address);
    return true;
}

/* A dependency export in (ADDR, ADDR + 4096]: ADDR names it with a negative addend. */
bool x_name_below(xstate *s, uint64_t addr, size_t *image, const char **name, int64_t *addend)
{
    size_t n;
    dk_cache_images(s->c, &n);
    uint64_t best = UINT64_MAX;
    for (size_t j = 0; j < n; j++) {
        if (!s->reach[j]) continue;
        const ximage_exports *e = NULL;
        if (x_extractor_exports(s->x, j, &e, NULL) || !e || !e->n) continue;
        size_t lo = 0, hi = e->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (e->v[mid].address <= addr) lo = mid + 1;
            else hi = mid;
        }
        if (lo < e->n && e->v[lo].address - addr <= 4096 && e->v[lo].address - addr < best) {
            best = e->v[lo].address - addr;
            *image = j;
            *name = (const char *)e->names.buf.data + e->v[lo].name;
            *addend = -(int64_t)best;
        }
    }
    return best != UINT64_MAX;
}

/* ------------------------------------------------------------ patch uses */

typedef struct use_build {
    dk_vec v;
    bool oom;
} use_build;

static int collect_use(void *ctx, const dk_cache_patch *p)
{
    use_build *b = ctx;
    /* uses by images, and (v3+) the cache-wide uniqued GOT slots, which no image owns */
    if (!(p->event == DK_PATCH_USE && p->client >= 0) && p->event != DK_PATCH_GOT_USE) return 0;
    xuse *u = dk_vec_push(&b->v, sizeof *u);
    if (!u) {
        b->oom = true;
        return 1;
    }
    u->location = p->location;
    u->client = p->event == DK_PATCH_GOT_USE ? UINT32_MAX : (uint32_t)p->client;
    u->image = p->image;
    u->name = p->export_name;
    u->addend = p->addend;
    u->weak_import = p->weak_import;
    return 0;
}

static int use_cmp(const void *a, const void *b)
{
    const xuse *x = a, *y = b;
    return x->location < y->location ? -1 : x->location > y->location;
}

const xuse *x_find_use(xstate *s, uint64_t location)
{
    dk_extractor *x = s->x;
    pthread_mutex_lock(&x->lock);
    if (!x->uses_done) {
        use_build b = {{0}, false};
        dk_status st = dk_cache_foreach_patch(x->c, -1, collect_use, &b, NULL);
        if (st || b.oom) {
            dk_vec_free(&b.v); /* no (usable) patch table: exports name everything */
        } else {
            x->uses = b.v.data;
            x->nuses = b.v.len;
            if (x->nuses) qsort(x->uses, x->nuses, sizeof *x->uses, use_cmp);
        }
        x->uses_done = true;
    }
    pthread_mutex_unlock(&x->lock);
    size_t lo = 0, hi = x->nuses;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->uses[mid].location < location) lo = mid + 1;
        else hi = mid;
    }
    if (lo < x->nuses && x->uses[lo].location == location && x->uses[lo].client == s->index) return &x->uses[lo];
    return NULL;
}

/* ------------------------------------------------------------ the pass */

typedef struct kept {
    dk_vec v; /* uint64 addresses already bound by kept opcodes */
} kept;

static int collect_kept(void *ctx, const dk_fixup *f)
{
    xstate *s = ctx;
    if (f->kind == DK_FIXUP_REBASE || f->strong) return 0;
    xfix x;
    memset(&x, 0, sizeof x);
    x.addr = f->address;
    x.kind = f->kind == DK_FIXUP_LAZY_BIND ? XF_LAZY : XF_BIND;
    x.ordinal = f->kind == DK_FIXUP_WEAK_BIND ? -3 : f->ordinal;
    x.symbol = f->symbol;
    x.addend = f->addend;
    x.weak_import = f->weak_import;
    return x_add_fix(s, &x) ? 1 : 0;
}

static int addr_cmp(const void *a, const void *b)
{
    const xfix *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static bool covered(const xfix *kept_fixes, size_t n, uint64_t addr)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kept_fixes[mid].addr < addr) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && kept_fixes[lo].addr == addr;
}

/* A C string at ADDR somewhere in the cache, copied into the image; UINT32_MAX if none. */
static uint32_t copy_string(xstate *s, uint64_t addr)
{
    uint64_t avail;
    const uint8_t *p = dk_cache_read(s->c, addr, 1, &avail);
    if (!p) return UINT32_MAX;
    if (avail > 65536) avail = 65536;
    const uint8_t *z = memchr(p, 0, avail);
    if (!z) return UINT32_MAX;
    return dk_strpool_add(&s->strings, (const char *)p, (size_t)(z - p));
}

static void put_value(xstate *s, uint64_t addr, uint64_t v)
{
    uint8_t *p = x_at(s, addr, s->ptr);
    if (!p) return;
    if (s->ptr == 8) dk_wr64le(p, v);
    else dk_wr32le(p, (uint32_t)v);
}


/* ---------------------------------------------------------- protocols */

#define PROTOCOL_PREFIX "__OBJC_PROTOCOL_$_"

typedef struct own_proto {
    const char *name;    /* the protocol's name (after the prefix), owned by the pool */
    uint64_t addr;
} own_proto;

typedef struct proto_index {
    bool done;
    dk_vec v;            /* own_proto, sorted by name */
    dk_strpool names;
} proto_index;

static dk_status classify(xstate *s, const dk_vec *wrefs, proto_index *protos);

static int own_proto_cmp(const void *a, const void *b)
{
    return strcmp(((const own_proto *)a)->name, ((const own_proto *)b)->name);
}

static int on_proto_symbol(void *ctx, const dk_cache_symbol *cs)
{
    proto_index *pi = ctx;
    if (!cs->name || strncmp(cs->name, PROTOCOL_PREFIX, sizeof PROTOCOL_PREFIX - 1) != 0 || (cs->type & N_STAB)) return 0;
    const char *n = cs->name + sizeof PROTOCOL_PREFIX - 1;
    own_proto *e = dk_vec_push(&pi->v, sizeof *e);
    uint32_t off = dk_strpool_cstr(&pi->names, n);
    if (!e || off == UINT32_MAX) return 1;
    e->name = (const char *)(uintptr_t)off; /* an offset until the pool stops moving */
    e->addr = cs->address;
    return 0;
}

/* Is ADDR in one of the image's ObjC metadata sections (__objc_protolist, __objc_const...)? */
static bool in_objc_section(const xstate *s, uint64_t addr)
{
    int si = dk_macho_section_at(s->m, addr);
    size_t n;
    const dk_section *secs = dk_macho_sections(s->m, &n);
    return si >= 0 && strncmp(secs[si].sectname, "__objc_", 7) == 0;
}

/*
 * Protocol uniquing undone: the cache builder points an image's protocol lists
 * and references at one canonical definition per name, often in another image.
 * The image still holds its own definition, named __OBJC_PROTOCOL_$_<name>
 * (a local symbol, kept in the cache's unmapped locals or its nlist range).
 */
static bool own_protocol(xstate *s, proto_index *pi, uint64_t target, uint64_t *out)
{
    if (!pi->done) {
        pi->done = true;
        dk_cache_foreach_image_symbol(s->c, s->index, on_proto_symbol, pi, NULL);
        own_proto *v = pi->v.data;
        for (size_t i = 0; i < pi->v.len; i++) v[i].name = (const char *)pi->names.buf.data + (uintptr_t)v[i].name;
        if (pi->v.len) qsort(v, pi->v.len, sizeof *v, own_proto_cmp);
    }
    if (!pi->v.len) return false;
    /* protocol_t: isa, then the name pointer */
    dk_slide_pointer np;
    bool rebased;
    if (dk_cache_read_pointer(s->c, target + s->ptr, &np, &rebased, NULL) != DK_OK) return false;
    uint64_t avail;
    const uint8_t *str = dk_cache_read(s->c, np.auth ? np.target : np.target & 0x00FFFFFFFFFFFFFFull, 1, &avail);
    if (!str || !memchr(str, 0, avail > 4096 ? 4096 : avail)) return false;
    own_proto key = {(const char *)str, 0};
    const own_proto *hit = bsearch(&key, pi->v.data, pi->v.len, sizeof key, own_proto_cmp);
    if (!hit || !x_in_image(s, hit->addr)) return false;
    *out = hit->addr;
    return true;
}

/* The name of this image's exported weak definition at ADDR, or NULL. */
static const char *own_weak_def(xstate *s, uint64_t addr)
{
    const ximage_exports *e = NULL;
    if (x_extractor_exports(s->x, s->index, &e, NULL) || !e || !e->n) return NULL;
    size_t lo = 0, hi = e->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->v[mid].address < addr) lo = mid + 1;
        else hi = mid;
    }
    for (; lo < e->n && e->v[lo].address == addr; lo++)
        if (e->v[lo].flags & DK_EXPORT_WEAK) return (const char *)e->names.buf.data + e->v[lo].name;
    return NULL;
}

static int cstr_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The image's own undefined symbols marked N_WEAK_REF, sorted (the patch tables of
   the 832 and 1042 formats do not say which uses were weak imports). */
static dk_status weak_refs(xstate *s, dk_vec *out)
{
    const dk_symbol *syms;
    size_t n;
    dk_status st = dk_macho_symbols(s->m, &syms, &n, s->err);
    if (st) return st;
    for (size_t i = 0; i < n; i++) {
        if ((syms[i].type & (N_STAB | N_TYPE)) != N_UNDF || !(syms[i].desc & N_WEAK_REF) || !syms[i].name) continue;
        const char **e = dk_vec_push(out, sizeof *e);
        if (!e) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
        *e = syms[i].name;
    }
    if (out->len) qsort(out->data, out->len, sizeof(const char *), cstr_cmp);
    return DK_OK;
}

static bool is_weak_ref(const dk_vec *refs, const char *name)
{
    return refs->len && bsearch(&name, refs->data, refs->len, sizeof name, cstr_cmp) != NULL;
}

/* F becomes a rebase to a copy of the C string at T0 (placed with the image's other
   copied strings once all are known); *COPIED false when no string is there. */
static dk_status string_rebase(xstate *s, xfix *f, uint64_t t0, uint8_t high8, bool *copied)
{
    uint32_t so = copy_string(s, t0);
    *copied = so != UINT32_MAX;
    if (!*copied) return DK_OK;
    f->kind = XF_REBASE;
    f->string = true;
    f->str_off = so;
    f->high8 = high8;
    s->st->rebases++;
    s->st->strings_copied++;
    return x_add_fix(s, f);
}

/* F becomes a bind to NAME+ADDEND exported by cache image IMAGE. */
static dk_status bind_to(xstate *s, xfix *f, size_t image, const char *name, int64_t addend, const dk_vec *wrefs)
{
    f->kind = XF_BIND;
    f->symbol = name;
    f->addend = addend;
    f->ordinal = x_ordinal_for(s, image);
    f->weak_import = is_weak_ref(wrefs, name);
    put_value(s, f->addr, 0);
    s->st->binds++;
    return x_add_fix(s, f);
}

/* ADDR lies in one of the image's segments but in no section (nor at a section's end). */
static bool in_segment_padding(xstate *s, uint64_t addr)
{
    if (x_seg_of(s, addr) < 0 || dk__section_at_memo(s->m, addr, &s->sect_memo) >= 0) return false;
    size_t n;
    const dk_section *secs = dk_macho_sections(s->m, &n);
    for (size_t i = 0; i < n; i++)
        if (addr >= secs[i].addr && addr - secs[i].addr <= secs[i].size) return false;
    return true;
}

static bool in_writable_mapping(const dk_cache_mapping *maps, size_t n, uint64_t addr)
{
    for (size_t k = 0; k < n; k++)
        if (addr >= maps[k].address && addr - maps[k].address < maps[k].size) return (maps[k].initProt & 2) != 0;
    return false;
}

dk_status x_classify_pointers(xstate *s)
{
    dk_vec wrefs = {0};
    dk_status wst = weak_refs(s, &wrefs);
    if (wst) return wst;
    proto_index protos;
    memset(&protos, 0, sizeof protos);
    dk_status st = classify(s, &wrefs, &protos);
    dk_vec_free(&wrefs);
    dk_vec_free(&protos.v);
    dk_strpool_free(&protos.names);
    return st;
}

static dk_status classify(xstate *s, const dk_vec *wrefs, proto_index *protos)
{
    /* binds the cache kept as opcodes */
    dk_status st = dk_macho_foreach_fixup(s->m, collect_kept, s, s->err);
    if (st == DK_E_STOPPED) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
    if (st) return st;
    size_t nkept = s->fixes.len;
    if (nkept) qsort(s->fixes.data, nkept, sizeof(xfix), addr_cmp);
    for (size_t k = 0; k < nkept; k++) {
        xfix *f = &((xfix *)s->fixes.data)[k];
        put_value(s, f->addr, 0);
        if (f->kind == XF_LAZY) s->st->lazy_binds++;
        else s->st->binds++;
    }
    for (size_t g = 0; g < s->nsegs; g++) {
        xseg *sg = &s->segs[g];
        if ((int)g == s->linkedit || !sg->data || sg->src < 0) continue;
        long mi = dk_cache_mapping_at(s->c, sg->vmaddr);
        if (mi < 0) continue;
        size_t nm;
        const dk_cache_mapping *maps = dk_cache_mappings(s->c, &nm);
        if (!maps[mi].slide_version) continue; /* no slide info: nothing to rebase here */
        unsigned step = s->ptr == 8 && (maps[mi].slide_version == 3 || maps[mi].slide_version == 5) ? 8 : 4;
        /* Only the slots the page bitmaps mark as rebased are read (pages
           without pointers are skipped whole); a slot outside mapping MI or
           not 4-byte aligned takes the general path. */
        const dk_cache_mapping *mp = &maps[mi];
        uint32_t psz = 0;
        dk__cache_page_bits(s->c, mi, UINT64_MAX, &psz); /* just the page size */
        if (!psz) continue; /* the slide info did not parse: nothing is rebased */
        uint64_t cur_page = UINT64_MAX;
        const uint8_t *bits = NULL;
        for (uint64_t off = 0; off + s->ptr <= sg->vmsize; off += step) {
            uint64_t addr = sg->vmaddr + off;
            uint64_t moff = addr - mp->address;
            if (moff < mp->size && !(moff & 3)) {
                uint64_t page = moff / psz;
                if (page != cur_page) {
                    bits = dk__cache_page_bits(s->c, mi, page, &psz);
                    cur_page = page;
                }
                if (!bits) {
                    /* no pointer on this page: on to the first slot of the next */
                    off += ((page + 1) * psz - moff + step - 1) / step * step - step;
                    continue;
                }
                uint32_t slot = (uint32_t)((moff % psz) / 4);
                if (!((bits[slot >> 3] >> (slot & 7)) & 1)) continue;
            }
            dk_slide_pointer p;
            bool rebased;
            if (dk_cache_read_pointer(s->c, addr, &p, &rebased, NULL) != DK_OK || !rebased) continue;
            xfix *kf = s->fixes.data;
            if (nkept && covered(kf, nkept, addr)) continue;
            xfix f;
            memset(&f, 0, sizeof f);
            f.addr = addr;
            f.auth = p.auth;
            f.key = p.key;
            f.diversity = p.diversity;
            f.addr_div = p.addr_div;
            uint64_t t0 = p.auth ? p.target : p.target & 0x00FFFFFFFFFFFFFFull;
            uint8_t high8 = p.auth ? 0 : (uint8_t)(p.target >> 56);
            /* the patch table naming another image's export here makes it a bind, even when
               the value lands in this image: &dep[0] of a library laid out right past this
               image's segment end, &dep[-1] inside its last bytes */
            const xuse *u = x_find_use(s, addr);
            bool bound_elsewhere = u && u->image != s->index;
            if (!bound_elsewhere && in_segment_padding(s, t0)) {
                /* no section holds it: not a pointer of this image's own, but &dep[-n] of a
                   library laid out right after this image's segment (the patch table cannot
                   carry a negative addend) */
                size_t ti;
                const char *name;
                int64_t addend;
                if (x_name_below(s, t0, &ti, &name, &addend)) {
                    if ((st = bind_to(s, &f, ti, name, addend, wrefs))) return st;
                    continue;
                }
            }
            /* in the image; one past a segment's end too (section-end pointers), except
               from ObjC metadata, whose strings the builder may have put right there */
            if (!bound_elsewhere && (x_seg_of(s, t0) >= 0 || (x_in_image(s, t0) && !in_objc_section(s, addr)))) {
                f.kind = XF_REBASE;
                f.target = t0;
                f.high8 = high8;
                put_value(s, addr, p.auth ? t0 : (t0 | ((uint64_t)high8 << 56)));
                s->st->rebases++;
                if ((st = x_add_fix(s, &f))) return st;
                const char *weak = high8 ? NULL : own_weak_def(s, t0);
                if (weak) {
                    /* a use of one of its own weak definitions: ld64 lets dyld coalesce it */
                    f.kind = XF_BIND;
                    f.symbol = weak;
                    f.ordinal = -3;
                    if ((st = x_add_fix(s, &f))) return st;
                }
                continue;
            }
            if (u) {
                f.kind = XF_BIND;
                f.symbol = u->name;
                f.addend = (int64_t)u->addend;
                f.weak_import = u->weak_import || is_weak_ref(wrefs, u->name);
                f.ordinal = x_ordinal_for(s, u->image);
                put_value(s, addr, 0);
                s->st->binds++;
                if ((st = x_add_fix(s, &f))) return st;
                continue;
            }
            dk_cache_location loc;
            bool found = dk_cache_lookup(s->c, t0, &loc, NULL) == DK_OK;
            /* ObjC strings the builder coalesced: into another image's string sections (the old
               builder used libobjc's) or libobjc's __OBJC_RO, which holds the selector table */
            bool string_section = found && loc.image >= 0 &&
                                  (strcmp(loc.section, "__objc_methname") == 0 || strcmp(loc.section, "__objc_classname") == 0 ||
                                   strcmp(loc.section, "__objc_methtype") == 0 || strcmp(loc.segment, "__OBJC_RO") == 0);
            if (string_section) {
                /* coalesced into another image's string section (the old builder used libobjc's) */
                bool copied;
                if ((st = string_rebase(s, &f, t0, high8, &copied))) return st;
                if (copied) continue;
            }
            if (found && loc.image >= 0 && (size_t)loc.image != s->index) {
                const char *name;
                int64_t addend;
                size_t target_image = (size_t)loc.image;
                if (!s->reach[target_image] && x_name_below(s, t0, &target_image, &name, &addend)) {
                    /* &symbol[-n] of a library this image links, that the layout put past another image's end */
                    if ((st = bind_to(s, &f, target_image, name, addend, wrefs))) return st;
                    continue;
                }
                if (x_name_address(s, (size_t)loc.image, t0, &name, &addend)) {
                    if ((st = bind_to(s, &f, (size_t)loc.image, name, addend, wrefs))) return st;
                    continue;
                }
            } else if (t0) {
                /* outside every image, in data (padding or the uniqued GOTs between images):
                   &symbol[-n] of a library this image links; in text: a string the cache
                   coalesced (selectors, class names) */
                size_t ti;
                const char *name;
                int64_t addend;
                if (in_writable_mapping(maps, nm, t0) && x_name_below(s, t0, &ti, &name, &addend)) {
                    if ((st = bind_to(s, &f, ti, name, addend, wrefs))) return st;
                    continue;
                }
                bool copied;
                if ((st = string_rebase(s, &f, t0, high8, &copied))) return st;
                if (copied) continue;
            }
            /* a uniqued protocol: back to the image's own definition */
            uint64_t own;
            if (found && loc.image >= 0 && in_objc_section(s, addr) && own_protocol(s, protos, t0, &own)) {
                f.kind = XF_REBASE;
                f.target = own;
                f.high8 = high8;
                put_value(s, addr, p.auth ? own : (own | ((uint64_t)high8 << 56)));
                s->st->rebases++;
                s->st->protocols_restored++;
                if ((st = x_add_fix(s, &f))) return st;
                continue;
            }
            /* nothing names it: keep the value; the image will not be fully loadable */
            if (!s->st->unresolved++) {
                s->st->unresolved_at = addr;
                s->st->unresolved_target = t0;
            }
            put_value(s, addr, p.target);
        }
    }
    if (s->strings.buf.oom) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
    return DK_OK;
}
