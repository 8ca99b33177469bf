#!/usr/bin/env bash
# Runs libbill's benchmarks against fresh loopback emulators and writes
# build/bench/results.json plus build/bench/table.md and BENCHMARKS.md.
#   scripts/bench.sh                 everything, BENCH_RUNS times (default 3)
#   scripts/bench.sh --only STEP...  some of: hot net pyhost sessions renewal timers size fleet profile
# Every step runs once per run, all steps of run 1 before run 2, so that a
# slow phase of the machine hits one run rather than every run of one step.
# The profile step (not in the default run; `make bench-profile`) counts
# instructions per call under callgrind (perf has no hardware counters on this
# VM) and system calls per call under strace.
# Expects the release build and the benchmark binaries from `make bench-build`.
# Every figure is measured, none is asserted: benchmarks never fail on a time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
OUT=${BENCH_OUT:-$here/build/bench}
REL=${BENCH_TARGET_DIR:-$here/target/release}
export EMULATOR=$REL/bill-emulator
FRAG=$OUT/frag
# hot, net and pyhost sign in and call far more often than BILL's hourly limits
# allow; sessions and renewal run under BILL's limits (the emulator's defaults).
EMU_FLAGS=(--login-limit 1000000000 --request-limit 1000000000)
PY=$OUT/venv/bin/python

# ---- steps that run inside scripts/with-emulator.sh ----
if [ "${1:-}" = "--inner" ]; then
  D=$3
  case "$2" in
    net)
      # bill_call vs plain ureq vs a raw socket, same process, interleaved.
      BENCH_JSON=$D/call.json "$OUT/bill_bench" call
      # curl doing the same sign-in POST, many URLs in one process (keep-alive).
      n=${BENCH_CURL_N:-300}
      printf '{"username":"%s","password":"%s","organizationId":"%s","devKey":"%s"}' \
        "$BILL_USER" "$BILL_PASSWORD" "$BILL_ORG_ID" "$BILL_DEV_KEY" >"$OUT/login.json"
      urls=()
      for ((i = 0; i < n + 20; i++)); do urls+=("$BILL_V3_BASE_URL/v3/login"); done
      curl -s -H 'content-type: application/json' -H 'accept: application/json' -d @"$OUT/login.json" \
        -w '\nT=%{time_total} C=%{num_connects}\n' "${urls[@]}" >"$OUT/curl_login.txt"
      python3 - "$OUT/curl_login.txt" "$D/curl.json" <<'EOF'
import json, statistics, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("T=")]
t = [float(l.split()[0][2:]) * 1e6 for l in lines][20:]
connects = sum(int(l.split()[1][2:]) for l in lines[20:])
ok = sum(1 for l in open(sys.argv[1]) if '"sessionId"' in l)
r = {"login.curl.median_us": statistics.median(t), "login.curl.n": len(t),
     "login.curl.new_connections": connects, "login.curl.ok": ok}
for k, v in r.items():
    print(f"  {k:<44} {v:>12.3f}")
json.dump(r, open(sys.argv[2], "w"), indent=1)
EOF
      ;;
    renewal)
      # Parallel engine and serial engine (max_workers 1) in turn, the order
      # alternating from run to run; each in its own process so that its peak
      # worker count is its own.
      engines=(parallel serial)
      [ $(($4 % 2)) -eq 0 ] && engines=(serial parallel)
      for e in "${engines[@]}"; do
        BENCH_JSON=$D/renew_$e.json "$OUT/renewal_bench" "$e"
      done
      ;;
    *) echo "unknown inner step $2" >&2; exit 2 ;;
  esac
  exit 0
fi

steps=(hot net pyhost sessions renewal timers size fleet)
runs=${BENCH_RUNS:-3}
run=full
if [ "${1:-}" = "--only" ]; then shift; steps=("$@"); run="only-$(IFS=-; echo "$*")"; fi
# Fragments: $FRAG/runN/STEP*.json for run N, machine facts in $FRAG/meta_*.json.
if [ "$run" = full ]; then
  rm -rf "$FRAG"/run* "$FRAG"/meta_*.json
