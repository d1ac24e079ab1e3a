/*
 * Cache builder, LINKEDIT: one shared region for every image.
 *   [nlists: each image's exported then undefined symbols, one range per image]
 *   [indirect symbol tables] [export tries (rebuilt for the new layout),
 *   function starts, data in code, kept bind opcodes] [patch table v1/v3]
 *   [dylibs trie] [the merged string pool, last]
 * Local symbols go to the unmapped local-symbols area (OptimizerLinkedit's
 * "unmapped locals"); the patch table lists every client use of every export
 * (common/CachePatching.h: dyld_cache_patch_info_v1 for 832, _v3 for 1042).
 */
#include "builder_internal.h"
#include "strpool.h"

typedef struct exp_collect {
    builder *b;
    bimage *im;
    dk_vec entries;   /* dk_trie_entry */
    dk_strpool names; /* copies of the names (the walk's buffer is reused) */
    dk_vec name_offs; /* uint32 per entry: offset of its name, import name */
    dk_status st;
} exp_collect;

typedef struct name_pair {
    uint32_t name, import;
} name_pair;

static int collect_export(void *ctx, const dk_export *e)
{
    exp_collect *c = ctx;
    dk_trie_entry *t = dk_vec_push(&c->entries, sizeof *t);
    name_pair *np = dk_vec_push(&c->name_offs, sizeof *np);
    if (!t || !np) {
        c->st = dk_fail(c->b->err, DK_E_NOMEM, "out of memory");
        return 1;
    }
    memset(t, 0, sizeof *t);
    np->name = dk_strpool_cstr(&c->names, e->name);
    np->import = UINT32_MAX;
    t->flags = e->raw_flags;
    if (e->flags & DK_EXPORT_REEXPORT) {
        t->ordinal = (uint64_t)e->ordinal;
        if (e->imported_name && strcmp(e->imported_name, e->name) != 0) np->import = dk_strpool_cstr(&c->names, e->imported_name);
        return 0;
    }
    if (e->flags & DK_EXPORT_ABSOLUTE) {
        t->address = e->offset;
        return 0;
    }
    uint64_t n;
    if (!bld_xlate(c->b, c->im, e->address, &n)) {
        c->st = dk_fail(c->b->err, DK_E_MALFORMED, "export %s at 0x%llx is outside its segments", e->name,
                        (unsigned long long)e->address);
        return 1;
    }
    t->address = n - c->im->new_base;
    if (e->flags & DK_EXPORT_RESOLVER) {
        if (!bld_xlate(c->b, c->im, e->resolver, &n)) {
            c->st = dk_fail(c->b->err, DK_E_MALFORMED, "resolver of %s outside its segments", e->name);
            return 1;
        }
        t->other = n - c->im->new_base;
    } else if (e->flags & DK_EXPORT_FUNCTION_VARIANT) {
        t->other = e->function_variant;
    }
    return 0;
}

static dk_status export_trie(builder *b, bimage *im, dk_buf *out, uint64_t *size)
{
    *size = 0;
    if (!dk_macho_has_exports_trie(im->m)) return DK_OK;
    exp_collect c;
    memset(&c, 0, sizeof c);
    c.b = b;
    c.im = im;
    dk_status st = dk_macho_foreach_export(im->m, collect_export, &c, b->err);
    if (c.st) st = c.st;
    if (!st && c.names.buf.oom) st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
    if (!st) {
        dk_trie_entry *t = c.entries.data;
        name_pair *np = c.name_offs.data;
        for (size_t i = 0; i < c.entries.len; i++) {
            t[i].name = (const char *)c.names.buf.data + np[i].name;
            t[i].import_name = np[i].import == UINT32_MAX ? NULL : (const char *)c.names.buf.data + np[i].import;
        }
        size_t before = out->len;
        st = dk_trie_build(t, c.entries.len, out, b->err);
        *size = out->len - before;
    }
    dk_vec_free(&c.entries);
    dk_vec_free(&c.name_offs);
    dk_strpool_free(&c.names);
    return st;
}

static void put_nlist(builder *b, dk_buf *out, uint32_t strx, const dk_symbol *s, uint64_t value)
{
    dk_buf_u32(out, strx);
    dk_buf_u8(out, s->type);
    dk_buf_u8(out, s->sect);
    dk_buf_u16(out, s->desc);
    if (b->is64) dk_buf_u64(out, value);
    else dk_buf_u32(out, (uint32_t)value);
}

