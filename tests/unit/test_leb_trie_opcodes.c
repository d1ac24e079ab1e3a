/*
 * LEB128 readers (src/internal.h dk_uleb / dk_sleb), the export trie
 * (dk_trie_foreach / dk_trie_find, and through an image) and the classic
 * dyld-info opcode streams (rebase / bind / weak / lazy, threaded binds) of
 * synthetic images.
 *
 * Byte strings are written by hand from <mach-o/loader.h> (REBASE_OPCODE_*,
 * BIND_OPCODE_*, EXPORT_SYMBOL_FLAGS_*, the trie node layout) with offsets
 * and expected values worked out in the comments.
 */
#include "dyldkit/dyldkit.h"
#include "internal.h"
#include "macho_synth.h"
#include "unit.h"

#define B64 0x100000000ull
#define B32 0x4000u

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

#define CHECK_MSG(err, needle)                                                                                   \
    do {                                                                                                         \
        unit_checks++;                                                                                           \
        if (!contains((err).message, needle)) {                                                                  \
            unit_failures++;                                                                                     \
            fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, (err).message, needle); \
        }                                                                                                        \
    } while (0)

/* ------------------------------------------------------------------ LEB128 */

static void uleb_ok(const uint8_t *b, size_t n, uint64_t want, size_t used, int line)
{
    const uint8_t *p = b;
    uint64_t v = 0;
    bool ok = dk_uleb(&p, b + n, &v);
    unit_checks++;
    if (!ok || v != want || (size_t)(p - b) != used) {
        unit_failures++;
        fprintf(stderr, "line %d: uleb ok %d value 0x%llx used %zu; want 0x%llx used %zu\n", line, ok,
                (unsigned long long)v, (size_t)(p - b), (unsigned long long)want, used);
    }
}

static void uleb_bad(const uint8_t *b, size_t n, int line)
{
    const uint8_t *p = b;
    uint64_t v = 0;
    unit_checks++;
    if (dk_uleb(&p, b + n, &v) || p != b) {
        unit_failures++;
        fprintf(stderr, "line %d: malformed uleb accepted (0x%llx) or cursor moved\n", line, (unsigned long long)v);
    }
}

static void sleb_ok(const uint8_t *b, size_t n, int64_t want, size_t used, int line)
{
    const uint8_t *p = b;
    int64_t v = 0;
    bool ok = dk_sleb(&p, b + n, &v);
    unit_checks++;
    if (!ok || v != want || (size_t)(p - b) != used) {
        unit_failures++;
        fprintf(stderr, "line %d: sleb ok %d value %lld used %zu; want %lld used %zu\n", line, ok, (long long)v,
                (size_t)(p - b), (long long)want, used);
    }
}

static void sleb_bad(const uint8_t *b, size_t n, int line)
{
    const uint8_t *p = b;
    int64_t v = 0;
    unit_checks++;
    if (dk_sleb(&p, b + n, &v) || p != b) {
        unit_failures++;
        fprintf(stderr, "line %d: malformed sleb accepted (%lld) or cursor moved\n", line, (long long)v);
    }
}

#define U_OK(want, used, ...) do { static const uint8_t b_[] = {__VA_ARGS__}; uleb_ok(b_, sizeof b_, want, used, __LINE__); } while (0)
#define U_BAD(...) do { static const uint8_t b_[] = {__VA_ARGS__}; uleb_bad(b_, sizeof b_, __LINE__); } while (0)
#define S_OK(want, used, ...) do { static const uint8_t b_[] = {__VA_ARGS__}; sleb_ok(b_, sizeof b_, want, used, __LINE__); } while (0)
#define S_BAD(...) do { static const uint8_t b_[] = {__VA_ARGS__}; sleb_bad(b_, sizeof b_, __LINE__); } while (0)

static void test_leb(void)
{
    U_OK(0, 1, 0x00);
    U_OK(127, 1, 0x7f);
    U_OK(128, 2, 0x80, 0x01);
    U_OK(624485, 3, 0xe5, 0x8e, 0x26);          /* 0x65 | 0x0e<<7 | 0x26<<14 */
    U_OK(5, 1, 0x05, 0xff);                      /* stops at the first byte without 0x80 */
    /* UINT64_MAX: nine 0xff (63 bits) and 0x01 for bit 63 */
    U_OK(UINT64_MAX, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
    /* more than 64 bits: the 10th byte may only carry bit 63 */
    U_BAD(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02);
    U_BAD(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f);
    U_BAD(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01); /* bit 70 */
    /* overlong encodings of small values (zero padding) are accepted, as LLVM does */
    U_OK(0, 3, 0x80, 0x80, 0x00);
    U_OK(1, 4, 0x81, 0x80, 0x80, 0x00);
    U_OK(0, 11, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00);
    /* ... but not without bound */
    U_BAD(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00);
    /* truncated */
    uleb_bad((const uint8_t *)"", 0, __LINE__);
    U_BAD(0x80);
    U_BAD(0xff, 0xff);
    U_BAD(0xe5, 0x8e);
    /* the inline 1-9 byte path agrees with the complete decoder on random bytes
       (continuation bits set with high probability: every length, every end) */
    int differ = 0;
    uint64_t x = 0x243F6A8885A308D3ull;
    for (int i = 0; i < 200000; i++) {
        uint8_t b[12];
        size_t n = 1 + (size_t)(i % 12);
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b[k] = (uint8_t)x | ((x >> 8) % 8 ? 0x80 : 0);
        }
        const uint8_t *p1 = b, *p2 = b;
        uint64_t v1 = 1, v2 = 2;
        bool ok1 = dk_uleb(&p1, b + n, &v1), ok2 = dk__uleb_long(&p2, b + n, &v2);
        differ += ok1 != ok2 || p1 != p2 || (ok1 && v1 != v2);
    }
    CHECK(differ == 0);

    S_OK(0, 1, 0x00);
    S_OK(63, 1, 0x3f);
    S_OK(-64, 1, 0x40);
    S_OK(-1, 1, 0x7f);
    S_OK(64, 2, 0xc0, 0x00);
    S_OK(-128, 2, 0x80, 0x7f);
    S_OK(-123456, 3, 0xc0, 0xbb, 0x78);           /* 0x40 | 0x3b<<7 | 0x78<<14, sign bit 0x40 of the last byte */
    S_OK(-1, 2, 0xff, 0x7f);                      /* overlong -1 */
    /* INT64_MAX: 63 one bits then a 10th byte 0x00; INT64_MIN: bit 63 from a 10th byte 0x7f */
    S_OK(INT64_MAX, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00);
    S_OK(INT64_MIN, 10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f);
    /* > 64 bits: a 10th byte other than 0x00 / 0x7f (0x01 would make +2^63, 0x7e a negative without bit 63) */
    S_BAD(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01);
    S_BAD(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7e);
    S_BAD(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x40);
    /* SLEBs are bounded to 10 bytes: even an 11th byte that only repeats the sign is refused */
    S_BAD(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f);
    S_BAD(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00);
    /* truncated */
    sleb_bad((const uint8_t *)"", 0, __LINE__);
    S_BAD(0x80);
    S_BAD(0xc0, 0xbb);
}

