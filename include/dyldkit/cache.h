/*
 * dyldkit dyld shared cache reader.
 *
 * Structures and field names follow Apple's <mach-o/dyld_cache_format.h>
 * (dyld_cache_header, dyld_cache_mapping_and_slide_info, dyld_cache_image_info,
 * dyld_cache_slide_info*, dyld_cache_local_symbols_*, dyld_subcache_entry),
 * common/CachePatching.h (patch tables) and common/DyldSharedCache.h /
 * include/objc-shared-cache.h (ObjC optimisation headers).  The format is
 * described field by field in docs/dsc-format.md of the research notes.
 *
 * A dk_cache is the main cache file plus its sub-caches and .symbols file,
 * all mapped read-only.  Addresses are unslid VM addresses throughout.
 * Everything a dk_cache returns (and every dk_macho opened from it) is valid
 * while the cache handle lives.  Lookups that build an index on first use
 * (slide pages, address lookup, symbols) are safe to call from several threads.
 */
#ifndef DYLDKIT_CACHE_H
#define DYLDKIT_CACHE_H

#include "dyldkit/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dk_cache dk_cache;

/* ------------------------------------------------------------------ header */

/**
 * dyld_cache_header of every generation, decoded.  A field exists iff it lies
 * below mappingOffset (the header is only ever extended at its end); absent
 * fields read as 0.  Apple's current names; dk_cache_foreach_header_field
 * gives the era names of older headers.
 */
typedef struct dk_cache_header {
    char magic[17];                 /* "dyld_v1   arm64" (NUL-terminated copy) */
    uint32_t mappingOffset;         /* = the header's length */
    uint32_t mappingCount;
    uint32_t imagesOffsetOld;       /* 0x18: the image table before dyld-940 ("imagesOffset" then) */
    uint32_t imagesCountOld;
    uint64_t dyldBaseAddress;
    uint64_t codeSignatureOffset;
    uint64_t codeSignatureSize;
    uint64_t slideInfoOffsetUnused; /* "slideInfoOffset" before dyld-832: the DATA mapping's slide info */
    uint64_t slideInfoSizeUnused;
    uint64_t localSymbolsOffset;
    uint64_t localSymbolsSize;
    uint8_t uuid[16];
    uint64_t cacheType;             /* 0 development, 1 production, 2 universal */
    uint32_t branchPoolsOffset;
    uint32_t branchPoolsCount;
    uint64_t dyldInCacheMH;         /* "accelerateInfoAddr" in dyld-421..960 */
    uint64_t dyldInCacheEntry;      /* "accelerateInfoSize" in dyld-421..960 */
    uint64_t imagesTextOffset;
    uint64_t imagesTextCount;
    uint64_t patchInfoAddr;
    uint64_t patchInfoSize;
    uint64_t otherImageGroupAddrUnused;
    uint64_t otherImageGroupSizeUnused;
    uint64_t progClosuresAddr;
    uint64_t progClosuresSize;
    uint64_t progClosuresTrieAddr;
    uint64_t progClosuresTrieSize;
    uint32_t platform;
    uint32_t formatVersion;         /* the bit-field word at 0xDC, split */
    uint32_t dylibsExpectedOnDisk;
    uint32_t simulator;
    uint32_t locallyBuiltCache;
    uint32_t builtFromChainedFixups;
    uint32_t newFormatTLVs;
    uint32_t bitfieldRest;          /* bits 13-31 of that word */
    uint64_t sharedRegionStart;
    uint64_t sharedRegionSize;
    uint64_t maxSlide;
    uint64_t dylibsImageArrayAddr;
    uint64_t dylibsImageArraySize;
    uint64_t dylibsTrieAddr;
    uint64_t dylibsTrieSize;
    uint64_t otherImageArrayAddr;
    uint64_t otherImageArraySize;
    uint64_t otherTrieAddr;
    uint64_t otherTrieSize;
    uint32_t mappingWithSlideOffset;
    uint32_t mappingWithSlideCount;
    uint64_t dylibsPBLStateArrayAddrUnused;
    uint64_t dylibsPBLSetAddr;
    uint64_t programsPBLSetPoolAddr;
    uint64_t programsPBLSetPoolSize;
    uint64_t programTrieAddr;
    uint32_t programTrieSize;
    uint32_t osVersion;             /* packed 16.8.8 */
    uint32_t altPlatform;
    uint32_t altOsVersion;
    uint64_t swiftOptsOffset;
    uint64_t swiftOptsSize;
    uint32_t subCacheArrayOffset;
    uint32_t subCacheArrayCount;
    uint8_t symbolFileUUID[16];
    uint64_t rosettaReadOnlyAddr;
    uint64_t rosettaReadOnlySize;
    uint64_t rosettaReadWriteAddr;
    uint64_t rosettaReadWriteSize;
    uint32_t imagesOffset;          /* 0x1C0: the image table from dyld-940 on */
    uint32_t imagesCount;
    uint32_t cacheSubType;
    uint64_t objcOptsOffset;
    uint64_t objcOptsSize;
    uint64_t cacheAtlasOffset;
    uint64_t cacheAtlasSize;
    uint64_t dynamicDataOffset;
    uint64_t dynamicDataMaxSize;
    uint32_t tproMappingsOffset;
    uint32_t tproMappingsCount;
    uint64_t functionVariantInfoAddr;
    uint64_t functionVariantInfoSize;
    uint64_t prewarmingDataOffset;
    uint64_t prewarmingDataSize;
} dk_cache_header;

