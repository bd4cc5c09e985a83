//! Host code touches a tree a cell controls only through the safe file layer
//! (`crate::fs::tree`, `crate::fs::mount`): ARCHITECTURE §2, checked on the
//! source. How the check decides:
//!
//! 1. A cell-controlled path is an expression naming a place such trees come
//!    from (`TREE_SOURCES`): a cell's root or writable layer (`.root`, a
//!    `root`, `.overlay`, `writable_layer`, a `layer` or `upper`), a volume
//!    (`volume_dir`, `ensure_volume`), what a backup reads or a restore builds
//!    (`source_dir`, `staging`, a swap's `.target`/`.prev`), or a variable a
//!    `let` in the same function bound to one (followed transitively).
//! 2. Every source file under `src/` is checked (not `src/fs/`, the layer
//!    itself, nor test code). A line that makes a path-based `std::fs` call
//!    (`PATH_CALLS`) on a cell-controlled path is a finding, named by file and
//!    line, unless it (or the comment right above it) carries `// host path: <why>`: the
//!    author's statement of why that path is one only host root controls (an
//!    entry of a root-only directory, the host's own `/etc`, ...).
//!
//! It is a lint, not a proof: it follows names, not all data flow. What it
//! buys is that a new path-based call on a cell's tree cannot go in
//! unnoticed; the marker makes the author say why it is safe, and a reviewer
//! check it.

use std::path::{Path, PathBuf};

/// Expressions that name a cell-controlled tree: a leading `.` is a field or
/// method (matched as text), anything else a whole identifier.
const TREE_SOURCES: &[&str] = &[
    ".root",
    ".overlay",
    ".disk_mount",
    "writable_layer",
    "layer",
    "upper",
    "root",
    "volume_dir",
    "ensure_volume",
    "source_dir",
    "staging",
    ".target",
    ".prev",
];

/// Path-based calls of `std::fs` (and friends) that resolve their path
/// argument from `/`, following links.
const PATH_CALLS: &[&str] = &[
    "fs::read(",
    "fs::read_to_string(",
    "fs::write(",
    "fs::copy(",
    "fs::create_dir(",
    "fs::create_dir_all(",
    "fs::remove_file(",
    "fs::remove_dir(",
    "fs::remove_dir_all(",
    "fs::rename(",
    "fs::set_permissions(",
    "fs::metadata(",
    "fs::symlink_metadata(",
    "fs::read_dir(",
    "fs::read_link(",
    "fs::canonicalize(",
    "fs::hard_link(",
    "File::open(",
    "File::create(",
    "OpenOptions::new(",
    "DirBuilder::new(",
    "unix::fs::symlink(",
    "unix::fs::chown(",
    "unix::fs::lchown(",
    ".exists()",
    ".is_dir()",
    ".is_file()",
];

const MARKER: &str = "// host path:";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The part of a source file that is not test code.
fn non_test(text: &str) -> &str {
    match text.find("\n#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `code` names `source` (see `TREE_SOURCES`).
fn mentions(code: &str, source: &str) -> bool {
    if source.starts_with('.') {
        return code
            .match_indices(source)
            .any(|(at, _)| !code[at + source.len()..].starts_with(is_ident));
    }
    code.match_indices(source).any(|(at, _)| {
        !code[..at].ends_with(is_ident)
            && !code[..at].ends_with('.')
            && !code[at + source.len()..].starts_with(is_ident)
    })
}

/// The variable a `let` line binds (`let x =`, `let mut x =`, `let (x, y) =`).
fn bound(code: &str) -> Vec<String> {
    let Some(rest) = code.trim_start().strip_prefix("let ") else {
        return Vec::new();
    };
    let Some((pattern, _)) = rest.split_once('=') else {
        return Vec::new();
    };
    pattern
        .split(|c: char| !is_ident(c))
        .filter(|w| !w.is_empty() && *w != "mut" && *w != "_" && !w.starts_with(char::is_uppercase))
        .map(str::to_string)
        .collect()
}

/// A line without its comment and with string literals emptied.
fn code_only(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
            }
            '"' => {
                in_str = !in_str;
                out.push(c);
            }
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            _ if in_str => {}
            _ => out.push(c),
        }
    }
    out
}

fn starts_fn(code: &str) -> bool {
    let t = code.trim_start();
    let t = t
        .strip_prefix("pub ")
        .or_else(|| t.strip_prefix("pub(crate) "))
        .unwrap_or(t);
    t.starts_with("fn ") || t.starts_with("async fn ")
}

/// Findings in one file's text: `line: code` for each unmarked call on a
/// cell-controlled path.
fn findings(text: &str) -> Vec<String> {
    let text = non_test(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut tainted: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = code_only(line);
        if starts_fn(&code) {
            tainted.clear();
        }
        let cell_path = TREE_SOURCES.iter().any(|s| mentions(&code, s))
            || tainted.iter().any(|t| mentions(&code, t));
        if !cell_path {
            continue;
        }
        tainted.extend(bound(&code));
        if !PATH_CALLS.iter().any(|c| code.contains(c)) {
            continue;
        }
        // The marker on the line, or in the comment block right above it.
        let mut above = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with("//"));
        let marked = line.contains(MARKER) || above.any(|l| l.trim_start().starts_with(MARKER));
        if !marked {
            out.push(format!("{}: {}", i + 1, line.trim()));
        }
    }
    out
}

#[test]
fn no_path_based_std_fs_next_to_a_cells_tree() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut all = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel.starts_with("fs") || rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for f in findings(&text) {
            all.push(format!("src/{}:{f}", rel.display()));
        }
    }
    assert!(
        all.is_empty(),
        "path-based std::fs in code that handles a cell's tree; use crate::fs::tree, or mark \
         a host-only path with `{MARKER} <why>`:\n{}",
        all.join("\n")
    );
}

#[test]
fn the_checker_sees_an_unmarked_call_and_accepts_a_marked_one() {
    let bad = "fn f(p: &CellPaths) {\n    std::fs::write(p.root.join(\"etc/x\"), b\"\")?;\n}\n";
    assert_eq!(
        findings(bad),
        ["2: std::fs::write(p.root.join(\"etc/x\"), b\"\")?;"]
    );
    let marked =
        "fn f(p: &CellPaths) {\n    // host path: the runtime directory is root's (0700)\n    \
                  std::fs::remove_dir(&p.root)?;\n}\n";
    assert!(findings(marked).is_empty());
    // Followed through a `let`, and only within its function.
    let via = "fn f(cfg: &Config) {\n    let dir = volume_dir(cfg, \"v\");\n    let sub = dir.join(\"x\");\n    \
               std::fs::create_dir_all(&sub)?;\n}\nfn g() {\n    std::fs::create_dir_all(&sub)?;\n}\n";
    assert_eq!(findings(via), ["4: std::fs::create_dir_all(&sub)?;"]);
    // Paths that never came from a cell's tree are not this check's business.
    assert!(
        findings("fn g(p: &CellPaths) { std::fs::write(p.state.join(\"x\"), b\"\"); }").is_empty()
    );
    assert!(findings("fn g() { let rooted = 1; std::fs::write(\"/etc/x\", b\"\"); }").is_empty());
    // Test code is not checked.
    let test_only = "fn h() {}\n#[cfg(test)]\nmod tests { fn t(p: &X) { std::fs::write(p.root.join(\"a\"), b\"\"); } }\n";
    assert!(findings(test_only).is_empty());
}
