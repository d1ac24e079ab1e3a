/*
 * Slide info v1-v5: small blobs and mapping pages built byte by byte from the
 * layouts in Apple's <mach-o/dyld_cache_format.h>, with the expected pointers
 * computed by hand in the comments, plus the malformed cases a bounded walk
 * must reject (chain leaving its page, a slot visited twice, indexes out of
 * range, more pages than the mapping, truncated headers).
 */
#include "dyldkit/dyldkit.h"
#include "unit.h"

#define MAP_ADDR 0x182000000ull

static uint8_t blob[8192];
static uint8_t data[4 * 16384];

static void w16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void w32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void w64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void reset(void)
{
    memset(blob, 0, sizeof blob);
    memset(data, 0, sizeof data);
}

static dk_slide_region region(size_t blob_size, size_t data_size, unsigned ptr_size)
{
    dk_slide_region r;
    memset(&r, 0, sizeof r);
    r.blob = blob;
    r.blob_size = blob_size;
    r.data = data;
    r.data_size = data_size;
    r.address = MAP_ADDR;
    r.pointer_size = ptr_size;
    r.name = "mapping 1 (test)";
    r.blob_file_offset = 0x4000;
    return r;
}

#define MAXP 64
typedef struct got {
    dk_slide_pointer p[MAXP];
    int n;
} got;

static int collect(void *ctx, const dk_slide_pointer *p)
{
    got *g = ctx;
    if (g->n < MAXP) g->p[g->n] = *p;
    g->n++;
    return 0;
}

static dk_status walk(const dk_slide_region *r, got *g, dk_error *err)
{
    memset(g, 0, sizeof *g);
    memset(err, 0, sizeof *err);
    return dk_slide_foreach(r, collect, g, err);
}

/* v2/v4 header at blob[0..40) */
static void hdr24(uint32_t version, uint32_t page_size, uint32_t starts_off, uint32_t starts_n, uint32_t extras_off,
                  uint32_t extras_n, uint64_t delta_mask, uint64_t value_add)
{
    w32(blob, version);
    w32(blob + 4, page_size);
    w32(blob + 8, starts_off);
    w32(blob + 12, starts_n);
    w32(blob + 16, extras_off);
    w32(blob + 20, extras_n);
    w64(blob + 24, delta_mask);
    w64(blob + 32, value_add);
}

/* ------------------------------------------------------------------ v1 */

static void test_v1(void)
{
    reset();
    /* header: toc at 24 (2 pages), entries at 28 (2 bitmaps of 128 bytes) */
    w32(blob, 1);
    w32(blob + 4, 24);
    w32(blob + 8, 2);
    w32(blob + 12, 28);
    w32(blob + 16, 2);
    w32(blob + 20, 128);
    w16(blob + 24, 1); /* page 0 -> entry 1 */
    w16(blob + 26, 0); /* page 1 -> entry 0 */
    uint8_t *e0 = blob + 28, *e1 = blob + 28 + 128;
    e0[0] = 0x21;      /* words 0 and 5 */
    e1[0] = 0x08;      /* word 3 */
    w32(data + 12, 0x10002000);
    w32(data + 4096 + 0, 0x10003000);
    w32(data + 4096 + 20, 0x10004000);
    w32(data + 4096 + 8, 0x12345678); /* not marked: not a pointer */
    dk_slide_region r = region(28 + 256, 8192, 4);
    dk_slide_info in;
    dk_error err;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_OK);
    CHECK_EQ_U64(in.version, 1);
    CHECK_EQ_U64(in.toc_count, 2);
    CHECK_EQ_U64(in.entries_count, 2);
    CHECK_EQ_U64(dk_slide_page_start(&in, 0), 1);
    got g;
    CHECK(walk(&r, &g, &err) == DK_OK);
    CHECK_EQ_U64(g.n, 3);
    CHECK_EQ_U64(g.p[0].address, MAP_ADDR + 12);
    CHECK_EQ_U64(g.p[0].target, 0x10002000);
    CHECK_EQ_U64(g.p[1].address, MAP_ADDR + 4096);
    CHECK_EQ_U64(g.p[1].target, 0x10003000);
    CHECK_EQ_U64(g.p[1].page, 1);
    CHECK_EQ_U64(g.p[2].address, MAP_ADDR + 4096 + 20);
    CHECK_EQ_U64(g.p[2].target, 0x10004000);

    /* toc entry out of range */
    w16(blob + 26, 2);
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
    CHECK(strstr(err.message, "page 1") != NULL);
    CHECK(strstr(err.message, "out of range") != NULL);
    w16(blob + 26, 0);
    /* more toc entries than the mapping has 4 KiB pages */
    w32(blob + 8, 3);
    w16(blob + 28 - 2, 0);
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
    w32(blob + 8, 2);
    /* entries_size other than 128 */
    w32(blob + 20, 64);
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
}

