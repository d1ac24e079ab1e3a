/* Subcommand objc: Objective-C metadata as JSON (docs/interface.md) or as a class dump. */
#include "cli.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------- JSON */

static void json_methods(out *o, const char *key, const dk_objc_methods *l, bool with_imp)
{
    o_arr(o, key);
    for (size_t i = 0; i < l->count; i++) {
        const dk_objc_method *mt = &l->items[i];
        o_obj(o, NULL);
        if (mt->name) o_str(o, "name", mt->name);
        else o_null(o, "name");
        if (mt->types) o_str(o, "types", mt->types);
        else o_null(o, "types");
        if (with_imp && mt->has_imp) o_u64(o, "imp", mt->imp);
        else o_null(o, "imp");
        if (with_imp && mt->imp_symbol) o_str(o, "imp_symbol", mt->imp_symbol);
        o_obj_end(o);
    }
    o_arr_end(o);
}

/* "relative" / "pointer" for the method lists of a class or category, null when it has none. */
static void json_list_kind(out *o, const dk_objc_methods *a, const dk_objc_methods *b)
{
    const dk_objc_methods *l = a->address ? a : b->address ? b : NULL;
    if (l) o_str(o, "method_lists", l->relative ? "relative" : "pointer");
    else o_null(o, "method_lists");
}

static void json_properties(out *o, const char *key, const dk_objc_properties *l)
{
    o_arr(o, key);
    for (size_t i = 0; i < l->count; i++) {
        o_obj(o, NULL);
        o_str(o, "name", l->items[i].name);
        if (l->items[i].attributes) o_str(o, "attributes", l->items[i].attributes);
        else o_null(o, "attributes");
        o_obj_end(o);
    }
    o_arr_end(o);
}

static void json_ref_names(out *o, const char *key, const dk_objc_refs *l)
{
    o_arr(o, key);
    for (size_t i = 0; i < l->count; i++) {
        if (l->items[i].name) o_str(o, NULL, l->items[i].name);
        else o_null(o, NULL);
    }
    o_arr_end(o);
}

static void json_ref(out *o, const char *key, const char *addr_key, const dk_objc_ref *r)
{
    if (r->name) o_str(o, key, r->name);
    else o_null(o, key);
    if (addr_key) {
        if (r->address) o_u64(o, addr_key, r->address);
        else o_null(o, addr_key);
    }
}

