/*
 * Symbols of cache images: the unmapped local symbols
 * (dyld_cache_local_symbols_info with dyld_cache_local_symbols_entry (12 bytes,
 * dylibOffset = file offset) or dyld_cache_local_symbols_entry_64 (16 bytes,
 * dylibOffset = VM offset from the cache base), chosen as Apple's
 * forEachLocalSymbolEntry does: the 64-bit form iff mappingOffset >=
 * offsetof(symbolFileUUID)), each image's export trie and its own nlist range
 * of the shared symbol table (LC_DYSYMTAB ranges), and address lookup.
 */
#include "cache_internal.h"
#include "macho_internal.h"

#include <stdio.h>

#define FAIL(err, ...) dk_fail((err), DK_E_MALFORMED, __VA_ARGS__)

/* --------------------------------------------------------- local symbols */

static int local_cmp(const void *a, const void *b)
{
    const dk__local_entry *x = a, *y = b;
    return x->dylib_offset < y->dylib_offset ? -1 : x->dylib_offset > y->dylib_offset;
}

static dk_status parse_locals(dk_cache *c, dk_error *err)
{
    const dk_cache_header *mh = dk__main_header(c);
    const dk_cache_file *f = c->symbols ? c->symbols : &c->files[0];
    const dk_cache_header *h = &f->header;
    if (!dk_cache_header_has(h, "localSymbolsSize") || !h->localSymbolsOffset)
        return dk_fail(err, DK_E_NOTFOUND, "the cache has no local symbols");
    uint64_t off = h->localSymbolsOffset, size = h->localSymbolsSize;
    if (!size && off <= f->size) size = f->size - off;
    if (size < 24 || !dk_range_ok(off, size, f->size))
        return FAIL(err, "%s: dyld_cache_local_symbols_info (offset 0x%llx, size 0x%llx) is not inside the file (0x%llx)",
                    f->name, (unsigned long long)off, (unsigned long long)size, (unsigned long long)f->size);
    const uint8_t *p = f->data + off;
    dk_cache_local_symbols *L = &c->locals;
    L->file = f;
    L->offset = off;
    L->nlistOffset = dk_le32(p);
    L->nlistCount = dk_le32(p + 4);
    L->stringsOffset = dk_le32(p + 8);
    L->stringsSize = dk_le32(p + 12);
    L->entriesOffset = dk_le32(p + 16);
    L->entriesCount = dk_le32(p + 20);
    L->entry_size = mh->mappingOffset >= 0x190 ? 16 : 12;
    L->nlist_size = c->ptr_size == 8 ? 16 : 12;
    if (!dk_range_ok(L->nlistOffset, (uint64_t)L->nlistCount * L->nlist_size, size))
        return FAIL(err, "%s: dyld_cache_local_symbols_info at 0x%llx: nlists (offset 0x%x, %u entries) extend past the area (0x%llx bytes)",
                    f->name, (unsigned long long)off, L->nlistOffset, L->nlistCount, (unsigned long long)size);
    if (!dk_range_ok(L->stringsOffset, L->stringsSize, size))
        return FAIL(err, "%s: dyld_cache_local_symbols_info at 0x%llx: strings (offset 0x%x, 0x%x bytes) extend past the area (0x%llx bytes)",
                    f->name, (unsigned long long)off, L->stringsOffset, L->stringsSize, (unsigned long long)size);
    if (!dk_range_ok(L->entriesOffset, (uint64_t)L->entriesCount * L->entry_size, size))
        return FAIL(err, "%s: dyld_cache_local_symbols_info at 0x%llx: entries (offset 0x%x, %u x %u bytes) extend past the area (0x%llx bytes)",
                    f->name, (unsigned long long)off, L->entriesOffset, L->entriesCount, L->entry_size, (unsigned long long)size);
    c->local_entries = calloc(L->entriesCount ? L->entriesCount : 1, sizeof *c->local_entries);
    if (!c->local_entries) return dk_fail(err, DK_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < L->entriesCount; i++) {
        const uint8_t *e = p + L->entriesOffset + (uint64_t)i * L->entry_size;
        dk__local_entry *le = &c->local_entries[i];
        if (L->entry_size == 16) {
            le->dylib_offset = dk_le64(e);
            le->nlist_start = dk_le32(e + 8);
            le->nlist_count = dk_le32(e + 12);
        } else {
            le->dylib_offset = dk_le32(e);
            le->nlist_start = dk_le32(e + 4);
            le->nlist_count = dk_le32(e + 8);
        }
        if ((uint64_t)le->nlist_start + le->nlist_count > L->nlistCount)
            return FAIL(err, "%s: local symbols entry %u: nlistStartIndex %u + nlistCount %u past the %u nlists", f->name, i,
                        le->nlist_start, le->nlist_count, L->nlistCount);
    }
    c->nlocal_entries = L->entriesCount;
    qsort(c->local_entries, c->nlocal_entries, sizeof *c->local_entries, local_cmp);
    return DK_OK;
}

