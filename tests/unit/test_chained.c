/*
 * Chained fixups: every DYLD_CHAINED_PTR_* format through dk_chained_decode
 * with hand-computed vectors, and synthetic images (header + LC_SEGMENT(_64)s
 * + LC_DYLD_CHAINED_FIXUPS written byte by byte) walked by
 * dk_macho_foreach_fixup / dk_macho_foreach_chain.
 *
 * Every raw value below was composed from the bitfields of Apple's
 * <mach-o/fixup-chains.h> (fields listed low bit first in the comment next to
 * it) and every expected value worked out from those fields and the format's
 * rule (target is a vmaddr, or an offset from the image base), not by running
 * the decoder.
 */
#include "dyldkit/dyldkit.h"
#include "macho_synth.h"
#include "unit.h"

#define B64 0x100000000ull /* image base of the 64-bit synthetic images */
#define B32 0x4000u        /* image base of the 32-bit ones */

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

#define CHECK_MSG(err, needle)                                                                                   \
    do {                                                                                                         \
        unit_checks++;                                                                                           \
        if (!contains((err).message, needle)) {                                                                  \
            unit_failures++;                                                                                     \
            fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, (err).message, needle); \
        }                                                                                                        \
    } while (0)

/* ------------------------------------------------------- dk_chained_decode */

typedef struct dec {
    dk_status st;
    dk_fixup f;
    uint32_t next;
} dec;

static dec decode(uint16_t fmt, uint64_t raw, uint64_t base)
{
    dec d;
    d.st = dk_chained_decode(fmt, raw, base, NULL, 0, 0x100000, &d.f, &d.next);
    return d;
}

static void check_rebase(dec d, uint64_t target, uint8_t high8, uint32_t next, int line)
{
    unit_checks++;
    if (d.st != DK_OK || d.f.kind != DK_FIXUP_REBASE || d.f.target != target || d.f.high8 != high8 || d.next != next ||
        d.f.auth) {
        unit_failures++;
        fprintf(stderr, "line %d: rebase st %d kind %d target 0x%llx high8 0x%x next %u auth %d; want target 0x%llx high8 0x%x next %u\n",
                line, d.st, d.f.kind, (unsigned long long)d.f.target, d.f.high8, d.next, d.f.auth,
                (unsigned long long)target, high8, next);
    }
}

static void check_auth(dec d, uint8_t key, uint16_t diversity, bool addr_div, int line)
{
    unit_checks++;
    if (!d.f.auth || d.f.key != key || d.f.diversity != diversity || d.f.addr_div != addr_div) {
        unit_failures++;
        fprintf(stderr, "line %d: auth %d key %u diversity 0x%x addr_div %d; want key %u diversity 0x%x addr_div %d\n", line,
                d.f.auth, d.f.key, d.f.diversity, d.f.addr_div, key, diversity, addr_div);
    }
}

static void check_bind(dec d, uint32_t import, int64_t addend, uint32_t next, int line)
{
    unit_checks++;
    if (d.st != DK_OK || d.f.kind != DK_FIXUP_BIND || d.f.import_index != import || d.f.addend != addend || d.next != next) {
        unit_failures++;
        fprintf(stderr, "line %d: bind st %d kind %d import 0x%x addend %lld next %u; want import 0x%x addend %lld next %u\n",
                line, d.st, d.f.kind, d.f.import_index, (long long)d.f.addend, d.next, import, (long long)addend, next);
    }
}

static void test_strides(void)
{
    /* <mach-o/fixup-chains.h>: the stride each format's comment gives */
    static const unsigned want[16] = {0, 8, 4, 4, 4, 4, 4, 4, 4, 8, 4, 1, 8, 8, 4, 0};
    for (uint16_t f = 0; f < 16; f++) CHECK_EQ_U64(dk_pointer_format_stride(f), want[f]);
    CHECK_STR(dk_pointer_format_name(12), "DYLD_CHAINED_PTR_ARM64E_USERLAND24");
    CHECK_STR(dk_pointer_format_name(14), "DYLD_CHAINED_PTR_ARM64E_SEGMENTED");
    CHECK_STR(dk_pointer_format_name(15), "unknown");
}

static void test_decode_arm64e(void)
{
    dec d;
    /* DYLD_CHAINED_PTR_ARM64E (1): unauth rebase target is a vmaddr.
     * rebase {target 0x100001234, high8 0, next 3, bind 0, auth 0} */
    d = decode(1, 0x0018000100001234ull, B64);
    check_rebase(d, 0x100001234ull, 0, 3, __LINE__);
    CHECK_EQ_U64(d.f.width, 8);
    CHECK_EQ_U64(d.f.raw, 0x0018000100001234ull);
    CHECK_EQ_U64(d.f.pointer_format, 1);
    /* rebase {target 0x100004000, high8 0xAB, next 1}: high8 is kept apart from target */
    check_rebase(decode(1, 0x000D580100004000ull, B64), 0x100004000ull, 0xAB, 1, __LINE__);
    /* bind {ordinal 5, zero 0, addend 0x7FFFC (19-bit -4), next 2, bind 1, auth 0} */
    d = decode(1, 0x4017FFFC00000005ull, B64);
    check_bind(d, 5, -4, 2, __LINE__);
    CHECK(!d.f.auth);
    /* bind {ordinal 0xFFFF, addend 0x3FFFF (largest positive), next 0} */
    check_bind(decode(1, 0x4003FFFF0000FFFFull, B64), 0xFFFF, 0x3FFFF, 0, __LINE__);
    /* bind {ordinal 5, zero 1 (bit 16)}: ARM64E ordinals are 16 bits, bit 16 is not part of it */
    check_bind(decode(1, 0x4000000000010005ull, B64), 5, 0, 0, __LINE__);
    /* auth rebase {target 0x4010, diversity 0x1234, addrDiv 1, key 2 (DA), next 7, bind 0, auth 1}:
     * the auth target is a runtime offset, so base + 0x4010 */
    d = decode(1, 0x803D123400004010ull, B64);
    check_rebase((dec){d.st, (dk_fixup){.kind = d.f.kind, .target = d.f.target}, d.next}, B64 + 0x4010, 0, 7, __LINE__);
    check_auth(d, DK_KEY_DA, 0x1234, true, __LINE__);
    CHECK_EQ_U64(d.f.high8, 0);
    /* auth rebase {target 0x20, diversity 0, addrDiv 0, key 0 (IA), next 0} */
    d = decode(1, 0x8000000000000020ull, B64);
    CHECK_EQ_U64(d.f.target, B64 + 0x20);
    check_auth(d, DK_KEY_IA, 0, false, __LINE__);
    /* auth bind {ordinal 0x102, zero 0, diversity 0xBEEF, addrDiv 0, key 1 (IB), next 0, bind 1, auth 1} */
    d = decode(1, 0xC002BEEF00000102ull, B64);
    check_bind(d, 0x102, 0, 0, __LINE__);
    check_auth(d, DK_KEY_IB, 0xBEEF, false, __LINE__);
    /* auth bind {ordinal 7, diversity 0xFFFF, addrDiv 1, key 3 (DB), next 0x7FF (largest)}: no inline addend */
    d = decode(1, 0xFFFFFFFF00000007ull, B64);
    check_bind(d, 7, 0, 0x7FF, __LINE__);
    check_auth(d, DK_KEY_DB, 0xFFFF, true, __LINE__);

    /* DYLD_CHAINED_PTR_ARM64E_USERLAND (9): same bits, unauth target is a vm offset.
     * rebase {target 0x1234, high8 5, next 0} */
    check_rebase(decode(9, 0x0000280000001234ull, B64), B64 + 0x1234, 5, 0, __LINE__);
    /* DYLD_CHAINED_PTR_ARM64E_KERNEL (7): unauth target is a vm offset; stride 4 (next unchanged) */
    check_rebase(decode(7, 0x0018000100001234ull, 0xfffffe0000000000ull), 0xfffffe0000000000ull + 0x100001234ull, 0, 3,
                 __LINE__);
    /* DYLD_CHAINED_PTR_ARM64E_FIRMWARE (10): unauth target is a vmaddr */
    check_rebase(decode(10, 0x0018000100001234ull, B64), 0x100001234ull, 0, 3, __LINE__);
    /* same auth rebase in format 7: base + target */
    d = decode(7, 0x803D123400004010ull, 0x10000ull);
    CHECK_EQ_U64(d.f.target, 0x14010);
    check_auth(d, DK_KEY_DA, 0x1234, true, __LINE__);

    /* DYLD_CHAINED_PTR_ARM64E_USERLAND24 (12).
     * bind24 {ordinal 0xABCDEF, zero 0, addend 0x40000 (19-bit minimum, -262144), next 1, bind 1, auth 0} */
    check_bind(decode(12, 0x400C000000ABCDEFull, B64), 0xABCDEF, -262144, 1, __LINE__);
    /* the same word in format 1 has a 16-bit ordinal: 0xCDEF */
    check_bind(decode(1, 0x400C000000ABCDEFull, B64), 0xCDEF, -262144, 1, __LINE__);
    /* the bit-16 word above: 24-bit ordinal 0x10005 */
    check_bind(decode(12, 0x4000000000010005ull, B64), 0x10005, 0, 0, __LINE__);
    /* auth_bind24 {ordinal 0x123456, zero 0, diversity 0x42, addrDiv 1, key 3 (DB), next 2} */
    d = decode(12, 0xC017004200123456ull, B64);
    check_bind(d, 0x123456, 0, 2, __LINE__);
    check_auth(d, DK_KEY_DB, 0x42, true, __LINE__);
    /* unauth rebase in 12: vm offset */
    check_rebase(decode(12, 0x0000280000001234ull, B64), B64 + 0x1234, 5, 0, __LINE__);
}

