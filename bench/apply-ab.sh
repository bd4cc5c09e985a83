#!/bin/sh
# Compares two builds of cells on `cellmgr apply --all` over N real cells, run
# side by side so that load from elsewhere falls on both alike: K rounds of a
# full converge from nothing (A then B, the runtime removed between), then R
# no-change runs of A and B interleaved on one converged world. Prints the
# median and spread of each, and B against A. The cells are those of
# bench/apply.sh (busybox service, a plan with DIR, FILE, COPY; chains of 10).
#
#   sudo bench/apply-ab.sh A_BIN B_BIN [N] [K] [R]
set -eu
A=$(realpath "$1")
B=$(realpath "$2")
N=${3:-200}
K=${4:-3}
R=${5:-30}
[ "$(id -u)" = 0 ] || { echo "bench/apply-ab.sh: needs root (kernel cells, mounts)" >&2; exit 1; }
. "$(dirname "$0")/world.sh"
bench_world apply-ab "$B"
echo "bench asset" >"$W/etc/asset.txt"
i=0
while [ "$i" -lt "$N" ]; do
	name=$(printf 'b%03d' "$i")
	dep=""
	[ $((i % 10)) -ne 0 ] && dep="CELL_DEPENDS_ON=$(printf 'b%03d' $((i - 1)))"
	printf 'CELL_AUTOSTART=YES\nCELL_CREATE_PROFILE=high\nCELL_CREATE_RESERVED_PORTS=%d\nCELL_SUPERVISE_CMD="/bin/busybox sleep 1000000"\n%s\n' \
	    $((${BENCH_PORT_BASE:-41000} + i)) "$dep" >"$W/etc/$name.cell"
	printf 'DIR /srv/app mode=0750\nFILE_BEGIN /srv/app/config\nname=%s\nFILE_END\nCOPY asset.txt /srv/app/asset.txt\n' \
	    "$name" >"$W/etc/$name.apply"
	i=$((i + 1))
done

# Seconds (wall) a command takes; it must succeed.
timed() {
	t0=$(date +%s.%N)
	"$@" >"$W/out" 2>&1 || { cat "$W/out" >&2; exit 1; }
	t1=$(date +%s.%N)
	awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.4f\n", a - b }'
}
reset_runtime() {
	"$1" mgr stop --all --ignore-autostart >/dev/null
	"$1" mgr cell remove --all --scope runtime --yes >/dev/null
}
# "median m  min a  max b" of the numbers in a file
stats() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "median %.3f s  min %.3f  max %.3f", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "apply A/B: $N cells; A=$A B=$B; load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$W/full.a"
: >"$W/full.b"
k=0
while [ "$k" -lt "$K" ]; do
	timed "$A" mgr apply --all --silent >>"$W/full.a"
	reset_runtime "$A"
	timed "$B" mgr apply --all --silent >>"$W/full.b"
	[ $((k + 1)) -lt "$K" ] && reset_runtime "$B"
	k=$((k + 1))
done
: >"$W/noop.a"
: >"$W/noop.b"
r=0
while [ "$r" -lt "$R" ]; do
	timed "$A" mgr apply --all >>"$W/noop.a"
	timed "$B" mgr apply --all >>"$W/noop.b"
	r=$((r + 1))
done
printf 'full converge of %d cells, %d rounds\n  A %s\n  B %s\n' "$N" "$K" "$(stats "$W/full.a")" "$(stats "$W/full.b")"
printf 'no-change apply --all, %d runs each, interleaved\n  A %s\n  B %s\n' "$R" "$(stats "$W/noop.a")" "$(stats "$W/noop.b")"
awk -v fa="$(median "$W/full.a")" -v fb="$(median "$W/full.b")" -v na="$(median "$W/noop.a")" -v nb="$(median "$W/noop.b")" \
    'BEGIN { printf "B/A medians: full converge %.3f, no-change %.3f\n", fb / fa, nb / na }'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
