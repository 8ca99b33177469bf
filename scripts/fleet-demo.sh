#!/usr/bin/env bash
# The fleet demo: starts a throwaway redis-server, runs N copies of
# examples/c/fleet_demo.c against it at once, then checks from the BILL
# emulator's counters that they shared one session and BILL's in-flight limit.
# Runs inside scripts/with-emulator.sh (which sets BILL_* and
# BILL_EMULATOR_CONTROL):
#   scripts/with-emulator.sh --idle-timeout-ms 6000 -- scripts/fleet-demo.sh build/fleet_demo [N]
# Redis runs on a free loopback port, with a random password, without
# persistence, in a temp dir; it is stopped by pid however this script ends.
set -euo pipefail
demo=${1:?usage: $0 path/to/fleet_demo [processes]}
procs=${2:-4}
[ -x "$demo" ] || { echo "fleet-demo: $demo is not built" >&2; exit 2; }
[ -n "${BILL_EMULATOR_CONTROL:-}" ] || { echo "fleet-demo: run me under scripts/with-emulator.sh" >&2; exit 2; }
command -v redis-server >/dev/null 2>&1 || {
  echo "fleet-demo: redis-server is not on PATH (Debian: apt-get install redis-server)" >&2; exit 2; }

tmp=$(mktemp -d)
redis_pid=
demo_pids=()
cleanup() {
  local p
  for p in "${demo_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stats() { python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1] + "/_emu/stats", timeout=10).read().decode())' "$BILL_EMULATOR_CONTROL"; }
# The Redis password is random and never printed; redis-cli reads it from REDISCLI_AUTH.
export REDISCLI_AUTH
REDISCLI_AUTH=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

# A free loopback port; another program could take it before redis-server
# binds it, so try a few.
for attempt in 1 2 3; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$tmp" \
    --requirepass "$REDISCLI_AUTH" --daemonize no >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.05
  done
  redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
  kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; redis_pid=
  [ "$attempt" = 3 ] && { echo "fleet-demo: redis-server did not start:" >&2; cat "$tmp/redis.log" >&2; exit 1; }
done

export BILL_SHARED_STORE="redis://:$REDISCLI_AUTH@127.0.0.1:$port/0"
# Renew at half the idle timeout (with-emulator.sh sets BILL_IDLE_TIMEOUT_MS
# from the emulator's --idle-timeout-ms).
export BILL_RENEW_MARGIN_MS=${BILL_RENEW_MARGIN_MS:-$(( ${BILL_IDLE_TIMEOUT_MS:-6000} / 2 ))}
export BILL_FLEET_THREADS=${BILL_FLEET_THREADS:-3} BILL_FLEET_CALLS=${BILL_FLEET_CALLS:-3}
# The emulator holds each call this long, so calls from different processes overlap.
export BILL_FLEET_HOLD_MS=${BILL_FLEET_HOLD_MS:-150}
echo "fleet-demo: redis-server on 127.0.0.1:$port (pid $redis_pid); $procs processes x $BILL_FLEET_THREADS threads x $BILL_FLEET_CALLS calls"

for i in $(seq "$procs"); do
  "$demo" >"$tmp/p$i.out" 2>&1 &
  demo_pids+=($!)
done

# Once every process has printed its first fingerprint (and before the
# fleet has been idle long enough to renew), the emulator has seen one sign-in.
logins_at_start=
for _ in $(seq 600); do
  n=$(cat "$tmp"/p*.out | grep -c 'signed in: session #' || true)
  if [ "$n" -ge "$procs" ]; then
    logins_at_start=$(stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["logins"])')
    break
  fi
  alive=0
  for p in "${demo_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" -eq 0 ] && break
  sleep 0.05
done

rc=0
for p in "${demo_pids[@]}"; do wait "$p" || rc=1; done
demo_pids=()
for i in $(seq "$procs"); do cat "$tmp/p$i.out"; done
echo "fleet-demo: redis keys (names are keyed hashes):"
redis-cli -h 127.0.0.1 -p "$port" --scan | sort | sed 's/^/  /'
redis-cli -h 127.0.0.1 -p "$port" --scan >"$tmp/keys"
# Every value, to look for secrets in clear below.
while IFS= read -r key; do
  case $(redis-cli -h 127.0.0.1 -p "$port" type "$key") in
    string) redis-cli -h 127.0.0.1 -p "$port" get "$key" ;;
    hash) redis-cli -h 127.0.0.1 -p "$port" hgetall "$key" ;;
    zset) redis-cli -h 127.0.0.1 -p "$port" zrange "$key" 0 -1 withscores ;;
  esac
