/*
 * Unit tests for the Objective-C metadata decoder on a synthetic image written
 * byte by byte from objc4's layouts (objc-runtime-new.h): a root class with a
 * pointer method list, an ivar and a metaclass whose methods are a relative
 * method list; then damaged variants (a count past the end, a superclass
 * loop, class_ro_t outside the image) that must fail with DK_E_MALFORMED.
 * No fixups: the pointers are plain values, read as stored.
 */
#include "dyldkit/dyldkit.h"
#include "macho_synth.h"
#include "unit.h"

#define B 0x100000000ull

/* __TEXT strings */
#define S_FOO 0x800u   /* "Foo" */
#define S_BAR 0x804u   /* "bar" */
#define S_V16 0x808u   /* "v16@0:8" */
#define S_X 0x810u     /* "_x" */
#define S_I 0x813u     /* "i" */
#define S_CAT 0x818u   /* "Extras" */
#define S_TI 0x820u    /* "Ti,N" */
/* __DATA */
#define D_CLASSLIST 0x1000u
#define D_IMAGEINFO 0x1008u
#define D_SELREFS 0x1010u
#define D_CATLIST 0x1018u
#define D_CLASS 0x1100u
#define D_META 0x1140u
#define D_RO 0x1200u
#define D_META_RO 0x1280u
#define D_METHODS 0x1300u
#define D_REL_METHODS 0x1340u
#define D_IVARS 0x1380u
#define D_IVAR_OFFSET 0x13c0u
#define D_CATEGORY 0x1400u
#define D_PROPS 0x1440u

/* LC_SEGMENT_64 with several sections: NAMES/ADDRS/SIZES (file offset = addr - base). */
static void segment(synth *s, const char *segname, uint64_t vmaddr, uint64_t size, uint64_t fileoff, uint32_t prot,
                    int n, const char *const *names, const uint32_t *addrs, const uint32_t *sizes)
{
    size_t at = sy_cmd(s, SY_LC_SEGMENT_64, 72 + 80 * (uint32_t)n);
    sy_name16(s, at + 8, segname);
    sy_w64(s, at + 24, vmaddr);
    sy_w64(s, at + 32, size);
    sy_w64(s, at + 40, fileoff);
    sy_w64(s, at + 48, size);
    sy_w32(s, at + 56, prot);
    sy_w32(s, at + 60, prot);
    sy_w32(s, at + 64, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        size_t q = at + 72 + 80 * (size_t)i;
        sy_name16(s, q, names[i]);
        sy_name16(s, q + 16, segname);
        sy_w64(s, q + 32, B + addrs[i]);
        sy_w64(s, q + 40, sizes[i]);
        sy_w32(s, q + 48, addrs[i]);
    }
}

