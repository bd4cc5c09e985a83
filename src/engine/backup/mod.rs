//! Backups of volumes and of cells' writable overlays: create, list, verify,
//! restore, delete and prune.
//!
//! Layout: `<backup_dir>/volumes/<name>_<stamp>.tar.gz` for the contents of
//! `<volume_dir>/<name>`, `<backup_dir>/overlays/<name>_<stamp>.tar.gz` for
//! `<data_dir>/<name>/overlay`, each with a sidecar (see [`sidecar`]).
//!
//! Safety rules: a copy is only taken while nothing writes to the tree (or with
//! the writers frozen); a restore refuses while the tree is in use unless asked to
//! stop its users, builds the new tree beside the live one while checking the
//! archive's SHA-256, touches nothing (no cell stopped, no file replaced) before
//! that checksum (and, with a backup key, the MAC: [`mac`]) is good, refuses
//! device nodes and strips set-id bits from what it extracted ([`sanitize`]),
//! and swaps the tree in atomically ([`swap`]). Archives, sidecars and the
//! backup directory are read under strict modes ([`crate::fs::trust`]).
//! Archives hold ids as the cell sees them; a restore puts them on the
//! tree's range ([`view`]).
//! Confirmation and locking are the caller's (the CLI's) job.

pub mod inuse;
pub mod leftovers;
pub mod mac;
pub mod naming;
pub mod progress;
pub mod retention;
pub mod sanitize;
pub mod scan;
pub mod sidecar;
pub mod swap;
pub mod tar;
pub mod view;

use crate::config::Config;
use crate::fs::ids::IdRange;
use anyhow::{bail, Context, Result};
use inuse::{Frozen, Runtime};
use progress::Progress;
use sidecar::Sidecar;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use swap::Swap;

/// What is backed up: a volume, or a cell's writable overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Volume,
    Cell,
}

impl Kind {
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Volume => "volume",
            Kind::Cell => "cell",
        }
    }

    /// The directory below `backup_dir` holding this kind's archives.
    fn subdir(self) -> &'static str {
        match self {
            Kind::Volume => "volumes",
            Kind::Cell => "overlays",
        }
    }

    /// What an archive leaves out: overlayfs's work directory holds only
    /// what the file system makes for itself at each mount (as host root,
    /// which a view on the cell's ids cannot read).
    fn transient(self) -> &'static [&'static str] {
        match self {
            Kind::Cell if cfg!(target_os = "linux") => &["./work/*"],
            _ => &[],
        }
    }

    /// Desired-state manifests copied into the sidecar.
    fn manifest_files(self, name: &str) -> Vec<String> {
        match self {
            Kind::Volume => vec![format!("{name}.volume")],
            Kind::Cell => vec![format!("{name}.cell"), format!("{name}.apply")],
        }
    }
}

/// The tree a backup of `name` archives and a restore replaces (a cell's
/// writable layer, on its disk image if it has a disk limit).
pub fn source_dir(cfg: &Config, kind: Kind, name: &str) -> PathBuf {
    match kind {
        Kind::Volume => cfg.volume_dir.join(name),
        Kind::Cell => crate::engine::runtime::CellPaths::new(cfg, name).overlay,
    }
}

/// The host ids a tree's files are on (`None`: host ids): a volume's top
/// directory names its range, a cell's is recorded (`engine::ids`).
fn stored_range(cfg: &Config, kind: Kind, name: &str, dir: &Path) -> Result<Option<IdRange>> {
    match kind {
        Kind::Volume => Ok(crate::engine::ids::owner_range(cfg, dir)),
        Kind::Cell => crate::engine::ids::cell_range(cfg, name),
    }
}

/// Makes the tree of `name` reachable: a cell's disk image is mounted (it
/// is not after a reboot until the cell starts).
fn reach(cfg: &Config, kind: Kind, name: &str) -> Result<PathBuf> {
    if kind == Kind::Cell {
        crate::engine::runtime::disk::mount(&crate::engine::runtime::CellPaths::new(cfg, name))?;
    }
    Ok(source_dir(cfg, kind, name))
}

