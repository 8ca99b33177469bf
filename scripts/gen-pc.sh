#!/usr/bin/env bash
# Writes a pkg-config file for libbill to stdout.
#   scripts/gen-pc.sh PREFIX LIBDIR INCLUDEDIR
set -euo pipefail
prefix=$1 libdir=$2 includedir=$3
here=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)
cat <<PC
prefix=$prefix
libdir=$libdir
includedir=$includedir

Name: bill
Description: Stay signed in to the BILL (bill.com) API
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lbill
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
PC
