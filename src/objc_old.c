/*
 * Objective-C 1 (the "fragile" runtime of 32-bit macOS) metadata in the __OBJC
 * segment, following objc4's objc-runtime-old.h and objc-file-old.h.  All
 * pointers are 32-bit:
 *
 *   __module_info  objc_module  { version, size, name, symtab }
 *                  objc_symtab  { sel_ref_cnt, refs, u16 cls_def_cnt, u16 cat_def_cnt,
 *                                 defs[cls_def_cnt + cat_def_cnt] }
 *   __class, __meta_class
 *                  old_class    { isa, super_class (a name string), name, version, info,
 *                                 instance_size, ivars, methodLists, cache, protocols }
 *                  old_ivar_list   { int count, old_ivar { name, type, int offset }[] }
 *                  old_method_list { obsolete, int count, old_method { name, types, imp }[] }
 *                  methodLists is one list, or with CLS_METHOD_ARRAY (0x100) an array
 *                  of lists ended by NULL or -1.
 *   __category     old_category { category_name, class_name, instance_methods,
 *                                 class_methods, protocols, [u32 size, instance_properties] }
 *   __protocol     old_protocol { isa, protocol_name, protocol_list, instance_methods,
 *                                 class_methods }  (method lists are
 *                                 objc_method_description_list { int count, { name, types }[] })
 *                  old_protocol_list { next, long count, old_protocol *list[] }
 *                  old_protocol_ext { size, optional_instance_methods,
 *                                 optional_class_methods, instance_properties }, found
 *                                 through old_protocol.isa (on disk)
 *   __message_refs selector references; __cls_refs class-name references;
 *   __image_info   objc_image_info
 */
#include "objc_internal.h"

#include <stdio.h>

#define CLS_METHOD_ARRAY 0x100
#define OBJC1_MAX_METHOD_LISTS 4096  /* entries of one methodLists array */
#define OBJC1_MAX_PROTOCOL_HOPS 4096 /* old_protocol_list.next links */

static const dk_section *objc1_section(const dk_macho *m, const char *sectname)
{
    return dk_macho_find_section(m, "__OBJC", sectname);
}

bool dk__objc1_present(const dk_macho *m)
{
    static const char *const names[] = {"__module_info", "__class", "__category", "__protocol", "__image_info",
                                        "__message_refs", "__cls_refs", NULL};
    for (const char *const *n = names; *n; n++)
        if (objc1_section(m, *n)) return true;
    return false;
}

/* old_method_list or objc_method_description_list (DESCRIPTION: no obsolete field, no imp). */
static dk_status old_method_list(objc_parse *p, uint64_t list, bool description, dk_vec *acc)
{
    const char *what = description ? "objc_method_description_list" : "old_method_list";
    uint64_t hdr = description ? 4 : 8, esize = description ? 8 : 12;
    const uint8_t *b;
    dk_status st = objc_struct(p, what, list, hdr, &b);
    if (st) return st;
    int32_t count = (int32_t)objc_u32(p, b + hdr - 4);
    if (count < 0 || !objc_bytes(p, list + hdr, (uint64_t)count * esize))
        return objc_bad(p, what, list, "count %d runs past the end of the file-backed data", count);
    st = objc_charge(p, (uint64_t)count, what, list);
    if (st) return st;
    for (int32_t i = 0; i < count; i++) {
        uint64_t e = list + hdr + (uint64_t)i * esize;
        dk_objc_method *mt = dk_vec_push(acc, sizeof *mt);
        if (!mt) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
        memset(mt, 0, sizeof *mt);
        st = objc_string_ptr(p, description ? "objc_method_description.name" : "old_method.method_name", e, &mt->name);
        if (st) return st;
        if (!mt->name) return objc_bad(p, what, e, "selector is null");
        st = objc_string_ptr(p, description ? "objc_method_description.types" : "old_method.method_types", e + 4,
                             &mt->types);
        if (st) return st;
        if (!description) {
            objc_ptr imp;
            st = objc_pointer(p, "old_method.method_imp", e + 8, &imp);
            if (st) return st;
            if (imp.kind == OBJC_PTR_LOCAL) {
                mt->imp = imp.addr;
                mt->has_imp = true;
            } else if (imp.kind == OBJC_PTR_BOUND) {
                mt->imp_symbol = imp.symbol;
            }
        }
    }
    return DK_OK;
}