static void test_decode_generic(void)
{
    dec d;
    /* DYLD_CHAINED_PTR_64 (2): rebase {target 0x100002000 (vmaddr), high8 0x7F, reserved 0, next 0xFFF, bind 0} */
    d = decode(2, 0x7FF807F100002000ull, B64);
    check_rebase(d, 0x100002000ull, 0x7F, 0xFFF, __LINE__);
    CHECK_EQ_U64(d.f.width, 8);
    /* bind {ordinal 0xABCD (24 bits), addend 0xFF (8 bits, unsigned), reserved 0, next 2, bind 1} */
    check_bind(decode(2, 0x80100000FF00ABCDull, B64), 0xABCD, 255, 2, __LINE__);
    /* DYLD_CHAINED_PTR_64_OFFSET (6): rebase {target 0x2000 (vm offset), high8 0, next 1} */
    check_rebase(decode(6, 0x0008000000002000ull, B64), B64 + 0x2000, 0, 1, __LINE__);
    /* the format-2 rebase word read as 64_OFFSET: base + 0x100002000 */
    check_rebase(decode(6, 0x7FF807F100002000ull, B64), B64 + 0x100002000ull, 0x7F, 0xFFF, __LINE__);
    check_bind(decode(6, 0x80100000FF00ABCDull, B64), 0xABCD, 255, 2, __LINE__);

    /* DYLD_CHAINED_PTR_32 (3), max_valid_pointer 0x100000 (decode() passes it).
     * rebase {target 0x5010 (vmaddr), next 2, bind 0} */
    d = decode(3, 0x08005010u, B32);
    check_rebase(d, 0x5010, 0, 2, __LINE__);
    CHECK_EQ_U64(d.f.width, 4);
    /* bind {ordinal 0x12345 (20 bits), addend 63 (6 bits), next 31, bind 1} */
    check_bind(decode(3, 0xFFF12345u, B32), 0x12345, 63, 31, __LINE__);
    /* target 0x2081234 > max_valid_pointer: not a pointer; the value is target - bias,
     * bias = (64MB + max_valid_pointer) / 2 = (0x4000000 + 0x100000) / 2 = 0x2080000, so 0x1234 */
    d = decode(3, 0x06081234u, B32);
    CHECK_EQ_U64(d.st, DK_E_NOTFOUND);
    CHECK_EQ_U64(d.f.target, 0x1234);
    CHECK_EQ_U64(d.next, 1);
    /* target == max_valid_pointer is still a pointer */
    check_rebase(decode(3, 0x00100000u, B32), 0x100000, 0, 0, __LINE__);

    /* DYLD_CHAINED_PTR_32_CACHE (4): {target 0x12345678 (30 bits, offset from the cache base), next 3} */
    d = decode(4, 0xD2345678u, 0x20000000u);
    check_rebase(d, 0x20000000u + 0x12345678u, 0, 3, __LINE__);
    CHECK_EQ_U64(d.f.width, 4);
    /* DYLD_CHAINED_PTR_32_FIRMWARE (5): {target 0x3ABCDEF (26 bits, vmaddr), next 0x3F (6 bits)} */
    check_rebase(decode(5, 0xFFABCDEFu, 0x20000000u), 0x3ABCDEF, 0, 0x3F, __LINE__);

    /* DYLD_CHAINED_PTR_64_KERNEL_CACHE (8): {target 0x3000, cacheLevel 1, diversity 0xCAFE, addrDiv 1,
     * key 2 (DA), next 0x800, isAuth 1}: base + target (the cache level is not an address) */
    d = decode(8, 0xC005CAFE40003000ull, 0xfffffe0007004000ull);
    CHECK_EQ_U64(d.f.kind, DK_FIXUP_REBASE);
    CHECK_EQ_U64(d.f.target, 0xfffffe0007004000ull + 0x3000);
    CHECK_EQ_U64(d.next, 0x800);
    check_auth(d, DK_KEY_DA, 0xCAFE, true, __LINE__);
    /* {target 0x1000, everything else 0, next 1, isAuth 0} */
    check_rebase(decode(8, 0x0008000000001000ull, 0xfffffe0007004000ull), 0xfffffe0007005000ull, 0, 1, __LINE__);
    /* DYLD_CHAINED_PTR_X86_64_KERNEL_CACHE (11): same layout (1-byte stride) */
    check_rebase(decode(11, 0x0008000000001000ull, 0xffffff8000000000ull), 0xffffff8000001000ull, 0, 1, __LINE__);
    d = decode(11, 0xC005CAFE40003000ull, 0xffffff8000000000ull);
    CHECK_EQ_U64(d.f.target, 0xffffff8000003000ull);
    check_auth(d, DK_KEY_DA, 0xCAFE, true, __LINE__);

    /* DYLD_CHAINED_PTR_ARM64E_SHARED_CACHE (13): rebase {runtimeOffset 0x200001000 (34 bits), high8 0x12,
     * unused 0, next 0x7FF (bits 52..62), auth 0} */
    check_rebase(decode(13, 0x7FF0004A00001000ull, 0x180000000ull), 0x180000000ull + 0x200001000ull, 0x12, 0x7FF,
                 __LINE__);
    /* auth {runtimeOffset 0x3000, diversity 0xFFFF, addrDiv 0, keyIsData 1 (DA), next 1, auth 1} */
    d = decode(13, 0x801BFFFC00003000ull, 0x180000000ull);
    CHECK_EQ_U64(d.f.target, 0x180003000ull);
    CHECK_EQ_U64(d.next, 1);
    check_auth(d, DK_KEY_DA, 0xFFFF, false, __LINE__);
    /* auth {runtimeOffset 0x3008, diversity 1, addrDiv 1, keyIsData 0 (IA), next 0} */
    d = decode(13, 0x8004000400003008ull, 0x180000000ull);
    CHECK_EQ_U64(d.f.target, 0x180003008ull);
    check_auth(d, DK_KEY_IA, 1, true, __LINE__);

    /* DYLD_CHAINED_PTR_ARM64E_SEGMENTED (14): target = address of segment targetSegIndex + targetSegOffset.
     * rebase {targetSegOffset 0x123, targetSegIndex 2 | padding 0, next 5, auth 0} */
    const uint64_t segs[3] = {B64, B64 + 0x1000, B64 + 0x3000};
    dk_fixup f;
    uint32_t next;
    CHECK_EQ_U64(dk_chained_decode(14, 0x0028000020000123ull, B64, segs, 3, 0, &f, &next), DK_OK);
    CHECK_EQ_U64(f.target, B64 + 0x3123);
    CHECK_EQ_U64(next, 5);
    CHECK(!f.auth);
    /* auth {targetSegOffset 0x10, targetSegIndex 1 | diversity 0xFF, addrDiv 1, key 1 (IB), next 0, auth 1} */
    CHECK_EQ_U64(dk_chained_decode(14, 0x800300FF10000010ull, B64, segs, 3, 0, &f, &next), DK_OK);
    CHECK_EQ_U64(f.target, B64 + 0x1010);
    CHECK(f.auth && f.key == DK_KEY_IB && f.diversity == 0xFF && f.addr_div);
    /* targetSegIndex 3 of 3 segments */
    CHECK_EQ_U64(dk_chained_decode(14, 0x0000000030000010ull, B64, segs, 3, 0, &f, &next), DK_E_MALFORMED);

    /* no such formats */
    CHECK_EQ_U64(decode(0, 0, B64).st, DK_E_UNSUPPORTED);
    CHECK_EQ_U64(decode(15, 0, B64).st, DK_E_UNSUPPORTED);
    CHECK_EQ_U64(decode(0xFFFF, 0, B64).st, DK_E_UNSUPPORTED);
}

