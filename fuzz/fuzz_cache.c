/*
 * A dyld shared cache taken from the input (main file, optionally sub-caches
 * and a .symbols file: see fz_write_cache in fuzz.h), opened with
 * dk_cache_open and read through every view: header fields of each file,
 * mappings and address translation, the image and image-text tables, the
 * dylibs trie, slide info (every rebased pointer of every mapping, pointer
 * reads), local symbols, per-image symbols, address lookup, the ObjC
 * optimisation header, the patch table, and the first images opened as
 * Mach-O (segments, symbols, exports, fixups, ObjC with the selector base).
 */
#include "fuzz.h"

#define MAX_IMAGES 3

typedef struct ptrs {
    uint64_t a[8];
    size_t n;
} ptrs;

static int slide_cb(void *ctx, const dk_slide_pointer *p)
{
    ptrs *x = ctx;
    fz_sink += p->address + p->target + p->raw;
    if (x->n < 8) x->a[x->n++] = p->address;
    return 0;
}

static int trie_cb(void *ctx, const char *path, uint64_t index)
{
    (void)ctx;
    fz_str(path);
    fz_sink += index;
    return 0;
}

static int sym_cb(void *ctx, const dk_cache_symbol *s)
{
    (void)ctx;
    fz_str(s->name);
    fz_sink += s->address + s->source;
    if (s->export_) fz_export_cb(NULL, s->export_);
    return 0;
}

static int patch_cb(void *ctx, const dk_cache_patch *p)
{
    (void)ctx;
    fz_str(p->export_name);
    fz_sink += p->export_address + p->location + p->addend + (uint64_t)p->client;
    return 0;
}

