#!/bin/sh
# Blue-green, end to end: blue is live, switch to green by editing desired
# state and applying, check which version answers, switch back, clean up.
#
#   sudo sh examples/blue-green/run.sh

. "$(dirname "$0")/../lib.sh"

blue=18181
green=18182
answers() { /bin/busybox wget -q -O - "http://127.0.0.1:$1/" | grep -q "$2 is live"; }
silent() { ! /bin/busybox wget -q -O /dev/null "http://127.0.0.1:$1/"; }

echo "--- apply: blue is live"
check "apply converges" mgr apply --all
check "blue answers" answers $blue blue
check "green is parked" silent $green

echo "--- switch to green"
check "switch.sh green" env CELLS="$CELLS" sh "$example_dir/switch.sh" green
cat "$work/check.out"
check "green answers" answers $green green
check "blue is stopped" silent $blue
check "desired state and runtime agree (dry-run exits 0)" mgr apply --all --dry-run

echo "--- a drifted manifest is caught by dry-run (exit 2)"
sed -i 's/^CELL_AUTOSTART=.*/CELL_AUTOSTART=YES/' "$manifests/blue.cell"
set +e
mgr apply --all --dry-run >"$work/plan.txt"
rc=$?
set -e
cat "$work/plan.txt"
check "dry-run exits 2" test "$rc" = 2
check "the plan starts blue" grep -q '^START *cell blue' "$work/plan.txt"
sed -i 's/^CELL_AUTOSTART=.*/CELL_AUTOSTART=NO/' "$manifests/blue.cell"

echo "--- switch back to blue"
check "switch.sh blue" env CELLS="$CELLS" sh "$example_dir/switch.sh" blue
check "blue answers again" answers $blue blue
check "green is stopped" silent $green
