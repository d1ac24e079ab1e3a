/*
 * dyldkit Mach-O reader: files (thin, universal, archives), images, load
 * commands, segments, symbols, dyld info opcodes, the export trie, chained
 * fixups, stubs and Objective-C metadata.
 *
 * Structure and field names follow Apple's <mach-o/loader.h>, <mach-o/nlist.h>,
 * <mach-o/fat.h> and <mach-o/fixup-chains.h>.
 */
#ifndef DYLDKIT_MACHO_H
#define DYLDKIT_MACHO_H

#include "dyldkit/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ files */

typedef struct dk_file dk_file;
typedef struct dk_macho dk_macho;

typedef enum dk_slice_kind {
    DK_SLICE_MACHO,   /* a Mach-O image (thin file, fat slice or archive member) */
    DK_SLICE_ARCHIVE, /* a static archive (fat slice holding "!<arch>") */
    DK_SLICE_OTHER    /* anything else (bad magic inside a fat file) */
} dk_slice_kind;

/** One image inside a file: the whole thin file, one fat slice, or one archive member. */
typedef struct dk_slice {
    dk_slice_kind kind;
    uint32_t cputype;    /* from the fat_arch, else from the mach_header */
    uint32_t cpusubtype;
    uint64_t offset;     /* file offset of the slice */
    uint64_t size;
    uint32_t align;      /* fat_arch.align (log2), 0 for thin files */
    const char *arch;    /* "arm64", "x86_64", "ppc", ... or "cpu<N>" */
    const char *member;  /* archive member name, else NULL */
} dk_slice;

/** Map PATH read-only and identify its slices.  Fat headers are validated here. */
dk_status dk_file_open(const char *path, dk_file **out, dk_error *err);
/** Same over caller memory (which must outlive the handle); NAME is used in messages. */
dk_status dk_file_open_buffer(const void *data, size_t size, const char *name, dk_file **out,
                              dk_error *err);
void dk_file_close(dk_file *file);

const char *dk_file_name(const dk_file *file);
const uint8_t *dk_file_data(const dk_file *file, size_t *size);
/** FAT_MAGIC / FAT_MAGIC_64 for universal files, 0 for thin files and archives. */
uint32_t dk_file_fat_magic(const dk_file *file);
bool dk_file_is_archive(const dk_file *file);
size_t dk_file_slice_count(const dk_file *file);
const dk_slice *dk_file_slice(const dk_file *file, size_t index);
/** Index of the first slice whose arch name is ARCH, or DK_E_NOTFOUND. */
dk_status dk_file_find_arch(const dk_file *file, const char *arch, size_t *index, dk_error *err);
/** Parse and validate slice INDEX as a Mach-O image. */
dk_status dk_file_open_macho(const dk_file *file, size_t index, dk_macho **out, dk_error *err);

/** Architecture name for a cputype/cpusubtype pair ("arm64e", "x86_64h"); never NULL. */
const char *dk_arch_name(uint32_t cputype, uint32_t cpusubtype);

/* ----------------------------------------------------------------- images */

/** The mach_header(_64), decoded to host order. */
typedef struct dk_header {
    uint32_t magic;
    uint32_t cputype;
    uint32_t cpusubtype;
    uint32_t filetype;
    uint32_t ncmds;
    uint32_t sizeofcmds;
    uint32_t flags;
    uint32_t reserved;  /* mach_header_64 only */
    bool is64;
    bool big_endian;    /* ppc and other MH_CIGAM/MH_CIGAM_64 images */
} dk_header;

/** Parse and validate an image in memory (thin Mach-O bytes).  NAME is for messages. */
dk_status dk_macho_open(const void *data, size_t size, const char *name, dk_macho **out,
                        dk_error *err);
void dk_macho_close(dk_macho *m);

const dk_header *dk_macho_header(const dk_macho *m);
const char *dk_macho_arch(const dk_macho *m);
const char *dk_macho_name(const dk_macho *m);
/** The image's bytes as given to dk_macho_open (for cache images: from the header on). */
const uint8_t *dk_macho_data(const dk_macho *m, size_t *size);
/** Preferred load address: vmaddr of the segment with fileoff 0 and filesize > 0 (__TEXT). */
uint64_t dk_macho_base_address(const dk_macho *m);
/** True for an image that lives inside a dyld shared cache (opened through dk_cache). */
bool dk_macho_in_cache(const dk_macho *m);

