/* Subcommands: stubs, resolve, verify. */
#include "cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *sect_name(const dk_macho *m, int i, char *buf, size_t n)
{
    size_t ns;
    const dk_section *s = dk_macho_sections(m, &ns);
    if (i < 0 || (size_t)i >= ns) {
        snprintf(buf, n, "?");
        return buf;
    }
    snprintf(buf, n, "%s,%s", s[i].segname, s[i].sectname);
    return buf;
}

/* ------------------------------------------------------------------ stubs */

typedef struct stubs_ctx {
    out *o;
    const dk_macho *m;
    int w;
    size_t count, mismatches;
} stubs_ctx;

static int stub_cb(void *ctx, const dk_stub *s)
{
    stubs_ctx *x = ctx;
    out *o = x->o;
    x->count++;
    if (s->lazy_mismatch) x->mismatches++;
    if (o->null) return 0;
    char b1[40], b2[40];
    if (o->json) {
        o_obj(o, NULL);
        o_u64(o, "address", s->address);
        o_str(o, "section", dk_macho_sections(x->m, &(size_t){0})[s->section].sectname);
        o_str(o, "stub_kind", dk_stub_kind_name(s->kind));
        o_u64(o, "size", s->size);
        if (s->has_slot) o_u64(o, "slot", s->slot);
        else o_null(o, "slot");
        if (s->has_slot && s->slot_section >= 0) o_str(o, "slot_section", sect_name(x->m, s->slot_section, b1, sizeof b1));
        const char *sym = s->symbol;
        if (s->kind == DK_STUB_OBJC_MSGSEND && !sym && s->selector) {
            char name[512];
            snprintf(name, sizeof name, "_objc_msgSend$%s", s->selector);
            o_str(o, "symbol", name);
        } else {
            o_str(o, "symbol", sym);
        }
        if (s->bound) {
            o_i64(o, "ordinal", s->ordinal);
            o_str(o, "dylib", s->dylib);
            o_str(o, "bind_kind", dk_fixup_kind_name(s->bind_kind));
            o_i64(o, "addend", s->addend);
            o_bool(o, "weak_import", s->weak_import);
            o_str(o, "bind_symbol", s->bind_symbol);
        } else {
            o_null(o, "ordinal");
            o_null(o, "dylib");
        }
        if (s->has_lazy_offset) o_u64(o, "lazy_bind_offset", s->lazy_bind_offset);
        else o_null(o, "lazy_bind_offset");
        if (s->has_helper) o_u64(o, "helper", s->helper);
        else o_null(o, "helper");
        if (s->has_lazy_offset) o_bool(o, "lazy_bind_mismatch", s->lazy_mismatch);
        if (s->kind == DK_STUB_ARM64_DIRECT || s->kind == DK_STUB_ARM64_BRANCH || (s->kind == DK_STUB_OBJC_MSGSEND && !s->has_slot))
            o_u64(o, "target", s->target);
        if (s->kind == DK_STUB_OBJC_MSGSEND) {
            o_u64(o, "selref", s->selref);
            o_str(o, "selector", s->selector);
        }
        if (s->indirect_index != UINT32_MAX) o_u64(o, "indirect_index", s->indirect_index);
        o_obj_end(o);
        return 0;
    }
    o_printf(o, "%s0x%0*" PRIx64 "%s  %-22s ", c_addr(o), x->w, s->address, c_off(o), sect_name(x->m, s->section, b1, sizeof b1));
    const char *sym = s->symbol ? s->symbol : s->bind_symbol;
    if (s->kind == DK_STUB_OBJC_MSGSEND) o_printf(o, "%s_objc_msgSend$%s%s", c_sym(o), s->selector ? s->selector : "?", c_off(o));
    else o_printf(o, "%s%s%s", c_sym(o), sym ? sym : "(local)", c_off(o));
    if (s->has_slot) o_printf(o, " -> slot 0x%" PRIx64 " (%s)", s->slot, sect_name(x->m, s->slot_section, b2, sizeof b2));
    else if (s->kind == DK_STUB_ARM64_DIRECT || s->kind == DK_STUB_ARM64_BRANCH || s->kind == DK_STUB_OBJC_MSGSEND)
        o_printf(o, " -> 0x%" PRIx64, s->target);
    else if (s->kind == DK_STUB_UNKNOWN) o_printf(o, " %s(unrecognised stub code)%s", c_warn(o), c_off(o));
    if (s->bound) {
        const char *d = s->dylib ? cli_basename(s->dylib) : "?";
        o_printf(o, "  %s%s%s", c_dim(o), s->bind_kind == DK_FIXUP_LAZY_BIND ? "lazy " : "", c_off(o));
        o_printf(o, "%s", d);
        if (s->addend) o_printf(o, " + %" PRId64, s->addend);
        if (s->weak_import) o_printf(o, " [weak-import]");
    }
    if (s->has_helper) {
        o_printf(o, "  helper 0x%" PRIx64, s->helper);
        if (s->has_lazy_offset) o_printf(o, " pushes 0x%x", s->lazy_bind_offset);
        if (s->lazy_mismatch) o_printf(o, " %s(MISMATCH: lazy-bind record at that offset binds another slot)%s", c_warn(o), c_off(o));
    }
    o_printf(o, "\n");
    return 0;
}

