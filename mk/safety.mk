# Memory safety and secret hygiene at the C boundary.
#
#   make test-valgrind    the C programs under valgrind memcheck
#   make test-asan        the C programs built with ASan + UBSan
#   make test-secrets     no secret in freed memory, the heap at exit, error
#                         texts, event details or the emulator's URL log
#   make test-safety-mem  all three (each is also in `make test`)
#   make alloc-cost       times sign-ins and calls (docs/SECRETS.md); not a test
#
# The C programs: tests/c/test_session.c (test_c), tests/c/test_misuse.c and
# examples/c/quickstart.c, against the emulator (scripts/with-emulator.sh),
# so login, background and caller renewals, calls, recovery, logout, free
# and every misuse case run under each tool. Each tool first has to catch a
# planted mistake (tests/valgrind/canary.c): a tool that is not really
# checking fails the target instead of passing it.
#
# Needs: valgrind, and gcc's sanitizer runtimes (libasan8, libubsan1: pulled
# in by gcc on Debian). Nothing else: LSan comes with ASan. The Rust cdylib is
# not instrumented; ASan still checks every access the C side makes,
# including to buffers libbill hands out, and its allocator (which libbill's
# Rust code also uses, through malloc) finds leaks and double frees. No
# LD_PRELOAD or ASAN_OPTIONS tricks are needed: the sanitized programs link
# libasan first.

SAFETY    := $(BUILD)/safety
ASAN_CFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
VALGRIND  ?= valgrind
# --fair-sched: test_c's 16 reader threads would otherwise starve the renewal
# thread under valgrind's big lock. Only definite and indirect leaks fail:
# "possibly lost" is what Rust's statics and the still-running pools look
# like (interior pointers), and "still reachable" is not a leak.
VALGRIND_FLAGS := -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect --fair-sched=yes --num-callers=40 \
  --suppressions=tests/valgrind/libbill.supp
ASAN_ENV  := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Runs a command under a fresh emulator. test_misuse signs in with the default
# idle timeout (35 min) and no background renewal, so its emulator keeps
# BILL's default too: a slow run (valgrind, a busy machine) outlasts a short
# one and then meets BDC_1109 mid-test.
EMU       := scripts/with-emulator.sh

.PHONY: test-valgrind test-asan test-secrets test-safety-mem alloc-cost
TEST_TARGETS += test-valgrind test-asan test-secrets

$(SAFETY) $(SAFETY)/asan:
	mkdir -p $@

$(SAFETY)/test_misuse: tests/c/test_misuse.c tests/c/emu.h include/bill.h | build $(SAFETY)
	$(CC) $(CFLAGS_STRICT) -D_GNU_SOURCE $< -o $@ $(C_LDFLAGS)

$(SAFETY)/canary: tests/valgrind/canary.c include/bill.h | build $(SAFETY)
	$(CC) $(CFLAGS_STRICT) -D_GNU_SOURCE $< -o $@ $(C_LDFLAGS)

# The same programs with ASan + UBSan: $(SAFETY)/asan/<name> is built from SAFETY_SRC_<name>.
SAFETY_SRC_test_c      := tests/c/test_session.c
SAFETY_SRC_test_misuse := tests/c/test_misuse.c
SAFETY_SRC_quickstart  := examples/c/quickstart.c
SAFETY_SRC_canary      := tests/valgrind/canary.c
.SECONDEXPANSION:
$(SAFETY)/asan/%: $$(SAFETY_SRC_$$*) tests/c/emu.h include/bill.h | build $(SAFETY)/asan
	@test -n "$(SAFETY_SRC_$*)" || { echo "no SAFETY_SRC_$* for $@" >&2; exit 1; }
	$(CC) $(CFLAGS_STRICT) $(ASAN_CFLAGS) -D_GNU_SOURCE $< -o $@ $(C_LDFLAGS)

# Runs `$(2)` and passes only if it fails and its output matches `$(3)`.
# $(1) names the check in messages.
define expect_caught
	@out=$$($(2) 2>&1); rc=$$?; \
	if [ $$rc -ne 0 ] && printf '%s\n' "$$out" | grep -q -- '$(3)'; then \
	  echo "$(1): planted mistake caught (exit $$rc)"; \
	else \
	  printf '%s\n' "$$out" | tail -30; echo "$(1): the planted mistake was NOT caught (exit $$rc): the tool is not checking"; exit 1; \
	fi
endef

test-valgrind: build $(BUILD)/test_c $(BUILD)/quickstart $(SAFETY)/test_misuse $(SAFETY)/canary
	$(call expect_caught,valgrind canary leak,$(EMU) -- $(VALGRIND) $(VALGRIND_FLAGS) $(SAFETY)/canary leak,definitely lost)
	$(call expect_caught,valgrind canary uaf,$(EMU) -- $(VALGRIND) $(VALGRIND_FLAGS) $(SAFETY)/canary uaf,Invalid read)
	$(EMU) -- $(VALGRIND) $(VALGRIND_FLAGS) $(SAFETY)/test_misuse
	BILL_QUICKSTART_QUIET=1 $(EMU) --idle-timeout-ms 4000 -- $(VALGRIND) $(VALGRIND_FLAGS) $(BUILD)/quickstart
	$(EMU) --idle-timeout-ms 6000 -- $(VALGRIND) $(VALGRIND_FLAGS) $(BUILD)/test_c
	@echo "test-valgrind: no invalid access and no leak in test_misuse, quickstart, test_c"