static dk_status finish_methods(objc_parse *p, dk_vec *acc, uint64_t address, dk_objc_methods *out)
{
    memset(out, 0, sizeof *out);
    out->address = address;
    out->entsize = 12;
    dk_objc_method *items = objc_alloc(p, acc->len, sizeof *items);
    if (!items) {
        dk_vec_free(acc);
        return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    }
    if (acc->len) memcpy(items, acc->data, acc->len * sizeof *items);
    out->items = items;
    out->count = acc->len;
    dk_vec_free(acc);
    return DK_OK;
}

/* The method list(s) of old_class.methodLists at FIELD. */
static dk_status class_methods(objc_parse *p, uint64_t field, uint32_t info, dk_objc_methods *out)
{
    objc_ptr ptr;
    dk_status st = objc_pointer(p, "old_class.methodLists", field, &ptr);
    if (st) return st;
    memset(out, 0, sizeof *out);
    if (ptr.kind != OBJC_PTR_LOCAL) return DK_OK;
    dk_vec acc = {0};
    if (!(info & CLS_METHOD_ARRAY)) {
        st = old_method_list(p, ptr.addr, false, &acc);
    } else {
        for (unsigned i = 0;; i++) {
            if (i >= OBJC1_MAX_METHOD_LISTS) {
                st = objc_bad(p, "old_class.methodLists", ptr.addr, "more than %u method lists", OBJC1_MAX_METHOD_LISTS);
                break;
            }
            const uint8_t *b = objc_bytes(p, ptr.addr + 4ull * i, 4);
            if (!b) {
                st = objc_bad(p, "old_class.methodLists", ptr.addr, "array runs past the end of the file");
                break;
            }
            uint32_t v = objc_u32(p, b);
            if (v == 0 || v == 0xffffffffu) break; /* END_OF_METHODS_LIST */
            objc_ptr lp;
            st = objc_pointer(p, "old_class.methodLists[]", ptr.addr + 4ull * i, &lp);
            if (st || lp.kind != OBJC_PTR_LOCAL) break;
            st = old_method_list(p, lp.addr, false, &acc);
            if (st) break;
        }
    }
    if (st) {
        dk_vec_free(&acc);
        return st;
    }
    return finish_methods(p, &acc, ptr.addr, out);
}

static dk_status described_methods(objc_parse *p, const char *what, uint64_t field, dk_objc_methods *out)
{
    objc_ptr ptr;
    dk_status st = objc_pointer(p, what, field, &ptr);
    if (st) return st;
    memset(out, 0, sizeof *out);
    if (ptr.kind != OBJC_PTR_LOCAL) return DK_OK;
    dk_vec acc = {0};
    st = old_method_list(p, ptr.addr, true, &acc);
    if (st) {
        dk_vec_free(&acc);
        return st;
    }
    st = finish_methods(p, &acc, ptr.addr, out);
    out->entsize = 8;
    return st;
}

