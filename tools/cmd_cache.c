/* Subcommands: cache info, mappings, images, slide, addr, symbols (dyld shared caches). */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef dk_status (*cache_fn)(cli *c, dk_cache *dc, dk_error *err);

/*
 * Open c->pos[0] as a cache, then run FN twice: into a discarding sink to
 * validate, then for real, so malformed input prints only the error.
 */
static int run_cache(cli *c, int min_args, int max_args, cache_fn fn)
{
    if (c->npos < 1) return cli_usage(c, "%s: missing CACHE", c->cmd);
    if (c->npos < min_args) return cli_usage(c, "%s: missing argument", c->cmd);
    if (c->npos > max_args) return cli_usage(c, "%s: too many arguments", c->cmd);
    const char *path = c->pos[0];
    dk_error err = {0};
    dk_cache *dc;
    if (dk_cache_open(path, &dc, &err)) {
        cli_error(path, &err);
        return EXIT_BAD_INPUT;
    }
    int rc = EXIT_OK;
    out *o = &c->o;
    for (int pass = 0; pass < 2 && rc == EXIT_OK; pass++) {
        out_set_null(o, pass == 0);
        if (o->json) {
            o_obj(o, NULL);
            o_u64(o, "schema", 1);
            o_str(o, "file", path);
        }
        memset(&err, 0, sizeof err);
        dk_status st = fn(c, dc, &err);
        if (st) {
            cli_error(path, &err);
            rc = EXIT_BAD_INPUT;
            break;
        }
        if (o->json) o_obj_end(o);
    }
    out_set_null(o, false);
    dk_cache_close(dc);
    return rc;
}

static const char *prot_str(uint32_t p, char b[4])
{
    b[0] = (p & 1) ? 'r' : '-';
    b[1] = (p & 2) ? 'w' : '-';
    b[2] = (p & 4) ? 'x' : '-';
    b[3] = 0;
    return b;
}

static void os_version(uint32_t v, char buf[24])
{
    if (v & 0xff) snprintf(buf, 24, "%u.%u.%u", v >> 16, (v >> 8) & 0xff, v & 0xff);
    else snprintf(buf, 24, "%u.%u", v >> 16, (v >> 8) & 0xff);
}

static const char *cache_type_name(uint64_t t)
{
    switch (t) {
    case 0: return "development";
    case 1: return "production";
    case 2: return "universal";
    }
    return "unknown";
}

static void mapping_flags_string(uint64_t flags, char *buf, size_t n)
{
    static const char *const names[] = {"AUTH_DATA", "DIRTY_DATA", "CONST_DATA", "TEXT_STUBS", "DYNAMIC_CONFIG_DATA",
                                        "READ_ONLY_DATA", "CONST_TPRO_DATA"};
    size_t len = 0;
    buf[0] = 0;
    for (unsigned b = 0; b < 64; b++) {
        if (!(flags & (1ull << b))) continue;
        char tmp[24];
        const char *nm = b < sizeof names / sizeof names[0] ? names[b] : tmp;
        if (nm == tmp) snprintf(tmp, sizeof tmp, "0x%llx", 1ull << b);
        int w = snprintf(buf + len, len < n ? n - len : 0, "%s%s", len ? "," : "", nm);
        if (w > 0) len += (size_t)w;
    }
}

/* ------------------------------------------------------------------- info */

typedef struct hdr_print {
    out *o;
} hdr_print;

static int header_field_json(void *ctx, const dk_field *f)
{
    out *o = ((hdr_print *)ctx)->o;
    if (f->kind == DK_FIELD_STRING) o_strn(o, f->name, f->s, f->slen);
    else if (f->kind == DK_FIELD_UUID) o_uuid(o, f->name, f->bytes);
    else o_u64(o, f->name, f->u);
    return 0;
}

static int header_field_human(void *ctx, const dk_field *f)
{
    out *o = ((hdr_print *)ctx)->o;
    if (f->kind == DK_FIELD_STRING) {
        o_printf(o, "  %-30s \"%.*s\"\n", f->name, (int)f->slen, f->s);
    } else if (f->kind == DK_FIELD_UUID) {
        char u[37];
        uuid_string(f->bytes, u);
        o_printf(o, "  %-30s %s\n", f->name, u);
    } else if (f->kind == DK_FIELD_HEX) {
        o_printf(o, "  %-30s 0x%" PRIx64 "\n", f->name, f->u);
    } else {
        o_printf(o, "  %-30s %" PRIu64 "\n", f->name, f->u);
    }
    return 0;
}

