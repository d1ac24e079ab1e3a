/*
 * src/arm64.h: the GOT-load pairing the cache builder and extractor share
 * (a64_got_load, a64_got_load_reoffset), and the re-aiming of ADR and literal
 * loads they and the builder share (a64_retarget).  Instruction words are llvm-mc-22's
 * encodings (-triple=arm64e-apple-macos -show-encoding), not our encoder's.
 */
#include "unit.h"

#include "../../src/arm64.h" /* not capstone's arm64.h, which -I/usr/include/capstone finds first */

enum {
    ADRP_X8_4000 = 0x90000028u,   /* adrp x8, #0x4000 (PC-relative: page of pc + 0x4000) */
    LDR_X8_X8_48 = 0xF9402508u,   /* ldr x8, [x8, #0x48] */
    LDR_W8_X8_48 = 0xB9404908u,   /* ldr w8, [x8, #0x48] */
    LDR_X9_X10_48 = 0xF9402549u,  /* ldr x9, [x10, #0x48] */
    LDR_X8_X8_FF8 = 0xF947FD08u,  /* ldr x8, [x8, #0xff8] */
    ADRP_X17_4000 = 0x90000031u,  /* adrp x17, #0x4000 */
    ADD_X17_10 = 0x91004231u,     /* add x17, x17, #0x10 */
    ADD_X17_FF8 = 0x913FE231u,    /* add x17, x17, #0xff8 */
    ADD_X17_1_LSL12 = 0x91400631u,/* add x17, x17, #1, lsl #12 */
    LDR_X16_X17 = 0xF9400230u,    /* ldr x16, [x17] */
    LDR_X16_X17_8 = 0xF9400630u,  /* ldr x16, [x17, #8] */
    BRAA_X16_X17 = 0xD71F0A11u,   /* braa x16, x17 */
    NOP = 0xD503201Fu,            /* nop */
    LDR_X1_LIT_8 = 0x58000041u,   /* ldr x1, #8 */
    LDR_X1_LIT_1000 = 0x58008001u,/* ldr x1, #4096 */
    LDR_X5_LIT_M8 = 0x58FFFFC5u,  /* ldr x5, #-8 */
    ADR_X2_0 = 0x10000002u,       /* adr x2, #0 */
    ADR_X2_234 = 0x100011A2u,     /* adr x2, #564 */
    ADRP_X1_4F08000 = 0x90027841u,/* adrp x1, #82870272 */
    LDR_X1_X1_18 = 0xF9400C21u,   /* ldr x1, [x1, #24] */
    ADRP_X2_4F08000 = 0x90027842u,/* adrp x2, #82870272 */
    ADD_X2_X2_11 = 0x91004442u,   /* add x2, x2, #17 */
    LDRSW_X3_LIT_0 = 0x98000003u, /* ldrsw x3, #0 */
    ADRP_X3_4F08000 = 0x90027843u,/* adrp x3, #82870272 */
    LDRSW_X3_X3_14 = 0xB9801463u, /* ldrsw x3, [x3, #20] */
    LDR_W4_LIT_8 = 0x18000044u,   /* ldr w4, #8 */
    LDR_Q0_LIT_10 = 0x9C000080u,  /* ldr q0, #16 */
    LDR_Q0_LIT_1000 = 0x9C008000u,/* ldr q0, #4096 */
};

static void put3(uint8_t *b, uint32_t w0, uint32_t w1, uint32_t w2)
{
    dk_wr32le(b, w0);
    dk_wr32le(b + 4, w1);
    dk_wr32le(b + 8, w2);
}

/* a64_retarget of the middle word of W0 W1 W2 (at PC); the three words after it in *OUT */
static a64_retarget_kind rt(uint32_t w0, uint32_t w1, uint32_t w2, uint64_t pc, uint64_t target, bool prefer_next, uint32_t out[3])
{
    uint8_t b[12];
    put3(b, w0, w1, w2);
    a64_retarget_kind k = a64_retarget(b + 4, b, b + 8, pc, w1, target, prefer_next);
    for (int i = 0; i < 3; i++) out[i] = a64_word(b + 4 * i);
    return k;
}

