//! Drift hashes: SHA-256 over four groups of desired state, and the record of
//! the last successful converge kept in each cell's runtime `state` directory.
//!
//! Each group starts with a version tag and every field is length-prefixed, so
//! no two different inputs hash alike and a tag bump forces drift.

use crate::engine::applyfile::ApplyFile;
use crate::fs::host::write_atomic;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Manifest keys whose change needs a new kernel cell (create-time policy).
pub const POLICY_KEYS: &[&str] = &[
    "CELL_CREATE_PROFILE",
    "CELL_CREATE_RESERVED_PORTS",
    "CELL_CREATE_RLIMIT_NOFILE",
    "CELL_CREATE_RLIMIT_AS",
    "CELL_CREATE_RLIMIT_CORE",
    "CELL_CREATE_MAXPROC",
    "CELL_CREATE_MEMORY",
    "CELL_CREATE_CPU",
    "CELL_CREATE_DISK",
];

/// Manifest keys the running service sees: a change restarts it. Autostart
/// and dependencies only steer apply itself.
pub const SERVICE_KEYS: &[&str] = &[
    "CELL_SUPERVISE_CMD",
    "CELL_SUPERVISE_FACILITY",
    "CELL_SUPERVISE_STDOUT_LEVEL",
    "CELL_SUPERVISE_STDERR_LEVEL",
    "CELL_SUPERVISE_TAG",
    "CELL_VOLUME_MOUNTS",
    "CELL_SUPERVISE_ENV",
    "CELL_SUPERVISE_ENV_FILE",
    "CELL_SUPERVISE_USER",
    "CELL_SUPERVISE_GROUP",
    "CELL_SUPERVISE_RESTART",
    // The supervisor runs the health checks.
    "CELL_HEALTHCHECK_CMD",
    "CELL_HEALTHCHECK_INTERVAL",
    "CELL_HEALTHCHECK_TIMEOUT",
    "CELL_HEALTHCHECK_RETRIES",
    "CELL_HEALTHCHECK_START_PERIOD",
];

/// Keys added after cells were first converged: hashed only when set, so
/// that upgrading does not make every cell drift.
const ADDED_KEYS: &[&str] = &[
    "CELL_SUPERVISE_ENV",
    "CELL_SUPERVISE_ENV_FILE",
    "CELL_SUPERVISE_USER",
    "CELL_SUPERVISE_GROUP",
    "CELL_SUPERVISE_RESTART",
    "CELL_HEALTHCHECK_INTERVAL",
    "CELL_HEALTHCHECK_TIMEOUT",
    "CELL_HEALTHCHECK_RETRIES",
    "CELL_HEALTHCHECK_START_PERIOD",
];

/// [`ADDED_KEYS`] and the health check command, which joined the service group.
const ADDED_TO_SERVICE: &[&str] = &[
    "CELL_SUPERVISE_ENV",
    "CELL_SUPERVISE_ENV_FILE",
    "CELL_SUPERVISE_USER",
    "CELL_SUPERVISE_GROUP",
    "CELL_SUPERVISE_RESTART",
    "CELL_HEALTHCHECK_CMD",
    "CELL_HEALTHCHECK_INTERVAL",
    "CELL_HEALTHCHECK_TIMEOUT",
    "CELL_HEALTHCHECK_RETRIES",
    "CELL_HEALTHCHECK_START_PERIOD",
];

/// The four hashes of one cell's desired state (hex).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hashes {
    /// Every normalised manifest key.
    pub manifest: String,
    pub service: String,
    pub policy: String,
    /// The `.apply` file and every host asset it copies; `None`: no plan.
    pub apply: Option<String>,
}

/// One length-prefixed SHA-256 stream (also the plan digest's, in `review`).
pub(super) struct Group(Sha256);

impl Group {
    pub(super) fn new(tag: &str) -> Group {
        let mut g = Group(Sha256::new());
        g.bytes(tag.as_bytes());
        g
    }
    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
    }
    pub(super) fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The hash of the assignments to `keys` (all with `None`); those in
