#!/bin/sh
# Every goal of the performance issue (18) in one run, each figure beside its
# goal, with the machine it was taken on:
#   1. cellctl run ROOT /bin/true against bwrap on the same root (bench/run.sh)
#   2. create -> exec -> destroy against bwrap (bench/run.sh)
#   3. the first converge of CONVERGE cells (200) and no-change applies over
#      them (bench/apply.sh), no-change applies over NOCHANGE running cells
#      (1,000: its converge takes a minute or so; NOCHANGE=0 skips it);
#      cellmgr cell list over LIST declared cells (10,000; bench/mgr-list.sh)
#   4. processes and Pss per running cell at COST cells (100; bench/cell-cost.sh),
#      and cellmgr start/stop of one cell, which goal 4 must leave as they are
#      (bench/start-stop.sh)
#
#   sudo bench/goals.sh            (CELLS_BIN=path/to/cells, default target/release/cells)
#   RUNS=40 CONVERGE=200 NOCHANGE=1000 LIST=10000 COST=100 set the sizes.
# Each goal's line ("goal N: ...") gives the figure against the goal as a
# ratio (at most 1.0 meets it); they are repeated together at the end.
set -eu
cd "$(dirname "$0")/.."
BIN=${CELLS_BIN:-target/release/cells}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set CELLS_BIN)" >&2; exit 1; }
export CELLS_BIN="$BIN" CELLS="$PWD/$BIN"
case "$BIN" in /*) CELLS=$BIN ;; esac

LOG=$(mktemp "${TMPDIR:-/tmp}/cells-goals.XXXXXX")
trap 'rm -f "$LOG"' EXIT
# The row of bench/apply.sh for N cells: "N  FULL s for ... median NOCHANGE s ...".
apply_row() { awk -v n="$1" '$1 == n && $3 == "s" { print; exit }' "$LOG"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); load before: $(cut -d" " -f1-3 /proc/loadavg)"
echo
echo "== goals 1 and 2: bench/run.sh ${RUNS:-40}"
bench/run.sh "${RUNS:-40}" | tee "$LOG"
GOAL12=$(grep '^goal [12]: ' "$LOG")
echo
N=${CONVERGE:-200}
echo "== goal 3: bench/apply.sh $N $N 5 (goal: first converge under 3 s)"
bench/apply.sh "$N" "$N" 5 | tee "$LOG"
full=$(apply_row "$N" | awk '{ print $2 }')
GOAL3="goal 3: first converge of $N cells     $full s, ratio $(ratio "$full" 3)   (goal < 3 s)"
echo "$GOAL3"
K=${NOCHANGE:-1000}
if [ "$K" -gt 0 ]; then
	echo
	echo "== goal 3: bench/apply.sh $K $K 5 (goal: no-change apply of 1,000 running cells under 100 ms)"
	bench/apply.sh "$K" "$K" 5 | tee "$LOG"
	noop=$(apply_row "$K" | awk '{ print $9 }')
	GOAL3="$GOAL3
goal 3: no-change apply, $K running     $(awk -v s="$noop" 'BEGIN { printf "%.0f", s * 1000 }') ms, ratio $(ratio "$noop" 0.1)   (goal < 100 ms at 1,000)"
	echo "$GOAL3" | tail -1
fi
echo
echo "== goal 3: bench/mgr-list.sh ${LIST:-10000} (goal: under 100 ms)"
bench/mgr-list.sh "${LIST:-10000}" 10 | tee "$LOG"
list=$(awk '{ for (i = 1; i < NF; i++) if ($i == "median") { print $(i + 1); exit } }' "$LOG")
GOAL3="$GOAL3
goal 3: list of ${LIST:-10000} declared cells   $list ms, ratio $(ratio "$list" 100)   (goal < 100 ms at 10,000)"
echo "$GOAL3" | tail -1
echo
echo "== goal 4: bench/cell-cost.sh ${COST:-100}"
bench/cell-cost.sh "${COST:-100}" | tee "$LOG"
GOAL4=$(awk '/^processes per cell/ { printf "goal 4: processes per running cell     %s, ratio %.2f   (goal <= 1)\n", $(NF - 3), $(NF - 3) }
	/^Pss per cell/ { printf "goal 4: Pss per running cell           %s KB, ratio %.2f   (goal <= 300 KB)\n", $(NF - 5), $(NF - 5) / 300 }' "$LOG")
bench/start-stop.sh "${RUNS:-40}"
echo
echo "== every goal (ratio: figure / goal; at most 1.0 meets it)"
printf '%s\n' "$GOAL12" "$GOAL3" "$GOAL4"
echo
echo "load after: $(cut -d" " -f1-3 /proc/loadavg)"
