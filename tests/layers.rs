//! The import directions of ARCHITECTURE §2, checked on the source: every
//! `crate::…` path in a module must point at its own floor or a lower one.
//!
//! Floors, bottom up: ground (conventions, configuration, the file layer, the
//! read-model rows), runtime (`kernel`, `supervise`, `ipc`), `engine`, the
//! personalities, and the dispatcher. Runtime modules may use each other;
//! personalities may not use each other.

mod support;

use std::path::Path;
use support::rust_files;

const GROUND: &[&str] = &[
    "names", "exit", "config", "rcconf", "output", "fs", "model", "calendar", "cmdtable",
    "journal", "testutil",
];
const RUNTIME: &[&str] = &["kernel", "supervise", "ipc"];
const ENGINE: &[&str] = &["engine"];
const PERSONALITIES: &[&str] = &["ctl", "mgr", "ui"];
const DISPATCH: &[&str] = &["cli", "fuzz"];

fn floor(module: &str) -> Option<usize> {
    [GROUND, RUNTIME, ENGINE, PERSONALITIES, DISPATCH]
        .iter()
        .position(|f| f.contains(&module))
}

/// Whether `from` may import `to`.
fn allowed(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    let (Some(a), Some(b)) = (floor(from), floor(to)) else {
        return false;
    };
    b < a || (b == a && (a == 0 || a == 1))
}

/// The top-level modules a source text names through `crate::`, including
/// grouped imports (`use crate::{a, b::c}`).
fn crate_refs(text: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        // `cells::crate::` does not occur; skip `$crate::` of macros.
        let prefixed = rest[..at].ends_with('$');
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    refs.push(name);
                }
            }
        } else if !prefixed {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                refs.push(name);
            }
        }
        rest = after;
    }
    refs
}

#[test]
fn every_import_points_down_or_sideways() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        assert!(
            floor(&top).is_some(),
            "src/{}: module '{top}' is on no floor; add it to tests/layers.rs",
            rel.display()
        );
        let text = std::fs::read_to_string(file).unwrap();
        for to in crate_refs(&text) {
            if floor(&to).is_some() && !allowed(&top, &to) {
                violations.push(format!("src/{}: {top} imports {to}", rel.display()));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "imports against the floors:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    let refs = crate_refs("use crate::{engine::plan, names};\nlet x = crate::mgr::main;");
    assert_eq!(refs, ["engine", "names", "mgr"]);
    assert!(!allowed("kernel", "engine"));
    assert!(!allowed("supervise", "cli"));
    assert!(!allowed("mgr", "cli"));
    assert!(!allowed("ctl", "mgr"));
    assert!(allowed("kernel", "supervise"));
    assert!(allowed("engine", "kernel"));
    assert!(allowed("cli", "mgr"));
}
