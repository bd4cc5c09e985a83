//! `CELL_VOLUME_MOUNTS` entries: `volume:/target[:ro|rw][:noexec]` and, when
//! `CELL_ALLOW_HOST_MOUNTS=YES` in cellmgr.conf,
//! `host:/abs/path:/target[:ro|rw][:noexec]`. Every such mount is `nosuid` and
//! `nodev`; `noexec` also forbids running programs from it.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MountSource {
    /// A named volume: `<volume_dir>/<name>`.
    Volume(String),
    /// A host directory (absolute), allowed only with `CELL_ALLOW_HOST_MOUNTS=YES`.
    Host(PathBuf),
}

/// One mount of a cell: source, absolute target inside the cell, read-only or not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    pub source: MountSource,
    /// Absolute, normalised path inside the cell.
    pub target: PathBuf,
    pub read_only: bool,
    /// Mounted `noexec` (programs in it cannot be run).
    #[serde(default)]
    pub noexec: bool,
}

impl fmt::Display for Mount {
    /// The normalised manifest form, mode always explicit: `data:/srv:rw`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.read_only { "ro" } else { "rw" };
        let exec = if self.noexec { ":noexec" } else { "" };
        match &self.source {
            MountSource::Volume(v) => write!(f, "{v}:{}:{mode}{exec}", self.target.display()),
            MountSource::Host(p) => {
                write!(
                    f,
                    "host:{}:{}:{mode}{exec}",
                    p.display(),
                    self.target.display()
                )
            }
        }
    }
}

/// Targets a cell may not mount over (the kernel backend provides these) and
/// everything below them.
const FORBIDDEN_TARGETS: &[&str] = &["/dev", "/proc", "/sys", "/.overlay"];

const EXPECTED: &str =
    "expected volume:/target[:ro|rw][:noexec] (or host:/abs/path:/target[:ro|rw][:noexec] with CELL_ALLOW_HOST_MOUNTS=YES)";

/// A path is usable as a mount target or host source: absolute, no `.`/`..`,
/// no empty components or trailing slash, no control characters.
fn check_abs_path(what: &str, s: &str) -> Result<PathBuf, String> {
    // Quoted only for an error: manifests are parsed at every read.
    let shown = || crate::output::quoted(s);
    if !s.starts_with('/') {
        return Err(format!("{what} {} is not absolute", shown()));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(format!("{what} {} contains control characters", shown()));
    }
    if s != "/" && (s.ends_with('/') || s.contains("//")) {
        return Err(format!(
            "{what} {} is not normalised: write it without empty components or a trailing '/'",
            shown()
        ));
    }
    let p = Path::new(s);
    if p.components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
    {
        return Err(format!("{what} {} may not contain '.' or '..'", shown()));
    }
    Ok(p.to_path_buf())
}

fn check_target(s: &str) -> Result<PathBuf, String> {
    let p = check_abs_path("mount target", s)?;
    if p == Path::new("/") {
        return Err(
            "mount target '/' is not allowed: the cell's root is composed by cellmgr".into(),
        );
    }
    if let Some(f) = FORBIDDEN_TARGETS.iter().find(|f| p.starts_with(f)) {
        return Err(format!(
            "mount target {} is not allowed: {f} and everything below it belong to the cell runtime",
            crate::output::quoted(s)
        ));
    }
    Ok(p)
}

impl Mount {
    /// Parses one entry. `allow_host` is `CELL_ALLOW_HOST_MOUNTS` from cellmgr.conf.
    pub fn parse(entry: &str, allow_host: bool) -> Result<Mount, String> {
        let entry = entry.trim();
        let shown = || crate::output::quoted(entry);
        let parts: Vec<&str> = entry.split(':').collect();
        let (source, rest) = if parts[0] == "host" {
            if !allow_host {
                return Err(format!(
                    "host mount {} is not allowed: set CELL_ALLOW_HOST_MOUNTS=YES in cellmgr.conf, or use a named volume",
                    shown()
                ));
            }
            if parts.len() < 3 {
                return Err(format!("mount {}: {EXPECTED}", shown()));
            }
            let src = check_abs_path("host mount source", parts[1])?;
            if src == Path::new("/") {
                return Err("host mount source '/' is not allowed".into());
            }
            (MountSource::Host(src), &parts[2..])
        } else {
            if parts.len() < 2 {
                return Err(format!("mount {}: {EXPECTED}", shown()));
            }
            crate::names::validate("volume", parts[0]).map_err(|e| e.to_string())?;
            (MountSource::Volume(parts[0].to_string()), &parts[1..])
        };
        let (read_only, noexec) = match rest {
            [_] => (false, false),
            [_, "rw"] => (false, false),
            [_, "ro"] => (true, false),
            [_, "noexec"] => (false, true),
            [_, "rw", "noexec"] => (false, true),
            [_, "ro", "noexec"] => (true, true),
            [_, mode] => {
                let mode = crate::output::quoted(mode);
                return Err(format!(
                    "mount {}: mode {mode} must be ro or rw (optionally followed by :noexec)",
                    shown()
                ));
            }
            _ => return Err(format!("mount {} has too many ':'; {EXPECTED}", shown())),
        };
        let target = check_target(rest[0])?;
        Ok(Mount {
            source,
            target,
            read_only,
            noexec,
        })
    }

