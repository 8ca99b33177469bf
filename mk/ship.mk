# Shipping beyond this Linux box: bill.dll, the manylinux wheel, the sdist,
# the self-contained Go module, release archives (scripts/ship.sh builds them).
#
#   make dll         bill.dll + libbill.dll.a + bill.def (x86_64-pc-windows-gnu, mingw-w64)
#   make wheel       billsession-*-py3-none-manylinux_2_17_x86_64.whl (cargo-zigbuild, glibc 2.17)
#   make sdist       billsession-*.tar.gz with the Rust sources
#   make go-module   libbill-go-*.tar.gz: bindings/go with prebuilt libbill.a (linux, windows) and bill.h
#   make dist        all of the above and the Linux/Windows archives, with SHA256SUMS, in dist/
#   make go-prebuilt a checkout's bindings/go/prebuilt/ -> this build tree (the Go default link mode)
#
# These build the release profile (LTO) into dist/. The tests build the
# `ship-test` profile (release without LTO: same code, a fraction of the
# compile time) into build/ship/dist-test/ and check that instead:
#
#   make test-windows     under Wine: C tests + C quickstart on v2/v3 (sign in, call,
#                         automatic renewal, logout), TLS roots, LoadLibrary/FreeLibrary x100
#   make test-wheel       the wheel in a fresh venv, no cargo on PATH, no repository beside it
#   make test-sdist       the sdist built by pip in an empty directory outside the repository
#   make test-go-module   the module archive unpacked like the module cache, used via replace
#   make test-dist        the Linux archive in an empty prefix: C consumers with only pkg-config
#   make test-ship        all five
#
# Needs (`.ci/run` installs them): mingw-w64, wine64, `rustup target add
# x86_64-pc-windows-gnu`; cargo-zigbuild, ziglang and auditwheel come from
# PyPI into build/ship/venv (scripts/ship.sh tools).

SHIP          := scripts/ship.sh
SHIP_DIR      := $(BUILD)/ship
SHIP_PROFILE  ?= release
DIST_DIR      ?= $(CURDIR)/dist
SHIP_TEST_PROFILE := ship-test
SHIP_TEST_DIST    := $(SHIP_DIR)/dist-test
SHIP_LINUX    := x86_64-unknown-linux-gnu
SHIP_WINDOWS  := x86_64-pc-windows-gnu
MINGW_CC      ?= x86_64-w64-mingw32-gcc
WIN_TEST_DIR  := $(SHIP_DIR)/windows-test
WIN_CFLAGS    := -std=c99 -Wall -Wextra -Werror -Iinclude -O1 -g

.PHONY: dll wheel sdist go-module dist go-prebuilt ship-tools \
  test-windows test-wheel test-sdist test-go-module test-dist test-ship \
  ship-test-libs ship-test-dist

ship-tools:
	$(SHIP) tools

dll:
	$(SHIP) lib $(SHIP_WINDOWS) $(SHIP_PROFILE)
	@echo "bill.dll, libbill.dll.a, bill.def: $(SHIP_DIR)/$(SHIP_PROFILE)/$(SHIP_WINDOWS)/"

wheel:
	$(SHIP) lib $(SHIP_LINUX) $(SHIP_PROFILE)
	$(SHIP) wheel $(SHIP_PROFILE) $(DIST_DIR)

sdist:
	$(SHIP) sdist $(DIST_DIR)

go-module:
	$(SHIP) lib $(SHIP_LINUX) $(SHIP_PROFILE)
	$(SHIP) lib $(SHIP_WINDOWS) $(SHIP_PROFILE)
	$(SHIP) go-module $(SHIP_PROFILE) $(DIST_DIR)

# Everything in dist/: archives, wheel, sdist, Go module, SHA256SUMS.
dist:
	rm -rf $(DIST_DIR) && mkdir -p $(DIST_DIR)
	$(SHIP) lib $(SHIP_LINUX) $(SHIP_PROFILE)
	$(SHIP) lib $(SHIP_WINDOWS) $(SHIP_PROFILE)
	$(SHIP) archives $(SHIP_PROFILE) $(DIST_DIR)
	$(SHIP) wheel $(SHIP_PROFILE) $(DIST_DIR)
	$(SHIP) sdist $(DIST_DIR)
	$(SHIP) go-module $(SHIP_PROFILE) $(DIST_DIR)
	$(SHIP) sums $(DIST_DIR)

# The Go binding's default link mode reads bindings/go/prebuilt/; in a
# checkout that is this build tree's libbill.a and bill.h (symlinks).
go-prebuilt: build
	$(SHIP) go-prebuilt $(LIB_A)
