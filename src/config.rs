//! `cellmgr.conf`: the global configuration every personality reads. Every path the
//! tools use comes from here, so tests run in temporary directories.
//!
//! The file is `/etc/cellmgr.conf` unless `CELLMGR_CONF` names another; a missing
//! file means all defaults. See cellmgr.conf(5).

use crate::rcconf::{self, FileError};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/cellmgr.conf";

/// Where the cells' root file system comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseSource {
    /// The host's own `/usr`, `/bin`, `/sbin`, `/lib*`, mounted read-only (no download).
    Host,
    /// A directory tree holding a complete base system.
    Dir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this came from (or would have, when missing).
    pub path: PathBuf,
    pub manifest_dir: PathBuf,
    pub base_dir: PathBuf,
    pub data_dir: PathBuf,
    pub volume_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub release_dir: PathBuf,
    /// Kernel-side cell state on Linux (what the kernel keeps on NetBSD), supervisor
    /// status files and locks of the runtime layer.
    pub run_dir: PathBuf,
    pub base: BaseSource,
    pub allow_host_mounts: bool,
    /// Backups kept per volume or cell by `--prune`; 0 keeps all.
    pub backup_keep: u32,
    /// The package tool the `.apply` `PKG` directive runs inside a cell (empty: none).
    pub pkg_tool: String,
    /// The syslog socket supervisors log to.
    pub syslog_socket: PathBuf,
    /// cgroup2 mount point; `None` means detect (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
    pub cgroup_root: Option<PathBuf>,
    /// A health check attempt taking longer than this has failed.
    pub health_timeout: Duration,
    /// All attempts of one health check together.
    pub health_budget: Duration,
    pub release: String,
    pub machine_arch: String,
    pub netbsd_mirror: String,
    pub pkg_mirror: String,
    pub pkg_arch: String,
    pub pkg_release: String,
    pub pkg_path: String,
    pub local_dev: bool,
    pub dev_size: String,
    pub devices: String,
    pub ptyfs: bool,
}

/// Every key the file may contain, with its expected form (for error messages).
pub const KEYS: &[(&str, &str)] = &[
    ("CELLMGR_MANIFEST_DIR", "an absolute path"),
    ("CELL_BASE_DIR", "an absolute path"),
    ("CELL_DATA_DIR", "an absolute path"),
    ("CELL_VOLUME_DIR", "an absolute path"),
    ("CELL_BACKUP_DIR", "an absolute path"),
    ("CELL_RELEASE_DIR", "an absolute path"),
    ("CELL_RUN_DIR", "an absolute path"),
    ("CELL_BASE", "'host' or an absolute path to a base tree"),
    ("CELL_ALLOW_HOST_MOUNTS", "YES or NO"),
    ("CELL_BACKUP_KEEP", "a count (0 keeps all)"),
    ("CELL_PKG_TOOL", "a command such as 'pkg_add' or empty"),
    ("CELL_SYSLOG_SOCKET", "an absolute path"),
    ("CELL_CGROUP_ROOT", "an absolute path or empty (detect)"),
    ("CELL_HEALTHCHECK_TIMEOUT", "seconds, 1 or more"),
    ("CELL_HEALTHCHECK_BUDGET", "seconds, 1 or more"),
    ("RELEASE", "a release such as 10.1, or empty"),
    ("MACHINE_ARCH", "an architecture such as amd64, or empty"),
    ("NETBSD_MIRROR", "a URL or empty"),
    ("PKG_MIRROR", "a URL"),
    ("PKG_ARCH", "an architecture or empty"),
    ("PKG_RELEASE", "a release or empty"),
    ("PKG_PATH", "a URL or empty"),
    ("CELL_LOCAL_DEV", "YES or NO"),
    ("CELL_DEV_SIZE", "a size such as 8m"),
    ("CELL_DEVICES", "MAKEDEV targets such as \"std ptm\""),
    ("CELL_PTYFS", "YES or NO"),
];

