//! Links the unwinder statically on Linux with glibc.
//!
//! Rust links `libgcc_s.so` for unwinding; loading and relocating that one
//! extra shared object is ~0.04 ms of every command's start (each `cellctl`
//! create, exec and destroy pays it). GCC's static unwinder, `libgcc_eh.a`,
//! serves the same calls (it is what `-static-libgcc` and Rust's own
//! static targets use), so a linker script named `libgcc_s.so`, found
//! before the system's, points the link at it. Where the C compiler has no
//! `libgcc_eh.a` nothing changes.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_OS") != "linux" || target("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    let Some(archive) = static_unwinder() else {
        return;
    };
    let dir = PathBuf::from(target("OUT_DIR")).join("unwind");
    let script = format!("INPUT({})\n", archive.display());
    if std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(dir.join("libgcc_s.so"), script).is_ok()
    {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
}

/// `libgcc_eh.a` of the C compiler the link goes through, if it has one.
fn static_unwinder() -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = std::process::Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // Without it, the compiler echoes the bare name back.
    (path.is_absolute() && Path::new(&path).is_file()).then_some(path)
}
