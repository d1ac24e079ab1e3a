/*
 * Field-by-field decoding of every load command (<mach-o/loader.h>), for
 * `loadcmds`.  The commands were validated when the image was opened, so the
 * fixed parts and lc_str offsets here are known to be in range.
 */
#include "macho_internal.h"

#include <stdio.h>

const char *dk_loadcmd_name(uint32_t cmd)
{
    switch (cmd) {
#define N(x) case x: return #x;
    N(LC_SEGMENT) N(LC_SYMTAB) N(LC_SYMSEG) N(LC_THREAD) N(LC_UNIXTHREAD) N(LC_LOADFVMLIB) N(LC_IDFVMLIB)
    N(LC_IDENT) N(LC_FVMFILE) N(LC_PREPAGE) N(LC_DYSYMTAB) N(LC_LOAD_DYLIB) N(LC_ID_DYLIB) N(LC_LOAD_DYLINKER)
    N(LC_ID_DYLINKER) N(LC_PREBOUND_DYLIB) N(LC_ROUTINES) N(LC_SUB_FRAMEWORK) N(LC_SUB_UMBRELLA) N(LC_SUB_CLIENT)
    N(LC_SUB_LIBRARY) N(LC_TWOLEVEL_HINTS) N(LC_PREBIND_CKSUM) N(LC_LOAD_WEAK_DYLIB) N(LC_SEGMENT_64)
    N(LC_ROUTINES_64) N(LC_UUID) N(LC_RPATH) N(LC_CODE_SIGNATURE) N(LC_SEGMENT_SPLIT_INFO) N(LC_REEXPORT_DYLIB)
    N(LC_LAZY_LOAD_DYLIB) N(LC_ENCRYPTION_INFO) N(LC_DYLD_INFO) N(LC_DYLD_INFO_ONLY) N(LC_LOAD_UPWARD_DYLIB)
    N(LC_VERSION_MIN_MACOSX) N(LC_VERSION_MIN_IPHONEOS) N(LC_FUNCTION_STARTS) N(LC_DYLD_ENVIRONMENT) N(LC_MAIN)
    N(LC_DATA_IN_CODE) N(LC_SOURCE_VERSION) N(LC_DYLIB_CODE_SIGN_DRS) N(LC_ENCRYPTION_INFO_64) N(LC_LINKER_OPTION)
    N(LC_LINKER_OPTIMIZATION_HINT) N(LC_VERSION_MIN_TVOS) N(LC_VERSION_MIN_WATCHOS) N(LC_NOTE) N(LC_BUILD_VERSION)
    N(LC_DYLD_EXPORTS_TRIE) N(LC_DYLD_CHAINED_FIXUPS) N(LC_FILESET_ENTRY) N(LC_ATOM_INFO) N(LC_FUNCTION_VARIANTS)
    N(LC_FUNCTION_VARIANT_FIXUPS) N(LC_TARGET_TRIPLE)
#undef N
    }
    return NULL;
}

const char *dk_section_type_name(uint32_t t)
{
    static const char *const names[] = {
        "S_REGULAR", "S_ZEROFILL", "S_CSTRING_LITERALS", "S_4BYTE_LITERALS", "S_8BYTE_LITERALS",
        "S_LITERAL_POINTERS", "S_NON_LAZY_SYMBOL_POINTERS", "S_LAZY_SYMBOL_POINTERS", "S_SYMBOL_STUBS",
        "S_MOD_INIT_FUNC_POINTERS", "S_MOD_TERM_FUNC_POINTERS", "S_COALESCED", "S_GB_ZEROFILL", "S_INTERPOSING",
        "S_16BYTE_LITERALS", "S_DTRACE_DOF", "S_LAZY_DYLIB_SYMBOL_POINTERS", "S_THREAD_LOCAL_REGULAR",
        "S_THREAD_LOCAL_ZEROFILL", "S_THREAD_LOCAL_VARIABLES", "S_THREAD_LOCAL_VARIABLE_POINTERS",
        "S_THREAD_LOCAL_INIT_FUNCTION_POINTERS", "S_INIT_FUNC_OFFSETS"};
    t &= SECTION_TYPE;
    return t < sizeof names / sizeof names[0] ? names[t] : "S_UNKNOWN";
}

typedef struct emitter {
    dk_field_cb cb;
    void *ctx;
    bool stop;
} emitter;

