/*
 * Extractor, output: the image's own LINKEDIT and the file.
 *   LINKEDIT (in the order ld64 writes and dyld checks): rebase, bind, weak
 *   bind, lazy bind opcodes (or LC_DYLD_CHAINED_FIXUPS data), export trie,
 *   function starts, data in code, symbol table (the cache's unmapped locals,
 *   then the image's own locals, exported and undefined symbols, and an
 *   undefined symbol for every other bound name), indirect symbol table
 *   (rebuilt from the fixups), string table.
 *   Segments keep their VM addresses; file offsets are packed, page aligned;
 *   the added __OBJC_EXTRA segment and the new __LINKEDIT come last;
 *   MH_DYLIB_IN_CACHE is cleared.
 */
#include "arm64.h"
#include "extract_internal.h"

#include <stdio.h>


typedef struct out_seg {
    uint64_t vmaddr, vmsize, fileoff, filesize;
} out_seg;

/* ------------------------------------------------------------- symbols */

/* An undefined symbol of the output: its name (string table offset) and nlist index. */
typedef struct import_sym {
    uint32_t strx;
    uint32_t index;
} import_sym;

typedef struct symtab_out {
    dk_buf nlist;
    dk_strpool strings;
    uint32_t nlocal, nextdef, nundef;
    uint32_t *map;      /* old (cache image) symbol index -> new */
    size_t nmap;
    dk_vec imports;     /* import_sym, sorted by strx */
} symtab_out;

static int import_cmp(const void *a, const void *b)
{
    const import_sym *x = a, *y = b;
    return x->strx < y->strx ? -1 : x->strx > y->strx;
}

/* The undefined symbol named NAME, or UINT32_MAX. */
static uint32_t import_index(symtab_out *t, const char *name)
{
    import_sym key = {dk_strpool_cstr(&t->strings, name), 0};
    const import_sym *hit = t->imports.len ? bsearch(&key, t->imports.data, t->imports.len, sizeof key, import_cmp) : NULL;
    return hit ? hit->index : UINT32_MAX;
}

/* n_desc of an undefined symbol: library ordinal in the high byte (SET_LIBRARY_ORDINAL), weak reference. */
static uint16_t import_desc(const xfix *f)
{
    unsigned ord = f->ordinal > 0 && f->ordinal < 0xFE ? (unsigned)f->ordinal
                   : f->ordinal == -1                  ? 0xFFu /* EXECUTABLE_ORDINAL */
                   : f->ordinal == -2                  ? 0xFEu /* DYNAMIC_LOOKUP_ORDINAL */
                                                       : 0u;
    return (uint16_t)((ord << 8) | (f->weak_import ? N_WEAK_REF : 0));
}

static void put_nlist(xstate *s, dk_buf *b, uint32_t strx, uint8_t type, uint8_t sect, uint16_t desc, uint64_t value)
{
    dk_buf_u32(b, strx);
    dk_buf_u8(b, type);
    dk_buf_u8(b, sect);
    dk_buf_u16(b, desc);
    if (s->is64) dk_buf_u64(b, value);
    else dk_buf_u32(b, (uint32_t)value);
}

typedef struct local_ctx {
    xstate *s;
    symtab_out *t;
} local_ctx;

static int on_local(void *ctx, const dk_cache_symbol *cs)
{
    local_ctx *l = ctx;
    uint32_t strx = dk_strpool_cstr(&l->t->strings, cs->name ? cs->name : "");
    put_nlist(l->s, &l->t->nlist, strx, cs->type, cs->sect, cs->desc, cs->address);
    l->t->nlocal++;
    return 0;
}

