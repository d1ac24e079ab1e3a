/*
 * The extractor's driver: copy an image's segments out of the cache (pointers
 * decoded from slide info), then run the passes -- pointer classification
 * (extract_ptrs.c), Objective-C de-uniquing (extract_objc.c), stubs and call
 * sites (extract_code.c), LINKEDIT and the file (extract_linkedit.c) -- and
 * write the result to a temporary file renamed into place when complete
 * (an unnamed O_TMPFILE on Linux, so that even a killed process leaves no
 * partial file behind).
 */
#include "codesign.h"
#include "extract_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------- the context */

dk_status dk_extractor_new(dk_cache *c, dk_extractor **out, dk_error *err)
{
    *out = NULL;
    dk_extractor *x = calloc(1, sizeof *x);
    if (!x) return dk_fail(err, DK_E_NOMEM, "out of memory");
    x->c = c;
    dk_cache_images(c, &x->nimages);
    x->exports = calloc(x->nimages ? x->nimages : 1, sizeof *x->exports);
    if (!x->exports) {
        free(x);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    pthread_mutex_init(&x->lock, NULL);
    /* the shared selector strings (ObjC optimisation header), when the cache says */
    if (dk_cache_objc_opt_info(c, &x->objc, NULL) == DK_OK) {
        x->has_objc = true;
        if (x->objc.selector_base) {
            x->selbuf_lo = x->objc.selector_base;
            x->selbuf_hi = x->objc.relativeMethodSelectorBufferSize ? x->objc.selector_base + x->objc.relativeMethodSelectorBufferSize
                                                                    : x->objc.selector_base;
        }
    }
    x->objc_done = true;
    *out = x;
    return DK_OK;
}

void dk_extractor_close(dk_extractor *x)
{
    if (!x) return;
    for (size_t i = 0; i < x->nimages; i++) {
        free(x->exports[i].v);
        dk_strpool_free(&x->exports[i].names);
    }
    free(x->exports);
    free(x->uses);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

/* ------------------------------------------------------------- helpers */

int x_seg_of(const xstate *s, uint64_t a)
{
    for (size_t i = 0; i < s->nsegs; i++)
        if ((int)i != s->linkedit && a >= s->segs[i].vmaddr && a - s->segs[i].vmaddr < s->segs[i].vmsize) return (int)i;
    return -1;
}

bool x_in_image(const xstate *s, uint64_t a)
{
    if (x_seg_of(s, a) >= 0) return true;
    /* one past the end of a segment (section-end symbols) */
    for (size_t i = 0; i < s->nsegs; i++)
        if ((int)i != s->linkedit && a == s->segs[i].vmaddr + s->segs[i].vmsize) return true;
    return false;
}

uint8_t *x_at(xstate *s, uint64_t a, uint64_t size)
{
    int i = x_seg_of(s, a);
    if (i < 0 || !s->segs[i].data) return NULL;
    if (!dk_range_ok(a - s->segs[i].vmaddr, size, s->segs[i].vmsize)) return NULL;
    return s->segs[i].data + (a - s->segs[i].vmaddr);
}

dk_status x_add_fix(xstate *s, const xfix *f)
{
    xfix *d = dk_vec_push(&s->fixes, sizeof *d);
    if (!d) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
    *d = *f;
    return DK_OK;
}

static int fix_addr_cmp(const void *a, const void *b)
{
    const xfix *x = a, *y = b;
    if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
    return x->kind - y->kind;
}

void x_sort_fixes(xstate *s)
{
    if (s->fixes.len) qsort(s->fixes.data, s->fixes.len, sizeof(xfix), fix_addr_cmp);
}

xfix *x_fixes_at(xstate *s, uint64_t addr, size_t *count)
{
    xfix *fx = s->fixes.data;
    size_t lo = 0, hi = s->fixes.len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fx[mid].addr < addr) lo = mid + 1;
        else hi = mid;
    }
    size_t n = 0;
    while (lo + n < s->fixes.len && fx[lo + n].addr == addr) n++;
    *count = n;
    return n ? &fx[lo] : NULL;
}

xfix *x_bind_at(xstate *s, uint64_t addr)
{
    size_t n;
    xfix *f = x_fixes_at(s, addr, &n);
    for (size_t i = 0; i < n; i++)
        if (f[i].kind != XF_REBASE) return &f[i];
    return NULL;
}

