//! Errors users see: a sentence that names the file (and line) and what would
//! be right; never a Rust `Debug` dump, never a flood, never raw control bytes.

mod support;

use support::world::World;
use support::{assert_no_debug_dump, rust_files};

/// Checks one error output: exit 1, short, no control bytes but newlines,
/// names `file`, and none of the shapes `Debug` output has.
fn assert_clean_error(out: &std::process::Output, file: &str, what: &str) {
    assert_eq!(out.status.code(), Some(1), "{what}: should fail");
    let err = &out.stderr;
    let text = String::from_utf8_lossy(err);
    assert!(err.len() < 2048, "{what}: {} bytes of stderr", err.len());
    assert!(
        !err.iter().any(|&b| b < 0x20 && b != b'\n'),
        "{what}: raw control bytes in {text:?}"
    );
    assert!(text.contains(file), "{what}: does not name {file}: {text}");
    assert_no_debug_dump(&text, what);
}

#[test]
fn long_and_binary_values_are_cut_and_escaped() {
    let w = World::new("echo");
    let huge = "x".repeat(1 << 20);
    let cases: Vec<(&str, String)> = vec![
        ("web.cell", format!("CELL_CREATE_PROFILE=\0\x1b[2J{huge}\n")),
        ("web.cell", format!("{huge}\0\n")),
        ("web.cell", format!("CELL_{}=1\n", "X".repeat(1 << 20))),
        (
            "web.cell",
            format!("CELL_VOLUME_MOUNTS='data:/{huge}\0:rw'\n"),
        ),
        ("web.apply", format!("FROB\0{huge}\n")),
        ("web.apply", format!("DIR /a mode={huge}\n")),
    ];
    for (file, text) in cases {
        let _ = std::fs::remove_dir_all(w.manifest_dir());
        w.write_manifest("web.cell", "CELL_AUTOSTART=YES\n");
        w.write_manifest(file, &text);
        let commands: &[&[&str]] = if file.ends_with(".apply") {
            &[&["apply", "--dry-run"]]
        } else {
            &[&["cell", "list"], &["apply", "--dry-run"]]
        };
        for args in commands {
            let out = w.run(args);
            assert_clean_error(&out, &format!("{file}:1:"), &format!("{args:?} {file}"));
        }
    }
    // The global configuration too.
    std::fs::write(&w.conf, format!("CELL_DATA_DIR=/{huge}\0\n")).unwrap();
    let out = w.run(&["cell", "list"]);
    assert_clean_error(&out, "cellmgr.conf:1:", "cellmgr.conf");
}

/// The source never builds an error message from `{:?}`: ciborium's and
/// std's `Debug` text is what users saw before (`Io(Error { kind: … })`).
/// Checked on every statement that creates or wraps an error, outside tests.
#[test]
fn no_error_message_is_built_from_a_debug_dump() {
    let mut files = Vec::new();
    rust_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let makers = [
        "bail!(",
        "anyhow!(",
        "context(",
        "with_context(",
        "Err(format!(",
        "set_status(",
        "FileError::new(",
        "eprintln!(",
        "log::warn!(",
        "log::error!(",
    ];
    let mut found = Vec::new();
    for file in files {
        if file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests sit at the end of a file, after `#[cfg(test)]`.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !makers.iter().any(|m| line.contains(m)) {
                continue;
            }
            // The statement: up to the line that ends it.
            let end = (i..lines.len())
                .find(|&j| {
                    lines[j].trim_end().ends_with(';') || lines[j].trim_end().ends_with("})?")
                })
                .unwrap_or(i)
                .min(i + 8);
            let stmt = lines[i..=end].join("\n");
            if stmt.contains(":?}") || stmt.contains(":#?}") {
                found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "error messages built from Debug output:\n{}",
        found.join("\n")
    );
}

/// A damaged backup sidecar reads as a sentence in `list` and `verify`.
#[test]
fn a_damaged_sidecar_is_reported_as_a_sentence() {
    if !support::root_or_skip("a_damaged_sidecar_is_reported_as_a_sentence") {
        return;
    }
    let w = World::new("sidecar");
    w.ok(&["volume", "create", "data", "--scope", "both"]);
    std::fs::write(w.volume_dir().join("data/f"), "x").unwrap();
    w.ok(&["volume", "backup", "create", "data", "-q"]);
    let dir = w.dir.join("backups/volumes");
    let sidecar = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".meta.cbor"))
        .unwrap();
    let bytes = std::fs::read(&sidecar).unwrap();
    std::fs::write(&sidecar, &bytes[..bytes.len() / 2]).unwrap();
    assert!(w
        .ok(&["volume", "backup", "list", "data", "-T", "-H", "-o", "status"])
        .contains("bad-sidecar"));
    let out = w.run(&["volume", "backup", "verify", "data"]);
    assert_clean_error(&out, "meta.cbor", "verify with a truncated sidecar");
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
}
