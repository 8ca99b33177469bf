#!/usr/bin/env bash
# Runs a command with N CPU-burning processes beside it, then stops them by
# pid, whether the command passes, fails or is interrupted (Ctrl-C, TERM).
#   scripts/with-cpu-burners.sh N -- command [args...]
# Exits with the command's status. A burner also stops by itself once this
# script is gone (even after a SIGKILL), so none is ever left spinning.
set -uo pipefail

usage() { echo "usage: $0 N -- command [args...]" >&2; exit 2; }
n=${1:-}
case $n in '' | *[!0-9]*) usage ;; esac
shift
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || usage

pids=()
stop_burners() {
  [ ${#pids[@]} -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  echo "with-cpu-burners: stopped ${#pids[@]} burner(s) (pids ${pids[*]})" >&2
  pids=()
}
trap stop_burners EXIT
# Stop the burners, then die of the same signal so callers see it.
for sig in INT TERM HUP; do
  trap "stop_burners; trap - $sig EXIT; kill -$sig \$\$" "$sig"
done

me=$$
for ((i = 0; i < n; i++)); do
  # Spins; every few million iterations checks that this script still runs.
  bash -c 'while kill -0 "$1" 2>/dev/null; do for ((j = 0; j < 200000; j++)); do :; done; done' burner "$me" &
  pids+=($!)
done
echo "with-cpu-burners: $n burner(s) running (pids ${pids[*]}): $*" >&2

"$@"
rc=$?
stop_burners
exit $rc
