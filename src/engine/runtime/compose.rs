//! Composing a cell's root from its base, its writable layer and its mounts, and
//! taking it apart again.
//!
//! Linux, in this order (each mount is recorded in `state/mounts` *before* it is
//! made, so a crash leaves a record of everything that may be mounted):
//!
//! 1. overlayfs at `root/`: lower = the base (`CELL_BASE=/path`) or, for
//!    `CELL_BASE=host`, a small immutable skeleton of the host's top level
//!    (`/bin -> usr/bin` stays a symlink, real directories become mount points);
//!    upper = `overlay/upper`, the cell's own writes.
//! 2. `CELL_BASE=host`: each real base directory (`/usr`, `/lib64`, ...) bound
//!    read-only onto its mount point.
//! 3. Each volume or host mount bound onto its target, read-only for `:ro`.
//!
//! `/dev`, `/proc` and `/sys` are the kernel backend's job (inside the cell's own
//! mount namespace). NetBSD has no overlayfs: with `CELL_BASE=/path` the v2
//! layout (a prepared base null-mounted read-only, the overlay on `/.overlay`);
//! with `CELL_BASE=host` the overlay is the root and the host's `/bin`, `/sbin`,
//! `/lib`, `/libexec`, `/usr` are null-mounted read-only into it; then a tmpfs
//! `/dev` made by MAKEDEV (`CELL_LOCAL_DEV`, `CELL_DEVICES`, `CELL_PTYFS`).

use super::CellPaths;
use crate::config::{BaseSource, Config};
use crate::engine::manifest::{self, CellManifest, MountSource};
use crate::fs::host::write_atomic;
use crate::fs::mountinfo;
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Top-level host entries that make up `CELL_BASE=host`.
#[cfg(target_os = "linux")]
pub const HOST_BASE: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];
#[cfg(not(target_os = "linux"))]
pub const HOST_BASE: &[&str] = &["bin", "sbin", "lib", "libexec", "usr", "rescue"];

/// Where the cell's own writes go.
pub fn writable_layer(p: &CellPaths) -> PathBuf {
    if cfg!(target_os = "linux") {
        p.overlay.join("upper")
    } else {
        p.overlay.clone()
    }
}

/// Creates the directories the writable layer needs (overlayfs: upper and work).
pub fn prepare_layer_dirs(p: &CellPaths) -> Result<()> {
    let dirs = if cfg!(target_os = "linux") {
        vec![p.overlay.join("upper"), p.overlay.join("work")]
    } else {
        vec![p.overlay.clone()]
    };
    for d in dirs {
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    Ok(())
}

pub fn is_mounted(path: &Path) -> Result<bool> {
    Ok(mountinfo::mount_points()?.iter().any(|p| p == path))
}

/// One recorded mount: where, from what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRecord {
    pub target: PathBuf,
    pub source: PathBuf,
    /// `overlay`, `base`, `volume:<name>`, `host` (NetBSD also `dev`).
    pub kind: String,
}

/// Reads `state/mounts` (missing: nothing recorded).
pub fn read_records(p: &CellPaths) -> Vec<MountRecord> {
    let Ok(text) = fs::read_to_string(p.mounts_file()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(MountRecord {
                target: f.next()?.into(),
                source: f.next()?.into(),
                kind: f.next()?.to_string(),
            })
        })
        .collect()
}

fn write_records(p: &CellPaths, records: &[MountRecord]) -> Result<()> {
    let text: String = records
        .iter()
        .map(|r| {
            format!(
                "{}\t{}\t{}\n",
                r.target.display(),
                r.source.display(),
                r.kind
            )
        })
        .collect();
    write_atomic(&p.mounts_file(), text.as_bytes())
}

/// Records a mount, then makes it.
struct Recorder<'a> {
    paths: &'a CellPaths,
    records: Vec<MountRecord>,
}

impl Recorder<'_> {
    fn mount(
        &mut self,
        target: &Path,
        source: &Path,
        kind: &str,
        op: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        if self.records.iter().any(|r| r.target == target) {
            bail!("{} is mounted twice", target.display());
        }
        self.records.push(MountRecord {
            target: target.to_path_buf(),
            source: source.to_path_buf(),
            kind: kind.to_string(),
        });
        write_records(self.paths, &self.records)?;
        op()
    }
}

