/* Subcommand: cache extract (one or more images, or --all with -j threads). */
#include "cli.h"

#include "dyldkit/extract.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct job {
    dk_extractor *x;
    const dk_extract_opts *opts;
    const char *dir;
    const size_t *indices;
    size_t count;
    atomic_size_t next;
    atomic_size_t done;
    atomic_size_t failed;
    pthread_mutex_t err_lock;
    bool progress;
    bool verbose;
    out *o;
    dk_extract_stats total;
    /* per image (in the order of indices), for --json */
    dk_extract_stats *stats;
    char **paths;    /* malloc'd output path, NULL when it failed */
    char **errors;   /* malloc'd message when it failed */
} job;

static void *worker(void *arg)
{
    job *j = arg;
    for (;;) {
        size_t k = atomic_fetch_add(&j->next, 1);
        if (k >= j->count) break;
        size_t idx = j->indices[k];
        dk_error err = {0};
        dk_extract_stats st;
        char path[PATH_MAX];
        dk_status s = dk_extract_image_to_dir(j->x, idx, j->opts, j->dir, path, &st, &err);
        pthread_mutex_lock(&j->err_lock);
        if (s) {
            atomic_fetch_add(&j->failed, 1);
            if (j->progress) fputs("\r\033[K", stderr);
            fprintf(stderr, "dyldkit: image %zu: %s\n", idx, err.message);
            if (j->errors) j->errors[k] = strdup(err.message);
        } else {
            if (j->stats) j->stats[k] = st;
            if (j->paths) j->paths[k] = strdup(path);
            j->total.rebases += st.rebases;
            j->total.binds += st.binds;
            j->total.lazy_binds += st.lazy_binds;
            j->total.unresolved += st.unresolved;
            j->total.strings_copied += st.strings_copied;
            j->total.selrefs_added += st.selrefs_added;
            j->total.protocols_restored += st.protocols_restored;
            j->total.stubs_restored += st.stubs_restored;
            j->total.calls_restored += st.calls_restored;
            j->total.got_loads_restored += st.got_loads_restored;
            j->total.got_loads_lost += st.got_loads_lost;
            j->total.selector_loads_restored += st.selector_loads_restored;
            j->total.size += st.size;
            if (j->verbose && !j->o->json)
            {
                fprintf(stderr, "%s: %zu rebases, %zu binds, %zu lazy binds", path, st.rebases, st.binds, st.lazy_binds);
                if (st.unresolved)
                    fprintf(stderr, "; %zu pointers no export names (first at 0x%llx -> 0x%llx)", st.unresolved,
                            (unsigned long long)st.unresolved_at, (unsigned long long)st.unresolved_target);
                fputc('\n', stderr);
            }
        }
        size_t done = atomic_fetch_add(&j->done, 1) + 1;
        if (j->progress) {
            int w = 40;
            int filled = (int)(done * (size_t)w / j->count);
            fprintf(stderr, "\r[%.*s%*s] %zu/%zu", filled, "########################################", w - filled, "", done, j->count);
            if (done == j->count) fputc('\n', stderr);
            fflush(stderr);
        }
        pthread_mutex_unlock(&j->err_lock);
    }
    return NULL;
}

/*
 * Create DIR (and its parents) and make sure a file can be created in it, so
 * that an output directory that cannot be written (read-only file system, a
 * path through a regular file, /proc) is one clear error before any work.
 * Probed with an unnamed O_TMPFILE, which leaves nothing behind.
 */
static int check_output_dir(const char *dir)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        cli_errorf("%s: output path too long", dir);
        return EXIT_BAD_INPUT;
    }
    size_t len = strlen(buf);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char ch = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            if (ch) cli_errorf("%s: cannot create directory %s: %s", dir, buf, strerror(e));
            else cli_errorf("%s: cannot create directory: %s", dir, strerror(e));
            return EXIT_BAD_INPUT;
        }
        buf[i] = ch;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_errorf("%s: not a directory", dir);
        return EXIT_BAD_INPUT;
    }
#ifdef O_TMPFILE
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
    } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
        cli_errorf("%s: cannot write files there: %s", dir, strerror(errno));
        return EXIT_BAD_INPUT;
    }
#endif
    return EXIT_OK;
}