/// `only_when_set` count only with a value.
fn group_of(
    tag: &str,
    assignments: &[(&str, String)],
    keys: Option<&[&str]>,
    only_when_set: &[&str],
) -> String {
    let mut g = Group::new(tag);
    for (k, v) in assignments {
        let unset_new = v.is_empty() && only_when_set.contains(k);
        if keys.map_or(true, |ks| ks.contains(k)) && !unset_new {
            g.bytes(k.as_bytes());
            g.bytes(v.as_bytes());
        }
    }
    g.finish()
}

/// Hashes of a manifest given as its normalised `KEY=value` assignments, and of
/// its plan (see [`apply_hash`]).
pub fn hashes(assignments: &[(&str, String)], apply: Option<String>) -> Hashes {
    Hashes {
        manifest: group_of("manifest-v1", assignments, None, ADDED_KEYS),
        service: group_of(
            "service-v1",
            assignments,
            Some(SERVICE_KEYS),
            ADDED_TO_SERVICE,
        ),
        policy: group_of("policy-v1", assignments, Some(POLICY_KEYS), &[]),
        apply,
    }
}

/// Hash of a plan: its text, and the path and bytes of every host asset it
/// reads, so editing an asset is drift. A missing asset is an error naming the
/// line.
pub fn apply_hash(file: &ApplyFile, text: &[u8]) -> Result<String> {
    let mut g = Group::new("apply-v1");
    g.bytes(text);
    for step in &file.steps {
        if let Some(asset) = step.directive.asset() {
            let p = file.asset_path(asset);
            let at = || {
                format!(
                    "{}:{}: reading host asset {}",
                    file.path.display(),
                    step.line,
                    p.display()
                )
            };
            let bytes = crate::fs::trust::read(&p, "host asset")
                .with_context(at)?
                .with_context(|| format!("{}: it does not exist", at()))?;
            g.bytes(p.as_os_str().as_encoded_bytes());
            g.bytes(&bytes);
        }
    }
    Ok(g.finish())
}

/// What the last successful converge of a cell applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub hashes: Hashes,
    /// Seconds since the epoch.
    pub epoch: u64,
}

const RECORD_FILE: &str = "applied";

/// `<state dir>/applied`.
pub fn record_path(state_dir: &Path) -> PathBuf {
    state_dir.join(RECORD_FILE)
}

/// Reads the record; a missing or unreadable one means "never converged", which
/// makes every group drift (the safe direction).
pub fn read_record(state_dir: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(state_dir)).ok()?;
    let mut r = Record {
        hashes: Hashes::default(),
        epoch: 0,
    };
    let mut seen = 0;
    for line in text.lines() {
        let (k, v) = line.split_once('=')?;
        match k {
            "MANIFEST_SHA256" => r.hashes.manifest = v.into(),
            "SERVICE_SHA256" => r.hashes.service = v.into(),
            "POLICY_SHA256" => r.hashes.policy = v.into(),
            "APPLY_SHA256" => r.hashes.apply = (!v.is_empty()).then(|| v.into()),
            "EPOCH" => r.epoch = v.parse().ok()?,
            _ => continue,
        }
        seen += 1;
    }
    (seen == 5).then_some(r)
}