/* old_protocol_list chain at FIELD: the names of the protocols it lists. */
static dk_status protocol_names(objc_parse *p, const char *what, uint64_t field, dk_objc_refs *out)
{
    memset(out, 0, sizeof *out);
    objc_ptr ptr;
    dk_status st = objc_pointer(p, what, field, &ptr);
    if (st) return st;
    if (ptr.kind != OBJC_PTR_LOCAL) return DK_OK;
    out->address = ptr.addr;
    dk_vec acc = {0};
    uint64_t list = ptr.addr;
    for (unsigned hop = 0; list && !st; hop++) {
        if (hop >= OBJC1_MAX_PROTOCOL_HOPS) {
            st = objc_bad(p, "old_protocol_list.next", list, "chain of more than %u lists (loops?)", OBJC1_MAX_PROTOCOL_HOPS);
            break;
        }
        const uint8_t *b;
        st = objc_struct(p, "old_protocol_list", list, 8, &b);
        if (st) break;
        int32_t count = (int32_t)objc_u32(p, b + 4);
        if (count < 0 || !objc_bytes(p, list + 8, (uint64_t)count * 4)) {
            st = objc_bad(p, "old_protocol_list", list, "count %d runs past the end of the file-backed data", count);
            break;
        }
        st = objc_charge(p, (uint64_t)count, "old_protocol_list", list);
        for (int32_t i = 0; i < count && !st; i++) {
            dk_objc_ref *r = dk_vec_push(&acc, sizeof *r);
            if (!r) {
                st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
                break;
            }
            memset(r, 0, sizeof *r);
            objc_ptr pp;
            st = objc_pointer(p, "old_protocol_list.list[]", list + 8 + 4ull * i, &pp);
            if (st) break;
            if (pp.kind == OBJC_PTR_BOUND) {
                r->external = true;
                r->symbol = r->name = pp.symbol;
            } else if (pp.kind == OBJC_PTR_LOCAL) {
                r->address = pp.addr;
                st = objc_struct(p, "old_protocol", pp.addr, 20, &b);
                if (!st) st = objc_string_ptr(p, "old_protocol.protocol_name", pp.addr + 4, &r->name);
            }
        }
        if (st) break;
        objc_ptr next;
        st = objc_pointer(p, "old_protocol_list.next", list, &next);
        if (st) break;
        list = next.kind == OBJC_PTR_LOCAL ? next.addr : 0;
    }
    if (!st) {
        dk_objc_ref *items = objc_alloc(p, acc.len, sizeof *items);
        if (!items) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
        else {
            if (acc.len) memcpy(items, acc.data, acc.len * sizeof *items);
            out->items = items;
            out->count = acc.len;
        }
    }
    dk_vec_free(&acc);
    return st;
}

static dk_status old_properties(objc_parse *p, const char *what, uint64_t field, dk_objc_properties *out)
{
    memset(out, 0, sizeof *out);
    objc_ptr ptr;
    dk_status st = objc_pointer(p, what, field, &ptr);
    if (st) return st;
    if (ptr.kind != OBJC_PTR_LOCAL) return DK_OK;
    const uint8_t *b;
    st = objc_struct(p, "old_property_list", ptr.addr, 8, &b);
    if (st) return st;
    uint32_t entsize = objc_u32(p, b), count = objc_u32(p, b + 4);
    if (entsize < 8) return objc_bad(p, "old_property_list", ptr.addr, "entsize %u is smaller than a property (8)", entsize);
    if (!objc_bytes(p, ptr.addr + 8, (uint64_t)entsize * count))
        return objc_bad(p, "old_property_list", ptr.addr, "count %u * entsize %u runs past the end of the file-backed data",
                        count, entsize);
    st = objc_charge(p, count, "old_property_list", ptr.addr);
    if (st) return st;
    dk_objc_property *items = objc_alloc(p, count, sizeof *items);
    if (!items) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    out->address = ptr.addr;
    out->entsize = entsize;
    out->items = items;
    out->count = count;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t e = ptr.addr + 8 + (uint64_t)i * entsize;
        st = objc_string_ptr(p, "old_property.name", e, &items[i].name);
        if (!st && !items[i].name) st = objc_bad(p, "old_property", e, "name is null");
        if (!st) st = objc_string_ptr(p, "old_property.attributes", e + 4, &items[i].attributes);
        if (st) return st;
    }
    return DK_OK;
}

