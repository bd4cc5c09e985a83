#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: cell
short_description: Declare or remove a cell on a Cells host
description:
  - Makes the cell's manifest (C(<name>.cell), cells(5)) hold the given keys,
    through C(cellmgr cell set --create) on the managed host; keys not given
    keep their values. A declaration that changes no value (after the
    binary's own normalisation) is no change and leaves the file alone.
  - Declaring changes desired state only; M(cells.cells.apply) converges the
    runtime.
  - Every manifest key is an option, named as the key in lower case without
    C(CELL_). An empty string or empty list removes the key.
options:
  name:
    description: The cell's name (1 to 63 characters from A-Z a-z 0-9 . _ -).
    type: str
    required: true
  state:
    description:
      - C(present) declares the cell. C(absent) stops it and removes its
        runtime (overlay included) and its manifest
        (C(cellmgr cell remove --scope both --yes)).
    type: str
    choices: [present, absent]
    default: present
  config:
    description: The cellmgr.conf to use (C(CELLMGR_CONF)); default the binary's.
    type: path
  binary:
    description: The C(cellmgr) command on the managed host, or the path of C(cells).
    type: str
    default: cellmgr
  autostart:
    description: C(CELL_AUTOSTART). Whether apply and boot run the cell.
    type: bool
  create_profile:
    description: C(CELL_CREATE_PROFILE).
    type: str
    choices: [low, medium, high]
    aliases: [profile]
  create_reserved_ports:
    description: C(CELL_CREATE_RESERVED_PORTS). Ports only this cell may bind.
    type: list
    elements: int
    aliases: [reserved_ports]
  create_rlimit_nofile:
    description: C(CELL_CREATE_RLIMIT_NOFILE). A count or C(unlimited).
    type: str
    aliases: [rlimit_nofile]
  create_rlimit_as:
    description: C(CELL_CREATE_RLIMIT_AS). Bytes or C(unlimited).
    type: str
    aliases: [rlimit_as]
  create_rlimit_core:
    description: C(CELL_CREATE_RLIMIT_CORE). Bytes or C(unlimited).
    type: str
    aliases: [rlimit_core]
  create_maxproc:
    description: C(CELL_CREATE_MAXPROC). The most processes at once, or C(unlimited); empty takes C(CELL_DEFAULT_MAXPROC).
    type: str
    aliases: [maxproc]
  create_memory:
    description: C(CELL_CREATE_MEMORY). A size such as C(512M), or C(unlimited); empty takes C(CELL_DEFAULT_MEMORY).
    type: str
    aliases: [memory]
  create_cpu:
    description: C(CELL_CREATE_CPU). Percent of one CPU, or C(unlimited); empty takes C(CELL_DEFAULT_CPU).
    type: str
    aliases: [cpu]
  create_disk:
    description: C(CELL_CREATE_DISK). The size of the writable layer such as C(10G), or C(unlimited); empty takes C(CELL_DEFAULT_DISK).
    type: str
    aliases: [disk]
  supervise_cmd:
    description: C(CELL_SUPERVISE_CMD). The service, supervised in the cell.
    type: str
  supervise_facility:
    description: C(CELL_SUPERVISE_FACILITY). The syslog facility of its output.
    type: str
  supervise_stdout_level:
    description: C(CELL_SUPERVISE_STDOUT_LEVEL).
    type: str
  supervise_stderr_level:
    description: C(CELL_SUPERVISE_STDERR_LEVEL).
    type: str
  supervise_tag:
    description: C(CELL_SUPERVISE_TAG).
    type: str
  supervise_env:
    description:
      - C(CELL_SUPERVISE_ENV). Variables of the service's environment; values
        without spaces (those with spaces, and secrets, go in
        I(supervise_env_file)).
    type: dict
  supervise_env_file:
    description:
      - C(CELL_SUPERVISE_ENV_FILE). A host file of C(KEY=value) lines, owned
        by root and readable by root only.
    type: path
  supervise_user:
    description: C(CELL_SUPERVISE_USER). A user name or uid, resolved in the cell.
    type: str
  supervise_group:
    description: C(CELL_SUPERVISE_GROUP). A group name or gid, resolved in the cell.
    type: str
  supervise_restart:
    description: C(CELL_SUPERVISE_RESTART). When an ended service is started again.
    type: str
    choices: [always, on-failure, never]
  depends_on:
    description: C(CELL_DEPENDS_ON). Cells started (and healthy) before this one.
    type: list
    elements: str
  healthcheck_cmd:
    description: C(CELL_HEALTHCHECK_CMD). Run in the cell; exit 0 is healthy.
    type: str
    aliases: [healthcheck]
  healthcheck_interval:
    description: C(CELL_HEALTHCHECK_INTERVAL). Time between checks, such as C(30s).
    type: str
  healthcheck_timeout:
    description: C(CELL_HEALTHCHECK_TIMEOUT). The longest a check may run, such as C(10s).
    type: str
  healthcheck_retries:
    description: C(CELL_HEALTHCHECK_RETRIES). Failures in a row that make the service failing.
    type: int
  healthcheck_start_period:
    description: C(CELL_HEALTHCHECK_START_PERIOD). Failures this soon after a start do not count.
    type: str
  volume_mounts:
    description: C(CELL_VOLUME_MOUNTS). C(volume:/target[:ro|rw]) or host paths.
    type: list
    elements: str
author:
  - Cells developers
"""

EXAMPLES = r"""
- name: A web cell serving a volume on port 8080
  cells.cells.cell:
    name: web
    autostart: true
    create_profile: medium
    create_reserved_ports: [8080]
    volume_mounts: ["site:/srv/www:ro"]
    supervise_cmd: /bin/busybox httpd -f -p 8080 -h /srv/www
    healthcheck_cmd: /bin/busybox wget -q -O /dev/null http://127.0.0.1:8080/

- name: Gone, runtime and all
  cells.cells.cell:
    name: old
    state: absent
"""

RETURN = r"""
cell:
  description: The cell's row of the read contract (merged view), after the change.
  returned: when state is present
  type: dict
changes:
  description: Each manifest key that changed (or would), with its old and new value.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cells.cells.plugins.module_utils.cells import (
    COMMON_ARGS,
    Cellmgr,
    manifest_value,
)

KEY_OPTIONS = dict(
    autostart=dict(type="bool"),
    create_profile=dict(type="str", choices=["low", "medium", "high"], aliases=["profile"]),
    create_reserved_ports=dict(type="list", elements="int", aliases=["reserved_ports"]),
    create_rlimit_nofile=dict(type="str", aliases=["rlimit_nofile"]),
    create_rlimit_as=dict(type="str", aliases=["rlimit_as"]),
    create_rlimit_core=dict(type="str", aliases=["rlimit_core"]),
    create_maxproc=dict(type="str", aliases=["maxproc"]),
    create_memory=dict(type="str", aliases=["memory"]),
    create_cpu=dict(type="str", aliases=["cpu"]),
    create_disk=dict(type="str", aliases=["disk"]),
    supervise_cmd=dict(type="str"),
    supervise_facility=dict(type="str"),
    supervise_stdout_level=dict(type="str"),
    supervise_stderr_level=dict(type="str"),
    supervise_tag=dict(type="str"),
    supervise_env=dict(type="dict"),
    supervise_env_file=dict(type="path"),
    supervise_user=dict(type="str"),
    supervise_group=dict(type="str"),
    supervise_restart=dict(type="str", choices=["always", "on-failure", "never"]),
    depends_on=dict(type="list", elements="str"),
    healthcheck_cmd=dict(type="str", aliases=["healthcheck"]),
    healthcheck_interval=dict(type="str"),
    healthcheck_timeout=dict(type="str"),
    healthcheck_retries=dict(type="int"),
    healthcheck_start_period=dict(type="str"),
    volume_mounts=dict(type="list", elements="str"),
)


def key_args(params):
    """--set KEY=VALUE / --unset KEY for every key option given."""
    args = []
    for option in KEY_OPTIONS:
        value = params.get(option)
        if value is None:
            continue
        key = "CELL_" + option.upper()
        text = manifest_value(value)
        if text == "":
            args += ["--unset", key]
        else:
            args += ["--set", "%s=%s" % (key, text)]
    return args


def present(module, mgr, name):
    sets = key_args(module.params)
    if not sets:
        # Nothing to set: only make sure the cell is declared.
        if mgr.find("cell", name) is not None:
            return False, []
        if not module.check_mode:
            mgr.run(["cell", "create", name])
        return True, [dict(key="CELL_NAME", old="", new=name)]
    base = ["cell", "set", name, "--create", "--json"] + sets
    _, changes = mgr.rows(base + ["--dry-run"])
    if changes and not module.check_mode:
        mgr.run(base)
    return bool(changes), changes


def absent(module, mgr, name):
    if mgr.find("cell", name, view="merged") is None:
        return False
    if not module.check_mode:
        mgr.run(["cell", "remove", name, "--scope", "both", "--yes"])
    return True


def main():
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    spec.update(COMMON_ARGS)
    spec.update(KEY_OPTIONS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    mgr = Cellmgr(module)
    name = module.params["name"]
    if module.params["state"] == "absent":
        changed = absent(module, mgr, name)
        module.exit_json(changed=changed, changes=[])
    changed, changes = present(module, mgr, name)
    result = dict(changed=changed, changes=changes)
    if module._diff:
        result["diff"] = dict(
            before="".join("%s=%s\n" % (c["key"], c["old"]) for c in changes),
            after="".join("%s=%s\n" % (c["key"], c["new"]) for c in changes),
            before_header="%s.cell" % name,
            after_header="%s.cell" % name,
        )
    row = mgr.find("cell", name, view="merged")
    if row is not None:
        result["cell"] = row
    module.exit_json(**result)


if __name__ == "__main__":
    main()
