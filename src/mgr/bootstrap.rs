//! `cellmgr system bootstrap`: prepare a host for cells at boot.
//!
//! NetBSD: load `secmodel_cell` if it is not loaded, record it in
//! `/etc/modules.conf` so the kernel loads it at boot, and enable the rc.d
//! script in `/etc/rc.conf` only if the operator has not chosen either way.
//! Linux: the guarantees come from namespaces, cgroups and BPF that are always
//! there; nothing to load, and the systemd unit is the boot hook.

use super::Run;
use crate::exit::EXIT_OK;
use anyhow::{bail, Context, Result};
use argh::FromArgs;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODULE: &str = "secmodel_cell";

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "bootstrap")]
/// Prepare this host for cells at boot. NetBSD: load secmodel_cell, record it
/// in /etc/modules.conf and set cellmgr=YES in /etc/rc.conf unless rc.conf
/// already says YES or NO. Linux: explains that there is no module to load.
pub struct Bootstrap {
    /// the system to set up (default /): a mounted image, or a test tree;
    /// the module is loaded only for /
    #[argh(option, default = "PathBuf::from(\"/\")")]
    root: PathBuf,
    /// print what would change, change nothing
    #[argh(switch)]
    dry_run: bool,
}

impl Run for Bootstrap {
    fn run(self) -> Result<i32> {
        if !cfg!(target_os = "netbsd") {
            println!(
                "bootstrap: this is {}: there is no kernel module to load; cells are enforced \
                 with namespaces, cgroups, capabilities, seccomp and BPF, which the kernel \
                 always has. To converge cells at boot install rc.d/cellmgr.service as \
                 /etc/systemd/system/cellmgr.service and run: systemctl enable cellmgr",
                std::env::consts::OS
            );
            return Ok(EXIT_OK);
        }
        if self.root == Path::new("/") && !self.dry_run {
            load_module()?;
        }
        let modules = self.root.join("etc/modules.conf");
        edit(
            &modules,
            self.dry_run,
            |t| add_module(t, MODULE),
            "records secmodel_cell",
        )?;
        let rc = self.root.join("etc/rc.conf");
        edit(&rc, self.dry_run, enable_rc, "sets cellmgr=YES")?;
        Ok(EXIT_OK)
    }
}

/// Loads the module unless `modstat` lists it.
fn load_module() -> Result<()> {
    let listed = Command::new("modstat")
        .arg(MODULE)
        .output()
        .context("running modstat")?;
    if listed.status.success() && String::from_utf8_lossy(&listed.stdout).contains(MODULE) {
        println!("bootstrap: {MODULE} is loaded");
        return Ok(());
    }
    let st = Command::new("modload")
        .arg(MODULE)
        .status()
        .context("running modload")?;
    if !st.success() {
        bail!("modload {MODULE} failed ({st}); is the module installed in /stand/$(uname -m)/$(uname -r)/modules?");
    }
    println!("bootstrap: loaded {MODULE}");
    Ok(())
}

/// Applies `change` to the file (missing: empty) and writes it atomically if
/// it returns new text.
fn edit(
    path: &Path,
    dry_run: bool,
    change: impl Fn(&str) -> Option<String>,
    what: &str,
) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    match change(&text) {
        None => println!("bootstrap: {}: unchanged", path.display()),
        Some(_) if dry_run => println!("bootstrap: would change {}: {what}", path.display()),
        Some(new) => {
            crate::fs::host::write_atomic(path, new.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            println!("bootstrap: {}: {what}", path.display());
        }
    }
    Ok(())
}

fn append(text: &str, line: &str) -> String {
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
}

/// modules.conf(5): one module per line; `None` when it is already there.
fn add_module(text: &str, module: &str) -> Option<String> {
    let listed = text
        .lines()
        .any(|l| l.split('#').next().unwrap_or("").split_whitespace().next() == Some(module));
    (!listed).then(|| append(text, module))
}

/// `cellmgr=YES` unless rc.conf already sets `cellmgr` (YES or NO: the
/// operator's choice stands).
fn enable_rc(text: &str) -> Option<String> {
    let chosen = text.lines().any(|l| {
        let l = l.trim_start();
        !l.starts_with('#') && l.starts_with("cellmgr=")
    });
    (!chosen).then(|| {
        append(
            text,
            "cellmgr=YES\t\t# converge and start cells at boot (cellmgr system bootstrap)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_is_recorded_once() {
        assert_eq!(add_module("", MODULE).unwrap(), "secmodel_cell\n");
        assert_eq!(
            add_module("foo\n# secmodel_cell\n", MODULE).unwrap(),
            "foo\n# secmodel_cell\nsecmodel_cell\n"
        );
        assert_eq!(add_module("foo", MODULE).unwrap(), "foo\nsecmodel_cell\n");
        assert_eq!(add_module("secmodel_cell  # cells\n", MODULE), None);
    }

    #[test]
    fn an_operators_rc_conf_choice_stands() {
        assert!(enable_rc("sshd=YES\n").unwrap().ends_with("sshd=YES\ncellmgr=YES\t\t# converge and start cells at boot (cellmgr system bootstrap)\n"));
        assert_eq!(enable_rc("cellmgr=NO\n"), None);
        assert_eq!(enable_rc("  cellmgr=YES\n"), None);
        assert!(enable_rc("#cellmgr=NO\n").is_some());
    }
}
