/*
 * Loader: map a Mach-O image and its dependencies into this process, apply
 * their fixups, set up thread-local variables and initializers, then hand the
 * code to a backend (native x86_64 in loader_x86_64.c, arm64 under unicorn in
 * loader_arm64.c).
 *
 * Follows dyld's order (dyld4 Loader::applyFixups, JustInTimeLoader):
 * dependencies found as dk_imageset does, every image mapped, rebases then
 * binds per image (classic: rebase, bind, weak-bind, lazy-bind streams in
 * that order; chained: one walk), TLV descriptors given our thunk, read-only
 * segments protected, initializers bottom-up.  Every write the fixups make is
 * checked to lie inside a segment of the image it belongs to.
 */
#include "loader_internal.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define VM_PROT_READ 1u
#define VM_PROT_WRITE 2u
#define VM_PROT_EXECUTE 4u
#define SG_READ_ONLY 0x10u

static uint64_t round_page(uint64_t v) { return (v + LD_PAGE - 1) & ~(uint64_t)(LD_PAGE - 1); }

static bool seg_mapped(const dk_segment *s)
{
    /* __PAGEZERO (no access at all) is a reservation, not something to map */
    return s->vmsize != 0 && !(s->initprot == 0 && s->maxprot == 0);
}

static const char *image_label(const ld_image *g)
{
    const char *p = g->pub.path;
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static bool is_system_dylib(const char *name) { return strncmp(name, "/usr/lib/", 9) == 0; }

static bool arch_native(const char *a) { return strcmp(a, "x86_64") == 0 || strcmp(a, "x86_64h") == 0; }
static bool arch_emulated(const char *a) { return strcmp(a, "arm64") == 0 || strcmp(a, "arm64e") == 0; }

/* ------------------------------------------------------------ accessors */

dk_exec_mode dk_loader_mode(const dk_loader *l) { return l->mode; }
const char *dk_loader_arch(const dk_loader *l) { return l->arch; }
size_t dk_loader_max_args(const dk_loader *l) { return l->mode == DK_EXEC_NATIVE ? 6 : 8; }
size_t dk_loader_arch_max_args(const char *arch) { return arch_native(arch) ? 6 : 8; }
size_t dk_loader_image_count(const dk_loader *l) { return l->nimgs; }
const dk_loaded_image *dk_loader_image(const dk_loader *l, size_t i) { return i < l->nimgs ? &l->imgs[i].pub : NULL; }
size_t dk_loader_host_dylib_count(const dk_loader *l) { return l->nhost_dylibs; }
const char *dk_loader_host_dylib(const dk_loader *l, size_t i) { return i < l->nhost_dylibs ? l->host_dylibs[i] : NULL; }
const char *dk_loader_host_symbol(size_t i)
{
    const dk_host_fn *h = dk__host_at(i);
    return h ? h->name : NULL;
}

/* ---------------------------------------------------------------- traps */

uint64_t dk__trap_new(dk_loader *l, ld_trap_kind kind, int image, const char *symbol, const dk_host_fn *host,
                      const char *message)
{
    if (l->ntraps >= LD_TRAP_SLOTS) return 0;
    char *copy = NULL;
    if (message && !(copy = strdup(message))) return 0;
    ld_trap *t = &l->trap_info[l->ntraps];
    t->kind = kind;
    t->image = image;
    t->symbol = symbol;
    t->host = host;
    t->message = copy;
    return (uint64_t)(uintptr_t)(l->traps + LD_TRAP_SLOT * l->ntraps++);
}

const ld_trap *dk__trap_at(const dk_loader *l, uint64_t a)
{
    uint64_t base = (uint64_t)(uintptr_t)l->traps;
    if (!l->traps || a < base || a - base >= (uint64_t)LD_TRAP_SLOT * l->ntraps) return NULL;
    return &l->trap_info[(a - base) / LD_TRAP_SLOT];
}

bool dk_loader_is_trap(const dk_loader *l, uint64_t a)
{
    const ld_trap *t = dk__trap_at(l, a);
    return t && (t->kind == LD_TRAP_UNRESOLVED || t->kind == LD_TRAP_MESSAGE);
}

/* --------------------------------------------------------- descriptions */

static int image_at(const dk_loader *l, uint64_t a)
{
    for (size_t i = 0; i < l->nimgs; i++) {
        const ld_image *g = &l->imgs[i];
        if (g->map && a >= g->pub.load_address && a - g->pub.load_address < g->pub.size) return (int)i;
    }
    return -1;
}

/* The nearest defined symbol at or below unslid address A in M (NULL if none). */
static const dk_symbol *symbol_below(dk_macho *m, uint64_t a)
{
    const dk_symbol *syms, *best = NULL;
    size_t n;
    if (dk_macho_symbols(m, &syms, &n, NULL)) return NULL;
    for (size_t i = 0; i < n; i++) {
        const dk_symbol *s = &syms[i];
        if ((s->type & N_STAB) || (s->type & N_TYPE) != N_SECT || s->value > a || !s->name[0]) continue;
        if (!best || s->value > best->value) best = s;
    }
    return best;
}

bool dk__describe(const dk_loader *l, uint64_t a, char *buf, size_t size)
{
    if (!size) return false;
    const ld_trap *t = dk__trap_at(l, a);
    if (t) {
        const char *who = t->image >= 0 && (size_t)t->image < l->nimgs ? image_label(&l->imgs[t->image]) : "?";
        switch (t->kind) {
        case LD_TRAP_UNRESOLVED:
            snprintf(buf, size, "unresolved import %s of %s (bound to a trap by --lazy)", t->symbol, who);
            break;
        case LD_TRAP_MESSAGE: snprintf(buf, size, "%s", t->message); break;
        case LD_TRAP_HOST: snprintf(buf, size, "host function %s", t->host ? t->host->name : "?"); break;
        case LD_TRAP_BINDER: snprintf(buf, size, "dyld_stub_binder (dyldkit's lazy binder)"); break;
        case LD_TRAP_TLV: snprintf(buf, size, "thread-local variable thunk (dyldkit)"); break;
        case LD_TRAP_NOP: snprintf(buf, size, "___chkstk_darwin (dyldkit)"); break;
        case LD_TRAP_RETURN: snprintf(buf, size, "return to the host"); break;
        default: snprintf(buf, size, "trap 0x%llx", (unsigned long long)a); break;
        }
        return true;
    }
    int i = image_at(l, a);
    if (i >= 0) {
        const ld_image *g = &l->imgs[i];
        uint64_t un = a - (uint64_t)g->pub.slide;
        uint64_t off = a - g->pub.load_address;
        int si = dk_macho_section_at(g->m, un);
        char where[64] = "";
        if (si >= 0) {
            size_t ns;
            const dk_section *s = dk_macho_sections(g->m, &ns);
            snprintf(where, sizeof where, " (%s,%s)", s[si].segname, s[si].sectname);
        }
        char sym[160] = "";
        const dk_symbol *s = si >= 0 ? symbol_below(g->m, un) : NULL;
        if (s) snprintf(sym, sizeof sym, " %s+0x%llx", s->name, (unsigned long long)(un - s->value));
        snprintf(buf, size, "%s+0x%llx%s%s", image_label(g), (unsigned long long)off, where, sym);
        return true;
    }
    uint64_t d = (uint64_t)(uintptr_t)l->data;
    if (l->data && a >= d && a - d < LD_DATA_SIZE) {
        snprintf(buf, size, "dyldkit host data+0x%llx", (unsigned long long)(a - d));
        return true;
    }
    if (l->mode == DK_EXEC_NATIVE) {
        for (size_t k = 0; k < dk__host_count(); k++) {
            const dk_host_fn *h = dk__host_at(k);
            if (h->fn && (uint64_t)(uintptr_t)h->fn == a) {
                snprintf(buf, size, "host function %s", h->name);
                return true;
            }
        }
    }
    snprintf(buf, size, "0x%llx", (unsigned long long)a);
    return false;
}

const char *dk_loader_host_call(const dk_loader *l) { return l->in_host ? l->in_host->name : NULL; }

bool dk_loader_describe(const dk_loader *l, uint64_t a, char *buf, size_t size) { return dk__describe(l, a, buf, size); }

/* ---------------------------------------------------------- arch choice */


dk_status dk_loader_pick_arch(const char *path, const char *want, char out[16], dk_error *err)
{
    dk_file *f;
    dk_status st = dk_file_open(path, &f, err);
    if (st) {
        dk_error_prefix(err, "%s: ", path);
        return st;
    }
    size_t n = dk_file_slice_count(f), idx = 0;
    if (dk_file_is_archive(f)) {
        dk_file_close(f);
        return dk_fail(err, DK_E_UNSUPPORTED, "%s: a static archive cannot be loaded", path);
    }
    if (want) {
        if (dk_file_find_arch(f, want, &idx, NULL)) {
            dk_file_close(f);
            return dk_fail(err, DK_E_NOTFOUND, "%s: no slice for architecture '%s'", path, want);
        }
    } else {
        static const char *const pref[] = {"x86_64", "x86_64h", "arm64", "arm64e"};
        bool found = false;
        for (size_t k = 0; k < 4 && !found; k++) {
            if (k < 2 && !dk__native_available()) continue;
            found = dk_file_find_arch(f, pref[k], &idx, NULL) == DK_OK;
        }
        if (!found) idx = 0;
    }
    const dk_slice *s = n ? dk_file_slice(f, idx) : NULL;
    if (!s) {
        dk_file_close(f);
        return dk_fail(err, DK_E_MALFORMED, "%s: no slices", path);
    }
    snprintf(out, 16, "%s", s->arch);
    dk_file_close(f);
    return DK_OK;
}

/* ----------------------------------------------------- dependency closure */

static dk_status add_host_dylib(dk_loader *l, const char *name)
{
    for (size_t i = 0; i < l->nhost_dylibs; i++)
        if (strcmp(l->host_dylibs[i], name) == 0) return DK_OK;
    char **p = realloc(l->host_dylibs, (l->nhost_dylibs + 1) * sizeof *p);
    if (!p) return DK_E_NOMEM;
    l->host_dylibs = p;
    if (!(p[l->nhost_dylibs] = strdup(name))) return DK_E_NOMEM;
    l->nhost_dylibs++;
    return DK_OK;
}

/* Load every dependency of every image; missing /usr/lib/ libraries are left to the host. */
static dk_status load_closure(dk_loader *l, dk_error *err)
{
    const dk_header *mh = dk_macho_header(dk_imageset_image(l->set, 0)->macho);
    for (size_t i = 0; i < dk_imageset_count(l->set); i++) {
        const dk_image *im = dk_imageset_image(l->set, i);
        const dk_header *h = dk_macho_header(im->macho);
        if (h->cputype != mh->cputype)
            return dk_fail(err, DK_E_UNSUPPORTED, "%s: dependency is %s, not %s", im->path, dk_macho_arch(im->macho),
                           l->arch);
        size_t nd;
        const dk_dylib *d = dk_macho_dylibs(im->macho, &nd);
        for (size_t k = 0; k < nd; k++) {
            int idx;
            dk_error e;
            dk_status st = dk_imageset_load_dependency(l->set, (int)i, (int)k + 1, &idx, &e);
            if (st == DK_E_NOTFOUND && is_system_dylib(d[k].name)) {
                if (add_host_dylib(l, d[k].name)) return dk_fail(err, DK_E_NOMEM, "out of memory");
                continue;
            }
            if (st == DK_E_NOTFOUND && (d[k].kind == DK_DYLIB_WEAK || d[k].kind == DK_DYLIB_UPWARD)) continue;
            if (st) {
                if (err) *err = e;
                return st;
            }
        }
    }
    return DK_OK;
}

/* ---------------------------------------------------------------- mapping */

static dk_status map_image(dk_loader *l, ld_image *g, dk_error *err)
{
    size_t ns;
    const dk_segment *segs = dk_macho_segments(g->m, &ns);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < ns; i++) {
        const dk_segment *s = &segs[i];
        if (!seg_mapped(s)) continue;
        if (s->vmaddr % LD_PAGE)
            return dk_fail(err, DK_E_UNSUPPORTED, "%s: segment %s: vmaddr 0x%llx is not page aligned", g->pub.path,
                           s->segname, (unsigned long long)s->vmaddr);
        if (s->vmsize > LD_MAX_SPAN || s->vmaddr > UINT64_MAX - LD_MAX_SPAN)
            return dk_fail(err, DK_E_LIMIT, "%s: segment %s: vmsize 0x%llx is too large to map", g->pub.path,
                           s->segname, (unsigned long long)s->vmsize);
        for (size_t j = 0; j < i; j++) {
            const dk_segment *o = &segs[j];
            if (seg_mapped(o) && s->vmaddr < o->vmaddr + o->vmsize && o->vmaddr < s->vmaddr + s->vmsize)
                return dk_fail(err, DK_E_MALFORMED, "%s: segments %s and %s overlap", g->pub.path, o->segname,
                               s->segname);
        }
        if (s->vmaddr < lo) lo = s->vmaddr;
        if (round_page(s->vmaddr + s->vmsize) > hi) hi = round_page(s->vmaddr + s->vmsize);
    }
    if (lo == UINT64_MAX) return dk_fail(err, DK_E_MALFORMED, "%s: no segment to map", g->pub.path);
    if (hi - lo > LD_MAX_SPAN)
        return dk_fail(err, DK_E_LIMIT, "%s: segments span 0x%llx bytes (more than 4 GiB)", g->pub.path,
                       (unsigned long long)(hi - lo));
    size_t span = (size_t)(hi - lo);
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    void *p = MAP_FAILED;
    if (lo >= 0x10000 && lo < ((uint64_t)1 << 47))
        p = mmap((void *)(uintptr_t)lo, span, PROT_READ | PROT_WRITE, flags | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != MAP_FAILED && (uint64_t)(uintptr_t)p != lo) {
        munmap(p, span); /* a kernel without MAP_FIXED_NOREPLACE took it as a hint */
        p = MAP_FAILED;
    }
    if (p == MAP_FAILED) p = mmap(NULL, span, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED)
        return dk_fail(err, DK_E_NOMEM, "%s: cannot map 0x%zx bytes: %s", g->pub.path, span, strerror(errno));
    g->map = p;
    g->map_size = span;
    g->pub.preferred_address = lo;
    g->pub.load_address = (uint64_t)(uintptr_t)p;
    g->pub.size = span;
    g->pub.slide = (int64_t)(g->pub.load_address - lo);
    for (size_t i = 0; i < ns; i++) {
        const dk_segment *s = &segs[i];
        if (!seg_mapped(s) || !s->filesize) continue;
        const uint8_t *src = dk_macho_read(g->m, s->vmaddr, s->filesize);
        if (!src)
            return dk_fail(err, DK_E_MALFORMED, "%s: segment %s: file content (0x%llx bytes at 0x%llx) not in the file",
                           g->pub.path, s->segname, (unsigned long long)s->filesize, (unsigned long long)s->fileoff);
        memcpy(g->map + (s->vmaddr - lo), src, (size_t)s->filesize);
    }
    return DK_OK;
}

