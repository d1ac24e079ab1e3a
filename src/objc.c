/*
 * Objective-C (objc2) metadata, following objc4's objc-runtime-new.h:
 *
 *   class_t          { isa, superclass, cache, vtable, bits }            5 pointers
 *   class_ro_t       { u32 flags, instanceStart, instanceSize, [u32 reserved on LP64],
 *                      ivarLayout, name, baseMethods, baseProtocols, ivars,
 *                      weakIvarLayout, baseProperties }
 *   method_list_t    { u32 entsizeAndFlags, u32 count } + entries:
 *                      big   { SEL name, char *types, IMP imp }          3 pointers
 *                      small { i32 name, i32 types, i32 imp }            offsets from each field;
 *                      name -> a selref (or, flag 0x40000000 in the dyld cache, an
 *                      offset from the cache's selector base)
 *   ivar_list_t      { u32 entsize, u32 count } + ivar_t { int32 *offset, name, type,
 *                      u32 alignment_raw, u32 size }
 *   property_list_t  { u32 entsize, u32 count } + property_t { name, attributes }
 *   protocol_list_t  { uintptr count } + protocol_t *list[count]
 *   protocol_t       { isa, mangledName, protocols, instanceMethods, classMethods,
 *                      optionalInstanceMethods, optionalClassMethods, instanceProperties,
 *                      u32 size, u32 flags, extendedMethodTypes, demangledName,
 *                      classProperties }   (fields after flags only when size covers them)
 *   category_t       { name, cls, instanceMethods, classMethods, protocols,
 *                      instanceProperties, classProperties }  (the last only with
 *                      OBJC_IMAGE_HAS_CATEGORY_CLASS_PROPERTIES)
 *   objc_image_info  { u32 version, u32 flags }
 *
 * A list pointer with bit 0 set is a relative_list_list_t (dyld cache: preattached
 * categories): { u32 entsize, u32 count } + u64 { imageIndex:16, listOffset:48 }.
 *
 * Every pointer goes through dk_macho_read_pointer.  Every list is checked to
 * lie inside file-backed content before it is walked, every entry is charged
 * against a budget (lists of a hostile image may overlap), and superclass
 * chains are checked for loops.
 */
#include "objc_internal.h"

#include <stdarg.h>
#include <stdio.h>

/* ------------------------------------------------------------------ arena */

void *objc_alloc(objc_parse *p, size_t n, size_t size)
{
    size_t bytes;
    if (!dk_mul_ok(n, size, &bytes)) return NULL;
    bytes = (bytes + 15) & ~(size_t)15;
    if (bytes == 0) bytes = 16;
    objc_block *b = p->o->blocks;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = bytes > 65536 ? bytes : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        /* a big one-off block goes behind the current one so the current keeps filling */
        if (bytes > 65536 && p->o->blocks) {
            b->next = p->o->blocks->next;
            p->o->blocks->next = b;
        } else {
            b->next = p->o->blocks;
            p->o->blocks = b;
        }
    }
    void *r = b->data + b->used;
    b->used += bytes;
    memset(r, 0, bytes);
    return r;
}

dk_status objc_charge(objc_parse *p, uint64_t n, const char *what, uint64_t addr)
{
    if (n > p->budget) {
        char w[64];
        return dk_fail(p->err, DK_E_LIMIT, "%s at %s: more Objective-C list entries than the image can hold "
                       "(limit %llu; lists overlap?)", what, objc_where(p, addr, w), (unsigned long long)p->budget);
    }
    p->budget -= n;
    return DK_OK;
}

/* ----------------------------------------------------------------- errors */

const char *objc_where(const objc_parse *p, uint64_t addr, char buf[64])
{
    size_t n;
    const dk_segment *segs = dk_macho_segments(p->m, &n);
    for (size_t i = 0; i < n; i++) {
        const dk_segment *s = &segs[i];
        if (addr >= s->vmaddr && addr - s->vmaddr < s->vmsize) {
            if (addr - s->vmaddr < s->filesize) {
                snprintf(buf, 64, "0x%llx (file offset 0x%llx)", (unsigned long long)addr,
                         (unsigned long long)(s->fileoff + (addr - s->vmaddr)));
            } else {
                snprintf(buf, 64, "0x%llx (%.16s, not in the file)", (unsigned long long)addr, s->segname);
            }
            return buf;
        }
    }
    snprintf(buf, 64, "0x%llx (outside every segment)", (unsigned long long)addr);
    return buf;
}

dk_status objc_bad(objc_parse *p, const char *what, uint64_t addr, const char *fmt, ...)
{
    char w[64], detail[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return dk_fail(p->err, DK_E_MALFORMED, "%s at %s: %s", what, objc_where(p, addr, w), detail);
}

/* ---------------------------------------------------------------- readers */

const uint8_t *objc_bytes(const objc_parse *p, uint64_t addr, uint64_t size)
{
    const uint8_t *b = dk_macho_read(p->m, addr, size);
    if (b) return b;
    const dk_macho *m = p->m;
    if (m->in_cache && m->src.map) {
        /* cache images point into other images of the cache (superclasses, selector strings) */
        uint64_t avail = 0;
        b = m->src.map(m->src.map_ctx, addr, &avail);
        if (b && size <= avail) return b;
    }
    return NULL;
}

/* Bytes available from ADDR to the end of its file-backed content (0 if none). */
static const uint8_t *objc_bytes_avail(const objc_parse *p, uint64_t addr, uint64_t *avail)
{
    const dk_macho *m = p->m;
    for (size_t i = 0; i < m->nsegs; i++) {
        const dk_segment *s = &m->segs[i];
        if (addr < s->vmaddr || addr - s->vmaddr >= s->vmsize) continue;
        uint64_t off = addr - s->vmaddr;
        if (!m->seg_data[i] || off >= m->seg_avail[i]) break;
        *avail = m->seg_avail[i] - off;
        return m->seg_data[i] + off;
    }
    if (m->in_cache && m->src.map) {
        const uint8_t *b = m->src.map(m->src.map_ctx, addr, avail);
        if (b && *avail) return b;
    }
    *avail = 0;
    return NULL;
}

dk_status objc_struct(objc_parse *p, const char *what, uint64_t addr, uint64_t size, const uint8_t **out)
{
    *out = objc_bytes(p, addr, size);
    if (!*out) return objc_bad(p, what, addr, "%llu bytes not inside the file", (unsigned long long)size);
    return DK_OK;
}

/* ------------------------------------------------- relocatable objects */

/*
 * In an MH_OBJECT nothing has been linked: a pointer to another symbol is the
 * stored addend plus a relocation (x86_64/arm64 *_RELOC_UNSIGNED, generic and
 * arm/ppc *_RELOC_VANILLA, all type 0) naming the symbol.  Non-external and
 * scattered relocations already hold the target address in place.
 */
static int cmp_reloc(const void *a, const void *b)
{
    const struct objc_reloc *x = a, *y = b;
    return x->address < y->address ? -1 : x->address > y->address;
}

static dk_status build_relocs(objc_parse *p)
{
    p->relocs_done = true;
    size_t nsect, size;
    const dk_section *s = dk_macho_sections(p->m, &nsect);
    const uint8_t *data = dk_macho_data(p->m, &size);
    dk_vec v = {0};
    for (size_t i = 0; i < nsect; i++) {
        if (!s[i].nreloc) continue;
        if (!dk_range_ok(s[i].reloff, (uint64_t)s[i].nreloc * 8, size)) {
            char what[64];
            snprintf(what, sizeof what, "relocations of (%s,%s)", s[i].segname, s[i].sectname);
            dk_vec_free(&v);
            return dk_fail(p->err, DK_E_MALFORMED, "%s: reloff 0x%x + %u entries past the end of the file", what,
                           s[i].reloff, s[i].nreloc);
        }
        for (uint32_t k = 0; k < s[i].nreloc; k++) {
            const uint8_t *r = data + s[i].reloff + 8ull * k;
            uint32_t a = objc_u32(p, r), w = objc_u32(p, r + 4);
            if (a & 0x80000000u) continue; /* scattered: the value in place is the target */
            uint32_t symbolnum, pcrel, length, ext, type;
            if (p->be) {
                symbolnum = w >> 8, pcrel = (w >> 7) & 1, length = (w >> 5) & 3, ext = (w >> 4) & 1, type = w & 15;
            } else {
                symbolnum = w & 0xffffff, pcrel = (w >> 24) & 1, length = (w >> 25) & 3, ext = (w >> 27) & 1, type = w >> 28;
            }
            if (pcrel || type != 0 || length != (p->ps == 8 ? 3u : 2u)) continue;
            struct objc_reloc *e = dk_vec_push(&v, sizeof *e);
            if (!e) {
                dk_vec_free(&v);
                return dk_fail(p->err, DK_E_NOMEM, "out of memory");
            }
            e->address = s[i].addr + a;
            e->symbolnum = symbolnum;
            e->external = ext != 0;
        }
    }
    if (v.len) qsort(v.data, v.len, sizeof(struct objc_reloc), cmp_reloc);
    p->relocs = v.data;
    p->nrelocs = v.len;
    return DK_OK;
}

/*
 * The pointer relocation at ADDR in an object file: *FOUND when there is one,
 * *SYM the symbol an external one names.
 */
static dk_status object_reloc(objc_parse *p, uint64_t addr, bool *found, const dk_symbol **sym)
{
    *sym = NULL;
    *found = false;
    if (!p->relocs_done) {
        dk_status st = build_relocs(p);
        if (st) return st;
    }
    size_t lo = 0, hi = p->nrelocs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->relocs[mid].address < addr) lo = mid + 1;
        else hi = mid;
    }
    if (lo >= p->nrelocs || p->relocs[lo].address != addr) return DK_OK;
    *found = true;
    if (!p->relocs[lo].external) return DK_OK;
    const dk_symbol *syms;
    size_t nsyms;
    dk_status st = dk_macho_symbols(p->m, &syms, &nsyms, p->err);
    if (st) return st;
    if (p->relocs[lo].symbolnum >= nsyms)
        return objc_bad(p, "relocation", addr, "symbol index %u out of range (%zu symbols)", p->relocs[lo].symbolnum, nsyms);
    *sym = &syms[p->relocs[lo].symbolnum];
    return DK_OK;
}

