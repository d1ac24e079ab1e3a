/*
 * Ad-hoc code signatures (src/codesign.c).
 *
 *  - exact vectors: blob sizes lld wrote for three fixtures, every header
 *    field of a signature at its cs_blobs.h offset, and page hashes against
 *    published SHA-256 values (4 KiB of zeros; "abc" as a partial last page);
 *  - byte-for-byte against ld64.lld-22: every lld-signed slice under the
 *    fixtures directory (DK_FIXTURES, default build/fixtures) is re-signed with
 *    the identifier lld chose and compared with lld's blob; then the whole
 *    file is rebuilt from an unsigned copy (LC_CODE_SIGNATURE and the blob
 *    removed, as lld's -no_adhoc_codesign lays it out) and from the signed
 *    file (signature replaced), and both must equal lld's output;
 *  - refusals: no header room, bytes that are not padding, truncated input
 *    at every length through the load commands, data after __LINKEDIT, a
 *    signature not at the end, fat and big-endian files, bad identifiers and
 *    output buffers; a refused image is left untouched.
 *
 * `test_codesign --sign IN OUT IDENTIFIER` signs one file with
 * dk_codesign_adhoc_image for tests/test_codesign.py (exit 1 and the error
 * message on failure).
 */
#include "codesign.h"
#include "sha256.h"
#include "unit.h"

#include <dirent.h>
#include <sys/stat.h>