/* Host pointer for WIDTH bytes at unslid ADDR of G, or NULL if not inside one mapped segment. */
static uint8_t *image_ptr(const ld_image *g, uint64_t addr, uint64_t width)
{
    size_t ns;
    const dk_segment *segs = dk_macho_segments(g->m, &ns);
    for (size_t i = 0; i < ns; i++) {
        const dk_segment *s = &segs[i];
        if (!seg_mapped(s) || addr < s->vmaddr || s->vmsize < width || addr - s->vmaddr > s->vmsize - width) continue;
        return g->map + (addr - g->pub.preferred_address);
    }
    return NULL;
}

static uint32_t segment_prot(const ld_image *g, uint64_t addr)
{
    size_t ns;
    const dk_segment *segs = dk_macho_segments(g->m, &ns);
    for (size_t i = 0; i < ns; i++)
        if (seg_mapped(&segs[i]) && addr >= segs[i].vmaddr && addr - segs[i].vmaddr < segs[i].vmsize)
            return segs[i].initprot;
    return 0;
}

static dk_status store(const ld_image *g, uint64_t addr, unsigned width, uint64_t value, const char *what,
                       dk_error *err)
{
    uint8_t *p = image_ptr(g, addr, width);
    if (!p)
        return dk_fail(err, DK_E_MALFORMED, "%s: %s at 0x%llx (%u bytes) lies outside every segment", g->pub.path,
                       what, (unsigned long long)addr, width);
    if (width == 8) dk_wr64le(p, value);
    else dk_wr32le(p, (uint32_t)value);
    return DK_OK;
}