/* nlists of one image: locals to the local-symbols area, exported and undefined to the shared table. */
static dk_status image_symbols(builder *b, bimage *im, dk_buf *nl, dk_strpool *pool, dk_strpool *lpool, dk_buf *ind,
                               uint64_t nl_base_count)
{
    const dk_symbol *syms;
    size_t n;
    dk_status st = dk_macho_symbols(im->m, &syms, &n, b->err);
    if (st) return st;
    uint32_t *map = malloc(sizeof(uint32_t) * (n ? n : 1));
    if (!map) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    size_t esize = b->is64 ? 16 : 12;
    im->symoff = nl->len;
    im->local_start = (uint32_t)(b->locals_nlist.len / esize);
    uint32_t next = 0;
    /* pass 0: locals; pass 1: external definitions; pass 2: undefined */
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < n; i++) {
            const dk_symbol *s = &syms[i];
            bool stab = (s->type & N_STAB) != 0;
            bool ext = (s->type & N_EXT) != 0;
            bool undef = !stab && (s->type & N_TYPE) == N_UNDF;
            int kind = (stab || !ext) ? 0 : undef ? 2 : 1;
            if (kind != pass) continue;
            uint64_t value = s->value;
            if (!stab && (s->type & N_TYPE) == N_SECT) {
                uint64_t nv;
                if (bld_xlate(b, im, s->value, &nv)) value = nv;
            }
            if (pass == 0) {
                map[i] = UINT32_MAX;
                if (stab) continue; /* debug stabs are not kept */
                uint32_t sx = dk_strpool_cstr(lpool, s->name);
                put_nlist(b, &b->locals_nlist, sx, s, value);
                continue;
            }
            uint32_t sx = dk_strpool_cstr(pool, s->name);
            if ((s->type & N_TYPE) == N_INDR) {
                /* N_INDR: n_value is the string index of the symbol it stands for */
                uint32_t strsize = im->m->symtab.strsize;
                const uint8_t *t = s->value < strsize ? dk__linkedit(im->m, im->m->symtab.stroff + s->value, strsize - s->value) : NULL;
                value = t ? dk_strpool_add(pool, (const char *)t, strnlen((const char *)t, strsize - s->value)) : 0;
            }
            put_nlist(b, nl, sx, s, value);
            map[i] = next++;
            if (pass == 1) im->nextdef++;
            else im->nundef++;
        }
    }
    im->nsyms = next;
    im->local_count = (uint32_t)(b->locals_nlist.len / esize) - im->local_start;
    (void)nl_base_count;
    /* the indirect table, remapped to the new indices */
    const uint32_t *indirect;
    size_t nind;
    if ((st = dk_macho_indirect_symbols(im->m, &indirect, &nind, b->err))) {
        free(map);
        return st;
    }
    im->indirect_off = ind->len;
    im->nindirect = (uint32_t)nind;
    for (size_t i = 0; i < nind; i++) {
        uint32_t v = indirect[i];
        if (!(v & (INDIRECT_SYMBOL_LOCAL | INDIRECT_SYMBOL_ABS)) && v < n)
            v = map[v] == UINT32_MAX ? INDIRECT_SYMBOL_LOCAL : map[v];
        dk_buf_u32(ind, v);
    }
    free(map);
    return DK_OK;
}

