/*
 * dyldkit: Objective-C metadata (classes, methods, protocols, categories, selector references).
 *
 * Decodes the objc2 metadata the runtime reads from an image (objc4's
 * objc-runtime-new.h: class_t, class_ro_t, method_list_t incl. relative
 * method lists, ivar_list_t, property_list_t, protocol_t, protocol_list_t,
 * category_t, objc_image_info) and the classic objc1 metadata of the __OBJC
 * segment (objc4's objc-runtime-old.h: objc_module, objc_symtab, objc_class,
 * objc_category, objc_protocol).
 *
 * Every pointer is read the way dyld leaves it (dk_macho_read_pointer: rebase
 * targets, bind symbol names, arm64e auth bits stripped), so a chained-fixups
 * image decodes to the same names as its classic build.  Pointers into other
 * images are bound symbols: an external class is named by its
 * _OBJC_CLASS_$_ symbol without the prefix.
 *
 * Lifetime: a dk_objc is built from a dk_macho and must be closed before it.
 * Strings are views into the image (valid while the dk_macho lives); arrays
 * and structs are owned by the dk_objc (valid until dk_objc_close).
 * Malformed metadata (a list past the end of its segment, a count that cannot
 * fit, a pointer outside the image, a superclass chain that loops) makes
 * dk_objc_open fail with DK_E_MALFORMED and a message naming the structure and
 * its address and file offset.
 */
#ifndef DYLDKIT_OBJC_H
#define DYLDKIT_OBJC_H

#include "dyldkit/macho.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dk_objc dk_objc;

typedef enum dk_objc_abi {
    DK_OBJC_ABI_NONE = 0, /* no Objective-C metadata */
    DK_OBJC_ABI_1 = 1,    /* classic (fragile) runtime: __OBJC segment, 32-bit macOS */
    DK_OBJC_ABI_2 = 2     /* modern runtime: __objc_* sections */
} dk_objc_abi;

/* class_ro_t.flags (objc-runtime-new.h) */
enum {
    DK_RO_META = 1u << 0,
    DK_RO_ROOT = 1u << 1,
    DK_RO_HAS_CXX_STRUCTORS = 1u << 2,
    DK_RO_HIDDEN = 1u << 4,
    DK_RO_EXCEPTION = 1u << 5,
    DK_RO_HAS_SWIFT_INITIALIZER = 1u << 6,
    DK_RO_IS_ARC = 1u << 7,
    DK_RO_HAS_CXX_DTOR_ONLY = 1u << 8,
    DK_RO_HAS_WEAK_WITHOUT_ARC = 1u << 9,
    DK_RO_FORBIDS_ASSOCIATED_OBJECTS = 1u << 10
};

/* method_list_t.entsizeAndFlags flag bits */
enum {
    DK_METHOD_LIST_SMALL = 0x80000000u,            /* relative (small) method list */
    DK_METHOD_LIST_DIRECT_SELECTORS = 0x40000000u, /* dyld cache: names relative to the selector base */
    DK_METHOD_LIST_FLAGS_MASK = 0xffff0003u
};

/* objc_image_info.flags */
enum {
    DK_OBJC_IMAGE_IS_REPLACEMENT = 1u << 0,
    DK_OBJC_IMAGE_SUPPORTS_GC = 1u << 1,
    DK_OBJC_IMAGE_REQUIRES_GC = 1u << 2,
    DK_OBJC_IMAGE_OPTIMIZED_BY_DYLD = 1u << 3,
    DK_OBJC_IMAGE_SUPPORTS_COMPACTION = 1u << 4, /* was CorrectedSynthesize */
    DK_OBJC_IMAGE_IS_SIMULATED = 1u << 5,
    DK_OBJC_IMAGE_HAS_CATEGORY_CLASS_PROPERTIES = 1u << 6,
    DK_OBJC_IMAGE_OPTIMIZED_BY_DYLD_CLOSURE = 1u << 7
    /* bits 8-15: Swift unstable ABI version; bits 16-31: Swift stable version */
};

/** A pointer to a class or protocol: in this image, external (bound), or null. */
typedef struct dk_objc_ref {
    const char *name;     /* class/protocol name; NULL for a null pointer */
    uint64_t address;     /* unslid target address when in the image, else 0 */
    bool external;        /* filled by a bind: NAME comes from the bound symbol */
    const char *symbol;   /* the bound symbol (external only) */
} dk_objc_ref;