test-go: go-prebuilt

# --- Tests ------------------------------------------------------------------

# The test builds, once per `make` run however many tests need them.
ship-test-libs:
	$(SHIP) lib $(SHIP_LINUX) $(SHIP_TEST_PROFILE)
	$(SHIP) lib $(SHIP_WINDOWS) $(SHIP_TEST_PROFILE)

ship-test-dist: ship-test-libs
	$(MAKE) --no-print-directory dist SHIP_PROFILE=$(SHIP_TEST_PROFILE) DIST_DIR=$(SHIP_TEST_DIST)

$(WIN_TEST_DIR):
	mkdir -p $@

WIN_TEST_LIB := $(SHIP_DIR)/$(SHIP_TEST_PROFILE)/$(SHIP_WINDOWS)

# Test programs for Windows, against bill.h and the import library.
win-test-programs: ship-test-libs | $(WIN_TEST_DIR)
	$(MINGW_CC) $(WIN_CFLAGS) tests/windows/test_windows.c -o $(WIN_TEST_DIR)/test_windows.exe $(WIN_TEST_LIB)/libbill.dll.a
	@# nanosleep is winpthreads'; linked in, so no libwinpthread-1.dll is needed beside the .exe.
	$(MINGW_CC) $(WIN_CFLAGS) -D_GNU_SOURCE examples/c/quickstart.c -o $(WIN_TEST_DIR)/quickstart.exe \
	  $(WIN_TEST_LIB)/libbill.dll.a -Wl,-Bstatic -lpthread -Wl,-Bdynamic
	$(MINGW_CC) $(WIN_CFLAGS) tests/windows/test_winload.c -o $(WIN_TEST_DIR)/test_winload.exe
	@# Test only, never shipped: Wine 8 lacks bcryptprimitives.dll (see the file).
	$(MINGW_CC) $(WIN_CFLAGS) -shared tests/windows/bcryptprimitives.c -o $(WIN_TEST_DIR)/bcryptprimitives.dll -ladvapi32
	cp $(WIN_TEST_LIB)/bill.dll $(WIN_TEST_DIR)/
.PHONY: win-test-programs

WINE_RUN := scripts/wine-run.sh
EMU_WIN  := scripts/with-emulator.sh

test-windows: build win-test-programs
	$(WINE_RUN) --init
	$(EMU_WIN) --idle-timeout-ms 3000 -- $(WINE_RUN) $(WIN_TEST_DIR)/test_windows.exe
	$(EMU_WIN) --tls -- $(WINE_RUN) $(WIN_TEST_DIR)/test_windows.exe tls
	BILL_QUICKSTART_QUIET=1 BILL_API=3 $(EMU_WIN) --idle-timeout-ms 3000 -- $(WINE_RUN) $(WIN_TEST_DIR)/quickstart.exe
	BILL_QUICKSTART_QUIET=1 BILL_API=2 $(EMU_WIN) --idle-timeout-ms 3000 -- $(WINE_RUN) $(WIN_TEST_DIR)/quickstart.exe
	$(EMU_WIN) --idle-timeout-ms 4000 --login-limit 100000 -- $(WINE_RUN) $(WIN_TEST_DIR)/test_winload.exe bill.dll main
	$(EMU_WIN) --idle-timeout-ms 4000 --login-limit 100000 -- $(WINE_RUN) $(WIN_TEST_DIR)/test_winload.exe bill.dll thread
	@echo "test-windows: bill.dll passed under Wine (sessions v2/v3, TLS roots, quickstart v2/v3, load/free x100)"

test-wheel: build ship-test-dist
	tests/dist/test_wheel.sh $(SHIP_TEST_DIST)

# A debug build of the unpacked sdist: quickest to compile; the profile does not matter here.
test-sdist: build ship-test-dist
	SHIP_CARGO_PROFILE=dev SHIP_CARGO_TARGET_DIR=$(SHIP_DIR)/sdist-target tests/dist/test_sdist.sh $(SHIP_TEST_DIST)

# Also cross-builds the module for windows/amd64 and runs that under Wine.
test-go-module: build ship-test-dist win-test-programs
	$(WINE_RUN) --init
	tests/dist/test_go_module.sh $(SHIP_TEST_DIST) $(WIN_TEST_DIR)

test-dist: build ship-test-dist
	tests/dist/test_archives.sh $(SHIP_TEST_DIST) $(SHIP_DIR)/$(SHIP_TEST_PROFILE)/$(SHIP_LINUX)/native-static-libs

test-ship: test-windows test-wheel test-sdist test-go-module test-dist

TEST_TARGETS += test-windows test-wheel test-sdist test-go-module test-dist
