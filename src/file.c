/*
 * Files: mmap, universal (fat) headers and static archives.
 * Follows <mach-o/fat.h>: fat_header {magic, nfat_arch} and fat_arch
 * {cputype, cpusubtype, offset, size, align} (fat_arch_64 adds 64-bit offset and
 * size plus a reserved word), all big-endian.
 */
#include "internal.h"
#include "macho_defs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct dk_file {
    char *name;
    const uint8_t *data;
    size_t size;
    bool mapped;          /* data came from mmap */
    uint32_t fat_magic;
    bool archive;
    dk_slice *slices;
    size_t nslices;
    char **member_names;  /* archive member names we own */
    size_t nmember_names;
};

typedef struct arch_entry {
    uint32_t cputype, cpusubtype;
    const char *name;
} arch_entry;

/* <mach/machine.h> subtypes that get their own names. */
static const arch_entry arch_table[] = {
    {CPU_TYPE_X86_64, 3, "x86_64"},
    {CPU_TYPE_X86_64, CPU_SUBTYPE_X86_64_H, "x86_64h"},
    {CPU_TYPE_I386, 3, "i386"},
    {CPU_TYPE_I386, 4, "i486"},
    {CPU_TYPE_I386, 5, "i586"},
    {CPU_TYPE_ARM64, 0, "arm64"},
    {CPU_TYPE_ARM64, 1, "arm64v8"},
    {CPU_TYPE_ARM64, CPU_SUBTYPE_ARM64E, "arm64e"},
    {CPU_TYPE_ARM64_32, 0, "arm64_32"},
    {CPU_TYPE_ARM64_32, 1, "arm64_32"},
    {CPU_TYPE_ARM, 0, "arm"},
    {CPU_TYPE_ARM, 5, "armv4t"},
    {CPU_TYPE_ARM, 6, "armv6"},
    {CPU_TYPE_ARM, 7, "armv5"},
    {CPU_TYPE_ARM, 8, "xscale"},
    {CPU_TYPE_ARM, 9, "armv7"},
    {CPU_TYPE_ARM, 10, "armv7f"},
    {CPU_TYPE_ARM, 11, "armv7s"},
    {CPU_TYPE_ARM, 12, "armv7k"},
    {CPU_TYPE_ARM, 13, "armv8"},
    {CPU_TYPE_ARM, 14, "armv6m"},
    {CPU_TYPE_ARM, 15, "armv7m"},
    {CPU_TYPE_ARM, 16, "armv7em"},
    {CPU_TYPE_POWERPC, 0, "ppc"},
    {CPU_TYPE_POWERPC, 1, "ppc601"},
    {CPU_TYPE_POWERPC, 10, "ppc7400"},
    {CPU_TYPE_POWERPC, 11, "ppc7450"},
    {CPU_TYPE_POWERPC, 100, "ppc970"},
    {CPU_TYPE_POWERPC64, 0, "ppc64"},
    {CPU_TYPE_POWERPC64, 100, "ppc970-64"},
    {CPU_TYPE_MC680x0, 1, "m68k"},
    {CPU_TYPE_MC88000, 0, "m88k"},
    {CPU_TYPE_HPPA, 0, "hppa"},
    {CPU_TYPE_SPARC, 0, "sparc"},
    {CPU_TYPE_I860, 0, "i860"},
};

/* Names for unknown cputypes are interned here ("cpu0x1234:5"), bounded. */
static const char *generic_arch(uint32_t cputype)
{
    switch (cputype) {
    case CPU_TYPE_X86_64: return "x86_64";
    case CPU_TYPE_I386: return "i386";
    case CPU_TYPE_ARM64: return "arm64";
    case CPU_TYPE_ARM64_32: return "arm64_32";
    case CPU_TYPE_ARM: return "arm";
    case CPU_TYPE_POWERPC: return "ppc";
    case CPU_TYPE_POWERPC64: return "ppc64";
    case CPU_TYPE_MC680x0: return "m68k";
    case CPU_TYPE_MC88000: return "m88k";
    case CPU_TYPE_HPPA: return "hppa";
    case CPU_TYPE_SPARC: return "sparc";
    case CPU_TYPE_I860: return "i860";
    case CPU_TYPE_VAX: return "vax";
    default: return "unknown";
    }
}

