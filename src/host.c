/*
 * The host-function table: libSystem (and libobjc-free) functions and data
 * that a loaded image may import from a missing /usr/lib/ library, served by
 * the host C library.
 *
 * Natively (x86_64) an import binds straight to the host function: Darwin
 * x86_64 and Linux x86_64 share the calling convention, variadic calls
 * included.  Under emulation (arm64) each function the guest imports gets a
 * trap slot; dk__host_call_emulated reads the guest's registers and performs
 * the call.  Guest memory is mapped at the same addresses in the emulator as
 * in this process, so pointers pass through unchanged; what differs:
 *  - Apple's arm64 ABI passes variadic arguments on the stack in 8-byte slots
 *    (and a va_list is a plain pointer to such slots).  A host va_list whose
 *    register areas are marked used and whose overflow area is those slots
 *    reads them the same way, so printf(fmt, ...) becomes vprintf(fmt, ap).
 *  - memory the guest must be able to touch comes from the guest heap
 *    (malloc, strdup, asprintf, getenv and strerror copies).
 *  - functions that call back into the guest (qsort, bsearch) run the guest
 *    callback in a nested emulation.
 * Darwin data objects (__stdoutp, __stack_chk_guard, _DefaultRuneLocale, ...)
 * live in the loader's host data area.
 */
#include "loader_internal.h"

#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* glibc's fortify entry points: Darwin's ___memcpy_chk & co. have the same signatures */
extern void *__memcpy_chk(void *, const void *, size_t, size_t);
extern void *__memmove_chk(void *, const void *, size_t, size_t);
extern void *__memset_chk(void *, int, size_t, size_t);
extern char *__strcpy_chk(char *, const char *, size_t);
extern char *__stpcpy_chk(char *, const char *, size_t);
extern char *__strncpy_chk(char *, const char *, size_t, size_t);
extern char *__strcat_chk(char *, const char *, size_t);
extern char *__strncat_chk(char *, const char *, size_t, size_t);
extern int __sprintf_chk(char *, int, size_t, const char *, ...);
extern int __snprintf_chk(char *, size_t, int, size_t, const char *, ...);
extern int __vsprintf_chk(char *, int, size_t, const char *, va_list);
extern int __vsnprintf_chk(char *, size_t, int, size_t, const char *, va_list);
extern void __stack_chk_fail(void);
extern uint32_t arc4random(void);
extern uint32_t arc4random_uniform(uint32_t);
extern void arc4random_buf(void *, size_t);

/* ------------------------------------------- Darwin functions glibc lacks */

static size_t h_strlcpy(char *d, const char *s, size_t n)
{
    size_t len = strlen(s);
    if (n) {
        size_t c = len < n - 1 ? len : n - 1;
        memcpy(d, s, c);
        d[c] = 0;
    }
    return len;
}

static size_t h_strlcat(char *d, const char *s, size_t n)
{
    size_t dl = strnlen(d, n);
    if (dl == n) return n + strlen(s);
    return dl + h_strlcpy(d + dl, s, n - dl);
}

/* Darwin <_ctype.h> masks (_CTYPE_A ...). */
enum {
    CT_A = 0x100, CT_C = 0x200, CT_D = 0x400, CT_G = 0x800, CT_L = 0x1000, CT_P = 0x2000, CT_S = 0x4000,
    CT_U = 0x8000, CT_X = 0x10000, CT_B = 0x20000, CT_R = 0x40000, CT_SW1 = 0x40000000
};

static uint32_t rune_type(int c)
{
    if (c < 0 || c > 127) return 0;
    uint32_t t = 0;
    if (isalpha(c)) t |= CT_A;
    if (iscntrl(c)) t |= CT_C;
    if (isdigit(c)) t |= CT_D | (uint32_t)(c - '0');
    if (isgraph(c)) t |= CT_G;
    if (islower(c)) t |= CT_L;
    if (ispunct(c)) t |= CT_P;
    if (isspace(c)) t |= CT_S;
    if (isupper(c)) t |= CT_U;
    if (isxdigit(c)) t |= CT_X | (isdigit(c) ? 0 : (uint32_t)(tolower(c) - 'a' + 10));
    if (c == ' ' || c == '\t') t |= CT_B;
    if (isprint(c)) t |= CT_R | CT_SW1;
    return t;
}

