/*
 * Output for the CLI: a streaming JSON writer and human-readable text, both
 * behind one sink that can also discard everything (the validation pass that
 * runs before any byte reaches stdout, so malformed input prints nothing but
 * the error).
 */
#ifndef DYLDKIT_TOOLS_OUT_H
#define DYLDKIT_TOOLS_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define OUT_MAX_DEPTH 64

typedef struct out {
    FILE *f;
    bool json;
    bool null;     /* discard everything */
    bool color;    /* ANSI colours in human output */
    int depth;
    bool need_comma[OUT_MAX_DEPTH];
    char *buf;
    size_t len, cap;
} out;

void out_init(out *o, FILE *f, bool json, bool color);
void out_set_null(out *o, bool null);
void out_flush(out *o);
void out_free(out *o);

/* JSON: KEY is NULL inside arrays. */
void o_obj(out *o, const char *key);
void o_obj_end(out *o);
void o_arr(out *o, const char *key);
void o_arr_end(out *o);
void o_u64(out *o, const char *key, uint64_t v);
void o_i64(out *o, const char *key, int64_t v);
void o_str(out *o, const char *key, const char *s);
void o_strn(out *o, const char *key, const char *s, size_t n);
void o_bool(out *o, const char *key, bool v);
void o_null(out *o, const char *key);
void o_uuid(out *o, const char *key, const uint8_t uuid[16]);
/* An array element written in place: o_reserve gives room for N bytes in the
 * buffer (NULL when output is discarded or N is too large), o_commit adds the
 * element written at [START, END) there. */
static inline char *o_reserve(out *o, size_t n);
static inline void o_commit(out *o, const char *start, const char *end);
/* A value the caller wrote as JSON text itself (hot loops), with the usual
 * comma and KEY handling. */
void o_raw(out *o, const char *key, const char *json, size_t n);
/* Helpers for such text: each appends at P and returns the new end.
 * json_str_at writes S quoted (null for NULL) and returns NULL when S needs
 * escaping or does not fit before END (the caller then takes the o_str path);
 * the number forms need at most 21 bytes. */
char *json_str_at(char *p, const char *end, const char *s);
static inline char *json_u64_at(char *p, uint64_t v);
static inline char *json_i64_at(char *p, int64_t v);