/** True when HEADER is long enough to hold the field named NAME (Apple's or an era name). */
bool dk_cache_header_has(const dk_cache_header *header, const char *name);

/** One file of the cache: the main file, a sub-cache or the .symbols file. */
typedef struct dk_cache_file {
    const char *path;         /* as opened */
    const char *name;         /* basename of path */
    const char *suffix;       /* "" (main), ".1", ".01", ".dylddata", ".symbols" */
    const uint8_t *data;      /* the whole file, mapped */
    uint64_t size;
    dk_cache_header header;   /* this file's own header */
    uint64_t vm_offset;       /* sub-caches: cacheVMOffset from the main header's entry */
    uint32_t first_mapping;   /* this file's mappings in dk_cache_mappings() */
    uint32_t mapping_count;
} dk_cache_file;

/** Map PATH (the main cache file), its sub-caches and .symbols file, and validate their tables. */
dk_status dk_cache_open(const char *path, dk_cache **out, dk_error *err);
/** Unmap everything; NULL is a no-op. */
void dk_cache_close(dk_cache *cache);

/** The main file's decoded header. */
const dk_cache_header *dk_cache_get_header(const dk_cache *cache);
/** Architecture from the magic ("arm64e", "x86_64", "arm64_32", ...). */
const char *dk_cache_arch(const dk_cache *cache);
/** Pointer width of the cache's architecture: 4 or 8. */
unsigned dk_cache_pointer_size(const dk_cache *cache);
/** Unslid base address: the main file's first mapping (Apple's unslidLoadAddress()). */
uint64_t dk_cache_base_address(const dk_cache *cache);
/** Number of mapped files: the main file (index 0) then each sub-cache in table order. */
size_t dk_cache_file_count(const dk_cache *cache);
/** File INDEX (< dk_cache_file_count), or NULL. */
const dk_cache_file *dk_cache_file_at(const dk_cache *cache, size_t index);
/** The .symbols file, or NULL when the cache has none. */
const dk_cache_file *dk_cache_symbols_file(const dk_cache *cache);

/**
 * Every header field present in FILE's header, in header order, as dk_field
 * records (UINT/HEX numbers, STRING magic, UUID): the bit-field word at 0xDC
 * comes as formatVersion ... newFormatTLVs, bitfieldRest.  Fields carry the
 * name of their era (imagesOffset for the 0x18 table of a header shorter than
 * 0x1C8, accelerateInfoAddr, slideInfoOffset, ...).
 */
dk_status dk_cache_foreach_header_field(const dk_cache *cache, size_t file, dk_field_cb cb, void *ctx,
                                        dk_error *err);

/* ---------------------------------------------------------------- mappings */