static void json_doc(out *o, const dk_objc *objc, dk_objc_abi abi)
{
    o_u64(o, "abi", abi);
    const dk_objc_image_info *ii = dk_objc_get_image_info(objc);
    if (ii->present) {
        o_obj(o, "image_info");
        o_u64(o, "version", ii->version);
        o_u64(o, "flags", ii->flags);
        o_u64(o, "address", ii->address);
        o_obj_end(o);
    } else {
        o_null(o, "image_info");
    }

    size_t n;
    const dk_objc_class *cls = dk_objc_classes(objc, &n);
    o_arr(o, "classes");
    for (size_t i = 0; i < n; i++) {
        const dk_objc_class *c = &cls[i];
        o_obj(o, NULL);
        o_u64(o, "address", c->address);
        o_str(o, "name", c->name);
        json_ref(o, "superclass", "superclass_address", &c->superclass);
        if (c->metaclass.address) o_u64(o, "metaclass", c->metaclass.address);
        else o_null(o, "metaclass");
        o_bool(o, "swift", c->swift);
        if (abi == DK_OBJC_ABI_2) {
            o_u64(o, "flags", c->flags);
            o_u64(o, "instance_start", c->instance_start);
            o_u64(o, "data", c->data);
            o_u64(o, "data_bits", c->data_bits);
            o_u64(o, "meta_flags", c->meta_flags);
            o_bool(o, "nonlazy", c->nonlazy);
            o_bool(o, "classlist", c->classlist);
        } else {
            o_u64(o, "info", c->info);
            o_u64(o, "version", c->version);
        }
        o_u64(o, "instance_size", c->instance_size);
        json_list_kind(o, &c->instance_methods, &c->class_methods);
        json_methods(o, "instance_methods", &c->instance_methods, true);
        json_methods(o, "class_methods", &c->class_methods, true);
        json_ref_names(o, "protocols", &c->protocols);
        o_arr(o, "ivars");
        for (size_t k = 0; k < c->ivars.count; k++) {
            const dk_objc_ivar *iv = &c->ivars.items[k];
            o_obj(o, NULL);
            if (iv->name) o_str(o, "name", iv->name);
            else o_null(o, "name");
            if (iv->type) o_str(o, "type", iv->type);
            else o_null(o, "type");
            if (iv->has_offset) o_u64(o, "offset", iv->offset);
            else o_null(o, "offset");
            if (abi == DK_OBJC_ABI_2) {
                o_u64(o, "size", iv->size);
                o_u64(o, "alignment", iv->alignment_raw);
                if (iv->offset_address) o_u64(o, "offset_address", iv->offset_address);
                else o_null(o, "offset_address");
            }
            o_obj_end(o);
        }
        o_arr_end(o);
        json_properties(o, "properties", &c->properties);
        json_properties(o, "class_properties", &c->class_properties);
        o_obj_end(o);
    }
    o_arr_end(o);

    const dk_objc_protocol *pr = dk_objc_protocols(objc, &n);
    o_arr(o, "protocols");
    for (size_t i = 0; i < n; i++) {
        const dk_objc_protocol *p = &pr[i];
        o_obj(o, NULL);
        o_u64(o, "address", p->address);
        o_str(o, "name", p->name);
        json_ref_names(o, "protocols", &p->protocols);
        json_methods(o, "instance_methods", &p->instance_methods, false);
        json_methods(o, "class_methods", &p->class_methods, false);
        json_methods(o, "optional_instance_methods", &p->optional_instance_methods, false);
        json_methods(o, "optional_class_methods", &p->optional_class_methods, false);
        json_properties(o, "properties", &p->properties);
        json_properties(o, "class_properties", &p->class_properties);
        o_u64(o, "flags", p->flags);
        o_obj_end(o);
    }
    o_arr_end(o);

    const dk_objc_category *cat = dk_objc_categories(objc, &n);
    o_arr(o, "categories");
    for (size_t i = 0; i < n; i++) {
        const dk_objc_category *c = &cat[i];
        o_obj(o, NULL);
        o_u64(o, "address", c->address);
        o_str(o, "name", c->name);
        json_ref(o, "class", "class_address", &c->cls);
        json_list_kind(o, &c->instance_methods, &c->class_methods);
        json_methods(o, "instance_methods", &c->instance_methods, true);
        json_methods(o, "class_methods", &c->class_methods, true);
        json_ref_names(o, "protocols", &c->protocols);
        json_properties(o, "properties", &c->properties);
        json_properties(o, "class_properties", &c->class_properties);
        o_bool(o, "nonlazy", c->nonlazy);
        o_obj_end(o);
    }
    o_arr_end(o);

    const dk_objc_selref *sr = dk_objc_selrefs(objc, &n);
    o_arr(o, "selrefs");
    for (size_t i = 0; i < n; i++) {
        o_obj(o, NULL);
        o_u64(o, "address", sr[i].address);
        if (sr[i].selector) o_str(o, "selector", sr[i].selector);
        else o_null(o, "selector");
        o_obj_end(o);
    }
    o_arr_end(o);

    static const char *const keys[3] = {"classrefs", "superrefs", "protorefs"};
    for (int k = 0; k < 3; k++) {
        const dk_objc_xref *x = k == 0 ? dk_objc_classrefs(objc, &n) : k == 1 ? dk_objc_superrefs(objc, &n)
                                                                             : dk_objc_protorefs(objc, &n);
        o_arr(o, keys[k]);
        for (size_t i = 0; i < n; i++) {
            o_obj(o, NULL);
            o_u64(o, "address", x[i].address);
            json_ref(o, k == 2 ? "protocol" : "class", NULL, &x[i].ref);
            o_obj_end(o);
        }
        o_arr_end(o);
    }
}

/* ------------------------------------------------------ type encodings */

/* A growable text buffer for decoded types. */
typedef struct tbuf {
    char s[512];
    size_t n;
} tbuf;

static void tb_put(tbuf *b, const char *s, size_t len)
{
    if (len > sizeof b->s - 1 - b->n) len = sizeof b->s - 1 - b->n;
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = 0;
}
static void tb_cat(tbuf *b, const char *s) { tb_put(b, s, strlen(s)); }

/* Skip one type in an encoding (bounded by depth); returns the position after it. */
static const char *skip_type(const char *t, int depth);

