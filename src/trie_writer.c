/*
 * Export trie builder: the inverse of src/trie.c, laid out as ld64's
 * mach_o::trie::makeTrie and dyld's ExportsTrie parser expect.  Each node is
 *   ULEB terminal_size; [terminal info]; u8 child_count;
 *   child_count x {cstring edge, ULEB child node offset}
 * with terminal info
 *   ULEB flags, then  REEXPORT: ULEB ordinal, cstring imported name ("" when
 *                               the same as the exported name)
 *                     STUB_AND_RESOLVER: ULEB stub offset, ULEB resolver offset
 *                     FUNCTION_VARIANT: ULEB offset, ULEB table index
 *                     otherwise: ULEB offset (or absolute value).
 *
 * The tree is a radix tree (edges carry whole common prefixes) built in one
 * pass over the names in strcmp order: each name shares its longest common
 * prefix with the previous one, so only the rightmost path of the tree is
 * ever split or extended.  Nodes are then laid out breadth-first, children in
 * edge order, and node offsets recomputed until no ULEB child offset changes
 * size (offsets only grow, so this settles after a few passes).  Edges are
 * slices of the entries' names; nothing is allocated per entry.
 */
#include "writer.h"

#include "macho_defs.h"

#define NO_NODE UINT32_MAX

typedef struct tnode {
    const char *name;            /* a name whose first `depth` bytes spell this node's prefix */
    const dk_trie_entry *entry;  /* the export ending here, or NULL */
    uint32_t depth;              /* prefix length */
    uint32_t parent;
    uint32_t first_child, last_child, next_sibling;
    uint32_t nchildren;
    uint32_t level;              /* depth in edges */
} tnode;

/* A node in layout (breadth-first) order: its children are lay[first .. first + count). */
typedef struct lnode {
    const char *name;
    const dk_trie_entry *entry;
    uint64_t offset;
    uint32_t depth, tsize, first, count;
} lnode;

static int cmp_entry_name(const void *a, const void *b)
{
    const dk_trie_entry *x = *(const dk_trie_entry *const *)a, *y = *(const dk_trie_entry *const *)b;
    return strcmp(x->name, y->name);
}

/* The imported name a re-export stores: NULL when it is the exported name itself. */
static const char *stored_import_name(const dk_trie_entry *e)
{
    const char *imp = e->import_name;
    if (!imp || !*imp || strcmp(imp, e->name) == 0) return NULL;
    return imp;
}

static dk_status check_entry(const dk_trie_entry *e, size_t i, dk_error *err)
{
    if (!e->name) return dk_fail(err, DK_E_ARG, "export trie: entry %zu has no name", i);
    size_t len = strlen(e->name);
    if (len > DK_MAX_SYMBOL_NAME)
        return dk_fail(err, DK_E_LIMIT, "export trie: name of entry %zu is %zu bytes, more than the %d a reader accepts", i, len,
                       DK_MAX_SYMBOL_NAME);
    uint64_t f = e->flags;
    if (f & ~(uint64_t)0x3f)
        return dk_fail(err, DK_E_ARG, "export trie: %s: unknown flags 0x%llx", e->name, (unsigned long long)f);
    if ((f & EXPORT_SYMBOL_FLAGS_KIND_MASK) == 3)
        return dk_fail(err, DK_E_ARG, "export trie: %s: flags 0x%llx have the undefined kind 3", e->name, (unsigned long long)f);
    if (f & EXPORT_SYMBOL_FLAGS_REEXPORT) {
        /* dyld tests the kind before REEXPORT, so any other bit would change the meaning */
        if (f & ~(uint64_t)(EXPORT_SYMBOL_FLAGS_REEXPORT | EXPORT_SYMBOL_FLAGS_WEAK_DEFINITION))
            return dk_fail(err, DK_E_ARG, "export trie: %s: re-export flags 0x%llx combine REEXPORT with a kind, resolver or variant",
                           e->name, (unsigned long long)f);
    } else if ((f & EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER) && (f & EXPORT_SYMBOL_FLAGS_FUNCTION_VARIANT)) {
        /* dyld reads a table index, dyldkit a resolver offset: no reader agrees on this */
        return dk_fail(err, DK_E_ARG, "export trie: %s: flags 0x%llx set both STUB_AND_RESOLVER and FUNCTION_VARIANT", e->name,
                       (unsigned long long)f);
    }
    return DK_OK;
}