static int h_maskrune(int c, unsigned long mask) { return (int)(rune_type(c) & mask); }
static int h_toupper(int c) { return c >= 0 && c < 128 ? toupper(c) : c; }
static int h_tolower(int c) { return c >= 0 && c < 128 ? tolower(c) : c; }
static int h_atexit(void (*f)(void)) { (void)f; return 0; }            /* the loaded code is gone at exit */
static int h_cxa_atexit(void (*f)(void *), void *a, void *d) { (void)f; (void)a; (void)d; return 0; }
static void h_exit(int status)
{
    /* the guest ends the process: what it printed is flushed, host atexit handlers are not run */
    fflush(NULL);
    _exit(status);
}
static size_t h_malloc_size(const void *p) { return p ? malloc_usable_size((void *)p) : 0; }
static int *h_error(void) { return &errno; }

/* ------------------------------------------------------------ the table */

#define F(n) {"_" #n, (dk_host_ptr)n, 0, 0, NULL, DK_SP_NONE}
#define FD(n) {"_" #n, (dk_host_ptr)n, DK_HOST_DOUBLE, 0, NULL, DK_SP_NONE}
#define FA(name, fn) {name, (dk_host_ptr)fn, 0, 0, NULL, DK_SP_NONE}
#define VA(n, k, vn) {"_" #n, (dk_host_ptr)n, DK_HOST_VARIADIC, k, (dk_host_ptr)vn, DK_SP_NONE}
#define VAA(name, fn, k, vn) {name, (dk_host_ptr)fn, DK_HOST_VARIADIC, k, (dk_host_ptr)vn, DK_SP_NONE}
#define VL(n, k) {"_" #n, (dk_host_ptr)n, DK_HOST_VALIST, k, NULL, DK_SP_NONE}
#define VLA(name, fn, k) {name, (dk_host_ptr)fn, DK_HOST_VALIST, k, NULL, DK_SP_NONE}
#define DATA(name, off) {name, NULL, DK_HOST_DATA, 0, NULL, off}
#define SP(name, fn, sp) {name, (dk_host_ptr)fn, DK_HOST_SPECIAL, 0, NULL, sp}

