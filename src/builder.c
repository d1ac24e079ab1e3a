/*
 * The cache builder's driver: load the input dylibs, check their dependency
 * closure, lay the cache out the way Apple's builder does (one TEXT mapping
 * holding the cache header and every image's __TEXT, data segments grouped
 * by kind into DATA_CONST / DATA / DATA_DIRTY / AUTH_CONST / AUTH mappings,
 * one shared LINKEDIT), run the passes (fixups, code, ObjC, LINKEDIT, slide
 * info), rewrite each image's load commands and write the files.
 *
 * Header offsets are those of dyld_cache_header in Apple's
 * <mach-o/dyld_cache_format.h> (dsc-format.md section 2.3).
 */
#include "builder_internal.h"
#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_INPUTS 100000
/* Bounds on what the builder holds in memory and writes: a segment's vmsize
   (a hostile dylib's zero-fill could otherwise ask for terabytes) and each
   mapping, which is built in one buffer.  Real dylib segments are well under
   the first; real cache mappings are a few GiB. */
#define MAX_SEGMENT_SIZE (1ull << 30)
#define MAX_MAPPING_SIZE (8ull << 30)

void bld_warn(builder *b, const char *fmt, ...)
{
    if (!b->o->warn) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->o->warn(b->o->warn_ctx, msg);
}

static const char *region_names[R_COUNT] = {"TEXT", "DATA_CONST", "DATA", "DATA_DIRTY", "AUTH_CONST", "AUTH", "LINKEDIT"};

static int region_of(const dk_segment *g)
{
    if (strcmp(g->segname, "__LINKEDIT") == 0) return R_LINKEDIT;
    if (strcmp(g->segname, "__TEXT") == 0 || (g->initprot & 4)) return R_TEXT;
    if (strcmp(g->segname, "__DATA_CONST") == 0) return R_DATA_CONST;
    if (strcmp(g->segname, "__DATA_DIRTY") == 0) return R_DATA_DIRTY;
    if (strcmp(g->segname, "__AUTH_CONST") == 0) return R_AUTH_CONST;
    if (strcmp(g->segname, "__AUTH") == 0) return R_AUTH;
    if (!(g->initprot & 2) && !(g->flags & 0x10)) return R_TEXT; /* read-only data travels with TEXT */
    return R_DATA;
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

int bld_seg_at(const bimage *im, uint64_t addr)
{
    for (size_t k = 0; k < im->nsegs; k++)
        if (addr >= im->segs[k].new_addr && addr - im->segs[k].new_addr < im->segs[k].old_size) return (int)k;
    return -1;
}

const bimage *bld_image_at(const builder *b, uint64_t addr)
{
    for (size_t i = 0; i < b->nimgs; i++)
        if (bld_seg_at(&b->imgs[i], addr) >= 0) return &b->imgs[i];
    return NULL;
}

bool bld_xlate(const builder *b, const bimage *im, uint64_t old, uint64_t *out)
{
    (void)b;
    /* inside a segment first; then one past the end of one (section-end symbols) */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < im->nsegs; i++) {
            const bseg *s = &im->segs[i];
            if (!s->old_size || old < s->old_addr) continue;
            uint64_t d = old - s->old_addr;
            if (pass == 0 ? d < s->old_size : d == s->old_size) {
                *out = s->new_addr + d;
                return true;
            }
        }
    return false;
}

const dk_fixup *bld_fixup_index(dk_macho *m, size_t *n, dk_error *err, dk_status *st)
{
    const dk_fixup *f;
    size_t c;
    *st = dk__fixups_at(m, 0, &f, &c, err); /* builds the sorted index */
    *n = m->nfixidx;
    return m->fixidx;
}

int bld_image_of_set_index(const builder *b, int set_index)
{
    for (size_t i = 0; i < b->nimgs; i++)
        if (b->imgs[i].set_index == set_index) return (int)i;
    return -1;
}

uint8_t *bld_at(builder *b, uint64_t a, uint64_t size)
{
    for (int r = 0; r < R_COUNT; r++) {
        region *g = &b->regions[r];
        if (!g->buf || a < g->addr || a - g->addr >= g->size) continue;
        if (!dk_range_ok(a - g->addr, size, g->size)) return NULL;
        return g->buf + (a - g->addr);
    }
    return NULL;
}

dk_status bld_add_ptr(builder *b, const slide_ptr *p)
{
    for (int r = 0; r < R_COUNT; r++) {
        region *g = &b->regions[r];
        if (p->addr < g->addr || p->addr - g->addr >= g->size) continue;
        if (r == R_TEXT || r == R_LINKEDIT)
            return dk_fail(b->err, DK_E_UNSUPPORTED, "pointer at 0x%llx needs sliding but lies in the read-only %s mapping",
                           (unsigned long long)p->addr, region_names[r]);
        if (g->nptrs == g->capptrs) {
            size_t cap = g->capptrs ? g->capptrs * 2 : 1024;
            slide_ptr *n = realloc(g->ptrs, cap * sizeof *n);
            if (!n) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
            g->ptrs = n;
            g->capptrs = cap;
        }
        g->ptrs[g->nptrs++] = *p;
        return DK_OK;
    }
    return dk_fail(b->err, DK_E_MALFORMED, "pointer at 0x%llx is outside every mapping", (unsigned long long)p->addr);
}

void bld_write_ptr(builder *b, uint64_t a, uint64_t v)
{
    uint8_t *p = bld_at(b, a, b->ptr);
    if (!p) return;
    if (b->ptr == 8) dk_wr64le(p, v);
    else dk_wr32le(p, (uint32_t)v);
}

/* -------------------------------------------------------------- inputs */

