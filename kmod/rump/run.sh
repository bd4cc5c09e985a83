#!/bin/sh
# Builds secmodel_cell for a 2016 rump kernel (features kernel,rump2016),
# links rump/harness.c against it and runs it.
#
#   RUMP_DIR=<buildrump.sh destdir, the one with include/ and lib/> kmod/rump/run.sh
#
# The rump kernel comes from rumpkernel/src-netbsd + rumpkernel/buildrump.sh,
# built outside the repository (with GCC 12: CC wrapping gcc -fcommon and
# -F CFLAGS=-fcommon -V NOGCCERROR=1). It is a DIAGNOSTIC kernel, so the
# credential-hook assertion is live.
set -eu
: "${RUMP_DIR:?set RUMP_DIR to the rump install directory}"
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/secmodel_cell-rump
cargo rustc --manifest-path "$here/../Cargo.toml" --release --lib \
    --features kernel,rump2016 --crate-type staticlib --target-dir "$out" \
    --config 'profile.release.panic="abort"'
cc -O1 -g -I"$RUMP_DIR/include" -o "$out/harness" "$here/harness.c" \
    "$out/release/libsecmodel_cell.a" -L"$RUMP_DIR/lib" -Wl,-rpath,"$RUMP_DIR/lib" \
    -Wl,--no-as-needed -lrumpnet_netinet -lrumpnet_net -lrumpnet -lrumpvfs -lrump \
    -lrumpuser -lpthread -ldl
exec "$out/harness"
