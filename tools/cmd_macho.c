/* Mach-O inspection subcommands: info, loadcmds, segments, symbols, dylibs, exports, fixups, chains, opcodes. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *prot_str(uint32_t p, char b[4])
{
    b[0] = (p & 1) ? 'r' : '-';
    b[1] = (p & 2) ? 'w' : '-';
    b[2] = (p & 4) ? 'x' : '-';
    b[3] = 0;
    return b;
}

static const char *short_name(const char *install)
{
    return install ? cli_basename(install) : "?";
}

/* ------------------------------------------------------------------ info */

static dk_status do_info(cli *c, dk_macho *m, const dk_slice *s, dk_error *err)
{
    (void)s;
    (void)err;
    out *o = &c->o;
    const dk_header *h = dk_macho_header(m);
    const dk_macho_info *in = dk_macho_get_info(m);
    size_t nseg, ndy, ncmd;
    const dk_segment *segs = dk_macho_segments(m, &nseg);
    dk_macho_dylibs(m, &ndy);
    dk_macho_loadcmds(m, &ncmd);
    char flags[512];
    dk_header_flags_string(h->flags, " ", flags, sizeof flags);
    char minos[24], sdk[24];
    dk_version_string(in->minos, minos);
    dk_version_string(in->sdk, sdk);
    dk_fixup_encoding enc = dk_macho_fixup_encoding(m);
    const char *encs = enc == DK_ENCODING_CHAINED ? "chained" : enc == DK_ENCODING_DYLD_INFO ? "dyld_info" : "none";
    const char *magic = h->is64 ? (h->big_endian ? "MH_CIGAM_64" : "MH_MAGIC_64") : (h->big_endian ? "MH_CIGAM" : "MH_MAGIC");
    if (o->json) {
        o_str(o, "magic", magic);
        o_u64(o, "cputype", h->cputype);
        o_u64(o, "cpusubtype", h->cpusubtype);
        o_str(o, "filetype", dk_filetype_name(h->filetype));
        o_u64(o, "filetype_value", h->filetype);
        o_u64(o, "flags", h->flags);
        o_arr(o, "flag_names");
        for (int b = 0; b < 32; b++)
            if (h->flags & (1u << b)) {
                char one[40];
                dk_header_flags_string(1u << b, "", one, sizeof one);
                o_str(o, NULL, one);
            }
        o_arr_end(o);
        o_bool(o, "is64", h->is64);
        o_bool(o, "big_endian", h->big_endian);
        if (in->has_uuid) o_uuid(o, "uuid", in->uuid);
        else o_null(o, "uuid");
        if (in->version_cmd) {
            o_str(o, "platform", dk_platform_name(in->platform));
            o_u64(o, "platform_value", in->platform);
            o_str(o, "minos", minos);
            o_str(o, "sdk", sdk);
            o_str(o, "version_command", dk_loadcmd_name(in->version_cmd));
        } else {
            o_null(o, "platform");
        }
        o_str(o, "install_name", dk_macho_install_name(m));
        o_u64(o, "ncmds", h->ncmds);
        o_u64(o, "sizeofcmds", h->sizeofcmds);
        if (in->has_main) o_u64(o, "entry", dk_macho_base_address(m) + in->entryoff);
        else if (in->has_thread_pc) o_u64(o, "entry", in->thread_pc);
        else o_null(o, "entry");
        o_u64(o, "base_address", dk_macho_base_address(m));
        o_str(o, "fixups_encoding", encs);
        o_u64(o, "dylib_count", ndy);
        o_bool(o, "code_signature", in->has_code_signature);
        o_bool(o, "encrypted", in->encrypted);
        o_arr(o, "segments");
        for (size_t i = 0; i < nseg; i++) {
            o_obj(o, NULL);
            o_str(o, "name", segs[i].segname);
            o_u64(o, "vmaddr", segs[i].vmaddr);
            o_u64(o, "vmsize", segs[i].vmsize);
            o_u64(o, "fileoff", segs[i].fileoff);
            o_u64(o, "filesize", segs[i].filesize);
            o_u64(o, "maxprot", segs[i].maxprot);
            o_u64(o, "initprot", segs[i].initprot);
            o_u64(o, "nsects", segs[i].nsects);
            o_obj_end(o);
        }
        o_arr_end(o);
        return DK_OK;
    }
    const char *H = c_head(o), *OFF = c_off(o);
    o_printf(o, "%s%-13s%s %s (%s, %s)\n", H, "magic", OFF, magic, h->is64 ? "64-bit" : "32-bit",
             h->big_endian ? "big-endian" : "little-endian");
    o_printf(o, "%s%-13s%s %s (cputype 0x%x, cpusubtype 0x%x)\n", H, "arch", OFF, dk_macho_arch(m), h->cputype,
             h->cpusubtype);
    o_printf(o, "%s%-13s%s %s\n", H, "filetype", OFF, dk_filetype_name(h->filetype));
    o_printf(o, "%s%-13s%s 0x%08x %s\n", H, "flags", OFF, h->flags, flags);
    if (in->has_uuid) {
        char u[37];
        uuid_string(in->uuid, u);
        o_printf(o, "%s%-13s%s %s\n", H, "uuid", OFF, u);
    }
    if (in->version_cmd)
        o_printf(o, "%s%-13s%s %s %s (sdk %s, %s)\n", H, "platform", OFF, dk_platform_name(in->platform), minos, sdk,
                 dk_loadcmd_name(in->version_cmd));
    if (dk_macho_install_name(m)) o_printf(o, "%s%-13s%s %s\n", H, "install name", OFF, dk_macho_install_name(m));
    if (in->has_main)
        o_printf(o, "%s%-13s%s %s0x%" PRIx64 "%s (LC_MAIN entryoff 0x%" PRIx64 ")\n", H, "entry", OFF, c_addr(o),
                 dk_macho_base_address(m) + in->entryoff, OFF, in->entryoff);
    else if (in->has_thread_pc)
        o_printf(o, "%s%-13s%s %s0x%" PRIx64 "%s (LC_UNIXTHREAD pc)\n", H, "entry", OFF, c_addr(o), in->thread_pc, OFF);
    o_printf(o, "%s%-13s%s %u (%u bytes)\n", H, "load cmds", OFF, h->ncmds, h->sizeofcmds);
    o_printf(o, "%s%-13s%s %s\n", H, "fixups", OFF, encs);
    o_printf(o, "%s%-13s%s %zu%s%s\n", H, "dylibs", OFF, ndy, in->encrypted ? ", encrypted" : "",
             in->has_code_signature ? ", code-signed" : "");
    o_printf(o, "%s%-13s%s %zu\n", H, "segments", OFF, nseg);
    int w = h->is64 ? 16 : 8;
    for (size_t i = 0; i < nseg; i++) {
        char mp[4], ip[4];
        o_printf(o, "  %-16s %s0x%0*" PRIx64 "-0x%0*" PRIx64 "%s  %s/%s  %s%" PRIu64 " bytes in file%s\n",
                 segs[i].segname[0] ? segs[i].segname : "(unnamed)", c_addr(o), w, segs[i].vmaddr, w,
                 segs[i].vmaddr + segs[i].vmsize, OFF, prot_str(segs[i].initprot, ip), prot_str(segs[i].maxprot, mp),
                 c_dim(o), segs[i].filesize, OFF);
    }
    return DK_OK;
}

