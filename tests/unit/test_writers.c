/*
 * The encoders of src/writer.h, each checked against its decoder:
 *   dk_buf            exact bytes of LE integers and LEB128s;
 *   dk_trie_build     hand-worked tries byte for byte, then random tries
 *                     walked back with dk_trie_foreach / dk_trie_find;
 *   opcode streams    hand-worked rebase / bind / weak / lazy streams byte for
 *                     byte, then random location sets put in synthetic images
 *                     (header, LC_SEGMENT(_64)s with sections over the pointer
 *                     areas, LC_DYLD_INFO_ONLY, LC_LOAD_DYLIBs) and walked back
 *                     with dk_macho_foreach_fixup;
 *   chained fixups    hand-worked chain values and starts, then random fixups
 *                     in DYLD_CHAINED_PTR_64 / _64_OFFSET / ARM64E / USERLAND24
 *                     images walked back the same way.
 * Expected bytes are worked out in the comments from <mach-o/loader.h> and
 * <mach-o/fixup-chains.h>, not taken from the encoder.  Random cases use a
 * fixed seed.
 *
 * `test_writers --emit DIR` also writes one synthetic image per stream kind,
 * with DIR/NAME.expect listing what each must contain, for
 * tests/test_writers.py to check with llvm-objdump-22.
 */
#include "dyldkit/dyldkit.h"
#include "macho_defs.h"
#include "unit.h"
#include "writer.h"

#include <time.h>

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

/* Compare a buffer with expected bytes, printing the first difference. */
static void check_bytes(const dk_buf *b, const uint8_t *want, size_t n, int line)
{
    unit_checks++;
    if (b->len == n && memcmp(b->data, want, n) == 0) return;
    unit_failures++;
    size_t i = 0;
    while (i < n && i < b->len && b->data[i] == want[i]) i++;
    fprintf(stderr, "line %d: %zu bytes, want %zu; first difference at %zu: got 0x%02x want 0x%02x\n", line, b->len, n, i,
            i < b->len ? b->data[i] : 0, i < n ? want[i] : 0);
}
#define CHECK_BYTES(buf, ...)                                                   \
    do {                                                                        \
        static const uint8_t want_[] = {__VA_ARGS__};                           \
        check_bytes((buf), want_, sizeof want_, __LINE__);                      \
    } while (0)

/* xorshift64*: a fixed-seed generator so failures reproduce */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }
static bool chance(unsigned percent) { return rnd_below(100) < percent; }

/* CPU time: the machine may be shared, wall time would measure the neighbours */
static double now_seconds(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* --------------------------------------------------------------- dk_buf */

static void test_buf(void)
{
    dk_buf b = {0};
    /* little-endian integers */
    dk_buf_u8(&b, 0xAB);
    dk_buf_u16(&b, 0x1234);
    dk_buf_u32(&b, 0x89ABCDEFu);
    dk_buf_u64(&b, 0x0102030405060708ull);
    CHECK_BYTES(&b, 0xAB, 0x34, 0x12, 0xEF, 0xCD, 0xAB, 0x89, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01);
    dk_buf_free(&b);

    /* ULEB128: 0; 127; 128 = 0x80 0x01; 624485 = 0x98765 -> 0xE5 0x8E 0x26 (the DWARF spec's example);
     * 2^64-1 -> nine 0xFF then 0x01 */
    dk_buf_uleb(&b, 0);
    dk_buf_uleb(&b, 127);
    dk_buf_uleb(&b, 128);
    dk_buf_uleb(&b, 624485);
    dk_buf_uleb(&b, UINT64_MAX);
    CHECK_BYTES(&b, 0x00, 0x7F, 0x80, 0x01, 0xE5, 0x8E, 0x26, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01);
    dk_buf_free(&b);

    /* SLEB128: 2 = 0x02; -2 = 0x7E; 63 = 0x3F; 64 = 0xC0 0x00 (bit 6 would read as the sign);
     * -64 = 0x40; -65 = 0xBF 0x7F; -123456 = 0xC0 0xBB 0x78 (DWARF's example);
     * INT64_MIN = nine 0x80 then 0x7F */
    dk_buf_sleb(&b, 2);
    dk_buf_sleb(&b, -2);
    dk_buf_sleb(&b, 63);
    dk_buf_sleb(&b, 64);
    dk_buf_sleb(&b, -64);
    dk_buf_sleb(&b, -65);
    dk_buf_sleb(&b, -123456);
    dk_buf_sleb(&b, INT64_MIN);
    CHECK_BYTES(&b, 0x02, 0x7E, 0x3F, 0xC0, 0x00, 0x40, 0xBF, 0x7F, 0xC0, 0xBB, 0x78, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                0x80, 0x80, 0x7F);
    /* every LEB written reads back with the library's bounded readers */
    for (int k = 0; k < 2000; k++) {
        uint64_t v = rnd() >> rnd_below(64);
        int64_t sv = (int64_t)(rnd() >> rnd_below(64)) * (chance(50) ? -1 : 1);
        dk_buf t = {0};
        dk_buf_uleb(&t, v);
        dk_buf_sleb(&t, sv);
        const uint8_t *p = t.data, *end = t.data + t.len;
        uint64_t rv;
        int64_t rsv;
        bool ok = dk_uleb(&p, end, &rv) && (size_t)(p - t.data) == dk_uleb_size(v) && dk_sleb(&p, end, &rsv) && p == end;
        unit_checks++;
        if (!ok || rv != v || rsv != sv) {
            unit_failures++;
            fprintf(stderr, "leb round trip of 0x%llx / %lld failed\n", (unsigned long long)v, (long long)sv);
            k = 2000;
        }
        dk_buf_free(&t);
    }
    dk_buf_free(&b);

    /* strings keep their NUL; align pads with zeros; reserve hands back zeroed room */
    dk_buf_cstr(&b, "ab");
    dk_buf_align(&b, 8);
    size_t at = dk_buf_reserve(&b, 3);
    dk_buf_bytes(&b, "xy", 2);
    dk_buf_zeros(&b, 1);
    dk_buf_align(&b, 4);
    CHECK_EQ_U64(at, 8);
    CHECK_BYTES(&b, 'a', 'b', 0, 0, 0, 0, 0, 0, 0, 0, 0, 'x', 'y', 0, 0, 0);
    dk_buf_align(&b, 4); /* already aligned: nothing */
    CHECK_EQ_U64(b.len, 16);
    dk_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0 && !b.oom);

    /* growth past the first allocation keeps the contents */
    for (uint32_t i = 0; i < 100000; i++) dk_buf_u32(&b, i);
    bool same = b.len == 400000 && !b.oom;
    for (uint32_t i = 0; same && i < 100000; i++) same = dk_le32(b.data + 4 * i) == i;
    CHECK(same);
    dk_buf_free(&b);

    /* once out of memory, writes are dropped and the flag stays set */
    dk_buf_u32(&b, 1);
    b.oom = true;
    dk_buf_u32(&b, 2);
    dk_buf_uleb(&b, 3);
    dk_buf_cstr(&b, "x");
    dk_buf_align(&b, 8);
    CHECK(b.oom && b.len == 4);
    /* a request no allocator can meet sets oom rather than wrapping */
    dk_buf_free(&b);
    dk_buf_u8(&b, 1);
    dk_buf_zeros(&b, SIZE_MAX - 8);
    CHECK(b.oom && b.len == 1);
    dk_buf_free(&b);
}

/* ------------------------------------------------------------ export trie */

typedef struct ex_item {
    char *name;
    dk_export e;
    char *imported;
} ex_item;

typedef struct ex_list {
    ex_item *v;
    size_t n, cap;
} ex_list;

static int collect_export(void *ctx, const dk_export *e)
{
    ex_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    ex_item *x = &l->v[l->n++];
    x->e = *e;
    x->name = strdup(e->name);
    x->imported = e->imported_name ? strdup(e->imported_name) : NULL;
    return 0;
}

static void ex_free(ex_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].imported);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_ex(const void *a, const void *b) { return strcmp(((const ex_item *)a)->name, ((const ex_item *)b)->name); }
static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const dk_trie_entry *)a)->name, ((const dk_trie_entry *)b)->name);
}

/* Decoded export D is entry E (base BASE). */
static bool export_matches(const dk_trie_entry *e, const dk_export *d, const char *imported, uint64_t base)
{
    if (d->raw_flags != e->flags) return false;
    if (e->flags & EXPORT_SYMBOL_FLAGS_REEXPORT) {
        const char *want = e->import_name && *e->import_name ? e->import_name : e->name;
        return (uint64_t)d->ordinal == e->ordinal && imported && strcmp(imported, want) == 0;
    }
    if (d->offset != e->address) return false;
    bool abs = (e->flags & EXPORT_SYMBOL_FLAGS_KIND_MASK) == EXPORT_SYMBOL_FLAGS_KIND_ABSOLUTE;
    if (d->address != (abs ? e->address : base + e->address)) return false;
    if ((e->flags & EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER) && d->resolver != base + e->other) return false;
    if ((e->flags & EXPORT_SYMBOL_FLAGS_FUNCTION_VARIANT) && d->function_variant != e->other) return false;
    return true;
}

/* Build a trie of ENTRIES and check every entry comes back, through both walkers. */
static void trie_round_trip(dk_trie_entry *entries, size_t n, const char *what)
{
    dk_buf b = {0};
    dk_error err = {0};
    dk_status st = dk_trie_build(entries, n, &b, &err);
    CHECK_EQ_U64(st, DK_OK);
    if (st) {
        fprintf(stderr, "%s: %s\n", what, err.message);
        dk_buf_free(&b);
        return;
    }
    ex_list l = {0};
    CHECK_EQ_U64(dk_trie_foreach(b.data, b.len, B64, collect_export, &l, &err), DK_OK);
    CHECK_EQ_U64(l.n, n);
    dk_trie_entry *sorted = malloc(sizeof *sorted * (n ? n : 1));
    memcpy(sorted, entries, sizeof *sorted * n);
    qsort(sorted, n, sizeof *sorted, cmp_entry);
    qsort(l.v, l.n, sizeof *l.v, cmp_ex);
    size_t bad = 0;
    for (size_t i = 0; i < n && i < l.n; i++) {
        if (strcmp(l.v[i].name, sorted[i].name) != 0 || !export_matches(&sorted[i], &l.v[i].e, l.v[i].imported, B64)) {
            if (bad++ < 3) fprintf(stderr, "%s: entry %s decoded as %s flags 0x%llx\n", what, sorted[i].name, l.v[i].name,
                                   (unsigned long long)l.v[i].e.raw_flags);
        }
        dk_export f;
        if (dk_trie_find(b.data, b.len, B64, sorted[i].name, &f, &err) != DK_OK || !export_matches(&sorted[i], &f, f.imported_name, B64) ||
            f.node_offset != l.v[i].e.node_offset) {
            if (bad++ < 3) fprintf(stderr, "%s: dk_trie_find(%s) disagrees\n", what, sorted[i].name);
        }
    }
    unit_checks++;
    if (bad) {
        unit_failures++;
        fprintf(stderr, "%s: %zu of %zu entries wrong\n", what, bad, n);
    }
    ex_free(&l);
    free(sorted);
    dk_buf_free(&b);
}