static dk_status build_symtab(xstate *s, symtab_out *t)
{
    dk_strpool_add(&t->strings, " ", 1); /* n_strx 0 and 1 stay meaningless, as ld64 starts its table */
    local_ctx lc = {s, t};
    dk_status st = dk_cache_foreach_local_symbol(s->c, s->index, on_local, &lc, s->err);
    if (st && st != DK_E_NOTFOUND) return st;
    const dk_symbol *syms;
    size_t n;
    if ((st = dk_macho_symbols(s->m, &syms, &n, s->err))) return st;
    t->map = malloc(sizeof(uint32_t) * (n ? n : 1));
    if (!t->map) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
    t->nmap = n;
    uint32_t next = t->nlocal;
    for (int pass = 0; pass < 3; pass++)
        for (size_t i = 0; i < n; i++) {
            const dk_symbol *y = &syms[i];
            bool stab = (y->type & N_STAB) != 0, ext = (y->type & N_EXT) != 0;
            bool undef = !stab && (y->type & N_TYPE) == N_UNDF;
            int kind = (stab || !ext) ? 0 : undef ? 2 : 1;
            if (kind != pass) continue;
            uint64_t value = y->value;
            if (!stab && (y->type & N_TYPE) == N_INDR) {
                const uint8_t *tp = y->value < s->m->symtab.strsize
                                        ? dk__linkedit(s->m, s->m->symtab.stroff + y->value, s->m->symtab.strsize - y->value)
                                        : NULL;
                value = tp ? dk_strpool_add(&t->strings, (const char *)tp, strnlen((const char *)tp, s->m->symtab.strsize - y->value)) : 0;
            }
            uint32_t strx = dk_strpool_cstr(&t->strings, y->name);
            put_nlist(s, &t->nlist, strx, y->type, y->sect, y->desc, value);
            t->map[i] = next;
            if (pass == 0) t->nlocal++;
            else if (pass == 1) t->nextdef++;
            else {
                t->nundef++;
                import_sym *im = dk_vec_push(&t->imports, sizeof *im);
                if (!im) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
                im->strx = strx;
                im->index = next;
            }
            next++;
        }
    /* every bound name gets an undefined symbol (the cache builder dropped them; nm,
       debuggers and the indirect symbol table name imports through them) */
    if (t->imports.len) qsort(t->imports.data, t->imports.len, sizeof(import_sym), import_cmp);
    const xfix *fx = s->fixes.data;
    for (size_t i = 0; i < s->fixes.len; i++) {
        if (fx[i].kind == XF_REBASE || !fx[i].symbol || fx[i].ordinal == -3 /* weak coalescing: defined here */) continue;
        if (import_index(t, fx[i].symbol) != UINT32_MAX) continue;
        uint32_t strx = dk_strpool_cstr(&t->strings, fx[i].symbol);
        put_nlist(s, &t->nlist, strx, N_UNDF | N_EXT, 0, import_desc(&fx[i]), 0);
        import_sym *im = dk_vec_push(&t->imports, sizeof *im);
        if (!im) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
        im->strx = strx;
        im->index = next++;
        t->nundef++;
        /* keep the table sorted: the new entry moves down to its place */
        import_sym *v = t->imports.data;
        for (size_t k = t->imports.len - 1; k > 0 && v[k - 1].strx > v[k].strx; k--) {
            import_sym tmp = v[k];
            v[k] = v[k - 1];
            v[k - 1] = tmp;
        }
    }
    if (t->nlist.oom || t->strings.buf.oom) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
    return DK_OK;
}

/*
 * The indirect symbol table, entry by entry: a slot (or the slot a stub loads)
 * that is bound names the import's undefined symbol; otherwise the cache's
 * entry is kept when it names a symbol, else INDIRECT_SYMBOL_LOCAL.  Old
 * caches zeroed the table and dropped undefined symbols, so it is rebuilt
 * from the fixups rather than trusted.
 */
