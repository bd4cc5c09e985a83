//! `<name>.cell`: one cell's desired state (cells(5)). The rendered runtime copy
//! `<data_dir>/<name>/cell.conf` has the same format.

use super::mounts::{self, Mount};
use crate::kernel::{Limit, Profile, Rlimits};
use crate::rcconf::{self, FileError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Syslog routing of the service's output (the `CELL_SUPERVISE_*` log keys).
/// `None` means the supervisor's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    pub facility: Option<String>,
    pub stdout_level: Option<String>,
    pub stderr_level: Option<String>,
    pub tag: Option<String>,
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
    pub log: LogSettings,
    /// `CELL_SUPERVISE_CMD`, run as `/bin/sh -c 'exec <cmd>'`; `None`: nothing supervised.
    pub supervise_cmd: Option<String>,
    pub depends_on: Vec<String>,
    /// `CELL_HEALTHCHECK_CMD`, run inside the cell with `/bin/sh -c`.
    pub healthcheck: Option<String>,
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
        "CELL_DEPENDS_ON",
        "a comma-separated list of other cells' names",
    ),
    ("CELL_HEALTHCHECK_CMD", "a shell command run inside the cell"),
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

fn valid_level(v: &str) -> bool {
    LEVELS.contains(&v) || matches!(v, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7")
}

impl CellManifest {
    /// Parses and validates one cell file. `name` is what the file is called
    /// (`<name>.cell`, or the runtime directory of a rendered `cell.conf`);
    /// `allow_host_mounts` comes from cellmgr.conf. Checks that need other
    /// manifests (volumes, dependencies) are in [`super::Desired::check`].
    pub fn parse(
        path: &Path,
        text: &str,
        name: &str,
        allow_host_mounts: bool,
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
            log: LogSettings::default(),
            supervise_cmd: None,
            depends_on: Vec::new(),
            healthcheck: None,
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
                "CELL_HEALTHCHECK_CMD" => m.healthcheck = opt(v),
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
                    m.mounts = mounts::parse_list(v, allow_host_mounts).map_err(|w| {
                        FileError::new(path, Some(a.line), format!("CELL_VOLUME_MOUNTS: {w}"))
                    })?
                }
                other => unreachable!("key {other} is in CELL_KEYS but not handled"),
            }
        }
        Ok(m)
    }

    /// Every key with its normalised value, in canonical order; empty means unset.
    pub fn assignments(&self) -> Vec<(&'static str, String)> {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
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
            ("CELL_SUPERVISE_FACILITY", o(&self.log.facility)),
            ("CELL_SUPERVISE_STDOUT_LEVEL", o(&self.log.stdout_level)),
            ("CELL_SUPERVISE_STDERR_LEVEL", o(&self.log.stderr_level)),
            ("CELL_SUPERVISE_TAG", o(&self.log.tag)),
            ("CELL_SUPERVISE_CMD", o(&self.supervise_cmd)),
            ("CELL_DEPENDS_ON", self.depends_on.join(",")),
            ("CELL_HEALTHCHECK_CMD", o(&self.healthcheck)),
            ("CELL_VOLUME_MOUNTS", mounts::format_list(&self.mounts)),
        ]
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
        CellManifest::parse(Path::new("/m/web.cell"), text, "web", false).map_err(|e| e.to_string())
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
        let again = CellManifest::parse(Path::new("/m/web.cell"), &text, "web", false).unwrap();
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
        let e = CellManifest::parse(Path::new("/m/a b.cell"), "", "a b", false).unwrap_err();
        assert!(e.to_string().contains("invalid cell name 'a b'"), "{e}");
    }

    #[test]
    fn too_many_ports() {
        let list: Vec<String> = (1..=33).map(|p| p.to_string()).collect();
        let e = parse(&format!("CELL_CREATE_RESERVED_PORTS={}\n", list.join(","))).unwrap_err();
        assert!(e.contains("33 ports listed; at most 32"), "{e}");
    }
}
