/*
 * dyldkit loader: load a Mach-O dylib (or executable) and its dependencies
 * into this process and call its functions.
 *
 * What dyld does, on Linux: every segment of every image mapped (at its
 * preferred address when that is free, else slid), rebases and binds applied
 * (classic LC_DYLD_INFO opcodes with lazy binding through __stub_helper into
 * a dyld_stub_binder of ours, or chained fixups; arm64e authenticated pointers
 * stored with their PAC bits stripped), imports resolved as dk_imageset_resolve
 * does, thread-local variables given a thunk of ours, initializers run
 * dependencies first.
 *
 * Imports of a missing /usr/lib/ library (libSystem and its sub-libraries,
 * libobjc, ...) that no loaded image defines are served by the host C library
 * (printf, strlen, malloc, qsort, ...; see dk_loader_host_symbol).
 *
 * x86_64 code runs natively (same SysV calling convention); arm64 and arm64e
 * code runs under unicorn, with every image, its stack and its heap mapped at
 * the same addresses in the emulator as in this process, so host functions
 * work on guest pointers directly.
 *
 * Native execution caveat: guest code runs on the calling thread with full
 * access to the process.  A guest fault (or a call to an unresolved import
 * bound to a trap with DK_LOADER_LAZY) raises a signal (SIGSEGV, SIGBUS,
 * SIGILL, ...) in the caller; the library installs no signal handlers (it
 * keeps no global state).  A caller that wants a message instead of a crash
 * installs its own handlers and names the fault with dk_loader_describe, as
 * the dyldkit CLI does.  Under emulation a fault is an ordinary error result.
 */
#ifndef DYLDKIT_LOADER_H
#define DYLDKIT_LOADER_H

#include "dyldkit/stubs.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dk_loader dk_loader;

/** How code runs. */
typedef enum dk_exec_mode {
    DK_EXEC_NATIVE,   /* x86_64 on an x86_64 host */
    DK_EXEC_EMULATED  /* arm64 / arm64e under unicorn */
} dk_exec_mode;

enum {
    /* An import that nothing resolves is bound to a trap that fails (naming
     * the symbol) when it is called, instead of failing the load. */
    DK_LOADER_LAZY = 1u << 0
};

typedef struct dk_loader_opts {
    const char *root;             /* absolute install names are looked up under ROOT */
    const char *const *libdirs;   /* extra directories searched by basename (-L) */
    size_t nlibdirs;
    const char *arch;             /* slice of a universal file; NULL: x86_64, else arm64/arm64e */
    uint32_t flags;               /* DK_LOADER_* */
} dk_loader_opts;

/** One loaded image. */
typedef struct dk_loaded_image {
    const char *path;             /* file it was loaded from */
    const char *install_name;     /* LC_ID_DYLIB, or the path */
    uint64_t preferred_address;   /* unslid address of its lowest segment */
    uint64_t load_address;        /* where that segment is mapped */
    uint64_t size;                /* bytes from load_address to the end of its last segment */
    int64_t slide;                /* load_address - preferred_address */
} dk_loaded_image;

/**
 * The slice dk_loader_open would run: WANT when given (DK_E_NOTFOUND if the
 * file has no such slice), else x86_64 when present and runnable natively,
 * else arm64, arm64e, else the first slice.  OUT receives its name.
 */
dk_status dk_loader_pick_arch(const char *path, const char *want, char out[16], dk_error *err);
/** Integer arguments a call can pass for ARCH: 6 for x86_64 (registers only), 8 for arm64. */
size_t dk_loader_arch_max_args(const char *arch);

/**
 * Load PATH and its dependencies, map them, apply every fixup and set up
 * thread-local variables.  Runs no guest code.
 * DK_E_NOTFOUND: a dependency, a symbol or the slice is missing;
 * DK_E_UNSUPPORTED: an architecture this host cannot run; DK_E_MALFORMED: the
 * image is damaged (a fixup outside its segments, a bad ordinal, ...).
 */
dk_status dk_loader_open(const char *path, const dk_loader_opts *opts, dk_loader **out, dk_error *err);
void dk_loader_close(dk_loader *l);

dk_exec_mode dk_loader_mode(const dk_loader *l);
/** Architecture of the loaded images ("x86_64", "arm64", "arm64e"). */
const char *dk_loader_arch(const dk_loader *l);
/** Maximum number of integer arguments dk_loader_call passes (6 native, 8 emulated). */
size_t dk_loader_max_args(const dk_loader *l);

size_t dk_loader_image_count(const dk_loader *l);
/** Image INDEX in load order (0 is PATH); NULL when out of range. */
const dk_loaded_image *dk_loader_image(const dk_loader *l, size_t index);
/** Install names of the missing /usr/lib/ libraries served by the host C library. */
size_t dk_loader_host_dylib_count(const dk_loader *l);
const char *dk_loader_host_dylib(const dk_loader *l, size_t index);

/**
 * Run the initializers (__mod_init_func, __init_offsets) of every image,
 * dependencies first.  Once only; dk_loader_call runs them if needed.
 */
dk_status dk_loader_run_initializers(dk_loader *l, dk_error *err);

/** Where a symbol of the main image is. */
typedef struct dk_loader_symbol {
    const char *name;             /* the name found ("_add3" or as written) */
    uint64_t address;             /* runtime address (after a resolver, if any) */
    int image;                    /* index of the defining image */
    uint64_t unslid_address;      /* address in that image's own numbering */
} dk_loader_symbol;

/**
 * Look NAME up the way `dyldkit call` does: "_NAME" in the main image's
 * exports (through its re-exports), then NAME as written.
 */
dk_status dk_loader_find_symbol(dk_loader *l, const char *name, dk_loader_symbol *out, dk_error *err);

/**
 * Copy TEXT (NUL-terminated) to memory the guest can read and write, owned by
 * the loader; *ADDRESS receives its guest address.
 */
dk_status dk_loader_alloc_string(dk_loader *l, const char *text, uint64_t *address, dk_error *err);

/**
 * Call the function at ADDRESS with NARGS (<= dk_loader_max_args) 64-bit
 * integer arguments and return the 64-bit integer result register (rax / x0).
 * Runs the initializers first if they have not run.  Under emulation a guest
 * fault, a call to an unresolved import or to abort() fails with a message
 * naming the address as image+offset; natively see the caveat above.
 */
dk_status dk_loader_call(dk_loader *l, uint64_t address, const uint64_t *args, size_t nargs, uint64_t *result,
                         dk_error *err);

/**
 * Describe runtime address ADDRESS: "libfoo.dylib+0x8f0 (__TEXT,__text)",
 * "unresolved import _bar of libfoo.dylib (trap)", "host function _printf",
 * or "0x..." when it is nowhere known.  Writes at most SIZE bytes (NUL
 * included); returns true when the address belongs to the loader.  It may
 * read (and cache) symbol tables: call it after leaving a signal handler
 * (siglongjmp), not inside one.
 */
bool dk_loader_describe(const dk_loader *l, uint64_t address, char *buf, size_t size);

/**
 * Under emulation, the host function ("_strlen") that was running for the
 * guest when a signal interrupted it (a bad guest pointer), else NULL.
 */
const char *dk_loader_host_call(const dk_loader *l);

/** True when ADDRESS is a trap of the loader (unresolved import, failed lazy bind). */
bool dk_loader_is_trap(const dk_loader *l, uint64_t address);

/** The Darwin symbol names the host serves ("_printf", ...), for listings; NULL past the end. */
const char *dk_loader_host_symbol(size_t index);

#ifdef __cplusplus
}
#endif

#endif