static void write_indirect(xstate *s, symtab_out *t, const uint32_t *ind, size_t nind, dk_buf *le)
{
    size_t nsect;
    const dk_section *secs = dk_macho_sections(s->m, &nsect);
    uint32_t *out = malloc(sizeof(uint32_t) * (nind ? nind : 1));
    if (!out) {
        le->oom = true;
        return;
    }
    for (size_t i = 0; i < nind; i++) {
        uint32_t v = ind[i];
        if (!(v & (INDIRECT_SYMBOL_LOCAL | INDIRECT_SYMBOL_ABS))) v = v < t->nmap ? t->map[v] : INDIRECT_SYMBOL_LOCAL;
        out[i] = v;
    }
    for (size_t si = 0; si < nsect; si++) {
        const dk_section *sec = &secs[si];
        uint32_t type = sec->flags & SECTION_TYPE;
        bool stubs = type == S_SYMBOL_STUBS;
        if (!stubs && type != S_LAZY_SYMBOL_POINTERS && type != S_NON_LAZY_SYMBOL_POINTERS && type != S_LAZY_DYLIB_SYMBOL_POINTERS)
            continue;
        uint32_t step = stubs ? sec->reserved2 : s->ptr;
        if (!step) continue;
        for (uint64_t k = 0; k < sec->size / step; k++) {
            uint64_t idx = (uint64_t)sec->reserved1 + k, slot = sec->addr + k * step;
            if (idx >= nind) break;
            if (stubs) {
                const uint8_t *p = x_at(s, slot, step);
                dk_stub st;
                memset(&st, 0, sizeof st);
                if (p) dk__stub_decode(s->m->hdr.cputype, p, slot, step, &st);
                if (!st.has_slot) continue;
                slot = st.slot;
            }
            size_t nf;
            const xfix *b = x_bind_at(s, slot), *any = x_fixes_at(s, slot, &nf);
            if (b && b->symbol) {
                uint32_t u = import_index(t, b->symbol);
                if (u != UINT32_MAX) out[idx] = u;
            } else if (any && !(out[idx] & (INDIRECT_SYMBOL_LOCAL | INDIRECT_SYMBOL_ABS)) && out[idx] >= t->nlocal + t->nextdef) {
                out[idx] = INDIRECT_SYMBOL_LOCAL; /* an undefined symbol for a slot that is not bound */
            }
        }
    }
    for (size_t i = 0; i < nind; i++) dk_buf_u32(le, out[i]);
    free(out);
}

/* ---------------------------------------------------------- load commands */

typedef struct lc_out {
    dk_buf cmds;
    uint32_t ncmds;
} lc_out;

static void cmd_linkedit_data(lc_out *o, uint32_t cmd, uint64_t off, uint64_t size)
{
    dk_buf_u32(&o->cmds, cmd);
    dk_buf_u32(&o->cmds, 16);
    dk_buf_u32(&o->cmds, size ? (uint32_t)off : 0);
    dk_buf_u32(&o->cmds, (uint32_t)size);
    o->ncmds++;
}

static void cmd_segment(xstate *s, lc_out *o, const uint8_t *orig, uint32_t origsize, const xseg *g, const out_seg *os)
{
    size_t at = o->cmds.len;
    bool s64 = s->is64;
    uint32_t nsects = orig ? dk_le32(orig + (s64 ? 64 : 48)) : 0;
    uint32_t hdr = s64 ? 72 : 56, ssz = s64 ? 80 : 68;
    if (orig) {
        dk_buf_bytes(&o->cmds, orig, origsize);
    } else {
        /* __OBJC_EXTRA: __objc_methname strings, then __objc_selrefs */
        nsects = 0;
        dk_buf_zeros(&o->cmds, hdr);
    }
    if (o->cmds.oom) return;
    uint8_t *p = o->cmds.data + at;
    dk_wr32le(p, s64 ? LC_SEGMENT_64 : LC_SEGMENT);
    memset(p + 8, 0, 16);
    memcpy(p + 8, g->name, strnlen(g->name, 16));
    if (s64) {
        dk_wr64le(p + 24, os->vmaddr);
        dk_wr64le(p + 32, os->vmsize);
        dk_wr64le(p + 40, os->fileoff);
        dk_wr64le(p + 48, os->filesize);
        dk_wr32le(p + 56, g->maxprot);
        dk_wr32le(p + 60, g->initprot);
    } else {
        dk_wr32le(p + 24, (uint32_t)os->vmaddr);
        dk_wr32le(p + 28, (uint32_t)os->vmsize);
        dk_wr32le(p + 32, (uint32_t)os->fileoff);
        dk_wr32le(p + 36, (uint32_t)os->filesize);
        dk_wr32le(p + 40, g->maxprot);
        dk_wr32le(p + 44, g->initprot);
    }
    for (uint32_t k = 0; k < nsects; k++) {
        uint8_t *x = p + hdr + k * ssz;
        uint64_t addr = s64 ? dk_le64(x + 32) : dk_le32(x + 32);
        uint8_t *offp = x + (s64 ? 48 : 40);
        uint32_t type = dk_le32(offp + 16) & SECTION_TYPE;
        bool zf = type == S_ZEROFILL || type == S_GB_ZEROFILL || type == S_THREAD_LOCAL_ZEROFILL;
        dk_wr32le(offp, zf ? 0 : (uint32_t)(os->fileoff + (addr - os->vmaddr)));
        dk_wr32le(offp + 8, 0); /* reloff */
        dk_wr32le(offp + 12, 0); /* nreloc */
    }
    o->ncmds++;
}