/* ------------------------------------------------------------- file helpers */

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *q = realloc(buf, cap);
            if (!q) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = q;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    fclose(f);
    *size = len;
    return buf;
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void unhex(const char *s, uint8_t *out)
{
    for (size_t i = 0; s[2 * i]; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* What the tests read from a thin image's load commands, decoded here, not by the library. */
typedef struct img {
    bool is64;
    uint32_t filetype, ncmds, sizeofcmds;
    size_t hdr;
    uint64_t text_fileoff, text_filesize;
    size_t linkedit_lc;  /* 0 when none */
    size_t cs_lc;        /* 0 when none */
    size_t first_sect;   /* lowest section file offset */
} img;

static bool img_scan(const uint8_t *p, size_t size, img *m)
{
    memset(m, 0, sizeof *m);
    m->first_sect = SIZE_MAX;
    if (size < 28) return false;
    uint32_t magic = le32(p);
    if (magic != 0xfeedfacfu && magic != 0xfeedfaceu) return false;
    m->is64 = magic == 0xfeedfacfu;
    m->hdr = m->is64 ? 32 : 28;
    m->filetype = le32(p + 12);
    m->ncmds = le32(p + 16);
    m->sizeofcmds = le32(p + 20);
    if (m->hdr + m->sizeofcmds > size) return false;
    size_t off = m->hdr;
    for (uint32_t i = 0; i < m->ncmds; i++) {
        uint32_t cmd = le32(p + off), cmdsize = le32(p + off + 4);
        if (cmdsize < 8 || off + cmdsize > m->hdr + m->sizeofcmds) return false;
        if (cmd == 0x19 || cmd == 0x1) {
            bool s64 = cmd == 0x19;
            const char *name = (const char *)p + off + 8;
            if (strncmp(name, "__TEXT", 16) == 0) {
                m->text_fileoff = s64 ? le64(p + off + 40) : le32(p + off + 32);
                m->text_filesize = s64 ? le64(p + off + 48) : le32(p + off + 36);
            }
            if (strncmp(name, "__LINKEDIT", 16) == 0) m->linkedit_lc = off;
            uint32_t nsects = le32(p + off + (s64 ? 64 : 48));
            for (uint32_t k = 0; k < nsects; k++) {
                const uint8_t *s = p + off + (s64 ? 72 + 80 * k : 56 + 68 * k);
                uint32_t soff = le32(s + (s64 ? 48 : 40)), type = le32(s + (s64 ? 64 : 56)) & 0xff;
                uint64_t ssize = s64 ? le64(s + 40) : le32(s + 36);
                if (ssize && soff && type != 1 && type != 0xc && type != 0x12 && soff < m->first_sect) m->first_sect = soff;
            }
        }
        if (cmd == 0x1d) m->cs_lc = off;
        off += cmdsize;
    }
    return true;
}

static dk_codesign_exec img_exec(const img *m)
{
    dk_codesign_exec e = {m->text_fileoff, m->text_filesize, m->filetype == 2 ? CS_EXECSEG_MAIN_BINARY : 0};
    return e;
}

/* ------------------------------------------------------------ exact vectors */

static void test_sizes(void)
{
    /* datasize of lld's LC_CODE_SIGNATURE in three fixtures */
    CHECK_EQ_U64(dk_codesign_size(0xc1a0, "hello", 4096), 544);
    CHECK_EQ_U64(dk_codesign_size(0x41a0, "hello.x86_64.adhoc", 4096), 304);
    CHECK_EQ_U64(dk_codesign_size(0x20810, "libminic.dylib", 4096), 1184);
    /* identifier + NUL padded to 16: 15 characters fit in 16 bytes, 16 need 32 */
    CHECK_EQ_U64(dk_codesign_size(4096, "123456789012345", 4096), 112 + 16 + 32);
    CHECK_EQ_U64(dk_codesign_size(4096, "1234567890123456", 4096), 112 + 32 + 32);
    CHECK_EQ_U64(dk_codesign_size(4097, "a", 4096), 112 + 16 + 64);
    CHECK_EQ_U64(dk_codesign_size(1, "a", 4096), 112 + 16 + 32);
    CHECK_EQ_U64(dk_codesign_size(0xf0000000u, "a", 4096), 112 + 16 + 32ull * 0xf0000);
    CHECK_EQ_U64(dk_codesign_size(0xfffff000u, "a", 4096), 0); /* the 32 MiB blob would end past 4 GiB */
    /* nothing can be written */
    CHECK_EQ_U64(dk_codesign_size(0, "a", 4096), 0);
    CHECK_EQ_U64(dk_codesign_size(4096, "a", 16384), 0);
    CHECK_EQ_U64(dk_codesign_size(4096, "a", 0), 0);
    CHECK_EQ_U64(dk_codesign_size(4096, NULL, 4096), 0);
    CHECK_EQ_U64(dk_codesign_size(4096, "", 4096), 0);
    CHECK_EQ_U64(dk_codesign_size(0x100000000ull, "a", 4096), 0);
    CHECK_EQ_U64(dk_codesign_size(UINT64_MAX, "a", 4096), 0);
    CHECK_EQ_U64(dk_codesign_size(0xffffffffull, "a", 4096), 0); /* the blob would end past 4 GiB */
    char longid[DK_CODESIGN_MAX_IDENTIFIER + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    CHECK_EQ_U64(dk_codesign_size(4096, longid, 4096), 0);
    longid[DK_CODESIGN_MAX_IDENTIFIER] = 0;
    CHECK_EQ_U64(dk_codesign_size(4096, longid, 4096), 112 + 1040 + 32);
}

static void test_layout(void)
{
    /* two pages: 4 KiB of zeros, then "abc" */
    uint8_t file[4099];
    memset(file, 0, sizeof file);
    memcpy(file + 4096, "abc", 3);
    uint8_t zero_page[32], abc[32];
    unhex("ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7", zero_page);
    unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", abc);
    const char *id = "com.example.tool";                             /* 16 chars: 32 bytes with padding */
    uint64_t n = dk_codesign_size(sizeof file, id, 4096);
    CHECK_EQ_U64(n, 24 + 88 + 32 + 64);
    uint8_t out[256];
    memset(out, 0xee, sizeof out);
    dk_codesign_exec ex = {0x0, 0x4000, CS_EXECSEG_MAIN_BINARY};
    dk_error e = {0};
    CHECK(dk_codesign_write(file, sizeof file, id, &ex, out, sizeof out, &e) == DK_OK);
    /* CS_SuperBlob, CS_BlobIndex, 4 bytes of padding */
    CHECK_EQ_U64(be32(out + 0), 0xfade0cc0u);
    CHECK_EQ_U64(be32(out + 4), n);
    CHECK_EQ_U64(be32(out + 8), 1);
    CHECK_EQ_U64(be32(out + 12), 0);
    CHECK_EQ_U64(be32(out + 16), 24);
    CHECK_EQ_U64(be32(out + 20), 0);
    const uint8_t *cd = out + 24;
    CHECK_EQ_U64(be32(cd + 0), 0xfade0c02u);
    CHECK_EQ_U64(be32(cd + 4), n - 24);
    CHECK_EQ_U64(be32(cd + 8), 0x20400);
    CHECK_EQ_U64(be32(cd + 12), 0x20002);              /* CS_ADHOC | CS_LINKER_SIGNED */
    CHECK_EQ_U64(be32(cd + 16), 88 + 32);              /* hashOffset */
    CHECK_EQ_U64(be32(cd + 20), 88);                   /* identOffset */
    CHECK_EQ_U64(be32(cd + 24), 0);                    /* nSpecialSlots */
    CHECK_EQ_U64(be32(cd + 28), 2);                    /* nCodeSlots */
    CHECK_EQ_U64(be32(cd + 32), sizeof file);          /* codeLimit */
    CHECK_EQ_U64(cd[36], 32);
    CHECK_EQ_U64(cd[37], 2);
    CHECK_EQ_U64(cd[38], 0);
    CHECK_EQ_U64(cd[39], 12);
    for (int k = 40; k < 64; k++) CHECK_EQ_U64(cd[k], 0); /* spare2, scatter, team, spare3, codeLimit64 */
    CHECK_EQ_U64(be64(cd + 64), 0);
    CHECK_EQ_U64(be64(cd + 72), 0x4000);
    CHECK_EQ_U64(be64(cd + 80), 1);
    CHECK(memcmp(cd + 88, id, 16) == 0);
    for (int k = 104; k < 120; k++) CHECK_EQ_U64(cd[k], 0);
    CHECK(memcmp(cd + 120, zero_page, 32) == 0);
    CHECK(memcmp(cd + 152, abc, 32) == 0);
    for (size_t k = n; k < sizeof out; k++) CHECK_EQ_U64(out[k], 0); /* the rest of the room is zeroed */

    /* no exec segment: zeros; the same hashes */
    uint8_t out2[256];
    CHECK(dk_codesign_write(file, sizeof file, id, NULL, out2, n, &e) == DK_OK);
    CHECK(memcmp(out2 + 24 + 64, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24) == 0);
    CHECK(memcmp(out2 + 24 + 120, zero_page, 32) == 0);

    /* refusals */
    CHECK(dk_codesign_write(file, sizeof file, id, &ex, out, n - 1, &e) == DK_E_ARG);
    CHECK(strstr(e.message, "needed") != NULL);
    CHECK(dk_codesign_write(file, sizeof file, "", &ex, out, sizeof out, &e) == DK_E_ARG);
    CHECK(dk_codesign_write(file, sizeof file, NULL, &ex, out, sizeof out, &e) == DK_E_ARG);
    CHECK(dk_codesign_write(NULL, sizeof file, id, &ex, out, sizeof out, &e) == DK_E_ARG);
    CHECK(dk_codesign_write(file, sizeof file, id, &ex, NULL, sizeof out, &e) == DK_E_ARG);
    CHECK(dk_codesign_write(file, 0, id, &ex, out, sizeof out, &e) == DK_E_ARG);
    CHECK(dk_codesign_write(file, 0x100000000ull, id, &ex, out, sizeof out, &e) == DK_E_LIMIT);
    /* the output may follow the signed bytes in one buffer, but not overlap them */
    uint8_t both[4096 + 256];
    memset(both, 0, 4096);
    CHECK(dk_codesign_write(both, 4096, "a", NULL, both + 4096, 256, &e) == DK_OK);
    CHECK(memcmp(both + 4096 + 24 + 88 + 16, zero_page, 32) == 0);
    CHECK(dk_codesign_write(both, 4096, "a", NULL, both + 4000, 256, &e) == DK_E_ARG);
    CHECK(strstr(e.message, "overlaps") != NULL);
}

/* ----------------------------------------------------------------- fixtures */

/* Unsigned copy of a signed thin image, as lld lays one out: LC_CODE_SIGNATURE
 * removed from the end of the load commands, the file cut at dataoff and
 * __LINKEDIT's filesize and vmsize ending there. */
static uint8_t *strip_signature(const uint8_t *p, size_t size, const img *m, size_t *out_size)
{
    uint32_t dataoff = le32(p + m->cs_lc + 8);
    if (m->cs_lc + 16 != m->hdr + m->sizeofcmds || dataoff > size) return NULL;
    uint8_t *q = malloc(dataoff);
    if (!q) return NULL;
    memcpy(q, p, dataoff);
    memset(q + m->cs_lc, 0, 16);
    put32(q + 16, m->ncmds - 1);
    put32(q + 20, m->sizeofcmds - 16);
    size_t le = m->linkedit_lc;
    if (m->is64) {
        uint64_t fs = dataoff - le64(q + le + 40);
        put64(q + le + 32, fs);
        put64(q + le + 48, fs);
    } else {
        uint32_t fs = dataoff - le32(q + le + 32);
        put32(q + le + 28, fs);
        put32(q + le + 36, fs);
    }
    *out_size = dataoff;
    return q;
}

typedef struct fixture_stats {
    int blobs;      /* lld blobs reproduced byte for byte */
    int resigned;   /* whole files re-signed in place, identical */
    int restored;   /* whole files signed from an unsigned copy, identical */
} fixture_stats;

static void check_slice(const char *path, const uint8_t *p, size_t size, fixture_stats *st)
{
    img m;
    if (!img_scan(p, size, &m) || !m.cs_lc || !m.linkedit_lc) return;
    uint32_t dataoff = le32(p + m.cs_lc + 8), datasize = le32(p + m.cs_lc + 12);
    if (dataoff > size || datasize > size - dataoff || datasize < 24 + 88 + 1) {
        fprintf(stderr, "%s: bad LC_CODE_SIGNATURE\n", path);
        CHECK(0);
        return;
    }
    const uint8_t *blob = p + dataoff, *cd = blob + 24;
    char ident[DK_CODESIGN_MAX_IDENTIFIER + 1];
    uint32_t io = be32(cd + 20);
    size_t il = io < datasize - 24 ? strnlen((const char *)cd + io, datasize - 24 - io) : 0;
    if (il == 0 || il > DK_CODESIGN_MAX_IDENTIFIER) {
        fprintf(stderr, "%s: no identifier in lld's CodeDirectory\n", path);
        CHECK(0);
        return;
    }
    memcpy(ident, cd + io, il);
    ident[il] = 0;

    /* 1. the blob alone */
    CHECK_EQ_U64(dk_codesign_size(dataoff, ident, 4096), datasize);
    uint8_t *out = malloc(datasize);
    dk_codesign_exec ex = img_exec(&m);
    dk_error e = {0};
    if (out && dk_codesign_write(p, dataoff, ident, &ex, out, datasize, &e) == DK_OK && memcmp(out, blob, datasize) == 0) {
        st->blobs++;
    } else {
        fprintf(stderr, "%s: signature differs from lld's (%s)\n", path, e.message);
        CHECK(0);
    }
    free(out);

    /* 2. the signed file, signature replaced */
    uint8_t *copy = malloc(size);
    size_t csize = size;
    if (copy) {
        memcpy(copy, p, size);
        dk_status s = dk_codesign_adhoc_image(&copy, &csize, ident, &e);
        if (s == DK_OK && csize == size && memcmp(copy, p, size) == 0) {
            st->resigned++;
        } else {
            fprintf(stderr, "%s: re-signed file differs from lld's (%s)\n", path, s == DK_OK ? "bytes" : e.message);
            CHECK(0);
        }
        free(copy);
    }

    /* 3. an unsigned copy, signed */
    size_t usize;
    uint8_t *u = strip_signature(p, size, &m, &usize);
    if (!u) {
        fprintf(stderr, "%s: LC_CODE_SIGNATURE is not the last load command\n", path);
        CHECK(0);
        return;
    }
    dk_status s = dk_codesign_adhoc_image(&u, &usize, ident, &e);
    if (s == DK_OK && usize == size && memcmp(u, p, size) == 0) {
        st->restored++;
    } else {
        fprintf(stderr, "%s: signing the unsigned copy differs from lld's file (%s)\n", path,
                s == DK_OK ? "bytes" : e.message);
        CHECK(0);
    }
    free(u);
}

static void check_file(const char *path, fixture_stats *st)
{
    size_t size;
    uint8_t *p = read_file(path, &size);
    if (!p) return;
    if (size >= 8 && (be32(p) == 0xcafebabeu || be32(p) == 0xcafebabfu)) {
        bool f64 = be32(p) == 0xcafebabfu;
        uint32_t n = be32(p + 4);
        size_t esz = f64 ? 32 : 20;
        for (uint32_t i = 0; i < n && i < 64 && 8 + (i + 1) * esz <= size; i++) {
            const uint8_t *a = p + 8 + i * esz;
            uint64_t off = f64 ? be64(a + 8) : be32(a + 8), sz = f64 ? be64(a + 16) : be32(a + 12);
            if (off <= size && sz <= size - off) check_slice(path, p + off, (size_t)sz, st);
        }
    } else {
        check_slice(path, p, size, st);
    }
    free(p);
}

static void walk(const char *dir, int depth, fixture_stats *st)
{
    if (depth > 8) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (lstat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) walk(path, depth + 1, st);
        else if (S_ISREG(sb.st_mode)) check_file(path, st);
    }
    closedir(d);
}

static const char *fixtures_dir(void)
{
    const char *d = getenv("DK_FIXTURES");
    return d && *d ? d : "build/fixtures";
}

static void test_fixtures(void)
{
    fixture_stats st = {0, 0, 0};
    walk(fixtures_dir(), 0, &st);
    printf("lld-signed slices: %d blobs identical, %d files re-signed identically, %d unsigned copies signed "
           "identically\n", st.blobs, st.resigned, st.restored);
    /* every arm64 macOS fixture is signed by lld: there are dozens */
    CHECK(st.blobs >= 30);
    CHECK(st.blobs == st.resigned && st.blobs == st.restored);
}

/* --------------------------------------------------------------- refusals */

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (q && n) memcpy(q, p, n);
    return q;
}

/* Sign a copy of P[0, N): the status, and a check that a refusal changed nothing. */
static dk_status try_sign(const uint8_t *p, size_t n, const char *ident, dk_error *e)
{
    uint8_t *q = dup_bytes(p, n);
    size_t qn = n;
    if (!q) return DK_E_NOMEM;
    dk_status s = dk_codesign_adhoc_image(&q, &qn, ident, e);
    if (s != DK_OK) {
        CHECK(qn == n);
        CHECK(n == 0 || memcmp(q, p, n) == 0);
    }
    free(q);
    return s;
}

static void test_refusals(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/misc/hello.arm64.unsigned", fixtures_dir());
    size_t size;
    uint8_t *p = read_file(path, &size);
    CHECK(p != NULL);
    if (!p) return;
    img m;
    CHECK(img_scan(p, size, &m));
    CHECK(m.cs_lc == 0 && m.linkedit_lc != 0);
    size_t lc_end = m.hdr + m.sizeofcmds;
    dk_error e = {0};

    /* signs as it is */
    CHECK(try_sign(p, size, "hello", &e) == DK_OK);

    /* bad identifiers */
    CHECK(try_sign(p, size, "", &e) == DK_E_ARG);
    CHECK(try_sign(p, size, NULL, &e) == DK_E_ARG);
    CHECK(strstr(e.message, "identifier") != NULL);

    /* a truncated file, cut anywhere through the load commands and into __LINKEDIT */
    int bad = 0;
    for (size_t n = 0; n < size; n += n < lc_end + 64 ? 1 : 97) {
        dk_status s = try_sign(p, n, "hello", &e);
        if (s == DK_OK) bad++;
    }
    CHECK_EQ_U64(bad, 0);
    CHECK(try_sign(p, 20, "hello", &e) == DK_E_MALFORMED);
    CHECK(strstr(e.message, "truncated") != NULL);
    CHECK(try_sign(p, size - 1, "hello", &e) == DK_E_MALFORMED);
    CHECK(strstr(e.message, "__LINKEDIT") != NULL);

    /* bytes after __LINKEDIT */
    uint8_t *q = malloc(size + 16);
    memcpy(q, p, size);
    memset(q + size, 0, 16);
    CHECK(try_sign(q, size + 16, "hello", &e) == DK_E_UNSUPPORTED);
    CHECK(strstr(e.message, "after the end of __LINKEDIT") != NULL);
    free(q);

    /* no header room: a load command that fills the padding up to the first section */
    CHECK(m.first_sect != SIZE_MAX && m.first_sect > lc_end + 16);
    q = dup_bytes(p, size);
    size_t fill = (m.first_sect - lc_end) & ~(size_t)7;
    put32(q + lc_end, 0x8); /* LC_IDENT, obsolete and never read */
    put32(q + lc_end + 4, (uint32_t)fill);
    put32(q + 16, m.ncmds + 1);
    put32(q + 20, m.sizeofcmds + (uint32_t)fill);
    CHECK(try_sign(q, size, "hello", &e) == DK_E_UNSUPPORTED);
    CHECK(strstr(e.message, "no room in the header for LC_CODE_SIGNATURE") != NULL);
    CHECK(strstr(e.message, "section __TEXT,__text") != NULL);
    /* exactly 16 bytes left: signs */
    put32(q + lc_end + 4, (uint32_t)(fill - 16));
    put32(q + 20, m.sizeofcmds + (uint32_t)fill - 16);
    CHECK(try_sign(q, size, "hello", &e) == DK_OK);
    free(q);

    /* header padding that is not zero */
    q = dup_bytes(p, size);
    q[lc_end + 9] = 0x41;
    CHECK(try_sign(q, size, "hello", &e) == DK_E_UNSUPPORTED);
    CHECK(strstr(e.message, "not padding") != NULL);
    free(q);

    /* sizeofcmds that the load commands do not fill */
    q = dup_bytes(p, size);
    put32(q + 20, m.sizeofcmds + 8);
    CHECK(try_sign(q, size, "hello", &e) == DK_E_MALFORMED);
    put32(q + 20, 0xfffffff0u);
    CHECK(try_sign(q, size, "hello", &e) == DK_E_MALFORMED);
    free(q);

    /* a cmdsize of 0 */
    q = dup_bytes(p, size);
    put32(q + m.hdr + 4, 0);
    CHECK(try_sign(q, size, "hello", &e) == DK_E_MALFORMED);
    CHECK(strstr(e.message, "cmdsize") != NULL);
    free(q);

    /* wrong magic, big-endian, fat */
    uint8_t junk[64] = {0};
    CHECK(try_sign(junk, sizeof junk, "a", &e) == DK_E_MALFORMED);
    q = dup_bytes(p, size);
    put32(q, 0xcffaedfeu);
    CHECK(try_sign(q, size, "a", &e) == DK_E_UNSUPPORTED);
    CHECK(strstr(e.message, "big-endian") != NULL);
    q[0] = 0xca; q[1] = 0xfe; q[2] = 0xba; q[3] = 0xbe;
    CHECK(try_sign(q, size, "a", &e) == DK_E_ARG);
    CHECK(strstr(e.message, "universal") != NULL);
    free(q);

    /* no __LINKEDIT */
    q = dup_bytes(p, size);
    memcpy(q + m.linkedit_lc + 8, "__LINKEDIX", 10);
    CHECK(try_sign(q, size, "a", &e) == DK_E_UNSUPPORTED);
    CHECK(strstr(e.message, "no __LINKEDIT") != NULL);
    free(q);

    /* an existing signature that is not the last thing in __LINKEDIT */
    uint8_t *s = dup_bytes(p, size);
    size_t ssize = size;
    CHECK(dk_codesign_adhoc_image(&s, &ssize, "hello", &e) == DK_OK);
    img sm;
    CHECK(img_scan(s, ssize, &sm) && sm.cs_lc);
    put32(s + sm.cs_lc + 8, le32(s + sm.cs_lc + 8) - 32);
    CHECK(try_sign(s, ssize, "hello", &e) == DK_E_UNSUPPORTED);
    CHECK(strstr(e.message, "not at the end of __LINKEDIT") != NULL);
    /* an empty LC_CODE_SIGNATURE (dataoff 0, datasize 0) is filled in place */
    size_t base = le32(s + sm.cs_lc + 8) + 32;
    put32(s + sm.cs_lc + 8, 0);
    put32(s + sm.cs_lc + 12, 0);
    uint64_t lefs = base - le64(s + sm.linkedit_lc + 40);
    put64(s + sm.linkedit_lc + 48, lefs);
    uint8_t *t = dup_bytes(s, base);
    size_t tsize = base;
    CHECK(dk_codesign_adhoc_image(&t, &tsize, "hello", &e) == DK_OK);
    CHECK_EQ_U64(tsize, ssize);
    CHECK_EQ_U64(le32(t + 16), sm.ncmds);
    CHECK_EQ_U64(le32(t + sm.cs_lc + 8), base);
    free(t);
    free(s);

    /* a replaced signature shrinks the file when the identifier gets shorter */
    s = dup_bytes(p, size);
    ssize = size;
    CHECK(dk_codesign_adhoc_image(&s, &ssize, "a-rather-longer-identifier-than-before", &e) == DK_OK);
    size_t long_size = ssize;
    CHECK(dk_codesign_adhoc_image(&s, &ssize, "h", &e) == DK_OK);
    CHECK(ssize < long_size);
    CHECK_EQ_U64(ssize, size + dk_codesign_size((size + 15) & ~(size_t)15, "h", 4096) + (((size + 15) & ~(size_t)15) - size));
    free(s);

    /* __LINKEDIT's vmsize: lld's (== filesize) follows the filesize; ld64's whole pages are kept when they
     * still cover the file data, else rounded up to 16 KiB pages (arm64) */
    uint64_t le_fs = le64(p + m.linkedit_lc + 48);
    uint64_t new_fs = ((size + 15) & ~(size_t)15) + dk_codesign_size((size + 15) & ~(size_t)15, "hello", 4096) -
                      le64(p + m.linkedit_lc + 40);
    CHECK(le64(p + m.linkedit_lc + 32) == le_fs && new_fs < 0x4000);
    struct { uint64_t vmsize, want; } vm[] = {{0x4000, 0x4000}, {0x1000, 0x1000}, {le_fs + 16, 0x4000}};
    for (size_t k = 0; k < sizeof vm / sizeof vm[0]; k++) {
        s = dup_bytes(p, size);
        ssize = size;
        put64(s + m.linkedit_lc + 32, vm[k].vmsize);
        CHECK(dk_codesign_adhoc_image(&s, &ssize, "hello", &e) == DK_OK);
        CHECK_EQ_U64(le64(s + m.linkedit_lc + 48), new_fs);
        CHECK_EQ_U64(le64(s + m.linkedit_lc + 32), vm[k].want);
        free(s);
    }
    /* ... unless that runs into the next segment: move __DATA 8 KiB after __LINKEDIT */
    q = dup_bytes(p, size);
    put64(q + m.linkedit_lc + 32, le_fs + 16);
    size_t data_lc = 0;
    for (size_t off = m.hdr; off < lc_end; off += le32(q + off + 4))
        if (le32(q + off) == 0x19 && strncmp((const char *)q + off + 8, "__DATA", 16) == 0) data_lc = off;
    CHECK(data_lc != 0);
    put64(q + data_lc + 24, le64(q + m.linkedit_lc + 24) + 0x2000);
    CHECK(try_sign(q, size, "hello", &e) == DK_E_UNSUPPORTED);
    CHECK(strstr(e.message, "segment __DATA starts at") != NULL);
    free(q);

    /* __LINKEDIT that is not the last segment in the file */
    q = dup_bytes(p, size);
    put64(q + m.linkedit_lc + 40, 0x100);
    put64(q + m.linkedit_lc + 48, size - 0x100);
    CHECK(try_sign(q, size, "a", &e) == DK_E_UNSUPPORTED);
    CHECK(strstr(e.message, "not the last segment") != NULL);
    free(q);
    free(p);
}

/* A 32-bit image (arm64_32): LC_SEGMENT fields, and the same layout rules. */
static void test_32bit(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/misc/arm64_32/hello", fixtures_dir());
    size_t size;
    uint8_t *p = read_file(path, &size);
    CHECK(p != NULL);
    if (!p) return;
    img m;
    CHECK(img_scan(p, size, &m) && !m.is64);
    /* signed by lld already (checked byte for byte by test_fixtures); sign an unsigned copy with another name */
    size_t usize = size;
    uint8_t *u = m.cs_lc ? strip_signature(p, size, &m, &usize) : dup_bytes(p, size);
    dk_error e = {0};
    CHECK(u && dk_codesign_adhoc_image(&u, &usize, "other", &e) == DK_OK);
    img um;
    CHECK(img_scan(u, usize, &um) && um.cs_lc);
    uint32_t dataoff = le32(u + um.cs_lc + 8), datasize = le32(u + um.cs_lc + 12);
    CHECK_EQ_U64(dataoff % 16, 0);
    CHECK_EQ_U64((uint64_t)dataoff + datasize, usize);
    CHECK_EQ_U64(le32(u + um.linkedit_lc + 32) + le32(u + um.linkedit_lc + 36), usize);
    CHECK(le32(u + um.linkedit_lc + 28) >= le32(u + um.linkedit_lc + 36));
    CHECK(strcmp((const char *)u + dataoff + 24 + 88, "other") == 0);
    free(u);
    free(p);
}

/* ----------------------------------------------------------- --sign mode */

static int sign_one(const char *in, const char *outpath, const char *ident)
{
    size_t size;
    uint8_t *p = read_file(in, &size);
    if (!p) {
        fprintf(stderr, "%s: cannot read\n", in);
        return 2;
    }
    dk_error e = {0};
    if (dk_codesign_adhoc_image(&p, &size, ident, &e) != DK_OK) {
        fprintf(stderr, "%s: %s\n", in, e.message);
        free(p);
        return 1;
    }
    FILE *f = fopen(outpath, "wb");
    bool ok = f && fwrite(p, 1, size, f) == size;
    if (f && fclose(f) != 0) ok = false;
    free(p);
    if (!ok) {
        fprintf(stderr, "%s: cannot write\n", outpath);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--sign") == 0) return sign_one(argv[2], argv[3], argv[4]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--sign IN OUT IDENTIFIER]\n", argv[0]);
        return 2;
    }
    test_sizes();
    test_layout();
    test_fixtures();
    test_refusals();
    test_32bit();
    return unit_finish("test_codesign");
}
