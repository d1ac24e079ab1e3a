/*
 * LC_DYLD_CHAINED_FIXUPS: the header, the imports table, every segment / page
 * / chain entry, the fixups they produce and pointer reads through them; plus
 * the pure decoder dk_chained_decode on raw words of the input in every
 * pointer format.
 */
#include "fuzz.h"

static int chain_cb(void *ctx, const dk_chain_item *it)
{
    (void)ctx;
    fz_sink += it->event + it->page_index + it->page_start + it->next;
    if (it->starts) fz_sink += it->starts->page_count + it->starts->segment_offset;
    if (it->fixup) fz_fixup_cb(NULL, it->fixup);
    return 0;
}

static void walk(dk_macho *m)
{
    dk_error e = {0};
    dk_chained_header h;
    dk_status st = dk_macho_chained_header(m, &h, &e);
    fz_check(st, &e);
    const dk_chained_import *imp;
    size_t n;
    st = dk_macho_chained_imports(m, &imp, &n, &e);
    fz_check(st, &e);
    if (st == DK_OK)
        for (size_t i = 0; i < n; i++) fz_str(imp[i].name);
    st = dk_macho_foreach_chain(m, chain_cb, NULL, &e);
    fz_check(st, &e);
    fz_addrs x = {{0}, 0, 0, 0};
    st = dk_macho_foreach_fixup(m, fz_collect_cb, &x, &e);
    /* checking only (no callback: the chain walk's other compiled form) finds
       exactly what the full walk finds */
    dk_error e2 = {0};
    dk_status st2 = dk_macho_foreach_fixup(m, NULL, NULL, &e2);
    if (st2 != st || (st && strcmp(e.message, e2.message) != 0)) abort();
    fz_check(st, &e);
    for (size_t i = 0; i < x.n; i++) {
        const dk_fixup *f;
        fz_check(st = dk_macho_fixup_at(m, x.a[i], &f, &e), &e);
        dk_pointer p;
        st = dk_macho_read_pointer(m, x.a[i], &p, &e);
        fz_check(st, &e);
        if (st == DK_OK) fz_str(p.symbol);
    }
}

static void decode_words(const uint8_t *data, size_t size)
{
    static const uint64_t segs[4] = {0, 0x4000, 0x8000, 0x100000000ull};
    size_t words = size / 8 < 64 ? size / 8 : 64;
    for (uint16_t fmt = 0; fmt <= 16; fmt++) {
        fz_str(dk_pointer_format_name(fmt));
        fz_sink += dk_pointer_format_stride(fmt);
        for (size_t i = 0; i < words; i++) {
            uint64_t raw = 0;
            for (int k = 7; k >= 0; k--) raw = raw << 8 | data[i * 8 + (size_t)k];
            dk_fixup f;
            uint32_t next;
            dk_status st = dk_chained_decode(fmt, raw, 0x100000000ull, segs, 4, (uint32_t)raw, &f, &next);
            if (st == DK_OK) fz_sink += f.target + (uint64_t)f.addend + f.import_index + next;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_each_macho(data, size, walk);
    decode_words(data, size);
    return 0;
}
