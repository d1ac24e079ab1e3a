/* CLI plumbing shared by every subcommand. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_auth_json(out *o, uint8_t key, uint16_t diversity, bool addr_div)
{
    o_obj(o, "auth");
    o_str(o, "key", dk_key_name(key));
    o_u64(o, "diversity", diversity);
    o_bool(o, "addr_div", addr_div);
    o_obj_end(o);
}

void cli_auth_human(out *o, uint8_t key, uint16_t diversity, bool addr_div)
{
    o_printf(o, "  auth %s diversity 0x%04x%s", dk_key_name(key), diversity, addr_div ? " addr_div" : "");
}

void cli_error(const char *what, const dk_error *err)
{
    fflush(stdout);
    const char *msg = err && err->message[0] ? err->message : dk_strerror(err ? err->status : DK_E_MALFORMED);
    size_t n = strlen(what);
    if (strncmp(msg, what, n) == 0 && msg[n] == ':') fprintf(stderr, "dyldkit: %s\n", msg); /* it names the file already */
    else fprintf(stderr, "dyldkit: %s: %s\n", what, msg);
}

void cli_finding(cli *c, const char *fmt, ...)
{
    if (c->o.null) return; /* only the printing pass counts */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->finding, sizeof c->finding, fmt, ap);
    va_end(ap);
    c->has_finding = true;
}

void cli_errorf(const char *fmt, ...)
{
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    fputs("dyldkit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_usage(const cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dyldkit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nRun 'dyldkit help %s' for usage.\n", c && c->cmd ? c->cmd : "");
    va_end(ap);
    return EXIT_USAGE;
}

dk_status cli_fail(dk_error *err, dk_status status, const char *fmt, ...)
{
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

void *cli_vec_push(cli_vec *v, size_t elem)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        void *p = realloc(v->data, cap * elem);
        if (!p) return NULL;
        v->data = p;
        v->cap = cap;
    }
    void *e = (char *)v->data + elem * v->len++;
    memset(e, 0, elem);
    return e;
}

void cli_vec_free(cli_vec *v)
{
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

const char *cli_basename(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

bool cli_parse_u64(const char *s, uint64_t *value)
{
    if (!s || !*s) return false;
    errno = 0;
    char *end;
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        if (!*s) return false;
    }
    if (*s == '-' || *s == '+' || *s == ' ') return false;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || *end) return false;
    *value = v;
    return true;
}

static void slice_label(const char *file, const dk_slice *s, bool multi, char *buf, size_t n)
{
    if (!multi) snprintf(buf, n, "%s", file);
    else if (s->member) snprintf(buf, n, "%s(%s)", file, s->member);
    else snprintf(buf, n, "%s (%s)", file, s->arch);
}

/*
 * CACHE:IMAGE names an image inside a dyld shared cache: when PATH is not a
 * file, the first prefix before a ':' that is a regular file is opened as a
 * cache and the rest names the image (install path, basename or index).
 * Returns -1 when PATH is not of that form, 0 with *DC and *INDEX set, or
 * EXIT_BAD_INPUT after reporting why.
 */
static int open_cache_image(const char *path, dk_cache **dc, size_t *index)
{
    struct stat sb;
    *dc = NULL;
    if (stat(path, &sb) == 0) return -1;
    for (const char *colon = strchr(path, ':'); colon; colon = strchr(colon + 1, ':')) {
        char *prefix = strndup(path, (size_t)(colon - path));
        bool file = prefix && stat(prefix, &sb) == 0 && S_ISREG(sb.st_mode);
        dk_error err = {0};
        dk_status st = file ? dk_cache_open(prefix, dc, &err) : DK_E_NOTFOUND;
        free(prefix);
        if (!file) continue;
        if (!st && !(st = dk_cache_find_image(*dc, colon + 1, index, &err))) return 0;
        cli_error(path, &err);
        dk_cache_close(*dc);
        *dc = NULL;
        return EXIT_BAD_INPUT;
    }
    return -1;
}

