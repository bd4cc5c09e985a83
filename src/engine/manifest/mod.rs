//! Desired state: the operator's manifests in `cfg.manifest_dir` (cells(5)).
//!
//! - `<name>.cell`: [`CellManifest`], the 15 `CELL_*` keys.
//! - `<name>.volume`: [`VolumeManifest`], `VOLUME_NAME` and `VOLUME_MODE`.
//! - `<name>.apply`: the provisioning plan (parsed by the apply engine; here only
//!   its presence is recorded).
//!
//! Files are rc.conf-style `KEY=value`, parsed strictly (never sourced): unknown
//! keys, duplicates, bad values and a name that differs from the file name are
//! errors naming file, line and the expected form. [`load_all`] also checks what
//! needs several files: every mounted volume and every dependency must exist.
//!
//! Writes go through [`write_cell`]/[`write_volume`]: an update touches only the
//! keys it changes (comments and order stay), the result is validated before it
//! replaces the file, and the file is replaced atomically.

mod cell;
pub mod edit;
pub mod mounts;
mod volume;

pub use cell::{
    format_limit, format_ports, parse_names, parse_ports, CellManifest, LimitKeys, LogSettings,
    CELL_KEYS, FACILITIES, LEVELS, LIMIT_KEYS,
};
pub use mounts::{Mount, MountSource};
pub use volume::{format_mode, parse_mode, VolumeManifest, VOLUME_KEYS};
// Manifests read and write booleans as every rc.conf-style file does.
pub use crate::rcconf::{parse_yes_no, yes_no};

use crate::config::Config;
use crate::fs::host::{dir_entries, write_atomic};
use crate::rcconf::FileError;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// Everything the operator declared.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// By name; iteration is in byte order of the name.
    pub cells: BTreeMap<String, Box<CellManifest>>,
    pub volumes: BTreeMap<String, VolumeManifest>,
    /// Names with a `<name>.apply` plan file.
    pub apply_files: BTreeSet<String>,
}

pub fn cell_path(cfg: &Config, name: &str) -> PathBuf {
    cfg.manifest_dir.join(format!("{name}.cell"))
}

pub fn volume_path(cfg: &Config, name: &str) -> PathBuf {
    cfg.manifest_dir.join(format!("{name}.volume"))
}

pub fn apply_path(cfg: &Config, name: &str) -> PathBuf {
    cfg.manifest_dir.join(format!("{name}.apply"))
}

/// The manifest files in the directory: (stem, extension) for `.cell`, `.volume`
/// and `.apply`, sorted. A missing directory is empty desired state.
fn scan(dir: &Path) -> Result<Vec<(String, &'static str)>> {
    let mut out = Vec::new();
    for entry in dir_entries(dir)? {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        for ext in ["cell", "volume", "apply"] {
            if let Some(stem) = file.strip_suffix(ext).and_then(|s| s.strip_suffix('.')) {
                if !stem.is_empty() && !stem.starts_with('.') {
                    out.push((stem.to_string(), ext));
                }
            }
        }
    }
    // Each (name, kind) once: an unstable sort gives the same order.
    out.sort_unstable();
    Ok(out)
}

/// A manifest's text, under strict modes ([`crate::fs::trust`]); `None` when missing.
fn read_manifest(path: &Path) -> Result<Option<String>, FileError> {
    crate::fs::trust::read_to_string(path, "manifest").map_err(|e| {
        let why = match e.downcast_ref::<crate::fs::trust::Untrusted>() {
            Some(u) => format!("refused: {}", u.reason()),
            None => format!("cannot read: {e:#}"),
        };
        FileError::new(path, None, why)
    })
}

fn read(path: &Path) -> Result<String, FileError> {
    read_manifest(path)?.ok_or_else(|| FileError::new(path, None, "cannot read: it disappeared"))
}

/// One file of the manifest directory, read and parsed.
enum Loaded {
    Cell(Result<Box<CellManifest>, FileError>),
    Volume(Result<VolumeManifest, FileError>),
    Apply,
}

