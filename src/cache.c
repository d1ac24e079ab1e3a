/*
 * dyld shared cache files: dyld_cache_header (every generation), the mapping
 * tables (dyld_cache_mapping_info, dyld_cache_mapping_and_slide_info), the
 * sub-cache tables (dyld_subcache_entry_v1 / dyld_subcache_entry) and the
 * .symbols file, following Apple's <mach-o/dyld_cache_format.h> and
 * other-tools/dsc_extractor.cpp (how sub-cache files are named).
 *
 * A header field exists iff it lies below mappingOffset: the header is only
 * ever extended at its end and the mapping table follows it.  Everything a
 * later walk relies on (tables inside their files, mappings inside their
 * files and not overlapping in VM) is validated here, once.
 */
#include "cache_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAIL(err, ...) dk_fail((err), DK_E_MALFORMED, __VA_ARGS__)

/* ------------------------------------------------------------ header table */

enum { HF_U32, HF_U64, HF_UUID, HF_MAGIC, HF_BITS };

typedef struct hdr_field {
    uint16_t off;      /* offset in dyld_cache_header */
    uint8_t size;
    uint8_t kind;      /* HF_* */
    bool hex;          /* printed as an address/offset */
    const char *name;  /* Apple's current name */
    size_t member;     /* offsetof in dk_cache_header */
} hdr_field;

#define F32(o, n, h) {o, 4, HF_U32, h, #n, offsetof(dk_cache_header, n)}
#define F64(o, n, h) {o, 8, HF_U64, h, #n, offsetof(dk_cache_header, n)}

static const hdr_field hdr_fields[] = {
    {0x000, 16, HF_MAGIC, false, "magic", offsetof(dk_cache_header, magic)},
    F32(0x010, mappingOffset, true),
    F32(0x014, mappingCount, false),
    F32(0x018, imagesOffsetOld, true),
    F32(0x01C, imagesCountOld, false),
    F64(0x020, dyldBaseAddress, true),
    F64(0x028, codeSignatureOffset, true),
    F64(0x030, codeSignatureSize, true),
    F64(0x038, slideInfoOffsetUnused, true),
    F64(0x040, slideInfoSizeUnused, true),
    F64(0x048, localSymbolsOffset, true),
    F64(0x050, localSymbolsSize, true),
    {0x058, 16, HF_UUID, false, "uuid", offsetof(dk_cache_header, uuid)},
    F64(0x068, cacheType, false),
    F32(0x070, branchPoolsOffset, true),
    F32(0x074, branchPoolsCount, false),
    F64(0x078, dyldInCacheMH, true),
    F64(0x080, dyldInCacheEntry, true),
    F64(0x088, imagesTextOffset, true),
    F64(0x090, imagesTextCount, false),
    F64(0x098, patchInfoAddr, true),
    F64(0x0A0, patchInfoSize, true),
    F64(0x0A8, otherImageGroupAddrUnused, true),
    F64(0x0B0, otherImageGroupSizeUnused, true),
    F64(0x0B8, progClosuresAddr, true),
    F64(0x0C0, progClosuresSize, true),
    F64(0x0C8, progClosuresTrieAddr, true),
    F64(0x0D0, progClosuresTrieSize, true),
    F32(0x0D8, platform, false),
    {0x0DC, 4, HF_BITS, false, "formatVersion", 0},
    F64(0x0E0, sharedRegionStart, true),
    F64(0x0E8, sharedRegionSize, true),
    F64(0x0F0, maxSlide, true),
    F64(0x0F8, dylibsImageArrayAddr, true),
    F64(0x100, dylibsImageArraySize, true),
    F64(0x108, dylibsTrieAddr, true),
    F64(0x110, dylibsTrieSize, true),
    F64(0x118, otherImageArrayAddr, true),
    F64(0x120, otherImageArraySize, true),
    F64(0x128, otherTrieAddr, true),
    F64(0x130, otherTrieSize, true),
    F32(0x138, mappingWithSlideOffset, true),
    F32(0x13C, mappingWithSlideCount, false),
    F64(0x140, dylibsPBLStateArrayAddrUnused, true),
    F64(0x148, dylibsPBLSetAddr, true),
    F64(0x150, programsPBLSetPoolAddr, true),
    F64(0x158, programsPBLSetPoolSize, true),
    F64(0x160, programTrieAddr, true),
    F32(0x168, programTrieSize, true),
    F32(0x16C, osVersion, true),
    F32(0x170, altPlatform, false),
    F32(0x174, altOsVersion, true),
    F64(0x178, swiftOptsOffset, true),
    F64(0x180, swiftOptsSize, true),
    F32(0x188, subCacheArrayOffset, true),
    F32(0x18C, subCacheArrayCount, false),
    {0x190, 16, HF_UUID, false, "symbolFileUUID", offsetof(dk_cache_header, symbolFileUUID)},
    F64(0x1A0, rosettaReadOnlyAddr, true),
    F64(0x1A8, rosettaReadOnlySize, true),
    F64(0x1B0, rosettaReadWriteAddr, true),
    F64(0x1B8, rosettaReadWriteSize, true),
    F32(0x1C0, imagesOffset, true),
    F32(0x1C4, imagesCount, false),
    F32(0x1C8, cacheSubType, false),
    F64(0x1D0, objcOptsOffset, true),
    F64(0x1D8, objcOptsSize, true),
    F64(0x1E0, cacheAtlasOffset, true),
    F64(0x1E8, cacheAtlasSize, true),
    F64(0x1F0, dynamicDataOffset, true),
    F64(0x1F8, dynamicDataMaxSize, true),
    F32(0x200, tproMappingsOffset, true),
    F32(0x204, tproMappingsCount, false),
    F64(0x208, functionVariantInfoAddr, true),
    F64(0x210, functionVariantInfoSize, true),
    F64(0x218, prewarmingDataOffset, true),
    F64(0x220, prewarmingDataSize, true),
};
#define NFIELDS (sizeof hdr_fields / sizeof hdr_fields[0])