/* ------------------------------------------------------------- v2 64-bit */

#define ARM64_DELTA_MASK 0x00FFFF0000000000ull
/* delta_mask 0x00FFFF0000000000: deltaShift = ctz - 2 = 38; a D-byte delta is D << 38 */
static uint64_t v2_64(uint64_t value, uint64_t delta) { return value | (delta << 38); }

static void test_v2_64(void)
{
    reset();
    /* page starts at 40 (2 pages), extras at 44 (2 entries) */
    hdr24(2, 4096, 40, 2, 44, 2, ARM64_DELTA_MASK, 0);
    w16(blob + 40, 1);          /* page 0: one chain at 1*4 = 4 */
    w16(blob + 42, 0x8000 | 0); /* page 1: extras from index 0 */
    w16(blob + 44, 0);          /* chain at 0 */
    w16(blob + 46, 0x8000 | 16);/* chain at 16*4 = 64, last */
    /* page 0: 4 -> 20 -> 28 */
    w64(data + 4, v2_64(0x180001000, 16));
    w64(data + 20, v2_64(0, 8));                      /* value 0: not a pointer */
    w64(data + 28, v2_64(0x5A00000180002000ull, 0));  /* top byte kept: high8 0x5A */
    /* page 1: chain at 0 (single), chain at 64 -> 72 */
    w64(data + 4096 + 0, v2_64(0x180003000, 0));
    w64(data + 4096 + 64, v2_64(0x180004000, 8));
    w64(data + 4096 + 72, v2_64(0x180005000, 0));
    dk_slide_region r = region(48, 8192, 8);
    dk_slide_info in;
    dk_error err;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_OK);
    CHECK_EQ_U64(in.delta_mask, ARM64_DELTA_MASK);
    CHECK_EQ_U64(dk_slide_page_extra(&in, 1), 0x8010);
    got g;
    CHECK(walk(&r, &g, &err) == DK_OK);
    CHECK_EQ_U64(g.n, 5);
    CHECK_EQ_U64(g.p[0].address, MAP_ADDR + 4);
    CHECK_EQ_U64(g.p[0].target, 0x180001000);
    CHECK_EQ_U64(g.p[0].raw, 0x180001000 | (16ull << 38));
    CHECK_EQ_U64(g.p[0].next, 16);
    CHECK_EQ_U64(g.p[1].address, MAP_ADDR + 28);
    CHECK_EQ_U64(g.p[1].target, 0x5A00000180002000ull);
    CHECK_EQ_U64(g.p[1].high8, 0x5A);
    CHECK_EQ_U64(g.p[2].address, MAP_ADDR + 4096);
    CHECK_EQ_U64(g.p[2].target, 0x180003000);
    CHECK_EQ_U64(g.p[3].address, MAP_ADDR + 4096 + 64);
    CHECK_EQ_U64(g.p[3].target, 0x180004000);
    CHECK_EQ_U64(g.p[4].address, MAP_ADDR + 4096 + 72);
    CHECK_EQ_U64(g.p[4].target, 0x180005000);

    /* value_add (x86_64 style): target = value + value_add */
    w64(blob + 32, 0x7FFF00000000ull);
    CHECK(walk(&r, &g, &err) == DK_OK);
    CHECK_EQ_U64(g.p[0].target, 0x7FFF00000000ull + 0x180001000);
    w64(blob + 32, 0);

    /* single-pointer decoder: zero is not a pointer */
    dk_slide_pointer p;
    CHECK(dk_slide_decode(&in, MAP_ADDR, v2_64(0, 8), &p) == false);
    CHECK(dk_slide_decode(&in, MAP_ADDR, v2_64(0x180009000, 8), &p) == true);
    CHECK_EQ_U64(p.target, 0x180009000);

    /* chain leaving the page: the last pointer of page 0 says "16 more bytes" */
    w64(data + 28, v2_64(0x180002000, 0));
    w64(data + 4088, v2_64(0x180006000, 16));
    w64(data + 28, v2_64(0x180002000, 4088 - 28));
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
    CHECK(strstr(err.message, "page 0") != NULL);
    CHECK(strstr(err.message, "leaves the page") != NULL);
    CHECK(strstr(err.message, "mapping 1 (test)") != NULL);
    w64(data + 28, v2_64(0x180002000, 0));

    /* extras index out of range */
    w16(blob + 42, 0x8000 | 5);
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
    CHECK(strstr(err.message, "page_extras index 5 out of range") != NULL);
    /* extras without an END marker run off the table */
    w16(blob + 42, 0x8000 | 0);
    w16(blob + 46, 16);
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
    /* two chains through the same slot: the second visit is an error (no loops, no duplicates) */
    w16(blob + 46, 0x8000 | 0);
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
    CHECK(strstr(err.message, "second time") != NULL);
    w16(blob + 46, 0x8000 | 16);
    CHECK(walk(&r, &g, &err) == DK_OK);

    /* page_starts_count larger than the mapping's pages */
    w32(blob + 12, 3);
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
    CHECK(strstr(err.message, "page_starts_count (3)") != NULL);
    w32(blob + 12, 2);
    /* page_starts past the blob */
    r.blob_size = 42;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
    /* truncated header */
    r.blob_size = 30;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
    r.blob_size = 48;
    /* unusable delta masks */
    w64(blob + 24, 0);
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
    w64(blob + 24, 0x3);
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
    w64(blob + 24, ARM64_DELTA_MASK);
    /* a bad page size */
    w32(blob + 4, 3000);
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
    w32(blob + 4, 4096);
    /* unknown version */
    w32(blob, 7);
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_UNSUPPORTED);
    /* the decoder alone, given a header that dk_slide_parse would reject, neither hangs nor shifts by a negative count */
    in.version = 2;
    in.delta_mask = 0;
    CHECK(!dk_slide_decode(&in, MAP_ADDR, 0x180001000, &p));
    in.delta_mask = 1;
    in.pointer_size = 4;
    CHECK(!dk_slide_decode(&in, MAP_ADDR, 0x1000, &p));
}

