/*
 * Image sets: load an image and its dependencies the way dyld finds them, and
 * resolve symbols through export tries, re-exports and umbrellas.
 *
 * Search rules (dyld's): absolute install names under ROOT; @rpath/ through
 * the LC_RPATHs of the loading chain (each rpath may itself start with
 * @loader_path/ or @executable_path/); @loader_path/ relative to the loading
 * image; @executable_path/ relative to the main image; then each extra
 * directory and the loading image's own directory by basename.
 */
#include "macho_internal.h"

#include "dyldkit/stubs.h"

#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#define MAX_IMAGES 65536      /* images in one set */
#define MAX_REEXPORT_DEPTH 64 /* nested re-exports followed in one lookup */

typedef struct img {
    dk_image pub;
    char *path;
    char *install_name;
    dk_file *file;    /* owned unless added with dk_imageset_add_macho */
    bool owns_macho;
    int *deps;        /* per ordinal (1-based -> index 0): image index, -1 not loaded yet, -2 missing */
} img;

struct dk_imageset {
    char *root;
    char **libdirs;
    size_t nlibdirs;
    char *arch;
    bool no_filesystem;
    img *imgs;
    size_t n, cap;
};

size_t dk_imageset_count(const dk_imageset *s) { return s->n; }
const dk_image *dk_imageset_image(const dk_imageset *s, size_t i) { return i < s->n ? &s->imgs[i].pub : NULL; }

dk_status dk_imageset_new(const dk_imageset_opts *o, dk_imageset **out, dk_error *err)
{
    *out = NULL;
    dk_imageset *s = calloc(1, sizeof *s);
    if (!s) return dk_fail(err, DK_E_NOMEM, "out of memory");
    bool bad = false;
    if (o && o->root) bad |= !(s->root = strdup(o->root));
    if (o && o->arch) bad |= !(s->arch = strdup(o->arch));
    if (o) s->no_filesystem = o->no_filesystem;
    if (o && o->nlibdirs) {
        s->libdirs = calloc(o->nlibdirs, sizeof(char *));
        bad |= !s->libdirs;
        for (size_t i = 0; !bad && i < o->nlibdirs; i++) {
            bad |= !(s->libdirs[i] = strdup(o->libdirs[i]));
            s->nlibdirs = i + 1;
        }
    }
    if (bad) {
        dk_imageset_close(s);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    *out = s;
    return DK_OK;
}

void dk_imageset_close(dk_imageset *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        img *g = &s->imgs[i];
        if (g->owns_macho) dk_macho_close(g->pub.macho);
        dk_file_close(g->file);
        free(g->path);
        free(g->install_name);
        free(g->deps);
    }
    free(s->imgs);
    for (size_t i = 0; i < s->nlibdirs; i++) free(s->libdirs[i]);
    free(s->libdirs);
    free(s->root);
    free(s->arch);
    free(s);
}

static bool is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void dirname_of(const char *path, char *out, size_t n)
{
    const char *sl = strrchr(path, '/');
    if (!sl) snprintf(out, n, ".");
    else if (sl == path) snprintf(out, n, "/");
    else snprintf(out, n, "%.*s", (int)(sl - path), path);
}

/* Expand @loader_path/@executable_path/absolute (under root) prefixes of P, seen from image FROM. */
static bool expand(const dk_imageset *s, int from, const char *p, char *out, size_t n)
{
    char dir[PATH_MAX];
    int w;
    if (strncmp(p, "@loader_path", 12) == 0 && (p[12] == '/' || p[12] == 0)) {
        dirname_of(s->imgs[from].path, dir, sizeof dir);
        w = snprintf(out, n, "%s%s", dir, p + 12);
    } else if (strncmp(p, "@executable_path", 16) == 0 && (p[16] == '/' || p[16] == 0)) {
        if (s->n == 0) return false;
        dirname_of(s->imgs[0].path, dir, sizeof dir);
        w = snprintf(out, n, "%s%s", dir, p + 16);
    } else if (p[0] == '/' && s->root) {
        w = snprintf(out, n, "%s%s", s->root, p);
    } else {
        w = snprintf(out, n, "%s", p);
    }
    return w > 0 && (size_t)w < n;
}

