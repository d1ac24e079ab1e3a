/*
 * mkarm64e: turn an arm64 Mach-O image with chained fixups (what ld64.lld
 * writes for arm64-apple-macos12: DYLD_CHAINED_PTR_64) into the equivalent
 * arm64e image, for test fixtures.  lld cannot link arm64e, so this is how
 * the test suite gets arm64e dylibs and executables whose meaning is known:
 * every fixup of the output means exactly what the input's fixup at the same
 * address meant, plus pointer-authentication data chosen by the rules below.
 *
 *   mkarm64e [-v] IN OUT
 *
 * What changes:
 *
 *  - mach_header_64.cpusubtype becomes CPU_SUBTYPE_ARM64E (2) with
 *    CPU_SUBTYPE_PTRAUTH_ABI (0x80000000) and ptrauth ABI version 0 in bits
 *    24-27 (CPU_SUBTYPE_ARM64_PTR_AUTH_MASK): 0x80000002, what Apple's ld64
 *    writes for arm64e userland images (xnu osfmk/mach/machine.h).
 *
 *  - Every chain entry is re-encoded as DYLD_CHAINED_PTR_ARM64E (pointer
 *    format 1, 8-byte stride) with the library's encoder (dk_chained_encode),
 *    from the fixups the library's reader decodes (dk_macho_foreach_fixup).
 *    Rebases keep their target (a vmaddr) and high8; binds keep their import
 *    (library ordinal, name, weak-import flag, import-table addend) and total
 *    addend.  The imports table is copied in order, so import indices keep
 *    their meaning; a bind whose addend cannot stay in the pointer (any
 *    non-zero addend of an authenticated bind) goes through an extra import
 *    appended after the original ones (the encoder's rule).  Page size (16 KiB
 *    for lld's arm64) and the set of segments are unchanged.
 *
 *  - A deterministic subset of pointers is made authenticated.  The code has
 *    no PAC instructions, so a loader that writes plain (stripped) addresses
 *    still runs it; that is intended: the point is that every decoder
 *    (dyldkit's reader, cache builder and extractor, llvm-objdump) sees auth
 *    rebases and auth binds with every key and both address-diversity
 *    settings.  With D(addr) = ((addr - image base) & 0xFFFF) ^ 0xA5A5 (never
 *    0, since pointers are 8-byte aligned), and "code" meaning a target inside
 *    a section with S_ATTR_PURE_INSTRUCTIONS or S_ATTR_SOME_INSTRUCTIONS:
 *
 *      section (any segment)        fixup              becomes
 *      ---------------------------  -----------------  ------------------------------------------
 *      __got, __auth_got,           bind               auth bind, key IA, addrDiv 1, diversity 0
 *      __la_symbol_ptr, __auth_ptr  rebase to code     auth rebase, key IA, addrDiv 1, diversity 0
 *      __mod_init_func              rebase to code     auth rebase, key IA, addrDiv 1, diversity D
 *      __const                      rebase to code     auth rebase, key IA, addrDiv 1 for even
 *                                                      slots, 0 for odd ones, diversity D
 *      __const                      rebase to data     auth rebase, key DA, addrDiv 1, diversity D
 *      __const                      bind               auth bind, key DA, addrDiv 0, diversity D
 *      __data                       bind               auth bind, key DA, addrDiv 1, diversity D
 *      __data                       rebase, slot 3     auth rebase, key IA (code) / DA (data),
 *                                   mod 4              addrDiv 1 for slots 7 mod 8 else 0,
 *                                                      diversity D
 *
 *    (a slot is (addr - section start) / 8).  Everything else stays a plain
 *    rebase or bind, and so does a rebase an authenticated pointer cannot
 *    hold: one with a non-zero high8 or a target 4 GiB or more above the base.
 *    An authenticated bind has no addend field, so the __data binds with
 *    addends (libminic, libselftest, ...) bind through extra imports that
 *    carry the addend (imports_format DYLD_CHAINED_IMPORT_ADDEND).  Only the
 *    A keys are used, as in the data of real arm64e userland dylibs: cache
 *    slide info v5 can hold no others (dyld_cache_slide_pointer5 has one
 *    keyIsData bit), so the fixtures build caches with v3 and v5 alike.
 *
 *  - The new LC_DYLD_CHAINED_FIXUPS blob goes at the end of __LINKEDIT
 *    (8-aligned); the old one is zeroed in place (dead bytes).  __LINKEDIT's
 *    filesize (and vmsize, which lld makes equal to it) grows to match.  An
 *    existing LC_CODE_SIGNATURE is replaced by a new ad-hoc signature
 *    (dk_codesign_adhoc_image, same layout as lld's) with the original's
 *    identifier; an unsigned input stays unsigned.
 *
 * The output is a function of the input bytes only (reproducible).  After
 * writing it, the tool reads the output back with the library and checks
 * that every fixup is the one it meant to write.
 *
 * Errors (exit 1, one message on stderr): universal files, anything but a
 * thin little-endian 64-bit arm64 (not arm64e) image, no
 * LC_DYLD_CHAINED_FIXUPS, pointer formats other than DYLD_CHAINED_PTR_64 /
 * _64_OFFSET, a fixups_version or symbols_format other than 0, __LINKEDIT not
 * the last thing in the file, a code signature not at the end of __LINKEDIT,
 * and anything the encoder refuses (pointers not 8-byte aligned, too far
 * apart, targets that do not fit).  Usage errors exit 2.
 */