/* Protections once fixups are done: natively mprotect, under emulation map into unicorn. */
static dk_status protect_image(dk_loader *l, ld_image *g, bool final, dk_error *err)
{
    size_t ns;
    const dk_segment *segs = dk_macho_segments(g->m, &ns);
    for (size_t i = 0; i < ns; i++) {
        const dk_segment *s = &segs[i];
        if (!seg_mapped(s)) continue;
        uint32_t vp = s->initprot;
        if (final && (s->flags & SG_READ_ONLY)) vp &= ~VM_PROT_WRITE;
        uint8_t *p = g->map + (s->vmaddr - g->pub.preferred_address);
        size_t len = (size_t)round_page(s->vmsize);
        if (l->mode == DK_EXEC_EMULATED) {
            if (!final) continue; /* unicorn sees the final protections; the host copy stays writable */
            dk_status st = dk__emu_map(l, (uint64_t)(uintptr_t)p, len, vp, err);
            if (st) return st;
            continue;
        }
        /* fixups of later phases still write here: keep writable until final */
        int prot = (vp & VM_PROT_READ ? PROT_READ : 0) | (vp & VM_PROT_EXECUTE ? PROT_EXEC : 0) |
                   (vp & VM_PROT_WRITE || !final ? PROT_WRITE : 0);
        if (mprotect(p, len, prot))
            return dk_fail(err, DK_E_IO, "%s: mprotect %s: %s", g->pub.path, s->segname, strerror(errno));
    }
    return DK_OK;
}

/* ---------------------------------------------------------- resolution */

static bool reexports_missing_system(dk_loader *l, int image, unsigned depth)
{
    if (depth > 64) return false;
    const dk_image *im = dk_imageset_image(l->set, (size_t)image);
    size_t nd;
    const dk_dylib *d = dk_macho_dylibs(im->macho, &nd);
    for (size_t k = 0; k < nd; k++) {
        if (d[k].kind != DK_DYLIB_REEXPORT) continue;
        int idx;
        dk_status st = dk_imageset_load_dependency(l->set, image, (int)k + 1, &idx, NULL);
        if (st == DK_E_NOTFOUND && is_system_dylib(d[k].name)) return true;
        if (!st && reexports_missing_system(l, idx, depth + 1)) return true;
    }
    return false;
}

/* May the host serve an import of image G with library ORDINAL that the loaded images do not define? */
static bool host_may_serve(dk_loader *l, const ld_image *g, int ordinal, const char **dylib)
{
    *dylib = NULL;
    if (ordinal == -2 || ordinal == -3) return l->nhost_dylibs > 0;
    if (ordinal <= 0) return false;
    size_t nd;
    const dk_dylib *d = dk_macho_dylibs(g->m, &nd);
    if ((size_t)ordinal > nd) return false;
    *dylib = d[ordinal - 1].name;
    int idx;
    dk_status st = dk_imageset_load_dependency(l->set, g->index, ordinal, &idx, NULL);
    if (st == DK_E_NOTFOUND) return is_system_dylib(d[ordinal - 1].name);
    return st == DK_OK && reexports_missing_system(l, idx, 0);
}

