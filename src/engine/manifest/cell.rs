//! `<name>.cell`: one cell's desired state (cells(5)). The rendered runtime copy
//! `<data_dir>/<name>/cell.conf` has the same format.

use super::mounts::{self, Mount};
use crate::config::{Config, DefaultLimits};
use crate::kernel::{Limit, Limits, Profile, Rlimits};
use crate::rcconf::{self, FileError, LimitForm};
use crate::supervise::{environ, HealthSpec, RestartPolicy};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Syslog routing of the service's output (the `CELL_SUPERVISE_*` log keys).
/// `None` means the supervisor's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    pub facility: Option<String>,
    pub stdout_level: Option<String>,
    pub stderr_level: Option<String>,
    pub tag: Option<String>,
}

/// The `CELL_CREATE_*` resource limits as the file sets them; `None`: the key
/// is not set and cellmgr.conf's `CELL_DEFAULT_*` applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitKeys {
    pub maxproc: Option<Limit>,
    pub memory: Option<Limit>,
    pub cpu: Option<Limit>,
    pub disk: Option<Limit>,
}

/// The limit keys, their value forms and where each lives in [`LimitKeys`].
type LimitSlot = fn(&mut LimitKeys) -> &mut Option<Limit>;
pub const LIMIT_KEYS: [(&str, LimitForm, LimitSlot); 4] = [
    ("CELL_CREATE_MAXPROC", LimitForm::Processes, |l| {
        &mut l.maxproc
    }),
    ("CELL_CREATE_MEMORY", LimitForm::Memory, |l| &mut l.memory),
    ("CELL_CREATE_CPU", LimitForm::Cpu, |l| &mut l.cpu),
    ("CELL_CREATE_DISK", LimitForm::Disk, |l| &mut l.disk),
];

impl LimitKeys {
    /// The limits in force: each key the file sets, else the default.
    pub fn resolve(&self, defaults: &DefaultLimits) -> Limits {
        Limits {
            maxproc: self.maxproc.unwrap_or(defaults.maxproc),
            memory: self.memory.unwrap_or(defaults.memory),
            cpu_percent: self.cpu.unwrap_or(defaults.cpu_percent),
            disk: self.disk.unwrap_or(defaults.disk),
        }
    }
}

/// How the service runs beyond its command (`CELL_SUPERVISE_ENV`, `_ENV_FILE`,
/// `_USER`, `_GROUP`, `_RESTART`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSettings {
    pub env: environ::Vars,
    /// A host file of more variables (root's only).
    pub env_file: Option<PathBuf>,
    /// A name or id, resolved in the cell.
    pub user: Option<String>,
    pub group: Option<String>,
    /// `None`: the default (always).
    pub restart: Option<RestartPolicy>,
}

/// The health check's schedule (`CELL_HEALTHCHECK_INTERVAL`, `_TIMEOUT`,
/// `_RETRIES`, `_START_PERIOD`); `None` means the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthSettings {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
}

/// A parsed, validated cell manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellManifest {
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// `CELL_AUTOSTART`: the desired running state.
    pub autostart: bool,
    pub profile: Profile,
    pub reserved_ports: Vec<u16>,
    pub rlimits: Rlimits,
    pub limits: LimitKeys,
    pub log: LogSettings,
    /// `CELL_SUPERVISE_CMD`, run as `/bin/sh -c 'exec <cmd>'`; `None`: nothing supervised.
    pub supervise_cmd: Option<String>,
    pub service: ServiceSettings,
    pub depends_on: Vec<String>,
    /// `CELL_HEALTHCHECK_CMD`, run inside the cell with `/bin/sh -c`.
    pub healthcheck: Option<String>,
    pub health: HealthSettings,
    pub mounts: Vec<Mount>,
    /// Line of each key present in the file, for errors found later (cross-file checks).
    pub lines: BTreeMap<&'static str, usize>,
}

