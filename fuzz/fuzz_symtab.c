/*
 * The symbol tables: LC_SYMTAB nlist entries and their strings,
 * LC_DYSYMTAB's indirect symbol table, library ordinals of undefined symbols.
 */
#include "fuzz.h"

static void walk(dk_macho *m)
{
    dk_error e = {0};
    const dk_symbol *syms;
    size_t n;
    dk_status st = dk_macho_symbols(m, &syms, &n, &e);
    fz_check(st, &e);
    if (st == DK_OK) {
        for (size_t i = 0; i < n; i++) {
            fz_str(syms[i].name);
            fz_sink += syms[i].value + (uint64_t)dk_symbol_library_ordinal(m, &syms[i]);
        }
        /* cached: a second call returns the same table */
        const dk_symbol *again;
        size_t n2;
        if (dk_macho_symbols(m, &again, &n2, &e) != DK_OK || again != syms || n2 != n) abort();
    }
    const uint32_t *ind;
    st = dk_macho_indirect_symbols(m, &ind, &n, &e);
    fz_check(st, &e);
    if (st == DK_OK) fz_touch(ind, n * sizeof *ind);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_each_macho(data, size, walk);
    return 0;
}
