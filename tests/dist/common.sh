# Shared by the tests/dist/*.sh scripts (sourced): paths, messages, a PATH
# without Rust, and a scratch directory outside the repository.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)
major=${version%%.*}
what=$(basename "$0" .sh)
die() { echo "$what: FAIL: $*" >&2; exit 1; }
ok() { echo "$what: ok: $*"; }

dist=${1:?usage: $0 DIST_DIR}
dist=$(cd "$dist" && pwd)

# A scratch directory in /tmp (never below the repository), removed at exit.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/libbill-$what.XXXXXX")
case $tmp in "$here"/*) die "scratch directory $tmp is inside the repository" ;; esac
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# PATH without any directory that has cargo or rustc in it.
path_without_rust() {
  local out= d
  local IFS=:
  for d in $PATH; do
    [ -n "$d" ] || continue
    [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || [ -e "$d/rustup" ] && continue
    out=${out:+$out:}$d
  done
  echo "$out"
}

# The real interpreter behind python3 (pyenv's shims need pyenv on PATH).
real_python() { python3 -c 'import sys; print(sys.executable)'; }

# Runs a command with the emulator's BILL_* variables (scripts/with-emulator.sh).
emulated() { "$here/scripts/with-emulator.sh" "$@"; }