static dk_status load_inputs(builder *b)
{
    const dk_build_opts *o = b->o;
    if (o->ninputs == 0) return dk_fail(b->err, DK_E_ARG, "no input dylibs");
    if (o->ninputs > MAX_INPUTS) return dk_fail(b->err, DK_E_LIMIT, "more than %d inputs", MAX_INPUTS);
    b->imgs = calloc(o->ninputs, sizeof *b->imgs);
    if (!b->imgs) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < o->ninputs; i++) {
        bimage *im = &b->imgs[i];
        im->path = o->inputs[i];
        dk_status st = dk_file_open(im->path, &im->file, b->err);
        if (st) {
            dk_error_prefix(b->err, "%s: ", im->path);
            return st;
        }
        b->nimgs = i + 1;
        size_t n = dk_file_slice_count(im->file), idx = 0;
        const char *want = o->arch ? o->arch : b->arch;
        if (want) {
            if (dk_file_find_arch(im->file, want, &idx, NULL)) {
                return dk_fail(b->err, DK_E_ARG, "%s: no %s slice", im->path, want);
            }
        } else if (n > 1) {
            return dk_fail(b->err, DK_E_ARG, "%s is universal: choose a slice with --arch", im->path);
        }
        if ((st = dk_file_open_macho(im->file, idx, &im->m, b->err))) {
            dk_error_prefix(b->err, "%s: ", im->path);
            return st;
        }
        const dk_header *h = dk_macho_header(im->m);
        if (h->filetype != MH_DYLIB)
            return dk_fail(b->err, DK_E_ARG, "%s is not a dylib (filetype %s)", im->path, dk_filetype_name(h->filetype));
        if (h->flags & MH_DYLIB_IN_CACHE) return dk_fail(b->err, DK_E_ARG, "%s is already part of a dyld cache", im->path);
        im->install_name = dk_macho_install_name(im->m);
        if (i == 0) {
            b->arch = dk_macho_arch(im->m);
            b->cputype = h->cputype;
            b->cpusubtype = h->cpusubtype & ~CPU_SUBTYPE_MASK;
            b->arm64 = b->cputype == CPU_TYPE_ARM64 || b->cputype == CPU_TYPE_ARM64_32;
            b->arm64e = b->cputype == CPU_TYPE_ARM64 && b->cpusubtype == CPU_SUBTYPE_ARM64E;
            b->x86_64 = b->cputype == CPU_TYPE_X86_64;
            if (!b->arm64 && !b->x86_64)
                return dk_fail(b->err, DK_E_UNSUPPORTED, "%s is %s: cannot build a cache for it (arm64, arm64e, arm64_32 and x86_64 only)",
                               im->path, b->arch);
        } else if (h->cputype != b->cputype || (h->cpusubtype & ~CPU_SUBTYPE_MASK) != b->cpusubtype) {
            return dk_fail(b->err, DK_E_ARG, "%s is %s but %s is %s: a cache holds one architecture", im->path,
                           dk_macho_arch(im->m), b->imgs[0].path, b->arch);
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(b->imgs[k].install_name, im->install_name) == 0)
                return dk_fail(b->err, DK_E_ARG, "%s and %s have the same install name %s", b->imgs[k].path, im->path,
                               im->install_name);
    }
    b->is64 = b->cputype != CPU_TYPE_ARM64_32;
    b->ptr = b->is64 ? 8 : 4;
    b->page = b->x86_64 ? 0x1000 : 0x4000;
    b->base = b->x86_64 ? 0x7FFF20000000ull : b->is64 ? 0x180000000ull : 0x1A000000ull;
    int def = b->arm64e ? 3 : b->is64 ? 2 : 4;
    b->slide_version = o->slide_version ? o->slide_version : def;
    int sv = b->slide_version;
    bool ok = b->is64 ? (sv == 2 || sv == 1 || (b->arm64e && (sv == 3 || sv == 5))) : (sv == 4 || sv == 1);
    if (!ok)
        return dk_fail(b->err, DK_E_ARG, "slide info v%d does not exist for %s caches (%s)", sv, b->arch,
                       b->arm64e ? "v1, v2, v3, v5" : b->is64 ? "v1, v2" : "v1, v4");
    return DK_OK;
}

/* Every dependency must be among the inputs (weak ones may be missing). */
static dk_status check_closure(builder *b)
{
    dk_imageset_opts so = {NULL, NULL, 0, b->arch, true};
    dk_status st = dk_imageset_new(&so, &b->set, b->err);
    if (st) return st;
    for (size_t i = 0; i < b->nimgs; i++)
        if ((st = dk_imageset_add_macho(b->set, b->imgs[i].m, b->imgs[i].path, &b->imgs[i].set_index, b->err))) {
            dk_error_prefix(b->err, "%s: ", b->imgs[i].path);
            return st;
        }
    char msg[400] = "";
    size_t missing = 0;
    for (size_t i = 0; i < b->nimgs; i++) {
        size_t nd;
        const dk_dylib *d = dk_macho_dylibs(b->imgs[i].m, &nd);
        for (size_t k = 0; k < nd; k++) {
            int idx;
            dk_error e;
            st = dk_imageset_load_dependency(b->set, b->imgs[i].set_index, (int)k + 1, &idx, &e);
            if (st == DK_OK) continue;
            if (st != DK_E_NOTFOUND) {
                *b->err = e;
                return st;
            }
            if (d[k].kind == DK_DYLIB_WEAK) {
                bld_warn(b, "%s: weak dependency %s is not in the cache", b->imgs[i].install_name, d[k].name);
                continue;
            }
            if (b->o->allow_unresolved) {
                bld_warn(b, "%s: dependency %s is not in the cache; its imports stay binds", b->imgs[i].install_name, d[k].name);
                continue;
            }
            if (missing++ < 4) {
                size_t l = strlen(msg);
                snprintf(msg + l, sizeof msg - l, "%s%s (needed by %s)", l ? ", " : "", d[k].name, b->imgs[i].install_name);
            }
        }
    }
    if (missing)
        return dk_fail(b->err, DK_E_NOTFOUND, "%zu missing dependenc%s: %s%s", missing, missing == 1 ? "y" : "ies", msg,
                       missing > 4 ? ", ..." : "");
    return DK_OK;
}

