#!/bin/sh
# Size and start-up time of the static build (make static) against the
# ordinary dynamic release build and a static "hello world" (Rust, musl, the
# floor any static Rust program pays). Start-up is timed with hyperfine when
# installed (apt-get install hyperfine), else with a loop of R runs.
#
#   bench/static.sh [R]        (needs: make build, make static)
set -eu
R=${1:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARCH=$(uname -m)
DYN=$ROOT/target/release/cells
STATIC=$ROOT/target/$ARCH-unknown-linux-musl/release/cells
for b in "$DYN" "$STATIC"; do
    [ -x "$b" ] || { echo "missing $b: run make build and make static" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/cells-static-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT

# The static hello: a fresh crate, built for the same target and profile.
mkdir -p "$W/hello/src"
printf '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n[workspace]\n' >"$W/hello/Cargo.toml"
printf 'fn main() {\n    println!("hello");\n}\n' >"$W/hello/src/main.rs"
cargo build -q --release --target "$ARCH-unknown-linux-musl" \
    --manifest-path "$W/hello/Cargo.toml" --target-dir "$W/hello/target"
HELLO=$W/hello/target/$ARCH-unknown-linux-musl/release/hello

# A world of 20 declared cells for `cellmgr list`.
mkdir -p "$W/etc"
cat >"$W/cellmgr.conf" <<CONF
CELLMGR_MANIFEST_DIR=$W/etc
CELL_DATA_DIR=$W/cells
CELL_RUN_DIR=$W/run
CELL_AUDIT_LOG=$W/audit.log
CONF
i=0
while [ "$i" -lt 20 ]; do
    printf 'CELL_NAME=c%s\nCELL_CREATE_RESERVED_PORTS=%s\n' "$i" $((20000 + i)) >"$W/etc/c$i.cell"
    i=$((i + 1))
done
export CELLMGR_CONF="$W/cellmgr.conf"

stripped() { cp "$1" "$W/s" && strip "$W/s" && wc -c <"$W/s"; }
echo "size (bytes)            as built   stripped"
printf 'dynamic (glibc)       %10s %10s\n' "$(wc -c <"$DYN")" "$(stripped "$DYN")"
printf 'static (musl)         %10s %10s\n' "$(wc -c <"$STATIC")" "$(stripped "$STATIC")"
printf 'static hello (musl)   %10s %10s\n' "$(wc -c <"$HELLO")" "$(stripped "$HELLO")"
echo

if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 20 --runs "$R" --style basic \
        -n hello-static "$HELLO" \
        -n version-dynamic "$DYN --version" \
        -n version-static "$STATIC --version" \
        -n list-dynamic "$DYN mgr list -T -H -o name" \
        -n list-static "$STATIC mgr list -T -H -o name" 2>&1 |
        grep -E '^(Benchmark|  Time)'
else
    now() { t=${EPOCHREALTIME:-}; [ -n "$t" ] && echo "${t%.*}${t#*.}" || date +%s%6N; }
    for c in "$HELLO" "$DYN --version" "$STATIC --version" \
        "$DYN mgr list -T -H -o name" "$STATIC mgr list -T -H -o name"; do
        s=$(now); i=0
        while [ "$i" -lt "$R" ]; do $c >/dev/null 2>&1; i=$((i + 1)); done
        e=$(now)
        printf '%-60s %6d us/run\n' "$c" $(((e - s) / R))
    done
fi