static dk_status do_stubs(cli *c, dk_macho *m, const dk_slice *sl, dk_error *err)
{
    (void)sl;
    out *o = &c->o;
    stubs_ctx x = {o, m, dk_macho_header(m)->is64 ? 16 : 8, 0, 0};
    if (o->json) o_arr(o, "stubs");
    /* the discarded (validating) pass only needs the walk's errors */
    dk_status st = dk_macho_foreach_stub(m, o->null ? NULL : stub_cb, &x, err);
    if (o->json) {
        o_arr_end(o);
        o_u64(o, "lazy_bind_mismatches", x.mismatches);
    } else if (!st && x.count == 0) {
        o_printf(o, "no stubs\n");
    }
    return st;
}

static int cmd_stubs(cli *c) { return cli_each_slice(c, do_stubs); }

/* ---------------------------------------------------------------- resolve */

typedef struct hop_ctx {
    out *o;
    bool last_was_reexport;
} hop_ctx;

static const char *flags_text(uint32_t f, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s%s%s%s", (f & DK_EXPORT_WEAK) ? " weak" : "", (f & DK_EXPORT_RESOLVER) ? " resolver" : "",
             (f & DK_EXPORT_ABSOLUTE) ? " absolute" : "", (f & DK_EXPORT_TLS) ? " tls" : "",
             (f & DK_EXPORT_FUNCTION_VARIANT) ? " function-variant" : "");
    return buf;
}

static void json_flags(out *o, uint32_t f)
{
    o_arr(o, "flags");
    if (f & DK_EXPORT_WEAK) o_str(o, NULL, "weak");
    if (f & DK_EXPORT_RESOLVER) o_str(o, NULL, "resolver");
    if (f & DK_EXPORT_ABSOLUTE) o_str(o, NULL, "absolute");
    if (f & DK_EXPORT_TLS) o_str(o, NULL, "tls");
    if (f & DK_EXPORT_FUNCTION_VARIANT) o_str(o, NULL, "function_variant");
    o_arr_end(o);
}

static int hop_cb(void *ctx, const dk_hop *h)
{
    hop_ctx *x = ctx;
    out *o = x->o;
    bool after_reexport = x->last_was_reexport;
    x->last_was_reexport = h->kind == DK_HOP_REEXPORT;
    if (h->kind == DK_HOP_IMAGE && after_reexport) return 0; /* the re-export hop already named it */
    char fb[80];
    if (o->json) {
        o_obj(o, NULL);
        switch (h->kind) {
        case DK_HOP_ORDINAL:
            o_str(o, "kind", "ordinal");
            o_i64(o, "ordinal", h->ordinal);
            o_str(o, "dylib", h->install_name);
            break;
        case DK_HOP_IMAGE:
            o_str(o, "kind", "image");
            o_str(o, "install_name", h->install_name);
            o_str(o, "path", h->path);
            break;
        case DK_HOP_REEXPORT:
            o_str(o, "kind", "reexport");
            o_str(o, "install_name", h->install_name);
            o_str(o, "path", h->path);
            o_str(o, "symbol", h->symbol);
            break;
        case DK_HOP_FLAT:
            o_str(o, "kind", h->ordinal == -3 ? "weak" : "flat");
            break;
        case DK_HOP_EXPORT:
            o_str(o, "kind", "export");
            o_str(o, "install_name", h->install_name);
            o_str(o, "symbol", h->symbol);
            o_u64(o, "address", h->address);
            json_flags(o, h->flags);
            if (h->flags & DK_EXPORT_RESOLVER) o_u64(o, "resolver", h->resolver);
            break;
        }
        o_obj_end(o);
        return 0;
    }
    switch (h->kind) {
    case DK_HOP_ORDINAL: o_printf(o, "  %-12s %d -> %s\n", "ordinal", h->ordinal, h->install_name); break;
    case DK_HOP_IMAGE: o_printf(o, "  %-12s %s %s(%s)%s\n", "image", h->install_name, c_dim(o), h->path, c_off(o)); break;
    case DK_HOP_REEXPORT:
        o_printf(o, "  %-12s %s %s(%s)%s%s%s\n", "re-export", h->install_name, c_dim(o), h->path, c_off(o),
                 h->symbol ? " as " : "", h->symbol ? h->symbol : "");
        break;
    case DK_HOP_FLAT: o_printf(o, "  %-12s search every loaded image in load order\n", h->ordinal == -3 ? "weak" : "flat"); break;
    case DK_HOP_EXPORT:
        o_printf(o, "  %-12s %s%s%s at %s0x%" PRIx64 "%s in %s%s", "export", c_sym(o), h->symbol, c_off(o), c_addr(o), h->address,
                 c_off(o), h->install_name, flags_text(h->flags, fb, sizeof fb));
        if (h->flags & DK_EXPORT_RESOLVER) o_printf(o, " (resolver function 0x%" PRIx64 ")", h->resolver);
        o_printf(o, "\n");
        break;
    }
    return 0;
}

