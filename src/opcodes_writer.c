/*
 * Rebase, bind, weak-bind and lazy-bind opcode streams (LC_DYLD_INFO), the
 * inverse of src/dyldinfo.c.  Opcodes and their operands: <mach-o/loader.h>.
 *
 * The streams come out as ld64's RebaseInfoAtom / BindingInfoAtom /
 * WeakBindingInfoAtom / LazyBindingInfoAtom (src/ld/LinkEdit.hpp) write them.
 * ld64 first emits one "set what changed, move, do one" group per location
 * and then folds the list in passes; the same folds are made here in one
 * streaming pass, looking one location ahead:
 *   rebase: contiguous pointers            -> DO_REBASE_ULEB_TIMES(n)
 *           a single pointer, then a skip  -> DO_REBASE_ADD_ADDR_ULEB(skip)
 *           3+ of those with the same skip -> DO_REBASE_ULEB_TIMES_SKIPPING_ULEB
 *           small counts / aligned skips   -> the _IMM_ forms
 *   bind:   a bind, then a skip            -> DO_BIND_ADD_ADDR_ULEB(skip)
 *           2+ of those with the same skip -> DO_BIND_ULEB_TIMES_SKIPPING_ULEB
 *           an aligned skip < 15 pointers  -> DO_BIND_ADD_ADDR_IMM_SCALED
 *           ordinals 1-15                  -> SET_DYLIB_ORDINAL_IMM
 * One difference: ld64 moves backwards (a new type or symbol starting below
 * the last location) with a wrapped 10-byte ADD_ADDR_ULEB; here a move
 * backwards re-sets the segment and offset, which is shorter and never leaves
 * an intermediate address outside every section.  Every address a skip
 * advances to is the next location, so llvm-objdump's eager check of the
 * address after DO_BIND_ADD_ADDR_* always passes.  In the weak-bind stream the
 * first bind after a non-weak definition re-sets its segment and offset (see
 * encode_binds).
 *
 * Input arrays are sorted in place; nothing is allocated.  An empty set writes
 * nothing (as ld64: the load command's size stays 0).
 */
#include "writer.h"

#include "macho_defs.h"

#define SEG_NONE UINT32_MAX

static uint8_t norm_type(uint8_t t) { return t ? t : 1; } /* 0 reads as a pointer, as in the decoder */

static dk_status check_ptrsize(unsigned ptrsize, const char *what, dk_error *err)
{
    if (ptrsize != 4 && ptrsize != 8) return dk_fail(err, DK_E_ARG, "%s opcodes: pointer size %u is not 4 or 8", what, ptrsize);
    return DK_OK;
}

/* Roll OUT back to START on failure so no partial stream is left behind. */
static dk_status finish(dk_buf *out, size_t start, dk_status st, const char *what, dk_error *err)
{
    if (!st && out->oom) st = dk_fail(err, DK_E_NOMEM, "%s opcodes: out of memory", what);
    if (st && out->len > start) out->len = start;
    return st;
}

/* ------------------------------------------------------------------ rebase */

static int cmp_rebase(const void *a, const void *b)
{
    const dk_rebase_loc *x = a, *y = b;
    uint8_t tx = norm_type(x->type), ty = norm_type(y->type);
    if (tx != ty) return tx < ty ? -1 : 1;
    if (x->seg != y->seg) return x->seg < y->seg ? -1 : 1;
    if (x->segoff != y->segoff) return x->segoff < y->segoff ? -1 : 1;
    return 0;
}

/* How the stream moves from the state (SEG, CUR) to the location (S, OFF). */
typedef enum { MOVE_NONE, MOVE_ADD, MOVE_SET } move_kind;

static move_kind move_to(uint32_t seg, uint64_t cur, uint32_t s, uint64_t off)
{
    if (seg != s || off < cur) return MOVE_SET;
    return off > cur ? MOVE_ADD : MOVE_NONE;
}

typedef struct run {
    uint64_t skip;
    uint64_t count; /* pending DO_*_ADD_ADDR(skip) operations */
} run;

static void flush_rebase_run(dk_buf *out, run *r)
{
    if (r->count >= 3) {
        dk_buf_u8(out, REBASE_OPCODE_DO_REBASE_ULEB_TIMES_SKIPPING_ULEB);
        dk_buf_uleb(out, r->count);
        dk_buf_uleb(out, r->skip);
    } else {
        for (uint64_t k = 0; k < r->count; k++) {
            dk_buf_u8(out, REBASE_OPCODE_DO_REBASE_ADD_ADDR_ULEB);
            dk_buf_uleb(out, r->skip);
        }
    }
    r->count = 0;
}

