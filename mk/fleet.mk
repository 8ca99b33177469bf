# Fleet mode demo: several processes share one BILL session through Redis.
#
#   make demo-fleet   starts the emulator (6 s idle timeout) and a throwaway
#                     redis-server, runs 4 copies of examples/c/fleet_demo.c
#                     at once, and checks from the emulator's counters: one
#                     sign-in for all 4, one renewal sign-in, the same session
#                     fingerprint in every process before and after, at most
#                     3 requests in flight at BILL. Needs redis-server on PATH.
# `make test` runs it too (test-demo-fleet): its checks are the demo's promises.

.PHONY: demo-fleet test-demo-fleet

$(BUILD)/fleet_demo: examples/c/fleet_demo.c include/bill.h | build $(BUILD)
	$(CC) $(CFLAGS_STRICT) -D_GNU_SOURCE $< -o $@ $(C_LDFLAGS)

FLEET_DEMO_PROCS ?= 4
demo-fleet: build $(BUILD)/fleet_demo
	scripts/with-emulator.sh --idle-timeout-ms 6000 -- scripts/fleet-demo.sh $(BUILD)/fleet_demo $(FLEET_DEMO_PROCS)

test-demo-fleet: demo-fleet

TEST_TARGETS += test-demo-fleet