/* ------------------------------------------------------------ export trie */

#define MAXEX 16

typedef struct ex_list {
    char name[MAXEX][64];
    char imported[MAXEX][64]; /* e->name and e->imported_name live only during the callback */
    dk_export e[MAXEX];
    size_t n;
} ex_list;

static int collect_export(void *ctx, const dk_export *e)
{
    ex_list *l = ctx;
    if (l->n < MAXEX) {
        snprintf(l->name[l->n], sizeof l->name[0], "%s", e->name);
        snprintf(l->imported[l->n], sizeof l->imported[0], "%s", e->imported_name ? e->imported_name : "");
        l->e[l->n] = *e;
    }
    l->n++;
    return 0;
}

/*
 * Node layout: ULEB terminal_size; terminal info (ULEB flags, then
 * REEXPORT: ULEB ordinal + cstring | STUB_AND_RESOLVER: ULEB stub, ULEB resolver
 * | else ULEB address); u8 child_count; children {cstring edge, ULEB offset}.
 *
 *  0  root     00 01 "_" -> 5
 *  5  U        00 07 "a"->28 "b"->33 "c"->38 "d"->43 "e"->55 "f"->62 "g"->70
 * 28  _a       03 | 00 80 20                 regular, 0x1000
 * 33  _b       03 | 04 80 40                 weak (0x04), 0x2000
 * 38  _c       03 | 08 01 00                 re-export (0x08) from ordinal 1, same name
 * 43  _d       0a | 08 02 "_real_d"          re-export from ordinal 2 as _real_d
 * 55  _e       05 | 10 80 60 90 60           stub-and-resolver (0x10), stub 0x3000, resolver 0x3010
 * 62  _f       06 | 02 ef fd b6 f5 0d        absolute (kind 2), 0xdeadbeef
 * 70  _g       02 | 01 40                    thread-local (kind 1), 0x40
 * (each terminal node ends with child count 00)
 */
static const uint8_t TRIE[] = {
    0x00, 0x01, '_', 0x00, 5,
    0x00, 0x07, 'a', 0x00, 28, 'b', 0x00, 33, 'c', 0x00, 38, 'd', 0x00, 43, 'e', 0x00, 55, 'f', 0x00, 62,
    'g', 0x00, 70,
    0x03, 0x00, 0x80, 0x20, 0x00,
    0x03, 0x04, 0x80, 0x40, 0x00,
    0x03, 0x08, 0x01, 0x00, 0x00,
    0x0a, 0x08, 0x02, '_', 'r', 'e', 'a', 'l', '_', 'd', 0x00, 0x00,
    0x05, 0x10, 0x80, 0x60, 0x90, 0x60, 0x00,
    0x06, 0x02, 0xef, 0xfd, 0xb6, 0xf5, 0x0d, 0x00,
    0x02, 0x01, 0x40, 0x00,
};