static const dk_host_fn host_table[] = {
    /* dyld's own: always ours (the loader checks these first) */
    SP("dyld_stub_binder", NULL, DK_SP_STUB_BINDER),
    SP("__tlv_bootstrap", NULL, DK_SP_TLV_BOOTSTRAP),
    SP("___chkstk_darwin", NULL, DK_SP_CHKSTK),
    /* data */
    DATA("___stdinp", LD_DATA_STDINP),
    DATA("___stdoutp", LD_DATA_STDOUTP),
    DATA("___stderrp", LD_DATA_STDERRP),
    DATA("___stack_chk_guard", LD_DATA_STACK_GUARD),
    DATA("___mb_cur_max", LD_DATA_MB_CUR_MAX),
    DATA("__DefaultRuneLocale", LD_DATA_RUNE_LOCALE),
    /* memory */
    SP("_malloc", malloc, DK_SP_MALLOC),
    SP("_calloc", calloc, DK_SP_CALLOC),
    SP("_realloc", realloc, DK_SP_REALLOC),
    SP("_free", free, DK_SP_FREE),
    SP("_posix_memalign", posix_memalign, DK_SP_POSIX_MEMALIGN),
    SP("_aligned_alloc", aligned_alloc, DK_SP_ALIGNED_ALLOC),
    SP("_valloc", valloc, DK_SP_VALLOC),
    SP("_malloc_size", h_malloc_size, DK_SP_MALLOC_SIZE),
    SP("_strdup", strdup, DK_SP_STRDUP),
    SP("_strndup", strndup, DK_SP_STRNDUP),
    /* strings */
    F(memcpy), F(memmove), F(memset), F(memcmp), F(memchr), F(bzero), FA("___bzero", bzero),
    F(strlen), F(strnlen), F(strcmp), F(strncmp), F(strcpy), F(strncpy), F(stpcpy), F(strcat), F(strncat),
    F(strchr), F(strrchr), F(strstr), F(strspn), F(strcspn), F(strpbrk), F(strtok), F(strtok_r), F(strsep),
    F(strcasecmp), F(strncasecmp), F(strcoll), FA("_strlcpy", h_strlcpy), FA("_strlcat", h_strlcat),
    SP("_strerror", strerror, DK_SP_STRERROR),
    FA("___memcpy_chk", __memcpy_chk), FA("___memmove_chk", __memmove_chk), FA("___memset_chk", __memset_chk),
    FA("___strcpy_chk", __strcpy_chk), FA("___stpcpy_chk", __stpcpy_chk), FA("___strncpy_chk", __strncpy_chk),
    FA("___strcat_chk", __strcat_chk), FA("___strncat_chk", __strncat_chk),
    /* ctype */
    F(isalpha), F(isdigit), F(isalnum), F(isspace), F(isupper), F(islower), F(isxdigit), F(isprint), F(ispunct),
    F(iscntrl), F(isgraph), F(toupper), F(tolower),
    FA("___maskrune", h_maskrune), FA("___toupper", h_toupper), FA("___tolower", h_tolower),
    /* stdio */
    VA(printf, 1, vprintf), VA(fprintf, 2, vfprintf), VA(sprintf, 2, vsprintf), VA(snprintf, 3, vsnprintf),
    VA(dprintf, 2, vdprintf), VA(sscanf, 2, vsscanf), VA(fscanf, 2, vfscanf), VA(scanf, 1, vscanf),
    VAA("___sprintf_chk", __sprintf_chk, 4, __vsprintf_chk), VAA("___snprintf_chk", __snprintf_chk, 5, __vsnprintf_chk),
    VL(vprintf, 1), VL(vfprintf, 2), VL(vsprintf, 2), VL(vsnprintf, 3), VL(vdprintf, 2), VL(vsscanf, 2),
    VL(vfscanf, 2), VLA("___vsprintf_chk", __vsprintf_chk, 4), VLA("___vsnprintf_chk", __vsnprintf_chk, 5),
    SP("_asprintf", asprintf, DK_SP_ASPRINTF), SP("_vasprintf", vasprintf, DK_SP_VASPRINTF),
    F(puts), F(putchar), F(fputs), F(fputc), F(putc), F(fwrite), F(fread), F(fgets), F(fgetc), F(getc),
    F(getchar), F(fflush), F(fopen), F(fdopen), F(fclose), F(fileno), F(setvbuf), F(perror), F(ferror), F(feof),
    F(clearerr), F(rewind), F(fseek), F(ftell), F(ungetc), F(remove),
    /* stdlib */
    SP("_qsort", qsort, DK_SP_QSORT), SP("_bsearch", bsearch, DK_SP_BSEARCH),
    F(abs), F(labs), F(llabs), F(atoi), F(atol), F(atoll), F(strtol), F(strtoul), F(strtoll), F(strtoull),
    FD(strtod), FD(atof), F(rand), F(srand), F(random), F(srandom), F(arc4random), F(arc4random_uniform),
    F(arc4random_buf), SP("_getenv", getenv, DK_SP_GETENV),
    FA("_atexit", h_atexit), FA("___cxa_atexit", h_cxa_atexit),
    SP("_abort", abort, DK_SP_ABORT), SP("_exit", h_exit, DK_SP_EXIT), SP("__exit", _exit, DK_SP_EXIT),
    SP("___stack_chk_fail", __stack_chk_fail, DK_SP_STACK_CHK_FAIL),
    SP("___error", h_error, DK_SP_ERROR),
    /* unistd / time */
    F(write), F(read), F(close), F(dup), F(dup2), F(lseek), F(unlink), F(getpid), F(isatty), F(sleep), F(usleep),
    F(time), F(clock),
    /* math */
    FD(sqrt), FD(cbrt), FD(sin), FD(cos), FD(tan), FD(asin), FD(acos), FD(atan), FD(atan2), FD(sinh), FD(cosh),
    FD(tanh), FD(exp), FD(exp2), FD(log), FD(log2), FD(log10), FD(pow), FD(floor), FD(ceil), FD(fabs), FD(fmod),
    FD(round), FD(trunc), FD(hypot), FD(ldexp), FD(frexp), FD(modf), FD(fmin), FD(fmax),
};

size_t dk__host_count(void) { return sizeof host_table / sizeof host_table[0]; }
const dk_host_fn *dk__host_at(size_t i) { return i < dk__host_count() ? &host_table[i] : NULL; }

const dk_host_fn *dk__host_find(const char *name)
{
    /* "_fopen$DARWIN_EXTSN", "_fputs$UNIX2003": the variant suffix does not change what we serve */
    size_t n = strcspn(name, "$");
    for (size_t i = 0; i < dk__host_count(); i++)
        if (strncmp(host_table[i].name, name, n) == 0 && host_table[i].name[n] == 0) return &host_table[i];
    return NULL;
}

