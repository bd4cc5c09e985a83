# Shared by the example run scripts (sourced, POSIX sh): a private directory for
# every path cellmgr uses, the cells binary, checks, and cleanup that runs even
# when a step fails.
#
# Environment:
#   CELLS    the cells binary (also CELLS_BIN; default: target/release or
#            target/debug of this repository, else `cells` on PATH)
#   KEEP=1   keep the temporary directory for inspection (cells are still stopped)

set -eu

example_dir=$(cd "$(dirname "$0")" && pwd)
repo_dir=$(cd "$example_dir/../.." && pwd)

CELLS=${CELLS:-${CELLS_BIN:-}}
if [ -z "$CELLS" ]; then
	for c in "$repo_dir/target/release/cells" "$repo_dir/target/debug/cells" \
	    "$(command -v cells || true)"; do
		if [ -n "$c" ] && [ -x "$c" ]; then
			CELLS=$c
			break
		fi
	done
fi
if [ -z "${CELLS:-}" ]; then
	echo "cells binary not found: run 'cargo build --release' or set CELLS" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "$(basename "$0"): cells are kernel objects; run this as root" >&2
	exit 1
fi

mgr() { "$CELLS" mgr "$@"; }
ctl() { "$CELLS" ctl "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cells-example.XXXXXX")
export CELLMGR_CONF="$work/cellmgr.conf"
sed "s|@DIR@|$work|g" "$example_dir/cellmgr.conf.in" >"$CELLMGR_CONF"
mkdir -p "$work/etc"
cp -R "$example_dir/cellmgr" "$work/etc/cellmgr"
manifests="$work/etc/cellmgr"

failures=0

# check DESCRIPTION COMMAND...: runs the command, prints ok/FAIL, counts failures.
check() {
	desc=$1
	shift
	if "$@" >"$work/check.out" 2>&1; then
		echo "ok   - $desc"
	else
		echo "FAIL - $desc"
		sed 's/^/       | /' "$work/check.out"
		failures=$((failures + 1))
	fi
}

# refute DESCRIPTION COMMAND...: the command must fail.
refute() {
	desc=$1
	shift
	if "$@" >"$work/check.out" 2>&1; then
		echo "FAIL - $desc (it succeeded)"
		sed 's/^/       | /' "$work/check.out"
		failures=$((failures + 1))
	else
		echo "ok   - $desc"
	fi
}

# use_port NAME DEFAULT: rewrites the default port in the copied manifests when
# the caller asked for another one (e.g. QUICKSTART_PORT=28080).
use_port() {
	if [ "$1" != "$2" ]; then
		for f in "$manifests"/*.cell "$manifests"/*.apply; do
			[ -f "$f" ] && sed -i "s/$2/$1/g" "$f"
		done
	fi
}

cleanup() {
	status=$?
	trap - EXIT INT TERM
	echo "--- cleaning up"
	mgr stop --all --ignore-autostart >/dev/null 2>&1 || echo "warning: stopping cells failed" >&2
	# Anything still mounted below the work directory, deepest first.
	awk -v d="$work/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
	    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
	if [ "$status" = 0 ] && [ "$failures" != 0 ]; then
		status=1
	fi
	if [ "$status" = 0 ]; then
		echo "PASS: $(basename "$example_dir")"
	else
		echo "FAIL: $(basename "$example_dir") ($failures failed check(s), exit $status)"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
