/*
 * The export trie: raw trie bytes through dk_trie_foreach / dk_trie_find
 * (inputs that are not Mach-O), else every image's LC_DYLD_INFO export_off
 * or LC_DYLD_EXPORTS_TRIE through dk_macho_foreach_export / find_export.
 * A lookup of a name the walk yielded cannot fail on a trie that walked cleanly.
 */
#include "fuzz.h"

#define NAMES 8

typedef struct names {
    char *n[NAMES];
    size_t count;
} names;

static int collect_cb(void *ctx, const dk_export *e)
{
    names *x = ctx;
    fz_export_cb(NULL, e);
    if (x->count < NAMES && e->name && (x->n[x->count] = strdup(e->name))) x->count++;
    return 0;
}

static void free_names(names *x)
{
    for (size_t i = 0; i < x->count; i++) free(x->n[i]);
}

static void walk(dk_macho *m)
{
    dk_error e = {0};
    names x = {{0}, 0};
    fz_sink += dk_macho_has_exports_trie(m);
    dk_status st = dk_macho_foreach_export(m, collect_cb, &x, &e);
    fz_check(st, &e);
    for (size_t i = 0; i < x.count; i++) {
        dk_export out;
        dk_status fs = dk_macho_find_export(m, x.n[i], &out, &e);
        fz_check(fs, &e);
        /* a trie that walks cleanly cannot fail a lookup (ambiguous edges may hide a name) */
        if (st == DK_OK && fs != DK_OK && fs != DK_E_NOTFOUND) abort();
        if (fs == DK_OK) fz_export_cb(NULL, &out);
    }
    dk_export out;
    fz_check(dk_macho_find_export(m, "_main", &out, &e), &e);
    free_names(&x);
}

static bool is_macho(const uint8_t *d, size_t n)
{
    if (n < 4) return false;
    uint32_t be = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    return be == 0xFEEDFACE || be == 0xFEEDFACF || be == 0xCEFAEDFE || be == 0xCFFAEDFE || be == 0xCAFEBABE ||
           be == 0xCAFEBABF || memcmp(d, "!<arch>\n", n < 8 ? n : 8) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (is_macho(data, size)) {
        fz_each_macho(data, size, walk);
        return 0;
    }
    dk_error e = {0};
    names x = {{0}, 0};
    const uint64_t base = 0x100000000ull;
    dk_status st = dk_trie_foreach(data, size, base, collect_cb, &x, &e);
    fz_check(st, &e);
    for (size_t i = 0; i < x.count; i++) {
        dk_export out;
        dk_status fs = dk_trie_find(data, size, base, x.n[i], &out, &e);
        fz_check(fs, &e);
        if (st == DK_OK && fs != DK_OK && fs != DK_E_NOTFOUND) abort();
    }
    dk_export out;
    fz_check(dk_trie_find(data, size, base, "_main", &out, &e), &e);
    fz_check(dk_trie_find(data, size, base, "", &out, &e), &e);
    free_names(&x);
    return 0;
}