typedef struct import_rec {
    const char *symbol;
    int ordinal;
    bool weak_import;
    bool lazy;
} import_rec;

typedef struct imports_ctx {
    cli_vec v;
    const char *want; /* NULL: all */
} imports_ctx;

static int collect_import(void *ctx, const dk_fixup *f)
{
    imports_ctx *x = ctx;
    if (f->kind == DK_FIXUP_REBASE || f->strong || !f->symbol) return 0;
    if (x->want && strcmp(f->symbol, x->want) != 0) return 0;
    import_rec *r = x->v.data;
    for (size_t i = 0; i < x->v.len; i++)
        if (r[i].ordinal == (f->kind == DK_FIXUP_WEAK_BIND ? -3 : f->ordinal) && strcmp(r[i].symbol, f->symbol) == 0) {
            r[i].lazy |= f->kind == DK_FIXUP_LAZY_BIND;
            r[i].weak_import |= f->weak_import;
            return 0;
        }
    import_rec *n = cli_vec_push(&x->v, sizeof *n);
    if (!n) return 1;
    n->symbol = f->symbol;
    n->ordinal = f->kind == DK_FIXUP_WEAK_BIND ? -3 : f->ordinal;
    n->weak_import = f->weak_import;
    n->lazy = f->kind == DK_FIXUP_LAZY_BIND;
    return 0;
}

/* Imports of M (all, or those of one symbol); also undefined nlists for images without dyld info. */
static dk_status collect_imports(dk_macho *m, const char *want, imports_ctx *x, dk_error *err)
{
    x->want = want;
    dk_status st = dk_macho_foreach_fixup(m, collect_import, x, err);
    if (st) return st;
    if (x->v.len == 0 && dk_macho_fixup_encoding(m) == DK_ENCODING_NONE) {
        const dk_symbol *syms;
        size_t n;
        if ((st = dk_macho_symbols(m, &syms, &n, err))) return st;
        for (size_t i = 0; i < n; i++) {
            const dk_symbol *s = &syms[i];
            if ((s->type & 0xe0) || (s->type & 0x0e) != 0 || !(s->type & 1) || s->value) continue;
            if (want && strcmp(s->name, want) != 0) continue;
            import_rec *r = cli_vec_push(&x->v, sizeof *r);
            if (!r) return cli_fail(err, DK_E_NOMEM, "out of memory");
            r->symbol = s->name;
            r->ordinal = (dk_macho_header(m)->flags & 0x80) ? dk_symbol_library_ordinal(m, s) : -2;
            r->weak_import = (s->desc & 0x40) != 0;
            r->lazy = false;
        }
    }
    return DK_OK;
}

static dk_status open_set(cli *c, dk_macho *m, dk_imageset **set, dk_error *err)
{
    dk_imageset_opts opts = {c->root, c->libdirs, (size_t)c->nlibdirs, dk_macho_arch(m), false};
    dk_status st = dk_imageset_new(&opts, set, err);
    if (st) return st;
    int idx;
    if ((st = dk_imageset_add_macho(*set, m, c->pos[0], &idx, err))) {
        dk_imageset_close(*set);
        *set = NULL;
    }
    return st;
}