/* A field is present when it lies wholly below mappingOffset. */
static bool has_field(uint32_t mapping_offset, unsigned off, unsigned size) { return off + size <= mapping_offset; }

/* The name a field had in the era of a header of length MO (what rizin and older tools print). */
static const char *era_name(const hdr_field *f, uint32_t mo)
{
    switch (f->off) {
    case 0x018: return has_field(mo, 0x1C4, 4) ? f->name : "imagesOffset";   /* table moved in dyld-940 */
    case 0x01C: return has_field(mo, 0x1C4, 4) ? f->name : "imagesCount";
    case 0x038: return has_field(mo, 0x13C, 4) ? f->name : "slideInfoOffset";/* renamed in dyld-832 */
    case 0x040: return has_field(mo, 0x13C, 4) ? f->name : "slideInfoSize";
    case 0x078: return has_field(mo, 0x1C8, 4) ? f->name : "accelerateInfoAddr"; /* dyld-421..960 */
    case 0x080: return has_field(mo, 0x1C8, 4) ? f->name : "accelerateInfoSize";
    case 0x098: return has_field(mo, 0x13C, 4) ? f->name : "dylibsImageGroupAddr"; /* dyld-519..750 */
    case 0x0A0: return has_field(mo, 0x13C, 4) ? f->name : "dylibsImageGroupSize";
    case 0x0A8: return has_field(mo, 0x13C, 4) ? f->name : "otherImageGroupAddr";
    case 0x0B0: return has_field(mo, 0x13C, 4) ? f->name : "otherImageGroupSize";
    }
    return f->name;
}

bool dk_cache_header_has(const dk_cache_header *h, const char *name)
{
    if (!h || !name) return false;
    static const struct { const char *name; unsigned off, size; } extra[] = {
        {"dylibsExpectedOnDisk", 0xDC, 4}, {"simulator", 0xDC, 4}, {"locallyBuiltCache", 0xDC, 4},
        {"builtFromChainedFixups", 0xDC, 4}, {"newFormatTLVs", 0xDC, 4}, {"bitfieldRest", 0xDC, 4},
        {"slideInfoOffset", 0x38, 8}, {"slideInfoSize", 0x40, 8}, {"accelerateInfoAddr", 0x78, 8},
        {"accelerateInfoSize", 0x80, 8}, {"dylibsImageGroupAddr", 0x98, 8}, {"dylibsImageGroupSize", 0xA0, 8},
        {"otherImageGroupAddr", 0xA8, 8}, {"otherImageGroupSize", 0xB0, 8}};
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(hdr_fields[i].name, name) == 0) return has_field(h->mappingOffset, hdr_fields[i].off, hdr_fields[i].size);
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        if (strcmp(extra[i].name, name) == 0) return has_field(h->mappingOffset, extra[i].off, extra[i].size);
    return false;
}