static void test_trie_kinds(void)
{
    CHECK_EQ_U64(sizeof TRIE, 74);
    ex_list l;
    memset(&l, 0, sizeof l);
    dk_error err = {0};
    CHECK_EQ_U64(dk_trie_foreach(TRIE, sizeof TRIE, B64, collect_export, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 7);
    if (l.n != 7) return;
    static const char *const names[7] = {"_a", "_b", "_c", "_d", "_e", "_f", "_g"};
    static const uint32_t nodes[7] = {28, 33, 38, 43, 55, 62, 70};
    for (int i = 0; i < 7; i++) {
        CHECK_STR(l.name[i], names[i]);
        CHECK_EQ_U64(l.e[i].node_offset, nodes[i]);
    }
    CHECK_EQ_U64(l.e[0].flags, 0);
    CHECK_EQ_U64(l.e[0].address, B64 + 0x1000);
    CHECK_EQ_U64(l.e[0].offset, 0x1000);
    CHECK_EQ_U64(l.e[1].flags, DK_EXPORT_WEAK);
    CHECK_EQ_U64(l.e[1].raw_flags, 0x04);
    CHECK_EQ_U64(l.e[1].address, B64 + 0x2000);
    CHECK_EQ_U64(l.e[2].flags, DK_EXPORT_REEXPORT);
    CHECK_EQ_U64(l.e[2].ordinal, 1);
    CHECK_STR(l.imported[2], "_c"); /* empty imported name: the same name */
    CHECK_EQ_U64(l.e[3].flags, DK_EXPORT_REEXPORT);
    CHECK_EQ_U64(l.e[3].ordinal, 2);
    CHECK_STR(l.imported[3], "_real_d");
    CHECK_EQ_U64(l.e[4].flags, DK_EXPORT_RESOLVER);
    CHECK_EQ_U64(l.e[4].address, B64 + 0x3000);
    CHECK_EQ_U64(l.e[4].resolver, B64 + 0x3010);
    CHECK_EQ_U64(l.e[5].flags, DK_EXPORT_ABSOLUTE);
    CHECK_EQ_U64(l.e[5].address, 0xdeadbeefu); /* not based */
    CHECK_EQ_U64(l.e[5].offset, 0xdeadbeefu);
    CHECK_EQ_U64(l.e[6].flags, DK_EXPORT_TLS);
    CHECK_EQ_U64(l.e[6].address, B64 + 0x40);

    dk_export e;
    CHECK_EQ_U64(dk_trie_find(TRIE, sizeof TRIE, B64, "_d", &e, &err), DK_OK);
    CHECK_STR(e.name, "_d");
    CHECK_STR(e.imported_name, "_real_d");
    CHECK_EQ_U64(e.ordinal, 2);
    CHECK_EQ_U64(dk_trie_find(TRIE, sizeof TRIE, B64, "_c", &e, &err), DK_OK);
    CHECK_STR(e.imported_name, "_c");
    CHECK_EQ_U64(dk_trie_find(TRIE, sizeof TRIE, B64, "_e", &e, &err), DK_OK);
    CHECK_EQ_U64(e.resolver, B64 + 0x3010);
    CHECK_EQ_U64(dk_trie_find(TRIE, sizeof TRIE, 0, "_g", &e, &err), DK_OK);
    CHECK_EQ_U64(e.address, 0x40);
    CHECK_EQ_U64(e.node_offset, 70);
    CHECK_EQ_U64(dk_trie_find(TRIE, sizeof TRIE, B64, "_h", &e, &err), DK_E_NOTFOUND);
    CHECK_EQ_U64(dk_trie_find(TRIE, sizeof TRIE, B64, "_", &e, &err), DK_E_NOTFOUND);   /* inner node */
    CHECK_EQ_U64(dk_trie_find(TRIE, sizeof TRIE, B64, "", &e, &err), DK_E_NOTFOUND);    /* root */
    CHECK_EQ_U64(dk_trie_find(TRIE, sizeof TRIE, B64, "_ab", &e, &err), DK_E_NOTFOUND); /* past a leaf */
    CHECK_EQ_U64(dk_trie_find(TRIE, sizeof TRIE, B64, "x", &e, &err), DK_E_NOTFOUND);

    /* an empty trie has no exports */
    memset(&l, 0, sizeof l);
    CHECK_EQ_U64(dk_trie_foreach(TRIE, 0, B64, collect_export, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 0);
    CHECK_EQ_U64(dk_trie_find(TRIE, 0, B64, "_a", &e, &err), DK_E_NOTFOUND);
}

static dk_status trie_walk(const uint8_t *t, size_t n, ex_list *l, dk_error *err)
{
    memset(l, 0, sizeof *l);
    memset(err, 0, sizeof *err);
    return dk_trie_foreach(t, n, 0, collect_export, l, err);
}

static void test_trie_bad(void)
{
    ex_list l;
    dk_error err;
    dk_export e;
    /* a node whose child is itself: root 00 01 "a" -> 0 */
    static const uint8_t self[] = {0x00, 0x01, 'a', 0x00, 0x00};
    CHECK_EQ_U64(trie_walk(self, sizeof self, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "node at offset 0x0 reached twice");
    CHECK_EQ_U64(dk_trie_find(self, sizeof self, 0, "aaa", &e, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "loops to itself");
    /* a two-node loop: 0 -"a"-> 5 -"a"-> 0 */
    static const uint8_t loop2[] = {0x00, 0x01, 'a', 0x00, 5, 0x00, 0x01, 'a', 0x00, 0};
    CHECK_EQ_U64(trie_walk(loop2, sizeof loop2, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "reached twice");
    char longname[601];
    memset(longname, 'a', 600);
    longname[600] = 0;
    CHECK_EQ_U64(dk_trie_find(loop2, sizeof loop2, 0, longname, &e, &err), DK_E_LIMIT);
    CHECK_EQ_U64(dk_trie_find(loop2, sizeof loop2, 0, "aa", &e, &err), DK_E_NOTFOUND);
    /* a shared node: root 00 02 "a"->8 "b"->8; node 8: 02 | 00 10, 00 (regular 0x10) */
    static const uint8_t shared[] = {0x00, 0x02, 'a', 0x00, 8, 'b', 0x00, 8, 0x02, 0x00, 0x10, 0x00};
    CHECK_EQ_U64(trie_walk(shared, sizeof shared, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "node at offset 0x8 reached twice (loop or shared node)");
    CHECK_EQ_U64(l.n, 1); /* "a" was delivered before "b" reached the node again */
    CHECK_EQ_U64(dk_trie_find(shared, sizeof shared, 0, "b", &e, &err), DK_OK);
    CHECK_EQ_U64(e.address, 0x10);
    /* a child offset past the end */
    static const uint8_t past[] = {0x00, 0x01, 'a', 0x00, 0x7f};
    CHECK_EQ_U64(trie_walk(past, sizeof past, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "child offset 0x7f past the end of the trie (0x5)");
    CHECK_EQ_U64(dk_trie_find(past, sizeof past, 0, "a", &e, &err), DK_E_MALFORMED);
    /* an edge string running off the end */
    static const uint8_t edge[] = {0x00, 0x01, 'a', 'b'};
    CHECK_EQ_U64(trie_walk(edge, sizeof edge, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "edge string at offset 0x2 extends past the end");
    /* terminal size 4 but the info (flags 00, address 10) is 2 bytes */
    static const uint8_t tsize[] = {0x04, 0x00, 0x10, 0x00, 0x00, 0x00};
    CHECK_EQ_U64(trie_walk(tsize, sizeof tsize, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "terminal size 4 does not match its 2 bytes of info");
    /* terminal size 9 with 3 bytes left */
    static const uint8_t tbig[] = {0x09, 0x00, 0x10, 0x00};
    CHECK_EQ_U64(trie_walk(tbig, sizeof tbig, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "terminal size 9 extends past the end of the trie");
    /* the address ULEB running past the terminal info: size 2 = flags 00, 0x80 (continues) */
    static const uint8_t trunc[] = {0x02, 0x00, 0x80, 0x00};
    CHECK_EQ_U64(trie_walk(trunc, sizeof trunc, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "malformed ULEB128 address");
    /* unknown flag bit 0x40, and kind 3 */
    static const uint8_t flag40[] = {0x02, 0x40, 0x10, 0x00};
    CHECK_EQ_U64(trie_walk(flag40, sizeof flag40, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "unknown flags 0x40");
    static const uint8_t kind3[] = {0x02, 0x03, 0x10, 0x00};
    CHECK_EQ_U64(trie_walk(kind3, sizeof kind3, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "unknown kind 3");
    /* a re-export whose name is not terminated inside the terminal info */
    static const uint8_t reex[] = {0x03, 0x08, 0x01, 'x', 0x00, 0x00};
    CHECK_EQ_U64(trie_walk(reex, sizeof reex, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "re-export imported name extends past the terminal info");
    /* a non-root node that is neither an export nor has children */
    static const uint8_t empty_node[] = {0x00, 0x01, 'a', 0x00, 5, 0x00, 0x00};
    CHECK_EQ_U64(trie_walk(empty_node, sizeof empty_node, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "node at offset 0x5 is neither an export nor has children");
    /* no child-count byte */
    static const uint8_t nocount[] = {0x00};
    CHECK_EQ_U64(trie_walk(nocount, sizeof nocount, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "child count past the end");
}

/* A straight chain of N nodes joined by "a" edges, each 6 bytes (two-byte ULEB offsets), the last terminal. */
static size_t deep_trie(uint8_t *t, size_t n)
{
    size_t at = 0;
    for (size_t k = 0; k + 1 < n; k++) {
        size_t next = 6 * (k + 1);
        t[at++] = 0x00;
        t[at++] = 0x01;
        t[at++] = 'a';
        t[at++] = 0x00;
        t[at++] = (uint8_t)(0x80 | (next & 0x7f));
        t[at++] = (uint8_t)(next >> 7);
    }
    t[at++] = 0x02; /* regular, address 0x10 */
    t[at++] = 0x00;
    t[at++] = 0x10;
    t[at++] = 0x00;
    return at;
}

static void test_trie_depth(void)
{
    static uint8_t t[6 * 700];
    ex_list l;
    dk_error err;
    dk_export e;
    size_t n = deep_trie(t, 101); /* 100 edges */
    CHECK_EQ_U64(trie_walk(t, n, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 1);
    CHECK_EQ_U64(strlen(l.name[0]) > 60 ? 100 : 0, 100);
    char name[700];
    memset(name, 'a', 100);
    name[100] = 0;
    CHECK_EQ_U64(dk_trie_find(t, n, 0, name, &e, &err), DK_OK);
    CHECK_EQ_U64(e.address, 0x10);
    n = deep_trie(t, 601); /* 600 edges: past DK_MAX_TRIE_DEPTH */
    CHECK_EQ_U64(trie_walk(t, n, &l, &err), DK_E_LIMIT);
    CHECK_MSG(err, "deeper than");
    memset(name, 'a', 600);
    name[600] = 0;
    CHECK_EQ_U64(dk_trie_find(t, n, 0, name, &e, &err), DK_E_LIMIT);
}

/* ----------------------------------------------------- synthetic images */

enum { REBASE_AT = SY_LINKEDIT_OFF, BIND_AT = SY_LINKEDIT_OFF + 0x100, WEAK_AT = SY_LINKEDIT_OFF + 0x200,
       LAZY_AT = SY_LINKEDIT_OFF + 0x300, TRIE_AT = SY_LINKEDIT_OFF + 0x400 };

typedef struct streams {
    const uint8_t *s[4];
    size_t n[4];
} streams;

static void put_streams(synth *s, const streams *st)
{
    uint32_t off[5] = {REBASE_AT, BIND_AT, WEAK_AT, LAZY_AT, 0}, size[5] = {0};
    for (int k = 0; k < 4; k++) {
        size[k] = (uint32_t)st->n[k];
        if (!st->n[k]) off[k] = 0;
        else memcpy(s->buf + off[k], st->s[k], st->n[k]);
    }
    sy_dyld_info(s, off, size);
}

static void image64(synth *s, uint32_t cputype, uint32_t cpusubtype)
{
    sy_init(s, true, cputype, cpusubtype, B64);
    sy_std_segments(s);
    sy_dylib(s, "/usr/lib/libA.dylib");
    sy_dylib(s, "/usr/lib/libB.dylib");
}

#define MAXFX 32

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

static dk_status walk(synth *s, fx_list *l, dk_error *err)
{
    memset(l, 0, sizeof *l);
    dk_macho *m = open_synth(s, err);
    if (!m) return DK_E_ARG;
    dk_status st = dk_macho_foreach_fixup(m, collect, l, err);
    dk_macho_close(m);
    return st;
}

typedef struct op_list {
    dk_opcode op[48];
    char sym[48][16];
    size_t n;
} op_list;

static int collect_op(void *ctx, const dk_opcode *op)
{
    op_list *l = ctx;
    if (l->n < 48) {
        l->op[l->n] = *op;
        snprintf(l->sym[l->n], sizeof l->sym[0], "%s", op->symbol ? op->symbol : "");
    }
    l->n++;
    return 0;
}

/*
 * Rebase stream using every rebase opcode (offsets in the stream on the left):
 *  0  11        SET_TYPE_IMM(POINTER)
 *  1  21 10     SET_SEGMENT_AND_OFFSET_ULEB(seg 1, 0x10)
 *  3  52        DO_REBASE_IMM_TIMES(2)                    -> 0x10, 0x18; offset 0x20
 *  4  30 08     ADD_ADDR_ULEB(8)                          -> 0x28
 *  6  42        ADD_ADDR_IMM_SCALED(2 * 8)                -> 0x38
 *  7  60 03     DO_REBASE_ULEB_TIMES(3)                   -> 0x38, 0x40, 0x48; 0x50
 *  9  70 10     DO_REBASE_ADD_ADDR_ULEB(0x10)             -> 0x50; 0x50 + 8 + 0x10 = 0x68
 * 11  80 03 08  DO_REBASE_ULEB_TIMES_SKIPPING_ULEB(3, 8)  -> 0x68, 0x78, 0x88; 0x98
 * 14  00        DONE
 */
static const uint8_t REBASES[] = {0x11, 0x21, 0x10, 0x52, 0x30, 0x08, 0x42, 0x60, 0x03, 0x70, 0x10, 0x80, 0x03, 0x08, 0x00};
static const uint32_t REBASE_OFFS[9] = {0x10, 0x18, 0x38, 0x40, 0x48, 0x50, 0x68, 0x78, 0x88};

/*
 * Bind stream using every bind opcode except THREADED:
 *  0  11             SET_DYLIB_ORDINAL_IMM(1)
 *  1  40 "_a"        SET_SYMBOL_TRAILING_FLAGS_IMM(0, "_a")
 *  5  51             SET_TYPE_IMM(POINTER)
 *  6  71 80 02       SET_SEGMENT_AND_OFFSET_ULEB(1, 0x100)
 *  9  90             DO_BIND                              -> 0x100 (1, _a); 0x108
 * 10  20 02          SET_DYLIB_ORDINAL_ULEB(2)
 * 12  41 "_b"        SET_SYMBOL_TRAILING_FLAGS_IMM(WEAK_IMPORT, "_b")
 * 16  60 78          SET_ADDEND_SLEB(-8)
 * 18  a0 08          DO_BIND_ADD_ADDR_ULEB(8)             -> 0x108 (2, _b, -8, weak); 0x118
 * 20  3e             SET_DYLIB_SPECIAL_IMM(-2 flat)
 * 21  40 "_c"
 * 25  60 00          SET_ADDEND_SLEB(0)
 * 27  b1             DO_BIND_ADD_ADDR_IMM_SCALED(1)       -> 0x118 (-2, _c); 0x128
 * 28  3f             SET_DYLIB_SPECIAL_IMM(-1 main)
 * 29  40 "_d"
 * 33  c0 02 08       DO_BIND_ULEB_TIMES_SKIPPING_ULEB(2, 8) -> 0x128, 0x138 (-1, _d); 0x148
 * 36  80 08          ADD_ADDR_ULEB(8)                     -> 0x150
 * 38  3d             SET_DYLIB_SPECIAL_IMM(-3 weak lookup)
 * 39  40 "_f"
 * 43  90             DO_BIND                              -> 0x150 (-3, _f); 0x158
 * 44  30             SET_DYLIB_SPECIAL_IMM(0 self)
 * 45  40 "_e"
 * 49  90             DO_BIND                              -> 0x158 (0, _e)
 * 50  00             DONE
 */
static const uint8_t BINDS[] = {0x11, 0x40, '_', 'a', 0, 0x51, 0x71, 0x80, 0x02, 0x90, 0x20, 0x02, 0x41, '_', 'b', 0,
                                0x60, 0x78, 0xa0, 0x08, 0x3e, 0x40, '_', 'c', 0, 0x60, 0x00, 0xb1, 0x3f, 0x40, '_', 'd',
                                0, 0xc0, 0x02, 0x08, 0x80, 0x08, 0x3d, 0x40, '_', 'f', 0, 0x90, 0x30, 0x40, '_', 'e',
                                0, 0x90, 0x00};

/*
 * Weak-bind stream:
 *  0  40 "_w"          SET_SYMBOL_TRAILING_FLAGS_IMM(0, "_w")
 *  4  51               SET_TYPE_IMM(POINTER)
 *  5  71 80 04         SET_SEGMENT_AND_OFFSET_ULEB(1, 0x200)
 *  8  90               DO_BIND                          -> 0x200 (_w); 0x208
 *  9  48 "_strong"     SET_SYMBOL_TRAILING_FLAGS_IMM(NON_WEAK_DEFINITION): a strong definition, binds nothing
 * 18  40 "_w2"
 * 23  90               DO_BIND                          -> 0x208 (_w2): the strong record does not move
 * 24  00
 */
static const uint8_t WEAKS[] = {0x40, '_', 'w', 0, 0x51, 0x71, 0x80, 0x04, 0x90, 0x48, '_', 's', 't', 'r', 'o', 'n',
                                'g', 0, 0x40, '_', 'w', '2', 0, 0x90, 0x00};

/*
 * Lazy-bind stream: two records, each ending in DONE, plus padding:
 *  0  71 80 06  11  40 "_l1"  90  00     seg 1 + 0x300, ordinal 1, _l1
 * 11  71 88 06  12  41 "_l2"  90  00     seg 1 + 0x308, ordinal 2, _l2 weak import
 * 22  00 00
 */
static const uint8_t LAZIES[] = {0x71, 0x80, 0x06, 0x11, 0x40, '_', 'l', '1', 0, 0x90, 0x00,
                                 0x71, 0x88, 0x06, 0x12, 0x41, '_', 'l', '2', 0, 0x90, 0x00, 0x00, 0x00};

static void check_bind(const dk_fixup *f, dk_fixup_kind kind, uint64_t addr, int ord, const char *sym, int64_t addend,
                       bool weak, int line)
{
    unit_checks++;
    if (f->kind != kind || f->address != addr || f->ordinal != ord || !f->symbol || strcmp(f->symbol, sym) != 0 ||
        f->addend != addend || f->weak_import != weak) {
        unit_failures++;
        fprintf(stderr, "line %d: %s 0x%llx ord %d %s addend %lld weak %d; want %s 0x%llx ord %d %s addend %lld weak %d\n",
                line, dk_fixup_kind_name(f->kind), (unsigned long long)f->address, f->ordinal,
                f->symbol ? f->symbol : "(null)", (long long)f->addend, f->weak_import, dk_fixup_kind_name(kind),
                (unsigned long long)addr, ord, sym, (long long)addend, weak);
    }
}

static void test_opcode_image64(void)
{
    synth s;
    image64(&s, SY_CPU_X86_64, 3);
    streams st = {{REBASES, BINDS, WEAKS, LAZIES}, {sizeof REBASES, sizeof BINDS, sizeof WEAKS, sizeof LAZIES}};
    put_streams(&s, &st);
    /* the pointer values the rebases find in the file */
    for (int i = 0; i < 9; i++) sy_w64(&s, SY_DATA_OFF + REBASE_OFFS[i], B64 + 0x800 + 8 * (uint64_t)i);

    dk_error err;
    dk_macho *m = open_synth(&s, &err);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_EQ_U64(dk_macho_fixup_encoding(m), DK_ENCODING_DYLD_INFO);
    fx_list l;
    memset(&l, 0, sizeof l);
    CHECK_EQ_U64(dk_macho_foreach_fixup(m, collect, &l, &err), DK_OK);
    /* 9 rebases, 7 binds, 2 weak binds + 1 strong record, 2 lazy binds */
    CHECK_EQ_U64(l.n, 21);
    uint64_t D = B64 + SY_DATA_OFF;
    if (l.n == 21) {
        for (int i = 0; i < 9; i++) {
            CHECK_EQ_U64(l.f[i].kind, DK_FIXUP_REBASE);
            CHECK_EQ_U64(l.f[i].address, D + REBASE_OFFS[i]);
            CHECK_EQ_U64(l.f[i].target, B64 + 0x800 + 8 * (uint64_t)i);
            CHECK_EQ_U64(l.f[i].type, 1);
            CHECK_EQ_U64(l.f[i].width, 8);
            CHECK_EQ_U64(l.f[i].segment, 1);
            CHECK_EQ_U64(l.f[i].section, 1);
        }
        const dk_fixup *b = l.f + 9;
        check_bind(&b[0], DK_FIXUP_BIND, D + 0x100, 1, "_a", 0, false, __LINE__);
        check_bind(&b[1], DK_FIXUP_BIND, D + 0x108, 2, "_b", -8, true, __LINE__);
        CHECK_EQ_U64(b[1].symbol_flags, 1);
        check_bind(&b[2], DK_FIXUP_BIND, D + 0x118, -2, "_c", 0, false, __LINE__);
        check_bind(&b[3], DK_FIXUP_BIND, D + 0x128, -1, "_d", 0, false, __LINE__);
        check_bind(&b[4], DK_FIXUP_BIND, D + 0x138, -1, "_d", 0, false, __LINE__);
        check_bind(&b[5], DK_FIXUP_BIND, D + 0x150, -3, "_f", 0, false, __LINE__);
        check_bind(&b[6], DK_FIXUP_BIND, D + 0x158, 0, "_e", 0, false, __LINE__);
        const dk_fixup *w = l.f + 16;
        check_bind(&w[0], DK_FIXUP_WEAK_BIND, D + 0x200, -3, "_w", 0, false, __LINE__);
        CHECK_EQ_U64(w[1].kind, DK_FIXUP_WEAK_BIND);
        CHECK(w[1].strong);
        CHECK_STR(w[1].symbol, "_strong");
        CHECK_EQ_U64(w[1].symbol_flags, 8);
        CHECK_EQ_U64(w[1].address, 0);
        check_bind(&w[2], DK_FIXUP_WEAK_BIND, D + 0x208, -3, "_w2", 0, false, __LINE__);
        const dk_fixup *z = l.f + 19;
        check_bind(&z[0], DK_FIXUP_LAZY_BIND, D + 0x300, 1, "_l1", 0, false, __LINE__);
        CHECK_EQ_U64(z[0].lazy_offset, 0);
        check_bind(&z[1], DK_FIXUP_LAZY_BIND, D + 0x308, 2, "_l2", 0, true, __LINE__);
        CHECK_EQ_U64(z[1].lazy_offset, 11);
    }

    /* the raw rebase listing */
    op_list o;
    memset(&o, 0, sizeof o);
    CHECK_EQ_U64(dk_macho_foreach_opcode(m, DK_STREAM_REBASE, collect_op, &o, &err), DK_OK);
    CHECK_EQ_U64(o.n, 9);
    if (o.n == 9) {
        static const uint32_t offs[9] = {0, 1, 3, 4, 6, 7, 9, 11, 14};
        static const int nargs[9] = {0, 1, 0, 1, 0, 1, 1, 2, 0};
        static const char *const names[9] = {
            "REBASE_OPCODE_SET_TYPE_IMM", "REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB", "REBASE_OPCODE_DO_REBASE_IMM_TIMES",
            "REBASE_OPCODE_ADD_ADDR_ULEB", "REBASE_OPCODE_ADD_ADDR_IMM_SCALED", "REBASE_OPCODE_DO_REBASE_ULEB_TIMES",
            "REBASE_OPCODE_DO_REBASE_ADD_ADDR_ULEB", "REBASE_OPCODE_DO_REBASE_ULEB_TIMES_SKIPPING_ULEB",
            "REBASE_OPCODE_DONE"};
        for (int i = 0; i < 9; i++) {
            CHECK_EQ_U64(o.op[i].offset, offs[i]);
            CHECK_EQ_U64(o.op[i].nargs, nargs[i]);
            CHECK_STR(o.op[i].name, names[i]);
        }
        CHECK_EQ_U64(o.op[1].imm, 1);
        CHECK_EQ_U64(o.op[1].args[0], 0x10);
        CHECK_EQ_U64(o.op[1].length, 2);
        CHECK_EQ_U64(o.op[7].args[0], 3);
        CHECK_EQ_U64(o.op[7].args[1], 8);
        CHECK_EQ_U64(o.op[7].length, 3);
    }
    /* the bind listing: 24 opcodes, symbols and the signed addend */
    memset(&o, 0, sizeof o);
    CHECK_EQ_U64(dk_macho_foreach_opcode(m, DK_STREAM_BIND, collect_op, &o, &err), DK_OK);
    CHECK_EQ_U64(o.n, 24);
    if (o.n == 24) {
        CHECK_STR(o.op[1].name, "BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM");
        CHECK_STR(o.sym[1], "_a");
        CHECK_EQ_U64(o.op[1].length, 4);
        CHECK_STR(o.op[7].name, "BIND_OPCODE_SET_ADDEND_SLEB");
        CHECK(o.op[7].signed_arg);
        CHECK_EQ_U64((int64_t)o.op[7].args[0], -8);
        CHECK_STR(o.op[8].name, "BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB");
        CHECK_STR(o.op[9].name, "BIND_OPCODE_SET_DYLIB_SPECIAL_IMM");
        CHECK_EQ_U64(o.op[9].imm, 0xe);
        CHECK_STR(o.op[12].name, "BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED");
        CHECK_STR(o.op[15].name, "BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB");
        CHECK_EQ_U64(o.op[15].offset, 33);
        CHECK_STR(o.op[16].name, "BIND_OPCODE_ADD_ADDR_ULEB");
        CHECK_STR(o.op[23].name, "BIND_OPCODE_DONE");
    }
    /* the lazy listing keeps going past each record's DONE */
    memset(&o, 0, sizeof o);
    CHECK_EQ_U64(dk_macho_foreach_opcode(m, DK_STREAM_LAZY_BIND, collect_op, &o, &err), DK_OK);
    CHECK_EQ_U64(o.n, 12);
    if (o.n == 12) {
        CHECK_EQ_U64(o.op[5].offset, 11);
        CHECK_STR(o.sym[7], "_l2");
    }
    uint32_t off, size;
    CHECK(dk_macho_opcode_stream(m, DK_STREAM_WEAK_BIND, &off, &size));
    CHECK_EQ_U64(off, WEAK_AT);
    CHECK_EQ_U64(size, sizeof WEAKS);
    dk_macho_close(m);
}

/*
 * i386: REBASE_TYPE_TEXT_ABSOLUTE32 (a 32-bit absolute address in __TEXT) and
 * TEXT_PCREL32, 4-byte pointers.
 *  11 -> no: 12 SET_TYPE_IMM(TEXT_ABSOLUTE32); 20 90 10 SET_SEGMENT_AND_OFFSET_ULEB(0, 0x810); 51 DO_REBASE_IMM_TIMES(1)
 *  11 SET_TYPE_IMM(POINTER); 21 00 SET_SEGMENT_AND_OFFSET_ULEB(1, 0); 51
 *  13 SET_TYPE_IMM(TEXT_PCREL32); 21 04 (1, 4); 51; 00 DONE
 */
static void test_opcode_i386(void)
{
    synth s;
    sy_init(&s, false, SY_CPU_I386, 3, B32);
    sy_std_segments(&s);
    sy_dylib(&s, "/usr/lib/libA.dylib");
    static const uint8_t rebases[] = {0x12, 0x20, 0x90, 0x10, 0x51, 0x11, 0x21, 0x00, 0x51, 0x13, 0x21, 0x04, 0x51, 0x00};
    streams st = {{rebases, NULL, NULL, NULL}, {sizeof rebases, 0, 0, 0}};
    put_streams(&s, &st);
    sy_w32(&s, 0x810, 0x4123);          /* the absolute address in the instruction at __text+0x10 */
    sy_w32(&s, SY_DATA_OFF, 0x4800);
    sy_w32(&s, SY_DATA_OFF + 4, 0x1234);
    fx_list l;
    dk_error err;
    CHECK_EQ_U64(walk(&s, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 3);
    if (l.n != 3) return;
    CHECK_EQ_U64(l.f[0].address, B32 + 0x810);
    CHECK_EQ_U64(l.f[0].type, 2);
    CHECK_EQ_U64(l.f[0].width, 4);
    CHECK_EQ_U64(l.f[0].target, 0x4123);
    CHECK_EQ_U64(l.f[0].segment, 0);
    CHECK_EQ_U64(l.f[0].section, 0);
    CHECK_EQ_U64(l.f[1].address, B32 + 0x1000);
    CHECK_EQ_U64(l.f[1].type, 1);
    CHECK_EQ_U64(l.f[1].width, 4);
    CHECK_EQ_U64(l.f[1].target, 0x4800);
    CHECK_EQ_U64(l.f[2].address, B32 + 0x1004);
    CHECK_EQ_U64(l.f[2].type, 3);
}

/*
 * Threaded binds (arm64e, BIND_OPCODE_THREADED): the bind stream fills an
 * ordinal table, then THREADED_APPLY walks a DYLD_CHAINED_PTR_ARM64E-style
 * chain (8-byte stride) from the current location.
 *  0  d0 02              THREADED SET_BIND_ORDINAL_TABLE_SIZE_ULEB(2)
 *  2  11 40 "_t0" 90     table[0] = libA _t0
 *  9  12 40 "_t1" 60 10 90   table[1] = libB _t1 addend 16
 * 18  71 00              SET_SEGMENT_AND_OFFSET_ULEB(1, 0)
 * 20  d1                 THREADED_APPLY
 * 21  00
 */
static void test_threaded(void)
{
    synth s;
    image64(&s, SY_CPU_ARM64, SY_SUB_ARM64E);
    static const uint8_t binds[] = {0xd0, 0x02, 0x11, 0x40, '_', 't', '0', 0, 0x90, 0x12, 0x40, '_', 't', '1', 0,
                                    0x60, 0x10, 0x90, 0x71, 0x00, 0xd1, 0x00};
    streams st = {{NULL, binds, NULL, NULL}, {0, sizeof binds, 0, 0}};
    put_streams(&s, &st);
    /* 0x00 bind {ordinal 1, addend 4, next 1, bind} */
    sy_w64(&s, SY_DATA_OFF + 0x00, 0x4008000400000001ull);
    /* 0x08 auth bind {ordinal 0, diversity 0x1111, addrDiv 1, key IA, next 1, bind, auth} */
    sy_w64(&s, SY_DATA_OFF + 0x08, 0xC009111100000000ull);
    /* 0x10 rebase {target 0x100000800 (vmaddr), high8 0, next 1} */
    sy_w64(&s, SY_DATA_OFF + 0x10, 0x0008000100000800ull);
    /* 0x18 auth rebase {target 0x900 (offset), diversity 0, addrDiv 0, key DA, next 0, auth} */
    sy_w64(&s, SY_DATA_OFF + 0x18, 0x8004000000000900ull);
    fx_list l;
    dk_error err;
    CHECK_EQ_U64(walk(&s, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 4);
    uint64_t D = B64 + SY_DATA_OFF;
    if (l.n == 4) {
        check_bind(&l.f[0], DK_FIXUP_BIND, D, 2, "_t1", 16 + 4, false, __LINE__);
        CHECK(!l.f[0].auth);
        check_bind(&l.f[1], DK_FIXUP_BIND, D + 8, 1, "_t0", 0, false, __LINE__);
        CHECK(l.f[1].auth && l.f[1].key == DK_KEY_IA && l.f[1].diversity == 0x1111 && l.f[1].addr_div);
        CHECK_EQ_U64(l.f[2].kind, DK_FIXUP_REBASE);
        CHECK_EQ_U64(l.f[2].address, D + 0x10);
        CHECK_EQ_U64(l.f[2].target, 0x100000800ull);
        CHECK_EQ_U64(l.f[3].target, B64 + 0x900);
        CHECK(l.f[3].auth && l.f[3].key == DK_KEY_DA);
    }
    dk_macho *m = open_synth(&s, &err);
    if (!m) return;
    op_list o;
    memset(&o, 0, sizeof o);
    CHECK_EQ_U64(dk_macho_foreach_opcode(m, DK_STREAM_BIND, collect_op, &o, &err), DK_OK);
    CHECK_EQ_U64(o.n, 11);
    if (o.n == 11) {
        CHECK_STR(o.op[0].name, "BIND_SUBOPCODE_THREADED_SET_BIND_ORDINAL_TABLE_SIZE_ULEB");
        CHECK_EQ_U64(o.op[0].args[0], 2);
        CHECK_STR(o.op[9].name, "BIND_SUBOPCODE_THREADED_APPLY");
        CHECK_EQ_U64(o.op[9].offset, 20);
    }
    dk_macho_close(m);

    /* the same stream in an x86_64 image */
    image64(&s, SY_CPU_X86_64, 3);
    put_streams(&s, &st);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "threaded binds exist only for arm64e");
    /* a threaded bind whose table index is past the table: ordinal 2 of 2 */
    image64(&s, SY_CPU_ARM64, SY_SUB_ARM64E);
    put_streams(&s, &st);
    sy_w64(&s, SY_DATA_OFF, 0x4000000000000002ull);
    CHECK_EQ_U64(walk(&s, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "uses ordinal table entry 2 of 2");
}

/* One stream (kind K) in a fresh image; the status of walking its fixups. */
static dk_status one_stream(int k, const uint8_t *bytes, size_t n, dk_error *err)
{
    synth s;
    image64(&s, SY_CPU_X86_64, 3);
    streams st = {{NULL, NULL, NULL, NULL}, {0, 0, 0, 0}};
    st.s[k] = bytes;
    st.n[k] = n;
    put_streams(&s, &st);
    fx_list l;
    return walk(&s, &l, err);
}

#define STREAM_ERR(k, msg, ...)                                                                   \
    do {                                                                                          \
        static const uint8_t b_[] = {__VA_ARGS__};                                               \
        dk_error e_;                                                                              \
        CHECK_EQ_U64(one_stream(k, b_, sizeof b_, &e_), DK_E_MALFORMED);                          \
        CHECK_MSG(e_, msg);                                                                       \
    } while (0)

static void test_opcode_errors(void)
{
    /* rebase */
    STREAM_ERR(0, "rebase opcodes: bad opcode 0x90 at offset 0x1 (file offset 0x3001)", 0x11, 0x90);
    STREAM_ERR(0, "missing preceding SET_SEGMENT_AND_OFFSET_ULEB", 0x11, 0x51, 0x00);
    STREAM_ERR(0, "segment index 5 but the image has 3 segments", 0x25, 0x00, 0x51, 0x00);
    STREAM_ERR(0, "segment offset 0x2000 past the end of segment 1 (__DATA, vmsize 0x2000)", 0x11, 0x21, 0x80, 0x40,
               0x51, 0x00);
    STREAM_ERR(0, "REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB at offset 0x0 (file offset 0x3000): malformed ULEB128 operand",
               0x21, 0x80);
    STREAM_ERR(0, "REBASE_OPCODE_SET_TYPE_IMM at offset 0x0 (file offset 0x3000): bad type 4", 0x14, 0x00);
    /* a times-count that runs the location off the segment is stopped there */
    STREAM_ERR(0, "past the end of segment 1", 0x11, 0x21, 0x00, 0x60, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00);
    /* bind */
    STREAM_ERR(1, "symbol name extends past the end of the stream", 0x11, 0x40, '_', 'x');
    STREAM_ERR(1, "library ordinal 3 but only 2 dylibs", 0x13, 0x00);
    STREAM_ERR(1, "unknown special ordinal -4", 0x3c, 0x00);
    STREAM_ERR(1, "missing preceding BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM", 0x11, 0x71, 0x00, 0x90, 0x00);
    STREAM_ERR(1, "missing preceding BIND_OPCODE_SET_DYLIB_ORDINAL", 0x40, '_', 'x', 0, 0x71, 0x00, 0x90, 0x00);
    STREAM_ERR(1, "bad bind type 0", 0x50, 0x00);
    STREAM_ERR(1, "BIND_OPCODE_SET_ADDEND_SLEB at offset 0x0 (file offset 0x3100): malformed SLEB128 operand", 0x60, 0xff);
    STREAM_ERR(1, "bad opcode 0xe0", 0xe0);
    /* weak: no ordinals there */
    STREAM_ERR(2, "not allowed in the weak bind stream", 0x11, 0x00);
    /* lazy: no advancing binds */
    STREAM_ERR(3, "not allowed in the lazy bind stream", 0x71, 0x00, 0x11, 0x40, '_', 'x', 0, 0xa0, 0x08, 0x00);
    /* stream ranges outside the file are caught when the image is opened */
    synth s;
    image64(&s, SY_CPU_X86_64, 3);
    uint32_t off[5] = {SY_LINKEDIT_OFF + 0xff0, 0, 0, 0, 0}, size[5] = {0x20, 0, 0, 0, 0};
    sy_dyld_info(&s, off, size);
    dk_macho *m = NULL;
    dk_error err = {0};
    CHECK_EQ_U64(dk_macho_open(s.buf, s.size, "synth", &m, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "rebase_off+rebase_size past end of file (0x4010 > 0x4000)");
    dk_macho_close(m);
}

/* Re-export ordinals are checked against the image's dylibs (the trie through LC_DYLD_EXPORTS_TRIE). */
static void test_trie_in_image(void)
{
    synth s;
    image64(&s, SY_CPU_X86_64, 3);
    /* root 00 01 "_x" -> 6; node 6: 03 | 08 03 00 (re-export of ordinal 3, same name), 00 */
    static const uint8_t t[] = {0x00, 0x01, '_', 'x', 0x00, 6, 0x03, 0x08, 0x03, 0x00, 0x00};
    memcpy(s.buf + TRIE_AT, t, sizeof t);
    sy_linkedit_cmd(&s, SY_LC_DYLD_EXPORTS_TRIE, TRIE_AT, sizeof t);
    dk_error err;
    dk_macho *m = open_synth(&s, &err);
    if (!m) {
        CHECK(0);
        return;
    }
    CHECK(dk_macho_has_exports_trie(m));
    ex_list l;
    memset(&l, 0, sizeof l);
    CHECK_EQ_U64(dk_macho_foreach_export(m, collect_export, &l, &err), DK_E_MALFORMED);
    CHECK_MSG(err, "(_x): re-export library ordinal 3 but only 2 dylibs");
    dk_export e;
    CHECK_EQ_U64(dk_macho_find_export(m, "_x", &e, &err), DK_E_MALFORMED);
    dk_macho_close(m);
    /* ordinal 2 is fine, and dk_trie_foreach (no image) does not check ordinals */
    s.buf[TRIE_AT + 8] = 2;
    m = open_synth(&s, &err);
    if (!m) return;
    memset(&l, 0, sizeof l);
    CHECK_EQ_U64(dk_macho_foreach_export(m, collect_export, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, 1);
    CHECK_EQ_U64(l.e[0].ordinal, 2);
    CHECK_STR(l.imported[0], "_x");
    CHECK_EQ_U64(dk_macho_find_export(m, "_x", &e, &err), DK_OK);
    CHECK_EQ_U64(dk_macho_find_export(m, "_y", &e, &err), DK_E_NOTFOUND);
    dk_macho_close(m);
    memset(&l, 0, sizeof l);
    CHECK_EQ_U64(dk_trie_foreach(t, sizeof t, 0, collect_export, &l, &err), DK_OK);
    CHECK_EQ_U64(l.e[0].ordinal, 3);
}

int main(void)
{
    test_leb();
    test_trie_kinds();
    test_trie_bad();
    test_trie_depth();
    test_opcode_image64();
    test_opcode_i386();
    test_threaded();
    test_opcode_errors();
    test_trie_in_image();
    return unit_finish("test_leb_trie_opcodes");
}