static dk_status resolve_one(cli *c, dk_macho *m, dk_imageset *set, const char *symbol, dk_error *err)
{
    out *o = &c->o;
    imports_ctx x = {{0}, NULL};
    dk_status st = collect_imports(m, symbol, &x, err);
    if (!st && x.v.len == 0 && symbol[0] != '_') {
        /* accept the C name: try _SYMBOL */
        char *u = malloc(strlen(symbol) + 2);
        if (!u) return cli_fail(err, DK_E_NOMEM, "out of memory");
        u[0] = '_';
        strcpy(u + 1, symbol);
        cli_vec_free(&x.v);
        st = collect_imports(m, u, &x, err);
        if (!st && x.v.len) symbol = ((import_rec *)x.v.data)[0].symbol;
        free(u);
    }
    if (st) {
        cli_vec_free(&x.v);
        return st;
    }
    if (x.v.len == 0) {
        cli_vec_free(&x.v);
        return cli_fail(err, DK_E_NOTFOUND, "%s does not import %s", c->pos[0], symbol);
    }
    import_rec imp = ((import_rec *)x.v.data)[0];
    cli_vec_free(&x.v);
    if (o->json) {
        o_str(o, "symbol", imp.symbol);
        o_arr(o, "hops");
    } else {
        o_printf(o, "%s%s%s\n", c_sym(o), imp.symbol, c_off(o));
    }
    /* the local part of the path: stub, slot, stub helper, lazy-bind record */
    dk_stub stub;
    dk_status fs = dk_macho_find_stub(m, imp.symbol, &stub, err);
    if (fs && fs != DK_E_NOTFOUND) return fs;
    char b[40];
    if (fs == DK_OK) {
        if (o->json) {
            o_obj(o, NULL); o_str(o, "kind", "stub"); o_u64(o, "address", stub.address); o_obj_end(o);
            if (stub.has_slot) { o_obj(o, NULL); o_str(o, "kind", "slot"); o_u64(o, "address", stub.slot); o_obj_end(o); }
            if (stub.has_helper) { o_obj(o, NULL); o_str(o, "kind", "stub_helper"); o_u64(o, "address", stub.helper); o_obj_end(o); }
            if (stub.has_lazy_offset) { o_obj(o, NULL); o_str(o, "kind", "lazy_bind"); o_u64(o, "offset", stub.lazy_bind_offset); o_obj_end(o); }
        } else {
            o_printf(o, "  %-12s %s0x%" PRIx64 "%s (%s)\n", "stub", c_addr(o), stub.address, c_off(o), sect_name(m, stub.section, b, sizeof b));
            if (stub.has_slot)
                o_printf(o, "  %-12s %s0x%" PRIx64 "%s (%s)\n", "slot", c_addr(o), stub.slot, c_off(o), sect_name(m, stub.slot_section, b, sizeof b));
            if (stub.has_helper) o_printf(o, "  %-12s 0x%" PRIx64 "\n", "stub helper", stub.helper);
            if (stub.has_lazy_offset)
                o_printf(o, "  %-12s offset 0x%x%s\n", "lazy bind", stub.lazy_bind_offset,
                         stub.lazy_mismatch ? " (MISMATCH: that record binds another slot)" : "");
        }
    }
    hop_ctx hc = {o, false};
    dk_resolved r;
    st = dk_imageset_resolve(set, 0, imp.ordinal, imp.symbol, hop_cb, &hc, &r, err);
    if (st) return st;
    const dk_image *im = dk_imageset_image(set, (size_t)r.image);
    char fb[80];
    if (o->json) {
        o_arr_end(o);
        o_obj(o, "final");
        o_str(o, "image", im->install_name);
        o_str(o, "path", im->path);
        o_str(o, "symbol", r.symbol);
        o_u64(o, "address", r.address);
        json_flags(o, r.flags);
        if (r.flags & DK_EXPORT_RESOLVER) o_u64(o, "resolver", r.resolver);
        o_obj_end(o);
    } else {
        o_printf(o, "%sdefined in %s at 0x%" PRIx64 "%s%s\n", c_head(o), im->install_name, r.address, flags_text(r.flags, fb, sizeof fb), c_off(o));
    }
    return DK_OK;
}