dk_status dk__cache_locals(dk_cache *c, dk_error *err)
{
    pthread_mutex_lock(&c->lock);
    if (!c->locals_done) {
        c->locals_status = parse_locals(c, err);
        c->locals_done = true;
    } else if (c->locals_status == DK_E_NOTFOUND) {
        dk_fail(err, DK_E_NOTFOUND, "the cache has no local symbols");
    } else if (c->locals_status) {
        dk_fail(err, c->locals_status, "the cache's local symbols are malformed");
    }
    dk_status st = c->locals_status;
    pthread_mutex_unlock(&c->lock);
    return st;
}

void dk__cache_symbols_free(dk_cache *c)
{
    free(c->local_entries);
    c->local_entries = NULL;
    if (c->image_syms) {
        for (size_t i = 0; i < c->nimages; i++) {
            free(c->image_syms[i].recs);
            free(c->image_syms[i].names);
            free(c->image_syms[i].sects);
            free(c->image_syms[i].segnames);
        }
        free(c->image_syms);
        c->image_syms = NULL;
    }
}

dk_status dk_cache_local_symbols_info(const dk_cache *c, dk_cache_local_symbols *out, dk_error *err)
{
    dk_status st = dk__cache_locals((dk_cache *)c, err);
    if (st) return st;
    *out = c->locals;
    return DK_OK;
}

dk_status dk_cache_foreach_local_symbol(dk_cache *c, size_t index, dk_cache_symbol_cb cb, void *ctx, dk_error *err)
{
    if (index >= c->nimages) return dk_fail(err, DK_E_ARG, "no image %zu", index);
    dk_error tmp;
    dk_status st = dk__cache_locals(c, &tmp);
    if (st == DK_E_NOTFOUND) return DK_OK;
    if (st) {
        if (err) *err = tmp;
        return st;
    }
    const dk_cache_local_symbols *L = &c->locals;
    const dk_cache_image *im = &c->images[index];
    uint64_t key = im->address - c->base;
    if (L->entry_size == 12) {
        size_t file;
        uint64_t foff;
        if (dk_cache_vm_to_file(c, im->address, &file, &foff, NULL) || file != 0) return DK_OK;
        key = foff;
    }
    size_t lo = 0, hi = c->nlocal_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->local_entries[mid].dylib_offset < key) lo = mid + 1;
        else hi = mid;
    }
    if (lo >= c->nlocal_entries || c->local_entries[lo].dylib_offset != key) return DK_OK;
    const dk__local_entry *le = &c->local_entries[lo];
    const uint8_t *area = L->file->data + L->offset;
    const char *strings = (const char *)area + L->stringsOffset;
    for (uint32_t k = 0; k < le->nlist_count; k++) {
        uint32_t ni = le->nlist_start + k;
        const uint8_t *e = area + L->nlistOffset + (uint64_t)ni * L->nlist_size;
        dk_cache_symbol s;
        memset(&s, 0, sizeof s);
        s.source = DK_CACHE_SYM_LOCAL;
        s.image = (uint32_t)index;
        uint32_t strx = dk_le32(e);
        s.type = e[4];
        s.sect = e[5];
        s.desc = dk_le16(e + 6);
        s.address = L->nlist_size == 16 ? dk_le64(e + 8) : dk_le32(e + 8);
        if (strx >= L->stringsSize || !memchr(strings + strx, 0, L->stringsSize - strx))
            return FAIL(err, "%s: local symbol %u (image %zu): n_strx 0x%x is not a string in the pool (0x%x bytes)",
                        L->file->name, ni, index, strx, L->stringsSize);
        s.name = strings + strx;
        if (cb(ctx, &s)) return DK_E_STOPPED;
    }
    return DK_OK;
}