dk_status objc_pointer(objc_parse *p, const char *what, uint64_t addr, objc_ptr *out)
{
    memset(out, 0, sizeof *out);
    if (p->m->hdr.filetype == MH_OBJECT) {
        const dk_symbol *sym;
        bool found;
        dk_status st = object_reloc(p, addr, &found, &sym);
        if (st) return st;
        if (found) {
            const uint8_t *b = objc_bytes(p, addr, p->ps);
            if (!b) return objc_bad(p, what, addr, "pointer not inside the file");
            uint64_t addend = p->ps == 8 ? dk_rd64(p->be, b) : objc_u32(p, b);
            if (!sym) {
                /* section-relative: the stored value is the target, and 0 is a real address here */
                out->kind = OBJC_PTR_LOCAL;
                out->addr = addend;
                return DK_OK;
            }
            if ((sym->type & N_TYPE) == N_UNDF) {
                out->kind = OBJC_PTR_BOUND;
                out->symbol = sym->name ? sym->name : "";
                return DK_OK;
            }
            uint64_t v = sym->value + addend;
            if (p->ps == 4) v &= 0xffffffffu;
            out->kind = OBJC_PTR_LOCAL;
            out->addr = v;
            return DK_OK;
        }
    }
    dk_pointer ptr;
    dk_error e = {0};
    dk_status st = dk_macho_read_pointer(p->m, addr, &ptr, &e);
    if (st == DK_E_MALFORMED && p->m->in_cache && p->m->src.map) {
        /* a location in another image of the cache: decode it with the cache's slide info */
        const uint8_t *b = objc_bytes(p, addr, p->ps);
        if (b) {
            uint64_t raw = p->ps == 8 ? dk_rd64(p->be, b) : dk_rd32(p->be, b);
            memset(&ptr, 0, sizeof ptr);
            ptr.kind = DK_PTR_PLAIN;
            ptr.value = raw;
            uint64_t v;
            if (p->m->src.decode_ptr && p->m->src.decode_ptr(p->m->src.map_ctx, addr, raw, &v)) {
                ptr.kind = DK_PTR_REBASE;
                ptr.value = v;
            }
            st = DK_OK;
        }
    }
    if (st == DK_E_MALFORMED) return objc_bad(p, what, addr, "pointer not inside the file");
    if (st) {
        if (p->err) {
            *p->err = e;
            dk_error_prefix(p->err, "%s at 0x%llx: ", what, (unsigned long long)addr);
        }
        return st;
    }
    if (ptr.kind == DK_PTR_BIND) {
        out->kind = OBJC_PTR_BOUND;
        out->symbol = ptr.symbol ? ptr.symbol : "";
        return DK_OK;
    }
    uint64_t v = ptr.value;
    if (p->ps == 8) v &= 0x00ffffffffffffffull; /* top byte: high8 / TBI, never part of the address */
    else v &= 0xffffffffull;
    if (v == 0) return DK_OK;
    out->kind = OBJC_PTR_LOCAL;
    out->addr = v;
    return DK_OK;
}

dk_status objc_string(objc_parse *p, const char *what, uint64_t addr, const char **out)
{
    uint64_t avail;
    const uint8_t *b = objc_bytes_avail(p, addr, &avail);
    if (!b) return objc_bad(p, what, addr, "string not inside the file");
    size_t lim = avail < DK_OBJC_MAX_STRING ? (size_t)avail : DK_OBJC_MAX_STRING;
    if (!memchr(b, 0, lim)) {
        return objc_bad(p, what, addr, avail <= DK_OBJC_MAX_STRING ? "string runs past the end of its segment"
                                                                   : "string longer than 1 MiB");
    }
    *out = (const char *)b;
    return DK_OK;
}

dk_status objc_string_ptr(objc_parse *p, const char *what, uint64_t addr, const char **out)
{
    objc_ptr ptr;
    dk_status st = objc_pointer(p, what, addr, &ptr);
    if (st) return st;
    *out = NULL;
    if (ptr.kind == OBJC_PTR_NULL) return DK_OK;
    if (ptr.kind == OBJC_PTR_BOUND)
        return objc_bad(p, what, addr, "string pointer is bound to %s", ptr.symbol);
    return objc_string(p, what, ptr.addr, out);
}

/* ------------------------------------------------------------------ names */

static const char *strip_prefix(const char *s, const char *const *prefixes)
{
    for (; *prefixes; prefixes++) {
        size_t n = strlen(*prefixes);
        if (strncmp(s, *prefixes, n) == 0 && s[n]) return s + n;
    }
    return s;
}

static const char *const class_prefixes[] = {"_OBJC_CLASS_$_", "_OBJC_METACLASS_$_", ".objc_class_name_", NULL};
static const char *const protocol_prefixes[] = {"__OBJC_PROTOCOL_$_", "_OBJC_PROTOCOL_$_", NULL};

