/*
 * AArch64 instruction encodings used by stubs, stub helpers, branch islands
 * and the cache builder/extractor (ARM Architecture Reference Manual, A64
 * base instructions).  Decoders return false when the word is not that
 * instruction; encoders assume in-range operands (callers check).
 */
#ifndef DYLDKIT_ARM64_H
#define DYLDKIT_ARM64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h" /* dk_le32, dk_wr32le */

static inline int64_t dk_sext64(uint64_t v, unsigned bits)
{
    uint64_t m = 1ull << (bits - 1);
    v &= (bits == 64) ? ~0ull : ((1ull << bits) - 1);
    return (int64_t)((v ^ m) - m);
}

/* ADRP Xd, label: page address of PC + imm21<<12 */
static inline bool a64_adrp(uint32_t insn, uint64_t pc, unsigned *rd, uint64_t *page)
{
    if ((insn & 0x9F000000u) != 0x90000000u) return false;
    uint64_t immlo = (insn >> 29) & 3, immhi = (insn >> 5) & 0x7FFFF;
    int64_t imm = dk_sext64((immhi << 2) | immlo, 21) * 4096;
    *rd = insn & 31;
    *page = (pc & ~0xFFFull) + (uint64_t)imm;
    return true;
}

static inline uint32_t a64_enc_adrp(unsigned rd, uint64_t pc, uint64_t target)
{
    int64_t delta = (int64_t)((target & ~0xFFFull) - (pc & ~0xFFFull)) >> 12;
    uint32_t imm = (uint32_t)delta & 0x1FFFFF;
    return 0x90000000u | ((imm & 3) << 29) | ((imm >> 2) << 5) | (rd & 31);
}

/* LDR Xt, [Xn, #imm] (unsigned offset, 64-bit) or LDR Wt (32-bit): SIZE receives 8 or 4 */
static inline bool a64_ldr_uimm(uint32_t insn, unsigned *rt, unsigned *rn, uint32_t *offset, unsigned *size)
{
    if ((insn & 0xFFC00000u) == 0xF9400000u) *size = 8;
    else if ((insn & 0xFFC00000u) == 0xB9400000u) *size = 4;
    else return false;
    *rt = insn & 31;
    *rn = (insn >> 5) & 31;
    *offset = ((insn >> 10) & 0xFFF) * *size;
    return true;
}

static inline uint32_t a64_enc_ldr_x(unsigned rt, unsigned rn, uint32_t byte_offset)
{
    return 0xF9400000u | (((byte_offset / 8) & 0xFFF) << 10) | ((rn & 31) << 5) | (rt & 31);
}

/* ADD Xd, Xn, #imm{, LSL #12} */
static inline bool a64_add_imm(uint32_t insn, unsigned *rd, unsigned *rn, uint32_t *imm)
{
    if ((insn & 0xFF800000u) != 0x91000000u) return false;
    *rd = insn & 31;
    *rn = (insn >> 5) & 31;
    *imm = ((insn >> 10) & 0xFFF) << (((insn >> 22) & 1) ? 12 : 0);
    return true;
}

static inline uint32_t a64_enc_add_imm(unsigned rd, unsigned rn, uint32_t imm12)
{
    return 0x91000000u | ((imm12 & 0xFFF) << 10) | ((rn & 31) << 5) | (rd & 31);
}

/* LDR Xt, [Xn] (no offset) is the uimm form with 0 */

/* BR Xn */
static inline bool a64_br(uint32_t insn, unsigned *rn)
{
    if ((insn & 0xFFFFFC1Fu) != 0xD61F0000u) return false;
    *rn = (insn >> 5) & 31;
    return true;
}
static inline uint32_t a64_enc_br(unsigned rn) { return 0xD61F0000u | ((rn & 31) << 5); }

/* BRAA Xn, Xm */
static inline bool a64_braa(uint32_t insn, unsigned *rn, unsigned *rm)
{
    if ((insn & 0xFFFFFC00u) != 0xD71F0800u) return false;
    *rn = (insn >> 5) & 31;
    *rm = insn & 31;
    return true;
}
static inline uint32_t a64_enc_braa(unsigned rn, unsigned rm) { return 0xD71F0800u | ((rn & 31) << 5) | (rm & 31); }

/* B / BL label */
static inline bool a64_b(uint32_t insn, uint64_t pc, bool *link, uint64_t *target)
{
    uint32_t op = insn & 0xFC000000u;
    if (op != 0x14000000u && op != 0x94000000u) return false;
    *link = op == 0x94000000u;
    *target = pc + (uint64_t)(dk_sext64(insn & 0x03FFFFFFu, 26) * 4);
    return true;
}

static inline bool a64_b_in_range(uint64_t pc, uint64_t target)
{
    int64_t d = (int64_t)(target - pc);
    return d >= -(1ll << 27) && d < (1ll << 27) && (d & 3) == 0;
}