/* --------------------------------------------------------------- layout */

static dk_status plan_segments(builder *b)
{
    for (size_t i = 0; i < b->nimgs; i++) {
        bimage *im = &b->imgs[i];
        size_t n;
        const dk_segment *segs = dk_macho_segments(im->m, &n);
        im->segs = calloc(n ? n : 1, sizeof *im->segs);
        if (!im->segs) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
        im->nsegs = n;
        im->text_seg = im->linkedit_seg = -1;
        for (size_t k = 0; k < n; k++) {
            bseg *s = &im->segs[k];
            s->region = region_of(&segs[k]);
            s->old_addr = segs[k].vmaddr;
            s->old_size = segs[k].vmsize;
            if (s->old_size > MAX_SEGMENT_SIZE)
                return dk_fail(b->err, DK_E_LIMIT, "%s: segment %s is 0x%llx bytes (the builder takes segments up to 1 GiB)",
                               im->path, segs[k].segname, (unsigned long long)s->old_size);
            if (strcmp(segs[k].segname, "__TEXT") == 0) im->text_seg = (int)k;
            if (s->region == R_LINKEDIT) im->linkedit_seg = (int)k;
            if (s->region == R_AUTH || s->region == R_AUTH_CONST) {
                if (!b->arm64e) s->region = s->region == R_AUTH ? R_DATA : R_DATA_CONST;
            }
            if (s->old_size % 0x1000 && s->region != R_LINKEDIT && k + 1 < n)
                bld_warn(b, "%s: segment %s size 0x%llx is not page aligned", im->install_name, segs[k].segname,
                         (unsigned long long)s->old_size);
        }
        if (im->text_seg < 0 || segs[im->text_seg].fileoff != 0)
            return dk_fail(b->err, DK_E_UNSUPPORTED, "%s: no __TEXT segment holding the mach header", im->path);
        if (im->linkedit_seg < 0) return dk_fail(b->err, DK_E_UNSUPPORTED, "%s: no __LINKEDIT segment", im->path);
    }
    return DK_OK;
}

static size_t count_mappings(const builder *b, int file)
{
    size_t n = 0;
    for (int r = 0; r < R_COUNT; r++)
        if (b->regions[r].size && b->regions[r].file == file) n++;
    return n;
}

static dk_status layout(builder *b, uint64_t objc_bytes)
{
    bool split = b->o->format == 1042;
    b->header_size = split ? 0x200 : 0x140;
    /* which regions exist */
    bool has[R_COUNT] = {0};
    has[R_TEXT] = has[R_LINKEDIT] = true;
    for (size_t i = 0; i < b->nimgs; i++)
        for (size_t k = 0; k < b->imgs[i].nsegs; k++) has[b->imgs[i].segs[k].region] = true;
    /* uniqued GOT chunks: plain slots in DATA_CONST, authenticated ones in AUTH_CONST (when there is one) */
    int got_region[2] = {R_DATA_CONST, has[R_AUTH_CONST] ? R_AUTH_CONST : R_DATA_CONST};
    for (int c = 0; c < 2; c++)
        if (b->got_count[c]) has[got_region[c]] = true;
    for (int r = 0; r < R_COUNT; r++) {
        b->regions[r].name = region_names[r];
        b->regions[r].file = !split ? 0 : r == R_TEXT ? 0 : r == R_LINKEDIT ? 2 : 1;
        b->regions[r].prot = r == R_TEXT ? 5 : r == R_LINKEDIT ? 1 : 3;
        b->regions[r].flags = r == R_DATA_CONST ? DK_MAPPING_CONST_DATA
                              : r == R_DATA_DIRTY ? DK_MAPPING_DIRTY_DATA
                              : r == R_AUTH ? DK_MAPPING_AUTH_DATA
                              : r == R_AUTH_CONST ? (DK_MAPPING_AUTH_DATA | DK_MAPPING_CONST_DATA)
                                                  : 0;
        b->regions[r].size = has[r] ? 1 : 0; /* placeholder for counting */
    }
    size_t nmain = count_mappings(b, 0);
    uint64_t tables = b->header_size + nmain * 32 + nmain * 56 + (split ? 2 * 56 : 0) + b->nimgs * 32 * 2;
    b->header_area = align_up(tables, b->page);
    /* TEXT: header area, then every image's read-only segments, then the selector strings */
    uint64_t a = b->base + b->header_area;
    for (size_t i = 0; i < b->nimgs; i++) {
        bimage *im = &b->imgs[i];
        for (size_t k = 0; k < im->nsegs; k++) {
            bseg *s = &im->segs[k];
            if (s->region != R_TEXT) continue;
            s->new_addr = a;
            a = align_up(a + s->old_size, b->page);
        }
        im->new_base = im->segs[im->text_seg].new_addr;
    }
    b->selstr_addr = a;
    b->selstr_size = objc_bytes;
    a += objc_bytes;
    b->objc_opt_addr = split && objc_bytes ? align_up(a, 8) : 0;
    if (b->objc_opt_addr) a = b->objc_opt_addr + 72;
    region *t = &b->regions[R_TEXT];
    t->addr = t->map_addr = b->base;
    t->size = t->map_size = align_up(a, b->page) - b->base;
    t->file_off = 0;
    /* data regions in order; in a split cache the data sub-cache's header page comes first */
    a = b->base + t->size;
    bool first_data = true;
    uint64_t file_off = t->size;
    for (int r = R_DATA_CONST; r <= R_AUTH; r++) {
        region *g = &b->regions[r];
        if (!has[r]) {
            g->size = 0;
            continue;
        }
        uint64_t hdr = 0;
        if (split && first_data) {
            hdr = b->page; /* the .01 header */
            file_off = 0;
        }
        first_data = false;
        g->map_addr = a;
        a += hdr;
        g->addr = a;
        for (size_t i = 0; i < b->nimgs; i++)
            for (size_t k = 0; k < b->imgs[i].nsegs; k++) {
                bseg *s = &b->imgs[i].segs[k];
                if (s->region != r) continue;
                s->new_addr = a;
                a = align_up(a + s->old_size, b->page);
            }
        for (int c = 0; c < 2; c++)
            if (b->got_count[c] && got_region[c] == r) {
                b->got_addr[c] = a;
                a = align_up(a + b->got_count[c] * 8, b->page);
            }
        g->size = a - g->addr;
        g->map_size = a - g->map_addr;
        g->file_off = file_off;
        file_off += g->map_size;
    }
    /* LINKEDIT comes last; its size is known once the LINKEDIT pass ran */
    region *le = &b->regions[R_LINKEDIT];
    le->map_addr = a;
    le->addr = a + (split ? b->page : 0);
    le->file_off = split ? 0 : file_off;
    for (size_t i = 0; i < b->nimgs; i++) b->imgs[i].segs[b->imgs[i].linkedit_seg].new_addr = le->addr;
    return DK_OK;
}

