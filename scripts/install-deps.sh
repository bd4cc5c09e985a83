#!/usr/bin/env bash
# Installs the Debian packages Cells' demo and tests use, if missing (root).
# mandoc: man page lint; busybox-static: cell roots and example services;
# bubblewrap: benchmark baseline; tmux: UI tests; iproute2: network namespaces;
# python3-venv: the kernel module's layout check; libarchive-tools: bsdtar reads our
# backup archives in the round-trip test; zsh, fish: the completion tests.
set -euo pipefail
packages="mandoc busybox-static bubblewrap tmux iproute2 python3-venv libarchive-tools zsh fish"
missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "install-deps: installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# openssh-server: the sshd that tests/remote.rs starts on 127.0.0.1 with a
# config and host keys in its own temporary directory. The install must not
# start or enable the host's ssh service: a temporary policy-rc.d refuses the
# start, and where systemd runs the units are disabled again.
if ! dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "install ok installed"; then
	echo "install-deps: installing: openssh-server (the host's ssh service is not started)"
	guard=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		guard=/usr/sbin/policy-rc.d
		trap 'rm -f "$guard"' EXIT
		printf '#!/bin/sh\nexit 101\n' >"$guard"
		chmod 755 "$guard"
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
	[ -n "$guard" ] && rm -f "$guard"
	if [ -d /run/systemd/system ]; then
		systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
	fi
fi
if ! command -v cargo >/dev/null; then
	echo "install-deps: cargo not found: install a Rust toolchain with rustup" >&2
	exit 1
fi
