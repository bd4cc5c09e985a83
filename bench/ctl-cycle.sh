#!/bin/sh
# Cell start-up cost: one full cellctl cycle (create -> exec /bin/true -> destroy)
# against one bubblewrap run and one unshare(1) run of /bin/true, measured in the
# same run and printed as milliseconds per iteration and as ratios.
#
# Usage (as root, from the repository): bench/ctl-cycle.sh [iterations]
# Needs: busybox-static, bubblewrap, util-linux (unshare), a release build
# (built here with `cargo build --release` unless CELLS is set).
set -eu

N=${1:-100}
cd "$(dirname "$0")/.."
if [ -z "${CELLS:-}" ]; then
	cargo build --release --quiet
	CELLS=$PWD/target/release/cells
fi
[ "$(id -u)" = 0 ] || { echo "ctl-cycle.sh: must run as root" >&2; exit 1; }
for tool in /bin/busybox bwrap unshare; do
	command -v "$tool" >/dev/null || { echo "ctl-cycle.sh: $tool missing" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root/bin" "$WORK/run"
cp /bin/busybox "$WORK/root/bin/busybox"
ln -s busybox "$WORK/root/bin/true"
printf 'CELL_RUN_DIR=%s/run\n' "$WORK" >"$WORK/cellmgr.conf"
export CELLMGR_CONF="$WORK/cellmgr.conf"
NAME=bench$$

now_ns() { date +%s%N; }

cycle() {
	"$CELLS" ctl create -n "$NAME" "$WORK/root" >/dev/null
	"$CELLS" ctl exec "$NAME" /bin/true
	"$CELLS" ctl destroy "$NAME"
}
bwrap_run() { bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true; }
unshare_run() { unshare -fp --mount-proc /bin/true; }
create_only() { "$CELLS" ctl create -n "$NAME" "$WORK/root" >/dev/null; }
exec_only() { "$CELLS" ctl exec "$NAME" /bin/true; }
destroy_only() { "$CELLS" ctl destroy "$NAME"; }

# time_loop FUNCTION: mean wall time per call in microseconds over N calls
# (three warm-up calls first).
time_loop() {
	for _ in 1 2 3; do $1; done
	t0=$(now_ns)
	i=0
	while [ $i -lt "$N" ]; do $1; i=$((i + 1)); done
	t1=$(now_ns)
	echo $(((t1 - t0) / N / 1000))
}

# The phases of a cycle, measured separately.
phase_loop() {
	c=0 e=0 d=0 i=0
	while [ $i -lt "$N" ]; do
		t0=$(now_ns); create_only; t1=$(now_ns); exec_only; t2=$(now_ns); destroy_only; t3=$(now_ns)
		c=$((c + t1 - t0)); e=$((e + t2 - t1)); d=$((d + t3 - t2)); i=$((i + 1))
	done
	echo "$((c / N / 1000)) $((e / N / 1000)) $((d / N / 1000))"
}

ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

CYCLE=$(time_loop cycle)
BWRAP=$(time_loop bwrap_run)
UNSHARE=$(time_loop unshare_run)
set -- $(phase_loop)

echo "iterations: $N (mean wall time per iteration, including process start of each tool)"
echo "cellctl create+exec+destroy   $(ms "$CYCLE") ms"
echo "  create                      $(ms "$1") ms"
echo "  exec /bin/true              $(ms "$2") ms"
echo "  destroy                     $(ms "$3") ms"
echo "bwrap --unshare-all /bin/true $(ms "$BWRAP") ms"
echo "unshare -fp --mount-proc true $(ms "$UNSHARE") ms"
echo "ratio cycle/bwrap             $(ratio "$CYCLE" "$BWRAP")"
echo "ratio cycle/unshare           $(ratio "$CYCLE" "$UNSHARE")"
echo "ratio exec/bwrap              $(ratio "$2" "$BWRAP")"