/* Offsets inside class_t / class_ro_t for this pointer size. */
static inline uint64_t ro_ptr_base(const objc_parse *p) { return p->ps == 8 ? 16 : 12; }
static inline uint64_t ro_size(const objc_parse *p) { return ro_ptr_base(p) + 7ull * p->ps; }

/* The class_ro_t address and flag bits of the class_t at ADDR. */
static dk_status class_data(objc_parse *p, uint64_t cls, uint64_t *ro, uint32_t *bits)
{
    const uint8_t *b;
    dk_status st = objc_struct(p, "class_t", cls, 5ull * p->ps, &b);
    if (st) return st;
    objc_ptr d;
    st = objc_pointer(p, "class_t.bits", cls + 4ull * p->ps, &d);
    if (st) return st;
    if (d.kind != OBJC_PTR_LOCAL) return objc_bad(p, "class_t", cls, "class_ro_t pointer is %s", d.kind == OBJC_PTR_NULL ? "null" : "bound");
    uint64_t mask = p->ps == 8 ? 7 : 3;
    *bits = (uint32_t)(d.addr & mask);
    *ro = d.addr & ~mask;
    if (*ro == 0) return objc_bad(p, "class_t", cls, "class_ro_t pointer is null");
    return DK_OK;
}

/* The name of the class whose class_t is at ADDR (in this image). */
static dk_status local_class_name(objc_parse *p, uint64_t cls, const char **name)
{
    long idx = dk_objc_class_index(p->o, cls);
    if (idx >= 0 && p->o->classes[idx].name) {
        *name = p->o->classes[idx].name;
        return DK_OK;
    }
    uint64_t ro;
    uint32_t bits;
    dk_status st = class_data(p, cls, &ro, &bits);
    if (st) return st;
    const uint8_t *b;
    st = objc_struct(p, "class_ro_t", ro, ro_size(p), &b);
    if (st) return st;
    st = objc_string_ptr(p, "class_ro_t.name", ro + ro_ptr_base(p) + p->ps, name);
    if (st) return st;
    if (!*name) return objc_bad(p, "class_ro_t", ro, "name is null");
    return DK_OK;
}

/* A class reference: local (named from its class_ro_t), bound (named from the symbol) or null. */
static dk_status class_ref(objc_parse *p, const char *what, uint64_t at, dk_objc_ref *r)
{
    memset(r, 0, sizeof *r);
    objc_ptr ptr;
    dk_status st = objc_pointer(p, what, at, &ptr);
    if (st) return st;
    if (ptr.kind == OBJC_PTR_BOUND) {
        r->external = true;
        r->symbol = ptr.symbol;
        r->name = strip_prefix(ptr.symbol, class_prefixes);
        return DK_OK;
    }
    if (ptr.kind == OBJC_PTR_NULL) return DK_OK;
    r->address = ptr.addr;
    return local_class_name(p, ptr.addr, &r->name);
}

static dk_status protocol_name(objc_parse *p, uint64_t proto, const char **name)
{
    const uint8_t *b;
    dk_status st = objc_struct(p, "protocol_t", proto, 2ull * p->ps, &b);
    if (st) return st;
    st = objc_string_ptr(p, "protocol_t.mangledName", proto + p->ps, name);
    if (st) return st;
    if (!*name) return objc_bad(p, "protocol_t", proto, "name is null");
    return DK_OK;
}

static dk_status protocol_ref(objc_parse *p, const char *what, uint64_t at, dk_objc_ref *r)
{
    memset(r, 0, sizeof *r);
    objc_ptr ptr;
    dk_status st = objc_pointer(p, what, at, &ptr);
    if (st) return st;
    if (ptr.kind == OBJC_PTR_BOUND) {
        r->external = true;
        r->symbol = ptr.symbol;
        r->name = strip_prefix(ptr.symbol, protocol_prefixes);
        return DK_OK;
    }
    if (ptr.kind == OBJC_PTR_NULL) return DK_OK;
    r->address = ptr.addr;
    return protocol_name(p, ptr.addr, &r->name);
}

/* ---------------------------------------------------------------- lists */

/* Header of an entsize list; validates that COUNT entries of ENTSIZE (>= MIN) are in the file.
   MIN == METHOD_LIST_MIN: a method list, whose minimum depends on its relative flag. */
#define METHOD_LIST_MIN UINT32_MAX
static dk_status list_header(objc_parse *p, const char *what, uint64_t list, uint32_t entsize_mask, uint32_t min,
                             uint32_t *entsize_flags, uint32_t *count)
{
    const uint8_t *b;
    dk_status st = objc_struct(p, what, list, 8, &b);
    if (st) return st;
    *entsize_flags = objc_u32(p, b);
    *count = objc_u32(p, b + 4);
    uint32_t entsize = *entsize_flags & entsize_mask;
    bool relative = false;
    if (min == METHOD_LIST_MIN) {
        relative = (*entsize_flags & DK_METHOD_LIST_SMALL) != 0;
        min = relative ? 12 : 3 * p->ps;
    }
    if (entsize < min)
        return objc_bad(p, what, list, "entsize %u is smaller than a%s entry (%u bytes)", entsize, relative ? " relative" : "n", min);
    uint64_t bytes = (uint64_t)entsize * *count;
    if (!objc_bytes(p, list + 8, bytes))
        return objc_bad(p, what, list, "count %u * entsize %u runs past the end of the file-backed data", *count, entsize);
    return objc_charge(p, *count, what, list);
}

/* relative_list_list_t: call FN for each list it holds. */
typedef dk_status (*list_fn)(objc_parse *p, uint64_t list, void *ctx);

static dk_status list_of_lists(objc_parse *p, const char *what, uint64_t lol, list_fn fn, void *ctx)
{
    uint32_t ef, count;
    dk_status st = list_header(p, what, lol, 0xffffffffu, 8, &ef, &count);
    if (st) return st;
    uint32_t entsize = ef;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t e = lol + 8 + (uint64_t)i * entsize;
        const uint8_t *b = objc_bytes(p, e, 8);
        uint64_t v = dk_rd64(p->be, b);
        int64_t off = (int64_t)v >> 16; /* listOffset:48, signed, above imageIndex:16 */
        st = fn(p, e + (uint64_t)off, ctx);
        if (st) return st;
    }
    return DK_OK;
}

/* Methods of one method_list_t appended to a growable buffer. */
typedef struct method_acc {
    dk_objc_methods *out;
    dk_vec v;          /* dk_objc_method, only used when lists are concatenated */
    bool concat;
    bool protocol;     /* protocol method lists: no imps */
} method_acc;

static dk_status method_entry(objc_parse *p, uint64_t e, bool relative, uint32_t flags, dk_objc_method *mt)
{
    dk_status st;
    memset(mt, 0, sizeof *mt);
    if (relative) {
        const uint8_t *b = objc_bytes(p, e, 12);
        int32_t name_off = (int32_t)objc_u32(p, b), types_off = (int32_t)objc_u32(p, b + 4),
                imp_off = (int32_t)objc_u32(p, b + 8);
        if (flags & DK_METHOD_LIST_DIRECT_SELECTORS) {
            /* dyld cache: the selector string itself, relative to the cache's selector base
               (objc_opt_t v16 / ObjCOptimizationHeader), or in older caches to the field */
            uint64_t base = p->opts.has_selector_base ? p->opts.selector_base : e;
            st = objc_string(p, "method_t.name (direct selector)", base + (uint64_t)(int64_t)name_off, &mt->name);
            if (st) return st;
        } else {
            uint64_t selref = e + (uint64_t)(int64_t)name_off;
            st = objc_string_ptr(p, "method_t.name (selref)", selref, &mt->name);
            if (st) return st;
            if (!mt->name) return objc_bad(p, "method_t", e, "selector reference at 0x%llx is null", (unsigned long long)selref);
        }
        if (types_off) {
            st = objc_string(p, "method_t.types", e + 4 + (uint64_t)(int64_t)types_off, &mt->types);
            if (st) return st;
        }
        if (imp_off) {
            mt->imp = e + 8 + (uint64_t)(int64_t)imp_off;
            mt->has_imp = true;
        }
        return DK_OK;
    }
    st = objc_string_ptr(p, "method_t.name", e, &mt->name);
    if (st) return st;
    if (!mt->name) return objc_bad(p, "method_t", e, "selector is null");
    st = objc_string_ptr(p, "method_t.types", e + p->ps, &mt->types);
    if (st) return st;
    objc_ptr imp;
    st = objc_pointer(p, "method_t.imp", e + 2ull * p->ps, &imp);
    if (st) return st;
    if (imp.kind == OBJC_PTR_LOCAL) {
        mt->imp = imp.addr;
        mt->has_imp = true;
    } else if (imp.kind == OBJC_PTR_BOUND) {
        mt->imp_symbol = imp.symbol;
    }
    return DK_OK;
}