static dk_status do_info(cli *c, dk_cache *dc, dk_error *err)
{
    out *o = &c->o;
    const dk_cache_header *h = dk_cache_get_header(dc);
    size_t nmaps, nimages;
    dk_cache_mappings(dc, &nmaps);
    dk_cache_images(dc, &nimages);
    size_t nfiles = dk_cache_file_count(dc);
    const dk_cache_file *sym = dk_cache_symbols_file(dc);
    bool has_os = dk_cache_header_has(h, "osVersion"), has_type = dk_cache_header_has(h, "cacheType");
    bool has_platform = dk_cache_header_has(h, "platform");
    char osv[24];
    os_version(h->osVersion, osv);
    hdr_print hp = {o};
    if (o->json) {
        o_str(o, "magic", h->magic);
        o_str(o, "arch", dk_cache_arch(dc));
        if (dk_cache_header_has(h, "uuid")) o_uuid(o, "uuid", h->uuid);
        else o_null(o, "uuid");
        if (has_platform) o_u64(o, "platform", h->platform);
        else o_null(o, "platform");
        if (has_os) o_str(o, "os_version", osv);
        else o_null(o, "os_version");
        if (has_type) o_u64(o, "cache_type", h->cacheType);
        else o_null(o, "cache_type");
        o_u64(o, "base_address", dk_cache_base_address(dc));
        o_u64(o, "pointer_size", dk_cache_pointer_size(dc));
        o_u64(o, "header_size", h->mappingOffset);
        o_u64(o, "mapping_count", nmaps);
        o_u64(o, "image_count", nimages);
        o_arr(o, "subcaches");
        for (size_t i = 1; i < nfiles; i++) {
            const dk_cache_file *f = dk_cache_file_at(dc, i);
            o_obj(o, NULL);
            o_str(o, "file", f->name);
            o_str(o, "suffix", f->suffix);
            o_uuid(o, "uuid", f->header.uuid);
            o_u64(o, "vm_offset", f->vm_offset);
            o_obj_end(o);
        }
        o_arr_end(o);
        if (sym) {
            o_obj(o, "symbols_file");
            o_str(o, "file", sym->name);
            o_uuid(o, "uuid", sym->header.uuid);
            o_obj_end(o);
        } else {
            o_null(o, "symbols_file");
        }
        o_obj(o, "header");
        dk_status st = dk_cache_foreach_header_field(dc, 0, header_field_json, &hp, err);
        o_obj_end(o);
        return st;
    }
    const char *H = c_head(o), *OFF = c_off(o);
    o_printf(o, "%s%-13s%s %s\n", H, "magic", OFF, h->magic);
    o_printf(o, "%s%-13s%s %s (%u-bit pointers)\n", H, "arch", OFF, dk_cache_arch(dc), dk_cache_pointer_size(dc) * 8);
    if (dk_cache_header_has(h, "uuid")) {
        char u[37];
        uuid_string(h->uuid, u);
        o_printf(o, "%s%-13s%s %s\n", H, "uuid", OFF, u);
    }
    if (has_platform) o_printf(o, "%s%-13s%s %s (%u)\n", H, "platform", OFF, dk_platform_name(h->platform), h->platform);
    if (has_os) o_printf(o, "%s%-13s%s %s\n", H, "os version", OFF, osv);
    if (has_type) o_printf(o, "%s%-13s%s %s (%" PRIu64 ")\n", H, "cache type", OFF, cache_type_name(h->cacheType), h->cacheType);
    o_printf(o, "%s%-13s%s %s0x%" PRIx64 "%s\n", H, "base address", OFF, c_addr(o), dk_cache_base_address(dc), OFF);
    o_printf(o, "%s%-13s%s 0x%x bytes\n", H, "header", OFF, h->mappingOffset);
    o_printf(o, "%s%-13s%s %zu\n", H, "mappings", OFF, nmaps);
    o_printf(o, "%s%-13s%s %zu\n", H, "images", OFF, nimages);
    if (nfiles > 1) {
        o_printf(o, "%s%-13s%s %zu\n", H, "sub-caches", OFF, nfiles - 1);
        for (size_t i = 1; i < nfiles; i++) {
            const dk_cache_file *f = dk_cache_file_at(dc, i);
            char u[37];
            uuid_string(f->header.uuid, u);
            o_printf(o, "  %-40s %s  vm offset 0x%" PRIx64 "\n", f->name, u, f->vm_offset);
        }
    } else {
        o_printf(o, "%s%-13s%s none\n", H, "sub-caches", OFF);
    }
    if (sym) {
        char u[37];
        uuid_string(sym->header.uuid, u);
        o_printf(o, "%s%-13s%s %s %s\n", H, "symbols file", OFF, sym->name, u);
    } else {
        o_printf(o, "%s%-13s%s none\n", H, "symbols file", OFF);
    }
    o_printf(o, "\n%sdyld_cache_header%s (fields below mappingOffset 0x%x)\n", H, OFF, h->mappingOffset);
    return dk_cache_foreach_header_field(dc, 0, header_field_human, &hp, err);
}