static uint32_t terminal_size(const dk_trie_entry *e)
{
    uint64_t f = e->flags;
    size_t n = dk_uleb_size(f);
    if (f & EXPORT_SYMBOL_FLAGS_REEXPORT) {
        const char *imp = stored_import_name(e);
        n += dk_uleb_size(e->ordinal) + (imp ? strlen(imp) : 0) + 1;
    } else {
        n += dk_uleb_size(e->address);
        if (f & (EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER | EXPORT_SYMBOL_FLAGS_FUNCTION_VARIANT)) n += dk_uleb_size(e->other);
    }
    return (uint32_t)n; /* a name of at most DK_MAX_SYMBOL_NAME bytes and four ULEBs */
}

static void write_terminal(dk_buf *out, const dk_trie_entry *e, uint32_t tsize)
{
    uint64_t f = e->flags;
    dk_buf_uleb(out, tsize);
    dk_buf_uleb(out, f);
    if (f & EXPORT_SYMBOL_FLAGS_REEXPORT) {
        const char *imp = stored_import_name(e);
        dk_buf_uleb(out, e->ordinal);
        dk_buf_cstr(out, imp ? imp : "");
    } else {
        dk_buf_uleb(out, e->address);
        if (f & (EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER | EXPORT_SYMBOL_FLAGS_FUNCTION_VARIANT)) dk_buf_uleb(out, e->other);
    }
}

static uint32_t new_node(tnode *nodes, uint32_t *count, const char *name, uint32_t depth, uint32_t parent)
{
    uint32_t k = (*count)++;
    tnode *t = &nodes[k];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->depth = depth;
    t->parent = parent;
    t->first_child = t->last_child = t->next_sibling = NO_NODE;
    return k;
}

