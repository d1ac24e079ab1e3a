/* Subcommand: cache build. */
#include "cli.h"

#include "dyldkit/builder.h"

#include <stdlib.h>
#include <string.h>

static void warn_cb(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "dyldkit: warning: %s\n", msg);
}

static int cmd_cache_build(cli *c)
{
    if (!c->output) return cli_usage(c, "cache build needs -o CACHE");
    if (c->npos < 1) return cli_usage(c, "cache build needs at least one DYLIB");
    dk_build_opts o;
    memset(&o, 0, sizeof o);
    o.output = c->output;
    o.inputs = c->pos;
    o.ninputs = (size_t)c->npos;
    o.arch = c->arch;
    o.allow_unresolved = c->allow_unresolved;
    o.symbols_file = c->symbols_file != NULL;
    o.unique_gots = c->unique_gots;
    o.warn = c->verbose ? warn_cb : NULL;
    if (c->format) {
        uint64_t f;
        if (!cli_parse_u64(c->format, &f) || (f != 832 && f != 1042))
            return cli_usage(c, "--format must be 832 (one file) or 1042 (split sub-caches)");
        o.format = (int)f;
    }
    if (c->unique_gots > 0 && o.format != 1042) return cli_usage(c, "--unique-gots needs --format 1042");
    if (c->slide) {
        const char *v = c->slide[0] == 'v' ? c->slide + 1 : c->slide;
        uint64_t n;
        if (!cli_parse_u64(v, &n) || n < 1 || n > 5) return cli_usage(c, "--slide must be v1, v2, v3, v4 or v5");
        o.slide_version = (int)n;
    }
    dk_build_stats st;
    dk_error err = {0};
    if (dk_cache_build(&o, &st, &err)) {
        cli_error(c->output, &err);
        return EXIT_BAD_INPUT;
    }
    out *p = &c->o;
    if (p->json) {
        o_obj(p, NULL);
        o_u64(p, "schema", 1);
        o_str(p, "file", c->output);
        o_u64(p, "images", st.images);
        o_u64(p, "mappings", st.mappings);
        o_u64(p, "files", st.files);
        o_u64(p, "size", st.cache_size);
        o_u64(p, "rebases", st.rebases);
        o_u64(p, "binds_resolved", st.binds_resolved);
        o_u64(p, "binds_kept", st.binds_kept);
        o_u64(p, "selectors", st.selectors);
        o_u64(p, "protocols_uniqued", st.protocols_uniqued);
        o_u64(p, "calls_bypassed", st.calls_bypassed);
        o_u64(p, "gots_uniqued", st.gots_uniqued);
        o_u64(p, "got_slots", st.got_slots);
        o_u64(p, "got_loads_redirected", st.got_loads_redirected);
        o_u64(p, "selector_loads_direct", st.selector_loads_direct);
        o_obj_end(p);
    } else {
        o_printf(p, "%s: %zu images, %zu mappings in %zu file%s, %llu bytes; %zu pointers slid, %zu binds resolved",
                 c->output, st.images, st.mappings, st.files, st.files == 1 ? "" : "s", (unsigned long long)st.cache_size, st.rebases,
                 st.binds_resolved);
        if (st.binds_kept) o_printf(p, ", %zu kept as binds", st.binds_kept);
        if (st.selectors) o_printf(p, ", %zu selectors uniqued", st.selectors);
        if (st.protocols_uniqued) o_printf(p, ", %zu protocol references uniqued", st.protocols_uniqued);
        if (st.calls_bypassed) o_printf(p, ", %zu calls bypass their stubs", st.calls_bypassed);
        if (st.selector_loads_direct) o_printf(p, ", %zu selector loads made direct", st.selector_loads_direct);
        if (st.gots_uniqued)
            o_printf(p, ", %zu GOT entries share %zu cache-wide slots (%zu loads re-aimed)", st.gots_uniqued, st.got_slots,
                     st.got_loads_redirected);
        o_printf(p, "\n");
    }
    return EXIT_OK;
}

const command cmds_build[] = {
    {"cache build", cmd_cache_build,
     "-o CACHE [--arch A] [--format 832|1042] [--slide v1..v5] [--symbols-file] [--allow-unresolved] [--[no-]unique-gots] [-v] DYLIB...",
     "json,arch=,o=,format=,slide=,symbols-file,allow-unresolved,unique-gots,no-unique-gots,verbose,v", "build a dyld shared cache from dylibs",
     "Build a dyld shared cache the way Apple's builder does: every __TEXT in one\n"
     "mapping after the cache header, data segments grouped by kind, one shared\n"
     "LINKEDIT; rebases applied, binds resolved through export tries and\n"
     "re-exports, arm64 calls pointed straight at their targets, selectors\n"
     "and ObjC protocols uniqued, slide info for every data mapping (v2\n"
     "arm64/x86_64, v3 arm64e, v4 arm64_32 by default), local symbols\n"
     "unmapped, a patch table (v1 for 832, v3 for 1042).\n"
     "--format 832 writes one file; 1042 writes CACHE, CACHE.01 (data),\n"
     "CACHE.dyldlinkedit and CACHE.symbols, and (as Apple's new builder)\n"
     "uniques GOT entries into cache-wide slots; --no-unique-gots keeps them\n"
     "per image.  Every dependency must be among the\n"
     "inputs unless --allow-unresolved keeps missing imports as binds.\n"},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
