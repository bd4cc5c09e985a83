#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: info
short_description: Read the cells and volumes of a Cells host
description:
  - Returns the JSON read contract of the managed host, as
    C(cellmgr cell list --json) and C(cellmgr volume list --json) print it
    (cellmgr(8), READ CONTRACT). One dict per cell and per volume, keys as the
    C(-o) field names, typed values. Changes nothing.
options:
  view:
    description: The projection of the rows.
    type: str
    choices: [compact, desired, runtime, merged]
    default: merged
  names:
    description: Only these cells (and, for volumes, only these volumes). Default all.
    type: list
    elements: str
    default: []
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
- name: What runs
  cells.cells.info:
  register: host

- name: Every declared cell is healthy
  ansible.builtin.assert:
    that: host.cells | selectattr('autostart') | rejectattr('health', 'eq', 'ok') | list | length == 0
"""

RETURN = r"""
cells:
  description: One dict per cell (cellmgr(8), Cell fields).
  returned: always
  type: list
  elements: dict
volumes:
  description: One dict per volume (cellmgr(8), Volume fields); the merged view unless O(view=desired) or O(view=runtime).
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
        view=dict(type="str", choices=["compact", "desired", "runtime", "merged"], default="merged"),
        names=dict(type="list", elements="str", default=[]),
    )
    spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    mgr = Cellmgr(module)
    view = module.params["view"]
    names = set(module.params["names"])
    volume_view = view if view in ("desired", "runtime") else "merged"
    _, cells = mgr.rows(["cell", "list", "--view", view, "--json"])
    _, volumes = mgr.rows(["volume", "list", "--view", volume_view, "--json"])
    if names:
        cells = [c for c in cells if c["name"] in names]
        volumes = [v for v in volumes if v["name"] in names]
    module.exit_json(changed=False, cells=cells, volumes=volumes)


if __name__ == "__main__":
    main()
