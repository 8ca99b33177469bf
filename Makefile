# libbill: top-level build. `make demo` and `make test` are the two set-up commands.
# Each area keeps its targets in mk/<area>.mk; this file only wires them together.

CARGO    ?= cargo
PROFILE  ?= debug
CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)
TARGET_DIR := $(CURDIR)/target/$(PROFILE)
LIB_SO   := $(TARGET_DIR)/libbill.so
LIB_A    := $(TARGET_DIR)/libbill.a
EMULATOR := $(TARGET_DIR)/bill-emulator
BUILD    := $(CURDIR)/build
CC       ?= cc
CXX      ?= c++
CFLAGS_STRICT := -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude -g
export LIB_SO LIB_A EMULATOR TARGET_DIR BUILD

.PHONY: all build demo test test-busy test-rust test-c check-header lint clean
all: build

# Builds libbill (.so, .a, header) and the emulator.
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR    := $(firstword $(subst ., ,$(VERSION)))
export VERSION MAJOR

build:
	$(CARGO) build $(CARGO_PROFILE_FLAG) --workspace --lib --bins
	@# The SONAME is libbill.so.$(MAJOR); programs linked in the build tree look for it.
	ln -sf libbill.so $(TARGET_DIR)/libbill.so.$(MAJOR)

$(BUILD):
	mkdir -p $(BUILD)

# Fails when the committed include/bill.h differs from what cbindgen generates now.
check-header: build
	@git diff --exit-code -- include/bill.h >/dev/null 2>&1 || { \
	  echo "include/bill.h is out of date: commit the regenerated header"; git --no-pager diff --stat -- include/bill.h; exit 1; }
	@echo "header: include/bill.h matches the sources"

# Formatting and lints: the tree stays rustfmt- and clippy-clean.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test $(CARGO_PROFILE_FLAG) --workspace

# `include`, not `-include`: a missing or renamed mk file is an error, not a
# silently shorter `make test`.
include mk/c.mk
include mk/cpp.mk
include mk/go.mk
include mk/python.mk
include mk/install.mk
include mk/safety.mk
include mk/hardening.mk
include mk/bench.mk
include mk/store.mk
include mk/fleet.mk
include mk/hostile.mk
include mk/ship.mk

# Every area's tests. Areas add themselves to TEST_TARGETS in their mk file.
test: build check-header lint test-rust test-c $(TEST_TARGETS)
	@echo "make test: all suites passed"

# The whole `make test` with CPU-burning processes beside it, as on a busy
# machine; the burners are stopped by pid however the run ends. Not part of `make test`.
BUSY_BURNERS ?= 2
test-busy:
	scripts/with-cpu-burners.sh $(BUSY_BURNERS) -- $(MAKE) --no-print-directory test

clean:
	$(CARGO) clean
	rm -rf $(BUILD)

# pkg-config file for the build tree, so `pkg-config bill` (and cgo) work without installing.
PKG_CONFIG_PATH_LOCAL := $(BUILD)/pkgconfig
$(BUILD)/pkgconfig/bill.pc: Cargo.toml scripts/gen-pc.sh | $(BUILD)
	mkdir -p $(BUILD)/pkgconfig
	scripts/gen-pc.sh $(CURDIR) $(TARGET_DIR) $(CURDIR)/include > $@
pc-local: $(BUILD)/pkgconfig/bill.pc
.PHONY: pc-local
