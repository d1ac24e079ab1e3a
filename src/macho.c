/*
 * Mach-O images: the mach_header, every load command's size and ranges, then
 * segments, sections, dylibs and the LINKEDIT blobs.  Validation happens here,
 * once, before anything walks the data (Apple's <mach-o/loader.h> layouts;
 * the checks follow what dyld and LLVM's MachOObjectFile reject).
 */
#include "macho_internal.h"

#include <stdio.h>

/* ------------------------------------------------------------ small names */

const char *dk_filetype_name(uint32_t t)
{
    static const char *const names[] = {NULL,      "OBJECT", "EXECUTE", "FVMLIB", "CORE", "PRELOAD", "DYLIB",
                                        "DYLINKER", "BUNDLE", "DYLIB_STUB", "DSYM", "KEXT_BUNDLE", "FILESET",
                                        "GPU_EXECUTE", "GPU_DYLIB"};
    if (t < sizeof names / sizeof names[0] && names[t]) return names[t];
    return "UNKNOWN";
}

size_t dk_header_flags_string(uint32_t flags, const char *sep, char *out, size_t outsize)
{
    static const char *const names[32] = {
        "NOUNDEFS", "INCRLINK", "DYLDLINK", "BINDATLOAD", "PREBOUND", "SPLIT_SEGS", "LAZY_INIT", "TWOLEVEL",
        "FORCE_FLAT", "NOMULTIDEFS", "NOFIXPREBINDING", "PREBINDABLE", "ALLMODSBOUND", "SUBSECTIONS_VIA_SYMBOLS",
        "CANONICAL", "WEAK_DEFINES", "BINDS_TO_WEAK", "ALLOW_STACK_EXECUTION", "ROOT_SAFE", "SETUID_SAFE",
        "NO_REEXPORTED_DYLIBS", "PIE", "DEAD_STRIPPABLE_DYLIB", "HAS_TLV_DESCRIPTORS", "NO_HEAP_EXECUTION",
        "APP_EXTENSION_SAFE", "NLIST_OUTOFSYNC_WITH_DYLDINFO", "SIM_SUPPORT", "IMPLICIT_PAGEZERO", NULL, NULL,
        "DYLIB_IN_CACHE"};
    size_t n = 0;
    if (outsize) out[0] = 0;
    for (int b = 0; b < 32; b++) {
        if (!(flags & (1u << b))) continue;
        char tmp[32];
        const char *nm = names[b];
        if (!nm) {
            snprintf(tmp, sizeof tmp, "0x%x", 1u << b);
            nm = tmp;
        }
        int w = snprintf(out + n, n < outsize ? outsize - n : 0, "%s%s", n ? sep : "", nm);
        if (w > 0) n += (size_t)w;
    }
    return n;
}

const char *dk_dylib_kind_name(dk_dylib_kind k)
{
    switch (k) {
    case DK_DYLIB_LOAD: return "load";
    case DK_DYLIB_WEAK: return "weak";
    case DK_DYLIB_REEXPORT: return "reexport";
    case DK_DYLIB_UPWARD: return "upward";
    case DK_DYLIB_LAZY: return "lazy";
    }
    return "?";
}

const char *dk_platform_name(uint32_t p)
{
    static const char *const names[] = {"unknown", "macos", "ios", "tvos", "watchos", "bridgeos", "maccatalyst",
                                        "iossimulator", "tvossimulator", "watchossimulator", "driverkit",
                                        "visionos", "visionossimulator", "firmware", "sepos"};
    if (p < sizeof names / sizeof names[0]) return names[p];
    return "unknown";
}

void dk_version_string(uint32_t v, char out[24])
{
    if (v & 0xff)
        snprintf(out, 24, "%u.%u.%u", v >> 16, (v >> 8) & 0xff, v & 0xff);
    else
        snprintf(out, 24, "%u.%u", v >> 16, (v >> 8) & 0xff);
}

/* --------------------------------------------------------------- accessors */

const dk_header *dk_macho_header(const dk_macho *m) { return &m->hdr; }
const char *dk_macho_arch(const dk_macho *m) { return m->arch; }
const char *dk_macho_name(const dk_macho *m) { return m->name; }
const uint8_t *dk_macho_data(const dk_macho *m, size_t *size)
{
    if (size) *size = m->size;
    return m->data;
}
uint64_t dk_macho_base_address(const dk_macho *m) { return m->base; }
bool dk_macho_in_cache(const dk_macho *m) { return m->in_cache; }
const dk_loadcmd *dk_macho_loadcmds(const dk_macho *m, size_t *count)
{
    if (count) *count = m->ncmds;
    return m->cmds;
}
const dk_segment *dk_macho_segments(const dk_macho *m, size_t *count)
{
    if (count) *count = m->nsegs;
    return m->segs;
}
const dk_section *dk_macho_sections(const dk_macho *m, size_t *count)
{
    if (count) *count = m->nsects;
    return m->sects;
}
const dk_dylib *dk_macho_dylibs(const dk_macho *m, size_t *count)
{
    if (count) *count = m->ndylibs;
    return m->dylibs;
}
const char *dk_macho_install_name(const dk_macho *m) { return m->install_name; }
const dk_macho_info *dk_macho_get_info(const dk_macho *m) { return &m->info; }

const char *dk_macho_ordinal_name(const dk_macho *m, int ordinal)
{
    switch (ordinal) {
    case 0: return "self";
    case -1: return "main";
    case -2: return "flat";
    case -3: return "weak";
    }
    if (ordinal > 0 && (size_t)ordinal <= m->ndylibs) return m->dylibs[ordinal - 1].name;
    return NULL;
}

int dk_macho_segment_at(const dk_macho *m, uint64_t a)
{
    for (size_t i = 0; i < m->nsegs; i++)
        if (a >= m->segs[i].vmaddr && a - m->segs[i].vmaddr < m->segs[i].vmsize) return (int)i;
    return -1;
}

int dk__section_index_at(const dk_macho *m, uint64_t a)
{
    for (size_t i = 0; i < m->nsects; i++)
        if (a >= m->sects[i].addr && a - m->sects[i].addr < m->sects[i].size) return (int)i;
    return -1;
}

int dk_macho_section_at(const dk_macho *m, uint64_t a) { return dk__section_index_at(m, a); }

/* Entry I of a first-match table is the answer for all of its range when no
 * earlier entry meets that range; RANGE gives entry K's start and size. */
typedef void (*range_fn)(const dk_macho *m, int k, uint64_t *lo, uint64_t *n);
static void seg_range(const dk_macho *m, int k, uint64_t *lo, uint64_t *n) { *lo = m->segs[k].vmaddr, *n = m->segs[k].vmsize; }
static void sect_range(const dk_macho *m, int k, uint64_t *lo, uint64_t *n) { *lo = m->sects[k].addr, *n = m->sects[k].size; }

static int memo_keep(const dk_macho *m, int i, range_fn range, dk_at_memo *memo)
{
    uint64_t lo, n, a, z;
    range(m, i, &lo, &n);
    if (n == 0 || lo + n < lo) return i;
    for (int k = 0; k < i; k++) {
        range(m, k, &a, &z);
        if (z && a < lo + n && (a >= lo || lo - a < z)) return i;
    }
    memo->lo = lo;
    memo->hi = lo + n;
    memo->index = i;
    return i;
}

