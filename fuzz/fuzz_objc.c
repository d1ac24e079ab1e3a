/*
 * Objective-C metadata (objc2 __objc_* sections and objc1 __OBJC): classes
 * and metaclasses, method / ivar / property / protocol lists (relative method
 * lists included), categories, selector and class references, image info --
 * every pointer read through the fixups.  The last input byte picks a
 * selector base for relative method lists with direct selectors.
 */
#include "fuzz.h"

static void methods(const dk_objc_methods *l)
{
    for (size_t i = 0; i < l->count; i++) {
        fz_str(l->items[i].name);
        fz_str(l->items[i].types);
        fz_str(l->items[i].imp_symbol);
        fz_sink += l->items[i].imp;
    }
}

static void props(const dk_objc_properties *l)
{
    for (size_t i = 0; i < l->count; i++) {
        fz_str(l->items[i].name);
        fz_str(l->items[i].attributes);
    }
}

static void ref(const dk_objc_ref *r)
{
    fz_str(r->name);
    fz_str(r->symbol);
}

static void refs(const dk_objc_refs *l)
{
    for (size_t i = 0; i < l->count; i++) ref(&l->items[i]);
}

static void xrefs(const dk_objc_xref *x, size_t n)
{
    for (size_t i = 0; i < n; i++) ref(&x[i].ref);
}

static dk_objc_options opts;

static void walk(dk_macho *m)
{
    dk_error e = {0};
    dk_objc *o;
    dk_status st = dk_objc_open(m, &opts, &o, &e);
    fz_check(st, &e);
    if (st) return;
    char buf[256];
    size_t n;
    fz_sink += dk_objc_get_abi(o);
    const dk_objc_image_info *ii = dk_objc_get_image_info(o);
    if (ii) fz_sink += dk_objc_image_flags_string(ii->flags, " ", buf, sizeof buf);
    const dk_objc_class *c = dk_objc_classes(o, &n);
    for (size_t i = 0; i < n; i++) {
        fz_str(c[i].name);
        ref(&c[i].superclass);
        ref(&c[i].metaclass);
        fz_sink += dk_objc_ro_flags_string(c[i].flags, " ", buf, sizeof buf);
        methods(&c[i].instance_methods);
        methods(&c[i].class_methods);
        refs(&c[i].protocols);
        for (size_t k = 0; k < c[i].ivars.count; k++) {
            fz_str(c[i].ivars.items[k].name);
            fz_str(c[i].ivars.items[k].type);
        }
        props(&c[i].properties);
        props(&c[i].class_properties);
        if (dk_objc_class_index(o, c[i].address) < 0) abort(); /* a listed class is found by address */
    }
    const dk_objc_protocol *p = dk_objc_protocols(o, &n);
    for (size_t i = 0; i < n; i++) {
        fz_str(p[i].name);
        refs(&p[i].protocols);
        methods(&p[i].instance_methods);
        methods(&p[i].class_methods);
        methods(&p[i].optional_instance_methods);
        methods(&p[i].optional_class_methods);
        props(&p[i].properties);
        props(&p[i].class_properties);
    }
    const dk_objc_category *cat = dk_objc_categories(o, &n);
    for (size_t i = 0; i < n; i++) {
        fz_str(cat[i].name);
        ref(&cat[i].cls);
        methods(&cat[i].instance_methods);
        methods(&cat[i].class_methods);
        refs(&cat[i].protocols);
        props(&cat[i].properties);
        props(&cat[i].class_properties);
    }
    const dk_objc_selref *s = dk_objc_selrefs(o, &n);
    for (size_t i = 0; i < n; i++) fz_str(s[i].selector);
    const dk_objc_xref *x = dk_objc_classrefs(o, &n);
    xrefs(x, n);
    x = dk_objc_superrefs(o, &n);
    xrefs(x, n);
    x = dk_objc_protorefs(o, &n);
    xrefs(x, n);
    dk_objc_close(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&opts, 0, sizeof opts);
    if (size && (data[size - 1] & 1)) {
        opts.has_selector_base = true;
        opts.selector_base = 0x4000ull * data[size - 1];
    }
    fz_each_macho(data, size, walk);
    return 0;
}
