/*
 * Extractor, code: stubs, call sites and lazy binding as the linker made them.
 *  - every S_SYMBOL_STUBS entry loads from its own pointer slot again (the
 *    builder may have turned it into a direct ADRP/ADD/BR): arm64 adrp/ldr/br,
 *    arm64e adrp/add/ldr/braa, arm64_32 adrp/ldr w16/br;
 *  - arm64 calls the builder pointed straight at another image (directly or
 *    through branch islands and other images' stubs) go to this image's stub
 *    for that target again;
 *  - arm64 GOT loads (ADRP/LDR) the builder aimed at a cache-wide uniqued GOT
 *    slot load from the image's own slot for that target again, and that
 *    slot is bound;
 *  - classic lazy pointers get their initial value back (the __stub_helper
 *    entry, in slot order, as ld64 lays them out) and become lazy binds; the
 *    helpers' pushed offsets are set when the lazy-bind stream is written.
 */
#include "arm64.h"
#include "extract_internal.h"

typedef struct slot_rec {
    const char *symbol;
    uint64_t addr;
    uint32_t type;   /* S_LAZY_SYMBOL_POINTERS / S_NON_LAZY_SYMBOL_POINTERS */
    bool auth;       /* in __auth_got */
} slot_rec;

typedef struct target_rec {
    uint64_t target; /* where the stub's slot points in the cache */
    uint64_t stub;
} target_rec;

static int target_cmp(const void *a, const void *b)
{
    const target_rec *x = a, *y = b;
    return x->target < y->target ? -1 : x->target > y->target;
}

typedef struct stub_ctx {
    xstate *s;
    dk_vec slots;    /* slot_rec, sorted by address */
    dk_vec by_name;  /* const slot_rec *, the named ones sorted by name */
    dk_vec targets;  /* target_rec */
    dk_status st;
} stub_ctx;

/* The slot named SYMBOL (by_name: named slots sorted by name), preferring the
   stub's kind of GOT (auth or not), then a lazy pointer. */
static const slot_rec *slot_for(stub_ctx *c, const char *symbol, bool want_auth)
{
    const slot_rec *const *v = c->by_name.data;
    size_t lo = 0, hi = c->by_name.len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid]->symbol, symbol) < 0) lo = mid + 1;
        else hi = mid;
    }
    const slot_rec *best = NULL;
    int bscore = -1;
    for (; lo < c->by_name.len && strcmp(v[lo]->symbol, symbol) == 0; lo++) {
        int score = (v[lo]->auth == want_auth ? 2 : 0) + (v[lo]->type == S_LAZY_SYMBOL_POINTERS ? 1 : 0);
        if (score > bscore) best = v[lo], bscore = score;
    }
    return best;
}

/* slots are sorted by address */
static const slot_rec *slot_at(stub_ctx *c, uint64_t addr)
{
    slot_rec *v = c->slots.data;
    size_t lo = 0, hi = c->slots.len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].addr < addr) lo = mid + 1;
        else hi = mid;
    }
    return lo < c->slots.len && v[lo].addr == addr ? &v[lo] : NULL;
}

