//! The sidecar next to each archive (`<name>_<stamp>.meta.cbor`): what the archive
//! must hash to, where it came from, and the manifests as they were.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Bumped when a field changes meaning; readers refuse versions they do not know.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    pub format: u32,
    /// "volume" or "cell".
    pub kind: String,
    pub name: String,
    /// File name of the archive this describes.
    pub archive: String,
    /// Lower-case hex SHA-256 of the archive file.
    pub sha256: String,
    /// Size of the archive file in bytes.
    pub size: u64,
    /// Length of the uncompressed tar stream (free-space check and progress on restore).
    pub content_bytes: u64,
    /// The directory that was archived.
    pub source: String,
    /// Unix time the copy was taken.
    pub created: u64,
    /// Order of creation among the archives of this name: one more than the
    /// highest before it. Archives are ordered by it, never by time, so a
    /// clock set back cannot make an older copy look newer. 0 in sidecars
    /// written before it existed.
    #[serde(default)]
    pub seq: u64,
    /// Whether some member carries ACLs (a restore then asks tar to set
    /// them); `None` in sidecars written before it was recorded.
    #[serde(default)]
    pub acls: Option<bool>,
    /// Cells frozen while the copy was taken (`--quiesce`).
    pub quiesced: Vec<String>,
    /// Desired-state manifests at backup time: file name (`web.cell`) to content.
    pub manifests: BTreeMap<String, String>,
    /// HMAC-SHA-256 of the archive and the fields above, with the host's
    /// backup key (`CELL_BACKUP_KEY_FILE`); absent for unsigned backups.
    #[serde(default)]
    pub mac: Option<String>,
}

impl Sidecar {
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::fs::host::write_atomic(path, &crate::fs::cbor::encode(self))
    }

    pub fn read(path: &Path) -> Result<Sidecar> {
        let bytes = crate::fs::trust::read(path, "backup sidecar")?
            .with_context(|| format!("{} does not exist", path.display()))?;
        let s: Sidecar = crate::fs::cbor::decode(&bytes)
            .with_context(|| format!("{}: not a valid backup sidecar", path.display()))?;
        if s.format != FORMAT {
            bail!(
                "{}: sidecar format {} is not supported (this cellmgr reads format {FORMAT})",
                path.display(),
                s.format
            );
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let dir = crate::testutil::TempDir::new("sidecar");
        let p = dir.join("v_20251129T184300Z.meta.cbor");
        let s = Sidecar {
            format: FORMAT,
            kind: "volume".into(),
            name: "v".into(),
            archive: "v_20251129T184300Z.tar.gz".into(),
            sha256: "ab".repeat(32),
            size: 42,
            content_bytes: 10240,
            source: "/var/cellmgr/volumes/v".into(),
            created: 1_764_441_780,
            seq: 3,
            acls: Some(false),
            quiesced: vec![],
            manifests: [("v.volume".to_string(), "VOLUME_MODE=0750\n".to_string())].into(),
            mac: Some("cd".repeat(32)),
        };
        s.write(&p).unwrap();
        assert_eq!(Sidecar::read(&p).unwrap(), s);
        std::fs::write(&p, b"not cbor").unwrap();
        let e = format!("{:#}", Sidecar::read(&p).unwrap_err());
        assert!(e.contains("not a valid backup sidecar"), "{e}");
    }
}