pub fn archive_dir(cfg: &Config, kind: Kind) -> PathBuf {
    cfg.backup_dir.join(kind.subdir())
}

/// One archive on disk, with its sidecar if it could be read.
#[derive(Debug, Clone)]
pub struct Backup {
    pub kind: Kind,
    pub name: String,
    pub path: PathBuf,
    /// Unix time from the file name (for display: order by [`Backup::seq`]).
    pub created: u64,
    /// Current size of the archive file.
    pub size: u64,
    pub sidecar: Result<Sidecar, String>,
}

impl Backup {
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The creation order its sidecar recorded (0 when unknown).
    pub fn seq(&self) -> u64 {
        self.sidecar.as_ref().map_or(0, |s| s.seq)
    }

    pub fn sidecar_path(&self) -> PathBuf {
        self.path
            .with_file_name(naming::sidecar_name(&self.file_name()))
    }

    /// A cheap check for listings (no hashing, see [`verify`]): `complete` (the
    /// sidecar is readable and the size matches), `no-sidecar`, `bad-sidecar` or
    /// `truncated` (size differs from the sidecar's).
    pub fn status(&self) -> &'static str {
        match &self.sidecar {
            Err(_) if !self.sidecar_path().exists() => "no-sidecar",
            Err(_) => "bad-sidecar",
            Ok(s) if s.size != self.size => "truncated",
            Ok(_) => "complete",
        }
    }

    fn load(kind: Kind, name: &str, path: PathBuf, created: u64) -> Result<Backup> {
        let size = fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let mut b = Backup {
            kind,
            name: name.to_string(),
            path,
            created,
            size,
            sidecar: Err(String::new()),
        };
        b.sidecar = Sidecar::read(&b.sidecar_path()).map_err(|e| format!("{e:#}"));
        Ok(b)
    }
}

/// The archives of one volume or cell, newest first: by the sequence number
/// recorded at creation, then (archives without one) by the time in the name.
pub fn list(cfg: &Config, kind: Kind, name: &str) -> Result<Vec<Backup>> {
    crate::names::validate(kind.noun(), name)?;
    let dir = archive_dir(cfg, kind);
    crate::fs::trust::check_dir(&dir, "backup directory")?;
    let mut out = Vec::new();
    for entry in crate::fs::host::dir_entries(&dir)? {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(created) = naming::archive_time(name, &file) {
            out.push(Backup::load(kind, name, entry.path(), created)?);
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse((b.seq(), b.created, b.file_name())));
    Ok(out)
}

/// Which archive a command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    Latest,
    /// A file name in the archive directory, or a path to one.
    From(String),
}

/// Finds the archive `select` names among `name`'s archives.
pub fn resolve(cfg: &Config, kind: Kind, name: &str, select: &Select) -> Result<Backup> {
    let all = list(cfg, kind, name)?;
    let dir = archive_dir(cfg, kind);
    match select {
        Select::Latest => all
            .into_iter()
            .next()
            .with_context(|| format!("{} {name} has no backups in {}", kind.noun(), dir.display())),
        Select::From(given) => {
            let file = Path::new(given)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            if given.contains('/') {
                let parent = Path::new(given).parent().unwrap_or(Path::new("."));
                let same_dir = match (parent.canonicalize(), dir.canonicalize()) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => false,
                };
                if !same_dir {
                    bail!(
                        "{given}: archives are only read from {}; copy the archive and its sidecar there first",
                        dir.display()
                    );
                }
            }
            if let Some(b) = all.iter().find(|b| b.file_name() == file) {
                return Ok(b.clone());
            }
            let known: Vec<String> = all.iter().take(5).map(Backup::file_name).collect();
            if naming::archive_time(name, &file).is_none() {
                bail!(
                    "{given}: not an archive of {} {name}; expected {name}_YYYYmmddTHHMMSSZ.tar.gz{}",
                    kind.noun(),
                    hint(&known)
                );
            }
            bail!(
                "{given}: no such archive in {}{}",
                dir.display(),
                hint(&known)
            )
        }
    }
}