const char *dk_arch_name(uint32_t cputype, uint32_t cpusubtype)
{
    uint32_t sub = cpusubtype & ~CPU_SUBTYPE_MASK;
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (arch_table[i].cputype == cputype && arch_table[i].cpusubtype == sub) return arch_table[i].name;
    return generic_arch(cputype);
}

const char *dk_file_name(const dk_file *f) { return f ? f->name : NULL; }
const uint8_t *dk_file_data(const dk_file *f, size_t *size)
{
    if (size) *size = f->size;
    return f->data;
}
uint32_t dk_file_fat_magic(const dk_file *f) { return f->fat_magic; }
bool dk_file_is_archive(const dk_file *f) { return f->archive; }
size_t dk_file_slice_count(const dk_file *f) { return f->nslices; }
const dk_slice *dk_file_slice(const dk_file *f, size_t i) { return i < f->nslices ? &f->slices[i] : NULL; }

void dk_file_close(dk_file *f)
{
    if (!f) return;
    if (f->mapped && f->data && f->size) munmap((void *)f->data, f->size);
    for (size_t i = 0; i < f->nmember_names; i++) free(f->member_names[i]);
    free(f->member_names);
    free(f->slices);
    free(f->name);
    free(f);
}

static bool is_macho_magic(uint32_t m)
{
    return m == MH_MAGIC || m == MH_CIGAM || m == MH_MAGIC_64 || m == MH_CIGAM_64;
}

static dk_slice *add_slice(dk_vec *v)
{
    dk_slice *s = dk_vec_push(v, sizeof *s);
    if (s) memset(s, 0, sizeof *s);
    return s;
}

/* Read cputype/subtype from a thin header at P (SIZE bytes available). */
static bool thin_cpu(const uint8_t *p, size_t size, uint32_t *cputype, uint32_t *cpusubtype)
{
    if (size < 12) return false;
    uint32_t magic = dk_le32(p);
    if (!is_macho_magic(magic)) return false;
    bool be = (magic == MH_CIGAM || magic == MH_CIGAM_64);
    *cputype = dk_rd32(be, p + 4);
    *cpusubtype = dk_rd32(be, p + 8);
    return true;
}

/*
 * Static archives ("!<arch>\n", ar(5)): 60-byte member headers
 * {name[16], date[12], uid[6], gid[6], mode[8], size[10], fmag[2]="`\n"}; BSD long
 * names as "#1/<len>" with the name at the start of the member data.  Symbol
 * tables ("__.SYMDEF*", "/", "//") are skipped.  Members are 2-byte aligned.
 */
