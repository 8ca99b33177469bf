# Hostile servers and inputs through the C ABI (tests/c/test_hostile.c):
# echoed secrets, BILL-shaped codes, 401 at sign-in, strict URLs, CA files
# that are FIFOs or devices, no chunked request bodies. The Rust side of
# these checks is tests/hostile.rs (in test-rust).

.PHONY: test-hostile
TEST_TARGETS += test-hostile

$(BUILD)/test_hostile: tests/c/test_hostile.c tests/c/emu.h include/bill.h build | $(BUILD)
	$(CC) $(CFLAGS_STRICT) -Wno-unused-function -D_GNU_SOURCE $< -o $@ $(C_LDFLAGS)

test-hostile: build $(BUILD)/test_hostile
	scripts/with-emulator.sh -- $(BUILD)/test_hostile
