/* Shared CLI plumbing: options, the per-slice runner, error reporting. */
#ifndef DYLDKIT_TOOLS_CLI_H
#define DYLDKIT_TOOLS_CLI_H

#include "dyldkit/dyldkit.h"
#include "out.h"

#define CLI_MAX_MULTI 32

typedef struct cli {
    const char *cmd;         /* subcommand name ("fixups", "cache info") */
    bool json;
    const char *arch;
    const char **pos;        /* positional arguments (room for every argument) */
    int npos;
    /* command options (each command accepts a subset) */
    const char *root;
    const char *output;
    const char *libdirs[CLI_MAX_MULTI];
    int nlibdirs;
    const char *format;
    const char *fixups_mode;
    const char *ret;
    const char *symbols_file;
    const char *slide;
    int jobs;
    bool all, pointers, selectors, lazy, sign, allow_unresolved, verbose;
    int unique_gots; /* cache build: 1 --unique-gots, -1 --no-unique-gots */
    out o;
    /* A finding to report after complete output (resolve --all, verify): the
     * command printed its report and still exits 1 with this message. */
    bool has_finding;
    char finding[512];
} cli;

/* Exit statuses (interface.md). */
enum { EXIT_OK = 0, EXIT_BAD_INPUT = 1, EXIT_USAGE = 2 };

typedef dk_status (*slice_fn)(cli *c, dk_macho *m, const dk_slice *s, dk_error *err);

/**
 * Open c->pos[0], then for the selected slices (all, or --arch) run FN twice:
 * first into a discarding sink to validate, then for real.  Handles the JSON
 * document frame ("schema", "file", "slices").  Returns an exit status.
 */
int cli_each_slice(cli *c, slice_fn fn);

/** Record a finding: output stays complete, the command exits 1 with MSG on stderr. */
void cli_finding(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Print "dyldkit: WHAT: message" to stderr. */
void cli_error(const char *what, const dk_error *err);
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** arm64e pointer authentication data: JSON "auth":{key, diversity, addr_div}; human "  auth IA diversity 0x1234 addr_div". */
void cli_auth_json(out *o, uint8_t key, uint16_t diversity, bool addr_div);
void cli_auth_human(out *o, uint8_t key, uint16_t diversity, bool addr_div);
/** Usage error: message plus a pointer to help; returns EXIT_USAGE. */
int cli_usage(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Fill ERR (if any) like the library does and return STATUS. */
dk_status cli_fail(dk_error *err, dk_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** A growable array for the CLI's own bookkeeping. */
typedef struct cli_vec {
    void *data;
    size_t len, cap;
} cli_vec;
/** Room for one more element of ELEM bytes (zeroed), or NULL when out of memory. */
void *cli_vec_push(cli_vec *v, size_t elem);
void cli_vec_free(cli_vec *v);

/** Basename of a path (pointer into it). */
const char *cli_basename(const char *path);
/** Parse an unsigned integer (decimal or 0x hex); false on junk. */
bool cli_parse_u64(const char *s, uint64_t *value);

/* shared JSON/human pieces */
/** JSON pieces one image's fixups repeat, kept rendered: per kind, for the
 *  segment and section of its last fixup, the text before the address and
 *  the text after it up to the next number ("target" or "ordinal"); and the
 *  dylib of the last ordinal.  Zero-initialise one per image, or pass NULL. */
typedef struct fixup_json_memo {
    struct fixup_json_template {
        bool have; /* head and mid hold this kind at segment, section */
        uint8_t head_len, mid_len;
        int segment, section;
        char head[32]; /* {"kind":"rebase","address": */
        char mid[96];  /* ,"segment":"__DATA","section":"__data","target": */
    } t[4];            /* by dk_fixup_kind */
    int64_t dylib_ordinal;
    uint16_t dylib_len; /* 0: empty */
    char dylib[96];     /* ,"dylib":"/usr/lib/libSystem.B.dylib" */
} fixup_json_memo;
/** One fixups[] element (interface.md); CHAIN adds raw, next and import_index. */
void emit_fixup_json(out *o, const dk_macho *m, const dk_fixup *f, bool chain, uint32_t next);
/** A dk_fixup_cb writing each fixup as a fixups[] element of O (JSON, not
 *  discarded), one call per fixup; zero-initialise MEMO per image. */
typedef struct fixup_json_ctx {
    out *o;
    const dk_macho *m;
    fixup_json_memo memo;
} fixup_json_ctx;
int fixup_json_cb(void *ctx, const dk_fixup *f);
void fixup_location(const dk_macho *m, const dk_fixup *f, char *buf, size_t n);

/* ------------------------------------------------------------ commands */

typedef int (*cmd_fn)(cli *c);

typedef struct command {
    const char *name;     /* "fixups", "cache info" */
    cmd_fn fn;
    const char *args;     /* usage after the name */
    const char *options;  /* comma list of accepted options; "name=" takes a value */
    const char *summary;
    const char *help;     /* longer text */
} command;

/* Options every Mach-O inspection command accepts. */
#define MACHO_OPTS "json,arch="

/*
 * Each group of subcommands lives in its own file and exports its table;
 * dyldkit.c lists the groups.  A table ends with a {NULL} entry.
 */
extern const command cmds_macho[];  /* cmd_macho.c: info loadcmds segments symbols dylibs exports fixups chains opcodes */
extern const command cmds_stubs[];  /* cmd_stubs.c: stubs resolve verify */
extern const command cmds_objc[];   /* cmd_objc.c: objc */
extern const command cmds_cache[];  /* cmd_cache.c: cache ... */
extern const command cmds_call[];   /* cmd_call.c: call */
extern const command cmds_build[];  /* cmd_build.c: cache build */
extern const command cmds_extract[];/* cmd_extract.c: cache extract */

#endif
