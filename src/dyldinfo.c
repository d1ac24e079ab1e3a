/*
 * LC_DYLD_INFO(_ONLY) opcode streams: rebase, bind, weak bind, lazy bind,
 * including BIND_OPCODE_THREADED (arm64e threaded rebase/bind chains).
 * Opcode values and semantics: <mach-o/loader.h> (REBASE_OPCODE_*, BIND_OPCODE_*)
 * and dyld's interpreter.  One decoder turns bytes into dk_opcode records; the
 * raw listing prints them and the fixup walker interprets them.
 */
#include "macho_internal.h"

const char *dk_opcode_stream_name(dk_opcode_stream s)
{
    switch (s) {
    case DK_STREAM_REBASE: return "rebase";
    case DK_STREAM_BIND: return "bind";
    case DK_STREAM_WEAK_BIND: return "weak_bind";
    case DK_STREAM_LAZY_BIND: return "lazy_bind";
    }
    return "?";
}

static const dk_blob *stream_blob(const dk_macho *m, dk_opcode_stream s)
{
    switch (s) {
    case DK_STREAM_REBASE: return &m->dyld_info.rebase;
    case DK_STREAM_BIND: return &m->dyld_info.bind;
    case DK_STREAM_WEAK_BIND: return &m->dyld_info.weak_bind;
    case DK_STREAM_LAZY_BIND: return &m->dyld_info.lazy_bind;
    }
    return NULL;
}

bool dk_macho_opcode_stream(const dk_macho *m, dk_opcode_stream s, uint32_t *off, uint32_t *size)
{
    if (!m->dyld_info.present) return false;
    const dk_blob *b = stream_blob(m, s);
    if (!b || !b->size) return false;
    *off = b->off;
    *size = b->size;
    return true;
}

static const char *rebase_name(uint8_t op)
{
    switch (op) {
    case REBASE_OPCODE_DONE: return "REBASE_OPCODE_DONE";
    case REBASE_OPCODE_SET_TYPE_IMM: return "REBASE_OPCODE_SET_TYPE_IMM";
    case REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB: return "REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB";
    case REBASE_OPCODE_ADD_ADDR_ULEB: return "REBASE_OPCODE_ADD_ADDR_ULEB";
    case REBASE_OPCODE_ADD_ADDR_IMM_SCALED: return "REBASE_OPCODE_ADD_ADDR_IMM_SCALED";
    case REBASE_OPCODE_DO_REBASE_IMM_TIMES: return "REBASE_OPCODE_DO_REBASE_IMM_TIMES";
    case REBASE_OPCODE_DO_REBASE_ULEB_TIMES: return "REBASE_OPCODE_DO_REBASE_ULEB_TIMES";
    case REBASE_OPCODE_DO_REBASE_ADD_ADDR_ULEB: return "REBASE_OPCODE_DO_REBASE_ADD_ADDR_ULEB";
    case REBASE_OPCODE_DO_REBASE_ULEB_TIMES_SKIPPING_ULEB: return "REBASE_OPCODE_DO_REBASE_ULEB_TIMES_SKIPPING_ULEB";
    }
    return NULL;
}

static const char *bind_name(uint8_t op, uint8_t imm)
{
    switch (op) {
    case BIND_OPCODE_DONE: return "BIND_OPCODE_DONE";
    case BIND_OPCODE_SET_DYLIB_ORDINAL_IMM: return "BIND_OPCODE_SET_DYLIB_ORDINAL_IMM";
    case BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB: return "BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB";
    case BIND_OPCODE_SET_DYLIB_SPECIAL_IMM: return "BIND_OPCODE_SET_DYLIB_SPECIAL_IMM";
    case BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM: return "BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM";
    case BIND_OPCODE_SET_TYPE_IMM: return "BIND_OPCODE_SET_TYPE_IMM";
    case BIND_OPCODE_SET_ADDEND_SLEB: return "BIND_OPCODE_SET_ADDEND_SLEB";
    case BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB: return "BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB";
    case BIND_OPCODE_ADD_ADDR_ULEB: return "BIND_OPCODE_ADD_ADDR_ULEB";
    case BIND_OPCODE_DO_BIND: return "BIND_OPCODE_DO_BIND";
    case BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB: return "BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB";
    case BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED: return "BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED";
    case BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB: return "BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB";
    case BIND_OPCODE_THREADED:
        if (imm == BIND_SUBOPCODE_THREADED_SET_BIND_ORDINAL_TABLE_SIZE_ULEB)
            return "BIND_SUBOPCODE_THREADED_SET_BIND_ORDINAL_TABLE_SIZE_ULEB";
        if (imm == BIND_SUBOPCODE_THREADED_APPLY) return "BIND_SUBOPCODE_THREADED_APPLY";
        return NULL;
    }
    return NULL;
}

