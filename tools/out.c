/* Streaming JSON and text output with an in-memory buffer flushed in large writes. */
#include "out.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_AT OUT_FLUSH_AT

void out_init(out *o, FILE *f, bool json, bool color)
{
    memset(o, 0, sizeof *o);
    o->f = f;
    o->json = json;
    o->color = color && !json;
    o->cap = FLUSH_AT * 2;
    o->buf = malloc(o->cap);
    if (!o->buf) o->cap = 0;
}

void out_set_null(out *o, bool null)
{
    o->null = null;
    o->depth = 0;
    memset(o->need_comma, 0, sizeof o->need_comma);
}

void out_flush(out *o)
{
    if (o->len && !o->null && o->f) fwrite(o->buf, 1, o->len, o->f);
    o->len = 0;
    if (o->f) fflush(o->f);
}

void out_free(out *o)
{
    free(o->buf);
    o->buf = NULL;
    o->cap = o->len = 0;
}

void out_write_buffer(out *o)
{
    fwrite(o->buf, 1, o->len, o->f);
    o->len = 0;
}

/* Write the buffer out once it holds FLUSH_AT bytes (it has room for twice that). */
static inline void flush_full(out *o)
{
    if (o->len >= FLUSH_AT && o->f) out_write_buffer(o);
}

void o_write(out *o, const char *s, size_t n)
{
    if (o->null) return;
    if (o->len + n > o->cap) {
        if (o->len && o->f) fwrite(o->buf, 1, o->len, o->f);
        o->len = 0;
        if (n > o->cap) {
            if (o->f) fwrite(s, 1, n, o->f);
            return;
        }
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    flush_full(o);
}

/* The common case of o_write, inlined: N bytes that fit the buffer (it is
 * twice FLUSH_AT and flushed at FLUSH_AT, so small writes always fit). */
static inline void wr(out *o, const char *s, size_t n)
{
    if (o->len + n <= o->cap && !o->null) {
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        flush_full(o);
    } else {
        o_write(o, s, n);
    }
}

static inline void wr1(out *o, char c)
{
    if (o->len < o->cap && !o->null) {
        o->buf[o->len++] = c;
        flush_full(o);
    } else {
        o_write(o, &c, 1);
    }
}

static void put(out *o, const char *s) { wr(o, s, strlen(s)); }

void o_printf(out *o, const char *fmt, ...)
{
    if (o->null) return;
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        o_write(o, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o_write(o, big, (size_t)n);
    free(big);
}

/* ------------------------------------------------------------------ JSON */

/* Eight bytes of a string need no escaping: none < 0x20, >= 0x7f, '"' or '\\'. */
static inline bool plain8(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
#define HAS_ZERO(x) (((x) - ones) & ~(x) & high)
    return !(((v - ones * 0x20) & ~v & high) | (v & high) | HAS_ZERO(v ^ (ones * 0x7f)) | HAS_ZERO(v ^ (ones * '"')) |
             HAS_ZERO(v ^ (ones * '\\')));
#undef HAS_ZERO
}

/* True when S[0..N) goes into a JSON string as it is: printable ASCII
 * without '"' or '\\' (nearly every name and path). */
static inline bool plain_json(const char *s, size_t n)
{
    uint64_t v;
    if (n < 8) {
        /* the short string padded with a plain byte */
        v = 0x6161616161616161ull;
        memcpy(&v, s, n);
        return plain8(v);
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&v, s + i, 8);
        if (!plain8(v)) return false;
    }
    if (i == n) return true;
    memcpy(&v, s + n - 8, 8); /* the tail, overlapping bytes already checked */
    return plain8(v);
}

static void put_string_slow(out *o, const char *s, size_t n);

/* A JSON string: printable ASCII without '"' or '\\' (nearly every name and
 * path) is copied as it is; anything else takes the escaping loop. */
/* PRE (if not 0), S quoted, POST (if not 0) straight into the buffer, when S
 * is plain and fits; false otherwise (nothing written). */
static inline bool put_plain(out *o, char pre, const char *s, size_t n, char post)
{
    if (o->null || n > 4096 || o->len + n + 4 > o->cap || !plain_json(s, n)) return false;
    char *p = o->buf + o->len;
    if (pre) *p++ = pre;
    *p++ = '"';
    memcpy(p, s, n);
    p += n;
    *p++ = '"';
    if (post) *p++ = post;
    o->len = (size_t)(p - o->buf);
    flush_full(o);
    return true;
}

static inline void put_string(out *o, const char *s, size_t n)
{
    if (!put_plain(o, 0, s, n, 0)) put_string_slow(o, s, n);
}

static void put_string_slow(out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char buf[256];
    size_t b = 0;
    buf[b++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (b > sizeof buf - 16) {
            o_write(o, buf, b);
            b = 0;
        }
        if (c == '"' || c == '\\') {
            buf[b++] = '\\';
            buf[b++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[b++] = '\\';
            buf[b++] = 'u';
            buf[b++] = '0';
            buf[b++] = '0';
            buf[b++] = hex[c >> 4];
            buf[b++] = hex[c & 15];
        } else if (c < 0x80) {
            buf[b++] = (char)c;
        } else {
            /* keep valid UTF-8 sequences, escape stray bytes as U+00XX */
            size_t len = (c >= 0xF0 && c < 0xF5) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC2 && c < 0xE0) ? 2 : 0;
            bool ok = len && c < 0xF5 && i + len <= n;
            for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
            if (ok) { /* no overlong forms, surrogates or code points past U+10FFFF (RFC 3629) */
                unsigned char c1 = (unsigned char)s[i + 1];
                ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0) && !(c == 0xF0 && c1 < 0x90) &&
                     !(c == 0xF4 && c1 >= 0x90);
            }
            if (ok) {
                memcpy(buf + b, s + i, len);
                b += len;
                i += len - 1;
            } else {
                buf[b++] = '\\';
                buf[b++] = 'u';
                buf[b++] = '0';
                buf[b++] = '0';
                buf[b++] = hex[c >> 4];
                buf[b++] = hex[c & 15];
            }
        }
    }
    buf[b++] = '"';
    o_write(o, buf, b);
}

