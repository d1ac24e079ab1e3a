/*
 * Native execution of x86_64 Mach-O code on an x86_64 host.
 *
 * Darwin x86_64 and Linux x86_64 share the SysV calling convention, so guest
 * functions are called directly and imports bind straight to host functions.
 * Three entry points are dyld's own and are written in assembly here because
 * they follow dyld's register conventions, not the C ones:
 *  - dyld_stub_binder: entered from __stub_helper with &__dyld_private and the
 *    lazy-bind offset pushed; preserves every argument register, binds, jumps
 *    to the target (dyld's stub_binding_helper, dyld_stub_binder.s).
 *  - the thread-local variable thunk (tlv_get_addr, threadLocalHelpers.s):
 *    rdi = descriptor, returns the variable's address in rax and preserves
 *    every other register (LLVM's CSR_64_TLS_Darwin).
 *  - ___chkstk_darwin: probes the stack for large frames; Linux grows the
 *    stack on demand, so it only returns (preserving rax, which holds the size).
 */
#include "loader_internal.h"

#if defined(__x86_64__) && defined(__linux__)

/* Save rdi rsi rdx rcx r8 r9 rax r10 r11 and xmm0-7 around a C call; rbp is the frame. */
#define SAVE_ARGS                                                                                                     \
    "  pushq %rbp\n"                                                                                                  \
    "  movq %rsp, %rbp\n"                                                                                             \
    "  subq $208, %rsp\n"                                                                                             \
    "  movq %rdi, 0(%rsp)\n"                                                                                          \
    "  movq %rsi, 8(%rsp)\n"                                                                                          \
    "  movq %rdx, 16(%rsp)\n"                                                                                         \
    "  movq %rcx, 24(%rsp)\n"                                                                                         \
    "  movq %r8, 32(%rsp)\n"                                                                                          \
    "  movq %r9, 40(%rsp)\n"                                                                                          \
    "  movq %rax, 48(%rsp)\n"                                                                                         \
    "  movq %r10, 56(%rsp)\n"                                                                                         \
    "  movq %r11, 64(%rsp)\n"                                                                                         \
    "  movdqu %xmm0, 80(%rsp)\n"                                                                                      \
    "  movdqu %xmm1, 96(%rsp)\n"                                                                                      \
    "  movdqu %xmm2, 112(%rsp)\n"                                                                                     \
    "  movdqu %xmm3, 128(%rsp)\n"                                                                                     \
    "  movdqu %xmm4, 144(%rsp)\n"                                                                                     \
    "  movdqu %xmm5, 160(%rsp)\n"                                                                                     \
    "  movdqu %xmm6, 176(%rsp)\n"                                                                                     \
    "  movdqu %xmm7, 192(%rsp)\n"

#define RESTORE_ARGS_BUT_RAX                                                                                          \
    "  movq 0(%rsp), %rdi\n"                                                                                          \
    "  movq 8(%rsp), %rsi\n"                                                                                          \
    "  movq 16(%rsp), %rdx\n"                                                                                         \
    "  movq 24(%rsp), %rcx\n"                                                                                         \
    "  movq 32(%rsp), %r8\n"                                                                                          \
    "  movq 40(%rsp), %r9\n"                                                                                          \
    "  movq 56(%rsp), %r10\n"                                                                                         \
    "  movdqu 80(%rsp), %xmm0\n"                                                                                      \
    "  movdqu 96(%rsp), %xmm1\n"                                                                                      \
    "  movdqu 112(%rsp), %xmm2\n"                                                                                     \
    "  movdqu 128(%rsp), %xmm3\n"                                                                                     \
    "  movdqu 144(%rsp), %xmm4\n"                                                                                     \
    "  movdqu 160(%rsp), %xmm5\n"                                                                                     \
    "  movdqu 176(%rsp), %xmm6\n"                                                                                     \
    "  movdqu 192(%rsp), %xmm7\n"

