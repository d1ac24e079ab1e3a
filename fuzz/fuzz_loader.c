/*
 * The loader up to (not including) running code: dk_loader_open maps the
 * image and its dependencies, applies every rebase and bind (classic opcodes
 * with lazy binding set up, or chained fixups), sets up thread-local
 * variables and protections.  Dependencies are looked up under an empty
 * root, so only the image itself and /usr/lib names served by the host take
 * part; unresolved imports become traps (DK_LOADER_LAZY).  No initializer and
 * no function is run.  arm64 images need the unicorn emulator for their
 * address space; set DK_FUZZ_LOADER_EMU=1 to include them (slower), else only
 * x86_64 images are loaded.
 *
 * libdyldkit has no entry point that applies fixups to a caller-supplied
 * buffer: dk_loader_open is that entry point, and it needs a path.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int emu = -1;
    if (emu < 0) emu = getenv("DK_FUZZ_LOADER_EMU") != NULL;
    const char *path = fz_write("image", data, size);
    if (!path) {
        fz_cleanup();
        return 0;
    }
    char root[300];
    snprintf(root, sizeof root, "%s/root", fz_tmpdir());
    mkdir(root, 0700);
    dk_error e = {0};
    char arch[16];
    dk_status st = dk_loader_pick_arch(path, emu ? NULL : "x86_64", arch, &e);
    fz_check(st, &e);
    if (st == DK_OK) {
        dk_loader_opts o;
        memset(&o, 0, sizeof o);
        o.root = root;
        o.arch = arch;
        o.flags = DK_LOADER_LAZY;
        dk_loader *l;
        st = dk_loader_open(path, &o, &l, &e);
        fz_check(st, &e);
        if (st == DK_OK) {
            fz_str(dk_loader_arch(l));
            for (size_t i = 0; i < dk_loader_image_count(l); i++) {
                const dk_loaded_image *im = dk_loader_image(l, i);
                fz_str(im->path);
                fz_str(im->install_name);
                char buf[256];
                fz_sink += dk_loader_describe(l, im->load_address, buf, sizeof buf);
                fz_str(buf);
            }
            for (size_t i = 0; i < dk_loader_host_dylib_count(l); i++) fz_str(dk_loader_host_dylib(l, i));
            dk_loader_symbol s;
            fz_check(dk_loader_find_symbol(l, "main", &s, &e), &e);
            dk_loader_close(l);
        }
    }
    fz_cleanup();
    return 0;
}