static void build(synth *s)
{
    sy_init(s, true, SY_CPU_X86_64, 3, B);
    static const char *const tnames[] = {"__objc_methname"};
    static const uint32_t taddrs[] = {0x800}, tsizes[] = {0x100};
    segment(s, "__TEXT", B, 0x1000, 0, 5, 1, tnames, taddrs, tsizes);
    static const char *const dnames[] = {"__objc_classlist", "__objc_imageinfo", "__objc_selrefs", "__objc_catlist"};
    static const uint32_t daddrs[] = {D_CLASSLIST, D_IMAGEINFO, D_SELREFS, D_CATLIST}, dsizes[] = {8, 8, 8, 8};
    segment(s, "__DATA", B + 0x1000, 0x2000, 0x1000, 3, 4, dnames, daddrs, dsizes);
    s->size = 0x3000;

    sy_bytes(s, S_FOO, "Foo", 4);
    sy_bytes(s, S_BAR, "bar", 4);
    sy_bytes(s, S_V16, "v16@0:8", 8);
    sy_bytes(s, S_X, "_x", 3);
    sy_bytes(s, S_I, "i", 2);
    sy_bytes(s, S_CAT, "Extras", 7);
    sy_bytes(s, S_TI, "Ti,N", 5);

    sy_w64(s, D_CLASSLIST, B + D_CLASS);
    sy_w32(s, D_IMAGEINFO, 0);
    sy_w32(s, D_IMAGEINFO + 4, 0x40); /* OBJC_IMAGE_HAS_CATEGORY_CLASS_PROPERTIES */
    sy_w64(s, D_SELREFS, B + S_BAR);
    sy_w64(s, D_CATLIST, B + D_CATEGORY);

    /* class_t { isa, superclass, cache, vtable, bits } */
    sy_w64(s, D_CLASS, B + D_META);
    sy_w64(s, D_CLASS + 32, (B + D_RO) | 2); /* FAST_IS_SWIFT_STABLE */
    sy_w64(s, D_META, 0);
    sy_w64(s, D_META + 8, B + D_CLASS);
    sy_w64(s, D_META + 32, B + D_META_RO);

    /* class_ro_t { flags, instanceStart, instanceSize, reserved, ivarLayout, name, baseMethods,
                    baseProtocols, ivars, weakIvarLayout, baseProperties } */
    sy_w32(s, D_RO, 0x2); /* RO_ROOT */
    sy_w32(s, D_RO + 4, 8);
    sy_w32(s, D_RO + 8, 12);
    sy_w64(s, D_RO + 24, B + S_FOO);
    sy_w64(s, D_RO + 32, B + D_METHODS);
    sy_w64(s, D_RO + 48, B + D_IVARS);
    sy_w32(s, D_META_RO, 0x3);
    sy_w32(s, D_META_RO + 4, 40);
    sy_w32(s, D_META_RO + 8, 40);
    sy_w64(s, D_META_RO + 24, B + S_FOO);
    sy_w64(s, D_META_RO + 32, B + D_REL_METHODS);

    /* method_list_t, big methods { name, types, imp } */
    sy_w32(s, D_METHODS, 24);
    sy_w32(s, D_METHODS + 4, 1);
    sy_w64(s, D_METHODS + 8, B + S_BAR);
    sy_w64(s, D_METHODS + 16, B + S_V16);
    sy_w64(s, D_METHODS + 24, B + 0x900);

    /* relative list: entsizeAndFlags 12 | smallMethodListFlag; { i32 name -> selref, types, imp } */
    uint32_t e = D_REL_METHODS + 8;
    sy_w32(s, D_REL_METHODS, 12 | 0x80000000u);
    sy_w32(s, D_REL_METHODS + 4, 1);
    sy_w32(s, e, (uint32_t)((int32_t)D_SELREFS - (int32_t)e));
    sy_w32(s, e + 4, (uint32_t)((int32_t)S_V16 - (int32_t)(e + 4)));
    sy_w32(s, e + 8, (uint32_t)((int32_t)0x910 - (int32_t)(e + 8)));

    /* ivar_list_t { entsize, count } + ivar_t { offset*, name, type, alignment_raw, size } */
    sy_w32(s, D_IVARS, 32);
    sy_w32(s, D_IVARS + 4, 1);
    sy_w64(s, D_IVARS + 8, B + D_IVAR_OFFSET);
    sy_w64(s, D_IVARS + 16, B + S_X);
    sy_w64(s, D_IVARS + 24, B + S_I);
    sy_w32(s, D_IVARS + 32, 2);
    sy_w32(s, D_IVARS + 36, 4);
    sy_w32(s, D_IVAR_OFFSET, 8);

    /* category_t { name, cls, instanceMethods, classMethods, protocols, instanceProperties, classProperties } */
    sy_w64(s, D_CATEGORY, B + S_CAT);
    sy_w64(s, D_CATEGORY + 8, B + D_CLASS);
    sy_w64(s, D_CATEGORY + 16, B + D_METHODS);
    sy_w64(s, D_CATEGORY + 40, B + D_PROPS);
    sy_w64(s, D_CATEGORY + 48, B + D_PROPS); /* read because the image info says class properties exist */
    /* property_list_t { entsize, count } + property_t { name, attributes } */
    sy_w32(s, D_PROPS, 16);
    sy_w32(s, D_PROPS + 4, 1);
    sy_w64(s, D_PROPS + 8, B + S_X);
    sy_w64(s, D_PROPS + 16, B + S_TI);
}

static dk_status decode(synth *s, dk_macho **m, dk_objc **o, dk_error *err)
{
    *o = NULL;
    dk_status st = dk_macho_open(s->buf, s->size, "synthetic", m, err);
    if (st) return st;
    return dk_objc_open(*m, NULL, o, err);
}