static dk_status resolve_all(cli *c, dk_macho *m, dk_imageset *set, dk_error *err)
{
    out *o = &c->o;
    imports_ctx x = {{0}, NULL};
    dk_status st = collect_imports(m, NULL, &x, err);
    if (st) {
        cli_vec_free(&x.v);
        return st;
    }
    import_rec *imps = x.v.data;
    size_t unresolved = 0, weak_missing = 0;
    if (o->json) o_arr(o, "imports");
    for (size_t i = 0; i < x.v.len; i++) {
        dk_resolved r;
        dk_error e = {0};
        st = dk_imageset_resolve(set, 0, imps[i].ordinal, imps[i].symbol, NULL, NULL, &r, &e);
        if (st && st != DK_E_NOTFOUND) {
            if (err) *err = e;
            cli_vec_free(&x.v);
            return st;
        }
        bool ok = st == DK_OK;
        if (!ok && imps[i].weak_import) weak_missing++;
        else if (!ok) unresolved++;
        const char *dylib = dk_macho_ordinal_name(m, imps[i].ordinal);
        const dk_image *im = ok ? dk_imageset_image(set, (size_t)r.image) : NULL;
        if (o->json) {
            o_obj(o, NULL);
            o_str(o, "symbol", imps[i].symbol);
            o_i64(o, "ordinal", imps[i].ordinal);
            o_str(o, "dylib", dylib);
            o_bool(o, "weak_import", imps[i].weak_import);
            o_bool(o, "resolved", ok);
            if (ok) {
                o_str(o, "image", im->install_name);
                o_str(o, "path", im->path);
                o_u64(o, "address", r.address);
                json_flags(o, r.flags);
            } else {
                o_str(o, "error", e.message);
            }
            o_obj_end(o);
        } else if (ok) {
            o_printf(o, "%-40s %s%s%s at 0x%" PRIx64 "\n", imps[i].symbol, c_dim(o), im->install_name, c_off(o), r.address);
        } else {
            o_printf(o, "%s%-40s %s%s: %s%s\n", c_warn(o), imps[i].symbol, imps[i].weak_import ? "missing (weak import, binds to 0)" : "UNRESOLVED",
                     "", e.message, c_off(o));
        }
    }
    if (o->json) {
        o_arr_end(o);
        o_u64(o, "unresolved", unresolved);
        o_u64(o, "weak_missing", weak_missing);
    } else {
        o_printf(o, "%zu imports, %zu unresolved, %zu missing weak imports\n", x.v.len, unresolved, weak_missing);
    }
    cli_vec_free(&x.v);
    if (unresolved) cli_finding(c, "%zu import%s could not be resolved", unresolved, unresolved == 1 ? "" : "s");
    return DK_OK;
}

static dk_status do_resolve(cli *c, dk_macho *m, const dk_slice *sl, dk_error *err)
{
    (void)sl;
    dk_imageset *set;
    dk_status st = open_set(c, m, &set, err);
    if (st) return st;
    if (c->all) st = resolve_all(c, m, set, err);
    else st = resolve_one(c, m, set, c->pos[1], err);
    dk_imageset_close(set);
    return st;
}

static int cmd_resolve(cli *c)
{
    if (c->all ? c->npos != 1 : c->npos != 2) return cli_usage(c, c->all ? "resolve --all takes one FILE" : "resolve needs FILE and SYMBOL");
    /* --all reports unresolved imports on stdout and still exits 1 */
    return cli_each_slice(c, do_resolve);
}


/* ----------------------------------------------------------------- verify */

#define VERIFY_MAX_SHOWN 8

typedef struct check {
    const char *name;
    size_t count, failed, warnings;
    char shown[VERIFY_MAX_SHOWN][160];
    size_t nshown;
    char summary[200];
} check;

static void check_fail(check *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check_fail(check *k, const char *fmt, ...)
{
    k->failed++;
    if (k->nshown >= VERIFY_MAX_SHOWN) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->shown[k->nshown++], sizeof k->shown[0], fmt, ap);
    va_end(ap);
}

static bool writable_segment(const dk_segment *g)
{
    return (g->initprot & 2) || (g->flags & 0x10 /* SG_READ_ONLY: made writable while fixing up */) ||
           strcmp(g->segname, "__DATA_CONST") == 0 || strcmp(g->segname, "__AUTH_CONST") == 0;
}

