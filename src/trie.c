/*
 * The export trie (LC_DYLD_INFO export_off or LC_DYLD_EXPORTS_TRIE), as dyld
 * reads it: each node is
 *   ULEB terminal_size; [terminal: ULEB flags; REEXPORT: ULEB ordinal, cstring
 *   imported name | STUB_AND_RESOLVER: ULEB stub offset, ULEB resolver offset |
 *   otherwise ULEB address (FUNCTION_VARIANT: then ULEB table index)];
 *   u8 child_count; child_count x {cstring edge, ULEB child node offset}.
 * Walks are iterative with a bounded depth; a node reached twice is an error
 * (a trie is a tree), so hostile tries cannot loop or explode.
 */
#include "macho_internal.h"

typedef struct trie_frame {
    uint32_t node;       /* node offset */
    uint32_t next_child; /* offset of the next child entry to visit */
    uint32_t remaining;  /* children left */
    size_t name_len;     /* length of the name prefix at this node */
} trie_frame;

typedef struct trie_ctx {
    const uint8_t *trie;
    size_t size;
    uint64_t base;
    long max_ordinal; /* -1: do not check re-export ordinals */
    dk_error *err;
} trie_ctx;

/* Parse the terminal info of the node at OFF; *CHILDREN receives the offset of its child count byte. */
static dk_status parse_node(const trie_ctx *t, uint32_t off, dk_export *e, bool *terminal, uint32_t *children,
                            const char *name)
{
    const uint8_t *p = t->trie + off, *end = t->trie + t->size;
    uint64_t tsize;
    if (!dk_uleb(&p, end, &tsize))
        return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: malformed ULEB128 terminal size", off);
    if (tsize > (uint64_t)(end - p))
        return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: terminal size %llu extends past the end of the trie",
                       off, (unsigned long long)tsize);
    const uint8_t *tend = p + tsize;
    *terminal = tsize != 0;
    memset(e, 0, sizeof *e);
    e->node_offset = off;
    if (tsize) {
        uint64_t flags;
        if (!dk_uleb(&p, tend, &flags))
            return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): malformed ULEB128 flags", off, name);
        e->raw_flags = flags;
        unsigned kind = flags & EXPORT_SYMBOL_FLAGS_KIND_MASK;
        if (kind == 3)
            return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): unknown kind 3 in flags 0x%llx", off,
                           name, (unsigned long long)flags);
        if (flags & ~(uint64_t)0x3f)
            return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): unknown flags 0x%llx", off, name,
                           (unsigned long long)flags);
        if (kind == EXPORT_SYMBOL_FLAGS_KIND_THREAD_LOCAL) e->flags |= DK_EXPORT_TLS;
        if (kind == EXPORT_SYMBOL_FLAGS_KIND_ABSOLUTE) e->flags |= DK_EXPORT_ABSOLUTE;
        if (flags & EXPORT_SYMBOL_FLAGS_WEAK_DEFINITION) e->flags |= DK_EXPORT_WEAK;
        if (flags & EXPORT_SYMBOL_FLAGS_REEXPORT) {
            e->flags |= DK_EXPORT_REEXPORT;
            uint64_t ord;
            if (!dk_uleb(&p, tend, &ord))
                return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): malformed re-export ordinal", off, name);
            if (t->max_ordinal >= 0 && (ord == 0 || ord > (uint64_t)t->max_ordinal))
                return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): re-export library ordinal %llu but only %ld dylibs",
                               off, name, (unsigned long long)ord, t->max_ordinal);
            e->ordinal = (int)ord;
            const uint8_t *z = memchr(p, 0, (size_t)(tend - p));
            if (!z)
                return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): re-export imported name extends past the terminal info",
                               off, name);
            e->imported_name = (const char *)p;
            p = z + 1;
        } else {
            uint64_t v;
            if (!dk_uleb(&p, tend, &v))
                return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): malformed ULEB128 address", off, name);
            e->offset = v;
            e->address = kind == EXPORT_SYMBOL_FLAGS_KIND_ABSOLUTE ? v : t->base + v;
            if (flags & EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER) {
                e->flags |= DK_EXPORT_RESOLVER;
                uint64_t r;
                if (!dk_uleb(&p, tend, &r))
                    return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): malformed ULEB128 resolver offset",
                                   off, name);
                e->resolver = t->base + r;
            } else if (flags & EXPORT_SYMBOL_FLAGS_FUNCTION_VARIANT) {
                e->flags |= DK_EXPORT_FUNCTION_VARIANT;
                if (!dk_uleb(&p, tend, &e->function_variant))
                    return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): malformed function variant index",
                                   off, name);
            }
        }
        if (p != tend)
            return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x (%s): terminal size %llu does not match its %u bytes of info",
                           off, name, (unsigned long long)tsize, (unsigned)(p - (tend - tsize)));
    }
    *children = (uint32_t)(tend - t->trie);
    if (*children >= t->size)
        return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: child count past the end of the trie", off);
    if (!tsize && off != 0 && t->trie[*children] == 0)
        return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x is neither an export nor has children", off);
    return DK_OK;
}

