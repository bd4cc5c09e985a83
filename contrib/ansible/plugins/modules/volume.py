#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: volume
short_description: Declare or remove a volume on a Cells host
description:
  - Makes the volume's manifest (C(<name>.volume), cells(5)) exist with the
    given keys, through C(cellmgr volume create) and C(cellmgr volume set) on
    the managed host. M(cells.cells.apply) creates its directory.
  - Every manifest key is an option, named as the key in lower case without
    C(VOLUME_).
options:
  name:
    description: The volume's name.
    type: str
    required: true
  state:
    description:
      - C(present) declares the volume. C(absent) removes its manifest; its
        directory and data stay unless O(purge) is set.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description: With O(state=absent), also delete the directory and all its data.
    type: bool
    default: false
  mode:
    description:
      - C(VOLUME_MODE). Permission bits of the directory, four octal digits
        such as C("0750"); an empty string removes the key.
    type: str
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
- name: The site's content
  cells.cells.volume:
    name: site
    mode: "0755"
"""

RETURN = r"""
volume:
  description: The volume's row of the read contract (merged view), after the change.
  returned: when state is present
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cells.cells.plugins.module_utils.cells import (
    COMMON_ARGS,
    Cellmgr,
)


def main():
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        purge=dict(type="bool", default=False),
        mode=dict(type="str"),
    )
    spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    mgr = Cellmgr(module)
    name, mode = module.params["name"], module.params["mode"]
    row = mgr.find("volume", name, view="merged")
    declared = row is not None and row["manifest"]
    if module.params["state"] == "absent":
        scope = "both" if module.params["purge"] else "desired"
        gone = row is None or (not declared and not module.params["purge"])
        if not gone and not module.check_mode:
            mgr.run(["volume", "remove", name, "--scope", scope, "--yes"])
        module.exit_json(changed=not gone)
    if not declared:
        cmd = ["volume", "create", name] + (["-m", mode] if mode else [])
        changed = True
    elif mode is not None and mode != row["mode"]:
        cmd = ["volume", "set", name] + (["-m", mode] if mode else ["--clear-mode"])
        changed = True
    else:
        cmd, changed = None, False
    result = dict(changed=changed)
    if module._diff and changed:
        result["diff"] = dict(
            before="" if not declared else "VOLUME_MODE=%s\n" % row["mode"],
            after="VOLUME_MODE=%s\n" % (mode or ""),
        )
    if cmd and not module.check_mode:
        mgr.run(cmd)
    row = mgr.find("volume", name, view="merged")
    if row is not None:
        result["volume"] = row
    module.exit_json(**result)


if __name__ == "__main__":
    main()
