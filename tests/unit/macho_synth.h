/*
 * Synthetic Mach-O images for unit tests, written byte by byte: a header, the
 * load commands a test asks for, and zeroed file space the test fills in.
 * Field offsets follow <mach-o/loader.h>; nothing here uses the library, so a
 * test's expectations come from the Apple layouts, not from dyldkit.
 *
 * The default layout (synth_std) of an image with base address B:
 *
 *   file 0x0000-0x1000  __TEXT      vm B+0x0000  section __text  B+0x800 size 0x100
 *   file 0x1000-0x3000  __DATA      vm B+0x1000  section __data  B+0x1000 size 0x2000
 *   file 0x3000-0x4000  __LINKEDIT  vm B+0x3000  (blobs a test places there)
 *
 * so segment indices are 0 __TEXT, 1 __DATA, 2 __LINKEDIT and __DATA is two
 * 4KB pages.
 */
#ifndef DYLDKIT_MACHO_SYNTH_H
#define DYLDKIT_MACHO_SYNTH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SY_TEXT_OFF 0x0000u
#define SY_DATA_OFF 0x1000u
#define SY_DATA_SIZE 0x2000u
#define SY_LINKEDIT_OFF 0x3000u
#define SY_FILE_SIZE 0x4000u

/* <mach-o/loader.h> values used by the tests */
#define SY_LC_SEGMENT 0x1u
#define SY_LC_SEGMENT_64 0x19u
#define SY_LC_LOAD_DYLIB 0xcu
#define SY_LC_DYLD_INFO_ONLY 0x80000022u
#define SY_LC_DYLD_EXPORTS_TRIE 0x80000033u
#define SY_LC_DYLD_CHAINED_FIXUPS 0x80000034u
#define SY_MH_EXECUTE 0x2u
#define SY_CPU_X86_64 0x01000007u
#define SY_CPU_I386 0x7u
#define SY_CPU_ARM 0xcu
#define SY_CPU_ARM64 0x0100000cu
#define SY_SUB_ARM64E 0x80000002u /* CPU_SUBTYPE_ARM64E | CPU_SUBTYPE_PTRAUTH_ABI */
#define SY_SUB_ARMV7K 12u

typedef struct synth {
    uint8_t buf[SY_FILE_SIZE];
    size_t size;     /* bytes handed to dk_macho_open */
    bool is64;
    uint32_t ncmds;
    uint32_t lc_end; /* offset just past the last load command */
    uint64_t base;
} synth;

static inline void sy_w16(synth *s, size_t off, uint16_t v)
{
    s->buf[off] = (uint8_t)v;
    s->buf[off + 1] = (uint8_t)(v >> 8);
}
static inline void sy_w32(synth *s, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++) s->buf[off + i] = (uint8_t)(v >> (8 * i));
}
static inline void sy_w64(synth *s, size_t off, uint64_t v)
{
    for (int i = 0; i < 8; i++) s->buf[off + i] = (uint8_t)(v >> (8 * i));
}
static inline void sy_bytes(synth *s, size_t off, const void *p, size_t n) { memcpy(s->buf + off, p, n); }

/* mach_header(_64): magic, cputype, cpusubtype, filetype, ncmds, sizeofcmds, flags[, reserved] */
static inline void sy_init(synth *s, bool is64, uint32_t cputype, uint32_t cpusubtype, uint64_t base)
{
    memset(s, 0, sizeof *s);
    s->size = SY_FILE_SIZE;
    s->is64 = is64;
    s->base = base;
    sy_w32(s, 0, is64 ? 0xfeedfacfu : 0xfeedfaceu);
    sy_w32(s, 4, cputype);
    sy_w32(s, 8, cpusubtype);
    sy_w32(s, 12, SY_MH_EXECUTE);
    sy_w32(s, 24, 0x00200085u); /* MH_NOUNDEFS | MH_DYLDLINK | MH_TWOLEVEL | MH_PIE */
    s->lc_end = is64 ? 32 : 28;
}

/* Append a load command of CMDSIZE bytes; returns its offset. */
static inline size_t sy_cmd(synth *s, uint32_t cmd, uint32_t cmdsize)
{
    size_t at = s->lc_end;
    sy_w32(s, at, cmd);
    sy_w32(s, at + 4, cmdsize);
    s->lc_end += cmdsize;
    s->ncmds++;
    sy_w32(s, 16, s->ncmds);
    sy_w32(s, 20, s->lc_end - (s->is64 ? 32 : 28));
    return at;
}

