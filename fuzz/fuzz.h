/*
 * Shared helpers of the dyldkit fuzz targets (fuzz/fuzz_*.c).
 *
 * Each target defines LLVMFuzzerTestOneInput and is built two ways:
 *   - with clang-22 -fsanitize=fuzzer,address,undefined (make fuzz), and
 *   - with the normal compiler and fuzz/replay.c as main() (make test / make
 *     asan), which replays the seeds and fuzz/regressions/<target>/ inputs.
 * Only the public API is used, plus the contract every target checks: a
 * failing call returns a status with a non-empty, NUL-terminated message.
 */
#ifndef DYLDKIT_FUZZ_H
#define DYLDKIT_FUZZ_H

#include "dyldkit/dyldkit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Results are summed here so the compiler cannot drop the reads. */
static volatile uint64_t fz_sink;

static inline void fz_touch(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t s = 0;
    if (!b) return;
    for (size_t i = 0; i < n; i++) s += b[i];
    fz_sink += s;
}

static inline void fz_str(const char *s)
{
    if (s) fz_sink += strlen(s);
}

/* A failure must say what failed: non-empty, NUL-terminated message.  Lookups
 * (dk_trie_find, dk_macho_find_stub, ...) may report DK_E_NOTFOUND silently. */
static inline void fz_check(dk_status st, dk_error *e)
{
    if (st != DK_OK && st != DK_E_STOPPED && st != DK_E_NOTFOUND) {
        if (!memchr(e->message, 0, sizeof e->message) || !e->message[0]) {
            fprintf(stderr, "fuzz: status %d (%s) without a message\n", (int)st, dk_strerror(st));
            abort();
        }
        fz_str(e->message);
    }
    e->message[0] = 0; /* a later failure must write its own */
}

/* ---------------------------------------------------------- temporary files */

/* One private directory per process (tmpfs when available), removed at exit. */
static char fz_dir[256];
static char *fz_written[64];
static size_t fz_nwritten;

static inline void fz_cleanup(void)
{
    for (size_t i = 0; i < fz_nwritten; i++) {
        unlink(fz_written[i]);
        free(fz_written[i]);
    }
    fz_nwritten = 0;
}

static inline void fz_rmdir(void)
{
    fz_cleanup();
    if (fz_dir[0]) rmdir(fz_dir);
}

static inline const char *fz_tmpdir(void)
{
    if (fz_dir[0]) return fz_dir;
    const char *base = getenv("DK_FUZZ_TMP");
    struct stat st;
    if (!base) base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(fz_dir, sizeof fz_dir, "%s/dkfuzz-%ld", base, (long)getpid());
    if (mkdir(fz_dir, 0700) != 0 && errno != EEXIST) {
        perror(fz_dir);
        abort();
    }
    atexit(fz_rmdir);
    return fz_dir;
}

/* Write N bytes to DIR/NAME (removed by fz_cleanup); returns the path or NULL. */
static inline const char *fz_write(const char *name, const uint8_t *d, size_t n)
{
    if (fz_nwritten >= sizeof fz_written / sizeof fz_written[0]) return NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fz_tmpdir(), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return NULL;
    char *keep = strdup(path);
    if (!keep) {
        close(fd);
        unlink(path);
        return NULL;
    }
    fz_written[fz_nwritten++] = keep;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, d + off, n - off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            close(fd);
            return NULL;
        }
        off += (size_t)w;
    }
    close(fd);
    return keep;
}

/* ------------------------------------------------------------ cache files */

/*
 * A cache input is the main cache file, optionally followed by more files,
 * each preceded by FZ_FILE_SEP.  The main file is written as DIR/cache; file
 * K (K >= 1) takes the name the main header's sub-cache entry K-1 gives it
 * (its fileSuffix, or ".K" for 24-byte entries), and one file beyond the
 * entries becomes cache.symbols.  Returns the main path, NULL on failure.
 */
#define FZ_FILE_SEP "\nDKFUZZ-FILE--\n"
#define FZ_MAX_FILES 8

static inline uint32_t fz_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline const char *fz_write_cache(const uint8_t *data, size_t size)
{
    const uint8_t *part[FZ_MAX_FILES];
    size_t plen[FZ_MAX_FILES], np = 0;
    const size_t seplen = sizeof FZ_FILE_SEP - 1;
    const uint8_t *p = data, *end = data + size;
    while (np < FZ_MAX_FILES) {
        const uint8_t *q = np + 1 < FZ_MAX_FILES ? memmem(p, (size_t)(end - p), FZ_FILE_SEP, seplen) : NULL;
        part[np] = p;
        plen[np++] = q ? (size_t)(q - p) : (size_t)(end - p);
        if (!q) break;
        p = q + seplen;
    }
    const char *main_path = fz_write("cache", part[0], plen[0]);
    if (!main_path) return NULL;
    size_t next = 1;
    const uint8_t *h = part[0];
    if (np > 1 && plen[0] >= 0x20) {
        uint32_t mo = fz_le32(h + 0x10);
        if (mo > plen[0]) mo = (uint32_t)plen[0];
        if (0x18C + 4 <= mo) {
            uint32_t off = fz_le32(h + 0x188), count = fz_le32(h + 0x18C);
            bool v2 = 0x1C8 + 4 <= mo;
            unsigned esize = v2 ? 56 : 24;
            for (uint32_t i = 0; i < count && next < np; i++) {
                char name[64];
                if (v2) {
                    uint64_t eo = (uint64_t)off + (uint64_t)i * esize;
                    if (eo + esize > plen[0]) break;
                    const uint8_t *sfx = h + eo + 24;
                    const uint8_t *z = memchr(sfx, 0, 32);
                    if (!z || z == sfx || memchr(sfx, '/', (size_t)(z - sfx))) break;
                    snprintf(name, sizeof name, "cache%s", (const char *)sfx);
                } else {
                    snprintf(name, sizeof name, "cache.%u", i + 1);
                }
                if (!fz_write(name, part[next], plen[next])) return NULL;
                next++;
            }
        }
    }
    if (next < np && !fz_write("cache.symbols", part[next], plen[next])) return NULL;
    return main_path;
}