/* Find the file for install name NAME loaded by image FROM; false if none exists. */
static bool find_path(const dk_imageset *s, int from, const char *name, char *out, size_t n)
{
    if (strncmp(name, "@rpath/", 7) == 0) {
        /* rpaths of the loading chain: the loader first, then whoever loaded it */
        unsigned guard = 0;
        for (int at = from; at >= 0 && guard++ < MAX_IMAGES; at = s->imgs[at].pub.parent) {
            const dk_macho_info *in = dk_macho_get_info(s->imgs[at].pub.macho);
            for (size_t r = 0; r < in->nrpaths; r++) {
                char base[PATH_MAX], cand[PATH_MAX];
                if (!expand(s, at, in->rpaths[r], base, sizeof base)) continue;
                int w = snprintf(cand, sizeof cand, "%s/%s", base, name + 7);
                if (w > 0 && (size_t)w < sizeof cand && is_file(cand)) {
                    snprintf(out, n, "%s", cand);
                    return true;
                }
            }
        }
    } else if (expand(s, from, name, out, n) && is_file(out)) {
        return true;
    }
    /* fallbacks by basename: -L directories, then the loader's own directory */
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    char cand[PATH_MAX];
    for (size_t i = 0; i < s->nlibdirs; i++) {
        int w = snprintf(cand, sizeof cand, "%s/%s", s->libdirs[i], base);
        if (w > 0 && (size_t)w < sizeof cand && is_file(cand)) {
            snprintf(out, n, "%s", cand);
            return true;
        }
    }
    if (from >= 0 && (size_t)from < s->n) {
        char dir[PATH_MAX];
        dirname_of(s->imgs[from].path, dir, sizeof dir);
        int w = snprintf(cand, sizeof cand, "%s/%s", dir, base);
        if (w > 0 && (size_t)w < sizeof cand && is_file(cand)) {
            snprintf(out, n, "%s", cand);
            return true;
        }
    }
    return false;
}

/* Which slice of a file to use: the set's arch, then compatible fallbacks. */
static dk_status pick_slice(const dk_imageset *s, const dk_file *f, size_t *index, dk_error *err)
{
    size_t n = dk_file_slice_count(f);
    if (n == 1 || !s->arch) {
        *index = 0;
        return DK_OK;
    }
    const char *want[3] = {s->arch, NULL, NULL};
    if (strcmp(s->arch, "arm64e") == 0) want[1] = "arm64";
    if (strcmp(s->arch, "x86_64h") == 0) want[1] = "x86_64";
    for (int k = 0; k < 3 && want[k]; k++)
        if (dk_file_find_arch(f, want[k], index, NULL) == DK_OK) return DK_OK;
    return dk_fail(err, DK_E_NOTFOUND, "%s: no %s slice", dk_file_name(f), s->arch);
}

static dk_status add_image(dk_imageset *s, const char *path, dk_file *f, dk_macho *m, bool owns, int parent, int *index,
                           dk_error *err)
{
    if (s->n >= MAX_IMAGES) return dk_fail(err, DK_E_LIMIT, "more than %d images", MAX_IMAGES);
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        img *p = realloc(s->imgs, cap * sizeof *p);
        if (!p) return dk_fail(err, DK_E_NOMEM, "out of memory");
        s->imgs = p;
        s->cap = cap;
    }
    img *g = &s->imgs[s->n];
    memset(g, 0, sizeof *g);
    size_t nd;
    dk_macho_dylibs(m, &nd);
    g->path = strdup(path);
    const char *id = dk_macho_install_name(m);
    g->install_name = strdup(id ? id : path);
    g->deps = malloc(sizeof(int) * (nd ? nd : 1));
    if (!g->path || !g->install_name || !g->deps) {
        free(g->path);
        free(g->install_name);
        free(g->deps);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < nd; i++) g->deps[i] = -1;
    g->file = f;
    g->owns_macho = owns;
    g->pub.path = g->path;
    g->pub.install_name = g->install_name;
    g->pub.macho = m;
    g->pub.parent = parent;
    *index = (int)s->n++;
    return DK_OK;
}