fn hint(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (newest: {})", known.join(", "))
    }
}

/// The checks that need no reading: the sidecar describes this archive and the
/// file has the size it recorded.
fn check_sidecar(b: &Backup) -> Result<&Sidecar> {
    let side = match &b.sidecar {
        Ok(s) => s,
        Err(e) => bail!("{}: cannot be verified: {e}", b.file_name()),
    };
    if side.kind != b.kind.noun() || side.name != b.name || side.archive != b.file_name() {
        bail!(
            "{}: the sidecar describes {} {} ({}), not this archive",
            b.file_name(),
            side.kind,
            side.name,
            side.archive
        );
    }
    check_size(b, b.size, side)?;
    Ok(side)
}

fn check_size(b: &Backup, size: u64, side: &Sidecar) -> Result<()> {
    if size != side.size {
        bail!(
            "{}: size {size} bytes, its sidecar says {} (truncated or replaced)",
            b.file_name(),
            side.size
        );
    }
    Ok(())
}

/// Opens an archive under strict modes.
fn open_archive(b: &Backup) -> Result<fs::File> {
    crate::fs::trust::open(&b.path, "backup archive")?
        .with_context(|| format!("{} does not exist", b.path.display()))
}

/// Checks that an archive restores: its sidecar (names, size), the SHA-256 of
/// every byte, with a backup key the MAC, and what tar will need to extract
/// it (the paths of its members, see [`scan`]), all in one read.
pub fn verify(cfg: &Config, b: &Backup, progress: &mut Progress) -> Result<()> {
    let side = check_sidecar(b)?;
    let key = mac::key(cfg)?;
    let mut m = mac::expect(key.as_deref(), side, &b.file_name())?;
    let mut f = open_archive(b)?;
    let (sha, size, facts) = tar::scan_file(&mut f, m.as_mut(), progress)
        .with_context(|| format!("reading {}", b.path.display()))?;
    check_size(b, size, side)?;
    if sha != side.sha256 {
        bail!(
            "{}: checksum mismatch: the archive hashes to {sha}, its sidecar says {}",
            b.file_name(),
            side.sha256
        );
    }
    mac::check(m, side, &b.file_name())?;
    // What restore will do: sidecars of older versions do not say whether
    // there are ACLs, so tar is asked to set them everywhere.
    let facts = scan::Facts {
        acls: facts.acls || side.acls.is_none(),
        ..facts
    };
    if let Some(why) = facts.unrestorable() {
        bail!("{}: cannot be restored: {why}", b.file_name());
    }
    if side.acls == Some(false) && facts.acls {
        bail!(
            "{}: holds ACLs its sidecar does not mention: a restore would drop them",
            b.file_name()
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// Freeze the cells that could write to the tree instead of refusing.
    pub quiesce: bool,
    pub show_progress: bool,
}

/// Takes a consistent copy of a volume or a cell's overlay.
pub fn create(
    cfg: &Config,
    rt: &dyn Runtime,
    kind: Kind,
    name: &str,
    opts: CreateOptions,
) -> Result<Backup> {
    crate::names::validate(kind.noun(), name)?;
    let source = reach(cfg, kind, name)?;
    // An interrupted restore must be settled before the tree is read.
    if let Some(did) = Swap::new(&source)?.recover()? {
        log::warn!("finished an interrupted restore: {did}");
    }
    // host path: an entry of the root-only volume directory or cell runtime
    if !source.is_dir() {
        bail!(
            "{} {name} has no data at {}: nothing to back up",
            kind.noun(),
            source.display()
        );
    }
    let writers: Vec<String> = match kind {
        Kind::Volume => rt
            .volume_users(name)?
            .into_iter()
            .filter(|u| u.writable)
            .map(|u| u.cell)
            .collect(),
        Kind::Cell => rt
            .cell_running(name)?
            .then(|| name.to_string())
            .into_iter()
            .collect(),
    };
    if !writers.is_empty() && !opts.quiesce {
        let what = match kind {
            Kind::Volume => format!(
                "volume {name} is mounted read-write by running cell(s) {}",
                writers.join(", ")
            ),
            Kind::Cell => format!("cell {name} is running"),
        };
        bail!("{what}, so a copy could be inconsistent; stop it first or pass --quiesce to freeze the writers while the copy is taken");
    }

    let key = mac::key(cfg)?;
    let dir = archive_dir(cfg, kind);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    crate::fs::trust::check_dir(&dir, "backup directory")?;
    for line in leftovers::clean_archives(cfg, kind, leftovers::Of::Name(name)) {
        log::warn!("{line}");
    }
    // Under the caller's lock: no other create of this name runs meanwhile.
    let seq = list(cfg, kind, name)?
        .iter()
        .map(Backup::seq)
        .max()
        .unwrap_or(0)
        + 1;
    let (created, file) = free_archive_name(&dir, name);
    let path = dir.join(&file);
    let partial = dir.join(format!(".{file}.{}.partial", std::process::id()));

    let mut manifests = std::collections::BTreeMap::new();
    for m in kind.manifest_files(name) {
        let p = cfg.manifest_dir.join(&m);
        if let Some(text) = crate::fs::trust::read_to_string(&p, "manifest")? {
            manifests.insert(m, text);
        }
    }

    let result = (|| -> Result<Sidecar> {
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let label = format!("backing up {} {name}", kind.noun());
        let mut progress = Progress::new(&label, None, opts.show_progress);
        if progress.enabled() {
            progress = Progress::new(&label, Some(tree_bytes(&source)), true);
        }
        let mut signer = key.as_deref().map(mac::start);
        let stored = stored_range(cfg, kind, name, &source)?;
        if kind == Kind::Cell && crate::engine::ids::shift_pending(cfg, name)? {
            log::warn!(
                "cell {name} ran on host ids since its files were last on its ids {}: files it \
                 made then are archived with the ids they show through that range (start it \
                 at medium or high once to settle them)",
                stored.map(|r| r.to_string()).unwrap_or_default()
            );
        }
        let written = {
            let _frozen = Frozen::new(rt, &writers)?;
            let view = view::View::of(&source, stored)?;
            tar::create(
                view.path(),
                kind.transient(),
                &mut out,
                signer.as_mut(),
                &mut progress,
            )
            .with_context(|| format!("archiving {}", source.display()))?
        };
        progress.finish();
        if let Some(why) = written.facts.unrestorable() {
            bail!(
                "{} could not be restored from an archive: {why}; shorten or move that path",
                source.display()
            );
        }
        out.sync_all()
            .with_context(|| format!("writing {}", partial.display()))?;
        let mut side = Sidecar {
            format: sidecar::FORMAT,
            kind: kind.noun().to_string(),
            name: name.to_string(),
            archive: file.clone(),
            sha256: written.sha256,
            size: written.size,
            content_bytes: written.content_bytes,
            source: source.to_string_lossy().into_owned(),
            created,
            seq,
            acls: Some(written.facts.acls),
            quiesced: writers.clone(),
            manifests,
            mac: None,
        };
        side.mac = signer.map(|m| mac::seal(m, &side)).transpose()?;
        // Sidecar first: an archive on disk always has one.
        side.write(&dir.join(naming::sidecar_name(&file)))?;
        fs::rename(&partial, &path)
            .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
        Ok(side)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_file(dir.join(naming::sidecar_name(&file)));
        return Err(e);
    }
    Backup::load(kind, name, path, created)
}

/// An archive name not yet taken: names have one-second resolution, so a second
/// backup within the same second waits for the next one.
fn free_archive_name(dir: &Path, name: &str) -> (u64, String) {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let file = naming::archive_name(name, now.as_secs());
        if !dir.join(&file).exists() {
            return (now.as_secs(), file);
        }
        std::thread::sleep(std::time::Duration::from_nanos(
            1_000_000_000 - u64::from(now.subsec_nanos()),
        ));
    }
}

/// Bytes a tar of `dir` will roughly carry (for the progress meter only).
/// The tree is the cell's: walked without following links or entering mounts.
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(tree) = crate::fs::tree::Tree::open(dir, crate::fs::tree::Links::Refuse) else {
        return 0;
    };
    let mut total = 0u64;
    let _ = tree.visit(Path::new(""), &mut |_, _, m| {
        total += 512;
        if m.kind == crate::fs::tree::Kind::File {
            total += m.size;
        }
        Ok(())
    });
    total
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Stop the cells using the tree instead of refusing.
    pub stop: bool,
    /// Keep set-id bits and file capabilities from the archive.
    pub keep_setid: bool,
    /// Also write the manifests saved in the sidecar back to the manifest directory.
    pub manifests: bool,
    pub show_progress: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Cells stopped because of `--stop` (not started again).
    pub stopped: Vec<String>,
    pub manifests_written: Vec<PathBuf>,
}

/// Replaces the live tree with the contents of `backup`.
///
/// Order matters for safety and downtime: the cheap checks first (sidecar, size,
/// manifests, in use, free space), then one pass over the archive that extracts
/// it into a staging directory beside the live tree while hashing it. Nothing a
/// user can observe changes before that hash matches the sidecar: no cell is
/// stopped, no manifest written, the live tree untouched. Only then are the users
/// stopped (`stop`), so the downtime is the swap, not the extraction.
pub fn restore(
    cfg: &Config,
    rt: &dyn Runtime,
    backup: &Backup,
    opts: RestoreOptions,
) -> Result<Restored> {
    let (kind, name) = (backup.kind, backup.name.as_str());
    crate::names::validate(kind.noun(), name)?;
    let file = backup.file_name();
    let side = check_sidecar(backup)?;
    if opts.manifests {
        if side.manifests.is_empty() {
            bail!(
                "{file}: its sidecar holds no manifests to restore (none existed at backup time)"
            );
        }
        // Only the files this kind of backup saves, never a path from the sidecar.
        if let Some(m) = side
            .manifests
            .keys()
            .find(|m| !kind.manifest_files(name).contains(m))
        {
            bail!("{file}: its sidecar names an unexpected manifest '{m}'");
        }
    }

    let key = mac::key(cfg)?;
    let mut signer = mac::expect(key.as_deref(), side, &file)?;
    let target = reach(cfg, kind, name)?;
    let swap = Swap::new(&target)?;
    if let Some(did) = swap.recover()? {
        log::warn!("finished an interrupted restore: {did}");
    }
    // Refuse now rather than after the extraction; checked again before the swap.
    Users::of(rt, kind, name, &target)?.check(kind, name, opts.stop)?;
    let parent = target.parent().unwrap_or(Path::new("/"));
    // Volumes and cells' runtimes sit in private directories (0700).
    crate::fs::host::private_dir(parent)?;
    check_free_space(parent, side.content_bytes)?;
    // Into the ids the tree is on (a tree on host ids gets its range when a
    // cell in a user namespace next mounts it: `engine::ids`).
    let stored = stored_range(cfg, kind, name, &target)?;
    let root = root_attrs(cfg, kind, name, &target, stored)?;
    swap.prepare()?;
    let extracted = (|| -> Result<()> {
        let mut f = open_archive(backup)?;
        let mut progress = Progress::new(
            &format!("restoring {file}"),
            Some(backup.size),
            opts.show_progress,
        );
        let t = std::time::Instant::now();
        if let Some(r) = stored {
            // The cell's root owns the staging directory, seen through the view.
            std::os::unix::fs::chown(&swap.staging, Some(r.base), Some(r.base))
                .with_context(|| format!("giving {} to ids {r}", swap.staging.display()))?;
        }
        let view = view::View::of(&swap.staging, stored)?;
        // Sidecars of older versions do not say: ask tar for ACLs then.
        let acls = side.acls != Some(false);
        tar::extract(
            &mut f,
            view.path(),
            &side.sha256,
            acls,
            signer.as_mut(),
            &mut progress,
        )
        .with_context(|| format!("extracting {file}"))?;
        drop(view);
        mac::check(signer.take(), side, &file)?;
        progress.finish();
        log::debug!("extracted and verified {file} in {:?}", t.elapsed());
        let cleaned = sanitize::staged(&swap.staging, kind, opts.keep_setid, root)
            .with_context(|| format!("checking what {file} holds"))?;
        if cleaned.stripped > 0 {
            log::info!(
                "{file}: removed set-id bits or file capabilities from {} file(s) (--keep-setid keeps them)",
                cleaned.stripped
            );
        }
        Ok(())
    })();
    let stopped = extracted.and_then(|()| {
        // The checksum is good from here on; a failure still leaves the live tree.
        let t = std::time::Instant::now();
        let stopped = make_unused(rt, kind, name, &target, opts.stop);
        log::debug!(
            "checked (and with --stop stopped) the users in {:?}",
            t.elapsed()
        );
        stopped
    });
    let result = stopped.and_then(|stopped| {
        swap.commit()?;
        if let (Kind::Cell, Some(r)) = (kind, stored) {
            crate::engine::ids::restored(cfg, name, r)?;
        }
        Ok(stopped)
    });
    let stopped = match result {
        Ok(stopped) => stopped,
        Err(e) => {
            swap.abort();
            return Err(e.context(format!("{} unchanged", target.display())));
        }
    };

    let mut restored = Restored {
        stopped,
        manifests_written: Vec::new(),
    };
    if opts.manifests {
        fs::create_dir_all(&cfg.manifest_dir)
            .with_context(|| format!("creating {}", cfg.manifest_dir.display()))?;
        for (m, text) in &side.manifests {
            let p = cfg.manifest_dir.join(m);
            crate::fs::host::write_atomic(&p, text.as_bytes())?;
            restored.manifests_written.push(p);
        }
    }
    Ok(restored)
}

/// The top directory's attributes after a restore: the live tree's, else
/// the volume's declared mode (0755 without one), owned by the cell's root
/// (through the tree's range, `stored`).
fn root_attrs(
    cfg: &Config,
    kind: Kind,
    name: &str,
    target: &Path,
    stored: Option<IdRange>,
) -> Result<sanitize::RootAttrs> {
    if let Ok(m) = fs::symlink_metadata(target) {
        if m.is_dir() {
            return Ok(sanitize::RootAttrs {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
            });
        }
    }
    let declared = match kind {
        Kind::Volume => crate::engine::manifest::load_volume(cfg, name)?.and_then(|v| v.mode),
        Kind::Cell => None,
    };
    let ids = stored.map_or(crate::fs::tree::IdMap::IDENTITY, |r| r.map());
    Ok(sanitize::RootAttrs {
        mode: declared.unwrap_or(0o755),
        uid: ids.host_uid(0)?,
        gid: ids.host_gid(0)?,
    })
}

/// The cells and mounts using the tree a restore replaces.
struct Users {
    cells: Vec<String>,
    mounts: Vec<PathBuf>,
}

impl Users {
    fn of(rt: &dyn Runtime, kind: Kind, name: &str, target: &Path) -> Result<Users> {
        let cells: Vec<String> = match kind {
            Kind::Volume => rt.volume_users(name)?.into_iter().map(|u| u.cell).collect(),
            Kind::Cell => rt
                .cell_running(name)?
                .then(|| name.to_string())
                .into_iter()
                .collect(),
        };
        Ok(Users {
            cells,
            mounts: mounts_of(rt, target)?,
        })
    }

    /// Refuses while anything uses the tree, unless `stop` may stop its cells;
    /// with `stop`, still refuses mounts no cell explains.
    fn check(&self, kind: Kind, name: &str, stop: bool) -> Result<()> {
        if self.cells.is_empty() && self.mounts.is_empty() {
            return Ok(());
        }
        if !stop {
            let mut why = Vec::new();
            if !self.cells.is_empty() {
                why.push(match kind {
                    Kind::Volume => format!("running cell(s) {} mount it", self.cells.join(", ")),
                    Kind::Cell => "the cell is running".to_string(),
                });
            }
            if !self.mounts.is_empty() {
                why.push(format!("it is mounted at {}", paths(&self.mounts)));
            }
            bail!(
                "{} {name} is in use ({}); pass --stop to stop its cells first",
                kind.noun(),
                why.join("; ")
            );
        }
        if self.cells.is_empty() {
            bail!(still_mounted(kind, name, &self.mounts));
        }
        Ok(())
    }
}

fn mounts_of(rt: &dyn Runtime, target: &Path) -> Result<Vec<PathBuf>> {
    if target.exists() {
        rt.mounts_of(target)
    } else {
        Ok(Vec::new())
    }
}

fn paths(ps: &[PathBuf]) -> String {
    let v: Vec<String> = ps.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

fn still_mounted(kind: Kind, name: &str, mounts: &[PathBuf]) -> String {
    format!(
        "{} {name} is still mounted at {} (not by a cell cellmgr stops); unmount it first",
        kind.noun(),
        paths(mounts)
    )
}

/// Right before the swap: refuses while cells or mounts use the tree, or stops
/// the cells with `stop`. The caller holds the cellmgr lock, so no cell starts
/// meanwhile, but a mount may have appeared since the first check.
fn make_unused(
    rt: &dyn Runtime,
    kind: Kind,
    name: &str,
    target: &Path,
    stop: bool,
) -> Result<Vec<String>> {
    let users = Users::of(rt, kind, name, target)?;
    users.check(kind, name, stop)?;
    for c in &users.cells {
        rt.stop_cell(c)
            .with_context(|| format!("stopping cell {c}"))?;
    }
    if !users.cells.is_empty() {
        let still = mounts_of(rt, target)?;
        if !still.is_empty() {
            bail!(still_mounted(kind, name, &still));
        }
    }
    Ok(users.cells)
}

fn check_free_space(dir: &Path, need: u64) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let st = rustix::fs::statvfs(dir).with_context(|| format!("statvfs {}", dir.display()))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < need {
        bail!(
            "{} has {} free, the restore needs about {} next to the live data",
            dir.display(),
            progress::bytes(free),
            progress::bytes(need)
        );
    }
    Ok(())
}

/// Deletes an archive and its sidecar.
pub fn delete(b: &Backup) -> Result<()> {
    fs::remove_file(&b.path).with_context(|| format!("removing {}", b.path.display()))?;
    match fs::remove_file(b.sidecar_path()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", b.sidecar_path().display()))
        }
        _ => {}
    }
    if let Some(dir) = b.path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// Keeps the `keep` newest archives of `name` that verify (that restore), and
/// any newer than those; deletes the rest. `keep == 0` keeps all. Returns the
/// deleted archives.
pub fn prune(cfg: &Config, kind: Kind, name: &str, keep: u32) -> Result<Vec<Backup>> {
    let all = list(cfg, kind, name)?;
    let doomed = retention::select(all.len(), keep as usize, |i| {
        verify(cfg, &all[i], &mut Progress::hidden()).is_ok()
    });
    let mut deleted = Vec::new();
    for i in doomed {
        delete(&all[i])?;
        deleted.push(all[i].clone());
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests;