const char *dk_filetype_name(uint32_t filetype);   /* "EXECUTE", "DYLIB", ... */
/** Write the names of the set MH_* flags to OUT separated by SEP. */
size_t dk_header_flags_string(uint32_t flags, const char *sep, char *out, size_t outsize);

/* ---------------------------------------------------------- load commands */

typedef struct dk_loadcmd {
    uint32_t cmd;
    uint32_t cmdsize;
    uint64_t offset;        /* offset of the command from the mach_header */
    const uint8_t *data;    /* the command's bytes (cmdsize of them) */
} dk_loadcmd;

const dk_loadcmd *dk_macho_loadcmds(const dk_macho *m, size_t *count);
/** "LC_SEGMENT_64", ... or NULL for an unknown command. */
const char *dk_loadcmd_name(uint32_t cmd);

typedef enum dk_field_kind {
    DK_FIELD_UINT,     /* u: decimal */
    DK_FIELD_HEX,      /* u: printed as hex (addresses, offsets, flags) */
    DK_FIELD_INT,      /* i: signed */
    DK_FIELD_STRING,   /* s, slen: a name stored in the command */
    DK_FIELD_VERSION,  /* u: packed X.Y.Z (xxxx.yy.zz) */
    DK_FIELD_VERSION64,/* u: packed A.B.C.D.E source version */
    DK_FIELD_UUID,     /* bytes: 16 */
    DK_FIELD_BYTES,    /* bytes, slen: raw bytes (thread state words, ...) */
    DK_FIELD_ENUM,     /* u plus s: the symbolic name of the value */
    DK_FIELD_BEGIN,    /* start of a nested record named NAME (section, tool, note) */
    DK_FIELD_END       /* end of the innermost nested record */
} dk_field_kind;

/** One decoded field of a load command. */
typedef struct dk_field {
    const char *name;  /* Apple's field name: "vmaddr", "dylib.name", ... */
    dk_field_kind kind;
    uint64_t u;
    int64_t i;
    const char *s;
    size_t slen;
    const uint8_t *bytes;
} dk_field;

typedef int (*dk_field_cb)(void *ctx, const dk_field *field);
/** Decode load command INDEX field by field (every command Apple defines). */
dk_status dk_macho_loadcmd_fields(const dk_macho *m, size_t index, dk_field_cb cb, void *ctx,
                                  dk_error *err);

/* ------------------------------------------------------ segments/sections */

typedef struct dk_segment {
    char segname[17];
    uint64_t vmaddr;
    uint64_t vmsize;
    uint64_t fileoff;
    uint64_t filesize;
    uint32_t maxprot;
    uint32_t initprot;
    uint32_t nsects;
    uint32_t flags;
    uint32_t first_section; /* index into dk_macho_sections() */
    uint32_t loadcmd;       /* index of its LC_SEGMENT(_64) */
} dk_segment;

typedef struct dk_section {
    char sectname[17];
    char segname[17];
    uint64_t addr;
    uint64_t size;
    uint32_t offset;
    uint32_t align;
    uint32_t reloff;
    uint32_t nreloc;
    uint32_t flags;     /* SECTION_TYPE in the low byte, attributes above */
    uint32_t reserved1; /* indirect symbol index (pointer/stub sections) */
    uint32_t reserved2; /* stub size (S_SYMBOL_STUBS) */
    uint32_t reserved3;
    uint32_t segment;   /* index of the owning segment */
} dk_section;

const dk_segment *dk_macho_segments(const dk_macho *m, size_t *count);
const dk_section *dk_macho_sections(const dk_macho *m, size_t *count);
/** Index of the segment / section holding VMADDR, or -1. */
int dk_macho_segment_at(const dk_macho *m, uint64_t vmaddr);
int dk_macho_section_at(const dk_macho *m, uint64_t vmaddr);
/** First section named SEGNAME,SECTNAME (SEGNAME may be NULL for any), or NULL. */
const dk_section *dk_macho_find_section(const dk_macho *m, const char *segname,
                                        const char *sectname);