/* Kept binds (--allow-unresolved) as opcode streams for LC_DYLD_INFO. */
static dk_status kept_streams(builder *b, bimage *im, dk_buf *blobs)
{
    if (!im->nkept) return DK_OK;
    dk_bind_rec *recs = calloc(im->nkept, sizeof *recs);
    if (!recs) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    size_t nb = 0, nw = 0;
    bool lazy = false;
    for (int pass = 0; pass < 2; pass++) {
        size_t n = 0;
        for (size_t k = 0; k < im->nkept; k++) {
            const kept_bind *kb = &im->kept[k];
            if (kb->kind == DK_FIXUP_LAZY_BIND) {
                lazy = true;
                continue;
            }
            bool weak = kb->kind == DK_FIXUP_WEAK_BIND;
            if (weak != (pass == 1)) continue;
            int seg = bld_seg_at(im, kb->addr);
            if (seg < 0) continue;
            dk_bind_rec *r = &recs[n++];
            r->seg = (uint32_t)seg;
            r->segoff = kb->addr - im->segs[seg].new_addr;
            r->ordinal = kb->ordinal;
            r->symbol = kb->symbol;
            r->flags = kb->weak_import ? BIND_SYMBOL_FLAGS_WEAK_IMPORT : 0;
            r->addend = kb->addend;
            r->type = BIND_TYPE_POINTER;
        }
        if (!n) continue;
        dk_buf_align(blobs, 8);
        uint64_t off = blobs->len;
        dk_status st = pass == 0 ? dk_bind_encode(recs, n, b->ptr, blobs, b->err) : dk_weak_bind_encode(recs, n, b->ptr, blobs, b->err);
        if (st) {
            free(recs);
            return st;
        }
        if (pass == 0) {
            im->bind_off = off;
            im->bind_size = blobs->len - off;
            nb = n;
        } else {
            im->weak_off = off;
            im->weak_size = blobs->len - off;
            nw = n;
        }
    }
    free(recs);
    if (lazy && im->m->dyld_info.present && im->m->dyld_info.lazy_bind.size) {
        /* lazy-bind records are segment-relative, so the original stream still holds, and
         * the __stub_helper entries keep pushing the right offsets */
        const dk_blob *lb = &im->m->dyld_info.lazy_bind;
        const uint8_t *p = dk__linkedit(im->m, lb->off, lb->size);
        if (p) {
            dk_buf_align(blobs, 8);
            im->lazy_off = blobs->len;
            im->lazy_size = lb->size;
            dk_buf_bytes(blobs, p, lb->size);
        }
    }
    (void)nb;
    (void)nw;
    return DK_OK;
}

static int use_cmp(const void *a, const void *b)
{
    const patch_use *x = a, *y = b;
    if (x->target_image != y->target_image) return x->target_image < y->target_image ? -1 : 1;
    if (x->impl != y->impl) return x->impl < y->impl ? -1 : 1;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    if (x->client != y->client) return x->client < y->client ? -1 : 1;
    return x->use < y->use ? -1 : x->use > y->use;
}

/* The location bit-field: v1..v3 share one (high7, addend:5, auth, addrDiv, key:2,
 * discriminator); v4 moved the fields and widened a regular pointer's addend to 23
 * bits and added isWeakImport.  False when this version cannot hold the addend. */
static bool loc_bits(const patch_use *pu, unsigned version, uint32_t *w)
{
    uint32_t high7 = (uint32_t)(pu->high8 >> 1);
    if (version < 4) {
        if (pu->addend < 0 || pu->addend >= 32) return false;
        *w = high7 | ((uint32_t)pu->addend << 7) | ((uint32_t)pu->auth << 12) | ((uint32_t)pu->addr_div << 13) |
             ((uint32_t)(pu->key & 3) << 14) | ((uint32_t)pu->diversity << 16);
        return true;
    }
    if (pu->addend < 0 || pu->addend >= (1 << 23) || (pu->auth && pu->addend >= 32)) return false;
    if (pu->auth)
        *w = 1u | (high7 << 1) | ((uint32_t)pu->weak_import << 8) | ((uint32_t)pu->addend << 9) | ((uint32_t)pu->addr_div << 14) |
             ((uint32_t)(pu->key >= 2) << 15) | ((uint32_t)pu->diversity << 16);
    else
        *w = (high7 << 1) | ((uint32_t)pu->weak_import << 8) | ((uint32_t)pu->addend << 9);
    return true;
}

/*
 * The patch table, in the version the cache format's dyld reads: v1 for the
 * 832 layout (per image its used exports, each with every use in the cache),
 * v3 for the 1042 layout (per image its used exports, per client the uses of
 * each, and the cache-wide uniqued GOT slots holding each: GOT clients).
 */