#include "dyldkit/dyldkit.h"
#include "codesign.h"
#include "macho_defs.h"
#include "writer.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#define ARM64E_SUBTYPE 0x80000002u /* CPU_SUBTYPE_PTRAUTH_ABI | version 0 << 24 | CPU_SUBTYPE_ARM64E */
#define ATTR_PURE_INSTRUCTIONS 0x80000000u
#define ATTR_SOME_INSTRUCTIONS 0x00000400u

static const char *prog = "mkarm64e";
static bool verbose;

static int die(const char *in, const char *fmt, ...) DK_PRINTF(2, 3);
static int die(const char *in, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: %s: ", prog, in);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static bool read_file(const char *path, uint8_t **data, size_t *size, mode_t *mode)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    struct stat stt;
    if (fstat(fileno(f), &stt) != 0 || !S_ISREG(stt.st_mode)) {
        fclose(f);
        errno = EINVAL;
        return false;
    }
    size_t n = (size_t)stt.st_size;
    uint8_t *p = malloc(n ? n : 1);
    if (!p || fread(p, 1, n, f) != n) {
        free(p);
        fclose(f);
        return false;
    }
    fclose(f);
    *data = p;
    *size = n;
    *mode = stt.st_mode & 0777;
    return true;
}

/* ------------------------------------------------------------ the plan */

typedef struct plan {
    dk_macho *m;
    uint64_t base;
    const dk_section *sects;
    size_t nsects;
    dk_vec fixups;      /* dk_chain_fixup, as they will be written */
    dk_vec originals;   /* dk_fixup copies, same order (symbol pointers into the input) */
    const dk_chained_import *imports;
    size_t nimports;
    uint32_t page_size;
    bool bad_format;
    uint16_t format_seen;
    size_t nauth_rebase, nauth_bind;
    dk_error *err;
} plan;

static bool sect_is(const dk_section *s, const char *name) { return strcmp(s->sectname, name) == 0; }

static bool is_code(const plan *p, uint64_t target)
{
    int i = dk_macho_section_at(p->m, target);
    return i >= 0 && (p->sects[i].flags & (ATTR_PURE_INSTRUCTIONS | ATTR_SOME_INSTRUCTIONS));
}

static uint16_t diversity_of(const plan *p, uint64_t addr) { return (uint16_t)(((addr - p->base) & 0xFFFF) ^ 0xA5A5); }