dk_status dk_trie_build(const dk_trie_entry *entries, size_t n, dk_buf *out, dk_error *err)
{
    size_t start = out->len;
    if (out->oom) return dk_fail(err, DK_E_NOMEM, "export trie: output buffer already out of memory");
    for (size_t i = 0; i < n; i++) {
        dk_status st = check_entry(&entries[i], i, err);
        if (st) return st;
    }
    if (n > (UINT32_MAX - 2) / 2) return dk_fail(err, DK_E_LIMIT, "export trie: %zu entries are too many", n);

    dk_status st = DK_OK;
    const dk_trie_entry **sorted = malloc(sizeof *sorted * (n ? n : 1));
    tnode *nodes = malloc(sizeof *nodes * (2 * n + 1));
    uint32_t *stack = malloc(sizeof *stack * (2 * n + 1)); /* rightmost path, then the breadth-first queue */
    lnode *lay = NULL;
    if (!sorted || !nodes || !stack) {
        st = dk_fail(err, DK_E_NOMEM, "export trie: out of memory for %zu entries", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) sorted[i] = &entries[i];
    qsort(sorted, n, sizeof *sorted, cmp_entry_name);

    /* ---- the radix tree, from names in order */
    uint32_t nnodes = 0;
    new_node(nodes, &nnodes, "", 0, NO_NODE);
    uint32_t sp = 0;
    stack[sp++] = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = sorted[i]->name;
        uint32_t len = (uint32_t)strlen(name), l = 0;
        if (prev) {
            while (prev[l] && prev[l] == name[l]) l++;
            if (!prev[l] && !name[l]) {
                st = dk_fail(err, DK_E_ARG, "export trie: %s is exported twice", name);
                goto out;
            }
        }
        uint32_t last = NO_NODE;
        while (nodes[stack[sp - 1]].depth > l) last = stack[--sp];
        uint32_t top = stack[sp - 1];
        if (nodes[top].depth < l) {
            /* split the edge top -> last at the common prefix */
            uint32_t m = new_node(nodes, &nnodes, nodes[last].name, l, top);
            nodes[last].parent = m;
            stack[sp++] = m;
            top = m;
        }
        if (len == l) {
            nodes[top].entry = sorted[i]; /* only the empty name: it is a prefix of nothing before it */
        } else {
            uint32_t leaf = new_node(nodes, &nnodes, name, len, top);
            nodes[leaf].entry = sorted[i];
            stack[sp++] = leaf;
        }
        prev = name;
    }
    /* Children join their parents in creation order, which is edge order: a
     * node only ever gains a child on its right (a new leaf, or a split node
     * taking the place of its rightmost child). */
    for (uint32_t k = 1; k < nnodes; k++) {
        tnode *p = &nodes[nodes[k].parent];
        if (p->last_child == NO_NODE) p->first_child = k;
        else nodes[p->last_child].next_sibling = k;
        p->last_child = k;
        if (++p->nchildren > 255) {
            st = dk_fail(err, DK_E_LIMIT, "export trie: a node has more than 255 children");
            goto out;
        }
    }
    /* ---- breadth-first order, each node's children side by side; a reader bounds the depth in edges */
    lay = malloc(sizeof *lay * nnodes);
    if (!lay) {
        st = dk_fail(err, DK_E_NOMEM, "export trie: out of memory for %u nodes", nnodes);
        goto out;
    }
    uint32_t *order = stack;
    uint32_t tail = 0;
    order[tail++] = 0;
    for (uint32_t head = 0; head < tail; head++) {
        const tnode *t = &nodes[order[head]];
        lnode *l = &lay[head];
        l->name = t->name;
        l->entry = t->entry;
        l->depth = t->depth;
        l->tsize = t->entry ? terminal_size(t->entry) : 0;
        l->offset = 0;
        l->first = tail;
        l->count = t->nchildren;
        for (uint32_t c = t->first_child; c != NO_NODE; c = nodes[c].next_sibling) {
            nodes[c].level = t->level + 1;
            if (nodes[c].level > DK_MAX_TRIE_DEPTH) {
                st = dk_fail(err, DK_E_LIMIT, "export trie: %.64s... lies %u edges deep, more than the %d a reader accepts",
                             nodes[c].name, nodes[c].level, DK_MAX_TRIE_DEPTH);
                goto out;
            }
            order[tail++] = c;
        }
    }

    /* ---- offsets, until every child offset's ULEB size has settled */
    uint64_t total;
    bool changed;
    do {
        changed = false;
        uint64_t off = 0;
        for (uint32_t i = 0; i < nnodes; i++) {
            lnode *t = &lay[i];
            if (t->offset != off) changed = true;
            t->offset = off;
            uint64_t size = t->tsize ? dk_uleb_size(t->tsize) + t->tsize : 1;
            size += 1;
            for (uint32_t c = t->first; c < t->first + t->count; c++)
                size += (lay[c].depth - t->depth) + 1 + dk_uleb_size(lay[c].offset);
            off += size;
        }
        total = off;
        if (total > UINT32_MAX) {
            st = dk_fail(err, DK_E_LIMIT, "export trie: %llu bytes, more than a 32-bit node offset can address", (unsigned long long)total);
            goto out;
        }
    } while (changed);

    /* ---- the bytes */
    for (uint32_t i = 0; i < nnodes && !out->oom; i++) {
        const lnode *t = &lay[i];
        if (t->entry) write_terminal(out, t->entry, t->tsize);
        else dk_buf_u8(out, 0);
        dk_buf_u8(out, (uint8_t)t->count);
        for (uint32_t c = t->first; c < t->first + t->count; c++) {
            dk_buf_bytes(out, lay[c].name + t->depth, lay[c].depth - t->depth);
            dk_buf_u8(out, 0);
            dk_buf_uleb(out, lay[c].offset);
        }
    }
    if (out->oom) st = dk_fail(err, DK_E_NOMEM, "export trie: out of memory for %llu bytes", (unsigned long long)total);
    else if (out->len - start != total)
        st = dk_fail(err, DK_E_LIMIT, "export trie: internal error: wrote %zu bytes, laid out %llu", out->len - start,
                     (unsigned long long)total);
out:
    if (st && out->len > start) out->len = start; /* no partial trie left behind */
    free(lay);
    free(sorted);
    free(nodes);
    free(stack);
    return st;
}