static void decode_header(const uint8_t *p, dk_cache_header *h)
{
    memset(h, 0, sizeof *h);
    uint32_t mo = dk_le32(p + 0x10);
    for (size_t i = 0; i < NFIELDS; i++) {
        const hdr_field *f = &hdr_fields[i];
        if (!has_field(mo, f->off, f->size)) continue;
        uint8_t *dst = (uint8_t *)h + f->member;
        switch (f->kind) {
        case HF_U32: { uint32_t v = dk_le32(p + f->off); memcpy(dst, &v, 4); break; }
        case HF_U64: { uint64_t v = dk_le64(p + f->off); memcpy(dst, &v, 8); break; }
        case HF_UUID: memcpy(dst, p + f->off, 16); break;
        case HF_MAGIC: memcpy(h->magic, p, 16); h->magic[16] = 0; break;
        case HF_BITS: {
            uint32_t w = dk_le32(p + f->off);
            h->formatVersion = w & 0xff;
            h->dylibsExpectedOnDisk = (w >> 8) & 1;
            h->simulator = (w >> 9) & 1;
            h->locallyBuiltCache = (w >> 10) & 1;
            h->builtFromChainedFixups = (w >> 11) & 1;
            h->newFormatTLVs = (w >> 12) & 1;
            h->bitfieldRest = w >> 13;
            break;
        }
        }
    }
}

dk_status dk_cache_foreach_header_field(const dk_cache *c, size_t file, dk_field_cb cb, void *ctx, dk_error *err)
{
    if (file >= c->nfiles) return dk_fail(err, DK_E_ARG, "no cache file %zu", file);
    const dk_cache_file *f = &c->files[file];
    const dk_cache_header *h = &f->header;
    for (size_t i = 0; i < NFIELDS; i++) {
        const hdr_field *hf = &hdr_fields[i];
        if (!has_field(h->mappingOffset, hf->off, hf->size)) continue;
        dk_field fld;
        memset(&fld, 0, sizeof fld);
        fld.name = era_name(hf, h->mappingOffset);
        const uint8_t *src = (const uint8_t *)h + hf->member;
        switch (hf->kind) {
        case HF_MAGIC:
            fld.kind = DK_FIELD_STRING;
            fld.s = h->magic;
            fld.slen = strlen(h->magic);
            break;
        case HF_UUID:
            fld.kind = DK_FIELD_UUID;
            fld.bytes = src;
            break;
        case HF_U32: { uint32_t v; memcpy(&v, src, 4); fld.u = v; fld.kind = hf->hex ? DK_FIELD_HEX : DK_FIELD_UINT; break; }
        case HF_U64: { uint64_t v; memcpy(&v, src, 8); fld.u = v; fld.kind = hf->hex ? DK_FIELD_HEX : DK_FIELD_UINT; break; }
        case HF_BITS: {
            const struct { const char *n; uint32_t v; } bits[] = {
                {"formatVersion", h->formatVersion}, {"dylibsExpectedOnDisk", h->dylibsExpectedOnDisk},
                {"simulator", h->simulator}, {"locallyBuiltCache", h->locallyBuiltCache},
                {"builtFromChainedFixups", h->builtFromChainedFixups}, {"newFormatTLVs", h->newFormatTLVs},
                {"bitfieldRest", h->bitfieldRest}};
            for (size_t b = 0; b < sizeof bits / sizeof bits[0]; b++) {
                dk_field bf;
                memset(&bf, 0, sizeof bf);
                bf.name = bits[b].n;
                bf.kind = DK_FIELD_UINT;
                bf.u = bits[b].v;
                if (cb(ctx, &bf)) return DK_E_STOPPED;
            }
            continue;
        }
        }
        if (cb(ctx, &fld)) return DK_E_STOPPED;
    }
    return DK_OK;
}