done <"$tmp/keys" >"$tmp/values"
[ "$rc" -eq 0 ] || echo "fleet-demo: a demo process failed" >&2

stats >"$tmp/stats.json"
cat "$tmp"/p*.out >"$tmp/all.out"
python3 - "$tmp/stats.json" "$tmp/all.out" "$procs" "${logins_at_start:-}" "$tmp/keys" "$rc" "$tmp/values" <<'EOF'
import json, os, re, sys
stats = json.load(open(sys.argv[1]))
out = open(sys.argv[2]).read()
procs, at_start, keys, rc = int(sys.argv[3]), sys.argv[4], open(sys.argv[5]).read(), int(sys.argv[6])

def fp(s):  # as fleet_demo.c: low 32 bits of FNV-1a 64
    h = 14695981039346656037
    for b in s.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%08x" % (h & 0xFFFFFFFF)

before = re.findall(r"\[pid (\d+)\] signed in: session #([0-9a-f]{8})", out)
after = re.findall(r"\[pid (\d+)\] renewed: session #([0-9a-f]{8})", out)
issued = [fp(i) for i in stats["sessions_issued"]]
failures = []
def check(ok, what):
    print("  [%s] %s" % ("ok" if ok else "FAILED", what))
    if not ok:
        failures.append(what)

print("fleet-demo: emulator stats: logins %d, login attempts %d, calls %d, logouts %d, "
      "peak in flight %d, BDC_1322 %d, sessions issued %s"
      % (stats["logins"], stats["login_attempts"], stats["calls"], stats["logouts"],
         stats["max_in_flight"], stats["rejected_1322"], " ".join("#" + f for f in issued)))
check(rc == 0, "every process exited 0")
check(at_start == "1", "1 sign-in once all %d processes had signed in (saw %s)" % (procs, at_start or "none"))
check(stats["logins"] == 2 and stats["login_attempts"] == 2,
      "2 sign-ins in all: the first and one renewal (saw %d, %d attempts)" % (stats["logins"], stats["login_attempts"]))
check(len(before) == procs and len({f for _, f in before}) == 1 and issued[:1] == [before[0][1]],
      "all %d processes printed the same first fingerprint, the first id issued (%s)"
      % (procs, " ".join(sorted({"#" + f for _, f in before})) or "none"))
check(len(after) == procs and len({f for _, f in after}) == 1 and issued[1:2] == [after[0][1]],
      "all %d processes printed the same fingerprint after the renewal, the second id issued (%s)"
      % (procs, " ".join(sorted({"#" + f for _, f in after})) or "none"))
check(0 < stats["max_in_flight"] <= 3 and stats["rejected_1322"] == 0,
      "peak in flight at BILL %d (at most 3), no BDC_1322" % stats["max_in_flight"])
check(stats["logouts"] == 0, "logout left the shared session signed in (no sign-out at BILL)")
check(not stats["violations"], "no secret in a query string")
clear = [os.environ.get(v, "") for v in ("BILL_USER", "BILL_ORG_ID", "BILL_DEV_KEY")]
check(keys.strip() != "" and not any(c and c.lower() in keys.lower() for c in clear),
      "no key name in Redis holds the userName, organization or devKey in clear")
values = open(sys.argv[7], errors="replace").read()
secrets = [os.environ.get(v, "") for v in ("BILL_USER", "BILL_PASSWORD", "BILL_DEV_KEY")] + stats["sessions_issued"]
check(not any(s and s in values for s in secrets),
      "no value in Redis holds the userName, password, devKey or a session id in clear")
if failures:
    print("fleet-demo: FAILED: " + "; ".join(failures))
    sys.exit(1)
print("fleet-demo: %d processes shared one BILL session and BILL's in-flight limit" % procs)
EOF