static int slot_addr_cmp(const void *a, const void *b)
{
    const slot_rec *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int slot_name_cmp(const void *a, const void *b)
{
    const slot_rec *x = *(const slot_rec *const *)a, *y = *(const slot_rec *const *)b;
    return strcmp(x->symbol, y->symbol);
}

/* Where the cache's copy of pointer slot ADDR points (0 if unknown). */
static uint64_t cache_target(xstate *s, uint64_t addr)
{
    dk_slide_pointer p;
    bool rebased;
    if (dk_cache_read_pointer(s->c, addr, &p, &rebased, NULL) != DK_OK) return 0;
    return (p.auth ? p.target : p.target & 0x00FFFFFFFFFFFFFFull);
}

static int on_stub(void *ctx, const dk_stub *st)
{
    stub_ctx *c = ctx;
    xstate *s = c->s;
    if (st->kind == DK_STUB_OBJC_MSGSEND) return 0;
    bool auth = st->size >= 16 || st->kind == DK_STUB_ARM64E;
    /* a stub that still loads one of this image's slots is intact: keep it (old caches
       zeroed the indirect symbol table, so its name cannot be trusted over its code);
       one the builder bypassed finds its slot again by name */
    uint64_t slot = 0;
    if (st->has_slot && slot_at(c, st->slot)) slot = st->slot;
    else if (st->symbol) {
        const slot_rec *sr = slot_for(c, st->symbol, auth);
        slot = sr ? sr->addr : st->has_slot ? st->slot : 0;
    }
    if (!slot) return 0;
    if (s->arm64) {
        uint8_t *p = x_at(s, st->address, st->size);
        if (!p) return 0;
        uint32_t off = (uint32_t)(slot & 0xFFF);
        uint32_t want[4];
        unsigned n;
        if (st->size >= 16 && s->arm64e) {
            want[0] = a64_enc_adrp(17, st->address, slot);
            want[1] = a64_enc_add_imm(17, 17, off);
            want[2] = a64_enc_ldr_x(16, 17, 0);
            want[3] = a64_enc_braa(16, 17);
            n = 4;
        } else if (!s->is64) {
            want[0] = a64_enc_adrp(16, st->address, slot);
            want[1] = 0xB9400000u | (((off / 4) & 0xFFF) << 10) | (16u << 5) | 16u; /* ldr w16, [x16, #off] */
            want[2] = a64_enc_br(16);
            n = 3;
        } else {
            want[0] = a64_enc_adrp(16, st->address, slot);
            want[1] = a64_enc_ldr_x(16, 16, off);
            want[2] = a64_enc_br(16);
            n = 3;
        }
        bool same = true;
        for (unsigned k = 0; k < n; k++) same &= dk_le32(p + 4 * k) == want[k];
        if (!same) {
            for (unsigned k = 0; k < n; k++) dk_wr32le(p + 4 * k, want[k]);
            s->st->stubs_restored++;
        }
    }
    /* remember what the stub stands for, to bring call sites back to it */
    uint64_t t = cache_target(s, slot);
    if (st->kind == DK_STUB_ARM64_DIRECT || st->kind == DK_STUB_ARM64_BRANCH) t = st->target;
    if (t) {
        target_rec *r = dk_vec_push(&c->targets, sizeof *r);
        if (!r) {
            c->st = dk_fail(s->err, DK_E_NOMEM, "out of memory");
            return 1;
        }
        r->target = t;
        r->stub = st->address;
        if (st->has_slot && st->slot != slot) {
            /* a stub aimed at another image's (uniqued) slot: that slot's target too */
            uint64_t t2 = cache_target(s, st->slot);
            if (t2 && t2 != t && (r = dk_vec_push(&c->targets, sizeof *r))) {
                r->target = t2;
                r->stub = st->address;
            }
        }
    }
    return 0;
}

/* Follow branch islands, stubs and GOT loads in the cache to the final target. */
static uint64_t follow(xstate *s, uint64_t t)
{
    for (int hop = 0; hop < 6; hop++) {
        const uint8_t *p = dk_cache_read(s->c, t, 16, NULL);
        if (!p) return t;
        uint32_t i0 = dk_le32(p), i1 = dk_le32(p + 4), i2 = dk_le32(p + 8);
        bool link;
        uint64_t x, page;
        unsigned rd, rt, rn, sz, rm;
        uint32_t off;
        if (a64_b(i0, t, &link, &x) && !link) {
            t = x;
            continue;
        }
        if (!a64_adrp(i0, t, &rd, &page)) return t;
        if (a64_add_imm(i1, &rt, &rn, &off) && rn == rd && a64_br(i2, &rm) && rm == rt) {
            t = page + off;
            continue;
        }
        if (a64_ldr_uimm(i1, &rt, &rn, &off, &sz) && rn == rd && a64_br(i2, &rm) && rm == rt) {
            uint64_t v = cache_target(s, page + off);
            if (!v) return t;
            t = v;
            continue;
        }
        unsigned lt, ln, lsz;
        uint32_t loff;
        if (a64_add_imm(i1, &rt, &rn, &off) && rn == rd && a64_ldr_uimm(i2, &lt, &ln, &loff, &lsz) && ln == rt && loff == 0) {
            uint64_t v = cache_target(s, page + off); /* arm64e: adrp/add/ldr/braa */
            if (!v) return t;
            t = v;
            continue;
        }
        return t;
    }
    return t;
}

static void restore_calls(stub_ctx *c)
{
    xstate *s = c->s;
    target_rec *tr = c->targets.data;
    size_t nt = c->targets.len;
    if (!nt) return;
    qsort(tr, nt, sizeof *tr, target_cmp);
    size_t nsect;
    const dk_section *secs = dk_macho_sections(s->m, &nsect);
    for (size_t si = 0; si < nsect; si++) {
        const dk_section *sec = &secs[si];
        if (!(sec->flags & 0x80000000u) || (sec->flags & SECTION_TYPE) == S_SYMBOL_STUBS) continue;
        uint8_t *p = x_at(s, sec->addr, sec->size);
        if (!p) continue;
        for (uint64_t off = 0; off + 4 <= sec->size; off += 4) {
            uint32_t insn = dk_le32(p + off);
            bool link;
            uint64_t t, pc = sec->addr + off;
            if (!a64_b(insn, pc, &link, &t) || x_in_image(s, t)) continue;
            uint64_t f = follow(s, t);
            target_rec key = {f, 0};
            target_rec *hit = bsearch(&key, tr, nt, sizeof key, target_cmp);
            if (!hit) {
                key.target = t;
                hit = bsearch(&key, tr, nt, sizeof key, target_cmp);
            }
            if (!hit || !a64_b_in_range(pc, hit->stub)) continue;
            dk_wr32le(p + off, a64_enc_b(link, pc, hit->stub));
            s->st->calls_restored++;
        }
    }
}

/* An own non-lazy slot that holds T (auth or not) in the cache; TARGETS holds
   {value, slot} of every own slot, sorted by value. */
static uint64_t own_slot_holding(const dk_vec *targets, uint64_t t)
{
    const target_rec *v = targets->data;
    size_t lo = 0, hi = targets->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].target < t) lo = mid + 1;
        else hi = mid;
    }
    return lo < targets->len && v[lo].target == t ? v[lo].stub : 0;
}