/* ------------------------------------------------------- synthetic images */

#define MAXFX 64

typedef struct fx_list {
    dk_fixup f[MAXFX];
    size_t n;
} fx_list;

static int collect(void *ctx, const dk_fixup *f)
{
    fx_list *l = ctx;
    if (l->n < MAXFX) l->f[l->n] = *f;
    l->n++;
    return 0;
}

typedef struct ev_list {
    dk_chain_event ev[MAXFX];
    uint32_t page[MAXFX];
    uint16_t start[MAXFX];
    uint64_t addr[MAXFX];
    uint32_t next[MAXFX];
    dk_chained_starts starts;
    size_t n;
} ev_list;

static int collect_chain(void *ctx, const dk_chain_item *it)
{
    ev_list *l = ctx;
    if (l->n < MAXFX) {
        l->ev[l->n] = it->event;
        l->page[l->n] = it->page_index;
        l->start[l->n] = it->page_start;
        l->addr[l->n] = it->fixup ? it->fixup->address : 0;
        l->next[l->n] = it->next;
        if (it->event == DK_CHAIN_SEGMENT) l->starts = *it->starts;
    }
    l->n++;
    return 0;
}

/* A 64-bit image in the default layout with two dylibs and chained fixups at LINKEDIT+0. */
static void std64(synth *s, uint32_t cputype, uint32_t cpusubtype)
{
    sy_init(s, true, cputype, cpusubtype, B64);
    sy_std_segments(s);
    sy_dylib(s, "/usr/lib/libA.dylib");
    sy_dylib(s, "/usr/lib/libB.dylib");
}

static void std32(synth *s, uint32_t cputype, uint32_t cpusubtype)
{
    sy_init(s, false, cputype, cpusubtype, B32);
    sy_std_segments(s);
    sy_dylib(s, "/usr/lib/libA.dylib");
    sy_dylib(s, "/usr/lib/libB.dylib");
}

static dk_macho *open_synth(synth *s, dk_error *err)
{
    dk_macho *m = NULL;
    memset(err, 0, sizeof *err);
    if (dk_macho_open(s->buf, s->size, "synth", &m, err) != DK_OK) {
        fprintf(stderr, "synthetic image did not open: %s\n", err->message);
        return NULL;
    }
    return m;
}

/* Walk the fixups of S; returns the status, fills L and ERR. */
static dk_status walk(synth *s, fx_list *l, dk_error *err)
{
    memset(l, 0, sizeof *l);
    dk_macho *m = open_synth(s, err);
    if (!m) return DK_E_ARG;
    dk_status st = dk_macho_foreach_fixup(m, collect, l, err);
    dk_macho_close(m);
    return st;
}

#define CHECK_FX_REBASE(F, ADDR, TARGET, HIGH8)                                                                  \
    do {                                                                                                       \
        CHECK_EQ_U64((F).kind, DK_FIXUP_REBASE);                                                               \
        CHECK_EQ_U64((F).address, (ADDR));                                                                     \
        CHECK_EQ_U64((F).target, (TARGET));                                                                    \
        CHECK_EQ_U64((F).high8, (HIGH8));                                                                      \
    } while (0)

#define CHECK_FX_BIND(F, ADDR, ORD, SYM, ADDEND, WEAK)                                                           \
    do {                                                                                                       \
        CHECK_EQ_U64((F).kind, DK_FIXUP_BIND);                                                                 \
        CHECK_EQ_U64((F).address, (ADDR));                                                                     \
        CHECK_EQ_U64((uint64_t)(int64_t)(F).ordinal, (uint64_t)(int64_t)(ORD));                               \
        CHECK_STR((F).symbol, (SYM));                                                                          \
        CHECK_EQ_U64((uint64_t)(F).addend, (uint64_t)(int64_t)(ADDEND));                                       \
        CHECK_EQ_U64((F).weak_import, (WEAK));                                                                 \
    } while (0)

/* dyld_chained_import {lib_ordinal:8, weak_import:1, name_offset:23} */
static uint32_t imp32(uint32_t ord8, uint32_t weak, uint32_t name_off) { return ord8 | weak << 8 | name_off << 9; }

/*
 * DYLD_CHAINED_PTR_64 with DYLD_CHAINED_IMPORT: rebases (with and without
 * high8), binds with an inline addend, every special ordinal, two pages.
 */