__asm__(".text\n"
        ".globl dk__x86_64_stub_binder\n"
        ".hidden dk__x86_64_stub_binder\n"
        ".type dk__x86_64_stub_binder,@function\n"
        ".p2align 4\n"
        "dk__x86_64_stub_binder:\n"
        /* stack: [rsp] = &__dyld_private, [rsp+8] = lazy-bind offset, [rsp+16] = return address */
        SAVE_ARGS
        "  movq 8(%rbp), %rdi\n"
        "  movq 16(%rbp), %rsi\n"
        "  call dk__x86_64_lazy_bind\n"
        "  movq %rax, %r11\n"
        RESTORE_ARGS_BUT_RAX
        "  movq 48(%rsp), %rax\n"
        "  movq %rbp, %rsp\n"
        "  popq %rbp\n"
        "  addq $16, %rsp\n"
        "  jmpq *%r11\n"
        ".size dk__x86_64_stub_binder, .-dk__x86_64_stub_binder\n"

        ".globl dk__x86_64_tlv_thunk\n"
        ".hidden dk__x86_64_tlv_thunk\n"
        ".type dk__x86_64_tlv_thunk,@function\n"
        ".p2align 4\n"
        "dk__x86_64_tlv_thunk:\n"
        SAVE_ARGS
        "  call dk__x86_64_tlv_address\n"
        RESTORE_ARGS_BUT_RAX
        "  movq 64(%rsp), %r11\n"
        "  movq %rbp, %rsp\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size dk__x86_64_tlv_thunk, .-dk__x86_64_tlv_thunk\n"

        ".globl dk__x86_64_nop\n"
        ".hidden dk__x86_64_nop\n"
        ".type dk__x86_64_nop,@function\n"
        ".p2align 4\n"
        "dk__x86_64_nop:\n"
        "  ret\n"
        ".size dk__x86_64_nop, .-dk__x86_64_nop\n");

void dk__x86_64_stub_binder(void);
void dk__x86_64_tlv_thunk(void);
void dk__x86_64_nop(void);
uint64_t dk__x86_64_lazy_bind(uint64_t cache, uint64_t offset) __attribute__((visibility("hidden")));
uint64_t dk__x86_64_tlv_address(uint64_t desc) __attribute__((visibility("hidden")));

/* Called by the binder: CACHE is &__dyld_private, which holds the image's ld_image. */
uint64_t dk__x86_64_lazy_bind(uint64_t cache, uint64_t offset)
{
    ld_image *g = (ld_image *)(uintptr_t)dk_le64((const uint8_t *)(uintptr_t)cache);
    if (!g || g->magic != LD_IMAGE_MAGIC || g->dyld_private != cache) return 0; /* the jump to 0 faults */
    return dk__lazy_bind(g->loader, g, offset);
}

/* Called by the TLV thunk: the descriptor's key holds the image's ld_tlv. */
uint64_t dk__x86_64_tlv_address(uint64_t desc)
{
    const ld_tlv *t = (const ld_tlv *)(uintptr_t)dk_le64((const uint8_t *)(uintptr_t)desc + 8);
    if (!t || t->magic != LD_IMAGE_MAGIC) return 0;
    return dk__tlv_address(t->loader, desc);
}

bool dk__native_available(void) { return true; }
uint64_t dk__native_binder(void) { return (uint64_t)(uintptr_t)dk__x86_64_stub_binder; }
uint64_t dk__native_tlv_thunk(void) { return (uint64_t)(uintptr_t)dk__x86_64_tlv_thunk; }
uint64_t dk__native_nop(void) { return (uint64_t)(uintptr_t)dk__x86_64_nop; }

typedef uint64_t (*fn6)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

dk_status dk__native_call(dk_loader *l, uint64_t address, const uint64_t *args, size_t nargs, uint64_t *result,
                          dk_error *err)
{
    (void)l;
    if (nargs > 6) return dk_fail(err, DK_E_ARG, "at most 6 integer arguments natively");
    uint64_t a[6] = {0};
    for (size_t i = 0; i < nargs; i++) a[i] = args[i];
    /* The guest follows the SysV ABI; integer arguments beyond the callee's
     * parameters are ignored by it. */
    fn6 f = (fn6)(uintptr_t)address;
    *result = f(a[0], a[1], a[2], a[3], a[4], a[5]);
    return DK_OK;
}

#else /* not an x86_64 Linux host */

bool dk__native_available(void) { return false; }
uint64_t dk__native_binder(void) { return 0; }
uint64_t dk__native_tlv_thunk(void) { return 0; }
uint64_t dk__native_nop(void) { return 0; }

dk_status dk__native_call(dk_loader *l, uint64_t address, const uint64_t *args, size_t nargs, uint64_t *result,
                          dk_error *err)
{
    (void)l;
    (void)address;
    (void)args;
    (void)nargs;
    (void)result;
    return dk_fail(err, DK_E_UNSUPPORTED, "x86_64 code runs natively only on x86_64 Linux hosts");
}

#endif
