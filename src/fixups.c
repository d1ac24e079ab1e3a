/*
 * The unified fixup view: whatever the encoding (classic opcodes, threaded
 * binds, chained fixups), one stream of dk_fixup records; plus the sorted
 * address index that pointer reads (stubs, ObjC) use.
 */
#include "macho_internal.h"

const char *dk_fixup_kind_name(dk_fixup_kind k)
{
    switch (k) {
    case DK_FIXUP_REBASE: return "rebase";
    case DK_FIXUP_BIND: return "bind";
    case DK_FIXUP_LAZY_BIND: return "lazy_bind";
    case DK_FIXUP_WEAK_BIND: return "weak_bind";
    }
    return "?";
}

const char *dk_key_name(uint8_t key)
{
    static const char *const names[] = {"IA", "IB", "DA", "DB"};
    return names[key & 3];
}

dk_fixup_encoding dk_macho_fixup_encoding(const dk_macho *m)
{
    if (m->chained.present || dk_macho_find_section(m, "__TEXT", "__chain_starts")) return DK_ENCODING_CHAINED;
    if (m->dyld_info.present &&
        (m->dyld_info.rebase.size || m->dyld_info.bind.size || m->dyld_info.weak_bind.size || m->dyld_info.lazy_bind.size))
        return DK_ENCODING_DYLD_INFO;
    return DK_ENCODING_NONE;
}

dk_status dk_macho_foreach_fixup(dk_macho *m, dk_fixup_cb cb, void *ctx, dk_error *err)
{
    dk_status st = DK_OK;
    if (m->dyld_info.present) st = dk__dyldinfo_fixups(m, cb, ctx, err);
    if (!st && (m->chained.present || dk_macho_find_section(m, "__TEXT", "__chain_starts")))
        st = dk__chained_fixups(m, cb, ctx, err);
    return st;
}

typedef struct fix_array {
    dk_fixup *a;
    size_t n, cap;
} fix_array;

static int collect(void *ctx, const dk_fixup *f)
{
    fix_array *x = ctx;
    if (f->strong) return 0; /* strong definitions have no location */
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 4096;
        dk_fixup *a = dk_big_grow(x->a, x->cap * sizeof *a, cap * sizeof *a);
        if (!a) return 1;
        x->a = a;
        x->cap = cap;
    }
    x->a[x->n++] = *f;
    return 0;
}

static int by_address(const void *a, const void *b)
{
    const dk_fixup *x = a, *y = b;
    if (x->address != y->address) return x->address < y->address ? -1 : 1;
    /* a later-applied kind wins: bind over rebase, lazy over bind */
    return (int)x->kind - (int)y->kind;
}

/* Stable merge of the index runs [l, l + nl) and [r, r + nr) (positions in A) into OUT. */
static void merge_runs(const dk_fixup *a, const uint32_t *l, size_t nl, const uint32_t *r, size_t nr, uint32_t *out)
{
    size_t i = 0, j = 0;
    while (i < nl && j < nr) *out++ = by_address(&a[r[j]], &a[l[i]]) < 0 ? r[j++] : l[i++];
    while (i < nl) *out++ = l[i++];
    while (j < nr) *out++ = r[j++];
}

/* Sort the index by address.  Each stream (rebase, bind, weak, lazy; chains
 * page by page) is nearly always in address order already, so the array is a
 * few ascending runs: their positions are merged pairwise (4 bytes per
 * fixup, not the 104-byte records), then the records are permuted in place
 * once.  Many runs (or no memory) fall back to qsort. */