/// Every key of a `.cell` file, in canonical order, with its expected form.
pub const CELL_KEYS: &[(&str, &str)] = &[
    ("CELL_NAME", "the cell name, equal to the file name"),
    ("CELL_AUTOSTART", "YES or NO"),
    ("CELL_CREATE_PROFILE", "low, medium or high"),
    (
        "CELL_CREATE_RESERVED_PORTS",
        "a comma-separated list of up to 32 distinct ports 1-65535",
    ),
    ("CELL_CREATE_RLIMIT_NOFILE", "a count or 'unlimited'"),
    ("CELL_CREATE_RLIMIT_AS", "a byte count or 'unlimited'"),
    ("CELL_CREATE_RLIMIT_CORE", "a byte count or 'unlimited'"),
    ("CELL_CREATE_MAXPROC", LimitForm::Processes.expected()),
    ("CELL_CREATE_MEMORY", LimitForm::Memory.expected()),
    ("CELL_CREATE_CPU", LimitForm::Cpu.expected()),
    ("CELL_CREATE_DISK", LimitForm::Disk.expected()),
    (
        "CELL_SUPERVISE_FACILITY",
        "a syslog facility: auth authpriv cron daemon ftp kern lpr mail news syslog user uucp local0-local7",
    ),
    (
        "CELL_SUPERVISE_STDOUT_LEVEL",
        "a syslog level: emerg alert crit err warning notice info debug, or 0-7",
    ),
    (
        "CELL_SUPERVISE_STDERR_LEVEL",
        "a syslog level: emerg alert crit err warning notice info debug, or 0-7",
    ),
    (
        "CELL_SUPERVISE_TAG",
        "a syslog tag of at most 63 printable characters",
    ),
    ("CELL_SUPERVISE_CMD", "a shell command"),
    (
        "CELL_SUPERVISE_ENV",
        "KEY=value words separated by spaces (values with spaces go in CELL_SUPERVISE_ENV_FILE)",
    ),
    (
        "CELL_SUPERVISE_ENV_FILE",
        "an absolute path to a file of KEY=value lines, owned by root, mode 0600",
    ),
    (
        "CELL_SUPERVISE_USER",
        "a user name or uid, as the cell's /etc/passwd knows it",
    ),
    (
        "CELL_SUPERVISE_GROUP",
        "a group name or gid, as the cell's /etc/group knows it",
    ),
    ("CELL_SUPERVISE_RESTART", "always, on-failure or never"),
    (
        "CELL_DEPENDS_ON",
        "a comma-separated list of other cells' names",
    ),
    ("CELL_HEALTHCHECK_CMD", "a shell command run inside the cell"),
    (
        "CELL_HEALTHCHECK_INTERVAL",
        "a duration above zero such as 30s, 500ms or 2m",
    ),
    (
        "CELL_HEALTHCHECK_TIMEOUT",
        "a duration above zero such as 10s",
    ),
    ("CELL_HEALTHCHECK_RETRIES", "a count from 1 to 100"),
    ("CELL_HEALTHCHECK_START_PERIOD", "a duration such as 0, 30s or 2m"),
    (
        "CELL_VOLUME_MOUNTS",
        "a comma-separated list of volume:/target[:ro|rw] (host:/path:/target[:ro|rw] with CELL_ALLOW_HOST_MOUNTS=YES)",
    ),
];

