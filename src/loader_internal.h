/*
 * The loader's shared state: loader.c (mapping, fixups, TLVs, initializers,
 * lazy binding), loader_x86_64.c (native execution), loader_arm64.c
 * (execution under unicorn) and host.c (the host-function table).
 */
#ifndef DYLDKIT_LOADER_INTERNAL_H
#define DYLDKIT_LOADER_INTERNAL_H

#include "macho_internal.h"

#include "dyldkit/loader.h"

#include <pthread.h>

#define LD_PAGE 4096u
#define LD_MAX_SPAN (4ull << 30)      /* bytes one image may span */
#define LD_TRAP_SLOTS 16384u          /* trap slots (4 bytes each) */
#define LD_TRAP_SLOT 4u
#define LD_DATA_SIZE 8192u            /* host data the guest can see (FILE pointers, ...) */
#define LD_MAX_NESTING 16             /* guest -> host -> guest callback depth */
#define LD_IMAGE_MAGIC 0x64796c64u    /* "dyld": marks an ld_image reached through guest memory */

/* Offsets of host data objects in the data area (Darwin names in host.c). */
enum {
    LD_DATA_STDINP = 0,         /* FILE *__stdinp */
    LD_DATA_STDOUTP = 8,
    LD_DATA_STDERRP = 16,
    LD_DATA_STACK_GUARD = 24,   /* long __stack_chk_guard */
    LD_DATA_ERRNO = 32,         /* int the emulated __error() points at */
    LD_DATA_MB_CUR_MAX = 40,    /* int __mb_cur_max */
    LD_DATA_EMPTY = 64,         /* NULL-terminated empty argv/envp/apple for initializers */
    LD_DATA_RUNE_LOCALE = 4096  /* _RuneLocale _DefaultRuneLocale (ASCII ctype tables) */
};

/* What a trap slot stands for. */
typedef enum ld_trap_kind {
    LD_TRAP_FREE = 0,
    LD_TRAP_UNRESOLVED, /* an import nothing resolves (DK_LOADER_LAZY) */
    LD_TRAP_MESSAGE,    /* a failure found while running (bad lazy-bind offset) */
    LD_TRAP_HOST,       /* emulated: a host function */
    LD_TRAP_BINDER,     /* emulated: dyld_stub_binder */
    LD_TRAP_TLV,        /* emulated: the thread-local variable thunk */
    LD_TRAP_NOP,        /* emulated: ___chkstk_darwin and other do-nothing functions */
    LD_TRAP_RETURN      /* emulated: where a call from the host returns (one per nesting depth) */
} ld_trap_kind;

typedef struct dk_host_fn dk_host_fn;

typedef struct ld_trap {
    ld_trap_kind kind;
    int image;                /* UNRESOLVED: the importing image */
    const char *symbol;       /* UNRESOLVED: view into that image's strings */
    const dk_host_fn *host;   /* HOST */
    char *message;            /* MESSAGE: owned */
} ld_trap;

/* One classic lazy-bind record, resolved at load time and bound on first call. */
typedef struct ld_lazy {
    uint32_t offset;          /* of the record in the lazy-bind stream (what the helper pushes) */
    uint64_t slot;            /* runtime address of the __la_symbol_ptr entry */
    uint64_t value;           /* what the slot gets */
    const char *symbol;
} ld_lazy;

/* Per-image thread-local variable template (__thread_data + __thread_bss). */
typedef struct ld_tlv {
    uint32_t magic;           /* LD_IMAGE_MAGIC */
    struct dk_loader *loader;
    int image;
    uint64_t start;           /* runtime address of the template */
    uint64_t init_size;       /* bytes copied from it (S_THREAD_LOCAL_REGULAR) */
    uint64_t size;            /* bytes per thread */
    uint64_t align;
    bool has_key;
    pthread_key_t key;        /* native: the calling thread's block */
    uint64_t emu_block;       /* emulated: the one guest thread's block, 0 until first use */
} ld_tlv;