static dk_status open_image(dk_imageset *s, const char *path, int parent, int *index, dk_error *err)
{
    dk_file *f;
    dk_status st = dk_file_open(path, &f, err);
    if (st) {
        dk_error_prefix(err, "%s: ", path);
        return st;
    }
    size_t si;
    if ((st = pick_slice(s, f, &si, err))) {
        dk_file_close(f);
        return st;
    }
    dk_macho *m;
    if ((st = dk_file_open_macho(f, si, &m, err))) {
        dk_error_prefix(err, "%s: ", path);
        dk_file_close(f);
        return st;
    }
    if (!s->arch && !(s->arch = strdup(dk_macho_arch(m)))) {
        dk_macho_close(m);
        dk_file_close(f);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    st = add_image(s, path, f, m, true, parent, index, err);
    if (st) {
        dk_macho_close(m);
        dk_file_close(f);
    }
    return st;
}

dk_status dk_imageset_load_main(dk_imageset *s, const char *path, int *index, dk_error *err)
{
    return open_image(s, path, -1, index, err);
}

dk_status dk_imageset_add_macho(dk_imageset *s, dk_macho *m, const char *path, int *index, dk_error *err)
{
    if (!s->arch && !(s->arch = strdup(dk_macho_arch(m)))) return dk_fail(err, DK_E_NOMEM, "out of memory");
    return add_image(s, path, NULL, m, false, -1, index, err);
}

dk_status dk_imageset_load_dependency(dk_imageset *s, int from, int ordinal, int *index, dk_error *err)
{
    if (from < 0 || (size_t)from >= s->n) return dk_fail(err, DK_E_ARG, "image %d out of range", from);
    size_t nd;
    const dk_dylib *d = dk_macho_dylibs(s->imgs[from].pub.macho, &nd);
    if (ordinal < 1 || (size_t)ordinal > nd)
        return dk_fail(err, DK_E_MALFORMED, "%s: library ordinal %d but it has %zu dylibs", s->imgs[from].install_name, ordinal, nd);
    int cached = s->imgs[from].deps[ordinal - 1];
    if (cached >= 0) {
        *index = cached;
        return DK_OK;
    }
    const char *name = d[ordinal - 1].name;
    if (cached == -2) return dk_fail(err, DK_E_NOTFOUND, "dependency %s of %s not found", name, s->imgs[from].install_name);
    /* already loaded under that install name? */
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->imgs[i].install_name, name) == 0) {
            s->imgs[from].deps[ordinal - 1] = (int)i;
            *index = (int)i;
            return DK_OK;
        }
    char path[PATH_MAX];
    if (s->no_filesystem || !find_path(s, from, name, path, sizeof path)) {
        s->imgs[from].deps[ordinal - 1] = -2;
        return dk_fail(err, DK_E_NOTFOUND, "dependency %s of %s not found%s%s", name, s->imgs[from].install_name,
                       s->root ? " under " : "", s->root ? s->root : "");
    }
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->imgs[i].path, path) == 0) {
            s->imgs[from].deps[ordinal - 1] = (int)i;
            *index = (int)i;
            return DK_OK;
        }
    int idx;
    dk_status st = open_image(s, path, from, &idx, err);
    if (st) return st;
    s->imgs[from].deps[ordinal - 1] = idx;
    *index = idx;
    return DK_OK;
}

dk_status dk_imageset_load_all(dk_imageset *s, int from, dk_error *err)
{
    /* breadth-first over the growing image list, starting at FROM */
    for (size_t i = (size_t)from; i < s->n; i++) {
        size_t nd;
        const dk_dylib *d = dk_macho_dylibs(s->imgs[i].pub.macho, &nd);
        for (size_t k = 0; k < nd; k++) {
            int idx;
            dk_status st = dk_imageset_load_dependency(s, (int)i, (int)k + 1, &idx, err);
            if (st == DK_E_NOTFOUND && (d[k].kind == DK_DYLIB_WEAK || d[k].kind == DK_DYLIB_UPWARD)) continue;
            if (st) return st;
        }
    }
    return DK_OK;
}

/* ------------------------------------------------------------- lookups */

static int emit_hop(dk_hop_cb cb, void *ctx, dk_hop *h) { return cb ? cb(ctx, h) : 0; }