/*
 * The own slot for SHARED, a slot outside the image that code loads: the one
 * holding the same value (HELD: {value, slot} of every own non-lazy slot,
 * sorted by value), else the one named like SHARED's target; a slot the cache
 * left unbound gets its bind.  0 when SHARED is no pointer or no slot fits.
 */
static uint64_t own_slot_for(stub_ctx *c, const dk_vec *held, uint64_t shared, dk_status *st)
{
    xstate *s = c->s;
    dk_slide_pointer ptr;
    bool rebased;
    if (dk_cache_read_pointer(s->c, shared, &ptr, &rebased, NULL) != DK_OK || !rebased) return 0;
    uint64_t t = ptr.auth ? ptr.target : ptr.target & 0x00FFFFFFFFFFFFFFull;
    uint64_t own = own_slot_holding(held, t);
    const xuse *u = x_find_use(s, shared);
    const char *name = u ? u->name : NULL;
    int64_t addend = u ? (int64_t)u->addend : 0;
    size_t image = u ? u->image : 0;
    dk_cache_location loc;
    if (!name && dk_cache_lookup(s->c, t, &loc, NULL) == DK_OK && loc.image >= 0) {
        image = (size_t)loc.image;
        if (!x_name_address(s, image, t, &name, &addend)) name = NULL;
    }
    if (!own && name) {
        const slot_rec *sr = slot_for(c, name, ptr.auth);
        if (sr && sr->type == S_NON_LAZY_SYMBOL_POINTERS) own = sr->addr;
    }
    if (!own) {
        s->st->got_loads_lost++;
        return 0;
    }
    if (!x_bind_at(s, own) && name) {
        /* the cache left the image's own slot unbound: bind it */
        xfix f;
        memset(&f, 0, sizeof f);
        f.addr = own;
        f.kind = XF_BIND;
        f.symbol = name;
        f.addend = addend;
        f.ordinal = image == s->index ? 0 : x_ordinal_for(s, image);
        f.auth = ptr.auth;
        f.key = ptr.key;
        f.diversity = ptr.diversity;
        f.addr_div = ptr.addr_div;
        uint8_t *q = x_at(s, own, s->ptr);
        if (q) memset(q, 0, s->ptr);
        s->st->binds++;
        if ((*st = x_add_fix(s, &f))) return 0;
        x_sort_fixes(s);
    }
    s->st->got_loads_restored++;
    return own;
}

