#!/bin/sh
# Times `cellmgr apply --all` over a growing number of real cells in a
# temporary world: for each step (default 50, 100, 150, 200 cells) the full
# converge of the cells just added, then the median and worst of R no-change
# runs over all of them (goal: under 1 s for 200, growing about linearly), and
# a no-change --dry-run. Each cell runs a busybox service and has a plan (DIR,
# FILE, COPY). Everything is stopped and removed at the end, also on failure.
# With GNU time installed, the CPU seconds (user+system) of cellmgr and the
# children it waits for are printed too: wall time on a loaded machine is
# mostly other people's work, CPU time much less so.
#
#   sudo bench/apply.sh [N] [STEP] [R]   (CELLS_BIN=path/to/cells, default target/release/cells)
set -eu
N=${1:-200}
STEP=${2:-50}
R=${3:-5}
BIN=${CELLS_BIN:-$(dirname "$0")/../target/release/cells}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set CELLS_BIN)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/apply.sh: needs root (kernel cells, mounts)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
. "$(dirname "$0")/world.sh"
bench_world apply-bench "$BIN"
echo "bench asset" >"$W/etc/asset.txt"

now() { date +%s.%N; }
# Runs a command; its CPU seconds (user+system) go to the file in $CPU_OUT.
if [ -x /usr/bin/time ]; then
	cpu() { /usr/bin/time -f '%U %S' -o "$W/cpu.raw" "$@"; s=$?; awk '{ printf "%.3f\n", $1 + $2 }' "$W/cpu.raw" >>"$CPU_OUT"; return $s; }
else
	cpu() { "$@"; }
fi
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a - b }'; }
# median and max of the numbers on stdin
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "median %.3f s  worst %.3f s", v[int((NR + 1) / 2)], v[NR] }'; }

# Cells form chains of 10 (each depends on the one before), like real stacks,
# and each reserves a port of its own (BENCH_PORT_BASE + index).
add_cells() {
	i=$1
	while [ "$i" -lt "$2" ]; do
		name=$(printf 'b%03d' "$i")
		dep=""
		[ $((i % 10)) -ne 0 ] && dep="CELL_DEPENDS_ON=$(printf 'b%03d' $((i - 1)))"
		cat >"$W/etc/$name.cell" <<CELL
CELL_AUTOSTART=YES
CELL_CREATE_PROFILE=high
CELL_CREATE_RESERVED_PORTS=$((${BENCH_PORT_BASE:-21000} + i))
CELL_SUPERVISE_CMD="/bin/busybox sleep 1000000"
$dep
CELL
		cat >"$W/etc/$name.apply" <<PLAN
DIR /srv/app mode=0750
FILE_BEGIN /srv/app/config
name=$name
FILE_END
COPY asset.txt /srv/app/asset.txt
PLAN
		i=$((i + 1))
	done
}

echo "cellmgr apply benchmark: $N cells in steps of $STEP, $R no-change runs each"
printf '%6s  %-28s  %-38s  %s\n' CELLS "FULL CONVERGE (new cells)" "NO-CHANGE apply --all" "NO-CHANGE --dry-run"
have=0
while [ "$have" -lt "$N" ]; do
	next=$((have + STEP))
	[ "$next" -gt "$N" ] && next=$N
	add_cells "$have" "$next"
	t0=$(now)
	failed=""
	CPU_OUT="$W/cpu.full"
	: >"$CPU_OUT"
	cpu "$BIN" mgr apply --all --silent >"$W/apply.out" 2>&1 || failed=yes
	t1=$(now)
	full=$(sub "$t1" "$t0")
	if [ -n "$failed" ]; then
		# A failed cell is redone by the next apply; say so and converge.
		grep -E '^(FAILED|SKIPPED) ' "$W/apply.out" | sed 's/^/  (retried) /' >&2
		if ! "$BIN" mgr apply --all --silent >"$W/apply.out" 2>&1; then
			cat "$W/apply.out" >&2
			exit 1
		fi
	fi
	r=0
	: >"$W/times"
	CPU_OUT="$W/cpu.noop"
	: >"$CPU_OUT"
	while [ "$r" -lt "$R" ]; do
		t0=$(now)
		cpu "$BIN" mgr apply --all >"$W/noop.out"
		t1=$(now)
		sub "$t1" "$t0" >>"$W/times"
		if grep -v '^NOOP ' "$W/noop.out" | grep -q .; then
			echo "not converged:" >&2
			cat "$W/noop.out" >&2
			exit 1
		fi
		r=$((r + 1))
	done
	t0=$(now)
	"$BIN" mgr apply --all --dry-run >/dev/null
	t1=$(now)
	dry=$(sub "$t1" "$t0")
	printf '%6d  %8.1f s for %3d (%4.2f s/cell)  %-38s  %.3f s\n' "$next" "$full" $((next - have)) \
	    "$(awk -v f="$full" -v n=$((next - have)) 'BEGIN { print f / n }')" "$(stats <"$W/times")" "$dry"
	if [ -s "$W/cpu.full" ]; then
		printf '%6s  cpu %.2f s (converge)           cpu %s\n' "" "$(cat "$W/cpu.full")" \
		    "$(stats <"$W/cpu.noop")"
	fi
	have=$next
done
