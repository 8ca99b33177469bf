#!/usr/bin/env bash
# Install test (make test-install): installs libbill into a temporary prefix,
# checks the files, SONAME, exported symbols, version macros and header
# strictness, builds C and C++ consumers with nothing but pkg-config
# (dynamic: bill.pc, static: bill-static.pc), runs them against the emulator,
# then uninstalls and checks nothing is left. Repeats install/uninstall with
# DESTDIR and builds against the staged tree through PKG_CONFIG_SYSROOT_DIR.
#
# Uses the profile of the current build (TARGET_DIR from the Makefile;
# debug by default) so it needs no release build.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
MAKE=${MAKE:-make}
CC=${CC:-cc}
CXX=${CXX:-c++}
profile=$(basename "${TARGET_DIR:-$root/target/debug}")
version=${VERSION:?"run through make test-install (the Makefile reads the version from Cargo.toml)"}
major=${version%%.*}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bill-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
checks=0
ok() { checks=$((checks + 1)); echo "  ok: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }
# Runs a make target quietly; shows its output only when it fails.
quiet_make() {
  local log=$tmp/make.log
  "$MAKE" --no-print-directory -C "$root" "$@" >"$log" 2>&1 || { cat "$log" >&2; die "make $*"; }
}
# Regular files and symlinks below $1, relative to it, sorted.
# grep that reads all of its input (grep -q could SIGPIPE the writer, which pipefail reports).
has() { grep "$@" >/dev/null; }
listing() { (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort); }

echo "install test: libbill $version ($profile build) into $prefix"

# ---- make install PREFIX=... -------------------------------------------------
# Paths are passed explicitly so LIBDIR etc. in the environment cannot redirect the test.
layout() { echo "PREFIX=$1" "LIBDIR=$1/lib" "INCLUDEDIR=$1/include" "PKGCONFIGDIR=$1/lib/pkgconfig"; }
quiet_make install PROFILE="$profile" $(layout "$prefix") DESTDIR=
expected=$(printf '%s\n' include/bill.h include/bill.hpp lib/libbill.a lib/libbill.so "lib/libbill.so.$major" \
  "lib/libbill.so.$version" lib/pkgconfig/bill-static.pc lib/pkgconfig/bill.pc | LC_ALL=C sort)
[ "$(listing "$prefix")" = "$expected" ] || die "installed files differ:
$(diff <(echo "$expected") <(listing "$prefix"))"
ok "installed exactly: $(echo $expected)"

lib=$prefix/lib
[ "$(readlink "$lib/libbill.so")" = "libbill.so.$major" ] || die "libbill.so -> $(readlink "$lib/libbill.so")"
[ "$(readlink "$lib/libbill.so.$major")" = "libbill.so.$version" ] || die "libbill.so.$major -> $(readlink "$lib/libbill.so.$major")"
[ -f "$lib/libbill.so.$version" ] && [ ! -L "$lib/libbill.so.$version" ] || die "libbill.so.$version is not a file"
ok "symlinks libbill.so -> libbill.so.$major -> libbill.so.$version"

mode() { stat -c %a "$1"; }
[ "$(mode "$lib/libbill.so.$version")" = 755 ] || die "libbill.so.$version mode $(mode "$lib/libbill.so.$version")"
for f in lib/libbill.a include/bill.h include/bill.hpp lib/pkgconfig/bill.pc lib/pkgconfig/bill-static.pc; do
  [ "$(mode "$prefix/$f")" = 644 ] || die "$f mode $(mode "$prefix/$f")"
done
cmp -s include/bill.h "$prefix/include/bill.h" && cmp -s include/bill.hpp "$prefix/include/bill.hpp" \
  || die "installed headers differ from include/"
ok "modes 755 (shared library) / 644 (rest); headers match include/"

# ---- SONAME, exports ---------------------------------------------------------
soname=$(readelf -d "$lib/libbill.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libbill.so.$major" ] || die "SONAME is '$soname', want libbill.so.$major"
ok "SONAME $soname"
if readelf -d "$lib/libbill.so.$version" | has -E '\((RPATH|RUNPATH)\)'; then die "libbill.so has an RPATH/RUNPATH"; fi
ok "no RPATH/RUNPATH in the shared library"

nm -D --defined-only "$lib/libbill.so.$version" | awk '{print $NF}' | LC_ALL=C sort -u >"$tmp/exports"
[ -s "$tmp/exports" ] || die "no exported symbols"
if grep -Ev '^bill_[a-z0-9_]+$' "$tmp/exports" >"$tmp/leaks"; then
  die "symbols other than bill_* are exported: $(head -20 "$tmp/leaks" | tr '\n' ' ')"
fi
grep -E '^[a-z]' "$prefix/include/bill.h" | grep -oE '\bbill_[a-z0-9_]+\(' | tr -d '(' | LC_ALL=C sort -u >"$tmp/declared"
diff -u "$tmp/declared" "$tmp/exports" >"$tmp/diff" || die "bill.h declarations and exports differ:
$(cat "$tmp/diff")"
ok "exports: exactly the $(wc -l <"$tmp/exports") bill_* functions declared in bill.h"

# ---- pkg-config ------------------------------------------------------------------
export PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=$lib/pkgconfig
unset PKG_CONFIG_SYSROOT_DIR
[ "$(pkg-config --modversion bill)" = "$version" ] && [ "$(pkg-config --modversion bill-static)" = "$version" ] \
  || die "pkg-config --modversion"
[ "$(pkg-config --variable=prefix bill)" = "$prefix" ] || die "bill.pc prefix"
ok "pkg-config: bill and bill-static, version $version"
echo "  bill:        $(pkg-config --cflags --libs bill)"
echo "  bill static: $(pkg-config --static --cflags --libs bill-static)"

# ---- header checks (the installed headers, found through pkg-config only) --------
cflags=$(pkg-config --cflags bill)
printf '#include <bill.h>\nint main(void) { return bill_version() == 0; }\n' >"$tmp/h.c"
printf '#include <bill.hpp>\nint main() { return bill::version() == nullptr; }\n' >"$tmp/hpp.cpp"
for std in c99 c11 c17; do
  "$CC" -std=$std -Wall -Wextra -Werror -pedantic $cflags -fsyntax-only "$tmp/h.c" || die "bill.h with -std=$std"
done
for std in c++11 c++14 c++17 c++20; do
  "$CXX" -std=$std -Wall -Wextra -Werror -pedantic $cflags -fsyntax-only -x c++ "$tmp/h.c" || die "bill.h as $std"
done
for std in c++17 c++20; do
  "$CXX" -std=$std -Wall -Wextra -Werror -pedantic $cflags -fsyntax-only "$tmp/hpp.cpp" || die "bill.hpp as $std"
done
ok "bill.h warning-free as C99/C11/C17 and C++11..20; bill.hpp as C++17/20 (-Wall -Wextra -Werror -pedantic)"

# Version macros == Cargo.toml == bill_version().
cat >"$tmp/version.c" <<'C'
#include <stdio.h>
#include <bill.h>
int main(void) {
    printf("%d.%d.%d %s %s\n", BILL_VERSION_MAJOR, BILL_VERSION_MINOR, BILL_VERSION_PATCH, BILL_VERSION_STRING, bill_version());
    return 0;
}
C
"$CC" -std=c99 -Wall -Wextra -Werror -pedantic $cflags "$tmp/version.c" -o "$tmp/version" $(pkg-config --libs bill)
got=$(LD_LIBRARY_PATH=$lib "$tmp/version")
[ "$got" = "$version $version $version" ] || die "version macros / bill_version(): '$got', want $version"
ok "BILL_VERSION_MAJOR/_MINOR/_PATCH, BILL_VERSION_STRING and bill_version() are $version"

# ---- consumers, built with pkg-config only ----------------------------------------
# Sources are copied out of the tree so nothing but the installed headers is found.
mkdir -p "$tmp/src"
c_src=examples/c/quickstart.c
[ -f "$c_src" ] || c_src=tests/install/consumer.c
cp "$c_src" "$tmp/src/consumer.c"
cp examples/cpp/quickstart.cpp "$tmp/src/consumer.cpp"
echo "  consumers: $c_src, examples/cpp/quickstart.cpp"
build() {  # name compiler std source pkg-config-args...
  local name=$1 compiler=$2 std=$3 src=$4
  shift 4
  local t0=$SECONDS
  # shellcheck disable=SC2046  # pkg-config output is meant to be split into words
  "$compiler" -std="$std" -D_GNU_SOURCE -Wall $(pkg-config "$@" --cflags) "$tmp/src/$src" -o "$tmp/$name" \
    $(pkg-config "$@" --libs) || die "building $name with pkg-config $*"
  echo "  built $name ($((SECONDS - t0)) s): pkg-config $* --cflags --libs"
}
build c-dynamic "$CC" c99 consumer.c bill
build cpp-dynamic "$CXX" c++17 consumer.cpp bill
build c-static "$CC" c99 consumer.c --static bill-static
build cpp-static "$CXX" c++17 consumer.cpp --static bill-static

for b in c-dynamic cpp-dynamic; do
  readelf -d "$tmp/$b" | has "(NEEDED).*\[libbill.so.$major\]" || die "$b does not need libbill.so.$major"
  LD_LIBRARY_PATH=$lib ldd "$tmp/$b" | has "libbill.so.$major => $lib/libbill.so.$major" \
    || die "$b does not load $lib/libbill.so.$major: $(LD_LIBRARY_PATH=$lib ldd "$tmp/$b")"
done
ok "dynamic consumers need libbill.so.$major and load it from the prefix"
for b in c-static cpp-static; do
  if ldd "$tmp/$b" | has libbill; then die "$b links libbill dynamically: $(ldd "$tmp/$b")"; fi
  if readelf -d "$tmp/$b" | has '(NEEDED).*libbill'; then die "$b has NEEDED libbill"; fi
  nm "$tmp/$b" | has ' T bill_login$' || die "$b does not contain bill_login"
done
ok "static consumers contain libbill.a (ldd and NEEDED show no libbill)"

# Each consumer signs in, reads the id, calls and signs out, on v3 and on v2.
cat >"$tmp/run-consumers.sh" <<SH
set -e
for b in c-dynamic cpp-dynamic c-static cpp-static; do
  for api in 3 2; do
    case \$b in *-dynamic) libpath=$lib ;; *) libpath= ;; esac
    BILL_API=\$api LD_LIBRARY_PATH=\$libpath "$tmp/\$b" >"$tmp/out" 2>&1 || { cat "$tmp/out"; echo "\$b (v\$api) failed"; exit 1; }
    echo "  ran \$b against the emulator (v\$api)"
  done