static int cmd_info(cli *c) { return run_cache(c, 1, 1, do_info); }

/* --------------------------------------------------------------- mappings */

static dk_status do_mappings(cli *c, dk_cache *dc, dk_error *err)
{
    (void)err;
    out *o = &c->o;
    size_t n;
    const dk_cache_mapping *m = dk_cache_mappings(dc, &n);
    if (o->json) {
        o_arr(o, "mappings");
        for (size_t i = 0; i < n; i++) {
            o_obj(o, NULL);
            o_u64(o, "index", i);
            o_str(o, "file", dk_cache_file_at(dc, m[i].file)->name);
            o_u64(o, "address", m[i].address);
            o_u64(o, "size", m[i].size);
            o_u64(o, "file_offset", m[i].fileOffset);
            o_u64(o, "max_prot", m[i].maxProt);
            o_u64(o, "init_prot", m[i].initProt);
            o_u64(o, "flags", m[i].flags);
            if (m[i].slide_version) o_u64(o, "slide_info_version", m[i].slide_version);
            else o_null(o, "slide_info_version");
            o_u64(o, "slide_info_offset", m[i].slideInfoFileOffset);
            o_u64(o, "slide_info_size", m[i].slideInfoFileSize);
            o_obj_end(o);
        }
        o_arr_end(o);
        return DK_OK;
    }
    int fw = 4;
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(dk_cache_file_at(dc, m[i].file)->name);
        if (l > fw) fw = l;
    }
    o_printf(o, "%s%-3s %-*s %-18s %-12s %-12s %-7s %-6s %s%s\n", c_head(o), "#", fw, "file", "address", "size",
             "file offset", "prot", "slide", "flags", c_off(o));
    for (size_t i = 0; i < n; i++) {
        char ip[4], mp[4], prot[8], slide[16], flags[160];
        snprintf(prot, sizeof prot, "%s/%s", prot_str(m[i].initProt, ip), prot_str(m[i].maxProt, mp));
        if (m[i].slide_version) snprintf(slide, sizeof slide, "v%u", m[i].slide_version);
        else snprintf(slide, sizeof slide, "-");
        mapping_flags_string(m[i].flags, flags, sizeof flags);
        o_printf(o, "%-3zu %-*s %s0x%-16" PRIx64 "%s 0x%-10" PRIx64 " 0x%-10" PRIx64 " %-7s %-6s %s\n", i, fw,
                 dk_cache_file_at(dc, m[i].file)->name, c_addr(o), m[i].address, c_off(o), m[i].size, m[i].fileOffset,
                 prot, slide, flags);
    }
    return DK_OK;
}

static int cmd_mappings(cli *c) { return run_cache(c, 1, 1, do_mappings); }

/* ----------------------------------------------------------------- images */

static dk_status do_images(cli *c, dk_cache *dc, dk_error *err)
{
    (void)err;
    out *o = &c->o;
    size_t n, nt;
    const dk_cache_image *im = dk_cache_images(dc, &n);
    const dk_cache_image_text *tx = dk_cache_images_text(dc, &nt);
    if (o->json) {
        o_arr(o, "images");
        for (size_t i = 0; i < n; i++) {
            o_obj(o, NULL);
            o_u64(o, "index", i);
            o_u64(o, "address", im[i].address);
            o_str(o, "path", im[i].path);
            o_bool(o, "alias", im[i].alias);
            if (im[i].has_text_info) {
                o_uuid(o, "uuid", im[i].uuid);
                o_u64(o, "text_size", im[i].textSegmentSize);
            } else {
                o_null(o, "uuid");
                o_null(o, "text_size");
            }
            o_u64(o, "mod_time", im[i].modTime);
            o_u64(o, "inode", im[i].inode);
            o_u64(o, "path_file_offset", im[i].pathFileOffset);
            o_obj_end(o);
        }
        o_arr_end(o);
        o_arr(o, "images_text");
        for (size_t i = 0; i < nt; i++) {
            o_obj(o, NULL);
            o_uuid(o, "uuid", tx[i].uuid);
            o_u64(o, "address", tx[i].loadAddress);
            o_u64(o, "text_size", tx[i].textSegmentSize);
            o_u64(o, "path_offset", tx[i].pathOffset);
            o_str(o, "path", tx[i].path);
            o_obj_end(o);
        }
        o_arr_end(o);
        return DK_OK;
    }
    o_printf(o, "%s%-5s %-18s %-36s %s%s\n", c_head(o), "#", "address", "uuid", "path", c_off(o));
    for (size_t i = 0; i < n; i++) {
        char u[37] = "-";
        if (im[i].has_text_info) uuid_string(im[i].uuid, u);
        o_printf(o, "%-5zu %s0x%-16" PRIx64 "%s %-36s %s%s%s\n", i, c_addr(o), im[i].address, c_off(o), u, im[i].path,
                 im[i].alias ? c_dim(o) : "", im[i].alias ? "  (alias)" : "");
        if (im[i].alias) o_printf(o, "%s", c_off(o));
    }
    return DK_OK;
}

