/*
 * arm64 / arm64e execution under unicorn.
 *
 * Every image, the guest stack, the guest heap, the host data area and the
 * trap slots are host memory mapped into the emulator at the same addresses
 * (uc_mem_map_ptr), so a guest pointer is a host pointer: host functions and
 * the loader read and write guest memory directly.
 *
 * Calls out of the guest land on trap slots: one instruction each, watched by
 * a UC_HOOK_CODE hook on the trap area.  The hook runs before the slot's
 * instruction executes:
 *  - host function: the hook performs the call and sets x0/d0; the slot's
 *    `ret` returns to the guest caller (lr untouched).
 *  - dyld_stub_binder: __stub_helper pushed x16 (lazy-bind offset) and x17
 *    (&__dyld_private); the hook pops them, binds, puts the target in x16;
 *    the slot's `br x16` goes on to it (dyld's arm64 dyld_stub_binder.s).
 *  - TLV thunk: x0 = descriptor in, variable address out; everything else
 *    preserved (LLVM's CSR_AArch64_TLS_Darwin).
 *  - an unresolved import (--lazy) or a failed lazy bind: the run stops with
 *    an error naming it.
 * A call from the host returns to a RETURN slot that is the emu_start "until"
 * address; host functions that call back into the guest (qsort) start a
 * nested emulation with its own RETURN slot, saving and restoring the outer
 * registers around it.
 *
 * The CPU model is "max" (ARMv8.x with pointer authentication): arm64e's
 * PAC instructions (pacibsp, autiasp, braa, retab) execute, and with the PAC keys' enable bits clear (as
 * unicorn leaves them) they neither sign nor check, which matches pointers
 * stored with their authentication bits stripped.
 */
#include "loader_internal.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>

#ifdef DK_HAVE_UNICORN
#include <dlfcn.h>
#include <unicorn/unicorn.h>

#define EMU_STACK_SIZE (8u << 20)
#define EMU_HEAP_SIZE (256ull << 20)
#define HEAP_HDR 16u
#define HEAP_USED 0x7573656464796c64ull   /* header magic of a live block */
#define HEAP_FREE 0x6672656564796c64ull   /* ... of a freed block */
#define HEAP_CLASSES 40

#define INSN_RET 0xd65f03c0u
#define INSN_BR_X16 0xd61f0200u

/*
 * unicorn is opened with dlopen when arm64 code is first run: linking it costs
 * every dyldkit process some 40 ms of relocations at start-up, which every
 * other command would pay for nothing.
 */
typedef struct uc_api {
    void *handle;
    uc_err (*open)(uc_arch, uc_mode, uc_engine **);
    uc_err (*close)(uc_engine *);
    uc_err (*ctl)(uc_engine *, uc_control_type, ...);
    uc_err (*mem_map_ptr)(uc_engine *, uint64_t, size_t, uint32_t, void *);
    uc_err (*reg_read)(uc_engine *, int, void *);
    uc_err (*reg_write)(uc_engine *, int, const void *);
    uc_err (*hook_add)(uc_engine *, uc_hook *, int, void *, void *, uint64_t, uint64_t, ...);
    uc_err (*emu_start)(uc_engine *, uint64_t, uint64_t, uint64_t, size_t);
    uc_err (*emu_stop)(uc_engine *);
    uc_err (*context_alloc)(uc_engine *, uc_context **);
    uc_err (*context_save)(uc_engine *, uc_context *);
    uc_err (*context_restore)(uc_engine *, uc_context *);
    uc_err (*context_free)(uc_context *);
    const char *(*strerror)(uc_err);
} uc_api;

struct dk_emu {
    uc_api api;
    uc_engine *uc;
    uc_hook code_hook, mem_hook;
    uint8_t *stack;
    uint8_t *heap;
    uint64_t heap_used;
    uint64_t free_list[HEAP_CLASSES]; /* per power-of-two class: a freed block, linked through its first word */
    int depth;
    uint64_t ret_slot[LD_MAX_NESTING];
    /* why the current run stopped */
    bool stopped;
    dk_error stop_err;
    bool fault;
    int fault_type;
    uint64_t fault_addr;
};

static uint64_t host_u64(const void *p) { return (uint64_t)(uintptr_t)p; }

bool dk__emu_available(void) { return true; }

/* ------------------------------------------------------------- guest heap */

