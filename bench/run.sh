#!/bin/bash
# Goals 1 and 2 of the performance work: an ephemeral `cellctl run ROOT
# /bin/true` and the three-command cycle (create -> exec /bin/true -> destroy),
# each against `bwrap --unshare-all --ro-bind ROOT / --proc /proc --dev /dev
# /bin/true` on the same root. The three are interleaved in every iteration,
# so a busy host slows them alike; the script prints medians (and each step
# of the cycle) and the ratios of the medians.
#
# Usage (as root, from the repository): bench/run.sh [iterations]
# Needs: bash, busybox-static, bubblewrap, a release build (built here with
# `cargo build --release` unless CELLS is set).
# LIMITS="..." adds limit flags to run and create (default: the process limit
# of cellmgr.conf, 1024, as an operator gets it).
# The cells' state (CELL_RUN_DIR) goes in a temporary directory under
# RUN_PARENT, default /run: the file system of the default run directory,
# /run/cells (tmpfs on most Linux hosts). RUN_PARENT=/tmp measures it on disk.
set -eu

N=${1:-40}
cd "$(dirname "$0")/.."
if [ -z "${CELLS:-}" ]; then
	cargo build --release --quiet
	CELLS=$PWD/target/release/cells
fi
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root" >&2; exit 1; }
for tool in /bin/busybox bwrap; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool missing" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
STATE=$(mktemp -d -p "${RUN_PARENT:-/run}" cells-bench.XXXXXX)
trap 'rm -rf "$WORK" "$STATE"' EXIT
mkdir -p "$ROOT/bin" "$ROOT/proc" "$ROOT/dev" "$ROOT/tmp"
cp /bin/busybox "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/true"
printf 'CELL_RUN_DIR=%s\nCELL_AUDIT_LOG=%s\n' "$STATE" "$WORK/audit.log" >"$WORK/cellmgr.conf"
export CELLMGR_CONF="$WORK/cellmgr.conf"
NAME=bench$$

# Microseconds since the epoch, without a fork.
now() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# shellcheck disable=SC2086 # LIMITS is a list of flags
run_true() { "$CELLS" ctl run ${LIMITS:-} "$ROOT" /bin/true; }
# shellcheck disable=SC2086
create() { "$CELLS" ctl create -n "$NAME" ${LIMITS:-} "$ROOT" >/dev/null; }
exec_true() { "$CELLS" ctl exec "$NAME" /bin/true; }
destroy() { "$CELLS" ctl destroy "$NAME"; }
bwrap_true() { bwrap --unshare-all --ro-bind "$ROOT" / --proc /proc --dev /dev /bin/true; }

LOAD=$(cut -d" " -f1-3 /proc/loadavg)
for _ in 1 2 3; do run_true; create; exec_true; destroy; bwrap_true; done

R=() C=() E=() D=() Y=() B=()
for ((i = 0; i < N; i++)); do
	t0=$(now); run_true; t1=$(now)
	create; t2=$(now); exec_true; t3=$(now); destroy; t4=$(now)
	bwrap_true; t5=$(now)
	R+=($((t1 - t0))) C+=($((t2 - t1))) E+=($((t3 - t2))) D+=($((t4 - t3)))
	Y+=($((t4 - t1))) B+=($((t5 - t4)))
done

# The median of microsecond values, in microseconds.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%6.2f ms", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

r=$(median "${R[@]}") y=$(median "${Y[@]}") b=$(median "${B[@]}")
echo "iterations: $N, interleaved; medians of wall time, each tool's process start included"
echo "load before: $LOAD; after: $(cut -d" " -f1-3 /proc/loadavg); cores: $(nproc)"
# Both tools copy the host's mount table into the new mount namespace and
# detach it again: each costs more on a host with many mounts.
echo "mounts on the host: $(wc -l </proc/self/mountinfo); cell state on: $(stat -f -c %T "$STATE")"
echo "limits: ${LIMITS:-the defaults (--maxproc 1024)}"
echo "cellctl run /bin/true              $(ms "$r")"
echo "cellctl create+exec+destroy        $(ms "$y")"
echo "  create                           $(ms "$(median "${C[@]}")")"
echo "  exec /bin/true                   $(ms "$(median "${E[@]}")")"
echo "  destroy                          $(ms "$(median "${D[@]}")")"
echo "bwrap --unshare-all /bin/true      $(ms "$b")"
echo "goal 1: ratio run/bwrap            $(ratio "$r" "$b")   (goal <= 1.0)"
echo "goal 2: ratio cycle/bwrap          $(ratio "$y" "$b")   (goal <= 1.5)"