static void key(out *o, const char *k)
{
    bool comma = false;
    if (o->depth > 0 && o->depth < OUT_MAX_DEPTH) {
        comma = o->need_comma[o->depth];
        o->need_comma[o->depth] = true;
    }
    if (!k) {
        if (comma) wr1(o, ',');
        return;
    }
    /* keys are the program's own literals: plain ASCII, never escaped */
    size_t n = strlen(k);
    if (!o->null && n <= 4096 && o->len + n + 4 <= o->cap) {
        char *p = o->buf + o->len;
        if (comma) *p++ = ',';
        *p++ = '"';
        memcpy(p, k, n);
        p += n;
        *p++ = '"';
        *p++ = ':';
        o->len = (size_t)(p - o->buf);
        flush_full(o);
        return;
    }
    if (comma) wr1(o, ',');
    put_string_slow(o, k, n);
    wr1(o, ':');
}

void o_obj(out *o, const char *k)
{
    if (!o->json || o->null) return;
    key(o, k);
    wr1(o, '{');
    if (o->depth + 1 < OUT_MAX_DEPTH) o->need_comma[++o->depth] = false;
}

void o_obj_end(out *o)
{
    if (!o->json || o->null) return;
    wr1(o, '}');
    if (o->depth > 0) o->depth--;
    if (o->depth == 0) wr1(o, '\n');
}

void o_arr(out *o, const char *k)
{
    if (!o->json || o->null) return;
    key(o, k);
    wr1(o, '[');
    if (o->depth + 1 < OUT_MAX_DEPTH) o->need_comma[++o->depth] = false;
}

