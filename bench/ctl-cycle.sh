#!/bin/bash
# Cell start-up cost: one full cellctl cycle (create -> exec /bin/true -> destroy)
# against one bubblewrap run and one unshare(1) run of /bin/true. The three are
# interleaved in every iteration, so a busy host slows them alike; the script
# prints milliseconds per iteration and ratios.
#
# Usage (as root, from the repository): bench/ctl-cycle.sh [iterations]
# Needs: bash, busybox-static, bubblewrap, util-linux (unshare), a release build
# (built here with `cargo build --release` unless CELLS is set).
# RUN_PARENT picks the file system of the cell state (CELL_RUN_DIR): the default
# is a temporary directory under TMPDIR; /run/cells normally lives on tmpfs, so
# RUN_PARENT=/dev/shm shows that case (the state is fsynced on every change).
# PORT=n makes every created cell reserve TCP/UDP port n (cellctl create -r), so
# the cycle includes adding and removing a reserved-port guard.
# LIMITS="..." adds limit flags to create, e.g. LIMITS="--maxproc unlimited" (no
# limit: no cgroup controller involved) or LIMITS="--memory 64M --cpu 50"; without
# it the default process limit of cellmgr.conf (1024) applies.
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
RUN=$(mktemp -d "${RUN_PARENT:-${TMPDIR:-/tmp}}/cells-bench-run.XXXXXX")
trap 'rm -rf "$WORK" "$RUN"' EXIT
mkdir -p "$WORK/root/bin"
cp /bin/busybox "$WORK/root/bin/busybox"
ln -s busybox "$WORK/root/bin/true"
printf 'CELL_RUN_DIR=%s\nCELL_AUDIT_LOG=%s\n' "$RUN" "$WORK/audit.log" >"$WORK/cellmgr.conf"
export CELLMGR_CONF="$WORK/cellmgr.conf"
NAME=bench$$

# Microseconds since the epoch, without a fork.
now() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# shellcheck disable=SC2086 # LIMITS is a list of flags
create() { "$CELLS" ctl create -n "$NAME" ${PORT:+-r "$PORT"} ${LIMITS:-} "$WORK/root" >/dev/null; }
exec_true() { "$CELLS" ctl exec "$NAME" /bin/true; }
destroy() { "$CELLS" ctl destroy "$NAME"; }
bwrap_true() { bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true; }
unshare_true() { unshare -fp --mount-proc /bin/true; }

LOAD=$(cut -d" " -f1-3 /proc/loadavg)
for _ in 1 2 3; do create; exec_true; destroy; bwrap_true; unshare_true; done

c=0 e=0 d=0 b=0 u=0
for ((i = 0; i < N; i++)); do
	t0=$(now); create; t1=$(now); exec_true; t2=$(now); destroy; t3=$(now)
	bwrap_true; t4=$(now); unshare_true; t5=$(now)
	c=$((c + t1 - t0)) e=$((e + t2 - t1)) d=$((d + t3 - t2))
	b=$((b + t4 - t3)) u=$((u + t5 - t4))
done
cycle=$((c + e + d))

ms() { awk -v us="$1" -v n="$N" 'BEGIN { printf "%6.2f ms", us / n / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "iterations: $N; mean wall time per iteration, each tool's process start included"
echo "cell state on: $(stat -f -c %T "$RUN"); load before: $LOAD"
echo "reserved port: ${PORT:-none}; limits: ${LIMITS:-the defaults (--maxproc 1024)}"
echo "cellctl create+exec+destroy    $(ms $cycle)"
echo "  create                       $(ms $c)"
echo "  exec /bin/true               $(ms $e)"
echo "  destroy                      $(ms $d)"
echo "bwrap --unshare-all /bin/true  $(ms $b)"
echo "unshare -fp --mount-proc true  $(ms $u)"
echo "ratio cycle/bwrap              $(ratio $cycle $b)"
echo "ratio cycle/unshare            $(ratio $cycle $u)"
echo "ratio exec/bwrap               $(ratio $e $b)"
