/*
 * The CLI's output writer (tools/out.c, compiled into this test as it is):
 * number formatting at every digit-count boundary, the printable-ASCII check
 * of JSON strings, and elements written in place between ordinary ones.
 */
#include "../../tools/out.c"

#include "unit.h"

static void test_hex(void)
{
    char buf[32], want[32];
    int bad = 0;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint64_t i = 0; i < 300000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t val = i < 70000 ? i : x >> (x % 64); /* every nibble value; all magnitudes */
        int width = (int)(i % 17);
        char *end = out_hex_at(buf, val, width);
        *end = 0;
        snprintf(want, sizeof want, "%0*" PRIx64, width, val);
        bad += strcmp(buf, want) != 0;
    }
    CHECK(bad == 0);
    char *end = out_hex_at(buf, UINT64_MAX, 16);
    *end = 0;
    CHECK(strcmp(buf, "ffffffffffffffff") == 0);
}

static void test_digits(void)
{
    char buf[32], want[32];
    uint64_t v = 1;
    for (int k = 0; k <= 20; k++) {
        uint64_t vals[3] = {v - 1, v, v + 1};
        for (int i = 0; i < 3; i++) {
            size_t n = u64_digits(vals[i], buf);
            buf[n] = 0;
            snprintf(want, sizeof want, "%" PRIu64, vals[i]);
            CHECK(strcmp(buf, want) == 0);
        }
        if (k < 19) v *= 10;
        else v = UINT64_MAX; /* last round: UINT64_MAX - 1, UINT64_MAX, 0 (wraps) */
    }
    /* every value below 10^5 and a million pseudo-random ones of every length
       (the 8-digit SWAR split and the leading-zero count) */
    int bad = 0;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint64_t i = 0; i < 1100000; i++) {
        uint64_t val = i;
        if (i >= 100000) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            val = x >> (x % 64); /* all magnitudes */
        }
        size_t n = u64_digits(val, buf);
        buf[n] = 0;
        snprintf(want, sizeof want, "%" PRIu64, val);
        bad += strcmp(buf, want) != 0;
    }
    CHECK(bad == 0);
    char *p = json_i64_at(buf, INT64_MIN);
    *p = 0;
    CHECK(strcmp(buf, "-9223372036854775808") == 0);
}

static void test_strings(void)
{
    char buf[64];
    const char *plain[] = {"", "a", "_OBJC_CLASS_$_Shape", "@rpath/libexp.dylib", "0123456789abcdef~ !#"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        char *e = json_str_at(buf, buf + sizeof buf, plain[i]);
        CHECK(e && (size_t)(e - buf) == strlen(plain[i]) + 2 && buf[0] == '"' && e[-1] == '"' &&
              memcmp(buf + 1, plain[i], strlen(plain[i])) == 0);
    }
    /* anything needing an escape, in the eight-byte body or the tail */
    const char *needs[] = {"quote\"", "back\\slash", "tab\there", "del\x7f", "utf8 \xc3\xa9", "12345678\"",
                           "1234567\n", "\x01"};
    for (size_t i = 0; i < sizeof needs / sizeof *needs; i++) CHECK(json_str_at(buf, buf + sizeof buf, needs[i]) == NULL);
    CHECK(json_str_at(buf, buf + 5, "abcd") == NULL); /* needs 6 bytes */
    CHECK(json_str_at(buf, buf + 6, "abcd") == buf + 6);
    char *e = json_str_at(buf, buf + 4, NULL);
    CHECK(e == buf + 4 && memcmp(buf, "null", 4) == 0);
}

/* A JSON writer into memory: capture_open, write through c.o, capture_close
 * gives the text (free it). */
typedef struct capture {
    char *text;
    size_t size;
    FILE *f;
    out o;
} capture;

static void capture_open(capture *c)
{
    c->text = NULL;
    c->size = 0;
    c->f = open_memstream(&c->text, &c->size);
    out_init(&c->o, c->f, true, false);
}

static char *capture_close(capture *c)
{
    out_flush(&c->o);
    out_free(&c->o);
    fclose(c->f);
    return c->text;
}

/* o_str of S inside an array, as written */
static char *json_of(const char *s)
{
    capture c;
    capture_open(&c);
    o_arr(&c.o, NULL);
    o_str(&c.o, NULL, s);
    o_arr_end(&c.o);
    return capture_close(&c);
}

static void test_utf8(void)
{
    struct { const char *in, *out; } cases[] = {
        {"caf\xc3\xa9", "[\"caf\xc3\xa9\"]"},                  /* kept: valid 2-byte */
        {"\xf0\x9f\x98\x80", "[\"\xf0\x9f\x98\x80\"]"},            /* kept: U+1F600 */
        {"\xf0\x80\x80\x80", "[\"\\u00f0\\u0080\\u0080\\u0080\"]"}, /* overlong */
        {"\xe0\x80\xaf", "[\"\\u00e0\\u0080\\u00af\"]"},         /* overlong '/' */
        {"\xed\xa0\x80", "[\"\\u00ed\\u00a0\\u0080\"]"},         /* surrogate */
        {"\xf4\x90\x80\x80", "[\"\\u00f4\\u0090\\u0080\\u0080\"]"}, /* past U+10FFFF */
        {"\xc3", "[\"\\u00c3\"]"},                                  /* truncated */
        {"a\"b\\c\n", "[\"a\\\"b\\\\c\\u000a\"]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = json_of(cases[i].in);
        bool same = got && strncmp(got, cases[i].out, strlen(cases[i].out)) == 0;
        CHECK(same);
        if (!same) fprintf(stderr, "case %zu: got %s\n", i, got ? got : "(null)");
        free(got);
    }
}

static void test_in_place(void)
{
    capture c;
    capture_open(&c);
    out *o = &c.o;
    o_obj(o, NULL);
    o_arr(o, "a");
    for (int i = 0; i < 3; i++) {
        char *p = o_reserve(o, 16);
        CHECK(p != NULL);
        if (!p) break;
        p[0] = (char)('1' + i);
        o_commit(o, p, p + 1);
        o_u64(o, NULL, 7);
    }
    o_arr_end(o);
    o_str(o, "s", "x\"y");
    o_obj_end(o);
    char *text = capture_close(&c);
    const char *want = "{\"a\":[1,7,2,7,3,7],\"s\":\"x\\\"y\"}\n";
    CHECK(text && strcmp(text, want) == 0);
    if (text && strcmp(text, want) != 0) fprintf(stderr, "got %s", text);
    free(text);
}

int main(void)
{
    test_digits();
    test_hex();
    test_strings();
    test_utf8();
    test_in_place();
    return unit_finish("out");
}