enum {
    DK_CACHE_MAPPING_AUTH_DATA = 1u << 0,
    DK_CACHE_MAPPING_DIRTY_DATA = 1u << 1,
    DK_CACHE_MAPPING_CONST_DATA = 1u << 2,
    DK_CACHE_MAPPING_TEXT_STUBS = 1u << 3,
    DK_CACHE_DYNAMIC_CONFIG_DATA = 1u << 4,
    DK_CACHE_READ_ONLY_DATA = 1u << 5,
    DK_CACHE_MAPPING_CONST_TPRO_DATA = 1u << 6
};

/** dyld_cache_mapping_info merged with its dyld_cache_mapping_and_slide_info row. */
typedef struct dk_cache_mapping {
    uint64_t address;
    uint64_t size;
    uint64_t fileOffset;
    uint32_t maxProt;
    uint32_t initProt;
    uint64_t slideInfoFileOffset; /* in the same file; the legacy slideInfoOffset blob for mapping 1 of old caches */
    uint64_t slideInfoFileSize;
    uint64_t flags;               /* DK_CACHE_MAPPING_*; 0 without a with-slide table */
    uint32_t slide_version;       /* first word of the slide-info blob, 0 when none */
    uint32_t file;                /* index for dk_cache_file_at() */
    uint32_t index_in_file;
} dk_cache_mapping;

/** Every mapping: the main file's in table order, then each sub-cache's. */
const dk_cache_mapping *dk_cache_mappings(const dk_cache *cache, size_t *count);
/** Index of the mapping holding ADDR (binary search), or -1. */
long dk_cache_mapping_at(const dk_cache *cache, uint64_t addr);
/**
 * Bytes at ADDR when [ADDR, ADDR+SIZE) lies in one mapping, else NULL.  AVAIL
 * (optional) receives the bytes readable from ADDR to the end of that mapping.
 */
const uint8_t *dk_cache_read(const dk_cache *cache, uint64_t addr, uint64_t size, uint64_t *avail);
/** File index and file offset of ADDR; DK_E_NOTFOUND when no mapping holds it. */
dk_status dk_cache_vm_to_file(const dk_cache *cache, uint64_t addr, size_t *file, uint64_t *offset,
                              dk_error *err);

/* ------------------------------------------------------------------ images */

/** One row of the image table (dyld_cache_image_info), with its text info. */
typedef struct dk_cache_image {
    uint32_t index;
    uint64_t address;         /* unslid address of the mach_header */
    uint64_t modTime;
    uint64_t inode;
    uint32_t pathFileOffset;  /* in the main file */
    const char *path;
    bool alias;               /* a second name (symlink) for an image listed elsewhere */
    bool has_text_info;       /* a dyld_cache_image_text_info row has this address */
    uint8_t uuid[16];         /* from the text info */
    uint32_t textSegmentSize; /* from the text info */
} dk_cache_image;

/** dyld_cache_image_text_info. */
typedef struct dk_cache_image_text {
    uint8_t uuid[16];
    uint64_t loadAddress;
    uint32_t textSegmentSize;
    uint32_t pathOffset;
    const char *path;
} dk_cache_image_text;

/** The image table in use (0x1C0 table from dyld-940 on, else the 0x18 one), aliases included. */
const dk_cache_image *dk_cache_images(const dk_cache *cache, size_t *count);
/** The image text table (imagesTextOffset), possibly empty. */
const dk_cache_image_text *dk_cache_images_text(const dk_cache *cache, size_t *count);
/**
 * Image named NAME: an install path (aliases resolve to their own row; a path
 * only the dylibs trie lists resolves to its trie entry), a basename
 * ("libobjc.A.dylib"), or a decimal index.  DK_E_NOTFOUND if none.
 */
dk_status dk_cache_find_image(const dk_cache *cache, const char *name, size_t *index, dk_error *err);

typedef int (*dk_cache_trie_cb)(void *ctx, const char *path, uint64_t image_index);
/** Walk the dylibs trie (dylibsTrieAddr: install path -> image index); nothing when absent. */
dk_status dk_cache_foreach_dylib_trie(const dk_cache *cache, dk_cache_trie_cb cb, void *ctx, dk_error *err);

/**
 * Open image INDEX as a dk_macho: segments read through the cache mappings,
 * LINKEDIT through the shared linkedit, and dk_macho_read_pointer() returning
 * slide-info-decoded targets.  Close it with dk_macho_close before the cache.
 */