static const char *skip_aggregate(const char *t, char close, int depth)
{
    int level = 0;
    while (*t) {
        if (*t == '"') { /* quoted names inside structs */
            t++;
            while (*t && *t != '"') t++;
            if (*t) t++;
            continue;
        }
        if (*t == '{' || *t == '(' || *t == '[') level++;
        else if (*t == '}' || *t == ')' || *t == ']') {
            if (level == 0) return *t == close ? t + 1 : t;
            level--;
        }
        t++;
    }
    (void)depth;
    return t;
}

static const char *skip_type(const char *t, int depth)
{
    if (depth > 32) return t + strlen(t);
    while (*t && strchr("rnNoORVAj", *t)) t++;
    switch (*t) {
    case 0: return t;
    case '^': return skip_type(t + 1, depth + 1);
    case '{': return skip_aggregate(t + 1, '}', depth);
    case '(': return skip_aggregate(t + 1, ')', depth);
    case '[': return skip_aggregate(t + 1, ']', depth);
    case 'b':
        t++;
        while (isdigit((unsigned char)*t)) t++;
        return t;
    case '@':
        t++;
        if (*t == '?') return t + 1;
        if (*t == '"') {
            const char *e = strchr(t + 1, '"');
            return e ? e + 1 : t + strlen(t);
        }
        return t;
    default: return t + 1;
    }
}

/*
 * Decode one type of an ObjC type encoding into C (base into B, an array/bitfield
 * suffix into SUF); returns the position after it.
 */
static const char *decode_type(const char *t, tbuf *b, tbuf *suf, int depth)
{
    if (depth > 16) {
        tb_cat(b, "...");
        return t + strlen(t);
    }
    for (; *t && strchr("rnNoORVAj", *t); t++) {
        switch (*t) {
        case 'r': tb_cat(b, "const "); break;
        case 'n': tb_cat(b, "in "); break;
        case 'N': tb_cat(b, "inout "); break;
        case 'o': tb_cat(b, "out "); break;
        case 'O': tb_cat(b, "bycopy "); break;
        case 'R': tb_cat(b, "byref "); break;
        case 'V': tb_cat(b, "oneway "); break;
        case 'A': tb_cat(b, "_Atomic "); break;
        case 'j': tb_cat(b, "_Complex "); break;
        }
    }
    static const struct { char c; const char *name; } simple[] = {
        {'c', "char"}, {'i', "int"}, {'s', "short"}, {'l', "long"}, {'q', "long long"},
        {'C', "unsigned char"}, {'I', "unsigned int"}, {'S', "unsigned short"}, {'L', "unsigned long"},
        {'Q', "unsigned long long"}, {'f', "float"}, {'d', "double"}, {'D', "long double"}, {'B', "_Bool"},
        {'v', "void"}, {'*', "char *"}, {'#', "Class"}, {':', "SEL"}, {'?', "void /* unknown */"},
        {'t', "__int128"}, {'T', "unsigned __int128"}};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (*t == simple[i].c) {
            tb_cat(b, simple[i].name);
            return t + 1;
        }
    switch (*t) {
    case 0: tb_cat(b, "void"); return t;
    case '@':
        if (t[1] == '?') {
            tb_cat(b, "id /* block */");
            return t + 2;
        }
        if (t[1] == '"') {
            const char *e = strchr(t + 2, '"');
            if (!e) {
                tb_cat(b, "id");
                return t + strlen(t);
            }
            if (t[2] == '<') {
                tb_cat(b, "id");
                tb_put(b, t + 2, (size_t)(e - (t + 2)));
            } else {
                tb_put(b, t + 2, (size_t)(e - (t + 2)));
                tb_cat(b, " *");
            }
            return e + 1;
        }
        tb_cat(b, "id");
        return t + 1;
    case '^': {
        if (t[1] == '?') {
            tb_cat(b, "void * /* function */");
            return t + 2;
        }
        tbuf inner = {{0}, 0}, isuf = {{0}, 0};
        const char *r = decode_type(t + 1, &inner, &isuf, depth + 1);
        tb_cat(b, inner.s);
        tb_cat(b, " *");
        return r;
    }
    case '{':
    case '(': {
        char close = *t == '{' ? '}' : ')';
        const char *name = t + 1, *e = name;
        while (*e && *e != '=' && *e != close) e++;
        tb_cat(b, *t == '{' ? "struct " : "union ");
        if (e - name == 1 && *name == '?') tb_cat(b, "{...}");
        else tb_put(b, name, (size_t)(e - name));
        return skip_aggregate(t + 1, close, depth);
    }
    case '[': {
        const char *p = t + 1;
        unsigned long n = strtoul(p, (char **)&p, 10);
        tbuf esuf = {{0}, 0};
        const char *r = decode_type(p, b, &esuf, depth + 1);
        char num[32];
        snprintf(num, sizeof num, "[%lu]", n);
        tb_cat(suf, num);
        tb_cat(suf, esuf.s);
        if (*r == ']') r++;
        return r;
    }
    case 'b': {
        const char *p = t + 1;
        unsigned long n = strtoul(p, (char **)&p, 10);
        char bits[32];
        snprintf(bits, sizeof bits, ":%lu", n);
        tb_cat(b, "unsigned int");
        tb_cat(suf, bits);
        return p;
    }
    default: {
        char one[8];
        snprintf(one, sizeof one, "?%c", *t);
        tb_cat(b, one);
        return t + 1;
    }
    }
}