/* Which dependency (ordinal) reaches each cache image through LC_REEXPORT_DYLIB chains. */
static dk_status compute_reach(xstate *s)
{
    size_t n;
    const dk_cache_image *imgs = dk_cache_images(s->c, &n);
    s->reach = calloc(n ? n : 1, sizeof *s->reach);
    int *queue = malloc(sizeof(int) * (n ? n : 1));
    if (!s->reach || !queue) {
        free(queue);
        return dk_fail(s->err, DK_E_NOMEM, "out of memory");
    }
    size_t nd;
    const dk_dylib *d = dk_macho_dylibs(s->m, &nd);
    /* breadth first: direct dependencies, then what each re-exports */
    size_t qh = 0, qt = 0;
    for (size_t k = 0; k < nd; k++) {
        size_t j;
        if (dk_cache_find_image(s->c, d[k].name, &j, NULL) != DK_OK || s->reach[j]) continue;
        s->reach[j] = (int)k + 1;
        queue[qt++] = (int)j;
    }
    dk_status st = DK_OK;
    while (qh < qt && !st) {
        int j = queue[qh++];
        dk_macho *dm;
        if (dk_cache_open_image(s->c, (size_t)j, &dm, NULL) != DK_OK) continue;
        size_t dn;
        const dk_dylib *dd = dk_macho_dylibs(dm, &dn);
        for (size_t k = 0; k < dn; k++) {
            if (dd[k].kind != DK_DYLIB_REEXPORT) continue;
            size_t r;
            if (dk_cache_find_image(s->c, dd[k].name, &r, NULL) != DK_OK || s->reach[r]) continue;
            s->reach[r] = s->reach[j];
            if (qt < n) queue[qt++] = (int)r;
        }
        dk_macho_close(dm);
    }
    (void)imgs;
    free(queue);
    return st;
}

int x_ordinal_for(xstate *s, size_t j)
{
    if (j == s->index) return 0;
    return s->reach[j] ? s->reach[j] : -2;
}

static dk_status copy_segments(xstate *s)
{
    size_t n;
    const dk_segment *segs = dk_macho_segments(s->m, &n);
    if (n + 2 > XMAX_SEGS) return dk_fail(s->err, DK_E_LIMIT, "image has %zu segments (at most %d)", n, XMAX_SEGS - 2);
    s->linkedit = -1;
    for (size_t i = 0; i < n; i++) {
        xseg *g = &s->segs[s->nsegs++];
        memset(g, 0, sizeof *g);
        memcpy(g->name, segs[i].segname, 17);
        g->src = (int)i;
        g->vmaddr = segs[i].vmaddr;
        g->vmsize = segs[i].vmsize;
        g->maxprot = segs[i].maxprot;
        g->initprot = segs[i].initprot;
        g->flags = segs[i].flags;
        if (strcmp(segs[i].segname, "__LINKEDIT") == 0) {
            s->linkedit = (int)i;
            continue;
        }
        if (g->vmsize > (1ull << 32))
            return dk_fail(s->err, DK_E_LIMIT, "segment %s is %llu bytes", g->name, (unsigned long long)g->vmsize);
        g->data = calloc(1, g->vmsize ? g->vmsize : 1);
        if (!g->data) return dk_fail(s->err, DK_E_NOMEM, "out of memory for segment %s", g->name);
        uint64_t fs = segs[i].filesize < g->vmsize ? segs[i].filesize : g->vmsize;
        if (fs) {
            const uint8_t *p = dk_macho_read(s->m, segs[i].vmaddr, fs);
            if (!p)
                return dk_fail(s->err, DK_E_MALFORMED, "segment %s (0x%llx+0x%llx) is not in the cache's mappings", g->name,
                               (unsigned long long)segs[i].vmaddr, (unsigned long long)fs);
            memcpy(g->data, p, fs);
        }
    }
    if (s->linkedit < 0) return dk_fail(s->err, DK_E_MALFORMED, "image has no __LINKEDIT segment");
    if (s->linkedit != (int)s->nsegs - 1) return dk_fail(s->err, DK_E_UNSUPPORTED, "__LINKEDIT is not the image's last segment");
    return DK_OK;
}