/* The error for OP (its name NULL: an unknown opcode) in stream S: WHAT went wrong with its operand. */
static __attribute__((noinline, cold)) dk_status decode_fail(const dk_macho *m, dk_opcode_stream s, const dk_opcode *op,
                                                             const char *what, dk_error *err)
{
    uint32_t fileoff = stream_blob(m, s)->off + op->offset;
    const char *sn = dk_opcode_stream_name(s);
    if (!op->name)
        return dk_fail(err, DK_E_MALFORMED, "%s opcodes: bad opcode 0x%02x at offset 0x%x (file offset 0x%x)", sn, op->byte,
                       op->offset, fileoff);
    return dk_fail(err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): %s", sn, op->name, op->offset,
                   fileoff, what);
}

/*
 * Decode the opcode at P (stream [START, END)) into OP.  On a malformed
 * operand or unknown opcode fill ERR naming the stream and offset.
 */
static inline __attribute__((always_inline)) dk_status decode_op(const dk_macho *m, dk_opcode_stream s, const uint8_t *start, const uint8_t *p,
                                                                const uint8_t *end, dk_opcode *op, dk_error *err)
{
    op->offset = (uint32_t)(p - start);
    op->byte = *p;
    op->opcode = *p & 0xF0;
    op->imm = *p & 0x0F;
    op->args[0] = op->args[1] = 0;
    op->signed_arg = false;
    op->symbol = NULL;
    const uint8_t *q = p + 1;
    int nuleb = 0;
    bool sleb = false, symbol = false;
    if (s == DK_STREAM_REBASE) {
        op->name = rebase_name(op->opcode);
        switch (op->opcode) {
        case REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB: case REBASE_OPCODE_ADD_ADDR_ULEB:
        case REBASE_OPCODE_DO_REBASE_ULEB_TIMES: case REBASE_OPCODE_DO_REBASE_ADD_ADDR_ULEB:
            nuleb = 1;
            break;
        case REBASE_OPCODE_DO_REBASE_ULEB_TIMES_SKIPPING_ULEB: nuleb = 2; break;
        }
    } else {
        op->name = bind_name(op->opcode, op->imm);
        switch (op->opcode) {
        case BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB: case BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB:
        case BIND_OPCODE_ADD_ADDR_ULEB: case BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB:
            nuleb = 1;
            break;
        case BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB: nuleb = 2; break;
        case BIND_OPCODE_SET_ADDEND_SLEB: sleb = true; break;
        case BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM: symbol = true; break;
        case BIND_OPCODE_THREADED:
            if (op->imm == BIND_SUBOPCODE_THREADED_SET_BIND_ORDINAL_TABLE_SIZE_ULEB) nuleb = 1;
            break;
        }
    }
    if (!op->name) return decode_fail(m, s, op, NULL, err);
    for (int k = 0; k < nuleb; k++)
        if (!dk_uleb(&q, end, &op->args[k])) return decode_fail(m, s, op, "malformed ULEB128 operand", err);
    op->nargs = nuleb;
    if (sleb) {
        int64_t v;
        if (!dk_sleb(&q, end, &v)) return decode_fail(m, s, op, "malformed SLEB128 operand", err);
        op->args[0] = (uint64_t)v;
        op->nargs = 1;
        op->signed_arg = true;
    }
    if (symbol) {
        const uint8_t *z = memchr(q, 0, (size_t)(end - q));
        if (!z) return decode_fail(m, s, op, "symbol name extends past the end of the stream", err);
        op->symbol = (const char *)q;
        q = z + 1;
    }
    op->length = (uint32_t)(q - p);
    return DK_OK;
}