static dk_status allocate_and_copy(builder *b)
{
    for (int r = 0; r < R_LINKEDIT; r++) {
        region *g = &b->regions[r];
        if (!g->size) continue;
        if (g->size > MAX_MAPPING_SIZE)
            return dk_fail(b->err, DK_E_LIMIT, "the %s mapping would be 0x%llx bytes (the builder makes mappings up to 8 GiB)",
                           g->name, (unsigned long long)g->size);
        g->buf = calloc(1, g->size);
        if (!g->buf) return dk_fail(b->err, DK_E_NOMEM, "out of memory for the %s mapping (%llu bytes)", g->name, (unsigned long long)g->size);
    }
    for (size_t i = 0; i < b->nimgs; i++) {
        bimage *im = &b->imgs[i];
        size_t n;
        const dk_segment *segs = dk_macho_segments(im->m, &n);
        for (size_t k = 0; k < n; k++) {
            bseg *s = &im->segs[k];
            if (s->region == R_LINKEDIT) continue;
            region *g = &b->regions[s->region];
            s->out = g->buf + (s->new_addr - g->addr);
            uint64_t fs = segs[k].filesize < s->old_size ? segs[k].filesize : s->old_size;
            const uint8_t *src = fs ? dk_macho_read(im->m, segs[k].vmaddr, fs) : NULL;
            if (fs && !src) return dk_fail(b->err, DK_E_MALFORMED, "%s: segment %s is not in the file", im->path, segs[k].segname);
            if (fs) memcpy(s->out, src, fs);
        }
        im->hdr = im->segs[im->text_seg].out;
    }
    return DK_OK;
}

/* ------------------------------------------------------ load commands */

/* File offset (in its own file) of new address A. */
static uint64_t file_offset_of(const builder *b, uint64_t a)
{
    for (int r = 0; r < R_COUNT; r++) {
        const region *g = &b->regions[r];
        if (g->map_size && a >= g->map_addr && a - g->map_addr < g->map_size) return g->file_off + (a - g->map_addr);
    }
    return 0;
}

