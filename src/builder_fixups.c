/*
 * Cache builder passes over pointers and code:
 *  - every rebase and bind of every image applied: rebases to unslid cache
 *    addresses, binds resolved through the other images' export tries
 *    (re-exports, umbrellas, flat and weak lookups) to absolute addresses;
 *  - code that reaches another segment of its image fixed for the new layout
 *    (arm64 ADRP pages, x86_64 RIP-relative displacements), as Apple's builder
 *    does from split-seg info;
 *  - arm64 calls through stubs pointed straight at their targets (bypassStubs).
 */
#include "arm64.h"
#include "builder_internal.h"

#include <stdio.h>

#ifdef DK_HAVE_CAPSTONE
#include <capstone/capstone.h>
#include <dlfcn.h>
#include <pthread.h>

/* libcapstone, opened on first use (only x86_64 caches need it). */
static struct capstone_api {
    void *handle;
    const char *error;
    cs_err (*open)(cs_arch, cs_mode, csh *);
    cs_err (*option)(csh, cs_opt_type, size_t);
    cs_insn *(*malloc)(csh);
    bool (*disasm_iter)(csh, const uint8_t **, size_t *, uint64_t *, cs_insn *);
    void (*free)(cs_insn *, size_t);
    cs_err (*close)(csh *);
} capstone;
static pthread_once_t capstone_once = PTHREAD_ONCE_INIT;

