//! Composing a cell's root from its base, its writable layer and its mounts, and
//! taking it apart again.
//!
//! Linux, in this order (each mount is recorded in `state/mounts` *before* it is
//! made, so a crash leaves a record of everything that may be mounted):
//!
//! 1. overlayfs at `root/`: lower = the base (`CELL_BASE=/path`) or, for
//!    `CELL_BASE=host`, a small immutable skeleton of the host's top level
//!    (`/bin -> usr/bin` stays a symlink, real directories become mount points)
//!    with the `/etc` files the host's `/usr` needs, shared by every cell;
//!    upper = `overlay/upper`, the cell's own writes.
//! 2. `CELL_BASE=host`: each real base directory (`/usr`, `/lib64`, ...) bound
//!    read-only onto its mount point.
//! 3. Each volume or host mount bound onto its target, read-only for `:ro`.
//!
//! A cell in a user namespace (Linux, medium and high: `ids` given) sees the
//! host's ids through its range: the base is idmapped (host root's files
//! are the cell root's, read-only: idmapped binds, and for
//! `CELL_BASE=/path` an idmapped lower layer at `<name>/lower`), the
//! writable layer is on the cell's own ids already (`engine::ids`), each
//! volume is idmapped from its own range to the cell's, and host mounts
//! are shown as they are (host files keep their host owners; ids outside
//! the cell's range appear as nobody). A cell on host ids sees a volume
//! with a range of its own idmapped onto host ids.
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
use crate::fs::host::write_replace;
use crate::fs::mount::{self as fs_mount, BindFlags};
use crate::fs::mountinfo;
use crate::fs::resolve;
#[cfg(target_os = "linux")]
use crate::fs::tree::Dir;
use crate::fs::tree::{errno_in, Kind, Links, Tree};
use crate::kernel::{IdRange, Kernel};
use anyhow::{anyhow, bail, Context, Result};
use rustix::fs::OFlags;
#[cfg(target_os = "linux")]
use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
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
    mountinfo::is_mount_point(path)
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
    write_replace(&p.mounts_file(), text.as_bytes())
}

/// Records a mount, then makes it.
struct Recorder<'a> {
    paths: &'a CellPaths,
    records: Vec<MountRecord>,
    /// The targets mounted so far.
    made: Vec<PathBuf>,
}

impl<'a> Recorder<'a> {
    fn new(paths: &'a CellPaths) -> Recorder<'a> {
        Recorder {
            paths,
            records: Vec::new(),
            made: Vec::new(),
        }
    }

    /// Records mounts about to be made, all in one write (each write is a
    /// new file): [`Recorder::mount`] then makes each without another. One
    /// that is never made, a step before it having failed, is no mount
    /// point, which [`decompose`] skips.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn record_ahead(&mut self, planned: Vec<MountRecord>) -> Result<()> {
        for r in planned {
            if !self.records.contains(&r) {
                self.records.push(r);
            }
        }
        write_records(self.paths, &self.records)
    }

    fn mount(
        &mut self,
        target: &Path,
        source: &Path,
        kind: &str,
        op: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        if self.made.iter().any(|t| t == target) {
            bail!("{} is mounted twice", target.display());
        }
        self.made.push(target.to_path_buf());
        let record = MountRecord {
            target: target.to_path_buf(),
            source: source.to_path_buf(),
            kind: kind.to_string(),
        };
        if !self.records.contains(&record) {
            self.records.push(record);
            write_records(self.paths, &self.records)?;
        }
        op()
    }
}

/// Creates `target` (absolute, inside the cell) in the cell's tree without
/// following any link, and returns its host path (for the record) and an fd
/// of it (for the mount). A link planted by the cell, even one swapped in
/// after the check, cannot redirect the mount onto the host: the mount is made
/// on the fd (see [`crate::fs::mount`]).
pub fn make_target_dir(root: &Tree, target: &Path) -> Result<(PathBuf, OwnedFd)> {
    let mut cur = PathBuf::from("/");
    for c in target.components() {
        let Component::Normal(part) = c else { continue };
        cur.push(part);
        match root.meta(&cur)? {
            Some(m) if m.kind == Kind::Symlink => bail!(
                "mount target {}: {} is a symbolic link inside the cell; mount targets must be real directories",
                target.display(),
                cur.display()
            ),
            Some(m) if m.kind == Kind::Dir => {}
            Some(_) => bail!(
                "mount target {}: {} exists and is not a directory",
                target.display(),
                cur.display()
            ),
            None => {
                let (dir, leaf) = root.parent_of(&cur)?;
                if let Err(e) = dir.mkdir(&leaf, 0o755) {
                    if errno_in(&e) == Some(rustix::io::Errno::ROFS) {
                        bail!(
                            "mount target {}: cannot create it in the read-only base; use a target in the cell's writable tree (/srv, /var, /home, /opt, ...)",
                            target.display()
                        );
                    }
                    return Err(e.context(format!(
                        "mount target {}: creating {}",
                        target.display(),
                        cur.display()
                    )));
                }
            }
        }
    }
    let fd = root
        .open_at(target, target_flags())
        .map_err(|e| anyhow!("mount target {}: {}", target.display(), io_text(e)))?;
    Ok((root.path().join(resolve::relative(target)), fd))
}