/** Pointer to SIZE bytes of file-backed content at VMADDR, or NULL if not all present. */
const uint8_t *dk_macho_read(const dk_macho *m, uint64_t vmaddr, uint64_t size);
/** "S_REGULAR", "S_SYMBOL_STUBS", ... for a section type (flags & 0xff). */
const char *dk_section_type_name(uint32_t type);

/* ---------------------------------------------------------------- dylibs */

typedef enum dk_dylib_kind {
    DK_DYLIB_LOAD,
    DK_DYLIB_WEAK,
    DK_DYLIB_REEXPORT,
    DK_DYLIB_UPWARD,
    DK_DYLIB_LAZY
} dk_dylib_kind;

typedef struct dk_dylib {
    const char *name;          /* install name, NUL-terminated inside the command */
    uint32_t cmd;              /* LC_LOAD_DYLIB, ... */
    dk_dylib_kind kind;
    uint32_t timestamp;
    uint32_t current_version;  /* packed xxxx.yy.zz */
    uint32_t compatibility_version;
    uint32_t loadcmd;
} dk_dylib;

/** Dependent libraries in load order; library ordinal N is element N-1. */
const dk_dylib *dk_macho_dylibs(const dk_macho *m, size_t *count);
/** LC_ID_DYLIB install name, or NULL. */
const char *dk_macho_install_name(const dk_macho *m);
/** The install name for a library ordinal, or "self", "main", "flat", "weak"; NULL if invalid. */
const char *dk_macho_ordinal_name(const dk_macho *m, int ordinal);
const char *dk_dylib_kind_name(dk_dylib_kind kind);

/** Everything else a summary needs. */
typedef struct dk_macho_info {
    bool has_uuid;
    uint8_t uuid[16];
    uint32_t version_cmd;        /* LC_BUILD_VERSION or LC_VERSION_MIN_*, 0 if none */
    uint32_t platform;           /* PLATFORM_* (derived from LC_VERSION_MIN_* too) */
    uint32_t minos;              /* packed X.Y.Z */
    uint32_t sdk;
    bool has_main;
    uint64_t entryoff;           /* LC_MAIN */
    uint64_t stacksize;
    bool has_thread_pc;
    uint64_t thread_pc;          /* LC_UNIXTHREAD entry point, when the flavor is known */
    bool has_source_version;
    uint64_t source_version;
    const char *dylinker;        /* LC_LOAD_DYLINKER */
    const char *const *rpaths;   /* LC_RPATH paths */
    size_t nrpaths;
    bool encrypted;              /* LC_ENCRYPTION_INFO(_64) with cryptid != 0 */
    bool has_code_signature;
} dk_macho_info;

const dk_macho_info *dk_macho_get_info(const dk_macho *m);
/** "macos", "ios", ... for a PLATFORM_* value; never NULL. */
const char *dk_platform_name(uint32_t platform);
/** Format a packed xxxx.yy.zz version into OUT. */
void dk_version_string(uint32_t packed, char out[24]);

/* --------------------------------------------------------------- symbols */

typedef struct dk_symbol {
    const char *name;  /* NUL-terminated inside the string table */
    uint32_t strx;
    uint8_t type;      /* n_type */
    uint8_t sect;      /* n_sect */
    uint16_t desc;     /* n_desc */
    uint64_t value;    /* n_value */
} dk_symbol;

/** The nlist table, decoded once and cached in the handle. */
dk_status dk_macho_symbols(dk_macho *m, const dk_symbol **syms, size_t *count, dk_error *err);
/** The indirect symbol table (values as stored, INDIRECT_SYMBOL_LOCAL/ABS included). */
dk_status dk_macho_indirect_symbols(dk_macho *m, const uint32_t **table, size_t *count,
                                    dk_error *err);
/** Library ordinal of an undefined symbol's n_desc (GET_LIBRARY_ORDINAL), as a signed special. */
int dk_symbol_library_ordinal(const dk_macho *m, const dk_symbol *s);

