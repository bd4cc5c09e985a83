# Sourced by bench/apply.sh and bench/apply-ab.sh: a temporary cellmgr world.
#
# bench_world TAG BIN makes a directory $W under $TMPDIR (or /tmp), exports
# CELLMGR_CONF for a configuration with every path inside it (CELL_BASE=host),
# and on exit stops every cell with BIN, unmounts what is left below $W and
# removes it, also after a failure.
bench_world() {
	W=$(mktemp -d "${TMPDIR:-/tmp}/cells-$1.XXXXXX")
	BENCH_BIN=$2
	export CELLMGR_CONF="$W/cellmgr.conf"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$W/etc" "$W/cells"
	cat >"$CELLMGR_CONF" <<CONF
CELLMGR_MANIFEST_DIR=$W/etc
CELL_BASE=host
CELL_DATA_DIR=$W/cells
CELL_VOLUME_DIR=$W/volumes
CELL_BASE_DIR=$W/base
CELL_BACKUP_DIR=$W/backups
CELL_RELEASE_DIR=$W/releases
CELL_RUN_DIR=$W/run
CELL_AUDIT_LOG=$W/audit.log
CONF
}

bench_cleanup() {
	"$BENCH_BIN" mgr stop --all --ignore-autostart >/dev/null 2>&1 || echo "warning: stopping cells failed" >&2
	awk -v d="$W/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
	    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$W"
}