static dk_status rewrite_load_commands(builder *b, bimage *im)
{
    dk_macho *m = im->m;
    const dk_header *h = dk_macho_header(m);
    size_t nlc;
    const dk_loadcmd *lcs = dk_macho_loadcmds(m, &nlc);
    size_t hsize = h->is64 ? 32 : 28;
    /* room for load commands: up to the first section's contents */
    uint64_t room = im->segs[im->text_seg].old_size;
    size_t nsect;
    const dk_section *secs = dk_macho_sections(m, &nsect);
    for (size_t i = 0; i < nsect; i++)
        if (secs[i].segment == (uint32_t)im->text_seg && secs[i].size && secs[i].addr - im->segs[im->text_seg].old_addr < room)
            room = secs[i].addr - im->segs[im->text_seg].old_addr;
    dk_buf out = {0};
    const region *le = &b->regions[R_LINKEDIT];
    uint64_t le_file = le->file_off + (le->addr - le->map_addr);
    bool need_dyld_info = im->nkept > 0;
    bool have_dyld_info = false;
    uint32_t ncmds = 0;
    for (size_t i = 0; i < nlc; i++) {
        const dk_loadcmd *lc = &lcs[i];
        uint8_t tmp[256];
        switch (lc->cmd) {
        case LC_CODE_SIGNATURE: case LC_DYLD_CHAINED_FIXUPS: case LC_SEGMENT_SPLIT_INFO: case LC_ENCRYPTION_INFO:
        case LC_ENCRYPTION_INFO_64: case LC_DYLIB_CODE_SIGN_DRS:
            continue; /* removed, as Apple's builder does */
        case LC_SEGMENT: case LC_SEGMENT_64: {
            size_t start = out.len;
            dk_buf_bytes(&out, lc->data, lc->cmdsize);
            if (out.oom) break;
            uint8_t *p = out.data + start;
            bool s64 = lc->cmd == LC_SEGMENT_64;
            /* which segment is this */
            size_t ns;
            const dk_segment *segs = dk_macho_segments(m, &ns);
            size_t k = 0;
            while (k < ns && segs[k].loadcmd != i) k++;
            if (k == ns) break;
            const bseg *s = &im->segs[k];
            uint64_t vmaddr, vmsize, fileoff, filesize;
            if (s->region == R_LINKEDIT) {
                vmaddr = le->addr;
                vmsize = le->size;
                fileoff = le_file;
                filesize = le->size;
            } else {
                vmaddr = s->new_addr;
                vmsize = s->old_size;
                fileoff = file_offset_of(b, s->new_addr);
                filesize = s->old_size;
            }
            if (s64) {
                dk_wr64le(p + 24, vmaddr);
                dk_wr64le(p + 32, vmsize);
                dk_wr64le(p + 40, fileoff);
                dk_wr64le(p + 48, filesize);
            } else {
                dk_wr32le(p + 24, (uint32_t)vmaddr);
                dk_wr32le(p + 28, (uint32_t)vmsize);
                dk_wr32le(p + 32, (uint32_t)fileoff);
                dk_wr32le(p + 36, (uint32_t)filesize);
            }
            uint32_t hdr = s64 ? 72 : 56, ssz = s64 ? 80 : 68;
            for (uint32_t q = 0; q < segs[k].nsects; q++) {
                uint8_t *x = p + hdr + q * ssz;
                uint64_t addr = s64 ? dk_le64(x + 32) : dk_le32(x + 32);
                uint64_t na = s->new_addr + (addr - s->old_addr);
                uint8_t *offp = x + (s64 ? 48 : 40);
                uint32_t type = dk_le32(offp + 16) & SECTION_TYPE;
                bool zf = type == S_ZEROFILL || type == S_GB_ZEROFILL || type == S_THREAD_LOCAL_ZEROFILL;
                if (s64) dk_wr64le(x + 32, na);
                else dk_wr32le(x + 32, (uint32_t)na);
                if (!zf && dk_le32(offp) != 0) dk_wr32le(offp, (uint32_t)file_offset_of(b, na));
            }
            ncmds++;
            continue;
        }
        case LC_SYMTAB:
            memcpy(tmp, lc->data, 24);
            dk_wr32le(tmp + 8, (uint32_t)(le_file + im->symoff));
            dk_wr32le(tmp + 12, (uint32_t)im->nsyms);
            dk_wr32le(tmp + 16, (uint32_t)le_file + (uint32_t)(b->linkedit.len - b->strings.len));
            dk_wr32le(tmp + 20, (uint32_t)b->strings.len);
            dk_buf_bytes(&out, tmp, 24);
            ncmds++;
            continue;
        case LC_DYSYMTAB:
            memset(tmp, 0, 80);
            memcpy(tmp, lc->data, 8);
            dk_wr32le(tmp + 8, 0);                                   /* ilocalsym: locals moved out */
            dk_wr32le(tmp + 12, 0);
            dk_wr32le(tmp + 16, 0);                                  /* iextdefsym */
            dk_wr32le(tmp + 20, (uint32_t)im->nextdef);
            dk_wr32le(tmp + 24, (uint32_t)im->nextdef);              /* iundefsym */
            dk_wr32le(tmp + 28, (uint32_t)im->nundef);
            dk_wr32le(tmp + 56, im->nindirect ? (uint32_t)(le_file + im->indirect_off) : 0);
            dk_wr32le(tmp + 60, im->nindirect);
            dk_buf_bytes(&out, tmp, 80);
            ncmds++;
            continue;
        case LC_DYLD_INFO: case LC_DYLD_INFO_ONLY:
            memset(tmp, 0, 48);
            memcpy(tmp, lc->data, 8);
            if (im->bind_size) {
                dk_wr32le(tmp + 16, (uint32_t)(le_file + im->bind_off));
                dk_wr32le(tmp + 20, (uint32_t)im->bind_size);
            }
            if (im->weak_size) {
                dk_wr32le(tmp + 24, (uint32_t)(le_file + im->weak_off));
                dk_wr32le(tmp + 28, (uint32_t)im->weak_size);
            }
            if (im->lazy_size) {
                dk_wr32le(tmp + 32, (uint32_t)(le_file + im->lazy_off));
                dk_wr32le(tmp + 36, (uint32_t)im->lazy_size);
            }
            if (im->trie_size && !m->exports_trie.present) {
                dk_wr32le(tmp + 40, (uint32_t)(le_file + im->trie_off));
                dk_wr32le(tmp + 44, (uint32_t)im->trie_size);
            }
            dk_buf_bytes(&out, tmp, 48);
            have_dyld_info = true;
            ncmds++;
            continue;
        case LC_DYLD_EXPORTS_TRIE: case LC_FUNCTION_STARTS: case LC_DATA_IN_CODE: {
            memcpy(tmp, lc->data, 16);
            uint64_t off = lc->cmd == LC_DYLD_EXPORTS_TRIE ? im->trie_off : lc->cmd == LC_FUNCTION_STARTS ? im->fstarts_off : im->dic_off;
            uint64_t sz = lc->cmd == LC_DYLD_EXPORTS_TRIE ? im->trie_size : lc->cmd == LC_FUNCTION_STARTS ? im->fstarts_size : im->dic_size;
            dk_wr32le(tmp + 8, sz ? (uint32_t)(le_file + off) : 0);
            dk_wr32le(tmp + 12, (uint32_t)sz);
            dk_buf_bytes(&out, tmp, 16);
            ncmds++;
            continue;
        }
        default:
            if (lc->cmd == LC_ID_DYLIB) /* the image table's path points at this very string, as Apple's does */
                im->path_offset = (uint32_t)(file_offset_of(b, im->new_base) + hsize + out.len + dk_le32(lc->data + 8));
            dk_buf_bytes(&out, lc->data, lc->cmdsize);
            ncmds++;
            continue;
        }
    }
    if (need_dyld_info && !have_dyld_info) {
        /* a chained image that keeps binds: they travel in a new LC_DYLD_INFO_ONLY */
        uint8_t tmp[48] = {0};
        dk_wr32le(tmp, LC_DYLD_INFO_ONLY);
        dk_wr32le(tmp + 4, 48);
        dk_wr32le(tmp + 16, im->bind_size ? (uint32_t)(le_file + im->bind_off) : 0);
        dk_wr32le(tmp + 20, (uint32_t)im->bind_size);
        dk_wr32le(tmp + 24, im->weak_size ? (uint32_t)(le_file + im->weak_off) : 0);
        dk_wr32le(tmp + 28, (uint32_t)im->weak_size);
        dk_wr32le(tmp + 32, im->lazy_size ? (uint32_t)(le_file + im->lazy_off) : 0);
        dk_wr32le(tmp + 36, (uint32_t)im->lazy_size);
        dk_buf_bytes(&out, tmp, 48);
        ncmds++;
    }
    if (out.oom) {
        dk_buf_free(&out);
        return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    }
    if (hsize + out.len > room) {
        dk_buf_free(&out);
        return dk_fail(b->err, DK_E_UNSUPPORTED, "%s: no room in the header for the rewritten load commands (%zu bytes, %llu available)",
                       im->path, hsize + out.len, (unsigned long long)room);
    }
    uint8_t *hp = im->hdr;
    size_t old_end = hsize + h->sizeofcmds;
    memcpy(hp + hsize, out.data, out.len);
    if (old_end > hsize + out.len) memset(hp + hsize + out.len, 0, old_end - hsize - out.len);
    dk_wr32le(hp + 16, ncmds);
    dk_wr32le(hp + 20, (uint32_t)out.len);
    dk_wr32le(hp + 24, h->flags | MH_DYLIB_IN_CACHE);
    dk_buf_free(&out);
    return DK_OK;
}

