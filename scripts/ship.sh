#!/usr/bin/env bash
# Builds what libbill ships beyond the build tree (mk/ship.mk runs it).
#
#   scripts/ship.sh tools                      the build venv: cargo-zigbuild, ziglang, auditwheel (PyPI)
#   scripts/ship.sh lib TRIPLE PROFILE         libbill for TRIPLE into build/ship/PROFILE/TRIPLE/
#   scripts/ship.sh wheel PROFILE OUTDIR       billsession manylinux wheel (no Rust needed to install)
#   scripts/ship.sh sdist OUTDIR               billsession sdist with the Rust sources
#   scripts/ship.sh go-module PROFILE OUTDIR   self-contained Go module archive (prebuilt libbill.a inside)
#   scripts/ship.sh archives PROFILE OUTDIR    the Linux tar.gz and the Windows zip
#   scripts/ship.sh sums OUTDIR                SHA256SUMS of everything in OUTDIR
#   scripts/ship.sh go-prebuilt LIB_A          bindings/go/prebuilt/ of a checkout -> this build tree
#
# TRIPLE is x86_64-unknown-linux-gnu (built with cargo-zigbuild against glibc
# $SHIP_GLIBC, default 2.17, so one build serves every Linux artifact) or
# x86_64-pc-windows-gnu (cargo + Debian's mingw-w64). PROFILE is a cargo
# profile: release for real artifacts, ship-test (release without LTO) in tests.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$here/build}
ship=$BUILD/ship
venv=$ship/venv
glibc=${SHIP_GLIBC:-2.17}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)
major=${version%%.*}
linux=x86_64-unknown-linux-gnu
windows=x86_64-pc-windows-gnu
gomod=github.com/libbill/libbill/bindings/go
# Pinned: the versions this was checked with.
TOOLS=("cargo-zigbuild==0.24.1" "ziglang==0.17.1" "auditwheel==6.8.2" "build==1.3.0" "setuptools>=70.1" "setuptools-rust>=1.9" "wheel")

die() { echo "ship: $*" >&2; exit 1; }
say() { echo "ship: $*"; }

tools() {
  local stamp=$venv/.tools-$(printf '%s\n' "${TOOLS[@]}" | sha256sum | cut -c1-12)
  [ -f "$stamp" ] && return 0
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${TOOLS[@]}"
  touch "$stamp"
}

# The directory cargo writes PROFILE's artifacts for TRIPLE to.
cargo_out() { echo "$here/target/$1/$2"; }

lib() {
  local triple=$1 profile=$2 out=$ship/$2/$1
  mkdir -p "$out"
  local log=$out/cargo.log
  case $triple in
    "$linux")
      tools
      # zig picks the glibc version from the target's suffix.
      PATH=$venv/bin:$PATH cargo-zigbuild rustc --profile "$profile" --lib --target "$triple.$glibc" \
        -- --print native-static-libs 2>"$log" || { tail -40 "$log" >&2; die "cargo-zigbuild failed"; } ;;
    "$windows")
      command -v x86_64-w64-mingw32-gcc >/dev/null || die "x86_64-w64-mingw32-gcc missing: apt-get install mingw-w64"
      rustup target list --installed 2>/dev/null | grep -x "$triple" >/dev/null \
        || die "the Rust target $triple is missing: rustup target add $triple"
      CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
        cargo rustc --profile "$profile" --lib --target "$triple" \
        -- --print native-static-libs 2>"$log" || { tail -40 "$log" >&2; die "cargo failed"; } ;;
    *) die "unknown target $triple" ;;
  esac
  # Cargo replays the note when nothing was rebuilt, so it is there every time.
  sed -n 's/^note: native-static-libs: //p' "$log" | tail -1 >"$out/native-static-libs.tmp"
  [ -s "$out/native-static-libs.tmp" ] || die "rustc reported no native-static-libs (see $log)"
  mv "$out/native-static-libs.tmp" "$out/native-static-libs"
  local from
  from=$(cargo_out "$triple" "$profile")
  case $triple in
    "$linux")
      cp -f "$from/libbill.so" "$from/libbill.a" "$out/"
      check_glibc "$out/libbill.so" ;;
    "$windows")
      cp -f "$from/bill.dll" "$from/libbill.dll.a" "$from/libbill.a" "$out/"
      x86_64-w64-mingw32-strip --strip-debug "$out/bill.dll"
      dll_exports "$out/bill.dll" >"$out/exports"
      check_exports "$out/exports" "bill.dll"
      { echo "LIBRARY bill.dll"; echo "EXPORTS"; sed 's/^/    /' "$out/exports"; } >"$out/bill.def" ;;
  esac
  say "$triple ($profile): $(cd "$out" && ls | grep -v -e '\.log$' -e '^exports$' | tr '\n' ' ')"
}