static void free_state(xstate *s)
{
    for (size_t i = 0; i < s->nsegs; i++) free(s->segs[i].data);
    dk_vec_free(&s->fixes);
    dk_strpool_free(&s->strings);
    dk_vec_free(&s->new_selrefs);
    free(s->reach);
    dk_macho_close(s->m);
}

dk_status dk_extract_image(dk_extractor *x, size_t index, const dk_extract_opts *opts, uint8_t **data, size_t *size,
                           dk_extract_stats *stats, dk_error *err)
{
    dk_error local;
    if (!err) err = &local;
    *data = NULL;
    *size = 0;
    dk_extract_opts defaults = {DK_EXTRACT_FIXUPS_DEFAULT, false};
    dk_extract_stats st_local;
    xstate s;
    memset(&s, 0, sizeof s);
    s.x = x;
    s.c = x->c;
    s.index = index;
    s.o = opts ? opts : &defaults;
    s.err = err;
    s.st = stats ? stats : &st_local;
    memset(s.st, 0, sizeof *s.st);
    s.extra_seg = -1;
    size_t n;
    const dk_cache_image *imgs = dk_cache_images(x->c, &n);
    if (index >= n) return dk_fail(err, DK_E_ARG, "image %zu out of range (%zu images)", index, n);
    dk_status st = dk_cache_open_image(x->c, index, &s.m, err);
    if (st) return st;
    const dk_header *h = dk_macho_header(s.m);
    s.install_name = dk_macho_install_name(s.m) ? dk_macho_install_name(s.m) : imgs[index].path;
    s.base = dk_macho_base_address(s.m);
    s.arm64 = h->cputype == CPU_TYPE_ARM64 || h->cputype == CPU_TYPE_ARM64_32;
    s.arm64e = h->cputype == CPU_TYPE_ARM64 && (h->cpusubtype & ~CPU_SUBTYPE_MASK) == CPU_SUBTYPE_ARM64E;
    s.x86_64 = h->cputype == CPU_TYPE_X86_64;
    s.is64 = h->is64;
    s.ptr = s.is64 ? 8 : 4;
    s.page = s.x86_64 ? 0x1000 : 0x4000;
    if (!s.arm64 && !s.x86_64) st = dk_fail(err, DK_E_UNSUPPORTED, "cannot extract %s images (arm64, arm64e, arm64_32, x86_64)", dk_macho_arch(s.m));
    if (!st) st = copy_segments(&s);
    if (!st) st = compute_reach(&s);
    if (!st) st = x_classify_pointers(&s);
    if (!st) st = x_restore_stubs(&s);
    if (!st) st = x_objc_finish(&s);
    if (!st) st = x_write_image(&s, data, size);
    if (!st && s.o->sign) {
        /* ad-hoc signature, identified by the install name's last component as ld64 does */
        const char *slash = strrchr(s.install_name, '/');
        st = dk_codesign_adhoc_image(data, size, slash ? slash + 1 : s.install_name, err);
        if (st) {
            free(*data);
            *data = NULL;
            *size = 0;
        }
    }
    if (!st) {
        /* What we write must be a Mach-O our own reader (with dyld's and LLVM's
         * rules) accepts: a malformed cache image can carry defects (sections
         * overlapping in VM, say) that only show once it is laid out alone. */
        dk_macho *check;
        dk_error e2 = {0};
        if (dk_macho_open(*data, *size, s.install_name, &check, &e2) == DK_OK) {
            dk_macho_close(check);
        } else {
            st = dk_fail(err, DK_E_MALFORMED, "the extracted image would be malformed: %s", e2.message);
            free(*data);
            *data = NULL;
            *size = 0;
        }
    }
    if (!st) s.st->size = *size;
    if (st) dk_error_prefix(err, "%s: ", s.install_name ? s.install_name : imgs[index].path);
    free_state(&s);
    return st;
}

/* ------------------------------------------------------------ to a file */

static dk_status mkdirs(const char *path, dk_error *err)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof buf) return dk_fail(err, DK_E_ARG, "path too long");
    strcpy(buf, path);
    /* --all writes a thousand images into a few directories: try the file's
       own directory first, and walk down from the top only when it is new */
    char *last = strrchr(buf, '/');
    if (last && last != buf) {
        *last = 0;
        int r = mkdir(buf, 0755);
        *last = '/';
        if (r == 0 || errno == EEXIST) return DK_OK;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return dk_fail(err, DK_E_IO, "cannot create directory %s: %s", buf, strerror(errno)); /* BUF names it */
        *p = '/';
    }
    return DK_OK;
}