else
  # A partial run replaces the figures of its steps in every run; others stay.
  for s in "${steps[@]}"; do
    case "$s" in
      hot) rm -f "$FRAG"/run*/hot.json ;;
      net) rm -f "$FRAG"/run*/call.json "$FRAG"/run*/curl.json ;;
      pyhost) rm -f "$FRAG"/run*/pyhost.json ;;
      sessions) rm -f "$FRAG"/run*/sessions.json ;;
      renewal) rm -f "$FRAG"/run*/renew_*.json ;;
      timers) rm -f "$FRAG"/run*/timers.json ;;
      size) rm -f "$FRAG"/run*/dlopen_*.json "$FRAG"/run*/size.json ;;
      fleet) rm -f "$FRAG"/run*/fleet.json ;;
      profile) rm -f "$FRAG/profile.json" ;;
    esac
  done
fi
mkdir -p "$FRAG"

# Python for the host-language comparisons: a venv under build/ with requests from PyPI.
if [ ! -x "$PY" ] || ! "$PY" -c 'import requests' 2>/dev/null; then
  python3 -m venv "$OUT/venv"
  "$OUT/venv/bin/pip" install -q 'requests==2.34.2'
fi
command -v curl >/dev/null || { echo "curl is needed (apt-get install -y curl)" >&2; exit 2; }
if [[ " ${steps[*]} " == *" fleet "* ]] && ! command -v redis-server >/dev/null; then
  echo "redis-server is needed for the fleet step (apt-get install -y redis-server)" >&2
  exit 2
fi

# A throwaway redis-server on a free loopback port for the fleet step, stopped by pid.
redis_pid=
redis_dir=
stop_redis() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  [ -n "$redis_dir" ] && rm -rf "$redis_dir"
  redis_pid= redis_dir=
}
trap stop_redis EXIT
start_redis() {
  redis_dir=$(mktemp -d)
  redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" >"$redis_dir/log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-server did not start: $(cat "$redis_dir/log")" >&2
  exit 2
}

meta() { # meta PHASE: machine facts and load at the start/end of the run
  local file=$FRAG/meta_$1.json
  [ "$run" = full ] || file=$FRAG/meta_${run}_$1.json
  python3 - "$file" "$1" <<'EOF'
import json, os, subprocess, sys, time
phase = sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mhz = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("cpu MHz")), "?")
load = open("/proc/loadavg").read().split()[:3]
r = {f"{phase}.time": time.strftime("%Y-%m-%d %H:%M:%S %Z"), f"{phase}.loadavg": " ".join(load)}
if phase == "start":
    r.update({"nproc": os.cpu_count(), "cpu_model": cpu, "cpu_mhz": mhz,
              "kernel": os.uname().release,
              "git_rev": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
              # libbill is built from the working tree: say if it differed from HEAD.
              "src_uncommitted": subprocess.run(["git", "status", "--porcelain", "--", "src", "build.rs", "Cargo.toml", "Cargo.lock"],
                                                capture_output=True, text=True).stdout.strip() != "",
              "command": os.environ.get("BENCH_COMMAND", "make bench")})
json.dump(r, open(sys.argv[1], "w"), indent=1)
print(f"[{phase}] load average {' '.join(load)}")
EOF
}

meta start
for ((r = 1; r <= runs; r++)); do
  D=$FRAG/run$r
  for s in "${steps[@]}"; do
    [ "$s" = profile ] && continue
    mkdir -p "$D"
    echo "== run $r of $runs: $s"
    case "$s" in
      hot)
        scripts/with-emulator.sh "${EMU_FLAGS[@]}" -- env BENCH_JSON="$D/hot.json" "$OUT/hot" all ;;
      net)
        scripts/with-emulator.sh "${EMU_FLAGS[@]}" -- "$0" --inner net "$D" ;;
      pyhost)
        scripts/with-emulator.sh "${EMU_FLAGS[@]}" -- env BILL_LIB_SO="$REL/libbill.so" \
          "$PY" benches/python/host.py "$D/pyhost.json" ;;
      sessions)
        # BILL's limits: the sessions are spread so that they stay within them.
        scripts/with-emulator.sh -- env BENCH_JSON="$D/sessions.json" "$OUT/bill_bench" sessions ;;
      renewal)
        # BILL's limits (the emulator's defaults) and the row's idle timeout.
        scripts/with-emulator.sh --idle-timeout-ms "${BENCH_RENEW_IDLE_MS:-30000}" -- "$0" --inner renewal "$D" "$r" ;;
      timers)
        echo "BILL's sample for ${BENCH_SESSIONS:-10000} idle sessions: one threading.Timer each"
        "$PY" benches/python/timers_idle.py "$D/timers.json" ;;
      size)
        strip --strip-all -o "$OUT/libbill.stripped.so" "$REL/libbill.so"
        BENCH_JSON="$D/dlopen_stripped.json" BENCH_LABEL=stripped "$OUT/dlopen" "$OUT/libbill.stripped.so" 40
        BENCH_JSON="$D/dlopen_built.json" BENCH_LABEL=built "$OUT/dlopen" "$REL/libbill.so" 40
        python3 - "$REL/libbill.so" "$OUT/libbill.stripped.so" "$D/size.json" <<'EOF'