dk_status dk_cache_open_image(dk_cache *cache, size_t index, dk_macho **out, dk_error *err);

/* -------------------------------------------------------------- slide info */

/** A slide-info blob's header (dyld_cache_slide_info, _info2, _info3, _info4, _info5). */
typedef struct dk_slide_info {
    uint32_t version;             /* 1..5 */
    uint32_t page_size;           /* v1: 4096 */
    uint32_t page_starts_offset;  /* v2/v4 as stored; v3/v5: 24 */
    uint32_t page_starts_count;   /* v1: toc_count */
    uint32_t page_extras_offset;  /* v2/v4 */
    uint32_t page_extras_count;
    uint64_t delta_mask;          /* v2/v4 */
    uint64_t value_add;           /* v2/v4/v5 value_add, v3 auth_value_add */
    uint32_t toc_offset;          /* v1 */
    uint32_t toc_count;
    uint32_t entries_offset;
    uint32_t entries_count;
    uint32_t entries_size;
    unsigned pointer_size;        /* 4 or 8 */
    const uint8_t *blob;          /* the blob (page_starts/page_extras are inside it) */
    uint64_t blob_size;
} dk_slide_info;

/** Page start I (I < page_starts_count; v1: the toc entry) as stored. */
uint16_t dk_slide_page_start(const dk_slide_info *info, uint32_t i);
/** Page extra I (I < page_extras_count) as stored (v2, v4). */
uint16_t dk_slide_page_extra(const dk_slide_info *info, uint32_t i);

/** One rebased location. */
typedef struct dk_slide_pointer {
    uint64_t address;   /* unslid VM address of the location */
    uint64_t raw;       /* the value on disk */
    uint64_t target;    /* the unslid value an extractor writes back (high8 folded in) */
    uint8_t high8;      /* top byte of a plain/regular pointer (v2 64-bit, v3, v5) */
    bool auth;          /* arm64e authenticated pointer: */
    uint8_t key;        /* DK_KEY_IA/IB/DA/DB */
    uint16_t diversity;
    bool addr_div;
    uint32_t page;      /* page index in the mapping */
    uint32_t next;      /* the chain's next field (v2/v4: byte delta; v3/v5: 8-byte units) */
} dk_slide_pointer;

typedef int (*dk_slide_cb)(void *ctx, const dk_slide_pointer *p);

/** A slide-info blob and the mapping it describes, independent of any cache (for tests and tools). */
typedef struct dk_slide_region {
    const uint8_t *blob;      /* the slide-info blob */
    uint64_t blob_size;
    const uint8_t *data;      /* the mapping's bytes */
    uint64_t data_size;       /* = the mapping's size */
    uint64_t address;         /* the mapping's unslid VM address */
    unsigned pointer_size;    /* 4 or 8 */
    const char *name;         /* for messages: "mapping 1 (dyld_shared_cache_arm64)" */
    uint64_t blob_file_offset;/* for messages */
} dk_slide_region;

/** Decode and validate a blob's header and arrays against its mapping. */
dk_status dk_slide_parse(const dk_slide_region *region, dk_slide_info *out, dk_error *err);
/**
 * Every rebased location of the region in address order.  Bounded: a chain
 * that leaves its page, an out-of-range page-start/extras/toc index or a page
 * count larger than the mapping is DK_E_MALFORMED naming mapping, page and offset.
 * v2 zero entries and v4 small non-pointer values are not reported.
 */
dk_status dk_slide_foreach(const dk_slide_region *region, dk_slide_cb cb, void *ctx, dk_error *err);
/**
 * Decode one raw chain entry RAW stored at ADDRESS as INFO's format would (no
 * check that ADDRESS is on a chain).  False for values that are not pointers
 * (v2 zero, v4 small integers).
 */
bool dk_slide_decode(const dk_slide_info *info, uint64_t address, uint64_t raw, dk_slide_pointer *out);

/** The slide info of mapping MAPPING; DK_E_NOTFOUND when it has none. */
dk_status dk_cache_slide_info(const dk_cache *cache, size_t mapping, dk_slide_info *out, dk_error *err);
/** Every rebased location of mapping MAPPING in address order (see dk_slide_foreach). */
dk_status dk_cache_foreach_slide_pointer(const dk_cache *cache, size_t mapping, dk_slide_cb cb, void *ctx,
                                         dk_error *err);