/// Reads and parses the scanned files, in their order. A large directory is
/// shared out among the cores (10,000 manifests are read and parsed in a
/// fraction of the time one core takes).
fn load_files(cfg: &Config, files: Vec<(String, &'static str)>) -> Vec<(String, Loaded)> {
    let load = |(name, ext): (String, &'static str)| {
        let loaded = match ext {
            "cell" => {
                let path = cell_path(cfg, &name);
                Loaded::Cell(
                    read(&path)
                        .and_then(|t| CellManifest::parse(&path, &t, &name, cfg))
                        .and_then(|m| m.check_disk_mounts(&cfg.default_limits).map(|()| m))
                        .map(Box::new),
                )
            }
            "volume" => {
                let path = volume_path(cfg, &name);
                Loaded::Volume(read(&path).and_then(|t| VolumeManifest::parse(&path, &t, &name)))
            }
            _ => Loaded::Apply,
        };
        (name, loaded)
    };
    crate::engine::par::map(files, 256, load)
}

/// Reads one cell manifest, if it exists.
pub fn load_cell(cfg: &Config, name: &str) -> Result<Option<CellManifest>> {
    crate::names::validate("cell", name)?;
    load_cell_file(cfg, &cell_path(cfg, name), name)
}

/// Reads a file in the cell format (a manifest, or a rendered `cell.conf`) of
/// cell `name`, if it exists.
pub fn load_cell_file(cfg: &Config, path: &Path, name: &str) -> Result<Option<CellManifest>> {
    let Some(text) = read_manifest(path)? else {
        return Ok(None);
    };
    Ok(Some(CellManifest::parse(path, &text, name, cfg)?))
}

/// Reads one volume manifest, if it exists.
pub fn load_volume(cfg: &Config, name: &str) -> Result<Option<VolumeManifest>> {
    crate::names::validate("volume", name)?;
    let path = volume_path(cfg, name);
    let Some(text) = read_manifest(&path)? else {
        return Ok(None);
    };
    Ok(Some(VolumeManifest::parse(&path, &text, name)?))
}

impl Desired {
    /// Loads every manifest, keeping the valid ones and returning every error
    /// (per-file and cross-file) alongside.
    pub fn load_partial(cfg: &Config) -> Result<(Desired, Vec<FileError>)> {
        let mut d = Desired::default();
        let mut errors = Vec::new();
        // The files come in name order: the maps are built from sorted runs
        // at once, not one insertion at a time.
        let mut cells = Vec::new();
        let mut volumes = Vec::new();
        for (name, loaded) in load_files(cfg, scan(&cfg.manifest_dir)?) {
            match loaded {
                Loaded::Cell(Ok(m)) => cells.push((name, m)),
                Loaded::Volume(Ok(m)) => volumes.push((name, m)),
                Loaded::Cell(Err(e)) | Loaded::Volume(Err(e)) => errors.push(e),
                Loaded::Apply => {
                    d.apply_files.insert(name);
                }
            }
        }
        d.cells = cells.into_iter().collect();
        d.volumes = volumes.into_iter().collect();
        // Each cell's checks that need no other cell's ports, on every core;
        // the errors in the order one pass finds them: every reference
        // first, then each cell's mounts and ports.
        let checked = crate::engine::par::map(d.cells.values().collect(), 1024, |m| {
            (d.check_cell(m), check_mounts(cfg, m))
        });
        let mut mounts = Vec::with_capacity(checked.len());
        for (refs, wrong) in checked {
            errors.extend(refs);
            mounts.push(wrong);
        }
        // A port is reported on every cell after the first (in name order)
        // that reserves it.
        let mut owners: BTreeMap<u16, &CellManifest> = BTreeMap::new();
        for (m, wrong) in d.cells.values().zip(mounts) {
            errors.extend(wrong);
            let earlier = m
                .reserved_ports
                .iter()
                .filter_map(|p| owners.get(p).copied());
            errors.extend(check_ports(m, earlier));
            for p in &m.reserved_ports {
                owners.entry(*p).or_insert(m);
            }
        }
        Ok((d, errors))
    }

    /// Cross-file checks: every mounted volume has a manifest, every dependency
    /// names a declared cell.
    pub fn check(&self) -> Vec<FileError> {
        self.cells
            .values()
            .flat_map(|m| self.check_cell(m))
            .collect()
    }

    /// [`Desired::check`] of one cell.
    fn check_cell(&self, m: &CellManifest) -> Vec<FileError> {
        check_refs(
            m,
            |c| self.cells.contains_key(c),
            |v| self.volumes.contains_key(v),
        )
    }

    /// Names of the cells whose manifests mount `volume`.
    pub fn volume_users(&self, volume: &str) -> Vec<&str> {
        self.cells
            .values()
            .filter(|c| c.volumes().any(|v| v == volume))
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Names of the cells that depend on `cell`.
    pub fn dependents(&self, cell: &str) -> Vec<&str> {
        self.cells
            .values()
            .filter(|c| c.depends_on.iter().any(|d| d == cell))
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Orders `names` so that every cell comes after the cells it depends on
    /// (dependencies outside `names` do not constrain the order); ties in name
    /// order. A cycle is an error naming its members.
    pub fn dependency_order(&self, names: &[String]) -> Result<Vec<String>> {
        let set: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let mut pending: BTreeMap<&str, BTreeSet<&str>> = set
            .iter()
            .map(|n| {
                let deps = self
                    .cells
                    .get(*n)
                    .map(|c| {
                        c.depends_on
                            .iter()
                            .map(String::as_str)
                            .filter(|d| set.contains(d))
                            .collect()
                    })
                    .unwrap_or_default();
                (*n, deps)
            })
            .collect();
        let mut out = Vec::new();
        while !pending.is_empty() {
            let ready: Vec<&str> = pending
                .iter()
                .filter(|(_, deps)| deps.is_empty())
                .map(|(n, _)| *n)
                .collect();
            if ready.is_empty() {
                let members: Vec<&str> = pending.keys().copied().collect();
                bail!(
                    "dependency cycle among: {} (check CELL_DEPENDS_ON)",
                    members.join(", ")
                );
            }
            for n in ready {
                pending.remove(n);
                for deps in pending.values_mut() {
                    deps.remove(n);
                }
                out.push(n.to_string());
            }
        }
        Ok(out)
    }
}

/// Loads all desired state, failing with every error (one per line) if any
/// manifest is invalid.
pub fn load_all(cfg: &Config) -> Result<Desired> {
    let (d, errors) = Desired::load_partial(cfg)?;
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        bail!(
            "invalid desired state in {}:\n{}",
            cfg.manifest_dir.display(),
            lines.join("\n")
        );
    }
    Ok(d)
}

/// What one cell's manifest cannot say alone is wrong, found before anything
/// runs (create, set, edit, apply --dry-run): a mount target inside the host
/// base that `CELL_BASE=host` mounts read-only, a reserved port another cell
/// (of `others`) reserves too.
fn check_against<'a>(
    cfg: &Config,
    m: &CellManifest,
    others: impl Iterator<Item = &'a CellManifest>,
) -> Vec<FileError> {
    let mut errors = check_mounts(cfg, m);
    errors.extend(check_ports(m, others));
    errors
}

/// A mount target inside the host base (see [`check_against`]).
fn check_mounts(cfg: &Config, m: &CellManifest) -> Vec<FileError> {
    if cfg.base != crate::config::BaseSource::Host {
        return Vec::new();
    }
    let mut errors = Vec::new();
    for mount in &m.mounts {
        // `starts_with("/usr")` of an absolute path, without building paths.
        let mut parts = mount.target.components();
        let top = match (parts.next(), parts.next()) {
            (Some(Component::RootDir), Some(Component::Normal(top))) => top,
            _ => continue,
        };
        let base = crate::engine::runtime::compose::HOST_BASE
            .iter()
            .find(|d| top == std::ffi::OsStr::new(d));
        if let Some(base) = base {
            errors.push(FileError::new(
                &m.path,
                m.line_of("CELL_VOLUME_MOUNTS"),
                format!(
                    "CELL_VOLUME_MOUNTS: mount target {} is inside /{base}, which CELL_BASE=host mounts read-only; use a target in the cell's writable tree (/srv, /var, /home, /opt, ...)",
                    mount.target.display(),
                ),
            ));
        }
    }
    errors
}

/// Reserved ports another cell (of `others`) reserves too (see [`check_against`]).
fn check_ports<'a>(
    m: &CellManifest,
    others: impl Iterator<Item = &'a CellManifest>,
) -> Vec<FileError> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for other in others.filter(|o| o.name != m.name && seen.insert(o.name.clone())) {
        for port in m
            .reserved_ports
            .iter()
            .filter(|p| other.reserved_ports.contains(p))
        {
            errors.push(FileError::new(
                &m.path,
                m.line_of("CELL_CREATE_RESERVED_PORTS"),
                format!(
                    "CELL_CREATE_RESERVED_PORTS: port {port} is also reserved by cell {} ({}); a port belongs to one cell",
                    other.name,
                    other.path.display()
                ),
            ));
        }
    }
    errors
}