/* Open image INDEX of a cache as the one "slice" of a CACHE:IMAGE argument. */
static dk_status open_cache_slice(dk_cache *dc, size_t index, dk_macho **m, dk_slice *s, dk_error *err)
{
    dk_status st = dk_cache_open_image(dc, index, m, err);
    if (st) return st;
    memset(s, 0, sizeof *s);
    s->kind = DK_SLICE_MACHO;
    s->cputype = dk_macho_header(*m)->cputype;
    s->cpusubtype = dk_macho_header(*m)->cpusubtype;
    s->arch = dk_macho_arch(*m);
    size_t size;
    dk_macho_data(*m, &size);
    s->size = size;
    return DK_OK;
}

int cli_each_slice(cli *c, slice_fn fn)
{
    if (c->npos < 1) return cli_usage(c, "%s: missing FILE", c->cmd);
    const char *path = c->pos[0];
    dk_error err = {0};
    dk_file *f = NULL;
    dk_cache *dc;
    size_t cache_image = 0;
    int crc = open_cache_image(path, &dc, &cache_image);
    if (crc > 0) return crc;
    if (!dc && dk_file_open(path, &f, &err)) {
        cli_error(path, &err);
        return EXIT_BAD_INPUT;
    }
    size_t n = dc ? 1 : dk_file_slice_count(f);
    size_t first = 0, last = n;
    if (c->arch && !dc) {
        size_t idx;
        if (dk_file_find_arch(f, c->arch, &idx, &err)) {
            cli_errorf("%s: no slice for architecture '%s'", path, c->arch);
            dk_file_close(f);
            return EXIT_USAGE;
        }
        first = idx;
        last = idx + 1;
    }
    bool multi = !dc && ((last - first) > 1 || (dk_file_fat_magic(f) && !c->arch) || dk_file_is_archive(f));
    int rc = EXIT_OK;
    /* The images the checking pass opened serve the output pass too (what they
     * learned, e.g. that their fixups passed every check, is kept), up to a few. */
    enum { KEEP = 64 };
    dk_macho *kept[KEEP] = {0};
    dk_slice kept_cs = {0};
    bool keep = last - first <= KEEP;
    for (int pass = 0; pass < 2 && rc == EXIT_OK; pass++) {
        out *o = &c->o;
        out_set_null(o, pass == 0);
        if (o->json) {
            o_obj(o, NULL);
            o_u64(o, "schema", 1);
            o_str(o, "file", path);
            if (multi) o_arr(o, "slices");
        }
        for (size_t i = first; i < last; i++) {
            dk_slice cs = {0};
            const dk_slice *s = dc ? &cs : dk_file_slice(f, i);
            char label[1024];
            slice_label(path, s, multi, label, sizeof label);
            dk_macho *m = keep ? kept[i - first] : NULL;
            memset(&err, 0, sizeof err);
            dk_status st = DK_OK;
            if (m) cs = kept_cs;
            else st = dc ? open_cache_slice(dc, cache_image, &m, &cs, &err) : dk_file_open_macho(f, i, &m, &err);
            if (!st) {
                if (o->json) {
                    if (multi) {
                        o_obj(o, NULL);
                        o_u64(o, "schema", 1);
                        o_str(o, "file", path);
                    }
                    o_str(o, "arch", dk_macho_arch(m));
                    if (s->member) o_str(o, "member", s->member);
                } else if (multi) {
                    if (i > first) o_printf(o, "\n");
                    o_printf(o, "%s%s%s:\n", c_head(o), label, c_off(o));
                }
                st = fn(c, m, s, &err);
                if (o->json && multi) o_obj_end(o);
            }
            if (keep && pass == 0 && m) {
                kept[i - first] = m;
                kept_cs = cs;
            } else {
                dk_macho_close(m);
                if (keep) kept[i - first] = NULL;
            }
            if (st) {
                if (st == DK_E_STOPPED) continue;
                cli_error(label, &err);
                rc = EXIT_BAD_INPUT;
                break;
            }
        }
        if (rc == EXIT_OK && o->json) {
            if (multi) o_arr_end(o);
            o_obj_end(o);
        }
    }
    out_set_null(&c->o, false);
    for (size_t i = 0; keep && i < last - first; i++) dk_macho_close(kept[i]);
    dk_file_close(f);
    dk_cache_close(dc);
    if (rc == EXIT_OK && c->has_finding) {
        out_flush(&c->o);
        cli_errorf("%s: %s", path, c->finding);
        rc = EXIT_BAD_INPUT;
    }
    return rc;
}

/* --------------------------------------------------- shared fixup output */