int dk__segment_at_miss(const dk_macho *m, uint64_t a, dk_at_memo *memo)
{
    int i = dk_macho_segment_at(m, a);
    return i < 0 ? i : memo_keep(m, i, seg_range, memo);
}

int dk__section_at_miss(const dk_macho *m, uint64_t a, dk_at_memo *memo)
{
    int i = dk__section_index_at(m, a);
    return i < 0 ? i : memo_keep(m, i, sect_range, memo);
}

const dk_section *dk_macho_find_section(const dk_macho *m, const char *seg, const char *sect)
{
    for (size_t i = 0; i < m->nsects; i++)
        if ((!seg || strcmp(m->sects[i].segname, seg) == 0) && strcmp(m->sects[i].sectname, sect) == 0)
            return &m->sects[i];
    return NULL;
}

const uint8_t *dk_macho_read(const dk_macho *m, uint64_t a, uint64_t size)
{
    for (size_t i = 0; i < m->nsegs; i++) {
        const dk_segment *s = &m->segs[i];
        if (a < s->vmaddr || a - s->vmaddr >= s->vmsize) continue;
        uint64_t off = a - s->vmaddr;
        if (!m->seg_data[i] || !dk_range_ok(off, size, m->seg_avail[i])) return NULL;
        return m->seg_data[i] + off;
    }
    return NULL;
}

bool dk__in_data_in_code(const dk_macho *m, uint64_t a)
{
    if (!m->data_in_code.present || m->data_in_code.size < 8) return false;
    const uint8_t *p = dk__linkedit(m, m->data_in_code.off, m->data_in_code.size);
    if (!p) return false;
    /* data_in_code_entry {u32 offset from the mach header, u16 length, u16 kind}; the
       header is at the start of the segment mapped from file offset 0 */
    uint64_t base = UINT64_MAX;
    for (size_t i = 0; i < m->nsegs && base == UINT64_MAX; i++)
        if (m->segs[i].fileoff == 0 && m->segs[i].filesize) base = m->segs[i].vmaddr;
    if (base == UINT64_MAX || a < base) return false;
    uint64_t off = a - base;
    size_t lo = 0, hi = m->data_in_code.size / 8; /* first entry whose offset is above OFF */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (dk_rd32(m->be, p + 8 * mid) <= off) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return false;
    const uint8_t *e = p + 8 * (lo - 1);
    return off < (uint64_t)dk_rd32(m->be, e) + dk_rd16(m->be, e + 4);
}

bool dk__read_word(const dk_macho *m, uint64_t a, unsigned width, uint64_t *out)
{
    const uint8_t *p = dk_macho_read(m, a, width);
    if (!p) return false;
    *out = width == 8 ? dk_rd64(m->be, p) : width == 4 ? dk_rd32(m->be, p) : dk_rd16(m->be, p);
    return true;
}

int dk__segment_for_fileoff(const dk_macho *m, uint64_t off, uint64_t size)
{
    for (size_t i = 0; i < m->nsegs; i++) {
        const dk_segment *s = &m->segs[i];
        if (off >= s->fileoff && dk_range_ok(off - s->fileoff, size, s->filesize)) return (int)i;
    }
    return -1;
}

const uint8_t *dk__linkedit(const dk_macho *m, uint64_t off, uint64_t size)
{
    if (!m->in_cache) return dk_range_ok(off, size, m->size) ? m->data + off : NULL;
    /* In a split cache each segment's fileoff is an offset in its own file, so
     * __TEXT and the shared __LINKEDIT can cover the same numbers: LINKEDIT
     * offsets are looked up in __LINKEDIT first. */
    int si = -1;
    for (size_t i = 0; i < m->nsegs && si < 0; i++)
        if (strcmp(m->segs[i].segname, "__LINKEDIT") == 0 && off >= m->segs[i].fileoff &&
            dk_range_ok(off - m->segs[i].fileoff, size, m->segs[i].filesize))
            si = (int)i;
    if (si < 0) si = dk__segment_for_fileoff(m, off, size);
    if (si < 0 || !m->seg_data[si]) return NULL;
    uint64_t rel = off - m->segs[si].fileoff;
    if (!dk_range_ok(rel, size, m->seg_avail[si])) return NULL;
    return m->seg_data[si] + rel;
}

/* ------------------------------------------------------------- validation */

typedef struct parse_ctx {
    dk_macho *m;
    dk_error *err;
    dk_vec segs, sects, dylibs, rpaths, ranges;
    uint32_t seen[64]; /* count of each low command number seen (unique-command checks) */
} parse_ctx;

/* A LINKEDIT element, for the overlap check. */
typedef struct range_rec {
    uint64_t off, size;
    const char *what;
} range_rec;

static const char *cmd_label(uint32_t cmd, char buf[24])
{
    const char *n = dk_loadcmd_name(cmd);
    if (n) return n;
    snprintf(buf, 24, "LC_0x%x", cmd);
    return buf;
}

#define FAIL(ctx, ...) dk_fail((ctx)->err, DK_E_MALFORMED, __VA_ARGS__)

static dk_status add_range(parse_ctx *c, uint64_t off, uint64_t size, const char *what)
{
    if (size == 0) return DK_OK;
    range_rec *r = dk_vec_push(&c->ranges, sizeof *r);
    if (!r) return dk_fail(c->err, DK_E_NOMEM, "out of memory");
    r->off = off;
    r->size = size;
    r->what = what;
    return DK_OK;
}

/* Check that [off, off+count*elem) lies within the file and record it. */
static dk_status check_table(parse_ctx *c, uint32_t i, const char *cmdname, const char *offname,
                             const char *countname, uint64_t off, uint64_t count, uint64_t elem, const char *what)
{
    dk_macho *m = c->m;
    uint64_t size = count * elem; /* count and elem are 32-bit: no overflow */
    if (m->in_cache) return DK_OK; /* cache images share LINKEDIT; ranges checked on use */
    if (off > m->size)
        return FAIL(c, "load command %u %s: %s (0x%llx) extends past the end of the file (0x%zx)", i, cmdname, offname,
                    (unsigned long long)off, m->size);
    if (count && !dk_range_ok(off, size, m->size))
        return FAIL(c, "load command %u %s: %s+%s past end of file (0x%llx > 0x%zx)", i, cmdname, offname,
                    countname, (unsigned long long)(off + size), m->size);
    return add_range(c, off, size, what);
}

/* An lc_str inside a command: offset must point after the fixed part and the string must end in the command. */
static dk_status check_lcstr(parse_ctx *c, uint32_t i, const dk_loadcmd *lc, uint32_t fixed, uint32_t stroff,
                             const char *field, const char **out)
{
    char lb[24];
    const char *cn = cmd_label(lc->cmd, lb);
    if (stroff < fixed)
        return FAIL(c, "load command %u %s: %s.offset (%u) points inside the fixed part (size %u)", i, cn, field,
                    stroff, fixed);
    if (stroff >= lc->cmdsize)
        return FAIL(c, "load command %u %s: %s.offset (%u) extends past the end of the load command (cmdsize %u)", i,
                    cn, field, stroff, lc->cmdsize);
    const uint8_t *s = lc->data + stroff;
    if (!memchr(s, 0, lc->cmdsize - stroff))
        return FAIL(c, "load command %u %s: %s is not NUL-terminated within the load command", i, cn, field);
    if (out) *out = (const char *)s;
    return DK_OK;
}