static inline void sy_name16(synth *s, size_t off, const char *name)
{
    memset(s->buf + off, 0, 16);
    memcpy(s->buf + off, name, strlen(name));
}

/*
 * LC_SEGMENT(_64) with zero or one section.  segment_command_64: segname@8,
 * vmaddr@24, vmsize@32, fileoff@40, filesize@48, maxprot@56, initprot@60,
 * nsects@64, flags@68 (72 bytes); section_64 (80 bytes): sectname@0,
 * segname@16, addr@32, size@40, offset@48, align@52, reloff@56, nreloc@60,
 * flags@64, reserved1-3@68.  The 32-bit forms have 32-bit addr/size fields
 * (56 and 68 bytes).
 */
static inline void sy_segment(synth *s, const char *segname, uint64_t vmaddr, uint64_t vmsize, uint64_t fileoff,
                              uint64_t filesize, uint32_t prot, const char *sectname, uint64_t saddr, uint64_t ssize,
                              uint32_t soff)
{
    uint32_t nsect = sectname ? 1 : 0;
    if (s->is64) {
        size_t at = sy_cmd(s, SY_LC_SEGMENT_64, 72 + 80 * nsect);
        sy_name16(s, at + 8, segname);
        sy_w64(s, at + 24, vmaddr);
        sy_w64(s, at + 32, vmsize);
        sy_w64(s, at + 40, fileoff);
        sy_w64(s, at + 48, filesize);
        sy_w32(s, at + 56, prot);
        sy_w32(s, at + 60, prot);
        sy_w32(s, at + 64, nsect);
        if (nsect) {
            size_t q = at + 72;
            sy_name16(s, q, sectname);
            sy_name16(s, q + 16, segname);
            sy_w64(s, q + 32, saddr);
            sy_w64(s, q + 40, ssize);
            sy_w32(s, q + 48, soff);
            sy_w32(s, q + 52, 3);
        }
    } else {
        size_t at = sy_cmd(s, SY_LC_SEGMENT, 56 + 68 * nsect);
        sy_name16(s, at + 8, segname);
        sy_w32(s, at + 24, (uint32_t)vmaddr);
        sy_w32(s, at + 28, (uint32_t)vmsize);
        sy_w32(s, at + 32, (uint32_t)fileoff);
        sy_w32(s, at + 36, (uint32_t)filesize);
        sy_w32(s, at + 40, prot);
        sy_w32(s, at + 44, prot);
        sy_w32(s, at + 48, nsect);
        if (nsect) {
            size_t q = at + 56;
            sy_name16(s, q, sectname);
            sy_name16(s, q + 16, segname);
            sy_w32(s, q + 32, (uint32_t)saddr);
            sy_w32(s, q + 36, (uint32_t)ssize);
            sy_w32(s, q + 40, soff);
            sy_w32(s, q + 44, 2);
        }
    }
}

/* The three segments of the default layout. */
static inline void sy_std_segments(synth *s)
{
    uint64_t b = s->base;
    sy_segment(s, "__TEXT", b, 0x1000, 0, 0x1000, 5, "__text", b + 0x800, 0x100, 0x800);
    sy_segment(s, "__DATA", b + SY_DATA_OFF, SY_DATA_SIZE, SY_DATA_OFF, SY_DATA_SIZE, 3, "__data", b + SY_DATA_OFF,
               SY_DATA_SIZE, SY_DATA_OFF);
    sy_segment(s, "__LINKEDIT", b + SY_LINKEDIT_OFF, 0x1000, SY_LINKEDIT_OFF, 0x1000, 1, NULL, 0, 0, 0);
}

/* dylib_command: dylib.name.offset@8 (24), timestamp@12, current_version@16, compatibility_version@20. */
static inline void sy_dylib(synth *s, const char *name)
{
    uint32_t len = (uint32_t)strlen(name) + 1;
    uint32_t size = (24 + len + 7) & ~7u;
    size_t at = sy_cmd(s, SY_LC_LOAD_DYLIB, size);
    sy_w32(s, at + 8, 24);
    sy_w32(s, at + 12, 2);
    sy_w32(s, at + 16, 0x10000);
    sy_w32(s, at + 20, 0x10000);
    memcpy(s->buf + at + 24, name, len);
}