/* Write all of DATA to FD; false with errno set on failure. */
static bool write_all(int fd, const uint8_t *data, size_t size)
{
    while (size) {
        ssize_t w = write(fd, data, size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return false;
        }
        data += w;
        size -= (size_t)w;
    }
    return true;
}

/*
 * Put DATA at PATH so that no reader, and no interruption, ever sees a partial
 * file there.  Linux: an unnamed O_TMPFILE in PATH's directory, written, then
 * linked as TMP and renamed over PATH -- a process killed while writing leaves
 * nothing behind.  Elsewhere (or when the file system has no O_TMPFILE): TMP
 * written with O_EXCL, then renamed; removed on any failure.
 */
static dk_status write_atomically(const char *path, const char *tmp, const uint8_t *data, size_t size, dk_error *err)
{
#ifdef O_TMPFILE
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else strcpy(dir, ".");
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        if (!write_all(fd, data, size)) {
            int e = errno;
            close(fd);
            return dk_fail(err, DK_E_IO, "cannot write %s: %s", path, strerror(e));
        }
        /* complete: give it its name (a new file appears whole; an old one is replaced by rename) */
        const char *name = path;
        int e = 0;
        if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) != 0) {
            e = errno;
            name = tmp;
            if (e == EEXIST) e = linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
        }
        if (close(fd) != 0 && !e) {
            e = errno;
            unlink(name);
            return dk_fail(err, DK_E_IO, "cannot write %s: %s", path, strerror(e));
        }
        if (!e) {
            if (name == tmp && rename(tmp, path) != 0) {
                e = errno;
                unlink(tmp);
                return dk_fail(err, DK_E_IO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
            }
            return DK_OK;
        }
        if (e != ENOENT) return dk_fail(err, DK_E_IO, "cannot create %s: %s", name, strerror(e));
        /* no /proc: write a named temporary file instead */
    } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
        return dk_fail(err, DK_E_IO, "cannot create a file in %s: %s", dir, strerror(errno));
    }
#endif
    int tfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (tfd < 0) return dk_fail(err, DK_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    bool ok = write_all(tfd, data, size);
    int e = errno;
    if (close(tfd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        return dk_fail(err, DK_E_IO, "cannot write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return dk_fail(err, DK_E_IO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return DK_OK;
}

dk_status dk_extract_image_to_dir(dk_extractor *x, size_t index, const dk_extract_opts *opts, const char *dir,
                                  char *path_out, dk_extract_stats *stats, dk_error *err)
{
    size_t n;
    const dk_cache_image *imgs = dk_cache_images(x->c, &n);
    if (index >= n) return dk_fail(err, DK_E_ARG, "image %zu out of range", index);
    const char *rel = imgs[index].path;
    while (*rel == '/') rel++;
    size_t rl = strlen(rel);
    if (!*rel || strstr(rel, "/../") || strncmp(rel, "../", 3) == 0 || strcmp(rel, "..") == 0 ||
        (rl >= 3 && strcmp(rel + rl - 3, "/..") == 0))
        return dk_fail(err, DK_E_MALFORMED, "image %zu: install path %s cannot name a file under the output directory", index, imgs[index].path);
    char path[PATH_MAX], tmp[PATH_MAX];
    int w = snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (w < 0 || (size_t)w >= sizeof path) return dk_fail(err, DK_E_ARG, "output path too long");
    w = snprintf(tmp, sizeof tmp, "%s.dk-tmp-%ld-%zu", path, (long)getpid(), index);
    if (w < 0 || (size_t)w >= sizeof tmp) return dk_fail(err, DK_E_ARG, "output path too long");
    uint8_t *data;
    size_t size;
    dk_status st = dk_extract_image(x, index, opts, &data, &size, stats, err);
    if (st) return st;
    if ((st = mkdirs(path, err))) {
        free(data);
        return st;
    }
    st = write_atomically(path, tmp, data, size, err);
    free(data);
    if (st) return st;
    if (path_out) snprintf(path_out, PATH_MAX, "%s", path);
    return DK_OK;
}
