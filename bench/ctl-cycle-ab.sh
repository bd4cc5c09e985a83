#!/bin/bash
# Two builds' cellctl cycle (create -> exec /bin/true -> destroy) and their
# `cellctl run ROOT /bin/true` (where the build has it), interleaved in every
# iteration so that load from elsewhere falls on both; prints the median of
# each step in milliseconds and their ratio (b/a).
#
# With bubblewrap installed, every iteration also runs `bwrap --unshare-all
# --ro-bind ROOT / --proc /proc --dev /dev /bin/true` on the same root, and
# each side's cycle and run are given as ratios to it (issue 18's goals: run
# <= 1.0, cycle <= 1.5).
#
# Usage (as root): bench/ctl-cycle-ab.sh A_CELLS B_CELLS [iterations]
# RUN_PARENT picks the file system of the cell state (default: /run, where the
# default run directory /run/cells is, tmpfs on most Linux hosts; /tmp for disk). KEEP=1 keeps one more cell in
# each run directory the whole time (the steady state: the run directory's
# port programs stay attached, as on a host with cells). A_CONF and B_CONF
# add lines to each side's cellmgr.conf: one build against itself with and
# without user namespaces is
#   A_CONF=CELL_USERNS=NO bench/ctl-cycle-ab.sh target/release/cells target/release/cells
set -eu

A=${1:?usage: bench/ctl-cycle-ab.sh A_CELLS B_CELLS [iterations]}
B=${2:?usage: bench/ctl-cycle-ab.sh A_CELLS B_CELLS [iterations]}
N=${3:-40}
[ "$(id -u)" = 0 ] || { echo "ctl-cycle-ab.sh: must run as root" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "ctl-cycle-ab.sh: /bin/busybox missing" >&2; exit 1; }

W=$(mktemp -d -p "${RUN_PARENT:-/run}" cells-ab.XXXXXX)
declare -A BIN=([a]=$A [b]=$B) CONF=([a]=${A_CONF:-} [b]=${B_CONF:-})
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		for s in a b; do CELLMGR_CONF=$W/$s.conf "${BIN[$s]}" ctl destroy "keep$$" 2>/dev/null || true; done
	fi
	rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/root/bin" "$W/root/proc" "$W/root/dev" "$W/root/tmp"
cp /bin/busybox "$W/root/bin/busybox"
ln -s busybox "$W/root/bin/true"
for s in a b; do
	mkdir -p "$W/$s.run"
	printf 'CELL_RUN_DIR=%s\nCELL_AUDIT_LOG=%s\n%s\n' "$W/$s.run" "$W/$s.audit.log" "${CONF[$s]}" >"$W/$s.conf"
	if [ "${KEEP:-0}" = 1 ]; then
		CELLMGR_CONF=$W/$s.conf "${BIN[$s]}" ctl create -n "keep$$" "$W/root" >/dev/null
	fi
done

now() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
BWRAP=$(command -v bwrap || true)
LOAD=$(cut -d" " -f1-3 /proc/loadavg)
for ((i = 0; i < N + 2; i++)); do
	for s in a b; do
		export CELLMGR_CONF=$W/$s.conf
		t0=$(now); "${BIN[$s]}" ctl create -n "c$$" "$W/root" >/dev/null
		t1=$(now); "${BIN[$s]}" ctl exec "c$$" /bin/true
		t2=$(now); "${BIN[$s]}" ctl destroy "c$$"
		t3=$(now); "${BIN[$s]}" ctl run "$W/root" /bin/true 2>/dev/null || true
		t4=$(now)
		# The first two rounds warm caches and are not counted.
		[ "$i" -ge 2 ] && echo "$((t1 - t0)) $((t2 - t1)) $((t3 - t2)) $((t3 - t0)) $((t4 - t3))" >>"$W/$s.t"
	done
	if [ -n "$BWRAP" ]; then
		t0=$(now); "$BWRAP" --unshare-all --ro-bind "$W/root" / --proc /proc --dev /dev /bin/true
		t1=$(now)
		[ "$i" -ge 2 ] && echo "$((t1 - t0))" >>"$W/bwrap.t"
	fi
done
unset CELLMGR_CONF

median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.2f\n", v[int((NR + 1) / 2)] / 1000 }'; }
echo "iterations: $N; load before: $LOAD; state on: $(stat -f -c %T "$W"); keep: ${KEEP:-0}; mounts on the host: $(wc -l </proc/self/mountinfo)"
printf '%-4s %8s %8s %8s %8s %8s  %s\n' "" create exec destroy cycle run binary
declare -A MED
for s in a b; do
	printf '%-4s' "$s"
	for c in 1 2 3 4 5; do
		MED[$s$c]=$(cut -d' ' -f$c "$W/$s.t" | median)
		printf ' %8s' "${MED[$s$c]}"
	done
	printf '  %s %s\n' "${BIN[$s]}" "${CONF[$s]}"
done
printf '%-4s' b/a
for c in 1 2 3 4 5; do awk -v a="${MED[a$c]}" -v b="${MED[b$c]}" 'BEGIN { printf " %8.2f", (a > 0 ? b / a : 0) }'; done
echo
if [ -n "$BWRAP" ]; then
	BW=$(median <"$W/bwrap.t")
	echo "bwrap --unshare-all /bin/true: $BW ms, same iterations"
	for s in a b; do
		awk -v c="${MED[${s}4]}" -v r="${MED[${s}5]}" -v b="$BW" -v s="$s" \
			'BEGIN { printf "%s: cycle/bwrap %.2f (goal <= 1.5), run/bwrap %.2f (goal <= 1.0)\n", s, c / b, r / b }'
	done
fi
