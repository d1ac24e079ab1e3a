/*
 * Mach-O open and the header-level views: mach_header, every load command
 * decoded field by field, segments and sections (lookups by address and
 * name, reads), dependent dylibs and ordinals, and the summary info.
 */
#include "fuzz.h"

static void walk(dk_macho *m)
{
    const dk_header *h = dk_macho_header(m);
    char buf[512];
    fz_str(dk_macho_arch(m));
    fz_str(dk_macho_name(m));
    fz_str(dk_filetype_name(h->filetype));
    fz_sink += dk_header_flags_string(h->flags, " ", buf, sizeof buf);
    fz_sink += dk_macho_base_address(m) + dk_macho_in_cache(m);
    size_t size;
    const uint8_t *bytes = dk_macho_data(m, &size);
    fz_touch(bytes, size < 64 ? size : 64);

    size_t nlc;
    const dk_loadcmd *lc = dk_macho_loadcmds(m, &nlc);
    for (size_t i = 0; i < nlc; i++) {
        fz_str(dk_loadcmd_name(lc[i].cmd));
        fz_touch(lc[i].data, lc[i].cmdsize);
        dk_error e = {0};
        dk_status st = dk_macho_loadcmd_fields(m, i, fz_field_cb, NULL, &e);
        fz_check(st, &e);
    }

    size_t nseg, nsec;
    const dk_segment *segs = dk_macho_segments(m, &nseg);
    const dk_section *secs = dk_macho_sections(m, &nsec);
    for (size_t i = 0; i < nseg; i++) {
        const dk_segment *s = &segs[i];
        fz_str(s->segname);
        fz_sink += (uint64_t)dk_macho_segment_at(m, s->vmaddr);
        if (s->vmsize) fz_sink += (uint64_t)dk_macho_segment_at(m, s->vmaddr + s->vmsize - 1);
        const uint8_t *p = dk_macho_read(m, s->vmaddr, s->filesize < 256 ? s->filesize : 256);
        if (p) fz_touch(p, s->filesize < 256 ? s->filesize : 256);
    }
    for (size_t i = 0; i < nsec; i++) {
        const dk_section *s = &secs[i];
        fz_str(dk_section_type_name(s->flags & 0xff));
        fz_sink += (uint64_t)dk_macho_section_at(m, s->addr);
        const dk_section *f = dk_macho_find_section(m, s->segname, s->sectname);
        if (!f) abort(); /* a listed section must be found by its names */
        fz_sink += (uint64_t)(uintptr_t)dk_macho_find_section(m, NULL, s->sectname);
        const uint8_t *p = dk_macho_read(m, s->addr, s->size < 64 ? s->size : 64);
        if (p) fz_touch(p, s->size < 64 ? s->size : 64);
    }
    fz_sink += (uint64_t)(uintptr_t)dk_macho_read(m, UINT64_MAX - 3, 8);
    fz_sink += (uint64_t)dk_macho_segment_at(m, UINT64_MAX);

    size_t nd;
    const dk_dylib *d = dk_macho_dylibs(m, &nd);
    for (size_t i = 0; i < nd; i++) {
        fz_str(d[i].name);
        fz_str(dk_dylib_kind_name(d[i].kind));
    }
    for (int o = -4; o <= (int)nd + 1; o++) fz_str(dk_macho_ordinal_name(m, o));
    fz_str(dk_macho_install_name(m));

    const dk_macho_info *info = dk_macho_get_info(m);
    if (info) {
        char v[24];
        dk_version_string(info->minos, v);
        fz_str(v);
        fz_str(dk_platform_name(info->platform));
        fz_str(info->dylinker);
        for (size_t i = 0; i < info->nrpaths; i++) fz_str(info->rpaths[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the thin-image entry point on the raw bytes, then the file-level one */
    dk_macho *m;
    dk_error e = {0};
    dk_status st = dk_macho_open(data, size, "fuzz-input", &m, &e);
    fz_check(st, &e);
    if (st == DK_OK) {
        walk(m);
        dk_macho_close(m);
    }
    fz_each_macho(data, size, walk);
    return 0;
}