static const uint8_t *stream_bytes(const dk_macho *m, dk_opcode_stream s, uint32_t *size, dk_error *err,
                                   dk_status *st)
{
    *st = DK_OK;
    uint32_t off, sz;
    if (!dk_macho_opcode_stream(m, s, &off, &sz)) {
        *size = 0;
        return NULL;
    }
    const uint8_t *p = dk__linkedit(m, off, sz);
    if (!p)
        *st = dk_fail(err, DK_E_MALFORMED, "%s: %s opcodes 0x%x+0x%x not inside the image's LINKEDIT",
                      dk_loadcmd_name(m->dyld_info.cmd), dk_opcode_stream_name(s), off, sz);
    *size = sz;
    return p;
}

dk_status dk_macho_foreach_opcode(const dk_macho *m, dk_opcode_stream s, dk_opcode_cb cb, void *ctx, dk_error *err)
{
    uint32_t size;
    dk_status st;
    const uint8_t *start = stream_bytes(m, s, &size, err, &st);
    if (!start) return st;
    const uint8_t *p = start, *end = start + size;
    while (p < end) {
        dk_opcode op;
        if ((st = decode_op(m, s, start, p, end, &op, err))) return st;
        if (cb(ctx, &op)) return DK_E_STOPPED;
        p += op.length;
        /* Rebase and bind streams end at DONE; lazy-bind records are separated by it. */
        if (op.opcode == 0 && s != DK_STREAM_LAZY_BIND) break;
    }
    return DK_OK;
}

/* ---------------------------------------------------------------- fixups */

typedef struct bind_entry {
    const char *symbol;
    int ordinal;
    int64_t addend;
    uint8_t flags;
} bind_entry;

typedef struct walker {
    dk_macho *m;
    dk_fixup_cb cb;
    void *ctx;
    dk_error *err;
    uint64_t budget; /* fixups left before DK_E_LIMIT */
    const char *sn;
    uint32_t stream_off;
    /* Location hints: fixups come in runs inside one section, so the last
     * answers are kept with the address range they hold for. */
    bool trusted;           /* m->dyldinfo_checked: only the budget is kept per location */
    int check_seg;          /* check_location: this segment's section ... */
    uint32_t check_sect;    /* ... index (in m->sects) contained the last location */
    dk_at_memo at_seg, at_sect; /* emit */
} walker;

/* Bound on fixups per image: a real image stores every pointer it fixes up, so
 * it cannot have more than one per 2 bytes of file; the floor covers zero-fill. */
static uint64_t fixup_budget(const dk_macho *m) { return (uint64_t)m->size / 2 + 65536; }