static dk_status one_method_list(objc_parse *p, uint64_t list, void *ctx)
{
    method_acc *acc = ctx;
    uint32_t ef, count;
    dk_status st = list_header(p, "method_list_t", list, ~DK_METHOD_LIST_FLAGS_MASK, METHOD_LIST_MIN, &ef, &count);
    if (st) return st;
    uint32_t flags = ef & DK_METHOD_LIST_FLAGS_MASK, entsize = ef & ~DK_METHOD_LIST_FLAGS_MASK;
    bool relative = (flags & DK_METHOD_LIST_SMALL) != 0;
    dk_objc_methods *out = acc->out;
    if (!acc->concat) {
        out->address = list;
        out->entsize = entsize;
        out->flags = flags;
        out->relative = relative;
        dk_objc_method *items = objc_alloc(p, count, sizeof *items);
        if (!items) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
        for (uint32_t i = 0; i < count; i++) {
            st = method_entry(p, list + 8 + (uint64_t)i * entsize, relative, flags, &items[i]);
            if (st) return st;
            if (acc->protocol) items[i].has_imp = false;
        }
        out->items = items;
        out->count = count;
        return DK_OK;
    }
    if (!out->address) {
        out->entsize = entsize;
        out->flags = flags;
        out->relative = relative;
    }
    for (uint32_t i = 0; i < count; i++) {
        dk_objc_method *mt = dk_vec_push(&acc->v, sizeof *mt);
        if (!mt) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
        st = method_entry(p, list + 8 + (uint64_t)i * entsize, relative, flags, mt);
        if (st) return st;
    }
    return DK_OK;
}

/* The method list whose pointer is stored at FIELD (a class_ro_t / category_t / protocol_t field). */
static dk_status read_methods(objc_parse *p, const char *what, uint64_t field, bool protocol, dk_objc_methods *out)
{
    memset(out, 0, sizeof *out);
    objc_ptr ptr;
    dk_status st = objc_pointer(p, what, field, &ptr);
    if (st) return st;
    if (ptr.kind == OBJC_PTR_NULL) return DK_OK;
    if (ptr.kind == OBJC_PTR_BOUND) return objc_bad(p, what, field, "method list pointer is bound to %s", ptr.symbol);
    method_acc acc = {.out = out, .protocol = protocol};
    if (!(ptr.addr & 1)) return one_method_list(p, ptr.addr, &acc);
    acc.concat = true;
    st = list_of_lists(p, "relative_list_list_t (methods)", ptr.addr & ~1ull, one_method_list, &acc);
    if (!st) {
        out->address = ptr.addr & ~1ull;
        dk_objc_method *items = objc_alloc(p, acc.v.len, sizeof *items);
        if (!items) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
        else {
            if (acc.v.len) memcpy(items, acc.v.data, acc.v.len * sizeof *items);
            out->items = items;
            out->count = acc.v.len;
        }
    }
    dk_vec_free(&acc.v);
    return st;
}

typedef struct prop_acc {
    dk_objc_properties *out;
    dk_vec v;
    bool concat;
} prop_acc;

static dk_status one_property_list(objc_parse *p, uint64_t list, void *ctx)
{
    prop_acc *acc = ctx;
    uint32_t entsize, count;
    dk_status st = list_header(p, "property_list_t", list, 0xffffffffu, 2 * p->ps, &entsize, &count);
    if (st) return st;
    dk_objc_property *items;
    if (acc->concat) {
        if (!dk_vec_reserve(&acc->v, sizeof *items, acc->v.len + count)) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
        items = (dk_objc_property *)acc->v.data + acc->v.len;
        acc->v.len += count;
    } else {
        items = objc_alloc(p, count, sizeof *items);
        if (!items) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
        acc->out->address = list;
        acc->out->entsize = entsize;
        acc->out->items = items;
        acc->out->count = count;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint64_t e = list + 8 + (uint64_t)i * entsize;
        memset(&items[i], 0, sizeof items[i]);
        st = objc_string_ptr(p, "property_t.name", e, &items[i].name);
        if (st) return st;
        if (!items[i].name) return objc_bad(p, "property_t", e, "name is null");
        st = objc_string_ptr(p, "property_t.attributes", e + p->ps, &items[i].attributes);
        if (st) return st;
    }
    return DK_OK;
}

static dk_status read_properties(objc_parse *p, const char *what, uint64_t field, dk_objc_properties *out)
{
    memset(out, 0, sizeof *out);
    objc_ptr ptr;
    dk_status st = objc_pointer(p, what, field, &ptr);
    if (st) return st;
    if (ptr.kind == OBJC_PTR_NULL) return DK_OK;
    if (ptr.kind == OBJC_PTR_BOUND) return objc_bad(p, what, field, "property list pointer is bound to %s", ptr.symbol);
    prop_acc acc = {.out = out};
    if (!(ptr.addr & 1)) return one_property_list(p, ptr.addr, &acc);
    acc.concat = true;
    st = list_of_lists(p, "relative_list_list_t (properties)", ptr.addr & ~1ull, one_property_list, &acc);
    if (!st) {
        out->address = ptr.addr & ~1ull;
        dk_objc_property *items = objc_alloc(p, acc.v.len, sizeof *items);
        if (!items) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
        else {
            if (acc.v.len) memcpy(items, acc.v.data, acc.v.len * sizeof *items);
            out->items = items;
            out->count = acc.v.len;
        }
    }
    dk_vec_free(&acc.v);
    return st;
}

typedef struct ref_acc {
    dk_objc_refs *out;
    dk_vec v;
    bool concat;
} ref_acc;

static dk_status one_protocol_list(objc_parse *p, uint64_t list, void *ctx)
{
    ref_acc *acc = ctx;
    const uint8_t *b;
    dk_status st = objc_struct(p, "protocol_list_t", list, p->ps, &b);
    if (st) return st;
    uint64_t count = p->ps == 8 ? dk_rd64(p->be, b) : objc_u32(p, b);
    if (count > UINT32_MAX || !objc_bytes(p, list + p->ps, count * p->ps))
        return objc_bad(p, "protocol_list_t", list, "count %llu runs past the end of the file-backed data",
                        (unsigned long long)count);
    st = objc_charge(p, count, "protocol_list_t", list);
    if (st) return st;
    dk_objc_ref *items;
    if (acc->concat) {
        if (!dk_vec_reserve(&acc->v, sizeof *items, acc->v.len + count)) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
        items = (dk_objc_ref *)acc->v.data + acc->v.len;
        acc->v.len += count;
    } else {
        items = objc_alloc(p, count, sizeof *items);
        if (!items) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
        acc->out->address = list;
        acc->out->items = items;
        acc->out->count = count;
    }
    for (uint64_t i = 0; i < count; i++) {
        st = protocol_ref(p, "protocol_list_t.list[]", list + p->ps + i * p->ps, &items[i]);
        if (st) return st;
    }
    return DK_OK;
}