static void extra_segment_cmd(xstate *s, lc_out *o, const xseg *g, const out_seg *os)
{
    bool s64 = s->is64;
    uint32_t hdr = s64 ? 72 : 56, ssz = s64 ? 80 : 68;
    uint64_t strings = s->strings.buf.len, sel_off = (strings + 7) & ~7ull;
    uint32_t nsects = (strings ? 1 : 0) + (s->new_selrefs.len ? 1 : 0);
    size_t at = o->cmds.len;
    dk_buf_zeros(&o->cmds, hdr + nsects * ssz);
    if (o->cmds.oom) return;
    uint8_t *p = o->cmds.data + at;
    dk_wr32le(p + 4, hdr + nsects * ssz);
    if (s64) dk_wr32le(p + 64, nsects);
    else dk_wr32le(p + 48, nsects);
    uint8_t *x = p + hdr;
    struct { const char *name; uint64_t off, size; uint32_t flags, align; } sec[2] = {
        {"__objc_methname", 0, strings, S_CSTRING_LITERALS, 0},
        {"__objc_selrefs", sel_off, s->new_selrefs.len * s->ptr, S_LITERAL_POINTERS | 0x10000000u /* S_ATTR_NO_DEAD_STRIP */, s64 ? 3u : 2u}};
    for (int k = 0; k < 2; k++) {
        if (!sec[k].size) continue;
        memcpy(x, sec[k].name, strlen(sec[k].name));
        memcpy(x + 16, g->name, strnlen(g->name, 16));
        if (s64) {
            dk_wr64le(x + 32, os->vmaddr + sec[k].off);
            dk_wr64le(x + 40, sec[k].size);
            x += 48;
        } else {
            dk_wr32le(x + 32, (uint32_t)(os->vmaddr + sec[k].off));
            dk_wr32le(x + 36, (uint32_t)sec[k].size);
            x += 40;
        }
        dk_wr32le(x, (uint32_t)(os->fileoff + sec[k].off));
        dk_wr32le(x + 4, sec[k].align);
        dk_wr32le(x + 16, sec[k].flags);
        x += s64 ? 32 : 28;
    }
    /* cmd_segment appends to o->cmds (which may move it): give it a copy,
     * then drop the draft */
    uint32_t n = hdr + nsects * ssz;
    uint8_t draft[72 + 2 * 80];
    memcpy(draft, p, n);
    o->cmds.len = at;
    cmd_segment(s, o, draft, n, g, os);
}

/* ----------------------------------------------------------------- file */

