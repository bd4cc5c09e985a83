#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: apply
short_description: Converge a Cells host to its manifests
description:
  - Runs C(cellmgr apply --json) on the managed host, which converges the
    volumes first, then the cells in dependency order, each started after its
    dependencies are healthy.
  - In check mode runs C(cellmgr apply --dry-run --json) instead, which
    changes nothing; its exit status 2 (something would change) is reported
    as C(changed).
  - With C(--diff) the plan's lines are the diff.
  - Fails, with the binary's error text and the results, when a cell does not
    converge.
options:
  names:
    description: Cells to converge, with what they depend on. Default all.
    type: list
    elements: str
    default: []
  all:
    description: Every cell (the default when O(names) is empty).
    type: bool
    default: false
  reapply:
    description: Run C(.apply) plans even when unchanged.
    type: bool
    default: false
  restart_changed:
    description: Also restart running cells whose dependencies are restarted.
    type: bool
    default: false
  expect_digest:
    description:
      - Act only if the plan is still this one (the digest a check-mode run
        returned); otherwise fail and change nothing.
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
- name: Converge
  cells.cells.apply:
    all: true
  register: converged

- name: Only web and what it needs
  cells.cells.apply:
    names: [web]
"""

RETURN = r"""
plan:
  description: The plan, one dict per step (action, subject, name, reason, change).
  returned: always
  type: list
  elements: dict
digest:
  description: The plan's digest (C(sha256:...)), for O(expect_digest).
  returned: always
  type: str
results:
  description: After a real run, one dict per volume and cell (result, changed, detail).
  returned: when not in check mode
  type: list
  elements: dict
summary:
  description: After a real run, the totals (total, changed, failed, skipped, ok).
  returned: when not in check mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cells.cells.plugins.module_utils.cells import (
    COMMON_ARGS,
    Cellmgr,
    parse_lines,
)


def main():
    spec = dict(
        names=dict(type="list", elements="str", default=[]),
        all=dict(type="bool", default=False),
        reapply=dict(type="bool", default=False),
        restart_changed=dict(type="bool", default=False),
        expect_digest=dict(type="str"),
    )
    spec.update(COMMON_ARGS)
    module = AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        mutually_exclusive=[("names", "all")],
    )
    mgr = Cellmgr(module)
    p = module.params
    args = ["apply", "--json"] + list(p["names"])
    if p["all"]:
        args.append("--all")
    for flag in ("reapply", "restart_changed"):
        if p[flag]:
            args.append("--" + flag.replace("_", "-"))
    if p["expect_digest"]:
        args += ["--expect-digest", p["expect_digest"]]
    if module.check_mode:
        args.append("--dry-run")
    rc, out, err = mgr.run(args, ok=(0, 1, 2))
    rows = parse_lines(out)
    plan = [r for r in rows if r["row"] == "plan"]
    digest = next((r["digest"] for r in rows if r["row"] == "digest"), "")
    result = dict(plan=plan, digest=digest)
    if module._diff:
        lines = ["%-8s %s %s: %s\n" % (r["action"], r["subject"], r["name"], r["reason"]) for r in plan]
        result["diff"] = dict(prepared="".join(lines))
    if module.check_mode:
        result["changed"] = rc == 2
    else:
        result["results"] = [r for r in rows if r["row"] == "result"]
        summary = next((r for r in rows if r["row"] == "summary"), None)
        result["summary"] = summary
        result["changed"] = bool(summary and summary["changed"])
    if rc == 1:
        mgr.fail(mgr.argv + args, rc, out, err, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
