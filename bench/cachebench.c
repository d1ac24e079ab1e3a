/* cachebench: library-level cache benchmarks for bench/run.py.
 *
 *   cachebench open CACHE                time dk_cache_open + close
 *   cachebench addr CACHE N              open, then N dk_cache_lookup calls at
 *                                        addresses spread over every mapping
 *   cachebench slide CACHE               every slide pointer of every mapping
 *
 * Prints one line of key=value pairs (seconds, counts, rates). */
#include <dyldkit/dyldkit.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static dk_cache *open_cache(const char *path)
{
    dk_cache *c = NULL;
    dk_error err;
    memset(&err, 0, sizeof err);
    if (dk_cache_open(path, &c, &err) != DK_OK) {
        fprintf(stderr, "cachebench: %s: %s\n", path, err.message);
        exit(1);
    }
    return c;
}

struct slide_ctx {
    uint64_t n;
    uint64_t sum;
};

static int on_ptr(void *ctx, const dk_slide_pointer *p)
{
    struct slide_ctx *s = ctx;
    s->n++;
    s->sum += p->target;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: cachebench open|addr|slide CACHE [N]\n");
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    double t0 = now();
    dk_cache *c = open_cache(path);
    double t_open = now() - t0;
    if (!strcmp(mode, "open")) {
        dk_cache_close(c);
        printf("open_s=%.6f\n", t_open);
        return 0;
    }
    if (!strcmp(mode, "addr")) {
        long n = argc > 3 ? atol(argv[3]) : 100000;
        size_t nm = 0;
        const dk_cache_mapping *m = dk_cache_mappings(c, &nm);
        uint64_t total = 0;
        for (size_t i = 0; i < nm; i++)
            total += m[i].size;
        /* the first lookup builds the segment index and symbol tables */
        dk_cache_location loc;
        dk_error err;
        t0 = now();
        dk_cache_lookup(c, m[0].address + 0x1000, &loc, &err);
        double t_first = now() - t0;
        uint64_t x = 88172645463325252ull, found = 0, symbols = 0;
        t0 = now();
        for (long k = 0; k < n; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t off = x % total;
            size_t i = 0;
            while (off >= m[i].size)
                off -= m[i].size, i++;
            if (dk_cache_lookup(c, m[i].address + (off & ~3ull), &loc, &err) == DK_OK) {
                found++;
                symbols += loc.symbol != NULL;
            }
        }
        double t = now() - t0;
        printf("open_s=%.6f first_lookup_s=%.6f lookups=%ld found=%llu with_symbol=%llu lookup_s=%.6f lookups_per_s=%.0f\n",
               t_open, t_first, n, (unsigned long long)found, (unsigned long long)symbols, t, (double)n / t);
        dk_cache_close(c);
        return 0;
    }
    if (!strcmp(mode, "slide")) {
        /* twice: the first pass also faults the mapped cache pages in */
        size_t nm = 0;
        dk_cache_mappings(c, &nm);
        double t[2];
        struct slide_ctx s = {0, 0};
        for (int pass = 0; pass < 2; pass++) {
            s.n = s.sum = 0;
            dk_error err;
            t0 = now();
            for (size_t i = 0; i < nm; i++) {
                dk_status st = dk_cache_foreach_slide_pointer(c, i, on_ptr, &s, &err);
                if (st != DK_OK && st != DK_E_NOTFOUND) {
                    fprintf(stderr, "cachebench: slide: %s\n", err.message);
                    return 1;
                }
            }
            t[pass] = now() - t0;
        }
        printf("open_s=%.6f pointers=%llu slide_cold_s=%.6f slide_s=%.6f cold_pointers_per_s=%.0f pointers_per_s=%.0f "
               "checksum=%llx\n",
               t_open, (unsigned long long)s.n, t[0], t[1], (double)s.n / t[0], (double)s.n / t[1],
               (unsigned long long)s.sum);
        dk_cache_close(c);
        return 0;
    }
    fprintf(stderr, "cachebench: unknown mode %s\n", mode);
    return 2;
}
