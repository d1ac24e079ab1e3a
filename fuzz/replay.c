/*
 * Standalone replay driver: runs a fuzz target's LLVMFuzzerTestOneInput on
 * files without libFuzzer, so the normal and sanitizer test builds replay
 * the seeds and every saved crasher (fuzz/regressions/<target>/).
 *
 *   replay [-v] [-t SECONDS] [-l LIST] PATH...
 *
 * PATH is a file or a directory (read recursively, sorted); -l LIST reads
 * more paths from LIST, one per line ("-": stdin).  Each input is read into a
 * buffer of exactly its size (ASan sees any read past its end).  -t fails
 * the run when one input takes longer than SECONDS of wall time (default 0:
 * no bound).  Prints "replay: N inputs, slowest S ms (PATH)" and exits 0;
 * a crash is the sanitizer's or the target's abort, after which the driver
 * names the input ("replay: crashed on PATH").
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* present in sanitizer builds: called before a sanitizer report ends the process */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static int verbose;
static double limit;
static size_t count;
static double slowest;
static char slowest_path[4096];
static char current[4096];

/* Name the input that was running when the process dies (async-signal-safe). */
static void say_current(void)
{
    static const char pre[] = "replay: crashed on ";
    if (!current[0]) return;
    (void)!write(2, pre, sizeof pre - 1);
    (void)!write(2, current, strlen(current));
    (void)!write(2, "\n", 1);
}

static void on_signal(int sig)
{
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return 1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf || fread(buf, 1, size, f) != size) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        free(buf);
        fclose(f);
        return 1;
    }
    fclose(f);
    if (verbose) fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    snprintf(current, sizeof current, "%s", path);
    double t0 = now();
    LLVMFuzzerTestOneInput(size ? buf : NULL, size);
    double dt = now() - t0;
    current[0] = 0;
    free(buf);
    count++;
    if (dt > slowest) {
        slowest = dt;
        snprintf(slowest_path, sizeof slowest_path, "%s", path);
    }
    if (limit > 0 && dt > limit) {
        fprintf(stderr, "replay: %s took %.3f s (limit %.3f s)\n", path, dt, limit);
        return 1;
    }
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) return run_file(path);
    struct dirent **ents;
    int n = scandir(path, &ents, NULL, by_name);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        if (name[0] != '.') {
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, name);
            bad |= run_path(sub);
        }
        free(ents[i]);
    }
    free(ents);
    return bad;
}

static int run_list(const char *list)
{
    FILE *f = strcmp(list, "-") == 0 ? stdin : fopen(list, "r");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", list, strerror(errno));
        return 1;
    }
    char line[4096];
    int bad = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] && line[0] != '#') bad |= run_path(line);
    }
    if (f != stdin) fclose(f);
    return bad;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(say_current);
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);
    signal(SIGILL, on_signal);
    int bad = 0, i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (strcmp(argv[i], "-v") == 0) verbose = 1;
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) limit = atof(argv[++i]);
        else if (strcmp(argv[i], "-l") == 0 && i + 1 < argc) bad |= run_list(argv[++i]);
        else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else {
            fprintf(stderr, "usage: %s [-v] [-t SECONDS] [-l LIST] PATH...\n", argv[0]);
            return 2;
        }
    }
    for (; i < argc; i++) bad |= run_path(argv[i]);
    printf("replay: %zu inputs, slowest %.1f ms (%s)\n", count, slowest * 1e3, slowest_path[0] ? slowest_path : "-");
    return bad;
}