dk_status dk_rebase_encode(dk_rebase_loc *locs, size_t n, unsigned ptrsize, dk_buf *out, dk_error *err)
{
    size_t start = out->len;
    dk_status st = check_ptrsize(ptrsize, "rebase", err);
    if (st) return st;
    if (out->oom) return dk_fail(err, DK_E_NOMEM, "rebase opcodes: output buffer already out of memory");
    for (size_t i = 0; i < n; i++) {
        if (locs[i].seg > 15)
            return dk_fail(err, DK_E_ARG, "rebase opcodes: location %zu is in segment %u; SET_SEGMENT_AND_OFFSET_ULEB reaches 15", i,
                           locs[i].seg);
        if (norm_type(locs[i].type) > REBASE_TYPE_TEXT_PCREL32)
            return dk_fail(err, DK_E_ARG, "rebase opcodes: location %zu has unknown type %u", i, locs[i].type);
    }
    if (n == 0) return DK_OK;
    qsort(locs, n, sizeof *locs, cmp_rebase);

    uint8_t type = 0;              /* as dyld starts: no type, so the first group sets one */
    uint32_t seg = SEG_NONE;
    uint64_t cur = 0;              /* segment offset the next DO_REBASE would use */
    bool absorbed = false;         /* this group's ADD_ADDR was folded into the previous DO_REBASE_ADD_ADDR */
    run pending = {0, 0};
    for (size_t i = 0; i < n && !out->oom;) {
        /* a group: contiguous pointers of one type */
        uint8_t gtype = norm_type(locs[i].type);
        size_t j = i + 1;
        while (j < n && norm_type(locs[j].type) == gtype && locs[j].seg == locs[i].seg &&
               locs[j].segoff == locs[j - 1].segoff + ptrsize)
            j++;
        move_kind mv = move_to(seg, cur, locs[i].seg, locs[i].segoff);
        bool set_type = gtype != type;
        if (set_type || mv == MOVE_SET || (mv == MOVE_ADD && !absorbed)) flush_rebase_run(out, &pending);
        if (set_type) dk_buf_u8(out, (uint8_t)(REBASE_OPCODE_SET_TYPE_IMM | gtype));
        if (mv == MOVE_SET) {
            dk_buf_u8(out, (uint8_t)(REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB | locs[i].seg));
            dk_buf_uleb(out, locs[i].segoff);
        } else if (mv == MOVE_ADD && !absorbed) {
            uint64_t d = locs[i].segoff - cur;
            if (d < 15u * ptrsize && d % ptrsize == 0) {
                dk_buf_u8(out, (uint8_t)(REBASE_OPCODE_ADD_ADDR_IMM_SCALED | (d / ptrsize)));
            } else {
                dk_buf_u8(out, REBASE_OPCODE_ADD_ADDR_ULEB);
                dk_buf_uleb(out, d);
            }
        }
        type = gtype;
        seg = locs[i].seg;
        cur = locs[j - 1].segoff + ptrsize;
        uint64_t count = j - i;
        absorbed = false;
        if (count == 1 && j < n && norm_type(locs[j].type) == type && move_to(seg, cur, locs[j].seg, locs[j].segoff) == MOVE_ADD) {
            uint64_t d = locs[j].segoff - cur;
            if (pending.count && pending.skip != d) flush_rebase_run(out, &pending);
            pending.skip = d;
            pending.count++;
            absorbed = true;
        } else {
            flush_rebase_run(out, &pending);
            if (count < 15) {
                dk_buf_u8(out, (uint8_t)(REBASE_OPCODE_DO_REBASE_IMM_TIMES | count));
            } else {
                dk_buf_u8(out, REBASE_OPCODE_DO_REBASE_ULEB_TIMES);
                dk_buf_uleb(out, count);
            }
        }
        i = j;
    }
    flush_rebase_run(out, &pending);
    dk_buf_u8(out, REBASE_OPCODE_DONE);
    return finish(out, start, DK_OK, "rebase", err);
}

/* ------------------------------------------------------------------- binds */

static int cmp_str(const char *a, const char *b) { return strcmp(a, b); }