static int cmd_images(cli *c) { return run_cache(c, 1, 1, do_images); }

/* ------------------------------------------------------------------ slide */

static int count_cb(void *ctx, const dk_slide_pointer *p)
{
    (void)p;
    (*(uint64_t *)ctx)++;
    return 0;
}

typedef struct slide_print {
    out *o;
} slide_print;

static int pointer_json(void *ctx, const dk_slide_pointer *p)
{
    out *o = ((slide_print *)ctx)->o;
    o_obj(o, NULL);
    o_u64(o, "address", p->address);
    o_u64(o, "target", p->target);
    o_u64(o, "raw", p->raw);
    if (p->high8) o_u64(o, "high8", p->high8);
    if (p->auth) cli_auth_json(o, p->key, p->diversity, p->addr_div);
    o_obj_end(o);
    return 0;
}

static int pointer_human(void *ctx, const dk_slide_pointer *p)
{
    out *o = ((slide_print *)ctx)->o;
    o_printf(o, "    %s0x%" PRIx64 "%s -> %s0x%016" PRIx64 "%s  %sraw 0x%016" PRIx64 "%s", c_addr(o), p->address, c_off(o),
             c_addr(o), p->target, c_off(o), c_dim(o), p->raw, c_off(o));
    if (p->high8) o_printf(o, "  high8 0x%02x", p->high8);
    if (p->auth) cli_auth_human(o, p->key, p->diversity, p->addr_div);
    o_printf(o, "\n");
    return 0;
}

static dk_status do_slide(cli *c, dk_cache *dc, dk_error *err)
{
    out *o = &c->o;
    size_t n;
    const dk_cache_mapping *m = dk_cache_mappings(dc, &n);
    if (o->json) o_arr(o, "mappings");
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (!m[i].slideInfoFileOffset) continue;
        dk_slide_info in;
        dk_status st = dk_cache_slide_info(dc, i, &in, err);
        if (st) return st;
        uint64_t count = 0;
        if ((st = dk_cache_foreach_slide_pointer(dc, i, count_cb, &count, err))) return st;
        const char *fname = dk_cache_file_at(dc, m[i].file)->name;
        slide_print sp = {o};
        shown++;
        if (o->json) {
            o_obj(o, NULL);
            o_u64(o, "mapping", i);
            o_str(o, "file", fname);
            o_u64(o, "address", m[i].address);
            o_u64(o, "size", m[i].size);
            o_u64(o, "slide_info_offset", m[i].slideInfoFileOffset);
            o_u64(o, "slide_info_size", m[i].slideInfoFileSize);
            o_u64(o, "version", in.version);
            o_u64(o, "page_size", in.page_size);
            if (in.version == 1) {
                o_u64(o, "toc_offset", in.toc_offset);
                o_u64(o, "toc_count", in.toc_count);
                o_u64(o, "entries_offset", in.entries_offset);
                o_u64(o, "entries_count", in.entries_count);
                o_u64(o, "entries_size", in.entries_size);
            } else {
                o_u64(o, "page_starts_offset", in.page_starts_offset);
                o_u64(o, "page_starts_count", in.page_starts_count);
                o_u64(o, "value_add", in.value_add);
            }
            if (in.version == 2 || in.version == 4) {
                o_u64(o, "page_extras_offset", in.page_extras_offset);
                o_u64(o, "page_extras_count", in.page_extras_count);
                o_u64(o, "delta_mask", in.delta_mask);
            }
            o_u64(o, "pointer_count", count);
            o_arr(o, in.version == 1 ? "toc" : "page_starts");
            for (uint32_t k = 0; k < in.page_starts_count; k++) o_u64(o, NULL, dk_slide_page_start(&in, k));
            o_arr_end(o);
            if (in.version == 2 || in.version == 4) {
                o_arr(o, "page_extras");
                for (uint32_t k = 0; k < in.page_extras_count; k++) o_u64(o, NULL, dk_slide_page_extra(&in, k));
                o_arr_end(o);
            }
            if (c->pointers) {
                o_arr(o, "pointers");
                st = dk_cache_foreach_slide_pointer(dc, i, pointer_json, &sp, err);
                o_arr_end(o);
                if (st) return st;
            }
            o_obj_end(o);
            continue;
        }
        o_printf(o, "%s%smapping %zu%s  %s  %s0x%" PRIx64 "-0x%" PRIx64 "%s  slide info v%u at file offset 0x%" PRIx64
                    " (0x%" PRIx64 " bytes)\n",
                 shown > 1 ? "\n" : "", c_head(o), i, c_off(o), fname, c_addr(o), m[i].address, m[i].address + m[i].size,
                 c_off(o), in.version, m[i].slideInfoFileOffset, m[i].slideInfoFileSize);
        if (in.version == 1)
            o_printf(o, "  toc_count %u  entries_count %u  entries_size %u\n", in.toc_count, in.entries_count,
                     in.entries_size);
        else
            o_printf(o, "  page_size 0x%x  page_starts_count %u  value_add 0x%" PRIx64, in.page_size,
                     in.page_starts_count, in.value_add);
        if (in.version == 2 || in.version == 4)
            o_printf(o, "  page_extras_count %u  delta_mask 0x%016" PRIx64, in.page_extras_count, in.delta_mask);
        if (in.version != 1) o_printf(o, "\n");
        o_printf(o, "  %" PRIu64 " rebased pointers\n", count);
        if (c->pointers) {
            if ((st = dk_cache_foreach_slide_pointer(dc, i, pointer_human, &sp, err))) return st;
        }
    }
    if (o->json) o_arr_end(o);
    else if (!shown) o_printf(o, "no mapping has slide info\n");
    return DK_OK;
}

