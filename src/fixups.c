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

static int collect(void *ctx, const dk_fixup *f)
{
    dk_vec *v = ctx;
    if (f->strong) return 0; /* no location */
    dk_fixup *d = dk_vec_push(v, sizeof *d);
    if (!d) return 1;
    *d = *f;
    return 0;
}

static int by_address(const void *a, const void *b)
{
    const dk_fixup *x = a, *y = b;
    if (x->address != y->address) return x->address < y->address ? -1 : 1;
    /* a later-applied kind wins: bind over rebase, lazy over bind */
    return (int)x->kind - (int)y->kind;
}

static dk_status build_index(dk_macho *m, dk_error *err)
{
    if (m->fixidx_done) return DK_OK;
    dk_vec v = {0};
    dk_status st = dk_macho_foreach_fixup(m, collect, &v, err);
    if (st == DK_E_STOPPED) st = dk_fail(err, DK_E_NOMEM, "out of memory building the fixup index");
    if (st) {
        dk_vec_free(&v);
        return st;
    }
    if (v.len) qsort(v.data, v.len, sizeof(dk_fixup), by_address);
    m->fixidx = v.data;
    m->nfixidx = v.len;
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