/* Commands that may appear at most once (LLVM and dyld reject duplicates). */
static int unique_slot(uint32_t cmd)
{
    switch (cmd) {
    case LC_SYMTAB: case LC_DYSYMTAB: case LC_UUID: case LC_CODE_SIGNATURE: case LC_SEGMENT_SPLIT_INFO:
    case LC_FUNCTION_STARTS: case LC_DATA_IN_CODE: case LC_DYLIB_CODE_SIGN_DRS: case LC_LINKER_OPTIMIZATION_HINT:
    case LC_SOURCE_VERSION: case LC_TWOLEVEL_HINTS: case LC_UNIXTHREAD: case LC_ID_DYLIB: case LC_ID_DYLINKER:
    case LC_PREBIND_CKSUM:
        return (int)cmd;
    case LC_DYLD_INFO: case LC_DYLD_INFO_ONLY: return 0x22;
    case LC_ENCRYPTION_INFO: case LC_ENCRYPTION_INFO_64: return 0x21;
    case LC_ROUTINES: case LC_ROUTINES_64: return 0x11;
    case LC_MAIN: return 0x28;
    case LC_DYLD_EXPORTS_TRIE: return 0x33;
    case LC_DYLD_CHAINED_FIXUPS: return 0x34;
    case LC_VERSION_MIN_MACOSX: case LC_VERSION_MIN_IPHONEOS: case LC_VERSION_MIN_TVOS:
    case LC_VERSION_MIN_WATCHOS:
        return 0x24;
    default: return -1;
    }
}

static uint32_t fixed_size(uint32_t cmd, bool *exact)
{
    *exact = true;
    switch (cmd) {
    case LC_SYMTAB: return 24;
    case LC_DYSYMTAB: return 80;
    case LC_DYLD_INFO: case LC_DYLD_INFO_ONLY: return 48;
    case LC_CODE_SIGNATURE: case LC_SEGMENT_SPLIT_INFO: case LC_FUNCTION_STARTS: case LC_DATA_IN_CODE:
    case LC_DYLIB_CODE_SIGN_DRS: case LC_LINKER_OPTIMIZATION_HINT: case LC_DYLD_EXPORTS_TRIE:
    case LC_DYLD_CHAINED_FIXUPS: case LC_ATOM_INFO: case LC_FUNCTION_VARIANTS: case LC_FUNCTION_VARIANT_FIXUPS:
        return 16;
    case LC_UUID: return 24;
    case LC_VERSION_MIN_MACOSX: case LC_VERSION_MIN_IPHONEOS: case LC_VERSION_MIN_TVOS:
    case LC_VERSION_MIN_WATCHOS:
        return 16;
    case LC_SOURCE_VERSION: return 16;
    case LC_MAIN: return 24;
    case LC_ENCRYPTION_INFO: return 20;
    case LC_ENCRYPTION_INFO_64: return 24;
    case LC_NOTE: return 40;
    case LC_ROUTINES: return 40;
    case LC_ROUTINES_64: return 72;
    case LC_TWOLEVEL_HINTS: return 16;
    case LC_PREBIND_CKSUM: return 12;
    case LC_SYMSEG: return 16;
    }
    *exact = false;
    switch (cmd) {
    case LC_SEGMENT: return 56;
    case LC_SEGMENT_64: return 72;
    case LC_LOAD_DYLIB: case LC_ID_DYLIB: case LC_LOAD_WEAK_DYLIB: case LC_REEXPORT_DYLIB:
    case LC_LAZY_LOAD_DYLIB: case LC_LOAD_UPWARD_DYLIB:
        return 24;
    case LC_LOAD_DYLINKER: case LC_ID_DYLINKER: case LC_DYLD_ENVIRONMENT: case LC_RPATH: case LC_SUB_FRAMEWORK:
    case LC_SUB_UMBRELLA: case LC_SUB_CLIENT: case LC_SUB_LIBRARY: case LC_LINKER_OPTION: case LC_TARGET_TRIPLE:
        return 12;
    case LC_BUILD_VERSION: return 24;
    case LC_THREAD: case LC_UNIXTHREAD: return 8;
    case LC_LOADFVMLIB: case LC_IDFVMLIB: return 20;
    case LC_FVMFILE: return 16;
    case LC_PREBOUND_DYLIB: return 20;
    case LC_FILESET_ENTRY: return 32;
    case LC_IDENT: case LC_PREPAGE: return 8;
    }
    return 8;
}

/* Thread state: sequences of {flavor, count, state[count]} (count in 32-bit words). */
static dk_status check_thread(parse_ctx *c, uint32_t i, const dk_loadcmd *lc)
{
    dk_macho *m = c->m;
    char lb[24];
    const char *cn = cmd_label(lc->cmd, lb);
    uint32_t pos = 8;
    uint32_t cpu = m->hdr.cputype;
    unsigned states = 0;
    while (pos < lc->cmdsize) {
        if (lc->cmdsize - pos < 8)
            return FAIL(c, "load command %u %s: flavor and count extend past the end of the command", i, cn);
        uint32_t flavor = dk_rd32(m->be, lc->data + pos), count = dk_rd32(m->be, lc->data + pos + 4);
        pos += 8;
        if ((uint64_t)count * 4 > lc->cmdsize - pos)
            return FAIL(c, "load command %u %s: thread state (flavor %u, count %u) extends past the end of the command",
                        i, cn, flavor, count);
        /* Known flavors must have their defined counts (the per-CPU thread_status.h headers). */
        int want = -1;
        if (cpu == CPU_TYPE_X86_64 || cpu == CPU_TYPE_I386) {
            switch (flavor) {
            case 1: want = 16; break;  /* x86_THREAD_STATE32 */
            case 4: want = 42; break;  /* x86_THREAD_STATE64 */
            case 7: want = 44; break;  /* x86_THREAD_STATE */
            case 3: want = 3; break;   /* x86_EXCEPTION_STATE32 */
            case 6: want = 4; break;   /* x86_EXCEPTION_STATE64 */
            case 2: case 5: case 8: case 9: case 10: case 11: case 12: case 13: case 14: case 15: case 16: case 17:
            case 18: case 19: case 20: case 21: case 22: case 23: case 24: case 25: case 26: case 27: case 28:
                break;
            case 0xffffffffu: /* NeXTSTEP i386_THREAD_STATE */
                break;
            default: return FAIL(c, "load command %u %s: unknown x86 thread flavor %u", i, cn, flavor);
            }
        } else if (cpu == CPU_TYPE_ARM64 || cpu == CPU_TYPE_ARM64_32) {
            switch (flavor) {
            case 6: want = 68; break;  /* ARM_THREAD_STATE64 */
            case 1: want = 17; break;  /* ARM_THREAD_STATE */
            case 7: want = 4; break;   /* ARM_EXCEPTION_STATE64 */
            case 2: case 3: case 4: case 5: case 8: case 9: case 14: case 15: case 16: case 17:
                break;
            default: return FAIL(c, "load command %u %s: unknown arm64 thread flavor %u", i, cn, flavor);
            }
        } else if (cpu == CPU_TYPE_ARM) {
            switch (flavor) {
            case 1: want = 17; break;  /* ARM_THREAD_STATE */
            case 2: case 3: case 4: case 5: case 8: case 9: break;
            default: return FAIL(c, "load command %u %s: unknown arm thread flavor %u", i, cn, flavor);
            }
        } else if (cpu == CPU_TYPE_POWERPC || cpu == CPU_TYPE_POWERPC64) {
            switch (flavor) {
            case 1: want = 40; break;  /* PPC_THREAD_STATE */
            case 5: want = 76; break;  /* PPC_THREAD_STATE64 */
            case 2: case 3: case 4: case 6: case 7: break;
            default: return FAIL(c, "load command %u %s: unknown ppc thread flavor %u", i, cn, flavor);
            }
        } else if (cpu == CPU_TYPE_MC680x0 || cpu == CPU_TYPE_MC88000 || cpu == CPU_TYPE_HPPA ||
                   cpu == CPU_TYPE_SPARC || cpu == CPU_TYPE_I860) {
            /* obsolete NeXT-era CPUs: flavors not checked */
        } else {
            return FAIL(c, "load command %u %s: thread state for unknown cputype 0x%x", i, cn, cpu);
        }
        if (want >= 0 && count != (uint32_t)want)
            return FAIL(c, "load command %u %s: count %u for flavor %u, expected %d", i, cn, count, flavor, want);
        const uint8_t *st = lc->data + pos;
        if (lc->cmd == LC_UNIXTHREAD && !m->info.has_thread_pc) {
            if ((cpu == CPU_TYPE_X86_64 && flavor == 4) ) { m->info.thread_pc = dk_rd64(m->be, st + 16 * 8); m->info.has_thread_pc = true; }
            else if (cpu == CPU_TYPE_I386 && flavor == 1) { m->info.thread_pc = dk_rd32(m->be, st + 10 * 4); m->info.has_thread_pc = true; }
            else if (cpu == CPU_TYPE_ARM64 && flavor == 6) { m->info.thread_pc = dk_rd64(m->be, st + 32 * 8); m->info.has_thread_pc = true; }
            else if (cpu == CPU_TYPE_ARM && flavor == 1) { m->info.thread_pc = dk_rd32(m->be, st + 15 * 4); m->info.has_thread_pc = true; }
            else if (cpu == CPU_TYPE_POWERPC && flavor == 1) { m->info.thread_pc = dk_rd32(m->be, st); m->info.has_thread_pc = true; }
            else if (cpu == CPU_TYPE_POWERPC64 && flavor == 5) { m->info.thread_pc = dk_rd64(m->be, st); m->info.has_thread_pc = true; }
        }
        pos += count * 4;
        if (++states > 1024) return FAIL(c, "load command %u %s: more than 1024 thread states", i, cn);
    }
    return DK_OK;
}

