/*
 * Stubs: each entry of an S_SYMBOL_STUBS section (reserved1 = first indirect
 * symbol index, reserved2 = stub size, <mach-o/loader.h>) decoded from its
 * instructions to the pointer slot it jumps through, with the slot's binding
 * and, for classic lazy slots, the __stub_helper entry and the lazy-bind offset
 * it pushes.  __objc_stubs (objc_msgSend selector stubs) are decoded too.
 */
#include "arm64.h"
#include "macho_internal.h"

#include "dyldkit/stubs.h"

const char *dk_stub_kind_name(dk_stub_kind k)
{
    switch (k) {
    case DK_STUB_UNKNOWN: return "unknown";
    case DK_STUB_X86_64: return "x86_64";
    case DK_STUB_I386: return "i386";
    case DK_STUB_I386_SELFMOD: return "i386_jump_table";
    case DK_STUB_ARM64: return "arm64";
    case DK_STUB_ARM64_32: return "arm64_32";
    case DK_STUB_ARM64E: return "arm64e";
    case DK_STUB_ARM64_DIRECT: return "arm64_direct";
    case DK_STUB_ARM64_BRANCH: return "arm64_branch";
    case DK_STUB_ARM_PIC: return "arm_pic";
    case DK_STUB_ARM: return "arm";
    case DK_STUB_OBJC_MSGSEND: return "objc_msgSend";
    }
    return "?";
}

static bool is_arm64(const dk_macho *m) { return m->hdr.cputype == CPU_TYPE_ARM64 || m->hdr.cputype == CPU_TYPE_ARM64_32; }

static uint32_t insn_at(const dk_macho *m, uint64_t addr, bool *ok)
{
    const uint8_t *p = dk_macho_read(m, addr, 4);
    *ok = p != NULL;
    return p ? dk_le32(p) : 0;
}

/* Decode one symbol stub at ADDR of SIZE bytes into S (kind, slot, target). */
static void decode_stub(const dk_macho *m, uint64_t addr, uint32_t size, dk_stub *s)
{
    const uint8_t *p = dk_macho_read(m, addr, size);
    s->kind = DK_STUB_UNKNOWN;
    if (p) dk__stub_decode(m->hdr.cputype, p, addr, size, s);
}

void dk__stub_decode(uint32_t cpu, const uint8_t *p, uint64_t addr, uint32_t size, dk_stub *s)
{
    s->kind = DK_STUB_UNKNOWN;
    if (cpu == CPU_TYPE_X86_64 && size >= 6 && p[0] == 0xFF && p[1] == 0x25) {
        s->kind = DK_STUB_X86_64;
        s->has_slot = true;
        s->slot = addr + 6 + (uint64_t)(int64_t)(int32_t)dk_le32(p + 2);
        return;
    }
    if (cpu == CPU_TYPE_I386) {
        if (size >= 6 && p[0] == 0xFF && p[1] == 0x25) {
            s->kind = DK_STUB_I386;
            s->has_slot = true;
            s->slot = dk_le32(p + 2);
        } else if (size == 5) {
            s->kind = DK_STUB_I386_SELFMOD;
        }
        return;
    }
    if ((cpu == CPU_TYPE_ARM64 || cpu == CPU_TYPE_ARM64_32) && size >= 12) {
        uint32_t i0 = dk_le32(p), i1 = dk_le32(p + 4), i2 = dk_le32(p + 8);
        unsigned rd, rt, rn, rm, sz;
        uint64_t page;
        uint32_t off;
        bool link;
        if (a64_b(i0, addr, &link, &s->target) && !link) {
            s->kind = DK_STUB_ARM64_BRANCH;
            return;
        }
        if (!a64_adrp(i0, addr, &rd, &page)) return;
        if (a64_ldr_uimm(i1, &rt, &rn, &off, &sz) && rn == rd && a64_br(i2, &rn) && rn == rt) {
            s->kind = sz == 8 ? DK_STUB_ARM64 : DK_STUB_ARM64_32;
            s->has_slot = true;
            s->slot = page + off;
            return;
        }
        if (a64_add_imm(i1, &rt, &rn, &off) && rn == rd) {
            if (a64_br(i2, &rm) && rm == rt) {
                s->kind = DK_STUB_ARM64_DIRECT;
                s->target = page + off;
                return;
            }
            if (size >= 16) {
                uint32_t i3 = dk_le32(p + 12);
                unsigned lt, ln, lsz, bn, bm;
                uint32_t loff;
                if (a64_ldr_uimm(i2, &lt, &ln, &loff, &lsz) && ln == rt && loff == 0 && a64_braa(i3, &bn, &bm) && bn == lt) {
                    s->kind = DK_STUB_ARM64E;
                    s->has_slot = true;
                    s->slot = page + off;
                    return;
                }
                if (a64_br(i2, &bn) && bn == rt) {
                    s->kind = DK_STUB_ARM64_DIRECT;
                    s->target = page + off;
                    return;
                }
            }
        }
        return;
    }
    if (cpu == CPU_TYPE_ARM) {
        /* __picsymbolstub4: e59fc004? ldr ip,[pc,#4]; e08fc00c add ip,pc,ip; e59cf000 ldr pc,[ip]; .long delta */
        if (size == 16 && (dk_le32(p) & 0xFFFFF000u) == 0xE59FC000u && dk_le32(p + 4) == 0xE08FC00Cu &&
            dk_le32(p + 8) == 0xE59CF000u) {
            /* ldr reads the literal at pc+8+imm; add sees pc = stub+12 */
            uint32_t lit = 8 + (dk_le32(p) & 0xFFF);
            if (lit + 4 > size) return;
            s->kind = DK_STUB_ARM_PIC;
            s->has_slot = true;
            s->slot = (uint32_t)(addr + 12 + dk_le32(p + lit));
            return;
        }
        /* __symbol_stub4: e59fc000 ldr ip,[pc]; e59cf000 ldr pc,[ip]; .long slot */
        if (size == 12 && dk_le32(p) == 0xE59FC000u && dk_le32(p + 4) == 0xE59CF000u) {
            s->kind = DK_STUB_ARM;
            s->has_slot = true;
            s->slot = dk_le32(p + 8);
            return;
        }
    }
}

