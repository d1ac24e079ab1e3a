/*
 * dk_buf: the growable byte buffer every encoder writes into (src/writer.h).
 * Integers are little-endian, as every Mach-O target dyldkit writes is.  An
 * allocation failure sets `oom` once and drops every later write, so an
 * encoder can emit a whole structure and check `oom` a single time at the end.
 */
#include "writer.h"

#include <stddef.h>

/* Room for N more bytes; false (and oom set) when it cannot be had. */
static bool buf_grow(dk_buf *b, size_t n)
{
    if (b->oom) return false;
    if (n <= b->cap - b->len) return true;
    /* no object can be larger than PTRDIFF_MAX: fail those without asking the allocator */
    if (n > (size_t)PTRDIFF_MAX - b->len) {
        b->oom = true;
        return false;
    }
    size_t need = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > (size_t)PTRDIFF_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void dk_buf_bytes(dk_buf *b, const void *p, size_t n)
{
    if (!n || !buf_grow(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void dk_buf_zeros(dk_buf *b, size_t n)
{
    if (!n || !buf_grow(b, n)) return;
    memset(b->data + b->len, 0, n);
    b->len += n;
}

void dk_buf_u8(dk_buf *b, uint8_t v)
{
    if (!buf_grow(b, 1)) return;
    b->data[b->len++] = v;
}

void dk_buf_u16(dk_buf *b, uint16_t v)
{
    if (!buf_grow(b, 2)) return;
    dk_wr16le(b->data + b->len, v);
    b->len += 2;
}

void dk_buf_u32(dk_buf *b, uint32_t v)
{
    if (!buf_grow(b, 4)) return;
    dk_wr32le(b->data + b->len, v);
    b->len += 4;
}

void dk_buf_u64(dk_buf *b, uint64_t v)
{
    if (!buf_grow(b, 8)) return;
    dk_wr64le(b->data + b->len, v);
    b->len += 8;
}

void dk_buf_uleb(dk_buf *b, uint64_t v)
{
    if (!buf_grow(b, 10)) return;
    uint8_t *p = b->data + b->len;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        if (v) byte |= 0x80;
        *p++ = byte;
    } while (v);
    b->len = (size_t)(p - b->data);
}

void dk_buf_sleb(dk_buf *b, int64_t v)
{
    if (!buf_grow(b, 10)) return;
    uint8_t *p = b->data + b->len;
    for (;;) {
        uint8_t byte = (uint8_t)(v & 0x7f);
        /* arithmetic shift of a negative value, spelled portably */
        v = v < 0 ? ~(~v >> 7) : v >> 7;
        bool done = (v == 0 && !(byte & 0x40)) || (v == -1 && (byte & 0x40));
        if (!done) byte |= 0x80;
        *p++ = byte;
        if (done) break;
    }
    b->len = (size_t)(p - b->data);
}

void dk_buf_cstr(dk_buf *b, const char *s) { dk_buf_bytes(b, s, strlen(s) + 1); }

void dk_buf_align(dk_buf *b, size_t align)
{
    size_t r = b->len & (align - 1);
    if (r) dk_buf_zeros(b, align - r);
}

size_t dk_buf_reserve(dk_buf *b, size_t n)
{
    size_t at = b->len;
    dk_buf_zeros(b, n);
    return at;
}

void dk_buf_free(dk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}