import json, os, sys
r = {"size.built_bytes": os.path.getsize(sys.argv[1]), "size.stripped_bytes": os.path.getsize(sys.argv[2])}
for k, v in r.items():
    print(f"  {k:<44} {v:>12} bytes ({v / 1048576:.2f} MiB)")
json.dump(r, open(sys.argv[3], "w"), indent=1)
EOF
        ;;
      fleet)
        start_redis
        scripts/with-emulator.sh "${EMU_FLAGS[@]}" -- env BENCH_JSON="$D/fleet.json" \
          BENCH_REDIS_URL="redis://127.0.0.1:$redis_port/0" "$OUT/bill_bench" fleet
        stop_redis ;;
      *) echo "unknown step $s" >&2; exit 2 ;;
    esac
  done
done
for s in "${steps[@]}"; do
  case "$s" in
    profile)
      command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 2; }
      cg=$OUT/callgrind
      mkdir -p "$cg"
      n=${BENCH_PROFILE_N:-100000} ncall=${BENCH_PROFILE_CALLS:-300}
      : >"$cg/runs.txt"
      profile() { # NAME FUNCTION CALLS PROGRAM...: callgrind, counting inside FUNCTION only
        local name=$1 fn=$2 calls=$3
        shift 3
        scripts/with-emulator.sh "${EMU_FLAGS[@]}" -- valgrind -q --tool=callgrind --collect-atstart=no \
          --toggle-collect="$fn" --callgrind-out-file="$cg/$name.out" "$@" >/dev/null
        echo "$name $calls" >>"$cg/runs.txt"
      }
      profile floor k_floor "$n" "$OUT/hot" profile floor "$n"
      profile touch bill_touch "$n" "$OUT/hot" profile touch "$n"
      profile memcpy k_memcpy "$n" "$OUT/hot" profile memcpy "$n"
      profile id bill_session_id "$n" "$OUT/hot" profile id "$n"
      profile call bill_call "$ncall" "$OUT/bill_bench" profile-call "$ncall"
      BENCH_CALL_N=5 BENCH_LOGIN_N=$ncall profile login bill_login "$((ncall + 20))" "$OUT/bill_bench" call
      # bill_call vs the plain ureq loop, whole process (every thread, the
      # reading of the body included): instructions of 3N calls minus N calls.
      for k in call ureq; do
        for m in 1 3; do
          scripts/with-emulator.sh "${EMU_FLAGS[@]}" -- valgrind -q --tool=callgrind \
            --callgrind-out-file="$cg/whole_${k}_$m.out" "$OUT/bill_bench" profile-$k $((ncall * m)) >/dev/null
        done
      done
      echo "$ncall" >"$cg/whole_n.txt"
      # System calls per call, bill_call vs the plain ureq loop (whole process;
      # N is large enough for sign-in and setup not to matter).
      if command -v strace >/dev/null; then
        for k in call ureq; do
          scripts/with-emulator.sh "${EMU_FLAGS[@]}" -- strace -f -c -o "$cg/strace_$k.txt" \
            "$OUT/bill_bench" profile-$k "${BENCH_PROFILE_STRACE_N:-1000}" >/dev/null
        done
      fi
      BENCH_PROFILE_STRACE_N=${BENCH_PROFILE_STRACE_N:-1000} python3 scripts/bench_profile_report.py "$OUT" ;;
    *) ;;
  esac
done
meta end
python3 scripts/bench_report.py "$OUT"
