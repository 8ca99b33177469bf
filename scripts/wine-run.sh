#!/usr/bin/env bash
# Runs a Windows program under Wine (Debian's wine64) in the test prefix
# build/ship/wine, from the program's directory, and exits with its status.
#   scripts/wine-run.sh --init            create/update the prefix (the first time takes a while)
#   scripts/wine-run.sh PROG.exe [ARGS]   environment variables reach the program
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export WINEPREFIX=${WINEPREFIX:-${BUILD:-$here/build}/ship/wine}
# Wine's own chatter (fixme:, "wine32 is missing") is not the program's output.
export WINEDEBUG=${WINEDEBUG:--all}
# No Mono/Gecko installer dialogs when the prefix is made.
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=}
wine=
for w in wine64 /usr/lib/wine/wine64 wine; do
  if command -v "$w" >/dev/null 2>&1; then wine=$(command -v "$w"); break; fi
done
[ -n "$wine" ] || { echo "wine-run: no wine64 (apt-get install wine64)" >&2; exit 2; }

if [ "${1:-}" = "--init" ]; then
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    mkdir -p "$WINEPREFIX"
    "$wine" wineboot --init >/dev/null 2>&1 || true
    # The registry files are written when the wine server exits: wait for it.
    server=$(command -v wineserver || true)
    [ -n "$server" ] || server=$(dirname "$wine")/wineserver
    [ -x "$server" ] && "$server" -w || true
    [ -f "$WINEPREFIX/system.reg" ] || { echo "wine-run: could not create the prefix $WINEPREFIX" >&2; exit 1; }
    echo "wine-run: created the Wine prefix $WINEPREFIX"
  fi
  exit 0
fi
[ $# -gt 0 ] || { echo "usage: $0 --init | PROG.exe [ARGS]" >&2; exit 2; }
prog=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
cd "$(dirname "$prog")"
exec "$wine" "$prog" "$@"