/* ------------------------------------------------------------- v2 32-bit */

static void test_v2_32(void)
{
    reset();
    /* armv7-style: delta_mask 0xE0000000 (deltaShift 27, D bytes -> D << 27), value_add 0x30000000 */
    hdr24(2, 4096, 40, 1, 42, 0, 0xE0000000u, 0x30000000u);
    w16(blob + 40, 0); /* chain at 0 */
    w32(data + 0, 0x1000u | (8u << 27));  /* -> 0x30001000, next +8 */
    w32(data + 8, 0u | (4u << 27));       /* zero: not a pointer, next +4 */
    w32(data + 12, 0x2000u);              /* -> 0x30002000, end */
    w32(data + 4, 0xDEADBEEF);            /* skipped by the chain */
    dk_slide_region r = region(42, 4096, 4);
    got g;
    dk_error err;
    CHECK(walk(&r, &g, &err) == DK_OK);
    CHECK_EQ_U64(g.n, 2);
    CHECK_EQ_U64(g.p[0].address, MAP_ADDR);
    CHECK_EQ_U64(g.p[0].target, 0x30001000);
    CHECK_EQ_U64(g.p[0].next, 8);
    CHECK_EQ_U64(g.p[1].address, MAP_ADDR + 12);
    CHECK_EQ_U64(g.p[1].target, 0x30002000);
    /* no-rebase page */
    w16(blob + 40, 0x4000);
    CHECK(walk(&r, &g, &err) == DK_OK);
    CHECK_EQ_U64(g.n, 0);
    /* a 64-bit mask cannot describe 32-bit pointers */
    w64(blob + 24, ARM64_DELTA_MASK);
    dk_slide_info in;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
}

/* ------------------------------------------------------------------ v3 */

