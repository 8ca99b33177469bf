# Benchmarks: `make bench`. Always a release build, whatever PROFILE
# says. Not part of `make test`: benchmarks measure, tests check behaviour.
#   make bench           build (release) + run everything BENCH_RUNS times (default 3),
#                        write build/bench/results.json and BENCHMARKS.md
#   make bench-build     only build the release library and the benchmark programs
#   make bench-profile   callgrind instruction counts of the hot paths (touch, id, call)
# BENCH_STEPS="hot net" runs only some steps (hot net pyhost sessions renewal timers size profile).
BENCH_RUNS  ?= 3
export BENCH_RUNS

BENCH_DIR   := $(BUILD)/bench
BENCH_REL   := $(CURDIR)/target/release
BENCH_CFLAGS := -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Ibenches/c
BENCH_STEPS ?=

.PHONY: bench bench-build bench-profile

bench-build:
	$(MAKE) --no-print-directory build PROFILE=release
	mkdir -p $(BENCH_DIR)
	$(CC) $(BENCH_CFLAGS) benches/c/hot.c -o $(BENCH_DIR)/hot -L$(BENCH_REL) -Wl,-rpath,$(BENCH_REL) -lbill -lpthread
	$(CC) $(BENCH_CFLAGS) benches/c/dlopen.c -o $(BENCH_DIR)/dlopen -ldl
	@# The Rust harnesses (benches/*.rs); cargo names the binaries by hash, so copy them.
	$(CARGO) build --release --bench bill_bench --bench renewal_bench --message-format=json-render-diagnostics \
	  | python3 -c 'import json,sys; [print(m["target"]["name"], m["executable"]) for m in map(json.loads, sys.stdin) if m.get("reason") == "compiler-artifact" and m["target"]["name"] in ("bill_bench", "renewal_bench") and m.get("executable")]' \
	  > $(BENCH_DIR)/benches.path
	while read -r name exe; do cp "$$exe" $(BENCH_DIR)/$$name; done < $(BENCH_DIR)/benches.path

bench: bench-build
	BENCH_COMMAND="make bench$(if $(BENCH_STEPS), BENCH_STEPS=\"$(BENCH_STEPS)\")$(if $(filter-out 3,$(BENCH_RUNS)), BENCH_RUNS=$(BENCH_RUNS))" \
	  scripts/bench.sh $(if $(BENCH_STEPS),--only $(BENCH_STEPS))

bench-profile: bench-build
	BENCH_COMMAND="make bench-profile" scripts/bench.sh --only profile