static void capstone_load(void)
{
    static const char *const names[] = {"libcapstone.so.5", "libcapstone.so.4", "libcapstone.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !capstone.handle; i++)
        capstone.handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!capstone.handle) {
        capstone.error = "libcapstone cannot be loaded";
        return;
    }
    struct { const char *name; void **slot; } syms[] = {
        {"cs_open", (void **)&capstone.open}, {"cs_option", (void **)&capstone.option}, {"cs_malloc", (void **)&capstone.malloc},
        {"cs_disasm_iter", (void **)&capstone.disasm_iter}, {"cs_free", (void **)&capstone.free}, {"cs_close", (void **)&capstone.close},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (!(*syms[i].slot = dlsym(capstone.handle, syms[i].name))) capstone.error = "libcapstone lacks a function dyldkit uses";
}
#endif

/* Rebase targets that another pass moves (ObjC strings coalesced into the
 * shared selector buffer): old target -> new target, per image. */
typedef struct override {
    uint64_t old_lo, old_hi; /* [lo, hi) in the input image */
    uint64_t new_lo;
} override;

static dk_status keep_bind(builder *b, bimage *im, const dk_fixup *f, uint64_t loc)
{
    if (im->nkept == im->capkept) {
        size_t cap = im->capkept ? im->capkept * 2 : 16;
        kept_bind *k = realloc(im->kept, cap * sizeof *k);
        if (!k) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
        im->kept = k;
        im->capkept = cap;
    }
    kept_bind *k = &im->kept[im->nkept++];
    k->addr = loc;
    k->ordinal = f->kind == DK_FIXUP_WEAK_BIND ? -3 : f->ordinal;
    k->symbol = f->symbol;
    k->addend = f->addend;
    k->weak_import = f->weak_import;
    k->kind = f->kind;
    return DK_OK;
}

dk_status bld_add_use(builder *b, const patch_use *u)
{
    if (b->nuses == b->capuses) {
        size_t cap = b->capuses ? b->capuses * 2 : 1024;
        patch_use *n = realloc(b->uses, cap * sizeof *n);
        if (!n) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
        b->uses = n;
        b->capuses = cap;
    }
    b->uses[b->nuses++] = *u;
    return DK_OK;
}


dk_status bld_apply_fixups(builder *b)
{
    char unresolved[400] = "";
    size_t nunresolved = 0;
    for (size_t i = 0; i < b->nimgs; i++) {
        bimage *im = &b->imgs[i];
        dk_status st;
        size_t n;
        const dk_fixup *fx = bld_fixup_index(im->m, &n, b->err, &st);
        if (st) {
            dk_error_prefix(b->err, "%s: ", im->path);
            return st;
        }
        for (size_t k = 0; k < n; k++) {
            /* several records at one address: the last kind wins (bind over rebase, weak over bind) */
            if (k + 1 < n && fx[k + 1].address == fx[k].address) continue;
            const dk_fixup *f = &fx[k];
            uint64_t loc;
            if (!bld_xlate(b, im, f->address, &loc))
                return dk_fail(b->err, DK_E_MALFORMED, "%s: fixup at 0x%llx is outside every segment", im->path, (unsigned long long)f->address);
            if (f->width != b->ptr)
                return dk_fail(b->err, DK_E_UNSUPPORTED, "%s: %u-byte fixup at 0x%llx (text relocations cannot go in a cache)", im->path,
                               f->width, (unsigned long long)f->address);
            slide_ptr sp;
            memset(&sp, 0, sizeof sp);
            sp.addr = loc;
            sp.auth = f->auth;
            sp.key = f->key;
            sp.diversity = f->diversity;
            sp.addr_div = f->addr_div;
            if (f->kind == DK_FIXUP_REBASE) {
                uint64_t t = f->target;
                uint8_t high8 = f->high8;
                if (!f->pointer_format && b->is64) { /* classic: the stored value, top byte included */
                    high8 = (uint8_t)(t >> 56);
                    t &= 0x00FFFFFFFFFFFFFFull;
                }
                uint64_t nt;
                if (bld_objc_override(b, i, t, &nt)) {
                    /* moved by the ObjC pass */
                } else if (!bld_xlate(b, im, t, &nt)) {
                    bld_warn(b, "%s: rebase at 0x%llx targets 0x%llx outside the image; kept as a plain value", im->install_name,
                             (unsigned long long)f->address, (unsigned long long)t);
                    bld_write_ptr(b, loc, t | ((uint64_t)high8 << 56));
                    continue;
                }
                sp.target = nt;
                sp.high8 = high8;
                bld_write_ptr(b, loc, sp.auth ? nt : (nt | ((uint64_t)high8 << 56)));
                if ((st = bld_add_ptr(b, &sp))) return st;
                continue;
            }
            /* binds: flat lookups stay binds when unresolved imports are allowed */
            int ordinal = f->kind == DK_FIXUP_WEAK_BIND ? -3 : f->ordinal;
            if (b->o->allow_unresolved && ordinal == -2) {
                bld_write_ptr(b, loc, 0);
                if ((st = keep_bind(b, im, f, loc))) return st;
                b->stats->binds_kept++;
                continue;
            }
            dk_resolved r;
            dk_error e;
            st = dk_imageset_resolve(b->set, im->set_index, ordinal, f->symbol, NULL, NULL, &r, &e);
            if (st == DK_E_NOTFOUND) {
                if (f->weak_import) {
                    /* a missing weak import is NULL; the bind stays with the image (as
                       unresolved ones do) so that extraction gives the import back */
                    bld_write_ptr(b, loc, 0);
                    if ((st = keep_bind(b, im, f, loc))) return st;
                    b->stats->binds_kept++;
                    continue;
                }
                if (b->o->allow_unresolved) {
                    bld_write_ptr(b, loc, 0);
                    if ((st = keep_bind(b, im, f, loc))) return st;
                    b->stats->binds_kept++;
                    continue;
                }
                if (nunresolved++ < 4) {
                    size_t l = strlen(unresolved);
                    snprintf(unresolved + l, sizeof unresolved - l, "%s%s (imported by %s)", l ? ", " : "", f->symbol, im->install_name);
                }
                continue;
            }
            if (st) {
                *b->err = e;
                return st;
            }
            int j = bld_image_of_set_index(b, r.image);
            if (j < 0) return dk_fail(b->err, DK_E_MALFORMED, "%s resolved outside the cache", f->symbol);
            uint64_t value;
            if (r.flags & DK_EXPORT_ABSOLUTE) {
                value = r.address + (uint64_t)f->addend;
                bld_write_ptr(b, loc, value);
                b->stats->binds_resolved++;
                continue;
            }
            uint64_t impl;
            if (!bld_xlate(b, &b->imgs[j], r.address, &impl))
                return dk_fail(b->err, DK_E_MALFORMED, "%s: export %s at 0x%llx is outside its segments", b->imgs[j].install_name, f->symbol,
                               (unsigned long long)r.address);
            value = impl + (uint64_t)f->addend;
            sp.target = value & 0x00FFFFFFFFFFFFFFull;
            sp.high8 = (uint8_t)(value >> 56);
            bld_write_ptr(b, loc, value);
            if ((st = bld_add_ptr(b, &sp))) return st;
            b->stats->binds_resolved++;
            patch_use u = {(uint32_t)i, (uint32_t)j, impl, r.symbol, loc, f->addend, f->weak_import, sp.auth, sp.key, sp.diversity,
                           sp.addr_div, sp.high8, false};
            if ((st = bld_add_use(b, &u))) return st;
        }
    }
    if (nunresolved)
        return dk_fail(b->err, DK_E_NOTFOUND, "%zu unresolvable import%s: %s%s (use --allow-unresolved to keep them as binds)", nunresolved,
                       nunresolved == 1 ? "" : "s", unresolved, nunresolved > 4 ? ", ..." : "");
    return DK_OK;
}

/* ------------------------------------------------------------------ code */

/* Segment of IM holding OLD, or -1. */
static int seg_of(const bimage *im, uint64_t old)
{
    for (size_t i = 0; i < im->nsegs; i++)
        if (old >= im->segs[i].old_addr && old - im->segs[i].old_addr < im->segs[i].old_size) return (int)i;
    return -1;
}

static int64_t seg_delta(const bseg *s) { return (int64_t)(s->new_addr - s->old_addr); }

/* Where OLD (an address in IM) lands after layout; false when it is in no segment of IM. */
static bool moved(const bimage *im, uint64_t old, int *seg, uint64_t *nw)
{
    int s = seg_of(im, old);
    if (s < 0) return false;
    *seg = s;
    *nw = (uint64_t)((int64_t)old + seg_delta(&im->segs[s]));
    return true;
}

/*
 * PC-relative code that reaches another segment of its own image must follow
 * that segment, which the cache layout moves away from __TEXT: ADRP (±4 GiB)
 * is re-encoded; ADR and literal loads (±1 MiB) are re-encoded while in range,
 * and otherwise, when the linker's LOH optimisation left a NOP beside them
 * (adrp+add -> adr+nop, adrp+ldr -> nop+ldr), turned back into the ADRP pair.
 */
static dk_status fix_arm64_section(builder *b, bimage *im, const dk_section *sec, int si)
{
    const bseg *ts = &im->segs[si];
    int64_t d_text = seg_delta(ts);
    uint8_t *out = ts->out + (sec->addr - ts->old_addr);
    for (uint64_t off = 0; off + 4 <= sec->size; off += 4) {
        uint64_t pc = sec->addr + off;
        uint64_t npc = (uint64_t)((int64_t)pc + d_text);
        uint32_t insn = dk_le32(out + off);
        unsigned rd, size = 4;
        uint64_t target, ntarget;
        bool gpr = false;
        int ts2;
        uint64_t own_slot, shared;
        if (a64_got_load(out + off, (size_t)((sec->size - off) / 4), pc, &own_slot) && bld_got_slot(b, im, own_slot, &shared) &&
            !dk__in_data_in_code(im->m, pc)) {
            /* a GOT load: to the cache-wide slot (the pair is adjacent, see a64_got_load) */
            a64_adrp(insn, pc, &rd, &target);
            int64_t pages = ((int64_t)(shared & ~0xFFFull) - (int64_t)(npc & ~0xFFFull)) >> 12;
            if (pages >= -(1ll << 20) && pages < (1ll << 20)) {
                dk_wr32le(out + off, a64_enc_adrp(rd, npc, shared));
                dk_wr32le(out + off + 4, a64_got_load_reoffset(dk_le32(out + off + 4), shared));
                b->stats->got_loads_redirected++;
                off += 4;
                continue;
            }
        }
        if (a64_adrp(insn, pc, &rd, &target)) {
            if (!moved(im, target, &ts2, &ntarget) || ts2 == si || seg_delta(&im->segs[ts2]) == d_text) continue;
            if (dk__in_data_in_code(im->m, pc)) continue;
            int64_t pages = ((int64_t)(ntarget & ~0xFFFull) - (int64_t)(npc & ~0xFFFull)) >> 12;
            if (pages < -(1ll << 20) || pages >= (1ll << 20))
                return dk_fail(b->err, DK_E_UNSUPPORTED, "%s: ADRP at 0x%llx cannot reach its segment after layout", im->install_name,
                               (unsigned long long)pc);
            dk_wr32le(out + off, a64_enc_adrp(rd, npc, ntarget));
            continue;
        }
        bool adr = a64_adr(insn, pc, &rd, &target);
        bool lit = !adr && a64_literal(insn, pc, &rd, &target, &size, &gpr);
        if (!adr && !lit) continue;
        /* a GOT load the linker turned into a literal load (LOH: adrp+ldr -> nop+ldr) */
        bool to_shared = lit && gpr && size == 8 && bld_got_slot(b, im, target, &ntarget);
        if (!to_shared && (!moved(im, target, &ts2, &ntarget) || ts2 == si || seg_delta(&im->segs[ts2]) == d_text)) continue;
        if (dk__in_data_in_code(im->m, pc)) continue;
        if (to_shared) b->stats->got_loads_redirected++;
        /* in range: in place; else the ADRP pair in the NOP the linker left (ADR: after it, load: before it) */
        a64_retarget_kind k = a64_retarget_in(out, sec->size, off, npc, insn, ntarget, adr);
        if (k == A64_RT_NEXT) off += 4;
        if (k != A64_RT_NONE) continue;
        return dk_fail(b->err, DK_E_UNSUPPORTED, "%s: %s at 0x%llx cannot reach 0x%llx after layout (no NOP beside it for an ADRP pair, or a load the pair cannot express)",
                       im->install_name, adr ? "ADR" : "literal load", (unsigned long long)pc, (unsigned long long)target);
    }
    return DK_OK;
}

#ifdef DK_HAVE_CAPSTONE
static dk_status fix_x86_section(builder *b, bimage *im, const dk_section *sec, int si, csh cs)
{
    const bseg *ts = &im->segs[si];
    int64_t d_text = seg_delta(ts);
    uint8_t *out = ts->out + (sec->addr - ts->old_addr);
    const uint8_t *code = out;
    size_t size = sec->size;
    uint64_t addr = sec->addr;
    cs_insn *insn = capstone.malloc(cs);
    if (!insn) return dk_fail(b->err, DK_E_NOMEM, "out of memory");
    dk_status st = DK_OK;
    while (size) {
        const uint8_t *before = code;
        uint64_t at = addr;
        if (!capstone.disasm_iter(cs, &code, &size, &addr, insn)) {
            /* not an instruction (padding, inline data): step one byte */
            code = before + 1;
            size--;
            addr = at + 1;
            continue;
        }
        cs_x86 *x = &insn->detail->x86;
        if (!x->encoding.disp_offset || x->encoding.disp_size != 4) continue;
        bool riprel = false;
        for (uint8_t k = 0; k < x->op_count; k++)
            if (x->operands[k].type == X86_OP_MEM && x->operands[k].mem.base == X86_REG_RIP) riprel = true;
        if (!riprel) continue;
        int32_t disp = (int32_t)dk_le32(before + x->encoding.disp_offset);
        uint64_t target = at + insn->size + (uint64_t)(int64_t)disp, shared;
        if (bld_got_slot(b, im, target, &shared)) {
            /* a load through the image's GOT: to the cache-wide slot (movq sym@GOTPCREL(%rip), callq *...) */
            uint64_t next = (uint64_t)((int64_t)(at + insn->size) + d_text);
            int64_t nd = (int64_t)(shared - next);
            if (nd >= INT32_MIN && nd <= INT32_MAX) {
                dk_wr32le((uint8_t *)before + x->encoding.disp_offset, (uint32_t)(int32_t)nd);
                b->stats->got_loads_redirected++;
                continue;
            }
        }
        int ts2 = seg_of(im, target);
        if (ts2 < 0) {
            /* one past the end of a segment is still that segment */
            ts2 = seg_of(im, target - 1);
            if (ts2 < 0) continue;
        }
        int64_t d = seg_delta(&im->segs[ts2]);
        if (d == d_text) continue;
        int64_t nd = (int64_t)disp + (d - d_text);
        if (nd < INT32_MIN || nd > INT32_MAX) {
            st = dk_fail(b->err, DK_E_UNSUPPORTED, "%s: RIP-relative reference at 0x%llx cannot reach its segment after layout",
                         im->install_name, (unsigned long long)at);
            break;
        }
        dk_wr32le((uint8_t *)before + x->encoding.disp_offset, (uint32_t)(int32_t)nd);
    }
    capstone.free(insn, 1);
    return st;
}
#endif

/* __TEXT,__unwind_info personality slots: u32 offsets from the mach header to pointers in data. */
static void fix_unwind_info(builder *b, bimage *im)
{
    const dk_section *sec = dk_macho_find_section(im->m, "__TEXT", "__unwind_info");
    if (!sec || sec->size < 28) return;
    const bseg *ts = &im->segs[im->text_seg];
    uint8_t *p = ts->out + (sec->addr - ts->old_addr);
    uint32_t poff = dk_le32(p + 12), pcount = dk_le32(p + 16);
    if (!dk_range_ok(poff, (uint64_t)pcount * 4, sec->size)) return;
    for (uint32_t k = 0; k < pcount; k++) {
        uint64_t old = ts->old_addr + dk_le32(p + poff + 4 * k), nw;
        if (bld_xlate(b, im, old, &nw)) dk_wr32le(p + poff + 4 * k, (uint32_t)(nw - im->new_base));
    }
}

/* arm64: BL/B to an own stub whose slot is bound inside the cache goes straight to the target. */
typedef struct stub_map {
    uint64_t old_addr;
    uint64_t target; /* new address the slot holds */
    uint32_t size;
    bool auth;
} stub_map;

typedef struct stub_collect {
    builder *b;
    bimage *im;
    dk_vec v;
} stub_collect;

static int collect_stub(void *ctx, const dk_stub *s)
{
    stub_collect *c = ctx;
    if (!s->has_slot || s->kind == DK_STUB_OBJC_MSGSEND) return 0;
    uint64_t nslot;
    if (!bld_xlate(c->b, c->im, s->slot, &nslot)) return 0;
    const uint8_t *p = bld_at(c->b, nslot, 8);
    if (!p) return 0;
    uint64_t t = dk_le64(p) & 0x00FFFFFFFFFFFFFFull;
    if (!t || !bld_at(c->b, t, 4)) return 0; /* unresolved (kept bind) or not code in the cache */
    stub_map *e = dk_vec_push(&c->v, sizeof *e);
    if (!e) return 1;
    e->old_addr = s->address;
    e->target = t;
    e->size = s->size;
    e->auth = s->kind == DK_STUB_ARM64E;
    return 0;
}

static int stub_cmp(const void *a, const void *b)
{
    const stub_map *x = a, *y = b;
    return x->old_addr < y->old_addr ? -1 : x->old_addr > y->old_addr;
}

static dk_status bypass_stubs(builder *b, bimage *im)
{
    stub_collect c = {b, im, {0}};
    dk_status st = dk_macho_foreach_stub(im->m, collect_stub, &c, b->err);
    if (st) {
        dk_vec_free(&c.v);
        return st == DK_E_STOPPED ? dk_fail(b->err, DK_E_NOMEM, "out of memory") : st;
    }
    stub_map *sm = c.v.data;
    size_t ns = c.v.len;
    if (!ns) return DK_OK;
    qsort(sm, ns, sizeof *sm, stub_cmp);
    size_t nsect;
    const dk_section *secs = dk_macho_sections(im->m, &nsect);
    for (size_t s = 0; s < nsect; s++) {
        const dk_section *sec = &secs[s];
        if (!(sec->flags & 0x80000000u) || (sec->flags & SECTION_TYPE) == S_SYMBOL_STUBS) continue;
        int si = (int)sec->segment;
        if (im->segs[si].region != R_TEXT) continue;
        const bseg *ts = &im->segs[si];
        uint8_t *out = ts->out + (sec->addr - ts->old_addr);
        for (uint64_t off = 0; off + 4 <= sec->size; off += 4) {
            uint32_t insn = dk_le32(out + off);
            bool link;
            uint64_t tgt, pc = sec->addr + off;
            if (!a64_b(insn, pc, &link, &tgt)) continue;
            size_t lo = 0, hi = ns;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (sm[mid].old_addr < tgt) lo = mid + 1;
                else hi = mid;
            }
            if (lo >= ns || sm[lo].old_addr != tgt) continue;
            uint64_t npc = ts->new_addr + (pc - ts->old_addr);
            if (!a64_b_in_range(npc, sm[lo].target)) continue; /* stays on the (now direct) stub */
            dk_wr32le(out + off, a64_enc_b(link, npc, sm[lo].target));
            b->stats->calls_bypassed++;
        }
    }
    /* the stubs themselves become direct: adrp x16, T; add x16, x16, T; br x16 (as the old builder did) */
    for (size_t k = 0; k < ns; k++) {
        uint64_t nstub;
        if (!bld_xlate(b, im, sm[k].old_addr, &nstub)) continue;
        uint8_t *p = bld_at(b, nstub, sm[k].size);
        if (!p || sm[k].size < 12) continue;
        uint64_t t = sm[k].target;
        dk_wr32le(p, a64_enc_adrp(16, nstub, t));
        dk_wr32le(p + 4, a64_enc_add_imm(16, 16, (uint32_t)(t & 0xFFF)));
        dk_wr32le(p + 8, a64_enc_br(16));
        if (sm[k].size >= 16) dk_wr32le(p + 12, 0xD4200020u); /* brk #1 */
    }
    dk_vec_free(&c.v);
    return DK_OK;
}

