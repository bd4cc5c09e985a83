//! `cellmgr.conf`: the global configuration every personality reads. Every path the
//! tools use comes from here, so tests run in temporary directories.
//!
//! The file is `/etc/cellmgr.conf` unless `CELLMGR_CONF` names another. A
//! missing `/etc/cellmgr.conf` means all defaults; a missing file named by
//! `CELLMGR_CONF` is an error (a typo must never fall back to the host's real
//! state). The file is read under strict modes ([`crate::fs::trust`]): owned by
//! root and writable only by root, as is every directory above it. See
//! cellmgr.conf(5).

use crate::rcconf::{self, FileError, LimitForm};
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/cellmgr.conf";

/// Service logs live in the run directory, often RAM: 4 files of 1 MiB per
/// cell and kind, taken in at 1 MiB/s at most.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 1 << 20;
pub const DEFAULT_LOG_MAX_FILES: u32 = 4;
pub const DEFAULT_LOG_RATE_LIMIT: u64 = 1 << 20;
/// The most files `CELL_LOG_MAX_FILES` may keep.
pub const LOG_MAX_FILES_LIMIT: u32 = 100;

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
    /// The key that signs backups (HMAC-SHA-256), readable only by root; `None`: unsigned.
    pub backup_key_file: Option<PathBuf>,
    /// The package tool the `.apply` `PKG` directive runs inside a cell (empty: none).
    pub pkg_tool: String,
    /// The syslog socket supervisors log to.
    pub syslog_socket: PathBuf,
    /// The journal: audit records and lifecycle events (JSON Lines, root's).
    pub audit_log: PathBuf,
    /// Rotate the journal at this size in bytes (0: never).
    pub audit_log_size: u64,
    /// Rotated journal files kept.
    pub audit_log_keep: u32,
    /// Size at which a service log file (and the syslog fallback file) is rotated.
    pub log_max_size: u64,
    /// Files of each log kept, the current one included (at least 1).
    pub log_max_files: u32,
    /// Bytes per second of a service's output the supervisor takes in; a service
    /// writing faster waits on its pipe. 0: no limit.
    pub log_rate_limit: u64,
    /// Where a cell's service is supervised: in the cell's init (`CELL_SUPERVISOR=init`,
    /// the default on Linux: one process per running cell) or by a supervisor
    /// process of its own (`process`, and wherever the kernel's init cannot).
    pub supervise_in_init: bool,
    /// cgroup2 mount point; `None` means detect (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
    pub cgroup_root: Option<PathBuf>,
    /// Limits of a cell that does not set its own (`None`: unlimited).
    pub default_limits: DefaultLimits,
    /// Most ptys a cell may hold at once (its devpts instance's `max=`).
    pub pty_max: u32,
    /// Size of a cell's `/dev/shm` in bytes (a tmpfs).
    pub shm_size: u64,
    /// Linux: cells at medium and high run in a user namespace of their own
    /// (cell root is not host root); `CELL_USERNS=NO` keeps them on host ids.
    pub userns: bool,
    /// The host ids those user namespaces map to (`CELL_IDMAP_BASE`, `CELL_IDMAP_SIZE`).
    pub idmap: crate::fs::ids::Pool,
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

/// `CELL_DEFAULT_*`: the limits of cells that do not set their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultLimits {
    pub maxproc: Option<u64>,
    pub memory: Option<u64>,
    pub cpu_percent: Option<u64>,
    pub disk: Option<u64>,
}