static uint64_t host_address(dk_loader *l, const dk_host_fn *h)
{
    size_t k = (size_t)(h - dk__host_at(0));
    if (l->host_addr[k]) return l->host_addr[k];
    uint64_t a;
    if (h->flags & DK_HOST_DATA) a = dk__data_addr(l, (unsigned)h->special);
    else if (h->special == DK_SP_STUB_BINDER) a = l->binder;
    else if (h->special == DK_SP_TLV_BOOTSTRAP) a = l->tlv_thunk;
    else if (h->special == DK_SP_CHKSTK) a = l->nop;
    else if (l->mode == DK_EXEC_NATIVE) a = dk__host_native_address(l, h);
    else a = dk__emu_host_trap(l, h);
    l->host_addr[k] = a;
    return a;
}

/* Runtime address of a resolved export. */
static dk_status export_value(dk_loader *l, const dk_resolved *r, const char *symbol, uint64_t *value, dk_error *err)
{
    if (r->image < 0 || (size_t)r->image >= l->nimgs)
        return dk_fail(err, DK_E_MALFORMED, "%s resolved to an image that is not loaded", symbol);
    if (r->flags & DK_EXPORT_ABSOLUTE) {
        *value = r->address;
        return DK_OK;
    }
    const ld_image *d = &l->imgs[r->image];
    if (r->flags & DK_EXPORT_RESOLVER)
        return dk_fail(err, DK_E_UNSUPPORTED, "%s: %s is a stub-and-resolver export (not supported)", d->pub.path,
                       symbol);
    uint64_t a = r->address + (uint64_t)d->pub.slide;
    if (a < d->pub.load_address || a - d->pub.load_address >= d->pub.size)
        return dk_fail(err, DK_E_MALFORMED, "%s: export %s at 0x%llx lies outside the image", d->pub.path, symbol,
                       (unsigned long long)r->address);
    *value = a;
    return DK_OK;
}

typedef enum { RES_BOUND, RES_WEAK_MISSING, RES_COALESCE_NONE } res_kind;

/*
 * Resolve SYMBOL imported by G with library ORDINAL into *VALUE (addend not
 * applied).  COALESCE: a classic weak-bind record (no definition elsewhere is
 * not an error: the location keeps its own value).
 */
static dk_status resolve_import(dk_loader *l, ld_image *g, int ordinal, const char *symbol, bool weak_import,
                                bool coalesce, uint64_t *value, res_kind *kind, dk_error *err)
{
    *kind = RES_BOUND;
    /* dyld's own entry points are ours, whatever image claims to define them */
    const dk_host_fn *h = dk__host_find(symbol);
    if (h && (h->special == DK_SP_STUB_BINDER || h->special == DK_SP_TLV_BOOTSTRAP)) {
        *value = host_address(l, h);
        return DK_OK;
    }
    dk_resolved r;
    dk_error e = {0};
    dk_status st = dk_imageset_resolve(l->set, g->index, ordinal, symbol, NULL, NULL, &r, &e);
    if (st == DK_OK) return export_value(l, &r, symbol, value, err);
    if (st != DK_E_NOTFOUND) {
        if (err) *err = e;
        dk_error_prefix(err, "%s: ", g->pub.path);
        return st;
    }
    if (coalesce) {
        *kind = RES_COALESCE_NONE;
        return DK_OK;
    }
    const char *dylib;
    bool host_ok = host_may_serve(l, g, ordinal, &dylib);
    if (host_ok && h && (*value = host_address(l, h))) return DK_OK;
    if (weak_import) {
        *kind = RES_WEAK_MISSING;
        *value = 0;
        return DK_OK;
    }
    if (l->flags & DK_LOADER_LAZY) {
        *value = dk__trap_new(l, LD_TRAP_UNRESOLVED, g->index, symbol, NULL, NULL);
        if (!*value) return dk_fail(err, DK_E_LIMIT, "%s: more than %u traps", g->pub.path, LD_TRAP_SLOTS);
        return DK_OK;
    }
    if (host_ok && dylib)
        return dk_fail(err, DK_E_NOTFOUND,
                       "%s: unresolved import %s: its library %s is missing and the host C library, which stands in "
                       "for it, has no such symbol",
                       g->pub.path, symbol, dylib);
    if (host_ok)
        return dk_fail(err, DK_E_NOTFOUND,
                       "%s: unresolved import %s (flat-namespace lookup): neither a loaded image nor the host C "
                       "library defines it",
                       g->pub.path, symbol);
    if (err) *err = e;
    dk_error_prefix(err, "%s: unresolved import %s: ", g->pub.path, symbol);
    return DK_E_NOTFOUND;
}

/* ------------------------------------------------------------- fixups */

typedef struct fix_ctx {
    dk_loader *l;
    ld_image *g;
    dk_error *err;
    dk_status st;
    /* classic: consecutive binds usually repeat the symbol */
    const char *last_symbol;
    int last_ordinal;
    bool last_weak;
    uint64_t last_value;
    res_kind last_kind;
} fix_ctx;

static int fix_fail(fix_ctx *c, dk_status st)
{
    c->st = st;
    return 1;
}

static dk_status lazy_push(ld_image *g, const dk_fixup *f, uint64_t value)
{
    if (g->nlazy == g->lazy_cap) {
        size_t cap = g->lazy_cap ? g->lazy_cap * 2 : 16;
        ld_lazy *p = realloc(g->lazy, cap * sizeof *p);
        if (!p) return DK_E_NOMEM;
        g->lazy = p;
        g->lazy_cap = cap;
    }
    ld_lazy *z = &g->lazy[g->nlazy++];
    z->offset = f->lazy_offset;
    z->slot = f->address + (uint64_t)g->pub.slide;
    z->value = value;
    z->symbol = f->symbol;
    return DK_OK;
}