/*
 * x86_64: the RIP-relative forms that load a GOT slot, which the builder
 * re-aims at shared slots: movq slot(%rip), %r64 (REX.W 8B, ModRM mod 00
 * r/m 101) and callq/jmpq *slot(%rip) (FF 15 / FF 25; stubs and -fno-plt
 * calls).  Without a disassembler every byte offset is tried, so a match
 * also needs its target to be a slid pointer outside the image that one of
 * the image's own slots stands for: an accidental byte pattern meeting all
 * of that is not a concern in practice.
 */
static dk_status restore_x86_got_loads(stub_ctx *c, const dk_vec *held)
{
    xstate *s = c->s;
    dk_status st = DK_OK;
    size_t nsect;
    const dk_section *secs = dk_macho_sections(s->m, &nsect);
    for (size_t si = 0; si < nsect && !st; si++) {
        const dk_section *sec = &secs[si];
        if (!(sec->flags & 0x80000000u)) continue;
        uint8_t *p = x_at(s, sec->addr, sec->size);
        if (!p) continue;
        for (uint64_t off = 0; off + 6 <= sec->size && !st; off++) {
            uint64_t len, dpos;
            if ((p[off] & 0xF8) == 0x48 && off + 7 <= sec->size && p[off + 1] == 0x8B && (p[off + 2] & 0xC7) == 0x05) {
                len = 7, dpos = 3; /* movq disp(%rip), %r64 */
            } else if (p[off] == 0xFF && (p[off + 1] == 0x15 || p[off + 1] == 0x25)) {
                len = 6, dpos = 2; /* callq / jmpq *disp(%rip) */
            } else {
                continue;
            }
            uint64_t next = sec->addr + off + len;
            uint64_t shared = next + (uint64_t)(int64_t)(int32_t)dk_le32(p + off + dpos);
            if (x_in_image(s, shared)) continue;
            uint64_t own = own_slot_for(c, held, shared, &st);
            if (!own) continue;
            int64_t nd = (int64_t)(own - next);
            if (nd < INT32_MIN || nd > INT32_MAX) {
                s->st->got_loads_restored--;
                s->st->got_loads_lost++;
                continue;
            }
            dk_wr32le(p + off + dpos, (uint32_t)(int32_t)nd);
            off += len - 1;
        }
    }
    return st;
}

/*
 * The builder coalesces GOT entries across images (dsc-format.md 5.2) and
 * re-aims each load of one (ADRP + LDR, ADRP + ADD + LDR, or the linker's
 * literal LDR) at the shared slot, outside the image: aim it at the image's
 * own slot for the same target again.
 */
static dk_status restore_got_loads(stub_ctx *c)
{
    xstate *s = c->s;
    dk_vec held = {0};
    const slot_rec *sv = c->slots.data;
    for (size_t i = 0; i < c->slots.len; i++) {
        if (sv[i].type != S_NON_LAZY_SYMBOL_POINTERS) continue;
        uint64_t t = cache_target(s, sv[i].addr);
        if (!t) continue;
        target_rec *r = dk_vec_push(&held, sizeof *r);
        if (!r) return dk_fail(s->err, DK_E_NOMEM, "out of memory");
        r->target = t;
        r->stub = sv[i].addr;
    }
    if (held.len) qsort(held.data, held.len, sizeof(target_rec), target_cmp);
    dk_status st = DK_OK;
    if (s->x86_64) {
        st = restore_x86_got_loads(c, &held);
        dk_vec_free(&held);
        return st;
    }
    size_t nsect;
    const dk_section *secs = dk_macho_sections(s->m, &nsect);
    for (size_t si = 0; si < nsect && !st; si++) {
        const dk_section *sec = &secs[si];
        if (!(sec->flags & 0x80000000u)) continue;
        uint8_t *p = x_at(s, sec->addr, sec->size);
        if (!p) continue;
        for (uint64_t off = 0; off + 4 <= sec->size && !st; off += 4) {
            uint64_t pc = sec->addr + off, shared, own;
            uint32_t insn = dk_le32(p + off);
            unsigned rd = 0, size = 0;
            bool gpr = false;
            if (a64_got_load(p + off, (size_t)((sec->size - off) / 4), pc, &shared)) {
                if (x_in_image(s, shared) || !(own = own_slot_for(c, &held, shared, &st))) continue;
                a64_adrp(insn, pc, &rd, &shared);
                dk_wr32le(p + off, a64_enc_adrp(rd, pc, own));
                dk_wr32le(p + off + 4, a64_got_load_reoffset(dk_le32(p + off + 4), own));
                off += 4;
                continue;
            }
            if (!a64_literal(insn, pc, &rd, &shared, &size, &gpr) || !gpr || size != 8 || x_in_image(s, shared)) continue;
            if (!(own = own_slot_for(c, &held, shared, &st))) continue;
            a64_retarget_kind k = a64_retarget_in(p, sec->size, off, pc, insn, own, false);
            if (k == A64_RT_NEXT) off += 4;
            if (k == A64_RT_NONE) {
                s->st->got_loads_restored--;
                s->st->got_loads_lost++;
            }
        }
    }
    dk_vec_free(&held);
    return st;
}