/* ---------------------------------------------------------------- files */

static char *own(dk_cache *c, char *s)
{
    if (!s) return NULL;
    char **n = realloc(c->owned, (c->nowned + 1) * sizeof *n);
    if (!n) {
        free(s);
        return NULL;
    }
    c->owned = n;
    c->owned[c->nowned++] = s;
    return s;
}

static dk_status map_path(const char *path, const uint8_t **data, uint64_t *size, dk_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dk_fail(err, DK_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dk_fail(err, DK_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return dk_fail(err, DK_E_IO, "%s: not a regular file", path);
    }
    *data = NULL;
    *size = (uint64_t)st.st_size;
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return dk_fail(err, DK_E_IO, "%s: cannot map: %s", path, strerror(e));
        }
        *data = p;
    }
    close(fd);
    return DK_OK;
}

const char *dk__cache_cstr(const dk_cache_file *f, uint64_t off)
{
    if (off >= f->size) return NULL;
    uint64_t n = f->size - off;
    if (n > DK_MAX_CACHE_PATH) n = DK_MAX_CACHE_PATH;
    if (!memchr(f->data + off, 0, (size_t)n)) return NULL;
    return (const char *)f->data + off;
}

static const char *file_base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Architecture from the magic: "dyld_v1" then the name right-aligned to byte 14. */
static unsigned arch_pointer_size(const char *arch)
{
    static const char *const p32[] = {"i386", "armv5", "armv6", "armv7", "armv7f", "armv7s", "armv7k", "arm64_32"};
    static const char *const p64[] = {"x86_64", "x86_64h", "arm64", "arm64e"};
    for (size_t i = 0; i < sizeof p32 / sizeof p32[0]; i++)
        if (strcmp(arch, p32[i]) == 0) return 4;
    for (size_t i = 0; i < sizeof p64 / sizeof p64[0]; i++)
        if (strcmp(arch, p64[i]) == 0) return 8;
    return 0;
}