typedef struct verify_ctx {
    dk_macho *m;
    check *fix;
    size_t nsegs;
    const dk_segment *segs;
} verify_ctx;

static int verify_fixup(void *ctx, const dk_fixup *f)
{
    verify_ctx *v = ctx;
    if (f->strong) return 0;
    v->fix->count++;
    if (f->segment < 0 || (size_t)f->segment >= v->nsegs) {
        check_fail(v->fix, "%s at 0x%llx is outside every segment", dk_fixup_kind_name(f->kind), (unsigned long long)f->address);
        return 0;
    }
    const dk_segment *g = &v->segs[f->segment];
    if (f->type > 1) {
        v->fix->warnings++; /* i386 text relocations: dyld applies them by making __TEXT writable */
        return 0;
    }
    if (!writable_segment(g))
        check_fail(v->fix, "%s at 0x%llx lands in %s, which is not writable (%c%c%c)", dk_fixup_kind_name(f->kind),
                   (unsigned long long)f->address, g->segname, (g->initprot & 1) ? 'r' : '-', (g->initprot & 2) ? 'w' : '-',
                   (g->initprot & 4) ? 'x' : '-');
    return 0;
}

typedef struct vstub_ctx {
    dk_macho *m;
    check *k;
} vstub_ctx;

static int verify_stub(void *ctx, const dk_stub *s)
{
    vstub_ctx *v = ctx;
    v->k->count++;
    size_t ns;
    const dk_section *secs = dk_macho_sections(v->m, &ns);
    if (s->kind == DK_STUB_UNKNOWN) {
        check_fail(v->k, "stub 0x%llx (%s): unrecognised instructions", (unsigned long long)s->address, s->symbol ? s->symbol : "?");
        return 0;
    }
    if (!s->has_slot) {
        if (s->kind == DK_STUB_ARM64_DIRECT || s->kind == DK_STUB_ARM64_BRANCH)
            check_fail(v->k, "stub 0x%llx (%s) branches straight to 0x%llx instead of loading its own slot (cache-optimised)",
                       (unsigned long long)s->address, s->symbol ? s->symbol : "?", (unsigned long long)s->target);
        return 0;
    }
    if (s->slot_section < 0 || (size_t)s->slot_section >= ns) {
        check_fail(v->k, "stub 0x%llx (%s) loads 0x%llx, outside this image's sections", (unsigned long long)s->address,
                   s->symbol ? s->symbol : "?", (unsigned long long)s->slot);
        return 0;
    }
    if (s->lazy_mismatch)
        check_fail(v->k, "stub 0x%llx (%s): its helper pushes lazy-bind offset 0x%x, whose record binds another slot",
                   (unsigned long long)s->address, s->symbol ? s->symbol : "?", s->lazy_bind_offset);
    if (s->bound && s->symbol && s->bind_symbol && strcmp(s->symbol, s->bind_symbol) != 0 && s->kind != DK_STUB_OBJC_MSGSEND)
        check_fail(v->k, "stub 0x%llx is for %s but its slot 0x%llx is bound to %s", (unsigned long long)s->address, s->symbol,
                   (unsigned long long)s->slot, s->bind_symbol);
    (void)secs;
    return 0;
}

typedef struct vcode_ctx {
    check *k;
    const dk_segment *segs;
    size_t nsegs;
} vcode_ctx;

static int verify_code_ref(void *ctx, const dk_code_ref *r)
{
    vcode_ctx *v = ctx;
    v->k->count++;
    for (size_t i = 0; i < v->nsegs; i++) {
        const dk_segment *g = &v->segs[i];
        if (!g->initprot && !g->maxprot) continue; /* __PAGEZERO */
        uint64_t lo = r->kind == DK_CODE_ADRP ? g->vmaddr & ~0xFFFull : g->vmaddr;
        if (r->target >= lo && r->target - g->vmaddr <= g->vmsize) return 0; /* one past the end too */
    }
    static const char *const forms[] = {"ADRP+LDR", "ADRP+ADD", "ADRP", "ADR", "LDR literal"};
    check_fail(v->k, "%s at 0x%llx addresses 0x%llx, outside every segment", forms[r->kind], (unsigned long long)r->address,
               (unsigned long long)r->target);
    return 0;
}