/// The references of one cell that do not resolve (and an env file that is
/// not root's alone), as file:line errors.
fn check_refs(
    m: &CellManifest,
    cell_exists: impl Fn(&str) -> bool,
    volume_exists: impl Fn(&str) -> bool,
) -> Vec<FileError> {
    let mut errors = Vec::new();
    for v in m.volumes() {
        if !volume_exists(v) {
            errors.push(FileError::new(
                &m.path,
                m.line_of("CELL_VOLUME_MOUNTS"),
                format!("CELL_VOLUME_MOUNTS: unknown volume '{v}': expected a {v}.volume manifest (cellmgr volume create {v})"),
            ));
        }
    }
    if let Some(f) = &m.service.env_file {
        if let Err(e) = crate::supervise::environ::check_file(f) {
            errors.push(FileError::new(
                &m.path,
                m.line_of("CELL_SUPERVISE_ENV_FILE"),
                format!("CELL_SUPERVISE_ENV_FILE: {e}"),
            ));
        }
    }
    for d in &m.depends_on {
        if !cell_exists(d) {
            errors.push(FileError::new(
                &m.path,
                m.line_of("CELL_DEPENDS_ON"),
                format!("CELL_DEPENDS_ON: unknown cell '{d}': expected the name of a declared cell ({d}.cell)"),
            ));
        }
    }
    errors
}

