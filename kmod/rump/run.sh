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
#
# With RUMP_SRC (the src-netbsd checkout) and ZIG (a command running zig,
# e.g. "env PYTHONPATH=.venv/zig-0.15.2 .venv/bin/python -m ziglang") it
# first regenerates kmod/kabi/rump-2016.tab from that tree's headers and
# stops if the committed table differs.
set -eu
: "${RUMP_DIR:?set RUMP_DIR to the rump install directory}"
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/secmodel_cell-rump
mkdir -p "$out"
if [ -n "${RUMP_SRC:-}" ] && [ -n "${ZIG:-}" ]; then
	s=$RUMP_SRC/sys
	mkdir -p "$out/inc"
	ln -sfn "$s/arch/amd64/include" "$out/inc/machine"
	ln -sfn "$s/arch/x86/include" "$out/inc/x86"
	# shellcheck disable=SC2086
	sh "$here/../kabi/gen.sh" -k "$s" "$s" $ZIG cc -target x86_64-netbsd.10.1-none -nostdinc \
		-I"$out/inc" -I"$s" -I"$RUMP_SRC/include" -I"$RUMP_SRC/common/include" > "$out/rump-2016.tab"
	if sed '/^#/d' "$here/../kabi/rump-2016.tab" | sort | diff - "$(sort "$out/rump-2016.tab" > "$out/gen.sorted"; echo "$out/gen.sorted")"; then
		echo "kabi: rump-2016.tab matches the headers of $RUMP_SRC"
	else
		echo "kabi: rump-2016.tab differs from the headers of $RUMP_SRC" >&2
		exit 1
	fi
fi
cargo rustc --manifest-path "$here/../Cargo.toml" --release --lib \
    --features kernel,rump2016 --crate-type staticlib --target-dir "$out" \
    --config 'profile.release.panic="abort"'
cc -O1 -g -I"$RUMP_DIR/include" -o "$out/harness" "$here/harness.c" \
    "$out/release/libsecmodel_cell.a" -L"$RUMP_DIR/lib" -Wl,-rpath,"$RUMP_DIR/lib" \
    -Wl,--no-as-needed -lrumpnet_netinet -lrumpnet_net -lrumpnet -lrumpvfs -lrump \
    -lrumpuser -lpthread -ldl
exec "$out/harness"
