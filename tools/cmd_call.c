/* Subcommand: call -- load a Mach-O image with its dependencies and call one of its functions. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

/*
 * Native guest code runs in this process: a fault (or a call to a --lazy
 * trap, which is ud2) raises a signal.  The handler jumps back to cmd_call,
 * which names the fault with dk_loader_describe.  Under emulation the library
 * reports guest faults itself; the handler then only catches a host function
 * crashing on a bad guest pointer.
 */
static sigjmp_buf guard_jmp;
static volatile sig_atomic_t guard_armed;
static volatile int guard_signo;
static volatile uintptr_t guard_pc, guard_addr;
static dk_loader *guard_loader; /* reachable from here, so leak checkers see it after a crash */

static const int guarded_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT};
#define NGUARDED (sizeof guarded_signals / sizeof guarded_signals[0])

static void on_guest_signal(int sig, siginfo_t *si, void *ctx)
{
    if (!guard_armed) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    guard_armed = 0;
    guard_signo = sig;
    guard_addr = (uintptr_t)si->si_addr;
    ucontext_t *uc = ctx;
#if defined(__x86_64__)
    guard_pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    guard_pc = (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
    guard_pc = 0;
#endif
    siglongjmp(guard_jmp, 1);
}

static void install_guard(struct sigaction *old)
{
    static char altstack[1 << 16];
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    sigaltstack(&ss, NULL); /* the guest may have exhausted its stack */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_guest_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NGUARDED; i++) sigaction(guarded_signals[i], &sa, &old[i]);
}

static void remove_guard(const struct sigaction *old)
{
    guard_armed = 0;
    for (size_t i = 0; i < NGUARDED; i++) sigaction(guarded_signals[i], &old[i], NULL);
}

/* "-7", "42", "0x2a": a 64-bit integer argument; false on anything else. */
static bool parse_int_arg(const char *s, uint64_t *v)
{
    bool neg = s[0] == '-';
    const char *p = neg ? s + 1 : s;
    if (!*p) return false;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        if (!p[2]) return false;
        for (const char *q = p + 2; *q; q++)
            if (!strchr("0123456789abcdefABCDEF", *q)) return false;
    } else {
        for (const char *q = p; *q; q++)
            if (*q < '0' || *q > '9') return false;
    }
    uint64_t u;
    if (!cli_parse_u64(p, &u)) return false; /* overflow */
    if (neg) {
        if (u > (uint64_t)1 << 63) return false;
        u = (uint64_t)0 - u;
    }
    *v = u;
    return true;
}

typedef enum { RET_INT, RET_UINT, RET_LONG, RET_ULONG, RET_VOID } ret_kind;

/* Library messages name the image they are about (often a dependency): prefix LIB only when they do not. */
static void report(const char *lib, const dk_error *err)
{
    size_t n = strlen(lib);
    if (strncmp(err->message, lib, n) == 0 && err->message[n] == ':') cli_errorf("%s", err->message);
    else cli_error(lib, err);
}

static void crash_report(const char *lib, dk_loader *l)
{
    char pc[400], addr[400];
    const char *name = guard_signo == SIGSEGV ? "SIGSEGV" : guard_signo == SIGBUS ? "SIGBUS" : guard_signo == SIGILL ? "SIGILL"
                       : guard_signo == SIGFPE ? "SIGFPE" : guard_signo == SIGTRAP ? "SIGTRAP" : "SIGABRT";
    if (!l) {
        cli_errorf("%s: crashed while loading (%s at pc 0x%" PRIxPTR ")", lib, name, (uintptr_t)guard_pc);
        return;
    }
    const char *host = dk_loader_host_call(l);
    if (host)
        snprintf(pc, sizeof pc, "in host function %s, called by the guest with a bad pointer?", host);
    else if (!dk_loader_describe(l, guard_pc, pc, sizeof pc))
        snprintf(pc, sizeof pc, "outside the loaded images: host code given a bad pointer?");
    if (guard_signo == SIGILL && dk_loader_is_trap(l, guard_pc)) {
        cli_errorf("%s: call to %s", lib, pc);
        return;
    }
    if (guard_signo == SIGABRT) {
        cli_errorf("%s: guest crashed: SIGABRT (abort)", lib);
        return;
    }
    if (guard_signo == SIGSEGV || guard_signo == SIGBUS) {
        if (dk_loader_describe(l, guard_addr, addr, sizeof addr))
            cli_errorf("%s: guest crashed: %s accessing 0x%" PRIxPTR " (%s) at pc 0x%" PRIxPTR " (%s)", lib, name,
                       (uintptr_t)guard_addr, addr, (uintptr_t)guard_pc, pc);
        else
            cli_errorf("%s: guest crashed: %s accessing 0x%" PRIxPTR " at pc 0x%" PRIxPTR " (%s)", lib, name,
                       (uintptr_t)guard_addr, (uintptr_t)guard_pc, pc);
        return;
    }
    cli_errorf("%s: guest crashed: %s at pc 0x%" PRIxPTR " (%s)", lib, name, (uintptr_t)guard_pc, pc);
}