void fixup_location(const dk_macho *m, const dk_fixup *f, char *buf, size_t n)
{
    size_t ns, nc;
    const dk_segment *segs = dk_macho_segments(m, &ns);
    const dk_section *secs = dk_macho_sections(m, &nc);
    const char *seg = f->segment >= 0 && (size_t)f->segment < ns ? segs[f->segment].segname : "?";
    const char *sec = f->section >= 0 && (size_t)f->section < nc ? secs[f->section].sectname : "";
    snprintf(buf, n, "%s%s%s", seg, *sec ? "," : "", sec);
}

#define LIT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) + sizeof(s) - 1)

/* LIT1 then the JSON string S1, LIT2 then S2 (when LIT2), LIT3 at P, before END;
 * NULL when a string needs escaping or does not fit. */
static char *pieces_at(char *p, const char *end, const char *lit1, const char *s1, const char *lit2, const char *s2,
                       const char *lit3)
{
    const char *lits[3] = {lit1, lit2, lit3}, *strs[2] = {s1, s2};
    for (int i = 0; i < 3 && p; i++) {
        if (!lits[i]) continue;
        size_t n = strlen(lits[i]);
        if (n > (size_t)(end - p)) return NULL;
        memcpy(p, lits[i], n);
        p += n;
        if (i < 2) p = json_str_at(p, end, strs[i]);
    }
    return p;
}

/* Names of the segment and section F lies in, NULL when none. */
static const char *fixup_segname(const dk_macho *m, const dk_fixup *f)
{
    size_t ns;
    const dk_segment *segs = dk_macho_segments(m, &ns);
    return f->segment >= 0 && (size_t)f->segment < ns ? segs[f->segment].segname : NULL;
}

static const char *fixup_sectname(const dk_macho *m, const dk_fixup *f)
{
    size_t nc;
    const dk_section *secs = dk_macho_sections(m, &nc);
    return f->section >= 0 && (size_t)f->section < nc ? secs[f->section].sectname : NULL;
}

/* T's head and mid texts rendered for F (whose kind T is for); false when a
 * name needs escaping or the texts do not fit. */
static __attribute__((noinline)) bool memo_template(struct fixup_json_template *t, const dk_macho *m, const dk_fixup *f)
{
    char *p = pieces_at(t->head, t->head + sizeof t->head, "{\"kind\":", dk_fixup_kind_name(f->kind), NULL, NULL,
                        ",\"address\":");
    if (!p) return false;
    t->head_len = (uint8_t)(p - t->head);
    p = pieces_at(t->mid, t->mid + sizeof t->mid, ",\"segment\":", fixup_segname(m, f), ",\"section\":",
                  fixup_sectname(m, f), f->kind == DK_FIXUP_REBASE ? ",\"target\":" : ",\"ordinal\":");
    if (!p) return false;
    t->mid_len = (uint8_t)(p - t->mid);
    t->segment = f->segment;
    t->section = f->section;
    t->have = true;
    return true;
}

static __attribute__((noinline)) bool memo_dylib(fixup_json_memo *memo, const dk_macho *m, int64_t ordinal)
{
    char *p = pieces_at(memo->dylib, memo->dylib + sizeof memo->dylib, ",\"dylib\":", dk_macho_ordinal_name(m, ordinal),
                        NULL, NULL, "");
    if (!p) return false;
    memo->dylib_len = (uint16_t)(p - memo->dylib);
    memo->dylib_ordinal = ordinal;
    return true;
}

/* 16-byte blocks copied as such (a fixed-size memcpy of 64 bytes may become
 * a microcoded `rep movs`, slower than the whole fast path). */
typedef char copy_block __attribute__((vector_size(16), aligned(1), may_alias));
static inline void copy32(char *d, const char *s)
{
    copy_block a = ((const copy_block *)s)[0], b = ((const copy_block *)s)[1];
    ((copy_block *)d)[0] = a;
    ((copy_block *)d)[1] = b;
}

/* The common fixup (no auth, no chain details, pointer type) as one piece of
 * JSON text, byte for byte what emit_fixup_json below writes; false when
 * a string needs escaping or does not fit (emit_fixup_json then runs). */