static dk_status check_location(walker *w, int seg, uint64_t segoff, unsigned width, uint32_t opoff, const char *opname)
{
    dk_macho *m = w->m;
    if (seg < 0)
        return dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): missing preceding SET_SEGMENT_AND_OFFSET_ULEB",
                       w->sn, opname, opoff, w->stream_off + opoff);
    const dk_segment *g = &m->segs[seg];
    /* LLVM also insists the location is inside a section of that segment */
    uint64_t a = g->vmaddr + segoff;
    bool in_section = g->nsects == 0;
    if (!in_section && w->check_seg == seg) {
        const dk_section *x = &m->sects[w->check_sect];
        in_section = a >= x->addr && a - x->addr < x->size && x->size - (a - x->addr) >= width;
    }
    for (uint32_t k = 0; k < g->nsects && !in_section; k++) {
        const dk_section *x = &m->sects[g->first_section + k];
        in_section = a >= x->addr && a - x->addr < x->size && x->size - (a - x->addr) >= width;
        if (in_section) {
            w->check_seg = seg;
            w->check_sect = g->first_section + k;
        }
    }
    if (!in_section && segoff < g->vmsize)
        return dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): address 0x%llx (segment %s + 0x%llx) is not in any section",
                       w->sn, opname, opoff, w->stream_off + opoff, (unsigned long long)(g->vmaddr + segoff), g->segname,
                       (unsigned long long)segoff);
    if (segoff >= g->vmsize || g->vmsize - segoff < width)
        return dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): segment offset 0x%llx past the end of segment %d (%s, vmsize 0x%llx)",
                       w->sn, opname, opoff, w->stream_off + opoff, (unsigned long long)segoff, seg, g->segname,
                       (unsigned long long)g->vmsize);
    if (w->budget-- == 0)
        return dk_fail(w->err, DK_E_LIMIT, "%s opcodes: more fixups than the image can hold (limit %llu)", w->sn,
                       (unsigned long long)fixup_budget(m));
    return DK_OK;
}

/* Whether the COUNT locations SEGOFF, SEGOFF + STEP, ... all pass
 * check_location, known at once when they lie in the section that held the
 * last location checked; their share of the budget is then taken here. */
static bool run_ok(walker *w, int seg, uint64_t segoff, uint64_t count, uint64_t step, unsigned width)
{
    if (w->check_seg != seg || step == 0 || count == 0 || count > w->budget) return false;
    if (segoff > UINT64_MAX - width || count - 1 > (UINT64_MAX - segoff - width) / step) return false;
    const dk_segment *g = &w->m->segs[seg];
    const dk_section *x = &w->m->sects[w->check_sect];
    uint64_t first = g->vmaddr + segoff, end = first + (count - 1) * step + width;
    if (first < g->vmaddr || end < first || first < x->addr || end - x->addr > x->size) return false;
    if (end - g->vmaddr > g->vmsize) return false;
    w->budget -= count;
    return true;
}

/* check_location for item K of a run of COUNT locations STEP apart, unless
 * *CHECKED says the whole run already passed; after the first item the rest
 * of the run is tried at once (run_ok). */
static inline dk_status check_item(walker *w, bool *checked, uint64_t k, int seg, uint64_t segoff, uint64_t count, uint64_t step,
                                   unsigned width, const dk_opcode *op)
{
    if (*checked) return DK_OK;
    if (w->trusted) {
        /* every location passed in an earlier walk; the budget still bounds this one */
        if (seg < 0 || count > w->budget) return check_location(w, seg, segoff, width, op->offset, op->name);
        w->budget -= count;
        *checked = true;
        return DK_OK;
    }
    dk_status st = check_location(w, seg, segoff, width, op->offset, op->name);
    if (st) return st;
    *checked = k == 0 && count > 1 && run_ok(w, seg, segoff + step, count - 1, step, width);
    return DK_OK;
}

static dk_status emit(walker *w, dk_fixup *f)
{
    if (!w->cb) return DK_OK; /* validating only */
    f->segment = dk__segment_at_memo(w->m, f->address, &w->at_seg);
    f->section = dk__section_at_memo(w->m, f->address, &w->at_sect);
    if (w->cb(w->ctx, f)) return DK_E_STOPPED;
    return DK_OK;
}