/* __stub_helper entries in order: x86 "push imm32; jmp", arm64 "ldr w16, lit; b; .long". */
static size_t helper_entries(xstate *s, uint64_t **out)
{
    *out = NULL;
    const dk_section *h = dk_macho_find_section(s->m, NULL, "__stub_helper");
    if (!h) return 0;
    const uint8_t *p = x_at(s, h->addr, h->size);
    if (!p) return 0;
    dk_vec v = {0};
    if (s->x86_64) {
        for (uint64_t off = 0; off + 10 <= h->size; off++) {
            if (p[off] != 0x68 || p[off + 5] != 0xE9) continue;
            /* the jmp goes back to the helper's header */
            int32_t rel = (int32_t)dk_le32(p + off + 6);
            uint64_t to = h->addr + off + 10 + (uint64_t)(int64_t)rel;
            if (to < h->addr || to >= h->addr + h->size) continue;
            uint64_t *e = dk_vec_push(&v, sizeof *e);
            if (!e) break;
            *e = h->addr + off;
            off += 9;
        }
    } else if (s->arm64) {
        for (uint64_t off = 0; off + 12 <= h->size; off += 4) {
            unsigned rt;
            uint64_t lit, to;
            bool link;
            if (!a64_ldr_w_literal(dk_le32(p + off), h->addr + off, &rt, &lit) || rt != 16 || lit != h->addr + off + 8) continue;
            if (!a64_b(dk_le32(p + off + 4), h->addr + off + 4, &link, &to) || link || to < h->addr || to >= h->addr + h->size) continue;
            uint64_t *e = dk_vec_push(&v, sizeof *e);
            if (!e) break;
            *e = h->addr + off;
            off += 8;
        }
    }
    *out = v.data;
    return v.len;
}

static bool binds_elsewhere(xstate *s, uint64_t addr)
{
    const xfix *b = x_bind_at(s, addr);
    return b && b->ordinal != -3;
}

static dk_status restore_lazy(stub_ctx *c)
{
    xstate *s = c->s;
    /* lazy slots that bind to another image, in address order (a slot for one of the
       image's own weak definitions starts out pointing at it and has no helper entry) */
    slot_rec *v = c->slots.data;
    dk_vec lazy = {0};
    for (size_t i = 0; i < c->slots.len; i++)
        if (v[i].type == S_LAZY_SYMBOL_POINTERS && binds_elsewhere(s, v[i].addr)) {
            uint64_t *e = dk_vec_push(&lazy, sizeof *e);
            if (!e) {
                dk_vec_free(&lazy);
                return dk_fail(s->err, DK_E_NOMEM, "out of memory");
            }
            *e = v[i].addr;
        }
    uint64_t *helpers;
    size_t nh = helper_entries(s, &helpers);
    uint64_t *ls = lazy.data;
    dk_status st = DK_OK;
    if (lazy.len && nh == lazy.len) {
        /* ld64 and lld lay the helper entries out in lazy-pointer order; each slot
           starts out pointing at its helper entry (rebases added after the lookups) */
        size_t nbefore = s->fixes.len;
        for (size_t i = 0; i < lazy.len && !st; i++) {
            xfix *b = x_bind_at(s, ls[i]);
            if (!b) continue;
            if (b->kind != XF_LAZY) {
                b->kind = XF_LAZY;
                s->st->lazy_binds++;
                if (s->st->binds) s->st->binds--;
            }
            b->helper = helpers[i];
            size_t nf;
            xfix *at = x_fixes_at(s, ls[i], &nf);
            bool rebased = false;
            for (size_t k = 0; k < nf; k++)
                if (at[k].kind == XF_REBASE) {
                    at[k].target = helpers[i]; /* already rebased: retarget */
                    rebased = true;
                }
            if (!rebased) {
                xfix r;
                memset(&r, 0, sizeof r);
                r.addr = ls[i];
                r.kind = XF_REBASE;
                r.target = helpers[i];
                st = x_add_fix(s, &r);
            }
            uint8_t *p = x_at(s, ls[i], s->ptr);
            if (p) {
                if (s->ptr == 8) dk_wr64le(p, helpers[i]);
                else dk_wr32le(p, (uint32_t)helpers[i]);
            }
            if (s->fixes.len != nbefore) { /* keep lookups valid */
                x_sort_fixes(s);
                nbefore = s->fixes.len;
            }
        }
    } else {
        /* no usable helpers: lazy pointers are bound at load time instead */
        xfix *fx = s->fixes.data;
        for (size_t k = 0; k < s->fixes.len; k++)
            if (fx[k].kind == XF_LAZY) fx[k].kind = XF_BIND;
    }
    free(helpers);
    dk_vec_free(&lazy);
    return st;
}

