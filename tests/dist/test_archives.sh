#!/usr/bin/env bash
# What `make dist` writes: every artifact present and in SHA256SUMS; the
# Windows zip's layout; nothing test-only shipped; and the Linux archive
# unpacked into an empty prefix, where C and C++ consumers build with nothing
# but pkg-config (dynamic and static) and run against the emulator.
#   tests/dist/test_archives.sh DIST_DIR [NATIVE_STATIC_LIBS_FILE]
# NATIVE_STATIC_LIBS_FILE: rustc's report for the packed Linux build; the .pc
# files must carry exactly it.
. "$(dirname "$0")/common.sh"
report=${2:-}
lin=libbill-$version-x86_64-linux-gnu
win=libbill-$version-x86_64-windows-gnu

# ---- the set of artifacts, checksums --------------------------------------------
for f in "$lin.tar.gz" "$win.zip" "billsession-$version.tar.gz" "libbill-go-$version.tar.gz" SHA256SUMS; do
  [ -f "$dist/$f" ] || die "dist lacks $f"
done
ls "$dist"/billsession-"$version"-py3-none-manylinux_*.whl >/dev/null 2>&1 || die "dist lacks the wheel"
(cd "$dist" && sha256sum --quiet -c SHA256SUMS) || die "SHA256SUMS does not match"
for f in "$dist"/*; do
  [ "$(basename "$f")" = SHA256SUMS ] && continue
  grep -q "  $(basename "$f")\$" "$dist/SHA256SUMS" || die "SHA256SUMS misses $(basename "$f")"
done
ok "dist/ has the archives, wheel, sdist, Go module; SHA256SUMS covers and matches them all"

# Nothing test-only ships (the bcryptprimitives stand-in in particular).
listing=$(tar -tzf "$dist/$lin.tar.gz"; tar -tzf "$dist/billsession-$version.tar.gz"; tar -tzf "$dist/libbill-go-$version.tar.gz"
  python3 -c 'import sys, zipfile
for a in sys.argv[1:]: print("\n".join(zipfile.ZipFile(a).namelist()))' "$dist/$win.zip" "$dist"/billsession-*.whl)
if grep -iE 'bcryptprimitives|test_windows|test_winload|/tests?/' <<<"$listing"; then die "test files are in the artifacts"; fi
ok "no test program or stand-in DLL in any artifact"

# ---- Windows zip ---------------------------------------------------------------------
python3 - "$dist/$win.zip" "$win" <<'PY' || die "the Windows zip's layout is wrong"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); top = sys.argv[2]
names = set(z.namelist())
want = {f"{top}/{f}" for f in ["bin/bill.dll", "lib/libbill.dll.a", "lib/bill.def", "include/bill.h", "include/bill.hpp", "README.md", "LICENSE"]}
missing = want - names
if missing: sys.exit(f"missing: {sorted(missing)}")
d = z.read(f"{top}/lib/bill.def").decode().split()
assert d[:3] == ["LIBRARY", "bill.dll", "EXPORTS"], d[:3]
assert d[3:] and all(n.startswith("bill_") for n in d[3:]), "non-bill_ names in bill.def"
PY
mkdir -p "$tmp/win"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$dist/$win.zip" "$tmp/win"
x86_64-w64-mingw32-objdump -p "$tmp/win/$win/bin/bill.dll" | sed -n '/^\[Ordinal\/Name Pointer\] Table/,/^$/p' \
  | sed -n 's/^[[:space:]]*\[ *[0-9]*\] //p' | LC_ALL=C sort -u >"$tmp/dll-exports"
grep -E '^    bill_' "$tmp/win/$win/lib/bill.def" | sed 's/^ *//' | LC_ALL=C sort -u | diff - "$tmp/dll-exports" >/dev/null \
  || die "bill.def and bill.dll's exports differ"
cmp -s "$tmp/win/$win/include/bill.h" "$here/include/bill.h" || die "the zip's bill.h differs from include/bill.h"
ok "Windows zip: bin/bill.dll, lib/libbill.dll.a, lib/bill.def ($(wc -l <"$tmp/dll-exports") exports, the DLL's), include/"

# ---- Linux archive into an empty prefix --------------------------------------------------
prefix=$tmp/prefix
mkdir -p "$prefix"
tar -xzf "$dist/$lin.tar.gz" -C "$prefix" --strip-components=1
for f in lib/libbill.so."$version" lib/libbill.a lib/pkgconfig/bill.pc lib/pkgconfig/bill-static.pc \
  include/bill.h include/bill.hpp README.md LICENSE; do
  [ -e "$prefix/$f" ] || die "the Linux archive lacks $f"