static dk_status old_ivars(objc_parse *p, uint64_t field, dk_objc_ivars *out)
{
    memset(out, 0, sizeof *out);
    objc_ptr ptr;
    dk_status st = objc_pointer(p, "old_class.ivars", field, &ptr);
    if (st) return st;
    if (ptr.kind != OBJC_PTR_LOCAL) return DK_OK;
    const uint8_t *b;
    st = objc_struct(p, "old_ivar_list", ptr.addr, 4, &b);
    if (st) return st;
    int32_t count = (int32_t)objc_u32(p, b);
    if (count < 0 || !objc_bytes(p, ptr.addr + 4, (uint64_t)count * 12))
        return objc_bad(p, "old_ivar_list", ptr.addr, "count %d runs past the end of the file-backed data", count);
    st = objc_charge(p, (uint64_t)count, "old_ivar_list", ptr.addr);
    if (st) return st;
    dk_objc_ivar *items = objc_alloc(p, (size_t)count, sizeof *items);
    if (!items) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    out->address = ptr.addr;
    out->entsize = 12;
    out->items = items;
    out->count = (size_t)count;
    for (int32_t i = 0; i < count; i++) {
        uint64_t e = ptr.addr + 4 + 12ull * i;
        st = objc_string_ptr(p, "old_ivar.ivar_name", e, &items[i].name);
        if (!st) st = objc_string_ptr(p, "old_ivar.ivar_type", e + 4, &items[i].type);
        if (st) return st;
        items[i].offset = objc_u32(p, objc_bytes(p, e + 8, 4));
        items[i].has_offset = true;
        items[i].alignment_raw = ~0u;
    }
    return DK_OK;
}

/* old_class at CLS and its metaclass (isa). */
static dk_status old_class(objc_parse *p, uint64_t cls, dk_objc_class *c)
{
    const uint8_t *b;
    dk_status st = objc_struct(p, "old_class", cls, 40, &b);
    if (st) return st;
    c->address = cls;
    c->classlist = true;
    st = objc_string_ptr(p, "old_class.name", cls + 8, &c->name);
    if (st) return st;
    if (!c->name) return objc_bad(p, "old_class", cls, "name is null");
    /* super_class holds the superclass's name until the runtime connects the class */
    st = objc_string_ptr(p, "old_class.super_class", cls + 4, &c->superclass.name);
    if (st) return st;
    c->version = objc_u32(p, b + 12);
    c->info = objc_u32(p, b + 16);
    c->instance_size = objc_u32(p, b + 20);
    st = old_ivars(p, cls + 24, &c->ivars);
    if (!st) st = class_methods(p, cls + 28, c->info, &c->instance_methods);
    if (!st) st = protocol_names(p, "old_class.protocols", cls + 36, &c->protocols);
    if (st) return st;
    objc_ptr isa;
    st = objc_pointer(p, "old_class.isa", cls, &isa);
    if (st) return st;
    if (isa.kind == OBJC_PTR_LOCAL) {
        const uint8_t *mb;
        st = objc_struct(p, "old_class (metaclass)", isa.addr, 40, &mb);
        if (st) return st;
        c->metaclass.address = isa.addr;
        c->metaclass.name = c->name;
        c->meta_data = isa.addr;
        c->meta_flags = objc_u32(p, mb + 16);
        st = class_methods(p, isa.addr + 28, c->meta_flags, &c->class_methods);
        if (st) return st;
    }
    return DK_OK;
}

static dk_status old_category(objc_parse *p, uint64_t cat, dk_objc_category *c)
{
    const uint8_t *b;
    dk_status st = objc_struct(p, "old_category", cat, 20, &b);
    if (st) return st;
    c->address = cat;
    st = objc_string_ptr(p, "old_category.category_name", cat, &c->name);
    if (!st && !c->name) st = objc_bad(p, "old_category", cat, "name is null");
    if (!st) st = objc_string_ptr(p, "old_category.class_name", cat + 4, &c->cls.name);
    if (!st) st = class_methods(p, cat + 8, 0, &c->instance_methods);
    if (!st) st = class_methods(p, cat + 12, 0, &c->class_methods);
    if (!st) st = protocol_names(p, "old_category.protocols", cat + 16, &c->protocols);
    if (st) return st;
    const uint8_t *ext = objc_bytes(p, cat, 28);
    if (ext && objc_u32(p, ext + 20) >= 28) st = old_properties(p, "old_category.instance_properties", cat + 24, &c->properties);
    return st;
}