/* Human text. */
void o_printf(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void o_write(out *o, const char *s, size_t n);
/* Colour helpers: return the escape or "" when colour is off. */
const char *c_head(const out *o);  /* bold */
const char *c_addr(const out *o);  /* cyan */
const char *c_sym(const out *o);   /* green */
const char *c_dim(const out *o);   /* grey */
const char *c_warn(const out *o);  /* yellow */
const char *c_off(const out *o);

void uuid_string(const uint8_t uuid[16], char text[37]);

/* The buffer is written out once it holds OUT_FLUSH_AT bytes (it has room for twice that). */
#define OUT_FLUSH_AT (1u << 18)
/** Write the buffer to the stream and empty it. */
void out_write_buffer(out *o);

static inline char *o_reserve(out *o, size_t n)
{
    if (!o->json || o->null || !o->f || n + 1 > o->cap) return NULL;
    if (o->len + n + 1 > o->cap) out_write_buffer(o);
    /* one byte kept in front for the comma o_commit may put there */
    return o->buf + o->len + 1;
}

static inline void o_commit(out *o, const char *start, const char *end)
{
    size_t n = (size_t)(end - start);
    /* key(o, NULL) without its flush: the comma lands in the byte kept free */
    bool inner = o->depth > 0 && o->depth < OUT_MAX_DEPTH;
    if (inner && o->need_comma[o->depth]) o->buf[o->len++] = ',';
    else memmove(o->buf + o->len, start, n);
    if (inner) o->need_comma[o->depth] = true;
    o->len += n;
    if (o->len >= OUT_FLUSH_AT && o->f) out_write_buffer(o);
}

/* ---- decimal numbers (inline: the JSON writers' hot loops call them per value) */

/*
 * The 8 decimal digits of V < 10^8 as ASCII, most significant in the lowest
 * byte (memcpy it): both 4-digit halves, then both 2-digit quarters of each,
 * then each digit, split in parallel in the lanes of one 64-bit word
 * (x / 100 as x * 10486 >> 20 for x < 10^4, x / 10 as x * 103 >> 10 for
 * x < 100).
 */
static inline __attribute__((always_inline)) uint64_t out_digits8(uint32_t v)
{
    /* v / 10000 as a multiply (exact for every 32-bit v): GCC otherwise emits a
     * `div` where it guesses the code cold */
    uint64_t q = (uint64_t)v * 3518437209u >> 45;
    uint64_t merged = q | (uint64_t)(v - 10000 * (uint32_t)q) << 32;
    uint64_t top = (merged * 10486) >> 20 & 0x0000007F0000007Full;
    uint64_t hundreds = (merged - 100 * top) << 16 | top;
    uint64_t tens = (hundreds * 103) >> 10 & 0x000F000F000F000Full;
    tens += (hundreds - 10 * tens) << 8;
    return tens | 0x3030303030303030ull;
}

/* Writes the N (1..8) low decimal digits of V (< 10^N) at P: 8 bytes are stored. */
static inline void out_put_digits(char *p, uint32_t v, size_t n)
{
    uint64_t d = out_digits8(v) >> (8 * (8 - n)); /* little-endian: drop the leading zeros */
    memcpy(p, &d, 8);
}

size_t out_u64_digits_long(uint64_t v, char *buf); /* V >= 10^8 */

/* V in decimal at BUF, which has room for 24 bytes; returns the digit count.
 * Values below 10^8 (most in the JSON writers' hot loops) are done in place. */
static inline __attribute__((always_inline)) size_t u64_digits(uint64_t v, char *buf)
{
    if (v >= 100000000) return out_u64_digits_long(v, buf);
    /* the leading zeros are the low bytes whose digit is 0 (none for v = 0's last) */
    uint64_t d = out_digits8((uint32_t)v);
    unsigned lz = v ? (unsigned)__builtin_ctzll(d & 0x0F0F0F0F0F0F0F0Full) / 8 : 7;
    d >>= 8 * lz;
    memcpy(buf, &d, 8);
    return 8 - lz;
}

/* The 16 hex digits (lower case) of V at P, most significant first: each
 * 32-bit half's nibbles spread into the bytes of a word, turned into ASCII
 * ('0' + d, plus 'a' - '0' - 10 where d > 9) and byte-swapped into order. */
static inline uint64_t out_hex8(uint32_t u)
{
    uint64_t x = u;
    x = (x | x << 16) & 0x0000FFFF0000FFFFull;
    x = (x | x << 8) & 0x00FF00FF00FF00FFull;
    x = (x | x << 4) & 0x0F0F0F0F0F0F0F0Full; /* byte i = nibble i */
    x += 0x3030303030303030ull + (((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull) * ('a' - '0' - 10);
    return __builtin_bswap64(x);
}

/* V in hex, lower case, at P: at least WIDTH (<= 16) digits, zero-padded
 * (printf's %0*llx); returns the end. */
static inline char *out_hex_at(char *p, uint64_t v, int width)
{
    int n = v ? (67 - __builtin_clzll(v)) / 4 : 1;
    if (n < width) n = width;
    uint64_t d[2] = {out_hex8((uint32_t)(v >> 32)), out_hex8((uint32_t)v)};
    if (n == 16) memcpy(p, d, 16);
    else memcpy(p, (const char *)d + 16 - n, (size_t)n);
    return p + n;
}

static inline __attribute__((always_inline)) char *json_u64_at(char *p, uint64_t v) { return p + u64_digits(v, p); }

static inline __attribute__((always_inline)) char *json_i64_at(char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        *p++ = '-';
        u = 0 - u;
    }
    return p + u64_digits(u, p);
}

#endif
