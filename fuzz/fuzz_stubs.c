/*
 * Stubs: every S_SYMBOL_STUBS / __objc_stubs entry decoded to its slot, the
 * slot's binding, the lazy-binding helper and lazy-bind record; lookups by
 * symbol; and symbol resolution through an image set holding only this image
 * (no file system: flat, weak, self and main-image lookups and re-export
 * chains inside the image).
 */
#include "fuzz.h"

typedef struct syms {
    char *s[8];
    int ord[8];
    size_t n;
} syms;

static int stub_cb(void *ctx, const dk_stub *s)
{
    syms *x = ctx;
    fz_str(dk_stub_kind_name(s->kind));
    fz_str(s->symbol);
    fz_str(s->dylib);
    fz_str(s->bind_symbol);
    fz_str(s->selector);
    fz_sink += s->address + s->slot + s->target + s->helper + s->lazy_bind_offset;
    if (s->symbol && x->n < 8 && (x->s[x->n] = strdup(s->symbol))) x->ord[x->n++] = s->bound ? s->ordinal : 0;
    return 0;
}

static int hop_cb(void *ctx, const dk_hop *h)
{
    (void)ctx;
    fz_str(h->install_name);
    fz_str(h->path);
    fz_str(h->symbol);
    fz_sink += h->address + (uint64_t)h->ordinal;
    return 0;
}

static int code_ref_cb(void *ctx, const dk_code_ref *r)
{
    (void)ctx;
    fz_sink += r->address + r->target + (uint64_t)r->kind + (uint64_t)r->section;
    return 0;
}

static void walk(dk_macho *m)
{
    dk_error e = {0};
    syms x = {{0}, {0}, 0};
    dk_status st = dk_macho_foreach_stub(m, stub_cb, &x, &e);
    /* checking only (no callback) finds exactly what the full walk finds */
    dk_error e2 = {0};
    dk_status st2 = dk_macho_foreach_stub(m, NULL, NULL, &e2);
    if (st2 != st || (st && strcmp(e.message, e2.message) != 0)) abort();
    fz_check(st, &e);
    dk_error e3 = {0};
    fz_check(dk_macho_foreach_code_ref(m, code_ref_cb, NULL, &e3), &e3);
    dk_imageset_opts o;
    memset(&o, 0, sizeof o);
    o.no_filesystem = true;
    dk_imageset *set = NULL;
    int idx = -1;
    if (dk_imageset_new(&o, &set, &e) == DK_OK) {
        st = dk_imageset_add_macho(set, m, "fuzz-input", &idx, &e);
        fz_check(st, &e);
        if (st == DK_OK) fz_check(dk_imageset_load_all(set, idx, &e), &e);
    }
    for (size_t i = 0; i < x.n; i++) {
        dk_stub s;
        st = dk_macho_find_stub(m, x.s[i], &s, &e);
        fz_check(st, &e);
        if (set && idx >= 0) {
            dk_resolved r;
            for (int ord = -3; ord <= 1; ord++) fz_check(dk_imageset_resolve(set, idx, ord, x.s[i], hop_cb, NULL, &r, &e), &e);
            fz_check(dk_imageset_resolve(set, idx, x.ord[i], x.s[i], hop_cb, NULL, &r, &e), &e);
            fz_check(dk_imageset_find_export(set, idx, x.s[i], hop_cb, NULL, &r, &e), &e);
        }
        free(x.s[i]);
    }
    dk_stub s;
    fz_check(dk_macho_find_stub(m, "_printf", &s, &e), &e);
    dk_imageset_close(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_each_macho(data, size, walk);
    return 0;
}
