/*
 * Files: universal (fat / fat64) headers and their slices, static archives
 * and their members, arch lookups, and each slice opened as a Mach-O image
 * (all of them, not just the first few).
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dk_error e = {0};
    dk_file *f;
    dk_status st = dk_file_open_buffer(data, size, "fuzz-input", &f, &e);
    fz_check(st, &e);
    if (st) return 0;
    size_t n = dk_file_slice_count(f), sz;
    fz_str(dk_file_name(f));
    fz_sink += dk_file_fat_magic(f) + dk_file_is_archive(f);
    if (dk_file_data(f, &sz) != data || sz != size) abort();
    for (size_t i = 0; i < n; i++) {
        const dk_slice *s = dk_file_slice(f, i);
        if (!s || s->offset > size || s->size > size - s->offset) abort(); /* slices lie inside the file */
        fz_str(s->arch);
        fz_str(s->member);
        fz_str(dk_arch_name(s->cputype, s->cpusubtype));
        size_t idx;
        st = dk_file_find_arch(f, s->arch, &idx, &e);
        fz_check(st, &e);
        if (st != DK_OK || idx > i) abort(); /* the first slice with that name is at or before this one */
        dk_macho *m;
        st = dk_file_open_macho(f, i, &m, &e);
        fz_check(st, &e);
        if (st == DK_OK) {
            fz_str(dk_macho_arch(m));
            dk_macho_close(m);
        }
    }
    if (dk_file_slice(f, n) != NULL) abort();
    size_t idx;
    fz_check(dk_file_find_arch(f, "arm64", &idx, &e), &e);
    dk_file_close(f);
    return 0;
}