static int cmd_cache_extract(cli *c)
{
    if (c->npos < 1) return cli_usage(c, "cache extract needs CACHE");
    if (!c->output) return cli_usage(c, "cache extract needs -o DIR");
    if (!c->all && c->npos < 2) return cli_usage(c, "cache extract needs IMAGE... or --all");
    if (c->all && c->npos > 1) return cli_usage(c, "cache extract: --all takes no IMAGE");
    dk_extract_opts opts = {DK_EXTRACT_FIXUPS_DEFAULT, c->sign};
    if (c->fixups_mode) {
        if (strcmp(c->fixups_mode, "classic") == 0) opts.fixups = DK_EXTRACT_FIXUPS_CLASSIC;
        else if (strcmp(c->fixups_mode, "chained") == 0) opts.fixups = DK_EXTRACT_FIXUPS_CHAINED;
        else return cli_usage(c, "--fixups must be classic or chained");
    }
    dk_error err = {0};
    dk_cache *cache;
    if (dk_cache_open(c->pos[0], &cache, &err)) {
        cli_error(c->pos[0], &err);
        return EXIT_BAD_INPUT;
    }
    size_t nimg;
    const dk_cache_image *imgs = dk_cache_images(cache, &nimg);
    size_t *indices = malloc(sizeof(size_t) * (nimg + (size_t)c->npos + 1));
    size_t count = 0;
    int rc = EXIT_OK;
    if (!indices) {
        cli_errorf("out of memory");
        dk_cache_close(cache);
        return EXIT_BAD_INPUT;
    }
    if (c->all) {
        for (size_t i = 0; i < nimg; i++)
            if (!imgs[i].alias) indices[count++] = i;
    } else {
        for (int i = 1; i < c->npos; i++) {
            size_t idx;
            if (dk_cache_find_image(cache, c->pos[i], &idx, &err)) {
                cli_errorf("%s: %s", c->pos[0], err.message);
                rc = EXIT_BAD_INPUT;
                continue;
            }
            indices[count++] = idx;
        }
        if (rc) { /* name every image right before writing anything */
            free(indices);
            dk_cache_close(cache);
            return rc;
        }
    }
    if ((rc = check_output_dir(c->output))) {
        free(indices);
        dk_cache_close(cache);
        return rc;
    }
    dk_extractor *x;
    if (dk_extractor_new(cache, &x, &err)) {
        cli_error(c->pos[0], &err);
        free(indices);
        dk_cache_close(cache);
        return EXIT_BAD_INPUT;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = c->jobs ? c->jobs : (int)(ncpu > 0 ? ncpu : 1);
    if ((size_t)threads > count) threads = count ? (int)count : 1;
    job j;
    memset(&j, 0, sizeof j);
    j.x = x;
    j.opts = &opts;
    j.dir = c->output;
    j.indices = indices;
    j.count = count;
    j.progress = c->all && isatty(STDERR_FILENO) && !c->o.json;
    j.verbose = c->verbose;
    j.o = &c->o;
    if (c->o.json) {
        j.stats = calloc(count ? count : 1, sizeof *j.stats);
        j.paths = calloc(count ? count : 1, sizeof *j.paths);
        j.errors = calloc(count ? count : 1, sizeof *j.errors);
    }
    pthread_mutex_init(&j.err_lock, NULL);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    int started = 0;
    for (int t = 0; tids && t < threads; t++)
        if (pthread_create(&tids[t], NULL, worker, &j) == 0) started++;
    if (started == 0) worker(&j); /* no threads: do it here */
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    free(tids);
    size_t failed = atomic_load(&j.failed);
    out *o = &c->o;
    if (o->json) {
        o_obj(o, NULL);
        o_u64(o, "schema", 1);
        o_str(o, "cache", c->pos[0]);
        o_str(o, "output", c->output);
        o_u64(o, "images", count);
        o_u64(o, "failed", failed);
        o_u64(o, "threads", (uint64_t)(started ? started : 1));
        o_u64(o, "bytes", j.total.size);
        o_u64(o, "rebases", j.total.rebases);
        o_u64(o, "binds", j.total.binds);
        o_u64(o, "lazy_binds", j.total.lazy_binds);
        o_u64(o, "unresolved_pointers", j.total.unresolved);
        o_u64(o, "strings_copied", j.total.strings_copied);
        o_u64(o, "selrefs_added", j.total.selrefs_added);
        o_u64(o, "protocols_restored", j.total.protocols_restored);
        o_u64(o, "stubs_restored", j.total.stubs_restored);
        o_u64(o, "calls_restored", j.total.calls_restored);
        o_u64(o, "got_loads_restored", j.total.got_loads_restored);
        o_u64(o, "got_loads_lost", j.total.got_loads_lost);
        o_u64(o, "selector_loads_restored", j.total.selector_loads_restored);
        o_arr(o, "files");
        for (size_t k = 0; k < count; k++) {
            o_obj(o, NULL);
            o_u64(o, "index", indices[k]);
            o_str(o, "install_name", imgs[indices[k]].path);
            if (j.paths && j.paths[k]) {
                const dk_extract_stats *st = &j.stats[k];
                o_str(o, "path", j.paths[k]);
                o_u64(o, "size", st->size);
                o_u64(o, "rebases", st->rebases);
                o_u64(o, "binds", st->binds);
                o_u64(o, "lazy_binds", st->lazy_binds);
                o_u64(o, "unresolved_pointers", st->unresolved);
                if (st->unresolved) {
                    o_u64(o, "first_unresolved", st->unresolved_at);
                    o_u64(o, "first_unresolved_target", st->unresolved_target);
                }
                o_u64(o, "strings_copied", st->strings_copied);
                o_u64(o, "selrefs_added", st->selrefs_added);
                o_u64(o, "protocols_restored", st->protocols_restored);
                o_u64(o, "stubs_restored", st->stubs_restored);
                o_u64(o, "calls_restored", st->calls_restored);
                o_u64(o, "got_loads_restored", st->got_loads_restored);
                o_u64(o, "got_loads_lost", st->got_loads_lost);
                o_u64(o, "selector_loads_restored", st->selector_loads_restored);
            } else {
                o_str(o, "error", j.errors && j.errors[k] ? j.errors[k] : "extraction failed");
            }
            o_obj_end(o);
        }
        o_arr_end(o);
        o_obj_end(o);
    } else {
        o_printf(o, "%zu of %zu images extracted to %s (%llu bytes): %zu rebases, %zu binds, %zu lazy binds", count - failed, count,
                 c->output, (unsigned long long)j.total.size, j.total.rebases, j.total.binds, j.total.lazy_binds);
        if (j.total.strings_copied) o_printf(o, ", %zu ObjC strings copied back", j.total.strings_copied);
        if (j.total.protocols_restored) o_printf(o, ", %zu protocol references restored", j.total.protocols_restored);
        if (j.total.stubs_restored || j.total.calls_restored)
            o_printf(o, ", %zu stubs and %zu call sites restored", j.total.stubs_restored, j.total.calls_restored);
        if (j.total.got_loads_restored) o_printf(o, ", %zu GOT loads restored", j.total.got_loads_restored);
        if (j.total.selector_loads_restored) o_printf(o, ", %zu selector loads in code restored", j.total.selector_loads_restored);
        if (j.total.got_loads_lost)
            o_printf(o, ", %zu GOT load%s still aimed outside the image", j.total.got_loads_lost, j.total.got_loads_lost == 1 ? "" : "s");
        if (j.total.unresolved)
            o_printf(o, ", %zu pointer%s no export names", j.total.unresolved, j.total.unresolved == 1 ? "" : "s");
        o_printf(o, "\n");
    }
    pthread_mutex_destroy(&j.err_lock);
    for (size_t k = 0; k < count; k++) {
        if (j.paths) free(j.paths[k]);
        if (j.errors) free(j.errors[k]);
    }
    free(j.paths);
    free(j.errors);
    free(j.stats);
    dk_extractor_close(x);
    dk_cache_close(cache);
    free(indices);
    if (failed) rc = EXIT_BAD_INPUT;
    return rc;
}

const command cmds_extract[] = {
    {"cache extract", cmd_cache_extract, "CACHE (IMAGE... | --all) -o DIR [-j N] [--fixups classic|chained] [--sign] [--json] [-v]",
     "json,o=,all,j=,jobs=,fixups=,sign,verbose,v", "extract images as standalone, loadable Mach-O files",
     "Write each IMAGE (install path, basename or index) as a standalone Mach-O at\n"
     "DIR/<install path>: VM addresses kept, file offsets packed, LINKEDIT rebuilt\n"
     "(unmapped locals restored), every slid pointer turned back into a rebase\n"
     "or a bind named through the patch table or the target's exports, stubs,\n"
     "lazy pointers and call sites restored, ObjC selector uniquing undone.\n"
     "Fixups are classic opcodes (x86_64, arm64) or chained (arm64e, or\n"
     "--fixups chained).  --all extracts every image on -j N threads (default:\n"
     "all cores); a failing image is reported and the others still written.\n"
     "Files are written to temporary names and renamed when complete.\n"},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