static dk_status patch_table(builder *b, dk_buf *out, uint64_t region_addr, uint64_t base_off)
{
    unsigned version = b->o->format == 1042 ? 3 : 1;
    if (b->nuses) qsort(b->uses, b->nuses, sizeof *b->uses, use_cmp);
    dk_buf images = {0}, exports = {0}, clients = {0}, cexports = {0}, locs = {0}, gclients = {0}, gexports = {0}, glocs = {0};
    dk_strpool names = {0};
    dk_status st = DK_OK;
    size_t u = 0, nexports = 0, nclients = 0, ncexports = 0, nlocs = 0, ngexports = 0, nglocs = 0;
    for (size_t img = 0; img < b->nimgs; img++) {
        size_t first_export = nexports;
        /* this image's used exports */
        size_t start = u;
        while (u < b->nuses && b->uses[u].target_image == img) u++;
        size_t end = u;
        /* exports: unique (impl, name) in order */
        size_t *export_of = NULL;
        if (end > start && !(export_of = malloc(sizeof(size_t) * (end - start)))) {
            st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
            break;
        }
        for (size_t k = start; k < end; k++) {
            if (k == start || b->uses[k].impl != b->uses[k - 1].impl || strcmp(b->uses[k].name, b->uses[k - 1].name) != 0) {
                uint32_t name = dk_strpool_cstr(&names, b->uses[k].name);
                if (version == 1) {
                    /* dyld_cache_patchable_export_v1: cache offset of impl, locations range, name */
                    size_t locstart = nlocs;
                    for (size_t k2 = k; k2 < end && b->uses[k2].impl == b->uses[k].impl &&
                                        strcmp(b->uses[k2].name, b->uses[k].name) == 0; k2++) {
                        const patch_use *pu = &b->uses[k2];
                        uint32_t w;
                        if (!loc_bits(pu, version, &w)) {
                            bld_warn(b, "%s: use of %s at 0x%llx has an addend the patch table cannot hold; not listed",
                                     b->imgs[pu->client].install_name, pu->name, (unsigned long long)pu->use);
                            continue;
                        }
                        dk_buf_u32(&locs, (uint32_t)(pu->use - b->base));
                        dk_buf_u32(&locs, w);
                        nlocs++;
                    }
                    dk_buf_u32(&exports, (uint32_t)(b->uses[k].impl - b->base));
                    dk_buf_u32(&exports, (uint32_t)locstart);
                    dk_buf_u32(&exports, (uint32_t)(nlocs - locstart));
                    dk_buf_u32(&exports, name);
                } else {
                    dk_buf_u32(&exports, (uint32_t)(b->uses[k].impl - b->imgs[img].new_base));
                    dk_buf_u32(&exports, name & 0x0FFFFFFFu);
                }
                nexports++;
            }
            export_of[k - start] = nexports - 1;
        }
        if (version == 1) {
            free(export_of);
            dk_buf_u32(&images, (uint32_t)first_export);
            dk_buf_u32(&images, (uint32_t)(nexports - first_export));
            continue;
        }
        /* clients of this image, ascending */
        size_t first_client = nclients;
        for (uint32_t client = 0; client < b->nimgs; client++) {
            size_t before = ncexports;
            size_t k = start;
            while (k < end) {
                size_t ex = export_of[k - start];
                size_t locstart = nlocs;
                size_t k2 = k;
                for (; k2 < end && export_of[k2 - start] == ex; k2++) {
                    const patch_use *pu = &b->uses[k2];
                    if (pu->client != client || pu->got) continue;
                    uint32_t w;
                    if (!loc_bits(pu, version, &w)) {
                        bld_warn(b, "%s: use of %s at 0x%llx has an addend the patch table cannot hold; not listed", b->imgs[client].install_name,
                                 pu->name, (unsigned long long)pu->use);
                        continue;
                    }
                    dk_buf_u32(&locs, (uint32_t)(pu->use - b->imgs[client].new_base));
                    dk_buf_u32(&locs, w);
                    nlocs++;
                }
                if (nlocs > locstart) {
                    dk_buf_u32(&cexports, (uint32_t)ex);
                    dk_buf_u32(&cexports, (uint32_t)locstart);
                    dk_buf_u32(&cexports, (uint32_t)(nlocs - locstart));
                    ncexports++;
                }
                k = k2;
            }
            if (ncexports > before) {
                dk_buf_u32(&clients, client);
                dk_buf_u32(&clients, (uint32_t)before);
                dk_buf_u32(&clients, (uint32_t)(ncexports - before));
                nclients++;
            }
        }
        /* the uniqued GOT slots holding each export */
        size_t first_gexport = ngexports;
        for (size_t k = start; k < end;) {
            size_t ex = export_of[k - start], locstart = nglocs, k2 = k;
            for (; k2 < end && export_of[k2 - start] == ex; k2++) {
                const patch_use *pu = &b->uses[k2];
                uint32_t w;
                if (!pu->got || !loc_bits(pu, version, &w)) continue;
                dk_buf_u64(&glocs, pu->use - b->base); /* dyld_cache_patchable_location_v3: cache offset, bits */
                dk_buf_u32(&glocs, w);
                dk_buf_u32(&glocs, 0);
                nglocs++;
            }
            if (nglocs > locstart) {
                dk_buf_u32(&gexports, (uint32_t)ex);
                dk_buf_u32(&gexports, (uint32_t)locstart);
                dk_buf_u32(&gexports, (uint32_t)(nglocs - locstart));
                ngexports++;
            }
            k = k2;
        }
        dk_buf_u32(&gclients, (uint32_t)first_gexport);
        dk_buf_u32(&gclients, (uint32_t)(ngexports - first_gexport));
        free(export_of);
        dk_buf_u32(&images, (uint32_t)first_client);
        dk_buf_u32(&images, (uint32_t)(nclients - first_client));
        dk_buf_u32(&images, (uint32_t)first_export);
        dk_buf_u32(&images, (uint32_t)(nexports - first_export));
    }
    if (!st && version == 1) {
        /* dyld_cache_patch_info_v1 then the arrays */
        dk_buf_align(out, 8);
        uint64_t at = out->len, va = region_addr + base_off;
        uint64_t a_images = at + 64, a_exports = a_images + images.len, a_locs = a_exports + exports.len;
        uint64_t a_names = a_locs + locs.len;
        uint64_t f[8] = {va + a_images, b->nimgs, va + a_exports, nexports, va + a_locs, nlocs, va + a_names, names.buf.len};
        for (int i = 0; i < 8; i++) dk_buf_u64(out, f[i]);
        dk_buf_bytes(out, images.data, images.len);
        dk_buf_bytes(out, exports.data, exports.len);
        dk_buf_bytes(out, locs.data, locs.len);
        dk_buf_bytes(out, names.buf.data, names.buf.len);
        b->patch_addr = va + at;
        b->patch_size = out->len - at;
    } else if (!st) {
        /* dyld_cache_patch_info_v3 then the arrays */
        size_t hdr = 8 + 12 * 8 + 6 * 8;
        dk_buf_align(out, 8);
        uint64_t at = out->len;
        uint64_t a_images = at + hdr, a_exports = a_images + images.len, a_clients = a_exports + exports.len;
        uint64_t a_cexports = a_clients + clients.len, a_locs = a_cexports + cexports.len, a_names = a_locs + locs.len;
        uint64_t a_got = (a_names + names.buf.len + 7) & ~(uint64_t)7; /* as dk_buf_align(out, 8) below */
        uint64_t a_gexports = a_got + gclients.len, a_glocs = a_gexports + gexports.len;
        uint64_t va = region_addr + base_off;
        dk_buf_u32(out, version); /* patchTableVersion */
        dk_buf_u32(out, 0);       /* patchLocationVersion */
        dk_buf_u64(out, va + a_images);
        dk_buf_u64(out, b->nimgs);
        dk_buf_u64(out, va + a_exports);
        dk_buf_u64(out, nexports);
        dk_buf_u64(out, va + a_clients);
        dk_buf_u64(out, nclients);
        dk_buf_u64(out, va + a_cexports);
        dk_buf_u64(out, ncexports);
        dk_buf_u64(out, va + a_locs);
        dk_buf_u64(out, nlocs);
        dk_buf_u64(out, va + a_names);
        dk_buf_u64(out, names.buf.len);
        dk_buf_u64(out, va + a_got); /* GOT clients: one entry per image */
        dk_buf_u64(out, b->nimgs);
        dk_buf_u64(out, va + a_gexports);
        dk_buf_u64(out, ngexports);
        dk_buf_u64(out, va + a_glocs);
        dk_buf_u64(out, nglocs);
        dk_buf_bytes(out, images.data, images.len);
        dk_buf_bytes(out, exports.data, exports.len);
        dk_buf_bytes(out, clients.data, clients.len);
        dk_buf_bytes(out, cexports.data, cexports.len);
        dk_buf_bytes(out, locs.data, locs.len);
        dk_buf_bytes(out, names.buf.data, names.buf.len);
        dk_buf_align(out, 8);
        dk_buf_bytes(out, gclients.data, gclients.len);
        dk_buf_bytes(out, gexports.data, gexports.len);
        dk_buf_bytes(out, glocs.data, glocs.len);
        b->patch_addr = va + at;
        b->patch_size = out->len - at;
    }
    dk_buf_free(&images);
    dk_buf_free(&exports);
    dk_buf_free(&clients);
    dk_buf_free(&cexports);
    dk_buf_free(&locs);
    dk_buf_free(&gclients);
    dk_buf_free(&gexports);
    dk_buf_free(&glocs);
    dk_strpool_free(&names);
    return st;
}