static void emit(emitter *e, const dk_field *f)
{
    if (!e->stop && e->cb(e->ctx, f)) e->stop = true;
}
static void f_uint(emitter *e, const char *name, uint64_t v)
{
    dk_field f = {name, DK_FIELD_UINT, v, 0, NULL, 0, NULL};
    emit(e, &f);
}
static void f_hex(emitter *e, const char *name, uint64_t v)
{
    dk_field f = {name, DK_FIELD_HEX, v, 0, NULL, 0, NULL};
    emit(e, &f);
}
static void f_int(emitter *e, const char *name, int64_t v)
{
    dk_field f = {name, DK_FIELD_INT, 0, v, NULL, 0, NULL};
    emit(e, &f);
}
static void f_str(emitter *e, const char *name, const char *s, size_t n)
{
    dk_field f = {name, DK_FIELD_STRING, 0, 0, s, n, NULL};
    emit(e, &f);
}
static void f_cstr(emitter *e, const char *name, const char *s) { f_str(e, name, s, strlen(s)); }
static void f_ver(emitter *e, const char *name, uint32_t v)
{
    dk_field f = {name, DK_FIELD_VERSION, v, 0, NULL, 0, NULL};
    emit(e, &f);
}
static void f_enum(emitter *e, const char *name, uint64_t v, const char *sym)
{
    dk_field f = {name, DK_FIELD_ENUM, v, 0, sym, sym ? strlen(sym) : 0, NULL};
    emit(e, &f);
}
static void f_begin(emitter *e, const char *name)
{
    dk_field f = {name, DK_FIELD_BEGIN, 0, 0, NULL, 0, NULL};
    emit(e, &f);
}
static void f_end(emitter *e)
{
    dk_field f = {"", DK_FIELD_END, 0, 0, NULL, 0, NULL};
    emit(e, &f);
}

/* An lc_str: offset field plus the string (validated at open for the commands we know). */
static void f_lcstr(emitter *e, const dk_loadcmd *lc, bool be, uint32_t at, const char *name)
{
    uint32_t off = dk_rd32(be, lc->data + at);
    char offname[64];
    snprintf(offname, sizeof offname, "%s.offset", name);
    f_uint(e, offname, off);
    if (off < lc->cmdsize) {
        const char *s = (const char *)lc->data + off;
        f_str(e, name, s, strnlen(s, lc->cmdsize - off));
    }
}

static const char *tool_name(uint32_t t)
{
    switch (t) {
    case 1: return "clang";
    case 2: return "swift";
    case 3: return "ld";
    case 4: return "lld";
    case 1024: return "metal";
    case 1025: return "airlld";
    case 1026: return "airnt";
    case 1027: return "airnt-plugin";
    case 1028: return "airpack";
    case 1031: return "gpuarchiver";
    case 1032: return "metal-framework";
    }
    return NULL;
}

static const char *vm_prot(uint32_t p, char buf[4])
{
    buf[0] = (p & 1) ? 'r' : '-';
    buf[1] = (p & 2) ? 'w' : '-';
    buf[2] = (p & 4) ? 'x' : '-';
    buf[3] = 0;
    return buf;
}

static void segment_fields(emitter *e, const dk_macho *m, size_t lcindex)
{
    for (size_t s = 0; s < m->nsegs; s++) {
        const dk_segment *g = &m->segs[s];
        if (g->loadcmd != lcindex) continue;
        char pb[4], ib[4];
        f_cstr(e, "segname", g->segname);
        f_hex(e, "vmaddr", g->vmaddr);
        f_hex(e, "vmsize", g->vmsize);
        f_hex(e, "fileoff", g->fileoff);
        f_hex(e, "filesize", g->filesize);
        f_enum(e, "maxprot", g->maxprot, vm_prot(g->maxprot, pb));
        f_enum(e, "initprot", g->initprot, vm_prot(g->initprot, ib));
        f_uint(e, "nsects", g->nsects);
        f_hex(e, "flags", g->flags);
        for (uint32_t k = 0; k < g->nsects; k++) {
            const dk_section *c = &m->sects[g->first_section + k];
            f_begin(e, "section");
            f_cstr(e, "sectname", c->sectname);
            f_cstr(e, "segname", c->segname);
            f_hex(e, "addr", c->addr);
            f_hex(e, "size", c->size);
            f_hex(e, "offset", c->offset);
            f_uint(e, "align", c->align);
            f_hex(e, "reloff", c->reloff);
            f_uint(e, "nreloc", c->nreloc);
            f_enum(e, "type", c->flags & SECTION_TYPE, dk_section_type_name(c->flags));
            f_hex(e, "attributes", c->flags & ~SECTION_TYPE);
            f_uint(e, "reserved1", c->reserved1);
            f_uint(e, "reserved2", c->reserved2);
            if (m->hdr.is64) f_uint(e, "reserved3", c->reserved3);
            f_end(e);
        }
        return;
    }
}