static inline uint32_t a64_enc_b(bool link, uint64_t pc, uint64_t target)
{
    int64_t d = (int64_t)(target - pc) / 4;
    return (link ? 0x94000000u : 0x14000000u) | ((uint32_t)d & 0x03FFFFFFu);
}

/* LDR Wt, label (literal, 32-bit) */
static inline bool a64_ldr_w_literal(uint32_t insn, uint64_t pc, unsigned *rt, uint64_t *addr)
{
    if ((insn & 0xFF000000u) != 0x18000000u) return false;
    *rt = insn & 31;
    *addr = pc + (uint64_t)(dk_sext64((insn >> 5) & 0x7FFFF, 19) * 4);
    return true;
}

/*
 * Load register (literal): LDR Wt/Xt/St/Dt/Qt, LDRSW, PRFM label (±1 MiB).
 * SIZE receives the access size (PRFM: 8); GPR is false for the SIMD forms
 * and PRFM, whose Rt cannot serve as a base register.
 */
static inline bool a64_literal(uint32_t insn, uint64_t pc, unsigned *rt, uint64_t *addr, unsigned *size, bool *gpr)
{
    if ((insn & 0x3B000000u) != 0x18000000u) return false;
    unsigned opc = insn >> 30;
    bool v = (insn >> 26) & 1;
    if (v && opc == 3) return false;
    static const unsigned gsize[4] = {4, 8, 4, 8}, vsize[3] = {4, 8, 16};
    *size = v ? vsize[opc] : gsize[opc];
    *gpr = !v && opc != 3;
    *rt = insn & 31;
    *addr = pc + (uint64_t)(dk_sext64((insn >> 5) & 0x7FFFF, 19) * 4);
    return true;
}

/* The same literal load with its target moved to TARGET (caller checks the range). */
static inline uint32_t a64_enc_literal(uint32_t insn, uint64_t pc, uint64_t target)
{
    int64_t d = (int64_t)(target - pc) / 4;
    return (insn & ~(0x7FFFFu << 5)) | (((uint32_t)d & 0x7FFFFu) << 5);
}

static inline bool a64_literal_in_range(uint64_t pc, uint64_t target)
{
    int64_t d = (int64_t)(target - pc);
    return d >= -(1ll << 20) && d < (1ll << 20) && (d & 3) == 0;
}

/* The unsigned-offset form of a GPR literal load: LDR Wt|Xt / LDRSW Xt, [Xn, #byte_offset]. */
static inline uint32_t a64_enc_load_uimm_of_literal(uint32_t literal, unsigned rn, uint32_t byte_offset)
{
    unsigned opc = literal >> 30, rt = literal & 31;
    uint32_t base = opc == 0 ? 0xB9400000u : opc == 1 ? 0xF9400000u : 0xB9800000u;
    unsigned size = opc == 1 ? 8 : 4;
    return base | (((byte_offset / size) & 0xFFF) << 10) | ((rn & 31) << 5) | rt;
}

/* ADR Xd, label (±1 MiB, byte granular) */
static inline bool a64_adr(uint32_t insn, uint64_t pc, unsigned *rd, uint64_t *addr)
{
    if ((insn & 0x9F000000u) != 0x10000000u) return false;
    uint64_t immlo = (insn >> 29) & 3, immhi = (insn >> 5) & 0x7FFFF;
    *rd = insn & 31;
    *addr = pc + (uint64_t)dk_sext64((immhi << 2) | immlo, 21);
    return true;
}

static inline uint32_t a64_enc_adr(unsigned rd, uint64_t pc, uint64_t target)
{
    uint32_t imm = (uint32_t)(int64_t)(target - pc) & 0x1FFFFF;
    return 0x10000000u | ((imm & 3) << 29) | ((imm >> 2) << 5) | (rd & 31);
}

static inline bool a64_adr_in_range(uint64_t pc, uint64_t target)
{
    int64_t d = (int64_t)(target - pc);
    return d >= -(1ll << 20) && d < (1ll << 20);
}

#define A64_NOP 0xD503201Fu

/* BRK #imm */
static inline bool a64_brk(uint32_t insn) { return (insn & 0xFFE0001Fu) == 0xD4200000u; }

static inline uint32_t a64_word(const uint8_t *p) { return dk_le32(p); }

typedef enum { A64_RT_NONE, A64_RT_IN_PLACE, A64_RT_PREV, A64_RT_NEXT } a64_retarget_kind;

