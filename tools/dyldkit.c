/* dyldkit: the command-line front end.  Dispatch, option parsing and help. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const command *const groups[] = {cmds_macho, cmds_stubs, cmds_objc, cmds_cache, cmds_extract, cmds_build, cmds_call};
#define NGROUPS (sizeof groups / sizeof groups[0])

static void print_usage(FILE *f)
{
    fprintf(f,
            "dyldkit %s — inspect Mach-O files and dyld shared caches\n\n"
            "usage: dyldkit COMMAND [options] ARGS\n"
            "       dyldkit help [COMMAND]\n\n"
            "commands:\n",
            dk_version());
    for (size_t g = 0; g < NGROUPS; g++)
        for (const command *c = groups[g]; c->name; c++) fprintf(f, "  %-16s %s\n", c->name, c->summary);
    fprintf(f,
            "\nEvery inspection command takes --json (one JSON document, \"schema\": 1) and\n"
            "--arch NAME for universal files (default: every slice).\n"
            "Exit status: 0 success, 1 malformed or unsupported input, 2 usage error.\n");
}

static void print_command_help(const command *c, FILE *f)
{
    fprintf(f, "usage: dyldkit %s %s\n\n%s", c->name, c->args, c->help);
}

static const command *find_command(const char *name)
{
    for (size_t g = 0; g < NGROUPS; g++)
        for (const command *c = groups[g]; c->name; c++)
            if (strcmp(c->name, name) == 0) return c;
    return NULL;
}

/* Does the command accept option NAME; *VALUE set when it takes an argument. */
static bool accepts(const command *cmd, const char *name, bool *value)
{
    const char *p = cmd->options;
    size_t n = strlen(name);
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool takes = len && p[len - 1] == '=';
        size_t base = takes ? len - 1 : len;
        if (base == n && strncmp(p, name, n) == 0) {
            *value = takes;
            return true;
        }
        p = e ? e + 1 : NULL;
    }
    return false;
}

static int parse_args(cli *c, const command *cmd, int argc, char **argv)
{
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        /* "-7" is a (negative number) argument, never an option: `call LIB negate -7` */
        if (only_pos || a[0] != '-' || a[1] == 0 || (a[1] >= '0' && a[1] <= '9')) {
            c->pos[c->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_command_help(cmd, stdout);
            exit(EXIT_OK);
        }
        /* -L DIR and -o DIR, -j N short forms */
        const char *name = a;
        const char *val = NULL;
        char buf[64];
        if (a[1] != '-') {
            if (strcmp(a, "-L") == 0) name = "L";
            else if (strcmp(a, "-o") == 0) name = "o";
            else if (strcmp(a, "-j") == 0) name = "j";
            else if (strcmp(a, "-v") == 0) name = "v";
            else if (strncmp(a, "-j", 2) == 0 && a[2]) { name = "j"; val = a + 2; }
            else return cli_usage(c, "%s: unknown option '%s'", cmd->name, a);
        } else {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (len >= sizeof buf) return cli_usage(c, "%s: unknown option '%s'", cmd->name, a);
            memcpy(buf, a + 2, len);
            buf[len] = 0;
            name = buf;
            if (eq) val = eq + 1;
        }
        bool takes;
        if (!accepts(cmd, name, &takes)) return cli_usage(c, "%s: unknown option '%s'", cmd->name, a);
        if (takes && !val) {
            if (i + 1 >= argc) return cli_usage(c, "%s: option '%s' needs a value", cmd->name, a);
            val = argv[++i];
        } else if (!takes && val) {
            return cli_usage(c, "%s: option '--%s' takes no value", cmd->name, name);
        }
        if (strcmp(name, "json") == 0) c->json = true;
        else if (strcmp(name, "arch") == 0) c->arch = val;
        else if (strcmp(name, "root") == 0) c->root = val;
        else if (strcmp(name, "o") == 0 || strcmp(name, "output") == 0) c->output = val;
        else if (strcmp(name, "L") == 0) {
            if (c->nlibdirs >= CLI_MAX_MULTI) return cli_usage(c, "too many -L");
            c->libdirs[c->nlibdirs++] = val;
        } else if (strcmp(name, "format") == 0) c->format = val;
        else if (strcmp(name, "fixups") == 0) c->fixups_mode = val;
        else if (strcmp(name, "ret") == 0) c->ret = val;
        else if (strcmp(name, "symbols-file") == 0) c->symbols_file = val ? val : "";
        else if (strcmp(name, "slide") == 0) c->slide = val;
        else if (strcmp(name, "j") == 0 || strcmp(name, "jobs") == 0) {
            uint64_t n;
            if (!cli_parse_u64(val, &n) || n == 0 || n > 1024) return cli_usage(c, "%s: bad job count '%s'", cmd->name, val);
            c->jobs = (int)n;
        } else if (strcmp(name, "all") == 0) c->all = true;
        else if (strcmp(name, "pointers") == 0) c->pointers = true;
        else if (strcmp(name, "selectors") == 0) c->selectors = true;
        else if (strcmp(name, "lazy") == 0) c->lazy = true;
        else if (strcmp(name, "sign") == 0) c->sign = true;
        else if (strcmp(name, "allow-unresolved") == 0) c->allow_unresolved = true;
        else if (strcmp(name, "unique-gots") == 0) c->unique_gots = 1;
        else if (strcmp(name, "no-unique-gots") == 0) c->unique_gots = -1;
        else if (strcmp(name, "verbose") == 0 || strcmp(name, "v") == 0) c->verbose = true;
    }
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        if (argc >= 3) {
            char full[64];
            snprintf(full, sizeof full, "%s%s%s", argv[2], argc >= 4 ? " " : "", argc >= 4 ? argv[3] : "");
            const command *c = find_command(full);
            if (!c) c = find_command(argv[2]);
            if (!c) {
                fprintf(stderr, "dyldkit: no such command '%s'\n", full);
                return EXIT_USAGE;
            }
            print_command_help(c, stdout);
            return EXIT_OK;
        }
        print_usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("dyldkit %s\n", dk_version());
        return EXIT_OK;
    }
    int first = 2;
    const command *cmd = NULL;
    if (argc >= 3) {
        char full[64];
        snprintf(full, sizeof full, "%s %s", argv[1], argv[2]);
        cmd = find_command(full);
        if (cmd) first = 3;
    }
    if (!cmd) cmd = find_command(name);
    if (!cmd) {
        fprintf(stderr, "dyldkit: unknown command '%s'\n", name);
        print_usage(stderr);
        return EXIT_USAGE;
    }
    cli c;
    memset(&c, 0, sizeof c);
    c.cmd = cmd->name;
    /* as many positional arguments as there are arguments (`cache build` of
     * thousands of dylibs) */
    c.pos = calloc((size_t)argc + 1, sizeof *c.pos);
    if (!c.pos) {
        fprintf(stderr, "dyldkit: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    int rc = parse_args(&c, cmd, argc - first, argv + first);
    if (rc) {
        free(c.pos);
        return rc;
    }
    const char *nc = getenv("NO_COLOR");
    bool color = isatty(STDOUT_FILENO) && !(nc && *nc);
    out_init(&c.o, stdout, c.json, color);
    rc = cmd->fn(&c);
    out_flush(&c.o);
    out_free(&c.o);
    free(c.pos);
    if (ferror(stdout)) {
        fprintf(stderr, "dyldkit: error writing output\n");
        return EXIT_BAD_INPUT;
    }
    return rc;
}
