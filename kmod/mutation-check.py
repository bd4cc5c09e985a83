#!/usr/bin/env python3
"""Flips each rule of src/policy.rs in turn and checks that the tests fail.

Proof that `cargo test -p secmodel_cell` pins every rule of the policy
table and profile matrix: a mutant that still passes is reported and the
script exits 1. src/policy.rs is restored after each mutant.
Usage: python3 kmod/mutation-check.py (from the repository root). Takes a
few minutes: one incremental build and test run per mutant.
"""
import re
import subprocess
import sys
from pathlib import Path

POLICY = Path(__file__).parent / "src" / "policy.rs"


def mutants(src):
    """(description, mutated source) for every rule-level change."""
    # Every confined process action dropped in turn.
    block = re.search(r"PROCESS_CONFINED: \[Proc; 15\] = \[(.*?)\];", src, re.S)
    for item in re.findall(r"Proc::\w+", block.group(1)):
        body = block.group(1).replace(f"    {item},\n", "", 1)
        new = src.replace(block.group(0), f"PROCESS_CONFINED: [Proc; 14] = [{body}];")
        yield f"process: {item} not confined", new
    # Every system rule: each profile set swapped for the others.
    sets = ["EVERY_PROFILE", "MEDIUM_AND_HIGH", "HIGH_ONLY"]
    for m in re.finditer(r"rule\(\s*(Sys::\w+),(.*?)(EVERY_PROFILE|MEDIUM_AND_HIGH|HIGH_ONLY),?\s*\)", src, re.S):
        for other in sets:
            if other != m.group(3):
                new = src[: m.start(3)] + other + src[m.end(3):]
                yield f"system: {m.group(1)} {m.group(3)} -> {other}", new
    # Each listed request removed from a system rule's request list.
    for m in re.finditer(r"SysR::(?!Other)\w+", src):
        new = src[: m.start()] + "SysR::Other" + src[m.end():]
        yield f"system: {m.group(0)} dropped", new
    # Network and machdep/device rules.
    simple = [
        ("network: host-global socket request dropped", "[NetR::SocketRawsock, NetR::SocketSetpriv, NetR::SocketDrop]", "[NetR::Other, NetR::SocketSetpriv, NetR::SocketDrop]"),
        ("network: setpriv dropped", "[NetR::SocketRawsock, NetR::SocketSetpriv, NetR::SocketDrop]", "[NetR::SocketRawsock, NetR::Other, NetR::SocketDrop]"),
        ("network: drop dropped", "[NetR::SocketRawsock, NetR::SocketSetpriv, NetR::SocketDrop]", "[NetR::SocketRawsock, NetR::SocketSetpriv, NetR::Other]"),
        ("network: PF_ROUTE allowed", "[af::ROUTE, af::OROUTE]", "[af::OROUTE, af::OROUTE]"),
        ("network: PF_OROUTE allowed", "[af::ROUTE, af::OROUTE]", "[af::ROUTE, af::ROUTE]"),
        ("network: BIND_PRIVPORT unchecked", "[NetR::BindPort, NetR::BindPrivport]", "[NetR::BindPort, NetR::Other]"),
        ("network: owner denied", "Some(o) if o != caller.cell && BIND_CHECKED", "Some(_) if BIND_CHECKED"),
        ("network: port 0 checked", ".filter(|&p| p != 0)", ""),
        ("network: other actions deferred", "    if action != NetA::Socket {\n        return Verdict::Deny;", "    if action != NetA::Socket {\n        return Verdict::Defer;"),
        ("network: SO_REUSEPORT allowed", "if args.reuseport && profile.is_some()", "if false"),
        ("network: SO_REUSEPORT denied on own port", "&& owner != Some(caller.cell)", ""),
        ("device: TTY_STI allowed", "(Standing::Active(_), DeviceAction::TtySti) => Verdict::Deny", "(Standing::Active(_), DeviceAction::TtySti) => machdep(caller)"),
        ("fork: limit off by one", "n >= u64::from(limit)", "n > u64::from(limit)"),
        ("fork: limit ignored", "(Some(limit), Some(n)) if celled &&", "(Some(limit), Some(n)) if false &&"),
        ("rlimit: ceiling off by one", "if celled && new > ceiling", "if celled && new >= ceiling"),
        ("rlimit: ceiling ignored", "if celled && new > ceiling", "if false"),
        ("network: low treated as hardened", "Some(p) if MEDIUM_AND_HIGH.contains(p) => {}", "Some(_) => {}"),
        ("machdep/device: low denied", "Standing::Active(p) if MEDIUM_AND_HIGH.contains(p) => Verdict::Deny,\n        Standing::Active(_) => Verdict::Defer,\n    }\n}\n\n/// DEVICE", "Standing::Active(_) => Verdict::Deny,\n    }\n}\n\n/// DEVICE"),
        ("fail open in process", "    if caller.standing == Standing::Stale {\n        return Verdict::Deny;", "    if caller.standing == Standing::Stale {\n        return Verdict::Defer;"),
        ("fail open in system", "        Standing::Stale => Verdict::Deny,\n        Standing::Active(p) if table_denies", "        Standing::Stale => Verdict::Defer,\n        Standing::Active(p) if table_denies"),
        ("fail open in network", "Standing::Stale => return Verdict::Deny,", "Standing::Stale => return Verdict::Defer,"),
        ("host root not exempt", "self.cell == CELLID_HOST && self.euid == 0", "false"),
        ("cred scope defers", "(Verdict::Allow, effect)", "(Verdict::Defer, effect)"),
        ("same-cell denied", "            _ => Verdict::Defer,\n        },\n    }", "            _ => Verdict::Deny,\n        },\n    }"),
        ("cross-cell deferred", "Some(t) if t != caller.cell => Verdict::Deny,", "Some(t) if t != caller.cell => Verdict::Defer,"),
        ("host denied in system", "        Standing::Host => Verdict::Defer,\n        Standing::Stale => Verdict::Deny,\n        Standing::Active(p) if table", "        Standing::Host => Verdict::Deny,\n        Standing::Stale => Verdict::Deny,\n        Standing::Active(p) if table"),
        ("unconfined process actions denied", "    if !PROCESS_CONFINED.contains(&action) {\n        return Verdict::Defer;", "    if !PROCESS_CONFINED.contains(&action) {\n        return Verdict::Deny;"),
        ("NULL target denied", "        None => Verdict::Defer,\n        Some(t)", "        None => Verdict::Deny,\n        Some(t)"),
    ]
    for desc, old, new in simple:
        assert old in src, desc
        yield desc, src.replace(old, new, 1)


def main():
    original = POLICY.read_text()
    survivors = []
    total = 0
    try:
        for desc, src in mutants(original):
            total += 1
            POLICY.write_text(src)
            r = subprocess.run(
                ["cargo", "test", "-q", "-p", "secmodel_cell", "--test", "policy", "--",
                 "--skip", "lookups_do_not_depend"],
                capture_output=True,
            )
            status = "killed" if r.returncode != 0 else "SURVIVED"
            print(f"{status:9} {desc}", flush=True)
            if r.returncode == 0:
                survivors.append(desc)
    finally:
        POLICY.write_text(original)
    print(f"{total - len(survivors)}/{total} mutants killed")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
