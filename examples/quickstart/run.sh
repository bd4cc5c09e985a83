#!/bin/sh
# The quickstart, end to end, in temporary directories: apply the stack, show
# it, prove the web cell answers and that the client cell can neither touch the
# web cell's processes nor bind its reserved port, then clean up (also on
# failure). Exits non-zero if any check fails.
#
#   sudo sh examples/quickstart/run.sh            (QUICKSTART_PORT=28080 to move it)

. "$(dirname "$0")/../lib.sh"

port=${QUICKSTART_PORT:-18080}
use_port "$port" 18080

echo "--- cellmgr apply --dry-run (nothing exists yet: exit 2 means drift)"
set +e
mgr apply --all --dry-run
rc=$?
set -e
check "dry-run reports drift (exit 2)" test "$rc" = 2

echo "--- cellmgr apply --all"
check "apply converges the stack" mgr apply --all
cat "$work/check.out"

echo "--- cellmgr list"
mgr list

echo "--- checks"
check "a second apply changes nothing" sh -c "
    out=\$('$CELLS' mgr apply --all) || exit 1
    echo \"\$out\"
    ! echo \"\$out\" | grep -Ev '^NOOP ' | grep -E '^[A-Z]+ +(cell|volume) '"
check "dry-run of the converged stack exits 0" mgr apply --all --dry-run
check "the web cell answers on 127.0.0.1:$port (from the host)" \
    sh -c "/bin/busybox wget -q -O - http://127.0.0.1:$port/ | grep -q 'Hello from the web cell'"
check "the client cell reaches the web cell" \
    sh -c "'$CELLS' ctl exec client /bin/busybox wget -q -O - http://127.0.0.1:$port/ | grep -q 'Hello from the web cell'"

# The server's process as the host sees it.
# (The command line itself: its supervisor's names it too.)
httpd_pid=$(pgrep -f "^/bin/busybox httpd -f -p 127.0.0.1:$port" | head -n 1 || true)
check "the host sees the web cell's httpd" test -n "$httpd_pid"
# At high the cell has a user namespace: its root is an id of its range on the host.
check "the web cell's root is not host root (httpd's host uid: $(ps -o uid= -p "${httpd_pid:-1}" | tr -d ' '))" \
    sh -c "test \"\$(ps -o uid= -p ${httpd_pid:-1} | tr -d ' ')\" -gt 0"
check "the client cell runs commands (precondition of the checks below)" \
    ctl exec client /bin/busybox true
check "the client cell does not see httpd in its process list" \
    sh -c "'$CELLS' ctl exec client /bin/busybox ps -o pid,args >'$work/ps.out' && ! grep 'httpd -f' '$work/ps.out'"
check "the client cell cannot signal httpd (host pid $httpd_pid)" \
    sh -c "! '$CELLS' ctl exec client /bin/busybox kill -9 ${httpd_pid:-1}"
check "httpd is still alive" kill -0 "${httpd_pid:-1}"
# 127.0.0.2:$port is free, so only the reservation can refuse the bind. A
# server that binds runs until `timeout` ends it (exit 143); a refused bind
# fails at once.
check "the client cell cannot bind the web cell's reserved port $port" \
    sh -c "'$CELLS' ctl exec client /bin/busybox timeout 2 /bin/busybox httpd -f -p 127.0.0.2:$port -h /tmp 2>&1 | grep -Eqi 'bind.*(denied|not permitted)'"
check "the web cell itself may bind its port on another address" \
    sh -c "'$CELLS' ctl exec web /bin/busybox timeout 1 /bin/busybox httpd -f -p 127.0.0.2:$port -h /tmp; test \$? = 143"

echo "--- edit the page and apply again: only the web cell's plan and service move"
echo "<h1>Edited</h1>" >>"$manifests/site/index.html"
mgr apply --all --dry-run >"$work/plan.txt" || true
cat "$work/plan.txt"
check "the plan names the edited asset's cell" grep -q '^APPLY *cell web' "$work/plan.txt"
check "the client cell is untouched" grep -q '^NOOP *cell client' "$work/plan.txt"
check "apply converges again" mgr apply --all
check "the new page is served" \
    sh -c "/bin/busybox wget -q -O - http://127.0.0.1:$port/ | grep -q Edited"