static const char *skip_digits(const char *t)
{
    if (*t == '-' || *t == '+') t++;
    while (isdigit((unsigned char)*t)) t++;
    return t;
}

/* "- (double)scaleBy:(double)arg1" from a selector and its method type encoding. */
static void method_decl(char sign, const char *sel, const char *types, char *buf, size_t n)
{
    size_t len = 0;
#define PUT(...)                                                                                     \
    do {                                                                                             \
        int w_ = snprintf(buf + len, len < n ? n - len : 0, __VA_ARGS__);                            \
        if (w_ > 0) len = len + (size_t)w_ < n ? len + (size_t)w_ : n - 1;                           \
    } while (0)
    if (!sel) sel = "?";
    if (!types || !*types) {
        PUT("%c %s", sign, sel);
        return;
    }
    tbuf ret = {{0}, 0}, rs = {{0}, 0};
    const char *t = decode_type(types, &ret, &rs, 0);
    t = skip_digits(t);
    /* self and _cmd */
    for (int k = 0; k < 2 && *t; k++) t = skip_digits(skip_type(t, 0));
    PUT("%c (%s%s)", sign, ret.s, rs.s);
    const char *piece = sel;
    int arg = 1;
    if (!strchr(sel, ':')) {
        PUT("%s", sel);
        return;
    }
    while (*piece) {
        const char *colon = strchr(piece, ':');
        if (!colon) {
            PUT("%s", piece);
            break;
        }
        tbuf at = {{0}, 0}, as = {{0}, 0};
        if (*t) {
            t = decode_type(t, &at, &as, 0);
            t = skip_digits(t);
        } else {
            tb_cat(&at, "id");
        }
        PUT("%s%.*s:(%s%s)arg%d", arg > 1 ? " " : "", (int)(colon - piece), piece, at.s, as.s, arg);
        arg++;
        piece = colon + 1;
    }
#undef PUT
}

/* "@property (readonly, nonatomic) double diameter" from property attributes. */
static void property_decl(const dk_objc_property *pp, char *buf, size_t n)
{
    const char *a = pp->attributes ? pp->attributes : "";
    char attrs[256] = "";
    size_t al = 0;
    tbuf type = {{0}, 0}, suf = {{0}, 0};
    const char *p = a;
    while (*p) {
        const char *e = p;
        /* a T attribute may contain commas inside a quoted class name only; find the field end */
        if (*p == 'T') {
            e = skip_type(p + 1, 0);
            decode_type(p + 1, &type, &suf, 0);
            while (*e && *e != ',') e++;
        } else {
            while (*e && *e != ',') e++;
            const char *word = NULL;
            char tmp[96];
            switch (*p) {
            case 'R': word = "readonly"; break;
            case 'C': word = "copy"; break;
            case '&': word = "retain"; break;
            case 'N': word = "nonatomic"; break;
            case 'W': word = "weak"; break;
            case 'D': word = "dynamic"; break;
            case 'P': word = "garbage-collected"; break;
            case 'G':
            case 'S':
                if (snprintf(tmp, sizeof tmp, "%s=%.*s", *p == 'G' ? "getter" : "setter", (int)(e - p - 1), p + 1) >=
                    (int)sizeof tmp)
                    tmp[sizeof tmp - 1] = 0;
                word = tmp;
                break;
            default: break;
            }
            if (word) {
                int w = snprintf(attrs + al, sizeof attrs - al, "%s%s", al ? ", " : "", word);
                if (w > 0) al = al + (size_t)w < sizeof attrs ? al + (size_t)w : sizeof attrs - 1;
            }
        }
        p = *e ? e + 1 : e;
    }
    if (!type.n) tb_cat(&type, "id");
    /* a longer declaration is cut: it is only for reading */
    if (snprintf(buf, n, "@property %s%s%s%s %s%s", al ? "(" : "", attrs, al ? ") " : "", type.s,
                 pp->name ? pp->name : "?", suf.s) >= (int)n)
        buf[n - 1] = 0;
}