uint64_t dk__host_native_address(dk_loader *l, const dk_host_fn *h)
{
    (void)l;
    return (uint64_t)(uintptr_t)h->fn;
}

void dk__host_init_data(uint8_t *data)
{
    dk_wr64le(data + LD_DATA_STDINP, (uint64_t)(uintptr_t)stdin);
    dk_wr64le(data + LD_DATA_STDOUTP, (uint64_t)(uintptr_t)stdout);
    dk_wr64le(data + LD_DATA_STDERRP, (uint64_t)(uintptr_t)stderr);
    dk_wr64le(data + LD_DATA_STACK_GUARD, 0x2f8a64d1c3b0e917ull);
    dk_wr32le(data + LD_DATA_MB_CUR_MAX, 1);
    /* _RuneLocale (Darwin <runetype.h>, 64-bit): __magic[8] @0, __encoding[32] @8,
     * __invalid_rune @56, __runetype[256] @60, __maplower[256] @1084, __mapupper[256] @2108 */
    uint8_t *r = data + LD_DATA_RUNE_LOCALE;
    memcpy(r, "RuneMagA", 8);
    memcpy(r + 8, "NONE", 5);
    dk_wr32le(r + 56, 0xfffd);
    for (int c = 0; c < 256; c++) {
        dk_wr32le(r + 60 + 4 * c, rune_type(c));
        dk_wr32le(r + 1084 + 4 * c, (uint32_t)h_tolower(c));
        dk_wr32le(r + 2108 + 4 * c, (uint32_t)h_toupper(c));
    }
}

/* ------------------------------------------------------ emulated calls */

#if defined(__x86_64__)
/* SysV x86_64 va_list: gp/fp areas used up, so va_arg reads 8-byte slots from the overflow area */
typedef struct host_va {
    unsigned gp_offset;
    unsigned fp_offset;
    void *overflow_arg_area;
    void *reg_save_area;
} host_va;
#define HOST_VA_INIT(slots) {48, 176, (void *)(uintptr_t)(slots), NULL}
#define HAVE_HOST_VA 1
#elif defined(__aarch64__)
/* AAPCS64 va_list: gr_offs/vr_offs 0 mean "registers used up": va_arg reads __stack */
typedef struct host_va {
    void *stack;
    void *gr_top;
    void *vr_top;
    int gr_offs;
    int vr_offs;
} host_va;
#define HOST_VA_INIT(slots) {(void *)(uintptr_t)(slots), NULL, NULL, 0, 0}
#define HAVE_HOST_VA 1
#endif

#ifdef HAVE_HOST_VA
_Static_assert(sizeof(va_list) == sizeof(host_va), "host va_list layout");
/* A va_list is passed as a pointer in both host ABIs (x86_64: array decay, AAPCS64: >16-byte composite). */
#define VA_ARG_VALUE(ap) ((uint64_t)(uintptr_t) & (ap))
#endif

typedef uint64_t (*gen_i)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, double,
                          double, double, double, double, double, double, double);
typedef double (*gen_d)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, double,
                        double, double, double, double, double, double, double);

/*
 * Integer and floating-point arguments are assigned to registers separately in
 * both AAPCS64 and SysV x86_64, so passing all eight of each reaches any
 * non-variadic callee with up to 6 (x86_64 host) integer and 8 FP parameters;
 * integer parameters 7 and 8 go to the stack where the callee expects them.
 */
static void call_generic(dk_host_ptr fn, bool dbl, const uint64_t x[8], const double d[8], uint64_t *x0, double *d0)
{
    if (dbl) {
        *d0 = ((gen_d)fn)(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
                          d[7]);
        *x0 = 0;
    } else {
        *x0 = ((gen_i)fn)(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
                          d[7]);
        *d0 = 0;
    }
}

static uint64_t guest_copy_string(dk_loader *l, const char *s)
{
    if (!s) return 0;
    size_t n = strlen(s) + 1;
    uint64_t a = dk__emu_malloc(l, n, 16);
    if (a) memcpy((void *)(uintptr_t)a, s, n);
    return a;
}

typedef struct guest_cmp {
    dk_loader *l;
    uint64_t fn;
    bool failed;
    dk_error err;
} guest_cmp;