/* ------------------------------------------------------------ headers */

static void magic_for(const builder *b, char out[16])
{
    char m[17];
    snprintf(m, sizeof m, "dyld_v1%*s", 8, b->arch);
    memset(out, 0, 16);
    memcpy(out, m, 15);
}

typedef struct hdr_writer {
    uint8_t *p;
} hdr_writer;

static void w32(uint8_t *p, size_t off, uint32_t v) { dk_wr32le(p + off, v); }
static void w64(uint8_t *p, size_t off, uint64_t v) { dk_wr64le(p + off, v); }

/* The mapping tables of FILE at OFF in P; returns the end. */
static size_t write_mappings(builder *b, uint8_t *p, size_t off, int file, size_t *count)
{
    size_t n = 0;
    for (int r = 0; r < R_COUNT; r++)
        if (b->regions[r].map_size && b->regions[r].file == file) n++;
    size_t plain = off, slide = off + n * 32;
    size_t k = 0;
    for (int r = 0; r < R_COUNT; r++) {
        region *g = &b->regions[r];
        if (!g->map_size || g->file != file) continue;
        uint8_t *e = p + plain + k * 32;
        w64(e, 0, g->map_addr);
        w64(e, 8, g->map_size);
        w64(e, 16, g->file_off);
        w32(e, 24, g->prot);
        w32(e, 28, g->prot);
        uint8_t *s = p + slide + k * 56;
        w64(s, 0, g->map_addr);
        w64(s, 8, g->map_size);
        w64(s, 16, g->file_off);
        w64(s, 24, g->slide.len ? g->slide_file_off : 0);
        w64(s, 32, g->slide.len);
        w64(s, 40, g->flags);
        w32(s, 48, g->prot);
        w32(s, 52, g->prot);
        k++;
    }
    *count = n;
    return slide + n * 56;
}

static void common_header(builder *b, uint8_t *p, size_t mapping_off, size_t nmap, size_t slide_off)
{
    char magic[16];
    magic_for(b, magic);
    memcpy(p, magic, 16);
    w32(p, 0x10, (uint32_t)mapping_off);
    w32(p, 0x14, (uint32_t)nmap);
    w64(p, 0x68, 1); /* cacheType: production */
    const dk_macho_info *in = dk_macho_get_info(b->imgs[0].m);
    w32(p, 0xD8, in->platform ? in->platform : PLATFORM_MACOS);
    bool chained = false;
    for (size_t i = 0; i < b->nimgs; i++) chained |= b->imgs[i].m->chained.present;
    w32(p, 0xDC, (1u << 10) | (chained ? 1u << 11 : 0)); /* locallyBuiltCache, builtFromChainedFixups */
    uint64_t end = b->regions[R_LINKEDIT].addr + b->regions[R_LINKEDIT].size;
    uint64_t span = end - b->base;
    uint64_t region_size = align_up(span, 0x40000000ull);
    w64(p, 0xE0, b->base);
    w64(p, 0xE8, region_size);
    w64(p, 0xF0, region_size - span);
    w32(p, 0x138, (uint32_t)slide_off);
    w32(p, 0x13C, (uint32_t)nmap);
    if (b->o->format == 1042) w32(p, 0x16C, in->minos);
}

/* ----------------------------------------------------------- writing */

typedef struct outfile {
    char *path;
    char *tmp;
    dk_buf data;
    uint8_t uuid[16];
} outfile;

static dk_status write_file(builder *b, outfile *f)
{
    FILE *fp = fopen(f->tmp, "wb");
    if (!fp) return dk_fail(b->err, DK_E_IO, "cannot create %s: %s", f->tmp, strerror(errno));
    size_t w = fwrite(f->data.data, 1, f->data.len, fp);
    int e = ferror(fp);
    if (fclose(fp) != 0 || e || w != f->data.len) {
        unlink(f->tmp);
        return dk_fail(b->err, DK_E_IO, "cannot write %s: %s", f->tmp, strerror(errno));
    }
    return DK_OK;
}

static void file_uuid(outfile *f, size_t uuid_off)
{
    memset(f->data.data + uuid_off, 0, 16);
    uint8_t h[32];
    dk_sha256(f->data.data, f->data.len, h);
    memcpy(f->uuid, h, 16);
    f->uuid[6] = (uint8_t)((f->uuid[6] & 0x0F) | 0x40); /* a version-4 style UUID */
    f->uuid[8] = (uint8_t)((f->uuid[8] & 0x3F) | 0x80);
    memcpy(f->data.data + uuid_off, f->uuid, 16);
}