/* The authentication rules of the header comment. */
static void choose_auth(plan *p, const dk_fixup *f, dk_chain_fixup *c)
{
    if (f->section < 0 || (size_t)f->section >= p->nsects) return;
    const dk_section *s = &p->sects[f->section];
    bool got = sect_is(s, "__got") || sect_is(s, "__auth_got") || sect_is(s, "__la_symbol_ptr") || sect_is(s, "__auth_ptr");
    bool init = sect_is(s, "__mod_init_func");
    bool cnst = sect_is(s, "__const");
    bool data = sect_is(s, "__data");
    if (!got && !init && !cnst && !data) return;
    uint64_t slot = (f->address - s->addr) / 8;
    if (c->bind) {
        if (got) {
            c->auth = true, c->key = DK_KEY_IA, c->addr_div = true, c->diversity = 0;
        } else if (cnst) {
            c->auth = true, c->key = DK_KEY_DA, c->addr_div = false, c->diversity = diversity_of(p, f->address);
        } else if (data) {
            c->auth = true, c->key = DK_KEY_DA, c->addr_div = true, c->diversity = diversity_of(p, f->address);
        }
        if (c->auth) p->nauth_bind++;
        return;
    }
    /* rebases: only those an authenticated pointer can hold */
    if (c->high8 || c->target < p->base || (c->target - p->base) >> 32) return;
    bool code = is_code(p, c->target);
    if (got && code) {
        c->auth = true, c->key = DK_KEY_IA, c->addr_div = true, c->diversity = 0;
    } else if (init && code) {
        c->auth = true, c->key = DK_KEY_IA, c->addr_div = true, c->diversity = diversity_of(p, f->address);
    } else if (cnst) {
        c->auth = true, c->key = code ? DK_KEY_IA : DK_KEY_DA, c->addr_div = code ? slot % 2 == 0 : true;
        c->diversity = diversity_of(p, f->address);
    } else if (data && slot % 4 == 3) {
        c->auth = true, c->key = code ? DK_KEY_IA : DK_KEY_DA, c->addr_div = slot % 8 == 7;
        c->diversity = diversity_of(p, f->address);
    }
    if (c->auth) p->nauth_rebase++;
}

static int chain_cb(void *ctx, const dk_chain_item *it)
{
    plan *p = ctx;
    if (it->event != DK_CHAIN_SEGMENT) return 0;
    const dk_chained_starts *s = it->starts;
    if (s->pointer_format != DK_CHAINED_PTR_64 && s->pointer_format != DK_CHAINED_PTR_64_OFFSET) {
        p->bad_format = true;
        p->format_seen = s->pointer_format;
        return 1;
    }
    if (p->page_size && p->page_size != s->page_size) {
        dk_fail(p->err, DK_E_UNSUPPORTED, "segments use page sizes 0x%x and 0x%x", p->page_size, s->page_size);
        return 1;
    }
    p->page_size = s->page_size;
    return 0;
}

static int fixup_cb(void *ctx, const dk_fixup *f)
{
    plan *p = ctx;
    if (f->kind != DK_FIXUP_REBASE && f->kind != DK_FIXUP_BIND) {
        dk_fail(p->err, DK_E_UNSUPPORTED, "fixup at 0x%llx is a %s, not a chained rebase or bind", (unsigned long long)f->address,
                dk_fixup_kind_name(f->kind));
        return 1;
    }
    if (f->width != 8 || f->auth) {
        dk_fail(p->err, DK_E_UNSUPPORTED, "fixup at 0x%llx is not a plain 64-bit pointer", (unsigned long long)f->address);
        return 1;
    }
    dk_chain_fixup *c = dk_vec_push(&p->fixups, sizeof *c);
    dk_fixup *o = dk_vec_push(&p->originals, sizeof *o);
    if (!c || !o) {
        dk_fail(p->err, DK_E_NOMEM, "out of memory");
        return 1;
    }
    *o = *f;
    memset(c, 0, sizeof *c);
    c->address = f->address;
    if (f->kind == DK_FIXUP_REBASE) {
        c->target = f->target;
        c->high8 = f->high8;
    } else {
        if (f->import_index >= p->nimports) {
            dk_fail(p->err, DK_E_MALFORMED, "bind at 0x%llx uses import %u of %zu", (unsigned long long)f->address, f->import_index,
                    p->nimports);
            return 1;
        }
        c->bind = true;
        c->import = f->import_index;
        /* the reader gives the total addend; the pointer holds what the import does not */
        c->addend = (int64_t)((uint64_t)f->addend - (uint64_t)p->imports[f->import_index].addend);
    }
    choose_auth(p, f, c);
    return 0;
}