static dk_status read_protocol_list(objc_parse *p, const char *what, uint64_t field, dk_objc_refs *out)
{
    memset(out, 0, sizeof *out);
    objc_ptr ptr;
    dk_status st = objc_pointer(p, what, field, &ptr);
    if (st) return st;
    if (ptr.kind == OBJC_PTR_NULL) return DK_OK;
    if (ptr.kind == OBJC_PTR_BOUND) return objc_bad(p, what, field, "protocol list pointer is bound to %s", ptr.symbol);
    ref_acc acc = {.out = out};
    if (!(ptr.addr & 1)) return one_protocol_list(p, ptr.addr, &acc);
    acc.concat = true;
    st = list_of_lists(p, "relative_list_list_t (protocols)", ptr.addr & ~1ull, one_protocol_list, &acc);
    if (!st) {
        out->address = ptr.addr & ~1ull;
        dk_objc_ref *items = objc_alloc(p, acc.v.len, sizeof *items);
        if (!items) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
        else {
            if (acc.v.len) memcpy(items, acc.v.data, acc.v.len * sizeof *items);
            out->items = items;
            out->count = acc.v.len;
        }
    }
    dk_vec_free(&acc.v);
    return st;
}

static dk_status read_ivars(objc_parse *p, uint64_t field, dk_objc_ivars *out)
{
    memset(out, 0, sizeof *out);
    objc_ptr ptr;
    dk_status st = objc_pointer(p, "class_ro_t.ivars", field, &ptr);
    if (st) return st;
    if (ptr.kind == OBJC_PTR_NULL) return DK_OK;
    if (ptr.kind == OBJC_PTR_BOUND) return objc_bad(p, "class_ro_t.ivars", field, "ivar list pointer is bound to %s", ptr.symbol);
    uint64_t list = ptr.addr;
    uint32_t entsize, count;
    st = list_header(p, "ivar_list_t", list, 0xffffffffu, 3 * p->ps + 8, &entsize, &count);
    if (st) return st;
    dk_objc_ivar *items = objc_alloc(p, count, sizeof *items);
    if (!items) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    out->address = list;
    out->entsize = entsize;
    out->items = items;
    out->count = count;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t e = list + 8 + (uint64_t)i * entsize;
        dk_objc_ivar *iv = &items[i];
        objc_ptr off;
        st = objc_pointer(p, "ivar_t.offset", e, &off);
        if (st) return st;
        if (off.kind == OBJC_PTR_LOCAL) {
            iv->offset_address = off.addr;
            /* int32_t *offset (x86_64 images may store 64 bits; the low 32 are the value) */
            const uint8_t *ob = objc_bytes(p, off.addr, 4);
            if (!ob) return objc_bad(p, "ivar_t.offset", e, "offset variable at 0x%llx is not inside the file",
                                     (unsigned long long)off.addr);
            iv->offset = objc_u32(p, ob);
            iv->has_offset = true;
        }
        st = objc_string_ptr(p, "ivar_t.name", e + p->ps, &iv->name);
        if (st) return st;
        st = objc_string_ptr(p, "ivar_t.type", e + 2ull * p->ps, &iv->type);
        if (st) return st;
        const uint8_t *b = objc_bytes(p, e + 3ull * p->ps, 8);
        iv->alignment_raw = objc_u32(p, b);
        iv->size = objc_u32(p, b + 4);
    }
    return DK_OK;
}

/* --------------------------------------------------------------- sections */

/* Pointer-sized entries of every section named SECTNAME outside __OBJC, as (address) calls. */
typedef dk_status (*entry_fn)(objc_parse *p, uint64_t at, void *ctx);

static size_t count_entries(objc_parse *p, const char *sectname)
{
    size_t n, total = 0;
    const dk_section *s = dk_macho_sections(p->m, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].sectname, sectname) == 0 && strcmp(s[i].segname, "__OBJC") != 0) total += s[i].size / p->ps;
    return total;
}

static dk_status each_entry(objc_parse *p, const char *sectname, entry_fn fn, void *ctx)
{
    size_t n;
    const dk_section *s = dk_macho_sections(p->m, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s[i].sectname, sectname) != 0 || strcmp(s[i].segname, "__OBJC") == 0) continue;
        uint64_t cnt = s[i].size / p->ps;
        if (cnt && !objc_bytes(p, s[i].addr, cnt * p->ps)) {
            char what[48];
            snprintf(what, sizeof what, "section (%s,%s)", s[i].segname, s[i].sectname);
            return objc_bad(p, what, s[i].addr, "%llu bytes of content not inside the file", (unsigned long long)s[i].size);
        }
        dk_status st = objc_charge(p, cnt, sectname, s[i].addr);
        if (st) return st;
        for (uint64_t k = 0; k < cnt; k++) {
            st = fn(p, s[i].addr + k * p->ps, ctx);
            if (st) return st;
        }
    }
    return DK_OK;
}

/* ---------------------------------------------------------------- classes */

static dk_status decode_class(objc_parse *p, uint64_t cls, dk_objc_class *c)
{
    dk_status st;
    unsigned ps = p->ps;
    c->address = cls;
    st = class_data(p, cls, &c->data, &c->data_bits);
    if (st) return st;
    c->swift = (c->data_bits & 3) != 0;
    st = class_ref(p, "class_t.superclass", cls + ps, &c->superclass);
    if (st) return st;

    uint64_t ro = c->data, pb = ro_ptr_base(p);
    const uint8_t *b;
    st = objc_struct(p, "class_ro_t", ro, ro_size(p), &b);
    if (st) return st;
    c->flags = objc_u32(p, b);
    c->instance_start = objc_u32(p, b + 4);
    c->instance_size = objc_u32(p, b + 8);
    st = objc_string_ptr(p, "class_ro_t.name", ro + pb + ps, &c->name);
    if (st) return st;
    if (!c->name) return objc_bad(p, "class_ro_t", ro, "name is null");
    st = read_methods(p, "class_ro_t.baseMethods", ro + pb + 2ull * ps, false, &c->instance_methods);
    if (st) return st;
    st = read_protocol_list(p, "class_ro_t.baseProtocols", ro + pb + 3ull * ps, &c->protocols);
    if (st) return st;
    st = read_ivars(p, ro + pb + 4ull * ps, &c->ivars);
    if (st) return st;
    st = read_properties(p, "class_ro_t.baseProperties", ro + pb + 6ull * ps, &c->properties);
    if (st) return st;

    /* the metaclass: class methods and class properties */
    objc_ptr isa;
    st = objc_pointer(p, "class_t.isa", cls, &isa);
    if (st) return st;
    if (isa.kind == OBJC_PTR_BOUND) {
        c->metaclass.external = true;
        c->metaclass.symbol = isa.symbol;
        c->metaclass.name = strip_prefix(isa.symbol, class_prefixes);
    } else if (isa.kind == OBJC_PTR_LOCAL) {
        uint64_t mro;
        uint32_t mbits;
        c->metaclass.address = isa.addr;
        c->metaclass.name = c->name;
        st = class_data(p, isa.addr, &mro, &mbits);
        if (st) return st;
        const uint8_t *mb;
        st = objc_struct(p, "class_ro_t (metaclass)", mro, ro_size(p), &mb);
        if (st) return st;
        c->meta_data = mro;
        c->meta_flags = objc_u32(p, mb);
        st = read_methods(p, "class_ro_t.baseMethods (metaclass)", mro + pb + 2ull * ps, false, &c->class_methods);
        if (st) return st;
        st = read_properties(p, "class_ro_t.baseProperties (metaclass)", mro + pb + 6ull * ps, &c->class_properties);
        if (st) return st;
    }
    return DK_OK;
}