static dk_status assemble(builder *b)
{
    bool split = b->o->format == 1042;
    bool symbols_file = split || b->o->symbols_file;
    outfile files[4];
    memset(files, 0, sizeof files);
    const char *suffix[4] = {"", ".01", ".dyldlinkedit", ".symbols"};
    size_t nfiles = split ? 4 : symbols_file ? 2 : 1;
    if (!split && symbols_file) suffix[1] = ".symbols";
    dk_status st = DK_OK;
    for (size_t i = 0; i < nfiles; i++) {
        size_t l = strlen(b->o->output) + strlen(suffix[i]) + 32;
        files[i].path = malloc(l);
        files[i].tmp = malloc(l);
        if (!files[i].path || !files[i].tmp) {
            st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
            goto out;
        }
        snprintf(files[i].path, l, "%s%s", b->o->output, suffix[i]);
        snprintf(files[i].tmp, l, "%s%s.tmp%ld", b->o->output, suffix[i], (long)getpid());
    }
    /* --- main file: TEXT region (header area inside), plus data and LINKEDIT when single-file */
    outfile *mf = &files[0];
    for (int r = 0; r < R_COUNT; r++) {
        region *g = &b->regions[r];
        if (!g->map_size) continue;
        outfile *f = &files[g->file];
        if (f->data.len < g->file_off) dk_buf_zeros(&f->data, g->file_off - f->data.len);
        if (g->map_addr < g->addr) dk_buf_zeros(&f->data, g->addr - g->map_addr); /* the sub-cache header page */
        dk_buf_bytes(&f->data, g->buf, g->size);
    }
    /* slide info after each file's mappings (unmapped) */
    for (int r = 0; r < R_COUNT; r++) {
        region *g = &b->regions[r];
        if (!g->slide.len) continue;
        outfile *f = &files[g->file];
        dk_buf_align(&f->data, 8);
        g->slide_file_off = f->data.len;
        dk_buf_bytes(&f->data, g->slide.data, g->slide.len);
    }
    /* local symbols: dyld_cache_local_symbols_info + entries + nlists + strings */
    outfile *lf = symbols_file ? &files[nfiles - 1] : mf;
    size_t sym_hdr = 0;
    if (lf != mf) {
        sym_hdr = b->header_size;
        dk_buf_zeros(&lf->data, align_up(sym_hdr, 16));
    }
    dk_buf_align(&lf->data, 8);
    uint64_t locals_off = lf->data.len;
    bool entry64 = split || symbols_file;
    size_t esize = entry64 ? 16 : 12;
    size_t info = 24;
    uint64_t entries_off = info, nlist_off = align_up(entries_off + esize * b->nimgs, 8);
    uint64_t strings_off = nlist_off + b->locals_nlist.len;
    dk_buf li = {0};
    dk_buf_u32(&li, (uint32_t)nlist_off);
    dk_buf_u32(&li, (uint32_t)(b->locals_nlist.len / (b->is64 ? 16 : 12)));
    dk_buf_u32(&li, (uint32_t)strings_off);
    dk_buf_u32(&li, (uint32_t)b->locals_strings.len);
    dk_buf_u32(&li, (uint32_t)entries_off);
    dk_buf_u32(&li, (uint32_t)b->nimgs);
    for (size_t i = 0; i < b->nimgs; i++) {
        const bimage *im = &b->imgs[i];
        if (entry64) dk_buf_u64(&li, im->new_base - b->base);
        else dk_buf_u32(&li, (uint32_t)file_offset_of(b, im->new_base));
        dk_buf_u32(&li, im->local_start);
        dk_buf_u32(&li, im->local_count);
    }
    dk_buf_align(&li, 8);
    dk_buf_bytes(&li, b->locals_nlist.data, b->locals_nlist.len);
    dk_buf_bytes(&li, b->locals_strings.data, b->locals_strings.len);
    dk_buf_bytes(&lf->data, li.data, li.len);
    uint64_t locals_size = li.len;
    dk_buf_free(&li);
    for (size_t i = 0; i < nfiles; i++)
        if (files[i].data.oom) {
            st = dk_fail(b->err, DK_E_NOMEM, "out of memory");
            goto out;
        }

    /* --- headers.  Sub-caches first: the main header records their UUIDs. */
    if (split) {
        for (int fi = 1; fi <= 2; fi++) {
            uint8_t *p = files[fi].data.data;
            size_t nmap;
            size_t end = write_mappings(b, p, b->header_size, fi, &nmap);
            (void)end;
            common_header(b, p, b->header_size, nmap, b->header_size + nmap * 32);
            file_uuid(&files[fi], 0x58);
        }
    }
    if (lf != mf) {
        uint8_t *p = lf->data.data;
        common_header(b, p, b->header_size, 0, 0);
        w64(p, 0x48, locals_off);
        w64(p, 0x50, locals_size);
        file_uuid(lf, 0x58);
    }
    uint8_t *p = b->regions[R_TEXT].buf;
    size_t nmap;
    size_t off = write_mappings(b, p, b->header_size, 0, &nmap);
    common_header(b, p, b->header_size, nmap, b->header_size + nmap * 32);
    if (split) {
        w32(p, 0x188, (uint32_t)off);
        w32(p, 0x18C, 2);
        for (int fi = 1; fi <= 2; fi++) {
            uint8_t *e = p + off;
            memcpy(e, files[fi].uuid, 16);
            /* the sub-cache's header sits at the start of its first mapping */
            uint64_t first = UINT64_MAX;
            for (int r = 0; r < R_COUNT; r++)
                if (b->regions[r].map_size && b->regions[r].file == fi && b->regions[r].map_addr < first) first = b->regions[r].map_addr;
            w64(e, 16, first - b->base);
            snprintf((char *)e + 24, 32, "%s", suffix[fi]);
            off += 56;
        }
        memcpy(p + 0x190, files[3].uuid, 16);
    }
    if (lf == mf) {
        w64(p, 0x48, locals_off);
        w64(p, 0x50, locals_size);
    }
    /* image table and image text info; paths are the install names inside each image's LC_ID_DYLIB */
    size_t img_off = off, text_off = img_off + b->nimgs * 32;
    for (size_t i = 0; i < b->nimgs; i++) {
        bimage *im = &b->imgs[i];
        size_t l = strlen(im->install_name) + 1;
        uint8_t *e = p + img_off + i * 32;
        w64(e, 0, im->new_base);
        w64(e, 8, 0);
        uint8_t h[32];
        dk_sha256(im->install_name, l - 1, h);
        w64(e, 16, dk_le64(h));
        w32(e, 24, im->path_offset);
        uint8_t *t = p + text_off + i * 32;
        const dk_macho_info *in = dk_macho_get_info(im->m);
        if (in->has_uuid) memcpy(t, in->uuid, 16);
        w64(t, 16, im->new_base);
        w32(t, 24, (uint32_t)im->segs[im->text_seg].old_size);
        w32(t, 28, im->path_offset);
    }
    if (split) {
        w32(p, 0x1C0, (uint32_t)img_off);
        w32(p, 0x1C4, (uint32_t)b->nimgs);
        if (b->objc_opt_addr) {
            w64(p, 0x1D0, b->objc_opt_addr - b->base);
            w64(p, 0x1D8, 72);
        }
    } else {
        w32(p, 0x18, (uint32_t)img_off);
        w32(p, 0x1C, (uint32_t)b->nimgs);
    }
    w64(p, 0x88, text_off);
    w64(p, 0x90, b->nimgs);
    w64(p, 0x98, b->patch_addr);
    w64(p, 0xA0, b->patch_size);
    w64(p, 0x108, b->dylibs_trie_addr);
    w64(p, 0x110, b->dylibs_trie_size);
    /* the TEXT bytes in the main file are a copy: refresh them, then the UUID */
    memcpy(mf->data.data, p, b->header_area);
    file_uuid(mf, 0x58);
    memcpy(p + 0x58, mf->uuid, 16);
    for (size_t i = 0; i < nfiles && !st; i++) st = write_file(b, &files[i]);
    if (!st)
        for (size_t i = 0; i < nfiles; i++) {
            if (rename(files[i].tmp, files[i].path) != 0) {
                st = dk_fail(b->err, DK_E_IO, "cannot rename %s: %s", files[i].tmp, strerror(errno));
                break;
            }
        }
    if (st)
        for (size_t i = 0; i < nfiles; i++)
            if (files[i].tmp) unlink(files[i].tmp);
    if (!st && b->stats) {
        b->stats->files = nfiles;
        for (size_t i = 0; i < nfiles; i++) b->stats->cache_size += files[i].data.len;
    }
out:
    for (size_t i = 0; i < 4; i++) {
        free(files[i].path);
        free(files[i].tmp);
        dk_buf_free(&files[i].data);
    }
    return st;
}

