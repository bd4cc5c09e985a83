#!/bin/sh
# Every goal of the performance issue (18) in one run, each figure beside its
# goal, with the machine it was taken on:
#   1. cellctl run ROOT /bin/true against bwrap on the same root (bench/run.sh)
#   2. create -> exec -> destroy against bwrap (bench/run.sh)
#   3. the first converge of CONVERGE cells (200) and no-change applies over
#      them (bench/apply.sh); cellmgr cell list over LIST declared cells
#      (10,000; bench/mgr-list.sh)
#   4. processes and Pss per running cell at COST cells (100; bench/cell-cost.sh),
#      and cellmgr start/stop of one cell, which goal 4 must leave as they are
#      (bench/start-stop.sh)
#
#   sudo bench/goals.sh            (CELLS_BIN=path/to/cells, default target/release/cells)
#   RUNS=40 CONVERGE=200 LIST=10000 COST=100 set the sizes.
set -eu
cd "$(dirname "$0")/.."
BIN=${CELLS_BIN:-target/release/cells}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set CELLS_BIN)" >&2; exit 1; }
export CELLS_BIN="$BIN" CELLS="$PWD/$BIN"
case "$BIN" in /*) CELLS=$BIN ;; esac

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); load before: $(cut -d" " -f1-3 /proc/loadavg)"
echo
echo "== goals 1 and 2: bench/run.sh ${RUNS:-40}"
bench/run.sh "${RUNS:-40}"
echo
echo "== goal 3: bench/apply.sh ${CONVERGE:-200} ${CONVERGE:-200} 5 (goal: first converge under 3 s)"
bench/apply.sh "${CONVERGE:-200}" "${CONVERGE:-200}" 5
echo
echo "== goal 3: bench/mgr-list.sh ${LIST:-10000} (goal: under 100 ms)"
bench/mgr-list.sh "${LIST:-10000}" 10
echo
echo "== goal 4: bench/cell-cost.sh ${COST:-100}"
bench/cell-cost.sh "${COST:-100}"
bench/start-stop.sh "${RUNS:-40}"
echo
echo "load after: $(cut -d" " -f1-3 /proc/loadavg)"