static void verify_selrefs(dk_macho *m, check *k)
{
    size_t ns;
    const dk_section *secs = dk_macho_sections(m, &ns);
    unsigned ptr = dk_macho_header(m)->is64 ? 8 : 4;
    for (size_t i = 0; i < ns; i++) {
        if (strcmp(secs[i].sectname, "__objc_selrefs") != 0) continue;
        for (uint64_t a = secs[i].addr; a + ptr <= secs[i].addr + secs[i].size; a += ptr) {
            k->count++;
            dk_pointer p;
            dk_error e;
            if (dk_macho_read_pointer(m, a, &p, &e)) {
                check_fail(k, "selector ref 0x%llx: %s", (unsigned long long)a, e.message);
                continue;
            }
            if (p.kind == DK_PTR_BIND) {
                check_fail(k, "selector ref 0x%llx is bound to %s in another image", (unsigned long long)a, p.symbol ? p.symbol : "?");
                continue;
            }
            uint64_t t = p.value & 0x00FFFFFFFFFFFFFFull;
            int si = dk_macho_section_at(m, t);
            bool ok = si >= 0 && ((secs[si].flags & 0xff) == 2 /* S_CSTRING_LITERALS */ || strcmp(secs[si].sectname, "__objc_methname") == 0);
            if (!ok) {
                /* libobjc keeps the cache's selector strings in its own read-only __OBJC_RO segment */
                int g = dk_macho_segment_at(m, t);
                const dk_segment *segs = dk_macho_segments(m, NULL);
                const uint8_t *str = g >= 0 && !(segs[g].initprot & 2) ? dk_macho_read(m, t, 1) : NULL;
                uint64_t room = str ? segs[g].vmaddr + segs[g].filesize - t : 0;
                ok = str && memchr(str, 0, room) != NULL;
            }
            if (!ok) check_fail(k, "selector ref 0x%llx points at 0x%llx, not at a selector string of this image", (unsigned long long)a,
                                (unsigned long long)t);
        }
    }
}

static void verify_binds(cli *c, dk_macho *m, check *k, dk_error *err)
{
    imports_ctx x = {{0}, NULL};
    if (collect_imports(m, NULL, &x, err)) {
        check_fail(k, "%s", err->message);
        return;
    }
    import_rec *imps = x.v.data;
    dk_imageset *set = NULL;
    if (c->root && open_set(c, m, &set, err)) {
        check_fail(k, "%s", err->message);
        set = NULL;
    }
    for (size_t i = 0; i < x.v.len; i++) {
        k->count++;
        if (!dk_macho_ordinal_name(m, imps[i].ordinal)) {
            check_fail(k, "%s binds with library ordinal %d, which names no dylib", imps[i].symbol, imps[i].ordinal);
            continue;
        }
        if (!set) continue;
        dk_resolved r;
        dk_error e = {0};
        dk_status st = dk_imageset_resolve(set, 0, imps[i].ordinal, imps[i].symbol, NULL, NULL, &r, &e);
        if (st && imps[i].weak_import) k->warnings++;
        else if (st) check_fail(k, "%s", e.message);
    }
    snprintf(k->summary, sizeof k->summary, "%zu imports name a dependent dylib%s", x.v.len,
             set ? " and resolve under the root" : " (pass --root to resolve them)");
    dk_imageset_close(set);
    cli_vec_free(&x.v);
}

static void emit_check(out *o, const check *k)
{
    if (o->json) {
        o_obj(o, NULL);
        o_str(o, "name", k->name);
        o_bool(o, "ok", k->failed == 0);
        o_u64(o, "count", k->count);
        o_u64(o, "failed", k->failed);
        o_u64(o, "warnings", k->warnings);
        o_str(o, "summary", k->summary);
        o_arr(o, "failures");
        for (size_t i = 0; i < k->nshown; i++) o_str(o, NULL, k->shown[i]);
        o_arr_end(o);
        o_obj_end(o);
        return;
    }
    o_printf(o, "%s%-4s%s  %-8s %s", k->failed ? c_warn(o) : c_sym(o), k->failed ? "FAIL" : "ok", c_off(o), k->name, k->summary);
    if (k->failed) o_printf(o, " — %zu of %zu fail", k->failed, k->count);
    if (k->warnings) o_printf(o, " (%zu warning%s)", k->warnings, k->warnings == 1 ? "" : "s");
    o_printf(o, "\n");
    for (size_t i = 0; i < k->nshown; i++) o_printf(o, "        %s\n", k->shown[i]);
    if (k->failed > k->nshown) o_printf(o, "        ... and %zu more\n", k->failed - k->nshown);
}