static unsigned size_class(uint64_t size)
{
    unsigned c = 4; /* 16 bytes */
    while (c < HEAP_CLASSES - 1 && (1ull << c) < size) c++;
    return c;
}

static bool in_heap(const struct dk_emu *e, uint64_t a, uint64_t n)
{
    uint64_t h = host_u64(e->heap);
    return a >= h && a - h <= e->heap_used && n <= e->heap_used - (a - h);
}

uint64_t dk__emu_block_size(const dk_loader *l, uint64_t a)
{
    const struct dk_emu *e = l->emu;
    if (!e || (a & 15) || !in_heap(e, a - HEAP_HDR, HEAP_HDR)) return 0;
    const uint8_t *h = (const uint8_t *)(uintptr_t)(a - HEAP_HDR);
    uint64_t size = dk_le64(h), magic = dk_le64(h + 8);
    if (magic != HEAP_USED || size < 16 || (size & (size - 1)) || !in_heap(e, a, size)) return 0;
    return size;
}

uint64_t dk__emu_malloc(dk_loader *l, uint64_t size, uint64_t align)
{
    struct dk_emu *e = l->emu;
    if (!e || size > EMU_HEAP_SIZE / 2 || align > 65536) return 0;
    unsigned c = size_class(size);
    uint64_t cls = 1ull << c;
    if (align <= 16 && e->free_list[c]) {
        uint64_t a = e->free_list[c];
        uint8_t *h = (uint8_t *)(uintptr_t)(a - HEAP_HDR);
        if (in_heap(e, a - HEAP_HDR, HEAP_HDR + 8) && dk_le64(h + 8) == HEAP_FREE && dk_le64(h) == cls) {
            uint64_t next = dk_le64((uint8_t *)(uintptr_t)a);
            e->free_list[c] = (next && in_heap(e, next, 8) && !(next & 15)) ? next : 0;
            dk_wr64le(h + 8, HEAP_USED);
            return a;
        }
        e->free_list[c] = 0; /* the guest overwrote freed memory: forget the list */
    }
    if (align < 16) align = 16;
    uint64_t base = host_u64(e->heap);
    uint64_t start = (base + e->heap_used + HEAP_HDR + align - 1) & ~(align - 1);
    if (start - base > EMU_HEAP_SIZE || cls > EMU_HEAP_SIZE - (start - base)) return 0;
    uint8_t *h = (uint8_t *)(uintptr_t)(start - HEAP_HDR);
    dk_wr64le(h, cls);
    dk_wr64le(h + 8, HEAP_USED);
    e->heap_used = start - base + cls;
    return start;
}

void dk__emu_free(dk_loader *l, uint64_t a)
{
    struct dk_emu *e = l->emu;
    uint64_t size = dk__emu_block_size(l, a);
    if (!size) return;
    unsigned c = size_class(size);
    dk_wr64le((uint8_t *)(uintptr_t)(a - HEAP_HDR) + 8, HEAP_FREE);
    dk_wr64le((uint8_t *)(uintptr_t)a, e->free_list[c]);
    e->free_list[c] = a;
}

bool dk__emu_guest_ok(const dk_loader *l, uint64_t a, uint64_t n)
{
    const struct dk_emu *e = l->emu;
    if (!e || a + n < a) return false;
    if (in_heap(e, a, n)) return true;
    uint64_t s = host_u64(e->stack);
    if (a >= s && a + n <= s + EMU_STACK_SIZE) return true;
    uint64_t d = host_u64(l->data);
    if (a >= d && a + n <= d + LD_DATA_SIZE) return true;
    for (size_t i = 0; i < l->nimgs; i++) {
        const dk_loaded_image *g = &l->imgs[i].pub;
        if (l->imgs[i].map && a >= g->load_address && a + n <= g->load_address + g->size) return true;
    }
    return false;
}

/* ------------------------------------------------------------------ hooks */

static void stop_run(struct dk_emu *e, const dk_error *err)
{
    if (!e->stopped) {
        e->stopped = true;
        e->stop_err = *err;
        if (!e->stop_err.status) e->stop_err.status = DK_E_STOPPED;
    }
    e->api.emu_stop(e->uc);
}