static int on_fixup(void *ctx, const dk_fixup *f)
{
    fix_ctx *c = ctx;
    ld_image *g = c->g;
    dk_loader *l = c->l;
    if (f->strong) return 0; /* a weak-bind stream note that the image defines it strongly: no location */
    if (f->width != 8 && f->width != 4)
        return fix_fail(c, dk_fail(c->err, DK_E_UNSUPPORTED, "%s: %u-byte fixup at 0x%llx", g->pub.path, f->width,
                                   (unsigned long long)f->address));
    if (f->type > 2)
        return fix_fail(c, dk_fail(c->err, DK_E_UNSUPPORTED, "%s: PC-relative text fixup at 0x%llx", g->pub.path,
                                   (unsigned long long)f->address));
    uint64_t value;
    if (f->kind == DK_FIXUP_REBASE) {
        value = f->target + (uint64_t)g->pub.slide;
        if (f->high8) value = (value & 0x00FFFFFFFFFFFFFFull) | ((uint64_t)f->high8 << 56);
        dk_status st = store(g, f->address, f->width, value, "rebase", c->err);
        return st ? fix_fail(c, st) : 0;
    }
    if (!f->symbol)
        return fix_fail(c, dk_fail(c->err, DK_E_MALFORMED, "%s: bind at 0x%llx without a symbol", g->pub.path,
                                   (unsigned long long)f->address));
    bool chained = g->imports != NULL;
    bool coalesce = f->kind == DK_FIXUP_WEAK_BIND && !chained;
    res_kind kind;
    dk_status st;
    if (chained && f->import_index < g->nimports && g->imports_done[f->import_index]) {
        value = g->imports[f->import_index];
        kind = g->imports_done[f->import_index] == 2 ? RES_WEAK_MISSING : RES_BOUND;
    } else if (!chained && c->last_symbol && c->last_symbol == f->symbol && c->last_ordinal == f->ordinal &&
               c->last_weak == f->weak_import && !coalesce) {
        value = c->last_value;
        kind = c->last_kind;
    } else {
        st = resolve_import(l, g, f->ordinal, f->symbol, f->weak_import, coalesce, &value, &kind, c->err);
        if (st) return fix_fail(c, st);
        if (chained && f->import_index < g->nimports) {
            g->imports[f->import_index] = value;
            g->imports_done[f->import_index] = kind == RES_WEAK_MISSING ? 2 : 1;
        } else if (!coalesce) {
            c->last_symbol = f->symbol;
            c->last_ordinal = f->ordinal;
            c->last_weak = f->weak_import;
            c->last_value = value;
            c->last_kind = kind;
        }
    }
    if (kind == RES_COALESCE_NONE) return 0; /* no other definition: the location keeps its own */
    /* a missing weak import is 0 whatever the addend (dyld binds it to NULL) */
    if (kind == RES_BOUND) value += (uint64_t)f->addend;
    if (f->kind == DK_FIXUP_LAZY_BIND && g->lazy_via_helper) {
        /* bound on first call by our dyld_stub_binder; the slot must be a place we may write */
        if (!image_ptr(g, f->address, 8))
            return fix_fail(c, dk_fail(c->err, DK_E_MALFORMED, "%s: lazy bind of %s at 0x%llx lies outside every segment",
                                       g->pub.path, f->symbol, (unsigned long long)f->address));
        if (lazy_push(g, f, value)) return fix_fail(c, dk_fail(c->err, DK_E_NOMEM, "out of memory"));
        return 0;
    }
    st = store(g, f->address, f->width, value, dk_fixup_kind_name(f->kind), c->err);
    return st ? fix_fail(c, st) : 0;
}

static int by_lazy_offset(const void *a, const void *b)
{
    const ld_lazy *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The unslid address of __dyld_private as the __stub_helper header loads it, or 0. */
static uint64_t stub_helper_private(const ld_image *g)
{
    const dk_section *sh = dk_macho_find_section(g->m, "__TEXT", "__stub_helper");
    if (!sh) return 0;
    uint32_t ct = dk_macho_header(g->m)->cputype;
    const uint8_t *p = dk_macho_read(g->m, sh->addr, 12);
    if (!p || sh->size < 12) return 0;
    if (ct == CPU_TYPE_X86_64) {
        /* leaq __dyld_private(%rip), %r11; pushq %r11; jmpq *binder(%rip) */
        if (p[0] != 0x4c || p[1] != 0x8d || p[2] != 0x1d || p[7] != 0x41 || p[8] != 0x53 || p[9] != 0xff ||
            p[10] != 0x25)
            return 0;
        int32_t d = (int32_t)dk_le32(p + 3);
        return sh->addr + 7 + (uint64_t)(int64_t)d;
    }
    if (ct == CPU_TYPE_ARM64) {
        /* adrp x17, page; add x17, x17, off; stp x16, x17, [sp, #-16]! */
        uint32_t adrp = dk_le32(p), add = dk_le32(p + 4), stp = dk_le32(p + 8);
        if ((adrp & 0x9f00001f) != 0x90000011 || (add & 0xffc003ff) != 0x91000231 || stp != 0xa9bf47f0) return 0;
        uint64_t imm = ((uint64_t)((adrp >> 5) & 0x7ffff) << 2) | ((adrp >> 29) & 3);
        int64_t off = (int64_t)(imm << 43) >> 31; /* sign-extend 21 bits, times 4096 */
        uint64_t page = (sh->addr & ~(uint64_t)0xfff) + (uint64_t)off;
        uint64_t lo12 = (add >> 10) & 0xfff;
        if (add & (1u << 22)) lo12 <<= 12;
        return page + lo12;
    }
    return 0;
}

static dk_status apply_fixups(dk_loader *l, ld_image *g, dk_error *err)
{
    dk_macho *m = g->m;
    if (dk_macho_fixup_encoding(m) == DK_ENCODING_CHAINED && m->chained.present) {
        const dk_chained_import *imps;
        size_t n;
        dk_status st = dk_macho_chained_imports(m, &imps, &n, err);
        if (st) {
            dk_error_prefix(err, "%s: ", g->pub.path);
            return st;
        }
        g->nimports = n;
        g->imports = calloc(n ? n : 1, sizeof *g->imports);
        g->imports_done = calloc(n ? n : 1, 1);
        if (!g->imports || !g->imports_done) return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    uint32_t lo, ls;
    if (dk_macho_opcode_stream(m, DK_STREAM_LAZY_BIND, &lo, &ls) && ls) {
        uint64_t priv = stub_helper_private(g);
        if (priv && (segment_prot(g, priv) & VM_PROT_WRITE) && image_ptr(g, priv, 8)) {
            g->dyld_private = priv + (uint64_t)g->pub.slide;
            g->lazy_via_helper = true;
        }
    }
    fix_ctx c;
    memset(&c, 0, sizeof c);
    c.l = l;
    c.g = g;
    c.err = err;
    dk_status st = dk_macho_foreach_fixup(m, on_fixup, &c, err);
    if (st == DK_E_STOPPED) st = c.st;
    if (st) {
        if (err && !strstr(err->message, g->pub.path)) dk_error_prefix(err, "%s: ", g->pub.path);
        return st;
    }
    if (g->nlazy) qsort(g->lazy, g->nlazy, sizeof *g->lazy, by_lazy_offset);
    if (g->lazy_via_helper) {
        /* what the helper pushes: our binder finds the image through it */
        uint8_t *p = image_ptr(g, g->dyld_private - (uint64_t)g->pub.slide, 8);
        dk_wr64le(p, (uint64_t)(uintptr_t)g);
    }
    return DK_OK;
}

uint64_t dk__lazy_bind(dk_loader *l, ld_image *g, uint64_t offset)
{
    size_t lo = 0, hi = g->nlazy;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->lazy[mid].offset < offset) lo = mid + 1;
        else hi = mid;
    }
    if (lo < g->nlazy && g->lazy[lo].offset == offset) {
        const ld_lazy *z = &g->lazy[lo];
        dk_wr64le((uint8_t *)(uintptr_t)z->slot, z->value);
        return z->value;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "lazy binding failed: %s has no lazy-bind record at offset 0x%llx", image_label(g),
             (unsigned long long)offset);
    return dk__trap_new(l, LD_TRAP_MESSAGE, g->index, NULL, NULL, msg);
}