static unsigned got(const uint32_t *w, size_t n, uint64_t pc, uint64_t *slot)
{
    uint8_t b[16];
    for (size_t i = 0; i < n; i++) {
        b[4 * i] = (uint8_t)w[i];
        b[4 * i + 1] = (uint8_t)(w[i] >> 8);
        b[4 * i + 2] = (uint8_t)(w[i] >> 16);
        b[4 * i + 3] = (uint8_t)(w[i] >> 24);
    }
    return a64_got_load(b, n, pc, slot);
}

int main(void)
{
    uint64_t slot = 0;
    /* adrp + 64-bit ldr through the same register: a GOT load of page + 0x48 */
    uint32_t a[] = {ADRP_X8_4000, LDR_X8_X8_48};
    CHECK(got(a, 2, 0x1234, &slot) == 1);
    CHECK_EQ_U64(slot, 0x5048);
    CHECK(got(a, 1, 0x1234, &slot) == 0); /* the ldr is not there */
    /* a 32-bit load, or a load through another register, is not one */
    uint32_t b[] = {ADRP_X8_4000, LDR_W8_X8_48};
    CHECK(got(b, 2, 0x1000, &slot) == 0);
    uint32_t c[] = {ADRP_X8_4000, LDR_X9_X10_48};
    CHECK(got(c, 2, 0x1000, &slot) == 0);
    /* arm64e auth stub: adrp x17; add x17, x17, #off; ldr x16, [x17]; braa */
    uint32_t d[] = {ADRP_X17_4000, ADD_X17_10, LDR_X16_X17, BRAA_X16_X17};
    CHECK(got(d, 4, 0x2000, &slot) == 1);
    CHECK_EQ_U64(slot, 0x6010);
    CHECK(got(d, 2, 0x2000, &slot) == 0);  /* without the ldr it is an address, not a load */
    uint32_t e[] = {ADRP_X17_4000, ADD_X17_10, LDR_X16_X17_8};
    CHECK(got(e, 3, 0x2000, &slot) == 0);  /* ldr at a further offset */
    uint32_t f[] = {ADRP_X17_4000, ADD_X17_1_LSL12, LDR_X16_X17};
    CHECK(got(f, 3, 0x2000, &slot) == 0);  /* a shifted add is no page offset */
    uint32_t g[] = {LDR_X8_X8_48, LDR_X8_X8_48};
    CHECK(got(g, 2, 0x2000, &slot) == 0);  /* no adrp */
    /* re-aiming keeps the registers and changes only the page offset */
    CHECK_EQ_U64(a64_got_load_reoffset(LDR_X8_X8_48, 0x1234567FF8ull), LDR_X8_X8_FF8);
    CHECK_EQ_U64(a64_got_load_reoffset(ADD_X17_10, 0xABCDEFFF8ull), ADD_X17_FF8);
    CHECK_EQ_U64(a64_got_load_reoffset(LDR_X8_X8_FF8, 0x5048), LDR_X8_X8_48);
    /* and the ADRP the callers pair with it lands on the new page */
    uint32_t adrp = a64_enc_adrp(8, 0x1234, 0x5048);
    CHECK_EQ_U64(adrp, ADRP_X8_4000);

    /* a64_retarget: in range, the instruction alone is re-aimed */
    uint32_t w[3];
    CHECK(rt(NOP, LDR_X1_LIT_8, NOP, 0x100004, 0x101004, false, w) == A64_RT_IN_PLACE);
    CHECK_EQ_U64(w[0], NOP);
    CHECK_EQ_U64(w[1], LDR_X1_LIT_1000);
    CHECK_EQ_U64(w[2], NOP);
    CHECK(rt(NOP, LDR_X1_LIT_8, NOP, 0x2000, 0x1FF8, false, w) == A64_RT_IN_PLACE && w[1] == 0x58FFFFC1u); /* ldr x1, #-8 */
    CHECK(rt(0, ADR_X2_0, 0, 0x2000, 0x2234, false, w) == A64_RT_IN_PLACE);
    CHECK_EQ_U64(w[1], ADR_X2_234);
    CHECK(rt(0, LDR_Q0_LIT_10, 0, 0x3000, 0x4000, false, w) == A64_RT_IN_PLACE);
    CHECK_EQ_U64(w[1], LDR_Q0_LIT_1000);
    /* out of range: the ADRP pair in the NOP before (nop; ldr x1, lit -> adrp x1; ldr x1, [x1, #lo]) */
    CHECK(rt(NOP, LDR_X1_LIT_8, NOP, 0x100004, 0x5008018, false, w) == A64_RT_PREV);
    CHECK_EQ_U64(w[0], ADRP_X1_4F08000);
    CHECK_EQ_U64(w[1], LDR_X1_X1_18);
    CHECK_EQ_U64(w[2], NOP);
    /* or after (adr x2; nop -> adrp x2; add x2, x2, #lo), as PREFER_NEXT or the NOPs decide */
    CHECK(rt(NOP, ADR_X2_0, NOP, 0x100000, 0x5008011, true, w) == A64_RT_NEXT);
    CHECK_EQ_U64(w[0], NOP);
    CHECK_EQ_U64(w[1], ADRP_X2_4F08000);
    CHECK_EQ_U64(w[2], ADD_X2_X2_11);
    CHECK(rt(LDR_X5_LIT_M8, ADR_X2_0, NOP, 0x100000, 0x5008011, false, w) == A64_RT_NEXT && w[0] == LDR_X5_LIT_M8);
    CHECK(rt(NOP, ADR_X2_0, NOP, 0x100004, 0x5008011, false, w) == A64_RT_PREV && w[1] == ADD_X2_X2_11 && w[2] == NOP);
    CHECK(rt(NOP, LDRSW_X3_LIT_0, 0, 0x100004, 0x5008014, false, w) == A64_RT_PREV);
    CHECK_EQ_U64(w[0], ADRP_X3_4F08000);
    CHECK_EQ_U64(w[1], LDRSW_X3_X3_14);
    /* nothing changes: no NOP beside it, a misaligned page offset, a SIMD load (no base register) */
    CHECK(rt(LDR_X5_LIT_M8, LDR_X1_LIT_8, LDR_X5_LIT_M8, 0x100004, 0x5008018, false, w) == A64_RT_NONE && w[1] == LDR_X1_LIT_8);
    CHECK(rt(NOP, LDR_W4_LIT_8, NOP, 0x100004, 0x5008016, false, w) == A64_RT_NONE && w[0] == NOP && w[1] == LDR_W4_LIT_8);
    CHECK(rt(NOP, LDR_X1_LIT_8, NOP, 0x100004, 0x500801C, false, w) == A64_RT_NONE && w[1] == LDR_X1_LIT_8);
    CHECK(rt(NOP, LDR_Q0_LIT_10, NOP, 0x100004, 0x5008010, false, w) == A64_RT_NONE && w[1] == LDR_Q0_LIT_10);
    CHECK(rt(NOP, ADRP_X1_4F08000, NOP, 0x100004, 0x5008010, false, w) == A64_RT_NONE && w[1] == ADRP_X1_4F08000);
    /* a64_retarget_in: the neighbours come from the buffer, none before offset 0 or past its end */
    uint8_t code[8];
    dk_wr32le(code, LDR_X1_LIT_8);
    dk_wr32le(code + 4, NOP);
    CHECK(a64_retarget_in(code, 8, 0, 0x100000, LDR_X1_LIT_8, 0x5008018, false) == A64_RT_NEXT);
    CHECK_EQ_U64(a64_word(code), ADRP_X1_4F08000);
    CHECK_EQ_U64(a64_word(code + 4), LDR_X1_X1_18);
    dk_wr32le(code, NOP);
    dk_wr32le(code + 4, LDR_X1_LIT_8);
    CHECK(a64_retarget_in(code, 4, 0, 0x100000, NOP, 0x5008018, false) == A64_RT_NONE);
    CHECK(a64_retarget_in(code + 4, 4, 0, 0x100004, LDR_X1_LIT_8, 0x5008018, false) == A64_RT_NONE); /* its NOP is outside */
    CHECK(a64_retarget_in(code, 8, 4, 0x100004, LDR_X1_LIT_8, 0x5008018, false) == A64_RT_PREV);
    CHECK_EQ_U64(a64_word(code), ADRP_X1_4F08000);
    return unit_finish("arm64");
}