/* Map PATH and validate its header and mapping tables; append its mappings. */
static dk_status open_file(dk_cache *c, dk_cache_file *f, const char *path, const char *suffix, bool add_mappings,
                           dk_error *err)
{
    f->path = own(c, strdup(path));
    f->suffix = own(c, strdup(suffix));
    if (!f->path || !f->suffix) return dk_fail(err, DK_E_NOMEM, "out of memory");
    f->name = file_base(f->path);
    dk_status st = map_path(path, &f->data, &f->size, err);
    if (st) return st;
    if (f->size < 0x20)
        return FAIL(err, "dyld_cache_header: file too small (%llu bytes)", (unsigned long long)f->size);
    const uint8_t *p = f->data;
    if (memcmp(p, "dyld_v1", 7) != 0 || !memchr(p, 0, 16))
        return FAIL(err, "dyld_cache_header: bad magic at offset 0 (not a dyld shared cache)");
    uint32_t mo = dk_le32(p + 0x10);
    if (mo < 0x20)
        return FAIL(err, "dyld_cache_header: mappingOffset (0x%x) smaller than the smallest header (0x20)", mo);
    if (mo > f->size)
        return FAIL(err, "dyld_cache_header: mappingOffset (0x%x) past the end of the file (0x%llx)", mo,
                    (unsigned long long)f->size);
    decode_header(p, &f->header);
    const dk_cache_header *h = &f->header;

    uint32_t n = h->mappingCount;
    if (n > DK_MAX_CACHE_MAPPINGS)
        return FAIL(err, "dyld_cache_header: mappingCount %u exceeds the limit (%u)", n, DK_MAX_CACHE_MAPPINGS);
    if (!dk_range_ok(mo, (uint64_t)n * 32, f->size))
        return FAIL(err, "dyld_cache_mapping_info[%u] at offset 0x%x extends past the end of the file (0x%llx)",
                    n, mo, (unsigned long long)f->size);
    const uint8_t *ws = NULL;
    uint32_t wn = 0;
    if (has_field(mo, 0x13C, 4) && h->mappingWithSlideCount) {
        wn = h->mappingWithSlideCount;
        if (wn != n)
            return FAIL(err, "dyld_cache_header: mappingWithSlideCount (%u) differs from mappingCount (%u)", wn, n);
        if (!dk_range_ok(h->mappingWithSlideOffset, (uint64_t)wn * 56, f->size))
            return FAIL(err, "dyld_cache_mapping_and_slide_info[%u] at offset 0x%x extends past the end of the file (0x%llx)", wn, h->mappingWithSlideOffset, (unsigned long long)f->size);
        ws = p + h->mappingWithSlideOffset;
    }
    if (!add_mappings) return DK_OK;
    dk_cache_mapping *maps = realloc(c->maps, (c->nmaps + n + 1) * sizeof *maps);
    if (!maps) return dk_fail(err, DK_E_NOMEM, "out of memory");
    c->maps = maps;
    f->first_mapping = (uint32_t)c->nmaps;
    f->mapping_count = n;
    uint32_t file_index = (uint32_t)(f - c->files);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *q = p + mo + (uint64_t)i * 32;
        dk_cache_mapping *m = &c->maps[c->nmaps++];
        memset(m, 0, sizeof *m);
        m->address = dk_le64(q);
        m->size = dk_le64(q + 8);
        m->fileOffset = dk_le64(q + 16);
        m->maxProt = dk_le32(q + 24);
        m->initProt = dk_le32(q + 28);
        m->file = file_index;
        m->index_in_file = i;
        uint64_t moff = mo + (uint64_t)i * 32;
        if (!dk_range_ok(m->fileOffset, m->size, f->size))
            return FAIL(err, "dyld_cache_mapping_info[%u] at offset 0x%llx: fileOffset+size (0x%llx+0x%llx) past the end of the file (0x%llx)", i, (unsigned long long)moff, (unsigned long long)m->fileOffset,
                        (unsigned long long)m->size, (unsigned long long)f->size);
        if (m->size && m->address + m->size < m->address)
            return FAIL(err, "dyld_cache_mapping_info[%u] at offset 0x%llx: address+size wraps around", i,
                        (unsigned long long)moff);
        if (ws) {
            const uint8_t *w = ws + (uint64_t)i * 56;
            uint64_t woff = h->mappingWithSlideOffset + (uint64_t)i * 56;
            if (dk_le64(w) != m->address || dk_le64(w + 8) != m->size || dk_le64(w + 16) != m->fileOffset)
                return FAIL(err, "dyld_cache_mapping_and_slide_info[%u] at offset 0x%llx does not describe the same range as dyld_cache_mapping_info[%u]", i, (unsigned long long)woff, i);
            m->slideInfoFileOffset = dk_le64(w + 24);
            m->slideInfoFileSize = dk_le64(w + 32);
            m->flags = dk_le64(w + 40);
        }
    }
    /* Before dyld-832 the one slide-info blob (slideInfoOffset) describes the DATA mapping, #1. */
    if (!ws && !has_field(mo, 0x13C, 4) && h->slideInfoOffsetUnused && h->slideInfoSizeUnused && n >= 2) {
        c->maps[f->first_mapping + 1].slideInfoFileOffset = h->slideInfoOffsetUnused;
        c->maps[f->first_mapping + 1].slideInfoFileSize = h->slideInfoSizeUnused;
    }
    for (uint32_t i = 0; i < n; i++) {
        dk_cache_mapping *m = &c->maps[f->first_mapping + i];
        if (!m->slideInfoFileOffset) continue;
        if (m->slideInfoFileSize < 4 || !dk_range_ok(m->slideInfoFileOffset, m->slideInfoFileSize, f->size))
            return FAIL(err, "mapping %u: slide info (offset 0x%llx, size 0x%llx) is not inside the file (0x%llx)",
                        f->first_mapping + i, (unsigned long long)m->slideInfoFileOffset,
                        (unsigned long long)m->slideInfoFileSize, (unsigned long long)f->size);
        m->slide_version = dk_le32(p + m->slideInfoFileOffset);
    }
    return DK_OK;
}