static dk_status parse_segment(parse_ctx *c, uint32_t i, const dk_loadcmd *lc)
{
    dk_macho *m = c->m;
    bool is64 = lc->cmd == LC_SEGMENT_64;
    const uint8_t *p = lc->data;
    bool be = m->be;
    const char *cn = is64 ? "LC_SEGMENT_64" : "LC_SEGMENT";
    dk_segment seg;
    memset(&seg, 0, sizeof seg);
    dk_copy_name16(seg.segname, p + 8);
    if (is64) {
        seg.vmaddr = dk_rd64(be, p + 24);
        seg.vmsize = dk_rd64(be, p + 32);
        seg.fileoff = dk_rd64(be, p + 40);
        seg.filesize = dk_rd64(be, p + 48);
        seg.maxprot = dk_rd32(be, p + 56);
        seg.initprot = dk_rd32(be, p + 60);
        seg.nsects = dk_rd32(be, p + 64);
        seg.flags = dk_rd32(be, p + 68);
    } else {
        seg.vmaddr = dk_rd32(be, p + 24);
        seg.vmsize = dk_rd32(be, p + 28);
        seg.fileoff = dk_rd32(be, p + 32);
        seg.filesize = dk_rd32(be, p + 36);
        seg.maxprot = dk_rd32(be, p + 40);
        seg.initprot = dk_rd32(be, p + 44);
        seg.nsects = dk_rd32(be, p + 48);
        seg.flags = dk_rd32(be, p + 52);
    }
    uint32_t hdrsize = is64 ? 72 : 56, sectsize = is64 ? 80 : 68;
    if ((uint64_t)seg.nsects * sectsize > lc->cmdsize - hdrsize)
        return FAIL(c, "load command %u %s %s: nsects (%u) sections do not fit in cmdsize (%u)", i, cn, seg.segname,
                    seg.nsects, lc->cmdsize);
    if (!m->in_cache) {
        if (!dk_range_ok(seg.fileoff, seg.filesize, m->size))
            return FAIL(c, "load command %u %s %s: fileoff+filesize past end of file (0x%llx > 0x%zx)", i, cn,
                        seg.segname, (unsigned long long)(seg.fileoff + seg.filesize), m->size);
        if (seg.vmsize != 0 && seg.vmsize < seg.filesize)
            return FAIL(c, "load command %u %s %s: filesize (0x%llx) greater than vmsize (0x%llx)", i, cn,
                        seg.segname, (unsigned long long)seg.filesize, (unsigned long long)seg.vmsize);
    }
    if (seg.vmsize && seg.vmaddr + seg.vmsize < seg.vmaddr)
        return FAIL(c, "load command %u %s %s: vmaddr+vmsize wraps around", i, cn, seg.segname);
    seg.first_section = (uint32_t)c->sects.len;
    seg.loadcmd = i;
    uint32_t segidx = (uint32_t)c->segs.len;
    for (uint32_t s = 0; s < seg.nsects; s++) {
        const uint8_t *q = p + hdrsize + (size_t)s * sectsize;
        dk_section sec;
        memset(&sec, 0, sizeof sec);
        dk_copy_name16(sec.sectname, q);
        dk_copy_name16(sec.segname, q + 16);
        if (is64) {
            sec.addr = dk_rd64(be, q + 32);
            sec.size = dk_rd64(be, q + 40);
            q += 48;
        } else {
            sec.addr = dk_rd32(be, q + 32);
            sec.size = dk_rd32(be, q + 36);
            q += 40;
        }
        sec.offset = dk_rd32(be, q);
        sec.align = dk_rd32(be, q + 4);
        sec.reloff = dk_rd32(be, q + 8);
        sec.nreloc = dk_rd32(be, q + 12);
        sec.flags = dk_rd32(be, q + 16);
        sec.reserved1 = dk_rd32(be, q + 20);
        sec.reserved2 = dk_rd32(be, q + 24);
        sec.reserved3 = is64 ? dk_rd32(be, q + 28) : 0;
        sec.segment = segidx;
        uint32_t type = sec.flags & SECTION_TYPE;
        bool zerofill = type == S_ZEROFILL || type == S_GB_ZEROFILL || type == S_THREAD_LOCAL_ZEROFILL;
        /* in memory too: a cache image's sections lie inside their segments */
        if (seg.vmsize && sec.addr < seg.vmaddr)
            return FAIL(c, "load command %u %s section %u (%s,%s): addr 0x%llx less than the segment's vmaddr 0x%llx",
                        i, cn, s, sec.segname, sec.sectname, (unsigned long long)sec.addr, (unsigned long long)seg.vmaddr);
        if (seg.vmsize && (sec.addr - seg.vmaddr > seg.vmsize || sec.size > seg.vmsize - (sec.addr - seg.vmaddr)))
            return FAIL(c, "load command %u %s section %u (%s,%s): addr+size 0x%llx greater than the segment's vmaddr+vmsize 0x%llx",
                        i, cn, s, sec.segname, sec.sectname, (unsigned long long)(sec.addr + sec.size),
                        (unsigned long long)(seg.vmaddr + seg.vmsize));
        if (!m->in_cache) {
            /* The checks LLVM's MachOObjectFile applies (dSYMs and dylib stubs keep
             * section headers whose contents were stripped, so offsets are not checked there). */
            bool stripped = m->hdr.filetype == MH_DSYM || m->hdr.filetype == MH_DYLIB_STUB;
            if (!zerofill && !stripped && sec.offset > m->size)
                return FAIL(c, "load command %u %s section %u (%s,%s): offset 0x%x extends past the end of the file (0x%zx)",
                            i, cn, s, sec.segname, sec.sectname, sec.offset, m->size);
            if (!zerofill && !stripped && sec.offset != 0 && !dk_range_ok(sec.offset, sec.size, m->size))
                return FAIL(c, "load command %u %s section %u (%s,%s): offset+size (0x%llx) extends past the end of the file (0x%zx)",
                            i, cn, s, sec.segname, sec.sectname, (unsigned long long)sec.offset + sec.size, m->size);
            if (!zerofill && !stripped && sec.size > seg.filesize && seg.filesize != 0)
                return FAIL(c, "load command %u %s section %u (%s,%s): size 0x%llx greater than the segment's filesize 0x%llx",
                            i, cn, s, sec.segname, sec.sectname, (unsigned long long)sec.size, (unsigned long long)seg.filesize);
            if (!stripped && sec.reloff > m->size)
                return FAIL(c, "load command %u %s section %u (%s,%s): reloff 0x%x extends past the end of the file (0x%zx)",
                            i, cn, s, sec.segname, sec.sectname, sec.reloff, m->size);
            if (!stripped && !dk_range_ok(sec.reloff, (uint64_t)sec.nreloc * 8, m->size))
                return FAIL(c, "load command %u %s section %u (%s,%s): reloff+nreloc*8 (0x%llx) extends past the end of the file (0x%zx)",
                            i, cn, s, sec.segname, sec.sectname, (unsigned long long)sec.reloff + (uint64_t)sec.nreloc * 8, m->size);
            dk_status st;
            if (!zerofill && !stripped && sec.offset != 0 && (st = add_range(c, sec.offset, sec.size, "section contents"))) return st;
            if (!stripped && (st = add_range(c, sec.reloff, (uint64_t)sec.nreloc * 8, "section relocation entries"))) return st;
        }
        dk_section *d = dk_vec_push(&c->sects, sizeof sec);
        if (!d) return dk_fail(c->err, DK_E_NOMEM, "out of memory");
        *d = sec;
    }
    dk_segment *d = dk_vec_push(&c->segs, sizeof seg);
    if (!d) return dk_fail(c->err, DK_E_NOMEM, "out of memory");
    *d = seg;
    return DK_OK;
}

