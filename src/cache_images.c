/*
 * The cache's image tables: dyld_cache_image_info (the 0x18 table before
 * dyld-940, the 0x1C0 one after), dyld_cache_image_text_info, the dylibs trie
 * (install path -> image index, Apple's Trie<DylibIndex>), image lookup by
 * name, and opening an image as a dk_macho through the cache's mappings.
 *
 * Aliases: pre-dyld4 tables list symlinks as extra rows whose path lies before
 * the first image (Apple's forEachImage skips pathFileOffset < the first image's
 * offset); in the dyld-940+ table every path is in a pool after the header, so
 * a row is an alias when an earlier row has the same address.
 */
#include "cache_internal.h"
#include "macho_internal.h"

#include <stdio.h>

#define FAIL(err, ...) dk_fail((err), DK_E_MALFORMED, __VA_ARGS__)

static int text_cmp(const void *a, const void *b)
{
    const dk_cache_image_text *x = a, *y = b;
    return x->loadAddress < y->loadAddress ? -1 : x->loadAddress > y->loadAddress;
}

typedef struct addr_idx {
    uint64_t address;
    uint32_t index;
} addr_idx;

static int addr_idx_cmp(const void *a, const void *b)
{
    const addr_idx *x = a, *y = b;
    if (x->address != y->address) return x->address < y->address ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

dk_status dk__cache_images_init(dk_cache *c, dk_error *err)
{
    const dk_cache_file *f = &c->files[0];
    const dk_cache_header *h = &f->header;
    bool newtab = dk_cache_header_has(h, "imagesCount");
    uint64_t off = newtab ? h->imagesOffset : h->imagesOffsetOld;
    uint64_t n = newtab ? h->imagesCount : h->imagesCountOld;
    const char *tname = newtab ? "dyld_cache_image_info (imagesOffset)" : "dyld_cache_image_info (imagesOffsetOld)";
    if (n && !dk_range_ok(off, n * 32, f->size))
        return FAIL(err, "%s[%llu] at offset 0x%llx extends past the end of the file (0x%llx)", tname,
                    (unsigned long long)n, (unsigned long long)off, (unsigned long long)f->size);
    c->images = calloc(n ? n : 1, sizeof *c->images);
    if (!c->images) return dk_fail(err, DK_E_NOMEM, "out of memory");
    c->nimages = n;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *p = f->data + off + i * 32;
        dk_cache_image *im = &c->images[i];
        im->index = (uint32_t)i;
        im->address = dk_le64(p);
        im->modTime = dk_le64(p + 8);
        im->inode = dk_le64(p + 16);
        im->pathFileOffset = dk_le32(p + 24);
        im->path = dk__cache_cstr(f, im->pathFileOffset);
        if (!im->path)
            return FAIL(err, "%s[%llu] at offset 0x%llx: pathFileOffset 0x%x is not a NUL-terminated string in the file",
                        tname, (unsigned long long)i, (unsigned long long)(off + i * 32), im->pathFileOffset);
    }

    /* text info */
    if (dk_cache_header_has(h, "imagesTextCount") && h->imagesTextCount) {
        uint64_t toff = h->imagesTextOffset, tn = h->imagesTextCount;
        if (tn > f->size / 32 || !dk_range_ok(toff, tn * 32, f->size))
            return FAIL(err, "dyld_cache_image_text_info[%llu] at offset 0x%llx extends past the end of the file (0x%llx)",
                        (unsigned long long)tn, (unsigned long long)toff, (unsigned long long)f->size);
        c->texts = calloc(tn, sizeof *c->texts);
        if (!c->texts) return dk_fail(err, DK_E_NOMEM, "out of memory");
        c->ntexts = tn;
        for (uint64_t i = 0; i < tn; i++) {
            const uint8_t *p = f->data + toff + i * 32;
            dk_cache_image_text *t = &c->texts[i];
            memcpy(t->uuid, p, 16);
            t->loadAddress = dk_le64(p + 16);
            t->textSegmentSize = dk_le32(p + 24);
            t->pathOffset = dk_le32(p + 28);
            t->path = dk__cache_cstr(f, t->pathOffset);
            if (!t->path)
                return FAIL(err, "dyld_cache_image_text_info[%llu] at offset 0x%llx: pathOffset 0x%x is not a NUL-terminated string in the file",
                            (unsigned long long)i, (unsigned long long)(toff + i * 32), t->pathOffset);
        }
        /* match rows to images by address (a sorted copy, binary search) */
        dk_cache_image_text *sorted = malloc(tn * sizeof *sorted);
        if (!sorted) return dk_fail(err, DK_E_NOMEM, "out of memory");
        memcpy(sorted, c->texts, tn * sizeof *sorted);
        qsort(sorted, tn, sizeof *sorted, text_cmp);
        for (size_t i = 0; i < c->nimages; i++) {
            dk_cache_image *im = &c->images[i];
            size_t lo = 0, hi = tn;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (sorted[mid].loadAddress < im->address) lo = mid + 1;
                else hi = mid;
            }
            if (lo < tn && sorted[lo].loadAddress == im->address) {
                im->has_text_info = true;
                memcpy(im->uuid, sorted[lo].uuid, 16);
                im->textSegmentSize = sorted[lo].textSegmentSize;
            }
        }
        free(sorted);
    }

    /* aliases */
    if (n == 0) return DK_OK;
    if (!newtab) {
        uint64_t first = c->images[0].address - c->base;
        for (size_t i = 0; i < c->nimages; i++) c->images[i].alias = c->images[i].pathFileOffset < first;
    } else {
        addr_idx *ix = malloc(n * sizeof *ix);
        if (!ix) return dk_fail(err, DK_E_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) ix[i] = (addr_idx){c->images[i].address, (uint32_t)i};
        qsort(ix, n, sizeof *ix, addr_idx_cmp);
        for (size_t i = 1; i < n; i++)
            if (ix[i].address == ix[i - 1].address) c->images[ix[i].index].alias = true;
        free(ix);
    }
    return DK_OK;
}

