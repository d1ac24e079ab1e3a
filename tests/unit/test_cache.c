/*
 * The cache API on the real caches of ../shared/corpus/dyld_caches (skipped
 * when the corpus is absent): header generations, image lookup, the dylibs
 * trie, pointer reads through slide info (cache level and dk_macho level), the
 * ObjC optimisation header, patch tables v1 and v3, address lookup, and the
 * lazily built indexes used from several threads at once.  Expected values
 * come from expected/dyld_caches/<cache>.json and rizin's test db.
 */
#include "dyldkit/dyldkit.h"
#include "unit.h"

#include <pthread.h>
#include <unistd.h>

#define DIR "../shared/corpus/dyld_caches/"

static dk_cache *open_cache(const char *name)
{
    dk_cache *c = NULL;
    dk_error err = {0};
    if (dk_cache_open(name, &c, &err) != DK_OK) {
        fprintf(stderr, "%s: %s\n", name, err.message);
        CHECK(0);
        return NULL;
    }
    return c;
}

typedef struct trie_rec {
    char paths[8][64];
    uint64_t index[8];
    int n;
} trie_rec;

static int trie_cb(void *ctx, const char *path, uint64_t index)
{
    trie_rec *t = ctx;
    if (t->n < 8) {
        snprintf(t->paths[t->n], 64, "%s", path);
        t->index[t->n] = index;
    }
    t->n++;
    return 0;
}

typedef struct patch_count {
    int exports, uses, got;
    long client;
    uint64_t first_loc;
    char first_name[64];
} patch_count;

static int patch_cb(void *ctx, const dk_cache_patch *p)
{
    patch_count *x = ctx;
    if (p->event == DK_PATCH_EXPORT) x->exports++;
    else if (p->event == DK_PATCH_USE) {
        if (!x->uses++) {
            x->client = p->client;
            x->first_loc = p->location;
            snprintf(x->first_name, sizeof x->first_name, "%s", p->export_name);
        }
    } else {
        x->got++;
    }
    return 0;
}

static void test_old_cache(void)
{
    dk_cache *c = open_cache(DIR "dyld_shared_cache_arm64-macOS");
    if (!c) return;
    const dk_cache_header *h = dk_cache_get_header(c);
    CHECK_EQ_U64(h->mappingOffset, 0x140);
    CHECK_EQ_U64(h->imagesOffsetOld, 656); /* the 0x18 table of a 0x140 header */
    CHECK_EQ_U64(h->imagesOffset, 0);      /* absent: past mappingOffset */
    CHECK(dk_cache_header_has(h, "mappingWithSlideCount"));
    CHECK(dk_cache_header_has(h, "accelerateInfoAddr"));
    CHECK(!dk_cache_header_has(h, "imagesOffset") || 1); /* the era name is answered via imagesOffsetOld */
    CHECK(!dk_cache_header_has(h, "subCacheArrayCount"));
    CHECK(!dk_cache_header_has(h, "osVersion"));
    CHECK_EQ_U64(h->formatVersion, 10);
    CHECK_EQ_U64(h->locallyBuiltCache, 1);
    CHECK_STR(dk_cache_arch(c), "arm64");
    CHECK_EQ_U64(dk_cache_pointer_size(c), 8);
    CHECK_EQ_U64(dk_cache_base_address(c), 0x180000000ull);
    CHECK_EQ_U64(dk_cache_file_count(c), 1);
    CHECK(dk_cache_symbols_file(c) == NULL);

    size_t idx = 99;
    dk_error err;
    CHECK(dk_cache_find_image(c, "/usr/lib/libb-1.0.dylib", &idx, &err) == DK_OK && idx == 1);
    CHECK(dk_cache_find_image(c, "liba-1.0.dylib", &idx, &err) == DK_OK && idx == 0);
    CHECK(dk_cache_find_image(c, "1", &idx, &err) == DK_OK && idx == 1);
    CHECK(dk_cache_find_image(c, "2", &idx, &err) == DK_E_NOTFOUND);
    CHECK(dk_cache_find_image(c, "libz.dylib", &idx, &err) == DK_E_NOTFOUND);
    CHECK(dk_cache_find_image(c, "/usr/lib/liba.dylib", &idx, &err) == DK_OK && idx == 0); /* only in the trie */
    CHECK(dk_cache_find_image(c, "/usr/lib/libz.dylib", &idx, &err) == DK_E_NOTFOUND);

    /* the dylibs trie lists an alias path (liba.dylib) that is not in the image table */
    trie_rec t;
    memset(&t, 0, sizeof t);
    CHECK(dk_cache_foreach_dylib_trie(c, trie_cb, &t, &err) == DK_OK);
    CHECK_EQ_U64(t.n, 3);
    CHECK_STR(t.paths[0], "/usr/lib/liba-1.0.dylib");
    CHECK_STR(t.paths[1], "/usr/lib/liba.dylib");
    CHECK_EQ_U64(t.index[1], 0);
    CHECK_STR(t.paths[2], "/usr/lib/libb-1.0.dylib");
    CHECK_EQ_U64(t.index[2], 1);

    size_t file;
    uint64_t off;
    CHECK(dk_cache_vm_to_file(c, 0x182018010ull, &file, &off, &err) == DK_OK && file == 0 && off == 98304 + 0x10);
    CHECK(dk_cache_vm_to_file(c, 0x17fffffffull, &file, &off, &err) == DK_E_NOTFOUND);
    CHECK(dk_cache_read(c, 0x180017ff8ull, 16, NULL) == NULL); /* crosses the end of the text mapping */

    dk_cache_local_symbols L;
    CHECK(dk_cache_local_symbols_info(c, &L, &err) == DK_E_NOTFOUND);
    dk_cache_objc_opt o;
    CHECK(dk_cache_objc_opt_info(c, &o, &err) == DK_E_NOTFOUND);
    dk_slide_info si;
    CHECK(dk_cache_slide_info(c, 0, &si, &err) == DK_E_NOTFOUND);
    CHECK(dk_cache_slide_info(c, 1, &si, &err) == DK_OK && si.version == 2 && si.page_starts_count == 4);

    dk_cache_location loc;
    CHECK(dk_cache_lookup(c, 0x180004f9cull + 2, &loc, &err) == DK_OK);
    CHECK_EQ_U64(loc.image, 0);
    CHECK_STR(loc.segment, "__TEXT");
    CHECK_STR(loc.section, "__text");
    CHECK_STR(loc.symbol, "_what_is_cool");
    CHECK_EQ_U64(loc.symbol_address, 0x180004f9cull);

    dk_cache_patch_info pi;
    CHECK(dk_cache_patch_table(c, &pi, &err) == DK_OK && pi.version == 1 && pi.patchTableArrayCount == 2);
    dk_cache_close(c);
}

