/*
 * LC_DYLD_INFO(_ONLY): the raw rebase / bind / weak-bind / lazy-bind opcode
 * streams, the fixups they produce, the address index built over them and
 * pointer reads through it.
 */
#include "fuzz.h"

static int opcode_cb(void *ctx, const dk_opcode *op)
{
    (void)ctx;
    fz_str(op->name);
    fz_str(op->symbol);
    fz_sink += op->offset + op->length + op->args[0] + op->args[1];
    return 0;
}

static void walk(dk_macho *m)
{
    dk_error e = {0};
    for (int s = DK_STREAM_REBASE; s <= DK_STREAM_LAZY_BIND; s++) {
        uint32_t off, sz;
        fz_str(dk_opcode_stream_name((dk_opcode_stream)s));
        if (dk_macho_opcode_stream(m, (dk_opcode_stream)s, &off, &sz)) fz_sink += off + sz;
        dk_status st = dk_macho_foreach_opcode(m, (dk_opcode_stream)s, opcode_cb, NULL, &e);
        fz_check(st, &e);
    }
    fz_sink += dk_macho_fixup_encoding(m);
    fz_addrs x = {{0}, 0, 0, 0};
    dk_status st = dk_macho_foreach_fixup(m, fz_collect_cb, &x, &e);
    /* checking only (no callback; the CLI's first pass) finds exactly what the
       full walk finds, on an image that has not been walked yet */
    dk_macho *fresh = fz_reopen();
    if (fresh) {
        dk_error e2 = {0};
        dk_status st2 = dk_macho_foreach_fixup(fresh, NULL, NULL, &e2);
        if (st2 != st || (st && strcmp(e.message, e2.message) != 0)) abort();
        /* a walk after one that passed skips the location checks: the same fixups */
        fz_addrs y = {{0}, 0, 0, 0};
        st2 = dk_macho_foreach_fixup(fresh, fz_collect_cb, &y, &e2);
        if (st2 != st || (st == DK_OK && (y.count != x.count || y.hash != x.hash))) abort();
        dk_macho_close(fresh);
    }
    fz_check(st, &e);
    for (size_t i = 0; i < x.n; i++) {
        const dk_fixup *f;
        st = dk_macho_fixup_at(m, x.a[i], &f, &e);
        fz_check(st, &e);
        if (st == DK_OK && f) fz_fixup_cb(NULL, f);
        dk_pointer p;
        st = dk_macho_read_pointer(m, x.a[i], &p, &e);
        fz_check(st, &e);
        if (st == DK_OK) fz_str(p.symbol);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_each_macho(data, size, walk);
    return 0;
}
