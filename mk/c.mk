# C quickstart and C tests, built against include/bill.h and libbill.so.
# `build` is order-only for every program here: they link libbill.so
# dynamically, so a new library needs no relink; a changed source or header does.

C_LDFLAGS := -L$(TARGET_DIR) -Wl,-rpath,$(TARGET_DIR) -lbill -lpthread

$(BUILD)/quickstart: examples/c/quickstart.c include/bill.h | build $(BUILD)
	$(CC) $(CFLAGS_STRICT) -D_GNU_SOURCE $< -o $@ $(C_LDFLAGS)

$(BUILD)/test_c: tests/c/test_session.c tests/c/emu.h include/bill.h | build $(BUILD)
	$(CC) $(CFLAGS_STRICT) -D_GNU_SOURCE $< -o $@ $(C_LDFLAGS)

# Builds everything and runs the C quickstart against a fresh emulator.
demo: build $(BUILD)/quickstart
	scripts/with-emulator.sh --idle-timeout-ms 4000 -- $(BUILD)/quickstart

test-c: build $(BUILD)/quickstart $(BUILD)/test_c
	scripts/with-emulator.sh --idle-timeout-ms 3000 -- $(BUILD)/test_c
	BILL_QUICKSTART_QUIET=1 scripts/with-emulator.sh --idle-timeout-ms 3000 -- $(BUILD)/quickstart