static dk_status do_verify(cli *c, dk_macho *m, const dk_slice *sl, dk_error *err)
{
    (void)sl;
    out *o = &c->o;
    check k[6];
    memset(k, 0, sizeof k);
    k[0].name = "header";
    k[1].name = "fixups";
    k[2].name = "binds";
    k[3].name = "stubs";
    k[4].name = "selrefs";
    k[5].name = "code";
    /* header: a standalone image must not claim to live in a dyld cache */
    k[0].count = 1;
    if (dk_macho_header(m)->flags & 0x80000000u) check_fail(&k[0], "MH_DYLIB_IN_CACHE is set in a standalone image");
    snprintf(k[0].summary, sizeof k[0].summary, "mach header and load commands valid");
    verify_ctx v = {m, &k[1], 0, NULL};
    v.segs = dk_macho_segments(m, &v.nsegs);
    dk_status st = dk_macho_foreach_fixup(m, verify_fixup, &v, err);
    if (st) return st; /* a fixup stream that does not decode is malformed input */
    snprintf(k[1].summary, sizeof k[1].summary, "%zu fixups land in writable or data-const segments", k[1].count);
    verify_binds(c, m, &k[2], err);
    vstub_ctx vs = {m, &k[3]};
    if ((st = dk_macho_foreach_stub(m, verify_stub, &vs, err))) return st;
    snprintf(k[3].summary, sizeof k[3].summary, "%zu stubs load their own slots", k[3].count);
    verify_selrefs(m, &k[4]);
    snprintf(k[4].summary, sizeof k[4].summary, "%zu selector references point at this image's selector strings", k[4].count);
    vcode_ctx vc = {&k[5], NULL, 0};
    vc.segs = dk_macho_segments(m, &vc.nsegs);
    if ((st = dk_macho_foreach_code_ref(m, verify_code_ref, &vc, err))) return st;
    snprintf(k[5].summary, sizeof k[5].summary, "%zu PC-relative references in arm64 code land in this image", k[5].count);
    size_t failed = 0;
    if (o->json) o_arr(o, "checks");
    for (int i = 0; i < 6; i++) {
        emit_check(o, &k[i]);
        failed += k[i].failed != 0;
    }
    if (o->json) {
        o_arr_end(o);
        o_bool(o, "ok", failed == 0);
    }
    if (failed) cli_finding(c, "%zu check%s failed", failed, failed == 1 ? "" : "s");
    return DK_OK;
}

static int cmd_verify(cli *c)
{
    if (c->npos != 1) return cli_usage(c, "verify takes one FILE");
    return cli_each_slice(c, do_verify);
}

const command cmds_stubs[] = {
    {"stubs", cmd_stubs, "[--json] [--arch A] FILE", MACHO_OPTS, "every stub: slot, symbol, binding, stub helper",
     "Decode every stub (__stubs, __auth_stubs, __symbol_stub, __picsymbolstub4,\n"
     "__objc_stubs) from its instructions to the pointer slot it jumps through,\n"
     "with the symbol (indirect symbol table), the binding of the slot and, for\n"
     "lazy stubs, the __stub_helper entry and the lazy-bind offset it pushes\n"
     "(checked against the lazy-bind info).\n"},
    {"resolve", cmd_resolve, "[--json] [--arch A] [--root DIR] [-L DIR]... FILE SYMBOL | --all FILE",
     MACHO_OPTS ",root=,L=,all", "follow an import to the image and address that define it",
     "Walk what dyld does to bind SYMBOL: stub -> slot -> stub helper -> lazy\n"
     "bind -> ordinal -> dylib (install name, @rpath, @loader_path,\n"
     "@executable_path under --root DIR) -> export trie, through re-exports and\n"
     "umbrellas, to the defining image and address.  --all resolves every import\n"
     "and lists the unresolved ones (exit 1 if any non-weak import is missing).\n"},
    {"verify", cmd_verify, "[--json] [--arch A] [--root DIR] [-L DIR]... FILE", MACHO_OPTS ",root=,L=",
     "static checks that an image is loadable",
     "Check that every fixup lands in a writable or data-const segment, every\n"
     "bind names a dependent dylib (and, with --root, that it exports the\n"
     "symbol), every stub loads its own slot, every selector reference\n"
     "points at a selector string of this image, and (arm64) every ADRP, ADR\n"
     "and literal load in code addresses this image.  Exit 1 if any check fails.\n"},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
