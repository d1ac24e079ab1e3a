/* Deduplicating string pool (open addressing, FNV-1a). */
#include "strpool.h"

struct dk_strslot {
    uint64_t hash;
    uint32_t offset;
    uint32_t len;
    bool used;
};

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static bool grow(dk_strpool *p)
{
    size_t cap = p->cap ? p->cap * 2 : 1024;
    struct dk_strslot *t = calloc(cap, sizeof *t);
    if (!t) return false;
    for (size_t i = 0; i < p->cap; i++) {
        if (!p->table[i].used) continue;
        size_t h = p->table[i].hash & (cap - 1);
        while (t[h].used) h = (h + 1) & (cap - 1);
        t[h] = p->table[i];
    }
    free(p->table);
    p->table = t;
    p->cap = cap;
    return true;
}

uint32_t dk_strpool_add(dk_strpool *p, const char *s, size_t n)
{
    if ((p->count + 1) * 2 > p->cap && !grow(p)) return UINT32_MAX;
    uint64_t hv = fnv(s, n);
    size_t h = hv & (p->cap - 1);
    while (p->table[h].used) {
        struct dk_strslot *e = &p->table[h];
        if (e->hash == hv && e->len == n && memcmp(p->buf.data + e->offset, s, n) == 0) return e->offset;
        h = (h + 1) & (p->cap - 1);
    }
    if (p->buf.len + n + 1 > UINT32_MAX) return UINT32_MAX;
    uint32_t off = (uint32_t)p->buf.len;
    dk_buf_bytes(&p->buf, s, n);
    dk_buf_u8(&p->buf, 0);
    if (p->buf.oom) return UINT32_MAX;
    p->table[h].used = true;
    p->table[h].hash = hv;
    p->table[h].offset = off;
    p->table[h].len = (uint32_t)n;
    p->count++;
    return off;
}

void dk_strpool_free(dk_strpool *p)
{
    dk_buf_free(&p->buf);
    free(p->table);
    p->table = NULL;
    p->cap = p->count = 0;
}