/* --------------------------------------------------------- image symbols */

typedef struct exp_ctx {
    dk_cache_symbol_cb cb;
    void *ctx;
    uint32_t image;
} exp_ctx;

static int export_cb(void *ctx, const dk_export *e)
{
    exp_ctx *x = ctx;
    dk_cache_symbol s;
    memset(&s, 0, sizeof s);
    s.source = DK_CACHE_SYM_EXPORT;
    s.image = x->image;
    s.name = e->name;
    s.address = e->address;
    s.export_ = e;
    return x->cb(x->ctx, &s);
}

/*
 * The image's own nlists: the LC_DYSYMTAB local/extdef/undef ranges when
 * present, else all of LC_SYMTAB.  Decoded here range by range (not through
 * dk_macho_symbols) because a cache dylib's LC_SYMTAB may describe the whole
 * shared symbol table, of which only its ranges are its own.
 */
static dk_status foreach_nlist(dk_macho *m, uint32_t image, dk_cache_symbol_cb cb, void *ctx, dk_error *err)
{
    if (!m->symtab.present) return DK_OK;
    uint32_t n = m->symtab.nsyms, esize = m->hdr.is64 ? 16 : 12, strsize = m->symtab.strsize;
    const char *strings = (const char *)dk__linkedit(m, m->symtab.stroff, strsize);
    if (!strings && strsize)
        return FAIL(err, "LC_SYMTAB: stroff 0x%x + strsize 0x%x not inside the image's LINKEDIT", m->symtab.stroff, strsize);
    uint64_t ranges[3][2] = {{0, n}, {0, 0}, {0, 0}};
    if (m->dysymtab.present) {
        ranges[0][0] = m->dysymtab.ilocalsym;
        ranges[0][1] = (uint64_t)m->dysymtab.ilocalsym + m->dysymtab.nlocalsym;
        ranges[1][0] = m->dysymtab.iextdefsym;
        ranges[1][1] = (uint64_t)m->dysymtab.iextdefsym + m->dysymtab.nextdefsym;
        ranges[2][0] = m->dysymtab.iundefsym;
        ranges[2][1] = (uint64_t)m->dysymtab.iundefsym + m->dysymtab.nundefsym;
    }
    for (int r = 0; r < 3; r++) {
        if (ranges[r][1] > n)
            return FAIL(err, "LC_DYSYMTAB: symbols %llu..%llu past the %u symbols of LC_SYMTAB",
                        (unsigned long long)ranges[r][0], (unsigned long long)ranges[r][1], n);
        uint64_t count = ranges[r][1] - ranges[r][0];
        uint64_t first = (uint64_t)m->symtab.symoff + ranges[r][0] * esize;
        const uint8_t *tab = count ? dk__linkedit(m, first, count * esize) : NULL;
        if (count && !tab)
            return FAIL(err, "LC_SYMTAB: nlists %llu..%llu (offset 0x%llx) not inside the image's LINKEDIT",
                        (unsigned long long)ranges[r][0], (unsigned long long)ranges[r][1], (unsigned long long)first);
        for (uint64_t i = 0; i < count; i++) {
            const uint8_t *e = tab + i * esize;
            dk_cache_symbol s;
            memset(&s, 0, sizeof s);
            s.source = DK_CACHE_SYM_NLIST;
            s.image = image;
            uint32_t strx = dk_rd32(m->be, e);
            s.type = e[4];
            s.sect = e[5];
            s.desc = dk_rd16(m->be, e + 6);
            s.address = esize == 16 ? dk_rd64(m->be, e + 8) : dk_rd32(m->be, e + 8);
            if (strx >= strsize || !memchr(strings + strx, 0, strsize - strx))
                return FAIL(err, "symbol %llu (nlist at offset 0x%llx): n_strx 0x%x is not a string in the table (strsize 0x%x)",
                            (unsigned long long)(ranges[r][0] + i), (unsigned long long)(first + i * esize), strx, strsize);
            s.name = strings + strx;
            if (cb(ctx, &s)) return DK_E_STOPPED;
        }
    }
    return DK_OK;
}