static inline __attribute__((always_inline)) bool fixup_json_fast(out *o, const dk_macho *m, const dk_fixup *f, fixup_json_memo *memo)
{
    enum { ROOM = 768 };
    char local[ROOM], *b = o_reserve(o, ROOM), *p; /* in place when the buffer has room */
    if (!b) b = local;
    p = b;
    const char *end = b + ROOM - 96; /* room for the numbers and keys after each string */
    if ((unsigned)f->kind >= sizeof memo->t / sizeof memo->t[0]) return false;
    struct fixup_json_template *t = &memo->t[f->kind];
    if (!(t->have && t->segment == f->segment && t->section == f->section) && !memo_template(t, m, f)) return false;
    copy32(p, t->head); /* whole: the buffer has ROOM */
    p = json_u64_at(p + t->head_len, f->address);
    copy32(p, t->mid);
    copy32(p + 32, t->mid + 32);
    if (t->mid_len > 64) copy32(p + 64, t->mid + 64);
    p += t->mid_len;
    if (f->kind == DK_FIXUP_REBASE) {
        p = json_u64_at(p, f->target);
        if (f->high8) {
            p = LIT(p, ",\"high8\":");
            p = json_u64_at(p, f->high8);
        }
    } else {
        p = json_i64_at(p, f->ordinal);
        if (!(memo->dylib_len && memo->dylib_ordinal == f->ordinal) && !memo_dylib(memo, m, f->ordinal)) return false;
        for (size_t i = 0; i < sizeof memo->dylib; i += 32) copy32(p + i, memo->dylib + i);
        p += memo->dylib_len;
        p = LIT(p, ",\"symbol\":");
        p = json_str_at(p, end, f->symbol);
        if (!p) return false;
        p = LIT(p, ",\"addend\":");
        p = json_i64_at(p, f->addend);
        p = f->weak_import ? LIT(p, ",\"weak_import\":true") : LIT(p, ",\"weak_import\":false");
        if (f->kind == DK_FIXUP_LAZY_BIND) {
            p = LIT(p, ",\"lazy_bind_offset\":");
            p = json_u64_at(p, f->lazy_offset);
        }
    }
    *p++ = '}';
    if (b == local) o_raw(o, NULL, b, (size_t)(p - b));
    else o_commit(o, b, p);
    return true;
}

__attribute__((noinline)) void emit_fixup_json(out *o, const dk_macho *m, const dk_fixup *f, bool chain, uint32_t next)
{
    o_obj(o, NULL);
    o_str(o, "kind", dk_fixup_kind_name(f->kind));
    if (f->strong) {
        o_bool(o, "strong", true);
        o_str(o, "symbol", f->symbol);
        o_obj_end(o);
        return;
    }
    o_u64(o, "address", f->address);
    const char *segname = fixup_segname(m, f), *sectname = fixup_sectname(m, f);
    if (segname) o_str(o, "segment", segname);
    else o_null(o, "segment");
    if (sectname) o_str(o, "section", sectname);
    else o_null(o, "section");
    if (f->kind == DK_FIXUP_REBASE) {
        o_u64(o, "target", f->target);
        if (f->high8) o_u64(o, "high8", f->high8);
    } else {
        o_i64(o, "ordinal", f->ordinal);
        const char *d = dk_macho_ordinal_name(m, f->ordinal);
        if (d) o_str(o, "dylib", d);
        else o_null(o, "dylib");
        o_str(o, "symbol", f->symbol);
        o_i64(o, "addend", f->addend);
        o_bool(o, "weak_import", f->weak_import);
        if (f->kind == DK_FIXUP_LAZY_BIND) o_u64(o, "lazy_bind_offset", f->lazy_offset);
    }
    if (f->type > 1) o_str(o, "type", f->type == 2 ? "text_absolute32" : "text_pcrel32");
    if (f->auth) cli_auth_json(o, f->key, f->diversity, f->addr_div);
    if (chain) {
        o_u64(o, "raw", f->raw);
        o_u64(o, "next", next);
        if (f->kind != DK_FIXUP_REBASE) o_u64(o, "import_index", f->import_index);
    }
    o_obj_end(o);
}

int fixup_json_cb(void *ctx, const dk_fixup *f)
{
    fixup_json_ctx *x = ctx;
    if (f->strong || f->auth || f->type > 1 || x->o->depth <= 0 || !fixup_json_fast(x->o, x->m, f, &x->memo))
        emit_fixup_json(x->o, x->m, f, false, 0);
    return 0;
}
