#!/bin/bash
# What the port programs cost every bind and setsockopt on the host: the same
# loop of bind(127.0.0.1:0) on fresh TCP sockets (made beforehand, untimed),
# and of setsockopt (SO_REUSEADDR) on one socket, timed in three states that
# alternate in every round, so a busy host slows them alike:
#   none  no cell of this script's (programs other installations attached
#         stay, as on any host);
#   base  one cell made by CELLS_BASE with a reserved port: the bind4/bind6
#         pair of the code before post-bind checks (skipped without it);
#   new   one cell made by CELLS: bind4/bind6, post_bind4/post_bind6 and
#         setsockopt.
# Prints microseconds per operation (median of the rounds) and the difference
# to `none`.
#
# Usage (as root, from the repository): bench/bind-latency.sh [binds] [rounds]
# CELLS: the cells binary (built here with cargo build --release unless set);
# CELLS_BASE: an older cells binary to compare with, e.g. built from main
# before this change: git worktree add /tmp/base <rev> && (cd /tmp/base &&
# cargo build --release).
set -eu

N=${1:-100000}
ROUNDS=${2:-7}
cd "$(dirname "$0")/.."
if [ -z "${CELLS:-}" ]; then
	cargo build --release --quiet
	CELLS=$PWD/target/release/cells
fi
[ "$(id -u)" = 0 ] || { echo "bind-latency.sh: must run as root" >&2; exit 1; }
for tool in /bin/busybox perl; do
	command -v "$tool" >/dev/null || { echo "bind-latency.sh: $tool missing" >&2; exit 1; }
done

WORK=$(mktemp -d)
cleanup() {
	for c in base new; do
		[ -f "$WORK/$c.conf" ] && CELLMGR_CONF=$WORK/$c.conf "${BIN[$c]}" ctl destroy "bl$c$$" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
declare -A BIN=([base]=${CELLS_BASE:-} [new]=$CELLS)
trap cleanup EXIT
mkdir -p "$WORK/root/bin"
cp /bin/busybox "$WORK/root/bin/busybox"

# A reserved port well below the ephemeral range, unlikely to be in use.
PORT=$((5000 + $$ % 1000))

loop() {
	# Sockets are made beforehand in batches (not timed), so only bind() is.
	perl -MSocket=:all -MTime::HiRes=time -e '
		my ($n) = @ARGV;
		my $addr = pack_sockaddr_in(0, inet_aton("127.0.0.1"));
		my ($bind, $done) = (0, 0);
		while ($done < $n) {
			my @s;
			for (1 .. 4000) { socket(my $s, AF_INET, SOCK_STREAM, 0) or die; push @s, $s }
			my $t = time;
			bind($_, $addr) or die "bind: $!" for @s;
			$bind += time - $t;
			$done += @s;
		}
		socket(my $s, AF_INET, SOCK_STREAM, 0) or die;
		my $t = time;
		setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) or die for 1 .. $n;
		my $opt = (time - $t) / $n * 1e6;
		printf "%.3f %.3f\n", $bind / $done * 1e6, $opt;
	' "$N"
}

cell() { # state up|down
	local c=$1 what=$2 bin=${BIN[$1]}
	[ -n "$bin" ] || return 0
	export CELLMGR_CONF=$WORK/$c.conf
	mkdir -p "$WORK/$c.run"
	printf 'CELL_RUN_DIR=%s\n' "$WORK/$c.run" >"$CELLMGR_CONF"
	if [ "$what" = up ]; then
		"$bin" ctl create -n "bl$c$$" -r "$PORT" "$WORK/root" >/dev/null
	else
		"$bin" ctl destroy "bl$c$$"
	fi
	unset CELLMGR_CONF
}

LOAD=$(cut -d" " -f1-3 /proc/loadavg)
loop >/dev/null
for ((r = 0; r < ROUNDS; r++)); do
	loop >>"$WORK/none"
	if [ -n "${CELLS_BASE:-}" ]; then
		cell base up; loop >>"$WORK/base"; cell base down
	fi
	cell new up; loop >>"$WORK/new"; cell new down
done

median() { # file column
	sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}
echo "binds per round: $N; rounds: $ROUNDS; load before: $LOAD"
printf '%-6s %14s %10s %18s %10s\n' state "bind us" "vs none" "setsockopt us" "vs none"
b0=$(median "$WORK/none" 1) s0=$(median "$WORK/none" 2)
for state in none base new; do
	[ -s "$WORK/$state" ] || continue
	b=$(median "$WORK/$state" 1) s=$(median "$WORK/$state" 2)
	awk -v st="$state" -v b="$b" -v s="$s" -v b0="$b0" -v s0="$s0" \
		'BEGIN { printf "%-6s %14.3f %+10.3f %18.3f %+10.3f\n", st, b, b - b0, s, s - s0 }'
done