static void test_good(void)
{
    static synth s;
    build(&s);
    dk_macho *m = NULL;
    dk_objc *o = NULL;
    dk_error err = {0};
    dk_status st = decode(&s, &m, &o, &err);
    CHECK(st == DK_OK);
    if (st) {
        fprintf(stderr, "decode: %s\n", err.message);
        dk_macho_close(m);
        return;
    }
    CHECK(dk_objc_get_abi(o) == DK_OBJC_ABI_2);
    const dk_objc_image_info *ii = dk_objc_get_image_info(o);
    CHECK(ii->present);
    CHECK_EQ_U64(ii->flags, 0x40);

    size_t n;
    const dk_objc_class *c = dk_objc_classes(o, &n);
    CHECK_EQ_U64(n, 1);
    if (n == 1) {
        CHECK_STR(c->name, "Foo");
        CHECK(c->superclass.name == NULL);
        CHECK_EQ_U64(c->address, B + D_CLASS);
        CHECK_EQ_U64(c->data, B + D_RO);
        CHECK(c->swift && c->data_bits == 2);
        CHECK_EQ_U64(c->flags, 2);
        CHECK_EQ_U64(c->instance_start, 8);
        CHECK_EQ_U64(c->instance_size, 12);
        CHECK_EQ_U64(c->metaclass.address, B + D_META);
        CHECK_EQ_U64(c->meta_flags, 3);
        CHECK_EQ_U64(c->instance_methods.count, 1);
        CHECK(!c->instance_methods.relative);
        if (c->instance_methods.count == 1) {
            CHECK_STR(c->instance_methods.items[0].name, "bar");
            CHECK_STR(c->instance_methods.items[0].types, "v16@0:8");
            CHECK(c->instance_methods.items[0].has_imp);
            CHECK_EQ_U64(c->instance_methods.items[0].imp, B + 0x900);
        }
        CHECK_EQ_U64(c->class_methods.count, 1);
        CHECK(c->class_methods.relative);
        if (c->class_methods.count == 1) {
            CHECK_STR(c->class_methods.items[0].name, "bar"); /* through the selref */
            CHECK_STR(c->class_methods.items[0].types, "v16@0:8");
            CHECK_EQ_U64(c->class_methods.items[0].imp, B + 0x910);
        }
        CHECK_EQ_U64(c->ivars.count, 1);
        if (c->ivars.count == 1) {
            CHECK_STR(c->ivars.items[0].name, "_x");
            CHECK_STR(c->ivars.items[0].type, "i");
            CHECK(c->ivars.items[0].has_offset);
            CHECK_EQ_U64(c->ivars.items[0].offset, 8);
            CHECK_EQ_U64(c->ivars.items[0].size, 4);
            CHECK_EQ_U64(c->ivars.items[0].alignment_raw, 2);
        }
        CHECK(dk_objc_class_index(o, B + D_CLASS) == 0);
        CHECK(dk_objc_class_index(o, B + D_META) == -1);
    }
    const dk_objc_category *cat = dk_objc_categories(o, &n);
    CHECK_EQ_U64(n, 1);
    if (n == 1) {
        CHECK_STR(cat->name, "Extras");
        CHECK_STR(cat->cls.name, "Foo");
        CHECK(!cat->cls.external);
        CHECK_EQ_U64(cat->instance_methods.count, 1);
        CHECK_EQ_U64(cat->properties.count, 1);
        if (cat->properties.count == 1) {
            CHECK_STR(cat->properties.items[0].name, "_x");
            CHECK_STR(cat->properties.items[0].attributes, "Ti,N");
        }
        CHECK_EQ_U64(cat->class_properties.count, 1);
    }
    const dk_objc_selref *sr = dk_objc_selrefs(o, &n);
    CHECK_EQ_U64(n, 1);
    if (n == 1) {
        CHECK_EQ_U64(sr->address, B + D_SELREFS);
        CHECK_STR(sr->selector, "bar");
    }
    char buf[128];
    dk_objc_ro_flags_string(3, " ", buf, sizeof buf);
    CHECK_STR(buf, "RO_META RO_ROOT");
    dk_objc_image_flags_string(0x40 | (5u << 8), ",", buf, sizeof buf);
    CHECK_STR(buf, "HasCategoryClassProperties,swift=5");
    dk_objc_close(o);
    dk_macho_close(m);
}

/* A damaged copy must fail with STATUS and a message containing WANT. */
static void expect_fail(synth *s, dk_status status, const char *want, const char *what)
{
    dk_macho *m = NULL;
    dk_objc *o = NULL;
    dk_error err = {0};
    dk_status st = decode(s, &m, &o, &err);
    if (st != status || !strstr(err.message, want)) {
        unit_failures++;
        fprintf(stderr, "%s: status %d (want %d), message \"%s\" (want \"%s\")\n", what, st, status, err.message, want);
    }
    unit_checks++;
    dk_objc_close(o);
    dk_macho_close(m);
}

/* Without OBJC_IMAGE_HAS_CATEGORY_CLASS_PROPERTIES, category_t ends before classProperties. */
static void test_no_category_class_properties(void)
{
    static synth s;
    build(&s);
    sy_w32(&s, D_IMAGEINFO + 4, 0);
    dk_macho *m = NULL;
    dk_objc *o = NULL;
    dk_error err = {0};
    CHECK(decode(&s, &m, &o, &err) == DK_OK);
    if (o) {
        size_t n;
        const dk_objc_category *cat = dk_objc_categories(o, &n);
        CHECK(n == 1 && cat->properties.count == 1 && cat->class_properties.count == 0);
    }
    dk_objc_close(o);
    dk_macho_close(m);
}