static int cmp_location(const dk_bind_rec *x, const dk_bind_rec *y)
{
    uint8_t tx = norm_type(x->type), ty = norm_type(y->type);
    if (tx != ty) return tx < ty ? -1 : 1;
    if (x->seg != y->seg) return x->seg < y->seg ? -1 : 1;
    if (x->segoff != y->segoff) return x->segoff < y->segoff ? -1 : 1;
    if (x->addend != y->addend) return x->addend < y->addend ? -1 : 1;
    return 0;
}

/* ld64's order: library, symbol, type, address (flags keep one SET_SYMBOL per symbol and flags). */
static int cmp_bind(const void *a, const void *b)
{
    const dk_bind_rec *x = a, *y = b;
    if (x->ordinal != y->ordinal) return x->ordinal < y->ordinal ? -1 : 1;
    int c = cmp_str(x->symbol, y->symbol);
    if (c) return c;
    if (x->flags != y->flags) return x->flags < y->flags ? -1 : 1;
    return cmp_location(x, y);
}

static bool is_strong(const dk_bind_rec *r) { return r->seg == SEG_NONE; }

/* ld64's weak order: symbol, then the non-weak definition (no location) first, type, address. */
static int cmp_weak(const void *a, const void *b)
{
    const dk_bind_rec *x = a, *y = b;
    int c = cmp_str(x->symbol, y->symbol);
    if (c) return c;
    if (is_strong(x) != is_strong(y)) return is_strong(x) ? -1 : 1;
    if (x->flags != y->flags) return x->flags < y->flags ? -1 : 1;
    return cmp_location(x, y);
}

typedef enum { STREAM_BIND, STREAM_WEAK, STREAM_LAZY } stream_kind;

static const char *stream_name(stream_kind k) { return k == STREAM_BIND ? "bind" : k == STREAM_WEAK ? "weak_bind" : "lazy_bind"; }

static dk_status check_bind(const dk_bind_rec *r, size_t i, stream_kind k, dk_error *err)
{
    const char *sn = stream_name(k);
    if (!r->symbol) return dk_fail(err, DK_E_ARG, "%s opcodes: record %zu has no symbol", sn, i);
    if (r->flags > 0xf)
        return dk_fail(err, DK_E_ARG, "%s opcodes: %s: flags 0x%x do not fit SET_SYMBOL_TRAILING_FLAGS_IMM", sn, r->symbol, r->flags);
    if (k == STREAM_WEAK && is_strong(r)) return DK_OK;
    if (k == STREAM_WEAK && (r->flags & BIND_SYMBOL_FLAGS_NON_WEAK_DEFINITION))
        return dk_fail(err, DK_E_ARG, "weak_bind opcodes: %s: a NON_WEAK_DEFINITION record has no location (seg must be UINT32_MAX)",
                       r->symbol);
    if (r->seg > 15)
        return dk_fail(err, DK_E_ARG, "%s opcodes: %s is bound in segment %u; SET_SEGMENT_AND_OFFSET_ULEB reaches 15", sn, r->symbol,
                       r->seg);
    if (norm_type(r->type) > BIND_TYPE_TEXT_PCREL32)
        return dk_fail(err, DK_E_ARG, "%s opcodes: %s has unknown bind type %u", sn, r->symbol, r->type);
    /* -3 (BIND_SPECIAL_DYLIB_WEAK_LOOKUP) is accepted, as dyld's BindOpcodes::valid does (a chained
     * import may carry it), though ld64 never writes it here and llvm-objdump-22 rejects it */
    if (k != STREAM_WEAK && r->ordinal < BIND_SPECIAL_DYLIB_WEAK_LOOKUP)
        return dk_fail(err, DK_E_ARG, "%s opcodes: %s has library ordinal %d; the specials stop at -3", sn, r->symbol, r->ordinal);
    return DK_OK;
}

static void put_ordinal(dk_buf *out, int ordinal)
{
    if (ordinal <= 0) {
        dk_buf_u8(out, (uint8_t)(BIND_OPCODE_SET_DYLIB_SPECIAL_IMM | ((unsigned)ordinal & BIND_IMMEDIATE_MASK)));
    } else if (ordinal <= 15) {
        dk_buf_u8(out, (uint8_t)(BIND_OPCODE_SET_DYLIB_ORDINAL_IMM | ordinal));
    } else {
        dk_buf_u8(out, BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB);
        dk_buf_uleb(out, (uint64_t)ordinal);
    }
}