/* --------------------------------------------------------------- fixups */

typedef enum dk_fixup_kind {
    DK_FIXUP_REBASE,
    DK_FIXUP_BIND,
    DK_FIXUP_LAZY_BIND,
    DK_FIXUP_WEAK_BIND
} dk_fixup_kind;

typedef enum dk_fixup_encoding {
    DK_ENCODING_NONE,
    DK_ENCODING_DYLD_INFO,  /* LC_DYLD_INFO(_ONLY) opcode streams */
    DK_ENCODING_CHAINED     /* LC_DYLD_CHAINED_FIXUPS (or threaded binds) */
} dk_fixup_encoding;

/* ptrauth keys as stored in arm64e pointers */
enum { DK_KEY_IA = 0, DK_KEY_IB = 1, DK_KEY_DA = 2, DK_KEY_DB = 3 };

/** One location the loader writes. */
typedef struct dk_fixup {
    dk_fixup_kind kind;
    uint64_t address;        /* unslid VM address of the pointer */
    int segment;             /* index into dk_macho_segments() */
    int section;             /* index into dk_macho_sections(), -1 if none */
    uint8_t type;            /* REBASE_TYPE_* / BIND_TYPE_* (classic), 1 = pointer for chains */
    uint8_t width;           /* 4 or 8 bytes */
    /* rebase */
    uint64_t target;         /* unslid target address (high8 not folded in) */
    uint8_t high8;
    /* bind */
    int ordinal;             /* library ordinal; 0 self, -1 main, -2 flat, -3 weak */
    const char *symbol;
    int64_t addend;          /* total addend dyld applies */
    bool weak_import;
    bool strong;             /* weak-bind stream record of a non-weak definition: no address */
    uint8_t symbol_flags;    /* BIND_SYMBOL_FLAGS_* */
    uint32_t lazy_offset;    /* lazy binds: offset of the record in the lazy-bind stream */
    /* arm64e pointer authentication */
    bool auth;
    uint8_t key;             /* DK_KEY_* */
    uint16_t diversity;
    bool addr_div;
    /* chained fixups: the raw pointer, its format and import index */
    uint16_t pointer_format;
    uint64_t raw;
    uint32_t import_index;
} dk_fixup;

/** Return non-zero to stop the walk (the walk then returns DK_E_STOPPED). */
typedef int (*dk_fixup_cb)(void *ctx, const dk_fixup *fixup);

dk_fixup_encoding dk_macho_fixup_encoding(const dk_macho *m);
/** Every rebase and bind the loader performs, in stream / chain order.  With
 *  CB NULL the streams and chains are only checked (the same errors, less work). */
dk_status dk_macho_foreach_fixup(dk_macho *m, dk_fixup_cb cb, void *ctx, dk_error *err);
const char *dk_fixup_kind_name(dk_fixup_kind kind);
const char *dk_key_name(uint8_t key);

/** Sorted address -> fixup index built on first use (for pointer reads). */
dk_status dk_macho_fixup_at(dk_macho *m, uint64_t address, const dk_fixup **out, dk_error *err);

/** How a pointer-sized location reads after the loader ran (slide 0). */
typedef struct dk_pointer {
    enum { DK_PTR_PLAIN, DK_PTR_REBASE, DK_PTR_BIND } kind;
    uint64_t value;          /* PLAIN: stored value; REBASE: target | high8<<56; BIND: addend */
    const char *symbol;      /* BIND */
    int ordinal;             /* BIND */
    const dk_fixup *fixup;   /* REBASE/BIND: the record, NULL for in-cache images */
} dk_pointer;

/** Read the pointer at VMADDR as dyld would see it (fixups applied, auth bits stripped). */
dk_status dk_macho_read_pointer(dk_macho *m, uint64_t vmaddr, dk_pointer *out, dk_error *err);

/* ------------------------------------------------- dyld info opcode streams */

typedef enum dk_opcode_stream {
    DK_STREAM_REBASE,
    DK_STREAM_BIND,
    DK_STREAM_WEAK_BIND,
    DK_STREAM_LAZY_BIND
} dk_opcode_stream;