static int cmd_slide(cli *c) { return run_cache(c, 1, 1, do_slide); }

/* ------------------------------------------------------------------- addr */

static dk_status do_addr(cli *c, dk_cache *dc, dk_error *err)
{
    out *o = &c->o;
    uint64_t a = 0;
    cli_parse_u64(c->pos[1], &a); /* checked by cmd_addr */
    dk_cache_location loc;
    dk_status st = dk_cache_lookup(dc, a, &loc, err);
    if (st) return st;
    size_t nm;
    const dk_cache_mapping *m = dk_cache_mappings(dc, &nm);
    const dk_cache_mapping *mp = &m[loc.mapping];
    const char *fname = dk_cache_file_at(dc, loc.file)->name;
    if (o->json) {
        o_u64(o, "address", a);
        o_str(o, "cache_file", fname);
        o_u64(o, "file_offset", loc.file_offset);
        o_u64(o, "mapping", (uint64_t)loc.mapping);
        o_u64(o, "mapping_address", mp->address);
        if (loc.image >= 0) {
            o_obj(o, "image");
            o_u64(o, "index", (uint64_t)loc.image);
            o_str(o, "path", loc.image_path);
            o_obj_end(o);
        } else {
            o_null(o, "image");
        }
        if (loc.segment[0]) o_str(o, "segment", loc.segment);
        else o_null(o, "segment");
        if (loc.section[0]) o_str(o, "section", loc.section);
        else o_null(o, "section");
        if (loc.symbol) {
            o_obj(o, "symbol");
            o_str(o, "name", loc.symbol);
            o_u64(o, "address", loc.symbol_address);
            o_u64(o, "offset", a - loc.symbol_address);
            o_obj_end(o);
        } else {
            o_null(o, "symbol");
        }
        return DK_OK;
    }
    const char *H = c_head(o), *OFF = c_off(o);
    char ip[4], xp[4];
    o_printf(o, "%s%-8s%s %s0x%" PRIx64 "%s\n", H, "address", OFF, c_addr(o), a, OFF);
    o_printf(o, "%s%-8s%s %s, file offset 0x%" PRIx64 "\n", H, "file", OFF, fname, loc.file_offset);
    o_printf(o, "%s%-8s%s %ld (0x%" PRIx64 "-0x%" PRIx64 ", %s/%s)\n", H, "mapping", OFF, loc.mapping, mp->address,
             mp->address + mp->size, prot_str(mp->initProt, ip), prot_str(mp->maxProt, xp));
    if (loc.image >= 0) o_printf(o, "%s%-8s%s %ld %s\n", H, "image", OFF, loc.image, loc.image_path);
    else o_printf(o, "%s%-8s%s none\n", H, "image", OFF);
    if (loc.segment[0])
        o_printf(o, "%s%-8s%s %s%s%s\n", H, "section", OFF, loc.segment, loc.section[0] ? "," : "", loc.section);
    if (loc.symbol)
        o_printf(o, "%s%-8s%s %s%s%s+0x%" PRIx64 " (0x%" PRIx64 ")\n", H, "symbol", OFF, c_sym(o), loc.symbol, OFF,
                 a - loc.symbol_address, loc.symbol_address);
    return DK_OK;
}

