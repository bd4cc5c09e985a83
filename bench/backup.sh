#!/usr/bin/env bash
# Backup and restore throughput of `cellmgr volume backup` against plain
# `tar czf` / `tar xzf` on the same 1 GiB of mixed files, in the same run.
#
#   bench/backup.sh            (root; builds target/release/cells if needed)
#   SIZE_MIB=256 bench/backup.sh   a smaller data set
#   BENCH_DIR=/path bench/backup.sh   where to put ~3x SIZE_MIB of scratch data
#
# The data: 30% random (incompressible), 45% base64 text, 25% small 4 KiB
# files, plus a sparse file. Every timed step starts after a sync, so no step
# pays for another's write-back. cellmgr's restore does more than tar: it
# checks the SHA-256 while it extracts, and flushes the new tree (syncfs) before
# it swaps it in, which crash safety needs; tar leaves its writes in the page
# cache. So the restores are also compared with `tar xzf && sync` ("vs +sync"),
# and cellmgr's own step timings (CELLS_LOG=debug) are printed below the table.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
BIN=${CELLS_BIN:-target/release/cells}
[ "$(id -u)" = 0 ] || { echo "backup.sh: run as root (restores ownership)" >&2; exit 1; }
if [ ! -x "$BIN" ]; then
	echo "building $BIN ..." >&2
	cargo build --release --bin cells >&2
fi
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/cells-backup-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/volumes/bench" "$WORK/etc"
cat >"$WORK/cellmgr.conf" <<CONF
CELLMGR_MANIFEST_DIR=$WORK/etc
CELL_DATA_DIR=$WORK/cells
CELL_VOLUME_DIR=$WORK/volumes
CELL_BACKUP_DIR=$WORK/backups
CELL_RUN_DIR=$WORK/run
CELL_AUDIT_LOG=$WORK/audit.log
CONF
export CELLMGR_CONF="$WORK/cellmgr.conf"
SRC="$WORK/volumes/bench"

# --- data set -------------------------------------------------------------
random_mib=$((SIZE_MIB * 30 / 100))
text_mib=$((SIZE_MIB * 45 / 100))
small_mib=$((SIZE_MIB - random_mib - text_mib))
echo "generating $SIZE_MIB MiB of mixed files in $SRC ..." >&2
mkdir -p "$SRC/random" "$SRC/text" "$SRC/small"
for i in $(seq 1 $((random_mib / 8))); do
	head -c 8M /dev/urandom >"$SRC/random/blob$i.bin"
done
head -c $((text_mib * 3 / 4))M /dev/urandom | base64 -w 76 >"$WORK/text.all"
split -b 1M -a 4 "$WORK/text.all" "$SRC/text/log_"
rm "$WORK/text.all"
head -c $((small_mib * 3 / 4))M /dev/urandom | base64 -w 0 >"$WORK/small.all"
split -b 4K -a 6 "$WORK/small.all" "$SRC/small/f_"
rm "$WORK/small.all"
files=$(find "$SRC" -type f | wc -l)
bytes=$(du -sb "$SRC" | cut -f1)
# A sparse file on top (not counted in the rate): holes must stay holes.
truncate -s 64M "$SRC/sparse.img"
echo data | dd of="$SRC/sparse.img" bs=1 seek=10000000 conv=notrunc status=none
echo "data: $files files, $((bytes / 1048576)) MiB, plus a 64 MiB sparse file" >&2

now() { date +%s.%N; }
# time_it VAR command...: runs after a sync, stores seconds in VAR.
time_it() {
	local var=$1
	shift
	sync
	local t0 t1
	t0=$(now)
	"$@"
	t1=$(now)
	printf -v "$var" '%.2f' "$(awk "BEGIN { print $t1 - $t0 }")"
}
rate() { awk "BEGIN { printf \"%.1f\", $bytes / 1048576 / $1 }"; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }

# --- backup ---------------------------------------------------------------
time_it t_tar_c tar czf "$WORK/plain.tar.gz" -C "$SRC" .
time_it t_cm_c "$BIN" mgr volume backup create bench -q
archive=$(ls "$WORK"/backups/volumes/bench_*.tar.gz)

# --- restore --------------------------------------------------------------
# Pure extraction: into an empty directory / onto a lost volume.
mkdir "$WORK/plain-x"
time_it t_tar_x tar xzf "$WORK/plain.tar.gz" -C "$WORK/plain-x"
rm -rf "$WORK/plain-x"
mkdir "$WORK/plain-x"
time_it t_tar_xs sh -c 'tar xzf "$1" -C "$2" && sync' sh "$WORK/plain.tar.gz" "$WORK/plain-x"
rm -rf "$WORK/plain-x" "$SRC"
time_it t_cm_xe env CELLS_LOG=debug "$BIN" mgr volume backup restore bench --latest --yes -q 2>"$WORK/steps-lost.log"
# Replacing live data: rm -rf + tar xzf, against cellmgr's atomic swap (which
# also removes the old tree, after the new one is in place).
mkdir "$WORK/plain-x"
tar xzf "$WORK/plain.tar.gz" -C "$WORK/plain-x"
time_it t_tar_r sh -c 'rm -rf "$1" && mkdir "$1" && tar xzf "$2" -C "$1"' sh "$WORK/plain-x" "$WORK/plain.tar.gz"
time_it t_tar_rs sh -c 'rm -rf "$1" && mkdir "$1" && tar xzf "$2" -C "$1" && sync' sh "$WORK/plain-x" "$WORK/plain.tar.gz"
rm -rf "$WORK/plain-x"
time_it t_cm_x env CELLS_LOG=debug "$BIN" mgr volume backup restore bench --latest --yes -q 2>"$WORK/steps-live.log"

mib=$((bytes / 1048576))
row() { printf '%-44s %8s %10s %8s %9s\n' "$1" "$2" "$(rate "$2")" "$3" "${4:-}"; }
printf '\n%-44s %8s %10s %8s %9s\n' "operation ($mib MiB, $files files)" seconds "MiB/s" "ratio" "vs +sync"
row "tar czf" "$t_tar_c" "1.00"
row "cellmgr volume backup create" "$t_cm_c" "$(ratio "$t_cm_c" "$t_tar_c")"
row "tar xzf (into an empty directory)" "$t_tar_x" "1.00"
row "tar xzf && sync" "$t_tar_xs" "$(ratio "$t_tar_xs" "$t_tar_x")" "1.00"
row "cellmgr volume backup restore (lost volume)" "$t_cm_xe" "$(ratio "$t_cm_xe" "$t_tar_x")" "$(ratio "$t_cm_xe" "$t_tar_xs")"
row "rm -rf + tar xzf (replacing live data)" "$t_tar_r" "1.00"
row "rm -rf + tar xzf && sync" "$t_tar_rs" "$(ratio "$t_tar_rs" "$t_tar_r")" "1.00"
row "cellmgr volume backup restore (over live)" "$t_cm_x" "$(ratio "$t_cm_x" "$t_tar_r")" "$(ratio "$t_cm_x" "$t_tar_rs")"
echo
echo "archive sizes: tar czf $(stat -c %s "$WORK/plain.tar.gz") bytes, cellmgr $(stat -c %s "$archive") bytes"
echo "ratio: seconds against the plain-tar line above it (goal: <= 1.20);"
echo "vs +sync: against the same tar run followed by sync (cellmgr must flush before its swap)"
for f in lost live; do
	echo "cellmgr restore steps ($f):"
	sed -n 's/^.*\] //p' "$WORK/steps-$f.log" | grep -E ' in [0-9.]+[^ 0-9.]*s$' | sed 's/^/  /' || true
done