static dk_status linkedit_cmd(parse_ctx *c, uint32_t i, const dk_loadcmd *lc, dk_blob *b, const char *what)
{
    char lb[24];
    const char *cn = cmd_label(lc->cmd, lb);
    b->present = true;
    b->cmd_index = i;
    b->off = dk_rd32(c->m->be, lc->data + 8);
    b->size = dk_rd32(c->m->be, lc->data + 12);
    return check_table(c, i, cn, "dataoff", "datasize", b->off, b->size, 1, what);
}

static dk_status parse_cmd(parse_ctx *c, uint32_t i, const dk_loadcmd *lc)
{
    dk_macho *m = c->m;
    bool be = m->be;
    const uint8_t *p = lc->data;
    char lb[24];
    const char *cn = cmd_label(lc->cmd, lb);
    dk_status st = DK_OK;

    bool exact;
    uint32_t need = fixed_size(lc->cmd, &exact);
    if (exact ? lc->cmdsize != need : lc->cmdsize < need)
        return FAIL(c, "load command %u %s: incorrect cmdsize %u (%s %u)", i, cn, lc->cmdsize,
                    exact ? "expected" : "minimum", need);
    int slot = unique_slot(lc->cmd);
    if (slot >= 0) {
        if (c->seen[slot & 63]++)
            return FAIL(c, "load command %u: more than one %s", i,
                        slot == 0x24 ? "LC_VERSION_MIN_*" : slot == 0x21 ? "LC_ENCRYPTION_INFO(_64)"
                        : slot == 0x11 ? "LC_ROUTINES(_64)" : slot == 0x22 ? "LC_DYLD_INFO(_ONLY)" : cn);
    }

    switch (lc->cmd) {
    case LC_SEGMENT:
    case LC_SEGMENT_64:
        return parse_segment(c, i, lc);
    case LC_SYMTAB:
        m->symtab.present = true;
        m->symtab.cmd_index = i;
        m->symtab.symoff = dk_rd32(be, p + 8);
        m->symtab.nsyms = dk_rd32(be, p + 12);
        m->symtab.stroff = dk_rd32(be, p + 16);
        m->symtab.strsize = dk_rd32(be, p + 20);
        st = check_table(c, i, cn, "symoff", "nsyms", m->symtab.symoff, m->symtab.nsyms, m->hdr.is64 ? 16 : 12,
                         "symbol table");
        if (!st) st = check_table(c, i, cn, "stroff", "strsize", m->symtab.stroff, m->symtab.strsize, 1, "string table");
        return st;
    case LC_DYSYMTAB: {
        uint32_t v[18];
        for (int k = 0; k < 18; k++) v[k] = dk_rd32(be, p + 8 + 4 * k);
        m->dysymtab.present = true;
        m->dysymtab.cmd_index = i;
        m->dysymtab.ilocalsym = v[0]; m->dysymtab.nlocalsym = v[1];
        m->dysymtab.iextdefsym = v[2]; m->dysymtab.nextdefsym = v[3];
        m->dysymtab.iundefsym = v[4]; m->dysymtab.nundefsym = v[5];
        m->dysymtab.tocoff = v[6]; m->dysymtab.ntoc = v[7];
        m->dysymtab.modtaboff = v[8]; m->dysymtab.nmodtab = v[9];
        m->dysymtab.extrefsymoff = v[10]; m->dysymtab.nextrefsyms = v[11];
        m->dysymtab.indirectsymoff = v[12]; m->dysymtab.nindirectsyms = v[13];
        m->dysymtab.extreloff = v[14]; m->dysymtab.nextrel = v[15];
        m->dysymtab.locreloff = v[16]; m->dysymtab.nlocrel = v[17];
        if ((st = check_table(c, i, cn, "tocoff", "ntoc", v[6], v[7], 8, "table of contents"))) return st;
        if ((st = check_table(c, i, cn, "modtaboff", "nmodtab", v[8], v[9], m->hdr.is64 ? 56 : 52, "module table"))) return st;
        if ((st = check_table(c, i, cn, "extrefsymoff", "nextrefsyms", v[10], v[11], 4, "reference table"))) return st;
        if ((st = check_table(c, i, cn, "indirectsymoff", "nindirectsyms", v[12], v[13], 4, "indirect symbol table"))) return st;
        if ((st = check_table(c, i, cn, "extreloff", "nextrel", v[14], v[15], 8, "external relocation entries"))) return st;
        if ((st = check_table(c, i, cn, "locreloff", "nlocrel", v[16], v[17], 8, "local relocation entries"))) return st;
        return DK_OK;
    }
    case LC_DYLD_INFO:
    case LC_DYLD_INFO_ONLY: {
        m->dyld_info.present = true;
        m->dyld_info.cmd_index = i;
        m->dyld_info.cmd = lc->cmd;
        dk_blob *bl[5] = {&m->dyld_info.rebase, &m->dyld_info.bind, &m->dyld_info.weak_bind, &m->dyld_info.lazy_bind,
                          &m->dyld_info.export_};
        static const char *const offn[5] = {"rebase_off", "bind_off", "weak_bind_off", "lazy_bind_off", "export_off"};
        static const char *const sizen[5] = {"rebase_size", "bind_size", "weak_bind_size", "lazy_bind_size", "export_size"};
        static const char *const what[5] = {"dyld rebase info", "dyld bind info", "dyld weak bind info",
                                            "dyld lazy bind info", "dyld export info"};
        for (int k = 0; k < 5; k++) {
            bl[k]->off = dk_rd32(be, p + 8 + 8 * k);
            bl[k]->size = dk_rd32(be, p + 12 + 8 * k);
            bl[k]->present = bl[k]->size != 0;
            bl[k]->cmd_index = i;
            if ((st = check_table(c, i, cn, offn[k], sizen[k], bl[k]->off, bl[k]->size, 1, what[k]))) return st;
        }
        return DK_OK;
    }
    case LC_DYLD_EXPORTS_TRIE: return linkedit_cmd(c, i, lc, &m->exports_trie, "exports trie");
    case LC_DYLD_CHAINED_FIXUPS: return linkedit_cmd(c, i, lc, &m->chained, "chained fixups");
    case LC_FUNCTION_STARTS: return linkedit_cmd(c, i, lc, &m->function_starts, "function starts");
    case LC_DATA_IN_CODE: return linkedit_cmd(c, i, lc, &m->data_in_code, "data in code");
    case LC_SEGMENT_SPLIT_INFO: return linkedit_cmd(c, i, lc, &m->split_info, "split info");
    case LC_CODE_SIGNATURE:
        m->info.has_code_signature = true;
        return linkedit_cmd(c, i, lc, &m->code_signature, "code signature");
    case LC_DYLIB_CODE_SIGN_DRS: case LC_LINKER_OPTIMIZATION_HINT: case LC_ATOM_INFO: case LC_FUNCTION_VARIANTS:
    case LC_FUNCTION_VARIANT_FIXUPS: {
        dk_blob b;
        return linkedit_cmd(c, i, lc, &b, cn);
    }
    case LC_LOAD_DYLIB: case LC_LOAD_WEAK_DYLIB: case LC_REEXPORT_DYLIB: case LC_LAZY_LOAD_DYLIB:
    case LC_LOAD_UPWARD_DYLIB: case LC_ID_DYLIB: {
        const char *name;
        if ((st = check_lcstr(c, i, lc, 24, dk_rd32(be, p + 8), "dylib.name", &name))) return st;
        if (lc->cmd == LC_ID_DYLIB) {
            if (m->hdr.filetype != MH_DYLIB && m->hdr.filetype != MH_DYLIB_STUB)
                return FAIL(c, "load command %u LC_ID_DYLIB in a non-dylib file (filetype %s)", i,
                            dk_filetype_name(m->hdr.filetype));
            m->install_name = name;
            return DK_OK;
        }
        dk_dylib *d = dk_vec_push(&c->dylibs, sizeof *d);
        if (!d) return dk_fail(c->err, DK_E_NOMEM, "out of memory");
        d->name = name;
        d->cmd = lc->cmd;
        d->kind = lc->cmd == LC_LOAD_WEAK_DYLIB ? DK_DYLIB_WEAK
                  : lc->cmd == LC_REEXPORT_DYLIB ? DK_DYLIB_REEXPORT
                  : lc->cmd == LC_LOAD_UPWARD_DYLIB ? DK_DYLIB_UPWARD
                  : lc->cmd == LC_LAZY_LOAD_DYLIB ? DK_DYLIB_LAZY
                                                  : DK_DYLIB_LOAD;
        d->timestamp = dk_rd32(be, p + 12);
        d->current_version = dk_rd32(be, p + 16);
        d->compatibility_version = dk_rd32(be, p + 20);
        d->loadcmd = i;
        return DK_OK;
    }
    case LC_LOAD_DYLINKER: case LC_ID_DYLINKER: case LC_DYLD_ENVIRONMENT: {
        const char *name;
        if ((st = check_lcstr(c, i, lc, 12, dk_rd32(be, p + 8), "name", &name))) return st;
        if (lc->cmd == LC_LOAD_DYLINKER) m->info.dylinker = name;
        return DK_OK;
    }
    case LC_RPATH: {
        const char *path;
        if ((st = check_lcstr(c, i, lc, 12, dk_rd32(be, p + 8), "path", &path))) return st;
        const char **rp = dk_vec_push(&c->rpaths, sizeof *rp);
        if (!rp) return dk_fail(c->err, DK_E_NOMEM, "out of memory");
        *rp = path;
        return DK_OK;
    }
    case LC_SUB_FRAMEWORK: return check_lcstr(c, i, lc, 12, dk_rd32(be, p + 8), "umbrella", NULL);
    case LC_SUB_UMBRELLA: return check_lcstr(c, i, lc, 12, dk_rd32(be, p + 8), "sub_umbrella", NULL);
    case LC_SUB_CLIENT: return check_lcstr(c, i, lc, 12, dk_rd32(be, p + 8), "client", NULL);
    case LC_SUB_LIBRARY: return check_lcstr(c, i, lc, 12, dk_rd32(be, p + 8), "sub_library", NULL);
    case LC_TARGET_TRIPLE: return check_lcstr(c, i, lc, 12, dk_rd32(be, p + 8), "triple", NULL);
    case LC_LOADFVMLIB: case LC_IDFVMLIB: return check_lcstr(c, i, lc, 20, dk_rd32(be, p + 8), "fvmlib.name", NULL);
    case LC_FVMFILE: return check_lcstr(c, i, lc, 16, dk_rd32(be, p + 8), "name", NULL);
    case LC_PREBOUND_DYLIB: {
        if ((st = check_lcstr(c, i, lc, 20, dk_rd32(be, p + 8), "name", NULL))) return st;
        uint32_t nmod = dk_rd32(be, p + 12), lmoff = dk_rd32(be, p + 16);
        if (lmoff < 20 || lmoff >= lc->cmdsize || (nmod + 7) / 8 > lc->cmdsize - lmoff)
            return FAIL(c, "load command %u LC_PREBOUND_DYLIB: linked_modules (offset %u, %u modules) extends past the command",
                        i, lmoff, nmod);
        return DK_OK;
    }
    case LC_UUID:
        m->info.has_uuid = true;
        memcpy(m->info.uuid, p + 8, 16);
        return DK_OK;
    case LC_VERSION_MIN_MACOSX: case LC_VERSION_MIN_IPHONEOS: case LC_VERSION_MIN_TVOS: case LC_VERSION_MIN_WATCHOS:
        if (!m->info.version_cmd) {
            m->info.version_cmd = lc->cmd;
            m->info.platform = lc->cmd == LC_VERSION_MIN_MACOSX ? PLATFORM_MACOS
                               : lc->cmd == LC_VERSION_MIN_IPHONEOS ? PLATFORM_IOS
                               : lc->cmd == LC_VERSION_MIN_TVOS ? PLATFORM_TVOS
                                                                 : PLATFORM_WATCHOS;
            m->info.minos = dk_rd32(be, p + 8);
            m->info.sdk = dk_rd32(be, p + 12);
        }
        return DK_OK;
    case LC_BUILD_VERSION: {
        uint32_t ntools = dk_rd32(be, p + 20);
        if ((uint64_t)24 + (uint64_t)ntools * 8 != lc->cmdsize)
            return FAIL(c, "load command %u LC_BUILD_VERSION: cmdsize %u does not match ntools %u", i, lc->cmdsize, ntools);
        if (!m->info.version_cmd || m->info.version_cmd != LC_BUILD_VERSION) {
            m->info.version_cmd = LC_BUILD_VERSION;
            m->info.platform = dk_rd32(be, p + 8);
            m->info.minos = dk_rd32(be, p + 12);
            m->info.sdk = dk_rd32(be, p + 16);
        }
        return DK_OK;
    }
    case LC_SOURCE_VERSION:
        m->info.has_source_version = true;
        m->info.source_version = dk_rd64(be, p + 8);
        return DK_OK;
    case LC_MAIN:
        m->info.has_main = true;
        m->info.entryoff = dk_rd64(be, p + 8);
        m->info.stacksize = dk_rd64(be, p + 16);
        return DK_OK;
    case LC_ENCRYPTION_INFO: case LC_ENCRYPTION_INFO_64: {
        uint32_t off = dk_rd32(be, p + 8), size = dk_rd32(be, p + 12), id = dk_rd32(be, p + 16);
        if (!m->in_cache && !dk_range_ok(off, size, m->size))
            return FAIL(c, "load command %u %s: cryptoff+cryptsize past end of file (0x%llx > 0x%zx)", i, cn,
                        (unsigned long long)off + size, m->size);
        m->info.encrypted = id != 0;
        return DK_OK;
    }
    case LC_LINKER_OPTION: {
        uint32_t count = dk_rd32(be, p + 8);
        uint32_t pos = 12;
        for (uint32_t k = 0; k < count; k++) {
            if (pos >= lc->cmdsize)
                return FAIL(c, "load command %u LC_LINKER_OPTION: count %u but only %u strings fit", i, count, k);
            const uint8_t *z = memchr(p + pos, 0, lc->cmdsize - pos);
            if (!z) return FAIL(c, "load command %u LC_LINKER_OPTION: string %u not NUL-terminated", i, k);
            pos = (uint32_t)(z - p) + 1;
        }
        return DK_OK;
    }
    case LC_NOTE: {
        uint64_t off = dk_rd64(be, p + 24), size = dk_rd64(be, p + 32);
        if (!m->in_cache && !dk_range_ok(off, size, m->size))
            return FAIL(c, "load command %u LC_NOTE: offset+size past end of file (0x%llx+0x%llx > 0x%zx)", i,
                        (unsigned long long)off, (unsigned long long)size, m->size);
        return add_range(c, off, size, "LC_NOTE data");
    }
    case LC_TWOLEVEL_HINTS:
        return check_table(c, i, cn, "offset", "nhints", dk_rd32(be, p + 8), dk_rd32(be, p + 12), 4, "two-level hints");
    case LC_THREAD: case LC_UNIXTHREAD:
        return check_thread(c, i, lc);
    case LC_FILESET_ENTRY:
        return check_lcstr(c, i, lc, 32, dk_rd32(be, p + 24), "entry_id", NULL);
    case LC_SYMSEG: {
        uint32_t off = dk_rd32(be, p + 8), size = dk_rd32(be, p + 12);
        return check_table(c, i, cn, "offset", "size", off, size, 1, "symbol segment");
    }
    default:
        return DK_OK; /* unknown commands are kept and shown raw */
    }
}