static void test_v3(void)
{
    reset();
    w32(blob, 3);
    w32(blob + 4, 4096);
    w32(blob + 8, 2);                  /* page_starts_count */
    w64(blob + 16, 0x180000000ull);    /* auth_value_add */
    w16(blob + 24, 8);                 /* page 0: first pointer at byte 8 */
    w16(blob + 26, 0xFFFF);            /* page 1: none */
    /* plain: target 0x5A00000180001234 packs as high8 0x5A in bits 43-50 and the low 43 bits; next 2 (16 bytes) */
    uint64_t plain = (0x5Aull << 43) | 0x180001234ull | (2ull << 51);
    /* auth: offset 0x4000, diversity 0x1234, addrDiv, key DA (2), next 0, bit 63 */
    uint64_t auth = (1ull << 63) | (2ull << 49) | (1ull << 48) | (0x1234ull << 32) | 0x4000;
    w64(data + 8, plain);
    w64(data + 24, auth);
    dk_slide_region r = region(28, 8192, 8);
    got g;
    dk_error err;
    CHECK(walk(&r, &g, &err) == DK_OK);
    CHECK_EQ_U64(g.n, 2);
    CHECK_EQ_U64(g.p[0].address, MAP_ADDR + 8);
    CHECK_EQ_U64(g.p[0].target, 0x5A00000180001234ull);
    CHECK_EQ_U64(g.p[0].high8, 0x5A);
    CHECK(!g.p[0].auth);
    CHECK_EQ_U64(g.p[0].next, 2);
    CHECK_EQ_U64(g.p[1].address, MAP_ADDR + 24);
    CHECK_EQ_U64(g.p[1].target, 0x180004000ull);
    CHECK(g.p[1].auth);
    CHECK_EQ_U64(g.p[1].key, DK_KEY_DA);
    CHECK_EQ_U64(g.p[1].diversity, 0x1234);
    CHECK(g.p[1].addr_div);
    CHECK_EQ_U64(g.p[1].high8, 0);
    /* a chain running past the end of the page: next from offset 4088 */
    w64(data + 24, auth | (1ull << 51) * 0);
    w64(data + 24, (auth & ~(0x7FFull << 51)) | (508ull << 51)); /* 24 + 508*8 = 4088 */
    w64(data + 4088, plain); /* next 2 -> 4104: outside */
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
    CHECK(strstr(err.message, "page 0") != NULL);
    CHECK(strstr(err.message, "leaves the page") != NULL);
    /* a page start beyond the page */
    w64(data + 24, auth);
    w16(blob + 24, 4096);
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
    /* page_starts_count beyond the mapping */
    w16(blob + 24, 8);
    w32(blob + 8, 3);
    dk_slide_info in;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
    /* page starts past the blob */
    w32(blob + 8, 2);
    r.blob_size = 26;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
}

/* ------------------------------------------------------------------ v4 */

static void test_v4(void)
{
    reset();
    /* delta_mask 0xC0000000 (deltaShift 28, D bytes -> D << 28), value_add 0x10000000 */
    hdr24(4, 4096, 40, 1, 42, 2, 0xC0000000u, 0x10000000u);
    w16(blob + 40, 0x8000 | 0);   /* extras from 0 */
    w16(blob + 42, 0);            /* chain at 0 */
    w16(blob + 44, 0x8000 | 8);   /* chain at 32, last */
    w32(data + 0, 0x1234u | (4u << 28));        /* small positive: stays, not a pointer */
    w32(data + 4, 0x3FFFFFF0u | (4u << 28));    /* small negative (-16): not a pointer */
    w32(data + 8, 0x00012000u);                 /* pointer -> 0x10012000, end */
    w32(data + 32, 0x00020000u);                /* pointer -> 0x10020000, end */
    dk_slide_region r = region(46, 4096, 4);
    got g;
    dk_error err;
    CHECK(walk(&r, &g, &err) == DK_OK);
    CHECK_EQ_U64(g.n, 2);
    CHECK_EQ_U64(g.p[0].address, MAP_ADDR + 8);
    CHECK_EQ_U64(g.p[0].target, 0x10012000);
    CHECK_EQ_U64(g.p[1].address, MAP_ADDR + 32);
    CHECK_EQ_U64(g.p[1].target, 0x10020000);
    dk_slide_info in;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_OK);
    CHECK_EQ_U64(in.pointer_size, 4);
    dk_slide_pointer p;
    CHECK(!dk_slide_decode(&in, MAP_ADDR, 0x1234, &p));
    CHECK(!dk_slide_decode(&in, MAP_ADDR, 0x3FFFFFF0u, &p));
    CHECK(dk_slide_decode(&in, MAP_ADDR, 0x00012000u | (4u << 28), &p));
    CHECK_EQ_U64(p.target, 0x10012000);
    CHECK_EQ_U64(p.next, 4);
    /* no-rebase page */
    w16(blob + 40, 0xFFFF);
    CHECK(walk(&r, &g, &err) == DK_OK);
    CHECK_EQ_U64(g.n, 0);
    /* extras index out of range */
    w16(blob + 40, 0x8000 | 2);
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
    CHECK(strstr(err.message, "out of range") != NULL);
    /* a chain start beyond the page (no extras flag: start*4) */
    w16(blob + 40, 0x7FFF);
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
}

