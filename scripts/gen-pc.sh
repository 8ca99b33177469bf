#!/usr/bin/env bash
# Writes a pkg-config file for libbill to stdout.
#   scripts/gen-pc.sh PREFIX LIBDIR INCLUDEDIR            -> bill.pc
#   scripts/gen-pc.sh --static PREFIX LIBDIR INCLUDEDIR   -> bill-static.pc
#
# bill.pc is the usual module: `Libs: -lbill`, which the linker resolves to
# libbill.so when both libbill.so and libbill.a are in LIBDIR, plus
# `Libs.private` for fully static links (`cc -static ... $(pkg-config --static
# --libs bill)`).
#
# bill-static.pc is for linking libbill.a into an otherwise dynamic program.
# `-l:libbill.a` names the archive itself, so the linker cannot pick the .so;
# the native libraries the archive needs are in `Libs` (not `Libs.private`),
# so both `pkg-config --libs bill-static` and `--static` give a working line.
# `-l:` is understood by GNU ld, gold and lld (ELF targets); see docs/INSTALL.md
# for macOS.
#
# The native libraries (Libs.private of bill.pc, Libs of bill-static.pc) are
# what rustc reports for a static library (--print native-static-libs):
#  - BILL_NATIVE_STATIC_LIBS, when set: `make dist` passes the report of the
#    very build it packs (scripts/ship.sh);
#  - otherwise rustc is asked for the standard library's list on this host
#    (a one-line probe, well under a second). On Linux that is libbill's whole
#    list: its dependencies add no native library, which `make test-dist`
#    checks against the report of a full build. Without rustc (e.g. root's
#    PATH during `make install INSTALL_NO_BUILD=1`), the list rustc 1.95
#    reported on x86_64 Linux is used.
probe_native_libs() {
  local tmp out
  tmp=$(mktemp -d) || return 1
  out=$(printf '' | "${RUSTC:-rustc}" --crate-type staticlib --crate-name bill_pc_probe \
    --print native-static-libs -o "$tmp/probe.a" - 2>&1) || { rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
  printf '%s\n' "$out" | sed -n 's/^note: native-static-libs: //p' | tail -1
}
native=${BILL_NATIVE_STATIC_LIBS:-$(probe_native_libs || true)}
native=${native:--lgcc_s -lutil -lrt -lpthread -lm -ldl -lc}

# LIBDIR and INCLUDEDIR below PREFIX are written relative to ${prefix}, so
# `pkg-config --define-prefix` and PKG_CONFIG_SYSROOT_DIR work.
set -euo pipefail
static=0
if [ "${1:-}" = "--static" ]; then static=1; shift; fi
[ $# -eq 3 ] || { echo "usage: $0 [--static] PREFIX LIBDIR INCLUDEDIR" >&2; exit 2; }
prefix=$1 libdir=$2 includedir=$3
[ "$prefix" = / ] || prefix=${prefix%/}
here=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)
# Writes DIR as ${prefix}/... when it lies below PREFIX.
rel() {
  case $1 in
    "$prefix") printf '%s' '${prefix}' ;;
    "$prefix"/*) printf '%s' '${prefix}'"${1#"$prefix"}" ;;
    *) printf '%s' "$1" ;;
  esac
}

cat <<PC
prefix=$prefix
libdir=$(rel "$libdir")
includedir=$(rel "$includedir")

PC
if [ $static -eq 0 ]; then
  cat <<PC
Name: bill
Description: Stay signed in to the BILL (bill.com) API
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lbill
Libs.private: $native
PC
else
  cat <<PC
Name: bill-static
Description: Stay signed in to the BILL (bill.com) API (static library libbill.a)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -l:libbill.a $native
PC
fi