static dk_status parse_archive(dk_file *f, const uint8_t *base, uint64_t base_off, uint64_t size,
                               dk_vec *slices, dk_vec *names, const dk_slice *parent, dk_error *err)
{
    uint64_t pos = 8;
    size_t members = 0;
    while (pos < size) {
        if (size - pos < 60)
            return dk_fail(err, DK_E_MALFORMED, "archive: member header at offset 0x%llx truncated",
                           (unsigned long long)(base_off + pos));
        const uint8_t *h = base + pos;
        if (h[58] != '`' || h[59] != '\n')
            return dk_fail(err, DK_E_MALFORMED, "archive: bad member header terminator at offset 0x%llx",
                           (unsigned long long)(base_off + pos + 58));
        uint64_t msize = 0;
        for (int i = 48; i < 58 && h[i] != ' '; i++) {
            if (h[i] < '0' || h[i] > '9')
                return dk_fail(err, DK_E_MALFORMED, "archive: bad member size at offset 0x%llx",
                               (unsigned long long)(base_off + pos + 48));
            msize = msize * 10 + (uint64_t)(h[i] - '0');
        }
        uint64_t data = pos + 60;
        if (!dk_range_ok(data, msize, size))
            return dk_fail(err, DK_E_MALFORMED,
                           "archive: member at offset 0x%llx size %llu past end of archive (0x%llx)",
                           (unsigned long long)(base_off + pos), (unsigned long long)msize,
                           (unsigned long long)(base_off + size));
        char name[256];
        uint64_t namelen = 0;
        if (memcmp(h, "#1/", 3) == 0) {
            for (int i = 3; i < 16 && h[i] >= '0' && h[i] <= '9'; i++) namelen = namelen * 10 + (uint64_t)(h[i] - '0');
            if (namelen > msize)
                return dk_fail(err, DK_E_MALFORMED, "archive: long name of member at offset 0x%llx longer than member",
                               (unsigned long long)(base_off + pos));
            size_t n = namelen < sizeof name - 1 ? (size_t)namelen : sizeof name - 1;
            memcpy(name, base + data, n);
            name[n] = 0;
            name[strnlen(name, n)] = 0;
        } else {
            int n = 16;
            while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '/')) n--;
            memcpy(name, h, (size_t)n);
            name[n] = 0;
            if (n == 0 && h[0] == '/') strcpy(name, "/");
        }
        if (++members > DK_MAX_ARCHIVE_MEMBERS)
            return dk_fail(err, DK_E_LIMIT, "archive: more than %d members", DK_MAX_ARCHIVE_MEMBERS);
        bool symtab = strncmp(name, "__.SYMDEF", 9) == 0 || strcmp(name, "/") == 0 || name[0] == 0 ||
                      strcmp(name, "//") == 0;
        if (!symtab) {
            uint64_t moff = data + namelen, mlen = msize - namelen;
            dk_slice *s = add_slice(slices);
            char *copy = strdup(name);
            char **slot = copy ? dk_vec_push(names, sizeof(char *)) : NULL;
            if (!s || !slot) {
                free(copy);
                return dk_fail(err, DK_E_NOMEM, "archive: out of memory");
            }
            *slot = copy;
            s->member = copy;
            s->offset = base_off + moff;
            s->size = mlen;
            uint32_t ct, cst;
            if (thin_cpu(base + moff, (size_t)mlen, &ct, &cst)) {
                s->kind = DK_SLICE_MACHO;
                s->cputype = ct;
                s->cpusubtype = cst;
            } else {
                s->kind = DK_SLICE_OTHER;
                if (parent) {
                    s->cputype = parent->cputype;
                    s->cpusubtype = parent->cpusubtype;
                }
            }
            if (parent) {
                s->cputype = parent->cputype;
                s->cpusubtype = parent->cpusubtype;
                s->align = parent->align;
            }
            s->arch = dk_arch_name(s->cputype, s->cpusubtype);
        }
        pos = data + msize;
        pos += pos & 1;
    }
    (void)f;
    return DK_OK;
}

