#!/bin/sh
# Times `cellmgr cell list -T` over N declared cells (default 1000) in a
# temporary world, and prints the median and the worst of R runs (default 20).
# Goal: under 100 ms for 1,000 cells.
#
#   bench/mgr-list.sh [N] [R]      (CELLS_BIN=path/to/cells, default target/release/cells)
set -eu
N=${1:-1000}
R=${2:-20}
BIN=${CELLS_BIN:-$(dirname "$0")/../target/release/cells}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set CELLS_BIN)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
W=$(mktemp -d "${TMPDIR:-/tmp}/cellmgr-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/etc" "$W/cells" "$W/volumes"
cat > "$W/cellmgr.conf" <<CONF
CELLMGR_MANIFEST_DIR=$W/etc
CELL_DATA_DIR=$W/cells
CELL_VOLUME_DIR=$W/volumes
CELL_BASE_DIR=$W/base
CELL_RUN_DIR=$W/run
CELL_AUDIT_LOG=$W/audit.log
CONF
export CELLMGR_CONF="$W/cellmgr.conf"
ln -s "$BIN" "$W/cellmgr"
# Manifests as an operator would write them: a shared volume, dependencies, ports.
printf 'VOLUME_NAME=shared\nVOLUME_MODE=0750\n' > "$W/etc/shared.volume"
i=0
while [ "$i" -lt "$N" ]; do
    dep=""
    [ "$i" -gt 0 ] && dep="CELL_DEPENDS_ON=c$((i - 1))"
    cat > "$W/etc/c$i.cell" <<CELL
# bench cell $i
CELL_NAME=c$i
CELL_AUTOSTART=NO
CELL_CREATE_PROFILE=medium
CELL_CREATE_RESERVED_PORTS=$((20000 + i))
CELL_SUPERVISE_CMD="busybox httpd -f -p $((20000 + i))"
CELL_VOLUME_MOUNTS="shared:/srv/shared:ro"
$dep
CELL
    i=$((i + 1))
done
rows=$("$W/cellmgr" cell list -T -H | wc -l)
[ "$rows" -eq "$N" ] || { echo "expected $N rows, got $rows" >&2; exit 1; }
times=""
r=0
while [ "$r" -lt "$R" ]; do
    s=$(date +%s%N)
    "$W/cellmgr" cell list -T >/dev/null 2>&1
    e=$(date +%s%N)
    times="$times $(( (e - s) / 1000 ))"
    r=$((r + 1))
done
echo "$times" | tr ' ' '\n' | grep . | sort -n | awk -v n="$N" -v r="$R" '
    { t[NR] = $1 }
    END { printf "cellmgr cell list -T, %d declared cells, %d runs: median %.1f ms, min %.1f ms, max %.1f ms\n",
          n, r, t[int((NR + 1) / 2)] / 1000, t[1] / 1000, t[NR] / 1000 }'