/* ------------------------------------------------- thread-local variables */

static void tlv_free_block(void *p) { free(p); }

static dk_status setup_tlv(dk_loader *l, ld_image *g, dk_error *err)
{
    size_t ns;
    const dk_section *secs = dk_macho_sections(g->m, &ns);
    uint64_t lo = UINT64_MAX, hi = 0, init_hi = 0, align = 1;
    bool vars = false;
    for (size_t i = 0; i < ns; i++) {
        uint32_t type = secs[i].flags & 0xff;
        if (type == S_THREAD_LOCAL_VARIABLES) vars = true;
        if (type != S_THREAD_LOCAL_REGULAR && type != S_THREAD_LOCAL_ZEROFILL) continue;
        const dk_section *s = &secs[i];
        if (s->size && !image_ptr(g, s->addr, s->size))
            return dk_fail(err, DK_E_MALFORMED, "%s: section %s,%s lies outside its segment", g->pub.path, s->segname,
                           s->sectname);
        if (s->addr < lo) lo = s->addr;
        if (s->addr + s->size > hi) hi = s->addr + s->size;
        if (type == S_THREAD_LOCAL_REGULAR && s->addr + s->size > init_hi) init_hi = s->addr + s->size;
        if (s->align < 12 && (1ull << s->align) > align) align = 1ull << s->align;
    }
    if (!vars) return DK_OK;
    if (lo == UINT64_MAX) lo = hi = init_hi = 0;
    if (init_hi < lo) init_hi = lo;
    ld_tlv *t = calloc(1, sizeof *t);
    if (!t) return dk_fail(err, DK_E_NOMEM, "out of memory");
    g->tlv = t;
    t->magic = LD_IMAGE_MAGIC;
    t->loader = l;
    t->image = g->index;
    t->start = lo + (uint64_t)g->pub.slide;
    t->init_size = init_hi - lo;
    t->size = hi - lo;
    t->align = align < 16 ? 16 : align;
    if (l->mode == DK_EXEC_NATIVE) {
        if (pthread_key_create(&t->key, tlv_free_block))
            return dk_fail(err, DK_E_LIMIT, "%s: no pthread key left for thread-local variables", g->pub.path);
        t->has_key = true;
    }
    for (size_t i = 0; i < ns; i++) {
        const dk_section *s = &secs[i];
        if ((s->flags & 0xff) != S_THREAD_LOCAL_VARIABLES) continue;
        if (s->size % 24)
            return dk_fail(err, DK_E_MALFORMED, "%s: __thread_vars size 0x%llx is not a multiple of 24", g->pub.path,
                           (unsigned long long)s->size);
        for (uint64_t a = s->addr; a < s->addr + s->size; a += 24) {
            uint8_t *p = image_ptr(g, a, 24);
            if (!p)
                return dk_fail(err, DK_E_MALFORMED, "%s: thread-local descriptor at 0x%llx lies outside every segment",
                               g->pub.path, (unsigned long long)a);
            uint64_t off = dk_le64(p + 16);
            if (off >= t->size)
                return dk_fail(err, DK_E_MALFORMED,
                               "%s: thread-local descriptor at 0x%llx: offset 0x%llx past the template (0x%llx bytes)",
                               g->pub.path, (unsigned long long)a, (unsigned long long)off, (unsigned long long)t->size);
            dk_wr64le(p, l->tlv_thunk);
            dk_wr64le(p + 8, (uint64_t)(uintptr_t)t);
        }
    }
    return DK_OK;
}

uint64_t dk__tlv_address(dk_loader *l, uint64_t desc)
{
    /* the descriptor is guest memory: find the image it belongs to before trusting it */
    int i = image_at(l, desc);
    if (i < 0 || !l->imgs[i].tlv || desc + 24 > l->imgs[i].pub.load_address + l->imgs[i].pub.size) return 0;
    const uint8_t *p = (const uint8_t *)(uintptr_t)desc;
    ld_tlv *t = NULL;
    uint64_t key = dk_le64(p + 8), off = dk_le64(p + 16);
    for (size_t k = 0; k < l->nimgs && !t; k++)
        if (l->imgs[k].tlv && (uint64_t)(uintptr_t)l->imgs[k].tlv == key) t = l->imgs[k].tlv;
    if (!t || off >= t->size) return 0;
    if (l->mode == DK_EXEC_EMULATED) {
        if (!t->emu_block) {
            uint64_t b = dk__emu_malloc(l, t->size, t->align);
            if (!b) return 0;
            memcpy((void *)(uintptr_t)b, (const void *)(uintptr_t)t->start, (size_t)t->init_size);
            memset((uint8_t *)(uintptr_t)b + t->init_size, 0, (size_t)(t->size - t->init_size));
            t->emu_block = b;
        }
        return t->emu_block + off;
    }
    uint8_t *b = pthread_getspecific(t->key);
    if (!b) {
        void *mem;
        if (posix_memalign(&mem, (size_t)t->align, (size_t)t->size)) return 0;
        b = mem;
        memcpy(b, (const void *)(uintptr_t)t->start, (size_t)t->init_size);
        memset(b + t->init_size, 0, (size_t)(t->size - t->init_size));
        if (pthread_setspecific(t->key, b)) {
            free(b);
            return 0;
        }
    }
    return (uint64_t)(uintptr_t)(b + off);
}

/* ------------------------------------------------------------ open/close */

void dk_loader_close(dk_loader *l)
{
    if (!l) return;
    if (l->emu) dk__emu_close(l);
    for (size_t i = 0; i < l->nimgs; i++) {
        ld_image *g = &l->imgs[i];
        if (g->tlv) {
            if (g->tlv->has_key) {
                free(pthread_getspecific(g->tlv->key));
                pthread_key_delete(g->tlv->key);
            }
            free(g->tlv);
        }
        if (g->map) munmap(g->map, g->map_size);
        free(g->lazy);
        free(g->imports);
        free(g->imports_done);
    }
    free(l->imgs);
    for (size_t i = 0; i < l->nhost_dylibs; i++) free(l->host_dylibs[i]);
    free(l->host_dylibs);
    for (size_t i = 0; i < l->ntraps; i++) free(l->trap_info[i].message);
    free(l->trap_info);
    if (l->traps) munmap(l->traps, (size_t)LD_TRAP_SLOTS * LD_TRAP_SLOT);
    if (l->data) munmap(l->data, LD_DATA_SIZE);
    for (size_t i = 0; i < l->nstrings; i++) free(l->strings[i]);
    free(l->strings);
    free(l->host_addr);
    dk_imageset_close(l->set);
    free(l);
}