/// How a mount target is held: without reading it.
fn target_flags() -> OFlags {
    #[cfg(target_os = "linux")]
    {
        OFlags::PATH | OFlags::DIRECTORY
    }
    #[cfg(not(target_os = "linux"))]
    {
        OFlags::RDONLY | OFlags::DIRECTORY
    }
}

fn io_text(e: rustix::io::Errno) -> String {
    match e {
        rustix::io::Errno::LOOP => "a symbolic link is in the way".into(),
        e => std::io::Error::from(e).to_string(),
    }
}

/// What a volume or host mount gets: never set-id programs or device nodes
/// from it; `noexec` and read-only as the manifest asks.
fn volume_flags(m: &manifest::Mount) -> BindFlags {
    BindFlags {
        read_only: m.read_only,
        nosuid: true,
        nodev: true,
        noexec: m.noexec,
    }
}

/// How ids on disk are shown through a mount: (first id on disk, first id
/// shown, how many); see [`fs_mount::Idmap`].
type Shown = (u32, u32, u32);

/// Where a mount's content lives on the host (volumes are created on demand),
/// and the ids it is mounted with (see the module comment).
fn mount_source(
    cfg: &Config,
    kernel: &dyn Kernel,
    m: &manifest::Mount,
    ids: Option<IdRange>,
) -> Result<(PathBuf, String, Option<Shown>)> {
    match &m.source {
        MountSource::Volume(v) => {
            let declared = manifest::load_volume(cfg, v)?;
            // host path: the volume's entry in the root-only volume directory
            if declared.is_none() && !super::volume_dir(cfg, v).is_dir() {
                bail!("volume '{v}' has no manifest and no directory: cellmgr volume create {v} --scope both");
            }
            let mode = declared.and_then(|vm| vm.mode);
            let dir = super::ensure_volume(cfg, v, mode)?;
            let stored = crate::engine::ids::prepare_volume(cfg, kernel, v, ids)?;
            Ok((dir, format!("volume:{v}"), volume_idmap(stored, ids)))
        }
        MountSource::Host(h) => {
            if !h.is_dir() {
                bail!(
                    "host mount source {} is not an existing directory",
                    h.display()
                );
            }
            Ok((h.clone(), "host".into(), None))
        }
    }
}

/// How a volume whose files are on `stored` is shown to a cell on `cell`
/// (`None`: host ids): (ids on disk, ids shown, how many), or `None` when
/// they are the same.
fn volume_idmap(stored: Option<IdRange>, cell: Option<IdRange>) -> Option<Shown> {
    let base = |r: Option<IdRange>| r.map_or(0, |r| r.base);
    let count = |r: Option<IdRange>| r.map_or(u32::MAX, |r| r.mapped());
    if base(stored) == base(cell) {
        return None;
    }
    Some((
        base(stored),
        base(cell),
        count(stored)
            .min(count(cell))
            .min(crate::fs::ids::DEFAULT_RANGE_SIZE - 1),
    ))
}