static void test_trie_exact(void)
{
    dk_buf b = {0};
    dk_error err = {0};

    /*
     * _foo at 0x1000 and _bar at 0x2000.  The radix tree: root -"_"-> N -"bar"-> L1, -"foo"-> L2,
     * laid out breadth-first:
     *   root @0:  00 (not terminal) 01 (one child) "_" 00, offset of N = 5            -> 5 bytes
     *   N    @5:  00 02 "bar" 00 <L1 @17 = 0x11> "foo" 00 <L2 @22 = 0x16>              -> 12 bytes
     *   L1   @17: 03 (terminal size) 00 (flags) 80 40 (ULEB 0x2000) 00 (no children) -> 5 bytes
     *   L2   @22: 03 00 80 20 (ULEB 0x1000) 00
     */
    dk_trie_entry two[] = {{"_foo", 0, 0x1000, 0, 0, NULL}, {"_bar", 0, 0x2000, 0, 0, NULL}};
    CHECK_EQ_U64(dk_trie_build(two, 2, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x00, 0x01, '_', 0x00, 0x05,
                0x00, 0x02, 'b', 'a', 'r', 0x00, 0x11, 'f', 'o', 'o', 0x00, 0x16,
                0x03, 0x00, 0x80, 0x40, 0x00,
                0x03, 0x00, 0x80, 0x20, 0x00);
    /* the same bytes whatever the input order */
    dk_trie_entry swapped[] = {two[1], two[0]};
    dk_buf c = {0};
    CHECK_EQ_U64(dk_trie_build(swapped, 2, &c, &err), DK_OK);
    CHECK(c.len == b.len && memcmp(c.data, b.data, b.len) == 0);
    dk_buf_free(&c);
    dk_buf_free(&b);

    /*
     * _a (regular, 0x10), _ab (re-export of _x from dylib 2), _b (stub 0x20, resolver 0x30).
     * Tree: root -"_"-> M; M -"a"-> A, -"b"-> B; A is terminal and -"b"-> AB.
     * Breadth-first: root, M, A, B, AB.
     *   root @0:  00 01 "_" 00 <M @5>                                    5 bytes
     *   M    @5:  00 02 "a" 00 <A @13 = 0x0d> "b" 00 <B @20 = 0x14>      8 bytes
     *   A    @13: 02 00 10 (flags 0, address 0x10) 01 "b" 00 <AB @25 = 0x19>  7 bytes
     *   B    @20: 03 10 20 30 (STUB_AND_RESOLVER, stub 0x20, resolver 0x30) 00   5 bytes
     *   AB   @25: 05 08 02 "_x" 00 (REEXPORT, ordinal 2, imported name) 00     7 bytes
     */
    dk_trie_entry three[] = {{"_b", EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER, 0x20, 0x30, 0, NULL},
                             {"_ab", EXPORT_SYMBOL_FLAGS_REEXPORT, 0, 0, 2, "_x"},
                             {"_a", 0, 0x10, 0, 0, NULL}};
    CHECK_EQ_U64(dk_trie_build(three, 3, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x00, 0x01, '_', 0x00, 0x05,
                0x00, 0x02, 'a', 0x00, 0x0d, 'b', 0x00, 0x14,
                0x02, 0x00, 0x10, 0x01, 'b', 0x00, 0x19,
                0x03, 0x10, 0x20, 0x30, 0x00,
                0x05, 0x08, 0x02, '_', 'x', 0x00, 0x00);
    dk_buf_free(&b);

    /*
     * The other kinds, one per node under a single-byte root edge each:
     *   w weak (flags 04, 0x8); t thread-local (01, 0x10); s absolute (02, 0x7f);
     *   v function variant (20, 0x40, table index 3); r re-export with its own name (08, ordinal 1, "")
     * root @0: 00 05 then five edges "r" 00 <o> "s" 00 <o> "t" 00 <o> "v" 00 <o> "w" 00 <o>: 2 + 5*3 = 17 bytes
     *   r @17: 03 08 01 00 00          (terminal size 3: flags, ordinal, empty name)   5 bytes
     *   s @22: 02 02 7f 00                                                               4 bytes
     *   t @26: 02 01 10 00                                                               4 bytes
     *   v @30: 03 20 40 03 00                                                            5 bytes
     *   w @35: 02 04 08 00
     */
    dk_trie_entry kinds[] = {{"w", EXPORT_SYMBOL_FLAGS_WEAK_DEFINITION, 0x8, 0, 0, NULL},
                             {"t", EXPORT_SYMBOL_FLAGS_KIND_THREAD_LOCAL, 0x10, 0, 0, NULL},
                             {"s", EXPORT_SYMBOL_FLAGS_KIND_ABSOLUTE, 0x7f, 0, 0, NULL},
                             {"v", EXPORT_SYMBOL_FLAGS_FUNCTION_VARIANT, 0x40, 3, 0, NULL},
                             {"r", EXPORT_SYMBOL_FLAGS_REEXPORT, 0, 0, 1, "r"}};
    CHECK_EQ_U64(dk_trie_build(kinds, 5, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x00, 0x05, 'r', 0x00, 17, 's', 0x00, 22, 't', 0x00, 26, 'v', 0x00, 30, 'w', 0x00, 35,
                0x03, 0x08, 0x01, 0x00, 0x00,
                0x02, 0x02, 0x7f, 0x00,
                0x02, 0x01, 0x10, 0x00,
                0x03, 0x20, 0x40, 0x03, 0x00,
                0x02, 0x04, 0x08, 0x00);
    trie_round_trip(kinds, 5, "kinds");
    dk_buf_free(&b);

    /*
     * Offsets settle over passes: 40 one-letter children whose leaves carry 5-byte addresses push the
     * later leaves past 127, so their child offsets need 2-byte ULEBs, which moves every leaf again.
     * Check the layout is the fixed point: each leaf starts exactly where the previous one ends.
     */
    dk_trie_entry many[40];
    char names[40][2];
    for (int i = 0; i < 40; i++) {
        names[i][0] = (char)('A' + i);
        names[i][1] = 0;
        many[i] = (dk_trie_entry){names[i], 0, 0x100000000ull + (uint64_t)i, 0, 0, NULL};
    }
    CHECK_EQ_U64(dk_trie_build(many, 40, &b, &err), DK_OK);
    /* leaf: ULEB terminal size (1) + flags (1) + ULEB(2^32 + i) (5) + child count (1) = 8 bytes;
     * root: 2 + 40 edges of 2 string bytes + ULEB(offset).  With 1-byte offsets the root is 122
     * bytes and most leaves land past 127; with 2-byte offsets it is 162 and every leaf (162 + 8k)
     * needs 2 bytes: the fixed point. */
    CHECK_EQ_U64(b.len, 162 + 40 * 8);
    if (b.len == 162 + 40 * 8) {
        const uint8_t *p = b.data + 2;
        bool ok = b.data[0] == 0 && b.data[1] == 40;
        for (int i = 0; i < 40 && ok; i++) {
            uint64_t off;
            ok = p[0] == (uint8_t)('A' + i) && p[1] == 0;
            p += 2;
            ok = ok && dk_uleb(&p, b.data + b.len, &off) && off == 162u + 8u * (unsigned)i;
        }
        CHECK(ok);
    }
    trie_round_trip(many, 40, "forty");
    dk_buf_free(&b);

    /* nothing to export: a bare root (not terminal, no children), as ld64 writes it */
    CHECK_EQ_U64(dk_trie_build(NULL, 0, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x00, 0x00);
    dk_buf_free(&b);

    /* the empty name is the root's own terminal */
    dk_trie_entry root_only[] = {{"", 0, 0x5, 0, 0, NULL}, {"x", 0, 0x6, 0, 0, NULL}};
    CHECK_EQ_U64(dk_trie_build(root_only, 2, &b, &err), DK_OK);
    /* root @0: 02 00 05 01 "x" 00 <7>; x @7: 02 00 06 00 */
    CHECK_BYTES(&b, 0x02, 0x00, 0x05, 0x01, 'x', 0x00, 0x07, 0x02, 0x00, 0x06, 0x00);
    trie_round_trip(root_only, 2, "root terminal");
    dk_buf_free(&b);

    /* appending after existing bytes: offsets stay relative to the trie */
    dk_buf_cstr(&b, "pre");
    CHECK_EQ_U64(dk_trie_build(two, 2, &b, &err), DK_OK);
    CHECK(b.len == 4 + 27 && b.data[4 + 4] == 0x05 && b.data[4 + 11] == 0x11);
    dk_buf_free(&b);
}

static void test_trie_errors(void)
{
    dk_buf b = {0};
    dk_error err = {0};
    dk_trie_entry dup[] = {{"_x", 0, 1, 0, 0, NULL}, {"_y", 0, 2, 0, 0, NULL}, {"_x", 0, 3, 0, 0, NULL}};
    dk_buf_cstr(&b, "keep");
    CHECK_EQ_U64(dk_trie_build(dup, 3, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "_x is exported twice");
    CHECK(b.len == 5); /* nothing left behind */
    dk_trie_entry kind3[] = {{"_k", 3, 1, 0, 0, NULL}};
    CHECK_EQ_U64(dk_trie_build(kind3, 1, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "kind 3");
    dk_trie_entry unknown[] = {{"_u", 0x40, 1, 0, 0, NULL}};
    CHECK_EQ_U64(dk_trie_build(unknown, 1, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "unknown flags 0x40");
    dk_trie_entry both[] = {{"_rv", 0x30, 1, 2, 0, NULL}};
    CHECK_EQ_U64(dk_trie_build(both, 1, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "both STUB_AND_RESOLVER and FUNCTION_VARIANT");
    dk_trie_entry rex[] = {{"_r", EXPORT_SYMBOL_FLAGS_REEXPORT | EXPORT_SYMBOL_FLAGS_KIND_THREAD_LOCAL, 0, 0, 1, NULL}};
    CHECK_EQ_U64(dk_trie_build(rex, 1, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "re-export flags");
    dk_trie_entry noname[] = {{NULL, 0, 1, 0, 0, NULL}};
    CHECK_EQ_U64(dk_trie_build(noname, 1, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "entry 0 has no name");
    /* 600 nested names a, aa, aaa, ... make a path deeper than a reader walks */
    static char deep[600][601];
    dk_trie_entry *chain = malloc(sizeof *chain * 600);
    for (int i = 0; i < 600; i++) {
        memset(deep[i], 'a', (size_t)i + 1);
        deep[i][i + 1] = 0;
        chain[i] = (dk_trie_entry){deep[i], 0, (uint64_t)i, 0, 0, NULL};
    }
    CHECK_EQ_U64(dk_trie_build(chain, 600, &b, &err), DK_E_LIMIT);
    CHECK_MSG(err, "edges deep");
    CHECK_EQ_U64(dk_trie_build(chain, 500, &b, &err), DK_OK); /* 500 levels are fine */
    free(chain);
    CHECK(b.len > 5);
    dk_buf_free(&b);
}

/* Names with many shared prefixes, including names that are prefixes of others. */
static const char *const PIECES[] = {"_", "NS", "String", "objc", "_msg", "Send", "Super", "a", "ab", "abc", "x", "\xc3\xa9", "$ld$", "1", "9"};
#define NPIECES (sizeof PIECES / sizeof PIECES[0])

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* N distinct random names; the array and the names are freed with free_names. */
static char **random_names(size_t want, size_t *n)
{
    char **v = malloc(sizeof *v * want);
    for (size_t i = 0; i < want; i++) {
        char tmp[256];
        size_t len = 0;
        int parts = 1 + (int)rnd_below(5);
        for (int k = 0; k < parts; k++) {
            const char *p = PIECES[rnd_below(NPIECES)];
            size_t pl = strlen(p);
            memcpy(tmp + len, p, pl);
            len += pl;
        }
        if (chance(40)) len += (size_t)snprintf(tmp + len, sizeof tmp - len, "%zu", i);
        tmp[len] = 0;
        v[i] = strdup(tmp);
    }
    qsort(v, want, sizeof *v, cmp_cstr);
    size_t k = 0;
    for (size_t i = 0; i < want; i++) {
        if (k && strcmp(v[k - 1], v[i]) == 0) {
            free(v[i]);
            continue;
        }
        v[k++] = v[i];
    }
    /* shuffle, so the builder sees them in no particular order */
    for (size_t i = k; i > 1; i--) {
        size_t j = rnd_below(i);
        char *t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
    *n = k;
    return v;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static uint64_t random_value(void)
{
    switch (rnd_below(4)) {
    case 0: return rnd_below(128);
    case 1: return rnd_below(1u << 20);
    case 2: return rnd() >> 24;
    default: return rnd();
    }
}

static void random_entry(dk_trie_entry *e, const char *name, char **names, size_t n)
{
    memset(e, 0, sizeof *e);
    e->name = name;
    unsigned r = (unsigned)rnd_below(100);
    if (r < 50) e->flags = 0;
    else if (r < 60) e->flags = EXPORT_SYMBOL_FLAGS_WEAK_DEFINITION;
    else if (r < 65) e->flags = EXPORT_SYMBOL_FLAGS_KIND_THREAD_LOCAL | (chance(30) ? EXPORT_SYMBOL_FLAGS_WEAK_DEFINITION : 0);
    else if (r < 70) e->flags = EXPORT_SYMBOL_FLAGS_KIND_ABSOLUTE;
    else if (r < 85) e->flags = EXPORT_SYMBOL_FLAGS_REEXPORT | (chance(20) ? EXPORT_SYMBOL_FLAGS_WEAK_DEFINITION : 0);
    else if (r < 93) e->flags = EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER;
    else e->flags = EXPORT_SYMBOL_FLAGS_FUNCTION_VARIANT;
    e->address = random_value();
    if (e->flags & EXPORT_SYMBOL_FLAGS_REEXPORT) {
        e->address = 0;
        e->ordinal = 1 + rnd_below(chance(90) ? 10 : 300);
        switch (rnd_below(4)) {
        case 0: e->import_name = NULL; break;
        case 1: e->import_name = ""; break;
        case 2: e->import_name = name; break;
        default: e->import_name = names[rnd_below(n)]; break; /* may be long: terminal sizes past 127 */
        }
    }
    if (e->flags & (EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER | EXPORT_SYMBOL_FLAGS_FUNCTION_VARIANT)) e->other = random_value();
}

static void test_trie_random(void)
{
    for (int round = 0; round < 6; round++) {
        size_t want = round == 5 ? 20000 : (size_t)1 + rnd_below(round < 2 ? 20 : 3000);
        size_t n;
        char **names = random_names(want, &n);
        dk_trie_entry *e = malloc(sizeof *e * n);
        for (size_t i = 0; i < n; i++) random_entry(&e[i], names[i], names, n);
        char what[64];
        snprintf(what, sizeof what, "random trie %d (%zu names)", round, n);
        trie_round_trip(e, n, what);

        /* deterministic: any input order gives the same bytes */
        dk_buf a = {0}, b = {0};
        dk_error err = {0};
        CHECK_EQ_U64(dk_trie_build(e, n, &a, &err), DK_OK);
        for (size_t i = n; i > 1; i--) {
            size_t j = rnd_below(i);
            dk_trie_entry t = e[i - 1];
            e[i - 1] = e[j];
            e[j] = t;
        }
        CHECK_EQ_U64(dk_trie_build(e, n, &b, &err), DK_OK);
        CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        /* names that are not exported stay absent: every strict prefix that is not itself a name */
        dk_export f;
        size_t absent = 0;
        for (size_t i = 0; i < n && i < 200; i++) {
            char probe[300];
            size_t len = strlen(e[i].name);
            snprintf(probe, sizeof probe, "%s~", e[i].name);
            absent += dk_trie_find(a.data, a.len, B64, probe, &f, &err) == DK_E_NOTFOUND;
            if (len > 1) {
                memcpy(probe, e[i].name, len - 1);
                probe[len - 1] = 0;
                bool listed = false;
                for (size_t k = 0; k < n && !listed; k++) listed = strcmp(e[k].name, probe) == 0;
                absent += listed ? 1 : dk_trie_find(a.data, a.len, B64, probe, &f, &err) == DK_E_NOTFOUND;
            } else {
                absent++;
            }
        }
        CHECK_EQ_U64(absent, 2 * (n < 200 ? n : 200));
        dk_buf_free(&a);
        dk_buf_free(&b);
        free(e);
        free_names(names, n);
    }
}

/* ------------------------------------------------------- synthetic images */

/*
 * An image of four segments, each data segment one section covering it
 * (llvm-objdump insists every fixup lies in a section):
 *   0 __TEXT        base + 0        size 0x4000, section __text at +0x1000 size 0x1000
 *   1 __DATA_CONST  base + 0x4000   section __const over all of it
 *   2 __DATA        after it        section __data over all of it
 *   3 __LINKEDIT    after it        the blobs, each 8-aligned
 * File offsets equal VM offsets.  Segment contents are separate buffers until
 * build_image copies them into the file (the chained encoder writes into them).
 */
typedef struct tseg {
    const char *segname, *sectname;
    uint64_t vmaddr, vmsize, sect_addr, sect_size;
    uint32_t prot;
    uint8_t *content;
} tseg;

typedef struct timage {
    bool is64;
    uint32_t cputype, cpusubtype;
    uint64_t base;
    tseg segs[3];
    int ndylibs;
} timage;

static void image_init(timage *im, bool is64, uint32_t cputype, uint32_t cpusubtype, uint64_t dc_size, uint64_t d_size,
                       int ndylibs)
{
    memset(im, 0, sizeof *im);
    im->is64 = is64;
    im->cputype = cputype;
    im->cpusubtype = cpusubtype;
    im->base = is64 ? B64 : B32;
    im->ndylibs = ndylibs;
    uint64_t b = im->base;
    im->segs[0] = (tseg){"__TEXT", "__text", b, 0x4000, b + 0x1000, 0x1000, 5, NULL};
    im->segs[1] = (tseg){"__DATA_CONST", "__const", b + 0x4000, dc_size, b + 0x4000, dc_size, 3, NULL};
    im->segs[2] = (tseg){"__DATA", "__data", b + 0x4000 + dc_size, d_size, b + 0x4000 + dc_size, d_size, 3, NULL};
    for (int i = 0; i < 3; i++) im->segs[i].content = calloc(1, im->segs[i].vmsize);
}

static void image_free(timage *im)
{
    for (int i = 0; i < 3; i++) free(im->segs[i].content);
}

static void dylib_path(char *out, size_t n, int ordinal) { snprintf(out, n, "/usr/lib/libdk%d.dylib", ordinal); }

static void put32(uint8_t *p, uint32_t v) { dk_wr32le(p, v); }
static void put64(uint8_t *p, uint64_t v) { dk_wr64le(p, v); }
static void name16(uint8_t *p, const char *s) { memcpy(p, s, strlen(s)); }

/*
 * The file: mach_header(_64), then LC_SEGMENT(_64) x4 (segment_command_64: segname@8 vmaddr@24
 * vmsize@32 fileoff@40 filesize@48 maxprot@56 initprot@60 nsects@64 flags@68, then section_64 of
 * 80 bytes: sectname@0 segname@16 addr@32 size@40 offset@48 align@52 ... flags@64; the 32-bit forms
 * have 32-bit addr/size fields: 56 + 68 bytes), LC_DYLD_INFO_ONLY (five off/size pairs from 8) when
 * INFO is given, LC_DYLD_CHAINED_FIXUPS / LC_DYLD_EXPORTS_TRIE (linkedit_data_command: dataoff@8
 * datasize@12), and one LC_LOAD_DYLIB per dylib (dylib_command: name offset@8 = 24, timestamp@12,
 * current@16, compat@20, then the path).
 */
static uint8_t *build_image(const timage *im, const dk_buf *const info[5], const dk_buf *chained, const dk_buf *trie, size_t *size)
{
    uint64_t le_off = im->segs[2].vmaddr + im->segs[2].vmsize - im->base;
    const dk_buf *blobs[7];
    uint64_t blob_off[7];
    int nb = 0;
    for (int k = 0; k < 5; k++) blobs[nb++] = info ? info[k] : NULL;
    blobs[nb++] = chained;
    blobs[nb++] = info ? NULL : trie;
    uint64_t le_size = 0;
    for (int k = 0; k < nb; k++) {
        blob_off[k] = le_off + le_size;
        if (blobs[k] && blobs[k]->len) le_size += (blobs[k]->len + 7) & ~(uint64_t)7;
    }
    if (le_size == 0) le_size = 8;
    uint64_t total = le_off + le_size;
    uint8_t *f = calloc(1, total);
    for (int i = 0; i < 3; i++) memcpy(f + (im->segs[i].vmaddr - im->base), im->segs[i].content, im->segs[i].vmsize);
    for (int k = 0; k < nb; k++)
        if (blobs[k] && blobs[k]->len) memcpy(f + blob_off[k], blobs[k]->data, blobs[k]->len);

    memset(f, 0, 0x1000); /* header and load commands */
    bool is64 = im->is64;
    put32(f, is64 ? 0xfeedfacfu : 0xfeedfaceu);
    put32(f + 4, im->cputype);
    put32(f + 8, im->cpusubtype);
    put32(f + 12, 2); /* MH_EXECUTE */
    put32(f + 24, 0x00200085u); /* MH_NOUNDEFS | MH_DYLDLINK | MH_TWOLEVEL | MH_PIE */
    size_t hdr = is64 ? 32 : 28, at = hdr;
    uint32_t ncmds = 0;
    for (int i = 0; i < 4; i++) {
        const tseg *g = i < 3 ? &im->segs[i] : NULL;
        uint64_t vmaddr = g ? g->vmaddr : im->base + le_off, vmsize = g ? g->vmsize : (le_size + 0x3fff) & ~(uint64_t)0x3fff;
        uint64_t fileoff = vmaddr - im->base, filesize = g ? g->vmsize : le_size;
        uint32_t nsect = g ? 1 : 0;
        uint8_t *c = f + at;
        if (is64) {
            put32(c, LC_SEGMENT_64);
            put32(c + 4, 72 + 80 * nsect);
            name16(c + 8, g ? g->segname : "__LINKEDIT");
            put64(c + 24, vmaddr);
            put64(c + 32, vmsize);
            put64(c + 40, fileoff);
            put64(c + 48, filesize);
            put32(c + 56, g ? g->prot : 1);
            put32(c + 60, g ? g->prot : 1);
            put32(c + 64, nsect);
            if (g) {
                uint8_t *s = c + 72;
                name16(s, g->sectname);
                name16(s + 16, g->segname);
                put64(s + 32, g->sect_addr);
                put64(s + 40, g->sect_size);
                put32(s + 48, (uint32_t)(g->sect_addr - im->base));
                put32(s + 52, 3);
            }
            at += 72 + 80 * nsect;
        } else {
            put32(c, LC_SEGMENT);
            put32(c + 4, 56 + 68 * nsect);
            name16(c + 8, g ? g->segname : "__LINKEDIT");
            put32(c + 24, (uint32_t)vmaddr);
            put32(c + 28, (uint32_t)vmsize);
            put32(c + 32, (uint32_t)fileoff);
            put32(c + 36, (uint32_t)filesize);
            put32(c + 40, g ? g->prot : 1);
            put32(c + 44, g ? g->prot : 1);
            put32(c + 48, nsect);
            if (g) {
                uint8_t *s = c + 56;
                name16(s, g->sectname);
                name16(s + 16, g->segname);
                put32(s + 32, (uint32_t)g->sect_addr);
                put32(s + 36, (uint32_t)g->sect_size);
                put32(s + 40, (uint32_t)(g->sect_addr - im->base));
                put32(s + 44, 2);
            }
            at += 56 + 68 * nsect;
        }
        ncmds++;
    }
    if (info) {
        put32(f + at, LC_DYLD_INFO_ONLY);
        put32(f + at + 4, 48);
        for (int k = 0; k < 5; k++) {
            bool has = blobs[k] && blobs[k]->len;
            put32(f + at + 8 + 8 * k, has ? (uint32_t)blob_off[k] : 0);
            put32(f + at + 12 + 8 * k, has ? (uint32_t)blobs[k]->len : 0);
        }
        at += 48;
        ncmds++;
    }
    for (int k = 5; k < 7; k++) {
        if (!blobs[k]) continue;
        put32(f + at, k == 5 ? LC_DYLD_CHAINED_FIXUPS : LC_DYLD_EXPORTS_TRIE);
        put32(f + at + 4, 16);
        put32(f + at + 8, (uint32_t)blob_off[k]);
        put32(f + at + 12, (uint32_t)blobs[k]->len);
        at += 16;
        ncmds++;
    }
    for (int d = 1; d <= im->ndylibs; d++) {
        char path[64];
        dylib_path(path, sizeof path, d);
        uint32_t len = (uint32_t)strlen(path) + 1, cs = (24 + len + 7) & ~7u;
        put32(f + at, LC_LOAD_DYLIB);
        put32(f + at + 4, cs);
        put32(f + at + 8, 24);
        put32(f + at + 12, 2);
        put32(f + at + 16, 0x10000);
        put32(f + at + 20, 0x10000);
        memcpy(f + at + 24, path, len);
        at += cs;
        ncmds++;
    }
    put32(f + 16, ncmds);
    put32(f + 20, (uint32_t)(at - hdr));
    *size = total;
    return f;
}

/* Every fixup of an image, copied out (symbol names copied too). */
typedef struct fx_item {
    dk_fixup f;
    char sym[128];
} fx_item;

typedef struct fx_list {
    fx_item *v;
    size_t n, cap;
} fx_list;

static int collect_fixup(void *ctx, const dk_fixup *f)
{
    fx_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    fx_item *x = &l->v[l->n++];
    x->f = *f;
    snprintf(x->sym, sizeof x->sym, "%s", f->symbol ? f->symbol : "");
    x->f.symbol = NULL;
    return 0;
}

static dk_status walk_image(const uint8_t *file, size_t size, fx_list *l, dk_error *err)
{
    dk_macho *m = NULL;
    dk_status st = dk_macho_open(file, size, "synthetic", &m, err);
    if (st) return st;
    st = dk_macho_foreach_fixup(m, collect_fixup, l, err);
    dk_macho_close(m);
    return st;
}

/* ---------------------------------------------------------- opcode streams */

/* One expected fixup, in a canonical form shared by the encoder input and the decoded output. */
typedef struct want {
    int kind;            /* DK_FIXUP_* */
    bool strong;
    uint64_t address;
    uint8_t type;
    int ordinal;
    int64_t addend;
    uint8_t flags;
    uint32_t lazy_offset;
    const char *sym;
} want;

static int cmp_want(const void *a, const void *b)
{
    const want *x = a, *y = b;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    if (x->strong != y->strong) return x->strong ? -1 : 1;
    if (x->address != y->address) return x->address < y->address ? -1 : 1;
    int c = strcmp(x->sym ? x->sym : "", y->sym ? y->sym : "");
    if (c) return c;
    if (x->type != y->type) return x->type < y->type ? -1 : 1;
    if (x->ordinal != y->ordinal) return x->ordinal < y->ordinal ? -1 : 1;
    if (x->addend != y->addend) return x->addend < y->addend ? -1 : 1;
    if (x->flags != y->flags) return x->flags < y->flags ? -1 : 1;
    if (x->lazy_offset != y->lazy_offset) return x->lazy_offset < y->lazy_offset ? -1 : 1;
    return 0;
}

static want from_fixup(const fx_item *x)
{
    want w;
    memset(&w, 0, sizeof w);
    w.kind = x->f.kind;
    w.strong = x->f.strong;
    w.address = x->f.strong ? 0 : x->f.address;
    w.type = x->f.type;
    w.sym = x->sym;
    if (x->f.kind != DK_FIXUP_REBASE) {
        w.ordinal = x->f.kind == DK_FIXUP_WEAK_BIND ? 0 : x->f.ordinal;
        w.addend = x->f.strong ? 0 : x->f.addend;
        w.flags = x->f.symbol_flags;
        if (x->f.kind == DK_FIXUP_LAZY_BIND) w.lazy_offset = x->f.lazy_offset;
    }
    if (x->f.strong) w.type = 0;
    return w;
}

/* The decoded fixups of L are exactly WANT (any order). */
static void check_fixups(fx_list *l, want *w, size_t n, const char *what)
{
    want *got = malloc(sizeof *got * (l->n ? l->n : 1));
    for (size_t i = 0; i < l->n; i++) got[i] = from_fixup(&l->v[i]);
    qsort(got, l->n, sizeof *got, cmp_want);
    qsort(w, n, sizeof *w, cmp_want);
    size_t bad = 0;
    if (l->n != n) {
        bad++;
        fprintf(stderr, "%s: decoded %zu fixups, encoded %zu\n", what, l->n, n);
    }
    for (size_t i = 0; i < n && i < l->n; i++) {
        if (cmp_want(&got[i], &w[i]) == 0) continue;
        if (bad++ < 4)
            fprintf(stderr, "%s: #%zu decoded kind %d addr 0x%llx %s type %u ord %d addend %lld flags 0x%x lazy 0x%x; "
                            "encoded kind %d addr 0x%llx %s type %u ord %d addend %lld flags 0x%x lazy 0x%x\n",
                    what, i, got[i].kind, (unsigned long long)got[i].address, got[i].sym, got[i].type, got[i].ordinal,
                    (long long)got[i].addend, got[i].flags, got[i].lazy_offset, w[i].kind, (unsigned long long)w[i].address, w[i].sym,
                    w[i].type, w[i].ordinal, (long long)w[i].addend, w[i].flags, w[i].lazy_offset);
    }
    unit_checks++;
    if (bad) {
        unit_failures++;
        fprintf(stderr, "%s: %zu mismatches\n", what, bad);
    }
    free(got);
}

/* A location set for all four streams, and its expected fixups. */
typedef struct streams {
    dk_rebase_loc *rebase;
    size_t nrebase;
    dk_bind_rec *bind, *weak, *lazy;
    size_t nbind, nweak, nlazy;
    uint32_t *lazy_offsets;
} streams;

static size_t expected_fixups(const timage *im, const streams *s, want *w)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nrebase; i++) {
        const dk_rebase_loc *r = &s->rebase[i];
        w[n++] = (want){DK_FIXUP_REBASE, false, im->segs[r->seg].vmaddr + r->segoff, r->type ? r->type : 1, 0, 0, 0, 0, ""};
    }
    for (size_t i = 0; i < s->nbind; i++) {
        const dk_bind_rec *r = &s->bind[i];
        w[n++] = (want){DK_FIXUP_BIND, false, im->segs[r->seg].vmaddr + r->segoff, r->type ? r->type : 1, r->ordinal, r->addend,
                        r->flags, 0, r->symbol};
    }
    for (size_t i = 0; i < s->nweak; i++) {
        const dk_bind_rec *r = &s->weak[i];
        if (r->seg == UINT32_MAX)
            w[n++] = (want){DK_FIXUP_WEAK_BIND, true, 0, 0, 0, 0, (uint8_t)(r->flags | BIND_SYMBOL_FLAGS_NON_WEAK_DEFINITION), 0, r->symbol};
        else
            w[n++] = (want){DK_FIXUP_WEAK_BIND, false, im->segs[r->seg].vmaddr + r->segoff, r->type ? r->type : 1, 0, r->addend, r->flags,
                            0, r->symbol};
    }
    for (size_t i = 0; i < s->nlazy; i++) {
        const dk_bind_rec *r = &s->lazy[i];
        w[n++] = (want){DK_FIXUP_LAZY_BIND, false, im->segs[r->seg].vmaddr + r->segoff, r->type ? r->type : 1, r->ordinal, r->addend,
                        r->flags, s->lazy_offsets[i], r->symbol};
    }
    return n;
}

/* Encode S into the five LC_DYLD_INFO blobs (the trie from EXPORTS). */
static dk_status encode_streams(streams *s, unsigned ptr, const dk_trie_entry *exports, size_t nexports, dk_buf info[5], dk_error *err)
{
    dk_status st;
    memset(info, 0, 5 * sizeof *info);
    if ((st = dk_rebase_encode(s->rebase, s->nrebase, ptr, &info[0], err))) return st;
    if ((st = dk_bind_encode(s->bind, s->nbind, ptr, &info[1], err))) return st;
    if ((st = dk_weak_bind_encode(s->weak, s->nweak, ptr, &info[2], err))) return st;
    if ((st = dk_lazy_bind_encode(s->lazy, s->nlazy, ptr, &info[3], s->lazy_offsets, err))) return st;
    if (nexports && (st = dk_trie_build(exports, nexports, &info[4], err))) return st;
    return DK_OK;
}

/* Encode, build the image, walk it back and compare; returns the file for --emit (caller frees). */
static uint8_t *opcodes_round_trip(timage *im, streams *s, const dk_trie_entry *exports, size_t nexports, const char *what, size_t *size)
{
    size_t total = s->nrebase + s->nbind + s->nweak + s->nlazy;
    want *w = malloc(sizeof *w * (total ? total : 1));
    dk_buf info[5];
    dk_error err = {0};
    unsigned ptr = im->is64 ? 8 : 4;
    dk_status st = encode_streams(s, ptr, exports, nexports, info, &err);
    CHECK_EQ_U64(st, DK_OK);
    if (st) fprintf(stderr, "%s: %s\n", what, err.message);
    size_t n = expected_fixups(im, s, w);
    const dk_buf *ip[5] = {&info[0], &info[1], &info[2], &info[3], &info[4]};
    uint8_t *file = build_image(im, ip, NULL, NULL, size);
    fx_list l = {0};
    st = walk_image(file, *size, &l, &err);
    CHECK_EQ_U64(st, DK_OK);
    if (st) fprintf(stderr, "%s: %s\n", what, err.message);
    else check_fixups(&l, w, n, what);
    free(l.v);
    free(w);
    for (int k = 0; k < 5; k++) dk_buf_free(&info[k]);
    return file;
}

static void test_opcodes_exact(void)
{
    dk_buf b = {0};
    dk_error err = {0};

    /*
     * Rebases (pointer size 8) in segment 1 at 0x0 0x8 0x10, 0x100 0x200 0x300 0x400, 0x1000:
     *   11            SET_TYPE_IMM(POINTER)
     *   21 00         SET_SEGMENT_AND_OFFSET_ULEB(1, 0)
     *   53            DO_REBASE_IMM_TIMES(3)                     -> 0x0 0x8 0x10, now at 0x18
     *   30 e8 01      ADD_ADDR_ULEB(0xe8)                        -> 0x100 (0xe8 > 14 pointers: no IMM_SCALED)
     *   80 03 f8 01   DO_REBASE_ULEB_TIMES_SKIPPING_ULEB(3, 0xf8) -> 0x100 0x200 0x300, now at 0x400
     *   70 f8 17      DO_REBASE_ADD_ADDR_ULEB(0xbf8)             -> 0x400, then 0x408 + 0xbf8 = 0x1000
     *   51            DO_REBASE_IMM_TIMES(1)                     -> 0x1000
     *   00            DONE
     * (ld64's passes give the same: the three equal skips fold, the last skip does not.)
     */
    dk_rebase_loc rb[] = {{1, 0x1000, 1}, {1, 0x300, 1}, {1, 0x8, 1}, {1, 0x0, 1}, {1, 0x200, 1}, {1, 0x10, 1}, {1, 0x100, 1}, {1, 0x400, 1}};
    CHECK_EQ_U64(dk_rebase_encode(rb, 8, 8, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x11, 0x21, 0x00, 0x53, 0x30, 0xe8, 0x01, 0x80, 0x03, 0xf8, 0x01, 0x70, 0xf8, 0x17, 0x51, 0x00);
    dk_buf_free(&b);

    /*
     * A long run, a folded skip and a type change (pointer size 4): type 1 at seg 2 + 0x20 and 20
     * contiguous pointers from seg 2 + 0x40; TEXT_ABSOLUTE32 at seg 0 + 0x1000 and 0x1008.
     *   11 22 20      SET_TYPE_IMM(POINTER), SET_SEGMENT_AND_OFFSET_ULEB(2, 0x20)
     *   70 1c         DO_REBASE_ADD_ADDR_ULEB(0x1c)              -> 0x20, then 0x24 + 0x1c = 0x40
     *   60 14         DO_REBASE_ULEB_TIMES(20)                   (15 and up do not fit the immediate)
     *   12 20 80 20   SET_TYPE_IMM(TEXT_ABSOLUTE32), SET_SEGMENT_AND_OFFSET_ULEB(0, 0x1000)
     *   70 04 51      DO_REBASE_ADD_ADDR_ULEB(4) -> 0x1000, then 0x1004 + 4; DO_REBASE_IMM_TIMES(1) -> 0x1008
     *   00
     */
    dk_rebase_loc rc[23];
    rc[0] = (dk_rebase_loc){0, 0x1008, REBASE_TYPE_TEXT_ABSOLUTE32};
    rc[1] = (dk_rebase_loc){2, 0x20, REBASE_TYPE_POINTER};
    rc[2] = (dk_rebase_loc){0, 0x1000, REBASE_TYPE_TEXT_ABSOLUTE32};
    for (int i = 0; i < 20; i++) rc[3 + i] = (dk_rebase_loc){2, 0x40 + 4 * (uint64_t)i, REBASE_TYPE_POINTER};
    CHECK_EQ_U64(dk_rebase_encode(rc, 23, 4, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x11, 0x22, 0x20, 0x70, 0x1c, 0x60, 0x14, 0x12, 0x20, 0x80, 0x20, 0x70, 0x04, 0x51, 0x00);
    dk_buf_free(&b);

    /*
     * Binds (pointer size 8), sorted by library, symbol, address:
     *   _c  ordinal -2 (flat), weak import, seg 1 + 0x18
     *   _a  ordinal 1 at seg 1 + 0x0 0x8 0x20 0x30 0x40
     *   _b  ordinal 2 at seg 1 + 0x10, addend 5
     *   3e            SET_DYLIB_SPECIAL_IMM(-2)
     *   41 "_c" 00    SET_SYMBOL_TRAILING_FLAGS_IMM(WEAK_IMPORT, _c)
     *   51            SET_TYPE_IMM(POINTER)
     *   71 18         SET_SEGMENT_AND_OFFSET_ULEB(1, 0x18)
     *   90            DO_BIND                                    -> 0x18
     *   11            SET_DYLIB_ORDINAL_IMM(1)
     *   40 "_a" 00    SET_SYMBOL_TRAILING_FLAGS_IMM(0, _a)
     *   71 00         SET_SEGMENT_AND_OFFSET_ULEB(1, 0)          (backwards: re-set, where ld64 wraps an ADD)
     *   90            DO_BIND                                    -> 0x0
     *   b2            DO_BIND_ADD_ADDR_IMM_SCALED(2)             -> 0x8, then 0x10 + 2*8 = 0x20
     *   c0 02 08      DO_BIND_ULEB_TIMES_SKIPPING_ULEB(2, 8)     -> 0x20 0x30, now at 0x40
     *   90            DO_BIND                                    -> 0x40
     *   12            SET_DYLIB_ORDINAL_IMM(2)
     *   40 "_b" 00
     *   71 10         SET_SEGMENT_AND_OFFSET_ULEB(1, 0x10)
     *   60 05         SET_ADDEND_SLEB(5)
     *   90 00         DO_BIND, DONE
     */
    dk_bind_rec bd[] = {{1, 0x30, 1, "_a", 0, 0, 1}, {1, 0x10, 2, "_b", 0, 5, 1}, {1, 0x0, 1, "_a", 0, 0, 1}, {1, 0x40, 1, "_a", 0, 0, 1},
                        {1, 0x18, -2, "_c", BIND_SYMBOL_FLAGS_WEAK_IMPORT, 0, 1}, {1, 0x8, 1, "_a", 0, 0, 1}, {1, 0x20, 1, "_a", 0, 0, 1}};
    CHECK_EQ_U64(dk_bind_encode(bd, 7, 8, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x3e, 0x41, '_', 'c', 0x00, 0x51, 0x71, 0x18, 0x90,
                0x11, 0x40, '_', 'a', 0x00, 0x71, 0x00, 0x90, 0xb2, 0xc0, 0x02, 0x08, 0x90,
                0x12, 0x40, '_', 'b', 0x00, 0x71, 0x10, 0x60, 0x05, 0x90, 0x00);
    dk_buf_free(&b);

    /*
     * Ordinals past 15 and a special, a negative addend, 4-byte pointers:
     *   _m ordinal 0 (self) at seg 2 + 4;  _n ordinal 300 at seg 2 + 0x100, addend -8
     *   30            SET_DYLIB_SPECIAL_IMM(0)
     *   40 "_m" 00    SET_SYMBOL_TRAILING_FLAGS_IMM(0, _m)
     *   51 72 04 90   SET_TYPE_IMM(POINTER), SET_SEGMENT_AND_OFFSET_ULEB(2, 4), DO_BIND    (now at 8)
     *   20 ac 02      SET_DYLIB_ORDINAL_ULEB(300)
     *   40 "_n" 00
     *   80 f8 01      ADD_ADDR_ULEB(0xf8)        (the ordinal and symbol change sit between: no fold)
     *   60 78         SET_ADDEND_SLEB(-8)
     *   90 00         DO_BIND, DONE
     */
    dk_bind_rec bo[] = {{2, 0x100, 300, "_n", 0, -8, 1}, {2, 0x4, 0, "_m", 0, 0, 1}};
    CHECK_EQ_U64(dk_bind_encode(bo, 2, 4, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x30, 0x40, '_', 'm', 0x00, 0x51, 0x72, 0x04, 0x90,
                0x20, 0xac, 0x02, 0x40, '_', 'n', 0x00, 0x80, 0xf8, 0x01, 0x60, 0x78, 0x90, 0x00);
    dk_buf_free(&b);

    /*
     * Weak binds: a non-weak definition of _s, weak binds of _s at seg 1 + 0 and _w at + 8 and + 0x10.
     *   48 "_s" 00    SET_SYMBOL_TRAILING_FLAGS_IMM(NON_WEAK_DEFINITION, _s)  (the strong record)
     *   40 "_s" 00    the binds of _s carry flags 0: set again
     *   51 71 00 90   type, seg 1 + 0, DO_BIND
     *   40 "_w" 00 90 90   contiguous: DO_BIND twice
     *   00
     */
    dk_bind_rec wk[] = {{1, 0x10, 0, "_w", 0, 0, 1}, {1, 0x0, 0, "_s", 0, 0, 1}, {UINT32_MAX, 0, 0, "_s", 0, 0, 0}, {1, 0x8, 0, "_w", 0, 0, 1}};
    CHECK_EQ_U64(dk_weak_bind_encode(wk, 4, 8, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x48, '_', 's', 0x00, 0x40, '_', 's', 0x00, 0x51, 0x71, 0x00, 0x90, 0x40, '_', 'w', 0x00, 0x90, 0x90, 0x00);
    dk_buf_free(&b);

    /*
     * Lazy binds, one record each in the given order, offsets reported:
     *   @0:  71 28 (seg 1, 0x28) 13 (ordinal 3) 40 "_l1" 00 90 00          10 bytes
     *   @10: 71 30 20 14 (ordinal 20) 41 "_l2" 00 (weak import) 90 00
     */
    dk_bind_rec lz[] = {{1, 0x28, 3, "_l1", 0, 0, 1}, {1, 0x30, 20, "_l2", BIND_SYMBOL_FLAGS_WEAK_IMPORT, 0, 1}};
    uint32_t offs[2] = {99, 99};
    CHECK_EQ_U64(dk_lazy_bind_encode(lz, 2, 8, &b, offs, &err), DK_OK);
    CHECK_BYTES(&b, 0x71, 0x28, 0x13, 0x40, '_', 'l', '1', 0x00, 0x90, 0x00,
                0x71, 0x30, 0x20, 0x14, 0x41, '_', 'l', '2', 0x00, 0x90, 0x00);
    CHECK(offs[0] == 0 && offs[1] == 10);
    dk_buf_free(&b);

    /* the weak-lookup special, which dyld accepts in a bind stream: SET_DYLIB_SPECIAL_IMM(-3) = 0x3d */
    dk_bind_rec w3[] = {{2, 0x10, -3, "_w", 0, 0, 1}};
    CHECK_EQ_U64(dk_bind_encode(w3, 1, 8, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0x3d, 0x40, '_', 'w', 0x00, 0x51, 0x72, 0x10, 0x90, 0x00);
    dk_buf_free(&b);

    /* empty sets write nothing */
    CHECK_EQ_U64(dk_rebase_encode(NULL, 0, 8, &b, &err), DK_OK);
    CHECK_EQ_U64(dk_bind_encode(NULL, 0, 8, &b, &err), DK_OK);
    CHECK_EQ_U64(dk_weak_bind_encode(NULL, 0, 8, &b, &err), DK_OK);
    CHECK_EQ_U64(dk_lazy_bind_encode(NULL, 0, 8, &b, NULL, &err), DK_OK);
    CHECK_EQ_U64(b.len, 0);

    /* the hand-worked sets decode to exactly what went in, through a whole image */
    timage im;
    image_init(&im, true, CPU_TYPE_X86_64, 3, 0x2000, 0x2000, 20);
    dk_rebase_loc rb2[8];
    memcpy(rb2, rb, sizeof rb);
    dk_bind_rec bd2[7], wk2[4];
    memcpy(bd2, bd, sizeof bd);
    memcpy(wk2, wk, sizeof wk);
    streams s = {rb2, 8, bd2, wk2, lz, 7, 4, 2, offs};
    size_t size;
    free(opcodes_round_trip(&im, &s, NULL, 0, "hand-worked streams", &size));
    image_free(&im);
}

/* ----------------------------------------------------- random opcode sets */

#define NDYLIBS 20

static char sym_names[64][40];
static const char *bind_symbol(size_t i) { return sym_names[i % 64]; }
static int ordinal_of(size_t i) { return (int)(i % 64 % (NDYLIBS + 4)) - 3; } /* -3 .. 20 */
/* for llvm-objdump's sake: no -3 (weak lookup) in bind streams */
static int bind_ordinal(size_t i) { return ordinal_of(i) < -2 ? -2 : ordinal_of(i); }

static void init_symbols(void)
{
    for (int i = 0; i < 64; i++) {
        if (i % 9 == 8) snprintf(sym_names[i], sizeof sym_names[i], "_OBJC_CLASS_$_DKLongClassName%02d", i);
        else snprintf(sym_names[i], sizeof sym_names[i], "_sym%d", i);
    }
}

static int64_t random_addend(void)
{
    switch (rnd_below(10)) {
    case 0: return (int64_t)rnd_below(64);
    case 1: return -(int64_t)rnd_below(100000);
    case 2: return (int64_t)rnd();
    default: return 0;
    }
}

static void *grow(void *p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return p;
    *cap = *cap ? 2 * *cap : 256;
    return realloc(p, *cap * elem);
}

/*
 * Locations over the data segments (and, for 32-bit, text rebases in __text), drawn in runs:
 * contiguous runs of one kind, strided runs, gaps and mixtures, so every fold is exercised.
 */
/*
 * FOR_LLVM keeps to what llvm-objdump-22 can list.  Otherwise i386 images get text relocations
 * (TEXT_ABSOLUTE32 rebases) in __text, which llvm-objdump misplaces (it takes a segment's start from
 * its first section's address, and __text cannot start at __TEXT's: the headers are there), so
 * images for it carry that type in __DATA instead; and binds may use ordinal -3, which dyld accepts
 * in a bind stream and llvm-objdump-22 rejects.
 */
static void random_streams(const timage *im, streams *s, bool for_llvm)
{
    bool text_relocs = !for_llvm;
    unsigned ptr = im->is64 ? 8 : 4;
    size_t cr = 0, cb = 0, cw = 0, cl = 0;
    memset(s, 0, sizeof *s);
    for (uint32_t seg = 1; seg <= 2; seg++) {
        uint64_t slots = im->segs[seg].vmsize / ptr;
        uint64_t left = 0;
        int mode = 0, kind = 0, stride = 1;
        size_t sym = 0;
        int64_t addend = 0;
        uint8_t type = 1;
        for (uint64_t k = 0; k < slots; k++) {
            if (left == 0) {
                left = 1 + rnd_below(40);
                mode = (int)rnd_below(4);
                kind = (int)rnd_below(4);
                stride = 2 + (int)rnd_below(4);
                sym = rnd_below(64);
                addend = chance(70) ? 0 : random_addend();
                type = chance(90) ? 1 : chance(50) ? 0 : (!im->is64 && !text_relocs) ? REBASE_TYPE_TEXT_ABSOLUTE32 : 1;
            }
            left--;
            int kk;
            switch (mode) {
            case 0: continue; /* gap */
            case 1: kk = kind; break;
            case 2: if (k % (uint64_t)stride) continue; kk = kind; break;
            default: kk = (int)rnd_below(5); if (kk == 4) continue; break;
            }
            uint64_t off = k * ptr;
            if (ptr == 8 && chance(2)) off += 4; /* now and then an unaligned pointer */
            if (off + ptr > im->segs[seg].vmsize) continue;
            size_t si = chance(85) ? sym : rnd_below(64);
            int64_t a = chance(90) ? addend : random_addend();
            switch (kk) {
            case 0:
                s->rebase = grow(s->rebase, &cr, s->nrebase, sizeof *s->rebase);
                s->rebase[s->nrebase++] = (dk_rebase_loc){seg, off, type};
                break;
            case 1:
                s->bind = grow(s->bind, &cb, s->nbind, sizeof *s->bind);
                s->bind[s->nbind++] = (dk_bind_rec){seg, off, chance(97) ? (for_llvm ? bind_ordinal(si) : ordinal_of(si)) : (int)rnd_below(NDYLIBS + 1),
                                                    bind_symbol(si), (uint8_t)(si % 7 == 0 ? BIND_SYMBOL_FLAGS_WEAK_IMPORT : 0), a, type};
                break;
            case 2:
                s->weak = grow(s->weak, &cw, s->nweak, sizeof *s->weak);
                s->weak[s->nweak++] = (dk_bind_rec){seg, off, 0, bind_symbol(si), 0, a, type};
                break;
            default:
                s->lazy = grow(s->lazy, &cl, s->nlazy, sizeof *s->lazy);
                s->lazy[s->nlazy++] = (dk_bind_rec){seg, off, ordinal_of(si) < 1 ? 1 + (int)(si % NDYLIBS) : ordinal_of(si),
                                                    bind_symbol(si), (uint8_t)(si % 7 == 0 ? BIND_SYMBOL_FLAGS_WEAK_IMPORT : 0),
                                                    chance(95) ? 0 : a, 1};
                break;
            }
        }
    }
    /* non-weak definitions: some of the weak-bound symbols and a few of their own */
    for (size_t i = 0; i < 64; i += 3) {
        s->weak = grow(s->weak, &cw, s->nweak, sizeof *s->weak);
        s->weak[s->nweak++] = (dk_bind_rec){UINT32_MAX, 0, 0, bind_symbol(i), 0, 0, 0};
    }
    if (!im->is64 && text_relocs) {
        /* text relocations of i386: TEXT_ABSOLUTE32 in __text */
        for (uint64_t off = 0x1000; off < 0x2000; off += 4 * (1 + rnd_below(8))) {
            s->rebase = grow(s->rebase, &cr, s->nrebase, sizeof *s->rebase);
            s->rebase[s->nrebase++] = (dk_rebase_loc){0, off, REBASE_TYPE_TEXT_ABSOLUTE32};
        }
    }
    /* lazy records go in stub order, which is no particular order */
    for (size_t i = s->nlazy; i > 1; i--) {
        size_t j = rnd_below(i);
        dk_bind_rec t = s->lazy[i - 1];
        s->lazy[i - 1] = s->lazy[j];
        s->lazy[j] = t;
    }
    s->lazy_offsets = malloc(sizeof *s->lazy_offsets * (s->nlazy ? s->nlazy : 1));
}

static void streams_free(streams *s)
{
    free(s->rebase);
    free(s->bind);
    free(s->weak);
    free(s->lazy);
    free(s->lazy_offsets);
}

/* What llvm-objdump should list for an image, one line per entry, for tests/test_writers.py. */
static const char *dylib_name(int ordinal, char *buf, size_t n)
{
    switch (ordinal) {
    case 0: return "this-image";
    case -1: return "main-executable";
    case -2: return "flat-namespace";
    case -3: return "weak";
    }
    snprintf(buf, n, "libdk%d", ordinal);
    return buf;
}

static void seg_sect(const timage *im, uint32_t seg, const char **sg, const char **sc)
{
    *sg = im->segs[seg].segname;
    *sc = im->segs[seg].sectname;
}

static void write_exports_expect(FILE *f, const dk_trie_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "export %s 0x%llx 0x%llx 0x%llx %llu %s\n", e[i].name, (unsigned long long)e[i].flags,
                (unsigned long long)e[i].address, (unsigned long long)e[i].other, (unsigned long long)e[i].ordinal,
                e[i].import_name && *e[i].import_name && strcmp(e[i].import_name, e[i].name) != 0 ? e[i].import_name : "-");
}

static const char *type_name(uint8_t type)
{
    switch (type ? type : 1) {
    case 1: return "pointer";
    case 2: return "text abs32";
    default: return "text rel32";
    }
}

static void write_opcodes_expect(FILE *f, const timage *im, const streams *s)
{
    char lib[32];
    const char *sg, *sc;
    fprintf(f, "base 0x%llx\n", (unsigned long long)im->base);
    for (size_t i = 0; i < s->nrebase; i++) {
        const dk_rebase_loc *r = &s->rebase[i];
        seg_sect(im, r->seg, &sg, &sc);
        fprintf(f, "rebase %s %s 0x%llx %s\n", sg, sc, (unsigned long long)(im->segs[r->seg].vmaddr + r->segoff), type_name(r->type));
    }
    for (size_t i = 0; i < s->nbind; i++) {
        const dk_bind_rec *r = &s->bind[i];
        seg_sect(im, r->seg, &sg, &sc);
        fprintf(f, "bind %s %s 0x%llx %s %lld %s %s%s\n", sg, sc, (unsigned long long)(im->segs[r->seg].vmaddr + r->segoff),
                type_name(r->type), (long long)r->addend, dylib_name(r->ordinal, lib, sizeof lib), r->symbol,
                r->flags & BIND_SYMBOL_FLAGS_WEAK_IMPORT ? " (weak_import)" : "");
    }
    for (size_t i = 0; i < s->nweak; i++) {
        const dk_bind_rec *r = &s->weak[i];
        if (r->seg == UINT32_MAX) {
            fprintf(f, "strong %s\n", r->symbol);
            continue;
        }
        seg_sect(im, r->seg, &sg, &sc);
        fprintf(f, "weak %s %s 0x%llx %s %lld %s\n", sg, sc, (unsigned long long)(im->segs[r->seg].vmaddr + r->segoff),
                type_name(r->type), (long long)r->addend, r->symbol);
    }
    for (size_t i = 0; i < s->nlazy; i++) {
        const dk_bind_rec *r = &s->lazy[i];
        seg_sect(im, r->seg, &sg, &sc);
        fprintf(f, "lazy %s %s 0x%llx %s %s\n", sg, sc, (unsigned long long)(im->segs[r->seg].vmaddr + r->segoff),
                dylib_name(r->ordinal, lib, sizeof lib), r->symbol);
    }
}

static const char *emit_dir; /* --emit DIR */

static void emit_file(const char *name, const uint8_t *file, size_t size, FILE **expect)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.macho", emit_dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(file, 1, size, f) == size);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/%s.expect", emit_dir, name);
    *expect = fopen(path, "w");
    CHECK(*expect != NULL);
}

/* Random exports for an image's trie (names from NAMES); LLVM_SAFE leaves out function variants. */
static dk_trie_entry *random_exports(char **names, size_t n, bool llvm_safe)
{
    dk_trie_entry *e = malloc(sizeof *e * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        do random_entry(&e[i], names[i], names, n);
        while (llvm_safe && (e[i].flags & EXPORT_SYMBOL_FLAGS_FUNCTION_VARIANT));
        if (e[i].flags & EXPORT_SYMBOL_FLAGS_REEXPORT) e[i].ordinal = 1 + e[i].ordinal % NDYLIBS;
    }
    return e;
}

static void test_opcodes_random(void)
{
    init_symbols();
    for (int round = 0; round < 8; round++) {
        bool is64 = round % 2 == 0;
        timage im;
        uint64_t dc = 0x1000 * (1 + rnd_below(4)), d = 0x1000 * (1 + rnd_below(12));
        image_init(&im, is64, is64 ? CPU_TYPE_X86_64 : CPU_TYPE_I386, 3, dc, d, NDYLIBS);
        streams s;
        random_streams(&im, &s, emit_dir && round < 2);
        size_t nnames;
        char **names = random_names(300, &nnames);
        dk_trie_entry *exports = random_exports(names, nnames, true);
        char what[64];
        snprintf(what, sizeof what, "random opcodes %d (%s, %zu/%zu/%zu/%zu)", round, is64 ? "x86_64" : "i386", s.nrebase, s.nbind,
                 s.nweak, s.nlazy);
        size_t size;
        uint8_t *file = opcodes_round_trip(&im, &s, exports, nnames, what, &size);
        /* the trie in the image reads back too */
        dk_macho *m = NULL;
        dk_error err = {0};
        if (dk_macho_open(file, size, "synthetic", &m, &err) == DK_OK) {
            ex_list l = {0};
            CHECK_EQ_U64(dk_macho_foreach_export(m, collect_export, &l, &err), DK_OK);
            CHECK_EQ_U64(l.n, nnames);
            ex_free(&l);
            dk_macho_close(m);
        }
        if (emit_dir && round < 2) {
            FILE *f;
            emit_file(is64 ? "classic64" : "classic32", file, size, &f);
            if (f) {
                write_opcodes_expect(f, &im, &s);
                write_exports_expect(f, exports, nnames);
                fclose(f);
            }
        }
        free(file);
        free(exports);
        free_names(names, nnames);
        streams_free(&s);
        image_free(&im);
    }
}

static void test_opcodes_errors(void)
{
    dk_buf b = {0};
    dk_error err = {0};
    dk_buf_cstr(&b, "keep");
    dk_rebase_loc seg16[] = {{16, 0, 1}};
    CHECK_EQ_U64(dk_rebase_encode(seg16, 1, 8, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "segment 16");
    dk_rebase_loc badtype[] = {{1, 0, 4}};
    CHECK_EQ_U64(dk_rebase_encode(badtype, 1, 8, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "unknown type 4");
    CHECK_EQ_U64(dk_rebase_encode(badtype, 1, 2, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "pointer size 2");
    dk_bind_rec noname[] = {{1, 0, 1, NULL, 0, 0, 1}};
    CHECK_EQ_U64(dk_bind_encode(noname, 1, 8, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "no symbol");
    dk_bind_rec ord4[] = {{1, 0, -4, "_x", 0, 0, 1}};
    CHECK_EQ_U64(dk_bind_encode(ord4, 1, 8, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "library ordinal -4");
    CHECK_EQ_U64(dk_lazy_bind_encode(ord4, 1, 8, &b, NULL, &err), DK_E_ARG);
    CHECK_MSG(err, "library ordinal -4");
    dk_bind_rec flags[] = {{1, 0, 1, "_x", 0x10, 0, 1}};
    CHECK_EQ_U64(dk_bind_encode(flags, 1, 8, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "flags 0x10");
    dk_bind_rec strong_loc[] = {{1, 0, 0, "_x", BIND_SYMBOL_FLAGS_NON_WEAK_DEFINITION, 0, 1}};
    CHECK_EQ_U64(dk_weak_bind_encode(strong_loc, 1, 8, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "NON_WEAK_DEFINITION record has no location");
    dk_bind_rec lazy_noseg[] = {{UINT32_MAX, 0, 1, "_x", 0, 0, 1}};
    CHECK_EQ_U64(dk_lazy_bind_encode(lazy_noseg, 1, 8, &b, NULL, &err), DK_E_ARG);
    CHECK_MSG(err, "segment 4294967295");
    dk_bind_rec btype[] = {{1, 0, 1, "_x", 0, 0, 7}};
    CHECK_EQ_U64(dk_bind_encode(btype, 1, 8, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "unknown bind type 7");
    CHECK_EQ_U64(b.len, 5); /* no partial stream */
    /* a buffer already out of memory is reported, not written */
    b.oom = true;
    dk_rebase_loc one[] = {{1, 0, 1}};
    CHECK_EQ_U64(dk_rebase_encode(one, 1, 8, &b, &err), DK_E_NOMEM);
    dk_buf_free(&b);
}

/* ---------------------------------------------------------- chained fixups */

/* The encoder's view of a timage: its three segments and __LINKEDIT (no fixups, no content). */
static void chain_segments(timage *im, dk_chain_segment segs[4])
{
    for (int i = 0; i < 3; i++) segs[i] = (dk_chain_segment){im->segs[i].vmaddr, im->segs[i].vmsize, im->segs[i].content, im->segs[i].vmsize};
    segs[3] = (dk_chain_segment){im->segs[2].vmaddr + im->segs[2].vmsize, 0x4000, NULL, 0};
}

static void check_content(const timage *im, int seg, uint64_t off, uint64_t expect, int line)
{
    uint64_t got = dk_le64(im->segs[seg].content + off);
    unit_checks++;
    if (got != expect) {
        unit_failures++;
        fprintf(stderr, "line %d: chain entry at segment %d + 0x%llx is 0x%016llx, want 0x%016llx\n", line, seg, (unsigned long long)off,
                (unsigned long long)got, (unsigned long long)expect);
    }
}
#define CHECK_CONTENT(im, seg, off, want) check_content((im), (seg), (off), (want), __LINE__)

/* One fixup as it should decode. */
typedef struct cwant {
    uint64_t address;
    bool bind;
    uint64_t target;
    uint8_t high8;
    const char *sym;
    int ordinal;
    int64_t addend;
    bool weak_import, auth, addr_div;
    uint8_t key;
    uint16_t diversity;
} cwant;

static int cmp_cwant(const void *a, const void *b)
{
    const cwant *x = a, *y = b;
    return x->address < y->address ? -1 : x->address > y->address;
}

static cwant cwant_of(const dk_chain_fixup *f, const dk_chain_import *imports)
{
    cwant w;
    memset(&w, 0, sizeof w);
    w.address = f->address;
    w.bind = f->bind;
    w.auth = f->auth;
    if (f->auth) {
        w.key = f->key;
        w.diversity = f->diversity;
        w.addr_div = f->addr_div;
    }
    if (f->bind) {
        const dk_chain_import *im = &imports[f->import];
        w.sym = im->name;
        w.ordinal = im->ordinal;
        w.addend = (int64_t)((uint64_t)im->addend + (uint64_t)f->addend);
        w.weak_import = im->weak_import;
    } else {
        w.target = f->target;
        w.high8 = f->high8;
    }
    return w;
}

static bool cwant_eq(const cwant *w, const fx_item *x)
{
    const dk_fixup *f = &x->f;
    if (f->address != w->address || (f->kind == DK_FIXUP_BIND) != w->bind || f->auth != w->auth) return false;
    if (w->auth && (f->key != w->key || f->diversity != w->diversity || f->addr_div != w->addr_div)) return false;
    if (w->bind)
        return strcmp(x->sym, w->sym) == 0 && f->ordinal == w->ordinal && f->addend == w->addend && f->weak_import == w->weak_import;
    return f->target == w->target && f->high8 == w->high8;
}

/* Build the image around BLOB (and the segments' chain entries), walk it, compare with FIXUPS. */
static uint8_t *chained_check(timage *im, const dk_buf *blob, const dk_chain_fixup *fixups, size_t n, const dk_chain_import *imports,
                              const dk_buf *trie, const char *what, size_t *size)
{
    uint8_t *file = build_image(im, NULL, blob, trie, size);
    cwant *w = malloc(sizeof *w * (n ? n : 1));
    for (size_t i = 0; i < n; i++) w[i] = cwant_of(&fixups[i], imports);
    qsort(w, n, sizeof *w, cmp_cwant);
    fx_list l = {0};
    dk_error err = {0};
    dk_status st = walk_image(file, *size, &l, &err);
    CHECK_EQ_U64(st, DK_OK);
    if (st) fprintf(stderr, "%s: %s\n", what, err.message);
    size_t bad = 0;
    if (!st) {
        /* chains come out in address order within each segment, segments in order */
        if (l.n != n) {
            bad++;
            fprintf(stderr, "%s: decoded %zu fixups, encoded %zu\n", what, l.n, n);
        }
        for (size_t i = 0; i < n && i < l.n; i++) {
            if (cwant_eq(&w[i], &l.v[i])) continue;
            if (bad++ < 4)
                fprintf(stderr, "%s: at 0x%llx decoded kind %d target 0x%llx high8 0x%x %s ord %d addend %lld weak %d auth %d key %u div 0x%x ad %d; "
                                "want bind %d target 0x%llx high8 0x%x %s ord %d addend %lld weak %d auth %d key %u div 0x%x ad %d\n",
                        what, (unsigned long long)w[i].address, l.v[i].f.kind, (unsigned long long)l.v[i].f.target, l.v[i].f.high8, l.v[i].sym,
                        l.v[i].f.ordinal, (long long)l.v[i].f.addend, l.v[i].f.weak_import, l.v[i].f.auth, l.v[i].f.key, l.v[i].f.diversity,
                        l.v[i].f.addr_div, w[i].bind, (unsigned long long)w[i].target, w[i].high8, w[i].sym ? w[i].sym : "", w[i].ordinal,
                        (long long)w[i].addend, w[i].weak_import, w[i].auth, w[i].key, w[i].diversity, w[i].addr_div);
        }
    }
    unit_checks++;
    if (bad) {
        unit_failures++;
        fprintf(stderr, "%s: %zu mismatches\n", what, bad);
    }
    free(l.v);
    free(w);
    return file;
}

static void test_chained_exact(void)
{
    dk_error err = {0};
    dk_buf b = {0};
    size_t size;

    /*
     * DYLD_CHAINED_PTR_64, 4KB pages, base 0x100000000; __DATA_CONST (segment 1) at base + 0x4000, 4 pages.
     *   +0x4000 rebase -> 0x100000010       next = 8/4 = 2
     *   +0x4008 bind import 0 (_foo)        next 2
     *   +0x4010 rebase -> 0x100001000, high8 0x80, last on its page: next 0
     *   +0x5008 rebase -> 0x100000020       page 1, offset 8
     * dyld_chained_ptr_64_rebase: target:36 high8:8 reserved:7 next:12 bind:1; _bind: ordinal:24 addend:8 ... bind:1
     *   0x100000010 | 2 << 51                   = 0x0010000100000010
     *   0 | 2 << 51 | 1 << 63                   = 0x8010000000000000
     *   0x100001000 | 0x80 << 36                = 0x0000080100001000
     *   0x100000020                             = 0x0000000100000020
     * The blob:
     *   @0  header: version 0, starts_offset 32, imports_offset 88, symbols_offset 92, imports_count 1,
     *       imports_format 1 (DYLD_CHAINED_IMPORT), symbols_format 0; 4 bytes of padding
     *   @32 starts_in_image: seg_count 4, seg_info_offset {0, 24, 0, 0}; padding to 56
     *   @56 starts_in_segment: size 22 + 2*4 = 30, page_size 0x1000, pointer_format 2, segment_offset 0x4000,
     *       max_valid_pointer 0, page_count 4, page_start {0, 8, NONE, NONE}; padding to 88
     *   @88 import: lib_ordinal 1 | weak_import 0 << 8 | name_offset 1 << 9 = 0x201
     *   @92 pool "\0_foo\0", padding to 104
     */
    timage im;
    image_init(&im, true, CPU_TYPE_X86_64, 3, 0x4000, 0x4000, NDYLIBS);
    dk_chain_segment segs[4];
    chain_segments(&im, segs);
    dk_chain_import imp1[] = {{1, "_foo", false, 0}};
    dk_chain_fixup fx1[] = {
        {B64 + 0x5008, false, B64 + 0x20, 0, 0, 0, false, 0, 0, false},
        {B64 + 0x4008, true, 0, 0, 0, 0, false, 0, 0, false},
        {B64 + 0x4000, false, B64 + 0x10, 0, 0, 0, false, 0, 0, false},
        {B64 + 0x4010, false, B64 + 0x1000, 0x80, 0, 0, false, 0, 0, false},
    };
    CHECK_EQ_U64(dk_chained_encode(DK_CHAINED_PTR_64, 0x1000, B64, segs, 4, fx1, 4, imp1, 1, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0, 0, 0, 0, 32, 0, 0, 0, 88, 0, 0, 0, 92, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                4, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                30, 0, 0, 0, 0x00, 0x10, 2, 0, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0xff, 0xff, 0xff, 0xff, 0, 0,
                0x01, 0x02, 0, 0,
                0, '_', 'f', 'o', 'o', 0, 0, 0, 0, 0, 0, 0);
    CHECK_CONTENT(&im, 1, 0x0, 0x0010000100000010ull);
    CHECK_CONTENT(&im, 1, 0x8, 0x8010000000000000ull);
    CHECK_CONTENT(&im, 1, 0x10, 0x0000080100001000ull);
    CHECK_CONTENT(&im, 1, 0x1008, 0x0000000100000020ull);
    free(chained_check(&im, &b, fx1, 4, imp1, NULL, "hand-worked DYLD_CHAINED_PTR_64", &size));
    dk_buf_free(&b);
    image_free(&im);

    /*
     * DYLD_CHAINED_PTR_ARM64E, 16KB pages; __DATA_CONST at base + 0x4000, one page.
     *   +0x00 auth rebase -> base + 0x20, key DA (2), diversity 0x1234, address diversity
     *         target:32 = 0x20 | 0x1234 << 32 | 1 << 48 | 2 << 49 | next 1 << 51 | auth 1 << 63  = 0x800D123400000020
     *   +0x08 rebase -> 0x100000040 (a vmaddr in this format), high8 0:  0x100000040 | 1 << 51  = 0x0008000100000040
     *   +0x10 bind import 0 (_bar), addend -4 in the 19-bit field: 0x7FFFC << 32 | 1 << 51 | bind 1 << 62 = 0x400FFFFC00000000
     *   +0x18 auth bind import 0, key IA, diversity 0x5555: 0x5555 << 32 | 1 << 51 | 1 << 62 | 1 << 63 = 0xC008555500000000
     *   +0x20 bind import 0, addend 0x40000: past +-0x3FFFF, so through a second import _bar + 0x40000
     *         (import 1), nothing inline: 1 | 1 << 62 = 0x4000000000000001
     * The addend makes the imports DYLD_CHAINED_IMPORT_ADDEND:
     *   @0  header: 0, 32, imports_offset 80, symbols_offset 96, imports_count 2, imports_format 2, 0
     *   @32 seg_count 4, {0, 24, 0, 0}; padding to 56
     *   @56 size 22 + 2 = 24, page_size 0x4000, pointer_format 1, segment_offset 0x4000, 0, page_count 1, page_start {0}
     *   @80 imports: {1 | weak 1 << 8 | name 1 << 9 = 0x301, addend 0}, {0x301, addend 0x40000}
     *   @96 "\0_bar\0", padding to 104
     */
    image_init(&im, true, CPU_TYPE_ARM64, CPU_SUBTYPE_ARM64E, 0x4000, 0x4000, NDYLIBS);
    chain_segments(&im, segs);
    dk_chain_import imp2[] = {{1, "_bar", true, 0}};
    dk_chain_fixup fx2[] = {
        {B64 + 0x4000, false, B64 + 0x20, 0, 0, 0, true, DK_KEY_DA, 0x1234, true},
        {B64 + 0x4008, false, B64 + 0x40, 0, 0, 0, false, 0, 0, false},
        {B64 + 0x4010, true, 0, 0, 0, -4, false, 0, 0, false},
        {B64 + 0x4018, true, 0, 0, 0, 0, true, DK_KEY_IA, 0x5555, false},
        {B64 + 0x4020, true, 0, 0, 0, 0x40000, false, 0, 0, false},
    };
    CHECK_EQ_U64(dk_chained_encode(DK_CHAINED_PTR_ARM64E, 0x4000, B64, segs, 4, fx2, 5, imp2, 1, &b, &err), DK_OK);
    CHECK_BYTES(&b, 0, 0, 0, 0, 32, 0, 0, 0, 80, 0, 0, 0, 96, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                4, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                24, 0, 0, 0, 0x00, 0x40, 1, 0, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
                0x01, 0x03, 0, 0, 0, 0, 0, 0, 0x01, 0x03, 0, 0, 0x00, 0x00, 0x04, 0x00,
                0, '_', 'b', 'a', 'r', 0, 0, 0);
    CHECK_CONTENT(&im, 1, 0x00, 0x800D123400000020ull);
    CHECK_CONTENT(&im, 1, 0x08, 0x0008000100000040ull);
    CHECK_CONTENT(&im, 1, 0x10, 0x400FFFFC00000000ull);
    CHECK_CONTENT(&im, 1, 0x18, 0xC008555500000000ull);
    CHECK_CONTENT(&im, 1, 0x20, 0x4000000000000001ull);
    free(chained_check(&im, &b, fx2, 5, imp2, NULL, "hand-worked DYLD_CHAINED_PTR_ARM64E", &size));
    dk_buf_free(&b);
    image_free(&im);

    /*
     * _64_OFFSET and USERLAND24 store rebase targets as offsets from the base, and USERLAND24 has
     * 24-bit ordinals:  _64_OFFSET rebase -> base + 0x1234 at +0: 0x1234 (alone on its page: next 0);
     * USERLAND24 bind import 0x12345 at +0: 0x12345 | 1 << 62 = 0x4000000000012345;
     * USERLAND24 rebase -> base + 0x88, high8 0x7f at +8 (next from +0 is 1): 0x88 | 0x7f << 43
     */
    image_init(&im, true, CPU_TYPE_ARM64, 0, 0x4000, 0x4000, NDYLIBS);
    chain_segments(&im, segs);
    dk_chain_fixup fx3[] = {{B64 + 0x4000, false, B64 + 0x1234, 0, 0, 0, false, 0, 0, false}};
    CHECK_EQ_U64(dk_chained_encode(DK_CHAINED_PTR_64_OFFSET, 0x4000, B64, segs, 4, fx3, 1, NULL, 0, &b, &err), DK_OK);
    CHECK_CONTENT(&im, 1, 0, 0x1234);
    free(chained_check(&im, &b, fx3, 1, NULL, NULL, "hand-worked DYLD_CHAINED_PTR_64_OFFSET", &size));
    dk_buf_free(&b);
    image_free(&im);

    image_init(&im, true, CPU_TYPE_ARM64, CPU_SUBTYPE_ARM64E, 0x4000, 0x4000, NDYLIBS);
    chain_segments(&im, segs);
    dk_chain_import *many = malloc(sizeof *many * 0x12346);
    for (size_t i = 0; i < 0x12346; i++) many[i] = (dk_chain_import){1, "_m", false, 0};
    dk_chain_fixup fx4[] = {{B64 + 0x4000, true, 0, 0, 0x12345, 0, false, 0, 0, false},
                            {B64 + 0x4008, false, B64 + 0x88, 0x7f, 0, 0, false, 0, 0, false}};
    CHECK_EQ_U64(dk_chained_encode(DK_CHAINED_PTR_ARM64E_USERLAND24, 0x4000, B64, segs, 4, fx4, 2, many, 0x12346, &b, &err), DK_OK);
    CHECK_CONTENT(&im, 1, 0, 0x4000000000012345ull | 1ull << 51);
    CHECK_CONTENT(&im, 1, 8, 0x88 | 0x7full << 43);
    free(chained_check(&im, &b, fx4, 2, many, NULL, "hand-worked DYLD_CHAINED_PTR_ARM64E_USERLAND24", &size));
    /* the same ordinal does not fit ARM64E's 16 bits, nor do that many imports */
    dk_chain_fixup fx5[] = {{B64 + 0x4000, true, 0, 0, 0x12345, 0, false, 0, 0, false}};
    CHECK_EQ_U64(dk_chained_encode(DK_CHAINED_PTR_ARM64E, 0x4000, B64, segs, 4, fx5, 1, many, 0x12346, &b, &err), DK_E_LIMIT);
    CHECK_MSG(err, "16-bit ordinal");
    free(many);
    dk_buf_free(&b);
    image_free(&im);

    /*
     * An inline-sized addend on a bind whose import has an addend of its own goes to the import
     * table whole, as ld64 keeps it: import 0 is _z + 100, the bind adds 5, so it binds through
     * import 1 = _z + 105 and stores nothing inline: 1 | bind 1 << 63.  The imports need
     * DYLD_CHAINED_IMPORT_ADDEND (header offset 20).
     */
    image_init(&im, true, CPU_TYPE_X86_64, 3, 0x4000, 0x4000, NDYLIBS);
    chain_segments(&im, segs);
    dk_chain_import imp6[] = {{2, "_z", false, 100}};
    dk_chain_fixup fx6[] = {{B64 + 0x4000, true, 0, 0, 0, 5, false, 0, 0, false}, {B64 + 0x4008, true, 0, 0, 0, 0, false, 0, 0, false}};
    CHECK_EQ_U64(dk_chained_encode(DK_CHAINED_PTR_64, 0x1000, B64, segs, 4, fx6, 2, imp6, 1, &b, &err), DK_OK);
    CHECK_CONTENT(&im, 1, 0, 1 | 1ull << 63 | 2ull << 51);
    CHECK_CONTENT(&im, 1, 8, 1ull << 63);
    CHECK_EQ_U64(dk_le32(b.data + 16), 2);
    CHECK_EQ_U64(dk_le32(b.data + 20), DYLD_CHAINED_IMPORT_ADDEND);
    free(chained_check(&im, &b, fx6, 2, imp6, NULL, "import addend plus bind addend", &size));
    dk_buf_free(&b);
    image_free(&im);

    /* no fixups: a header, empty starts and an empty pool still decode */
    image_init(&im, true, CPU_TYPE_X86_64, 3, 0x4000, 0x4000, NDYLIBS);
    chain_segments(&im, segs);
    CHECK_EQ_U64(dk_chained_encode(DK_CHAINED_PTR_64, 0x1000, B64, segs, 4, NULL, 0, NULL, 0, &b, &err), DK_OK);
    CHECK_EQ_U64(b.len, 56); /* 32 + 4 + 16 = 52 for the starts, 1 for the pool, padded to 8 */
    free(chained_check(&im, &b, NULL, 0, NULL, NULL, "no chained fixups", &size));
    dk_buf_free(&b);
    image_free(&im);
}

static void test_chained_errors(void)
{
    dk_error err = {0};
    dk_buf b = {0};
    timage im;
    image_init(&im, true, CPU_TYPE_X86_64, 3, 0x4000, 0x4000, NDYLIBS);
    dk_chain_segment segs[4];
    chain_segments(&im, segs);
    dk_chain_import imp[] = {{1, "_x", false, 0}};
    dk_buf_cstr(&b, "keep");
#define ENC(fmt, page, fx, n) dk_chained_encode((fmt), (page), B64, segs, 4, (fx), (n), imp, 1, &b, &err)
    dk_chain_fixup overlap[] = {{B64 + 0x4000, false, B64, 0, 0, 0, false, 0, 0, false}, {B64 + 0x4004, false, B64, 0, 0, 0, false, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_64, 0x1000, overlap, 2), DK_E_ARG);
    CHECK_MSG(err, "overlap");
    dk_chain_fixup outside[] = {{B64 + 0x100000, false, B64, 0, 0, 0, false, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_64, 0x1000, outside, 1), DK_E_ARG);
    CHECK_MSG(err, "in no segment");
    dk_chain_fixup nocontent[] = {{segs[3].vmaddr, false, B64, 0, 0, 0, false, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_64, 0x1000, nocontent, 1), DK_E_ARG);
    CHECK_MSG(err, "content bytes");
    dk_chain_fixup big[] = {{B64 + 0x4000, false, 1ull << 36, 0, 0, 0, false, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_64, 0x1000, big, 1), DK_E_LIMIT);
    CHECK_MSG(err, "36-bit field");
    dk_chain_fixup below[] = {{B64 + 0x4000, false, B64 - 8, 0, 0, 0, false, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_64_OFFSET, 0x1000, below, 1), DK_E_ARG);
    CHECK_MSG(err, "below the image base");
    dk_chain_fixup auth64[] = {{B64 + 0x4000, false, B64, 0, 0, 0, true, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_64, 0x1000, auth64, 1), DK_E_ARG);
    CHECK_MSG(err, "authenticated");
    dk_chain_fixup authhigh[] = {{B64 + 0x4000, false, B64, 0x12, 0, 0, true, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_ARM64E, 0x4000, authhigh, 1), DK_E_ARG);
    CHECK_MSG(err, "high8 0x12");
    dk_chain_fixup authfar[] = {{B64 + 0x4000, false, B64 + (1ull << 32), 0, 0, 0, true, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_ARM64E, 0x4000, authfar, 1), DK_E_LIMIT);
    CHECK_MSG(err, "32-bit field");
    dk_chain_fixup noimport[] = {{B64 + 0x4000, true, 0, 0, 1, 0, false, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_64, 0x1000, noimport, 1), DK_E_ARG);
    CHECK_MSG(err, "uses import 1 of 1");
    dk_chain_fixup stride[] = {{B64 + 0x4000, false, B64, 0, 0, 0, false, 0, 0, false}, {B64 + 0x400c, false, B64, 0, 0, 0, false, 0, 0, false}};
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_ARM64E, 0x4000, stride, 2), DK_E_ARG);
    CHECK_MSG(err, "8-byte stride");
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_32, 0x1000, stride, 0), DK_E_UNSUPPORTED);
    CHECK_MSG(err, "DYLD_CHAINED_PTR_32");
    CHECK_EQ_U64(ENC(DK_CHAINED_PTR_64, 0x2000, stride, 0), DK_E_ARG);
    CHECK_MSG(err, "page size 0x2000");
    dk_chain_import badord[] = {{-4, "_y", false, 0}};
    CHECK_EQ_U64(dk_chained_encode(DK_CHAINED_PTR_64, 0x1000, B64, segs, 4, NULL, 0, badord, 1, &b, &err), DK_E_ARG);
    CHECK_MSG(err, "library ordinal -4");
#undef ENC
    CHECK_EQ_U64(b.len, 5);
    dk_buf_free(&b);
    image_free(&im);
}

/* Import tables for the random cases: MODE 0 keeps every addend 0 (DYLD_CHAINED_IMPORT), 1 adds
 * 32-bit ones (_ADDEND), 2 64-bit ones and a large ordinal (_ADDEND64). */
static dk_chain_import *random_imports(size_t n, int mode)
{
    dk_chain_import *v = malloc(sizeof *v * n);
    for (size_t i = 0; i < n; i++) {
        v[i].name = bind_symbol(i);
        v[i].ordinal = ordinal_of(i);
        v[i].weak_import = i % 5 == 0;
        v[i].addend = 0;
        if (mode >= 1 && chance(20)) v[i].addend = (int64_t)(int32_t)rnd() / 4; /* with a fixup's, still 32 bits */
        if (mode == 2 && chance(10)) v[i].addend = (int64_t)rnd();
    }
    return v;
}

static int64_t random_chain_addend(int mode, bool arm64e)
{
    if (chance(70)) return 0;
    if (mode == 0) return arm64e ? (int64_t)rnd_below(0x7FFFE) - 0x3FFFF : (int64_t)rnd_below(256);
    switch (rnd_below(4)) {
    case 0: return (int64_t)rnd_below(256);
    case 1: return -(int64_t)rnd_below(0x50000);
    case 2: return (int64_t)(int32_t)rnd() / 4;
    default: return mode == 2 ? (int64_t)rnd() : (int64_t)rnd_below(1u << 30);
    }
}

typedef struct chain_case {
    uint16_t format;
    uint32_t cputype, cpusubtype, page_size;
    const char *name;
} chain_case;

static const chain_case CHAIN_CASES[] = {
    {DK_CHAINED_PTR_64, CPU_TYPE_X86_64, 3, 0x1000, "DYLD_CHAINED_PTR_64"},
    {DK_CHAINED_PTR_64_OFFSET, CPU_TYPE_ARM64, 0, 0x4000, "DYLD_CHAINED_PTR_64_OFFSET"},
    {DK_CHAINED_PTR_ARM64E, CPU_TYPE_ARM64, CPU_SUBTYPE_ARM64E, 0x4000, "DYLD_CHAINED_PTR_ARM64E"},
    {DK_CHAINED_PTR_ARM64E_USERLAND24, CPU_TYPE_ARM64, CPU_SUBTYPE_ARM64E, 0x4000, "DYLD_CHAINED_PTR_ARM64E_USERLAND24"},
};

static int cmp_fixup_address(const void *a, const void *b)
{
    const dk_chain_fixup *x = a, *y = b;
    return x->address < y->address ? -1 : x->address > y->address;
}

static void write_chained_expect(FILE *f, const timage *im, const dk_chain_fixup *fixups, size_t n, const dk_chain_import *imports)
{
    char lib[32];
    fprintf(f, "base 0x%llx\n", (unsigned long long)im->base);
    for (size_t i = 0; i < n; i++) {
        const dk_chain_fixup *x = &fixups[i];
        int seg = x->address >= im->segs[2].vmaddr ? 2 : 1;
        const tseg *g = &im->segs[seg];
        uint64_t raw = dk_le64(g->content + (x->address - g->vmaddr));
        cwant w = cwant_of(x, imports);
        if (x->bind)
            fprintf(f, "chained-bind %s %s 0x%llx 0x%016llx %lld %s %s%s\n", g->segname, g->sectname, (unsigned long long)x->address,
                    (unsigned long long)raw, (long long)w.addend, dylib_name(w.ordinal, lib, sizeof lib), w.sym,
                    w.weak_import ? " (weak import)" : "");
        else
            fprintf(f, "chained-rebase %s %s 0x%llx 0x%016llx 0x%llx 0x%x\n", g->segname, g->sectname, (unsigned long long)x->address,
                    (unsigned long long)raw, (unsigned long long)x->target, x->high8);
    }
}

static void test_chained_random(void)
{
    for (int round = 0; round < 24; round++) {
        const chain_case *cc = &CHAIN_CASES[round % 4];
        int mode = round / 4 % 3;
        bool arm64e = cc->format == DK_CHAINED_PTR_ARM64E || cc->format == DK_CHAINED_PTR_ARM64E_USERLAND24;
        unsigned stride = arm64e ? 8 : 4;
        timage im;
        image_init(&im, true, cc->cputype, cc->cpusubtype, 0x4000 * (1 + rnd_below(3)), 0x4000 * (1 + rnd_below(6)), NDYLIBS);
        dk_chain_segment segs[4];
        chain_segments(&im, segs);
        size_t nimports = 40 + rnd_below(40);
        dk_chain_import *imports = random_imports(nimports, mode);
        size_t cap = 0, n = 0;
        dk_chain_fixup *fx = NULL;
        for (int seg = 1; seg <= 2; seg++) {
            uint64_t pos = 0, left = 0;
            int mode_run = 0, kind = 0;
            uint32_t imp = 0;
            while (pos + 8 <= im.segs[seg].vmsize) {
                if (left == 0) {
                    left = 1 + rnd_below(50);
                    mode_run = (int)rnd_below(3);
                    kind = (int)rnd_below(2);
                    imp = (uint32_t)rnd_below(nimports);
                }
                left--;
                if (mode_run == 0 || (mode_run == 2 && chance(50))) {
                    /* a gap: sometimes a long one, so pages go empty */
                    pos += chance(3) ? 0x1000 * (1 + rnd_below(4)) : stride * (1 + rnd_below(3));
                    continue;
                }
                fx = grow(fx, &cap, n, sizeof *fx);
                dk_chain_fixup *f = &fx[n++];
                memset(f, 0, sizeof *f);
                f->address = im.segs[seg].vmaddr + pos;
                f->auth = arm64e && chance(30);
                if (f->auth) {
                    f->key = (uint8_t)rnd_below(4);
                    f->diversity = (uint16_t)rnd();
                    f->addr_div = chance(50);
                }
                if (kind == 1 || mode_run == 2) {
                    f->bind = true;
                    f->import = chance(80) ? imp : (uint32_t)rnd_below(nimports);
                    f->addend = mode == 0 && f->auth ? 0 : random_chain_addend(mode, arm64e); /* auth binds have no inline addend */
                } else {
                    uint64_t span = cc->format == DK_CHAINED_PTR_64 ? (1ull << 36) - B64 : 0x40000;
                    f->target = B64 + rnd_below(f->auth ? 0x40000 : span);
                    if (!f->auth && chance(10)) f->high8 = (uint8_t)rnd();
                }
                pos += 8;
                if (!arm64e && chance(20)) pos += 4; /* a 4-byte stride lets pointers sit at any 4-byte boundary */
            }
        }
        /* shuffled: the encoder sorts */
        for (size_t i = n; i > 1; i--) {
            size_t j = rnd_below(i);
            dk_chain_fixup t = fx[i - 1];
            fx[i - 1] = fx[j];
            fx[j] = t;
        }
        dk_buf blob = {0}, trie = {0};
        dk_error err = {0};
        dk_status st = dk_chained_encode(cc->format, cc->page_size, B64, segs, 4, fx, n, imports, nimports, &blob, &err);
        CHECK_EQ_U64(st, DK_OK);
        char what[96];
        snprintf(what, sizeof what, "random %s mode %d (%zu fixups)", cc->name, mode, n);
        if (st) {
            fprintf(stderr, "%s: %s\n", what, err.message);
        } else {
            uint32_t want_format = mode == 0 ? DYLD_CHAINED_IMPORT : mode == 1 ? DYLD_CHAINED_IMPORT_ADDEND : DYLD_CHAINED_IMPORT_ADDEND64;
            uint32_t got_format = dk_le32(blob.data + 20);
            /* the smallest format that holds every addend (2^64 random addends always need 64 bits) */
            CHECK_EQ_U64(got_format, want_format);
            size_t nnames;
            char **names = random_names(200, &nnames);
            dk_trie_entry *exports = random_exports(names, nnames, true);
            CHECK_EQ_U64(dk_trie_build(exports, nnames, &trie, &err), DK_OK);
            size_t size;
            uint8_t *file = chained_check(&im, &blob, fx, n, imports, &trie, what, &size);
            if (emit_dir && round < 12 && (cc->format == DK_CHAINED_PTR_64 || cc->format == DK_CHAINED_PTR_64_OFFSET)) {
                char name[64];
                snprintf(name, sizeof name, "chained_%s_mode%d", cc->format == DK_CHAINED_PTR_64 ? "64" : "64_offset", mode);
                FILE *f;
                emit_file(name, file, size, &f);
                if (f) {
                    qsort(fx, n, sizeof *fx, cmp_fixup_address);
                    write_chained_expect(f, &im, fx, n, imports);
                    write_exports_expect(f, exports, nnames);
                    fclose(f);
                }
            }
            free(file);
            free(exports);
            free_names(names, nnames);
        }
        dk_buf_free(&blob);
        dk_buf_free(&trie);
        free(fx);
        free(imports);
        image_free(&im);
    }
}

/* ------------------------------------------------------------- performance */

static int count_fixup(void *ctx, const dk_fixup *f)
{
    (void)f;
    ++*(size_t *)ctx;
    return 0;
}

/* A million fixups of each kind: one sort and linear passes, so a second or so each. */
static void test_performance(size_t n)
{
    dk_error err = {0};
    dk_buf b = {0};
    /* rebases: every other pointer of a 16MB segment, shuffled */
    dk_rebase_loc *rb = malloc(sizeof *rb * n);
    for (size_t i = 0; i < n; i++) rb[i] = (dk_rebase_loc){1, 16 * (uint64_t)i + (i % 3 == 0 ? 8 : 0), 1};
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd_below(i);
        dk_rebase_loc t = rb[i - 1];
        rb[i - 1] = rb[j];
        rb[j] = t;
    }
    double t0 = now_seconds();
    CHECK_EQ_U64(dk_rebase_encode(rb, n, 8, &b, &err), DK_OK);
    double t_rebase = now_seconds() - t0;
    size_t rebase_bytes = b.len;
    dk_buf_free(&b);
    free(rb);

    /* binds: 1000 symbols over 50 dylibs */
    static char names[1000][16];
    for (int i = 0; i < 1000; i++) snprintf(names[i], sizeof names[i], "_s%d", i);
    dk_bind_rec *bd = malloc(sizeof *bd * n);
    for (size_t i = 0; i < n; i++)
        bd[i] = (dk_bind_rec){1 + (uint32_t)(i & 1), 8 * (uint64_t)(i / 2), (int)(i % 50) + 1, names[rnd_below(1000)], 0, 0, 1};
    t0 = now_seconds();
    CHECK_EQ_U64(dk_bind_encode(bd, n, 8, &b, &err), DK_OK);
    double t_bind = now_seconds() - t0;
    size_t bind_bytes = b.len;
    dk_buf_free(&b);
    free(bd);

    /* chained: n fixups in a DYLD_CHAINED_PTR_64 segment, walked back */
    timage im;
    uint64_t dsize = ((uint64_t)n * 12 + 0x3fff) & ~(uint64_t)0x3fff;
    image_init(&im, true, CPU_TYPE_X86_64, 3, 0x4000, dsize, NDYLIBS);
    dk_chain_segment segs[4];
    chain_segments(&im, segs);
    dk_chain_import imp[] = {{1, "_x", false, 0}, {2, "_y", false, 1000}};
    dk_chain_fixup *fx = malloc(sizeof *fx * n);
    uint64_t pos = im.segs[2].vmaddr;
    for (size_t i = 0; i < n; i++) {
        memset(&fx[i], 0, sizeof fx[i]);
        fx[i].address = pos;
        pos += i % 2 ? 8 : 16;
        if (i % 4 == 0) {
            fx[i].bind = true;
            fx[i].import = (uint32_t)(i / 4 % 2);
            fx[i].addend = i % 8 == 0 ? 0 : 300 + (int64_t)(i % 7); /* some spill into extra imports */
        } else {
            fx[i].target = B64 + (i % 0x4000);
        }
    }
    t0 = now_seconds();
    CHECK_EQ_U64(dk_chained_encode(DK_CHAINED_PTR_64, 0x1000, B64, segs, 4, fx, n, imp, 2, &b, &err), DK_OK);
    double t_chain = now_seconds() - t0;
    size_t size;
    uint8_t *file = build_image(&im, NULL, &b, NULL, &size);
    dk_macho *m = NULL;
    size_t count = 0;
    t0 = now_seconds();
    if (dk_macho_open(file, size, "perf", &m, &err) == DK_OK) {
        CHECK_EQ_U64(dk_macho_foreach_fixup(m, count_fixup, &count, &err), DK_OK);
        dk_macho_close(m);
    }
    double t_walk = now_seconds() - t0;
    CHECK_EQ_U64(count, n);
    printf("performance, %zu fixups each: rebase %.2fs (%zu bytes), bind %.2fs (%zu bytes), chained %.2fs (walked back in %.2fs)\n", n,
           t_rebase, rebase_bytes, t_bind, bind_bytes, t_chain, t_walk);
    free(file);
    free(fx);
    dk_buf_free(&b);
    image_free(&im);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--emit") == 0 && i + 1 < argc) emit_dir = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--emit DIR]\n", argv[0]);
            return 2;
        }
    }
    test_buf();
    test_trie_exact();
    test_trie_errors();
    test_trie_random();
    test_opcodes_exact();
    test_opcodes_errors();
    test_opcodes_random();
    test_chained_exact();
    test_chained_errors();
    test_chained_random();
    const char *pn = getenv("DK_WRITER_PERF_N");
    test_performance(pn ? (size_t)strtoull(pn, NULL, 10) : 1000000);
    return unit_finish("test_writers");
}