impl Default for Config {
    fn default() -> Self {
        Config {
            path: PathBuf::from(DEFAULT_PATH),
            manifest_dir: "/etc/cellmgr".into(),
            base_dir: "/var/cellmgr/base".into(),
            data_dir: "/var/cellmgr/cells".into(),
            volume_dir: "/var/cellmgr/volumes".into(),
            backup_dir: "/var/backups/cellmgr".into(),
            release_dir: "/var/cellmgr/releases".into(),
            run_dir: "/run/cells".into(),
            base: BaseSource::Host,
            allow_host_mounts: false,
            backup_keep: 0,
            pkg_tool: if cfg!(target_os = "netbsd") {
                "pkg_add".into()
            } else {
                String::new()
            },
            syslog_socket: if cfg!(target_os = "netbsd") {
                "/var/run/log"
            } else {
                "/dev/log"
            }
            .into(),
            cgroup_root: None,
            health_timeout: Duration::from_secs(10),
            health_budget: Duration::from_secs(30),
            release: String::new(),
            machine_arch: String::new(),
            netbsd_mirror: String::new(),
            pkg_mirror: "http://cdn.NetBSD.org/pub/pkgsrc/packages/NetBSD".into(),
            pkg_arch: String::new(),
            pkg_release: String::new(),
            pkg_path: String::new(),
            local_dev: true,
            dev_size: "8m".into(),
            devices: "std ptm".into(),
            ptyfs: true,
        }
    }
}

impl Config {
    /// Loads the file named by `CELLMGR_CONF`, else `/etc/cellmgr.conf`.
    pub fn load() -> anyhow::Result<Config> {
        let path = std::env::var_os("CELLMGR_CONF")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
        Ok(Config::load_from(&path)?)
    }