/** One opcode of a rebase/bind stream, with its operands. */
typedef struct dk_opcode {
    uint32_t offset;        /* offset of the opcode byte within the stream */
    uint8_t byte;           /* the raw opcode byte */
    uint8_t opcode;         /* byte & 0xF0 */
    uint8_t imm;            /* byte & 0x0F */
    const char *name;       /* "REBASE_OPCODE_DO_REBASE_IMM_TIMES", ... */
    int nargs;              /* ULEB/SLEB operands that follow (0..2) */
    uint64_t args[2];
    bool signed_arg;        /* args[0] is an SLEB (SET_ADDEND_SLEB) */
    const char *symbol;     /* SET_SYMBOL_TRAILING_FLAGS_IMM */
    uint32_t length;        /* bytes this opcode occupies */
} dk_opcode;

typedef int (*dk_opcode_cb)(void *ctx, const dk_opcode *op);
/** Walk the raw opcodes of one stream (bounded by its size). */
dk_status dk_macho_foreach_opcode(const dk_macho *m, dk_opcode_stream stream, dk_opcode_cb cb,
                                  void *ctx, dk_error *err);
const char *dk_opcode_stream_name(dk_opcode_stream stream);
/** Offset and size of a stream inside the image's LINKEDIT; false when absent. */
bool dk_macho_opcode_stream(const dk_macho *m, dk_opcode_stream stream, uint32_t *off,
                            uint32_t *size);

/* ------------------------------------------------------------ export trie */

enum {
    DK_EXPORT_WEAK = 1u << 0,
    DK_EXPORT_REEXPORT = 1u << 1,
    DK_EXPORT_RESOLVER = 1u << 2,
    DK_EXPORT_ABSOLUTE = 1u << 3,
    DK_EXPORT_TLS = 1u << 4,
    DK_EXPORT_FUNCTION_VARIANT = 1u << 5
};

typedef struct dk_export {
    const char *name;        /* valid during the callback only */
    uint64_t raw_flags;      /* EXPORT_SYMBOL_FLAGS_* as stored */
    uint32_t flags;          /* DK_EXPORT_* */
    uint64_t offset;         /* trie offset (regular, weak, tls, resolver stub) or absolute value */
    uint64_t address;        /* base + offset (absolute: the value itself) */
    uint64_t resolver;       /* stub-and-resolver: base + resolver offset */
    uint64_t function_variant; /* function-variant table index */
    int ordinal;             /* re-export: library ordinal */
    const char *imported_name; /* re-export: name in that library (never empty) */
    uint32_t node_offset;    /* offset of the terminal node in the trie */
} dk_export;

typedef int (*dk_export_cb)(void *ctx, const dk_export *e);
/** Walk the export trie (LC_DYLD_INFO export_off or LC_DYLD_EXPORTS_TRIE) in trie order. */
dk_status dk_macho_foreach_export(const dk_macho *m, dk_export_cb cb, void *ctx, dk_error *err);
/** Look one name up in the trie; DK_E_NOTFOUND when absent.  OUT->name is NAME. */
dk_status dk_macho_find_export(const dk_macho *m, const char *name, dk_export *out,
                               dk_error *err);
bool dk_macho_has_exports_trie(const dk_macho *m);
/** Walk a trie given as bytes (for tries outside any image). */
dk_status dk_trie_foreach(const uint8_t *trie, size_t size, uint64_t base, dk_export_cb cb,
                          void *ctx, dk_error *err);
dk_status dk_trie_find(const uint8_t *trie, size_t size, uint64_t base, const char *name,
                       dk_export *out, dk_error *err);

/* --------------------------------------------------------- chained fixups */