/* The non-null local pointers of every NAME section, in order (bound entries are an error). */
typedef struct addr_list {
    uint64_t *addrs;
    size_t n, cap;
    const char *what;
} addr_list;

static dk_status collect_entry(objc_parse *p, uint64_t at, void *vctx)
{
    addr_list *l = vctx;
    objc_ptr ptr;
    dk_status st = objc_pointer(p, l->what, at, &ptr);
    if (st) return st;
    if (ptr.kind == OBJC_PTR_NULL) return DK_OK; /* the runtime skips null entries */
    if (ptr.kind == OBJC_PTR_BOUND) return objc_bad(p, l->what, at, "bound to %s", ptr.symbol);
    if (l->n < l->cap) l->addrs[l->n++] = ptr.addr;
    return DK_OK;
}

/* Append the entries of SECT to L (whose capacity was sized by count_entries). */
static dk_status collect(objc_parse *p, const char *sect, const char *what, addr_list *l)
{
    l->what = what;
    return each_entry(p, sect, collect_entry, l);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool sorted_has(const uint64_t *v, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && v[lo] == key;
}

/*
 * MAIN (capacity for MAIN + EXTRA entries) gets EXTRA's entries it lacks appended;
 * IN_EXTRA (sorted copy of EXTRA) is returned for "is it non-lazy" lookups.
 */
static dk_status merge_extra(objc_parse *p, addr_list *main, const addr_list *extra, uint64_t **in_extra)
{
    uint64_t *sorted_main = malloc((main->n ? main->n : 1) * sizeof *sorted_main);
    uint64_t *sorted_extra = malloc((extra->n ? extra->n : 1) * sizeof *sorted_extra);
    if (!sorted_main || !sorted_extra) {
        free(sorted_main);
        free(sorted_extra);
        return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    }
    memcpy(sorted_main, main->addrs, main->n * sizeof *sorted_main);
    memcpy(sorted_extra, extra->addrs, extra->n * sizeof *sorted_extra);
    size_t nmain = main->n;
    if (nmain) qsort(sorted_main, nmain, sizeof *sorted_main, cmp_u64);
    if (extra->n) qsort(sorted_extra, extra->n, sizeof *sorted_extra, cmp_u64);
    for (size_t i = 0; i < extra->n; i++) {
        uint64_t a = extra->addrs[i];
        if (sorted_has(sorted_main, nmain, a)) continue;
        if (main->n < main->cap) main->addrs[main->n++] = a;
    }
    free(sorted_main);
    *in_extra = sorted_extra;
    return DK_OK;
}

static int cmp_addr(const void *a, const void *b)
{
    const struct objc_addr_index *x = a, *y = b;
    if (x->address != y->address) return x->address < y->address ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

long dk_objc_class_index(const dk_objc *o, uint64_t address)
{
    size_t lo = 0, hi = o->nby_addr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->by_addr[mid].address < address) lo = mid + 1;
        else hi = mid;
    }
    if (lo < o->nby_addr && o->by_addr[lo].address == address) return (long)o->by_addr[lo].index;
    return -1;
}

/* A superclass chain that comes back to a class on it: the runtime would loop forever. */
static dk_status check_superclass_loops(objc_parse *p)
{
    dk_objc *o = p->o;
    uint8_t *color = calloc(o->nclasses ? o->nclasses : 1, 1); /* 0 new, 1 on the current path, 2 done */
    if (!color) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    dk_status st = DK_OK;
    for (size_t i = 0; i < o->nclasses && !st; i++) {
        size_t k = i;
        while (color[k] == 0) {
            color[k] = 1;
            const dk_objc_class *c = &o->classes[k];
            long next = c->superclass.address ? dk_objc_class_index(o, c->superclass.address) : -1;
            if (next < 0) break;
            if (color[next] == 1) {
                st = objc_bad(p, "class_t.superclass", c->address + p->ps,
                              "superclass chain of %s loops back to %s", o->classes[i].name, o->classes[next].name);
                break;
            }
            k = (size_t)next;
        }
        /* mark the walked path done */
        for (size_t j = i; color[j] == 1;) {
            color[j] = 2;
            const dk_objc_class *c = &o->classes[j];
            long next = c->superclass.address ? dk_objc_class_index(o, c->superclass.address) : -1;
            if (next < 0) break;
            j = (size_t)next;
        }
    }
    free(color);
    return st;
}

static dk_status parse_classes(objc_parse *p)
{
    dk_objc *o = p->o;
    size_t n1 = count_entries(p, "__objc_classlist"), n2 = count_entries(p, "__objc_nlclslist");
    addr_list main = {.cap = n1 + n2}, nl = {.cap = n2};
    uint64_t *nonlazy = NULL;
    main.addrs = malloc((main.cap ? main.cap : 1) * sizeof *main.addrs);
    nl.addrs = malloc((nl.cap ? nl.cap : 1) * sizeof *nl.addrs);
    dk_status st = DK_OK;
    if (!main.addrs || !nl.addrs) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
    if (!st) st = collect(p, "__objc_classlist", "__objc_classlist entry", &main);
    size_t nclasslist = main.n;
    if (!st) st = collect(p, "__objc_nlclslist", "__objc_nlclslist entry", &nl);
    if (!st) st = merge_extra(p, &main, &nl, &nonlazy);
    if (!st) {
        o->classes = objc_alloc(p, main.n, sizeof *o->classes);
        o->by_addr = objc_alloc(p, main.n, sizeof *o->by_addr);
        if (!o->classes || !o->by_addr) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
    }
    if (!st) {
        /* index by address first so superclass names resolve through the table */
        for (size_t i = 0; i < main.n; i++) {
            o->classes[i].address = main.addrs[i];
            o->by_addr[i].address = main.addrs[i];
            o->by_addr[i].index = i;
        }
        if (main.n) qsort(o->by_addr, main.n, sizeof *o->by_addr, cmp_addr);
        o->nby_addr = main.n;
        o->nclasses = main.n;
        for (size_t i = 0; i < main.n && !st; i++) {
            dk_objc_class *c = &o->classes[i];
            st = decode_class(p, main.addrs[i], c);
            c->nonlazy = sorted_has(nonlazy, nl.n, c->address);
            c->classlist = i < nclasslist;
        }
    }
    free(main.addrs);
    free(nl.addrs);
    free(nonlazy);
    if (st) return st;
    return check_superclass_loops(p);
}

/* -------------------------------------------------------------- protocols */