/*
 * Aim INSN, an ADR or a literal load that will sit at PC (its bytes at IP),
 * at TARGET.  Within ±1 MiB (literal loads: word aligned) it is re-encoded in
 * place.  Otherwise it becomes the ADRP pair the linker's LOH optimisation
 * shortened (adrp+add -> adr+nop, adrp+ldr -> nop+ldr): ADRP Xd, TARGET@PAGE
 * then ADD Xd, Xd, #lo12 (ADR) or LDR Wt|Xt / LDRSW, [Xt, #lo12] (a GPR load
 * whose Rt serves as the base; TARGET must be aligned to the access size), in
 * the instruction's slot and a NOP beside it.  PREV and NEXT are the words
 * before and after (NULL where there is none to use); when both are NOPs,
 * PREFER_NEXT picks.  The result says which was used: A64_RT_NEXT means the
 * next word is now the pair's second half; A64_RT_NONE that nothing changed.
 */
static inline a64_retarget_kind a64_retarget(uint8_t *ip, uint8_t *prev, uint8_t *next, uint64_t pc, uint32_t insn,
                                             uint64_t target, bool prefer_next)
{
    unsigned rd = 0, size = 0;
    uint64_t old;
    bool gpr = false;
    bool adr = a64_adr(insn, pc, &rd, &old);
    if (!adr && !a64_literal(insn, pc, &rd, &old, &size, &gpr)) return A64_RT_NONE;
    if (adr ? a64_adr_in_range(pc, target) : a64_literal_in_range(pc, target)) {
        dk_wr32le(ip, adr ? a64_enc_adr(rd, pc, target) : a64_enc_literal(insn, pc, target));
        return A64_RT_IN_PLACE;
    }
    uint32_t lo12 = (uint32_t)(target & 0xFFF);
    if (!adr && (!gpr || lo12 % size)) return A64_RT_NONE;
    uint32_t second = adr ? a64_enc_add_imm(rd, rd, lo12) : a64_enc_load_uimm_of_literal(insn, rd, lo12);
    bool use_prev = prev && a64_word(prev) == A64_NOP, use_next = next && a64_word(next) == A64_NOP;
    if (use_prev && use_next) use_prev = !prefer_next;
    if (use_prev) {
        dk_wr32le(prev, a64_enc_adrp(rd, pc - 4, target));
        dk_wr32le(ip, second);
        return A64_RT_PREV;
    }
    if (!use_next) return A64_RT_NONE;
    dk_wr32le(ip, a64_enc_adrp(rd, pc, target));
    dk_wr32le(next, second);
    return A64_RT_NEXT;
}

/* a64_retarget on the word at OFF of CODE (SIZE bytes), with its neighbours inside CODE */
static inline a64_retarget_kind a64_retarget_in(uint8_t *code, uint64_t size, uint64_t off, uint64_t pc, uint32_t insn, uint64_t target,
                                                bool prefer_next)
{
    return a64_retarget(code + off, off >= 4 ? code + off - 4 : NULL, off + 8 <= size ? code + off + 4 : NULL, pc, insn, target,
                        prefer_next);
}

/*
 * A GOT load as compilers emit it (LOADgot expands to adjacent instructions):
 * ADRP Xd, page at INSNS[0] followed by LDR Xt, [Xd, #off] (64-bit), or by
 * ADD Xd', Xd, #off; LDR Xt, [Xd', #0] (arm64e auth stubs).  Only adjacent
 * forms count: nothing can jump between the two, so re-aiming both at another
 * slot is safe.  N is how many words INSNS holds.  Returns the index of the
 * instruction holding the page offset (1), 0 when INSNS is not such a load;
 * *SLOT receives page + off.
 */
static inline unsigned a64_got_load(const uint8_t *insns, size_t n, uint64_t pc, uint64_t *slot)
{
    if (n < 2) return 0;
    unsigned rd, rt, rn, size, rt2, rn2, size2;
    uint32_t off, off2;
    uint64_t page;
    uint32_t i0 = a64_word(insns), i1 = a64_word(insns + 4);
    if (!a64_adrp(i0, pc, &rd, &page)) return 0;
    if (a64_ldr_uimm(i1, &rt, &rn, &off, &size) && rn == rd && size == 8) {
        *slot = page + off;
        return 1;
    }
    if (n >= 3 && a64_add_imm(i1, &rt, &rn, &off) && rn == rd && !(i1 & (1u << 22))) {
        if (a64_ldr_uimm(a64_word(insns + 8), &rt2, &rn2, &off2, &size2) && rn2 == rt && off2 == 0 && size2 == 8) {
            *slot = page + off;
            return 1;
        }
    }
    return 0;
}

/* The instruction at index 1 of a64_got_load, re-aimed at page offset SLOT & 0xFFF. */
static inline uint32_t a64_got_load_reoffset(uint32_t insn, uint64_t slot)
{
    uint32_t lo = (uint32_t)(slot & 0xFFF);
    if ((insn & 0xFFC00000u) == 0xF9400000u) return (insn & ~(0xFFFu << 10)) | ((lo / 8) << 10);
    return (insn & ~(0xFFFu << 10)) | (lo << 10); /* ADD #imm12, no shift */
}

#endif