/* ------------------------------------------------------------------ human */

static void human_methods(out *o, const dk_objc_methods *l, char sign, bool imps)
{
    for (size_t i = 0; i < l->count; i++) {
        const dk_objc_method *mt = &l->items[i];
        char decl[1024];
        method_decl(sign, mt->name, mt->types, decl, sizeof decl);
        o_printf(o, "%s;", decl);
        if (imps && mt->has_imp) o_printf(o, "    %s// 0x%" PRIx64 "%s", c_addr(o), mt->imp, c_off(o));
        else if (imps && mt->imp_symbol) o_printf(o, "    %s// -> %s%s", c_dim(o), mt->imp_symbol, c_off(o));
        o_printf(o, "\n");
    }
}

static void human_properties(out *o, const dk_objc_properties *l, bool class_props)
{
    for (size_t i = 0; i < l->count; i++) {
        char decl[1024];
        property_decl(&l->items[i], decl, sizeof decl);
        if (class_props) {
            /* "@property (class, ...)": splice "class" into the attribute list */
            const char *rest = decl + strlen("@property ");
            if (*rest == '(') o_printf(o, "@property (class, %s;", rest + 1);
            else o_printf(o, "@property (class) %s;", rest);
        } else {
            o_printf(o, "%s;", decl);
        }
        o_printf(o, "    %s// %s%s\n", c_dim(o), l->items[i].attributes ? l->items[i].attributes : "", c_off(o));
    }
}

static void human_protocol_list(out *o, const dk_objc_refs *l)
{
    if (!l->count) return;
    o_printf(o, " <");
    for (size_t i = 0; i < l->count; i++) o_printf(o, "%s%s", i ? ", " : "", l->items[i].name ? l->items[i].name : "?");
    o_printf(o, ">");
}