static dk_status decode_protocol(objc_parse *p, uint64_t proto, dk_objc_protocol *pr)
{
    unsigned ps = p->ps;
    const uint8_t *b;
    dk_status st = objc_struct(p, "protocol_t", proto, 8ull * ps + 8, &b);
    if (st) return st;
    pr->address = proto;
    st = objc_string_ptr(p, "protocol_t.mangledName", proto + ps, &pr->name);
    if (st) return st;
    if (!pr->name) return objc_bad(p, "protocol_t", proto, "name is null");
    st = read_protocol_list(p, "protocol_t.protocols", proto + 2ull * ps, &pr->protocols);
    if (st) return st;
    st = read_methods(p, "protocol_t.instanceMethods", proto + 3ull * ps, true, &pr->instance_methods);
    if (st) return st;
    st = read_methods(p, "protocol_t.classMethods", proto + 4ull * ps, true, &pr->class_methods);
    if (st) return st;
    st = read_methods(p, "protocol_t.optionalInstanceMethods", proto + 5ull * ps, true, &pr->optional_instance_methods);
    if (st) return st;
    st = read_methods(p, "protocol_t.optionalClassMethods", proto + 6ull * ps, true, &pr->optional_class_methods);
    if (st) return st;
    st = read_properties(p, "protocol_t.instanceProperties", proto + 7ull * ps, &pr->properties);
    if (st) return st;
    pr->size = objc_u32(p, b + 8ull * ps);
    pr->flags = objc_u32(p, b + 8ull * ps + 4);
    /* _classProperties follows _extendedMethodTypes and _demangledName, when size says it is there */
    uint64_t cp = 8ull * ps + 8 + 2ull * ps;
    if (pr->size >= cp + ps && objc_bytes(p, proto, cp + ps)) {
        st = read_properties(p, "protocol_t._classProperties", proto + cp, &pr->class_properties);
        if (st) return st;
    }
    return DK_OK;
}

static dk_status parse_protocols(objc_parse *p)
{
    addr_list l = {.cap = count_entries(p, "__objc_protolist")};
    l.addrs = malloc((l.cap ? l.cap : 1) * sizeof *l.addrs);
    if (!l.addrs) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    dk_status st = collect(p, "__objc_protolist", "__objc_protolist entry", &l);
    if (!st) {
        p->o->protocols = objc_alloc(p, l.n, sizeof *p->o->protocols);
        if (!p->o->protocols) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; !st && i < l.n; i++) {
        st = decode_protocol(p, l.addrs[i], &p->o->protocols[i]);
        if (!st) p->o->nprotocols = i + 1;
    }
    free(l.addrs);
    return st;
}

/* ------------------------------------------------------------- categories */

static dk_status decode_category(objc_parse *p, uint64_t cat, dk_objc_category *c)
{
    unsigned ps = p->ps;
    const uint8_t *b;
    dk_status st = objc_struct(p, "category_t", cat, 6ull * ps, &b);
    if (st) return st;
    c->address = cat;
    st = objc_string_ptr(p, "category_t.name", cat, &c->name);
    if (st) return st;
    if (!c->name) return objc_bad(p, "category_t", cat, "name is null");
    st = class_ref(p, "category_t.cls", cat + ps, &c->cls);
    if (st) return st;
    st = read_methods(p, "category_t.instanceMethods", cat + 2ull * ps, false, &c->instance_methods);
    if (st) return st;
    st = read_methods(p, "category_t.classMethods", cat + 3ull * ps, false, &c->class_methods);
    if (st) return st;
    st = read_protocol_list(p, "category_t.protocols", cat + 4ull * ps, &c->protocols);
    if (st) return st;
    st = read_properties(p, "category_t.instanceProperties", cat + 5ull * ps, &c->properties);
    if (st) return st;
    if ((p->o->image_info.flags & DK_OBJC_IMAGE_HAS_CATEGORY_CLASS_PROPERTIES) && objc_bytes(p, cat, 7ull * ps)) {
        st = read_properties(p, "category_t._classProperties", cat + 6ull * ps, &c->class_properties);
        if (st) return st;
    }
    return DK_OK;
}

static dk_status parse_categories(objc_parse *p)
{
    size_t n1 = count_entries(p, "__objc_catlist"), n2 = count_entries(p, "__objc_catlist2"),
           n3 = count_entries(p, "__objc_nlcatlist");
    addr_list main = {.cap = n1 + n2 + n3}, nl = {.cap = n3};
    uint64_t *nonlazy = NULL;
    main.addrs = malloc((main.cap ? main.cap : 1) * sizeof *main.addrs);
    nl.addrs = malloc((nl.cap ? nl.cap : 1) * sizeof *nl.addrs);
    dk_status st = DK_OK;
    if (!main.addrs || !nl.addrs) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
    if (!st) st = collect(p, "__objc_catlist", "__objc_catlist entry", &main);
    if (!st) st = collect(p, "__objc_catlist2", "__objc_catlist2 entry", &main);
    /* non-lazy categories are normally in __objc_catlist too: mark those, append the rest */
    if (!st) st = collect(p, "__objc_nlcatlist", "__objc_nlcatlist entry", &nl);
    if (!st) st = merge_extra(p, &main, &nl, &nonlazy);
    if (!st) {
        p->o->categories = objc_alloc(p, main.n, sizeof *p->o->categories);
        if (!p->o->categories) st = dk_fail(p->err, DK_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; !st && i < main.n; i++) {
        dk_objc_category *c = &p->o->categories[i];
        st = decode_category(p, main.addrs[i], c);
        c->nonlazy = sorted_has(nonlazy, nl.n, c->address);
        if (!st) p->o->ncategories = i + 1;
    }
    free(main.addrs);
    free(nl.addrs);
    free(nonlazy);
    return st;
}

/* ------------------------------------------------------------ references */

typedef struct ref_list_ctx {
    void *items;
    size_t n, cap;
    int kind; /* 0 selref, 1 class, 2 protocol */
} ref_list_ctx;

static dk_status ref_entry(objc_parse *p, uint64_t at, void *vctx)
{
    ref_list_ctx *ctx = vctx;
    if (ctx->n >= ctx->cap) return DK_OK;
    dk_status st;
    if (ctx->kind == 0) {
        dk_objc_selref *r = (dk_objc_selref *)ctx->items + ctx->n++;
        r->address = at;
        objc_ptr ptr;
        st = objc_pointer(p, "__objc_selrefs entry", at, &ptr);
        if (st) return st;
        if (ptr.kind == OBJC_PTR_BOUND) return objc_bad(p, "__objc_selrefs entry", at, "bound to %s", ptr.symbol);
        if (ptr.kind == OBJC_PTR_NULL) return DK_OK;
        r->target = ptr.addr;
        return objc_string(p, "selector", ptr.addr, &r->selector);
    }
    dk_objc_xref *x = (dk_objc_xref *)ctx->items + ctx->n++;
    x->address = at;
    if (ctx->kind == 1) return class_ref(p, "__objc_classrefs entry", at, &x->ref);
    return protocol_ref(p, "__objc_protorefs entry", at, &x->ref);
}

static dk_status parse_refs(objc_parse *p, const char *sect, int kind, void **items, size_t *n)
{
    size_t cap = count_entries(p, sect);
    ref_list_ctx ctx = {.cap = cap, .kind = kind};
    ctx.items = objc_alloc(p, cap, kind == 0 ? sizeof(dk_objc_selref) : sizeof(dk_objc_xref));
    if (!ctx.items) return dk_fail(p->err, DK_E_NOMEM, "out of memory");
    dk_status st = each_entry(p, sect, ref_entry, &ctx);
    *items = ctx.items;
    *n = ctx.n;
    return st;
}

/* ------------------------------------------------------------------- open */

static dk_status parse_image_info(objc_parse *p)
{
    size_t n;
    const dk_section *s = dk_macho_sections(p->m, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s[i].sectname, "__objc_imageinfo") != 0 || strcmp(s[i].segname, "__OBJC") == 0) continue;
        if (s[i].size < 8) return objc_bad(p, "__objc_imageinfo", s[i].addr, "section is %llu bytes, objc_image_info needs 8",
                                           (unsigned long long)s[i].size);
        const uint8_t *b;
        dk_status st = objc_struct(p, "objc_image_info", s[i].addr, 8, &b);
        if (st) return st;
        p->o->image_info.present = true;
        p->o->image_info.address = s[i].addr;
        p->o->image_info.version = objc_u32(p, b);
        p->o->image_info.flags = objc_u32(p, b + 4);
        return DK_OK;
    }
    return DK_OK;
}