static dk_status parse_fat(dk_file *f, dk_vec *slices, dk_vec *names, dk_error *err)
{
    const uint8_t *p = f->data;
    bool is64 = f->fat_magic == FAT_MAGIC_64;
    uint32_t n = dk_be32(p + 4);
    size_t entsize = is64 ? 32 : 20;
    if (n == 0) return dk_fail(err, DK_E_MALFORMED, "fat header: nfat_arch is 0");
    if (n > DK_MAX_FAT_ARCHS)
        return dk_fail(err, DK_E_LIMIT, "fat header: nfat_arch %u exceeds the limit of %d", n, DK_MAX_FAT_ARCHS);
    uint64_t hdr_end = 8 + (uint64_t)n * entsize;
    if (hdr_end > f->size)
        return dk_fail(err, DK_E_MALFORMED, "fat header: %u fat_arch entries (0x%llx bytes) past end of file (0x%zx)",
                       n, (unsigned long long)hdr_end, f->size);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *a = p + 8 + (size_t)i * entsize;
        uint32_t cputype = dk_be32(a), cpusubtype = dk_be32(a + 4);
        uint64_t off = is64 ? dk_be64(a + 8) : dk_be32(a + 8);
        uint64_t size = is64 ? dk_be64(a + 16) : dk_be32(a + 12);
        uint32_t align = is64 ? dk_be32(a + 24) : dk_be32(a + 16);
        uint64_t aoff = 8 + (uint64_t)i * entsize;
        if (align > 15)
            return dk_fail(err, DK_E_MALFORMED, "fat_arch %u at offset 0x%llx: align (2^%u) too large", i,
                           (unsigned long long)aoff, align);
        if (off % (1ull << align))
            return dk_fail(err, DK_E_MALFORMED, "fat_arch %u at offset 0x%llx: offset 0x%llx not aligned to 2^%u", i,
                           (unsigned long long)aoff, (unsigned long long)off, align);
        if (off < hdr_end)
            return dk_fail(err, DK_E_MALFORMED, "fat_arch %u at offset 0x%llx: slice offset 0x%llx overlaps the fat headers",
                           i, (unsigned long long)aoff, (unsigned long long)off);
        if (!dk_range_ok(off, size, f->size))
            return dk_fail(err, DK_E_MALFORMED,
                           "fat_arch %u at offset 0x%llx: slice 0x%llx+0x%llx past end of file (0x%zx)", i,
                           (unsigned long long)aoff, (unsigned long long)off, (unsigned long long)size, f->size);
        for (uint32_t j = 0; j < i; j++) {
            const uint8_t *b = p + 8 + (size_t)j * entsize;
            uint64_t boff = is64 ? dk_be64(b + 8) : dk_be32(b + 8);
            uint64_t bsize = is64 ? dk_be64(b + 16) : dk_be32(b + 12);
            if (dk_be32(b) == cputype && (dk_be32(b + 4) & ~CPU_SUBTYPE_MASK) == (cpusubtype & ~CPU_SUBTYPE_MASK))
                return dk_fail(err, DK_E_MALFORMED, "fat_arch %u and %u at offset 0x%llx: same architecture (%s) twice", j,
                               i, (unsigned long long)aoff, dk_arch_name(cputype, cpusubtype));
            if (size && bsize && off < boff + bsize && boff < off + size)
                return dk_fail(err, DK_E_MALFORMED, "fat_arch %u and %u: slices overlap (0x%llx+0x%llx, 0x%llx+0x%llx)", j,
                               i, (unsigned long long)boff, (unsigned long long)bsize, (unsigned long long)off,
                               (unsigned long long)size);
        }
        dk_slice parent = {DK_SLICE_MACHO, cputype, cpusubtype, off, size, align, dk_arch_name(cputype, cpusubtype), NULL};
        const uint8_t *sp = p + off;
        if (size >= 8 && memcmp(sp, "!<arch>\n", 8) == 0) {
            dk_status st = parse_archive(f, sp, off, size, slices, names, &parent, err);
            if (st) return st;
            continue;
        }
        dk_slice *s = add_slice(slices);
        if (!s) return dk_fail(err, DK_E_NOMEM, "out of memory");
        *s = parent;
        uint32_t ct, cst;
        if (!thin_cpu(sp, (size_t)size, &ct, &cst)) s->kind = DK_SLICE_OTHER;
        else if (ct != cputype)
            return dk_fail(err, DK_E_MALFORMED, "fat_arch %u at offset 0x%llx: cputype 0x%x does not match the slice's mach header (0x%x)",
                           i, (unsigned long long)aoff, cputype, ct);
    }
    return DK_OK;
}

