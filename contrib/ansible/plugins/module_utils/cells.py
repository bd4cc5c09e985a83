# -*- coding: utf-8 -*-
# Shared by the cells.cells modules: run the cells binary on the managed host
# and read its JSON Lines. The engine is the binary's; nothing here decides
# what a manifest, a plan or a backup means.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

# The options every module takes (documented once in each module).
COMMON_ARGS = dict(
    config=dict(type="path"),
    binary=dict(type="str", default="cellmgr"),
)


class Cellmgr(object):
    """Runs `cellmgr ARGS` (or `cells mgr ARGS`) with CELLMGR_CONF set."""

    def __init__(self, module):
        self.module = module
        binary = module.params["binary"]
        if "/" not in binary:
            binary = module.get_bin_path(binary, required=True)
        self.argv = [binary]
        if os.path.basename(binary) == "cells":
            self.argv.append("mgr")
        self.env = {}
        if module.params.get("config"):
            self.env["CELLMGR_CONF"] = module.params["config"]

    def run(self, args, ok=(0,)):
        """Runs a command; on an exit status not in `ok`, fails the task with
        the binary's own error text."""
        cmd = self.argv + list(args)
        rc, out, err = self.module.run_command(cmd, environ_update=self.env)
        if rc not in ok:
            self.fail(cmd, rc, out, err)
        return rc, out, err

    def fail(self, cmd, rc, out, err, **extra):
        text = (err or out).strip() or "%s exited %d" % (cmd[0], rc)
        self.module.fail_json(
            msg=text, rc=rc, cmd=cmd, stdout=out, stderr=err, **extra
        )

    def rows(self, args, ok=(0,)):
        """Runs a --json command and returns its objects (one per line)."""
        rc, out, err = self.run(args, ok=ok)
        return rc, parse_lines(out)

    def find(self, noun, name, view="desired"):
        """The `cell` or `volume` row called `name`, or None."""
        _, rows = self.rows([noun, "list", "--view", view, "--json"])
        for row in rows:
            if row.get("name") == name:
                return row
        return None


def parse_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def manifest_value(value):
    """A module option as a manifest value: YES/NO for booleans, lists
    comma-separated, dicts as KEY=value words, everything else as text."""
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, dict):
        return " ".join("%s=%s" % (k, v) for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