static void human_doc(cli *c, out *o, const dk_objc *objc, dk_objc_abi abi)
{
    const char *H = c_head(o), *OFF = c_off(o), *DIM = c_dim(o), *SYM = c_sym(o);
    size_t ncls, npro, ncat, nsel, ncr, nsr, npr;
    const dk_objc_class *cls = dk_objc_classes(objc, &ncls);
    const dk_objc_protocol *pro = dk_objc_protocols(objc, &npro);
    const dk_objc_category *cat = dk_objc_categories(objc, &ncat);
    const dk_objc_selref *sel = dk_objc_selrefs(objc, &nsel);
    const dk_objc_xref *cr = dk_objc_classrefs(objc, &ncr);
    const dk_objc_xref *sr = dk_objc_superrefs(objc, &nsr);
    const dk_objc_xref *pr = dk_objc_protorefs(objc, &npr);
    const dk_objc_image_info *ii = dk_objc_get_image_info(objc);
    if (abi == DK_OBJC_ABI_NONE) {
        o_printf(o, "%s// no Objective-C metadata%s\n", DIM, OFF);
        return;
    }
    o_printf(o, "%s// %s metadata: %zu classes, %zu protocols, %zu categories, %zu selector references%s\n", DIM,
             abi == DK_OBJC_ABI_1 ? "objc1 (__OBJC segment)" : "objc2", ncls, npro, ncat, nsel, OFF);
    if (ii->present) {
        char fl[256];
        dk_objc_image_flags_string(ii->flags, " ", fl, sizeof fl);
        o_printf(o, "%s// image info: version %u, flags 0x%x%s%s%s%s\n", DIM, ii->version, ii->flags, *fl ? " (" : "", fl,
                 *fl ? ")" : "", OFF);
    }

    for (size_t i = 0; i < npro; i++) {
        const dk_objc_protocol *p = &pro[i];
        o_printf(o, "\n%s@protocol%s %s%s%s", H, OFF, SYM, p->name, OFF);
        human_protocol_list(o, &p->protocols);
        o_printf(o, "    %s// 0x%" PRIx64 "%s\n", c_addr(o), p->address, OFF);
        human_properties(o, &p->properties, false);
        human_properties(o, &p->class_properties, true);
        human_methods(o, &p->class_methods, '+', false);
        human_methods(o, &p->instance_methods, '-', false);
        if (p->optional_class_methods.count || p->optional_instance_methods.count) {
            o_printf(o, "%s@optional%s\n", H, OFF);
            human_methods(o, &p->optional_class_methods, '+', false);
            human_methods(o, &p->optional_instance_methods, '-', false);
        }
        o_printf(o, "%s@end%s\n", H, OFF);
    }

    for (size_t i = 0; i < ncls; i++) {
        const dk_objc_class *k = &cls[i];
        o_printf(o, "\n%s@interface%s %s%s%s", H, OFF, SYM, k->name, OFF);
        if (k->superclass.name) o_printf(o, " : %s", k->superclass.name);
        human_protocol_list(o, &k->protocols);
        o_printf(o, "    %s// 0x%" PRIx64 "%s", c_addr(o), k->address, OFF);
        if (abi == DK_OBJC_ABI_2) {
            char fl[256];
            dk_objc_ro_flags_string(k->flags, " ", fl, sizeof fl);
            o_printf(o, "%s, class_ro_t 0x%" PRIx64 ", flags 0x%x%s%s, instance %u..%u%s%s%s%s\n", DIM, k->data, k->flags,
                     *fl ? " " : "", fl, k->instance_start, k->instance_size,
                     k->swift ? (k->data_bits & 2 ? ", Swift (stable ABI)" : ", Swift (pre-stable ABI)") : "",
                     k->nonlazy ? ", +load" : "", k->superclass.external ? ", superclass imported" : "", OFF);
        } else {
            o_printf(o, "%s, info 0x%x, instance size %u%s\n", DIM, k->info, k->instance_size, OFF);
        }
        if (k->ivars.count) {
            o_printf(o, "{\n");
            for (size_t v = 0; v < k->ivars.count; v++) {
                const dk_objc_ivar *iv = &k->ivars.items[v];
                tbuf t = {{0}, 0}, s = {{0}, 0};
                decode_type(iv->type ? iv->type : "?", &t, &s, 0);
                o_printf(o, "    %s %s%s;", t.s, iv->name ? iv->name : "?", s.s);
                if (iv->has_offset) o_printf(o, "    %s// +%u", DIM, iv->offset);
                else o_printf(o, "    %s// no offset", DIM);
                if (abi == DK_OBJC_ABI_2) o_printf(o, ", size %u, type %s", iv->size, iv->type ? iv->type : "?");
                o_printf(o, "%s\n", OFF);
            }
            o_printf(o, "}\n");
        }
        human_properties(o, &k->properties, false);
        human_properties(o, &k->class_properties, true);
        human_methods(o, &k->class_methods, '+', true);
        human_methods(o, &k->instance_methods, '-', true);
        o_printf(o, "%s@end%s\n", H, OFF);
    }

    for (size_t i = 0; i < ncat; i++) {
        const dk_objc_category *k = &cat[i];
        o_printf(o, "\n%s@interface%s %s%s%s (%s)", H, OFF, SYM, k->cls.name ? k->cls.name : "?", OFF, k->name);
        human_protocol_list(o, &k->protocols);
        o_printf(o, "    %s// 0x%" PRIx64 "%s%s%s\n", c_addr(o), k->address, DIM,
                 k->cls.external ? ", class imported" : k->cls.name ? "" : ", class unknown", OFF);
        human_properties(o, &k->properties, false);
        human_properties(o, &k->class_properties, true);
        human_methods(o, &k->class_methods, '+', true);
        human_methods(o, &k->instance_methods, '-', true);
        o_printf(o, "%s@end%s\n", H, OFF);
    }

    if (c->selectors) {
        o_printf(o, "\n%sSelector references%s (%zu)\n", H, OFF, nsel);
        for (size_t i = 0; i < nsel; i++)
            o_printf(o, "  %s0x%" PRIx64 "%s  %s\n", c_addr(o), sel[i].address, OFF, sel[i].selector ? sel[i].selector : "(null)");
        static const char *const titles[3] = {"Class references", "Superclass references", "Protocol references"};
        const dk_objc_xref *xs[3] = {cr, sr, pr};
        size_t ns[3] = {ncr, nsr, npr};
        for (int k = 0; k < 3; k++) {
            if (!ns[k]) continue;
            o_printf(o, "\n%s%s%s (%zu)\n", H, titles[k], OFF, ns[k]);
            for (size_t i = 0; i < ns[k]; i++)
                o_printf(o, "  %s0x%" PRIx64 "%s  %s%s%s%s\n", c_addr(o), xs[k][i].address, OFF,
                         xs[k][i].ref.name ? xs[k][i].ref.name : "(null)", DIM,
                         xs[k][i].ref.external ? "  (imported)" : "", OFF);
        }
    } else if (nsel || ncr || nsr || npr) {
        o_printf(o, "\n%s// %zu selector, %zu class, %zu superclass, %zu protocol references (--selectors lists them)%s\n",
                 DIM, nsel, ncr, nsr, npr, OFF);
    }
}