static dk_status walk_rebase(walker *w)
{
    dk_macho *m = w->m;
    uint32_t size;
    dk_status st;
    const uint8_t *start = stream_bytes(m, DK_STREAM_REBASE, &size, w->err, &st);
    if (!start) return st;
    w->sn = "rebase";
    w->stream_off = m->dyld_info.rebase.off;
    const uint8_t *p = start, *end = start + size;
    unsigned ptr = dk__ptr_size(m);
    int seg = -1;
    uint64_t segoff = 0;
    uint8_t type = 0;
    while (p < end) {
        dk_opcode op;
        if ((st = decode_op(m, DK_STREAM_REBASE, start, p, end, &op, w->err))) return st;
        p += op.length;
        uint64_t count = 0, skip = 0;
        switch (op.opcode) {
        case REBASE_OPCODE_DONE: return DK_OK;
        case REBASE_OPCODE_SET_TYPE_IMM:
            if (op.imm < REBASE_TYPE_POINTER || op.imm > REBASE_TYPE_TEXT_PCREL32)
                return dk_fail(w->err, DK_E_MALFORMED, "rebase opcodes: REBASE_OPCODE_SET_TYPE_IMM at offset 0x%x (file offset 0x%x): bad type %u",
                               op.offset, w->stream_off + op.offset, op.imm);
            type = op.imm;
            continue;
        case REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB:
            if (!dk__seg_ok(m, op.imm))
                return dk_fail(w->err, DK_E_MALFORMED, "rebase opcodes: %s at offset 0x%x (file offset 0x%x): segment index %u but the image has %zu segments",
                               op.name, op.offset, w->stream_off + op.offset, op.imm, m->nsegs);
            seg = op.imm;
            segoff = op.args[0];
            continue;
        case REBASE_OPCODE_ADD_ADDR_ULEB: segoff += op.args[0]; continue;
        case REBASE_OPCODE_ADD_ADDR_IMM_SCALED: segoff += (uint64_t)op.imm * ptr; continue;
        case REBASE_OPCODE_DO_REBASE_IMM_TIMES: count = op.imm; skip = 0; break;
        case REBASE_OPCODE_DO_REBASE_ULEB_TIMES: count = op.args[0]; skip = 0; break;
        case REBASE_OPCODE_DO_REBASE_ADD_ADDR_ULEB: count = 1; skip = op.args[0]; break;
        case REBASE_OPCODE_DO_REBASE_ULEB_TIMES_SKIPPING_ULEB: count = op.args[0]; skip = op.args[1]; break;
        }
        unsigned width = (type == REBASE_TYPE_POINTER || type == 0) ? ptr : 4;
        bool checked = false; /* the rest of this run passed run_ok */
        dk_fixup f; /* what the run's fixups share; address, target and raw per item */
        memset(&f, 0, sizeof f);
        f.kind = DK_FIXUP_REBASE;
        f.type = type ? type : REBASE_TYPE_POINTER;
        f.width = (uint8_t)width;
        for (uint64_t k = 0; k < count; k++) {
            if ((st = check_item(w, &checked, k, seg, segoff, count, skip + ptr, width, &op))) return st;
            if (checked && !w->cb) { /* only checking: the whole run is known good */
                segoff += count * (skip + ptr);
                break;
            }
            if (w->cb) {
                f.address = m->segs[seg].vmaddr + segoff;
                uint64_t v = 0;
                if (dk__read_word_memo(m, f.address, width, &v, &w->at_seg)) f.target = v;
                f.raw = v;
                if ((st = emit(w, &f))) return st;
            }
            uint64_t step = skip + ptr;
            if (step == 0 && count > 1)
                return dk_fail(w->err, DK_E_MALFORMED, "rebase opcodes: %s at offset 0x%x: skip wraps to the same address",
                               op.name, op.offset);
            segoff += step;
        }
    }
    return DK_OK;
}

