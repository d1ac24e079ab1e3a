/*
 * The symbol table (LC_SYMTAB: nlist / nlist_64 of <mach-o/nlist.h>) and the
 * indirect symbol table (LC_DYSYMTAB indirectsymoff).
 *
 * nlist:    n_strx u32 @0, n_type u8 @4, n_sect u8 @5, n_desc u16 @6, n_value u32 @8   (12 bytes)
 * nlist_64: n_strx u32 @0, n_type u8 @4, n_sect u8 @5, n_desc u16 @6, n_value u64 @8   (16 bytes)
 */
#include "macho_internal.h"

int dk_symbol_library_ordinal(const dk_macho *m, const dk_symbol *s)
{
    (void)m;
    unsigned ord = (s->desc >> 8) & 0xff; /* GET_LIBRARY_ORDINAL */
    if (ord == EXECUTABLE_ORDINAL) return -1;
    if (ord == DYNAMIC_LOOKUP_ORDINAL) return -2;
    return (int)ord;
}

/* Free the partly built table after the message (which may quote its names) is formatted. */
static dk_status free_and(dk_symbol *syms, dk_status st)
{
    free(syms);
    return st;
}

dk_status dk_macho_symbols(dk_macho *m, const dk_symbol **out, size_t *count, dk_error *err)
{
    if (m->syms_done) {
        *out = m->syms;
        *count = m->nsyms;
        return DK_OK;
    }
    *out = NULL;
    *count = 0;
    if (!m->symtab.present) {
        m->syms_done = true;
        return DK_OK;
    }
    uint32_t n = m->symtab.nsyms, esize = m->hdr.is64 ? 16 : 12;
    const uint8_t *tab = dk__linkedit(m, m->symtab.symoff, (uint64_t)n * esize);
    if (!tab)
        return dk_fail(err, DK_E_MALFORMED, "LC_SYMTAB: symoff 0x%x + %u entries not inside the image's LINKEDIT",
                       m->symtab.symoff, n);
    const uint8_t *str = dk__linkedit(m, m->symtab.stroff, m->symtab.strsize);
    if (!str && m->symtab.strsize)
        return dk_fail(err, DK_E_MALFORMED, "LC_SYMTAB: stroff 0x%x + strsize 0x%x not inside the image's LINKEDIT",
                       m->symtab.stroff, m->symtab.strsize);
    uint32_t strsize = m->symtab.strsize;
    dk_symbol *syms = calloc(n ? n : 1, sizeof *syms);
    if (!syms) return dk_fail(err, DK_E_NOMEM, "out of memory for %u symbols", n);
    bool twolevel = (m->hdr.flags & MH_TWOLEVEL) != 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = tab + (size_t)i * esize;
        dk_symbol *s = &syms[i];
        uint64_t at = (uint64_t)m->symtab.symoff + (uint64_t)i * esize;
        s->strx = dk_rd32(m->be, e);
        s->type = e[4];
        s->sect = e[5];
        s->desc = dk_rd16(m->be, e + 6);
        s->value = m->hdr.is64 ? dk_rd64(m->be, e + 8) : dk_rd32(m->be, e + 8);
        if (s->strx >= strsize && !(s->strx == 0 && strsize == 0)) {
            return free_and(syms, dk_fail(err, DK_E_MALFORMED, "symbol %u (nlist at offset 0x%llx): n_strx 0x%x past the string table (strsize 0x%x)",
                           i, (unsigned long long)at, s->strx, strsize));
        }
        if (strsize) {
            const char *nm = (const char *)str + s->strx;
            if (!memchr(nm, 0, strsize - s->strx)) {
                /* the last name may run to the end of the table (LLVM accepts it): keep a terminated copy */
                char *copy = strndup(nm, strsize - s->strx);
                char **slot = copy ? dk_vec_push(&m->owned, sizeof(char *)) : NULL;
                if (!slot) {
                    free(copy);
                    return free_and(syms, dk_fail(err, DK_E_NOMEM, "out of memory"));
                }
                *slot = copy;
                nm = copy;
            }
            s->name = nm;
        } else {
            s->name = "";
        }
        if (!(s->type & N_STAB)) {
            uint8_t t = s->type & N_TYPE;
            if (t == N_SECT && (s->sect == 0 || s->sect > m->nsects) && !m->in_cache) {
                return free_and(syms, dk_fail(err, DK_E_MALFORMED, "symbol %u (%s, nlist at offset 0x%llx): n_sect %u for N_SECT symbol, image has %zu sections",
                               i, s->name, (unsigned long long)at, s->sect, m->nsects));
            }
            if (t == N_INDR && s->value >= strsize) {
                return free_and(syms, dk_fail(err, DK_E_MALFORMED, "symbol %u (%s, nlist at offset 0x%llx): N_INDR n_value 0x%llx past the string table",
                               i, s->name, (unsigned long long)at, (unsigned long long)s->value));
            }
            if (t == N_UNDF && twolevel && (s->type & N_EXT) && m->hdr.filetype != MH_OBJECT) {
                int ord = dk_symbol_library_ordinal(m, s);
                if (ord > 0 && (size_t)ord > m->ndylibs) {
                    return free_and(syms, dk_fail(err, DK_E_MALFORMED, "symbol %u (%s, nlist at offset 0x%llx): library ordinal %d but only %zu dylibs",
                                   i, s->name, (unsigned long long)at, ord, m->ndylibs));
                }
            }
        }
    }
    m->syms = syms;
    m->nsyms = n;
    m->syms_done = true;
    *out = syms;
    *count = n;
    return DK_OK;
}

dk_status dk_macho_indirect_symbols(dk_macho *m, const uint32_t **out, size_t *count, dk_error *err)
{
    if (m->indirect_done) {
        *out = m->indirect;
        *count = m->nindirect;
        return DK_OK;
    }
    *out = NULL;
    *count = 0;
    if (!m->dysymtab.present || m->dysymtab.nindirectsyms == 0) {
        m->indirect_done = true;
        return DK_OK;
    }
    uint32_t n = m->dysymtab.nindirectsyms;
    const uint8_t *p = dk__linkedit(m, m->dysymtab.indirectsymoff, (uint64_t)n * 4);
    if (!p)
        return dk_fail(err, DK_E_MALFORMED, "LC_DYSYMTAB: indirectsymoff 0x%x + %u entries not inside the image's LINKEDIT",
                       m->dysymtab.indirectsymoff, n);
    uint32_t *t = malloc((size_t)n * 4);
    if (!t) return dk_fail(err, DK_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) t[i] = dk_rd32(m->be, p + 4 * (size_t)i);
    m->indirect = t;
    m->nindirect = n;
    m->indirect_done = true;
    *out = t;
    *count = n;
    return DK_OK;
}
