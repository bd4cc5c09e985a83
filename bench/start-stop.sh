#!/bin/bash
# What `cellmgr start` and `cellmgr stop` of one supervised cell cost (issue
# 18 goal 4 must leave them as they are): N rounds (default 20) of start then
# stop of one cell running a busybox service, milliseconds per command,
# medians. start includes its settle window (the service must run for 1 s
# before start calls it started): the figure beside it is what start adds to
# that window.
#
#   sudo bench/start-stop.sh [N]      (CELLS_BIN=path/to/cells, default target/release/cells)
#
# The service is supervised in the cell's init, the default on Linux;
# CELL_SUPERVISOR=process in the environment gives it a supervisor process
# (cellmgr.conf(5)).
set -eu
N=${1:-20}
BIN=${CELLS_BIN:-$(dirname "$0")/../target/release/cells}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set CELLS_BIN)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/start-stop.sh: needs root (kernel cells, mounts)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
. "$(dirname "$0")/world.sh"
bench_world start-stop "$BIN"
[ -z "${CELL_SUPERVISOR:-}" ] || echo "CELL_SUPERVISOR=$CELL_SUPERVISOR" >>"$CELLMGR_CONF"
printf 'CELL_CREATE_PROFILE=high\nCELL_SUPERVISE_CMD="/bin/busybox sleep 1000000"\n' >"$W/etc/svc.cell"
"$BIN" mgr apply --all --silent >/dev/null

# Microseconds since the epoch, without a fork.
now() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) / 1000 }'; }

starts=() stops=()
for _ in $(seq "$N"); do
	t0=$(now)
	"$BIN" mgr start svc >/dev/null
	t1=$(now)
	"$BIN" mgr stop svc >/dev/null
	t2=$(now)
	starts+=($((t1 - t0))) stops+=($((t2 - t1)))
done
start=$(printf '%s\n' "${starts[@]}" | median)
stop=$(printf '%s\n' "${stops[@]}" | median)
echo "cellmgr start (median of $N): $start ms ($(awk -v s="$start" 'BEGIN { printf "%.1f", s - 1000 }') ms beyond the 1 s settle window)"
echo "cellmgr stop  (median of $N): $stop ms"
echo "load: $(cut -d" " -f1-3 /proc/loadavg); cores: $(nproc)"