static dk_status old_protocol(objc_parse *p, uint64_t proto, dk_objc_protocol *pr)
{
    const uint8_t *b;
    dk_status st = objc_struct(p, "old_protocol", proto, 20, &b);
    if (st) return st;
    pr->address = proto;
    st = objc_string_ptr(p, "old_protocol.protocol_name", proto + 4, &pr->name);
    if (!st && !pr->name) st = objc_bad(p, "old_protocol", proto, "name is null");
    if (!st) st = protocol_names(p, "old_protocol.protocol_list", proto + 8, &pr->protocols);
    if (!st) st = described_methods(p, "old_protocol.instance_methods", proto + 12, &pr->instance_methods);
    if (!st) st = described_methods(p, "old_protocol.class_methods", proto + 16, &pr->class_methods);
    if (st) return st;
    pr->size = 20;
    /*
     * On disk, isa points at the protocol's old_protocol_ext (the runtime moves it to a
     * side table and sets isa to Protocol); its first field is its own size.
     */
    objc_ptr isa;
    st = objc_pointer(p, "old_protocol.isa", proto, &isa);
    if (st) return st;
    const uint8_t *e = isa.kind == OBJC_PTR_LOCAL ? objc_bytes(p, isa.addr, 4) : NULL;
    uint32_t size = e ? objc_u32(p, e) : 0;
    if (size >= 8 && size <= 256 && objc_bytes(p, isa.addr, size)) {
        pr->size = 20 + size;
        st = described_methods(p, "old_protocol_ext.optional_instance_methods", isa.addr + 4,
                               &pr->optional_instance_methods);
        if (!st && size >= 12)
            st = described_methods(p, "old_protocol_ext.optional_class_methods", isa.addr + 8, &pr->optional_class_methods);
        if (!st && size >= 16) st = old_properties(p, "old_protocol_ext.instance_properties", isa.addr + 12, &pr->properties);
    }
    return st;
}

/* Pointer-sized entries of __OBJC,SECT. */
static dk_status section_entries(objc_parse *p, const char *sect, uint64_t esize, const dk_section **s, uint64_t *n)
{
    *s = objc1_section(p->m, sect);
    *n = 0;
    if (!*s) return DK_OK;
    *n = (*s)->size / esize;
    if (*n && !objc_bytes(p, (*s)->addr, *n * esize)) {
        char what[48];
        snprintf(what, sizeof what, "section (__OBJC,%s)", sect);
        return objc_bad(p, what, (*s)->addr, "%llu bytes of content not inside the file", (unsigned long long)(*s)->size);
    }
    return objc_charge(p, *n, sect, (*s)->addr);
}