static int range_cmp(const void *a, const void *b)
{
    const range_rec *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x->size < y->size ? -1 : x->size > y->size;
}

/* LINKEDIT elements must not overlap each other or the headers (as LLVM checks). */
static dk_status check_overlaps(parse_ctx *c)
{
    range_rec *r = c->ranges.data;
    size_t n = c->ranges.len;
    if (n < 2) return DK_OK;
    qsort(r, n, sizeof *r, range_cmp);
    for (size_t i = 1; i < n; i++) {
        const range_rec *a = &r[i - 1], *b = &r[i];
        if (b->off < a->off + a->size)
            return FAIL(c, "%s (0x%llx+0x%llx) overlaps %s (0x%llx+0x%llx)", b->what, (unsigned long long)b->off,
                        (unsigned long long)b->size, a->what, (unsigned long long)a->off, (unsigned long long)a->size);
    }
    return DK_OK;
}

static dk_status parse_header(dk_macho *m, dk_error *err)
{
    if (m->size < 4) return dk_fail(err, DK_E_MALFORMED, "mach header: file too small (%zu bytes)", m->size);
    uint32_t magic = dk_le32(m->data);
    dk_header *h = &m->hdr;
    switch (magic) {
    case MH_MAGIC: h->is64 = false; h->big_endian = false; break;
    case MH_CIGAM: h->is64 = false; h->big_endian = true; break;
    case MH_MAGIC_64: h->is64 = true; h->big_endian = false; break;
    case MH_CIGAM_64: h->is64 = true; h->big_endian = true; break;
    default: return dk_fail(err, DK_E_MALFORMED, "mach header: bad magic 0x%08x at offset 0", magic);
    }
    size_t hsize = h->is64 ? 32 : 28;
    if (m->size < hsize)
        return dk_fail(err, DK_E_MALFORMED, "mach header: truncated (%zu bytes, need %zu)", m->size, hsize);
    bool be = m->be = h->big_endian;
    h->magic = h->is64 ? MH_MAGIC_64 : MH_MAGIC;
    h->cputype = dk_rd32(be, m->data + 4);
    h->cpusubtype = dk_rd32(be, m->data + 8);
    h->filetype = dk_rd32(be, m->data + 12);
    h->ncmds = dk_rd32(be, m->data + 16);
    h->sizeofcmds = dk_rd32(be, m->data + 20);
    h->flags = dk_rd32(be, m->data + 24);
    h->reserved = h->is64 ? dk_rd32(be, m->data + 28) : 0;
    m->arch = dk_arch_name(h->cputype, h->cpusubtype);
    if (!dk_range_ok(hsize, h->sizeofcmds, m->size))
        return dk_fail(err, DK_E_MALFORMED, "mach header: sizeofcmds (0x%x) extends past end of file (0x%zx)",
                       h->sizeofcmds, m->size);
    /* Each load command is at least 8 bytes; so the count is bounded by sizeofcmds. */
    if ((uint64_t)h->ncmds * 8 > h->sizeofcmds)
        return dk_fail(err, DK_E_MALFORMED, "mach header: ncmds (%u) load commands cannot fit in sizeofcmds (%u)",
                       h->ncmds, h->sizeofcmds);
    return DK_OK;
}

