#!/usr/bin/env bash
# Prints the path of a virtual environment holding the Ansible that tests the
# collection in contrib/ansible (contrib/ansible/tests/requirements.txt), and
# creates it first if needed. It is cached outside the tree, keyed by the
# requirements, so CI and repeated `make test` runs install it once; a
# half-built one (no .complete marker) is built again.
set -euo pipefail
cd "$(dirname "$0")/.."
req=contrib/ansible/tests/requirements.txt
key=$(sha256sum "$req" | cut -c1-16)
venv="${CELLS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cells}/ansible-$key"
if [ ! -e "$venv/.complete" ]; then
	echo "ansible-venv: creating $venv (ansible-core and ansible-lint from PyPI)" >&2
	rm -rf "$venv"
	mkdir -p "$(dirname "$venv")"
	/usr/bin/python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
	touch "$venv/.complete"
fi
echo "$venv"