const dk_cache_image *dk_cache_images(const dk_cache *c, size_t *count)
{
    if (count) *count = c->nimages;
    return c->images;
}

const dk_cache_image_text *dk_cache_images_text(const dk_cache *c, size_t *count)
{
    if (count) *count = c->ntexts;
    return c->texts;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

typedef struct trie_find {
    const char *path;
    uint64_t index;
    bool found;
} trie_find;

static int trie_find_cb(void *ctx, const char *path, uint64_t index)
{
    trie_find *t = ctx;
    if (strcmp(path, t->path) != 0) return 0;
    t->index = index;
    t->found = true;
    return 1;
}

dk_status dk_cache_find_image(const dk_cache *c, const char *name, size_t *index, dk_error *err)
{
    if (!name || !*name) return dk_fail(err, DK_E_ARG, "empty image name");
    bool digits = true;
    for (const char *p = name; *p; p++)
        if (*p < '0' || *p > '9') digits = false;
    if (digits && strlen(name) < 12) {
        unsigned long long i = strtoull(name, NULL, 10);
        if (i < c->nimages) {
            *index = (size_t)i;
            return DK_OK;
        }
        return dk_fail(err, DK_E_NOTFOUND, "no image %llu (the cache has %zu images)", i, c->nimages);
    }
    for (size_t i = 0; i < c->nimages; i++)
        if (strcmp(c->images[i].path, name) == 0) {
            *index = i;
            return DK_OK;
        }
    if (strchr(name, '/')) {
        /* a path only the dylibs trie knows (a symlink, as Apple's hasImagePath finds it) */
        trie_find tf = {name, 0, false};
        dk_cache_foreach_dylib_trie(c, trie_find_cb, &tf, NULL);
        if (tf.found && tf.index < c->nimages) {
            *index = (size_t)tf.index;
            return DK_OK;
        }
    } else {
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < c->nimages; i++)
                if (c->images[i].alias == (pass == 1) && strcmp(base_name(c->images[i].path), name) == 0) {
                    *index = i;
                    return DK_OK;
                }
        /* "libfoo" names libfoo.dylib / libfoo.A.dylib when nothing matched exactly */
        size_t n = strlen(name);
        for (size_t i = 0; i < c->nimages; i++) {
            const char *b = base_name(c->images[i].path);
            if (!c->images[i].alias && strncmp(b, name, n) == 0 && b[n] == '.') {
                *index = i;
                return DK_OK;
            }
        }
    }
    return dk_fail(err, DK_E_NOTFOUND, "no image named '%s' in the cache", name);
}