static int cmd_addr(cli *c)
{
    uint64_t a;
    if (c->npos >= 2 && !cli_parse_u64(c->pos[1], &a)) return cli_usage(c, "%s: bad address '%s'", c->cmd, c->pos[1]);
    return run_cache(c, 2, 2, do_addr);
}

/* ---------------------------------------------------------------- symbols */

typedef struct sym_print {
    out *o;
    dk_cache_symbol_source open; /* the array currently open (JSON) */
    bool any_open;
    size_t counts[3];
} sym_print;

static const char *source_name(dk_cache_symbol_source s)
{
    return s == DK_CACHE_SYM_EXPORT ? "exports" : s == DK_CACHE_SYM_NLIST ? "symbols" : "locals";
}

static const char *nlist_kind(uint8_t t)
{
    if (t & 0xe0) return "stab";
    switch (t & 0x0e) {
    case 0x0: return "undefined";
    case 0x2: return "absolute";
    case 0xe: return "section";
    case 0xc: return "prebound";
    case 0xa: return "indirect";
    }
    return "unknown";
}

static void open_group(sym_print *x, dk_cache_symbol_source src)
{
    out *o = x->o;
    if (x->any_open && x->open == src) return;
    /* groups come in order export, nlist, local; open the empty ones in between */
    int from = x->any_open ? (int)x->open + 1 : 0;
    if (x->any_open && o->json) o_arr_end(o);
    for (int g = from; g < (int)src; g++) {
        if (o->json) {
            o_arr(o, source_name((dk_cache_symbol_source)g));
            o_arr_end(o);
        }
    }
    if (o->json) o_arr(o, source_name(src));
    else o_printf(o, "  %s%s%s\n", c_head(o), source_name(src), c_off(o));
    x->open = src;
    x->any_open = true;
}

static void close_groups(sym_print *x)
{
    out *o = x->o;
    int from = x->any_open ? (int)x->open + 1 : 0;
    if (x->any_open && o->json) o_arr_end(o);
    for (int g = from; g <= (int)DK_CACHE_SYM_LOCAL; g++)
        if (o->json) {
            o_arr(o, source_name((dk_cache_symbol_source)g));
            o_arr_end(o);
        }
}

static int symbol_cb(void *ctx, const dk_cache_symbol *s)
{
    sym_print *x = ctx;
    out *o = x->o;
    open_group(x, s->source);
    x->counts[s->source]++;
    if (s->source == DK_CACHE_SYM_EXPORT) {
        const dk_export *e = s->export_;
        if (o->json) {
            o_obj(o, NULL);
            o_str(o, "name", s->name);
            if (!(e->flags & DK_EXPORT_REEXPORT)) o_u64(o, "address", e->address);
            o_arr(o, "flags");
            if (e->flags & DK_EXPORT_WEAK) o_str(o, NULL, "weak");
            if (e->flags & DK_EXPORT_REEXPORT) o_str(o, NULL, "reexport");
            if (e->flags & DK_EXPORT_RESOLVER) o_str(o, NULL, "resolver");
            if (e->flags & DK_EXPORT_ABSOLUTE) o_str(o, NULL, "absolute");
            if (e->flags & DK_EXPORT_TLS) o_str(o, NULL, "tls");
            o_arr_end(o);
            if (e->flags & DK_EXPORT_REEXPORT) o_str(o, "imported_name", e->imported_name ? e->imported_name : s->name);
            if (e->flags & DK_EXPORT_RESOLVER) o_u64(o, "resolver", e->resolver);
            o_obj_end(o);
        } else if (e->flags & DK_EXPORT_REEXPORT) {
            o_printf(o, "    %-18s %s%s%s (re-export of %s)\n", "", c_sym(o), s->name, c_off(o),
                     e->imported_name ? e->imported_name : s->name);
        } else {
            o_printf(o, "    %s0x%-16" PRIx64 "%s %s%s%s%s%s%s\n", c_addr(o), e->address, c_off(o), c_sym(o), s->name,
                     c_off(o), (e->flags & DK_EXPORT_WEAK) ? " [weak]" : "", (e->flags & DK_EXPORT_RESOLVER) ? " [resolver]" : "",
                     (e->flags & DK_EXPORT_TLS) ? " [tls]" : "");
        }
        return 0;
    }
    if (o->json) {
        o_obj(o, NULL);
        o_str(o, "name", s->name);
        o_u64(o, "value", s->address);
        o_u64(o, "type", s->type);
        o_str(o, "kind", nlist_kind(s->type));
        o_bool(o, "external", (s->type & 0x01) != 0);
        o_u64(o, "sect", s->sect);
        o_u64(o, "desc", s->desc);
        o_obj_end(o);
    } else {
        o_printf(o, "    %s0x%-16" PRIx64 "%s %-9s %s %s%s%s\n", c_addr(o), s->address, c_off(o), nlist_kind(s->type),
                 (s->type & 0x01) ? "ext" : "   ", c_sym(o), s->name, c_off(o));
    }
    return 0;
}