static void image(dk_cache *c, size_t i, const dk_objc_options *oo)
{
    dk_error e = {0};
    dk_macho *m;
    dk_status st = dk_cache_open_image(c, i, &m, &e);
    fz_check(st, &e);
    if (st) return;
    if (!dk_macho_in_cache(m)) abort();
    size_t n;
    const dk_segment *segs = dk_macho_segments(m, &n);
    for (size_t k = 0; k < n; k++) {
        dk_cache_location loc;
        fz_check(dk_cache_lookup(c, segs[k].vmaddr, &loc, &e), &e);
    }
    const dk_loadcmd *lc = dk_macho_loadcmds(m, &n);
    for (size_t k = 0; k < n; k++) {
        fz_touch(lc[k].data, lc[k].cmdsize);
        fz_check(dk_macho_loadcmd_fields(m, k, fz_field_cb, NULL, &e), &e);
    }
    const dk_symbol *syms;
    if ((st = dk_macho_symbols(m, &syms, &n, &e)) == DK_OK)
        for (size_t k = 0; k < n; k++) fz_str(syms[k].name);
    fz_check(st, &e);
    fz_check(dk_macho_foreach_export(m, fz_export_cb, NULL, &e), &e);
    fz_check(dk_macho_foreach_fixup(m, fz_fixup_cb, NULL, &e), &e);
    dk_objc *o;
    st = dk_objc_open(m, oo, &o, &e);
    fz_check(st, &e);
    if (st == DK_OK) {
        const dk_objc_class *cl = dk_objc_classes(o, &n);
        for (size_t k = 0; k < n; k++) {
            fz_str(cl[k].name);
            for (size_t j = 0; j < cl[k].instance_methods.count; j++) fz_str(cl[k].instance_methods.items[j].name);
        }
        const dk_objc_selref *sr = dk_objc_selrefs(o, &n);
        for (size_t k = 0; k < n; k++) fz_str(sr[k].selector);
        dk_objc_close(o);
    }
    dk_macho_close(m);
    fz_check(dk_cache_foreach_image_symbol(c, i, sym_cb, NULL, &e), &e);
    uint32_t oi;
    fz_check(dk_cache_objc_image_index(c, i, &oi, &e), &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dk_cache *c = fz_open_cache(data, size);
    if (!c) return 0;
    dk_error e = {0};
    dk_status st = DK_OK;
    const dk_cache_header *h = dk_cache_get_header(c);
    fz_str(h->magic);
    fz_str(dk_cache_arch(c));
    fz_sink += dk_cache_pointer_size(c) + dk_cache_base_address(c);
    fz_sink += dk_cache_header_has(h, "imagesOffset") + dk_cache_header_has(h, "subCacheArrayCount");
    size_t nfiles = dk_cache_file_count(c);
    for (size_t i = 0; i < nfiles; i++) {
        const dk_cache_file *f = dk_cache_file_at(c, i);
        fz_str(f->name);
        fz_str(f->suffix);
        fz_check(dk_cache_foreach_header_field(c, i, fz_field_cb, NULL, &e), &e);
    }
    const dk_cache_file *sf = dk_cache_symbols_file(c);
    if (sf) fz_str(sf->name);

    size_t nmaps;
    const dk_cache_mapping *maps = dk_cache_mappings(c, &nmaps);
    for (size_t i = 0; i < nmaps; i++) {
        const dk_cache_mapping *mp = &maps[i];
        if (mp->size) {
            long at = dk_cache_mapping_at(c, mp->address);
            if (at < 0 || dk_cache_mapping_at(c, mp->address + mp->size - 1) != at) abort();
            uint64_t avail;
            const uint8_t *b = dk_cache_read(c, mp->address, mp->size < 16 ? mp->size : 16, &avail);
            if (!b) abort();
            fz_touch(b, mp->size < 16 ? mp->size : 16);
            size_t file;
            uint64_t off;
            fz_check(dk_cache_vm_to_file(c, mp->address, &file, &off, &e), &e);
        }
        dk_slide_info si;
        st = dk_cache_slide_info(c, i, &si, &e);
        fz_check(st, &e);
        ptrs x = {{0}, 0};
        fz_check(dk_cache_foreach_slide_pointer(c, i, slide_cb, &x, &e), &e);
        for (size_t k = 0; k < x.n; k++) {
            dk_slide_pointer sp;
            bool rebased;
            fz_check(dk_cache_read_pointer(c, x.a[k], &sp, &rebased, &e), &e);
            dk_cache_location loc;
            fz_check(dk_cache_lookup(c, x.a[k], &loc, &e), &e);
        }
    }

    size_t nimg, ntext;
    const dk_cache_image *imgs = dk_cache_images(c, &nimg);
    const dk_cache_image_text *texts = dk_cache_images_text(c, &ntext);
    for (size_t i = 0; i < ntext; i++) fz_str(texts[i].path);
    for (size_t i = 0; i < nimg; i++) {
        fz_str(imgs[i].path);
        if (i < 16) {
            size_t idx;
            fz_check(dk_cache_find_image(c, imgs[i].path, &idx, &e), &e);
            const char *slash = strrchr(imgs[i].path, '/');
            fz_check(dk_cache_find_image(c, slash ? slash + 1 : imgs[i].path, &idx, &e), &e);
            dk_cache_location loc;
            fz_check(dk_cache_lookup(c, imgs[i].address, &loc, &e), &e);
            if (dk_cache_lookup(c, imgs[i].address + 0x10, &loc, &e) == DK_OK) fz_str(loc.symbol);
        }
    }
    size_t idx;
    fz_check(dk_cache_find_image(c, "0", &idx, &e), &e);
    fz_check(dk_cache_foreach_dylib_trie(c, trie_cb, NULL, &e), &e);

    dk_cache_local_symbols ls;
    fz_check(dk_cache_local_symbols_info(c, &ls, &e), &e);
    for (size_t i = 0; i < nimg && i < MAX_IMAGES; i++) fz_check(dk_cache_foreach_local_symbol(c, i, sym_cb, NULL, &e), &e);

    dk_cache_objc_opt oo;
    dk_objc_options opts;
    memset(&opts, 0, sizeof opts);
    if (dk_cache_objc_opt_info(c, &oo, &e) == DK_OK && oo.selector_base) {
        opts.has_selector_base = true;
        opts.selector_base = oo.selector_base;
    }
    dk_cache_patch_info pi;
    fz_check(dk_cache_patch_table(c, &pi, &e), &e);
    fz_check(dk_cache_foreach_patch(c, -1, patch_cb, NULL, &e), &e);

    for (size_t i = 0; i < nimg && i < MAX_IMAGES; i++) image(c, i, &opts);
    if (nimg > MAX_IMAGES) image(c, nimg - 1, &opts);
    dk_cache_close(c);
    fz_cleanup();
    return 0;
}
