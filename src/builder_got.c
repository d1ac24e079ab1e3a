/*
 * Cache builder: GOT uniquing, as Apple's new builder does it
 * (../shared/docs/dsc-format.md 5.2; dyld cache_builder/SectionCoalescer.cpp).
 *
 * As Apple's builder chooses them (parseGOTs): in images with chained
 * fixups, every bind in __DATA_CONST,__got, __AUTH_CONST,__auth_got or
 * __AUTH_CONST,__auth_ptr to a dependent library (ordinal > 0) with no addend
 * that resolves to an export in the cache gets one cache-wide slot per
 * (dependency install name, symbol, pointer-auth data): a chunk at the end
 * of the DATA_CONST region (AUTH_CONST for authenticated slots on arm64e),
 * sorted by that install name, then symbol.  arm64 code that loaded the image's own slot
 * (ADRP + LDR, or ADRP + ADD + LDR in arm64e stubs; on x86_64 any RIP-relative
 * operand, decoded with capstone in builder_fixups.c) is re-aimed at the shared
 * slot; the image's own slots stay bound ("optimized but not removed"), so a
 * load the builder cannot pair still works.  The patch table (v3) lists each
 * shared slot as a GOT use of its export.
 *
 * Bounds: one entry per GOT fixup of the inputs (O(n log n) sorts), lookups by
 * binary search.
 */
#include "arm64.h"
#include "builder_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct got_entry {
    uint32_t image;        /* client image index */
    uint32_t target_image; /* exporting image index */
    uint64_t old_slot;     /* the client's own slot (input address) */
    uint64_t old_impl;     /* the export (input address in the target image) */
    const char *symbol;    /* resolved name (the export: patch table) */
    const char *dep;       /* key: the dependency's install name and the imported name */
    const char *import;
    int64_t addend;
    bool weak_import, auth, addr_div;
    uint8_t key;
    uint16_t diversity;
    uint8_t chunk;         /* 0 plain, 1 authenticated (arm64e) */
    uint32_t unique;       /* slot index in its chunk */
} got_entry;

struct got_state {
    got_entry *v;          /* sorted by (image, old_slot) once planned */
    size_t n;
    got_entry *reps;       /* one copy per shared slot */
    size_t nreps;
};

/* The image's GOT sections Apple's builder uniques, looked up once per image. */
typedef struct got_sections {
    const dk_section *s[3];
} got_sections;

static got_sections find_got_sections(const dk_macho *m)
{
    static const char *const names[][2] = {{"__DATA_CONST", "__got"}, {"__AUTH_CONST", "__auth_got"}, {"__AUTH_CONST", "__auth_ptr"}};
    got_sections g;
    for (size_t k = 0; k < 3; k++) g.s[k] = dk_macho_find_section((dk_macho *)m, names[k][0], names[k][1]);
    return g;
}

static bool in_got_section(const got_sections *g, uint64_t addr)
{
    for (size_t k = 0; k < 3; k++)
        if (g->s[k] && addr >= g->s[k]->addr && addr - g->s[k]->addr < g->s[k]->size) return true;
    return false;
}

/* Apple's key and order: plain before auth chunk; dependency install name, then symbol, then auth data. */
static int key_cmp(const void *a, const void *b)
{
    const got_entry *x = *(const got_entry *const *)a, *y = *(const got_entry *const *)b;
    if (x->chunk != y->chunk) return x->chunk < y->chunk ? -1 : 1;
    int c = strcmp(x->dep, y->dep);
    if (c) return c;
    c = strcmp(x->import, y->import);
    if (c) return c;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    if (x->diversity != y->diversity) return x->diversity < y->diversity ? -1 : 1;
    if (x->addr_div != y->addr_div) return x->addr_div < y->addr_div ? -1 : 1;
    return 0;
}

static int slot_cmp(const void *a, const void *b)
{
    const got_entry *x = a, *y = b;
    if (x->image != y->image) return x->image < y->image ? -1 : 1;
    return x->old_slot < y->old_slot ? -1 : x->old_slot > y->old_slot;
}