# Every versioned glibc symbol the library needs must exist in glibc $glibc.
check_glibc() {
  local need
  need=$(objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
  [ -n "$need" ] || die "$1: no glibc symbol versions found"
  [ "$(printf '%s\n%s\n' "$need" "$glibc" | sort -V | tail -1)" = "$glibc" ] \
    || die "$1 needs GLIBC_$need, newer than the $glibc it was built for"
}

# The names in a DLL's export table.
dll_exports() {
  x86_64-w64-mingw32-objdump -p "$1" | sed -n '/^\[Ordinal\/Name Pointer\] Table/,/^$/p' \
    | sed -n 's/^[[:space:]]*\[ *[0-9]*\] //p' | LC_ALL=C sort -u
}

# Exactly the bill_* functions that include/bill.h declares, nothing else.
check_exports() {
  local exports=$1 what=$2 declared
  [ -s "$exports" ] || die "$what exports nothing"
  if grep -Ev '^bill_[a-z0-9_]+$' "$exports" >/dev/null; then
    die "$what exports symbols other than bill_*: $(grep -Ev '^bill_[a-z0-9_]+$' "$exports" | head -10 | tr '\n' ' ')"
  fi
  declared=$(grep -E '^[a-z]' "$here/include/bill.h" | grep -oE '\bbill_[a-z0-9_]+\(' | tr -d '(' | LC_ALL=C sort -u)
  diff <(echo "$declared") "$exports" >/dev/null \
    || die "$what exports differ from bill.h's functions: $(diff <(echo "$declared") "$exports" | grep '^[<>]' | tr '\n' ' ')"
  say "$what exports exactly the $(wc -l <"$exports") bill_* functions bill.h declares"
}

need_lib() { [ -f "$ship/$2/$1/native-static-libs" ] || lib "$1" "$2"; }

wheel() {
  local profile=$1 outdir=$2 plat=manylinux_${glibc/./_}_x86_64
  tools
  need_lib "$linux" "$profile"
  mkdir -p "$outdir"
  rm -f "$outdir"/billsession-*.whl
  # Built from a copy: setuptools writes build/ and *.egg-info next to setup.py.
  local src=$ship/$profile/python-src
  rm -rf "$src" && mkdir -p "$src"
  cp -r "$here/bindings/python/billsession" "$here/bindings/python/"{setup.py,pyproject.toml,README.md,MANIFEST.in} "$src/"
  rm -rf "$src/billsession/_native" "$src/billsession/__pycache__"
  BILLSESSION_PREBUILT_LIBRARY=$ship/$profile/$linux/libbill.so BILLSESSION_WHEEL_PLATFORM=$plat \
    "$venv/bin/python" -m build --wheel --no-isolation --outdir "$outdir" "$src" >"$ship/$profile/wheel.log" 2>&1 \
    || { tail -30 "$ship/$profile/wheel.log" >&2; die "building the wheel failed"; }
  local whl
  whl=$(ls "$outdir"/billsession-"$version"-py3-none-"$plat".whl) || die "no $plat wheel in $outdir"
  # auditwheel wraps its sentence over lines.
  "$venv/bin/auditwheel" show "$whl" | tr '\n' ' ' | tr -s ' ' >"$ship/$profile/auditwheel.txt"
  grep -q "consistent with the following platform tag: \"$plat\"" "$ship/$profile/auditwheel.txt" \
    || die "auditwheel does not confirm $plat: $(cat "$ship/$profile/auditwheel.txt")"
  say "wheel $(basename "$whl"): auditwheel confirms $plat"
}

sdist() {
  local outdir=$1
  tools
  mkdir -p "$outdir"
  rm -f "$outdir"/billsession-*.tar.gz
  local src=$ship/sdist-src
  rm -rf "$src" && mkdir -p "$src/bindings"
  # The sdist command finds the Rust sources at ../../ from setup.py, as in the repository.
  cp -r "$here/bindings/python" "$src/bindings/python"
  rm -rf "$src/bindings/python/"{build,dist,billsession/_native} "$src"/bindings/python/*.egg-info
  ln -s "$here/Cargo.toml" "$here/Cargo.lock" "$here/build.rs" "$here/cbindgen.toml" "$here/src" "$src/"
  mkdir -p "$src/include" && ln -s "$here/include/bill.h" "$src/include/"
  "$venv/bin/python" -m build --sdist --no-isolation --outdir "$outdir" "$src/bindings/python" >"$ship/sdist.log" 2>&1 \
    || { tail -30 "$ship/sdist.log" >&2; die "building the sdist failed"; }
  local sd=$outdir/billsession-$version.tar.gz
  [ -f "$sd" ] || die "no $sd"
  local listing
  listing=$(tar -tzf "$sd")
  for f in rust/Cargo.toml rust/Cargo.lock rust/build.rs rust/cbindgen.toml rust/src/lib.rs setup.py; do
    grep -qx "billsession-$version/$f" <<<"$listing" || die "the sdist lacks $f"
  done
  say "sdist $(basename "$sd"): $(grep -c '^billsession-[^/]*/rust/.*[^/]$' <<<"$listing") Rust files inside"
}

# The cgo flags in bindings/go/link_prebuilt.go must be what rustc reports.
check_go_flags() {
  local goos=$1 dir=$2 libs=$3 line
  line=$(grep -E "^// #cgo $goos,amd64 LDFLAGS:" "$here/bindings/go/link_prebuilt.go") || die "no $goos LDFLAGS in link_prebuilt.go"
  local have want
  have=$(echo "${line#*libbill.a}" | xargs)
  want=$(echo "$libs" | xargs)
  [ "$have" = "$want" ] || die "bindings/go/link_prebuilt.go links $goos with '$have', rustc reports '$want' for $dir"
}

go_module() {
  local profile=$1 outdir=$2
  need_lib "$linux" "$profile"
  need_lib "$windows" "$profile"
  check_go_flags linux "$linux" "$(cat "$ship/$profile/$linux/native-static-libs")"
  check_go_flags windows "$windows" "$(cat "$ship/$profile/$windows/native-static-libs")"
  local stage=$ship/$profile/gomod
  local dest=$stage/$gomod@v$version
  rm -rf "$stage" && mkdir -p "$dest"
  (cd "$here/bindings/go" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -name README.md \) \
    ! -name '*_test.go' | tar -cf - -T -) | tar -xf - -C "$dest"
  cp "$here/include/bill.h" "$dest/prebuilt/include/"
  cp "$ship/$profile/$linux/libbill.a" "$dest/prebuilt/linux-amd64/"
  strip --strip-debug "$dest/prebuilt/linux-amd64/libbill.a"
  # Not stripped: mingw's strip refuses the archive's empty (section-less) members.
  cp "$ship/$profile/$windows/libbill.a" "$dest/prebuilt/windows-amd64/"
  [ -f "$here/LICENSE" ] && cp "$here"/LICENSE* "$dest/"
  mkdir -p "$outdir"
  local out=$outdir/libbill-go-$version.tar.gz
  tar --sort=name --owner=0 --group=0 --numeric-owner -C "$stage" -czf "$out" github.com
  say "Go module $(basename "$out") ($(du -h "$out" | cut -f1)): $gomod@v$version"
}