/*
 * For an image of a CACHE:IMAGE argument: the cache's selector base for relative
 * method lists with direct selectors (objc_opt_t v16 / ObjCOptimizationHeader).
 * The cache is the first prefix of ARG before a ':' that opens as one, as the
 * argument was resolved; caches without the field leave OPTS untouched.
 */
static void cache_selector_base(const char *arg, dk_objc_options *opts)
{
    size_t len = strlen(arg);
    char *prefix = malloc(len + 1);
    if (!prefix) return;
    for (const char *colon = strchr(arg, ':'); colon; colon = strchr(colon + 1, ':')) {
        memcpy(prefix, arg, (size_t)(colon - arg));
        prefix[colon - arg] = 0;
        dk_cache *cache;
        if (dk_cache_open(prefix, &cache, NULL) != DK_OK) continue;
        dk_cache_objc_opt opt;
        if (dk_cache_objc_opt_info(cache, &opt, NULL) == DK_OK && opt.selector_base) {
            opts->has_selector_base = true;
            opts->selector_base = opt.selector_base;
        }
        dk_cache_close(cache);
        break;
    }
    free(prefix);
}

static dk_status do_objc(cli *c, dk_macho *m, const dk_slice *s, dk_error *err)
{
    (void)s;
    dk_objc *objc;
    dk_objc_options opts = {0};
    if (dk_macho_in_cache(m) && c->npos > 0) cache_selector_base(c->pos[0], &opts);
    dk_status st = dk_objc_open(m, &opts, &objc, err);
    if (st) return st;
    dk_objc_abi abi = dk_objc_get_abi(objc);
    if (c->o.json) json_doc(&c->o, objc, abi);
    else human_doc(c, &c->o, objc, abi);
    dk_objc_close(objc);
    return DK_OK;
}

static int cmd_objc(cli *c) { return cli_each_slice(c, do_objc); }

const command cmds_objc[] = {
    {"objc", cmd_objc, "[--json] [--arch A] [--selectors] FILE", MACHO_OPTS ",selectors",
     "Objective-C classes, protocols, categories and selector references",
     "Decode the Objective-C metadata of an image like a class dump: classes\n"
     "(__objc_classlist, __objc_nlclslist) with superclass, protocols, ivars\n"
     "(offset, size), properties and instance/class methods with their\n"
     "implementation addresses, from pointer or relative method lists;\n"
     "protocols (__objc_protolist) with required/optional methods and\n"
     "properties; categories (__objc_catlist); the objc_image_info flags.\n"
     "Pointers are read after fixups (classic opcodes or chained fixups, arm64e\n"
     "included): external classes are named by their bound _OBJC_CLASS_$_ symbol.\n"
     "32-bit objc1 images (__OBJC segment) are decoded too, and so is an image\n"
     "inside a dyld shared cache given as CACHE:IMAGE.\n\n"
     "  --selectors  also list every selector reference (__objc_selrefs) with its\n"
     "               string, and the class, superclass and protocol references\n"
     "  --json       the document of docs/interface.md (`objc --json`)\n"},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