static dk_status open_areas(dk_loader *l, dk_error *err)
{
    size_t tsize = (size_t)LD_TRAP_SLOTS * LD_TRAP_SLOT;
    void *t = mmap(NULL, tsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) return dk_fail(err, DK_E_NOMEM, "cannot map the trap page: %s", strerror(errno));
    l->traps = t;
    void *d = mmap(NULL, LD_DATA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (d == MAP_FAILED) return dk_fail(err, DK_E_NOMEM, "cannot map the host data page: %s", strerror(errno));
    l->data = d;
    l->trap_info = calloc(LD_TRAP_SLOTS, sizeof *l->trap_info);
    l->host_addr = calloc(dk__host_count() + 1, sizeof *l->host_addr);
    if (!l->trap_info || !l->host_addr) return dk_fail(err, DK_E_NOMEM, "out of memory");
    dk__host_init_data(l->data);
    if (l->mode == DK_EXEC_NATIVE) {
        /* every slot is ud2 ud2: calling a trap raises SIGILL at its address */
        for (size_t i = 0; i + 1 < tsize; i += 2) {
            l->traps[i] = 0x0f;
            l->traps[i + 1] = 0x0b;
        }
        if (mprotect(t, tsize, PROT_READ | PROT_EXEC))
            return dk_fail(err, DK_E_IO, "mprotect of the trap page: %s", strerror(errno));
        l->binder = dk__native_binder();
        l->tlv_thunk = dk__native_tlv_thunk();
        l->nop = dk__native_nop();
        return DK_OK;
    }
    return dk__emu_open(l, err); /* sets binder, tlv_thunk, nop to trap slots */
}

dk_status dk_loader_open(const char *path, const dk_loader_opts *o, dk_loader **out, dk_error *err)
{
    *out = NULL;
    dk_loader *l = calloc(1, sizeof *l);
    if (!l) return dk_fail(err, DK_E_NOMEM, "out of memory");
    l->flags = o ? o->flags : 0;
    dk_status st = dk_loader_pick_arch(path, o ? o->arch : NULL, l->arch, err);
    if (st) goto fail;
    if (arch_native(l->arch) && dk__native_available()) {
        l->mode = DK_EXEC_NATIVE;
    } else if (arch_emulated(l->arch) && dk__emu_available()) {
        l->mode = DK_EXEC_EMULATED;
    } else {
        st = dk_fail(err, DK_E_UNSUPPORTED, "%s: cannot run %s code (x86_64 runs natively on x86_64 hosts, arm64 and arm64e under unicorn%s)",
                     path, l->arch, dk__emu_available() ? "" : ", which this build lacks");
        goto fail;
    }
    dk_imageset_opts so;
    memset(&so, 0, sizeof so);
    so.root = o ? o->root : NULL;
    so.libdirs = o ? o->libdirs : NULL;
    so.nlibdirs = o ? o->nlibdirs : 0;
    so.arch = l->arch;
    if ((st = dk_imageset_new(&so, &l->set, err))) goto fail;
    int main_index;
    if ((st = dk_imageset_load_main(l->set, path, &main_index, err))) goto fail;
    const dk_header *mh = dk_macho_header(dk_imageset_image(l->set, 0)->macho);
    if (!mh->is64 || mh->big_endian || (mh->cputype != CPU_TYPE_X86_64 && mh->cputype != CPU_TYPE_ARM64)) {
        st = dk_fail(err, DK_E_UNSUPPORTED, "%s: cannot run %s code", path, dk_macho_arch(dk_imageset_image(l->set, 0)->macho));
        goto fail;
    }
    if (dk_macho_in_cache(dk_imageset_image(l->set, 0)->macho) || (mh->flags & 0x80000000u)) {
        st = dk_fail(err, DK_E_UNSUPPORTED, "%s: an image from a dyld shared cache cannot be loaded on its own", path);
        goto fail;
    }
    if ((st = load_closure(l, err))) goto fail;
    l->nimgs = dk_imageset_count(l->set);
    l->imgs = calloc(l->nimgs, sizeof *l->imgs);
    if (!l->imgs) {
        st = dk_fail(err, DK_E_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = open_areas(l, err))) goto fail;
    for (size_t i = 0; i < l->nimgs; i++) {
        ld_image *g = &l->imgs[i];
        const dk_image *im = dk_imageset_image(l->set, i);
        g->magic = LD_IMAGE_MAGIC;
        g->loader = l;
        g->index = (int)i;
        g->m = im->macho;
        g->pub.path = im->path;
        g->pub.install_name = im->install_name;
        if ((st = map_image(l, g, err))) goto fail;
    }
    for (size_t i = 0; i < l->nimgs; i++)
        if ((st = apply_fixups(l, &l->imgs[i], err))) goto fail;
    for (size_t i = 0; i < l->nimgs; i++)
        if ((st = setup_tlv(l, &l->imgs[i], err))) goto fail;
    for (size_t i = 0; i < l->nimgs; i++)
        if ((st = protect_image(l, &l->imgs[i], false, err))) goto fail;
    for (size_t i = 0; i < l->nimgs; i++)
        if ((st = protect_image(l, &l->imgs[i], true, err))) goto fail;
    *out = l;
    return DK_OK;
fail:
    dk_loader_close(l);
    return st;
}

/* ---------------------------------------------------------- running code */

static dk_status run(dk_loader *l, uint64_t address, const uint64_t *args, size_t nargs, uint64_t *result,
                     dk_error *err)
{
    if (l->mode == DK_EXEC_NATIVE) return dk__native_call(l, address, args, nargs, result, err);
    return dk__emu_call(l, address, args, nargs, result, err);
}

/* Dependencies first: post-order over the dependency graph from the main image (iterative). */
static dk_status init_order(dk_loader *l, int **order, size_t *count, dk_error *err)
{
    size_t n = l->nimgs;
    int *out = malloc(n * sizeof *out);
    uint8_t *seen = calloc(n, 1);
    struct frame { int image; size_t next; } *stack = malloc(n * sizeof *stack);
    if (!out || !seen || !stack) {
        free(out);
        free(seen);
        free(stack);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    size_t no = 0;
    for (size_t root = 0; root < n; root++) {
        if (seen[root]) continue;
        size_t sp = 0;
        stack[sp++] = (struct frame){(int)root, 0};
        seen[root] = 1;
        while (sp) {
            struct frame *f = &stack[sp - 1];
            size_t nd;
            const dk_dylib *d = dk_macho_dylibs(l->imgs[f->image].m, &nd);
            bool pushed = false;
            while (f->next < nd && !pushed) {
                size_t k = f->next++;
                int idx;
                if (d[k].kind == DK_DYLIB_UPWARD) continue;
                if (dk_imageset_load_dependency(l->set, f->image, (int)k + 1, &idx, NULL)) continue;
                if (idx < 0 || (size_t)idx >= n || seen[idx]) continue;
                seen[idx] = 1;
                stack[sp++] = (struct frame){idx, 0};
                pushed = true;
            }
            if (!pushed) out[no++] = stack[--sp].image;
        }
    }
    free(seen);
    free(stack);
    *order = out;
    *count = no;
    return DK_OK;
}

static bool in_exec_segment(const ld_image *g, uint64_t unslid)
{
    return (segment_prot(g, unslid) & VM_PROT_EXECUTE) != 0;
}

static dk_status run_image_initializers(dk_loader *l, ld_image *g, dk_error *err)
{
    size_t ns;
    const dk_section *secs = dk_macho_sections(g->m, &ns);
    uint64_t empty = dk__data_addr(l, LD_DATA_EMPTY);
    uint64_t args[5] = {0, empty, empty, empty, 0};
    for (size_t i = 0; i < ns; i++) {
        const dk_section *s = &secs[i];
        uint32_t type = s->flags & 0xff;
        if (type != S_MOD_INIT_FUNC_POINTERS && type != S_INIT_FUNC_OFFSETS) continue;
        unsigned width = type == S_MOD_INIT_FUNC_POINTERS ? 8 : 4;
        if (s->size % width)
            return dk_fail(err, DK_E_MALFORMED, "%s: %s,%s size 0x%llx is not a multiple of %u", g->pub.path,
                           s->segname, s->sectname, (unsigned long long)s->size, width);
        for (uint64_t a = s->addr; a < s->addr + s->size; a += width) {
            const uint8_t *p = image_ptr(g, a, width);
            if (!p)
                return dk_fail(err, DK_E_MALFORMED, "%s: initializer entry at 0x%llx lies outside every segment",
                               g->pub.path, (unsigned long long)a);
            uint64_t fn, unslid;
            if (width == 8) {
                fn = dk_le64(p) & 0x00FFFFFFFFFFFFFFull;
                unslid = fn - (uint64_t)g->pub.slide;
            } else {
                unslid = g->pub.preferred_address + dk_le32(p);
                fn = unslid + (uint64_t)g->pub.slide;
            }
            if (!in_exec_segment(g, unslid))
                return dk_fail(err, DK_E_MALFORMED, "%s: initializer 0x%llx (entry at 0x%llx) is not in an executable segment",
                               g->pub.path, (unsigned long long)unslid, (unsigned long long)a);
            uint64_t ignored;
            dk_status st = run(l, fn, args, 5, &ignored, err);
            if (st) return st;
        }
    }
    return DK_OK;
}

dk_status dk_loader_run_initializers(dk_loader *l, dk_error *err)
{
    if (l->inits_done) return DK_OK;
    if (l->inits_failed) return dk_fail(err, DK_E_STOPPED, "an initializer failed earlier");
    int *order = NULL;
    size_t n = 0;
    dk_status st = init_order(l, &order, &n, err);
    if (st) return st;
    for (size_t i = 0; i < n && !st; i++) st = run_image_initializers(l, &l->imgs[order[i]], err);
    free(order);
    if (st) {
        l->inits_failed = true;
        return st;
    }
    l->inits_done = true;
    return DK_OK;
}

/* A copy of S the loader owns (names handed out to callers). */
static const char *keep_string(dk_loader *l, const char *s)
{
    if (l->nstrings == l->strings_cap) {
        size_t cap = l->strings_cap ? l->strings_cap * 2 : 8;
        char **p = realloc(l->strings, cap * sizeof *p);
        if (!p) return NULL;
        l->strings = p;
        l->strings_cap = cap;
    }
    char *c = strdup(s);
    if (c) l->strings[l->nstrings++] = c;
    return c;
}

dk_status dk_loader_find_symbol(dk_loader *l, const char *name, dk_loader_symbol *out, dk_error *err)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(name);
    char *under = malloc(len + 2);
    if (!under) return dk_fail(err, DK_E_NOMEM, "out of memory");
    under[0] = '_';
    memcpy(under + 1, name, len + 1);
    dk_resolved r;
    dk_error e = {0};
    const char *tried = under;
    dk_status st = dk_imageset_find_export(l->set, 0, under, NULL, NULL, &r, &e);
    if (st == DK_E_NOTFOUND) {
        tried = name;
        st = dk_imageset_find_export(l->set, 0, name, NULL, NULL, &r, &e);
    }
    if (st == DK_E_NOTFOUND) {
        free(under);
        return dk_fail(err, DK_E_NOTFOUND, "%s: symbol %s is not exported (neither _%s nor %s)", l->imgs[0].pub.path,
                       name, name, name);
    }
    if (st) {
        free(under);
        if (err) *err = e;
        return st;
    }
    /* r.symbol is TRIED or a re-exported name inside an image's trie */
    out->name = keep_string(l, r.symbol == tried ? tried : r.symbol);
    free(under);
    if (!out->name) return dk_fail(err, DK_E_NOMEM, "out of memory");
    uint64_t v;
    if ((st = export_value(l, &r, out->name, &v, err))) return st;
    out->address = v;
    out->image = r.image;
    out->unslid_address = r.address;
    return DK_OK;
}

dk_status dk_loader_alloc_string(dk_loader *l, const char *text, uint64_t *address, dk_error *err)
{
    size_t n = strlen(text) + 1;
    if (l->mode == DK_EXEC_EMULATED) {
        uint64_t a = dk__emu_malloc(l, n, 16);
        if (!a) return dk_fail(err, DK_E_NOMEM, "guest heap exhausted");
        memcpy((void *)(uintptr_t)a, text, n);
        *address = a;
        return DK_OK;
    }
    const char *s = keep_string(l, text);
    if (!s) return dk_fail(err, DK_E_NOMEM, "out of memory");
    *address = (uint64_t)(uintptr_t)s;
    return DK_OK;
}

dk_status dk_loader_call(dk_loader *l, uint64_t address, const uint64_t *args, size_t nargs, uint64_t *result,
                         dk_error *err)
{
    if (nargs > dk_loader_max_args(l))
        return dk_fail(err, DK_E_ARG, "%zu arguments, at most %zu for %s", nargs, dk_loader_max_args(l), l->arch);
    dk_status st = dk_loader_run_initializers(l, err);
    if (st) return st;
    return run(l, address, args, nargs, result, err);
}
