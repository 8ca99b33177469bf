#!/usr/bin/env bash
# The self-contained Go module archive as a Go user meets it: unpacked into a
# directory laid out like the module cache (read-only, as Go keeps it), a new
# module outside the repository uses it through a `replace`, builds with
# nothing installed and no PKG_CONFIG_PATH / LD_LIBRARY_PATH / CGO_* flags,
# and the program runs against the emulator. The same module then
# cross-builds for windows/amd64 with mingw-w64, and that .exe runs under Wine.
#   tests/dist/test_go_module.sh DIST_DIR [WINDOWS_TEST_DIR]
# WINDOWS_TEST_DIR holds the test-only bcryptprimitives.dll stand-in Wine needs
# (make test-windows builds it); without it the Windows half is skipped.
. "$(dirname "$0")/common.sh"
wintest=${2:-}
mod=github.com/libbill/libbill/bindings/go
arc=$dist/libbill-go-$version.tar.gz
[ -f "$arc" ] || die "no $arc"

modcache=$tmp/gopath/pkg/mod
mkdir -p "$modcache"
tar -xzf "$arc" -C "$modcache"
moddir=$modcache/$mod@v$version
[ -f "$moddir/go.mod" ] || die "the archive does not unpack to $mod@v$version/"
for f in prebuilt/include/bill.h prebuilt/linux-amd64/libbill.a prebuilt/windows-amd64/libbill.a; do
  [ -s "$moddir/$f" ] || die "the module lacks $f"
done
cmp -s "$moddir/prebuilt/include/bill.h" "$here/include/bill.h" || die "the module's bill.h differs from include/bill.h"
# cgo directives may only point inside the module.
if grep -h '^// #cgo' "$moddir"/*.go | grep -v 'pkg-config' | grep -E '\.\./|(^| |-I|-L)/' | grep -v '\${SRCDIR}/prebuilt/'; then
  die "a cgo directive points outside the module"
fi
chmod -R a-w "$modcache"
ok "unpacked $(basename "$arc") as $mod@v$version in a module-cache layout (read-only)"

app=$tmp/app
mkdir -p "$app"
cp "$here/examples/go/quickstart/main.go" "$app/"
cat >"$app/go.mod" <<MOD
module example.com/billapp

go 1.24

require $mod v$version

replace $mod => $moddir
MOD

# Nothing of ours in the environment; nothing fetched from the network.
goenv=(env -u PKG_CONFIG_PATH -u LD_LIBRARY_PATH -u CGO_CFLAGS -u CGO_LDFLAGS -u CGO_CPPFLAGS -u GOFLAGS
  GOWORK=off GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=1)
(cd "$app" && "${goenv[@]}" go build -buildvcs=false -o "$tmp/billapp" .) || die "go build of the new module failed"
if ldd "$tmp/billapp" | grep libbill >/dev/null; then die "the program links libbill.so: $(ldd "$tmp/billapp")"; fi
ok "a new module outside the repository built against it (libbill linked statically)"

out=$(emulated -- sh -c 'exec env -u LD_LIBRARY_PATH "$1"' sh "$tmp/billapp" 2>&1) || die "the program failed: $out"
grep -q '^signed out$' <<<"$out" || die "unexpected output: $out"
ok "the program signed in, called and signed out against the emulator (v3)"
out=$(emulated -- sh -c 'BILL_API=2 BILL_BASE_URL=$BILL_V2_BASE_URL exec env -u LD_LIBRARY_PATH "$1"' sh "$tmp/billapp" 2>&1) \
  || die "the program failed on v2: $out"
grep -q '^signed out$' <<<"$out" || die "unexpected output: $out"
ok "the same on v2"

if [ -z "$wintest" ]; then
  echo "$what: skipped the windows/amd64 build (no WINDOWS_TEST_DIR)"
  exit 0
fi
(cd "$app" && "${goenv[@]}" GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc \
  go build -buildvcs=false -o "$tmp/win/billapp.exe" .) || die "the windows/amd64 build failed"
# Test only: Wine 8 lacks bcryptprimitives.dll (tests/windows/bcryptprimitives.c).
cp "$wintest/bcryptprimitives.dll" "$tmp/win/"
out=$(emulated -- "$here/scripts/wine-run.sh" "$tmp/win/billapp.exe" 2>&1) || die "billapp.exe failed under Wine: $out"
grep -q '^signed out' <<<"$out" || die "unexpected output under Wine: $out"
ok "the module cross-built for windows/amd64 (prebuilt libbill.a, no DLL) and ran under Wine"
