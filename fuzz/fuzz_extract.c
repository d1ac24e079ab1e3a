/*
 * Extraction of one image from a fuzzed cache (input layout as in
 * fuzz_cache.c) into memory with dk_extract_image.  The image index and the
 * options come from the main header's UUID bytes (15: index, 14: bit 0
 * chained fixups, bit 1 classic, bit 2 ad-hoc signature), which the fuzzer
 * mutates like any other byte.  A successful extraction must produce a file
 * dyldkit itself opens as a Mach-O image.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dk_cache *c = fz_open_cache(data, size);
    if (!c) return 0;
    dk_error e = {0};
    dk_status st = DK_OK;
    size_t nimg;
    dk_cache_images(c, &nimg);
    const dk_cache_header *h = dk_cache_get_header(c);
    dk_extractor *x = NULL;
    if (nimg && (st = dk_extractor_new(c, &x, &e)) == DK_OK) {
        size_t index = h->uuid[15] % nimg;
        dk_extract_opts o;
        memset(&o, 0, sizeof o);
        o.fixups = (h->uuid[14] & 1) ? DK_EXTRACT_FIXUPS_CHAINED
                   : (h->uuid[14] & 2) ? DK_EXTRACT_FIXUPS_CLASSIC : DK_EXTRACT_FIXUPS_DEFAULT;
        o.sign = (h->uuid[14] & 4) != 0;
        uint8_t *out = NULL;
        size_t osize = 0;
        dk_extract_stats stats;
        st = dk_extract_image(x, index, &o, &out, &osize, &stats, &e);
        fz_check(st, &e);
        if (st == DK_OK) {
            dk_macho *m;
            dk_error me = {0};
            dk_status ms = dk_macho_open(out, osize, "extracted", &m, &me);
            if (ms) {
                fprintf(stderr, "fuzz: extracted image %zu does not open: %s\n", index, me.message);
                abort();
            }
            dk_macho_close(m);
            free(out);
        }
    } else {
        fz_check(st, &e);
    }
    dk_extractor_close(x);
    dk_cache_close(c);
    fz_cleanup();
    return 0;
}