/* ------------------------------------------------------ code signature */

/* The identifier of the ad-hoc signature at DATA[OFF, OFF+SIZE), or NULL. */
static char *signature_identifier(const uint8_t *data, size_t fsize, uint32_t off, uint32_t size)
{
    if (!dk_range_ok(off, size, fsize) || size < 12) return NULL;
    const uint8_t *sb = data + off;
    if (dk_be32(sb) != CSMAGIC_EMBEDDED_SIGNATURE) return NULL;
    uint32_t count = dk_be32(sb + 8);
    if (count > (size - 12) / 8) return NULL;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t type = dk_be32(sb + 12 + 8 * i), boff = dk_be32(sb + 16 + 8 * i);
        if (type != CSSLOT_CODEDIRECTORY || !dk_range_ok(boff, 24, size)) continue;
        const uint8_t *cd = sb + boff;
        if (dk_be32(cd) != CSMAGIC_CODEDIRECTORY) return NULL;
        uint32_t len = dk_be32(cd + 4), ident = dk_be32(cd + 20);
        if (!dk_range_ok(boff, len, size) || ident >= len) return NULL;
        const char *s = (const char *)cd + ident;
        size_t n = strnlen(s, len - ident);
        if (n == 0 || n == len - ident) return NULL;
        char *out = malloc(n + 1);
        if (out) memcpy(out, s, n + 1);
        return out;
    }
    return NULL;
}

/* ------------------------------------------------------ the load commands */

typedef struct layout {
    uint64_t le_lc, le_fileoff, le_filesize, le_vmsize; /* __LINKEDIT's command and fields */
    uint64_t other_end;                                 /* end of every other segment's file data */
    int64_t cf_lc, cs_lc;                               /* LC_DYLD_CHAINED_FIXUPS, LC_CODE_SIGNATURE (-1: none) */
    uint32_t cf_off, cf_size, cs_off, cs_size;
} layout;

static int scan_layout(const char *in, dk_macho *m, layout *l)
{
    memset(l, 0, sizeof *l);
    l->cf_lc = l->cs_lc = -1;
    bool have_le = false;
    size_t n;
    const dk_loadcmd *lcs = dk_macho_loadcmds(m, &n);
    for (size_t i = 0; i < n; i++) {
        const dk_loadcmd *lc = &lcs[i];
        if (lc->cmd == LC_SEGMENT_64) {
            char name[17];
            dk_copy_name16(name, lc->data + 8);
            uint64_t vmsize = dk_le64(lc->data + 32), fileoff = dk_le64(lc->data + 40), filesize = dk_le64(lc->data + 48);
            if (strcmp(name, "__LINKEDIT") == 0) {
                if (have_le) return die(in, "two __LINKEDIT segments");
                have_le = true;
                l->le_lc = lc->offset;
                l->le_fileoff = fileoff;
                l->le_filesize = filesize;
                l->le_vmsize = vmsize;
            } else if (filesize && fileoff + filesize > l->other_end) {
                l->other_end = fileoff + filesize;
            }
        } else if (lc->cmd == LC_DYLD_CHAINED_FIXUPS) {
            l->cf_lc = (int64_t)lc->offset;
            l->cf_off = dk_le32(lc->data + 8);
            l->cf_size = dk_le32(lc->data + 12);
        } else if (lc->cmd == LC_CODE_SIGNATURE) {
            l->cs_lc = (int64_t)lc->offset;
            l->cs_off = dk_le32(lc->data + 8);
            l->cs_size = dk_le32(lc->data + 12);
        }
    }
    if (!have_le) return die(in, "no __LINKEDIT segment");
    if (l->other_end > l->le_fileoff) return die(in, "__LINKEDIT is not the last segment in the file");
    if (l->cf_lc < 0) return die(in, "no LC_DYLD_CHAINED_FIXUPS");
    return 0;
}

/* -------------------------------------------------------- checking back */