/// Whether a write creates a file or changes an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Fails if the file exists.
    Create,
    /// Fails if the file does not exist.
    Update,
}

fn prepare_text(
    path: &Path,
    mode: WriteMode,
    header: &str,
    updates: &[(&str, Option<String>)],
) -> Result<String> {
    let old = read_manifest(path)?;
    match (mode, &old) {
        (WriteMode::Create, Some(_)) => bail!(
            "{} already exists: use 'set' or 'edit' to change it",
            path.display()
        ),
        (WriteMode::Update, None) => bail!("{} does not exist", path.display()),
        _ => {}
    }
    edit::update(old.as_deref(), header, updates)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Replaces the manifest at `path` with `text` atomically, creating the
/// manifest directory first if needed.
fn store(cfg: &Config, path: &Path, text: &str) -> Result<()> {
    // Manifests may hold secrets (tokens in commands): 0600 in a 0700 directory.
    if !cfg.manifest_dir.is_dir() {
        crate::fs::host::private_dir(&cfg.manifest_dir)?;
    }
    write_atomic(path, text.as_bytes())
}

/// Creates or updates `<name>.cell` with `updates` (`None` removes a key). The
/// result is validated, including that its volumes and dependencies are
/// declared, before the file is replaced atomically; on error nothing changes.
pub fn write_cell(
    cfg: &Config,
    name: &str,
    mode: WriteMode,
    updates: &[(&str, Option<String>)],
) -> Result<CellManifest> {
    let planned = plan_cell(cfg, name, mode, updates)?;
    store(cfg, &planned.manifest.path, &planned.text)?;
    Ok(planned.manifest)
}

/// A `<name>.cell` write worked out but not done: the new text, validated, and
/// what it changes.
pub struct PlannedCell {
    pub manifest: CellManifest,
    pub text: String,
    /// Keys whose normalised value changes (an unset key counts as empty; a
    /// file that does not parse counts as all keys unset).
    pub changes: Vec<KeyChange>,
}

/// One manifest key whose normalised value a write changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    pub key: &'static str,
    pub old: String,
    pub new: String,
}

