#!/usr/bin/env bash
# ansible-lint over the collection (contrib/ansible) and the example fleet
# (examples/fleet), with the collection installed into a temporary directory
# so the example's cells.cells.* names resolve.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(./scripts/ansible-venv.sh)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export PATH="$venv/bin:$PATH" ANSIBLE_HOME="$tmp/home" \
	ANSIBLE_COLLECTIONS_PATH="$tmp/collections" NO_COLOR=1 PYTHONWARNINGS=ignore
ansible-galaxy collection install -p "$tmp/collections" contrib/ansible >/dev/null
for dir in contrib/ansible examples/fleet; do
	if ! out=$(cd "$dir" && ansible-lint --offline -q --format=pep8 . 2>&1); then
		echo "$out" >&2
		echo "lint-ansible: $dir is not clean" >&2
		exit 1
	fi
done
echo "lint-ansible: contrib/ansible and examples/fleet are clean"