dk_status dk_cache_foreach_image_symbol(dk_cache *c, size_t index, dk_cache_symbol_cb cb, void *ctx, dk_error *err)
{
    dk_macho *m;
    dk_status st = dk_cache_open_image(c, index, &m, err);
    if (st) return st;
    exp_ctx x = {cb, ctx, (uint32_t)index};
    st = dk_macho_foreach_export(m, export_cb, &x, err);
    if (st == DK_OK) st = foreach_nlist(m, (uint32_t)index, cb, ctx, err);
    dk_macho_close(m);
    if (st == DK_OK) st = dk_cache_foreach_local_symbol(c, index, cb, ctx, err);
    if (st && st != DK_E_STOPPED) dk_error_prefix(err, "image %zu (%s): ", index, c->images[index].path);
    return st;
}

/* -------------------------------------------------------- address lookup */

typedef struct sym_build {
    dk_vec recs;   /* dk__sym_rec with name = offset into names (as a pointer-sized integer) */
    dk_vec names;  /* char */
    bool oom;
} sym_build;

static int collect_cb(void *ctx, const dk_cache_symbol *s)
{
    sym_build *b = ctx;
    if (!s->name || !*s->name) return 0;
    if (s->source == DK_CACHE_SYM_EXPORT) {
        if (s->export_->flags & (DK_EXPORT_REEXPORT | DK_EXPORT_ABSOLUTE)) return 0;
    } else if ((s->type & 0xe0) || (s->type & 0x0e) != 0x0e) {
        return 0; /* stabs and anything not N_SECT */
    }
    size_t len = strlen(s->name) + 1;
    if (!dk_vec_reserve(&b->names, 1, b->names.len + len)) {
        b->oom = true;
        return 1;
    }
    dk__sym_rec *r = dk_vec_push(&b->recs, sizeof *r);
    if (!r) {
        b->oom = true;
        return 1;
    }
    r->address = s->address;
    r->name = (const char *)(uintptr_t)b->names.len;
    memcpy((char *)b->names.data + b->names.len, s->name, len);
    b->names.len += len;
    return 0;
}

static int sym_cmp(const void *a, const void *b)
{
    const dk__sym_rec *x = a, *y = b;
    return x->address < y->address ? -1 : x->address > y->address;
}

/* The sorted symbols of one image, built once. */
/* The segment names and sections of IMAGE, copied into IS (the image opened once). */
static dk_status image_layout(dk_cache *c, size_t image, dk__image_syms *is, dk_error *err)
{
    dk_macho *m;
    dk_status st = dk_cache_open_image(c, image, &m, err);
    if (st) return st;
    size_t ns, nsec;
    const dk_segment *segs = dk_macho_segments(m, &ns);
    const dk_section *sects = dk_macho_sections(m, &nsec);
    is->segnames = calloc(ns ? ns : 1, sizeof *is->segnames);
    is->sects = calloc(nsec ? nsec : 1, sizeof *is->sects);
    if (!is->segnames || !is->sects) {
        free(is->segnames);
        free(is->sects);
        is->segnames = NULL;
        is->sects = NULL;
        dk_macho_close(m);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < ns; i++) memcpy(is->segnames[i], segs[i].segname, 17);
    for (size_t i = 0; i < nsec; i++) {
        is->sects[i].addr = sects[i].addr;
        is->sects[i].size = sects[i].size;
        memcpy(is->sects[i].sectname, sects[i].sectname, 17);
    }
    is->nsegnames = ns;
    is->nsects = nsec;
    dk_macho_close(m);
    return DK_OK;
}

