#!/bin/sh
# Makes blue or green the live version by editing desired state and applying:
# the new colour starts (and passes its health check) before the old one stops.
#
#   switch.sh blue|green      (CELLMGR_CONF names the configuration; CELLS the binary)
set -eu
case ${1:-} in
blue) new=blue old=green ;;
green) new=green old=blue ;;
*)
	echo "usage: switch.sh blue|green" >&2
	exit 1
	;;
esac
cells=${CELLS:-cells}
dir=$(sed -n 's/^CELLMGR_MANIFEST_DIR=//p' "${CELLMGR_CONF:-/etc/cellmgr.conf}")
dir=${dir:-/etc/cellmgr}
sed -i 's/^CELL_AUTOSTART=.*/CELL_AUTOSTART=YES/' "$dir/$new.cell"
"$cells" mgr apply "$new"
sed -i 's/^CELL_AUTOSTART=.*/CELL_AUTOSTART=NO/' "$dir/$old.cell"
"$cells" mgr apply "$old"