dk_status dk__objc1_parse(objc_parse *p)
{
    dk_objc *o = p->o;
    if (p->ps != 4) return dk_fail(p->err, DK_E_UNSUPPORTED, "__OBJC segment in a 64-bit image (objc1 is 32-bit only)");
    const dk_section *s;
    uint64_t n;

    dk_status st = section_entries(p, "__image_info", 8, &s, &n);
    if (st) return st;
    if (n) {
        const uint8_t *b = objc_bytes(p, s->addr, 8);
        o->image_info.present = true;
        o->image_info.address = s->addr;
        o->image_info.version = objc_u32(p, b);
        o->image_info.flags = objc_u32(p, b + 4);
    }

    /* modules -> symtabs -> class and category definitions */
    dk_vec classes = {0}, cats = {0};
    st = section_entries(p, "__module_info", 16, &s, &n);
    for (uint64_t i = 0; !st && i < n; i++) {
        uint64_t mod = s->addr + 16 * i;
        objc_ptr sym;
        st = objc_pointer(p, "objc_module.symtab", mod + 12, &sym);
        if (st || sym.kind != OBJC_PTR_LOCAL) continue;
        const uint8_t *b;
        st = objc_struct(p, "objc_symtab", sym.addr, 12, &b);
        if (st) break;
        uint32_t ncls = objc_u16(p, b + 8), ncat = objc_u16(p, b + 10);
        if (!objc_bytes(p, sym.addr + 12, 4ull * (ncls + ncat))) {
            st = objc_bad(p, "objc_symtab", sym.addr, "%u class + %u category definitions run past the end of the file",
                          ncls, ncat);
            break;
        }
        st = objc_charge(p, ncls + ncat, "objc_symtab", sym.addr);
        for (uint32_t k = 0; !st && k < ncls + ncat; k++) {
            objc_ptr def;
            st = objc_pointer(p, "objc_symtab.defs[]", sym.addr + 12 + 4ull * k, &def);
            if (st || def.kind != OBJC_PTR_LOCAL) continue;
            uint64_t *slot = dk_vec_push(k < ncls ? &classes : &cats, sizeof *slot);
            if (!slot) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
            else *slot = def.addr;
        }
    }
    if (!st) {
        o->classes = objc_alloc(p, classes.len, sizeof *o->classes);
        o->categories = objc_alloc(p, cats.len, sizeof *o->categories);
        if (!o->classes || !o->categories) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; !st && i < classes.len; i++) {
        st = old_class(p, ((uint64_t *)classes.data)[i], &o->classes[i]);
        if (!st) o->nclasses = i + 1;
    }
    for (size_t i = 0; !st && i < cats.len; i++) {
        st = old_category(p, ((uint64_t *)cats.data)[i], &o->categories[i]);
        if (!st) o->ncategories = i + 1;
    }
    dk_vec_free(&classes);
    dk_vec_free(&cats);
    if (st) return st;

    /* superclass names resolve to classes of this image where they can (names, no loops to walk) */
    o->by_addr = objc_alloc(p, o->nclasses, sizeof *o->by_addr);
    if (!o->by_addr) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < o->nclasses; i++) {
        o->by_addr[i].address = o->classes[i].address;
        o->by_addr[i].index = i;
    }
    for (size_t i = 1; i < o->nclasses; i++) /* insertion sort: objc1 images have few classes */
        for (size_t j = i; j > 0 && o->by_addr[j - 1].address > o->by_addr[j].address; j--) {
            struct objc_addr_index t = o->by_addr[j];
            o->by_addr[j] = o->by_addr[j - 1];
            o->by_addr[j - 1] = t;
        }
    o->nby_addr = o->nclasses;
    for (size_t i = 0; i < o->nclasses; i++) {
        dk_objc_ref *r = &o->classes[i].superclass;
        if (!r->name) continue;
        r->external = true;
        for (size_t k = 0; k < o->nclasses; k++)
            if (strcmp(o->classes[k].name, r->name) == 0) {
                r->address = o->classes[k].address;
                r->external = false;
                break;
            }
    }

    st = section_entries(p, "__protocol", 20, &s, &n);
    if (st) return st;
    o->protocols = objc_alloc(p, n, sizeof *o->protocols);
    if (!o->protocols) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        st = old_protocol(p, s->addr + 20 * i, &o->protocols[i]);
        if (st) return st;
        o->nprotocols = i + 1;
    }

    st = section_entries(p, "__message_refs", 4, &s, &n);
    if (st) return st;
    o->selrefs = objc_alloc(p, n, sizeof *o->selrefs);
    if (!o->selrefs) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        dk_objc_selref *r = &o->selrefs[i];
        r->address = s->addr + 4 * i;
        objc_ptr ptr;
        st = objc_pointer(p, "__message_refs entry", r->address, &ptr);
        if (!st && ptr.kind == OBJC_PTR_LOCAL) {
            r->target = ptr.addr;
            st = objc_string(p, "selector", ptr.addr, &r->selector);
        }
        if (st) return st;
        o->nselrefs = i + 1;
    }

    st = section_entries(p, "__cls_refs", 4, &s, &n);
    if (st) return st;
    o->classrefs = objc_alloc(p, n, sizeof *o->classrefs);
    if (!o->classrefs) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        dk_objc_xref *x = &o->classrefs[i];
        x->address = s->addr + 4 * i;
        st = objc_string_ptr(p, "__cls_refs entry", x->address, &x->ref.name);
        if (st) return st;
        o->nclassrefs = i + 1;
    }
    return DK_OK;
}
