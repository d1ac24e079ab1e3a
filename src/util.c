/* Error reporting, status names and the growable array used across the library. */
#include "internal.h"

#include <sys/mman.h>

#include <stdio.h>

const char *dk_strerror(dk_status status)
{
    switch (status) {
    case DK_OK: return "success";
    case DK_E_MALFORMED: return "malformed input";
    case DK_E_UNSUPPORTED: return "unsupported";
    case DK_E_IO: return "I/O error";
    case DK_E_NOMEM: return "out of memory";
    case DK_E_NOTFOUND: return "not found";
    case DK_E_ARG: return "invalid argument";
    case DK_E_LIMIT: return "resource limit exceeded";
    case DK_E_STOPPED: return "stopped by callback";
    }
    return "unknown status";
}

const char *dk_version(void) { return DYLDKIT_VERSION_STRING; }

/* Messages quote names taken from the file (segment, section, symbol names):
 * keep them one line of text by replacing control characters. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

dk_status dk_fail(dk_error *err, dk_status status, const char *fmt, ...)
{
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        one_line(err->message);
    }
    return status;
}

void dk_error_prefix(dk_error *err, const char *fmt, ...)
{
    if (!err) return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    one_line(prefix);
    char tmp[sizeof err->message];
    size_t p = strlen(prefix), m = strnlen(err->message, sizeof err->message - 1);
    if (p > sizeof tmp - 1) p = sizeof tmp - 1;
    if (m > sizeof tmp - 1 - p) m = sizeof tmp - 1 - p;
    memcpy(tmp, prefix, p);
    memcpy(tmp + p, err->message, m);
    tmp[p + m] = 0;
    memcpy(err->message, tmp, p + m + 1);
}

bool dk_vec_reserve(dk_vec *v, size_t elem, size_t n)
{
    if (n <= v->cap) return true;
    size_t cap = v->cap ? v->cap : 16;
    while (cap < n) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
    }
    size_t bytes;
    if (!dk_mul_ok(cap, elem, &bytes)) return false;
    void *p = realloc(v->data, bytes);
    if (!p) return false;
    v->data = p;
    v->cap = cap;
    return true;
}

void *dk_vec_push(dk_vec *v, size_t elem)
{
    if (v->len == v->cap && !dk_vec_reserve(v, elem, v->len + 1)) return NULL;
    return (uint8_t *)v->data + elem * v->len++;
}

#define DK_BIG_ALLOC (1u << 20)
#ifndef MAP_POPULATE
#define MAP_POPULATE 0 /* Linux only: elsewhere the pages fault in as used */
#endif

void *dk_big_alloc(size_t bytes)
{
    if (bytes < DK_BIG_ALLOC) return malloc(bytes ? bytes : 1);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *dk_big_grow(void *p, size_t old_bytes, size_t new_bytes)
{
    if (new_bytes < DK_BIG_ALLOC) return realloc(p, new_bytes ? new_bytes : 1);
    if (old_bytes >= DK_BIG_ALLOC) {
#ifdef MREMAP_MAYMOVE
        void *q = mremap(p, old_bytes, new_bytes, MREMAP_MAYMOVE);
        if (q == MAP_FAILED) return NULL;
#ifdef MADV_POPULATE_WRITE
        /* the new pages in one call, as dk_big_alloc's MAP_POPULATE (page-aligned: sizes
           of mapped blocks are whole pages or the tail is within the last one) */
        uintptr_t from = ((uintptr_t)q + old_bytes) & ~(uintptr_t)4095;
        (void)madvise((void *)from, (uintptr_t)q + new_bytes - from, MADV_POPULATE_WRITE); /* a hint: faults still work */
#endif
        return q;
#endif
    }
    void *q = dk_big_alloc(new_bytes);
    if (!q) return NULL;
    if (p) memcpy(q, p, old_bytes);
    dk_big_free(p, old_bytes);
    return q;
}

void dk_big_free(void *p, size_t bytes)
{
    if (!p) return;
    if (bytes < DK_BIG_ALLOC) free(p);
    else munmap(p, bytes);
}

void dk_vec_free(dk_vec *v)
{
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

/* dk_uleb for every length (internal.h). */
bool dk__uleb_long(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    const uint8_t *q = *p;
    for (;;) {
        if (q >= end) return false;
        uint8_t b = *q++;
        uint64_t slice = b & 0x7f;
        if (shift >= 64 || (shift > 0 && (slice << shift) >> shift != slice)) {
            if (slice != 0) return false;
        } else {
            v |= slice << shift;
        }
        shift += 7;
        if (!(b & 0x80)) break;
        if (shift > 70) return false; /* bounded: at most 10 continuation bytes */
    }
    *p = q;
    *out = v;
    return true;
}