static void test_image_ptr64(void)
{
    synth s;
    std64(&s, SY_CPU_X86_64, 3);
    /* pool: "\0_foo\0_bar\0_main_sym\0_flat_sym\0_weak_sym\0_self_sym\0" -> offsets 1, 6, 11, 21, 31, 41 */
    static const char pool[] = "\0_foo\0_bar\0_main_sym\0_flat_sym\0_weak_sym\0_self_sym";
    uint8_t imps[6 * 4];
    sy_le32(imps + 0, imp32(1, 0, 1));     /* libA _foo */
    sy_le32(imps + 4, imp32(2, 1, 6));     /* libB _bar, weak */
    sy_le32(imps + 8, imp32(0xFF, 0, 11)); /* -1 main executable */
    sy_le32(imps + 12, imp32(0xFE, 0, 21)); /* -2 flat lookup */
    sy_le32(imps + 16, imp32(0xFD, 0, 31)); /* -3 weak lookup */
    sy_le32(imps + 20, imp32(0x00, 0, 41)); /* 0 self */
    static const uint16_t starts[2] = {0x10, 0x0};
    sy_chained c = {3, 1, 0x1000, 2, 0x1000, 0, 2, starts, 2, 1, imps, sizeof imps, 6, pool, sizeof pool, 0};
    sy_chained_layout L = sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
    sy_linkedit_cmd(&s, SY_LC_DYLD_CHAINED_FIXUPS, SY_LINKEDIT_OFF, L.size);
    /* page 0 of __DATA (B+0x1000), DYLD_CHAINED_PTR_64, 4-byte stride:
     * 0x10 rebase {target 0x100000800, high8 0, next 2}         -> 0x18
     * 0x18 bind {ordinal 0, addend 0, next 2, bind}             -> 0x20
     * 0x20 bind {ordinal 1, addend 7, next 4}                   -> 0x30
     * 0x30 rebase {target 0x100001000, high8 0x80, next 2}      -> 0x38
     * 0x38 bind {ordinal 2, next 2}; 0x40 {3, next 2}; 0x48 {4, next 2}; 0x50 {5, next 0} */
    uint32_t d = SY_DATA_OFF;
    sy_w64(&s, d + 0x10, 0x0010000100000800ull);
    sy_w64(&s, d + 0x18, 0x8010000000000000ull);
    sy_w64(&s, d + 0x20, 0x8020000007000001ull);
    sy_w64(&s, d + 0x30, 0x0010080100001000ull);
    sy_w64(&s, d + 0x38, 0x8010000000000002ull);
    sy_w64(&s, d + 0x40, 0x8010000000000003ull);
    sy_w64(&s, d + 0x48, 0x8010000000000004ull);
    sy_w64(&s, d + 0x50, 0x8000000000000005ull);
    /* page 1 (B+0x2000): 0x0 rebase {target 0x100002008, next 0} */
    sy_w64(&s, d + 0x1000, 0x0000000100002008ull);

    dk_error err;
    dk_macho *m = open_synth(&s, &err);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_EQ_U64(dk_macho_fixup_encoding(m), DK_ENCODING_CHAINED);
    dk_chained_header h;
    CHECK_EQ_U64(dk_macho_chained_header(m, &h, &err), DK_OK);
    CHECK_EQ_U64(h.starts_offset, 32);
    CHECK_EQ_U64(h.imports_count, 6);
    CHECK_EQ_U64(h.imports_format, 1);
    CHECK_EQ_U64(h.seg_count, 3);
    CHECK_EQ_U64(h.dataoff, SY_LINKEDIT_OFF);
    const dk_chained_import *imp;
    size_t nimp;
    CHECK_EQ_U64(dk_macho_chained_imports(m, &imp, &nimp, &err), DK_OK);
    CHECK_EQ_U64(nimp, 6);
    if (nimp == 6) {
        static const int ords[6] = {1, 2, -1, -2, -3, 0};
        static const char *const names[6] = {"_foo", "_bar", "_main_sym", "_flat_sym", "_weak_sym", "_self_sym"};
        for (int i = 0; i < 6; i++) {
            CHECK_EQ_U64((int64_t)imp[i].lib_ordinal, (int64_t)ords[i]);
            CHECK_STR(imp[i].name, names[i]);
            CHECK_EQ_U64(imp[i].addend, 0);
        }
        CHECK(imp[1].weak_import && !imp[0].weak_import);
        CHECK_EQ_U64(imp[1].name_offset, 6);
    }

    fx_list l;
    memset(&l, 0, sizeof l);
    CHECK_EQ_U64(dk_macho_foreach_fixup(m, collect, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 9);
    uint64_t D = B64 + SY_DATA_OFF;
    if (l.n == 9) {
        CHECK_FX_REBASE(l.f[0], D + 0x10, 0x100000800ull, 0);
        CHECK_FX_BIND(l.f[1], D + 0x18, 1, "_foo", 0, false);
        CHECK_FX_BIND(l.f[2], D + 0x20, 2, "_bar", 7, true);
        CHECK_FX_REBASE(l.f[3], D + 0x30, 0x100001000ull, 0x80);
        CHECK_FX_BIND(l.f[4], D + 0x38, -1, "_main_sym", 0, false);
        CHECK_FX_BIND(l.f[5], D + 0x40, -2, "_flat_sym", 0, false);
        CHECK_FX_BIND(l.f[6], D + 0x48, -3, "_weak_sym", 0, false);
        CHECK_FX_BIND(l.f[7], D + 0x50, 0, "_self_sym", 0, false);
        CHECK_FX_REBASE(l.f[8], D + 0x1000, 0x100002008ull, 0);
        for (size_t i = 0; i < 9; i++) {
            CHECK_EQ_U64(l.f[i].segment, 1);
            CHECK_EQ_U64(l.f[i].section, 1); /* __data; __text is section 0 */
            CHECK_EQ_U64(l.f[i].width, 8);
            CHECK_EQ_U64(l.f[i].pointer_format, 2);
            CHECK(!l.f[i].auth);
        }
        CHECK_EQ_U64(l.f[2].import_index, 1);
        CHECK_EQ_U64(l.f[2].raw, 0x8020000007000001ull);
    }

    /* the detailed walk: one segment, two pages, each entry with its next */
    ev_list e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_U64(dk_macho_foreach_chain(m, collect_chain, &e, &err), DK_OK);
    CHECK_EQ_U64(e.n, 1 + 1 + 8 + 1 + 1);
    if (e.n == 12) {
        CHECK_EQ_U64(e.ev[0], DK_CHAIN_SEGMENT);
        CHECK_EQ_U64(e.starts.seg_index, 1);
        CHECK_EQ_U64(e.starts.page_size, 0x1000);
        CHECK_EQ_U64(e.starts.pointer_format, 2);
        CHECK_EQ_U64(e.starts.segment_offset, 0x1000);
        CHECK_EQ_U64(e.starts.page_count, 2);
        CHECK_EQ_U64(e.starts.size, 22 + 4);
        CHECK_EQ_U64(e.ev[1], DK_CHAIN_PAGE);
        CHECK_EQ_U64(e.start[1], 0x10);
        static const uint32_t nexts[8] = {2, 2, 4, 2, 2, 2, 2, 0};
        for (int i = 0; i < 8; i++) {
            CHECK_EQ_U64(e.ev[2 + i], DK_CHAIN_FIXUP);
            CHECK_EQ_U64(e.next[2 + i], nexts[i]);
        }
        CHECK_EQ_U64(e.ev[10], DK_CHAIN_PAGE);
        CHECK_EQ_U64(e.page[10], 1);
        CHECK_EQ_U64(e.start[10], 0);
        CHECK_EQ_U64(e.addr[11], D + 0x1000);
    }
    /* pointer reads see the fixups */
    dk_pointer p;
    CHECK_EQ_U64(dk_macho_read_pointer(m, D + 0x30, &p, &err), DK_OK);
    CHECK_EQ_U64(p.kind, DK_PTR_REBASE);
    CHECK_EQ_U64(p.value, 0x8000000100001000ull);
    CHECK_EQ_U64(dk_macho_read_pointer(m, D + 0x20, &p, &err), DK_OK);
    CHECK_EQ_U64(p.kind, DK_PTR_BIND);
    CHECK_STR(p.symbol, "_bar");
    dk_macho_close(m);
}

/* DYLD_CHAINED_PTR_64_OFFSET with DYLD_CHAINED_IMPORT_ADDEND: total addend = import addend + inline addend. */
static void test_image_offset_addend(void)
{
    synth s;
    std64(&s, SY_CPU_ARM64, 0);
    static const char pool[] = "\0_foo\0_bar";
    uint8_t imps[2 * 8];
    /* dyld_chained_import_addend {lib_ordinal:8, weak_import:1, name_offset:23; int32 addend} */
    sy_le32(imps + 0, imp32(1, 0, 1));
    sy_le32(imps + 4, (uint32_t)-16);
    sy_le32(imps + 8, imp32(2, 0, 6));
    sy_le32(imps + 12, 0x7FFFFFFF);
    static const uint16_t starts[2] = {0x0, 0xFFFF};
    sy_chained c = {3, 1, 0x1000, 6, 0x1000, 0, 2, starts, 2, 2, imps, sizeof imps, 2, pool, sizeof pool, 0};
    sy_chained_layout L = sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
    sy_linkedit_cmd(&s, SY_LC_DYLD_CHAINED_FIXUPS, SY_LINKEDIT_OFF, L.size);
    /* 0x00 bind {ordinal 0, addend 5, next 2}; 0x08 bind {ordinal 1, addend 255, next 2};
     * 0x10 rebase {target 0x1800 (vm offset), high8 1, next 0} */
    sy_w64(&s, SY_DATA_OFF + 0x00, 0x8010000005000000ull);
    sy_w64(&s, SY_DATA_OFF + 0x08, 0x80100000FF000001ull);
    sy_w64(&s, SY_DATA_OFF + 0x10, 0x0000001000001800ull);
    fx_list l;
    dk_error err;
    CHECK_EQ_U64(walk(&s, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 3);
    uint64_t D = B64 + SY_DATA_OFF;
    CHECK_FX_BIND(l.f[0], D, 1, "_foo", -16 + 5, false);
    CHECK_FX_BIND(l.f[1], D + 8, 2, "_bar", 0x7FFFFFFFll + 255, false);
    CHECK_FX_REBASE(l.f[2], D + 0x10, B64 + 0x1800, 1);
}

/* dyld_chained_import_addend64 {lib_ordinal:16, weak_import:1, reserved:15, name_offset:32; u64 addend} */
static void put_imp64(uint8_t *p, uint32_t ord16, uint32_t weak, uint32_t name_off, uint64_t addend)
{
    sy_le64(p, (uint64_t)ord16 | (uint64_t)weak << 16 | (uint64_t)name_off << 32);
    sy_le64(p + 8, addend);
}

/*
 * ARM64E_USERLAND with DYLD_CHAINED_IMPORT_ADDEND64 (A6.1: LLVM reads the
 * weak bit as the name offset and name_offset as weak; every entry must
 * decode, not only the first), auth rebases and binds with each key.
 */
static void test_image_arm64e_addend64(void)
{
    synth s;
    std64(&s, SY_CPU_ARM64, SY_SUB_ARM64E);
    /* pool offsets: _first 1, _second 8, _third 16, _fourth 23, _fifth 31 */
    static const char pool[] = "\0_first\0_second\0_third\0_fourth\0_fifth";
    uint8_t imps[5 * 16];
    put_imp64(imps + 0, 1, 0, 1, 0);
    put_imp64(imps + 16, 2, 1, 8, 0x100000000ull); /* LLVM: name offset (raw>>16)&1 = 1 -> "_first"; it is _second */
    put_imp64(imps + 32, 0xFFFE, 0, 16, (uint64_t)-1); /* -2 flat */
    put_imp64(imps + 48, 0xFFFF, 1, 23, 0);            /* -1 main, weak */
    put_imp64(imps + 64, 0xFFFD, 0, 31, 0);            /* -3 weak lookup */
    static const uint16_t starts[1] = {0x0};
    sy_chained c = {3, 1, 0x4000, 9, 0x1000, 0, 1, starts, 1, 3, imps, sizeof imps, 5, pool, sizeof pool, 0};
    sy_chained_layout L = sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
    sy_linkedit_cmd(&s, SY_LC_DYLD_CHAINED_FIXUPS, SY_LINKEDIT_OFF, L.size);
    uint32_t d = SY_DATA_OFF; /* one 16KB page covers all of __DATA; stride 8 */
    /* 0x00 auth rebase {target 0x800, diversity 0, addrDiv 0, key IA, next 1, auth} */
    sy_w64(&s, d + 0x00, 0x8008000000000800ull);
    /* 0x08 bind {ordinal 1, addend 0x7FFF8 (-8), next 1, bind} */
    sy_w64(&s, d + 0x08, 0x400FFFF800000001ull);
    /* 0x10 auth bind {ordinal 2, diversity 0x5678, addrDiv 1, key DB, next 1, bind, auth} */
    sy_w64(&s, d + 0x10, 0xC00F567800000002ull);
    /* 0x18 rebase {target 0x1000 (vm offset), high8 0x22, next 1} */
    sy_w64(&s, d + 0x18, 0x0009100000001000ull);
    /* 0x20 bind {ordinal 0, addend 0x3FFFF, next 1} */
    sy_w64(&s, d + 0x20, 0x400BFFFF00000000ull);
    /* 0x28 bind {ordinal 3, next 1}; 0x30 auth bind {ordinal 4, key IA, diversity 0, next 1} */
    sy_w64(&s, d + 0x28, 0x4008000000000003ull);
    sy_w64(&s, d + 0x30, 0xC008000000000004ull);
    /* 0x38 auth rebase {target 0x1ff8, diversity 0xABCD, addrDiv 1, key IB, next 0} */
    sy_w64(&s, d + 0x38, 0x8003ABCD00001FF8ull);
    fx_list l;
    dk_error err;
    CHECK_EQ_U64(walk(&s, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 8);
    if (l.n != 8) return;
    uint64_t D = B64 + SY_DATA_OFF;
    CHECK_FX_REBASE(l.f[0], D, B64 + 0x800, 0);
    CHECK(l.f[0].auth && l.f[0].key == DK_KEY_IA && l.f[0].diversity == 0 && !l.f[0].addr_div);
    CHECK_FX_BIND(l.f[1], D + 0x08, 2, "_second", 0x100000000ll - 8, true);
    CHECK(!l.f[1].auth);
    CHECK_FX_BIND(l.f[2], D + 0x10, -2, "_third", -1, false);
    CHECK(l.f[2].auth && l.f[2].key == DK_KEY_DB && l.f[2].diversity == 0x5678 && l.f[2].addr_div);
    CHECK_FX_REBASE(l.f[3], D + 0x18, B64 + 0x1000, 0x22);
    CHECK_FX_BIND(l.f[4], D + 0x20, 1, "_first", 0x3FFFF, false);
    CHECK_FX_BIND(l.f[5], D + 0x28, -1, "_fourth", 0, true);
    CHECK_FX_BIND(l.f[6], D + 0x30, -3, "_fifth", 0, false);
    CHECK(l.f[6].auth && l.f[6].key == DK_KEY_IA);
    CHECK_FX_REBASE(l.f[7], D + 0x38, B64 + 0x1FF8, 0);
    CHECK(l.f[7].auth && l.f[7].key == DK_KEY_IB && l.f[7].diversity == 0xABCD && l.f[7].addr_div);
    CHECK_EQ_U64(l.f[1].pointer_format, 9);
}

/* symbols_format 1 (zlib): dyld refuses it, so do we, naming the field. */
static void test_zlib_symbols(void)
{
    synth s;
    std64(&s, SY_CPU_X86_64, 3);
    static const char pool[] = "\0_foo";
    uint8_t imps[4];
    sy_le32(imps, imp32(1, 0, 1));
    static const uint16_t starts[1] = {0xFFFF};
    sy_chained c = {3, 1, 0x1000, 2, 0x1000, 0, 1, starts, 1, 1, imps, sizeof imps, 1, pool, sizeof pool, 1};
    sy_chained_layout L = sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
    sy_linkedit_cmd(&s, SY_LC_DYLD_CHAINED_FIXUPS, SY_LINKEDIT_OFF, L.size);
    dk_error err;
    dk_macho *m = open_synth(&s, &err);
    CHECK(m != NULL);
    if (!m) return;
    const dk_chained_import *imp;
    size_t n;
    CHECK_EQ_U64(dk_macho_chained_imports(m, &imp, &n, &err), DK_E_UNSUPPORTED);
    CHECK_MSG(err, "symbols_format 1");
    CHECK_MSG(err, "zlib");
    fx_list l;
    memset(&l, 0, sizeof l);
    CHECK_EQ_U64(dk_macho_foreach_fixup(m, collect, &l, &err), DK_E_UNSUPPORTED);
    CHECK_EQ_U64(l.n, 0);
    dk_macho_close(m);
}

/* One import with lib_ordinal ORD in FORMAT (1 or 3); the status of reading the imports. */
static dk_status one_import(uint32_t format, uint32_t ord, int *lib_ordinal, dk_error *err)
{
    synth s;
    std64(&s, SY_CPU_X86_64, 3);
    static const char pool[] = "\0_x";
    uint8_t imps[16];
    if (format == 1) sy_le32(imps, imp32(ord, 0, 1));
    else put_imp64(imps, ord, 0, 1, 0);
    static const uint16_t starts[1] = {0xFFFF};
    sy_chained c = {3, 1, 0x1000, 2, 0x1000, 0, 1, starts, 1, format, imps, format == 1 ? 4 : 16, 1, pool, sizeof pool, 0};
    sy_chained_layout L = sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
    sy_linkedit_cmd(&s, SY_LC_DYLD_CHAINED_FIXUPS, SY_LINKEDIT_OFF, L.size);
    dk_macho *m = open_synth(&s, err);
    if (!m) return DK_E_ARG;
    const dk_chained_import *imp;
    size_t n;
    dk_status st = dk_macho_chained_imports(m, &imp, &n, err);
    *lib_ordinal = st == DK_OK && n == 1 ? imp[0].lib_ordinal : 12345;
    dk_macho_close(m);
    return st;
}

/*
 * Special ordinals (A6.7): 8-bit lib_ordinal 0xF1..0xFF and 16-bit 0xFFF1..0xFFFF
 * are negative (-15..-1); dyld knows only 0, -1, -2, -3 and rejects the others
 * ("unknown special ordinal"); 0xF0 / 0xFFF0 are ordinary (huge) positive ordinals.
 */
static void test_special_ordinals(void)
{
    dk_error err;
    int o;
    CHECK_EQ_U64(one_import(1, 0xFF, &o, &err), DK_OK);
    CHECK_EQ_U64((int64_t)o, -1);
    CHECK_EQ_U64(one_import(1, 0xFE, &o, &err), DK_OK);
    CHECK_EQ_U64((int64_t)o, -2);
    CHECK_EQ_U64(one_import(1, 0xFD, &o, &err), DK_OK);
    CHECK_EQ_U64((int64_t)o, -3);
    CHECK_EQ_U64(one_import(1, 0x02, &o, &err), DK_OK);
    CHECK_EQ_U64(o, 2);
    for (uint32_t v = 0xF1; v <= 0xFC; v++) {
        char want[48];
        snprintf(want, sizeof want, "library ordinal %d", (int)v - 256);
        CHECK_EQ_U64(one_import(1, v, &o, &err), DK_E_MALFORMED);
        CHECK_MSG(err, want);
        CHECK_MSG(err, "imports[0] (_x)");
    }
    CHECK_EQ_U64(one_import(1, 0xF0, &o, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "library ordinal 240 but only 2 dylibs");
    CHECK_EQ_U64(one_import(1, 0x03, &o, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "library ordinal 3 but only 2 dylibs");
    /* 16-bit ordinals of DYLD_CHAINED_IMPORT_ADDEND64 */
    CHECK_EQ_U64(one_import(3, 0xFFFF, &o, &err), DK_OK);
    CHECK_EQ_U64((int64_t)o, -1);
    CHECK_EQ_U64(one_import(3, 0xFFFD, &o, &err), DK_OK);
    CHECK_EQ_U64((int64_t)o, -3);
    CHECK_EQ_U64(one_import(3, 0xFFF1, &o, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "library ordinal -15");
    CHECK_EQ_U64(one_import(3, 0xFFFC, &o, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "library ordinal -4");
    CHECK_EQ_U64(one_import(3, 0xFFF0, &o, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "library ordinal 65520");
    /* 0xF1 is an ordinary positive ordinal in the 16-bit format */
    CHECK_EQ_U64(one_import(3, 0xF1, &o, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "library ordinal 241");
}

/*
 * DYLD_CHAINED_PTR_32 (armv7k) with DYLD_CHAINED_PTR_START_MULTI: page 0 has
 * two chains (too far apart for the 5-bit next); one entry is a non-pointer
 * above max_valid_pointer.  Page 1 has an ordinary start.
 */
static void test_image_ptr32_multi(void)
{
    synth s;
    std32(&s, SY_CPU_ARM, SY_SUB_ARMV7K);
    static const char pool[] = "\0_errno";
    uint8_t imps[4];
    sy_le32(imps, imp32(1, 0, 1));
    /* page_start[0] = MULTI | 2 (chain_starts begin after the 2 page entries);
     * chain_starts[2] = 0x010, chain_starts[3] = 0x100 | LAST; page_start[1] = 0x20 */
    static const uint16_t starts[4] = {0x8002, 0x0020, 0x0010, 0x8100};
    sy_chained c = {3, 1, 0x1000, 3, 0x1000, 0x100000, 2, starts, 4, 1, imps, sizeof imps, 1, pool, sizeof pool, 0};
    sy_chained_layout L = sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
    sy_linkedit_cmd(&s, SY_LC_DYLD_CHAINED_FIXUPS, SY_LINKEDIT_OFF, L.size);
    uint32_t d = SY_DATA_OFF;
    /* chain 1: 0x10 rebase {target 0x5000 (vmaddr), next 1} -> 0x14 bind {ordinal 0, addend 3, next 0} */
    sy_w32(&s, d + 0x10, 0x04005000u);
    sy_w32(&s, d + 0x14, 0x80300000u);
    /* chain 2: 0x100 non-pointer {target 0x2081234 = bias 0x2080000 + 0x1234, next 1} -> 0x104 rebase {0x5100, next 0} */
    sy_w32(&s, d + 0x100, 0x06081234u);
    sy_w32(&s, d + 0x104, 0x00005100u);
    /* page 1: 0x20 rebase {target 0x4800, next 0} */
    sy_w32(&s, d + 0x1020, 0x00004800u);
    fx_list l;
    dk_error err;
    CHECK_EQ_U64(walk(&s, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 4);
    uint64_t D = B32 + SY_DATA_OFF;
    if (l.n == 4) {
        CHECK_FX_REBASE(l.f[0], D + 0x10, 0x5000, 0);
        CHECK_FX_BIND(l.f[1], D + 0x14, 1, "_errno", 3, false);
        CHECK_FX_REBASE(l.f[2], D + 0x104, 0x5100, 0);
        CHECK_FX_REBASE(l.f[3], D + 0x1020, 0x4800, 0);
        CHECK_EQ_U64(l.f[0].width, 4);
        CHECK_EQ_U64(l.f[1].raw, 0x80300000u);
    }
    dk_macho *m = open_synth(&s, &err);
    if (!m) return;
    ev_list e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_U64(dk_macho_foreach_chain(m, collect_chain, &e, &err), DK_OK);
    /* SEGMENT, PAGE 0 (0x8002), 3 fixups (the non-pointer is not one), PAGE 1 (0x20), 1 fixup */
    CHECK_EQ_U64(e.n, 7);
    if (e.n == 7) {
        CHECK_EQ_U64(e.start[1], 0x8002);
        CHECK_EQ_U64(e.starts.max_valid_pointer, 0x100000);
        CHECK_EQ_U64(e.addr[2], D + 0x10);
        CHECK_EQ_U64(e.addr[4], D + 0x104);
        CHECK_EQ_U64(e.ev[5], DK_CHAIN_PAGE);
        CHECK_EQ_U64(e.start[5], 0x20);
    }
    dk_macho_close(m);

    /* the starts of a page must ascend: 0x100 then 0x010|LAST */
    static const uint16_t bad_order[4] = {0x8002, 0xFFFF, 0x0100, 0x8010};
    c.page_start = bad_order;
    sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "out of order");
    /* an overflow index past the starts array: MULTI | 7 with 4 entries */
    static const uint16_t bad_index[4] = {0x8007, 0xFFFF, 0x0010, 0x8100};
    c.page_start = bad_index;
    sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "chain overflow index 7 out of range");
    /* an overflow start past the page */
    static const uint16_t bad_start[4] = {0x8002, 0xFFFF, 0x0010, 0x9000};
    c.page_start = bad_start;
    sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "past the page");
}

/*
 * One chain of three rebases in every pointer format: the walker must step by
 * the format's stride (entries 16 bytes apart: next 2 at stride 8, 4 at
 * stride 4, 16 at stride 1) and apply the format's target rule.
 */
static void test_walk_every_format(void)
{
    static const struct {
        uint16_t fmt;
        bool is32;
        unsigned stride;
    } F[] = {{1, 0, 8}, {2, 0, 4}, {3, 1, 4}, {4, 1, 4}, {5, 1, 4}, {6, 0, 4}, {7, 0, 4},
             {8, 0, 4}, {9, 0, 8}, {10, 0, 4}, {11, 0, 1}, {12, 0, 8}, {13, 0, 8}, {14, 0, 4}};
    for (size_t k = 0; k < sizeof F / sizeof F[0]; k++) {
        synth s;
        uint16_t fmt = F[k].fmt;
        if (F[k].is32) std32(&s, SY_CPU_ARM, SY_SUB_ARMV7K);
        else std64(&s, SY_CPU_ARM64, SY_SUB_ARM64E);
        uint64_t base = s.base;
        static const uint16_t starts[1] = {0x20};
        sy_chained c = {3, 1, 0x1000, fmt, 0x1000, F[k].is32 ? 0x100000u : 0u, 1, starts, 1, 1, NULL, 0, 0, "", 1, 0};
        sy_chained_layout L = sy_put_chained(&s, SY_LINKEDIT_OFF, &c);
        sy_linkedit_cmd(&s, SY_LC_DYLD_CHAINED_FIXUPS, SY_LINKEDIT_OFF, L.size);
        uint64_t next = 16 / F[k].stride;
        uint64_t want[3];
        for (int i = 0; i < 3; i++) {
            uint64_t n = i < 2 ? next : 0;
            uint64_t off = 0x800 + 0x10 * (uint64_t)i; /* target: __text + 0x10*i */
            uint64_t raw;
            switch (fmt) {
            case 1: case 10: /* arm64e rebase {target vmaddr:43, high8:8, next:11} */
                raw = (base + off) | n << 51;
                want[i] = base + off;
                break;
            case 7: case 9: case 12: /* arm64e rebase, target a vm offset */
                raw = off | n << 51;
                want[i] = base + off;
                break;
            case 2: /* 64 rebase {target vmaddr:36, high8:8, reserved:7, next:12} */
                raw = (base + off) | n << 51;
                want[i] = base + off;
                break;
            case 6: raw = off | n << 51; want[i] = base + off; break;
            case 8: case 11: /* kernel cache {target:30, level:2, div:16, addrDiv:1, key:2, next:12, isAuth:1} */
                raw = off | n << 51;
                want[i] = base + off;
                break;
            case 13: /* shared cache {runtimeOffset:34, high8:8, unused:10, next:11, auth:1} */
                raw = off | n << 52;
                want[i] = base + off;
                break;
            case 14: /* segmented {segOffset:28, segIndex:4 | padding:19, next:12, auth:1}: segment 0 is __TEXT */
                raw = off | 0u << 28 | n << 51;
                want[i] = base + off;
                break;
            case 3: /* 32 rebase {target vmaddr:26, next:5, bind:1} */
                raw = (base + off) | n << 26;
                want[i] = base + off;
                break;
            case 4: /* 32 cache {target offset:30, next:2}: next 4 does not fit, so 1 step of... see below */
                raw = off | n << 30;
                want[i] = base + off;
                break;
            default: /* 5: 32 firmware {target vmaddr:26, next:6} */
                raw = (base + off) | n << 26;
                want[i] = base + off;
                break;
            }
            size_t at = SY_DATA_OFF + 0x20 + 0x10 * (size_t)i;
            if (F[k].is32) sy_w32(&s, at, (uint32_t)raw);
            else sy_w64(&s, at, raw);
        }
        if (fmt == 4) {
            /* 32_CACHE has a 2-bit next (at most 3 x 4 bytes): entries 12 bytes apart instead */
            memset(s.buf + SY_DATA_OFF + 0x20, 0, 0x30);
            for (int i = 0; i < 3; i++)
                sy_w32(&s, SY_DATA_OFF + 0x20 + 12 * (size_t)i, (uint32_t)((0x800 + 0x10 * i) | (i < 2 ? 3u : 0u) << 30));
        }
        fx_list l;
        dk_error err;
        dk_status st = walk(&s, &l, &err);
        unit_checks++;
        if (st != DK_OK || l.n != 3) {
            unit_failures++;
            fprintf(stderr, "format %u: status %d (%s), %zu fixups\n", fmt, st, err.message, l.n);
            continue;
        }
        unsigned step = fmt == 4 ? 12 : 16;
        for (int i = 0; i < 3; i++) {
            unit_checks++;
            uint64_t addr = base + SY_DATA_OFF + 0x20 + step * (uint64_t)i;
            if (l.f[i].address != addr || l.f[i].target != want[i] || l.f[i].kind != DK_FIXUP_REBASE ||
                l.f[i].pointer_format != fmt) {
                unit_failures++;
                fprintf(stderr, "format %u entry %d: address 0x%llx target 0x%llx, want 0x%llx 0x%llx\n", fmt, i,
                        (unsigned long long)l.f[i].address, (unsigned long long)l.f[i].target, (unsigned long long)addr,
                        (unsigned long long)want[i]);
            }
        }
    }
}

/* The header, starts and chains errors dyld's validLinkedit and chain walker report. */
static void test_errors(void)
{
    synth s;
    static const char pool[] = "\0_foo\0_bar";
    uint8_t imps[8];
    sy_le32(imps, imp32(1, 0, 1));
    sy_le32(imps + 4, imp32(2, 0, 6));
    uint16_t starts[2] = {0x10, 0xFFFF};
    sy_chained base = {3, 1, 0x1000, 2, 0x1000, 0, 2, starts, 2, 1, imps, sizeof imps, 2, pool, sizeof pool, 0};
    fx_list l;
    dk_error err;
    sy_chained c;

#define BUILD(MUTATE)                                                                 \
    do {                                                                              \
        std64(&s, SY_CPU_X86_64, 3);                                                  \
        c = base;                                                                     \
        MUTATE;                                                                       \
        sy_chained_layout L_ = sy_put_chained(&s, SY_LINKEDIT_OFF, &c);               \
        sy_linkedit_cmd(&s, SY_LC_DYLD_CHAINED_FIXUPS, SY_LINKEDIT_OFF, L_.size);     \
        sy_w64(&s, SY_DATA_OFF + 0x10, 0x8000000000000001ull); /* bind import 1 */   \
    } while (0)

    /* sanity: the unmutated image walks */
    BUILD((void)0);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 1);

    /* seg_count larger than the image's segments */
    BUILD(c.seg_count = 4);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "seg_count (4) exceeds the number of segments (3)");
    /* seg_count smaller, and the missing last segment is not __CTF */
    BUILD(c.seg_count = 2);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "seg_count (2) does not match the number of segments (3)");

    /* page_start past the page */
    starts[0] = 0x1008;
    BUILD((void)0);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "page_start 0x1008 exceeds page size 0x1000");
    starts[0] = 0x10;

    /* a chain leaving its page: entry at 0xFF8 {rebase, next 4} -> 0x1008 */
    starts[0] = 0xFF8;
    BUILD(sy_w64(&s, SY_DATA_OFF + 0xFF8, 0x0020000100000800ull));
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "chain continues past its page (next offset 0x1008, page_size 0x1000)");
    starts[0] = 0x10;

    /* import index out of range: bind {ordinal 2} with 2 imports */
    BUILD(sy_w64(&s, SY_DATA_OFF + 0x10, 0x8000000000000002ull));
    sy_w64(&s, SY_DATA_OFF + 0x10, 0x8000000000000002ull);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "uses import 2 but there are 2 imports");

    /* unknown pointer formats */
    BUILD(c.pointer_format = 15);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "unknown pointer_format 15 in segment 1");
    BUILD(c.pointer_format = 0);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "unknown pointer_format 0 in segment 1");

    /* page_size neither 4KB nor 16KB */
    BUILD(c.page_size = 0x2000);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "page_size 0x2000 not 4KB or 16KB");

    /* imports_format 4 */
    BUILD(c.imports_format = 4);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "unknown imports_format 4");

    /* a name_offset past the symbol pool (pool is 11 bytes) */
    BUILD(sy_le32(imps + 4, imp32(2, 0, 11)));
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "imports[1].name_offset 0xb out of range");
    sy_le32(imps + 4, imp32(2, 0, 6));

    /* fixups_version 1 */
    BUILD((void)0);
    sy_w32(&s, SY_LINKEDIT_OFF, 1);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "unknown fixups_version 1");

    /* page_count * page_size larger than the segment (vmsize 0x2000: at most 3 pages) */
    static const uint16_t four[4] = {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF};
    BUILD((c.page_count = 4, c.page_start = four, c.npage_start = 4));
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "has 4 pages of 0x1000 but vmsize 0x2000");

    /* starts-in-segment size overrunning the imports */
    BUILD((void)0);
    {
        /* seg_info_offset is 16 for seg_count 3; size field at starts_offset + 16 */
        sy_w32(&s, SY_LINKEDIT_OFF + 32 + 16, 0x400);
    }
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "overruns the data");

    /* LC_DYLD_CHAINED_FIXUPS datasize too small for the header */
    std64(&s, SY_CPU_X86_64, 3);
    sy_linkedit_cmd(&s, SY_LC_DYLD_CHAINED_FIXUPS, SY_LINKEDIT_OFF, 20);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "too small for dyld_chained_fixups_header");

    /* ARM64E_SEGMENTED entry naming a segment the image does not have */
    BUILD(c.pointer_format = 14);
    sy_w64(&s, SY_DATA_OFF + 0x10, 0x0000000030000010ull); /* segIndex 3 */
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "names segment index 3 of 3");
#undef BUILD
}