static dk_status trie_walk(const trie_ctx *t, dk_export_cb cb, void *ctx)
{
    if (t->size == 0) return DK_OK;
    dk_status st = DK_OK;
    size_t nbits = (t->size + 7) / 8;
    uint8_t *visited = calloc(nbits, 1);
    char *name = malloc(DK_MAX_SYMBOL_NAME + 1);
    trie_frame *stack = malloc(sizeof(trie_frame) * (DK_MAX_TRIE_DEPTH + 1));
    if (!visited || !name || !stack) {
        st = dk_fail(t->err, DK_E_NOMEM, "out of memory");
        goto out;
    }
    name[0] = 0;
    int depth = 0;
    uint32_t node = 0;
    size_t len = 0;
    for (;;) {
        /* enter NODE with name[0..len) */
        if (visited[node / 8] & (1u << (node % 8))) {
            st = dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x reached twice (loop or shared node)", node);
            goto out;
        }
        visited[node / 8] |= (uint8_t)(1u << (node % 8));
        dk_export e;
        bool terminal;
        uint32_t children;
        name[len] = 0;
        if ((st = parse_node(t, node, &e, &terminal, &children, name))) goto out;
        if (terminal) {
            e.name = name;
            if (e.flags & DK_EXPORT_REEXPORT && (!e.imported_name || !*e.imported_name)) e.imported_name = name;
            if (cb(ctx, &e)) {
                st = DK_E_STOPPED;
                goto out;
            }
        }
        stack[depth].node = node;
        stack[depth].remaining = t->trie[children];
        stack[depth].next_child = children + 1;
        stack[depth].name_len = len;
        /* find the next child to descend into, popping finished frames */
        for (;;) {
            trie_frame *f = &stack[depth];
            if (f->remaining == 0) {
                if (depth == 0) goto out;
                depth--;
                continue;
            }
            f->remaining--;
            const uint8_t *p = t->trie + f->next_child, *end = t->trie + t->size;
            if (f->next_child >= t->size) {
                st = dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: children extend past the end of the trie", f->node);
                goto out;
            }
            const uint8_t *z = memchr(p, 0, (size_t)(end - p));
            if (!z) {
                st = dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: edge string at offset 0x%x extends past the end of the trie",
                             f->node, f->next_child);
                goto out;
            }
            size_t elen = (size_t)(z - p);
            if (f->name_len + elen > DK_MAX_SYMBOL_NAME) {
                st = dk_fail(t->err, DK_E_LIMIT, "export trie: name longer than %d bytes at node 0x%x", DK_MAX_SYMBOL_NAME, f->node);
                goto out;
            }
            memcpy(name + f->name_len, p, elen);
            const uint8_t *q = z + 1;
            uint64_t child;
            if (!dk_uleb(&q, end, &child)) {
                st = dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: malformed ULEB128 child offset", f->node);
                goto out;
            }
            f->next_child = (uint32_t)(q - t->trie);
            if (child >= t->size) {
                st = dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: child offset 0x%llx past the end of the trie (0x%zx)",
                             f->node, (unsigned long long)child, t->size);
                goto out;
            }
            if (depth + 1 > DK_MAX_TRIE_DEPTH) {
                st = dk_fail(t->err, DK_E_LIMIT, "export trie: deeper than %d edges at node 0x%x", DK_MAX_TRIE_DEPTH, f->node);
                goto out;
            }
            len = f->name_len + elen;
            node = (uint32_t)child;
            depth++;
            break;
        }
    }