static void stop_runf(struct dk_emu *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stop_runf(struct dk_emu *e, const char *fmt, ...)
{
    dk_error err;
    err.status = DK_E_STOPPED;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    stop_run(e, &err);
}

static uint64_t reg(const struct dk_emu *e, int r)
{
    uint64_t v = 0;
    e->api.reg_read(e->uc, r, &v);
    return v;
}

static void set_reg(const struct dk_emu *e, int r, uint64_t v) { e->api.reg_write(e->uc, r, &v); }

static void on_code(uc_engine *uc, uint64_t address, uint32_t size, void *user)
{
    (void)size;
    dk_loader *l = user;
    struct dk_emu *e = l->emu;
    const ld_trap *t = dk__trap_at(l, address);
    if (!t || e->stopped) return;
    switch (t->kind) {
    case LD_TRAP_HOST: {
        dk_guest_regs r;
        for (int i = 0; i < 8; i++) {
            r.x[i] = reg(e, UC_ARM64_REG_X0 + i);
            uint64_t bits = reg(e, UC_ARM64_REG_D0 + i);
            memcpy(&r.d[i], &bits, sizeof bits);
        }
        r.sp = reg(e, UC_ARM64_REG_SP);
        uint64_t x0;
        double d0;
        dk_error err = {0};
        const dk_host_fn *outer = l->in_host;
        l->in_host = t->host; /* names the culprit if the host function crashes on a bad pointer */
        dk_status st = dk__host_call_emulated(l, t->host, &r, &x0, &d0, &err);
        l->in_host = outer;
        if (st) {
            stop_run(e, &err);
            return;
        }
        if (t->host->flags & DK_HOST_DOUBLE) {
            uint64_t bits;
            memcpy(&bits, &d0, sizeof bits);
            set_reg(e, UC_ARM64_REG_D0, bits);
        } else {
            set_reg(e, UC_ARM64_REG_X0, x0);
        }
        return;
    }
    case LD_TRAP_BINDER: {
        uint64_t sp = reg(e, UC_ARM64_REG_SP);
        if (!dk__emu_guest_ok(l, sp, 16)) {
            stop_runf(e, "dyld_stub_binder entered with a bad stack pointer 0x%llx", (unsigned long long)sp);
            return;
        }
        const uint8_t *p = (const uint8_t *)(uintptr_t)sp;
        uint64_t offset = dk_le64(p), cache = dk_le64(p + 8);
        ld_image *g = NULL;
        for (size_t i = 0; i < l->nimgs && !g; i++)
            if (l->imgs[i].dyld_private && l->imgs[i].dyld_private == cache) g = &l->imgs[i];
        if (!g) {
            stop_runf(e, "dyld_stub_binder called with 0x%llx, which is no image's __dyld_private",
                      (unsigned long long)cache);
            return;
        }
        set_reg(e, UC_ARM64_REG_X16, dk__lazy_bind(l, g, offset));
        set_reg(e, UC_ARM64_REG_SP, sp + 16);
        return;
    }
    case LD_TRAP_TLV: {
        uint64_t desc = reg(e, UC_ARM64_REG_X0);
        uint64_t a = dk__tlv_address(l, desc);
        if (!a) {
            stop_runf(e, "thread-local variable access through a bad descriptor 0x%llx", (unsigned long long)desc);
            return;
        }
        set_reg(e, UC_ARM64_REG_X0, a);
        return;
    }
    case LD_TRAP_UNRESOLVED:
    case LD_TRAP_MESSAGE: {
        char what[300], from[300];
        dk__describe(l, address, what, sizeof what);
        uint64_t lr = reg(e, UC_ARM64_REG_X30);
        if (!dk__trap_at(l, lr) && dk__describe(l, lr, from, sizeof from))
            stop_runf(e, "call to %s (returning to %s)", what, from);
        else
            stop_runf(e, "call to %s", what);
        return;
    }
    default: return;
    }
}

static bool on_bad_memory(uc_engine *uc, uc_mem_type type, uint64_t address, int size, int64_t value, void *user)
{
    (void)uc;
    (void)size;
    (void)value;
    struct dk_emu *e = ((dk_loader *)user)->emu;
    if (!e->fault) {
        e->fault = true;
        e->fault_type = (int)type;
        e->fault_addr = address;
    }
    return false;
}

/* ------------------------------------------------------------ open/close */

static dk_status uc_fail(const struct dk_emu *e, dk_error *err, uc_err u, const char *what)
{
    return dk_fail(err, DK_E_UNSUPPORTED, "unicorn: %s: %s", what, e->api.strerror(u));
}

static dk_status load_unicorn(uc_api *a, dk_error *err)
{
    static const char *const names[] = {"libunicorn.so.2", "libunicorn.so"};
    for (size_t i = 0; i < 2 && !a->handle; i++) a->handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!a->handle)
        return dk_fail(err, DK_E_UNSUPPORTED, "arm64 code runs under unicorn, which cannot be loaded: %s", dlerror());
    struct { const char *name; void **slot; } syms[] = {
        {"uc_open", (void **)&a->open}, {"uc_close", (void **)&a->close}, {"uc_ctl", (void **)&a->ctl},
        {"uc_mem_map_ptr", (void **)&a->mem_map_ptr}, {"uc_reg_read", (void **)&a->reg_read},
        {"uc_reg_write", (void **)&a->reg_write}, {"uc_hook_add", (void **)&a->hook_add},
        {"uc_emu_start", (void **)&a->emu_start}, {"uc_emu_stop", (void **)&a->emu_stop},
        {"uc_context_alloc", (void **)&a->context_alloc}, {"uc_context_save", (void **)&a->context_save},
        {"uc_context_restore", (void **)&a->context_restore}, {"uc_context_free", (void **)&a->context_free},
        {"uc_strerror", (void **)&a->strerror},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (!(*syms[i].slot = dlsym(a->handle, syms[i].name)))
            return dk_fail(err, DK_E_UNSUPPORTED, "unicorn: no %s in libunicorn", syms[i].name);
    return DK_OK;
}

static uint32_t uc_perms(uint32_t vmprot)
{
    return (vmprot & 1 ? UC_PROT_READ : 0) | (vmprot & 2 ? UC_PROT_WRITE : 0) | (vmprot & 4 ? UC_PROT_EXEC : 0);
}

dk_status dk__emu_map(dk_loader *l, uint64_t address, uint64_t size, uint32_t vmprot, dk_error *err)
{
    struct dk_emu *e = l->emu;
    uc_err u = e->api.mem_map_ptr(e->uc, address, size, uc_perms(vmprot), (void *)(uintptr_t)address);
    if (u)
        return dk_fail(err, DK_E_UNSUPPORTED, "unicorn cannot map 0x%llx (0x%llx bytes): %s",
                       (unsigned long long)address, (unsigned long long)size, e->api.strerror(u));
    return DK_OK;
}

dk_status dk__emu_open(dk_loader *l, dk_error *err)
{
    struct dk_emu *e = calloc(1, sizeof *e);
    if (!e) return dk_fail(err, DK_E_NOMEM, "out of memory");
    l->emu = e;
    dk_status st = load_unicorn(&e->api, err);
    if (st) return st;
    uc_err u = e->api.open(UC_ARCH_ARM64, UC_MODE_ARM, &e->uc);
    if (u) {
        e->uc = NULL;
        return uc_fail(e, err, u, "uc_open");
    }
    if ((u = e->api.ctl(e->uc, UC_CTL_WRITE(UC_CTL_CPU_MODEL, 1), (int)UC_CPU_ARM64_MAX)))
        return uc_fail(e, err, u, "cpu model");
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    void *s = mmap(NULL, EMU_STACK_SIZE, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (s == MAP_FAILED) return dk_fail(err, DK_E_NOMEM, "cannot map the guest stack: %s", strerror(errno));
    e->stack = s;
    void *h = mmap(NULL, EMU_HEAP_SIZE, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (h == MAP_FAILED) return dk_fail(err, DK_E_NOMEM, "cannot map the guest heap: %s", strerror(errno));
    e->heap = h;
    if ((st = dk__emu_map(l, host_u64(e->stack), EMU_STACK_SIZE, 3, err)) ||
        (st = dk__emu_map(l, host_u64(e->heap), EMU_HEAP_SIZE, 3, err)) ||
        (st = dk__emu_map(l, host_u64(l->data), LD_DATA_SIZE, 3, err)) ||
        (st = dk__emu_map(l, host_u64(l->traps), (uint64_t)LD_TRAP_SLOTS * LD_TRAP_SLOT, 5, err)))
        return st;
    for (size_t i = 0; i < LD_TRAP_SLOTS; i++) dk_wr32le(l->traps + LD_TRAP_SLOT * i, INSN_RET);
    for (int d = 0; d < LD_MAX_NESTING; d++) e->ret_slot[d] = dk__trap_new(l, LD_TRAP_RETURN, -1, NULL, NULL, NULL);
    l->binder = dk__trap_new(l, LD_TRAP_BINDER, -1, NULL, NULL, NULL);
    dk_wr32le((uint8_t *)(uintptr_t)l->binder, INSN_BR_X16);
    l->tlv_thunk = dk__trap_new(l, LD_TRAP_TLV, -1, NULL, NULL, NULL);
    l->nop = dk__trap_new(l, LD_TRAP_NOP, -1, NULL, NULL, NULL);
    uint64_t tbase = host_u64(l->traps);
    if ((u = e->api.hook_add(e->uc, &e->code_hook, UC_HOOK_CODE, (void *)on_code, l, tbase,
                             tbase + (uint64_t)LD_TRAP_SLOTS * LD_TRAP_SLOT - 1)))
        return uc_fail(e, err, u, "code hook");
    if ((u = e->api.hook_add(e->uc, &e->mem_hook, UC_HOOK_MEM_INVALID, (void *)on_bad_memory, l, 1, 0)))
        return uc_fail(e, err, u, "memory hook");
    set_reg(e, UC_ARM64_REG_CPACR_EL1, 3u << 20); /* FP/SIMD on at EL0/EL1 */
    uint64_t tls = dk__emu_malloc(l, 4096, 16);      /* Darwin's thread pointer (TPIDRRO_EL0) */
    if (tls) memset((void *)(uintptr_t)tls, 0, 4096);
    set_reg(e, UC_ARM64_REG_TPIDRRO_EL0, tls);
    set_reg(e, UC_ARM64_REG_TPIDR_EL0, tls);
    return DK_OK;
}

void dk__emu_close(dk_loader *l)
{
    struct dk_emu *e = l->emu;
    if (!e) return;
    if (e->uc) e->api.close(e->uc);
    if (e->stack) munmap(e->stack, EMU_STACK_SIZE);
    if (e->heap) munmap(e->heap, EMU_HEAP_SIZE);
    if (e->api.handle) dlclose(e->api.handle);
    free(e);
    l->emu = NULL;
}

uint64_t dk__emu_host_trap(dk_loader *l, const dk_host_fn *h) { return dk__trap_new(l, LD_TRAP_HOST, -1, NULL, h, NULL); }

/* ------------------------------------------------------------------ calls */

static const char *access_name(int type)
{
    switch (type) {
    case UC_MEM_READ_UNMAPPED: return "read of unmapped";
    case UC_MEM_WRITE_UNMAPPED: return "write to unmapped";
    case UC_MEM_FETCH_UNMAPPED: return "execution of unmapped";
    case UC_MEM_READ_PROT: return "read of protected";
    case UC_MEM_WRITE_PROT: return "write to read-only";
    case UC_MEM_FETCH_PROT: return "execution of non-executable";
    default: return "access to";
    }
}

/* Why a run ended that did not return: a memory fault or a CPU exception. */
static dk_status crash(dk_loader *l, uc_err u, dk_error *err)
{
    struct dk_emu *e = l->emu;
    uint64_t pc = reg(e, UC_ARM64_REG_PC);
    char where[300];
    dk__describe(l, pc, where, sizeof where);
    if (e->fault) {
        char what[300];
        dk__describe(l, e->fault_addr, what, sizeof what);
        return dk_fail(err, DK_E_STOPPED, "guest crashed: %s memory 0x%llx (%s) at pc 0x%llx (%s)",
                       access_name(e->fault_type), (unsigned long long)e->fault_addr, what, (unsigned long long)pc,
                       where);
    }
    const char *kind = "unhandled CPU exception";
    if (dk__emu_guest_ok(l, pc, 4) || dk__trap_at(l, pc)) {
        uint32_t insn = dk_le32((const uint8_t *)(uintptr_t)pc);
        if ((insn & 0xffe0001fu) == 0xd4200000u) kind = "breakpoint (brk)";
        else if ((insn & 0xffe0001fu) == 0xd4000001u) kind = "system call (svc), which the loader does not emulate";
        else if ((insn >> 16) == 0) kind = "undefined instruction (udf)";
    }
    return dk_fail(err, DK_E_STOPPED, "guest crashed: %s at pc 0x%llx (%s) [%s]", kind, (unsigned long long)pc, where,
                   e->api.strerror(u));
}

dk_status dk__emu_call(dk_loader *l, uint64_t address, const uint64_t *args, size_t nargs, uint64_t *result,
                       dk_error *err)
{
    struct dk_emu *e = l->emu;
    if (nargs > 8) return dk_fail(err, DK_E_ARG, "at most 8 integer arguments");
    if (e->depth >= LD_MAX_NESTING)
        return dk_fail(err, DK_E_LIMIT, "guest -> host -> guest calls nested deeper than %d", LD_MAX_NESTING);
    uc_engine *uc = e->uc;
    const uc_api *api = &e->api;
    uc_context *saved = NULL;
    uint64_t sp;
    if (e->depth > 0) {
        /* a callback from a host function: keep the interrupted guest state */
        if (api->context_alloc(uc, &saved) || api->context_save(uc, saved))
            return dk_fail(err, DK_E_NOMEM, "cannot save the emulator state");
        sp = (reg(e, UC_ARM64_REG_SP) - 256) & ~(uint64_t)15;
    } else {
        sp = (host_u64(e->stack) + EMU_STACK_SIZE - 64) & ~(uint64_t)15;
    }
    bool outer_stopped = e->stopped, outer_fault = e->fault;
    dk_error outer_err = e->stop_err;
    e->stopped = e->fault = false;
    for (size_t i = 0; i < 8; i++) set_reg(e, UC_ARM64_REG_X0 + (int)i, i < nargs ? args[i] : 0);
    uint64_t until = e->ret_slot[e->depth];
    set_reg(e, UC_ARM64_REG_SP, sp);
    set_reg(e, UC_ARM64_REG_X29, 0);
    set_reg(e, UC_ARM64_REG_X30, until);
    e->depth++;
    uc_err u = api->emu_start(uc, address & 0x00FFFFFFFFFFFFFFull, until, 0, 0);
    e->depth--;
    dk_status st = DK_OK;
    uint64_t pc = reg(e, UC_ARM64_REG_PC);
    if (e->stopped) {
        if (err) *err = e->stop_err;
        st = e->stop_err.status;
    } else if (u != UC_ERR_OK || e->fault) {
        st = crash(l, u, err);
    } else if (pc != until) {
        char where[300];
        dk__describe(l, pc, where, sizeof where);
        st = dk_fail(err, DK_E_STOPPED, "emulation stopped at pc 0x%llx (%s)", (unsigned long long)pc, where);
    } else {
        *result = reg(e, UC_ARM64_REG_X0);
    }
    if (saved) {
        api->context_restore(uc, saved);
        api->context_free(saved);
    }
    e->stopped = outer_stopped;
    e->fault = outer_fault;
    e->stop_err = outer_err;
    return st;
}

#else /* built without unicorn */

bool dk__emu_available(void) { return false; }
dk_status dk__emu_open(dk_loader *l, dk_error *err)
{
    (void)l;
    return dk_fail(err, DK_E_UNSUPPORTED, "this dyldkit was built without unicorn: arm64 code cannot run");
}
void dk__emu_close(dk_loader *l) { (void)l; }
dk_status dk__emu_map(dk_loader *l, uint64_t a, uint64_t s, uint32_t p, dk_error *err)
{
    (void)l, (void)a, (void)s, (void)p;
    return dk_fail(err, DK_E_UNSUPPORTED, "built without unicorn");
}
dk_status dk__emu_call(dk_loader *l, uint64_t a, const uint64_t *args, size_t n, uint64_t *r, dk_error *err)
{
    (void)l, (void)a, (void)args, (void)n, (void)r;
    return dk_fail(err, DK_E_UNSUPPORTED, "built without unicorn");
}
uint64_t dk__emu_malloc(dk_loader *l, uint64_t s, uint64_t a) { (void)l, (void)s, (void)a; return 0; }
void dk__emu_free(dk_loader *l, uint64_t a) { (void)l, (void)a; }
uint64_t dk__emu_block_size(const dk_loader *l, uint64_t a) { (void)l, (void)a; return 0; }
bool dk__emu_guest_ok(const dk_loader *l, uint64_t a, uint64_t s) { (void)l, (void)a, (void)s; return false; }
uint64_t dk__emu_host_trap(dk_loader *l, const dk_host_fn *h) { (void)l, (void)h; return 0; }

#endif