/* Exported symbols of images without an export trie: defined external nlists. */
static bool nlist_export(dk_macho *m, const char *symbol, dk_export *e)
{
    const dk_symbol *syms;
    size_t n;
    if (dk_macho_symbols(m, &syms, &n, NULL)) return false;
    for (size_t i = 0; i < n; i++) {
        const dk_symbol *s = &syms[i];
        if ((s->type & N_STAB) || !(s->type & N_EXT) || (s->type & N_TYPE) != N_SECT) continue;
        if (strcmp(s->name, symbol) != 0) continue;
        memset(e, 0, sizeof *e);
        e->name = s->name;
        e->address = s->value;
        e->offset = s->value - m->base;
        if (s->desc & N_WEAK_DEF) e->flags |= DK_EXPORT_WEAK;
        return true;
    }
    return false;
}

static dk_status lookup(dk_imageset *s, int image, const char *symbol, dk_hop_cb cb, void *ctx, dk_resolved *out,
                        unsigned depth, dk_error *err)
{
    if (depth > MAX_REEXPORT_DEPTH)
        return dk_fail(err, DK_E_LIMIT, "re-exports nested deeper than %d looking up %s", MAX_REEXPORT_DEPTH, symbol);
    img *g = &s->imgs[image];
    dk_macho *m = g->pub.macho;
    dk_hop h;
    memset(&h, 0, sizeof h);
    h.kind = DK_HOP_IMAGE;
    h.install_name = g->install_name;
    h.path = g->path;
    h.symbol = symbol;
    if (emit_hop(cb, ctx, &h)) return DK_E_STOPPED;
    dk_export e;
    dk_status st;
    if (dk_macho_has_exports_trie(m)) {
        st = dk_macho_find_export(m, symbol, &e, err);
        if (st && st != DK_E_NOTFOUND) return st;
    } else {
        st = nlist_export(m, symbol, &e) ? DK_OK : DK_E_NOTFOUND;
    }
    if (st == DK_OK) {
        if (e.flags & DK_EXPORT_REEXPORT) {
            int dep;
            if ((st = dk_imageset_load_dependency(s, image, e.ordinal, &dep, err))) return st;
            memset(&h, 0, sizeof h);
            h.kind = DK_HOP_REEXPORT;
            h.ordinal = e.ordinal;
            h.install_name = s->imgs[dep].install_name;
            h.path = s->imgs[dep].path;
            h.symbol = e.imported_name;
            if (emit_hop(cb, ctx, &h)) return DK_E_STOPPED;
            /* the imported name lives in the trie buffer of M, which stays mapped */
            return lookup(s, dep, e.imported_name, cb, ctx, out, depth + 1, err);
        }
        memset(&h, 0, sizeof h);
        h.kind = DK_HOP_EXPORT;
        h.install_name = g->install_name;
        h.path = g->path;
        h.symbol = symbol;
        h.address = e.address;
        h.flags = e.flags;
        h.resolver = e.resolver;
        if (emit_hop(cb, ctx, &h)) return DK_E_STOPPED;
        out->image = image;
        out->symbol = symbol;
        out->address = e.address;
        out->flags = e.flags;
        out->resolver = e.resolver;
        return DK_OK;
    }
    /* not exported here: the libraries it re-exports, in load-command order */
    size_t nd;
    const dk_dylib *d = dk_macho_dylibs(m, &nd);
    for (size_t k = 0; k < nd; k++) {
        if (d[k].kind != DK_DYLIB_REEXPORT) continue;
        int dep;
        if ((st = dk_imageset_load_dependency(s, image, (int)k + 1, &dep, err))) return st;
        memset(&h, 0, sizeof h);
        h.kind = DK_HOP_REEXPORT;
        h.ordinal = (int)k + 1;
        h.install_name = s->imgs[dep].install_name;
        h.path = s->imgs[dep].path;
        h.symbol = symbol;
        /* probe first so that hops only show the path that succeeds */
        dk_resolved r;
        dk_error tmp;
        st = lookup(s, dep, symbol, NULL, NULL, &r, depth + 1, &tmp);
        if (st == DK_E_NOTFOUND) continue;
        if (st) {
            if (err) *err = tmp;
            return st;
        }
        if (emit_hop(cb, ctx, &h)) return DK_E_STOPPED;
        return lookup(s, dep, symbol, cb, ctx, out, depth + 1, err);
    }
    return dk_fail(err, DK_E_NOTFOUND, "symbol %s not found in %s (%s) or the libraries it re-exports", symbol,
                   g->install_name, g->path);
}