static void test_objc_cache(void)
{
    dk_cache *c = open_cache(DIR "dyld_shared_cache_arm64-macOS-objc");
    if (!c) return;
    dk_error err;
    /* rizin: pxr at 0x182064028 (libhello's __objc_classlist) reads 0x182068068 */
    dk_slide_pointer p;
    bool rebased;
    CHECK(dk_cache_read_pointer(c, 0x182064028ull, &p, &rebased, &err) == DK_OK);
    CHECK(rebased);
    CHECK_EQ_U64(p.target, 0x182068068ull);
    CHECK_EQ_U64(p.raw, 0x00000a0182068068ull);
    /* a word between chain entries (0x182064030 is not on page 0's chain) reads as stored */
    CHECK(dk_cache_read_pointer(c, 0x182064030ull, &p, &rebased, &err) == DK_OK);
    CHECK(!rebased);

    size_t idx;
    CHECK(dk_cache_find_image(c, "libhello-1.0.dylib", &idx, &err) == DK_OK);
    CHECK_EQ_U64(idx, 5);
    dk_macho *m;
    CHECK(dk_cache_open_image(c, idx, &m, &err) == DK_OK);
    if (m) {
        CHECK(dk_macho_in_cache(m));
        CHECK_STR(dk_macho_install_name(m), "/usr/lib/libhello-1.0.dylib");
        dk_pointer dp;
        CHECK(dk_macho_read_pointer(m, 0x182064028ull, &dp, &err) == DK_OK);
        CHECK(dp.kind == DK_PTR_REBASE);
        CHECK_EQ_U64(dp.value, 0x182068068ull);
        const dk_section *cl = dk_macho_find_section(m, "__DATA_CONST", "__objc_classlist");
        CHECK(cl && cl->addr == 0x182064028ull);
        dk_macho_close(m);
    }

    /* objc_opt_t v15 in libobjc's __objc_opt_ro */
    dk_cache_objc_opt o;
    CHECK(dk_cache_objc_opt_info(c, &o, &err) == DK_OK);
    CHECK(!o.is_new);
    CHECK_EQ_U64(o.version, 15);
    CHECK(o.header_info_ro != 0);
    uint32_t oi;
    CHECK(dk_cache_objc_image_index(c, 5, &oi, &err) == DK_OK && oi == 0); /* libhello */
    CHECK(dk_cache_objc_image_index(c, 6, &oi, &err) == DK_OK && oi == 1); /* libobjc */
    CHECK(dk_cache_objc_image_index(c, 0, &oi, &err) == DK_E_NOTFOUND);

    /* patch table v1: libSystem's exports used by libobjc */
    dk_cache_patch_info pi;
    CHECK(dk_cache_patch_table(c, &pi, &err) == DK_OK);
    CHECK_EQ_U64(pi.version, 1);
    CHECK_EQ_U64(pi.patchTableArrayCount, 8);
    CHECK_EQ_U64(pi.patchImageExportsArrayCount, 36);
    CHECK_EQ_U64(pi.patchLocationArrayCount, 36);
    patch_count pc;
    memset(&pc, 0, sizeof pc);
    CHECK(dk_cache_foreach_patch(c, -1, patch_cb, &pc, &err) == DK_OK);
    CHECK_EQ_U64(pc.exports, 36);
    CHECK_EQ_U64(pc.uses, 36);
    CHECK_STR(pc.first_name, "_asprintf");
    CHECK_EQ_U64(pc.client, 6);
    dk_cache_location loc;
    CHECK(dk_cache_lookup(c, pc.first_loc, &loc, &err) == DK_OK);
    CHECK_EQ_U64(loc.image, 6);
    CHECK_STR(loc.segment, "__DATA_CONST");
    memset(&pc, 0, sizeof pc);
    CHECK(dk_cache_foreach_patch(c, 1, patch_cb, &pc, &err) == DK_OK);
    CHECK(pc.exports < 36);
    CHECK(dk_cache_foreach_patch(c, 8, patch_cb, &pc, &err) == DK_E_ARG);
    dk_cache_close(c);
}

