# dyldkit — plain Makefile.  Honours CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR.
#
#   make              library (static + shared) and the dyldkit CLI in build/
#   make test         unit tests, fixtures, golden comparisons, corpus replay
#   make asan         the whole test suite under ASan + UBSan
#   make fuzz         libFuzzer targets (clang-22), FUZZ_SECONDS each (FUZZING.md);
#                     make check ends with CI_FUZZ_SECONDS (20) of each
#   make fuzz-cli     the whole corpus, then FUZZ_MUTATIONS mutations of it, through every command, ASan/UBSan
#   make bench        benchmarks (see BENCHMARKS.md)
#   make demo         build and run dyldkit on the embedded example
#   make install PREFIX=/usr/local

VERSION   := 0.1.0
CC        ?= cc
PREFIX    ?= /usr/local
BUILD     ?= build
OPT       ?= -O2
WERROR    ?= -Werror
CFLAGS    ?= $(OPT) -g
WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter $(WERROR)
CPPFLAGS  += -Iinclude -D_GNU_SOURCE
ALLCFLAGS  = -std=c11 $(WARN) $(CFLAGS) $(CPPFLAGS)
LDLIBS    += -lpthread -lm
# unicorn runs arm64 code for `dyldkit call` (libunicorn-dev, found with
# pkg-config); without it `call` runs x86_64 code only.  It is dlopen'ed on
# first use (linking it would slow every dyldkit start by ~40 ms), so only
# its header is needed at build time.
ifeq ($(shell pkg-config --exists unicorn 2>/dev/null && echo yes),yes)
CPPFLAGS  += -DDK_HAVE_UNICORN $(shell pkg-config --cflags unicorn 2>/dev/null)
LDLIBS    += -ldl
endif
# capstone lets the cache builder fix x86_64 RIP-relative code
# (libcapstone-dev); without it x86_64 caches are refused.  Like unicorn it
# is dlopen'ed when first needed (linking it cost every start ~28 ms).
ifeq ($(shell pkg-config --exists capstone 2>/dev/null && echo yes),yes)
CPPFLAGS  += -DDK_HAVE_CAPSTONE $(shell pkg-config --cflags capstone 2>/dev/null)
LDLIBS    += -ldl
endif