/// Works out a `write_cell` without writing: validation errors are the same.
pub fn plan_cell(
    cfg: &Config,
    name: &str,
    mode: WriteMode,
    updates: &[(&str, Option<String>)],
) -> Result<PlannedCell> {
    crate::names::validate("cell", name)?;
    let path = cell_path(cfg, name);
    let header = format!("# Cell {name}: desired state for cellmgr(8); keys in cells(5).");
    let text = prepare_text(&path, mode, &header, updates)?;
    let manifest = validate_cell_text(cfg, name, &text)?;
    let before = load_cell(cfg, name)
        .ok()
        .flatten()
        .map(|m| m.assignments())
        .unwrap_or_default();
    let changes = manifest
        .assignments()
        .into_iter()
        .filter_map(|(key, new)| {
            let old = before
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (old != new).then_some(KeyChange { key, old, new })
        })
        .collect();
    Ok(PlannedCell {
        manifest,
        text,
        changes,
    })
}

/// Stores a planned cell manifest.
pub fn store_cell(cfg: &Config, planned: &PlannedCell) -> Result<()> {
    store(cfg, &planned.manifest.path, &planned.text)
}

/// Parses a would-be `<name>.cell` text and checks its references against the
/// manifests on disk.
pub fn validate_cell_text(cfg: &Config, name: &str, text: &str) -> Result<CellManifest> {
    let path = cell_path(cfg, name);
    let m = CellManifest::parse(&path, text, name, cfg)?;
    m.check_disk_mounts(&cfg.default_limits)?;
    let mut errors = check_refs(
        &m,
        |c| cell_path(cfg, c).exists(),
        |v| volume_path(cfg, v).exists(),
    );
    // Other manifests as they are; their own errors are not this edit's.
    let (others, _) = Desired::load_partial(cfg)?;
    errors.extend(check_against(
        cfg,
        &m,
        others.cells.values().map(Box::as_ref),
    ));
    match errors.len() {
        0 => Ok(m),
        1 => Err(errors.remove(0).into()),
        _ => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            bail!("{}", lines.join("\n"))
        }
    }
}