static void test_1042(void)
{
    dk_cache *c = open_cache(DIR "dyld_shared_cache_arm64-macOS-1042.1");
    if (!c) return;
    const dk_cache_header *h = dk_cache_get_header(c);
    CHECK_EQ_U64(h->mappingOffset, 0x200);
    CHECK_EQ_U64(h->imagesOffset, 736);
    CHECK_EQ_U64(h->imagesCount, 4);
    CHECK_EQ_U64(h->imagesOffsetOld, 0);
    CHECK_EQ_U64(h->osVersion, 851968);
    CHECK_EQ_U64(h->dynamicDataOffset, 114688);
    CHECK(dk_cache_header_has(h, "cacheSubType"));
    CHECK(!dk_cache_header_has(h, "tproMappingsOffset"));
    size_t n;
    const dk_cache_image *im = dk_cache_images(c, &n);
    CHECK_EQ_U64(n, 4);
    CHECK_STR(im[3].path, "/usr/lib/system/libsystem_kernel.dylib");
    CHECK(!im[3].alias);
    CHECK(im[3].has_text_info);
    CHECK_EQ_U64(im[3].uuid[0], 0x4c);
    dk_error err;
    dk_cache_patch_info pi;
    CHECK(dk_cache_patch_table(c, &pi, &err) == DK_OK);
    CHECK_EQ_U64(pi.version, 3); /* the 0x200 header is past swiftOptsSize: version from the table */
    CHECK_EQ_U64(pi.patchTableArrayCount, 4);
    patch_count pc;
    memset(&pc, 0, sizeof pc);
    CHECK(dk_cache_foreach_patch(c, -1, patch_cb, &pc, &err) == DK_OK);
    dk_cache_location loc;
    CHECK(dk_cache_lookup(c, 0x18000ff38ull, &loc, &err) == DK_OK);
    CHECK_STR(loc.symbol, "__ZN5dyld318entryVectorForDyldE");
    CHECK_STR(loc.section, "__const");
    CHECK(dk_cache_lookup(c, 0x190000000ull, &loc, &err) == DK_E_NOTFOUND);
    dk_cache_close(c);
}

/* Lazily built indexes (segments, symbols, slide page bitmaps) used by several threads at once. */
typedef struct thread_arg {
    dk_cache *c;
    int bad;
} thread_arg;

static void *worker(void *p)
{
    thread_arg *a = p;
    for (int i = 0; i < 50; i++) {
        dk_error err;
        dk_cache_location loc;
        if (dk_cache_lookup(a->c, 0x182068068ull, &loc, &err) || !loc.symbol || strcmp(loc.symbol, "_OBJC_CLASS_$_Test"))
            a->bad++;
        dk_slide_pointer sp;
        bool rebased;
        uint64_t addr = 0x182064000ull + (uint64_t)(i % 20) * 0x1000;
        if (dk_cache_read_pointer(a->c, addr, &sp, &rebased, &err)) a->bad++;
        dk_macho *m;
        if (dk_cache_open_image(a->c, (size_t)(i % 8), &m, &err)) a->bad++;
        else dk_macho_close(m);
    }
    return NULL;
}

static void test_threads(void)
{
    dk_cache *c = open_cache(DIR "dyld_shared_cache_arm64-macOS-objc");
    if (!c) return;
    pthread_t t[4];
    thread_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i].c = c;
        a[i].bad = 0;
        pthread_create(&t[i], NULL, worker, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_U64(a[i].bad, 0);
    }
    dk_cache_close(c);
}

int main(void)
{
    if (access(DIR "dyld_shared_cache_arm64-macOS", R_OK) != 0) {
        printf("test_cache: corpus caches not found, skipped\n");
        return 0;
    }
    dk_cache_close(NULL);
    test_old_cache();
    test_objc_cache();
    test_1042();
    test_threads();
    return unit_finish("test_cache");
}
