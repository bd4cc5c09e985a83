#!/bin/bash
# What a user namespace costs a cell (issue 15): one build's cellctl cycle
# (create -> exec /bin/true -> destroy) on host ids (a: CELL_USERNS=NO) and
# in a user namespace (b: the default at medium and high), interleaved in
# every iteration; prints the medians in milliseconds and the ratio b/a.
#
# Usage (as root): bench/userns-cost.sh [CELLS] [iterations]
# (default: target/release/cells, 40). RUN_PARENT and KEEP as in
# bench/ctl-cycle-ab.sh.
set -eu
BIN=${1:-target/release/cells}
[ -x "$BIN" ] || { echo "userns-cost.sh: $BIN is not an executable (make build)" >&2; exit 1; }
A_CONF=CELL_USERNS=NO B_CONF= exec "$(dirname "$0")/ctl-cycle-ab.sh" "$BIN" "$BIN" "${2:-40}"