/// Creates or updates `<name>.volume`, validated first, written atomically.
pub fn write_volume(
    cfg: &Config,
    name: &str,
    mode: WriteMode,
    updates: &[(&str, Option<String>)],
) -> Result<VolumeManifest> {
    crate::names::validate("volume", name)?;
    let path = volume_path(cfg, name);
    let header = format!("# Volume {name}: desired state for cellmgr(8); keys in cells(5).");
    let text = prepare_text(&path, mode, &header, updates)?;
    let m = VolumeManifest::parse(&path, &text, name)?;
    store(cfg, &path, &text)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// A config whose manifest directory is the returned temp dir.
    fn cfg(tag: &str) -> (TempDir, Config) {
        let dir = TempDir::new(&format!("manifest-{tag}"));
        let c = Config {
            manifest_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        (dir, c)
    }

    fn put(cfg: &Config, file: &str, text: &str) {
        std::fs::write(cfg.manifest_dir.join(file), text).unwrap();
    }

    #[test]
    fn load_all_checks_references_with_file_and_line() {
        let (_dir, c) = cfg("refs");
        put(
            &c,
            "web.cell",
            "CELL_NAME=web\nCELL_DEPENDS_ON=db\nCELL_VOLUME_MOUNTS=www:/srv\n",
        );
        put(&c, "notes.txt", "ignored");
        let e = load_all(&c).unwrap_err().to_string();
        let web = c.manifest_dir.join("web.cell");
        assert!(
            e.contains(&format!(
                "{}:3: CELL_VOLUME_MOUNTS: unknown volume 'www'",
                web.display()
            )),
            "{e}"
        );
        assert!(
            e.contains(&format!(
                "{}:2: CELL_DEPENDS_ON: unknown cell 'db'",
                web.display()
            )),
            "{e}"
        );
        put(&c, "db.cell", "CELL_AUTOSTART=YES\n");
        put(&c, "www.volume", "VOLUME_MODE=0755\n");
        put(&c, "web.apply", "# plan\n");
        let d = load_all(&c).unwrap();
        assert_eq!(d.cells.keys().collect::<Vec<_>>(), ["db", "web"]);
        assert_eq!(d.volume_users("www"), ["web"]);
        assert_eq!(d.dependents("db"), ["web"]);
        assert!(d.apply_files.contains("web"));
        assert_eq!(
            d.dependency_order(&["web".into(), "db".into()]).unwrap(),
            ["db", "web"]
        );
    }

    #[test]
    fn cycles_are_reported() {
        let (_dir, c) = cfg("cycle");
        put(&c, "a.cell", "CELL_DEPENDS_ON=b\n");
        put(&c, "b.cell", "CELL_DEPENDS_ON=a\n");
        put(&c, "c.cell", "");
        let d = load_all(&c).unwrap();
        let e = d
            .dependency_order(&["a".into(), "b".into(), "c".into()])
            .unwrap_err();
        assert!(
            e.to_string().contains("dependency cycle among: a, b"),
            "{e}"
        );
    }

    #[test]
    fn writes_keep_comments_and_refuse_invalid_results() {
        let (_dir, c) = cfg("write");
        put(
            &c,
            "web.cell",
            "# keep\nCELL_NAME=web\nCELL_SUPERVISE_CMD=a # cmd\n",
        );
        let m = write_cell(
            &c,
            "web",
            WriteMode::Update,
            &[
                ("CELL_SUPERVISE_CMD", Some("b c".into())),
                ("CELL_AUTOSTART", Some("YES".into())),
            ],
        )
        .unwrap();
        assert!(m.autostart);
        let text = std::fs::read_to_string(c.manifest_dir.join("web.cell")).unwrap();
        assert_eq!(
            text,
            "# keep\nCELL_NAME=web\nCELL_SUPERVISE_CMD='b c' # cmd\nCELL_AUTOSTART=YES\n"
        );
        // An invalid update changes nothing.
        for bad in [
            ("CELL_CREATE_PROFILE", "max"),
            ("CELL_VOLUME_MOUNTS", "nosuch:/x"),
            ("CELL_DEPENDS_ON", "nosuch"),
        ] {
            assert!(
                write_cell(&c, "web", WriteMode::Update, &[(bad.0, Some(bad.1.into()))]).is_err()
            );
            assert_eq!(
                std::fs::read_to_string(c.manifest_dir.join("web.cell")).unwrap(),
                text
            );
        }
        assert!(write_cell(&c, "web", WriteMode::Create, &[])
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        assert!(write_cell(&c, "new", WriteMode::Update, &[])
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        write_volume(
            &c,
            "v",
            WriteMode::Create,
            &[("VOLUME_NAME", Some("v".into()))],
        )
        .unwrap();
        assert!(write_volume(
            &c,
            "v",
            WriteMode::Update,
            &[("VOLUME_MODE", Some("9".into()))]
        )
        .is_err());
    }
}
