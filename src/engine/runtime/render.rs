//! Rendering: turning a manifest into a cell's runtime directory. Directories
//! first, the writable layer seeded once, `cell.conf` last, so "rendered"
//! (`cell.conf` exists) always means the rest is in place.

use super::{compose, disk, CellPaths};
use crate::config::{BaseSource, Config};
use crate::engine::manifest::CellManifest;
use crate::fs::host::write_atomic;
use crate::fs::tree::{Kind, Links, Tree};
use crate::kernel::Kernel;
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderOutcome {
    /// The runtime did not exist.
    Created,
    /// `cell.conf` changed.
    Updated,
    Unchanged,
}

/// Directories every cell root has, with their modes: mount points the kernel
/// backend fills (`dev`, `proc`, `sys`) and the usual writable trees.
const SKELETON: &[(&str, u32)] = &[
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("etc", 0o755),
    ("tmp", 0o1777),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("var/run", 0o755),
    ("var/log", 0o755),
    ("run", 0o755),
    ("home", 0o755),
    ("root", 0o700),
    ("srv", 0o755),
    ("mnt", 0o755),
    ("opt", 0o755),
];

/// Files a fresh cell gets in its `/etc` unless its base already has them.
fn seed_files(name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                .into(),
        ),
        ("group", "root:x:0:\nnogroup:x:65534:\n".into()),
        (
            "hosts",
            format!("127.0.0.1\tlocalhost {name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        ),
        ("hostname", format!("{name}\n")),
        (
            "nsswitch.conf",
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nservices: files\nprotocols: files\n"
                .into(),
        ),
    ]
}

/// Host files copied into a fresh cell's `/etc` (content, not links).
const HOST_ETC_COPIES: &[&str] = &["resolv.conf", "services", "protocols", "localtime"];

/// Gives the writable layer its skeleton and a usable `/etc` (once). The layer
/// is the cell's: it is worked on through [`Tree`], links resolved as the cell
/// sees them, so a cell that made `/etc` or `/var` a link to a host directory
/// gets its files inside its own tree (or an error), never on the host.
fn seed_layer(cfg: &Config, name: &str, layer: &Path) -> Result<()> {
    let tree =
        Tree::open(layer, Links::InRoot)?.with_ids(crate::engine::ids::layer_ids(cfg, name)?);
    for (dir, mode) in SKELETON {
        tree.mkdir_all(Path::new(dir), *mode)?;
    }
    let base_etc = match &cfg.base {
        BaseSource::Dir(d) => Some(d.join("etc")),
        BaseSource::Host => None,
    };
    let in_base = |f: &str| base_etc.as_ref().is_some_and(|b| b.join(f).exists());
    let etc = Path::new("etc");
    // Written without waiting for the disk, each: `cell.conf`, written last,
    // is the one sync of a render. A seed a crash lost is missing or empty,
    // and the next render (every start renders) writes it again.
    let wanted = |file: &str| -> Result<bool> {
        Ok(!in_base(file)
            && match tree.meta_of_target(&etc.join(file))? {
                None => true,
                Some(m) => m.kind == Kind::File && m.size == 0,
            })
    };
    for (file, text) in seed_files(name) {
        if wanted(file)? {
            tree.write_unsynced(&etc.join(file), text.as_bytes(), Some(0o644))?;
        }
    }
    for file in HOST_ETC_COPIES {
        let host = Path::new("/etc").join(file);
        if wanted(file)? {
            if let Ok(bytes) = fs::read(&host) {
                tree.write_unsynced(&etc.join(file), &bytes, Some(0o644))?;
            }
        }
    }
    Ok(())
}

/// Renders `m` into its runtime directory. Safe while the cell runs: only
/// `cell.conf` changes then, and `start` reads it at the next start.
pub fn render(cfg: &Config, m: &CellManifest) -> Result<RenderOutcome> {
    render_runtime(cfg, m, None).with_context(|| format!("rendering cell {}", m.name))
}

/// [`render`], the stopped cell's writable layer first put on the ids it
/// runs with (`engine::ids::prepare_cell`): a new cell gets its range
/// before its first files, which are then written with the cell's ids, not
/// with host ids that its first start would walk the layer to move.
pub fn render_for(cfg: &Config, kernel: &dyn Kernel, m: &CellManifest) -> Result<RenderOutcome> {
    render_runtime(cfg, m, Some(kernel)).with_context(|| format!("rendering cell {}", m.name))
}

fn render_runtime(
    cfg: &Config,
    m: &CellManifest,
    kernel: Option<&dyn Kernel>,
) -> Result<RenderOutcome> {
    let p = CellPaths::new(cfg, &m.name);
    let existed = p.conf.exists();
    // 0700 before anything is made inside: host users never reach the
    // cell's root, layer or state through it.
    crate::fs::host::private_dir(&p.dir)?;
    // The storage changes only while the cell is stopped (its root unmounted).
    let running = compose::is_mounted(&p.root)?;
    if !running {
        disk::prepare(&p, m.limits.resolve(&cfg.default_limits).disk)?;
    }
    // The writable layer may have moved onto or off a disk image.
    let p = CellPaths::new(cfg, &m.name);
    for d in [&p.root, &p.overlay, &p.state] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    compose::prepare_layer_dirs(&p)?;
    let layer = compose::writable_layer(&p);
    if !running {
        if let Some(kernel) = kernel {
            crate::engine::ids::prepare_cell(cfg, kernel, &m.name, m.profile)
                .with_context(|| format!("preparing the ids of cell {}", m.name))?;
        }
        seed_layer(cfg, &m.name, &layer)
            .with_context(|| format!("preparing the writable layer of cell {}", m.name))?;
    }
    let header = format!(
        "# Rendered by cellmgr from {}: edit that file, not this one.",
        m.path.display()
    );
    let text = m
        .render(&header)
        .map_err(|e| anyhow::anyhow!("rendering {}: {e}", m.name))?;
    let old = fs::read_to_string(&p.conf).ok();
    // Compare without the header: a rendered copy of an identical manifest is unchanged.
    let body = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if old.as_deref().map(body) == Some(body(&text)) {
        return Ok(RenderOutcome::Unchanged);
    }
    write_atomic(&p.conf, text.as_bytes())?;
    Ok(if existed {
        RenderOutcome::Updated
    } else {
        RenderOutcome::Created
    })
}