static void macho_free_parts(dk_macho *m)
{
    free(m->cmds);
    free(m->segs);
    free(m->seg_data);
    free(m->seg_avail);
    free(m->sects);
    free(m->dylibs);
    free(m->rpaths);
    free(m->syms);
    free(m->indirect);
    free(m->imports);
    dk_big_free(m->fixidx, m->fixidx_bytes);
    free(m->fixidx_err);
    for (size_t i = 0; i < m->owned.len; i++) free(((char **)m->owned.data)[i]);
    dk_vec_free(&m->owned);
    free(m->name);
}

void dk_macho_close(dk_macho *m)
{
    if (!m) return;
    macho_free_parts(m);
    free(m);
}

dk_status dk__macho_open_src(const dk_macho_source *src, const char *name, dk_macho **out, dk_error *err)
{
    *out = NULL;
    dk_macho *m = calloc(1, sizeof *m);
    if (!m) return dk_fail(err, DK_E_NOMEM, "out of memory");
    m->name = strdup(name ? name : "<memory>");
    m->data = src->data;
    m->size = src->size;
    m->src = *src;
    m->in_cache = src->map != NULL;
    parse_ctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.err = err;
    dk_status st = m->name ? parse_header(m, err) : dk_fail(err, DK_E_NOMEM, "out of memory");
    if (st) goto fail;

    size_t hsize = m->hdr.is64 ? 32 : 28;
    uint32_t ncmds = m->hdr.ncmds;
    m->cmds = calloc(ncmds ? ncmds : 1, sizeof *m->cmds);
    if (!m->cmds) {
        st = dk_fail(err, DK_E_NOMEM, "out of memory");
        goto fail;
    }
    if (!m->in_cache) {
        st = add_range(&c, 0, hsize + (uint64_t)m->hdr.sizeofcmds, "Mach-O headers");
        if (st) goto fail;
    }
    uint64_t pos = hsize, end = hsize + (uint64_t)m->hdr.sizeofcmds;
    for (uint32_t i = 0; i < ncmds; i++) {
        if (pos >= end || end - pos < 8) {
            st = dk_fail(err, DK_E_MALFORMED, "load command %u at offset 0x%llx extends past the end of all load commands (sizeofcmds %u)",
                         i, (unsigned long long)pos, m->hdr.sizeofcmds);
            goto fail;
        }
        dk_loadcmd *lc = &m->cmds[i];
        lc->cmd = dk_rd32(m->be, m->data + pos);
        lc->cmdsize = dk_rd32(m->be, m->data + pos + 4);
        lc->offset = pos;
        lc->data = m->data + pos;
        char lb[24];
        if (lc->cmdsize < 8) {
            st = dk_fail(err, DK_E_MALFORMED, "load command %u (%s) at offset 0x%llx: cmdsize %u less than 8 bytes", i,
                         cmd_label(lc->cmd, lb), (unsigned long long)pos, lc->cmdsize);
            goto fail;
        }
        /* LLVM (and yaml2obj-made files) allow the last command to run past
         * sizeofcmds as long as it stays inside the file; dyld does not care
         * either once the command is readable. */
        if (lc->cmdsize > m->size - pos) {
            st = dk_fail(err, DK_E_MALFORMED, "load command %u (%s) at offset 0x%llx: cmdsize %u extends past the end of the file (0x%zx)",
                         i, cmd_label(lc->cmd, lb), (unsigned long long)pos, lc->cmdsize, m->size);
            goto fail;
        }
        unsigned align = m->hdr.is64 ? 8 : 4;
        if (lc->cmdsize % align && m->hdr.filetype != MH_OBJECT && (lc->cmd == LC_SEGMENT || lc->cmd == LC_SEGMENT_64)) {
            st = dk_fail(err, DK_E_MALFORMED, "load command %u (%s) at offset 0x%llx: cmdsize %u not a multiple of %u", i,
                         cmd_label(lc->cmd, lb), (unsigned long long)pos, lc->cmdsize, align);
            goto fail;
        }
        m->ncmds = i + 1;
        st = parse_cmd(&c, i, lc);
        if (st) goto fail;
        pos += lc->cmdsize;
    }
    if (m->hdr.filetype == MH_DYLIB && !m->install_name && !m->in_cache) {
        st = dk_fail(err, DK_E_MALFORMED, "no LC_ID_DYLIB load command in a dylib (filetype DYLIB)");
        goto fail;
    }
    if (m->dysymtab.present && !m->in_cache) {
        uint32_t nsyms = m->symtab.present ? m->symtab.nsyms : 0;
        struct { uint32_t first, count; const char *name; } g[3] = {
            {m->dysymtab.ilocalsym, m->dysymtab.nlocalsym, "ilocalsym+nlocalsym"},
            {m->dysymtab.iextdefsym, m->dysymtab.nextdefsym, "iextdefsym+nextdefsym"},
            {m->dysymtab.iundefsym, m->dysymtab.nundefsym, "iundefsym+nundefsym"}};
        for (int k = 0; k < 3; k++)
            if (g[k].count && (uint64_t)g[k].first + g[k].count > nsyms) {
                st = dk_fail(err, DK_E_MALFORMED, "load command %u LC_DYSYMTAB: %s (%llu) extends past the end of the symbol table (%u)",
                             m->dysymtab.cmd_index, g[k].name, (unsigned long long)g[k].first + g[k].count, nsyms);
                goto fail;
            }
    }
    if (!m->in_cache && (st = check_overlaps(&c))) goto fail;

    m->segs = c.segs.data;
    m->nsegs = c.segs.len;
    c.segs.data = NULL;
    m->sects = c.sects.data;
    m->nsects = c.sects.len;
    c.sects.data = NULL;
    m->dylibs = c.dylibs.data;
    m->ndylibs = c.dylibs.len;
    c.dylibs.data = NULL;
    m->rpaths = c.rpaths.data;
    m->info.rpaths = m->rpaths;
    m->info.nrpaths = c.rpaths.len;
    c.rpaths.data = NULL;
    dk_vec_free(&c.ranges);

    m->seg_data = calloc(m->nsegs ? m->nsegs : 1, sizeof *m->seg_data);
    m->seg_avail = calloc(m->nsegs ? m->nsegs : 1, sizeof *m->seg_avail);
    if (!m->seg_data || !m->seg_avail) {
        st = dk_fail(err, DK_E_NOMEM, "out of memory");
        goto fail;
    }
    bool have_base = false;
    for (size_t i = 0; i < m->nsegs; i++) {
        const dk_segment *s = &m->segs[i];
        if (m->in_cache) {
            uint64_t avail = 0;
            const uint8_t *p = s->filesize ? src->map(src->map_ctx, s->vmaddr, &avail) : NULL;
            if (p) {
                m->seg_data[i] = p;
                m->seg_avail[i] = avail < s->filesize ? avail : s->filesize;
            }
        } else if (s->filesize) {
            m->seg_data[i] = m->data + s->fileoff;
            m->seg_avail[i] = s->filesize;
        }
        if (!have_base && s->fileoff == 0 && s->filesize != 0) {
            m->base = s->vmaddr;
            have_base = true;
        }
    }
    if (!have_base) {
        for (size_t i = 0; i < m->nsegs; i++)
            if (strcmp(m->segs[i].segname, "__TEXT") == 0) {
                m->base = m->segs[i].vmaddr;
                have_base = true;
                break;
            }
    }
    *out = m;
    return DK_OK;
fail:
    dk_vec_free(&c.segs);
    dk_vec_free(&c.sects);
    dk_vec_free(&c.dylibs);
    dk_vec_free(&c.rpaths);
    dk_vec_free(&c.ranges);
    dk_macho_close(m);
    return st;
}

dk_status dk_macho_open(const void *data, size_t size, const char *name, dk_macho **out, dk_error *err)
{
    dk_macho_source src;
    memset(&src, 0, sizeof src);
    src.data = data;
    src.size = size;
    return dk__macho_open_src(&src, name, out, err);
}