impl Default for DefaultLimits {
    /// A process limit only: it keeps a fork bomb from taking the host's pid
    /// space; the others depend on the service.
    fn default() -> Self {
        DefaultLimits {
            maxproc: Some(1024),
            memory: None,
            cpu_percent: None,
            disk: None,
        }
    }
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
    (
        "CELL_BACKUP_KEY_FILE",
        "an absolute path or empty (backups unsigned)",
    ),
    ("CELL_PKG_TOOL", "a command such as 'pkg_add' or empty"),
    ("CELL_SYSLOG_SOCKET", "an absolute path"),
    ("CELL_AUDIT_LOG", "an absolute path"),
    (
        "CELL_AUDIT_LOG_SIZE",
        "a size such as 10m (0: never rotate)",
    ),
    ("CELL_AUDIT_LOG_KEEP", "a count of rotated files"),
    ("CELL_LOG_MAX_SIZE", "a size of at least 4k, such as 1m"),
    ("CELL_LOG_MAX_FILES", "a count from 1 to 100"),
    (
        "CELL_LOG_RATE_LIMIT",
        "bytes per second such as 1m, or 0 for no limit",
    ),
    ("CELL_SUPERVISOR", "process or init"),
    ("CELL_CGROUP_ROOT", "an absolute path or empty (detect)"),
    ("CELL_DEFAULT_MAXPROC", LimitForm::Processes.expected()),
    ("CELL_DEFAULT_MEMORY", LimitForm::Memory.expected()),
    ("CELL_DEFAULT_CPU", LimitForm::Cpu.expected()),
    ("CELL_DEFAULT_DISK", LimitForm::Disk.expected()),
    ("CELL_PTY_MAX", "a count of ptys from 1 to 4096"),
    ("CELL_SHM_SIZE", "a size such as 64M"),
    ("CELL_USERNS", "YES or NO"),
    (
        "CELL_IDMAP_BASE",
        "a host id from 65536 up, leaving room for one range below 2147352576",
    ),
    ("CELL_IDMAP_SIZE", "a count of ids from 65536 to 16777216"),
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
            backup_key_file: None,
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
            audit_log: "/var/log/cells/audit.log".into(),
            audit_log_size: 10 << 20,
            audit_log_keep: 5,
            log_max_size: DEFAULT_LOG_MAX_SIZE,
            log_max_files: DEFAULT_LOG_MAX_FILES,
            log_rate_limit: DEFAULT_LOG_RATE_LIMIT,
            // Only Linux's cell init supervises; elsewhere asking it is wasted.
            supervise_in_init: cfg!(target_os = "linux"),
            cgroup_root: None,
            default_limits: DefaultLimits::default(),
            pty_max: 64,
            shm_size: 64 << 20,
            userns: true,
            idmap: crate::fs::ids::Pool::default(),
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
    /// Loads the file named by `CELLMGR_CONF` (which must exist), else
    /// `/etc/cellmgr.conf` (defaults when missing).
    pub fn load() -> anyhow::Result<Config> {
        match std::env::var_os("CELLMGR_CONF") {
            Some(p) => {
                let path = PathBuf::from(p);
                if std::fs::symlink_metadata(&path).is_err() {
                    anyhow::bail!(
                        "CELLMGR_CONF names {}, which does not exist; give an existing file, or unset CELLMGR_CONF to use {DEFAULT_PATH}",
                        path.display()
                    );
                }
                Config::load_from(&path)
            }
            None => Config::load_from(Path::new(DEFAULT_PATH)),
        }
    }