/** One method_t (big: three pointers; small: three int32 offsets) or objc_method_description. */
typedef struct dk_objc_method {
    const char *name;       /* selector */
    const char *types;      /* type encoding as stored, NULL when absent */
    uint64_t imp;           /* unslid implementation address; meaningful when has_imp */
    bool has_imp;           /* false for protocol methods and null imps */
    const char *imp_symbol; /* the imp pointer is bound to this symbol (has_imp false) */
} dk_objc_method;

/** A method list, flattened (a dyld-cache relative list of lists yields every list's methods). */
typedef struct dk_objc_methods {
    uint64_t address;       /* method_list_t address, 0 when the pointer is null */
    uint32_t entsize;       /* entsizeAndFlags & ~DK_METHOD_LIST_FLAGS_MASK */
    uint32_t flags;         /* entsizeAndFlags & DK_METHOD_LIST_FLAGS_MASK */
    bool relative;          /* small method list (12-byte entries of offsets) */
    const dk_objc_method *items;
    size_t count;
} dk_objc_methods;

/** One ivar_t (objc2) or objc_ivar (objc1). */
typedef struct dk_objc_ivar {
    const char *name;
    const char *type;
    uint64_t offset_address; /* objc2: where the offset variable lives (0: none) */
    bool has_offset;         /* false when offset_address is null or outside the file */
    uint32_t offset;         /* the ivar's byte offset in the instance */
    uint32_t size;           /* objc2 only */
    uint32_t alignment_raw;  /* objc2: log2 of the alignment as stored (~0: pointer size) */
} dk_objc_ivar;

/** One property_t. */
typedef struct dk_objc_property {
    const char *name;
    const char *attributes;  /* "T@\"NSString\",C,N,V_name" */
} dk_objc_property;

typedef struct dk_objc_ivars {
    uint64_t address;
    uint32_t entsize;
    const dk_objc_ivar *items;
    size_t count;
} dk_objc_ivars;

typedef struct dk_objc_properties {
    uint64_t address;
    uint32_t entsize;
    const dk_objc_property *items;
    size_t count;
} dk_objc_properties;

typedef struct dk_objc_refs {
    uint64_t address;        /* protocol_list_t address, 0 when null */
    const dk_objc_ref *items;
    size_t count;
} dk_objc_refs;

/** A class and its metaclass. */
typedef struct dk_objc_class {
    uint64_t address;         /* class_t */
    const char *name;         /* class_ro_t.name */
    dk_objc_ref superclass;   /* name NULL for a root class */
    dk_objc_ref metaclass;    /* class_t.isa */
    uint64_t data;            /* class_ro_t address (class_t.bits & ~flag bits) */
    uint32_t data_bits;       /* the low bits of class_t.bits (FAST_IS_SWIFT_LEGACY 1, _STABLE 2) */
    bool swift;               /* data_bits & 3: a Swift class exposed to ObjC */
    bool classlist;           /* listed in __objc_classlist (false: only in __objc_nlclslist) */
    bool nonlazy;             /* listed in __objc_nlclslist (has +load) */
    uint32_t flags;           /* class_ro_t.flags (DK_RO_*) */
    uint32_t instance_start;
    uint32_t instance_size;
    uint64_t meta_data;       /* the metaclass's class_ro_t, 0 if the metaclass is external */
    uint32_t meta_flags;
    dk_objc_methods instance_methods;
    dk_objc_methods class_methods;   /* from the metaclass's class_ro_t */
    dk_objc_refs protocols;
    dk_objc_ivars ivars;
    dk_objc_properties properties;
    dk_objc_properties class_properties; /* the metaclass's baseProperties */
    /* objc1 only */
    uint32_t version;         /* objc_class.version */
    uint32_t info;            /* objc_class.info (CLS_CLASS, CLS_META, ...) */
} dk_objc_class;

/** A protocol_t (objc2) or objc_protocol (objc1). */
typedef struct dk_objc_protocol {
    uint64_t address;
    const char *name;         /* mangledName */
    dk_objc_refs protocols;   /* adopted protocols */
    dk_objc_methods instance_methods;
    dk_objc_methods class_methods;
    dk_objc_methods optional_instance_methods;
    dk_objc_methods optional_class_methods;
    dk_objc_properties properties;
    dk_objc_properties class_properties; /* only when protocol_t.size covers the field */
    uint32_t size;            /* protocol_t.size as stored */
    uint32_t flags;
} dk_objc_protocol;