/// Creates `target` (absolute, inside the cell) below `root` without following
/// symlinks: a link planted by the cell must not redirect a mount onto the host.
pub fn make_target_dir(root: &Path, target: &Path) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in target.components() {
        let Component::Normal(part) = c else { continue };
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.file_type().is_symlink() => bail!(
                "mount target {}: {} is a symbolic link inside the cell; mount targets must be real directories",
                target.display(),
                cur.strip_prefix(root).map(|p| Path::new("/").join(p)).unwrap_or(cur.clone()).display()
            ),
            Ok(md) if md.is_dir() => {}
            Ok(_) => bail!(
                "mount target {}: {} exists and is not a directory",
                target.display(),
                cur.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|e| {
                    if e.raw_os_error() == Some(libc::EROFS) {
                        anyhow!(
                            "mount target {}: cannot create it in the read-only base; use a target in the cell's writable tree (/srv, /var, /home, /opt, ...)",
                            target.display()
                        )
                    } else {
                        anyhow!("mount target {}: creating {}: {e}", target.display(), cur.display())
                    }
                })?;
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", cur.display())),
        }
    }
    Ok(cur)
}

/// Where a mount's content lives on the host (volumes are created on demand).
fn mount_source(cfg: &Config, m: &manifest::Mount) -> Result<(PathBuf, String)> {
    match &m.source {
        MountSource::Volume(v) => {
            let declared = manifest::load_volume(cfg, v)?;
            if declared.is_none() && !super::volume_dir(cfg, v).is_dir() {
                bail!("volume '{v}' has no manifest and no directory: cellmgr volume create {v} --scope both");
            }
            let mode = declared.and_then(|vm| vm.mode);
            Ok((super::ensure_volume(cfg, v, mode)?, format!("volume:{v}")))
        }
        MountSource::Host(h) => {
            if !h.is_dir() {
                bail!(
                    "host mount source {} is not an existing directory",
                    h.display()
                );
            }
            Ok((h.clone(), "host".into()))
        }
    }
}