    /// The volume name, for volume mounts.
    pub fn volume(&self) -> Option<&str> {
        match &self.source {
            MountSource::Volume(v) => Some(v),
            MountSource::Host(_) => None,
        }
    }
}

/// Parses a comma-separated list and refuses equal or nested targets.
pub fn parse_list(value: &str, allow_host: bool) -> Result<Vec<Mount>, String> {
    let mut out: Vec<Mount> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let m = Mount::parse(entry, allow_host)?;
        if let Some(other) = out
            .iter()
            .find(|o| o.target.starts_with(&m.target) || m.target.starts_with(&o.target))
        {
            return Err(format!(
                "mount targets overlap: {} and {} (targets may not be equal or nested)",
                crate::output::quoted(&other.target.to_string_lossy()),
                crate::output::quoted(&m.target.to_string_lossy())
            ));
        }
        out.push(m);
    }
    Ok(out)
}

/// The normalised list form written to manifests and shown in reads.
pub fn format_list(mounts: &[Mount]) -> String {
    mounts
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_mounts_default_to_rw_and_normalise() {
        let m = parse_list("data:/srv/data, logs:/var/log/app:ro", false).unwrap();
        assert_eq!(format_list(&m), "data:/srv/data:rw,logs:/var/log/app:ro");
        assert_eq!(m[0].volume(), Some("data"));
    }

    #[test]
    fn noexec_follows_the_mode() {
        let m = parse_list("data:/srv/data:noexec,logs:/var/log/app:ro:noexec", false).unwrap();
        assert!(m[0].noexec && !m[0].read_only && m[1].noexec && m[1].read_only);
        assert_eq!(
            format_list(&m),
            "data:/srv/data:rw:noexec,logs:/var/log/app:ro:noexec"
        );
        let e = parse_list("data:/srv:noexec:ro", false).unwrap_err();
        assert!(e.contains("too many ':'"), "{e}");
        assert!(!parse_list("data:/srv:ro", false).unwrap()[0].noexec);
    }

    #[test]
    fn host_mounts_need_the_guard() {
        let e = parse_list("host:/srv/www:/var/www:ro", false).unwrap_err();
        assert!(e.contains("CELL_ALLOW_HOST_MOUNTS=YES"), "{e}");
        let m = parse_list("host:/srv/www:/var/www:ro", true).unwrap();
        assert_eq!(m[0].source, MountSource::Host("/srv/www".into()));
        assert!(m[0].read_only);
        assert_eq!(m[0].to_string(), "host:/srv/www:/var/www:ro");
        assert!(parse_list("host:/:/x", true).unwrap_err().contains("'/'"));
        assert!(parse_list("host:rel:/x", true)
            .unwrap_err()
            .contains("not absolute"));
    }

    #[test]
    fn bad_targets_and_overlaps_are_refused() {
        for (spec, want) in [
            ("v:/", "'/' is not allowed"),
            ("v:/dev", "/dev and everything below"),
            ("v:/dev/shm", "/dev and everything below"),
            ("v:/proc/x", "/proc"),
            ("v:rel", "not absolute"),
            ("v:/a/../b", "'.' or '..'"),
            ("v:/a/", "not normalised"),
            ("v:/a:rx", "must be ro or rw"),
            ("v:/a:ro:x", "too many ':'"),
            ("bad name:/a", "invalid volume name"),
            ("v", "expected volume:/target"),
            ("a:/srv,b:/srv", "overlap"),
            ("a:/srv,b:/srv/x", "overlap"),
            ("a:/srv/x,b:/srv", "overlap"),
        ] {
            let e = parse_list(spec, true).unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
        // Siblings sharing a prefix string are not nested.
        assert!(parse_list("a:/srv,b:/srv2", false).is_ok());
    }
}
