#!/bin/bash
# The cost of limits on the cellctl cycle (create -> exec /bin/true -> destroy):
# the same cycle without limits, with the default process limit, and with
# process, memory and CPU limits, interleaved in every iteration so that a busy
# host slows all three alike (each iteration starting with another one). Prints
# milliseconds per step and the differences.
#
# Usage (as root, from the repository): bench/limits-cost.sh [iterations]
# Needs: bash, busybox-static, a release build (built here unless CELLS is set).
# The cell state lives under RUN_PARENT (default /dev/shm, like /run/cells).
set -eu

N=${1:-100}
cd "$(dirname "$0")/.."
if [ -z "${CELLS:-}" ]; then
	cargo build --release --quiet
	CELLS=$PWD/target/release/cells
fi
[ "$(id -u)" = 0 ] || { echo "limits-cost.sh: must run as root" >&2; exit 1; }
command -v /bin/busybox >/dev/null || { echo "limits-cost.sh: /bin/busybox missing" >&2; exit 1; }

WORK=$(mktemp -d)
RUN=$(mktemp -d "${RUN_PARENT:-/dev/shm}/cells-bench-run.XXXXXX")
trap 'rm -rf "$WORK" "$RUN"' EXIT
mkdir -p "$WORK/root/bin"
cp /bin/busybox "$WORK/root/bin/busybox"
ln -s busybox "$WORK/root/bin/true"
printf 'CELL_RUN_DIR=%s\nCELL_AUDIT_LOG=%s\n' "$RUN" "$WORK/audit.log" >"$WORK/cellmgr.conf"
export CELLMGR_CONF="$WORK/cellmgr.conf"
NAME=bench$$
CONFIGS=("--maxproc unlimited" "" "--maxproc 64 --memory 64M --cpu 50")
LABELS=("no limits" "default (--maxproc 1024)" "--maxproc 64 --memory 64M --cpu 50")

now() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
# shellcheck disable=SC2086 # the configuration is a list of flags
cycle() {
	local t0 t1 t2 t3
	t0=$(now)
	"$CELLS" ctl create -n "$NAME" $1 "$WORK/root" >/dev/null
	t1=$(now)
	"$CELLS" ctl exec "$NAME" /bin/true
	t2=$(now)
	"$CELLS" ctl destroy "$NAME"
	t3=$(now)
	echo $((t1 - t0)) $((t2 - t1)) $((t3 - t2))
}

LOAD=$(cut -d" " -f1-3 /proc/loadavg)
for c in "${CONFIGS[@]}"; do cycle "$c" >/dev/null; done
declare -a C E D
for ((k = 0; k < ${#CONFIGS[@]}; k++)); do C[k]=0 E[k]=0 D[k]=0; done
# Each iteration starts with another configuration, so none always follows
# the clean-up of the same other one.
for ((i = 0; i < N; i++)); do
	for ((j = 0; j < ${#CONFIGS[@]}; j++)); do
		k=$(((i + j) % ${#CONFIGS[@]}))
		read -r c e d < <(cycle "${CONFIGS[k]}")
		C[k]=$((C[k] + c)) E[k]=$((E[k] + e)) D[k]=$((D[k] + d))
	done
done

ms() { awk -v us="$1" -v n="$N" 'BEGIN { printf "%6.2f", us / n / 1000 }'; }
echo "iterations: $N; load before: $LOAD; cell state on: $(stat -f -c %T "$RUN")"
printf '%-38s %8s %8s %8s %8s\n' "limits" "create" "exec" "destroy" "cycle"
for ((k = 0; k < ${#CONFIGS[@]}; k++)); do
	printf '%-38s %8s %8s %8s %8s\n' "${LABELS[k]}" "$(ms "${C[k]}")" "$(ms "${E[k]}")" \
		"$(ms "${D[k]}")" "$(ms $((C[k] + E[k] + D[k])))"
done
for ((k = 1; k < ${#CONFIGS[@]}; k++)); do
	printf '%-38s %8s %8s %8s %8s\n' "  minus no limits: ${LABELS[k]%% *}" \
		"$(ms $((C[k] - C[0])))" "$(ms $((E[k] - E[0])))" "$(ms $((D[k] - D[0])))" \
		"$(ms $((C[k] + E[k] + D[k] - C[0] - E[0] - D[0])))"
done