dk_status bld_linkedit(builder *b)
{
    dk_buf nl = {0}, ind = {0}, blobs = {0};
    dk_strpool pool = {0}, lpool = {0};
    dk_status st = DK_OK;
    dk_strpool_add(&pool, "", 0);
    dk_strpool_add(&lpool, "", 0);
    size_t ii;
    for (ii = 0; ii < b->nimgs && !st; ii++) {
        bimage *im = &b->imgs[ii];
        if ((st = image_symbols(b, im, &nl, &pool, &lpool, &ind, 0))) break;
        dk_macho *m = im->m;
        dk_buf_align(&blobs, 8);
        im->trie_off = blobs.len;
        if ((st = export_trie(b, im, &blobs, &im->trie_size))) break;
        if (m->function_starts.present && m->function_starts.size) {
            const uint8_t *p = dk__linkedit(m, m->function_starts.off, m->function_starts.size);
            if (p) {
                dk_buf_align(&blobs, 8);
                im->fstarts_off = blobs.len;
                im->fstarts_size = m->function_starts.size;
                dk_buf_bytes(&blobs, p, m->function_starts.size);
            }
        }
        if (m->data_in_code.present && m->data_in_code.size) {
            const uint8_t *p = dk__linkedit(m, m->data_in_code.off, m->data_in_code.size);
            if (p) {
                dk_buf_align(&blobs, 8);
                im->dic_off = blobs.len;
                im->dic_size = m->data_in_code.size;
                dk_buf_bytes(&blobs, p, m->data_in_code.size);
            }
        }
        if ((st = kept_streams(b, im, &blobs))) break;
    }
    if (st) dk_error_prefix(b->err, "%s: ", b->imgs[ii].path);
    if (!st) {
        /* assemble: nlists, indirect tables, blobs, patch table, dylibs trie, strings */
        region *le = &b->regions[R_LINKEDIT];
        dk_buf *L = &b->linkedit;
        dk_buf_bytes(L, nl.data, nl.len);
        dk_buf_align(L, 8);
        uint64_t ind_base = L->len;
        dk_buf_bytes(L, ind.data, ind.len);
        dk_buf_align(L, 8);
        uint64_t blob_base = L->len;
        dk_buf_bytes(L, blobs.data, blobs.len);
        for (size_t i = 0; i < b->nimgs; i++) {
            bimage *im = &b->imgs[i];
            im->indirect_off += ind_base;
            im->trie_off += blob_base;
            im->fstarts_off += blob_base;
            im->dic_off += blob_base;
            im->bind_off += blob_base;
            im->weak_off += blob_base;
            im->lazy_off += blob_base;
        }
        if ((st = patch_table(b, L, le->addr, 0))) goto out;
        /* dylibs trie: install name -> image index */
        dk_trie_entry *te = calloc(b->nimgs, sizeof *te);
        if (!te) {
            st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < b->nimgs; i++) {
            te[i].name = b->imgs[i].install_name;
            te[i].address = i;
        }
        dk_buf_align(L, 8);
        uint64_t trie_at = L->len;
        st = dk_trie_build(te, b->nimgs, L, b->err);
        free(te);
        if (st) goto out;
        b->dylibs_trie_addr = le->addr + trie_at;
        b->dylibs_trie_size = L->len - trie_at;
        dk_buf_align(L, 8);
        dk_buf_bytes(&b->strings, pool.buf.data, pool.buf.len);
        dk_buf_bytes(L, pool.buf.data, pool.buf.len);
        dk_buf_bytes(&b->locals_strings, lpool.buf.data, lpool.buf.len);
        if (L->oom || b->strings.oom || b->locals_strings.oom || b->locals_nlist.oom || pool.buf.oom || lpool.buf.oom) {
            st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
            goto out;
        }
        le->size = (L->len + b->page - 1) & ~(b->page - 1);
        le->map_size = le->size + (le->addr - le->map_addr);
        le->buf = calloc(1, le->size);
        if (!le->buf) {
            st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
            goto out;
        }
        memcpy(le->buf, L->data, L->len);
        /* the string pool sits at the end of the LINKEDIT data, padding after it */
    }
out:
    dk_buf_free(&nl);
    dk_buf_free(&ind);
    dk_buf_free(&blobs);
    dk_strpool_free(&pool);
    dk_strpool_free(&lpool);
    return st;
}
