#!/usr/bin/env bash
# The sdist builds away from the repository: pip installs it from an empty
# directory in /tmp into a fresh virtualenv (Rust is needed here, as for any
# Rust-backed sdist), then the Python quickstart runs against the emulator.
#   tests/dist/test_sdist.sh DIST_DIR
# SHIP_CARGO_PROFILE (optional) builds that cargo profile instead of release,
# with Cargo's cache in SHIP_CARGO_TARGET_DIR, kept between runs (make test:
# dev in build/ship/sdist-target; a separate directory, because a build of
# the unpacked sources would overwrite the repository's own target/debug/libbill.*).
. "$(dirname "$0")/common.sh"

sd=$dist/billsession-$version.tar.gz
[ -f "$sd" ] || die "no $sd"
cp "$sd" "$here/examples/python/quickstart.py" "$tmp/"
py=$(real_python)
cd "$tmp"
"$py" -m venv "$tmp/venv"

env=(env -u BILLSESSION_LIBRARY -u BILLSESSION_CARGO_MANIFEST -u VIRTUAL_ENV -u PYTHONPATH HOME="$HOME")
if [ -n "${SHIP_CARGO_PROFILE:-}" ]; then
  env+=(SETUPTOOLS_RUST_CARGO_PROFILE="$SHIP_CARGO_PROFILE" CARGO_TARGET_DIR="${SHIP_CARGO_TARGET_DIR:?}")
fi
start=$(date +%s)
"${env[@]}" "$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  "./billsession-$version.tar.gz" >"$tmp/pip.log" 2>&1 || { tail -40 "$tmp/pip.log" >&2; die "pip install of the sdist failed"; }
ok "pip built and installed billsession-$version.tar.gz in $tmp ($(($(date +%s) - start)) s)"

out=$("${env[@]}" "$tmp/venv/bin/python" -c 'import billsession; print(billsession.library_path())') || die "import failed"
case $out in "$tmp/venv/"*/billsession/_native/libbill.so) ;; *) die "loaded $out, not the built library" ;; esac
ok "billsession loads the library it built: $out"

out=$(emulated -- sh -c 'cd "$1" && BILL_BASE_URL=$BILL_V3_BASE_URL exec "$1/venv/bin/python" "$1/quickstart.py"' sh "$tmp") \
  || die "the quickstart failed: $out"
[ "$(tail -1 <<<"$out")" = "logged out" ] || die "unexpected quickstart output: $out"
ok "the Python quickstart signed in, called and logged out against the emulator"