    /// Loads one file; a missing file yields the defaults.
    pub fn load_from(path: &Path) -> Result<Config, FileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config {
                path: path.to_path_buf(),
                ..Config::default()
            }),
            Err(e) => Err(FileError::new(path, None, format!("cannot read: {e}"))),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, FileError> {
        let mut cfg = Config {
            path: path.to_path_buf(),
            ..Config::default()
        };
        for a in rcconf::parse(path, text)? {
            let (_, expected) = rcconf::known_key(path, &a, KEYS)?;
            let bad = || {
                FileError::new(
                    path,
                    Some(a.line),
                    format!(
                        "{}={}: expected {expected}",
                        a.key,
                        crate::output::quoted(&a.value)
                    ),
                )
            };
            let abs = |v: &str| -> Result<PathBuf, FileError> {
                if v.starts_with('/') && !v.contains('\0') {
                    Ok(PathBuf::from(v))
                } else {
                    Err(bad())
                }
            };
            let yes_no = |v: &str| rcconf::parse_yes_no(v).ok_or_else(bad);
            let v = a.value.as_str();
            match a.key.as_str() {
                "CELLMGR_MANIFEST_DIR" => cfg.manifest_dir = abs(v)?,
                "CELL_BASE_DIR" => cfg.base_dir = abs(v)?,
                "CELL_DATA_DIR" => cfg.data_dir = abs(v)?,
                "CELL_VOLUME_DIR" => cfg.volume_dir = abs(v)?,
                "CELL_BACKUP_DIR" => cfg.backup_dir = abs(v)?,
                "CELL_RELEASE_DIR" => cfg.release_dir = abs(v)?,
                "CELL_RUN_DIR" => cfg.run_dir = abs(v)?,
                "CELL_SYSLOG_SOCKET" => cfg.syslog_socket = abs(v)?,
                "CELL_CGROUP_ROOT" => {
                    cfg.cgroup_root = if v.is_empty() { None } else { Some(abs(v)?) }
                }
                "CELL_BASE" => {
                    cfg.base = if v == "host" {
                        BaseSource::Host
                    } else {
                        BaseSource::Dir(abs(v)?)
                    }
                }
                "CELL_ALLOW_HOST_MOUNTS" => cfg.allow_host_mounts = yes_no(v)?,
                "CELL_LOCAL_DEV" => cfg.local_dev = yes_no(v)?,
                "CELL_PTYFS" => cfg.ptyfs = yes_no(v)?,
                "CELL_BACKUP_KEEP" => cfg.backup_keep = v.parse().map_err(|_| bad())?,
                "CELL_HEALTHCHECK_TIMEOUT" | "CELL_HEALTHCHECK_BUDGET" => {
                    let secs: u64 = v.parse().ok().filter(|&s| s > 0).ok_or_else(bad)?;
                    let d = Duration::from_secs(secs);
                    if a.key == "CELL_HEALTHCHECK_TIMEOUT" {
                        cfg.health_timeout = d;
                    } else {
                        cfg.health_budget = d;
                    }
                }
                "CELL_DEV_SIZE" => {
                    let digits = v.trim_end_matches(['k', 'm', 'g', 'K', 'M', 'G']);
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad());
                    }
                    cfg.dev_size = v.to_string();
                }
                "CELL_PKG_TOOL" => cfg.pkg_tool = v.to_string(),
                "CELL_DEVICES" => cfg.devices = v.to_string(),
                "RELEASE" => cfg.release = v.to_string(),
                "MACHINE_ARCH" => cfg.machine_arch = v.to_string(),
                "NETBSD_MIRROR" => cfg.netbsd_mirror = v.to_string(),
                "PKG_MIRROR" => cfg.pkg_mirror = v.to_string(),
                "PKG_ARCH" => cfg.pkg_arch = v.to_string(),
                "PKG_RELEASE" => cfg.pkg_release = v.to_string(),
                "PKG_PATH" => cfg.pkg_path = v.to_string(),
                other => unreachable!("key {other} is in KEYS but not handled"),
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/cellmgr.conf"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_when_empty_and_when_missing() {
        let c = parse("").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/cellmgr/cells"));
        assert_eq!(c.base, BaseSource::Host);
        let missing = Config::load_from(Path::new("/nonexistent/cellmgr.conf")).unwrap();
        assert_eq!(missing.manifest_dir, PathBuf::from("/etc/cellmgr"));
    }

    #[test]
    fn every_path_is_configurable() {
        let c = parse(
            "CELLMGR_MANIFEST_DIR=/t/etc\nCELL_BASE_DIR=/t/base\nCELL_DATA_DIR=/t/cells\n\
             CELL_VOLUME_DIR=/t/vol\nCELL_BACKUP_DIR=/t/bak\nCELL_RELEASE_DIR=/t/rel\n\
             CELL_RUN_DIR=/t/run\nCELL_BASE=/t/rootfs\nCELL_SYSLOG_SOCKET=/t/log\n",
        )
        .unwrap();
        assert_eq!(c.manifest_dir, PathBuf::from("/t/etc"));
        assert_eq!(c.base_dir, PathBuf::from("/t/base"));
        assert_eq!(c.data_dir, PathBuf::from("/t/cells"));
        assert_eq!(c.volume_dir, PathBuf::from("/t/vol"));
        assert_eq!(c.backup_dir, PathBuf::from("/t/bak"));
        assert_eq!(c.release_dir, PathBuf::from("/t/rel"));
        assert_eq!(c.run_dir, PathBuf::from("/t/run"));
        assert_eq!(c.syslog_socket, PathBuf::from("/t/log"));
        assert_eq!(c.base, BaseSource::Dir("/t/rootfs".into()));
    }

    #[test]
    fn unknown_key_suggests_the_near_miss() {
        let e = parse("CELL_DATA_DIR=/a\nCELL_DAT_DIR=/b\n").unwrap_err();
        assert_eq!(
            e,
            "/etc/cellmgr.conf:2: unknown key CELL_DAT_DIR (did you mean CELL_DATA_DIR?)"
        );
        let e = parse("WHATEVER=1\n").unwrap_err();
        assert!(
            e.contains("unknown key WHATEVER; known keys: CELLMGR_MANIFEST_DIR"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_line_and_expected_form() {
        assert_eq!(
            parse("\nCELL_DATA_DIR=relative\n").unwrap_err(),
            "/etc/cellmgr.conf:2: CELL_DATA_DIR='relative': expected an absolute path"
        );
        assert!(parse("CELL_ALLOW_HOST_MOUNTS=maybe\n")
            .unwrap_err()
            .contains("expected YES or NO"));
        assert!(parse("CELL_BACKUP_KEEP=-1\n")
            .unwrap_err()
            .contains("expected a count"));
        assert!(parse("CELL_DEV_SIZE=big\n")
            .unwrap_err()
            .contains("expected a size"));
        assert!(parse("CELL_BASE=rel\n")
            .unwrap_err()
            .contains("'host' or an absolute path"));
    }

    #[test]
    fn duplicates_are_errors() {
        assert!(parse("CELL_BASE=host\nCELL_BASE=host\n")
            .unwrap_err()
            .contains("duplicate key CELL_BASE"));
    }

    #[test]
    fn the_file_is_never_sourced() {
        let e = parse("CELL_DATA_DIR=\"$(touch /tmp/pwned)\"\n").unwrap_err();
        assert!(e.contains("parsed, not sourced"), "{e}");
    }
}