static bool same_fixup(const dk_fixup *got, const dk_fixup *orig, const dk_chain_fixup *want)
{
    if (got->kind != orig->kind || got->address != orig->address || got->pointer_format != DK_CHAINED_PTR_ARM64E) return false;
    if (got->auth != want->auth) return false;
    if (want->auth && (got->key != want->key || got->diversity != want->diversity || got->addr_div != want->addr_div)) return false;
    if (orig->kind == DK_FIXUP_REBASE) return got->target == orig->target && got->high8 == orig->high8;
    return got->ordinal == orig->ordinal && got->addend == orig->addend && got->weak_import == orig->weak_import &&
           got->symbol && orig->symbol && strcmp(got->symbol, orig->symbol) == 0;
}

static int collect_cb(void *ctx, const dk_fixup *f)
{
    dk_fixup *slot = dk_vec_push(ctx, sizeof *slot);
    if (!slot) return 1;
    *slot = *f;
    return 0;
}

static int cmp_original(const void *a, const void *b)
{
    const dk_fixup *x = a, *y = b;
    return x->address < y->address ? -1 : x->address > y->address;
}

/* --------------------------------------------------------------- main */

static int convert(const char *in, const char *outpath)
{
    uint8_t *data = NULL, *out = NULL;
    size_t size = 0;
    mode_t mode = 0644;
    dk_macho *m = NULL, *back = NULL;
    dk_buf blob = {0};
    dk_chain_segment *cs = NULL;
    dk_chain_import *imps = NULL;
    char *ident = NULL;
    plan p;
    memset(&p, 0, sizeof p);
    dk_error err = {0};
    int rc = 1;

    if (!read_file(in, &data, &size, &mode)) return die(in, "cannot read: %s", strerror(errno));
    if (size >= 4 && (dk_be32(data) == FAT_MAGIC || dk_be32(data) == FAT_MAGIC_64 || dk_be32(data) == FAT_CIGAM ||
                      dk_be32(data) == FAT_CIGAM_64)) {
        rc = die(in, "universal file: convert a thin arm64 slice (llvm-lipo -thin arm64)");
        goto done;
    }
    if (dk_macho_open(data, size, in, &m, &err) != DK_OK) {
        rc = die(in, "%s", err.message);
        goto done;
    }
    const dk_header *h = dk_macho_header(m);
    if (!h->is64 || h->big_endian || h->cputype != CPU_TYPE_ARM64) {
        rc = die(in, "%s image: only arm64 (64-bit, little-endian) images are converted", dk_macho_arch(m));
        goto done;
    }
    if ((h->cpusubtype & ~CPU_SUBTYPE_MASK) == CPU_SUBTYPE_ARM64E) {
        rc = die(in, "already arm64e (cpusubtype 0x%x)", h->cpusubtype);
        goto done;
    }
    if (dk_macho_fixup_encoding(m) != DK_ENCODING_CHAINED) {
        rc = die(in, "no chained fixups (LC_DYLD_CHAINED_FIXUPS); classic dyld-info images are not converted");
        goto done;
    }
    layout l;
    if (scan_layout(in, m, &l)) goto done;
    if (l.le_fileoff + l.le_filesize != size) {
        rc = die(in, "%llu bytes after the end of __LINKEDIT", (unsigned long long)(size - (l.le_fileoff + l.le_filesize)));
        goto done;
    }
    dk_chained_header ch;
    if (dk_macho_chained_header(m, &ch, &err) != DK_OK) {
        rc = die(in, "%s", err.message);
        goto done;
    }
    if (ch.fixups_version != 0 || ch.symbols_format != 0) {
        rc = die(in, "chained fixups version %u / symbols_format %u: only 0 / 0 (uncompressed) are converted", ch.fixups_version,
                 ch.symbols_format);
        goto done;
    }

    /* ---- read: imports, starts, fixups */
    p.m = m;
    p.err = &err;
    p.base = dk_macho_base_address(m);
    p.sects = dk_macho_sections(m, &p.nsects);
    if (dk_macho_chained_imports(m, &p.imports, &p.nimports, &err) != DK_OK) {
        rc = die(in, "%s", err.message);
        goto done;
    }
    dk_status st = dk_macho_foreach_chain(m, chain_cb, &p, &err);
    if (p.bad_format) {
        rc = die(in, "pointer_format %u (%s): only DYLD_CHAINED_PTR_64 and DYLD_CHAINED_PTR_64_OFFSET are converted",
                 p.format_seen, dk_pointer_format_name(p.format_seen));
        goto done;
    }
    if (st != DK_OK) {
        rc = die(in, "%s", err.message);
        goto done;
    }
    if (dk_macho_foreach_fixup(m, fixup_cb, &p, &err) != DK_OK) {
        rc = die(in, "%s", err.message);
        goto done;
    }
    if (p.fixups.len && p.page_size == 0) {
        rc = die(in, "fixups but no chained starts");
        goto done;
    }
    if (!p.page_size) p.page_size = 0x4000;
    /* the encoder sorts FIXUPS by address (in place); the originals go in the same order */
    if (p.originals.len) qsort(p.originals.data, p.originals.len, sizeof(dk_fixup), cmp_original);

    /* ---- the new file: the input up to the old signature (or the end), then the new blob */
    uint64_t end = size;
    if (l.cs_lc >= 0 && l.cs_size) {
        uint64_t cs_end = (uint64_t)l.cs_off + l.cs_size;
        if (l.cs_off < l.le_fileoff || cs_end > size || size - cs_end >= 16) {
            rc = die(in, "code signature 0x%x+%u is not at the end of __LINKEDIT", l.cs_off, l.cs_size);
            goto done;
        }
        ident = signature_identifier(data, size, l.cs_off, l.cs_size);
        if (!ident) {
            const char *slash = strrchr(outpath, '/');
            const char *b = slash ? slash + 1 : outpath;
            ident = malloc(strlen(b) + 1);
            if (ident) strcpy(ident, b);
        }
        if (!ident) {
            rc = die(in, "out of memory");
            goto done;
        }
        end = l.cs_off;
    }
    out = malloc(size);
    if (!out) {
        rc = die(in, "out of memory");
        goto done;
    }
    memcpy(out, data, size);
    size_t nsegs;
    const dk_segment *segs = dk_macho_segments(m, &nsegs);
    cs = calloc(nsegs ? nsegs : 1, sizeof *cs);
    imps = calloc(p.nimports ? p.nimports : 1, sizeof *imps);
    if (!cs || !imps) {
        rc = die(in, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nsegs; i++) {
        cs[i].vmaddr = segs[i].vmaddr;
        cs[i].vmsize = segs[i].vmsize;
        if (segs[i].filesize && strcmp(segs[i].segname, "__LINKEDIT") != 0) {
            cs[i].content = out + segs[i].fileoff;
            cs[i].content_size = segs[i].filesize < segs[i].vmsize ? segs[i].filesize : segs[i].vmsize;
        }
    }
    for (size_t i = 0; i < p.nimports; i++) {
        imps[i].ordinal = p.imports[i].lib_ordinal;
        imps[i].name = p.imports[i].name;
        imps[i].weak_import = p.imports[i].weak_import;
        imps[i].addend = p.imports[i].addend;
    }
    if (dk_chained_encode(DK_CHAINED_PTR_ARM64E, p.page_size, p.base, cs, nsegs, p.fixups.data, p.fixups.len, imps, p.nimports,
                          &blob, &err) != DK_OK) {
        rc = die(in, "%s", err.message);
        goto done;
    }
    if (!dk_range_ok(l.cf_off, l.cf_size, end)) {
        rc = die(in, "LC_DYLD_CHAINED_FIXUPS 0x%x+0x%x is not inside __LINKEDIT before the signature", l.cf_off, l.cf_size);
        goto done;
    }
    memset(out + l.cf_off, 0, l.cf_size);
    uint64_t blob_off = (end + 7) & ~(uint64_t)7;
    uint64_t new_size = blob_off + blob.len;
    if (new_size > UINT32_MAX) {
        rc = die(in, "output would be %llu bytes", (unsigned long long)new_size);
        goto done;
    }
    uint8_t *grown = realloc(out, new_size > size ? new_size : size);
    if (!grown) {
        rc = die(in, "out of memory");
        goto done;
    }
    out = grown;
    memset(out + end, 0, blob_off - end);
    memcpy(out + blob_off, blob.data, blob.len);

    /* ---- load commands: header, fixups, __LINKEDIT, signature */
    dk_wr32le(out + 8, ARM64E_SUBTYPE);
    dk_wr32le(out + l.cf_lc + 8, (uint32_t)blob_off);
    dk_wr32le(out + l.cf_lc + 12, (uint32_t)blob.len);
    uint64_t le_filesize = new_size - l.le_fileoff;
    uint64_t le_vmsize = l.le_vmsize;
    if (l.le_vmsize == l.le_filesize) le_vmsize = le_filesize;           /* lld's layout */
    else if (le_vmsize < le_filesize) le_vmsize = (le_filesize + p.page_size - 1) / p.page_size * p.page_size;
    dk_wr64le(out + l.le_lc + 32, le_vmsize);
    dk_wr64le(out + l.le_lc + 48, le_filesize);
    size_t out_size = (size_t)new_size;
    if (l.cs_lc >= 0) {
        if (ident) {
            dk_wr32le(out + l.cs_lc + 8, (uint32_t)new_size);
            dk_wr32le(out + l.cs_lc + 12, 0);
            if (dk_codesign_adhoc_image(&out, &out_size, ident, &err) != DK_OK) {
                rc = die(in, "%s", err.message);
                goto done;
            }
        } else {
            /* an empty LC_CODE_SIGNATURE: keep it empty, at the new end */
            dk_wr32le(out + l.cs_lc + 8, (uint32_t)new_size);
        }
    }

    /* ---- read it back: every fixup must be the one planned */
    if (dk_macho_open(out, out_size, outpath, &back, &err) != DK_OK) {
        rc = die(in, "internal error: the output does not open: %s", err.message);
        goto done;
    }
    dk_vec got = {0};
    st = dk_macho_foreach_fixup(back, collect_cb, &got, &err);
    if (st != DK_OK) {
        dk_vec_free(&got);
        rc = die(in, "internal error: the output's fixups do not read back: %s", err.message);
        goto done;
    }
    if (got.len) qsort(got.data, got.len, sizeof(dk_fixup), cmp_original);
    size_t bad = got.len == p.originals.len ? SIZE_MAX : 0;
    for (size_t i = 0; bad == SIZE_MAX && i < got.len; i++)
        if (!same_fixup((dk_fixup *)got.data + i, (dk_fixup *)p.originals.data + i, (dk_chain_fixup *)p.fixups.data + i)) bad = i;
    size_t nread = got.len;
    dk_vec_free(&got);
    if (bad != SIZE_MAX) {
        rc = die(in, "internal error: the output's fixups do not read back as planned (%zu read, %zu written; first difference at "
                 "fixup %zu)", nread, p.originals.len, bad);
        goto done;
    }

    /* ---- write */
    FILE *f = fopen(outpath, "wb");
    if (!f) {
        rc = die(outpath, "cannot create: %s", strerror(errno));
        goto done;
    }
    bool wok = fwrite(out, 1, out_size, f) == out_size;
    if (fclose(f) != 0) wok = false;
    if (!wok) {
        remove(outpath);
        rc = die(outpath, "write failed: %s", strerror(errno));
        goto done;
    }
    chmod(outpath, mode);
    if (verbose)
        printf("%s: %zu fixups (%zu auth rebases, %zu auth binds), %zu imports, fixups 0x%llx+0x%zx, %zu bytes\n", outpath,
               p.fixups.len, p.nauth_rebase, p.nauth_bind, p.nimports, (unsigned long long)blob_off, blob.len, out_size);
    rc = 0;
done:
    dk_macho_close(back);
    dk_macho_close(m);
    dk_vec_free(&p.fixups);
    dk_vec_free(&p.originals);
    dk_buf_free(&blob);
    free(cs);
    free(imps);
    free(ident);
    free(out);
    free(data);
    return rc;
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i < argc && strcmp(argv[i], "-v") == 0) verbose = true, i++;
    if (argc - i != 2 || argv[i][0] == '-') {
        fprintf(stderr, "usage: %s [-v] IN OUT\n"
                        "Convert an arm64 image with DYLD_CHAINED_PTR_64 chained fixups into arm64e\n"
                        "(DYLD_CHAINED_PTR_ARM64E, some pointers authenticated); see the source header.\n",
                prog);
        return 2;
    }
    return convert(argv[i], argv[i + 1]);
}