enum {
    DK_CHAINED_PTR_ARM64E = 1,
    DK_CHAINED_PTR_64 = 2,
    DK_CHAINED_PTR_32 = 3,
    DK_CHAINED_PTR_32_CACHE = 4,
    DK_CHAINED_PTR_32_FIRMWARE = 5,
    DK_CHAINED_PTR_64_OFFSET = 6,
    DK_CHAINED_PTR_ARM64E_KERNEL = 7,
    DK_CHAINED_PTR_64_KERNEL_CACHE = 8,
    DK_CHAINED_PTR_ARM64E_USERLAND = 9,
    DK_CHAINED_PTR_ARM64E_FIRMWARE = 10,
    DK_CHAINED_PTR_X86_64_KERNEL_CACHE = 11,
    DK_CHAINED_PTR_ARM64E_USERLAND24 = 12,
    DK_CHAINED_PTR_ARM64E_SHARED_CACHE = 13,
    DK_CHAINED_PTR_ARM64E_SEGMENTED = 14
};

/** dyld_chained_fixups_header */
typedef struct dk_chained_header {
    uint32_t fixups_version;
    uint32_t starts_offset;
    uint32_t imports_offset;
    uint32_t symbols_offset;
    uint32_t imports_count;
    uint32_t imports_format;   /* DYLD_CHAINED_IMPORT(1), _ADDEND(2), _ADDEND64(3) */
    uint32_t symbols_format;   /* 0 uncompressed, 1 zlib (unsupported, as in dyld) */
    uint32_t seg_count;        /* dyld_chained_starts_in_image.seg_count */
    uint32_t dataoff;          /* LC_DYLD_CHAINED_FIXUPS dataoff/datasize */
    uint32_t datasize;
} dk_chained_header;

typedef struct dk_chained_import {
    int lib_ordinal;           /* sign-extended special ordinals */
    bool weak_import;
    uint32_t name_offset;
    const char *name;
    int64_t addend;
} dk_chained_import;

/** dyld_chained_starts_in_segment */
typedef struct dk_chained_starts {
    uint32_t seg_index;
    uint32_t info_offset;      /* seg_info_offset[seg_index] (0: no fixups) */
    uint32_t size;
    uint16_t page_size;
    uint16_t pointer_format;
    uint64_t segment_offset;
    uint32_t max_valid_pointer;
    uint16_t page_count;
} dk_chained_starts;

dk_status dk_macho_chained_header(const dk_macho *m, dk_chained_header *out, dk_error *err);
/** Imports decoded once and cached. */
dk_status dk_macho_chained_imports(dk_macho *m, const dk_chained_import **imports, size_t *count,
                                   dk_error *err);

typedef enum dk_chain_event {
    DK_CHAIN_SEGMENT,  /* starts: a segment's dyld_chained_starts_in_segment */
    DK_CHAIN_PAGE,     /* page_index, page_start (raw u16; 0xFFFF none, 0x8000 multi) */
    DK_CHAIN_FIXUP     /* fixup: one chain entry, decoded */
} dk_chain_event;

typedef struct dk_chain_item {
    dk_chain_event event;
    const dk_chained_starts *starts;
    uint32_t page_index;
    uint16_t page_start;
    const dk_fixup *fixup;
    uint32_t next;           /* the entry's next field (stride units) */
} dk_chain_item;

typedef int (*dk_chain_cb)(void *ctx, const dk_chain_item *item);
/** Walk every segment, page and chain entry of LC_DYLD_CHAINED_FIXUPS. */
dk_status dk_macho_foreach_chain(dk_macho *m, dk_chain_cb cb, void *ctx, dk_error *err);
const char *dk_pointer_format_name(uint16_t pointer_format);
/** Stride in bytes of a pointer format's next field, 0 if unknown. */
unsigned dk_pointer_format_stride(uint16_t pointer_format);

/**
 * Decode one chain entry of POINTER_FORMAT stored at ADDRESS (raw value RAW) into
 * OUT (kind, target/high8 or import_index/addend, auth).  IMAGE_BASE is the
 * preferred load address (for *_OFFSET formats); SEG_ADDRS/NSEG are the segment
 * vmaddrs (ARM64E_SEGMENTED).  NEXT receives the next field.  Pure function,
 * exposed for tests and for other chained encodings (cache slide info).
 */
dk_status dk_chained_decode(uint16_t pointer_format, uint64_t raw, uint64_t image_base,
                            const uint64_t *seg_addrs, size_t nseg, uint32_t max_valid_pointer,
                            dk_fixup *out, uint32_t *next);

#ifdef __cplusplus
}
#endif

#endif
