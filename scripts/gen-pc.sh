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
# The native libraries are what rustc reports for this crate on
# x86_64-unknown-linux-gnu (rustc 1.95):
#   cargo rustc --lib --crate-type staticlib -- --print native-static-libs
#   note: native-static-libs: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# Other targets need their own list: set BILL_NATIVE_STATIC_LIBS.
#
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
native=${BILL_NATIVE_STATIC_LIBS:--lgcc_s -lutil -lrt -lpthread -lm -ldl -lc}

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