    /// Loads one file (strict modes); a missing file yields the defaults.
    pub fn load_from(path: &Path) -> anyhow::Result<Config> {
        match crate::fs::trust::read_to_string(path, "configuration")? {
            Some(text) => Ok(Config::parse(path, &text)?),
            None => Ok(Config {
                path: path.to_path_buf(),
                ..Config::default()
            }),
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
                "CELL_AUDIT_LOG" => cfg.audit_log = abs(v)?,
                "CELL_AUDIT_LOG_SIZE" => {
                    cfg.audit_log_size = rcconf::parse_size(v).ok_or_else(bad)?
                }
                "CELL_AUDIT_LOG_KEEP" => cfg.audit_log_keep = v.parse().map_err(|_| bad())?,
                "CELL_SUPERVISOR" => {
                    cfg.supervise_in_init = match v {
                        "process" => false,
                        "init" => true,
                        _ => return Err(bad()),
                    }
                }
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
                "CELL_BACKUP_KEY_FILE" => {
                    cfg.backup_key_file = if v.is_empty() { None } else { Some(abs(v)?) }
                }
                "CELL_DEFAULT_MAXPROC" => {
                    cfg.default_limits.maxproc = LimitForm::Processes.parse(v).ok_or_else(bad)?
                }
                "CELL_DEFAULT_MEMORY" => {
                    cfg.default_limits.memory = LimitForm::Memory.parse(v).ok_or_else(bad)?
                }
                "CELL_DEFAULT_CPU" => {
                    cfg.default_limits.cpu_percent = LimitForm::Cpu.parse(v).ok_or_else(bad)?
                }
                "CELL_DEFAULT_DISK" => {
                    cfg.default_limits.disk = LimitForm::Disk.parse(v).ok_or_else(bad)?
                }
                "CELL_PTY_MAX" => {
                    cfg.pty_max = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=4096).contains(n) && v.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(bad)?
                }
                "CELL_SHM_SIZE" => {
                    cfg.shm_size = rcconf::parse_size(v).filter(|n| *n > 0).ok_or_else(bad)?
                }
                "CELL_LOG_MAX_SIZE" => {
                    cfg.log_max_size = rcconf::parse_size(v)
                        .filter(|n| *n >= 4096)
                        .ok_or_else(bad)?
                }
                "CELL_LOG_MAX_FILES" => {
                    cfg.log_max_files = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=LOG_MAX_FILES_LIMIT).contains(n))
                        .ok_or_else(bad)?
                }
                "CELL_USERNS" => cfg.userns = yes_no(v)?,
                "CELL_IDMAP_BASE" => {
                    cfg.idmap.base = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 65_536 && v.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(bad)?
                }
                "CELL_IDMAP_SIZE" => {
                    cfg.idmap.size = v
                        .parse()
                        .ok()
                        .filter(|n| (65_536..=1 << 24).contains(n))
                        .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(bad)?
                }
                "CELL_LOG_RATE_LIMIT" => {
                    cfg.log_rate_limit = rcconf::parse_size(v).ok_or_else(bad)?
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
        if cfg.idmap.is_empty() {
            return Err(FileError::new(
                path,
                None,
                format!(
                    "CELL_IDMAP_BASE={} with CELL_IDMAP_SIZE={} leaves no id range below {}: lower either",
                    cfg.idmap.base,
                    cfg.idmap.size,
                    crate::fs::ids::POOL_END
                ),
            ));
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
    fn limit_defaults_bound_processes_only_until_set() {
        let c = parse("").unwrap();
        assert_eq!(c.default_limits.maxproc, Some(1024));
        assert_eq!(c.default_limits.memory, None);
        assert_eq!((c.pty_max, c.shm_size), (64, 64 << 20));
        let c = parse(
            "CELL_DEFAULT_MAXPROC=unlimited\nCELL_DEFAULT_MEMORY=1G\nCELL_DEFAULT_CPU=150\n\
             CELL_DEFAULT_DISK=10G\nCELL_PTY_MAX=16\nCELL_SHM_SIZE=16m\n",
        )
        .unwrap();
        assert_eq!(
            c.default_limits,
            DefaultLimits {
                maxproc: None,
                memory: Some(1 << 30),
                cpu_percent: Some(150),
                disk: Some(10 << 30),
            }
        );
        assert_eq!((c.pty_max, c.shm_size), (16, 16 << 20));
        assert!(parse("CELL_DEFAULT_MEMORY=1k\n")
            .unwrap_err()
            .contains("CELL_DEFAULT_MEMORY='1k': expected a size of at least 4M"));
        assert!(parse("CELL_PTY_MAX=0\n")
            .unwrap_err()
            .contains("from 1 to 4096"));
    }

    #[test]
    fn log_limits_have_defaults_and_checked_values() {
        let c = parse("").unwrap();
        assert_eq!(
            (c.log_max_size, c.log_max_files, c.log_rate_limit),
            (1 << 20, 4, 1 << 20)
        );
        let c =
            parse("CELL_LOG_MAX_SIZE=64k\nCELL_LOG_MAX_FILES=2\nCELL_LOG_RATE_LIMIT=0\n").unwrap();
        assert_eq!(
            (c.log_max_size, c.log_max_files, c.log_rate_limit),
            (65536, 2, 0)
        );
        assert_eq!(
            parse("CELL_LOG_MAX_SIZE=100\n").unwrap_err(),
            "/etc/cellmgr.conf:1: CELL_LOG_MAX_SIZE='100': expected a size of at least 4k, such as 1m"
        );
        assert!(parse("CELL_LOG_MAX_FILES=0\n")
            .unwrap_err()
            .contains("expected a count from 1 to 100"));
        assert!(parse("CELL_LOG_RATE_LIMIT=fast\n")
            .unwrap_err()
            .contains("expected bytes per second"));
    }

    #[test]
    fn services_are_supervised_in_the_init_on_linux_unless_set_to_process() {
        let linux = cfg!(target_os = "linux");
        assert_eq!(parse("").unwrap().supervise_in_init, linux);
        assert!(
            !parse("CELL_SUPERVISOR=process\n")
                .unwrap()
                .supervise_in_init
        );
        assert!(parse("CELL_SUPERVISOR=init\n").unwrap().supervise_in_init);
        assert_eq!(
            parse("CELL_SUPERVISOR=both\n").unwrap_err(),
            "/etc/cellmgr.conf:1: CELL_SUPERVISOR='both': expected process or init"
        );
    }

    #[test]
    fn the_id_pool_has_defaults_and_checked_values() {
        let c = parse("").unwrap();
        assert!(c.userns);
        assert_eq!((c.idmap.base, c.idmap.size), (0x7000_0000, 65_536));
        let c = parse("CELL_USERNS=NO\nCELL_IDMAP_BASE=200000\nCELL_IDMAP_SIZE=131072\n").unwrap();
        assert!(!c.userns);
        assert_eq!((c.idmap.base, c.idmap.size), (200_000, 131_072));
        assert!(parse("CELL_IDMAP_BASE=1000\n")
            .unwrap_err()
            .contains("CELL_IDMAP_BASE='1000': expected a host id from 65536 up"));
        assert!(parse("CELL_IDMAP_SIZE=100\n")
            .unwrap_err()
            .contains("expected a count of ids from 65536"));
        assert_eq!(
            parse("CELL_IDMAP_BASE=2147352000\n").unwrap_err(),
            "/etc/cellmgr.conf: CELL_IDMAP_BASE=2147352000 with CELL_IDMAP_SIZE=65536 leaves no id range below 2147352576: lower either"
        );
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