static dk_status image_syms(dk_cache *c, size_t image, const dk__image_syms **out, dk_error *err)
{
    dk_status st = DK_OK;
    pthread_mutex_lock(&c->lock);
    if (!c->image_syms) c->image_syms = calloc(c->nimages ? c->nimages : 1, sizeof *c->image_syms);
    if (!c->image_syms) {
        st = dk_fail(err, DK_E_NOMEM, "out of memory");
        goto out;
    }
    dk__image_syms *is = &c->image_syms[image];
    if (!is->recs) {
        sym_build b;
        memset(&b, 0, sizeof b);
        dk__image_syms lay;
        memset(&lay, 0, sizeof lay);
        pthread_mutex_unlock(&c->lock);
        st = image_layout(c, image, &lay, err);
        if (!st) st = dk_cache_foreach_image_symbol(c, image, collect_cb, &b, err);
        pthread_mutex_lock(&c->lock);
        if (b.oom) st = dk_fail(err, DK_E_NOMEM, "out of memory");
        if (st || is->recs) {
            dk_vec_free(&b.recs);
            dk_vec_free(&b.names);
            free(lay.sects);
            free(lay.segnames);
            if (st) goto out;
        } else {
            is->sects = lay.sects;
            is->nsects = lay.nsects;
            is->segnames = lay.segnames;
            is->nsegnames = lay.nsegnames;
            dk__sym_rec *r = b.recs.data;
            for (size_t i = 0; i < b.recs.len; i++) r[i].name = (const char *)b.names.data + (uintptr_t)r[i].name;
            if (r) qsort(r, b.recs.len, sizeof *r, sym_cmp); /* no symbols: r is NULL, which qsort may not get */
            is->recs = r ? r : calloc(1, sizeof *r);
            is->count = b.recs.len;
            is->names = b.names.data;
            if (!is->recs) st = dk_fail(err, DK_E_NOMEM, "out of memory");
        }
    }
    *out = is;
out:
    pthread_mutex_unlock(&c->lock);
    return st;
}

dk_status dk_cache_lookup(dk_cache *c, uint64_t addr, dk_cache_location *out, dk_error *err)
{
    memset(out, 0, sizeof *out);
    out->address = addr;
    out->image = -1;
    long mi = dk_cache_mapping_at(c, addr);
    if (mi < 0) return dk_fail(err, DK_E_NOTFOUND, "address 0x%llx is not in any mapping of the cache", (unsigned long long)addr);
    out->mapping = mi;
    out->file = c->maps[mi].file;
    out->file_offset = c->maps[mi].fileOffset + (addr - c->maps[mi].address);
    dk_status st = dk__cache_segments(c, err);
    if (st) return st;
    const dk__seg_rec *seg = NULL;
    long image = dk__cache_image_at(c, addr, &seg);
    if (image < 0) return DK_OK;
    out->image = image;
    out->image_path = c->images[image].path;
    /* segment and section names from the per-image tables built with its
       symbols: the image is not reopened per lookup */
    const dk__image_syms *is = NULL;
    if ((st = image_syms(c, (size_t)image, &is, err)) || !is) return st;
    if (seg->segment < is->nsegnames) memcpy(out->segment, is->segnames[seg->segment], 17);
    for (size_t i = 0; i < is->nsects; i++)
        if (addr >= is->sects[i].addr && addr - is->sects[i].addr < is->sects[i].size) {
            memcpy(out->section, is->sects[i].sectname, 17);
            break;
        }
    size_t lo = 0, hi = is->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (is->recs[mid].address <= addr) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0 && is->recs[lo - 1].address >= seg->vmaddr) {
        out->symbol = is->recs[lo - 1].name;
        out->symbol_address = is->recs[lo - 1].address;
    }
    return DK_OK;
}