/* qsort_r comparator: run the guest's comparator under emulation. */
static int run_guest_cmp(const void *a, const void *b, void *ctx)
{
    guest_cmp *g = ctx;
    if (g->failed) return 0;
    uint64_t args[2] = {(uint64_t)(uintptr_t)a, (uint64_t)(uintptr_t)b}, r = 0;
    if (dk__emu_call(g->l, g->fn, args, 2, &r, &g->err)) {
        g->failed = true;
        return 0;
    }
    return (int)(int32_t)r;
}

static dk_status special(dk_loader *l, const dk_host_fn *h, const uint64_t *x, uint64_t sp, uint64_t *x0,
                         dk_error *err)
{
    *x0 = 0;
    switch (h->special) {
    case DK_SP_MALLOC: *x0 = dk__emu_malloc(l, x[0] ? x[0] : 1, 16); break;
    case DK_SP_CALLOC: {
        uint64_t n = x[0], sz = x[1];
        if (sz && n > UINT64_MAX / sz) break;
        uint64_t total = n * sz;
        *x0 = dk__emu_malloc(l, total ? total : 1, 16);
        if (*x0) memset((void *)(uintptr_t)*x0, 0, (size_t)total);
        break;
    }
    case DK_SP_REALLOC: {
        uint64_t old = x[0], sz = x[1];
        uint64_t have = old ? dk__emu_block_size(l, old) : 0;
        if (old && !have)
            return dk_fail(err, DK_E_STOPPED, "guest called realloc(0x%llx), which malloc did not return",
                           (unsigned long long)old);
        *x0 = dk__emu_malloc(l, sz ? sz : 1, 16);
        if (*x0 && old) {
            memcpy((void *)(uintptr_t)*x0, (void *)(uintptr_t)old, (size_t)(have < sz ? have : sz));
            dk__emu_free(l, old);
        }
        break;
    }
    case DK_SP_FREE:
        if (x[0] && !dk__emu_block_size(l, x[0]))
            return dk_fail(err, DK_E_STOPPED, "guest called free(0x%llx), which malloc did not return (or freed twice)",
                           (unsigned long long)x[0]);
        if (x[0]) dk__emu_free(l, x[0]);
        break;
    case DK_SP_POSIX_MEMALIGN: {
        uint64_t align = x[1];
        if (align < 8 || (align & (align - 1)) || align > 65536) {
            *x0 = EINVAL;
            break;
        }
        uint64_t p = dk__emu_malloc(l, x[2] ? x[2] : 1, align);
        if (!p) {
            *x0 = ENOMEM;
            break;
        }
        uint64_t slot = x[0];
        if (!dk__emu_guest_ok(l, slot, 8))
            return dk_fail(err, DK_E_STOPPED, "guest called posix_memalign with a bad pointer 0x%llx",
                           (unsigned long long)slot);
        dk_wr64le((uint8_t *)(uintptr_t)slot, p);
        break;
    }
    case DK_SP_ALIGNED_ALLOC:
        if (!x[0] || (x[0] & (x[0] - 1)) || x[0] > 65536) break;
        *x0 = dk__emu_malloc(l, x[1] ? x[1] : 1, x[0] < 16 ? 16 : x[0]);
        break;
    case DK_SP_VALLOC: *x0 = dk__emu_malloc(l, x[0] ? x[0] : 1, 4096); break;
    case DK_SP_MALLOC_SIZE: *x0 = x[0] ? dk__emu_block_size(l, x[0]) : 0; break;
    case DK_SP_STRDUP: *x0 = guest_copy_string(l, (const char *)(uintptr_t)x[0]); break;
    case DK_SP_STRNDUP: {
        const char *s = (const char *)(uintptr_t)x[0];
        size_t n = strnlen(s, (size_t)x[1]);
        *x0 = dk__emu_malloc(l, n + 1, 16);
        if (*x0) {
            memcpy((void *)(uintptr_t)*x0, s, n);
            ((char *)(uintptr_t)*x0)[n] = 0;
        }
        break;
    }
#ifdef HAVE_HOST_VA
    case DK_SP_ASPRINTF:
    case DK_SP_VASPRINTF: {
        uint64_t slots = h->special == DK_SP_ASPRINTF ? sp : x[2];
        const char *fmt = (const char *)(uintptr_t)x[1];
        host_va v1 = HOST_VA_INIT(slots), v2 = HOST_VA_INIT(slots);
        va_list a1, a2;
        memcpy(&a1, &v1, sizeof v1);
        memcpy(&a2, &v2, sizeof v2);
        int n = vsnprintf(NULL, 0, fmt, a1);
        uint64_t p = n >= 0 ? dk__emu_malloc(l, (uint64_t)n + 1, 16) : 0;
        if (!p) {
            *x0 = (uint64_t)-1;
            break;
        }
        vsnprintf((char *)(uintptr_t)p, (size_t)n + 1, fmt, a2);
        if (!dk__emu_guest_ok(l, x[0], 8))
            return dk_fail(err, DK_E_STOPPED, "guest called asprintf with a bad pointer 0x%llx", (unsigned long long)x[0]);
        dk_wr64le((uint8_t *)(uintptr_t)x[0], p);
        *x0 = (uint64_t)(int64_t)n;
        break;
    }
#endif
    case DK_SP_QSORT: {
        guest_cmp g = {l, x[3], false, {0}};
        qsort_r((void *)(uintptr_t)x[0], (size_t)x[1], (size_t)x[2], run_guest_cmp, &g);
        if (g.failed) {
            if (err) *err = g.err;
            return g.err.status ? g.err.status : DK_E_STOPPED;
        }
        break;
    }
    case DK_SP_BSEARCH: {
        guest_cmp g = {l, x[4], false, {0}};
        uint64_t lo = 0, hi = x[2], size = x[3];
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            uint64_t elem = x[1] + mid * size;
            int c = run_guest_cmp((void *)(uintptr_t)x[0], (void *)(uintptr_t)elem, &g);
            if (g.failed) {
                if (err) *err = g.err;
                return g.err.status ? g.err.status : DK_E_STOPPED;
            }
            if (c == 0) {
                *x0 = elem;
                break;
            }
            if (c < 0) hi = mid;
            else lo = mid + 1;
        }
        break;
    }
    case DK_SP_ERROR: *x0 = dk__data_addr(l, LD_DATA_ERRNO); break;
    case DK_SP_GETENV: *x0 = guest_copy_string(l, getenv((const char *)(uintptr_t)x[0])); break;
    case DK_SP_STRERROR: *x0 = guest_copy_string(l, strerror((int)x[0])); break;
    case DK_SP_ABORT: return dk_fail(err, DK_E_STOPPED, "the guest called abort()");
    case DK_SP_STACK_CHK_FAIL:
        return dk_fail(err, DK_E_STOPPED, "the guest's stack protector fired (__stack_chk_fail)");
    case DK_SP_EXIT: h_exit((int)x[0]); break;
    default: return dk_fail(err, DK_E_UNSUPPORTED, "host function %s is not available under emulation", h->name);
    }
    return DK_OK;
}