test-asan: build $(SAFETY)/asan/test_c $(SAFETY)/asan/test_misuse $(SAFETY)/asan/quickstart $(SAFETY)/asan/canary
	$(call expect_caught,asan canary leak,$(EMU) -- env $(ASAN_ENV) $(SAFETY)/asan/canary leak,LeakSanitizer: detected memory leaks)
	$(call expect_caught,asan canary uaf,$(EMU) -- env $(ASAN_ENV) $(SAFETY)/asan/canary uaf,heap-use-after-free)
	$(call expect_caught,ubsan canary,$(EMU) -- env $(ASAN_ENV) $(SAFETY)/asan/canary ub,signed integer overflow)
	$(EMU) -- env $(ASAN_ENV) $(SAFETY)/asan/test_misuse
	BILL_QUICKSTART_QUIET=1 $(EMU) --idle-timeout-ms 3000 -- env $(ASAN_ENV) $(SAFETY)/asan/quickstart
	$(EMU) --idle-timeout-ms 3000 -- env $(ASAN_ENV) $(SAFETY)/asan/test_c
	@echo "test-asan: no ASan/UBSan/LSan report in test_misuse, quickstart, test_c"

# --- Secrets ---------------------------------------------------------------
# tests/secretscan/shim.c is preloaded into the test program only (never the
# emulator or the shell): it keeps a copy of every block freed and, at exit,
# searches them and the heap for the secrets: the ones the program registers,
# the ones named by SECRETSCAN_ENV, and every session id in the emulator's
# /_emu/stats; it also fails if /_emu/stats has violations.
$(SAFETY)/secretscan.so: tests/secretscan/shim.c tests/c/emu.h | $(SAFETY)
	$(CC) -std=c99 -Wall -Wextra -Werror -pedantic -g -O2 -fPIC -shared -D_GNU_SOURCE $< -o $@ -ldl -lpthread

$(SAFETY)/test_secrets: tests/secretscan/test_secrets.c tests/c/emu.h include/bill.h | build $(SAFETY)
	$(CC) $(CFLAGS_STRICT) -Wno-unused-function -D_GNU_SOURCE $< -o $@ $(C_LDFLAGS) -ldl

SCAN = env LD_PRELOAD=$(SAFETY)/secretscan.so SECRETSCAN_REQUIRE=libbill.so SECRETSCAN_HEAP=1 SECRETSCAN_QUIET=1
# The seeded account's password and devKey (the programs below sign in with them).
SCAN_ENV = SECRETSCAN_ENV=BILL_PASSWORD:password,BILL_DEV_KEY:devKey

test-secrets: build $(SAFETY)/secretscan.so $(SAFETY)/test_secrets $(BUILD)/test_c $(BUILD)/quickstart $(SAFETY)/test_misuse
	$(EMU) --idle-timeout-ms 1500 -- $(SCAN) $(SAFETY)/test_secrets
	$(EMU) --tls --idle-timeout-ms 1500 -- $(SCAN) $(SAFETY)/test_secrets
	$(EMU) -- $(SCAN) $(SCAN_ENV) $(SAFETY)/test_misuse
	BILL_QUICKSTART_QUIET=1 $(EMU) --idle-timeout-ms 3000 -- $(SCAN) $(SCAN_ENV) $(BUILD)/quickstart
	$(EMU) --idle-timeout-ms 3000 -- $(SCAN) $(SCAN_ENV) $(BUILD)/test_c
	@echo "test-secrets: no secret left in freed memory, the heap at exit, error texts or URLs"

test-safety-mem: test-valgrind test-asan test-secrets

# --- What wiping costs (docs/SECRETS.md) -------------------------------------
# LIBBILL_DIR: the libbill.so to time (default: this build). ALLOC_COST_ARGS: logins calls.
LIBBILL_DIR ?= $(TARGET_DIR)
ALLOC_COST_ARGS ?= 200 2000
$(SAFETY)/alloc_cost: tests/secretscan/alloc_cost.c tests/c/emu.h include/bill.h | build $(SAFETY)
	$(CC) $(CFLAGS_STRICT) -O2 -D_GNU_SOURCE $< -o $@ -L$(TARGET_DIR) -lbill -lpthread

alloc-cost: $(SAFETY)/alloc_cost
	$(EMU) --idle-timeout-ms 600000 --login-limit 1000000 -- env LD_LIBRARY_PATH=$(LIBBILL_DIR) $(SAFETY)/alloc_cost $(ALLOC_COST_ARGS)