LIB_SRC   := $(wildcard src/*.c)
TOOL_SRC  := $(wildcard tools/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
PIC_OBJ   := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)
HEADERS   := $(wildcard include/dyldkit/*.h) $(wildcard src/*.h) $(wildcard tools/*.h)

STATIC    := $(BUILD)/libdyldkit.a
SHARED    := $(BUILD)/libdyldkit.so.$(VERSION)
CLI       := $(BUILD)/dyldkit

UNIT_SRC  := $(wildcard tests/unit/*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all test check asan fuzz fuzz-build fuzz-cli bench demo install uninstall clean fixtures unit

all: $(CLI) $(STATIC) $(SHARED)

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(BUILD)/pic/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -fPIC -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(PIC_OBJ)
	$(CC) -shared -Wl,-soname,libdyldkit.so.0 $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(CLI): $(TOOL_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(STATIC) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests/unit -Isrc -o $@ $< $(STATIC) $(LDLIBS)

# test_out compiles the CLI's writer into itself
$(BUILD)/tests/test_out: tools/out.c tools/out.h

unit: $(UNIT_BIN)

# The full suite: installs what it needs (scripts/deps.sh), builds the fixtures
# with clang-22/ld64.lld-22, then runs every test.
test:
	./scripts/deps.sh
	$(MAKE) all unit
	./scripts/run-tests.sh $(BUILD)

# What CI runs (.ci/run): the suite plain, then under ASan + UBSan, then a
# short libFuzzer run of every target (CI_FUZZ_SECONDS each; FUZZING.md).
# A per-input limit of 60 s there (10 s otherwise): a busy CI machine must not
# turn a slow sanitizer run into a false "timeout"; a real hang still trips it.
CI_FUZZ_SECONDS ?= 20
check: test asan
	FUZZ_TIMEOUT=60 $(MAKE) fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)

# The same suite with AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	./scripts/deps.sh
	$(MAKE) BUILD=build/asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" all unit
	./scripts/run-tests.sh build/asan

fixtures:
	./tests/fixtures/build.sh $(BUILD)/fixtures

# libFuzzer targets (fuzz/fuzz_*.c, see FUZZING.md): built with clang-22 into
# FUZZ_BUILD, then each runs FUZZ_SECONDS in turn (one process at a time).
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build/libfuzzer
FUZZ_CC      ?= clang-22
fuzz: fuzz-build
	./fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: all
	./bench/run.sh $(BUILD)

demo: $(CLI)
	./scripts/demo.sh $(CLI)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/dyldkit \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/dyldkit
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libdyldkit.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libdyldkit.so.0
	ln -sf libdyldkit.so.0 $(DESTDIR)$(PREFIX)/lib/libdyldkit.so
	install -m 644 include/dyldkit/*.h $(DESTDIR)$(PREFIX)/include/dyldkit/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' dyldkit.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/dyldkit.pc
	install -m 644 docs/dyldkit.1 $(DESTDIR)$(PREFIX)/share/man/man1/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/dyldkit $(DESTDIR)$(PREFIX)/lib/libdyldkit.* \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/dyldkit.pc $(DESTDIR)$(PREFIX)/share/man/man1/dyldkit.1
	rm -rf $(DESTDIR)$(PREFIX)/include/dyldkit

clean:
	rm -rf build

# ---- test tools (tests/tools/*.c): helpers linked against the static library,
# not installed.  mkarm64e converts the arm64 chained fixtures to arm64e
# (tests/fixtures/build.sh finds it as $DK_BUILD/tools/mkarm64e or $MKARM64E).
TEST_TOOL_SRC := $(wildcard tests/tools/*.c)
TEST_TOOLS    := $(TEST_TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

all: $(TEST_TOOLS)
fixtures: $(TEST_TOOLS)
fixtures: export MKARM64E = $(abspath $(BUILD)/tools/mkarm64e)

$(BUILD)/tools/%: tests/tools/%.c $(HEADERS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

# ---- fuzz targets (fuzz/fuzz_<target>.c).  Each is linked with fuzz/replay.c
# (a plain main) into $(BUILD)/fuzz-replay/<target>, part of `make unit`, so
# `make test` and `make asan` replay the seeds and fuzz/regressions/ without
# libFuzzer (tests/test_fuzz_replay.py); and with libFuzzer into
# $(FUZZ_BUILD)/fuzzers/<target> by `make fuzz-build`.
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

unit: $(FUZZ_TARGETS:%=$(BUILD)/fuzz-replay/%)

$(BUILD)/fuzz-replay/%: fuzz/fuzz_%.c fuzz/replay.c fuzz/fuzz.h $(HEADERS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(LDFLAGS) -o $@ fuzz/replay.c $< $(STATIC) $(LDLIBS)

fuzz-build:
	./scripts/deps.sh
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) WERROR= CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	  LDFLAGS="$(FUZZ_SAN)" $(FUZZ_BUILD)/libdyldkit.a $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzzers/%)

$(BUILD)/fuzzers/%: fuzz/fuzz_%.c fuzz/fuzz.h $(HEADERS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

# Deterministic corpus mutations through every CLI command under ASan/UBSan
# (fuzz/cli_mutations.py, report in build/asan/cli-mutations.json); issue #8
# asks for 10,000 with no crash and no run over 2 s.  Hours of CPU: not in check.
# fuzz/cli_server.c runs each command in a child forked from one started
# sanitizer process (the CLI's main() compiled as dyldkit_cli_main).
# LeakSanitizer's exit scan costs ~70 ms a run here (4x the rest): off unless
# FUZZ_CLI_LEAKS=1 (the libFuzzer targets and make asan check leaks).
FUZZ_MUTATIONS ?= 10000
FUZZ_JOBS      ?= 2
FUZZ_CLI_LEAKS ?= 0
FUZZ_CLI_ENV = DK_BUILD=$(abspath build/asan) DYLDKIT=$(abspath build/asan/dyldkit) DK_SLOW=6 \
  ASAN_OPTIONS=detect_leaks=$(FUZZ_CLI_LEAKS):abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

fuzz-cli:
	./scripts/deps.sh
	$(MAKE) BUILD=build/asan CFLAGS="-O1 -g $(FUZZ_SAN)" LDFLAGS="-fsanitize=address,undefined" all build/asan/fuzz-cli-server
	$(FUZZ_CLI_ENV) python3 fuzz/cli_mutations.py --originals --jobs $(FUZZ_JOBS) --server $(abspath build/asan/fuzz-cli-server) \
	  --report build/asan/cli-originals.json
	$(FUZZ_CLI_ENV) python3 fuzz/cli_mutations.py --count $(FUZZ_MUTATIONS) --jobs $(FUZZ_JOBS) --server $(abspath build/asan/fuzz-cli-server)

$(BUILD)/obj/fuzz/dyldkit_cli_main.o: tools/dyldkit.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Dmain=dyldkit_cli_main -c $< -o $@

$(BUILD)/fuzz-cli-server: fuzz/cli_server.c $(BUILD)/obj/fuzz/dyldkit_cli_main.o $(filter-out %/dyldkit.o,$(TOOL_OBJ)) $(STATIC)
	$(CC) $(ALLCFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