static void test_damaged(void)
{
    static synth s;
    build(&s);
    sy_w32(&s, D_METHODS + 4, 0xffffffffu);
    expect_fail(&s, DK_E_MALFORMED, "method_list_t at 0x100001300 (file offset 0x1300): count 4294967295",
                "huge method count");

    build(&s);
    sy_w32(&s, D_REL_METHODS, 4 | 0x80000000u);
    expect_fail(&s, DK_E_MALFORMED, "entsize 4 is smaller than a relative entry", "tiny relative entsize");

    build(&s);
    sy_w64(&s, D_CLASS + 8, B + D_CLASS); /* superclass = itself */
    expect_fail(&s, DK_E_MALFORMED, "superclass chain of Foo loops back to Foo", "superclass loop");

    build(&s);
    sy_w64(&s, D_CLASS + 32, B + 0x7000000);
    expect_fail(&s, DK_E_MALFORMED, "class_ro_t at 0x107000000 (outside every segment)", "class_ro_t outside");

    build(&s);
    sy_w32(&s, D_IVARS + 4, 0x10000000u);
    expect_fail(&s, DK_E_MALFORMED, "ivar_list_t", "huge ivar count");

    build(&s);
    memset(s.buf + 0x800, 'A', 0x800); /* no NUL until the end of __TEXT */
    expect_fail(&s, DK_E_MALFORMED, "string runs past the end of its segment", "unterminated name");

    build(&s);
    sy_w64(&s, D_SELREFS, 0);
    expect_fail(&s, DK_E_MALFORMED, "selector reference at 0x100001010 is null", "relative method via null selref");
}

/*
 * An image inside a real dyld shared cache (the corpus's -objc cache, when
 * present): relative method lists with direct selectors (flag 0x40000000),
 * pointers decoded through slide info, a superclass in another image.  The
 * class is the one of rizin's hello-macos-arm64 test program.
 */
static void test_cache_image(void)
{
    const char *path = "../shared/corpus/dyld_caches/dyld_shared_cache_arm64-macOS-objc";
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("test_objc: %s not found, cache image test skipped\n", path);
        return;
    }
    fclose(f);
    dk_error err = {0};
    dk_cache *c = NULL;
    dk_macho *m = NULL;
    dk_objc *o = NULL;
    size_t idx;
    CHECK(dk_cache_open(path, &c, &err) == DK_OK);
    if (!c) return;
    dk_objc_options opts = {0};
    dk_cache_objc_opt opt;
    if (dk_cache_objc_opt_info(c, &opt, NULL) == DK_OK && opt.selector_base) {
        opts.has_selector_base = true;
        opts.selector_base = opt.selector_base;
    }
    CHECK(dk_cache_find_image(c, "libhello-1.0.dylib", &idx, &err) == DK_OK);
    if (dk_cache_open_image(c, idx, &m, &err) == DK_OK && dk_objc_open(m, &opts, &o, &err) == DK_OK) {
        size_t n;
        const dk_objc_class *k = dk_objc_classes(o, &n);
        CHECK_EQ_U64(n, 1);
        if (n == 1) {
            static const char *const want[] = {"init", "methodWithoutArgs", "methodWithOneArg:",
                                               "methodWithTwoArgs:secondArg:", "methodWithReturn"};
            CHECK_STR(k->name, "Test");
            CHECK_STR(k->superclass.name, "NSObject"); /* read from libobjc's class_ro_t */
            CHECK(k->instance_methods.relative);
            CHECK(k->instance_methods.flags & DK_METHOD_LIST_DIRECT_SELECTORS);
            CHECK_EQ_U64(k->instance_methods.count, 5);
            for (size_t i = 0; i < k->instance_methods.count && i < 5; i++) {
                CHECK_STR(k->instance_methods.items[i].name, want[i]);
                CHECK(k->instance_methods.items[i].has_imp);
            }
            CHECK_EQ_U64(k->class_methods.count, 1);
            if (k->class_methods.count == 1) CHECK_STR(k->class_methods.items[0].name, "someStaticMethod");
        }
    } else {
        unit_failures++;
        fprintf(stderr, "cache image: %s\n", err.message);
    }
    dk_objc_close(o);
    dk_macho_close(m);
    dk_cache_close(c);
}

int main(void)
{
    dk_objc_close(NULL);
    test_good();
    test_no_category_class_properties();
    test_damaged();
    test_cache_image();
    return unit_finish("test_objc");
}
