#!/bin/sh
# A stateful service with a volume, end to end: data written by the service
# survives a re-apply of its plan, a restart, and a stop and start.
#
#   sudo sh examples/stateful/run.sh

. "$(dirname "$0")/../lib.sh"

port=18280

echo "--- apply"
check "apply converges" mgr apply --all
check "the seeded page is served" sh -c "/bin/busybox wget -q -O - http://127.0.0.1:$port/ | grep -q notes"
check "the cell writes a note into its volume" \
    ctl exec notes /bin/sh -c 'echo remember-me >/var/lib/notes/note.txt'
check "the note is in the volume on the host" grep -q remember-me "$work/volumes/notes-data/note.txt"

echo "--- apply --reapply: the plan runs again, the data stays"
check "apply --reapply" mgr apply --all --reapply
check "the note survived the re-apply" sh -c "fetch_out=\$(/bin/busybox wget -q -O - http://127.0.0.1:$port/note.txt); test \"\$fetch_out\" = remember-me"

echo "--- a service change restarts the cell: the data stays"
sed -i 's/^CELL_SUPERVISE_TAG=.*/CELL_SUPERVISE_TAG=notes-v2/' "$manifests/notes.cell"
mgr apply --all --dry-run >"$work/plan.txt" || true
cat "$work/plan.txt"
check "the plan restarts notes" grep -q '^RESTART *cell notes' "$work/plan.txt"
check "apply restarts it" mgr apply --all
check "the note survived the restart" sh -c "test \"\$(/bin/busybox wget -q -O - http://127.0.0.1:$port/note.txt)\" = remember-me"
starts=$(cat "$work/volumes/notes-data/starts" 2>/dev/null || echo 0)
check "the service counted its starts in the volume (now $starts)" test "$starts" -ge 2

echo "--- stop everything, apply again"
check "stop all cells" mgr stop --all --ignore-autostart
check "apply starts notes again" mgr apply --all
check "the note survived stop and start" sh -c "test \"\$(/bin/busybox wget -q -O - http://127.0.0.1:$port/note.txt)\" = remember-me"