static void print_result(cli *c, dk_loader *l, const dk_loader_symbol *sym, ret_kind rk, const char *ret_name,
                         uint64_t r)
{
    out *o = &c->o;
    if (!o->json) {
        switch (rk) {
        case RET_INT: o_printf(o, "%d\n", (int)(int32_t)(uint32_t)r); break;
        case RET_UINT: o_printf(o, "%" PRIu32 "\n", (uint32_t)r); break;
        case RET_LONG: o_printf(o, "%" PRId64 "\n", (int64_t)r); break;
        case RET_ULONG: o_printf(o, "%" PRIu64 "\n", r); break;
        case RET_VOID: break;
        }
        return;
    }
    o_obj(o, NULL);
    o_u64(o, "schema", 1);
    o_str(o, "symbol", sym->name);
    o_u64(o, "address", sym->address);
    switch (rk) {
    case RET_INT: o_i64(o, "result", (int32_t)(uint32_t)r); break;
    case RET_UINT: o_u64(o, "result", (uint32_t)r); break;
    case RET_LONG: o_i64(o, "result", (int64_t)r); break;
    case RET_ULONG: o_u64(o, "result", r); break;
    case RET_VOID: o_null(o, "result"); break;
    }
    o_str(o, "arch", dk_loader_arch(l));
    o_str(o, "mode", dk_loader_mode(l) == DK_EXEC_NATIVE ? "native" : "emulated");
    o_arr(o, "images");
    for (size_t i = 0; i < dk_loader_image_count(l); i++) {
        const dk_loaded_image *im = dk_loader_image(l, i);
        o_obj(o, NULL);
        o_str(o, "path", im->path);
        o_str(o, "install_name", im->install_name);
        o_u64(o, "load_address", im->load_address);
        o_u64(o, "preferred_address", im->preferred_address);
        o_i64(o, "slide", im->slide);
        o_u64(o, "size", im->size);
        o_obj_end(o);
    }
    o_arr_end(o);
    o_arr(o, "host_dylibs");
    for (size_t i = 0; i < dk_loader_host_dylib_count(l); i++) o_str(o, NULL, dk_loader_host_dylib(l, i));
    o_arr_end(o);
    o_str(o, "ret", ret_name);
    const dk_loaded_image *def = dk_loader_image(l, (size_t)sym->image);
    if (def) {
        o_str(o, "image", def->install_name);
        o_u64(o, "image_offset", sym->address - def->load_address);
    }
    o_obj_end(o);
}