static int order_cmp(const void *a, const void *b, void *ctx)
{
    const dk_cache_mapping *m = ctx;
    uint64_t x = m[*(const uint32_t *)a].address, y = m[*(const uint32_t *)b].address;
    return x < y ? -1 : x > y;
}

/* Sort mapping indices by address and reject overlapping mappings. */
static dk_status build_order(dk_cache *c, dk_error *err)
{
    c->map_order = malloc((c->nmaps + 1) * sizeof *c->map_order);
    if (!c->map_order) return dk_fail(err, DK_E_NOMEM, "out of memory");
    c->nmap_order = 0;
    for (size_t i = 0; i < c->nmaps; i++)
        if (c->maps[i].size) c->map_order[c->nmap_order++] = (uint32_t)i;
    qsort_r(c->map_order, c->nmap_order, sizeof *c->map_order, order_cmp, c->maps);
    for (size_t i = 1; i < c->nmap_order; i++) {
        const dk_cache_mapping *a = &c->maps[c->map_order[i - 1]], *b = &c->maps[c->map_order[i]];
        if (b->address < a->address + a->size)
            return FAIL(err, "mapping %u (0x%llx-0x%llx, %s) overlaps mapping %u (0x%llx-0x%llx, %s)", c->map_order[i],
                        (unsigned long long)b->address, (unsigned long long)(b->address + b->size),
                        c->files[b->file].name, c->map_order[i - 1], (unsigned long long)a->address,
                        (unsigned long long)(a->address + a->size), c->files[a->file].name);
    }
    return DK_OK;
}

static bool uuid_zero(const uint8_t u[16])
{
    for (int i = 0; i < 16; i++)
        if (u[i]) return false;
    return true;
}