/* ------------------------------------------------------------ dylibs trie */

/* Trie<DylibIndex>: node = ULEB terminal size, [ULEB image index], u8 child count,
 * children {cstring edge, ULEB node offset}.  Depth-bounded recursion; a node
 * reached twice is an error. */
typedef struct dtrie {
    const uint8_t *t;
    uint64_t size;
    uint8_t *visited;
    char name[4096];
    dk_cache_trie_cb cb;
    void *ctx;
    dk_error *err;
} dtrie;

static dk_status dtrie_node(dtrie *d, uint64_t node, size_t len, unsigned depth)
{
    if (depth > DK_MAX_TRIE_DEPTH) return FAIL(d->err, "dylibs trie: deeper than %d edges at node 0x%llx", DK_MAX_TRIE_DEPTH, (unsigned long long)node);
    if (node >= d->size) return FAIL(d->err, "dylibs trie: node offset 0x%llx past the end of the trie (0x%llx)", (unsigned long long)node, (unsigned long long)d->size);
    if (d->visited[node / 8] & (1u << (node % 8)))
        return FAIL(d->err, "dylibs trie: node 0x%llx reached twice", (unsigned long long)node);
    d->visited[node / 8] |= (uint8_t)(1u << (node % 8));
    const uint8_t *p = d->t + node, *end = d->t + d->size;
    uint64_t tsize;
    if (!dk_uleb(&p, end, &tsize) || tsize > (uint64_t)(end - p))
        return FAIL(d->err, "dylibs trie: node 0x%llx: bad terminal size", (unsigned long long)node);
    if (tsize) {
        const uint8_t *q = p;
        uint64_t index;
        if (!dk_uleb(&q, p + tsize, &index))
            return FAIL(d->err, "dylibs trie: node 0x%llx: bad image index", (unsigned long long)node);
        d->name[len] = 0;
        if (d->cb(d->ctx, d->name, index)) return DK_E_STOPPED;
    }
    p += tsize;
    if (p >= end) return FAIL(d->err, "dylibs trie: node 0x%llx: child count past the end of the trie", (unsigned long long)node);
    unsigned nchild = *p++;
    for (unsigned i = 0; i < nchild; i++) {
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));
        if (!z) return FAIL(d->err, "dylibs trie: node 0x%llx: edge %u is not NUL-terminated", (unsigned long long)node, i);
        size_t el = (size_t)(z - p);
        if (len + el >= sizeof d->name)
            return FAIL(d->err, "dylibs trie: node 0x%llx: path longer than %zu bytes", (unsigned long long)node, sizeof d->name - 1);
        memcpy(d->name + len, p, el);
        p = z + 1;
        uint64_t child;
        if (!dk_uleb(&p, end, &child)) return FAIL(d->err, "dylibs trie: node 0x%llx: bad child offset", (unsigned long long)node);
        dk_status st = dtrie_node(d, child, len + el, depth + 1);
        if (st) return st;
    }
    return DK_OK;
}

dk_status dk_cache_foreach_dylib_trie(const dk_cache *c, dk_cache_trie_cb cb, void *ctx, dk_error *err)
{
    const dk_cache_header *h = dk__main_header(c);
    if (!dk_cache_header_has(h, "dylibsTrieSize") || !h->dylibsTrieAddr || !h->dylibsTrieSize) return DK_OK;
    const uint8_t *t = dk_cache_read(c, h->dylibsTrieAddr, h->dylibsTrieSize, NULL);
    if (!t)
        return FAIL(err, "dylibs trie (0x%llx, 0x%llx bytes) is not inside one mapping", (unsigned long long)h->dylibsTrieAddr,
                    (unsigned long long)h->dylibsTrieSize);
    dtrie *d = calloc(1, sizeof *d);
    if (!d) return dk_fail(err, DK_E_NOMEM, "out of memory");
    d->t = t;
    d->size = h->dylibsTrieSize;
    d->visited = calloc((size_t)(d->size / 8 + 1), 1);
    d->cb = cb;
    d->ctx = ctx;
    d->err = err;
    dk_status st = d->visited ? dtrie_node(d, 0, 0, 0) : dk_fail(err, DK_E_NOMEM, "out of memory");
    free(d->visited);
    free(d);
    return st;
}

