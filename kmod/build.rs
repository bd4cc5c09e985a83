//! Turns the kernel ABI table of the target release (kmod/kabi/*.tab) into
//! Rust: one constant per row, `KauthAction` of the release's width, and
//! for every kauth enum a `match` from the kernel's number to the module's
//! own stable enum (src/kauth.rs) and back. No kernel number is written by
//! hand in the crate: they all come from here.
//!
//! The table is `CELL_KABI_TABLE` (a path; `make kmod` sets it to the table
//! generated from a NetBSD host's own headers), else kabi/rump-2016.tab
//! with the feature `rump2016`, else kabi/netbsd-10.tab.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[path = "kabi/table.rs"]
mod table;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=CELL_KABI_TABLE");
    println!("cargo:rerun-if-changed=kabi");
    let path = match std::env::var_os("CELL_KABI_TABLE") {
        Some(p) => dir.join(p),
        None if std::env::var_os("CARGO_FEATURE_RUMP2016").is_some() => {
            dir.join("kabi/rump-2016.tab")
        }
        None => dir.join("kabi/netbsd-10.tab"),
    };
    println!("cargo:rerun-if-changed={}", path.display());
    match generate(&dir, &path) {
        Ok(code) => {
            let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("kabi.rs");
            std::fs::write(out, code).unwrap();
        }
        Err(e) => {
            eprintln!("error: kernel ABI table {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

/// Every row name the probes define: the names a table must have.
fn probe_names(dir: &Path) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for probe in ["probe.c", "probe_module.c", "probe_kauth.c"] {
        let text = std::fs::read_to_string(dir.join("kabi").join(probe))
            .map_err(|e| format!("reading kabi/{probe}: {e}"))?;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("V(") {
                names.push(rest.split(',').next().unwrap_or("").to_string());
            }
        }
    }
    Ok(names)
}

fn generate(dir: &Path, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let rows = table::parse(&text)?;
    let by_name: BTreeMap<&str, &table::Row> = rows.iter().map(|r| (r.name.as_str(), r)).collect();
    let wanted = probe_names(dir)?;
    let missing: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|n| !by_name.contains_key(n))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no row for {} (regenerate the table with kmod/kabi/gen.sh)",
            missing.join(", ")
        ));
    }
    if let Some(extra) = rows.iter().find(|r| !wanted.contains(&r.name)) {
        return Err(format!(
            "line {}: {} is not a probe value (kmod/kabi/probe*.c)",
            extra.line, extra.name
        ));
    }
    let mut code = String::new();
    let file = path.file_name().unwrap().to_string_lossy();
    writeln!(
        code,
        "/// The table this build uses.\npub const TABLE: &str = {file:?};"
    )
    .unwrap();
    // Kauth rows by enum.
    let mut enums: BTreeMap<&str, Vec<Variant>> = BTreeMap::new();
    for r in &rows {
        match (table::kauth_variant(&r.name), r.value) {
            (Some((ty, variant)), v) => enums.entry(ty).or_default().push((variant, v, r.line)),
            (None, None) => {
                return Err(format!(
                    "line {}: only kauth rows may be absent, not {}",
                    r.line, r.name
                ))
            }
            (None, Some(v)) => {
                let upper = r.name.to_ascii_uppercase();
                writeln!(code, "/// {}\npub const {upper}: i64 = {v};", r.source).unwrap();
            }
        }
    }
    let width = by_name["kauth_action_size"].value;
    let action_type = match width {
        Some(4) => "u32",
        Some(8) => "u64",
        other => return Err(format!("kauth_action_size is {other:?}, not 4 or 8")),
    };
    writeln!(
        code,
        "/// `kauth_action_t`.\npub type KauthAction = {action_type};"
    )
    .unwrap();
    for (ty, variants) in &enums {
        let mut seen: BTreeMap<i64, &str> = BTreeMap::new();
        for (variant, value, line) in variants {
            if let Some(v) = value {
                if let Some(first) = seen.insert(*v, variant) {
                    return Err(format!(
                        "line {line}: {ty}::{variant} has the value {v} of {ty}::{first}"
                    ));
                }
            }
        }
        let snake = snake_case(ty);
        writeln!(
            code,
            "/// The kernel's number to [`crate::kauth::{ty}`].\n\
             pub const fn {snake}(raw: u64) -> crate::kauth::{ty} {{\n    match raw {{"
        )
        .unwrap();
        for (variant, value, _) in variants {
            if let Some(v) = value {
                writeln!(code, "        {v} => crate::kauth::{ty}::{variant},").unwrap();
            }
        }
        writeln!(code, "        _ => crate::kauth::{ty}::Other,\n    }}\n}}").unwrap();
        writeln!(
            code,
            "/// The kernel's number of a [`crate::kauth::{ty}`] (`None`: no such number here).\n\
             pub const fn {snake}_raw(v: crate::kauth::{ty}) -> Option<u64> {{\n    match v {{"
        )
        .unwrap();
        for (variant, value, _) in variants {
            match value {
                Some(v) => writeln!(code, "        crate::kauth::{ty}::{variant} => Some({v}),"),
                None => writeln!(code, "        crate::kauth::{ty}::{variant} => None,"),
            }
            .unwrap();
        }
        writeln!(
            code,
            "        crate::kauth::{ty}::Other => None,\n    }}\n}}"
        )
        .unwrap();
    }
    Ok(code)
}

/// A kauth row as an enum variant: (variant, value, line).
type Variant = (String, Option<i64>, usize);

fn snake_case(camel: &str) -> String {
    let mut s = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}