dk_status x_write_image(xstate *s, uint8_t **data, size_t *size)
{
    dk_status st = DK_OK;
    bool chained = s->o->fixups == DK_EXTRACT_FIXUPS_CHAINED || (s->o->fixups == DK_EXTRACT_FIXUPS_DEFAULT && s->arm64e);
    xfix *fx = s->fixes.data;
    size_t nfx = s->fixes.len;
    x_sort_fixes(s);
    fx = s->fixes.data;
    if (!chained)
        for (size_t i = 0; i < nfx; i++)
            if (fx[i].auth)
                return dk_fail(s->err, DK_E_UNSUPPORTED, "pointer at 0x%llx is authenticated: use chained fixups (--fixups chained)",
                               (unsigned long long)fx[i].addr);
    if (chained && !s->is64) return dk_fail(s->err, DK_E_UNSUPPORTED, "chained fixups for 32-bit images are not written; use --fixups classic");

    /* file layout of the segments (LINKEDIT placed once its size is known) */
    /* Each segment's file offset is congruent to its VM address modulo the page size,
       so it can be mapped, even where the cache packed segments at sub-page
       addresses.  A segment that starts on the page where the previous one ends
       keeps their VM distance in the file too: mapping either gives that page
       the same bytes. */
    out_seg os[XMAX_SEGS];
    uint64_t off = 0, vmend = 0, mask = s->page - 1;
    int prev = -1;
    for (size_t i = 0; i < s->nsegs; i++) {
        if ((int)i == s->linkedit) continue;
        const xseg *g = &s->segs[i];
        os[i].vmaddr = g->vmaddr;
        os[i].vmsize = g->vmsize;
        os[i].filesize = g->vmsize;
        const xseg *pg = prev >= 0 ? &s->segs[prev] : NULL;
        if (i == 0) os[i].fileoff = 0;
        else if (pg && pg->vmsize && g->vmaddr >= pg->vmaddr + pg->vmsize &&
                 (g->vmaddr & ~mask) == ((pg->vmaddr + pg->vmsize - 1) & ~mask))
            os[i].fileoff = os[prev].fileoff + (g->vmaddr - pg->vmaddr);
        else
            os[i].fileoff = ((off + mask) & ~mask) + (g->vmaddr & mask);
        off = os[i].fileoff + os[i].filesize;
        if (g->vmaddr + g->vmsize > vmend) vmend = g->vmaddr + g->vmsize;
        prev = (int)i;
    }
    if (s->segs[0].vmaddr != s->base) return dk_fail(s->err, DK_E_UNSUPPORTED, "the first segment does not hold the mach header");
    uint64_t le_fileoff = (off + s->page - 1) & ~(s->page - 1);
    uint64_t le_vmaddr = (vmend + s->page - 1) & ~(s->page - 1);

    /* ---- LINKEDIT */
    dk_buf le = {0};
    uint64_t rebase_off = 0, rebase_size = 0, bind_off = 0, bind_size = 0, weak_off = 0, weak_size = 0, lazy_off = 0, lazy_size = 0;
    uint64_t chained_off = 0, chained_size = 0;
    dk_rebase_loc *rl = NULL;
    dk_bind_rec *br = NULL;
    dk_chain_fixup *cf = NULL;
    dk_chain_import *ci = NULL;
    dk_chain_segment cs[XMAX_SEGS];
    symtab_out t;
    memset(&t, 0, sizeof t);
    lc_out lo = {{0}, 0};
    uint32_t *lazy_offsets = NULL;
    if (!chained) {
        rl = calloc(nfx ? nfx : 1, sizeof *rl);
        br = calloc(nfx ? nfx : 1, sizeof *br);
        lazy_offsets = calloc(nfx ? nfx : 1, sizeof *lazy_offsets);
        if (!rl || !br || !lazy_offsets) {
            st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
            goto out;
        }
        size_t nr = 0, nb;
        for (size_t i = 0; i < nfx; i++) {
            if (fx[i].kind != XF_REBASE) continue;
            int g = x_seg_of(s, fx[i].addr);
            if (g < 0) continue;
            rl[nr].seg = (uint32_t)g;
            rl[nr].segoff = fx[i].addr - s->segs[g].vmaddr;
            rl[nr].type = REBASE_TYPE_POINTER;
            nr++;
        }
        rebase_off = le.len;
        if (nr && (st = dk_rebase_encode(rl, nr, s->ptr, &le, s->err))) goto out;
        rebase_size = le.len - rebase_off;
        /* binds (weak lookups go to the weak-bind stream), then lazy binds in slot order */
        for (int pass = 0; pass < 3; pass++) {
            nb = 0;
            for (size_t i = 0; i < nfx; i++) {
                bool want = pass == 0 ? (fx[i].kind == XF_BIND && fx[i].ordinal != -3)
                            : pass == 1 ? (fx[i].kind == XF_BIND && fx[i].ordinal == -3)
                                        : fx[i].kind == XF_LAZY;
                if (!want) continue;
                int g = x_seg_of(s, fx[i].addr);
                if (g < 0) continue;
                dk_bind_rec *r = &br[nb++];
                r->seg = (uint32_t)g;
                r->segoff = fx[i].addr - s->segs[g].vmaddr;
                r->ordinal = fx[i].ordinal;
                r->symbol = fx[i].symbol;
                r->flags = fx[i].weak_import ? BIND_SYMBOL_FLAGS_WEAK_IMPORT : 0;
                r->addend = fx[i].addend;
                r->type = BIND_TYPE_POINTER;
            }
            if (!nb) continue;
            dk_buf_align(&le, 8);
            uint64_t at = le.len;
            if (pass == 0) st = dk_bind_encode(br, nb, s->ptr, &le, s->err);
            else if (pass == 1) st = dk_weak_bind_encode(br, nb, s->ptr, &le, s->err);
            else st = dk_lazy_bind_encode(br, nb, s->ptr, &le, lazy_offsets, s->err);
            if (st) goto out;
            if (pass == 0) bind_off = at, bind_size = le.len - at;
            else if (pass == 1) weak_off = at, weak_size = le.len - at;
            else lazy_off = at, lazy_size = le.len - at;
        }
        /* each __stub_helper entry pushes the offset of its lazy-bind record */
        size_t k = 0;
        for (size_t i = 0; i < nfx; i++) {
            if (fx[i].kind != XF_LAZY) continue;
            uint32_t lo_ = lazy_offsets[k++];
            if (!fx[i].helper) continue;
            uint8_t *hp = x_at(s, fx[i].helper, 12);
            if (!hp) continue;
            if (s->x86_64) dk_wr32le(hp + 1, lo_);
            else dk_wr32le(hp + 8, lo_);
        }
    } else {
        /* chained: every pointer (lazy ones too) in LC_DYLD_CHAINED_FIXUPS */
        cf = calloc(nfx ? nfx : 1, sizeof *cf);
        ci = calloc(nfx ? nfx : 1, sizeof *ci);
        if (!cf || !ci) {
            st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
            goto out;
        }
        size_t n = 0, ni = 0;
        for (size_t i = 0; i < nfx; i++) {
            if (fx[i].kind == XF_REBASE && i + 1 < nfx && fx[i + 1].addr == fx[i].addr) continue; /* a lazy slot: its bind wins */
            dk_chain_fixup *c = &cf[n++];
            c->address = fx[i].addr;
            c->auth = fx[i].auth;
            c->key = fx[i].key;
            c->diversity = fx[i].diversity;
            c->addr_div = fx[i].addr_div;
            if (fx[i].kind == XF_REBASE) {
                c->target = fx[i].target;
                c->high8 = fx[i].high8;
                continue;
            }
            c->bind = true;
            c->addend = fx[i].addend;
            size_t j = 0;
            while (j < ni && !(ci[j].ordinal == fx[i].ordinal && ci[j].weak_import == fx[i].weak_import && strcmp(ci[j].name, fx[i].symbol) == 0)) j++;
            if (j == ni) {
                ci[ni].ordinal = fx[i].ordinal;
                ci[ni].name = fx[i].symbol;
                ci[ni].weak_import = fx[i].weak_import;
                ni++;
            }
            c->import = (uint32_t)j;
        }
        size_t nseg = 0;
        for (size_t i = 0; i < s->nsegs; i++) {
            cs[nseg].vmaddr = s->segs[i].vmaddr;
            cs[nseg].vmsize = (int)i == s->linkedit ? 0 : s->segs[i].vmsize;
            cs[nseg].content = s->segs[i].data;
            cs[nseg].content_size = s->segs[i].data ? s->segs[i].vmsize : 0;
            if ((int)i == s->linkedit) cs[nseg].vmaddr = le_vmaddr;
            nseg++;
        }
        uint16_t fmt = s->arm64e ? DK_CHAINED_PTR_ARM64E : DK_CHAINED_PTR_64_OFFSET;
        dk_buf_align(&le, 8);
        chained_off = le.len;
        if ((st = dk_chained_encode(fmt, (uint32_t)s->page, s->base, cs, nseg, cf, n, ci, ni, &le, s->err))) goto out;
        chained_size = le.len - chained_off;
    }
    /* export trie, function starts, data in code: the cache's bytes (offsets are image-relative) */
    const dk_macho *m = s->m;
    const dk_blob *trie = m->exports_trie.present ? &m->exports_trie : (m->dyld_info.present ? &m->dyld_info.export_ : NULL);
    uint64_t trie_off = 0, trie_size = 0, fs_off = 0, fs_size = 0, dic_off = 0, dic_size = 0;
    const dk_blob *blobs[3] = {trie, m->function_starts.present ? &m->function_starts : NULL,
                               m->data_in_code.present ? &m->data_in_code : NULL};
    uint64_t *offs[3] = {&trie_off, &fs_off, &dic_off}, *sizes[3] = {&trie_size, &fs_size, &dic_size};
    for (int k = 0; k < 3; k++) {
        if (!blobs[k] || !blobs[k]->size) continue;
        const uint8_t *p = dk__linkedit(m, blobs[k]->off, blobs[k]->size);
        if (!p) {
            st = dk_fail(s->err, DK_E_MALFORMED, "LINKEDIT data at 0x%x+0x%x is not in the cache", blobs[k]->off, blobs[k]->size);
            goto out;
        }
        dk_buf_align(&le, 8);
        *offs[k] = le.len;
        *sizes[k] = blobs[k]->size;
        dk_buf_bytes(&le, p, blobs[k]->size);
    }
    /* symbol table, indirect symbols, strings */
    if ((st = build_symtab(s, &t))) goto out;
    dk_buf_align(&le, 8);
    uint64_t sym_off = le.len;
    dk_buf_bytes(&le, t.nlist.data, t.nlist.len);
    const uint32_t *ind;
    size_t nind;
    if ((st = dk_macho_indirect_symbols(s->m, &ind, &nind, s->err))) goto out;
    uint64_t ind_off = le.len;
    write_indirect(s, &t, ind, nind, &le);
    uint64_t str_off = le.len;
    dk_buf_bytes(&le, t.strings.buf.data, t.strings.buf.len);
    dk_buf_align(&le, s->ptr);
    uint64_t str_size = le.len - str_off;
    if (le.oom) {
        st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
        goto out;
    }
    os[s->linkedit].vmaddr = le_vmaddr;
    os[s->linkedit].fileoff = le_fileoff;
    os[s->linkedit].filesize = le.len;
    os[s->linkedit].vmsize = (le.len + s->page - 1) & ~(s->page - 1);

    /* ---- load commands */
    size_t nlc;
    const dk_loadcmd *lcs = dk_macho_loadcmds(s->m, &nlc);
    size_t nsegs_in;
    const dk_segment *segs_in = dk_macho_segments(s->m, &nsegs_in);
#define LE(x) (le_fileoff + (x))
    for (size_t i = 0; i < nlc; i++) {
        const dk_loadcmd *lc = &lcs[i];
        switch (lc->cmd) {
        case LC_SEGMENT: case LC_SEGMENT_64: {
            size_t k = 0;
            while (k < nsegs_in && segs_in[k].loadcmd != i) k++;
            int g = -1;
            for (size_t q = 0; q < s->nsegs; q++)
                if (s->segs[q].src == (int)k) g = (int)q;
            if (g < 0) continue;
            if (g == s->linkedit && s->extra_seg >= 0) extra_segment_cmd(s, &lo, &s->segs[s->extra_seg], &os[s->extra_seg]);
            cmd_segment(s, &lo, lc->data, lc->cmdsize, &s->segs[g], &os[g]);
            continue;
        }
        case LC_SYMTAB:
            dk_buf_u32(&lo.cmds, LC_SYMTAB);
            dk_buf_u32(&lo.cmds, 24);
            dk_buf_u32(&lo.cmds, (uint32_t)LE(sym_off));
            dk_buf_u32(&lo.cmds, t.nlocal + t.nextdef + t.nundef);
            dk_buf_u32(&lo.cmds, (uint32_t)LE(str_off));
            dk_buf_u32(&lo.cmds, (uint32_t)str_size);
            lo.ncmds++;
            continue;
        case LC_DYSYMTAB: {
            uint32_t v[18] = {0, t.nlocal, t.nlocal, t.nextdef, t.nlocal + t.nextdef, t.nundef};
            v[12] = nind ? (uint32_t)LE(ind_off) : 0;
            v[13] = (uint32_t)nind;
            dk_buf_u32(&lo.cmds, LC_DYSYMTAB);
            dk_buf_u32(&lo.cmds, 80);
            for (int k = 0; k < 18; k++) dk_buf_u32(&lo.cmds, v[k]);
            lo.ncmds++;
            continue;
        }
        case LC_DYLD_INFO: case LC_DYLD_INFO_ONLY: case LC_DYLD_EXPORTS_TRIE:
            /* emitted once, below */
            continue;
        case LC_FUNCTION_STARTS: cmd_linkedit_data(&lo, lc->cmd, LE(fs_off), fs_size); continue;
        case LC_DATA_IN_CODE: cmd_linkedit_data(&lo, lc->cmd, LE(dic_off), dic_size); continue;
        case LC_DYLD_CHAINED_FIXUPS: case LC_SEGMENT_SPLIT_INFO: case LC_CODE_SIGNATURE: case LC_DYLIB_CODE_SIGN_DRS:
            continue;
        default:
            dk_buf_bytes(&lo.cmds, lc->data, lc->cmdsize);
            lo.ncmds++;
            continue;
        }
    }
    if (!chained) {
        uint32_t v[10] = {rebase_size ? (uint32_t)LE(rebase_off) : 0, (uint32_t)rebase_size, bind_size ? (uint32_t)LE(bind_off) : 0,
                          (uint32_t)bind_size, weak_size ? (uint32_t)LE(weak_off) : 0, (uint32_t)weak_size,
                          lazy_size ? (uint32_t)LE(lazy_off) : 0, (uint32_t)lazy_size, trie_size ? (uint32_t)LE(trie_off) : 0,
                          (uint32_t)trie_size};
        dk_buf_u32(&lo.cmds, LC_DYLD_INFO_ONLY);
        dk_buf_u32(&lo.cmds, 48);
        for (int k = 0; k < 10; k++) dk_buf_u32(&lo.cmds, v[k]);
        lo.ncmds++;
    } else {
        cmd_linkedit_data(&lo, LC_DYLD_CHAINED_FIXUPS, LE(chained_off), chained_size);
        if (trie_size) cmd_linkedit_data(&lo, LC_DYLD_EXPORTS_TRIE, LE(trie_off), trie_size);
    }
#undef LE
    if (lo.cmds.oom) {
        st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
        goto out;
    }
    /* the commands must fit before the first section's contents */
    const dk_header *h = dk_macho_header(s->m);
    size_t hsize = h->is64 ? 32 : 28;
    uint64_t room = s->segs[0].vmsize;
    size_t nsect;
    const dk_section *sects = dk_macho_sections(s->m, &nsect);
    for (size_t i = 0; i < nsect; i++)
        if (sects[i].size && sects[i].addr >= s->segs[0].vmaddr && sects[i].addr - s->segs[0].vmaddr < room)
            room = sects[i].addr - s->segs[0].vmaddr;
    if (hsize + lo.cmds.len > room) {
        st = dk_fail(s->err, DK_E_UNSUPPORTED, "the rewritten load commands (%zu bytes) do not fit before the first section (%llu bytes)",
                     hsize + lo.cmds.len, (unsigned long long)room);
        goto out;
    }

    /* ---- the file */
    uint64_t total = le_fileoff + le.len;
    uint8_t *f = calloc(1, total);
    if (!f) {
        st = dk_fail(s->err, DK_E_NOMEM, "out of memory for a %llu-byte image", (unsigned long long)total);
        goto out;
    }
    for (size_t i = 0; i < s->nsegs; i++) {
        if ((int)i == s->linkedit || !s->segs[i].data) continue;
        memcpy(f + os[i].fileoff, s->segs[i].data, os[i].filesize);
    }
    memcpy(f + le_fileoff, le.data, le.len);
    /* header: the cache's, without MH_DYLIB_IN_CACHE, and the new commands */
    uint64_t old_end = hsize + h->sizeofcmds;
    memset(f + hsize, 0, old_end > room ? room - hsize : old_end - hsize);
    memcpy(f + hsize, lo.cmds.data, lo.cmds.len);
    dk_wr32le(f + 16, lo.ncmds);
    dk_wr32le(f + 20, (uint32_t)lo.cmds.len);
    dk_wr32le(f + 24, h->flags & ~MH_DYLIB_IN_CACHE);
    *data = f;
    *size = total;
out:
    dk_buf_free(&le);
    dk_buf_free(&t.nlist);
    dk_strpool_free(&t.strings);
    free(t.map);
    dk_vec_free(&t.imports);
    dk_buf_free(&lo.cmds);
    free(rl);
    free(br);
    free(cf);
    free(ci);
    free(lazy_offsets);
    return st;
}