done
SH
env -u BILL_IDLE_TIMEOUT_MS -u BILL_RENEW_MARGIN_MS -u LD_LIBRARY_PATH BILL_QUICKSTART_QUIET=1 \
  scripts/with-emulator.sh -- bash "$tmp/run-consumers.sh" || die "consumers against the emulator"
ok "4 consumers x 2 API versions ran against the emulator"

# ---- make uninstall ------------------------------------------------------------------
quiet_make uninstall $(layout "$prefix") DESTDIR=
left=$(listing "$prefix")
[ -z "$left" ] || die "left after uninstall: $left"
ok "uninstall removed every file and symlink (prefix holds no files)"

# ---- DESTDIR staging ----------------------------------------------------------------
stage=$tmp/stage
dest_prefix=/opt/libbill-install-test
quiet_make install PROFILE="$profile" $(layout "$dest_prefix") DESTDIR="$stage"
[ "$(listing "$stage")" = "$(echo "$expected" | sed "s|^|${dest_prefix#/}/|")" ] \
  || die "DESTDIR install differs: $(listing "$stage")"
[ ! -e "$dest_prefix" ] || die "$dest_prefix exists outside DESTDIR"
staged=$stage$dest_prefix
grep -q "^prefix=$dest_prefix\$" "$staged/lib/pkgconfig/bill.pc" || die "bill.pc prefix with DESTDIR"
if grep -rqF "$stage" "$staged/lib/pkgconfig" "$staged/include"; then die "DESTDIR leaked into installed files"; fi
ok "DESTDIR: files under \$DESTDIR$dest_prefix; .pc files name $dest_prefix, never DESTDIR"

# A consumer of the staged tree, as a cross build would see it (-I/-L rewritten by the sysroot).
PKG_CONFIG_LIBDIR=$staged/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage \
  build c-sysroot-dynamic "$CC" c99 consumer.c bill
PKG_CONFIG_LIBDIR=$staged/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage \
  build c-sysroot-static "$CC" c99 consumer.c --static bill-static
if readelf -d "$tmp/c-sysroot-static" | has '(NEEDED).*libbill'; then die "sysroot static consumer needs libbill.so"; fi
ok "consumers link against the staged tree with PKG_CONFIG_SYSROOT_DIR"

quiet_make uninstall $(layout "$dest_prefix") DESTDIR="$stage"
left=$(listing "$stage")
[ -z "$left" ] || die "left after DESTDIR uninstall: $left"
ok "DESTDIR uninstall removed every file and symlink"

echo "install test: $checks checks passed"