done
[ "$(readlink "$prefix/lib/libbill.so.$major")" = "libbill.so.$version" ] || die "lib/libbill.so.$major is not a link to libbill.so.$version"
[ "$(readlink "$prefix/lib/libbill.so")" = "libbill.so.$major" ] || die "lib/libbill.so is not a link to libbill.so.$major"
so=$prefix/lib/libbill.so.$version
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libbill.so.$major" ] || die "SONAME is '$soname'"
nm -D --defined-only "$so" | awk '{print $NF}' | LC_ALL=C sort -u >"$tmp/exports"
grep -E '^[a-z]' "$here/include/bill.h" | grep -oE '\bbill_[a-z0-9_]+\(' | tr -d '(' | LC_ALL=C sort -u >"$tmp/declared"
diff -u "$tmp/declared" "$tmp/exports" >/dev/null || die "libbill.so's exports differ from bill.h's functions"
glibc=$(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
ok "lib/: libbill.so.$version (SONAME $soname, exactly bill.h's $(wc -l <"$tmp/exports") functions, needs glibc $glibc), links, libbill.a"

pcdir=$prefix/lib/pkgconfig
if [ -n "$report" ]; then
  want=$(xargs <"$report")
  have=$(sed -n 's/^Libs.private: //p' "$pcdir/bill.pc" | xargs)
  [ "$have" = "$want" ] || die "bill.pc's Libs.private is '$have', rustc reported '$want'"
  have=$(sed -n 's/^Libs: .*-l:libbill.a //p' "$pcdir/bill-static.pc" | xargs)
  [ "$have" = "$want" ] || die "bill-static.pc's Libs is '$have', rustc reported '$want'"
  # scripts/gen-pc.sh's own probe (used by make install) must agree with the full build.
  probe=$(env -u BILL_NATIVE_STATIC_LIBS "$here/scripts/gen-pc.sh" /p /p/lib /p/include | sed -n 's/^Libs.private: //p' | xargs)
  [ "$probe" = "$want" ] || die "gen-pc.sh's rustc probe gives '$probe', the full build '$want'"
  ok ".pc native libraries are rustc's report for this build: $want"
fi

# Only pkg-config: PKG_CONFIG_PATH names the prefix; every flag comes from the .pc files.
pc() { env -u PKG_CONFIG_LIBDIR -u PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH="$pcdir" pkg-config "$@"; }
[ "$(pc --modversion bill)" = "$version" ] || die "pkg-config --modversion bill: $(pc --modversion bill)"
case $(pc --variable=libdir bill) in "$prefix/lib"|"$pcdir/../../lib") ;; *) die "libdir is $(pc --variable=libdir bill)" ;; esac
cd "$tmp"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -D_GNU_SOURCE "$here/examples/c/quickstart.c" -o qs-dynamic \
  $(pc --cflags --libs bill) -Wl,-rpath,"$(pc --variable=libdir bill)" || die "dynamic C build failed"
ldd qs-dynamic | grep "libbill.so.$major => $prefix/lib/\|libbill.so.$major => $pcdir/../../lib/" >/dev/null \
  || die "qs-dynamic does not use the prefix's libbill: $(ldd qs-dynamic | grep bill)"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -D_GNU_SOURCE "$here/examples/c/quickstart.c" -o qs-static \
  $(pc --cflags --libs bill-static) || die "static C build failed"
if ldd qs-static | grep libbill >/dev/null; then die "qs-static links libbill.so"; fi
# shellcheck disable=SC2046
c++ -std=c++17 -Wall -Wextra -Werror "$here/examples/cpp/quickstart.cpp" -o qs-cpp \
  $(pc --cflags --libs bill-static) || die "static C++ build failed"
ok "C (dynamic and static) and C++ (static) consumers built with only pkg-config"

for p in qs-dynamic qs-static; do
  BILL_QUICKSTART_QUIET=1 emulated --idle-timeout-ms 3000 -- env -u LD_LIBRARY_PATH "./$p" || die "$p failed"
done
BILL_QUICKSTART_QUIET=1 emulated -- env -u LD_LIBRARY_PATH ./qs-cpp >/dev/null || die "qs-cpp failed"
ok "they sign in, call, renew automatically (C) and sign out against the emulator"