dk_status dk_imageset_find_export(dk_imageset *s, int image, const char *symbol, dk_hop_cb cb, void *ctx, dk_resolved *out,
                                  dk_error *err)
{
    if (image < 0 || (size_t)image >= s->n) return dk_fail(err, DK_E_ARG, "image %d out of range", image);
    return lookup(s, image, symbol, cb, ctx, out, 0, err);
}

dk_status dk_imageset_resolve(dk_imageset *s, int from, int ordinal, const char *symbol, dk_hop_cb cb, void *ctx,
                              dk_resolved *out, dk_error *err)
{
    if (from < 0 || (size_t)from >= s->n) return dk_fail(err, DK_E_ARG, "image %d out of range", from);
    dk_macho *m = s->imgs[from].pub.macho;
    dk_hop h;
    memset(&h, 0, sizeof h);
    h.kind = DK_HOP_ORDINAL;
    h.ordinal = ordinal;
    h.install_name = dk_macho_ordinal_name(m, ordinal);
    h.symbol = symbol;
    if (!h.install_name)
        return dk_fail(err, DK_E_MALFORMED, "%s: library ordinal %d is out of range", s->imgs[from].install_name, ordinal);
    if (emit_hop(cb, ctx, &h)) return DK_E_STOPPED;
    if (ordinal > 0) {
        int dep;
        dk_status st = dk_imageset_load_dependency(s, from, ordinal, &dep, err);
        if (st) return st;
        return lookup(s, dep, symbol, cb, ctx, out, 0, err);
    }
    if (ordinal == 0) return lookup(s, from, symbol, cb, ctx, out, 0, err);
    if (ordinal == -1) {
        uint32_t ft = dk_macho_header(s->imgs[0].pub.macho)->filetype;
        if (ft != MH_EXECUTE)
            return dk_fail(err, DK_E_NOTFOUND, "%s binds to the main executable, which is not part of this set (the main image is not an executable)",
                           symbol);
        return lookup(s, 0, symbol, cb, ctx, out, 0, err);
    }
    /* flat (-2) and weak (-3) lookups: every image in load order; images that
     * cannot be found are left out (and named if the symbol is not found) */
    char missing[256] = "";
    for (size_t i = 0; i < s->n; i++) {
        size_t nd;
        dk_macho_dylibs(s->imgs[i].pub.macho, &nd);
        for (size_t k = 0; k < nd; k++) {
            int idx;
            dk_error e;
            dk_status ls = dk_imageset_load_dependency(s, (int)i, (int)k + 1, &idx, &e);
            if (ls == DK_E_NOTFOUND) {
                if (!missing[0]) snprintf(missing, sizeof missing, "; not found: %s", dk_macho_dylibs(s->imgs[i].pub.macho, &nd)[k].name);
                continue;
            }
            if (ls) {
                if (err) *err = e;
                return ls;
            }
        }
    }
    dk_status st;
    memset(&h, 0, sizeof h);
    h.kind = DK_HOP_FLAT;
    h.ordinal = ordinal;
    h.symbol = symbol;
    if (emit_hop(cb, ctx, &h)) return DK_E_STOPPED;
    for (size_t i = 0; i < s->n; i++) {
        dk_macho *im = s->imgs[i].pub.macho;
        dk_export e;
        bool found;
        if (dk_macho_has_exports_trie(im)) {
            st = dk_macho_find_export(im, symbol, &e, err);
            if (st && st != DK_E_NOTFOUND) return st;
            found = st == DK_OK && !(e.flags & DK_EXPORT_REEXPORT);
        } else {
            found = nlist_export(im, symbol, &e);
        }
        if (!found) continue;
        return lookup(s, (int)i, symbol, cb, ctx, out, 0, err);
    }
    return dk_fail(err, DK_E_NOTFOUND, "symbol %s not found in any of the %zu loaded images (%s lookup)%s", symbol, s->n,
                   ordinal == -2 ? "flat-namespace" : "weak", missing);
}
