#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup
short_description: Back up, verify, restore and prune Cells volumes and cells
description:
  - Runs C(cellmgr volume backup ...) or C(cellmgr cell backup ...) on the
    managed host (cellmgr(8), BACKUPS). Archives stay on that host, in its
    backup directory.
  - O(action=create) always makes a new archive (changed). O(action=verify)
    changes nothing and fails when an archive does not verify.
    O(action=restore) replaces the live data with an archive.
    O(action=prune) deletes archives beyond the newest O(keep) (never the
    newest one that verifies) and is changed only when it deleted one.
  - In check mode nothing is run; create and restore report changed, prune
    reports whether more than O(keep) archives exist.
options:
  name:
    description: The volume or cell.
    type: str
    required: true
  kind:
    description: What O(name) is.
    type: str
    choices: [volume, cell]
    default: volume
  action:
    description: What to do.
    type: str
    choices: [create, verify, restore, prune]
    default: create
  quiesce:
    description: With O(action=create), freeze the cells writing to it during the copy.
    type: bool
    default: false
  archive:
    description:
      - With O(action=verify) or O(action=restore), this archive (file name or
        path in the backup directory) instead of the newest (restore) or all
        (verify).
    type: str
  stop:
    description: With O(action=restore), stop the cells using the data instead of refusing.
    type: bool
    default: false
  keep:
    description: With O(action=prune), archives to keep (default the host's CELL_BACKUP_KEEP).
    type: int
  config:
    description: The cellmgr.conf to use (C(CELLMGR_CONF)); default the binary's.
    type: path
  binary:
    description: The C(cellmgr) command on the managed host, or the path of C(cells).
    type: str
    default: cellmgr
author:
  - Cells developers
"""

EXAMPLES = r"""
- name: Nightly copy of the data, writers frozen for its duration
  cells.cells.backup:
    name: data
    quiesce: true

- name: Keep the newest seven
  cells.cells.backup:
    name: data
    action: prune
    keep: 7
"""

RETURN = r"""
archive:
  description: The archive created (O(action=create)).
  returned: when an archive was created
  type: str
archives:
  description: The archives afterwards, newest first, as rows of C(backup list --json).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cells.cells.plugins.module_utils.cells import (
    COMMON_ARGS,
    Cellmgr,
)


def main():
    spec = dict(
        name=dict(type="str", required=True),
        kind=dict(type="str", choices=["volume", "cell"], default="volume"),
        action=dict(
            type="str", choices=["create", "verify", "restore", "prune"], default="create"
        ),
        quiesce=dict(type="bool", default=False),
        archive=dict(type="str"),
        stop=dict(type="bool", default=False),
        keep=dict(type="int"),
    )
    spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    mgr = Cellmgr(module)
    p = module.params
    base = [p["kind"], "backup"]

    def archives():
        return mgr.rows(base + ["list", p["name"], "--json"])[1]

    pick = ["--from", p["archive"]] if p["archive"] else []
    result = dict(changed=False)
    action = p["action"]
    if action == "create":
        result["changed"] = True
        if not module.check_mode:
            args = base + ["create", p["name"], "-q"] + (["--quiesce"] if p["quiesce"] else [])
            mgr.run(args)
            newest = archives()
            result["archive"] = newest[0]["archive"] if newest else None
    elif action == "verify":
        mgr.run(base + ["verify", p["name"], "-q"] + pick)
    elif action == "restore":
        result["changed"] = True
        if not module.check_mode:
            which = pick or ["--latest"]
            mgr.run(base + ["restore", p["name"], "--yes", "-q"] + which + (["--stop"] if p["stop"] else []))
    else:
        before = archives()
        if module.check_mode:
            keep = p["keep"]
            result["changed"] = keep is not None and 0 < keep < len(before)
        else:
            keep = ["--keep", str(p["keep"])] if p["keep"] is not None else []
            _, out, _ = mgr.run(base + ["delete", p["name"], "--prune", "--yes"] + keep)
            result["changed"] = any(line.startswith("deleted ") for line in out.splitlines())
    result["archives"] = archives()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