static dk_status classify(dk_file *f, dk_error *err)
{
    dk_vec slices = {0}, names = {0};
    dk_status st = DK_OK;
    if (f->size < 4) {
        st = dk_fail(err, DK_E_MALFORMED, "file is %zu bytes, too small for any magic", f->size);
        goto out;
    }
    uint32_t be_magic = dk_be32(f->data);
    if (be_magic == FAT_MAGIC || be_magic == FAT_MAGIC_64) {
        if (f->size < 8) {
            st = dk_fail(err, DK_E_MALFORMED, "fat header: truncated (file is %zu bytes)", f->size);
            goto out;
        }
        /* FAT_MAGIC collides with Java class files (0xcafebabe then a version >= 45). */
        f->fat_magic = be_magic;
        st = parse_fat(f, &slices, &names, err);
    } else if (f->size >= 8 && memcmp(f->data, "!<arch>\n", 8) == 0) {
        f->archive = true;
        st = parse_archive(f, f->data, 0, f->size, &slices, &names, NULL, err);
    } else if (is_macho_magic(dk_le32(f->data))) {
        dk_slice *s = add_slice(&slices);
        if (!s) {
            st = dk_fail(err, DK_E_NOMEM, "out of memory");
            goto out;
        }
        uint32_t ct = 0, cst = 0;
        thin_cpu(f->data, f->size, &ct, &cst);
        s->kind = DK_SLICE_MACHO;
        s->cputype = ct;
        s->cpusubtype = cst;
        s->size = f->size;
        s->arch = dk_arch_name(ct, cst);
    } else {
        st = dk_fail(err, DK_E_MALFORMED, "not a Mach-O file: unknown magic 0x%08x at offset 0", dk_le32(f->data));
    }
out:
    if (st) {
        for (size_t i = 0; i < names.len; i++) free(((char **)names.data)[i]);
        dk_vec_free(&names);
        dk_vec_free(&slices);
        return st;
    }
    f->slices = slices.data;
    f->nslices = slices.len;
    f->member_names = names.data;
    f->nmember_names = names.len;
    return DK_OK;
}

static dk_status file_new(const char *name, dk_file **out, dk_error *err)
{
    dk_file *f = calloc(1, sizeof *f);
    if (!f) return dk_fail(err, DK_E_NOMEM, "out of memory");
    f->name = strdup(name ? name : "<memory>");
    if (!f->name) {
        free(f);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    *out = f;
    return DK_OK;
}

dk_status dk_file_open_buffer(const void *data, size_t size, const char *name, dk_file **out, dk_error *err)
{
    *out = NULL;
    if (!data && size) return dk_fail(err, DK_E_ARG, "NULL buffer");
    dk_file *f;
    dk_status st = file_new(name, &f, err);
    if (st) return st;
    f->data = data;
    f->size = size;
    st = classify(f, err);
    if (st) {
        dk_file_close(f);
        return st;
    }
    *out = f;
    return DK_OK;
}

dk_status dk_file_open(const char *path, dk_file **out, dk_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dk_fail(err, DK_E_IO, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return dk_fail(err, DK_E_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return dk_fail(err, DK_E_IO, "not a regular file");
    }
    dk_file *f;
    dk_status st = file_new(path, &f, err);
    if (st) {
        close(fd);
        return st;
    }
    f->size = (size_t)sb.st_size;
    if (f->size) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            dk_file_close(f);
            return dk_fail(err, DK_E_IO, "cannot mmap: %s", strerror(e));
        }
        f->data = p;
        f->mapped = true;
    }
    close(fd);
    st = classify(f, err);
    if (st) {
        dk_file_close(f);
        return st;
    }
    *out = f;
    return DK_OK;
}

dk_status dk_file_find_arch(const dk_file *f, const char *arch, size_t *index, dk_error *err)
{
    for (size_t i = 0; i < f->nslices; i++)
        if (strcmp(f->slices[i].arch, arch) == 0) {
            *index = i;
            return DK_OK;
        }
    return dk_fail(err, DK_E_NOTFOUND, "no slice for architecture %s", arch);
}

dk_status dk_file_open_macho(const dk_file *f, size_t index, dk_macho **out, dk_error *err)
{
    *out = NULL;
    if (index >= f->nslices) return dk_fail(err, DK_E_ARG, "slice %zu out of range", index);
    const dk_slice *s = &f->slices[index];
    if (s->kind != DK_SLICE_MACHO) {
        uint32_t magic = s->size >= 4 ? dk_le32(f->data + s->offset) : 0;
        return dk_fail(err, DK_E_MALFORMED, "slice %zu (%s) at offset 0x%llx: not a Mach-O image (magic 0x%08x)", index,
                       s->arch, (unsigned long long)s->offset, magic);
    }
    return dk_macho_open(f->data + s->offset, (size_t)s->size, f->name, out, err);
}