typedef struct ld_image {
    uint32_t magic;           /* LD_IMAGE_MAGIC; native binder finds it through __dyld_private */
    struct dk_loader *loader;
    int index;
    dk_loaded_image pub;
    dk_macho *m;              /* owned by the image set */
    uint8_t *map;             /* host mapping of [preferred_address, +map_size) */
    size_t map_size;
    uint64_t dyld_private;    /* runtime address of __dyld_private (lazy binding), 0 if none */
    ld_lazy *lazy;            /* sorted by offset */
    size_t nlazy, lazy_cap;
    bool lazy_via_helper;     /* lazy slots keep pointing at __stub_helper */
    ld_tlv *tlv;
    uint64_t *imports;        /* chained: resolved value per import index */
    uint8_t *imports_done;    /* chained: 0 not yet, 1 bound, 2 missing weak import */
    size_t nimports;
} ld_image;

struct dk_emu;

struct dk_loader {
    dk_imageset *set;
    dk_exec_mode mode;
    char arch[16];
    uint32_t flags;
    ld_image *imgs;
    size_t nimgs;
    char **host_dylibs;
    size_t nhost_dylibs;
    bool inits_done;
    bool inits_failed;
    /* traps: LD_TRAP_SLOTS slots; natively each is ud2, under emulation see loader_arm64.c */
    uint8_t *traps;
    ld_trap *trap_info;
    size_t ntraps;
    uint8_t *data;            /* LD_DATA_SIZE bytes of host data visible to the guest */
    char **strings;           /* native: dk_loader_alloc_string copies */
    size_t nstrings, strings_cap;
    /* special addresses imports bind to */
    uint64_t binder;          /* dyld_stub_binder */
    uint64_t tlv_thunk;       /* __tlv_bootstrap and every __thread_vars thunk */
    uint64_t nop;             /* ___chkstk_darwin */
    uint64_t *host_addr;      /* per host-table entry: address it binds to (0 until used) */
    struct dk_emu *emu;       /* emulated mode */
    const dk_host_fn *in_host; /* emulated: the host function running for the guest, if any */
};

/* ---------------------------------------------------------------- host.c */

enum {
    DK_HOST_DOUBLE = 1u << 0,   /* returns a double */
    DK_HOST_VARIADIC = 1u << 1, /* emulated: call VFN with NFIXED args and a va_list of the stack slots */
    DK_HOST_VALIST = 1u << 2,   /* emulated: argument NFIXED is a Darwin arm64 va_list (char *) */
    DK_HOST_DATA = 1u << 3,     /* a data symbol: SPECIAL is an LD_DATA_* offset */
    DK_HOST_SPECIAL = 1u << 4   /* emulated: handled by dk__host_special (SPECIAL is a DK_SP_*) */
};

typedef void (*dk_host_ptr)(void);

struct dk_host_fn {
    const char *name;         /* Darwin symbol name: "_printf" */
    dk_host_ptr fn;           /* host function (native binds here; emulated generic call) */
    uint16_t flags;           /* DK_HOST_* */
    uint8_t nfixed;
    dk_host_ptr vfn;          /* VARIADIC: the va_list variant (vprintf for printf) */
    int special;
};

/* Special functions (emulated handling, native binding where it differs). */
enum {
    DK_SP_NONE = 0,
    DK_SP_STUB_BINDER,
    DK_SP_TLV_BOOTSTRAP,
    DK_SP_CHKSTK,
    DK_SP_MALLOC,
    DK_SP_CALLOC,
    DK_SP_REALLOC,
    DK_SP_FREE,
    DK_SP_POSIX_MEMALIGN,
    DK_SP_ALIGNED_ALLOC,
    DK_SP_VALLOC,
    DK_SP_MALLOC_SIZE,
    DK_SP_STRDUP,
    DK_SP_STRNDUP,
    DK_SP_ASPRINTF,
    DK_SP_VASPRINTF,
    DK_SP_QSORT,
    DK_SP_BSEARCH,
    DK_SP_ERROR,
    DK_SP_GETENV,
    DK_SP_STRERROR,
    DK_SP_ABORT,
    DK_SP_EXIT,
    DK_SP_STACK_CHK_FAIL
};