/** A category_t (objc2) or objc_category (objc1). */
typedef struct dk_objc_category {
    uint64_t address;
    const char *name;
    dk_objc_ref cls;          /* the class it extends */
    bool nonlazy;             /* listed in __objc_nlcatlist */
    dk_objc_methods instance_methods;
    dk_objc_methods class_methods;
    dk_objc_refs protocols;
    dk_objc_properties properties;
    dk_objc_properties class_properties; /* read only when the image info says they exist */
} dk_objc_category;

/** One entry of __objc_selrefs (or objc1 __message_refs). */
typedef struct dk_objc_selref {
    uint64_t address;         /* the reference */
    uint64_t target;          /* the selector string's address */
    const char *selector;
} dk_objc_selref;

/** One entry of __objc_classrefs, __objc_superrefs or __objc_protorefs (or objc1 __cls_refs). */
typedef struct dk_objc_xref {
    uint64_t address;
    dk_objc_ref ref;
} dk_objc_xref;

typedef struct dk_objc_image_info {
    bool present;
    uint64_t address;
    uint32_t version;
    uint32_t flags;           /* DK_OBJC_IMAGE_* plus the Swift version bytes */
} dk_objc_image_info;

/** Options for dk_objc_open; a zeroed struct (or NULL) means the defaults. */
typedef struct dk_objc_options {
    /* dyld-cache images: relative method lists flagged DK_METHOD_LIST_DIRECT_SELECTORS
       store selector names as offsets from this address (objc_opt_t v16's or
       ObjCOptimizationHeader's relativeMethodSelectorBaseAddressOffset, see
       dk_cache_objc_opt_info); without it the offset is taken from the name
       field itself, as caches before that field did. */
    bool has_selector_base;
    uint64_t selector_base;
} dk_objc_options;

/** Decode all Objective-C metadata of M (no metadata is not an error: everything is empty). */
dk_status dk_objc_open(dk_macho *m, const dk_objc_options *opts, dk_objc **out, dk_error *err);
/** Free what dk_objc_open built; NULL is a no-op.  Close it before its dk_macho. */
void dk_objc_close(dk_objc *o);

/** Which runtime's metadata the image carries. */
dk_objc_abi dk_objc_get_abi(const dk_objc *o);
/** __objc_imageinfo (objc1: __OBJC,__image_info); present false when there is none. */
const dk_objc_image_info *dk_objc_get_image_info(const dk_objc *o);
/** Classes of __objc_classlist in order, then __objc_nlclslist entries not already listed. */
const dk_objc_class *dk_objc_classes(const dk_objc *o, size_t *count);
/** Protocols of __objc_protolist in order (objc1: __OBJC,__protocol). */
const dk_objc_protocol *dk_objc_protocols(const dk_objc *o, size_t *count);
/** Categories of __objc_catlist in order, then __objc_catlist2 / __objc_nlcatlist extras. */
const dk_objc_category *dk_objc_categories(const dk_objc *o, size_t *count);
/** __objc_selrefs in order. */
const dk_objc_selref *dk_objc_selrefs(const dk_objc *o, size_t *count);
/** __objc_classrefs in order. */
const dk_objc_xref *dk_objc_classrefs(const dk_objc *o, size_t *count);
/** __objc_superrefs in order. */
const dk_objc_xref *dk_objc_superrefs(const dk_objc *o, size_t *count);
/** __objc_protorefs in order. */
const dk_objc_xref *dk_objc_protorefs(const dk_objc *o, size_t *count);
/** Index into dk_objc_classes() of the class at ADDRESS, or -1. */
long dk_objc_class_index(const dk_objc *o, uint64_t address);
/** "RO_META RO_ROOT ..." for class_ro_t flags, written into OUT. */
size_t dk_objc_ro_flags_string(uint32_t flags, const char *sep, char *out, size_t outsize);
/** "HasCategoryClassProperties ..." for objc_image_info flags (Swift bytes as "swift=N"). */
size_t dk_objc_image_flags_string(uint32_t flags, const char *sep, char *out, size_t outsize);

#ifdef __cplusplus
}
#endif

#endif