/// Mounts the cell's root, for a cell on `ids` (`None`: host ids). On
/// failure everything mounted so far is taken down.
pub fn compose(
    cfg: &Config,
    kernel: &dyn Kernel,
    m: &CellManifest,
    ids: Option<IdRange>,
) -> Result<()> {
    let p = CellPaths::new(cfg, &m.name);
    // The writable layer of a cell with a disk limit is on its image.
    super::disk::mount(&p)?;
    let mut rec = Recorder::new(&p);
    let result = compose_steps(cfg, kernel, m, ids, &p, &mut rec);
    if let Err(e) = result {
        if let Err(cleanup) = decompose(cfg, &m.name) {
            return Err(e.context(format!("also failed to clean up: {cleanup:#}")));
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn compose_steps(
    cfg: &Config,
    kernel: &dyn Kernel,
    m: &CellManifest,
    ids: Option<IdRange>,
    p: &CellPaths,
    rec: &mut Recorder,
) -> Result<()> {
    use rustix::mount::{mount, MountFlags};
    use std::os::fd::AsFd;
    let layer = writable_layer(p);
    let cell_ids = ids.map_or(crate::fs::tree::IdMap::IDENTITY, |r| r.map());
    // Host root's files as the cell root's.
    let base_idmap = ids
        .map(|r| fs_mount::Idmap::new(0, r.base, r.mapped()))
        .transpose()?;
    let base = match &cfg.base {
        BaseSource::Host => {
            let etc = host_etc();
            refresh_host_etc(&m.name, &layer, &etc, cell_ids)?;
            host_skeleton(cfg, &etc)?
        }
        BaseSource::Dir(d) => {
            if !d.is_dir() {
                bail!("CELL_BASE {} is not a directory", d.display());
            }
            d.clone()
        }
    };
    // The host's base directories, bind-mounted into the root.
    let host_dirs: Vec<&str> = match cfg.base {
        BaseSource::Host => HOST_BASE
            .iter()
            .copied()
            .filter(|entry| {
                fs::symlink_metadata(Path::new("/").join(entry)).is_ok_and(|md| md.is_dir())
            })
            .collect(),
        BaseSource::Dir(_) => Vec::new(),
    };
    // The mounts below, but a volume's, recorded at once.
    let record = |target: &Path, source: &Path, kind: &str| MountRecord {
        target: target.to_path_buf(),
        source: source.to_path_buf(),
        kind: kind.to_string(),
    };
    let mut ahead = Vec::new();
    if base_idmap.is_some() {
        ahead.push(record(&p.lower, &base, "base"));
    }
    ahead.push(record(&p.root, &layer, "overlay"));
    for entry in &host_dirs {
        ahead.push(record(
            &p.root.join(entry),
            &Path::new("/").join(entry),
            "base",
        ));
    }
    rec.record_ahead(ahead)?;
    // Its /etc entries are host root's: in a user namespace the cell sees
    // them as its root's, as it would its own copies.
    let lower = idmapped_base(&mut *rec, p, &base, base_idmap.as_ref())?;
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
    // From here on the root is the cell's: every target is reached through it
    // without following links, and mounted on an fd.
    let root = Tree::open(&p.root, Links::Refuse)?.with_ids(cell_ids);
    for entry in host_dirs {
        let host = Path::new("/").join(entry);
        let fd = root
            .open_at(Path::new(entry), target_flags())
            .map_err(|e| {
                anyhow!(
                "/{entry} in the root of cell {}: {}; the host's base mounts only onto a directory",
                m.name,
                io_text(e)
            )
            })?;
        let dst = p.root.join(entry);
        rec.mount(&dst, &host, "base", || {
            fs_mount::bind(&host, fd.as_fd(), BindFlags::BASE, base_idmap.as_ref())
                .with_context(|| format!("bind-mounting {} on {}", host.display(), dst.display()))
        })?;
    }
    for mnt in &m.mounts {
        let (src, kind, shown) = mount_source(cfg, kernel, mnt, ids)?;
        let idmap = shown
            .map(|(disk, seen, count)| fs_mount::Idmap::new(disk, seen, count))
            .transpose()?;
        let (dst, fd) = make_target_dir(&root, &mnt.target)?;
        rec.mount(&dst, &src, &kind, || {
            fs_mount::bind(&src, fd.as_fd(), volume_flags(mnt), idmap.as_ref())
                .with_context(|| format!("bind-mounting {} on {}", src.display(), dst.display()))
        })?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn compose_steps(
    cfg: &Config,
    kernel: &dyn Kernel,
    m: &CellManifest,
    _ids: Option<IdRange>,
    p: &CellPaths,
    rec: &mut Recorder,
) -> Result<()> {
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
            let root = Tree::open(&p.root, Links::Refuse)?;
            for entry in HOST_BASE {
                let host = Path::new("/").join(entry);
                if fs::symlink_metadata(&host).is_ok_and(|md| md.is_dir()) {
                    let (dst, _fd) = make_target_dir(&root, &Path::new("/").join(entry))?;
                    rec.mount(&dst, &host, "base", || {
                        run(&["mount", "-t", "null", "-o", "ro", &s(&host), &s(&dst)])
                    })?;
                }
            }
        }
    }
    let root = Tree::open(&p.root, Links::Refuse)?;
    if cfg.local_dev {
        let (dev, _fd) = make_target_dir(&root, Path::new("/dev"))?;
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
            let (pts, _fd) = make_target_dir(&root, Path::new("/dev/pts"))?;
            rec.mount(&pts, Path::new("ptyfs"), "dev", || {
                run(&["mount", "-t", "ptyfs", "ptyfs", &s(&pts)])
            })?;
        }
    }
    for mnt in &m.mounts {
        let (src, kind, _) = mount_source(cfg, kernel, mnt, None)?;
        let (dst, _fd) = make_target_dir(&root, &mnt.target)?;
        rec.mount(&dst, &src, &kind, || {
            fs_mount::bind_path(&src, &dst, volume_flags(mnt))
        })?;
    }
    Ok(())
}

/// Host files the host's `/usr` needs in `/etc`: the dynamic linker's cache
/// and configuration, and the alternatives links (names relative to `/etc`).
#[cfg(target_os = "linux")]
const HOST_ETC_FILES: &[&str] = &["ld.so.cache", "ld.so.conf"];
/// Flat host directories of `/etc` mirrored the same way (regular files and links).
#[cfg(target_os = "linux")]
const HOST_ETC_DIRS: &[&str] = &["ld.so.conf.d", "alternatives"];

/// One entry of the host's `/etc` a cell gets.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, PartialEq, Eq)]
enum EtcEntry {
    File(Vec<u8>),
    Link(PathBuf),
}

/// The host's `/etc` entries a cell gets, shared by the starts of one process.
#[cfg(target_os = "linux")]
type HostEtc = std::sync::Arc<Vec<(PathBuf, EtcEntry)>>;

/// [`read_host_etc`], read again only when the host changed it: a change
/// replaces an entry (a new inode, a new directory time) or edits a file (a
/// new change time), which the stamp of the files and directories shows.
#[cfg(target_os = "linux")]
fn host_etc() -> HostEtc {
    use std::os::unix::fs::MetadataExt;
    static CACHE: std::sync::Mutex<Option<(Vec<i64>, HostEtc)>> = std::sync::Mutex::new(None);
    let etc = Path::new("/etc");
    let mut stamp = Vec::new();
    let mut add = |p: &Path| match fs::metadata(p) {
        Ok(m) => stamp.extend([m.ino() as i64, m.ctime(), m.ctime_nsec(), m.size() as i64]),
        Err(_) => stamp.push(-1),
    };
    for f in HOST_ETC_FILES {
        add(&etc.join(f));
    }
    for dir in HOST_ETC_DIRS {
        let dir = etc.join(dir);
        add(&dir);
        // Links are replaced, never edited (the directory's time covers
        // them); regular files may be edited in place.
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                add(&e.path());
            }
        }
    }
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    match &*cache {
        Some((seen, entries)) if *seen == stamp => entries.clone(),
        _ => {
            let entries = HostEtc::new(read_host_etc());
            *cache = Some((stamp, entries.clone()));
            entries
        }
    }
}