/// Mounts the cell's root. On failure everything mounted so far is taken down.
pub fn compose(cfg: &Config, m: &CellManifest) -> Result<()> {
    let p = CellPaths::new(cfg, &m.name);
    // The writable layer of a cell with a disk limit is on its image.
    super::disk::mount(&p)?;
    let mut rec = Recorder {
        paths: &p,
        records: Vec::new(),
    };
    let result = compose_steps(cfg, m, &p, &mut rec);
    if let Err(e) = result {
        if let Err(cleanup) = decompose(cfg, &m.name) {
            return Err(e.context(format!("also failed to clean up: {cleanup:#}")));
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn compose_steps(cfg: &Config, m: &CellManifest, p: &CellPaths, rec: &mut Recorder) -> Result<()> {
    use rustix::mount::{mount, mount_bind, mount_remount, MountFlags};
    let layer = writable_layer(p);
    let lower = match &cfg.base {
        BaseSource::Host => {
            refresh_host_etc(&layer)?;
            host_skeleton(cfg)?
        }
        BaseSource::Dir(d) => {
            if !d.is_dir() {
                bail!("CELL_BASE {} is not a directory", d.display());
            }
            d.clone()
        }
    };
    let upper = layer;
    let work = p.overlay.join("work");
    for path in [&lower, &upper, &work] {
        let s = path.to_string_lossy();
        if s.contains([',', ':', '\\']) {
            bail!("{s}: overlayfs cannot use a path containing ',', ':' or '\\'");
        }
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    rec.mount(&p.root, &upper, "overlay", || {
        mount(
            "overlay",
            &p.root,
            "overlay",
            MountFlags::empty(),
            opts.as_str(),
        )
        .with_context(|| format!("mounting overlayfs on {} ({opts})", p.root.display()))
    })?;
    let bind_ro = |src: &Path, dst: &Path, ro: bool| -> Result<()> {
        mount_bind(src, dst)
            .with_context(|| format!("bind-mounting {} on {}", src.display(), dst.display()))?;
        if ro {
            mount_remount(dst, MountFlags::BIND | MountFlags::RDONLY, "")
                .with_context(|| format!("making {} read-only", dst.display()))?;
        }
        Ok(())
    };
    if cfg.base == BaseSource::Host {
        for entry in HOST_BASE {
            let host = Path::new("/").join(entry);
            let is_dir = fs::symlink_metadata(&host).is_ok_and(|md| md.is_dir());
            if is_dir {
                let dst = p.root.join(entry);
                rec.mount(&dst, &host, "base", || bind_ro(&host, &dst, true))?;
            }
        }
    }
    for mnt in &m.mounts {
        let (src, kind) = mount_source(cfg, mnt)?;
        let dst = make_target_dir(&p.root, &mnt.target)?;
        rec.mount(&dst, &src, &kind, || bind_ro(&src, &dst, mnt.read_only))?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn compose_steps(cfg: &Config, m: &CellManifest, p: &CellPaths, rec: &mut Recorder) -> Result<()> {
    use std::process::Command;
    let run = |args: &[&str]| -> Result<()> {
        let st = Command::new(args[0])
            .args(&args[1..])
            .status()
            .with_context(|| format!("running {}", args.join(" ")))?;
        if !st.success() {
            bail!("{} failed ({st})", args.join(" "));
        }
        Ok(())
    };
    let s = |p: &Path| p.to_string_lossy().into_owned();
    match &cfg.base {
        // The v2 layout: a prepared base (its /etc, /var, ... link into
        // /.overlay) read-only, the overlay on /.overlay.
        BaseSource::Dir(base) => {
            rec.mount(&p.root, base, "base", || {
                run(&["mount", "-t", "null", "-o", "ro", &s(base), &s(&p.root)])
            })?;
            let ov = p.root.join(".overlay");
            rec.mount(&ov, &p.overlay, "overlay", || {
                run(&["mount", "-t", "null", &s(&p.overlay), &s(&ov)])
            })?;
        }
        // No overlay file system: the overlay itself is the root, the host's
        // base directories null-mounted read-only into it.
        BaseSource::Host => {
            rec.mount(&p.root, &p.overlay, "overlay", || {
                run(&["mount", "-t", "null", &s(&p.overlay), &s(&p.root)])
            })?;
            for entry in HOST_BASE {
                let host = Path::new("/").join(entry);
                if fs::symlink_metadata(&host).is_ok_and(|md| md.is_dir()) {
                    let dst = p.root.join(entry);
                    fs::create_dir_all(&dst)?;
                    rec.mount(&dst, &host, "base", || {
                        run(&["mount", "-t", "null", "-o", "ro", &s(&host), &s(&dst)])
                    })?;
                }
            }
        }
    }
    if cfg.local_dev {
        let dev = p.root.join("dev");
        rec.mount(&dev, Path::new("tmpfs"), "dev", || {
            run(&["mount_tmpfs", "-s", &cfg.dev_size, "tmpfs", &s(&dev)])?;
            let mut args = vec!["sh", "/dev/MAKEDEV"];
            args.extend(cfg.devices.split_whitespace());
            let st = Command::new(args[0])
                .args(&args[1..])
                .current_dir(&dev)
                .status()?;
            if !st.success() {
                bail!("MAKEDEV {} failed in {}", cfg.devices, dev.display());
            }
            Ok(())
        })?;
        if cfg.ptyfs {
            let pts = dev.join("pts");
            fs::create_dir_all(&pts)?;
            rec.mount(&pts, Path::new("ptyfs"), "dev", || {
                run(&["mount", "-t", "ptyfs", "ptyfs", &s(&pts)])
            })?;
        }
    }
    for mnt in &m.mounts {
        let (src, kind) = mount_source(cfg, mnt)?;
        let dst = make_target_dir(&p.root, &mnt.target)?;
        let mut args = vec!["mount", "-t", "null"];
        if mnt.read_only {
            args.extend(["-o", "ro"]);
        }
        let (a, b) = (s(&src), s(&dst));
        args.extend([a.as_str(), b.as_str()]);
        rec.mount(&dst, &src, &kind, || run(&args))?;
    }
    Ok(())
}

/// Host files the host's `/usr` needs in `/etc`: the dynamic linker's cache and
/// configuration, and the alternatives links. Refreshed at every start so a host
/// upgrade reaches the cell.
#[cfg(target_os = "linux")]
fn refresh_host_etc(layer: &Path) -> Result<()> {
    let etc = layer.join("etc");
    fs::create_dir_all(&etc)?;
    for f in ["ld.so.cache", "ld.so.conf"] {
        if let Ok(bytes) = fs::read(Path::new("/etc").join(f)) {
            write_atomic(&etc.join(f), &bytes)?;
        }
    }
    for dir in ["ld.so.conf.d", "alternatives"] {
        copy_tree(&Path::new("/etc").join(dir), &etc.join(dir))?;
    }
    Ok(())
}

/// Copies regular files and symlinks of a flat directory (missing source: no-op).
#[cfg(target_os = "linux")]
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(src) else {
        return Ok(());
    };
    fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    for e in entries.flatten() {
        let to = dst.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_symlink() {
            let link = fs::read_link(e.path())?;
            if fs::read_link(&to).ok().as_ref() != Some(&link) {
                let _ = fs::remove_file(&to);
                std::os::unix::fs::symlink(&link, &to)
                    .with_context(|| format!("linking {}", to.display()))?;
            }
        } else if ft.is_file() {
            write_atomic(&to, &fs::read(e.path())?)?;
        }
    }
    Ok(())
}

/// The lower layer for `CELL_BASE=host`: the host's top-level base entries, links
/// as links and directories as empty mount points. Named after its content and
/// never changed once made, because live overlays use it.
#[cfg(target_os = "linux")]
fn host_skeleton(cfg: &Config) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let mut layout = String::new();
    for entry in HOST_BASE {
        let host = Path::new("/").join(entry);
        match fs::symlink_metadata(&host) {
            Ok(md) if md.file_type().is_symlink() => {
                layout.push_str(&format!("{entry} -> {}\n", fs::read_link(&host)?.display()))
            }
            Ok(md) if md.is_dir() => layout.push_str(&format!("{entry}/\n")),
            _ => {}
        }
    }
    let hash = Sha256::digest(layout.as_bytes());
    let id: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let dir = cfg.base_dir.join(format!("host-{id}"));
    if dir.is_dir() {
        return Ok(dir);
    }
    fs::create_dir_all(&cfg.base_dir)
        .with_context(|| format!("creating {}", cfg.base_dir.display()))?;
    let tmp = cfg
        .base_dir
        .join(format!(".host-{id}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for line in layout.lines() {
        if let Some((name, target)) = line.split_once(" -> ") {
            std::os::unix::fs::symlink(target, tmp.join(name))?;
        } else {
            fs::create_dir(tmp.join(line.trim_end_matches('/')))?;
        }
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another command made it first: same content by construction.
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

/// Unmounts everything at or below the cell's root, deepest first, whether
/// recorded or found in the mount table (a crashed run's leftovers included).
/// Keeps going after a failure; a busy mount is detached lazily as a last resort.
pub fn decompose(cfg: &Config, name: &str) -> Result<()> {
    let p = CellPaths::new(cfg, name);
    let mut errors: Vec<String> = Vec::new();
    for _round in 0..4 {
        let points = mountinfo::mount_points()?;
        let mut targets = mountinfo::under(&points, &p.root);
        // Recorded mounts outside the root (none today) would be listed here too.
        for r in read_records(&p) {
            if !r.target.starts_with(&p.root)
                && points.contains(&r.target)
                && !targets.contains(&r.target)
            {
                targets.push(r.target);
            }
        }
        if targets.is_empty() {
            break;
        }
        errors.clear();
        for t in targets {
            if let Err(e) = unmount_one(&t) {
                errors.push(format!("{}: {e:#}", t.display()));
            }
        }
    }
    let left = mountinfo::under(&mountinfo::mount_points()?, &p.root);
    if left.is_empty() {
        match fs::remove_file(p.mounts_file()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                errors.push(format!("removing {}: {e}", p.mounts_file().display()))
            }
            _ => {}
        }
        if errors.is_empty() {
            return Ok(());
        }
    }
    let still: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "unmounting cell {name}: {}{}",
        errors.join("; "),
        if still.is_empty() {
            String::new()
        } else {
            format!("; still mounted: {}", still.join(", "))
        }
    )
}

#[cfg(target_os = "linux")]
fn unmount_one(target: &Path) -> Result<()> {
    use rustix::mount::{unmount, UnmountFlags};
    let mut last = None;
    for _ in 0..5 {
        match unmount(target, UnmountFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) if e == rustix::io::Errno::BUSY => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
    log::warn!(
        "{} busy ({}); detaching it lazily",
        target.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    );
    unmount(target, UnmountFlags::DETACH).map_err(Into::into)
}

#[cfg(not(target_os = "linux"))]
fn unmount_one(target: &Path) -> Result<()> {
    let st = std::process::Command::new("umount").arg(target).status()?;
    if st.success() {
        return Ok(());
    }
    let st = std::process::Command::new("umount")
        .arg("-f")
        .arg(target)
        .status()?;
    if !st.success() {
        bail!("umount -f {} failed", target.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dirs_are_created_without_following_links() {
        let tmp = crate::testutil::TempDir::new("compose");
        let root = tmp.path();
        fs::create_dir_all(root.join("srv")).unwrap();
        std::os::unix::fs::symlink("/", root.join("evil")).unwrap();
        let d = make_target_dir(root, Path::new("/srv/data/x")).unwrap();
        assert!(d.is_dir());
        let e = make_target_dir(root, Path::new("/evil/etc")).unwrap_err();
        assert!(e.to_string().contains("/evil is a symbolic link"), "{e}");
        fs::write(root.join("file"), "").unwrap();
        assert!(make_target_dir(root, Path::new("/file/x"))
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }
}