/*
 * Firmware-style chain starts in __TEXT,__chain_starts
 * (dyld_chained_starts_offsets {pointer_format, starts_count, chain_starts[]},
 * starts are vm offsets from the image base), no LC_DYLD_CHAINED_FIXUPS.
 */
static void test_chain_starts_section(void)
{
    synth s;
    sy_init(&s, true, SY_CPU_ARM64, SY_SUB_ARM64E, B64);
    sy_segment(&s, "__TEXT", B64, 0x1000, 0, 0x1000, 5, "__chain_starts", B64 + 0x800, 0x10, 0x800);
    sy_segment(&s, "__DATA", B64 + SY_DATA_OFF, SY_DATA_SIZE, SY_DATA_OFF, SY_DATA_SIZE, 3, "__data", B64 + SY_DATA_OFF,
               SY_DATA_SIZE, SY_DATA_OFF);
    /* DYLD_CHAINED_PTR_ARM64E_KERNEL (7), one start at vm offset 0x1010 */
    sy_w32(&s, 0x800, 7);
    sy_w32(&s, 0x804, 1);
    sy_w32(&s, 0x808, 0x1010);
    /* 0x1010 rebase {target 0x40 (vm offset), next 2 (x4 bytes)} -> 0x1018 auth rebase {target 0x80, key DA, next 0} */
    sy_w64(&s, SY_DATA_OFF + 0x10, 0x0010000000000040ull);
    sy_w64(&s, SY_DATA_OFF + 0x18, 0x8004000000000080ull);
    fx_list l;
    dk_error err;
    dk_macho *m = open_synth(&s, &err);
    if (!m) {
        CHECK(0);
        return;
    }
    CHECK_EQ_U64(dk_macho_fixup_encoding(m), DK_ENCODING_CHAINED);
    memset(&l, 0, sizeof l);
    CHECK_EQ_U64(dk_macho_foreach_fixup(m, collect, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 2);
    CHECK_FX_REBASE(l.f[0], B64 + 0x1010, B64 + 0x40, 0);
    CHECK_EQ_U64(l.f[1].address, B64 + 0x1018);
    CHECK_EQ_U64(l.f[1].target, B64 + 0x80);
    CHECK(l.f[1].auth && l.f[1].key == DK_KEY_DA);
    dk_macho_close(m);
}

int main(void)
{
    test_strides();
    test_decode_arm64e();
    test_decode_generic();
    test_image_ptr64();
    test_image_offset_addend();
    test_image_arm64e_addend64();
    test_zlib_symbols();
    test_special_ordinals();
    test_image_ptr32_multi();
    test_walk_every_format();
    test_errors();
    test_chain_starts_section();
    return unit_finish("test_chained");
}
