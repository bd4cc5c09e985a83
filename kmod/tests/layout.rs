#![cfg(not(feature = "rump2016"))]
//! Layout check against the NetBSD 10.1 headers: compiles kmod/layout/*.c
//! with `zig cc -target x86_64-netbsd -D_KMEMUSER` to assembly and
//! compares every `probe_<name>` value with `ffi::LAYOUT`.
//!
//! Runs when CELL_LAYOUT_ZIG names a zig command (`make check-layout` sets
//! it to the ziglang module of the repo's .venv); otherwise it says so and
//! passes, so a plain `cargo test` needs no zig.

use secmodel_cell::ffi::LAYOUT;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn zig() -> Option<Vec<String>> {
    let cmd = std::env::var("CELL_LAYOUT_ZIG").ok()?;
    Some(cmd.split_whitespace().map(str::to_owned).collect())
}

/// `probe_<name>` → value, from zig's assembly output.
fn probe_values(asm: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let mut label: Option<String> = None;
    for line in asm.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("probe_").and_then(|r| r.strip_suffix(':')) {
            label = Some(name.to_owned());
        } else if let Some(name) = label.take() {
            let mut words = t.split_whitespace();
            let value = match (words.next(), words.next()) {
                (Some(".quad"), Some(v)) => v.parse().ok(),
                (Some(".zero"), Some(_)) => Some(0),
                _ => None,
            };
            if let Some(v) = value {
                out.insert(name, v);
            }
        }
    }
    out
}

/// The NetBSD include directory inside the zig installation.
fn netbsd_include(zig: &[String]) -> PathBuf {
    let out = Command::new(&zig[0])
        .args(&zig[1..])
        .arg("env")
        .output()
        .expect("zig env");
    let env = String::from_utf8_lossy(&out.stdout);
    let lib = env
        .split('"')
        .skip_while(|s| !s.contains("lib_dir"))
        .nth(1)
        .expect("lib_dir in zig env");
    Path::new(lib).join("libc/include/generic-netbsd")
}

fn compile(zig: &[String], src: &Path, include: &Path, out: &Path) -> String {
    let status = Command::new(&zig[0])
        .args(&zig[1..])
        .args(["cc", "-target", "x86_64-netbsd", "-D_KMEMUSER"])
        // zig's own max_align_t clashes with NetBSD's <sys/stddef.h>.
        .arg("-D__CLANG_MAX_ALIGN_T_DEFINED")
        .arg("-I")
        .arg(include)
        .args(["-S", "-o"])
        .arg(out)
        .arg(src)
        .status()
        .expect("run zig cc");
    assert!(status.success(), "zig cc failed on {}", src.display());
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn ffi_constants_match_netbsd_10_1_headers() {
    let Some(zig) = zig() else {
        eprintln!(
            "layout check skipped: CELL_LAYOUT_ZIG not set (run `make -C kmod check-layout`)"
        );
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("layout");
    let tmp = std::env::temp_dir().join(format!("cell-layout-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();

    // struct modinfo is declared only under _KERNEL: copy it out of the
    // real header (see probe_module.c).
    let header = std::fs::read_to_string(netbsd_include(&zig).join("sys/module.h")).unwrap();
    let start = header
        .find("typedef struct modinfo {")
        .expect("modinfo in module.h");
    let end = start + header[start..].find("} const modinfo_t;").unwrap() + 18;
    std::fs::write(tmp.join("modinfo_decl.h"), &header[start..end]).unwrap();

    let mut values = BTreeMap::new();
    for probe in ["probe.c", "probe_module.c"] {
        let asm = compile(
            &zig,
            &dir.join(probe),
            &tmp,
            &tmp.join(probe).with_extension("s"),
        );
        values.extend(probe_values(&asm));
    }
    std::fs::remove_dir_all(&tmp).ok();

    let mut mismatches = Vec::new();
    for (name, rust) in LAYOUT {
        match values.get(*name) {
            Some(c) if c == rust => println!("ok   {name:<24} {rust}"),
            Some(c) => mismatches.push(format!("{name}: Rust {rust}, NetBSD headers {c}")),
            None => mismatches.push(format!("{name}: not produced by the probe")),
        }
    }
    let unchecked: Vec<_> = values
        .keys()
        .filter(|k| !LAYOUT.iter().any(|(n, _)| n == k))
        .collect();
    assert!(
        unchecked.is_empty(),
        "probe values without a Rust constant: {unchecked:?}"
    );
    assert!(
        mismatches.is_empty(),
        "layout mismatches:\n{}",
        mismatches.join("\n")
    );
    println!("{} values match the NetBSD 10.1 headers", LAYOUT.len());
}

#[test]
fn probe_parser_reads_quad_and_zero() {
    let asm = "probe_a:\n\t.quad\t56\n\t.size x\nprobe_b:\n\t.zero\t8\nprobe_c:\n\t.quad\t-3\n";
    let v = probe_values(asm);
    assert_eq!(v["a"], 56);
    assert_eq!(v["b"], 0);
    assert_eq!(v["c"], -3);
}