static dk_status symbols_of(cli *c, dk_cache *dc, size_t index, dk_error *err)
{
    out *o = &c->o;
    size_t n;
    const dk_cache_image *im = dk_cache_images(dc, &n);
    sym_print x;
    memset(&x, 0, sizeof x);
    x.o = o;
    if (o->json) {
        o_obj(o, NULL);
        o_u64(o, "index", index);
        o_str(o, "path", im[index].path);
        o_u64(o, "address", im[index].address);
    } else {
        o_printf(o, "%s%s%s (image %zu, 0x%" PRIx64 ")\n", c_head(o), im[index].path, c_off(o), index, im[index].address);
    }
    dk_status st = dk_cache_foreach_image_symbol(dc, index, symbol_cb, &x, err);
    if (st) return st;
    close_groups(&x);
    if (o->json) o_obj_end(o);
    else if (!x.counts[0] && !x.counts[1] && !x.counts[2]) o_printf(o, "  (no symbols)\n");
    return DK_OK;
}

static dk_status do_symbols(cli *c, dk_cache *dc, dk_error *err)
{
    out *o = &c->o;
    size_t n;
    const dk_cache_image *im = dk_cache_images(dc, &n);
    if (o->json) o_arr(o, "images");
    if (c->npos >= 2) {
        size_t index;
        dk_status st = dk_cache_find_image(dc, c->pos[1], &index, err);
        if (st) return st;
        if ((st = symbols_of(c, dc, index, err))) return st;
    } else {
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            if (im[i].alias) continue;
            if (!first && !o->json) o_printf(o, "\n");
            first = false;
            dk_status st = symbols_of(c, dc, i, err);
            if (st) return st;
        }
    }
    if (o->json) o_arr_end(o);
    return DK_OK;
}

static int cmd_symbols(cli *c) { return run_cache(c, 1, 2, do_symbols); }

/* ------------------------------------------------------------ patches */

typedef struct patch_print {
    out *o;
    const dk_cache_image *imgs;
    size_t nimgs;
} patch_print;

static const char *image_name(const patch_print *pp, long i)
{
    return i >= 0 && (size_t)i < pp->nimgs ? pp->imgs[i].path : "?";
}

static int patch_json(void *ctx, const dk_cache_patch *p)
{
    const patch_print *pp = ctx;
    out *o = pp->o;
    o_obj(o, NULL);
    o_str(o, "event", p->event == DK_PATCH_EXPORT ? "export" : p->event == DK_PATCH_USE ? "use" : "got_use");
    o_u64(o, "image", p->image);
    o_str(o, "export", p->export_name);
    o_u64(o, "export_address", p->export_address);
    o_u64(o, "kind", p->patch_kind);
    if (p->event != DK_PATCH_EXPORT) {
        if (p->event == DK_PATCH_USE) o_i64(o, "client", p->client);
        o_u64(o, "location", p->location);
        o_u64(o, "addend", p->addend);
        o_bool(o, "weak_import", p->weak_import);
        if (p->high8) o_u64(o, "high8", p->high8);
        if (p->auth) cli_auth_json(o, p->key, p->diversity, p->addr_div);
    }
    o_obj_end(o);
    return 0;
}