static void put_symbol(dk_buf *out, const dk_bind_rec *r, uint8_t flags)
{
    dk_buf_u8(out, (uint8_t)(BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM | flags));
    dk_buf_cstr(out, r->symbol);
}

/* The interpreter's state between binds. */
typedef struct bind_state {
    bool has_ordinal, has_symbol;
    int ordinal;
    const char *symbol;
    uint8_t flags, type;
    uint32_t seg;
    uint64_t cur; /* segment offset the next DO_BIND would use */
    int64_t addend;
} bind_state;

/* What record R needs emitted before its DO_BIND, given state S. */
typedef struct bind_prefix {
    bool ordinal, symbol, type, addend;
    move_kind move;
} bind_prefix;

static bind_prefix prefix_of(const bind_state *s, const dk_bind_rec *r, stream_kind k)
{
    bind_prefix p;
    p.ordinal = k == STREAM_BIND && (!s->has_ordinal || s->ordinal != r->ordinal);
    p.symbol = !s->has_symbol || s->flags != r->flags || strcmp(s->symbol, r->symbol) != 0;
    p.type = s->type != norm_type(r->type);
    p.move = move_to(s->seg, s->cur, r->seg, r->segoff);
    p.addend = s->addend != r->addend;
    return p;
}

static void flush_bind_run(dk_buf *out, run *r, unsigned ptrsize)
{
    if (r->count >= 2) {
        dk_buf_u8(out, BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB);
        dk_buf_uleb(out, r->count);
        dk_buf_uleb(out, r->skip);
    } else if (r->count == 1) {
        if (r->skip < 15u * ptrsize && r->skip % ptrsize == 0) {
            dk_buf_u8(out, (uint8_t)(BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED | (r->skip / ptrsize)));
        } else {
            dk_buf_u8(out, BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB);
            dk_buf_uleb(out, r->skip);
        }
    }
    r->count = 0;
}

/* Bind and weak-bind streams: RECS sorted, each a location or (weak) a non-weak definition. */
static void encode_binds(const dk_bind_rec *recs, size_t n, unsigned ptrsize, stream_kind k, dk_buf *out)
{
    bind_state s;
    memset(&s, 0, sizeof s);
    s.seg = SEG_NONE;
    bool absorbed = false;
    run pending = {0, 0};
    for (size_t i = 0; i < n && !out->oom; i++) {
        const dk_bind_rec *r = &recs[i];
        if (k == STREAM_WEAK && is_strong(r)) {
            /* a non-weak definition: only SET_SYMBOL_TRAILING_FLAGS_IMM with NON_WEAK_DEFINITION */
            flush_bind_run(out, &pending, ptrsize);
            uint8_t flags = (uint8_t)(r->flags | BIND_SYMBOL_FLAGS_NON_WEAK_DEFINITION);
            put_symbol(out, r, flags);
            s.has_symbol = true;
            s.symbol = r->symbol;
            s.flags = flags;
            /* the next bind re-sets its segment and offset: llvm-objdump applies the previous bind's
             * pointer advance a second time after a non-weak definition, so a relative move here
             * would land a pointer off for it (dyld is unaffected) */
            s.seg = SEG_NONE;
            absorbed = false;
            continue;
        }
        bind_prefix p = prefix_of(&s, r, k);
        if (p.ordinal || p.symbol || p.type || p.addend || p.move == MOVE_SET || (p.move == MOVE_ADD && !absorbed))
            flush_bind_run(out, &pending, ptrsize);
        if (p.ordinal) put_ordinal(out, r->ordinal);
        if (p.symbol) put_symbol(out, r, r->flags);
        if (p.type) dk_buf_u8(out, (uint8_t)(BIND_OPCODE_SET_TYPE_IMM | norm_type(r->type)));
        if (p.move == MOVE_SET) {
            dk_buf_u8(out, (uint8_t)(BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB | r->seg));
            dk_buf_uleb(out, r->segoff);
        } else if (p.move == MOVE_ADD && !absorbed) {
            /* only reached after a type, symbol or ordinal change: ld64 keeps the plain ADD there too */
            dk_buf_u8(out, BIND_OPCODE_ADD_ADDR_ULEB);
            dk_buf_uleb(out, r->segoff - s.cur);
        }
        if (p.addend) {
            dk_buf_u8(out, BIND_OPCODE_SET_ADDEND_SLEB);
            dk_buf_sleb(out, r->addend);
        }
        s.has_ordinal = true;
        s.ordinal = r->ordinal;
        s.has_symbol = true;
        s.symbol = r->symbol;
        s.flags = r->flags;
        s.type = norm_type(r->type);
        s.seg = r->seg;
        s.cur = r->segoff + ptrsize;
        s.addend = r->addend;
        /* fold the next record's move into this bind when nothing else comes between them */
        absorbed = false;
        if (i + 1 < n && !(k == STREAM_WEAK && is_strong(&recs[i + 1]))) {
            bind_prefix q = prefix_of(&s, &recs[i + 1], k);
            if (!q.ordinal && !q.symbol && !q.type && q.move == MOVE_ADD) {
                uint64_t d = recs[i + 1].segoff - s.cur;
                if (pending.count && pending.skip != d) flush_bind_run(out, &pending, ptrsize);
                pending.skip = d;
                pending.count++;
                absorbed = true;
                continue;
            }
        }
        flush_bind_run(out, &pending, ptrsize);
        dk_buf_u8(out, BIND_OPCODE_DO_BIND);
    }
    flush_bind_run(out, &pending, ptrsize);
    dk_buf_u8(out, BIND_OPCODE_DONE);
}