/* --------------------------------------------------------------- images */

static const uint8_t *map_vm(void *ctx, uint64_t vmaddr, uint64_t *avail)
{
    return dk_cache_read(ctx, vmaddr, 1, avail);
}

dk_status dk_cache_open_image(dk_cache *c, size_t index, dk_macho **out, dk_error *err)
{
    *out = NULL;
    if (index >= c->nimages) return dk_fail(err, DK_E_ARG, "no image %zu (the cache has %zu images)", index, c->nimages);
    const dk_cache_image *im = &c->images[index];
    uint64_t avail = 0;
    const uint8_t *p = dk_cache_read(c, im->address, 1, &avail);
    if (!p)
        return FAIL(err, "image %zu (%s): mach_header address 0x%llx is not in any mapping", index, im->path,
                    (unsigned long long)im->address);
    dk_macho_source src;
    memset(&src, 0, sizeof src);
    src.data = p;
    src.size = avail > SIZE_MAX ? SIZE_MAX : (size_t)avail;
    src.map = map_vm;
    src.map_ctx = c;
    src.decode_ptr = dk__cache_decode_ptr;
    dk_status st = dk__macho_open_src(&src, im->path, out, err);
    if (st) dk_error_prefix(err, "image %zu (%s): ", index, im->path);
    return st;
}

/* ------------------------------------------------------- segment index */

static int seg_cmp(const void *a, const void *b)
{
    const dk__seg_rec *x = a, *y = b;
    if (x->vmaddr != y->vmaddr) return x->vmaddr < y->vmaddr ? -1 : 1;
    return x->image < y->image ? -1 : x->image > y->image;
}

/* Every segment of every non-alias image except the shared __LINKEDIT, sorted by address. */
static dk_status build_segments(dk_cache *c, dk_error *err)
{
    dk_vec v = {0};
    for (size_t i = 0; i < c->nimages; i++) {
        if (c->images[i].alias) continue;
        dk_macho *m;
        dk_status st = dk_cache_open_image(c, i, &m, err);
        if (st) {
            dk_vec_free(&v);
            return st;
        }
        size_t ns;
        const dk_segment *segs = dk_macho_segments(m, &ns);
        for (size_t k = 0; k < ns; k++) {
            if (!segs[k].vmsize || strcmp(segs[k].segname, "__LINKEDIT") == 0) continue;
            dk__seg_rec *r = dk_vec_push(&v, sizeof *r);
            if (!r) {
                dk_macho_close(m);
                dk_vec_free(&v);
                return dk_fail(err, DK_E_NOMEM, "out of memory");
            }
            r->vmaddr = segs[k].vmaddr;
            r->vmsize = segs[k].vmsize;
            r->image = (uint32_t)i;
            r->segment = (uint32_t)k;
        }
        dk_macho_close(m);
    }
    if (v.len) qsort(v.data, v.len, sizeof(dk__seg_rec), seg_cmp); /* no segments: data is NULL */
    c->segs = v.data;
    c->nsegs = v.len;
    return DK_OK;
}

dk_status dk__cache_segments(dk_cache *c, dk_error *err)
{
    pthread_mutex_lock(&c->lock);
    if (!c->segs_done) {
        c->segs_status = build_segments(c, err);
        c->segs_done = true;
        if (c->segs_status && err) {
            /* keep the message for later callers */
        }
    } else if (c->segs_status) {
        dk_fail(err, c->segs_status, "segment index of the cache could not be built");
    }
    dk_status st = c->segs_status;
    pthread_mutex_unlock(&c->lock);
    return st;
}

long dk__cache_image_at(const dk_cache *c, uint64_t addr, const dk__seg_rec **seg)
{
    size_t lo = 0, hi = c->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->segs[mid].vmaddr <= addr) lo = mid + 1;
        else hi = mid;
    }
    /* lo = first segment starting above addr; look back over overlapping candidates */
    for (size_t k = lo; k > 0; k--) {
        const dk__seg_rec *r = &c->segs[k - 1];
        if (addr - r->vmaddr < r->vmsize) {
            if (seg) *seg = r;
            return (long)r->image;
        }
        if (lo - k > 8) break;
    }
    return -1;
}