dk_status dk_macho_loadcmd_fields(const dk_macho *m, size_t index, dk_field_cb cb, void *ctx, dk_error *err)
{
    if (index >= m->ncmds) return dk_fail(err, DK_E_ARG, "load command %zu out of range", index);
    const dk_loadcmd *lc = &m->cmds[index];
    bool be = m->be;
    const uint8_t *p = lc->data;
    emitter e = {cb, ctx, false};
    uint32_t sz = lc->cmdsize;
#define U32(o) ((uint64_t)sz >= (uint64_t)(o) + 4 ? dk_rd32(be, p + (o)) : 0)
#define U64(o) ((uint64_t)sz >= (uint64_t)(o) + 8 ? dk_rd64(be, p + (o)) : 0)
    switch (lc->cmd) {
    case LC_SEGMENT:
    case LC_SEGMENT_64:
        segment_fields(&e, m, index);
        break;
    case LC_SYMTAB:
        f_hex(&e, "symoff", U32(8));
        f_uint(&e, "nsyms", U32(12));
        f_hex(&e, "stroff", U32(16));
        f_uint(&e, "strsize", U32(20));
        break;
    case LC_DYSYMTAB: {
        static const char *const names[] = {"ilocalsym", "nlocalsym", "iextdefsym", "nextdefsym", "iundefsym",
                                            "nundefsym", "tocoff", "ntoc", "modtaboff", "nmodtab", "extrefsymoff",
                                            "nextrefsyms", "indirectsymoff", "nindirectsyms", "extreloff", "nextrel",
                                            "locreloff", "nlocrel"};
        for (int k = 0; k < 18; k++) {
            bool off = strstr(names[k], "off") != NULL;
            if (off) f_hex(&e, names[k], U32(8 + 4 * k));
            else f_uint(&e, names[k], U32(8 + 4 * k));
        }
        break;
    }
    case LC_LOAD_DYLIB: case LC_ID_DYLIB: case LC_LOAD_WEAK_DYLIB: case LC_REEXPORT_DYLIB: case LC_LAZY_LOAD_DYLIB:
    case LC_LOAD_UPWARD_DYLIB:
        f_lcstr(&e, lc, be, 8, "name");
        f_uint(&e, "timestamp", U32(12));
        f_ver(&e, "current_version", U32(16));
        f_ver(&e, "compatibility_version", U32(20));
        break;
    case LC_LOAD_DYLINKER: case LC_ID_DYLINKER: case LC_DYLD_ENVIRONMENT:
        f_lcstr(&e, lc, be, 8, "name");
        break;
    case LC_RPATH: f_lcstr(&e, lc, be, 8, "path"); break;
    case LC_SUB_FRAMEWORK: f_lcstr(&e, lc, be, 8, "umbrella"); break;
    case LC_SUB_UMBRELLA: f_lcstr(&e, lc, be, 8, "sub_umbrella"); break;
    case LC_SUB_CLIENT: f_lcstr(&e, lc, be, 8, "client"); break;
    case LC_SUB_LIBRARY: f_lcstr(&e, lc, be, 8, "sub_library"); break;
    case LC_TARGET_TRIPLE: f_lcstr(&e, lc, be, 8, "triple"); break;
    case LC_LOADFVMLIB: case LC_IDFVMLIB:
        f_lcstr(&e, lc, be, 8, "name");
        f_ver(&e, "minor_version", U32(12));
        f_hex(&e, "header_addr", U32(16));
        break;
    case LC_FVMFILE:
        f_lcstr(&e, lc, be, 8, "name");
        f_hex(&e, "header_addr", U32(12));
        break;
    case LC_PREBOUND_DYLIB:
        f_lcstr(&e, lc, be, 8, "name");
        f_uint(&e, "nmodules", U32(12));
        f_uint(&e, "linked_modules.offset", U32(16));
        break;
    case LC_UUID: {
        dk_field f = {"uuid", DK_FIELD_UUID, 0, 0, NULL, 16, p + 8};
        emit(&e, &f);
        break;
    }
    case LC_CODE_SIGNATURE: case LC_SEGMENT_SPLIT_INFO: case LC_FUNCTION_STARTS: case LC_DATA_IN_CODE:
    case LC_DYLIB_CODE_SIGN_DRS: case LC_LINKER_OPTIMIZATION_HINT: case LC_DYLD_EXPORTS_TRIE:
    case LC_DYLD_CHAINED_FIXUPS: case LC_ATOM_INFO: case LC_FUNCTION_VARIANTS: case LC_FUNCTION_VARIANT_FIXUPS:
        f_hex(&e, "dataoff", U32(8));
        f_uint(&e, "datasize", U32(12));
        if (lc->cmd == LC_CODE_SIGNATURE) {
            /* SuperBlob summary (<Security/CSCommon.h> layout: big-endian magic, length, count, {type, offset}[]) */
            const uint8_t *cs = dk__linkedit(m, U32(8), U32(12));
            uint32_t size = U32(12);
            if (cs && size >= 12) {
                uint32_t magic = dk_be32(cs), len = dk_be32(cs + 4), count = dk_be32(cs + 8);
                f_begin(&e, "superblob");
                f_enum(&e, "magic", magic, magic == 0xfade0cc0u ? "CSMAGIC_EMBEDDED_SIGNATURE" : magic == 0xfade0cc1u ? "CSMAGIC_DETACHED_SIGNATURE" : "unknown");
                f_uint(&e, "length", len);
                f_uint(&e, "count", count);
                for (uint32_t k = 0; k < count && k < 64 && 12 + 8ull * (k + 1) <= size; k++) {
                    uint32_t type = dk_be32(cs + 12 + 8 * k), off = dk_be32(cs + 16 + 8 * k);
                    const char *tn = type == 0 ? "CodeDirectory" : type == 1 ? "InfoSlot" : type == 2 ? "Requirements"
                                   : type == 3 ? "ResourceDir" : type == 4 ? "Application" : type == 5 ? "Entitlements"
                                   : type == 7 ? "DER Entitlements" : type == 0x1000 ? "Alternate CodeDirectory"
                                   : type == 0x10000 ? "CMS Signature" : "blob";
                    f_begin(&e, "blob");
                    f_enum(&e, "type", type, tn);
                    f_hex(&e, "offset", off);
                    if (off <= size && size - off >= 8) {
                        uint32_t bm = dk_be32(cs + off);
                        f_hex(&e, "magic", bm);
                        f_uint(&e, "length", dk_be32(cs + off + 4));
                        if (bm == 0xfade0c02u && size - off >= 44) {
                            /* CodeDirectory: version, flags, hashOffset, identOffset, nSpecialSlots, nCodeSlots,
                             * codeLimit, hashSize, hashType, platform, pageSize */
                            const uint8_t *cd = cs + off;
                            f_hex(&e, "version", dk_be32(cd + 8));
                            f_hex(&e, "flags", dk_be32(cd + 12));
                            uint32_t ident = dk_be32(cd + 20);
                            f_uint(&e, "nSpecialSlots", dk_be32(cd + 24));
                            f_uint(&e, "nCodeSlots", dk_be32(cd + 28));
                            f_hex(&e, "codeLimit", dk_be32(cd + 32));
                            f_uint(&e, "hashSize", cd[36]);
                            f_enum(&e, "hashType", cd[37], cd[37] == 1 ? "SHA-1" : cd[37] == 2 ? "SHA-256" : cd[37] == 3 ? "SHA-256-truncated" : cd[37] == 4 ? "SHA-384" : "unknown");
                            f_uint(&e, "pageSize", cd[39] < 32 ? 1u << cd[39] : 0);
                            if (ident < size - off) {
                                const char *id = (const char *)cd + ident;
                                size_t idl = strnlen(id, size - off - ident);
                                f_str(&e, "identifier", id, idl);
                            }
                        }
                    }
                    f_end(&e);
                }
                f_end(&e);
            }
        }
        break;
    case LC_DYLD_INFO: case LC_DYLD_INFO_ONLY: {
        static const char *const names[] = {"rebase_off", "rebase_size", "bind_off", "bind_size", "weak_bind_off",
                                            "weak_bind_size", "lazy_bind_off", "lazy_bind_size", "export_off",
                                            "export_size"};
        for (int k = 0; k < 10; k++) {
            if (k % 2 == 0) f_hex(&e, names[k], U32(8 + 4 * k));
            else f_uint(&e, names[k], U32(8 + 4 * k));
        }
        break;
    }
    case LC_VERSION_MIN_MACOSX: case LC_VERSION_MIN_IPHONEOS: case LC_VERSION_MIN_TVOS: case LC_VERSION_MIN_WATCHOS:
        f_ver(&e, "version", U32(8));
        f_ver(&e, "sdk", U32(12));
        break;
    case LC_BUILD_VERSION: {
        uint32_t plat = U32(8), ntools = U32(20);
        f_enum(&e, "platform", plat, dk_platform_name(plat));
        f_ver(&e, "minos", U32(12));
        f_ver(&e, "sdk", U32(16));
        f_uint(&e, "ntools", ntools);
        for (uint32_t k = 0; k < ntools && 24 + 8ull * (k + 1) <= sz; k++) {
            f_begin(&e, "tool");
            uint32_t t = U32(24 + 8 * k);
            f_enum(&e, "tool", t, tool_name(t));
            f_ver(&e, "version", U32(28 + 8 * k));
            f_end(&e);
        }
        break;
    }
    case LC_SOURCE_VERSION: {
        dk_field f = {"version", DK_FIELD_VERSION64, U64(8), 0, NULL, 0, NULL};
        emit(&e, &f);
        break;
    }
    case LC_MAIN:
        f_hex(&e, "entryoff", U64(8));
        f_uint(&e, "stacksize", U64(16));
        break;
    case LC_ENCRYPTION_INFO: case LC_ENCRYPTION_INFO_64:
        f_hex(&e, "cryptoff", U32(8));
        f_uint(&e, "cryptsize", U32(12));
        f_uint(&e, "cryptid", U32(16));
        if (lc->cmd == LC_ENCRYPTION_INFO_64) f_hex(&e, "pad", U32(20));
        break;
    case LC_LINKER_OPTION: {
        uint32_t count = U32(8), pos = 12;
        f_uint(&e, "count", count);
        for (uint32_t k = 0; k < count && pos < sz; k++) {
            const char *s = (const char *)p + pos;
            size_t n = strnlen(s, sz - pos);
            f_str(&e, "string", s, n);
            pos += (uint32_t)n + 1;
        }
        break;
    }
    case LC_NOTE: {
        char owner[17];
        dk_copy_name16(owner, p + 8);
        f_cstr(&e, "data_owner", owner);
        f_hex(&e, "offset", U64(24));
        f_uint(&e, "size", U64(32));
        break;
    }
    case LC_ROUTINES:
        f_hex(&e, "init_address", U32(8));
        f_uint(&e, "init_module", U32(12));
        break;
    case LC_ROUTINES_64:
        f_hex(&e, "init_address", U64(8));
        f_uint(&e, "init_module", U64(16));
        break;
    case LC_TWOLEVEL_HINTS:
        f_hex(&e, "offset", U32(8));
        f_uint(&e, "nhints", U32(12));
        break;
    case LC_PREBIND_CKSUM: f_hex(&e, "cksum", U32(8)); break;
    case LC_SYMSEG:
        f_hex(&e, "offset", U32(8));
        f_uint(&e, "size", U32(12));
        break;
    case LC_FILESET_ENTRY:
        f_hex(&e, "vmaddr", U64(8));
        f_hex(&e, "fileoff", U64(16));
        f_lcstr(&e, lc, be, 24, "entry_id");
        f_hex(&e, "reserved", U32(28));
        break;
    case LC_THREAD: case LC_UNIXTHREAD: {
        uint32_t pos = 8;
        unsigned n = 0;
        while (pos + 8 <= sz && n++ < 1024) {
            uint32_t flavor = U32(pos), count = U32(pos + 4);
            pos += 8;
            if ((uint64_t)count * 4 > sz - pos) break;
            f_begin(&e, "state");
            f_uint(&e, "flavor", flavor);
            f_uint(&e, "count", count);
            dk_field f = {"words", DK_FIELD_BYTES, 0, 0, NULL, (size_t)count * 4, p + pos};
            emit(&e, &f);
            f_end(&e);
            pos += count * 4;
        }
        break;
    }
    default:
        if (sz > 8) {
            dk_field f = {"data", DK_FIELD_BYTES, 0, 0, NULL, sz - 8, p + 8};
            emit(&e, &f);
        }
        break;
    }
#undef U32
#undef U64
    (void)f_int;
    return e.stop ? DK_E_STOPPED : DK_OK;
}
