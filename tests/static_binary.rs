//! The static binary of `make static` (musl): no program interpreter, and it
//! works in a root that holds nothing but itself and a configuration file —
//! `--version`, cellmgr declaring and listing a cell, cellctl's help. Needs
//! root (chroot) and the binary (`make static`, which `make test` runs first).

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::TempDir;

/// `CELLS_STATIC_BIN`, else where `make static` puts it for this machine.
fn static_binary() -> Option<PathBuf> {
    let path = std::env::var_os("CELLS_STATIC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
                "target/{}-unknown-linux-musl/release/cells",
                std::env::consts::ARCH
            ))
        });
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: no static binary at {} (build it with 'make static')",
            path.display()
        );
        None
    }
}

/// Whether an ELF file asks for a program interpreter (a dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "expected a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == PT_INTERP)
}

/// Runs `/cells` under `argv0` with `args`, chrooted into `root`, with nothing
/// in the environment but the configuration's path.
fn try_in_root(root: &Path, argv0: &str, args: &[&str]) -> std::io::Result<Output> {
    let root = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).unwrap();
    let mut cmd = Command::new("/cells");
    cmd.arg0(argv0)
        .args(args)
        .env_clear()
        .env("CELLMGR_CONF", "/cellmgr.conf");
    // SAFETY: chroot and chdir are async-signal-safe; the child only changes
    // its own root before exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output()
}

fn in_root(root: &Path, argv0: &str, args: &[&str]) -> Output {
    try_in_root(root, argv0, args).expect("running the static binary in the empty root")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn the_static_binary_runs_in_an_empty_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (chroot)");
        return;
    }
    let Some(bin) = static_binary() else { return };
    let bytes = std::fs::read(&bin).unwrap();
    assert!(
        !has_interpreter(&bytes),
        "{} is dynamically linked",
        bin.display()
    );

    let dir = TempDir::new("static-root");
    let root = dir.path();
    std::fs::copy(&bin, root.join("cells")).unwrap();
    std::fs::write(
        root.join("cellmgr.conf"),
        "CELLMGR_MANIFEST_DIR=/etc/cellmgr\nCELL_DATA_DIR=/var/cells\nCELL_VOLUME_DIR=/var/volumes\n\
         CELL_RUN_DIR=/run/cells\nCELL_BACKUP_DIR=/var/backups\nCELL_AUDIT_LOG=/var/log/audit.log\n",
    )
    .unwrap();
    let entries: Vec<_> = std::fs::read_dir(root).unwrap().flatten().collect();
    assert_eq!(
        entries.len(),
        2,
        "the root holds the binary and its configuration only"
    );

    let version = ok(&in_root(root, "cells", &["--version"]));
    assert_eq!(version, format!("cells {}\n", env!("CARGO_PKG_VERSION")));
    ok(&in_root(
        root,
        "cellmgr",
        &["cell", "create", "web", "--reserved-ports", "8080"],
    ));
    let listed = ok(&in_root(
        root,
        "cellmgr",
        &["list", "-T", "-H", "-o", "name,state,create_reserved_ports"],
    ));
    assert_eq!(listed, "web\tdeclared\t8080\n");
    let help = ok(&in_root(root, "cellctl", &["--help"]));
    assert!(help.starts_with("Usage: cellctl"), "{help}");
    for command in ["create", "exec", "list", "supervise"] {
        assert!(help.contains(command), "{help}");
    }
    // What the test proves: the ordinary build cannot even start there.
    let dynamic = TempDir::new("dynamic-root");
    std::fs::copy(support::BIN, dynamic.path().join("cells")).unwrap();
    assert!(has_interpreter(&std::fs::read(support::BIN).unwrap()));
    let ran = try_in_root(dynamic.path(), "cells", &["--version"]);
    assert!(
        ran.map_or(true, |o| !o.status.success()),
        "a dynamically linked build ran without its loader"
    );
    // The create was recorded (passwd-free: the actor is a uid).
    let journal = std::fs::read_to_string(root.join("var/log/audit.log")).unwrap();
    assert!(journal.contains("\"action\":\"cell create\""), "{journal}");
}