/* ------------------------------------------------------- Mach-O walkers */

static inline int fz_field_cb(void *ctx, const dk_field *f)
{
    (void)ctx;
    fz_str(f->name);
    switch (f->kind) {
    case DK_FIELD_STRING: fz_touch(f->s, f->slen); break;
    case DK_FIELD_BYTES: fz_touch(f->bytes, f->slen); break;
    case DK_FIELD_UUID: fz_touch(f->bytes, 16); break;
    case DK_FIELD_ENUM: fz_str(f->s); break;
    default: fz_sink += f->u + (uint64_t)f->i; break;
    }
    return 0;
}

static inline int fz_fixup_cb(void *ctx, const dk_fixup *f)
{
    (void)ctx;
    fz_str(f->symbol);
    fz_sink += f->address + f->target + (uint64_t)f->addend + f->raw;
    return 0;
}

/* A fixup callback that also keeps the first 16 addresses for lookups, and
 * a count and hash of every fixup's fields (to compare two walks). */
typedef struct fz_addrs {
    uint64_t a[16];
    size_t n;
    uint64_t count, hash;
} fz_addrs;

static inline uint64_t fz_mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001B3ull + (h >> 29); }

static inline int fz_collect_cb(void *ctx, const dk_fixup *f)
{
    fz_addrs *x = ctx;
    fz_fixup_cb(NULL, f);
    if (x->n < 16) x->a[x->n++] = f->address;
    uint64_t h = x->hash;
    h = fz_mix(h, (uint64_t)f->kind | (uint64_t)f->type << 8 | (uint64_t)f->width << 16 | (uint64_t)f->strong << 24 |
                      (uint64_t)f->weak_import << 25 | (uint64_t)f->auth << 26 | (uint64_t)f->symbol_flags << 32);
    h = fz_mix(h, f->address);
    h = fz_mix(h, f->target);
    h = fz_mix(h, f->raw);
    h = fz_mix(h, (uint64_t)f->addend);
    h = fz_mix(h, (uint64_t)(uint32_t)f->segment << 32 | (uint32_t)f->section);
    h = fz_mix(h, (uint64_t)f->ordinal);
    h = fz_mix(h, (uint64_t)f->lazy_offset << 32 | f->import_index);
    h = fz_mix(h, (uint64_t)f->high8 << 32 | (uint64_t)f->key << 16 | f->diversity);
    for (const char *c = f->symbol; c && *c; c++) h = fz_mix(h, (uint8_t)*c);
    x->hash = h;
    x->count++;
    return 0;
}

/* fz_write_cache, then dk_cache_open; NULL (after fz_cleanup) when either fails. */
static inline dk_cache *fz_open_cache(const uint8_t *data, size_t size)
{
    const char *path = fz_write_cache(data, size);
    dk_cache *c = NULL;
    dk_error e = {0};
    dk_status st = path ? dk_cache_open(path, &c, &e) : DK_E_IO;
    if (path) fz_check(st, &e);
    if (st) {
        fz_cleanup();
        return NULL;
    }
    return c;
}

static inline int fz_export_cb(void *ctx, const dk_export *e)
{
    (void)ctx;
    fz_str(e->name);
    fz_str(e->imported_name);
    fz_sink += e->address + e->flags;
    return 0;
}

/* Open DATA as a file (thin, universal or archive) and call FN on each of its first
 * FZ_MAX_SLICES images that parse. */
#define FZ_MAX_SLICES 8
typedef void (*fz_macho_fn)(dk_macho *m);

/* The file and slice fz_each_macho is on, for fz_reopen. */
static const dk_file *fz_cur_file;
static size_t fz_cur_slice;

/* The image FN was given, opened afresh (nothing learned by walking it kept);
 * NULL outside fz_each_macho.  Close it with dk_macho_close. */
static inline dk_macho *fz_reopen(void)
{
    dk_macho *m = NULL;
    dk_error e = {0};
    if (!fz_cur_file || dk_file_open_macho(fz_cur_file, fz_cur_slice, &m, &e)) return NULL;
    return m;
}

static inline void fz_each_macho(const uint8_t *data, size_t size, fz_macho_fn fn)
{
    dk_error e = {0};
    dk_file *f;
    dk_status st = dk_file_open_buffer(data, size, "fuzz-input", &f, &e);
    fz_check(st, &e);
    if (st) return;
    size_t ns = dk_file_slice_count(f);
    for (size_t i = 0; i < ns && i < FZ_MAX_SLICES; i++) {
        dk_macho *m;
        st = dk_file_open_macho(f, i, &m, &e);
        fz_check(st, &e);
        if (st) continue;
        fz_cur_file = f;
        fz_cur_slice = i;
        fn(m);
        fz_cur_file = NULL;
        dk_macho_close(m);
    }
    dk_file_close(f);
}

#endif