dk_status bld_got_plan(builder *b)
{
    b->unique_gots = (b->arm64 || b->x86_64) && b->is64 && b->o->format == 1042 && b->o->unique_gots >= 0;
    if (!b->unique_gots) return DK_OK;
    struct got_state *g = calloc(1, sizeof *g);
    if (!g) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    b->got = g;
    dk_vec v = {0};
    for (size_t i = 0; i < b->nimgs; i++) {
        bimage *im = &b->imgs[i];
        if (dk_macho_fixup_encoding(im->m) != DK_ENCODING_CHAINED) continue;
        got_sections gs = find_got_sections(im->m);
        size_t nf;
        dk_status st;
        const dk_fixup *fx = bld_fixup_index(im->m, &nf, b->err, &st);
        if (st) {
            dk_vec_free(&v);
            dk_error_prefix(b->err, "%s: ", im->path);
            return st;
        }
        for (size_t k = 0; k < nf; k++) {
            if (k + 1 < nf && fx[k + 1].address == fx[k].address) continue; /* the last record at an address wins */
            const dk_fixup *f = &fx[k];
            if (f->kind != DK_FIXUP_BIND || f->width != 8 || f->ordinal <= 0 || f->addend || !in_got_section(&gs, f->address)) continue;
            const char *dep = dk_macho_ordinal_name(im->m, f->ordinal);
            if (!dep || !f->symbol) continue;
            dk_resolved r;
            dk_error e;
            if (dk_imageset_resolve(b->set, im->set_index, f->ordinal, f->symbol, NULL, NULL, &r, &e) != DK_OK) continue;
            int j = bld_image_of_set_index(b, r.image);
            if (j < 0 || (r.flags & DK_EXPORT_ABSOLUTE)) continue;
            got_entry *ge = dk_vec_push(&v, sizeof *ge);
            if (!ge) {
                dk_vec_free(&v);
                return dk_fail(b->err, DK_E_NOMEM, "out of memory");
            }
            memset(ge, 0, sizeof *ge);
            ge->image = (uint32_t)i;
            ge->target_image = (uint32_t)j;
            ge->old_slot = f->address;
            ge->old_impl = r.address;
            ge->symbol = r.symbol;
            ge->dep = dep;
            ge->import = f->symbol;
            ge->addend = f->addend;
            ge->weak_import = f->weak_import;
            ge->auth = f->auth;
            ge->key = f->key;
            ge->diversity = f->diversity;
            ge->addr_div = f->addr_div;
            ge->chunk = f->auth && b->arm64e ? 1 : 0;
        }
    }
    g->v = v.data;
    g->n = v.len;
    if (!g->n) return DK_OK;
    /* shared slots: sort by key, number the distinct keys per chunk */
    const got_entry **byk = malloc(g->n * sizeof *byk);
    g->reps = malloc(g->n * sizeof *g->reps);
    if (!byk || !g->reps) {
        free(byk);
        return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < g->n; k++) byk[k] = &g->v[k];
    qsort(byk, g->n, sizeof *byk, key_cmp);
    uint32_t next[2] = {0, 0};
    for (size_t k = 0; k < g->n; k++) {
        got_entry *e = (got_entry *)byk[k];
        if (k && key_cmp(&byk[k - 1], &byk[k]) == 0) {
            e->unique = byk[k - 1]->unique;
            continue;
        }
        e->unique = next[e->chunk]++;
        g->reps[g->nreps++] = *e; /* a copy: v is re-sorted below */
    }
    free(byk);
    qsort(g->v, g->n, sizeof *g->v, slot_cmp);
    b->got_count[0] = next[0];
    b->got_count[1] = next[1];
    b->stats->gots_uniqued = g->n;
    b->stats->got_slots = g->nreps;
    return DK_OK;
}

static uint64_t slot_addr(const builder *b, const got_entry *e) { return b->got_addr[e->chunk] + (uint64_t)e->unique * 8; }

bool bld_got_slot(const builder *b, const bimage *im, uint64_t old_slot, uint64_t *shared)
{
    const struct got_state *g = b->got;
    if (!g || !g->n) return false;
    got_entry key;
    key.image = (uint32_t)(im - b->imgs);
    key.old_slot = old_slot;
    const got_entry *e = bsearch(&key, g->v, g->n, sizeof key, slot_cmp);
    if (!e) return false;
    *shared = slot_addr(b, e);
    return true;
}

dk_status bld_got_emit(builder *b)
{
    const struct got_state *g = b->got;
    if (!g) return DK_OK;
    for (size_t k = 0; k < g->nreps; k++) {
        const got_entry *e = &g->reps[k];
        uint64_t impl, at = slot_addr(b, e);
        if (!bld_xlate(b, &b->imgs[e->target_image], e->old_impl, &impl))
            return dk_fail(b->err, DK_E_MALFORMED, "%s: export %s at 0x%llx is outside its segments", b->imgs[e->target_image].install_name,
                           e->symbol, (unsigned long long)e->old_impl);
        uint64_t value = impl + (uint64_t)e->addend;
        slide_ptr sp;
        memset(&sp, 0, sizeof sp);
        sp.addr = at;
        sp.target = value & 0x00FFFFFFFFFFFFFFull;
        sp.high8 = (uint8_t)(value >> 56);
        sp.auth = e->auth;
        sp.key = e->key;
        sp.diversity = e->diversity;
        sp.addr_div = e->addr_div;
        bld_write_ptr(b, at, value);
        dk_status st = bld_add_ptr(b, &sp);
        if (st) return st;
        patch_use u = {e->image, e->target_image, impl, e->symbol, at, e->addend, e->weak_import, sp.auth, sp.key, sp.diversity,
                       sp.addr_div, sp.high8, true};
        if ((st = bld_add_use(b, &u))) return st;
    }
    return DK_OK;
}

void bld_got_free(builder *b)
{
    if (!b->got) return;
    free(b->got->v);
    free(b->got->reps);
    free(b->got);
    b->got = NULL;
}
