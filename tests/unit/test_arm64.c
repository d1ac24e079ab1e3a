/*
 * src/arm64.h: the GOT-load pairing the cache builder and extractor share
 * (a64_got_load, a64_got_load_reoffset).  Instruction words are llvm-mc-22's
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
};

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
    return unit_finish("arm64");
}