static dk_status bind_stream(dk_bind_rec *binds, size_t n, unsigned ptrsize, stream_kind k, dk_buf *out, dk_error *err)
{
    size_t start = out->len;
    const char *sn = stream_name(k);
    dk_status st = check_ptrsize(ptrsize, sn, err);
    if (st) return st;
    if (out->oom) return dk_fail(err, DK_E_NOMEM, "%s opcodes: output buffer already out of memory", sn);
    for (size_t i = 0; i < n; i++)
        if ((st = check_bind(&binds[i], i, k, err))) return st;
    if (n == 0) return DK_OK;
    qsort(binds, n, sizeof *binds, k == STREAM_WEAK ? cmp_weak : cmp_bind);
    encode_binds(binds, n, ptrsize, k, out);
    return finish(out, start, DK_OK, sn, err);
}

dk_status dk_bind_encode(dk_bind_rec *binds, size_t n, unsigned ptrsize, dk_buf *out, dk_error *err)
{
    return bind_stream(binds, n, ptrsize, STREAM_BIND, out, err);
}

dk_status dk_weak_bind_encode(dk_bind_rec *binds, size_t n, unsigned ptrsize, dk_buf *out, dk_error *err)
{
    return bind_stream(binds, n, ptrsize, STREAM_WEAK, out, err);
}

dk_status dk_lazy_bind_encode(const dk_bind_rec *binds, size_t n, unsigned ptrsize, dk_buf *out, uint32_t *offsets,
                              dk_error *err)
{
    size_t start = out->len;
    dk_status st = check_ptrsize(ptrsize, "lazy_bind", err);
    if (st) return st;
    if (out->oom) return dk_fail(err, DK_E_NOMEM, "lazy_bind opcodes: output buffer already out of memory");
    for (size_t i = 0; i < n; i++)
        if ((st = check_bind(&binds[i], i, STREAM_LAZY, err))) return st;
    /* each record stands alone (dyld starts every lazy bind from a fresh state), as ld64 writes it */
    for (size_t i = 0; i < n && !out->oom; i++) {
        const dk_bind_rec *r = &binds[i];
        size_t at = out->len - start;
        if (at > UINT32_MAX) {
            st = dk_fail(err, DK_E_LIMIT, "lazy_bind opcodes: record %zu starts past 4GB", i);
            break;
        }
        if (offsets) offsets[i] = (uint32_t)at;
        dk_buf_u8(out, (uint8_t)(BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB | r->seg));
        dk_buf_uleb(out, r->segoff);
        put_ordinal(out, r->ordinal);
        put_symbol(out, r, r->flags);
        if (norm_type(r->type) != BIND_TYPE_POINTER) dk_buf_u8(out, (uint8_t)(BIND_OPCODE_SET_TYPE_IMM | r->type));
        if (r->addend) {
            dk_buf_u8(out, BIND_OPCODE_SET_ADDEND_SLEB);
            dk_buf_sleb(out, r->addend);
        }
        dk_buf_u8(out, BIND_OPCODE_DO_BIND);
        dk_buf_u8(out, BIND_OPCODE_DONE);
    }
    return finish(out, start, st, "lazy_bind", err);
}
