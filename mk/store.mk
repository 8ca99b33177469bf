# Fleet mode's shared store (src/store/) against a real redis-server.
#
#   make test-store   tests/store.rs: URL parsing, the sealed session, lease and
#                     fence, last use, the fair semaphore (threads and processes,
#                     crashed holders), sign-in budget and pause, the breaker
#                     (kill and restart Redis), and a scan of Redis for secrets;
#                     tests/fleet.rs: sessions in separate OS processes sharing
#                     one sign-in, the in-flight limit, a killed lease holder,
#                     a Redis outage and restart, a wrong password
#
# Needs redis-server on PATH (Debian: redis-server; .ci/run installs it). Each
# test starts its own on a free loopback port without persistence and stops it
# by pid. `test-rust` runs the same file as part of the workspace; this target
# is the one to run alone, and it says plainly when Redis is missing.

.PHONY: test-store
test-store:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "test-store: redis-server is not on PATH (apt-get install redis-server)"; exit 1; }
	$(CARGO) test $(CARGO_PROFILE_FLAG) --test store --test fleet

TEST_TARGETS += test-store
