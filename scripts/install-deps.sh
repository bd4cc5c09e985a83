#!/usr/bin/env bash
# Installs the Debian packages Cells' demo and tests use, if missing (root).
# mandoc: man page lint; busybox-static: cell roots and example services;
# bubblewrap: benchmark baseline; tmux: UI tests; iproute2: network namespaces;
# python3-venv: the kernel module's layout check; libarchive-tools: bsdtar reads our
# backup archives in the round-trip test.
set -euo pipefail
packages="mandoc busybox-static bubblewrap tmux iproute2 python3-venv libarchive-tools"
missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "install-deps: installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
if ! command -v cargo >/dev/null; then
	echo "install-deps: cargo not found: install a Rust toolchain with rustup" >&2
	exit 1
fi