static void sort_index(dk_fixup *a, size_t n)
{
    size_t runs = 1;
    for (size_t i = 1; i < n; i++)
        if (by_address(&a[i - 1], &a[i]) > 0) runs++;
    if (runs == 1) return;
    uint32_t *idx = runs <= 64 && n <= UINT32_MAX ? malloc(2 * n * sizeof *idx) : NULL;
    if (!idx) {
        qsort(a, n, sizeof *a, by_address);
        return;
    }
    uint32_t *src = idx, *dst = idx + n;
    for (size_t i = 0; i < n; i++) src[i] = (uint32_t)i;
    while (runs > 1) {
        size_t i = 0, merged = 0;
        while (i < n) {
            size_t mid = i + 1, end;
            while (mid < n && by_address(&a[src[mid - 1]], &a[src[mid]]) <= 0) mid++;
            for (end = mid + (mid < n); end < n && by_address(&a[src[end - 1]], &a[src[end]]) <= 0;) end++;
            merge_runs(a, src + i, mid - i, src + mid, end - mid, dst + i);
            merged++;
            i = end;
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
        runs = merged;
    }
    /* position k of the result holds record src[k]: follow each cycle once */
    for (size_t k = 0; k < n; k++) {
        if (src[k] == k) continue;
        dk_fixup hold = a[k];
        size_t at = k;
        while (src[at] != k) {
            size_t from = src[at];
            a[at] = a[from];
            src[at] = (uint32_t)at;
            at = from;
        }
        a[at] = hold;
        src[at] = (uint32_t)at;
    }
    free(idx);
}

static dk_status index_failed(dk_macho *m, dk_status st, const dk_error *err)
{
    if (st != DK_E_NOMEM && !m->fixidx_err && (m->fixidx_err = malloc(sizeof *err))) {
        *m->fixidx_err = *err;
        m->fixidx_err->status = st;
    }
    return st;
}

static dk_status build_index(dk_macho *m, dk_error *caller_err)
{
    if (m->fixidx_done) return DK_OK;
    if (m->fixidx_err) {
        if (caller_err) *caller_err = *m->fixidx_err;
        return m->fixidx_err->status;
    }
    dk_error local = {0}, *err = caller_err ? caller_err : &local;
    /* One walk into a block that doubles: a mapped block grows by moving its
     * pages (mremap), so nothing is copied (counting first walked the opcodes
     * twice: a third of `stubs` on a 100,000-stub file). */
    fix_array x = {NULL, 0, 0};
    dk_status st = dk_macho_foreach_fixup(m, collect, &x, err);
    if (st == DK_E_STOPPED) st = dk_fail(err, DK_E_NOMEM, "out of memory building the fixup index (%zu fixups)", x.n);
    if (st) {
        dk_big_free(x.a, x.cap * sizeof(dk_fixup));
        return index_failed(m, st, err);
    }
    if (x.n) sort_index(x.a, x.n);
    m->fixidx = x.a;
    m->nfixidx = x.n;
    m->fixidx_bytes = x.cap * sizeof(dk_fixup);
    m->fixidx_done = true;
    return DK_OK;
}

dk_status dk__fixups_at(dk_macho *m, uint64_t address, const dk_fixup **first, size_t *count, dk_error *err)
{
    *first = NULL;
    *count = 0;
    dk_status st = build_index(m, err);
    if (st) return st;
    size_t lo = 0, hi = m->nfixidx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->fixidx[mid].address < address) lo = mid + 1;
        else hi = mid;
    }
    size_t n = 0;
    while (lo + n < m->nfixidx && m->fixidx[lo + n].address == address) n++;
    if (n) {
        *first = &m->fixidx[lo];
        *count = n;
    }
    return DK_OK;
}

dk_status dk_macho_fixup_at(dk_macho *m, uint64_t address, const dk_fixup **out, dk_error *err)
{
    *out = NULL;
    dk_status st = build_index(m, err);
    if (st) return st;
    size_t lo = 0, hi = m->nfixidx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->fixidx[mid].address < address) lo = mid + 1;
        else hi = mid;
    }
    if (lo >= m->nfixidx || m->fixidx[lo].address != address) return DK_E_NOTFOUND;
    /* prefer the last record at this address (binds override rebases) */
    while (lo + 1 < m->nfixidx && m->fixidx[lo + 1].address == address) lo++;
    *out = &m->fixidx[lo];
    return DK_OK;
}

dk_status dk_macho_read_pointer(dk_macho *m, uint64_t vmaddr, dk_pointer *out, dk_error *err)
{
    memset(out, 0, sizeof *out);
    unsigned width = dk__ptr_size(m);
    uint64_t raw;
    if (!dk__read_word(m, vmaddr, width, &raw))
        return dk_fail(err, DK_E_MALFORMED, "pointer at 0x%llx is outside the image's file-backed segments", (unsigned long long)vmaddr);
    if (m->in_cache) {
        out->kind = DK_PTR_PLAIN;
        out->value = raw;
        if (m->src.decode_ptr) {
            uint64_t v;
            if (m->src.decode_ptr(m->src.map_ctx, vmaddr, raw, &v)) {
                out->kind = DK_PTR_REBASE;
                out->value = v;
            }
        }
        return DK_OK;
    }
    const dk_fixup *f;
    dk_status st = dk_macho_fixup_at(m, vmaddr, &f, err);
    if (st == DK_E_NOTFOUND) {
        out->kind = DK_PTR_PLAIN;
        out->value = raw;
        return DK_OK;
    }
    if (st) return st;
    out->fixup = f;
    if (f->kind == DK_FIXUP_REBASE) {
        out->kind = DK_PTR_REBASE;
        out->value = f->target | ((uint64_t)f->high8 << 56);
    } else {
        out->kind = DK_PTR_BIND;
        out->symbol = f->symbol;
        out->ordinal = f->ordinal;
        out->value = (uint64_t)f->addend;
    }
    return DK_OK;
}