/* Lazy-bind stream offsets -> the slot each record binds, to check helpers. */
typedef struct lazy_rec {
    uint32_t offset;
    uint64_t address;
} lazy_rec;

typedef struct stub_walk {
    dk_macho *m;
    dk_error *err;
    const dk_symbol *syms;
    size_t nsyms;
    const uint32_t *indirect;
    size_t nindirect;
    lazy_rec *lazy;
    size_t nlazy;
} stub_walk;

static int collect_lazy(void *ctx, const dk_fixup *f)
{
    dk_vec *v = ctx;
    if (f->kind != DK_FIXUP_LAZY_BIND) return 0;
    lazy_rec *r = dk_vec_push(v, sizeof *r);
    if (!r) return 1;
    r->offset = f->lazy_offset;
    r->address = f->address;
    return 0;
}

static int lazy_cmp(const void *a, const void *b)
{
    const lazy_rec *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The helper entry's pushed lazy-bind offset (x86 push imm32; arm64 ldr w16,=offset; arm ldr ip,=offset). */
static bool helper_offset(const dk_macho *m, uint64_t helper, uint32_t *off)
{
    const uint8_t *p = dk_macho_read(m, helper, 12);
    if (!p) p = dk_macho_read(m, helper, 5);
    if (!p) return false;
    uint32_t cpu = m->hdr.cputype;
    if (cpu == CPU_TYPE_X86_64 || cpu == CPU_TYPE_I386) {
        if (p[0] != 0x68) return false;
        *off = dk_le32(p + 1);
        return true;
    }
    if (is_arm64(m)) {
        unsigned rt;
        uint64_t lit;
        bool ok;
        uint32_t i0 = insn_at(m, helper, &ok);
        if (!ok || !a64_ldr_w_literal(i0, helper, &rt, &lit)) return false;
        const uint8_t *q = dk_macho_read(m, lit, 4);
        if (!q) return false;
        *off = dk_le32(q);
        return true;
    }
    if (cpu == CPU_TYPE_ARM) {
        if ((dk_le32(p) & 0xFFFFF000u) != 0xE59FC000u) return false;
        const uint8_t *q = dk_macho_read(m, helper + 8 + (dk_le32(p) & 0xFFF), 4);
        if (!q) return false;
        *off = dk_le32(q);
        return true;
    }
    return false;
}

static void fill_binding(stub_walk *w, dk_stub *s)
{
    dk_macho *m = w->m;
    s->slot_section = dk__section_index_at(m, s->slot);
    const dk_fixup *fx;
    size_t n;
    if (dk__fixups_at(m, s->slot, &fx, &n, NULL) == DK_OK) {
        const dk_fixup *best = NULL;
        for (size_t i = 0; i < n; i++) {
            if (fx[i].kind == DK_FIXUP_REBASE) continue;
            if (!best || (best->kind == DK_FIXUP_WEAK_BIND && fx[i].kind != DK_FIXUP_WEAK_BIND)) best = &fx[i];
        }
        if (best) {
            s->bound = true;
            s->bind_kind = best->kind;
            s->ordinal = best->ordinal;
            s->dylib = dk_macho_ordinal_name(m, best->ordinal);
            s->bind_symbol = best->symbol;
            s->addend = best->addend;
            s->weak_import = best->weak_import;
        }
    }
    if (s->slot_section >= 0 && (m->sects[s->slot_section].flags & SECTION_TYPE) == S_LAZY_SYMBOL_POINTERS) {
        s->lazy = true;
        uint64_t v;
        if (dk__read_word(m, s->slot, dk__ptr_size(m), &v) && v) {
            /* the slot's initial (unslid) value: its rebase target on classic images */
            const dk_fixup *fr;
            size_t nr;
            if (dk__fixups_at(m, s->slot, &fr, &nr, NULL) == DK_OK)
                for (size_t i = 0; i < nr; i++)
                    if (fr[i].kind == DK_FIXUP_REBASE) v = fr[i].target;
            int hs = dk__section_index_at(m, v);
            if (hs >= 0) {
                s->has_helper = true;
                s->helper = v;
                uint32_t off;
                /* pre-10.6 images have no lazy-bind stream: their helpers push the slot address for
                 * dyld_stub_binding_helper, not a lazy-bind offset */
                bool has_lazy_stream = m->dyld_info.present && m->dyld_info.lazy_bind.size;
                if (has_lazy_stream && helper_offset(m, v, &off)) {
                    s->has_lazy_offset = true;
                    s->lazy_bind_offset = off;
                    /* the record at that offset must bind this very slot */
                    size_t lo = 0, hi = w->nlazy;
                    while (lo < hi) {
                        size_t mid = lo + (hi - lo) / 2;
                        if (w->lazy[mid].offset < off) lo = mid + 1;
                        else hi = mid;
                    }
                    /* slots bound eagerly (weak definitions) have no lazy record: nothing to check */
                    if (s->bound && s->bind_kind == DK_FIXUP_LAZY_BIND)
                        s->lazy_mismatch = !(lo < w->nlazy && w->lazy[lo].offset == off && w->lazy[lo].address == s->slot);
                }
            }
        }
    }
}

static dk_status symbol_of(stub_walk *w, const dk_section *sec, uint32_t i, dk_stub *s)
{
    s->indirect_index = UINT32_MAX;
    uint64_t idx = (uint64_t)sec->reserved1 + i;
    if (idx >= w->nindirect)
        return dk_fail(w->err, DK_E_MALFORMED, "section %s,%s: stub %u uses indirect symbol %llu but the table has %zu entries",
                       sec->segname, sec->sectname, i, (unsigned long long)idx, w->nindirect);
    s->indirect_index = (uint32_t)idx;
    uint32_t v = w->indirect[idx];
    if (v & (INDIRECT_SYMBOL_LOCAL | INDIRECT_SYMBOL_ABS)) return DK_OK;
    if (v >= w->nsyms)
        return dk_fail(w->err, DK_E_MALFORMED, "indirect symbol table entry %llu: symbol index %u but the symbol table has %zu entries",
                       (unsigned long long)idx, v, w->nsyms);
    s->symbol = w->syms[v].name;
    return DK_OK;
}

/* __objc_stubs: selector load + jump to objc_msgSend (x86_64 and arm64, fast and small forms). */
static dk_status walk_objc_stubs(stub_walk *w, int si, dk_stub_cb cb, void *ctx)
{
    dk_macho *m = w->m;
    const dk_section *sec = &m->sects[si];
    uint64_t a = sec->addr, end = sec->addr + sec->size;
    unsigned guard = 0;
    while (a < end) {
        if (++guard > (1u << 24)) return dk_fail(w->err, DK_E_LIMIT, "__objc_stubs: too many stubs");
        dk_stub s;
        memset(&s, 0, sizeof s);
        s.address = a;
        s.section = si;
        s.kind = DK_STUB_OBJC_MSGSEND;
        s.indirect_index = UINT32_MAX;
        s.slot_section = -1;
        const uint8_t *p = dk_macho_read(m, a, end - a < 32 ? end - a : 32);
        if (!p) return dk_fail(w->err, DK_E_MALFORMED, "__objc_stubs: stub at 0x%llx not in the file", (unsigned long long)a);
        if (m->hdr.cputype == CPU_TYPE_X86_64 && end - a >= 13 && p[0] == 0x48 && p[1] == 0x8B && p[2] == 0x35 &&
            p[7] == 0xFF && p[8] == 0x25) {
            s.selref = a + 7 + (uint64_t)(int64_t)(int32_t)dk_le32(p + 3);
            s.has_slot = true;
            s.slot = a + 13 + (uint64_t)(int64_t)(int32_t)dk_le32(p + 9);
            s.size = 13;
        } else if (is_arm64(m) && end - a >= 12) {
            unsigned rd, rt, rn, sz;
            uint64_t page;
            uint32_t off;
            bool link;
            uint32_t i0 = dk_le32(p), i1 = dk_le32(p + 4), i2 = dk_le32(p + 8);
            if (!a64_adrp(i0, a, &rd, &page) || rd != 1 || !a64_ldr_uimm(i1, &rt, &rn, &off, &sz) || rn != 1)
                return dk_fail(w->err, DK_E_MALFORMED, "__objc_stubs: stub at 0x%llx does not load a selector (0x%08x 0x%08x)",
                               (unsigned long long)a, i0, i1);
            s.selref = page + off;
            if (a64_b(i2, a + 8, &link, &s.target) && !link) {
                s.size = 12;
            } else if (end - a >= 32 && a64_adrp(i2, a + 8, &rd, &page) && a64_ldr_uimm(dk_le32(p + 12), &rt, &rn, &off, &sz) &&
                       rn == rd) {
                /* adrp x16, got@page; ldr x16, [x16, got@pageoff]; br x16 */
                s.has_slot = true;
                s.slot = page + off;
                s.size = 32;
            } else if (end - a >= 32 && a64_adrp(i2, a + 8, &rd, &page) && a64_add_imm(dk_le32(p + 12), &rt, &rn, &off) &&
                       rn == rd) {
                /* arm64e: adrp x17, got@page; add x17, x17, got@pageoff; ldr x16, [x17]; braa x16, x17 */
                s.has_slot = true;
                s.slot = page + off;
                s.size = 32;
            } else {
                return dk_fail(w->err, DK_E_MALFORMED, "__objc_stubs: stub at 0x%llx: unknown form", (unsigned long long)a);
            }
        } else {
            return dk_fail(w->err, DK_E_MALFORMED, "__objc_stubs: stub at 0x%llx: unknown form", (unsigned long long)a);
        }
        if (!cb) { /* validating only */
            a += s.size;
            continue;
        }
        dk_pointer ptr;
        if (dk_macho_read_pointer(m, s.selref, &ptr, NULL) == DK_OK && ptr.kind != DK_PTR_BIND) {
            const uint8_t *str = dk_macho_read(m, ptr.value & 0x00FFFFFFFFFFFFFFull, 1);
            if (str) {
                int ss = dk__section_index_at(m, ptr.value);
                if (ss >= 0) {
                    uint64_t avail = m->sects[ss].addr + m->sects[ss].size - ptr.value;
                    const uint8_t *full = dk_macho_read(m, ptr.value, avail);
                    if (full && memchr(full, 0, avail)) s.selector = (const char *)full;
                }
            }
        }
        if (s.has_slot) fill_binding(w, &s);
        if (cb(ctx, &s)) return DK_E_STOPPED;
        a += s.size;
    }
    return DK_OK;
}

dk_status dk_macho_foreach_stub(dk_macho *m, dk_stub_cb cb, void *ctx, dk_error *err)
{
    stub_walk w;
    memset(&w, 0, sizeof w);
    w.m = m;
    w.err = err;
    dk_status st = dk_macho_symbols(m, &w.syms, &w.nsyms, err);
    if (!st) st = dk_macho_indirect_symbols(m, &w.indirect, &w.nindirect, err);
    if (st) return st;
    /* fixups feed both the slot bindings and the lazy-bind cross check */
    const dk_fixup *dummy;
    size_t nd;
    if ((st = dk__fixups_at(m, 0, &dummy, &nd, err))) return st;
    dk_vec lazy = {0};
    for (size_t i = 0; cb && i < m->nfixidx; i++) collect_lazy(&lazy, &m->fixidx[i]);
    if (lazy.len) qsort(lazy.data, lazy.len, sizeof(lazy_rec), lazy_cmp);
    w.lazy = lazy.data;
    w.nlazy = lazy.len;
    /* sections in address order */
    size_t *order = malloc(sizeof(size_t) * (m->nsects ? m->nsects : 1));
    if (!order) {
        dk_vec_free(&lazy);
        return dk_fail(err, DK_E_NOMEM, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < m->nsects; i++) {
        const dk_section *sec = &m->sects[i];
        if ((sec->flags & SECTION_TYPE) == S_SYMBOL_STUBS || strcmp(sec->sectname, "__objc_stubs") == 0) order[n++] = i;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && m->sects[order[j - 1]].addr > m->sects[order[j]].addr; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (size_t k = 0; k < n && !st; k++) {
        int si = (int)order[k];
        const dk_section *sec = &m->sects[si];
        if ((sec->flags & SECTION_TYPE) != S_SYMBOL_STUBS) {
            st = walk_objc_stubs(&w, si, cb, ctx);
            continue;
        }
        if (!dk_macho_read(m, sec->addr, sec->size) && sec->size) continue; /* contents stripped (dSYM) */
        uint32_t size = sec->reserved2;
        if (size == 0) {
            st = dk_fail(err, DK_E_MALFORMED, "section %s,%s: S_SYMBOL_STUBS with stub size (reserved2) 0", sec->segname, sec->sectname);
            break;
        }
        uint64_t count = sec->size / size;
        if (count > w.nindirect + 1ull)
            count = w.nindirect + 1ull; /* symbol_of reports the overflow on the first missing entry */
        for (uint64_t i = 0; i < count && !st; i++) {
            dk_stub s;
            memset(&s, 0, sizeof s);
            s.address = sec->addr + i * size;
            s.size = size;
            s.section = si;
            s.slot_section = -1;
            if ((st = symbol_of(&w, sec, (uint32_t)i, &s))) break;
            if (!cb) continue; /* validating only */
            decode_stub(m, s.address, size, &s);
            if (s.has_slot) fill_binding(&w, &s);
            if (cb(ctx, &s)) st = DK_E_STOPPED;
        }
    }
    free(order);
    dk_vec_free(&lazy);
    return st;
}

typedef struct find_ctx {
    const char *symbol;
    dk_stub *out;
    bool found;
} find_ctx;

static int find_cb(void *ctx, const dk_stub *s)
{
    find_ctx *f = ctx;
    if (s->symbol && strcmp(s->symbol, f->symbol) == 0) {
        *f->out = *s;
        f->found = true;
        return 1;
    }
    return 0;
}

dk_status dk_macho_find_stub(dk_macho *m, const char *symbol, dk_stub *out, dk_error *err)
{
    find_ctx f = {symbol, out, false};
    dk_status st = dk_macho_foreach_stub(m, find_cb, &f, err);
    if (st == DK_E_STOPPED || f.found) return DK_OK;
    return st ? st : DK_E_NOTFOUND;
}

/* ------------------------------------------------------------- code refs */

dk_status dk_macho_foreach_code_ref(dk_macho *m, dk_code_ref_cb cb, void *ctx, dk_error *err)
{
    (void)err;
    if (!is_arm64(m)) return DK_OK;
    for (size_t si = 0; si < m->nsects; si++) {
        const dk_section *sec = &m->sects[si];
        if (!(sec->flags & 0x80000000u) || !sec->size) continue;
        const uint8_t *p = dk_macho_read(m, sec->addr, sec->size);
        if (!p) continue; /* contents not in the file */
        for (uint64_t off = 0; off + 4 <= sec->size; off += 4) {
            uint64_t pc = sec->addr + off;
            uint32_t insn = dk_le32(p + off);
            dk_code_ref r = {pc, 0, DK_CODE_ADRP, (int)si};
            unsigned rd, rt, rn, size;
            uint32_t imm;
            bool gpr;
            uint64_t t;
            if (a64_adrp(insn, pc, &rd, &t)) {
                if (dk__in_data_in_code(m, pc)) continue;
                size_t left = (size_t)((sec->size - off) / 4);
                uint64_t slot;
                if (a64_got_load(p + off, left, pc, &slot)) {
                    r.kind = DK_CODE_ADRP_LDR;
                    r.target = slot;
                    off += 4;
                } else if (left >= 2 && a64_add_imm(dk_le32(p + off + 4), &rt, &rn, &imm) && rn == rd && imm < 4096) {
                    r.kind = DK_CODE_ADRP_ADD;
                    r.target = t + imm;
                    off += 4;
                } else {
                    r.target = t;
                }
            } else if (a64_adr(insn, pc, &rd, &t)) {
                r.kind = DK_CODE_ADR;
                r.target = t;
            } else if (a64_literal(insn, pc, &rt, &t, &size, &gpr)) {
                r.kind = DK_CODE_LDR_LITERAL;
                r.target = t;
            } else {
                continue;
            }
            if (r.kind != DK_CODE_ADRP_LDR && r.kind != DK_CODE_ADRP_ADD && r.kind != DK_CODE_ADRP && dk__in_data_in_code(m, pc)) continue;
            if (cb(ctx, &r)) return DK_E_STOPPED;
        }
    }
    return DK_OK;
}