void o_arr_end(out *o)
{
    if (!o->json || o->null) return;
    wr1(o, ']');
    if (o->depth > 0) o->depth--;
}

void o_u64(out *o, const char *k, uint64_t v)
{
    if (!o->json || o->null) return;
    key(o, k);
    char buf[24];
    wr(o, buf, u64_digits(v, buf));
}

void o_i64(out *o, const char *k, int64_t v)
{
    if (!o->json || o->null) return;
    key(o, k);
    char buf[24];
    size_t n = 0;
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        buf[n++] = '-';
        u = 0 - u;
    }
    n += u64_digits(u, buf + n);
    wr(o, buf, n);
}

void o_raw(out *o, const char *k, const char *json, size_t n)
{
    if (!o->json || o->null) return;
    key(o, k);
    wr(o, json, n);
}

size_t out_u64_digits_long(uint64_t v, char *buf)
{
    static const uint64_t pow10[20] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
                                       100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
                                       1000000000000ull, 10000000000000ull, 100000000000000ull,
                                       1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
                                       1000000000000000000ull, 10000000000000000000ull};
    /* digits (9..20): floor(log10 v) + 1, from the bit length (1233 / 4096 ~ log10 2) */
    unsigned t = (unsigned)(64 - __builtin_clzll(v)) * 1233 >> 12;
    size_t n = t - (v < pow10[t]) + 1;
    if (n <= 16) {
        out_put_digits(buf, (uint32_t)(v / 100000000), n - 8);
        out_put_digits(buf + n - 8, (uint32_t)(v % 100000000), 8);
    } else {
        uint64_t hi = v / 100000000;
        out_put_digits(buf, (uint32_t)(hi / 100000000), n - 16);
        out_put_digits(buf + n - 16, (uint32_t)(hi % 100000000), 8);
        out_put_digits(buf + n - 8, (uint32_t)(v % 100000000), 8);
    }
    return n;
}

char *json_str_at(char *p, const char *end, const char *s)
{
    if (!s) {
        if (end - p < 4) return NULL;
        memcpy(p, "null", 4);
        return p + 4;
    }
    size_t n = strlen(s);
    if (end - p < 2 || (size_t)(end - p) - 2 < n) return NULL;
    if (!plain_json(s, n)) return NULL;
    *p++ = '"';
    memcpy(p, s, n);
    p += n;
    *p++ = '"';
    return p;
}


void o_strn(out *o, const char *k, const char *s, size_t n)
{
    if (!o->json || o->null) return;
    key(o, k);
    put_string(o, s, n);
}

void o_str(out *o, const char *k, const char *s)
{
    if (!o->json || o->null) return;
    if (!s) {
        o_null(o, k);
        return;
    }
    o_strn(o, k, s, strlen(s));
}

void o_bool(out *o, const char *k, bool v)
{
    if (!o->json || o->null) return;
    key(o, k);
    put(o, v ? "true" : "false");
}

void o_null(out *o, const char *k)
{
    if (!o->json || o->null) return;
    key(o, k);
    put(o, "null");
}

void uuid_string(const uint8_t u[16], char s[37])
{
    snprintf(s, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", u[0], u[1], u[2], u[3], u[4],
             u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

void o_uuid(out *o, const char *k, const uint8_t u[16])
{
    char s[37];
    uuid_string(u, s);
    o_str(o, k, s);
}

const char *c_head(const out *o) { return o->color ? "\033[1m" : ""; }
const char *c_addr(const out *o) { return o->color ? "\033[36m" : ""; }
const char *c_sym(const out *o) { return o->color ? "\033[32m" : ""; }
const char *c_dim(const out *o) { return o->color ? "\033[90m" : ""; }
const char *c_warn(const out *o) { return o->color ? "\033[33m" : ""; }
const char *c_off(const out *o) { return o->color ? "\033[0m" : ""; }