/* linkedit_data_command: dataoff@8, datasize@12 (16 bytes). */
static inline void sy_linkedit_cmd(synth *s, uint32_t cmd, uint32_t off, uint32_t size)
{
    size_t at = sy_cmd(s, cmd, 16);
    sy_w32(s, at + 8, off);
    sy_w32(s, at + 12, size);
}

/* dyld_info_command: {rebase,bind,weak_bind,lazy_bind,export}_{off,size} from offset 8 (48 bytes). */
static inline void sy_dyld_info(synth *s, const uint32_t off[5], const uint32_t size[5])
{
    size_t at = sy_cmd(s, SY_LC_DYLD_INFO_ONLY, 48);
    for (int k = 0; k < 5; k++) {
        sy_w32(s, at + 8 + 8 * k, off[k]);
        sy_w32(s, at + 12 + 8 * k, size[k]);
    }
}

/*
 * An LC_DYLD_CHAINED_FIXUPS payload with starts for one segment, laid out as
 * <mach-o/fixup-chains.h> describes:
 *   dyld_chained_fixups_header (7 x u32) at 0, padded to 32 = starts_offset;
 *   dyld_chained_starts_in_image { seg_count; seg_info_offset[seg_count] };
 *   dyld_chained_starts_in_segment { size u32, page_size u16, pointer_format u16,
 *     segment_offset u64, max_valid_pointer u32, page_count u16, page_start[] }
 *     (22 bytes + 2 per page_start entry, chain_starts[] overflow included);
 *   the imports table, then the symbol pool.
 */
typedef struct sy_chained {
    uint32_t seg_count;
    uint32_t data_seg;          /* segment whose seg_info_offset is set */
    uint16_t page_size;
    uint16_t pointer_format;
    uint64_t segment_offset;
    uint32_t max_valid_pointer;
    uint16_t page_count;
    const uint16_t *page_start; /* page_count entries, then any chain_starts[] */
    size_t npage_start;
    uint32_t imports_format;
    const uint8_t *imports;
    size_t imports_size;
    uint32_t imports_count;
    const char *symbols;        /* pool bytes */
    size_t symbols_size;
    uint32_t symbols_format;
} sy_chained;

typedef struct sy_chained_layout {
    uint32_t starts_offset, seg_info_offset, imports_offset, symbols_offset, size;
} sy_chained_layout;

static inline sy_chained_layout sy_put_chained(synth *s, uint32_t at, const sy_chained *c)
{
    sy_chained_layout L;
    L.starts_offset = 32;
    L.seg_info_offset = (4 + 4 * c->seg_count + 7) & ~7u;
    uint32_t seg_size = 22 + 2 * (uint32_t)c->npage_start;
    L.imports_offset = (L.starts_offset + L.seg_info_offset + seg_size + 3) & ~3u;
    L.symbols_offset = L.imports_offset + (uint32_t)c->imports_size;
    L.size = L.symbols_offset + (uint32_t)c->symbols_size;
    sy_w32(s, at + 0, 0);
    sy_w32(s, at + 4, L.starts_offset);
    sy_w32(s, at + 8, L.imports_offset);
    sy_w32(s, at + 12, L.symbols_offset);
    sy_w32(s, at + 16, c->imports_count);
    sy_w32(s, at + 20, c->imports_format);
    sy_w32(s, at + 24, c->symbols_format);
    uint32_t img = at + L.starts_offset;
    sy_w32(s, img, c->seg_count);
    for (uint32_t i = 0; i < c->seg_count; i++) sy_w32(s, img + 4 + 4 * i, i == c->data_seg ? L.seg_info_offset : 0);
    uint32_t seg = img + L.seg_info_offset;
    sy_w32(s, seg, seg_size);
    sy_w16(s, seg + 4, c->page_size);
    sy_w16(s, seg + 6, c->pointer_format);
    sy_w64(s, seg + 8, c->segment_offset);
    sy_w32(s, seg + 16, c->max_valid_pointer);
    sy_w16(s, seg + 20, c->page_count);
    for (size_t i = 0; i < c->npage_start; i++) sy_w16(s, seg + 22 + 2 * i, c->page_start[i]);
    if (c->imports_size) memcpy(s->buf + at + L.imports_offset, c->imports, c->imports_size);
    if (c->symbols_size) memcpy(s->buf + at + L.symbols_offset, c->symbols, c->symbols_size);
    return L;
}

/* Little-endian packers for import tables. */
static inline void sy_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void sy_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

#endif