/* Threaded (arm64e) chain starting at SEG/SEGOFF, binding through TABLE. */
static dk_status threaded_apply(walker *w, int seg, uint64_t segoff, const bind_entry *table, size_t ntable,
                                uint32_t opoff)
{
    dk_macho *m = w->m;
    for (;;) {
        dk_status st = check_location(w, seg, segoff, 8, opoff, "BIND_SUBOPCODE_THREADED_APPLY");
        if (st) return st;
        uint64_t addr = m->segs[seg].vmaddr + segoff;
        uint64_t raw;
        if (!dk__read_word(m, addr, 8, &raw))
            return dk_fail(w->err, DK_E_MALFORMED, "bind opcodes: threaded chain entry at 0x%llx is not in the file",
                           (unsigned long long)addr);
        dk_fixup f;
        uint32_t next;
        dk_chained_decode(DK_CHAINED_PTR_ARM64E, raw, m->base, NULL, 0, 0, &f, &next);
        f.address = addr;
        if (f.kind == DK_FIXUP_BIND) {
            if (f.import_index >= ntable)
                return dk_fail(w->err, DK_E_MALFORMED, "bind opcodes: threaded bind at 0x%llx uses ordinal table entry %u of %zu",
                               (unsigned long long)addr, f.import_index, ntable);
            const bind_entry *e = &table[f.import_index];
            f.symbol = e->symbol;
            f.ordinal = e->ordinal;
            f.addend += e->addend;
            f.symbol_flags = e->flags;
            f.weak_import = (e->flags & BIND_SYMBOL_FLAGS_WEAK_IMPORT) != 0;
        }
        f.type = 1;
        if ((st = emit(w, &f))) return st;
        if (next == 0) return DK_OK;
        segoff += (uint64_t)next * 8;
    }
}