dk_status dk__host_call_emulated(dk_loader *l, const dk_host_fn *h, const dk_guest_regs *r, uint64_t *x0, double *d0,
                                 dk_error *err)
{
    uint8_t *errno_slot = l->data + LD_DATA_ERRNO;
    errno = (int)dk_le32(errno_slot);
    dk_status st = DK_OK;
    *d0 = 0;
    if (h->flags & DK_HOST_SPECIAL) {
        st = special(l, h, r->x, r->sp, x0, err);
    } else if (h->flags & (DK_HOST_VARIADIC | DK_HOST_VALIST)) {
#ifdef HAVE_HOST_VA
        uint64_t x[8];
        memcpy(x, r->x, sizeof x);
        /* variadic: the arguments after the fixed ones are the stack slots; va_list: a pointer to such slots */
        host_va v = HOST_VA_INIT(h->flags & DK_HOST_VARIADIC ? r->sp : r->x[h->nfixed]);
        va_list ap;
        memcpy(&ap, &v, sizeof v);
        x[h->nfixed] = VA_ARG_VALUE(ap);
        call_generic(h->flags & DK_HOST_VARIADIC ? h->vfn : h->fn, false, x, r->d, x0, d0);
#else
        st = dk_fail(err, DK_E_UNSUPPORTED, "variadic host function %s: no va_list support on this host", h->name);
#endif
    } else {
        call_generic(h->fn, (h->flags & DK_HOST_DOUBLE) != 0, r->x, r->d, x0, d0);
    }
    dk_wr32le(errno_slot, (uint32_t)errno);
    return st;
}
