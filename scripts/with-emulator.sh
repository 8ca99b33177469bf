#!/usr/bin/env bash
# Starts the BILL emulator on free loopback ports, runs a command with
# BILL_* variables pointing at it, then stops the emulator.
#   scripts/with-emulator.sh [emulator flags...] -- command [args...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
emulator=${EMULATOR:-$here/target/debug/bill-emulator}
emu_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do emu_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: $0 [emulator flags] -- command" >&2; exit 2; }
[ -x "$emulator" ] || { echo "emulator not built: $emulator (run make build)" >&2; exit 2; }

tmp=$(mktemp -d)
fifo=$tmp/out
mkfifo "$fifo"
"$emulator" "${emu_args[@]}" >"$fifo" 2>"$tmp/err" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
exec 3<"$fifo"
if ! IFS= read -r -t 30 line <&3; then
  echo "emulator did not start:" >&2; cat "$tmp/err" >&2; exit 1
fi
# Keep draining stdout so the emulator never blocks on a full pipe.
cat <&3 >/dev/null &

# field JSON KEY: one value of a JSON object ("" for null).
field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }
export BILL_EMULATOR_JSON="$line"
export BILL_EMULATOR_CONTROL=$(field "$line" control)
export BILL_V2_BASE_URL=$(field "$line" v2_base)
export BILL_V3_BASE_URL=$(field "$line" v3_base)
export BILL_CA_FILE=$(field "$line" ca_file)
# The emulator's seeded account, as the emulator defines it; real credentials never go to it.
account=$("$emulator" "${emu_args[@]}" --print-demo-account)
export BILL_USER=$(field "$account" userName) BILL_PASSWORD=$(field "$account" password)
export BILL_ORG_ID=$(field "$account" orgId) BILL_DEV_KEY=$(field "$account" devKey)
export BILL_BASE_URL=$BILL_V3_BASE_URL BILL_API=${BILL_API:-3}
# Sessions should idle out on the same schedule as the emulator's.
for ((i = 0; i < ${#emu_args[@]}; i++)); do
  [ "${emu_args[$i]}" = "--idle-timeout-ms" ] && export BILL_IDLE_TIMEOUT_MS=${emu_args[$((i + 1))]}
done
set +e
"$@"
rc=$?
set -e
exit $rc