static bool has_objc2(const dk_macho *m)
{
    static const char *const names[] = {"__objc_classlist", "__objc_catlist", "__objc_protolist", "__objc_selrefs",
                                        "__objc_imageinfo", "__objc_classrefs", "__objc_nlclslist", NULL};
    size_t n;
    const dk_section *s = dk_macho_sections(m, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s[i].segname, "__OBJC") == 0) continue;
        for (const char *const *k = names; *k; k++)
            if (strcmp(s[i].sectname, *k) == 0) return true;
    }
    return false;
}

static uint64_t objc_budget(const dk_macho *m)
{
    size_t n;
    const dk_segment *segs = dk_macho_segments(m, &n);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += segs[i].filesize;
    /* every entry of a well-formed image occupies >= 4 bytes of its own */
    uint64_t b = bytes / 2;
    return b > DK_OBJC_MIN_BUDGET ? b : DK_OBJC_MIN_BUDGET;
}

void dk_objc_close(dk_objc *o)
{
    if (!o) return;
    for (objc_block *b = o->blocks; b;) {
        objc_block *n = b->next;
        free(b);
        b = n;
    }
    free(o);
}

dk_status dk_objc_open(dk_macho *m, const dk_objc_options *opts, dk_objc **out, dk_error *err)
{
    *out = NULL;
    if (!m) return dk_fail(err, DK_E_ARG, "dk_objc_open: no image");
    dk_objc *o = calloc(1, sizeof *o);
    if (!o) return dk_fail(err, DK_E_NOMEM, "out of memory");
    objc_parse p = {.m = m, .o = o, .err = err, .ps = dk__ptr_size(m), .be = m->be, .budget = objc_budget(m)};
    if (opts) p.opts = *opts;
    dk_status st = DK_OK;
    if (m->hdr.filetype == MH_DSYM && (has_objc2(m) || dk__objc1_present(m))) {
        /* a dSYM companion keeps the section headers, not their contents */
        dk_objc_close(o);
        return dk_fail(err, DK_E_UNSUPPORTED, "dSYM companion file: the Objective-C sections have no contents here "
                       "(read the image it describes)");
    }
    if (has_objc2(m)) {
        o->abi = DK_OBJC_ABI_2;
        st = parse_image_info(&p);
        if (!st) st = parse_classes(&p);
        if (!st) st = parse_protocols(&p);
        if (!st) st = parse_categories(&p);
        void *items;
        if (!st) {
            st = parse_refs(&p, "__objc_selrefs", 0, &items, &o->nselrefs);
            o->selrefs = items;
        }
        if (!st) {
            st = parse_refs(&p, "__objc_classrefs", 1, &items, &o->nclassrefs);
            o->classrefs = items;
        }
        if (!st) {
            st = parse_refs(&p, "__objc_superrefs", 1, &items, &o->nsuperrefs);
            o->superrefs = items;
        }
        if (!st) {
            st = parse_refs(&p, "__objc_protorefs", 2, &items, &o->nprotorefs);
            o->protorefs = items;
        }
    } else if (dk__objc1_present(m)) {
        o->abi = DK_OBJC_ABI_1;
        st = dk__objc1_parse(&p);
    }
    free(p.relocs);
    if (st) {
        dk_objc_close(o);
        return st;
    }
    *out = o;
    return DK_OK;
}

/* -------------------------------------------------------------- accessors */

dk_objc_abi dk_objc_get_abi(const dk_objc *o) { return o->abi; }
const dk_objc_image_info *dk_objc_get_image_info(const dk_objc *o) { return &o->image_info; }

const dk_objc_class *dk_objc_classes(const dk_objc *o, size_t *count)
{
    *count = o->nclasses;
    return o->classes;
}

const dk_objc_protocol *dk_objc_protocols(const dk_objc *o, size_t *count)
{
    *count = o->nprotocols;
    return o->protocols;
}

const dk_objc_category *dk_objc_categories(const dk_objc *o, size_t *count)
{
    *count = o->ncategories;
    return o->categories;
}

const dk_objc_selref *dk_objc_selrefs(const dk_objc *o, size_t *count)
{
    *count = o->nselrefs;
    return o->selrefs;
}

const dk_objc_xref *dk_objc_classrefs(const dk_objc *o, size_t *count)
{
    *count = o->nclassrefs;
    return o->classrefs;
}

const dk_objc_xref *dk_objc_superrefs(const dk_objc *o, size_t *count)
{
    *count = o->nsuperrefs;
    return o->superrefs;
}

const dk_objc_xref *dk_objc_protorefs(const dk_objc *o, size_t *count)
{
    *count = o->nprotorefs;
    return o->protorefs;
}

static size_t append_names(uint32_t flags, const char *const *names, unsigned nnames, const char *sep, char *out,
                           size_t outsize, uint32_t *rest)
{
    size_t len = 0;
    if (outsize) out[0] = 0;
    for (unsigned b = 0; b < nnames; b++) {
        if (!(flags & (1u << b)) || !names[b]) continue;
        flags &= ~(1u << b);
        int w = snprintf(out + (len < outsize ? len : outsize), len < outsize ? outsize - len : 0, "%s%s",
                         len ? sep : "", names[b]);
        if (w > 0) len += (size_t)w;
    }
    *rest = flags;
    return len;
}

size_t dk_objc_ro_flags_string(uint32_t flags, const char *sep, char *out, size_t outsize)
{
    static const char *const names[32] = {
        "RO_META", "RO_ROOT", "RO_HAS_CXX_STRUCTORS", NULL, "RO_HIDDEN", "RO_EXCEPTION", "RO_HAS_SWIFT_INITIALIZER",
        "RO_IS_ARC", "RO_HAS_CXX_DTOR_ONLY", "RO_HAS_WEAK_WITHOUT_ARC", "RO_FORBIDS_ASSOCIATED_OBJECTS",
        [29] = "RO_FROM_BUNDLE", [30] = "RO_FUTURE", [31] = "RO_REALIZED"};
    uint32_t rest;
    size_t len = append_names(flags, names, 32, sep, out, outsize, &rest);
    if (rest) {
        int w = snprintf(out + (len < outsize ? len : outsize), len < outsize ? outsize - len : 0, "%s0x%x",
                         len ? sep : "", rest);
        if (w > 0) len += (size_t)w;
    }
    return len;
}

size_t dk_objc_image_flags_string(uint32_t flags, const char *sep, char *out, size_t outsize)
{
    static const char *const names[8] = {"IsReplacement", "SupportsGC", "RequiresGC", "OptimizedByDyld",
                                         "SupportsCompaction", "IsSimulated", "HasCategoryClassProperties",
                                         "OptimizedByDyldClosure"};
    uint32_t rest;
    size_t len = append_names(flags & 0xff, names, 8, sep, out, outsize, &rest);
    uint32_t swift_unstable = (flags >> 8) & 0xff, swift_stable = flags >> 16;
    if (swift_unstable) {
        int w = snprintf(out + (len < outsize ? len : outsize), len < outsize ? outsize - len : 0, "%sswift=%u",
                         len ? sep : "", swift_unstable);
        if (w > 0) len += (size_t)w;
    }
    if (swift_stable) {
        int w = snprintf(out + (len < outsize ? len : outsize), len < outsize ? outsize - len : 0,
                         "%sswift_stable=%u", len ? sep : "", swift_stable);
        if (w > 0) len += (size_t)w;
    }
    return len;
}