dk_status bld_fix_code(builder *b)
{
#ifdef DK_HAVE_CAPSTONE
    csh cs = 0;
    if (b->x86_64) {
        pthread_once(&capstone_once, capstone_load);
        if (capstone.error) return dk_fail(b->err, DK_E_UNSUPPORTED, "x86_64 caches need capstone to fix RIP-relative code: %s", capstone.error);
        if (capstone.open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK) return dk_fail(b->err, DK_E_UNSUPPORTED, "capstone: cannot open x86-64");
        capstone.option(cs, CS_OPT_DETAIL, CS_OPT_ON);
    }
#endif
    dk_status st = DK_OK;
    for (size_t i = 0; i < b->nimgs && !st; i++) {
        bimage *im = &b->imgs[i];
        size_t nsect;
        const dk_section *secs = dk_macho_sections(im->m, &nsect);
        for (size_t s = 0; s < nsect && !st; s++) {
            const dk_section *sec = &secs[s];
            if (!(sec->flags & (0x80000000u | 0x400u))) continue; /* S_ATTR_PURE_INSTRUCTIONS / SOME_INSTRUCTIONS */
            int si = (int)sec->segment;
            if (im->segs[si].region != R_TEXT || !sec->size) continue;
            if (b->arm64) {
                st = fix_arm64_section(b, im, sec, si);
            } else {
#ifdef DK_HAVE_CAPSTONE
                st = fix_x86_section(b, im, sec, si, cs);
#else
                bool moved = false;
                for (size_t k = 0; k < im->nsegs; k++)
                    if (im->segs[k].region != R_LINKEDIT && seg_delta(&im->segs[k]) != seg_delta(&im->segs[si])) moved = true;
                if (moved)
                    st = dk_fail(b->err, DK_E_UNSUPPORTED, "x86_64 caches need dyldkit built with capstone (libcapstone-dev) to fix RIP-relative code");
#endif
            }
        }
        if (!st) fix_unwind_info(b, im);
        if (!st && b->arm64) st = bypass_stubs(b, im);
    }
#ifdef DK_HAVE_CAPSTONE
    if (cs) capstone.close(&cs);
#endif
    return st;
}