pub const FACILITIES: &[&str] = &[
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog", "user",
    "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];
pub const LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

fn parse_limit(v: &str) -> Option<Limit> {
    match v {
        "" | "unlimited" => Some(None),
        _ if v.bytes().all(|b| b.is_ascii_digit()) => v.parse().ok().map(Some),
        _ => None,
    }
}

/// `unlimited` or the number, as shown in manifests and reads.
pub fn format_limit(l: Limit) -> String {
    l.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

pub fn parse_ports(v: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for tok in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let p: u16 = tok
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{} is not a port 1-65535", crate::output::quoted(tok)))?;
        if ports.contains(&p) {
            return Err(format!("port {p} is listed twice"));
        }
        ports.push(p);
    }
    if ports.len() > secmodel_cell::abi::CELL_PORTS_MAX {
        return Err(format!(
            "{} ports listed; at most {} can be reserved",
            ports.len(),
            secmodel_cell::abi::CELL_PORTS_MAX
        ));
    }
    Ok(ports)
}

pub fn format_ports(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits a comma- or space-separated name list.
pub fn parse_names(v: &str) -> Vec<String> {
    v.split([',', ' ', '\t'])
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// A user or group as a manifest may name it: a name or a number.
fn valid_account(v: &str) -> bool {
    v.len() <= 32
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !v.starts_with('-')
}

/// A duration as manifests write it (`500ms`, `30s`, `2m`, `1h`); empty when unset.
pub fn format_duration(d: Option<Duration>) -> String {
    let Some(d) = d else {
        return String::new();
    };
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1000 == 0 => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

fn valid_level(v: &str) -> bool {
    LEVELS.contains(&v) || matches!(v, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7")
}

impl CellManifest {
    /// Parses and validates one cell file. `name` is what the file is called
    /// (`<name>.cell`, or the runtime directory of a rendered `cell.conf`);
    /// cellmgr.conf decides whether host mounts are allowed and the limits a
    /// file does not set. Checks that need other manifests (volumes,
    /// dependencies) are in [`super::Desired::check`].
    pub fn parse(
        path: &Path,
        text: &str,
        name: &str,
        cfg: &Config,
    ) -> Result<CellManifest, FileError> {
        crate::names::validate("cell", name).map_err(|e| {
            FileError::new(path, None, format!("{e} (the file name is the cell name)"))
        })?;
        let mut m = CellManifest {
            name: name.to_string(),
            path: path.to_path_buf(),
            autostart: false,
            profile: Profile::High,
            reserved_ports: Vec::new(),
            rlimits: Rlimits::default(),
            limits: LimitKeys::default(),
            log: LogSettings::default(),
            supervise_cmd: None,
            service: ServiceSettings::default(),
            depends_on: Vec::new(),
            healthcheck: None,
            health: HealthSettings::default(),
            mounts: Vec::new(),
            lines: BTreeMap::new(),
        };
        for a in rcconf::parse(path, text)? {
            let (key, expected) = rcconf::known_key(path, &a, CELL_KEYS)?;
            m.lines.insert(key, a.line);
            let v = a.value.as_str();
            let bad = |why: Option<String>| {
                let why = why.map(|w| format!("{w}; ")).unwrap_or_default();
                FileError::new(
                    path,
                    Some(a.line),
                    format!(
                        "{key}={}: {why}expected {expected}",
                        crate::output::quoted(v)
                    ),
                )
            };
            let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
            match *key {
                "CELL_NAME" => {
                    if v != name {
                        return Err(FileError::new(
                            path,
                            Some(a.line),
                            format!("CELL_NAME={} does not match the file name: expected CELL_NAME={name} (or rename the file)", crate::output::quoted(v)),
                        ));
                    }
                }
                "CELL_AUTOSTART" => {
                    m.autostart = rcconf::parse_yes_no(v).ok_or_else(|| bad(None))?
                }
                "CELL_CREATE_PROFILE" => {
                    m.profile = if v.is_empty() {
                        Profile::High
                    } else {
                        v.parse().map_err(|_| bad(None))?
                    }
                }
                "CELL_CREATE_RESERVED_PORTS" => {
                    m.reserved_ports = parse_ports(v).map_err(|w| bad(Some(w)))?
                }
                "CELL_CREATE_RLIMIT_NOFILE" => {
                    m.rlimits.nofile = parse_limit(v).ok_or_else(|| bad(None))?
                }
                "CELL_CREATE_RLIMIT_AS" => {
                    m.rlimits.address_space = parse_limit(v).ok_or_else(|| bad(None))?
                }
                "CELL_CREATE_RLIMIT_CORE" => {
                    m.rlimits.core = parse_limit(v).ok_or_else(|| bad(None))?
                }
                "CELL_CREATE_MAXPROC"
                | "CELL_CREATE_MEMORY"
                | "CELL_CREATE_CPU"
                | "CELL_CREATE_DISK" => {
                    let (_, form, slot) = LIMIT_KEYS
                        .iter()
                        .find(|(k, _, _)| k == key)
                        .expect("a limit key");
                    *slot(&mut m.limits) = if v.is_empty() {
                        None
                    } else {
                        Some(form.parse(v).ok_or_else(|| bad(None))?)
                    };
                }
                "CELL_SUPERVISE_FACILITY" => {
                    if !v.is_empty() && !FACILITIES.contains(&v) {
                        return Err(bad(None));
                    }
                    m.log.facility = opt(v);
                }
                "CELL_SUPERVISE_STDOUT_LEVEL" | "CELL_SUPERVISE_STDERR_LEVEL" => {
                    if !v.is_empty() && !valid_level(v) {
                        return Err(bad(None));
                    }
                    if *key == "CELL_SUPERVISE_STDOUT_LEVEL" {
                        m.log.stdout_level = opt(v);
                    } else {
                        m.log.stderr_level = opt(v);
                    }
                }
                "CELL_SUPERVISE_TAG" => {
                    if v.chars().count() > 63 || v.chars().any(|c| c.is_control()) {
                        return Err(bad(None));
                    }
                    m.log.tag = opt(v);
                }
                "CELL_SUPERVISE_CMD" => m.supervise_cmd = opt(v),
                "CELL_SUPERVISE_ENV" => {
                    m.service.env = environ::parse_list(v).map_err(|w| bad(Some(w)))?
                }
                "CELL_SUPERVISE_ENV_FILE" => {
                    if !v.is_empty() && !v.starts_with('/') {
                        return Err(bad(None));
                    }
                    m.service.env_file = opt(v).map(PathBuf::from);
                }
                "CELL_SUPERVISE_USER" | "CELL_SUPERVISE_GROUP" => {
                    if !v.is_empty() && !valid_account(v) {
                        return Err(bad(Some(
                            "names are letters, digits, '.', '_' and '-'".into(),
                        )));
                    }
                    if *key == "CELL_SUPERVISE_USER" {
                        m.service.user = opt(v);
                    } else {
                        m.service.group = opt(v);
                    }
                }
                "CELL_SUPERVISE_RESTART" => {
                    m.service.restart = if v.is_empty() {
                        None
                    } else {
                        Some(v.parse().map_err(|_| bad(None))?)
                    }
                }
                "CELL_HEALTHCHECK_CMD" => m.healthcheck = opt(v),
                "CELL_HEALTHCHECK_INTERVAL" | "CELL_HEALTHCHECK_TIMEOUT" => {
                    let d = match v {
                        "" => None,
                        _ => Some(
                            rcconf::parse_duration(v)
                                .filter(|d| !d.is_zero())
                                .ok_or_else(|| bad(None))?,
                        ),
                    };
                    if *key == "CELL_HEALTHCHECK_INTERVAL" {
                        m.health.interval = d;
                    } else {
                        m.health.timeout = d;
                    }
                }
                "CELL_HEALTHCHECK_RETRIES" => {
                    m.health.retries = match v {
                        "" => None,
                        _ => Some(
                            v.parse()
                                .ok()
                                .filter(|n| (1..=100).contains(n))
                                .ok_or_else(|| bad(None))?,
                        ),
                    }
                }
                "CELL_HEALTHCHECK_START_PERIOD" => {
                    m.health.start_period = match v {
                        "" => None,
                        _ => Some(rcconf::parse_duration(v).ok_or_else(|| bad(None))?),
                    }
                }
                "CELL_DEPENDS_ON" => {
                    let names = parse_names(v);
                    for n in &names {
                        crate::names::validate("cell", n).map_err(|e| bad(Some(e.to_string())))?;
                        if n == name {
                            return Err(FileError::new(
                                path,
                                Some(a.line),
                                format!("CELL_DEPENDS_ON: a cell cannot depend on itself ('{n}'); expected {expected}"),
                            ));
                        }
                    }
                    let mut seen = Vec::new();
                    for n in names {
                        if !seen.contains(&n) {
                            seen.push(n);
                        }
                    }
                    m.depends_on = seen;
                }
                "CELL_VOLUME_MOUNTS" => {
                    m.mounts = mounts::parse_list(v, cfg.allow_host_mounts).map_err(|w| {
                        FileError::new(path, Some(a.line), format!("CELL_VOLUME_MOUNTS: {w}"))
                    })?
                }
                other => unreachable!("key {other} is in CELL_KEYS but not handled"),
            }
        }
        let needs = |key: &str, what: &str| {
            FileError::new(path, m.line_of(key), format!("{key} needs {what}"))
        };
        if m.service.group.is_some() && m.service.user.is_none() {
            return Err(needs("CELL_SUPERVISE_GROUP", "CELL_SUPERVISE_USER"));
        }
        if m.supervise_cmd.is_none() {
            for key in [
                "CELL_SUPERVISE_ENV",
                "CELL_SUPERVISE_ENV_FILE",
                "CELL_SUPERVISE_USER",
                "CELL_SUPERVISE_RESTART",
            ] {
                if m.assignments()
                    .iter()
                    .any(|(k, v)| *k == key && !v.is_empty())
                {
                    return Err(needs(
                        key,
                        "CELL_SUPERVISE_CMD (it sets how the service runs)",
                    ));
                }
            }
        }
        if m.healthcheck.is_none() && m.health != HealthSettings::default() {
            let key = [
                "CELL_HEALTHCHECK_INTERVAL",
                "CELL_HEALTHCHECK_TIMEOUT",
                "CELL_HEALTHCHECK_RETRIES",
                "CELL_HEALTHCHECK_START_PERIOD",
            ]
            .into_iter()
            .find(|k| m.line_of(k).is_some())
            .unwrap_or("CELL_HEALTHCHECK_INTERVAL");
            return Err(needs(key, "CELL_HEALTHCHECK_CMD"));
        }
        Ok(m)
    }

    /// A disk limit bounds the cell's writable layer, not storage it shares:
    /// with one, volumes and host directories may only be mounted read-only.
    /// Checked for manifests (a rendered `cell.conf` reads as it was written;
    /// the kernel refuses such a cell anyway).
    pub fn check_disk_mounts(&self, defaults: &DefaultLimits) -> Result<(), FileError> {
        let Some(disk) = self.limits.resolve(defaults).disk else {
            return Ok(());
        };
        let Some(rw) = self.mounts.iter().find(|m| !m.read_only) else {
            return Ok(());
        };
        let from = if self.limits.disk.is_some() {
            "CELL_CREATE_DISK"
        } else {
            "CELL_DEFAULT_DISK of cellmgr.conf"
        };
        Err(FileError::new(
            &self.path,
            self.line_of("CELL_VOLUME_MOUNTS"),
            format!(
                "CELL_VOLUME_MOUNTS: {rw} is read-write, but the cell has a disk limit ({} from {from}), which bounds its writable layer and not storage it shares: mount it read-only (:ro) or set CELL_CREATE_DISK=unlimited",
                LimitForm::Disk.format(Some(disk))
            ),
        ))
    }

    /// The health check as the supervisor runs it, with the defaults filled in.
    pub fn health_spec(&self) -> Option<HealthSpec> {
        let cmd = self.healthcheck.as_deref()?;
        let mut h = HealthSpec::new(cmd);
        h.interval = self.health.interval.unwrap_or(h.interval);
        h.timeout = self.health.timeout.unwrap_or(h.timeout);
        h.retries = self.health.retries.unwrap_or(h.retries);
        h.start_period = self.health.start_period.unwrap_or(h.start_period);
        Some(h)
    }

    /// Every key with its normalised value, in canonical order; empty means unset.
    pub fn assignments(&self) -> Vec<(&'static str, String)> {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut v = vec![
            ("CELL_NAME", self.name.clone()),
            ("CELL_AUTOSTART", rcconf::yes_no(self.autostart).into()),
            ("CELL_CREATE_PROFILE", self.profile.as_str().into()),
            (
                "CELL_CREATE_RESERVED_PORTS",
                format_ports(&self.reserved_ports),
            ),
            (
                "CELL_CREATE_RLIMIT_NOFILE",
                format_limit(self.rlimits.nofile),
            ),
            (
                "CELL_CREATE_RLIMIT_AS",
                format_limit(self.rlimits.address_space),
            ),
            ("CELL_CREATE_RLIMIT_CORE", format_limit(self.rlimits.core)),
        ];
        let mut limits = self.limits;
        for (key, form, slot) in LIMIT_KEYS {
            let value = slot(&mut limits)
                .map(|l| form.format(l))
                .unwrap_or_default();
            v.push((key, value));
        }
        v.extend([
            ("CELL_SUPERVISE_FACILITY", o(&self.log.facility)),
            ("CELL_SUPERVISE_STDOUT_LEVEL", o(&self.log.stdout_level)),
            ("CELL_SUPERVISE_STDERR_LEVEL", o(&self.log.stderr_level)),
            ("CELL_SUPERVISE_TAG", o(&self.log.tag)),
            ("CELL_SUPERVISE_CMD", o(&self.supervise_cmd)),
            (
                "CELL_SUPERVISE_ENV",
                self.service
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            (
                "CELL_SUPERVISE_ENV_FILE",
                self.service
                    .env_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("CELL_SUPERVISE_USER", o(&self.service.user)),
            ("CELL_SUPERVISE_GROUP", o(&self.service.group)),
            (
                "CELL_SUPERVISE_RESTART",
                self.service
                    .restart
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
            ),
            ("CELL_DEPENDS_ON", self.depends_on.join(",")),
            ("CELL_HEALTHCHECK_CMD", o(&self.healthcheck)),
            (
                "CELL_HEALTHCHECK_INTERVAL",
                format_duration(self.health.interval),
            ),
            (
                "CELL_HEALTHCHECK_TIMEOUT",
                format_duration(self.health.timeout),
            ),
            (
                "CELL_HEALTHCHECK_RETRIES",
                self.health
                    .retries
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
            (
                "CELL_HEALTHCHECK_START_PERIOD",
                format_duration(self.health.start_period),
            ),
            ("CELL_VOLUME_MOUNTS", mounts::format_list(&self.mounts)),
        ]);
        v
    }

    /// [`Self::assignments`] with each limit key showing the limit in force
    /// (the file's value, else the default): what a drift hash must cover, so
    /// that a changed default is a change too.
    pub fn effective_assignments(&self, defaults: &DefaultLimits) -> Vec<(&'static str, String)> {
        let l = self.limits.resolve(defaults);
        let in_force = CellManifest {
            limits: LimitKeys {
                maxproc: Some(l.maxproc),
                memory: Some(l.memory),
                cpu: Some(l.cpu_percent),
                disk: Some(l.disk),
            },
            ..self.clone()
        };
        in_force.assignments()
    }

    /// The normalised file text (used for the rendered `cell.conf`).
    pub fn render(&self, header: &str) -> Result<String, String> {
        let updates: Vec<(&str, Option<String>)> = self
            .assignments()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        super::edit::update(None, header, &updates)
    }

    /// The line a key was set on, if it was set.
    /// What to tell an operator whose manifest asks for the low profile.
    pub fn low_profile_warning(&self) -> Option<String> {
        (self.profile == Profile::Low).then(|| {
            format!(
                "cell {} asks for the low profile ({}): low permits host-wide \
                 administration: its root can set the host's clock and change the \
                 host's network addresses, routes and firewall, among others; use \
                 medium or high unless the cell is meant to administer the host",
                self.name,
                self.path.display()
            )
        })
    }

    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.lines.get(key).copied()
    }

    /// The volumes this cell mounts.
    pub fn volumes(&self) -> impl Iterator<Item = &str> {
        self.mounts.iter().filter_map(Mount::volume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CellManifest, String> {
        CellManifest::parse(Path::new("/m/web.cell"), text, "web", &Config::default())
            .map_err(|e| e.to_string())
    }

    const FULL: &str = "# web\nCELL_NAME=web\nCELL_AUTOSTART=YES\nCELL_CREATE_PROFILE=medium\n\
        CELL_CREATE_RESERVED_PORTS=\"8080,8443\"\nCELL_CREATE_RLIMIT_NOFILE=2048\n\
        CELL_CREATE_RLIMIT_AS=unlimited\nCELL_CREATE_RLIMIT_CORE=0\nCELL_SUPERVISE_FACILITY=local5\n\
        CELL_SUPERVISE_STDOUT_LEVEL=info\nCELL_SUPERVISE_STDERR_LEVEL=4\nCELL_SUPERVISE_TAG=cell-web\n\
        CELL_SUPERVISE_CMD=\"httpd -f -p 8080\"\nCELL_DEPENDS_ON=\"db cache\"\n\
        CELL_HEALTHCHECK_CMD='test -f /srv/index.html'\nCELL_VOLUME_MOUNTS=\"www:/srv:ro,logs:/var/log/web\"\n";

    #[test]
    fn full_manifest_parses_to_typed_fields() {
        let m = parse(FULL).unwrap();
        assert!(m.autostart);
        assert_eq!(m.profile, Profile::Medium);
        assert_eq!(m.reserved_ports, vec![8080, 8443]);
        assert_eq!(m.rlimits.nofile, Some(2048));
        assert_eq!(m.rlimits.address_space, None);
        assert_eq!(m.rlimits.core, Some(0));
        assert_eq!(m.log.facility.as_deref(), Some("local5"));
        assert_eq!(m.supervise_cmd.as_deref(), Some("httpd -f -p 8080"));
        assert_eq!(m.depends_on, vec!["db", "cache"]);
        assert_eq!(m.volumes().collect::<Vec<_>>(), vec!["www", "logs"]);
        assert_eq!(m.line_of("CELL_DEPENDS_ON"), Some(14));
    }

    #[test]
    fn defaults_for_a_minimal_file() {
        let m = parse("").unwrap();
        assert!(!m.autostart);
        assert_eq!(m.profile, Profile::High);
        assert!(m.supervise_cmd.is_none());
        assert_eq!(format_limit(m.rlimits.nofile), "unlimited");
    }

    #[test]
    fn render_round_trips() {
        let m = parse(FULL).unwrap();
        let text = m.render("# rendered").unwrap();
        let again = CellManifest::parse(Path::new("/m/web.cell"), &text, "web", &Config::default())
            .unwrap();
        assert_eq!(again.assignments(), m.assignments());
        assert!(text.contains("CELL_DEPENDS_ON=db,cache\n"), "{text}");
    }

    #[test]
    fn every_bad_value_names_file_line_and_expected_form() {
        for (text, want) in [
            ("CELL_NAME=other\n", "/m/web.cell:1: CELL_NAME='other' does not match the file name: expected CELL_NAME=web"),
            ("\nCELL_AUTOSTART=maybe\n", "/m/web.cell:2: CELL_AUTOSTART='maybe': expected YES or NO"),
            ("CELL_CREATE_PROFILE=max\n", "/m/web.cell:1: CELL_CREATE_PROFILE='max': expected low, medium or high"),
            ("CELL_CREATE_RESERVED_PORTS=0\n", "'0' is not a port 1-65535"),
            ("CELL_CREATE_RESERVED_PORTS=80,80\n", "port 80 is listed twice"),
            ("CELL_CREATE_RLIMIT_NOFILE=-1\n", "expected a count or 'unlimited'"),
            ("CELL_SUPERVISE_FACILITY=local9\n", "expected a syslog facility"),
            ("CELL_SUPERVISE_STDOUT_LEVEL=loud\n", "expected a syslog level"),
            ("CELL_DEPENDS_ON=web\n", "/m/web.cell:1: CELL_DEPENDS_ON: a cell cannot depend on itself"),
            ("CELL_DEPENDS_ON='a/b'\n", "invalid cell name 'a/b'"),
            ("CELL_VOLUME_MOUNTS=v:/dev\n", "/m/web.cell:1: CELL_VOLUME_MOUNTS: mount target '/dev' is not allowed"),
            ("CELL_VOLUME_MOUNTS=a:/x,b:/x/y\n", "overlap"),
            ("CELL_AUTOSTART=YES\nCELL_AUTOSTART=NO\n", "/m/web.cell:2: duplicate key CELL_AUTOSTART (first set on line 1)"),
            ("CELL_AUTOSTAR=YES\n", "/m/web.cell:1: unknown key CELL_AUTOSTAR (did you mean CELL_AUTOSTART?)"),
            ("CELL_SUPERVISE_CMD=\"$(reboot)\"\n", "parsed, not sourced"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = CellManifest::parse(Path::new("/m/a b.cell"), "", "a b", &Config::default())
            .unwrap_err();
        assert!(e.to_string().contains("invalid cell name 'a b'"), "{e}");
    }

    #[test]
    fn limit_keys_fall_back_to_the_defaults() {
        let m = parse("CELL_CREATE_MEMORY=512M\nCELL_CREATE_CPU=unlimited\nCELL_CREATE_DISK=\n")
            .unwrap();
        assert_eq!(m.limits.memory, Some(Some(512 << 20)));
        assert_eq!(m.limits.cpu, Some(None), "explicitly unlimited");
        assert_eq!(m.limits.disk, None, "empty: the default");
        let defaults = DefaultLimits {
            cpu_percent: Some(50),
            disk: Some(1 << 30),
            ..DefaultLimits::default()
        };
        let l = m.limits.resolve(&defaults);
        assert_eq!(
            (l.maxproc, l.memory, l.cpu_percent, l.disk),
            (Some(1024), Some(512 << 20), None, Some(1 << 30))
        );
        let a = m.assignments();
        assert!(a.contains(&("CELL_CREATE_MEMORY", "512M".into())));
        assert!(a.contains(&("CELL_CREATE_DISK", String::new())));
        let e = m.effective_assignments(&defaults);
        assert!(e.contains(&("CELL_CREATE_DISK", "1G".into())));
        assert!(e.contains(&("CELL_CREATE_MAXPROC", "1024".into())));
        assert!(e.contains(&("CELL_CREATE_CPU", "unlimited".into())));
        let bad = parse("CELL_CREATE_MEMORY=lots\n").unwrap_err();
        assert!(
            bad.contains(
                "/m/web.cell:1: CELL_CREATE_MEMORY='lots': expected a size of at least 4M"
            ),
            "{bad}"
        );
    }

    #[test]
    fn a_disk_limit_allows_only_read_only_mounts() {
        let check = |text: &str, cfg: &Config| {
            CellManifest::parse(Path::new("/m/web.cell"), text, "web", cfg)
                .unwrap()
                .check_disk_mounts(&cfg.default_limits)
                .map_err(|e| e.to_string())
        };
        let plain = Config::default();
        let e = check(
            "CELL_CREATE_DISK=1G\nCELL_VOLUME_MOUNTS=www:/srv:ro,db:/var/db\n",
            &plain,
        )
        .unwrap_err();
        assert!(
            e.starts_with("/m/web.cell:2: CELL_VOLUME_MOUNTS: db:/var/db:rw is read-write, but the cell has a disk limit (1G from CELL_CREATE_DISK)"),
            "{e}"
        );
        assert!(check(
            "CELL_CREATE_DISK=1G\nCELL_VOLUME_MOUNTS=www:/srv:ro\n",
            &plain
        )
        .is_ok());
        let limited = Config {
            default_limits: DefaultLimits {
                disk: Some(1 << 30),
                ..DefaultLimits::default()
            },
            ..Config::default()
        };
        let text = "CELL_VOLUME_MOUNTS=db:/var/db\n";
        let e = check(text, &limited).unwrap_err();
        assert!(e.contains("from CELL_DEFAULT_DISK of cellmgr.conf"), "{e}");
        assert!(check(&format!("CELL_CREATE_DISK=unlimited\n{text}"), &limited).is_ok());
    }

    #[test]
    fn too_many_ports() {
        let list: Vec<String> = (1..=33).map(|p| p.to_string()).collect();
        let e = parse(&format!("CELL_CREATE_RESERVED_PORTS={}\n", list.join(","))).unwrap_err();
        assert!(e.contains("33 ports listed; at most 32"), "{e}");
    }
}