static int cmd_call(cli *c)
{
    if (c->npos < 2) return cli_usage(c, "call: needs LIB and SYMBOL");
    const char *lib = c->pos[0], *symbol = c->pos[1];
    int nargs = c->npos - 2;
    static const char *const ret_names[] = {"int", "uint", "long", "ulong", "void"};
    const char *ret_name = c->ret ? c->ret : "int";
    ret_kind rk = RET_INT;
    bool known = false;
    for (int i = 0; i < 5; i++)
        if (strcmp(ret_name, ret_names[i]) == 0) {
            rk = (ret_kind)i;
            known = true;
        }
    if (!known) return cli_usage(c, "call: --ret must be int, uint, long, ulong or void, not '%s'", ret_name);
    if (!*symbol) return cli_usage(c, "call: empty SYMBOL");
    if (nargs > 8) return cli_usage(c, "call: too many arguments (%d; at most 8 on arm64, 6 on x86_64)", nargs);
    uint64_t args[8] = {0};
    for (int i = 0; i < nargs; i++) {
        const char *a = c->pos[2 + i];
        if (strncmp(a, "s:", 2) == 0) continue; /* copied into guest memory once loaded */
        if (!parse_int_arg(a, &args[i]))
            return cli_usage(c, "call: argument %d '%s' is neither an integer (decimal or 0x hex) nor s:TEXT", i + 1, a);
    }
    dk_error err = {0};
    char arch[16];
    dk_status st = dk_loader_pick_arch(lib, c->arch, arch, &err);
    if (st == DK_E_NOTFOUND && c->arch) {
        cli_errorf("%s", err.message);
        return EXIT_USAGE;
    }
    if (st) {
        report(lib, &err);
        return EXIT_BAD_INPUT;
    }
    size_t max = dk_loader_arch_max_args(arch);
    if ((size_t)nargs > max)
        return cli_usage(c, "call: too many arguments for %s (%d; at most %zu integer registers)", arch, nargs, max);

    dk_loader_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.root = c->root;
    opts.libdirs = c->libdirs;
    opts.nlibdirs = (size_t)c->nlibdirs;
    opts.arch = arch;
    opts.flags = c->lazy ? DK_LOADER_LAZY : 0;

    /* loading runs no guest code: a fault there is a dyldkit bug and is left to crash loudly */
    dk_loader *l = NULL;
    st = dk_loader_open(lib, &opts, &l, &err);
    dk_loader_symbol sym;
    if (!st) st = dk_loader_find_symbol(l, symbol, &sym, &err);
    for (int i = 0; !st && i < nargs; i++)
        if (strncmp(c->pos[2 + i], "s:", 2) == 0) st = dk_loader_alloc_string(l, c->pos[2 + i] + 2, &args[i], &err);
    uint64_t result = 0;
    if (!st) {
        struct sigaction old[NGUARDED];
        guard_loader = l;
        install_guard(old);
        if (sigsetjmp(guard_jmp, 1)) {
            remove_guard(old);
            crash_report(lib, guard_loader);
            return EXIT_BAD_INPUT; /* the loader is left as the guest left it (guard_loader keeps it reachable) */
        }
        guard_armed = 1;
        st = dk_loader_run_initializers(l, &err);
        if (!st) st = dk_loader_call(l, sym.address, args, (size_t)nargs, &result, &err);
        remove_guard(old);
    }
    fflush(stdout); /* what the guest printed comes before the result line */
    if (st) {
        report(lib, &err);
        dk_loader_close(l);
        guard_loader = NULL;
        return EXIT_BAD_INPUT;
    }
    print_result(c, l, &sym, rk, ret_name, result);
    out_flush(&c->o);
    dk_loader_close(l);
    guard_loader = NULL;
    return EXIT_OK;
}

const command cmds_call[] = {
    {"call", cmd_call, "[--json] [--arch A] [--root DIR] [-L DIR]... [--lazy] [--ret TYPE] LIB SYMBOL [ARG...]",
     "json,arch=,root=,L=,lazy,ret=", "load a dylib with its dependencies and call a function",
     "Load LIB (a thin or universal Mach-O dylib or executable) and its\n"
     "dependencies the way dyld does, apply every rebase and bind (classic\n"
     "opcodes with lazy binding, or chained fixups), set up thread-local\n"
     "variables, run the initializers (dependencies first), then call SYMBOL\n"
     "(_SYMBOL from LIB's exports, else SYMBOL as written) and print its result\n"
     "as the last line of stdout.\n\n"
     "x86_64 code runs natively; arm64 and arm64e code runs under unicorn.\n"
     "Missing /usr/lib/ libraries (libSystem, libobjc, ...) are served by the\n"
     "host C library.  --arch picks the slice of a universal file (default\n"
     "x86_64, else arm64).  Absolute install names are found under --root DIR,\n"
     "then by basename in each -L DIR and LIB's directory.\n\n"
     "ARG: an integer (-7, 42, 0x2a) or s:TEXT (a pointer to a copy of TEXT);\n"
     "at most 6 on x86_64, 8 on arm64.\n"
     "--ret int (default) | uint | long | ulong | void: how to print the result.\n"
     "--lazy: an import nothing defines becomes a trap that fails when called.\n"
     "--json: one line {schema, symbol, address, result, arch, mode, images}.\n\n"
     "Exit status: 0 the function returned; 1 loading failed or the guest\n"
     "crashed (message names the symbol, library or fault address); 2 usage.\n"},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