/** The table entry for Darwin symbol NAME ("$UNIX2003"-style suffixes ignored), or NULL. */
const dk_host_fn *dk__host_find(const char *name);
size_t dk__host_count(void);
const dk_host_fn *dk__host_at(size_t index);
/** Fill the host data area (FILE pointers, stack guard, ctype tables). */
void dk__host_init_data(uint8_t *data);
/** Native address an entry binds to (function, data object or special); 0 if none natively. */
uint64_t dk__host_native_address(dk_loader *l, const dk_host_fn *h);

/** Emulated: perform a host call for entry H with the guest's argument registers. */
typedef struct dk_guest_regs {
    uint64_t x[8];
    double d[8];
    uint64_t sp;
} dk_guest_regs;
/* Returns DK_OK with *X0 / *D0 set (the result registers), or an error that ends the run. */
dk_status dk__host_call_emulated(dk_loader *l, const dk_host_fn *h, const dk_guest_regs *r, uint64_t *x0, double *d0,
                                 dk_error *err);

/* ------------------------------------------------------------ loader.c */

/** Resolve lazy-bind record OFFSET of image G, patch its slot; returns the target (or a trap). */
uint64_t dk__lazy_bind(dk_loader *l, ld_image *g, uint64_t offset);
/** Address of thread-local variable DESC (a __thread_vars descriptor) for the calling thread, 0 on failure. */
uint64_t dk__tlv_address(dk_loader *l, uint64_t desc);
/** Allocate a trap slot; returns its address or 0 when they ran out. */
uint64_t dk__trap_new(dk_loader *l, ld_trap_kind kind, int image, const char *symbol, const dk_host_fn *host,
                      const char *message);
/** The trap at ADDRESS, or NULL. */
const ld_trap *dk__trap_at(const dk_loader *l, uint64_t address);
/** Guest-visible address of data object OFFSET (LD_DATA_*). */
static inline uint64_t dk__data_addr(const dk_loader *l, unsigned offset) { return (uint64_t)(uintptr_t)(l->data + offset); }

/* ------------------------------------------------------ loader_x86_64.c */

/** True when this host can run x86_64 code natively. */
bool dk__native_available(void);
uint64_t dk__native_binder(void);
uint64_t dk__native_tlv_thunk(void);
uint64_t dk__native_nop(void);
dk_status dk__native_call(dk_loader *l, uint64_t address, const uint64_t *args, size_t nargs, uint64_t *result,
                          dk_error *err);

/* ------------------------------------------------------- loader_arm64.c */

/** True when unicorn is built in. */
bool dk__emu_available(void);
dk_status dk__emu_open(dk_loader *l, dk_error *err);
void dk__emu_close(dk_loader *l);
/** Make [ADDRESS, +SIZE) of host memory visible to the guest at the same address. */
dk_status dk__emu_map(dk_loader *l, uint64_t address, uint64_t size, uint32_t vmprot, dk_error *err);
/** Run the guest function at ADDRESS with up to 8 integer arguments. */
dk_status dk__emu_call(dk_loader *l, uint64_t address, const uint64_t *args, size_t nargs, uint64_t *result,
                       dk_error *err);
/** Guest heap (identity-mapped); 0 when exhausted. */
uint64_t dk__emu_malloc(dk_loader *l, uint64_t size, uint64_t align);
void dk__emu_free(dk_loader *l, uint64_t address);
/** Usable size of a guest heap block, 0 if ADDRESS is not one. */
uint64_t dk__emu_block_size(const dk_loader *l, uint64_t address);
/** True when [ADDRESS, +SIZE) is guest-writable memory (heap, stack, data area, a writable image segment). */
bool dk__emu_guest_ok(const dk_loader *l, uint64_t address, uint64_t size);
/** Trap slot address for a host function (emulated). */
uint64_t dk__emu_host_trap(dk_loader *l, const dk_host_fn *h);

/* ------------------------------------------------------------ loader.c */

/** Describe ADDRESS into BUF ("libfoo.dylib+0x8f0 (__TEXT,__text)"). */
bool dk__describe(const dk_loader *l, uint64_t address, char *buf, size_t size);

#endif