/// The host's [`HOST_ETC_FILES`] and [`HOST_ETC_DIRS`] as they are now, by
/// path relative to `/etc` (`alternatives/editor`), sorted.
#[cfg(target_os = "linux")]
fn read_host_etc() -> Vec<(PathBuf, EtcEntry)> {
    let etc = Path::new("/etc");
    let mut out = Vec::new();
    for f in HOST_ETC_FILES {
        if let Ok(bytes) = fs::read(etc.join(f)) {
            out.push((PathBuf::from(f), EtcEntry::File(bytes)));
        }
    }
    for dir in HOST_ETC_DIRS {
        let Ok(entries) = fs::read_dir(etc.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let rel = Path::new(dir).join(e.file_name());
            let entry = match e.file_type() {
                Ok(t) if t.is_symlink() => fs::read_link(e.path()).ok().map(EtcEntry::Link),
                Ok(t) if t.is_file() => fs::read(e.path()).ok().map(EtcEntry::File),
                _ => None,
            };
            if let Some(entry) = entry {
                out.push((rel, entry));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Host `/etc` entries the cell's own layer holds (copies older versions
/// made, or the cell's own writes there) are refreshed at every start, so
/// the host's version wins and a host upgrade reaches the cell; the others
/// come from the shared lower layer ([`host_skeleton`]) and cost nothing per
/// cell. The layer is the cell's: nothing in it is followed (links refused on
/// the way, entries replaced, not written through); a directory the cell
/// replaced by a link or removed is left to it.
#[cfg(target_os = "linux")]
fn refresh_host_etc(
    cell: &str,
    layer: &Path,
    host: &[(PathBuf, EtcEntry)],
    ids: crate::fs::tree::IdMap,
) -> Result<()> {
    let skip = |what: &Path, e: anyhow::Error| {
        log::warn!(
            "cell {cell}: not refreshing /etc/{} from the host: {e:#}",
            what.display()
        );
    };
    let tree = Tree::open(layer, Links::Refuse)?.with_ids(ids);
    let etc = match tree.meta(Path::new("etc"))? {
        Some(m) if m.kind == Kind::Dir => tree.dir(Path::new("etc"))?,
        _ => return Ok(()),
    };
    let held = |dir: &Dir, name: &OsStr| dir.meta(name).map(|m| m.is_some());
    for (rel, entry) in host
        .iter()
        .filter(|(rel, _)| rel.parent() == Some(Path::new("")))
    {
        let name = rel.as_os_str();
        match held(&etc, name) {
            Ok(false) => {}
            Ok(true) => {
                if let Err(e) = put_entry(&etc, name, entry) {
                    skip(rel, e);
                }
            }
            Err(e) => skip(rel, e),
        }
    }
    for dir in HOST_ETC_DIRS {
        let sub = match etc.meta(dir.as_ref()) {
            Ok(Some(m)) if m.kind == Kind::Dir => etc.subdir(dir.as_ref()),
            Ok(_) => continue,
            Err(e) => Err(e),
        };
        let sub = match sub {
            Ok(d) => d,
            Err(e) => {
                skip(Path::new(dir), e);
                continue;
            }
        };
        // An opaque directory (the cell removed and remade it) hides the
        // lower layer: all of the host's entries go in, as before.
        let all = is_opaque(&sub);
        for (rel, entry) in host
            .iter()
            .filter(|(rel, _)| rel.parent() == Some(Path::new(dir)))
        {
            let name = rel.file_name().expect("a file name");
            let wanted = if all { Ok(true) } else { held(&sub, name) };
            match wanted {
                Ok(false) => {}
                Ok(true) => {
                    if let Err(e) = put_entry(&sub, name, entry) {
                        skip(rel, e);
                    }
                }
                Err(e) => skip(rel, e),
            }
        }
    }
    Ok(())
}

/// The lower layer `base` as the overlay uses it: mounted idmapped on the
/// cell's lower directory when the cell has a user namespace, else as is.
#[cfg(target_os = "linux")]
fn idmapped_base(
    rec: &mut Recorder,
    p: &CellPaths,
    base: &Path,
    idmap: Option<&fs_mount::Idmap>,
) -> Result<PathBuf> {
    let Some(idmap) = idmap else {
        return Ok(base.to_path_buf());
    };
    fs::create_dir_all(&p.lower).with_context(|| format!("creating {}", p.lower.display()))?;
    rec.mount(&p.lower, base, "base", || {
        let tree = fs_mount::clone_tree(base, Some(idmap))?;
        fs_mount::attach(&tree, &p.lower).with_context(|| {
            format!(
                "mounting {} idmapped on {}",
                base.display(),
                p.lower.display()
            )
        })
    })?;
    Ok(p.lower.clone())
}

/// Whether overlayfs marked this upper directory opaque.
#[cfg(target_os = "linux")]
fn is_opaque(dir: &Dir) -> bool {
    let mut value = [0u8; 1];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|attr| {
            matches!(rustix::fs::fgetxattr(dir.fd(), *attr, &mut value), Ok(1) if value[0] == b'y')
        })
}

/// Puts a host entry at `name` in `dir` unless it is there already (a file
/// owned by the cell's root, 0644); an existing different entry is replaced,
/// not followed.
#[cfg(target_os = "linux")]
fn put_entry(dir: &Dir, name: &OsStr, entry: &EtcEntry) -> Result<()> {
    match entry {
        EtcEntry::Link(target) => {
            if dir.read_link(name)?.as_ref() != Some(target) {
                dir.replace_symlink(name, target)?;
            }
        }
        EtcEntry::File(bytes) => {
            if let Some(m) = dir.meta(name)? {
                if m.kind == Kind::File && m.size == bytes.len() as u64 && m.mode == 0o644 {
                    let tree_file = dir.read_file(name, bytes.len() as u64)?;
                    if tree_file.as_deref() == Some(bytes.as_slice()) {
                        return Ok(());
                    }
                }
            }
            let owner = dir.tree().root_owner()?;
            dir.write(name, bytes, 0o644, owner)?;
        }
    }
    Ok(())
}

/// The lower layer for `CELL_BASE=host`, shared by every cell: the host's
/// top-level base entries (links as links, directories as empty mount
/// points) and its `/etc` entries of [`read_host_etc`]. Named after its
/// content and never changed once made, because live overlays use it: a host
/// upgrade makes a new one, which cells get at their next start.
#[cfg(target_os = "linux")]
fn host_skeleton(cfg: &Config, etc: &[(PathBuf, EtcEntry)]) -> Result<PathBuf> {
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
    let mut hash = Sha256::new();
    hash.update(layout.as_bytes());
    for (rel, entry) in etc {
        hash.update(rel.as_os_str().as_encoded_bytes());
        match entry {
            EtcEntry::File(bytes) => {
                hash.update(b"\0file\0");
                hash.update(Sha256::digest(bytes));
            }
            EtcEntry::Link(target) => {
                hash.update(b"\0link\0");
                hash.update(target.as_os_str().as_encoded_bytes());
            }
        }
        hash.update(b"\n");
    }
    let id: String = hash
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cfg.base_dir.join(format!("host-{id}"));
    if dir.is_dir() {
        return Ok(dir);
    }
    // One builder per process: the workers of a parallel apply all ask for it
    // at once, and each would otherwise build a copy to throw away.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if dir.is_dir() {
        return Ok(dir);
    }
    fs::create_dir_all(&cfg.base_dir)
        .with_context(|| format!("creating {}", cfg.base_dir.display()))?;
    // A name no other command (or thread) building the same layer uses.
    let tmp = cfg
        .base_dir
        .join(crate::fs::temp_name(format!("host-{id}").as_ref()));
    let build = || -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let mkdir = |p: &Path| {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(p)
                .with_context(|| format!("creating {}", p.display()))
        };
        mkdir(&tmp)?;
        for line in layout.lines() {
            if let Some((name, target)) = line.split_once(" -> ") {
                std::os::unix::fs::symlink(target, tmp.join(name))?;
            } else {
                mkdir(&tmp.join(line.trim_end_matches('/')))?;
            }
        }
        let etc_dir = tmp.join("etc");
        mkdir(&etc_dir)?;
        for dir in HOST_ETC_DIRS {
            if etc
                .iter()
                .any(|(rel, _)| rel.parent() == Some(Path::new(dir)))
            {
                mkdir(&etc_dir.join(dir))?;
            }
        }
        for (rel, entry) in etc {
            let path = etc_dir.join(rel);
            match entry {
                EtcEntry::Link(target) => std::os::unix::fs::symlink(target, &path)
                    .with_context(|| format!("creating {}", path.display()))?,
                EtcEntry::File(bytes) => {
                    use std::io::Write;
                    fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o644)
                        .open(&path)
                        .and_then(|mut f| f.write_all(bytes))
                        .with_context(|| format!("writing {}", path.display()))?
                }
            }
        }
        // One sync for the whole layer before it gets its name.
        rustix::fs::syncfs(fs::File::open(&tmp)?)?;
        Ok(())
    };
    if let Err(e) = build() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
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
    // Every mount is recorded before it is made and the record goes only once
    // nothing is left: without one, and with no mount on the root, there is
    // nothing to take down (no need to read the whole mount table).
    // host path: the record lives in the cell's state directory, outside its tree
    if !p.mounts_file().exists() && !mountinfo::is_mount_point(&p.root)? {
        return Ok(());
    }
    let mut errors: Vec<String> = Vec::new();
    let mut left = unmount_recorded(&p);
    for round in 0..5 {
        // Every mount is made below the root (see `compose`). The table is
        // read only while the root or something listed is still a mount
        // point (a mount no record names, one stacked on another, a busy
        // one): it grows with every running cell, and a stop reads it for
        // one cell. The root unmounts only once nothing is mounted below it.
        if mountinfo::is_mount_point(&p.root).unwrap_or(true)
            || left
                .iter()
                .any(|t| mountinfo::is_mount_point(t).unwrap_or(true))
        {
            left = mountinfo::points_under(&p.root)?;
        } else {
            left.clear();
        }
        if left.is_empty() || round == 4 {
            break;
        }
        errors.clear();
        for t in &left {
            if let Err(e) = unmount_one(&p.root, t) {
                errors.push(format!("{}: {e:#}", t.display()));
            }
        }
    }
    if !left.is_empty() {
        log::warn!(
            "cell {name}: {} cannot be unmounted one by one (a link in the way?); detaching the root",
            left.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Err(e) = detach_root(&p.root) {
            errors.push(format!("{e:#}"));
        }
        left = mountinfo::points_under(&p.root)?;
    }
    // The idmapped base under the overlay, once the overlay is gone.
    if left.is_empty() && is_mounted(&p.lower)? {
        if let Err(e) = unmount_one(&p.dir, &p.lower) {
            errors.push(format!("{}: {e:#}", p.lower.display()));
        }
        if is_mounted(&p.lower)? {
            left.push(p.lower.clone());
        }
    }
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

/// Unmounts the recorded mounts below the root that are mount points, deepest
/// first, until one does not go at once (busy, or something no record names
/// is mounted below it: [`decompose`] then reads the mount table). Returns
/// the ones tried.
#[cfg(target_os = "linux")]
fn unmount_recorded(p: &CellPaths) -> Vec<PathBuf> {
    use rustix::io::Errno;
    let recorded: Vec<PathBuf> = read_records(p)
        .into_iter()
        .map(|r| r.target)
        .filter(|t| t.starts_with(&p.root) && mountinfo::is_mount_point(t).unwrap_or(false))
        .collect();
    let tried = mountinfo::under(&recorded, &p.root);
    for t in &tried {
        match fs_mount::unmount_below(&p.root, t, false) {
            Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => {}
            Err(_) => break,
        }
    }
    tried
}

#[cfg(not(target_os = "linux"))]
fn unmount_recorded(_p: &CellPaths) -> Vec<PathBuf> {
    Vec::new()
}

/// Unmounts one mount at or below the cell's `root`, resolving its mount
/// point without following links (see [`fs_mount::unmount_below`]).
#[cfg(target_os = "linux")]
fn unmount_one(root: &Path, target: &Path) -> Result<()> {
    use rustix::io::Errno;
    let mut last = None;
    for _ in 0..5 {
        match fs_mount::unmount_below(root, target, false) {
            Ok(()) => return Ok(()),
            // Not (or no longer) a mount point at that path: the next round
            // reads the mount table again.
            Err(Errno::INVAL) | Err(Errno::NOENT) => return Ok(()),
            Err(e) if e == Errno::BUSY => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(anyhow::Error::new(e).context(io_text(e))),
        }
    }
    log::warn!(
        "{} busy ({}); detaching it lazily",
        target.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    );
    fs_mount::unmount_below(root, target, true).map_err(Into::into)
}

/// The last resort when a mount below the root cannot be reached without
/// following a link the cell planted: detach the root with everything below it.
#[cfg(target_os = "linux")]
fn detach_root(root: &Path) -> Result<()> {
    use rustix::mount::{unmount, UnmountFlags};
    unmount(root, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW)
        .with_context(|| format!("detaching {}", root.display()))
}

#[cfg(not(target_os = "linux"))]
fn detach_root(root: &Path) -> Result<()> {
    unmount_one(root, root)
}

#[cfg(not(target_os = "linux"))]
fn unmount_one(_root: &Path, target: &Path) -> Result<()> {
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
        let tree = Tree::open(root, Links::Refuse).unwrap();
        let (d, _fd) = make_target_dir(&tree, Path::new("/srv/data/x")).unwrap();
        assert_eq!(d, root.join("srv/data/x"));
        assert!(d.is_dir());
        let e = make_target_dir(&tree, Path::new("/evil/etc")).unwrap_err();
        assert!(e.to_string().contains("/evil is a symbolic link"), "{e}");
        fs::write(root.join("file"), "").unwrap();
        assert!(make_target_dir(&tree, Path::new("/file/x"))
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }
}