/**
 * What the pointer-sized location at ADDRESS reads after sliding (slide 0):
 * *REBASED tells whether ADDRESS is on a slide chain; OUT gets the decoded
 * entry (or just the raw value in OUT->target when not rebased).
 */
dk_status dk_cache_read_pointer(dk_cache *cache, uint64_t address, dk_slide_pointer *out, bool *rebased,
                                dk_error *err);

/* ----------------------------------------------------------- local symbols */

/** dyld_cache_local_symbols_info and where it was found. */
typedef struct dk_cache_local_symbols {
    const dk_cache_file *file;  /* the main file or the .symbols file */
    uint64_t offset;            /* file offset of the info struct */
    uint32_t nlistOffset;       /* the rest relative to the struct */
    uint32_t nlistCount;
    uint32_t stringsOffset;
    uint32_t stringsSize;
    uint32_t entriesOffset;
    uint32_t entriesCount;
    uint32_t entry_size;        /* 12 (dyld_cache_local_symbols_entry) or 16 (_entry_64) */
    uint32_t nlist_size;        /* 16 (nlist_64) or 12 */
} dk_cache_local_symbols;

/** The local-symbols area; DK_E_NOTFOUND when the cache has none. */
dk_status dk_cache_local_symbols_info(const dk_cache *cache, dk_cache_local_symbols *out, dk_error *err);

typedef enum dk_cache_symbol_source {
    DK_CACHE_SYM_EXPORT, /* the image's export trie */
    DK_CACHE_SYM_NLIST,  /* the image's own nlist range in the shared symbol table */
    DK_CACHE_SYM_LOCAL   /* unmapped locals from the local-symbols area */
} dk_cache_symbol_source;

typedef struct dk_cache_symbol {
    dk_cache_symbol_source source;
    uint32_t image;
    const char *name;
    uint64_t address;          /* exports: dk_export.address; nlist/locals: n_value */
    uint8_t type, sect;        /* nlist/locals */
    uint16_t desc;
    const dk_export *export_;  /* exports: the trie entry (valid during the callback) */
} dk_cache_symbol;

typedef int (*dk_cache_symbol_cb)(void *ctx, const dk_cache_symbol *s);
/** Unmapped local symbols of image INDEX (nothing when the cache has no local-symbols area). */
dk_status dk_cache_foreach_local_symbol(dk_cache *cache, size_t index, dk_cache_symbol_cb cb, void *ctx,
                                        dk_error *err);
/** Exports, then nlist symbols, then unmapped locals of image INDEX. */
dk_status dk_cache_foreach_image_symbol(dk_cache *cache, size_t index, dk_cache_symbol_cb cb, void *ctx,
                                        dk_error *err);

/* ----------------------------------------------------------- address lookup */

typedef struct dk_cache_location {
    uint64_t address;
    long mapping;              /* index, -1 never (lookup fails instead) */
    uint32_t file;
    uint64_t file_offset;
    long image;                /* image index, -1 when no image segment holds the address */
    const char *image_path;
    char segment[17];          /* "" when none */
    char section[17];
    const char *symbol;        /* nearest symbol at or below address in the same segment, or NULL */
    uint64_t symbol_address;
} dk_cache_location;

/**
 * Which file, mapping, image, segment, section and symbol hold ADDR.  The
 * segment index and each image's sorted symbols are built once.
 * DK_E_NOTFOUND when no mapping holds ADDR.
 */
dk_status dk_cache_lookup(dk_cache *cache, uint64_t addr, dk_cache_location *out, dk_error *err);

/* ---------------------------------------------------- ObjC optimisation */