dk_status x_restore_stubs(xstate *s)
{
    stub_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    const dk_symbol *syms;
    size_t nsyms;
    const uint32_t *ind;
    size_t nind;
    dk_status st = dk_macho_symbols(s->m, &syms, &nsyms, s->err);
    if (!st) st = dk_macho_indirect_symbols(s->m, &ind, &nind, s->err);
    if (st) return st;
    size_t nsect;
    const dk_section *secs = dk_macho_sections(s->m, &nsect);
    for (size_t si = 0; si < nsect; si++) {
        uint32_t type = secs[si].flags & SECTION_TYPE;
        if (type != S_LAZY_SYMBOL_POINTERS && type != S_NON_LAZY_SYMBOL_POINTERS) continue;
        uint64_t n = secs[si].size / s->ptr;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t idx = (uint64_t)secs[si].reserved1 + i;
            slot_rec *r = dk_vec_push(&c.slots, sizeof *r);
            if (!r) {
                dk_vec_free(&c.slots);
                return dk_fail(s->err, DK_E_NOMEM, "out of memory");
            }
            r->addr = secs[si].addr + i * s->ptr;
            r->type = type;
            r->auth = strcmp(secs[si].sectname, "__auth_got") == 0 || strcmp(secs[si].segname, "__AUTH_CONST") == 0;
            r->symbol = NULL;
            if (idx < nind && !(ind[idx] & (INDIRECT_SYMBOL_LOCAL | INDIRECT_SYMBOL_ABS)) && ind[idx] < nsyms) r->symbol = syms[ind[idx]].name;
        }
    }
    /* a slot's bind names it better than the indirect table (zeroed by old builders) */
    x_sort_fixes(s);
    slot_rec *sv = c.slots.data;
    if (c.slots.len) qsort(sv, c.slots.len, sizeof *sv, slot_addr_cmp);
    for (size_t i = 0; i < c.slots.len; i++) {
        const xfix *b = x_bind_at(s, sv[i].addr);
        if (b && b->symbol) sv[i].symbol = b->symbol;
        if (!sv[i].symbol) continue;
        const slot_rec **e = dk_vec_push(&c.by_name, sizeof *e);
        if (!e) {
            dk_vec_free(&c.slots);
            dk_vec_free(&c.by_name);
            return dk_fail(s->err, DK_E_NOMEM, "out of memory");
        }
        *e = &sv[i];
    }
    if (c.by_name.len) qsort(c.by_name.data, c.by_name.len, sizeof(slot_rec *), slot_name_cmp);
    st = dk_macho_foreach_stub(s->m, on_stub, &c, s->err);
    if (c.st) st = c.st;
    if (st == DK_E_STOPPED) st = DK_OK;
    if (!st && s->arm64) restore_calls(&c);
    if (!st && (s->arm64 || s->x86_64)) st = restore_got_loads(&c);
    if (!st) st = restore_lazy(&c);
    dk_vec_free(&c.slots);
    dk_vec_free(&c.by_name);
    dk_vec_free(&c.targets);
    return st;
}
