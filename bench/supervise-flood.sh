#!/bin/bash
# What a service that floods its output costs, and how fast its supervisor
# still stops: `yes` runs in a cell under `cellctl supervise` with no syslog
# daemon (records go to the rotated fallback file). For each output rate limit
# (CELL_LOG_RATE_LIMIT: 0 is none, then the default 1m) the script prints the
# bytes per second the supervisor took in, its CPU share, the run directory's
# size (bounded by CELL_LOG_MAX_SIZE x CELL_LOG_MAX_FILES per log), and the
# time from SIGTERM to the supervisor's exit (grace 5 s; `yes` ends on TERM).
# It measures a supervisor process (CELL_SUPERVISOR=process): a supervising
# init is stopped over its socket, not by a signal, and is the cell's init.
#
# Usage (as root, from the repository): bench/supervise-flood.sh [seconds]
# Needs: bash, busybox-static, psmisc (fuser); a release build (built here
# unless CELLS is set).
set -eu

SECS=${1:-3}
cd "$(dirname "$0")/.."
if [ -z "${CELLS:-}" ]; then
	cargo build --release --quiet
	CELLS=$PWD/target/release/cells
fi
[ "$(id -u)" = 0 ] || { echo "supervise-flood.sh: must run as root" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "supervise-flood.sh: /bin/busybox missing" >&2; exit 1; }

WORK=$(mktemp -d)
NAME=flood$$
cleanup() {
	"$CELLS" ctl destroy "$NAME" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/root/bin"
cp /bin/busybox "$WORK/root/bin/busybox"
ln -s busybox "$WORK/root/bin/yes"
export CELLMGR_CONF="$WORK/cellmgr.conf"
TICK=$(getconf CLK_TCK)

now() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
# utime+stime of a pid, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Bytes the pid read so far.
rchar() { awk '/^rchar/ { print $2 }' "/proc/$1/io"; }

printf '%-10s %14s %8s %12s %14s\n' RATE_LIMIT "TAKEN_IN/S" CPU RUN_DIR TERM_TO_EXIT
for rate in 0 1m; do
	rm -rf "$WORK/run"
	printf 'CELL_SUPERVISOR=process\nCELL_RUN_DIR=%s\nCELL_SYSLOG_SOCKET=%s/no-daemon\nCELL_LOG_RATE_LIMIT=%s\nCELL_AUDIT_LOG=%s/audit.log\n' \
	    "$WORK/run" "$WORK" "$rate" "$WORK" >"$CELLMGR_CONF"
	"$CELLS" ctl create -n "$NAME" "$WORK/root" >/dev/null
	"$CELLS" ctl supervise "$NAME" /bin/yes "a line of flood output, again and again" >/dev/null
	# The supervisor's pid: the process that holds its lock file open.
	pid=$(fuser "$WORK/run/supervise/$NAME.lock" 2>/dev/null | tr -d ' ')
	sleep 1 # past the first second's burst
	t0=$(now); c0=$(ticks "$pid"); r0=$(rchar "$pid")
	sleep "$SECS"
	t1=$(now); c1=$(ticks "$pid"); r1=$(rchar "$pid")
	size=$(du -sk "$WORK/run/supervise" | cut -f1)
	k0=$(now)
	kill -TERM "$pid"
	# Until it ended (a zombie waiting for its reaper counts as ended).
	while [ -r "/proc/$pid/stat" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
		sleep 0.005
	done
	k1=$(now)
	us=$((t1 - t0))
	printf '%-10s %11.1f MB %7.1f%% %9d KB %11.1f ms\n' "$rate" \
	    "$(awk -v b=$((r1 - r0)) -v u=$us 'BEGIN { print b / u }')" \
	    "$(awk -v c=$((c1 - c0)) -v t="$TICK" -v u=$us 'BEGIN { print 100 * c / t / (u / 1e6) }')" \
	    "$size" "$(awk -v u=$((k1 - k0)) 'BEGIN { print u / 1000 }')"
	"$CELLS" ctl destroy "$NAME" >/dev/null
done