static int patch_human(void *ctx, const dk_cache_patch *p)
{
    const patch_print *pp = ctx;
    out *o = pp->o;
    if (p->event == DK_PATCH_EXPORT) {
        o_printf(o, "%s0x%" PRIx64 "%s  %s  %s%s%s", c_addr(o), p->export_address, c_off(o), image_name(pp, p->image), c_sym(o),
                 p->export_name, c_off(o));
        if (p->patch_kind) o_printf(o, "  %s(kind %u)%s", c_dim(o), p->patch_kind, c_off(o));
        o_printf(o, "\n");
        return 0;
    }
    o_printf(o, "    %s %s0x%" PRIx64 "%s -> %s%s", p->event == DK_PATCH_USE ? "use" : "GOT", c_addr(o), p->location, c_off(o),
             p->export_name, c_off(o));
    if (p->addend) o_printf(o, " + %" PRIu64, p->addend);
    if (p->event == DK_PATCH_USE) o_printf(o, "  %sin %s%s", c_dim(o), image_name(pp, p->client), c_off(o));
    else o_printf(o, "  %s(cache-wide uniqued GOT slot)%s", c_dim(o), c_off(o));
    if (p->weak_import) o_printf(o, "  weak-import");
    if (p->high8) o_printf(o, "  high8 0x%02x", p->high8);
    if (p->auth) cli_auth_human(o, p->key, p->diversity, p->addr_div);
    o_printf(o, "\n");
    return 0;
}

static dk_status do_patches(cli *c, dk_cache *dc, dk_error *err)
{
    out *o = &c->o;
    dk_cache_patch_info pi;
    dk_status st = dk_cache_patch_table(dc, &pi, err);
    if (st) return st;
    long image = -1;
    if (c->npos >= 2) {
        size_t index;
        if ((st = dk_cache_find_image(dc, c->pos[1], &index, err))) return st;
        image = (long)index;
    }
    patch_print pp = {o, NULL, 0};
    pp.imgs = dk_cache_images(dc, &pp.nimgs);
    if (o->json) {
        o_u64(o, "version", pi.version);
        o_u64(o, "location_version", pi.patchLocationVersion);
        o_arr(o, "entries");
    } else {
        o_printf(o, "patch table v%u", pi.version);
        if (pi.version >= 2) o_printf(o, " (patchLocationVersion %u)", pi.patchLocationVersion);
        o_printf(o, ": each export, then every pointer to it (use: in a client image; GOT: a uniqued GOT slot)\n");
    }
    st = dk_cache_foreach_patch(dc, image, o->json ? patch_json : patch_human, &pp, err);
    if (o->json) o_arr_end(o);
    return st;
}

static int cmd_patches(cli *c) { return run_cache(c, 1, 2, do_patches); }

const command cmds_cache[] = {
    {"cache info", cmd_info, "[--json] CACHE", "json", "dyld shared cache header, files, sub-caches",
     "Show the cache's magic, architecture, UUID, platform, OS version and type, its\n"
     "sub-caches and .symbols file, and every dyld_cache_header field present in\n"
     "this version (fields below mappingOffset), named as in dyld_cache_format.h.\n"},
    {"cache mappings", cmd_mappings, "[--json] CACHE", "json", "every mapping of every cache file",
     "List the mappings of the main file and each sub-cache: address, size, file\n"
     "offset, protections, dyld_cache_mapping_and_slide_info flags and the version\n"
     "of the mapping's slide info.\n"},
    {"cache images", cmd_images, "[--json] CACHE", "json", "every image of the cache",
     "List the image table (aliases marked) with each image's UUID and __TEXT size\n"
     "from the image text table.\n"},
    {"cache slide", cmd_slide, "[--json] [--pointers] CACHE", "json,pointers", "slide info of each mapping",
     "Show each mapping's slide info header (v1-v5) and the number of rebased\n"
     "pointers; with --pointers every rebased location, its on-disk value and the\n"
     "unslid target (high8 and arm64e authentication data when present).\n"},
    {"cache addr", cmd_addr, "[--json] CACHE ADDR", "json", "what lives at an address",
     "Show which file, mapping, image, segment, section and symbol hold ADDR (an\n"
     "unslid address, decimal or 0x hex).  Exit 1 when no mapping holds it.\n"},
    {"cache symbols", cmd_symbols, "[--json] CACHE [IMAGE]", "json", "exported and local symbols of cache images",
     "List each image's exports (export trie), its nlist symbols (its range of the\n"
     "shared symbol table) and its unmapped local symbols.  IMAGE is an install\n"
     "path, a basename or an index; default: every image except aliases.\n"},
    {"cache patches", cmd_patches, "[--json] CACHE [IMAGE]", "json", "the patch table: every use of every export",
     "List the patch table (v1-v4): each image's patchable exports and every\n"
     "pointer to each, in client images (with addend, weak-import and arm64e\n"
     "authentication data) and, from v3, in the cache-wide uniqued GOT slots.\n"
     "IMAGE (install path, basename or index) limits it to that image's exports.\n"},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