out:
    free(visited);
    free(name);
    free(stack);
    return st;
}

static dk_status trie_find(const trie_ctx *t, const char *sym, dk_export *out)
{
    if (t->size == 0) return DK_E_NOTFOUND;
    uint32_t node = 0;
    const char *s = sym;
    for (unsigned depth = 0; depth <= DK_MAX_TRIE_DEPTH; depth++) {
        dk_export e;
        bool terminal;
        uint32_t children;
        dk_status st = parse_node(t, node, &e, &terminal, &children, sym);
        if (st) return st;
        if (*s == 0) {
            if (!terminal) return DK_E_NOTFOUND;
            e.name = sym;
            if (e.flags & DK_EXPORT_REEXPORT && (!e.imported_name || !*e.imported_name)) e.imported_name = sym;
            *out = e;
            return DK_OK;
        }
        const uint8_t *p = t->trie + children + 1, *end = t->trie + t->size;
        unsigned n = t->trie[children];
        bool found = false;
        for (unsigned k = 0; k < n; k++) {
            const uint8_t *z = memchr(p, 0, (size_t)(end - p));
            if (!z) return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: edge string extends past the end", node);
            size_t elen = (size_t)(z - p);
            const uint8_t *q = z + 1;
            uint64_t child;
            if (!dk_uleb(&q, end, &child))
                return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: malformed ULEB128 child offset", node);
            if (elen && strncmp(s, (const char *)p, elen) == 0) {
                if (child >= t->size)
                    return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x: child offset past the end", node);
                if (child == node) return dk_fail(t->err, DK_E_MALFORMED, "export trie: node at offset 0x%x loops to itself", node);
                s += elen;
                node = (uint32_t)child;
                found = true;
                break;
            }
            p = q;
        }
        if (!found) return DK_E_NOTFOUND;
    }
    return dk_fail(t->err, DK_E_LIMIT, "export trie: lookup of %s deeper than %d edges", sym, DK_MAX_TRIE_DEPTH);
}

dk_status dk_trie_foreach(const uint8_t *trie, size_t size, uint64_t base, dk_export_cb cb, void *ctx, dk_error *err)
{
    trie_ctx t = {trie, size, base, -1, err};
    return trie_walk(&t, cb, ctx);
}

dk_status dk_trie_find(const uint8_t *trie, size_t size, uint64_t base, const char *name, dk_export *out, dk_error *err)
{
    trie_ctx t = {trie, size, base, -1, err};
    return trie_find(&t, name, out);
}

static bool macho_trie(const dk_macho *m, const uint8_t **p, size_t *size, dk_error *err, dk_status *st)
{
    *st = DK_OK;
    const dk_blob *b = m->exports_trie.present ? &m->exports_trie
                       : (m->dyld_info.present && m->dyld_info.export_.size) ? &m->dyld_info.export_ : NULL;
    if (!b || !b->size) return false;
    *p = dk__linkedit(m, b->off, b->size);
    *size = b->size;
    if (!*p) {
        *st = dk_fail(err, DK_E_MALFORMED, "export trie 0x%x+0x%x not inside the image's LINKEDIT", b->off, b->size);
        return false;
    }
    return true;
}

bool dk_macho_has_exports_trie(const dk_macho *m)
{
    return (m->exports_trie.present && m->exports_trie.size) || (m->dyld_info.present && m->dyld_info.export_.size);
}

dk_status dk_macho_foreach_export(const dk_macho *m, dk_export_cb cb, void *ctx, dk_error *err)
{
    const uint8_t *p;
    size_t size;
    dk_status st;
    if (!macho_trie(m, &p, &size, err, &st)) return st;
    trie_ctx t = {p, size, m->base, (long)m->ndylibs, err};
    return trie_walk(&t, cb, ctx);
}

dk_status dk_macho_find_export(const dk_macho *m, const char *name, dk_export *out, dk_error *err)
{
    const uint8_t *p;
    size_t size;
    dk_status st;
    if (!macho_trie(m, &p, &size, err, &st)) return st ? st : DK_E_NOTFOUND;
    trie_ctx t = {p, size, m->base, (long)m->ndylibs, err};
    return trie_find(&t, name, out);
}
