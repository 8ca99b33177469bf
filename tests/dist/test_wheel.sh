#!/usr/bin/env bash
# The manylinux wheel as a user meets it: copied to an empty directory outside
# the repository, installed into a fresh virtualenv whose PATH has no cargo
# or rustc, then the Python quickstart runs against the emulator.
#   tests/dist/test_wheel.sh DIST_DIR
. "$(dirname "$0")/common.sh"

whl=$(ls "$dist"/billsession-"$version"-py3-none-manylinux_*_x86_64.whl 2>/dev/null | head -1)
[ -n "$whl" ] || die "no manylinux wheel in $dist"
case $(basename "$whl") in
  *manylinux_2_17_*|*manylinux_2_2[0-8]_*) ok "tag $(basename "$whl" .whl | sed 's/.*-py3-none-//')" ;;
  *) die "$(basename "$whl") is not tagged manylinux_2_28 or lower" ;;
esac
unzip_list=$(python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$whl")
grep -qx 'billsession/_native/libbill.so' <<<"$unzip_list" || die "the wheel has no billsession/_native/libbill.so"

cp "$whl" "$here/examples/python/quickstart.py" "$tmp/"
norust=$(path_without_rust)
py=$(real_python)
cd "$tmp"
PATH=$norust command -v cargo >/dev/null && die "cargo is still on the test PATH"
env -i HOME="$tmp" PATH="$norust" "$py" -m venv "$tmp/venv"
env -i HOME="$tmp" PATH="$norust" "$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --no-input --no-index "$tmp/$(basename "$whl")" || die "pip install of the wheel failed"
ok "installed $(basename "$whl") with no cargo on PATH, no index, no repository"

probe='import billsession; print(billsession.library_path()); print(billsession.library_version())'
out=$(env -i HOME="$tmp" PATH="$norust" "$tmp/venv/bin/python" -c "$probe") || die "import failed"
lib=$(sed -n 1p <<<"$out")
[ "$(sed -n 2p <<<"$out")" = "$version" ] || die "library version $(sed -n 2p <<<"$out"), want $version"
case $lib in "$tmp/venv/"*/billsession/_native/libbill.so) ;; *) die "loaded $lib, not the wheel's library" ;; esac
ok "billsession loads the bundled $lib"

# Only the emulator's BILL_* variables reach the quickstart.
out=$(emulated -- sh -c 'exec env -i HOME="$1" PATH="$2" BILL_USER="$BILL_USER" BILL_PASSWORD="$BILL_PASSWORD" \
  BILL_ORG_ID="$BILL_ORG_ID" BILL_DEV_KEY="$BILL_DEV_KEY" BILL_BASE_URL="$BILL_V3_BASE_URL" BILL_API=3 \
  "$1/venv/bin/python" "$1/quickstart.py"' sh "$tmp" "$norust") || die "the quickstart failed: $out"
[ "$(tail -1 <<<"$out")" = "logged out" ] || die "unexpected quickstart output: $out"
ok "the Python quickstart signed in, called and logged out against the emulator"