static int cmd_info(cli *c) { return cli_each_slice(c, do_info); }

/* -------------------------------------------------------------- loadcmds */

typedef struct lc_state {
    out *o;
    int depth;
    /* per depth: name of the array of nested records currently open, or NULL */
    const char *open_array[16];
} lc_state;

static const char *plural(const char *n)
{
    if (strcmp(n, "section") == 0) return "sections";
    if (strcmp(n, "tool") == 0) return "tools";
    if (strcmp(n, "state") == 0) return "states";
    if (strcmp(n, "blob") == 0) return "blobs";
    if (strcmp(n, "option") == 0) return "options";
    return n;
}

static void fmt_version(uint32_t v, char b[24])
{
    snprintf(b, 24, "%u.%u.%u", v >> 16, (v >> 8) & 0xff, v & 0xff);
}

static void fmt_version64(uint64_t v, char b[48])
{
    snprintf(b, 48, "%llu.%llu.%llu.%llu.%llu", (unsigned long long)(v >> 40), (unsigned long long)((v >> 30) & 0x3ff),
             (unsigned long long)((v >> 20) & 0x3ff), (unsigned long long)((v >> 10) & 0x3ff),
             (unsigned long long)(v & 0x3ff));
}

static int lc_json(void *ctx, const dk_field *f)
{
    lc_state *st = ctx;
    out *o = st->o;
    int d = st->depth;
    if (f->kind == DK_FIELD_BEGIN) {
        const char *pl = plural(f->name);
        if (!(st->open_array[d] && strcmp(st->open_array[d], pl) == 0)) {
            if (st->open_array[d]) o_arr_end(o);
            o_arr(o, pl);
            st->open_array[d] = pl;
        }
        o_obj(o, NULL);
        if (d + 1 < 16) st->depth = d + 1;
        st->open_array[st->depth] = NULL;
        return 0;
    }
    if (f->kind == DK_FIELD_END) {
        if (st->open_array[d]) o_arr_end(o);
        st->open_array[d] = NULL;
        o_obj_end(o);
        if (st->depth > 0) st->depth--;
        return 0;
    }
    if (st->open_array[d]) {
        o_arr_end(o);
        st->open_array[d] = NULL;
    }
    char b[48];
    switch (f->kind) {
    case DK_FIELD_UINT: case DK_FIELD_HEX: o_u64(o, f->name, f->u); break;
    case DK_FIELD_INT: o_i64(o, f->name, f->i); break;
    case DK_FIELD_STRING: o_strn(o, f->name, f->s, f->slen); break;
    case DK_FIELD_VERSION: fmt_version((uint32_t)f->u, b); o_str(o, f->name, b); break;
    case DK_FIELD_VERSION64: fmt_version64(f->u, b); o_str(o, f->name, b); break;
    case DK_FIELD_UUID: o_uuid(o, f->name, f->bytes); break;
    case DK_FIELD_ENUM:
        o_u64(o, f->name, f->u);
        if (f->s) {
            char k[80];
            snprintf(k, sizeof k, "%s_name", f->name);
            o_str(o, k, f->s);
        }
        break;
    case DK_FIELD_BYTES: {
        o_arr(o, f->name);
        for (size_t i = 0; i + 4 <= f->slen; i += 4) {
            const uint8_t *p = f->bytes + i;
            o_u64(o, NULL, (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
        }
        o_arr_end(o);
        break;
    }
    default: break;
    }
    return 0;
}

static int lc_human(void *ctx, const dk_field *f)
{
    lc_state *st = ctx;
    out *o = st->o;
    int ind = 2 + st->depth * 4;
    if (f->kind == DK_FIELD_BEGIN) {
        o_printf(o, "%*s%s%s%s\n", ind, "", c_head(o), f->name, c_off(o));
        st->depth++;
        return 0;
    }
    if (f->kind == DK_FIELD_END) {
        if (st->depth > 0) st->depth--;
        return 0;
    }
    char b[64];
    o_printf(o, "%*s%22s ", ind, "", f->name);
    switch (f->kind) {
    case DK_FIELD_UINT: o_printf(o, "%" PRIu64 "\n", f->u); break;
    case DK_FIELD_HEX: o_printf(o, "0x%" PRIx64 "\n", f->u); break;
    case DK_FIELD_INT: o_printf(o, "%" PRId64 "\n", f->i); break;
    case DK_FIELD_STRING: o_printf(o, "%s%.*s%s\n", c_sym(o), (int)f->slen, f->s, c_off(o)); break;
    case DK_FIELD_VERSION: fmt_version((uint32_t)f->u, b); o_printf(o, "%s\n", b); break;
    case DK_FIELD_VERSION64: fmt_version64(f->u, b); o_printf(o, "%s\n", b); break;
    case DK_FIELD_UUID: uuid_string(f->bytes, b); o_printf(o, "%s\n", b); break;
    case DK_FIELD_ENUM:
        if (f->s) o_printf(o, "%s (%" PRIu64 ")\n", f->s, f->u);
        else o_printf(o, "%" PRIu64 "\n", f->u);
        break;
    case DK_FIELD_BYTES:
        for (size_t i = 0; i + 4 <= f->slen; i += 4) {
            const uint8_t *p = f->bytes + i;
            o_printf(o, "%s0x%08x", (i && i % 16 == 0) ? "\n                         " : (i ? " " : ""),
                     (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
        }
        o_printf(o, "\n");
        break;
    default: o_printf(o, "\n"); break;
    }
    return 0;
}

static dk_status do_loadcmds(cli *c, dk_macho *m, const dk_slice *s, dk_error *err)
{
    (void)s;
    out *o = &c->o;
    size_t n;
    const dk_loadcmd *lcs = dk_macho_loadcmds(m, &n);
    if (o->json) o_arr(o, "loadcmds");
    for (size_t i = 0; i < n; i++) {
        const char *name = dk_loadcmd_name(lcs[i].cmd);
        lc_state st;
        memset(&st, 0, sizeof st);
        st.o = o;
        if (o->json) {
            o_obj(o, NULL);
            o_u64(o, "index", i);
            if (name) o_str(o, "cmd", name);
            else o_null(o, "cmd");
            o_u64(o, "cmd_value", lcs[i].cmd);
            o_u64(o, "cmdsize", lcs[i].cmdsize);
            o_u64(o, "offset", lcs[i].offset);
        } else {
            o_printf(o, "%sLoad command %zu%s  %s%s%s  cmdsize %u  %s(offset 0x%" PRIx64 ")%s\n", c_head(o), i, c_off(o),
                     c_sym(o), name ? name : "LC_UNKNOWN", c_off(o), lcs[i].cmdsize, c_dim(o), lcs[i].offset, c_off(o));
            if (!name) o_printf(o, "  %22s 0x%x\n", "cmd", lcs[i].cmd);
        }
        dk_status stt = dk_macho_loadcmd_fields(m, i, o->json ? lc_json : lc_human, &st, err);
        if (stt) return stt;
        if (o->json) {
            if (st.open_array[0]) o_arr_end(o);
            o_obj_end(o);
        }
    }
    if (o->json) o_arr_end(o);
    return DK_OK;
}

static int cmd_loadcmds(cli *c) { return cli_each_slice(c, do_loadcmds); }

/* -------------------------------------------------------------- segments */

static dk_status do_segments(cli *c, dk_macho *m, const dk_slice *s, dk_error *err)
{
    (void)s;
    (void)err;
    out *o = &c->o;
    size_t nseg, nsec;
    const dk_segment *segs = dk_macho_segments(m, &nseg);
    const dk_section *secs = dk_macho_sections(m, &nsec);
    if (o->json) {
        o_arr(o, "segments");
        for (size_t i = 0; i < nseg; i++) {
            const dk_segment *g = &segs[i];
            o_obj(o, NULL);
            o_str(o, "name", g->segname);
            o_u64(o, "vmaddr", g->vmaddr);
            o_u64(o, "vmsize", g->vmsize);
            o_u64(o, "fileoff", g->fileoff);
            o_u64(o, "filesize", g->filesize);
            o_u64(o, "maxprot", g->maxprot);
            o_u64(o, "initprot", g->initprot);
            o_u64(o, "flags", g->flags);
            o_arr(o, "sections");
            for (uint32_t k = 0; k < g->nsects; k++) {
                const dk_section *x = &secs[g->first_section + k];
                o_obj(o, NULL);
                o_str(o, "name", x->sectname);
                o_str(o, "segment", x->segname);
                o_u64(o, "addr", x->addr);
                o_u64(o, "size", x->size);
                o_u64(o, "offset", x->offset);
                o_u64(o, "align", x->align);
                o_u64(o, "reloff", x->reloff);
                o_u64(o, "nreloc", x->nreloc);
                o_u64(o, "flags", x->flags);
                o_str(o, "type", dk_section_type_name(x->flags));
                o_u64(o, "reserved1", x->reserved1);
                o_u64(o, "reserved2", x->reserved2);
                o_u64(o, "reserved3", x->reserved3);
                o_obj_end(o);
            }
            o_arr_end(o);
            o_obj_end(o);
        }
        o_arr_end(o);
        return DK_OK;
    }
    int w = dk_macho_header(m)->is64 ? 18 : 10;
    o_printf(o, "%s%-18s %-*s %-12s %-10s %-10s %s%s\n", c_head(o), "segment/section", w, "vmaddr", "vmsize", "fileoff",
             "filesize", "prot", c_off(o));
    for (size_t i = 0; i < nseg; i++) {
        const dk_segment *g = &segs[i];
        char mp[4], ip[4];
        o_printf(o, "%s%-18s%s %s0x%0*" PRIx64 "%s 0x%-10" PRIx64 " 0x%-8" PRIx64 " 0x%-8" PRIx64 " %s/%s\n", c_head(o),
                 g->segname[0] ? g->segname : "(unnamed)", c_off(o), c_addr(o), w - 2, g->vmaddr, c_off(o), g->vmsize,
                 g->fileoff, g->filesize, prot_str(g->initprot, ip), prot_str(g->maxprot, mp));
        for (uint32_t k = 0; k < g->nsects; k++) {
            const dk_section *x = &secs[g->first_section + k];
            o_printf(o, "  %-16s %s0x%0*" PRIx64 "%s 0x%-10" PRIx64 " 0x%-8x %-10s %s%s%s\n", x->sectname, c_addr(o), w - 2,
                     x->addr, c_off(o), x->size, x->offset, "", c_dim(o), dk_section_type_name(x->flags), c_off(o));
        }
    }
    return DK_OK;
}

static int cmd_segments(cli *c) { return cli_each_slice(c, do_segments); }

/* --------------------------------------------------------------- symbols */

static const char *stab_name(uint8_t t)
{
    switch (t) {
    case 0x20: return "GSYM"; case 0x22: return "FNAME"; case 0x24: return "FUN"; case 0x26: return "STSYM";
    case 0x28: return "LCSYM"; case 0x2e: return "BNSYM"; case 0x32: return "AST"; case 0x3c: return "OPT";
    case 0x40: return "RSYM"; case 0x44: return "SLINE"; case 0x4e: return "ENSYM"; case 0x60: return "SSYM";
    case 0x64: return "SO"; case 0x66: return "OSO"; case 0x80: return "LSYM"; case 0x82: return "BINCL";
    case 0x84: return "SOL"; case 0x86: return "PARAMS"; case 0x88: return "VERSION"; case 0x8a: return "OLEVEL";
    case 0xa0: return "PSYM"; case 0xa2: return "EINCL"; case 0xa4: return "ENTRY"; case 0xc0: return "LBRAC";
    case 0xc2: return "EXCL"; case 0xe0: return "RBRAC"; case 0xe2: return "BCOMM"; case 0xe4: return "ECOMM";
    case 0xe8: return "ECOML"; case 0xfe: return "LENG";
    }
    return "STAB";
}

static const char *sym_kind(const dk_symbol *s)
{
    if (s->type & 0xe0) return "stab";
    switch (s->type & 0x0e) {
    case 0x0: return (s->value && (s->type & 1)) ? "common" : "undefined";
    case 0x2: return "absolute";
    case 0xe: return "section";
    case 0xc: return "prebound";
    case 0xa: return "indirect";
    }
    return "unknown";
}

static dk_status do_symbols(cli *c, dk_macho *m, const dk_slice *sl, dk_error *err)
{
    (void)sl;
    out *o = &c->o;
    const dk_symbol *syms;
    size_t n;
    dk_status st = dk_macho_symbols(m, &syms, &n, err);
    if (st) return st;
    size_t nsec;
    const dk_section *secs = dk_macho_sections(m, &nsec);
    bool is64 = dk_macho_header(m)->is64;
    bool twolevel = (dk_macho_header(m)->flags & 0x80) != 0;
    if (o->json) o_arr(o, "symbols");
    for (size_t i = 0; i < n; i++) {
        const dk_symbol *s = &syms[i];
        const char *kind = sym_kind(s);
        bool stab = (s->type & 0xe0) != 0;
        bool ext = (s->type & 1) != 0, pext = (s->type & 0x10) != 0;
        const dk_section *sec = (!stab && (s->type & 0x0e) == 0xe && s->sect >= 1 && s->sect <= nsec) ? &secs[s->sect - 1] : NULL;
        int ord = 0;
        const char *dylib = NULL;
        bool undef = !stab && (s->type & 0x0e) == 0 && strcmp(kind, "undefined") == 0;
        if (undef && twolevel) {
            ord = dk_symbol_library_ordinal(m, s);
            dylib = dk_macho_ordinal_name(m, ord);
        }
        if (o->json) {
            o_obj(o, NULL);
            o_u64(o, "index", i);
            o_str(o, "name", s->name);
            o_u64(o, "type", s->type);
            o_u64(o, "sect", s->sect);
            o_u64(o, "desc", s->desc);
            o_u64(o, "value", s->value);
            o_str(o, "kind", kind);
            if (stab) o_str(o, "stab", stab_name(s->type));
            o_bool(o, "external", ext);
            o_bool(o, "private_external", pext);
            if (sec) {
                char b[40];
                snprintf(b, sizeof b, "%s,%s", sec->segname, sec->sectname);
                o_str(o, "section", b);
            }
            if (!stab && (s->desc & 0x40)) o_bool(o, "weak_ref", true);
            if (!stab && (s->desc & 0x80)) o_bool(o, "weak_def", true);
            if (undef && twolevel) {
                o_i64(o, "library_ordinal", ord);
                if (dylib) o_str(o, "dylib", dylib);
            }
            o_obj_end(o);
            continue;
        }
        char where[64];
        if (stab) snprintf(where, sizeof where, "(stab %s)", stab_name(s->type));
        else if (sec) snprintf(where, sizeof where, "(%s,%s)", sec->segname, sec->sectname);
        else snprintf(where, sizeof where, "(%s)", kind);
        char val[24];
        if (undef) snprintf(val, sizeof val, "%*s", is64 ? 16 : 8, "");
        else snprintf(val, sizeof val, "%0*" PRIx64, is64 ? 16 : 8, s->value);
        o_printf(o, "%s%s%s %-28s %s%s%s%s%s%s", c_addr(o), val, c_off(o), where,
                 stab ? "" : ext ? (pext ? "private external " : "external ") : "non-external ",
                 (!stab && (s->desc & 0x80)) ? "[weak def] " : "", (!stab && (s->desc & 0x40)) ? "[weak ref] " : "",
                 c_sym(o), s->name, c_off(o));
        if (undef && twolevel) o_printf(o, " %s(from %s)%s", c_dim(o), dylib ? short_name(dylib) : "?", c_off(o));
        o_printf(o, "\n");
    }
    if (o->json) o_arr_end(o);
    return DK_OK;
}

static int cmd_symbols(cli *c) { return cli_each_slice(c, do_symbols); }

/* ---------------------------------------------------------------- dylibs */

static dk_status do_dylibs(cli *c, dk_macho *m, const dk_slice *s, dk_error *err)
{
    (void)s;
    (void)err;
    out *o = &c->o;
    size_t n;
    const dk_dylib *d = dk_macho_dylibs(m, &n);
    const char *id = dk_macho_install_name(m);
    char cv[24], kv[24];
    if (o->json) {
        o_str(o, "install_name", id);
        o_arr(o, "dylibs");
        for (size_t i = 0; i < n; i++) {
            o_obj(o, NULL);
            o_u64(o, "ordinal", i + 1);
            o_str(o, "name", d[i].name);
            o_str(o, "kind", dk_dylib_kind_name(d[i].kind));
            o_str(o, "cmd", dk_loadcmd_name(d[i].cmd));
            fmt_version(d[i].current_version, cv);
            fmt_version(d[i].compatibility_version, kv);
            o_str(o, "current_version", cv);
            o_str(o, "compatibility_version", kv);
            o_u64(o, "current_version_raw", d[i].current_version);
            o_u64(o, "compatibility_version_raw", d[i].compatibility_version);
            o_u64(o, "timestamp", d[i].timestamp);
            o_obj_end(o);
        }
        o_arr_end(o);
        return DK_OK;
    }
    if (id) o_printf(o, "%sid%s %s\n", c_head(o), c_off(o), id);
    for (size_t i = 0; i < n; i++) {
        fmt_version(d[i].current_version, cv);
        fmt_version(d[i].compatibility_version, kv);
        o_printf(o, "%3zu  %-8s %s%s%s %s(current %s, compatibility %s)%s\n", i + 1, dk_dylib_kind_name(d[i].kind),
                 c_sym(o), d[i].name, c_off(o), c_dim(o), cv, kv, c_off(o));
    }
    return DK_OK;
}

static int cmd_dylibs(cli *c) { return cli_each_slice(c, do_dylibs); }

/* --------------------------------------------------------------- exports */

typedef struct exp_ctx {
    out *o;
    const dk_macho *m;
    bool is64;
} exp_ctx;

static int export_cb(void *ctx, const dk_export *e)
{
    exp_ctx *x = ctx;
    out *o = x->o;
    if (o->null) return 0;
    if (o->json) {
        o_obj(o, NULL);
        o_str(o, "name", e->name);
        if (!(e->flags & DK_EXPORT_REEXPORT)) o_u64(o, "address", e->address);
        o_arr(o, "flags");
        if (e->flags & DK_EXPORT_WEAK) o_str(o, NULL, "weak");
        if (e->flags & DK_EXPORT_REEXPORT) o_str(o, NULL, "reexport");
        if (e->flags & DK_EXPORT_RESOLVER) o_str(o, NULL, "resolver");
        if (e->flags & DK_EXPORT_ABSOLUTE) o_str(o, NULL, "absolute");
        if (e->flags & DK_EXPORT_TLS) o_str(o, NULL, "tls");
        if (e->flags & DK_EXPORT_FUNCTION_VARIANT) o_str(o, NULL, "function_variant");
        o_arr_end(o);
        if (e->flags & DK_EXPORT_REEXPORT) {
            o_i64(o, "ordinal", e->ordinal);
            o_str(o, "reexport_from", dk_macho_ordinal_name(x->m, e->ordinal));
            o_str(o, "imported_name", e->imported_name);
        }
        if (e->flags & DK_EXPORT_RESOLVER) o_u64(o, "resolver", e->resolver);
        if (e->flags & DK_EXPORT_FUNCTION_VARIANT) o_u64(o, "function_variant", e->function_variant);
        o_u64(o, "raw_flags", e->raw_flags);
        o_obj_end(o);
        return 0;
    }
    /* "%s0x%0*llx%s  %s%s%s" without printf, one write: tries have 100,000s of exports */
    const char *ca = c_addr(o), *cs = c_sym(o), *co = c_off(o);
    size_t width = x->is64 ? 16 : 8, nca = strlen(ca), ncs = strlen(cs), nco = strlen(co), nn = strlen(e->name);
    char line[512], *p = line;
    if (nca + 2 + 16 + nco + 2 + ncs + nn + nco <= sizeof line) {
        memcpy(p, ca, nca);
        p += nca;
        if (e->flags & DK_EXPORT_REEXPORT) {
            memset(p, ' ', width + 2);
            p += width + 2;
        } else {
            *p++ = '0';
            *p++ = 'x';
            p = out_hex_at(p, e->address, (int)width);
        }
        memcpy(p, co, nco);
        p += nco;
        *p++ = ' ';
        *p++ = ' ';
        memcpy(p, cs, ncs);
        p += ncs;
        memcpy(p, e->name, nn);
        p += nn;
        memcpy(p, co, nco);
        p += nco;
        o_write(o, line, (size_t)(p - line));
    } else {
        o_printf(o, "%s", ca);
        if (e->flags & DK_EXPORT_REEXPORT) o_printf(o, "%*s", (int)width + 2, "");
        else o_printf(o, "0x%0*" PRIx64, (int)width, e->address);
        o_printf(o, "%s  %s%s%s", co, cs, e->name, co);
    }
    if (e->flags & DK_EXPORT_WEAK) o_printf(o, " [weak]");
    if (e->flags & DK_EXPORT_TLS) o_printf(o, " [thread-local]");
    if (e->flags & DK_EXPORT_ABSOLUTE) o_printf(o, " [absolute]");
    if (e->flags & DK_EXPORT_RESOLVER) o_printf(o, " [resolver 0x%" PRIx64 "]", e->resolver);
    if (e->flags & DK_EXPORT_FUNCTION_VARIANT) o_printf(o, " [function-variant %" PRIu64 "]", e->function_variant);
    if (e->flags & DK_EXPORT_REEXPORT) {
        const char *from = dk_macho_ordinal_name(x->m, e->ordinal);
        o_printf(o, " [re-export] from %s", from ? from : "?");
        if (strcmp(e->imported_name, e->name) != 0) o_printf(o, " (as %s)", e->imported_name);
    }
    o_write(o, "\n", 1);
    return 0;
}

static dk_status do_exports(cli *c, dk_macho *m, const dk_slice *s, dk_error *err)
{
    (void)s;
    out *o = &c->o;
    exp_ctx x = {o, m, dk_macho_header(m)->is64};
    if (o->json) o_arr(o, "exports");
    dk_status st = dk_macho_foreach_export(m, export_cb, &x, err);
    if (o->json) o_arr_end(o);
    return st;
}

static int cmd_exports(cli *c) { return cli_each_slice(c, do_exports); }

/* ---------------------------------------------------------------- fixups */

typedef struct fix_ctx {
    out *o;
    const dk_macho *m;
    bool is64;
    fixup_json_ctx json; /* fixup_json_cb */
    /* human lines: the padded "segment,section  " column of the last fixup */
    int loc_seg, loc_sect;
    size_t loc_len;
    char loc[64];
} fix_ctx;

/* The plain rebase or bind line (no colour, no auth, no text relocation),
 * byte for byte what human_fixup prints; false for anything else. */
static bool human_fixup_fast(fix_ctx *x, const dk_fixup *f)
{
    out *o = x->o;
    if (o->color || f->strong || f->auth || f->type > 1) return false;
    if (!x->loc_len || x->loc_seg != f->segment || x->loc_sect != f->section) {
        char loc[40];
        fixup_location(x->m, f, loc, sizeof loc);
        int n = snprintf(x->loc, sizeof x->loc, "%-28s ", loc);
        if (n < 0 || (size_t)n >= sizeof x->loc) return false;
        x->loc_len = (size_t)n;
        x->loc_seg = f->segment;
        x->loc_sect = f->section;
    }
    const char *kind = dk_fixup_kind_name(f->kind);
    size_t kl = strlen(kind);
    const char *d = NULL, *sym = NULL;
    size_t dl = 0, sl = 0;
    if (f->kind != DK_FIXUP_REBASE) {
        d = dk_macho_ordinal_name(x->m, f->ordinal);
        d = d ? short_name(d) : "?";
        sym = f->symbol ? f->symbol : "(null)";
        dl = strlen(d);
        sl = strlen(sym);
    }
    if (kl > 64 || dl + sl > 1024) return false;
    char line[1280], *p = line;
    memcpy(p, x->loc, x->loc_len);
    p += x->loc_len;
    memcpy(p, "0x", 2);
    p = out_hex_at(p + 2, f->address, x->is64 ? 16 : 8);
    memcpy(p, "  ", 2);
    p += 2;
    memcpy(p, kind, kl);
    p += kl;
    while (kl++ < 10) *p++ = ' ';
    *p++ = ' ';
    if (f->kind == DK_FIXUP_REBASE) {
        memcpy(p, "0x", 2);
        p = out_hex_at(p + 2, f->target, 0);
        if (f->high8) {
            memcpy(p, " high8 0x", 9);
            p = out_hex_at(p + 9, f->high8, 2);
        }
    } else {
        memcpy(p, d, dl);
        p += dl;
        *p++ = '/';
        memcpy(p, sym, sl);
        p += sl;
        if (f->addend) p += sprintf(p, " + %" PRId64, f->addend);
        if (f->weak_import) {
            memcpy(p, " [weak-import]", 14);
            p += 14;
        }
    }
    *p++ = '\n';
    o_write(o, line, (size_t)(p - line));
    return true;
}

static void human_fixup(out *o, const dk_macho *m, const dk_fixup *f, bool is64)
{
    char loc[40];
    if (f->strong) {
        o_printf(o, "%-28s %*s  %-10s %s%s%s (strong definition)\n", "", is64 ? 18 : 10, "", "weak_bind", c_sym(o),
                 f->symbol, c_off(o));
        return;
    }
    fixup_location(m, f, loc, sizeof loc);
    o_printf(o, "%-28s %s0x%0*" PRIx64 "%s  %-10s ", loc, c_addr(o), is64 ? 16 : 8, f->address, c_off(o),
             dk_fixup_kind_name(f->kind));
    if (f->kind == DK_FIXUP_REBASE) {
        o_printf(o, "0x%" PRIx64, f->target);
        if (f->high8) o_printf(o, " high8 0x%02x", f->high8);
    } else {
        const char *d = dk_macho_ordinal_name(m, f->ordinal);
        o_printf(o, "%s%s/%s%s", c_sym(o), d ? short_name(d) : "?", f->symbol, c_off(o));
        if (f->addend) o_printf(o, " + %" PRId64, f->addend);
        if (f->weak_import) o_printf(o, " [weak-import]");
    }
    if (f->auth) o_printf(o, " %s[auth %s div 0x%04x%s]%s", c_dim(o), dk_key_name(f->key), f->diversity, f->addr_div ? " addr" : "", c_off(o));
    if (f->type > 1) o_printf(o, " (%s)", f->type == 2 ? "text absolute32" : "text pcrel32");
    o_printf(o, "\n");
}

static int fixup_human_cb(void *ctx, const dk_fixup *f)
{
    fix_ctx *x = ctx;
    if (!human_fixup_fast(x, f)) human_fixup(x->o, x->m, f, x->is64);
    return 0;
}


static dk_status do_fixups(cli *c, dk_macho *m, const dk_slice *s, dk_error *err)
{
    (void)s;
    out *o = &c->o;
    dk_fixup_encoding enc = dk_macho_fixup_encoding(m);
    const char *encs = enc == DK_ENCODING_CHAINED ? "chained" : enc == DK_ENCODING_DYLD_INFO ? "dyld_info" : "none";
    fix_ctx x;
    memset(&x, 0, sizeof x);
    x.o = o;
    x.m = m;
    x.is64 = dk_macho_header(m)->is64;
    if (o->json) {
        o_str(o, "encoding", encs);
        o_arr(o, "fixups");
    } else {
        o_printf(o, "%s%-28s %-*s  %-10s %s%s\n", c_head(o), "segment,section", x.is64 ? 18 : 10, "address", "kind",
                 "target", c_off(o));
    }
    /* the silent checking pass (cli_each_slice) only needs the errors */
    x.json.o = o;
    x.json.m = m;
    dk_status st = o->null   ? dk_macho_foreach_fixup(m, NULL, NULL, err)
                   : o->json ? dk_macho_foreach_fixup(m, fixup_json_cb, &x.json, err)
                             : dk_macho_foreach_fixup(m, fixup_human_cb, &x, err);
    if (o->json) o_arr_end(o);
    return st;
}

static int cmd_fixups(cli *c) { return cli_each_slice(c, do_fixups); }

/* ---------------------------------------------------------------- chains */

typedef struct chain_ctx {
    out *o;
    dk_macho *m;
    bool in_seg, in_page;
    size_t nsegs;
} chain_ctx;

static const char *import_format_name(uint32_t f)
{
    switch (f) {
    case 1: return "DYLD_CHAINED_IMPORT";
    case 2: return "DYLD_CHAINED_IMPORT_ADDEND";
    case 3: return "DYLD_CHAINED_IMPORT_ADDEND64";
    }
    return "unknown";
}

static void close_page(chain_ctx *x)
{
    if (x->in_page && x->o->json) {
        o_arr_end(x->o);
        o_obj_end(x->o);
    }
    x->in_page = false;
}

static void close_seg(chain_ctx *x)
{
    close_page(x);
    if (x->in_seg && x->o->json) {
        o_arr_end(x->o);
        o_obj_end(x->o);
    }
    x->in_seg = false;
}

static int chain_cb(void *ctx, const dk_chain_item *it)
{
    chain_ctx *x = ctx;
    out *o = x->o;
    if (o->null) return 0;
    size_t ns;
    const dk_segment *segs = dk_macho_segments(x->m, &ns);
    const dk_chained_starts *s = it->starts;
    switch (it->event) {
    case DK_CHAIN_SEGMENT:
        close_seg(x);
        if (o->json) {
            o_obj(o, NULL);
            o_u64(o, "index", s->seg_index);
            o_str(o, "name", s->seg_index < ns ? segs[s->seg_index].segname : "?");
            o_u64(o, "seg_info_offset", s->info_offset);
            o_u64(o, "size", s->size);
            o_u64(o, "page_size", s->page_size);
            o_u64(o, "pointer_format", s->pointer_format);
            o_str(o, "pointer_format_name", dk_pointer_format_name(s->pointer_format));
            o_u64(o, "segment_offset", s->segment_offset);
            o_u64(o, "max_valid_pointer", s->max_valid_pointer);
            o_u64(o, "page_count", s->page_count);
            o_arr(o, "pages");
        } else {
            o_printf(o, "\n  %sSEGMENT %s%s (index %u, seg_info_offset 0x%x)\n", c_head(o),
                     s->seg_index < ns ? segs[s->seg_index].segname : "?", c_off(o), s->seg_index, s->info_offset);
            o_printf(o, "    size %u  page_size 0x%x  pointer_format %u (%s)  segment_offset 0x%" PRIx64
                        "  max_valid_pointer 0x%x  page_count %u\n",
                     s->size, s->page_size, s->pointer_format, dk_pointer_format_name(s->pointer_format), s->segment_offset,
                     s->max_valid_pointer, s->page_count);
        }
        x->in_seg = true;
        break;
    case DK_CHAIN_PAGE:
        close_page(x);
        if (o->json) {
            o_obj(o, NULL);
            o_u64(o, "index", it->page_index);
            o_u64(o, "page_start", it->page_start);
            o_arr(o, "fixups");
        } else if (it->page_start == 0xFFFF) {
            o_printf(o, "    %sPAGE %u (no fixups)%s\n", c_dim(o), it->page_index, c_off(o));
        } else {
            o_printf(o, "    %sPAGE %u%s (page_start 0x%x%s)\n", c_head(o), it->page_index, c_off(o), it->page_start,
                     (it->page_start & 0x8000) ? ", multiple starts" : "");
        }
        x->in_page = true;
        break;
    case DK_CHAIN_FIXUP: {
        const dk_fixup *f = it->fixup;
        if (o->json) {
            emit_fixup_json(o, x->m, f, true, it->next);
            break;
        }
        o_printf(o, "      %s0x%08" PRIx64 "%s  %s%-6s%s  ", c_addr(o), f->address, c_off(o), c_head(o),
                 f->kind == DK_FIXUP_REBASE ? "REBASE" : "BIND", c_off(o));
        if (f->kind == DK_FIXUP_REBASE) {
            o_printf(o, "target 0x%" PRIx64, f->target);
            if (f->high8) o_printf(o, "  high8 0x%02x", f->high8);
        } else {
            const char *d = dk_macho_ordinal_name(x->m, f->ordinal);
            o_printf(o, "import %u  addend %" PRId64 "  %s(%s/%s)%s", f->import_index, f->addend, c_sym(o),
                     d ? short_name(d) : "?", f->symbol, c_off(o));
        }
        if (f->auth) o_printf(o, "  auth key %s diversity 0x%04x addr_div %d", dk_key_name(f->key), f->diversity, f->addr_div);
        o_printf(o, "  next %u  %sraw 0x%0*" PRIx64 "%s\n", it->next, c_dim(o), f->width * 2, f->raw, c_off(o));
        break;
    }
    }
    return 0;
}

static dk_status do_chains(cli *c, dk_macho *m, const dk_slice *s, dk_error *err)
{
    (void)s;
    out *o = &c->o;
    dk_chained_header h;
    dk_status st = dk_macho_chained_header(m, &h, err);
    if (st == DK_E_NOTFOUND) {
        if (o->json) o_null(o, "chained_fixups");
        else o_printf(o, "no LC_DYLD_CHAINED_FIXUPS\n");
        return DK_OK;
    }
    if (st) return st;
    const dk_chained_import *imps;
    size_t nimp;
    if ((st = dk_macho_chained_imports(m, &imps, &nimp, err))) return st;
    if (o->json) {
        o_obj(o, "header");
        o_u64(o, "dataoff", h.dataoff);
        o_u64(o, "datasize", h.datasize);
        o_u64(o, "fixups_version", h.fixups_version);
        o_u64(o, "starts_offset", h.starts_offset);
        o_u64(o, "imports_offset", h.imports_offset);
        o_u64(o, "symbols_offset", h.symbols_offset);
        o_u64(o, "imports_count", h.imports_count);
        o_u64(o, "imports_format", h.imports_format);
        o_str(o, "imports_format_name", import_format_name(h.imports_format));
        o_u64(o, "symbols_format", h.symbols_format);
        o_u64(o, "seg_count", h.seg_count);
        o_obj_end(o);
        o_arr(o, "imports");
        for (size_t i = 0; i < nimp; i++) {
            o_obj(o, NULL);
            o_u64(o, "index", i);
            o_i64(o, "lib_ordinal", imps[i].lib_ordinal);
            o_str(o, "dylib", dk_macho_ordinal_name(m, imps[i].lib_ordinal));
            o_bool(o, "weak_import", imps[i].weak_import);
            o_u64(o, "name_offset", imps[i].name_offset);
            o_str(o, "name", imps[i].name);
            o_i64(o, "addend", imps[i].addend);
            o_obj_end(o);
        }
        o_arr_end(o);
        o_arr(o, "segments");
    } else {
        o_printf(o, "%sLC_DYLD_CHAINED_FIXUPS%s  dataoff 0x%x  datasize %u\n", c_head(o), c_off(o), h.dataoff, h.datasize);
        o_printf(o, "  fixups_version %u  starts_offset 0x%x  imports_offset 0x%x  symbols_offset 0x%x\n", h.fixups_version,
                 h.starts_offset, h.imports_offset, h.symbols_offset);
        o_printf(o, "  imports_count %u  imports_format %u (%s)  symbols_format %u (%s)  seg_count %u\n", h.imports_count,
                 h.imports_format, import_format_name(h.imports_format), h.symbols_format,
                 h.symbols_format ? "zlib" : "uncompressed", h.seg_count);
        o_printf(o, "\n  %sIMPORTS%s (%zu)\n", c_head(o), c_off(o), nimp);
        for (size_t i = 0; i < nimp; i++) {
            const char *d = dk_macho_ordinal_name(m, imps[i].lib_ordinal);
            o_printf(o, "    [%zu] lib_ordinal %d (%s)  weak_import %d  name_offset %u (%s%s%s)", i, imps[i].lib_ordinal,
                     d ? short_name(d) : "?", imps[i].weak_import, imps[i].name_offset, c_sym(o), imps[i].name, c_off(o));
            if (imps[i].addend) o_printf(o, "  addend %" PRId64, imps[i].addend);
            o_printf(o, "\n");
        }
    }
    chain_ctx x = {o, m, false, false, 0};
    st = dk_macho_foreach_chain(m, chain_cb, &x, err);
    close_seg(&x);
    if (o->json) o_arr_end(o);
    return st;
}

static int cmd_chains(cli *c) { return cli_each_slice(c, do_chains); }

/* --------------------------------------------------------------- opcodes */

typedef struct op_ctx {
    out *o;
} op_ctx;

static int opcode_cb(void *ctx, const dk_opcode *op)
{
    op_ctx *x = ctx;
    out *o = x->o;
    if (o->null) return 0;
    if (o->json) {
        o_obj(o, NULL);
        o_u64(o, "offset", op->offset);
        o_u64(o, "byte", op->byte);
        o_str(o, "opcode", op->name);
        o_u64(o, "imm", op->imm);
        o_arr(o, "args");
        for (int i = 0; i < op->nargs; i++) {
            if (op->signed_arg) o_i64(o, NULL, (int64_t)op->args[i]);
            else o_u64(o, NULL, op->args[i]);
        }
        o_arr_end(o);
        if (op->symbol) o_str(o, "symbol", op->symbol);
        o_obj_end(o);
        return 0;
    }
    o_printf(o, "  %s0x%04x%s  %s%02x%s  %s", c_addr(o), op->offset, c_off(o), c_dim(o), op->byte, c_off(o), op->name);
    bool imm_used = op->opcode != 0x00;
    if (op->symbol) o_printf(o, " (0x%x, %s%s%s)", op->imm, c_sym(o), op->symbol, c_off(o));
    else if (op->nargs == 2) o_printf(o, " (%" PRIu64 ", %" PRIu64 ")", op->args[0], op->args[1]);
    else if (op->nargs == 1 && op->signed_arg) o_printf(o, " (%" PRId64 ")", (int64_t)op->args[0]);
    else if (op->nargs == 1 && (op->opcode == 0x20 || op->opcode == 0x70))
        o_printf(o, " (%u, 0x%08" PRIx64 ")", op->imm, op->args[0]);
    else if (op->nargs == 1) o_printf(o, " (0x%" PRIx64 ")", op->args[0]);
    else if (imm_used && op->imm) o_printf(o, " (%u)", op->imm);
    o_printf(o, "\n");
    return 0;
}

static dk_status do_opcodes(cli *c, dk_macho *m, const dk_slice *s, dk_error *err)
{
    (void)s;
    out *o = &c->o;
    op_ctx x = {o};
    if (o->json) o_arr(o, "streams");
    for (int k = 0; k < 4; k++) {
        dk_opcode_stream strm = (dk_opcode_stream)k;
        uint32_t off, size;
        if (!dk_macho_opcode_stream(m, strm, &off, &size)) continue;
        if (o->json) {
            o_obj(o, NULL);
            o_str(o, "name", dk_opcode_stream_name(strm));
            o_u64(o, "offset", off);
            o_u64(o, "size", size);
            o_arr(o, "opcodes");
        } else {
            o_printf(o, "%s%s opcodes%s (file offset 0x%x, %u bytes)\n", c_head(o), dk_opcode_stream_name(strm), c_off(o), off,
                     size);
        }
        dk_status st = dk_macho_foreach_opcode(m, strm, opcode_cb, &x, err);
        if (st) return st;
        if (o->json) {
            o_arr_end(o);
            o_obj_end(o);
        } else {
            o_printf(o, "\n");
        }
    }
    if (o->json) o_arr_end(o);
    return DK_OK;
}

static int cmd_opcodes(cli *c) { return cli_each_slice(c, do_opcodes); }

const command cmds_macho[] = {
    {"info", cmd_info, "[--json] [--arch A] FILE", MACHO_OPTS, "header, arch, platform, uuid, entry point, segments",
     "Summarise a Mach-O: magic, cpu, filetype and flags, UUID, platform and\n"
     "versions, install name, entry point, fixup encoding and segments.\n"},
    {"loadcmds", cmd_loadcmds, "[--json] [--arch A] FILE", MACHO_OPTS, "every load command, decoded field by field",
     "Decode every load command like `otool -l`, including sections, build\n"
     "tools, thread states and a code-signature SuperBlob summary.\n"},
    {"segments", cmd_segments, "[--json] [--arch A] FILE", MACHO_OPTS, "segments and their sections",
     "List segments with addresses, sizes, file ranges and protections, and\n"
     "the sections inside each with their types.\n"},
    {"symbols", cmd_symbols, "[--json] [--arch A] FILE", MACHO_OPTS, "the nlist symbol table (like nm -m)",
     "List the symbol table: value, section, scope, weak flags, stabs, and for\n"
     "undefined symbols the library they bind to (two-level namespace).\n"},
    {"dylibs", cmd_dylibs, "[--json] [--arch A] FILE", MACHO_OPTS, "dependent libraries with ordinals and kinds",
     "List LC_ID_DYLIB and every dependent library with its ordinal, kind\n"
     "(load/weak/reexport/upward/lazy) and versions.\n"},
    {"exports", cmd_exports, "[--json] [--arch A] FILE", MACHO_OPTS, "the export trie",
     "Walk the export trie (LC_DYLD_INFO or LC_DYLD_EXPORTS_TRIE): regular, weak,\n"
     "re-export (with the imported name), stub-and-resolver, absolute and\n"
     "thread-local entries.\n"},
    {"fixups", cmd_fixups, "[--json] [--arch A] FILE", MACHO_OPTS, "every rebase and bind, whatever the encoding",
     "Every location the loader writes: rebases with their targets and binds\n"
     "with library, symbol, addend and weak-import flag, from classic opcodes,\n"
     "threaded binds or chained fixups (arm64e auth data included).\n"},
    {"chains", cmd_chains, "[--json] [--arch A] FILE", MACHO_OPTS, "LC_DYLD_CHAINED_FIXUPS in detail",
     "The chained-fixups header, imports table, per-segment starts, every page\n"
     "and every chain entry with its raw value, decoded fields and next.\n"},
    {"opcodes", cmd_opcodes, "[--json] [--arch A] FILE", MACHO_OPTS, "raw rebase/bind/weak/lazy opcode streams",
     "The LC_DYLD_INFO opcode streams one opcode a line, with operands.\n"},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