/** The global ObjC optimisation header: objc_opt_t (libobjc __objc_opt_ro) or ObjCOptimizationHeader. */
typedef struct dk_cache_objc_opt {
    bool is_new;                 /* ObjCOptimizationHeader via objcOptsOffset */
    uint64_t address;            /* where the header is */
    uint32_t version;
    uint32_t flags;
    /* ObjCOptimizationHeader (cache-relative offsets) */
    uint64_t headerInfoROCacheOffset;
    uint64_t headerInfoRWCacheOffset;
    uint64_t selectorHashTableCacheOffset;
    uint64_t classHashTableCacheOffset;
    uint64_t protocolHashTableCacheOffset;
    uint64_t relativeMethodSelectorBaseAddressOffset; /* both generations */
    uint64_t relativeMethodSelectorBufferSize;        /* version 2 */
    uint64_t relativeMethodTypesBufferSize;           /* version 2 */
    /* objc_opt_t (offsets relative to the struct) */
    int32_t selopt_offset;
    int32_t headeropt_ro_offset;
    int32_t clsopt_offset;       /* unused_clsopt_offset in v16 */
    int32_t protocolopt_offset;  /* v13/v15 */
    int32_t headeropt_rw_offset;
    int32_t largeSharedCachesClassOffset;    /* v16 */
    int32_t largeSharedCachesProtocolOffset; /* v16 */
    /* derived unslid addresses (0 when unknown) */
    uint64_t header_info_ro;     /* objc_headeropt_ro_t */
    uint64_t header_info_rw;
    uint64_t selector_base;      /* relative method lists' selector base */
} dk_cache_objc_opt;

/** The ObjC optimisation header; DK_E_NOTFOUND when the cache has none. */
dk_status dk_cache_objc_opt_info(dk_cache *cache, dk_cache_objc_opt *out, dk_error *err);
/** Image INDEX's position in headerInfoRO (its ObjC image index); DK_E_NOTFOUND if absent. */
dk_status dk_cache_objc_image_index(dk_cache *cache, size_t index, uint32_t *objc_index, dk_error *err);

/* ------------------------------------------------------------- patch tables */

/** dyld_cache_patch_info v1..v4, decoded (arrays as unslid addresses + counts). */
typedef struct dk_cache_patch_info {
    uint32_t version;                 /* 1..4 */
    uint32_t patchLocationVersion;    /* v2+ */
    uint64_t patchTableArrayAddr, patchTableArrayCount;
    uint64_t patchImageExportsArrayAddr, patchImageExportsArrayCount;  /* v1: patchExportArray */
    uint64_t patchClientsArrayAddr, patchClientsArrayCount;            /* v2+ */
    uint64_t patchClientExportsArrayAddr, patchClientExportsArrayCount;/* v2+ */
    uint64_t patchLocationArrayAddr, patchLocationArrayCount;
    uint64_t patchExportNamesAddr, patchExportNamesSize;
    uint64_t gotClientsArrayAddr, gotClientsArrayCount;                /* v3+ */
    uint64_t gotClientExportsArrayAddr, gotClientExportsArrayCount;
    uint64_t gotLocationArrayAddr, gotLocationArrayCount;
} dk_cache_patch_info;

typedef enum dk_cache_patch_event {
    DK_PATCH_EXPORT, /* a patchable export of an image */
    DK_PATCH_USE,    /* a location in a client image that points at that export */
    DK_PATCH_GOT_USE /* a uniqued GOT slot that points at that export (v3+) */
} dk_cache_patch_event;

typedef struct dk_cache_patch {
    dk_cache_patch_event event;
    uint32_t image;            /* the exporting image */
    const char *export_name;
    uint64_t export_address;   /* unslid address of the implementation */
    uint32_t patch_kind;       /* v2+: 0 regular, 1 cfObj2, 8 objcClass */
    long client;               /* USE: the client image (v1: found by address, -1 unknown) */
    uint64_t location;         /* USE/GOT_USE: unslid address of the pointer */
    uint64_t addend;
    bool weak_import;          /* v4 */
    uint8_t high8;
    bool auth;
    uint8_t key;               /* DK_KEY_* */
    uint16_t diversity;
    bool addr_div;
} dk_cache_patch;

typedef int (*dk_cache_patch_cb)(void *ctx, const dk_cache_patch *p);
/** The patch table header; DK_E_NOTFOUND when the cache has none. */
dk_status dk_cache_patch_table(const dk_cache *cache, dk_cache_patch_info *out, dk_error *err);
/** For image IMAGE (or every image when IMAGE < 0): each export, then the uses of it. */
dk_status dk_cache_foreach_patch(dk_cache *cache, long image, dk_cache_patch_cb cb, void *ctx, dk_error *err);

#ifdef __cplusplus
}
#endif

#endif