static void uuid_text(const uint8_t u[16], char s[37])
{
    snprintf(s, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", u[0], u[1], u[2], u[3], u[4],
             u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static dk_status check_uuid(const dk_cache_file *f, const uint8_t want[16], const char *what, dk_error *err)
{
    if (memcmp(f->header.uuid, want, 16) == 0) return DK_OK;
    char a[37], b[37];
    uuid_text(f->header.uuid, a);
    uuid_text(want, b);
    return FAIL(err, "%s: UUID %s does not match the main cache's %s (%s)", f->name, a, what, b);
}

/* Sub-caches (dsc_extractor's mapCacheFiles): entries with their own suffix iff the
 * header has cacheSubType (56-byte dyld_subcache_entry), else ".1", ".2", ... (24-byte v1). */
static dk_status open_subcaches(dk_cache *c, const char *base, dk_error *err)
{
    const dk_cache_file *mf = &c->files[0];
    const dk_cache_header *h = &mf->header;
    uint32_t mo = h->mappingOffset;
    if (!has_field(mo, 0x18C, 4) || h->subCacheArrayCount == 0) return DK_OK;
    uint32_t n = h->subCacheArrayCount;
    bool v2 = has_field(mo, 0x1C8, 4);
    unsigned esize = v2 ? 56 : 24;
    if (n > DK_MAX_SUBCACHES)
        return FAIL(err, "dyld_cache_header: subCacheArrayCount %u exceeds the limit (%u)", n, DK_MAX_SUBCACHES);
    if (!dk_range_ok(h->subCacheArrayOffset, (uint64_t)n * esize, mf->size))
        return FAIL(err, "%s[%u] at offset 0x%x extends past the end of the file (0x%llx)",
                    v2 ? "dyld_subcache_entry" : "dyld_subcache_entry_v1", n, h->subCacheArrayOffset,
                    (unsigned long long)mf->size);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = mf->data + h->subCacheArrayOffset + (uint64_t)i * esize;
        uint64_t eoff = h->subCacheArrayOffset + (uint64_t)i * esize;
        char suffix[40];
        if (v2) {
            const uint8_t *z = memchr(e + 24, 0, 32);
            if (!z)
                return FAIL(err, "dyld_subcache_entry[%u] at offset 0x%llx: fileSuffix is not NUL-terminated", i,
                            (unsigned long long)eoff);
            memcpy(suffix, e + 24, (size_t)(z - (e + 24)) + 1);
            if (!suffix[0] || strchr(suffix, '/'))
                return FAIL(err, "dyld_subcache_entry[%u] at offset 0x%llx: bad fileSuffix \"%s\"", i,
                            (unsigned long long)eoff, suffix);
        } else {
            snprintf(suffix, sizeof suffix, ".%u", i + 1);
        }
        size_t len = strlen(base) + strlen(suffix) + 1;
        char *path = malloc(len);
        if (!path) return dk_fail(err, DK_E_NOMEM, "out of memory");
        snprintf(path, len, "%s%s", base, suffix);
        dk_cache_file *f = &c->files[c->nfiles++];
        memset(f, 0, sizeof *f);
        dk_status st = open_file(c, f, path, suffix, true, err);
        free(path);
        if (st) {
            if (st == DK_E_IO) dk_error_prefix(err, "sub-cache %u: ", i);
            else dk_error_prefix(err, "sub-cache %s: ", f->name);
            return st;
        }
        f->vm_offset = dk_le64(e + 16);
        if ((st = check_uuid(f, e, "sub-cache entry", err))) return st;
        if (strcmp(f->header.magic, mf->header.magic) != 0)
            return FAIL(err, "%s: magic \"%s\" differs from the main cache's \"%s\"", f->name, f->header.magic,
                        mf->header.magic);
    }
    return DK_OK;
}

static dk_status open_symbols(dk_cache *c, const char *base, dk_error *err)
{
    const dk_cache_header *h = dk__main_header(c);
    if (!has_field(h->mappingOffset, 0x190, 16) || uuid_zero(h->symbolFileUUID)) return DK_OK;
    size_t len = strlen(base) + sizeof ".symbols";
    char *path = malloc(len);
    if (!path) return dk_fail(err, DK_E_NOMEM, "out of memory");
    snprintf(path, len, "%s.symbols", base);
    c->symbols = calloc(1, sizeof *c->symbols);
    if (!c->symbols) {
        free(path);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    dk_status st = open_file(c, c->symbols, path, ".symbols", false, err);
    free(path);
    if (st) {
        if (st == DK_E_IO) dk_error_prefix(err, "symbols file: ");
        else dk_error_prefix(err, "symbols file %s: ", c->symbols->name);
        return st;
    }
    return check_uuid(c->symbols, h->symbolFileUUID, "symbolFileUUID", err);
}

dk_status dk_cache_open(const char *path, dk_cache **out, dk_error *err)
{
    *out = NULL;
    if (!path) return dk_fail(err, DK_E_ARG, "no cache path");
    dk_cache *c = calloc(1, sizeof *c);
    if (!c) return dk_fail(err, DK_E_NOMEM, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    dk_status st;
    char *base = NULL;
    c->path = strdup(path);
    c->files = calloc(1, sizeof *c->files);
    if (!c->path || !c->files) {
        st = dk_fail(err, DK_E_NOMEM, "out of memory");
        goto fail;
    }
    c->nfiles = 1;
    if ((st = open_file(c, &c->files[0], path, "", true, err))) goto fail;
    const dk_cache_header *h = dk__main_header(c);
    const char *a = h->magic + 7;
    while (*a == ' ') a++;
    snprintf(c->arch_buf, sizeof c->arch_buf, "%s", a);
    c->arch = c->arch_buf;
    c->ptr_size = arch_pointer_size(c->arch);
    if (!c->ptr_size) {
        st = dk_fail(err, DK_E_UNSUPPORTED, "dyld_cache_header: unknown architecture \"%s\" in magic", c->arch);
        goto fail;
    }
    if (h->mappingCount == 0) {
        st = FAIL(err, "dyld_cache_header: mappingCount is 0");
        goto fail;
    }
    c->base = c->maps[0].address;

    /* dsc_extractor strips a trailing ".development" before naming sub-caches and .symbols. */
    base = strdup(path);
    if (!base) {
        st = dk_fail(err, DK_E_NOMEM, "out of memory");
        goto fail;
    }
    size_t bl = strlen(base), dl = strlen(".development");
    if (bl > dl && strcmp(base + bl - dl, ".development") == 0) base[bl - dl] = 0;
    if (has_field(h->mappingOffset, 0x18C, 4) && h->subCacheArrayCount) {
        uint32_t n = h->subCacheArrayCount > DK_MAX_SUBCACHES ? DK_MAX_SUBCACHES : h->subCacheArrayCount;
        dk_cache_file *files = realloc(c->files, (1 + (size_t)n) * sizeof *files);
        if (!files) {
            st = dk_fail(err, DK_E_NOMEM, "out of memory");
            goto fail;
        }
        c->files = files;
        h = dk__main_header(c);
    }
    if ((st = open_subcaches(c, base, err))) goto fail;
    if ((st = open_symbols(c, base, err))) goto fail;
    free(base);
    base = NULL;
    if ((st = build_order(c, err))) goto fail;
    if ((st = dk__cache_images_init(c, err))) goto fail;
    if ((st = dk__cache_slide_init(c, err))) goto fail;
    *out = c;
    return DK_OK;
fail:
    free(base);
    dk_cache_close(c);
    return st;
}

static void unmap_file(dk_cache_file *f)
{
    if (f->data && f->size) munmap((void *)f->data, (size_t)f->size);
    f->data = NULL;
}

void dk_cache_close(dk_cache *c)
{
    if (!c) return;
    dk__cache_slide_free(c);
    dk__cache_symbols_free(c);
    for (size_t i = 0; i < c->nfiles; i++) unmap_file(&c->files[i]);
    if (c->symbols) unmap_file(c->symbols);
    free(c->symbols);
    free(c->files);
    for (size_t i = 0; i < c->nowned; i++) free(c->owned[i]);
    free(c->owned);
    free(c->maps);
    free(c->map_order);
    free(c->images);
    free(c->texts);
    free(c->segs);
    free(c->path);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* --------------------------------------------------------------- accessors */

const dk_cache_header *dk_cache_get_header(const dk_cache *c) { return dk__main_header(c); }
const char *dk_cache_arch(const dk_cache *c) { return c->arch; }
unsigned dk_cache_pointer_size(const dk_cache *c) { return c->ptr_size; }
uint64_t dk_cache_base_address(const dk_cache *c) { return c->base; }
size_t dk_cache_file_count(const dk_cache *c) { return c->nfiles; }
const dk_cache_file *dk_cache_file_at(const dk_cache *c, size_t i) { return i < c->nfiles ? &c->files[i] : NULL; }
const dk_cache_file *dk_cache_symbols_file(const dk_cache *c) { return c->symbols; }

const dk_cache_mapping *dk_cache_mappings(const dk_cache *c, size_t *count)
{
    if (count) *count = c->nmaps;
    return c->maps;
}

long dk_cache_mapping_at(const dk_cache *c, uint64_t addr)
{
    size_t lo = 0, hi = c->nmap_order;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const dk_cache_mapping *m = &c->maps[c->map_order[mid]];
        if (addr < m->address) hi = mid;
        else if (addr - m->address >= m->size) lo = mid + 1;
        else return (long)c->map_order[mid];
    }
    return -1;
}

const uint8_t *dk_cache_read(const dk_cache *c, uint64_t addr, uint64_t size, uint64_t *avail)
{
    long i = dk_cache_mapping_at(c, addr);
    if (i < 0) return NULL;
    const dk_cache_mapping *m = &c->maps[i];
    uint64_t off = addr - m->address;
    if (!dk_range_ok(off, size, m->size)) return NULL;
    if (avail) *avail = m->size - off;
    return c->files[m->file].data + m->fileOffset + off;
}

dk_status dk_cache_vm_to_file(const dk_cache *c, uint64_t addr, size_t *file, uint64_t *offset, dk_error *err)
{
    long i = dk_cache_mapping_at(c, addr);
    if (i < 0) return dk_fail(err, DK_E_NOTFOUND, "address 0x%llx is not in any mapping", (unsigned long long)addr);
    const dk_cache_mapping *m = &c->maps[i];
    if (file) *file = m->file;
    if (offset) *offset = m->fileOffset + (addr - m->address);
    return DK_OK;
}