/* ------------------------------------------------------------- driver */

static void free_builder(builder *b)
{
    bld_objc_free(b);
    bld_got_free(b);
    dk_imageset_close(b->set);
    for (size_t i = 0; i < b->nimgs; i++) {
        dk_macho_close(b->imgs[i].m);
        dk_file_close(b->imgs[i].file);
        free(b->imgs[i].segs);
        free(b->imgs[i].kept);
    }
    free(b->imgs);
    for (int r = 0; r < R_COUNT; r++) {
        free(b->regions[r].buf);
        free(b->regions[r].ptrs);
        dk_buf_free(&b->regions[r].slide);
    }
    dk_buf_free(&b->linkedit);
    dk_buf_free(&b->strings);
    dk_buf_free(&b->locals_nlist);
    dk_buf_free(&b->locals_strings);
    free(b->uses);
}

dk_status dk_cache_build(const dk_build_opts *o, dk_build_stats *stats, dk_error *err)
{
    dk_error local;
    if (!err) err = &local;
    if (!o || !o->output) return dk_fail(err, DK_E_ARG, "no output path");
    dk_build_opts opts = *o;
    if (!opts.format) opts.format = 832;
    if (opts.format != 832 && opts.format != 1042) return dk_fail(err, DK_E_ARG, "unknown cache format %d (832 or 1042)", opts.format);
    if (opts.unique_gots > 0 && opts.format != 1042)
        return dk_fail(err, DK_E_ARG, "GOT uniquing needs the 1042 format (its patch table records the shared slots)");
    builder b;
    memset(&b, 0, sizeof b);
    b.o = &opts;
    b.err = err;
    dk_build_stats st_local;
    b.stats = stats ? stats : &st_local;
    memset(b.stats, 0, sizeof *b.stats);
    uint64_t objc_bytes = 0;
    dk_status st = load_inputs(&b);
    if (!st) st = check_closure(&b);
    if (!st) st = plan_segments(&b);
    if (!st) st = bld_objc_plan(&b, &objc_bytes);
    if (!st) st = bld_got_plan(&b);
    if (!st) st = layout(&b, objc_bytes);
    if (!st) st = allocate_and_copy(&b);
    if (!st) st = bld_apply_fixups(&b);
    if (!st) st = bld_got_emit(&b);
    if (!st) st = bld_fix_code(&b);
    if (!st) st = bld_objc_apply(&b);
    if (!st) st = bld_linkedit(&b);
    for (int r = R_DATA_CONST; r <= R_AUTH && !st; r++)
        if (b.regions[r].size) st = bld_slide_encode(&b, &b.regions[r]);
    for (size_t i = 0; i < b.nimgs && !st; i++) st = rewrite_load_commands(&b, &b.imgs[i]);
    if (!st) st = assemble(&b);
    if (!st) {
        b.stats->images = b.nimgs;
        for (int r = 0; r < R_COUNT; r++) {
            if (b.regions[r].map_size) b.stats->mappings++;
            b.stats->rebases += b.regions[r].nptrs;
        }
    }
    free_builder(&b);
    return st;
}
