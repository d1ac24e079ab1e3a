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
char *o_reserve(out *o, size_t n);
void o_commit(out *o, const char *start, const char *end);
/* A value the caller wrote as JSON text itself (hot loops), with the usual
 * comma and KEY handling. */
void o_raw(out *o, const char *key, const char *json, size_t n);
/* Helpers for such text: each appends at P and returns the new end.
 * json_str_at writes S quoted (null for NULL) and returns NULL when S needs
 * escaping or does not fit before END (the caller then takes the o_str path);
 * the number forms need at most 21 bytes. */
char *json_str_at(char *p, const char *end, const char *s);
char *json_u64_at(char *p, uint64_t v);
char *json_i64_at(char *p, int64_t v);

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

#endif