/// Replaces the record atomically (one file, so a crash leaves the old or the new).
pub fn write_record(state_dir: &Path, hashes: &Hashes) -> Result<()> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text = format!(
        "MANIFEST_SHA256={}\nSERVICE_SHA256={}\nPOLICY_SHA256={}\nAPPLY_SHA256={}\nEPOCH={epoch}\n",
        hashes.manifest,
        hashes.service,
        hashes.policy,
        hashes.apply.as_deref().unwrap_or("")
    );
    write_atomic(&record_path(state_dir), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::applyfile;

    fn manifest(cmd: &str, ports: &str, healthcheck: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CELL_NAME", "web".into()),
            ("CELL_CREATE_RESERVED_PORTS", ports.into()),
            ("CELL_SUPERVISE_CMD", cmd.into()),
            ("CELL_HEALTHCHECK_CMD", healthcheck.into()),
        ]
    }

    #[test]
    fn each_group_sees_only_its_keys() {
        let base = hashes(&manifest("httpd", "80", ""), None);
        assert_eq!(base.manifest.len(), 64);
        let cmd = hashes(&manifest("httpd -v", "80", ""), None);
        assert_ne!(cmd.service, base.service);
        assert_eq!(cmd.policy, base.policy);
        assert_ne!(cmd.manifest, base.manifest);
        let ports = hashes(&manifest("httpd", "81", ""), None);
        assert_eq!(ports.service, base.service);
        assert_ne!(ports.policy, base.policy);
        // The supervisor runs the health check: a new one restarts the service.
        let hc = hashes(&manifest("httpd", "80", "true"), None);
        assert_eq!(hc.policy, base.policy);
        assert_ne!(hc.service, base.service);
        assert_ne!(hc.manifest, base.manifest);
        let autostart = {
            let mut m = manifest("httpd", "80", "");
            m.push(("CELL_AUTOSTART", "YES".into()));
            hashes(&m, None)
        };
        assert_eq!(
            (&autostart.service, &autostart.policy),
            (&base.service, &base.policy)
        );
    }

    #[test]
    fn keys_added_later_leave_earlier_cells_undrifted_until_set() {
        // A cell converged before the service settings existed.
        let before = hashes(&manifest("httpd", "80", ""), None);
        let mut now = manifest("httpd", "80", "");
        for k in ADDED_KEYS {
            now.push((k, String::new()));
        }
        assert_eq!(hashes(&now, None), before);
        let user = now
            .iter()
            .map(|(k, v)| {
                let v = if *k == "CELL_SUPERVISE_USER" {
                    "www".into()
                } else {
                    v.clone()
                };
                (*k, v)
            })
            .collect::<Vec<_>>();
        let user = hashes(&user, None);
        assert_ne!(user.service, before.service);
        assert_ne!(user.manifest, before.manifest);
        assert_eq!(user.policy, before.policy);
    }

    #[test]
    fn fields_are_length_prefixed() {
        let a = hashes(
            &[
                ("CELL_SUPERVISE_CMD", "ab".into()),
                ("CELL_SUPERVISE_TAG", "c".into()),
            ],
            None,
        );
        let b = hashes(
            &[
                ("CELL_SUPERVISE_CMD", "a".into()),
                ("CELL_SUPERVISE_TAG", "bc".into()),
            ],
            None,
        );
        assert_ne!(a.service, b.service);
    }

    #[test]
    fn plan_hash_covers_assets_and_records_round_trip() {
        let dir = crate::testutil::TempDir::new("hash");
        let text = "COPY index.html /srv/index.html\n";
        let path = dir.join("web.apply");
        let file = applyfile::parse(&path, text).unwrap();
        assert!(apply_hash(&file, text.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("web.apply:1: reading host asset"));
        std::fs::write(dir.join("index.html"), "one").unwrap();
        let one = apply_hash(&file, text.as_bytes()).unwrap();
        std::fs::write(dir.join("index.html"), "two").unwrap();
        let two = apply_hash(&file, text.as_bytes()).unwrap();
        assert_ne!(one, two);

        let state = dir.join("state");
        assert_eq!(read_record(&state), None);
        let h = Hashes {
            apply: Some(two),
            ..hashes(&manifest("x", "1", ""), None)
        };
        write_record(&state, &h).unwrap();
        assert_eq!(read_record(&state).unwrap().hashes, h);
        let none = Hashes { apply: None, ..h };
        write_record(&state, &none).unwrap();
        assert_eq!(read_record(&state).unwrap().hashes, none);
        std::fs::write(record_path(&state), "MANIFEST_SHA256=x\n").unwrap();
        assert_eq!(
            read_record(&state),
            None,
            "a truncated record means never converged"
        );
    }
}