/* ------------------------------------------------------------------ v5 */

static void test_v5(void)
{
    reset();
    w32(blob, 5);
    w32(blob + 4, 16384);
    w32(blob + 8, 1);
    w64(blob + 16, 0x180000000ull); /* value_add */
    w16(blob + 24, 0);
    /* regular: runtimeOffset 0x1000, high8 0x7F (bits 34-41), next 1 (bits 52-62) */
    w64(data + 0, 0x1000ull | (0x7Full << 34) | (1ull << 52));
    /* auth: runtimeOffset 0x2000, diversity 0xBEEF (34-49), addrDiv 0 (50), keyIsData 1 (51), next 0 */
    w64(data + 8, (1ull << 63) | (1ull << 51) | (0xBEEFull << 34) | 0x2000ull);
    dk_slide_region r = region(26, 16384, 8);
    got g;
    dk_error err;
    CHECK(walk(&r, &g, &err) == DK_OK);
    CHECK_EQ_U64(g.n, 2);
    CHECK_EQ_U64(g.p[0].address, MAP_ADDR);
    CHECK_EQ_U64(g.p[0].target, 0x7F00000180001000ull);
    CHECK_EQ_U64(g.p[0].high8, 0x7F);
    CHECK(!g.p[0].auth);
    CHECK_EQ_U64(g.p[1].address, MAP_ADDR + 8);
    CHECK_EQ_U64(g.p[1].target, 0x180002000ull);
    CHECK(g.p[1].auth);
    CHECK_EQ_U64(g.p[1].key, DK_KEY_DA);
    CHECK_EQ_U64(g.p[1].diversity, 0xBEEF);
    CHECK(!g.p[1].addr_div);
    /* keyIsData 0 -> IA, with address diversity */
    dk_slide_info in;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_OK);
    dk_slide_pointer p;
    CHECK(dk_slide_decode(&in, MAP_ADDR, (1ull << 63) | (1ull << 50) | 0x40ull, &p));
    CHECK_EQ_U64(p.key, DK_KEY_IA);
    CHECK(p.addr_div);
    CHECK_EQ_U64(p.target, 0x180000040ull);
    /* the page count must fit the mapping (one 16 KiB page here) */
    w32(blob + 8, 2);
    r.blob_size = 28;
    CHECK(dk_slide_parse(&r, &in, &err) == DK_E_MALFORMED);
    CHECK(strstr(err.message, "larger than the mapping") != NULL);
    /* a chain leaving the page from its last slot */
    w32(blob + 8, 1);
    w16(blob + 24, 16376);
    w64(data + 16376, 0x1000ull | (1ull << 52));
    CHECK(walk(&r, &g, &err) == DK_E_MALFORMED);
    CHECK(strstr(err.message, "leaves the page") != NULL);
}

/* A page of noise walked as v2 and v3 chains ends (error or not), never hangs. */
static void test_noise(void)
{
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        reset();
        for (size_t i = 0; i < 8192; i++) {
            x = x * 1103515245u + 12345u;
            data[i] = (uint8_t)(x >> 16);
        }
        unsigned version = round % 2 ? 3 : 2;
        if (version == 2) {
            hdr24(2, 4096, 40, 2, 44, 4, ARM64_DELTA_MASK, 0);
            w16(blob + 40, (uint16_t)(x & 0x3FF));
            w16(blob + 42, 0x8000);
            for (int k = 0; k < 4; k++) w16(blob + 44 + 2 * k, (uint16_t)((x >> k) & 0x3FF) | (k == 3 ? 0x8000 : 0));
        } else {
            w32(blob, 3);
            w32(blob + 4, 4096);
            w32(blob + 8, 2);
            w16(blob + 24, (uint16_t)(x & 0xFF8));
            w16(blob + 26, 0);
        }
        dk_slide_region r = region(version == 2 ? 52 : 28, 8192, 8);
        got g;
        dk_error err;
        dk_status st = walk(&r, &g, &err);
        CHECK(st == DK_OK || st == DK_E_MALFORMED);
        CHECK(g.n <= 2 * 4096 / 8);
    }
}

int main(void)
{
    test_v1();
    test_v2_64();
    test_v2_32();
    test_v3();
    test_v4();
    test_v5();
    test_noise();
    return unit_finish("test_slide");
}