# README and licence files for an archive.
docs_into() {
  cp "$here/README.md" "$1/"
  if ls "$here"/LICENSE* >/dev/null 2>&1; then
    cp "$here"/LICENSE* "$1/"
  else
    printf 'libbill is licensed under %s (see Cargo.toml).\n' \
      "$(sed -n 's/^license = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)" >"$1/LICENSE"
  fi
}

archives() {
  local profile=$1 outdir=$2
  need_lib "$linux" "$profile"
  need_lib "$windows" "$profile"
  mkdir -p "$outdir"
  local stage=$ship/$profile/archives
  rm -rf "$stage" && mkdir -p "$stage"

  # Linux: lib/ include/, .pc files that locate the prefix themselves (${pcfiledir}).
  local name=libbill-$version-x86_64-linux-gnu
  local d=$stage/$name
  mkdir -p "$d/lib/pkgconfig" "$d/include"
  install -m 0755 "$ship/$profile/$linux/libbill.so" "$d/lib/libbill.so.$version"
  strip --strip-debug "$d/lib/libbill.so.$version"
  ln -s "libbill.so.$version" "$d/lib/libbill.so.$major"
  ln -s "libbill.so.$major" "$d/lib/libbill.so"
  install -m 0644 "$ship/$profile/$linux/libbill.a" "$d/lib/libbill.a"
  strip --strip-debug "$d/lib/libbill.a"
  install -m 0644 "$here/include/bill.h" "$here/include/bill.hpp" "$d/include/"
  local pre='${pcfiledir}/../..'
  local native
  native=$(cat "$ship/$profile/$linux/native-static-libs")
  BILL_NATIVE_STATIC_LIBS=$native "$here/scripts/gen-pc.sh" "$pre" "$pre/lib" "$pre/include" >"$d/lib/pkgconfig/bill.pc"
  BILL_NATIVE_STATIC_LIBS=$native "$here/scripts/gen-pc.sh" --static "$pre" "$pre/lib" "$pre/include" >"$d/lib/pkgconfig/bill-static.pc"
  docs_into "$d"
  rm -f "$outdir/$name.tar.gz"
  tar --sort=name --owner=0 --group=0 --numeric-owner -C "$stage" -czf "$outdir/$name.tar.gz" "$name"
  say "$name.tar.gz"

  # Windows: bin/bill.dll, lib/ (import library, .def), include/.
  name=libbill-$version-x86_64-windows-gnu
  d=$stage/$name
  mkdir -p "$d/bin" "$d/lib" "$d/include"
  cp "$ship/$profile/$windows/bill.dll" "$d/bin/"
  cp "$ship/$profile/$windows/libbill.dll.a" "$ship/$profile/$windows/bill.def" "$d/lib/"
  cp "$here/include/bill.h" "$here/include/bill.hpp" "$d/include/"
  docs_into "$d"
  rm -f "$outdir/$name.zip"
  (cd "$stage" && python3 - "$outdir/$name.zip" "$name" <<'PY'
import os, sys, zipfile
out, top = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for f in sorted(files):
            z.write(os.path.join(root, f))
PY
  )
  say "$name.zip"
}

sums() {
  (cd "$1" && rm -f SHA256SUMS && sha256sum -- * >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
  say "$1/SHA256SUMS: $(wc -l <"$1/SHA256SUMS") files"
}

# A checkout's bindings/go/prebuilt/: this build tree's header and archive,
# as symlinks (git ignores them), so the default link mode works from here.
go_prebuilt() {
  local p=$here/bindings/go/prebuilt
  ln -sfn ../../../../include/bill.h "$p/include/bill.h"
  ln -sfn "$1" "$p/linux-amd64/libbill.a"
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    tools) tools ;;
    lib) lib "$@" ;;
    wheel) wheel "$@" ;;
    sdist) sdist "$@" ;;
    go-module) go_module "$@" ;;
    archives) archives "$@" ;;
    sums) sums "$@" ;;
    go-prebuilt) go_prebuilt "$@" ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
  esac
}
# One line: bash reads no further, so editing this file cannot upset a running build.
main "$@"; exit $?