static dk_status walk_bind(walker *w, dk_opcode_stream s)
{
    dk_macho *m = w->m;
    uint32_t size;
    dk_status st;
    const uint8_t *start = stream_bytes(m, s, &size, w->err, &st);
    if (!start) return st;
    w->sn = dk_opcode_stream_name(s);
    w->stream_off = stream_blob(m, s)->off;
    const uint8_t *p = start, *end = start + size;
    unsigned ptr = dk__ptr_size(m);
    int seg = -1;
    uint64_t segoff = 0;
    int ordinal = 0;
    bool ordinal_set = false;
    const char *symbol = NULL;
    uint8_t flags = 0, type = BIND_TYPE_POINTER;
    int64_t addend = 0;
    uint32_t record = 0;
    dk_vec table = {0};
    bool threaded = false;
    while (p < end) {
        dk_opcode op;
        if ((st = decode_op(m, s, start, p, end, &op, w->err))) goto out;
        p += op.length;
        uint64_t count = 0, skip = 0;
        const char *notlazy = NULL;
        switch (op.opcode) {
        case BIND_OPCODE_DONE:
            if (s != DK_STREAM_LAZY_BIND) goto out;
            /* lazy records are independent: state resets after each DONE */
            record = (uint32_t)(p - start);
            seg = -1;
            segoff = 0;
            ordinal = 0;
            ordinal_set = false;
            symbol = NULL;
            flags = 0;
            addend = 0;
            type = BIND_TYPE_POINTER;
            continue;
        case BIND_OPCODE_SET_DYLIB_ORDINAL_IMM:
        case BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB: {
            uint64_t o = op.opcode == BIND_OPCODE_SET_DYLIB_ORDINAL_IMM ? op.imm : op.args[0];
            if (s == DK_STREAM_WEAK_BIND) {
                st = dk_fail(w->err, DK_E_MALFORMED, "weak_bind opcodes: %s at offset 0x%x (file offset 0x%x): not allowed in the weak bind stream",
                             op.name, op.offset, w->stream_off + op.offset);
                goto out;
            }
            if (o > m->ndylibs) {
                st = dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): library ordinal %llu but only %zu dylibs",
                             w->sn, op.name, op.offset, w->stream_off + op.offset, (unsigned long long)o, m->ndylibs);
                goto out;
            }
            ordinal = (int)o;
            ordinal_set = true;
            continue;
        }
        case BIND_OPCODE_SET_DYLIB_SPECIAL_IMM:
            if (s == DK_STREAM_WEAK_BIND) {
                st = dk_fail(w->err, DK_E_MALFORMED, "weak_bind opcodes: %s at offset 0x%x (file offset 0x%x): not allowed in the weak bind stream",
                             op.name, op.offset, w->stream_off + op.offset);
                goto out;
            }
            ordinal = op.imm == 0 ? 0 : (int)(int8_t)(0xF0 | op.imm);
            if (ordinal < BIND_SPECIAL_DYLIB_WEAK_LOOKUP) {
                st = dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): unknown special ordinal %d",
                             w->sn, op.name, op.offset, w->stream_off + op.offset, ordinal);
                goto out;
            }
            ordinal_set = true;
            continue;
        case BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM:
            symbol = op.symbol;
            flags = op.imm;
            if (s == DK_STREAM_WEAK_BIND && (flags & BIND_SYMBOL_FLAGS_NON_WEAK_DEFINITION)) {
                dk_fixup f;
                memset(&f, 0, sizeof f);
                f.kind = DK_FIXUP_WEAK_BIND;
                f.strong = true;
                f.symbol = symbol;
                f.symbol_flags = flags;
                f.segment = f.section = -1;
                if (w->cb && w->cb(w->ctx, &f)) {
                    st = DK_E_STOPPED;
                    goto out;
                }
            }
            continue;
        case BIND_OPCODE_SET_TYPE_IMM:
            if (op.imm < BIND_TYPE_POINTER || op.imm > BIND_TYPE_TEXT_PCREL32) {
                st = dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): bad bind type %u",
                             w->sn, op.name, op.offset, w->stream_off + op.offset, op.imm);
                goto out;
            }
            type = op.imm;
            continue;
        case BIND_OPCODE_SET_ADDEND_SLEB: addend = (int64_t)op.args[0]; continue;
        case BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB:
            if (!dk__seg_ok(m, op.imm)) {
                st = dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): segment index %u but the image has %zu segments",
                             w->sn, op.name, op.offset, w->stream_off + op.offset, op.imm, m->nsegs);
                goto out;
            }
            seg = op.imm;
            segoff = op.args[0];
            continue;
        case BIND_OPCODE_ADD_ADDR_ULEB:
            segoff += op.args[0];
            /* the new address is where the next bind goes: check it now, as LLVM does */
            if (!w->trusted) {
                if (seg >= 0 && (st = check_location(w, seg, segoff, ptr, op.offset, op.name))) goto out;
                w->budget++;
            }
            continue;
        case BIND_OPCODE_DO_BIND: count = 1; skip = 0; break;
        case BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB: count = 1; skip = op.args[0]; notlazy = op.name; break;
        case BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED: count = 1; skip = (uint64_t)op.imm * ptr; notlazy = op.name; break;
        case BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB: count = op.args[0]; skip = op.args[1]; notlazy = op.name; break;
        case BIND_OPCODE_THREADED:
            if ((m->hdr.cputype & 0xff) != 12 || !m->hdr.is64) {
                st = dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): threaded binds exist only for arm64e",
                             w->sn, op.name, op.offset, w->stream_off + op.offset);
                goto out;
            }
            if (s != DK_STREAM_BIND) {
                st = dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x: threaded binds only in the bind stream",
                             w->sn, op.name, op.offset);
                goto out;
            }
            if (op.imm == BIND_SUBOPCODE_THREADED_SET_BIND_ORDINAL_TABLE_SIZE_ULEB) {
                if (op.args[0] > 0x10000) {
                    st = dk_fail(w->err, DK_E_MALFORMED, "bind opcodes: threaded ordinal table size %llu at offset 0x%x exceeds 65536",
                                 (unsigned long long)op.args[0], op.offset);
                    goto out;
                }
                threaded = true;
                table.len = 0;
                if (!dk_vec_reserve(&table, sizeof(bind_entry), (size_t)op.args[0])) {
                    st = dk_fail(w->err, DK_E_NOMEM, "out of memory");
                    goto out;
                }
            } else {
                if ((st = threaded_apply(w, seg, segoff, table.data, table.len, op.offset))) goto out;
            }
            continue;
        }
        if (notlazy && s == DK_STREAM_LAZY_BIND) {
            st = dk_fail(w->err, DK_E_MALFORMED, "lazy_bind opcodes: %s at offset 0x%x (file offset 0x%x): not allowed in the lazy bind stream",
                         notlazy, op.offset, w->stream_off + op.offset);
            goto out;
        }
        if (!symbol) {
            st = dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): missing preceding BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM",
                         w->sn, op.name, op.offset, w->stream_off + op.offset);
            goto out;
        }
        if (!ordinal_set && s != DK_STREAM_WEAK_BIND) {
            st = dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x (file offset 0x%x): missing preceding BIND_OPCODE_SET_DYLIB_ORDINAL_*",
                         w->sn, op.name, op.offset, w->stream_off + op.offset);
            goto out;
        }
        if (threaded) {
            /* In threaded mode DO_BIND records an ordinal-table entry. */
            if (table.len >= 0x10000) {
                st = dk_fail(w->err, DK_E_MALFORMED, "bind opcodes: threaded ordinal table overflows at offset 0x%x", op.offset);
                goto out;
            }
            bind_entry *e = dk_vec_push(&table, sizeof *e);
            if (!e) {
                st = dk_fail(w->err, DK_E_NOMEM, "out of memory");
                goto out;
            }
            e->symbol = symbol;
            e->ordinal = ordinal;
            e->addend = addend;
            e->flags = flags;
            continue;
        }
        unsigned width = type == BIND_TYPE_POINTER ? ptr : 4;
        bool checked = false; /* the rest of this run passed run_ok */
        for (uint64_t k = 0; k < count; k++) {
            if ((st = check_item(w, &checked, k, seg, segoff, count, skip + ptr, width, &op))) goto out;
            if (checked && !w->cb) { /* only checking: the whole run is known good */
                segoff += count * (skip + ptr);
                break;
            }
            if (w->cb) {
                dk_fixup f;
                dk__zero_small(&f, sizeof f);
                f.kind = s == DK_STREAM_BIND ? DK_FIXUP_BIND : s == DK_STREAM_WEAK_BIND ? DK_FIXUP_WEAK_BIND : DK_FIXUP_LAZY_BIND;
                f.address = m->segs[seg].vmaddr + segoff;
                f.type = type;
                f.width = (uint8_t)width;
                f.symbol = symbol;
                f.ordinal = s == DK_STREAM_WEAK_BIND ? BIND_SPECIAL_DYLIB_WEAK_LOOKUP : ordinal;
                f.addend = addend;
                f.symbol_flags = flags;
                f.weak_import = (flags & BIND_SYMBOL_FLAGS_WEAK_IMPORT) != 0;
                f.lazy_offset = record;
                if ((st = emit(w, &f))) goto out;
            }
            uint64_t step = skip + ptr;
            if (step == 0 && count > 1) {
                st = dk_fail(w->err, DK_E_MALFORMED, "%s opcodes: %s at offset 0x%x: skip wraps to the same address", w->sn,
                             op.name, op.offset);
                goto out;
            }
            segoff += step;
        }
        if (op.opcode == BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB || op.opcode == BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED) {
            /* the advanced address is where the next bind goes: LLVM checks it eagerly */
            if (!w->trusted) {
                if ((st = check_location(w, seg, segoff, width, op.offset, op.name))) goto out;
                w->budget++;
            }
        }
    }
out:
    dk_vec_free(&table);
    return st;
}

dk_status dk__dyldinfo_fixups(dk_macho *m, dk_fixup_cb cb, void *ctx, dk_error *err)
{
    walker w = {m, cb, ctx, err, fixup_budget(m), "", 0, m->dyldinfo_checked, -1, 0, {0, 0, 0}, {0, 0, 0}};
    dk_status st;
    if ((st = walk_rebase(&w))) return st;
    if ((st = walk_bind(&w, DK_STREAM_BIND))) return st;
    if ((st = walk_bind(&w, DK_STREAM_WEAK_BIND))) return st;
    if ((st = walk_bind(&w, DK_STREAM_LAZY_BIND))) return st;
    m->dyldinfo_checked = true;
    return DK_OK;
}
