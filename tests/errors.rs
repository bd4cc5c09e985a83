//! Errors users see: a sentence that names the file (and line) and what would
//! be right; never a Rust `Debug` dump, never a flood, never raw control bytes.

mod support;

use support::world::World;

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

/// The shapes of `{:?}` output: `Io(Error { kind: …` and friends.
pub fn assert_no_debug_dump(text: &str, what: &str) {
    for shape in [
        "Error {",
        "kind:",
        "Io(",
        "Semantic(",
        "Syntax(",
        "Some(",
        "None)",
        "Custom {",
        "RecursionLimitExceeded",
    ] {
        assert!(
            !text.contains(shape),
            "{what}: a Debug dump ({shape}) in: {text}"
        );
    }
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
