//! Signed backups: HMAC-SHA-256 (RFC 2104) with a key only root can read
//! (`CELL_BACKUP_KEY_FILE`).
//!
//! The checksum in a sidecar proves an archive is the one the sidecar
//! describes, not who wrote either: anyone who can write the backup directory
//! can write a matching pair. The MAC covers the archive's bytes and every
//! other field of the sidecar (the manifests `restore --manifest` writes back
//! among them), so only a holder of the key can make a pair that restores.
//!
//! HMAC is written out here over the `sha2` crate the project already uses:
//! it is two hashes and two pads, checked below against RFC 4231's vectors,
//! which is less to audit than another dependency.

use super::sidecar::Sidecar;
use crate::config::Config;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

const BLOCK: usize = 64;
/// Shortest key accepted: as long as the hash (RFC 2104's recommendation).
pub const MIN_KEY: usize = 32;
/// What the MAC input starts with: a version, so a future layout differs.
const DOMAIN: &[u8] = b"cells backup mac v1\n";

/// An HMAC-SHA-256 in progress.
#[derive(Clone)]
pub struct Mac {
    inner: Sha256,
    outer_key: [u8; BLOCK],
}

impl Mac {
    pub fn new(key: &[u8]) -> Mac {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut inner = Sha256::new();
        inner.update(block.map(|b| b ^ 0x36));
        Mac {
            inner,
            outer_key: block.map(|b| b ^ 0x5c),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }

    pub fn finish(self) -> [u8; 32] {
        let mut outer = Sha256::new();
        outer.update(self.outer_key);
        outer.update(self.inner.finalize());
        outer.finalize().into()
    }
}

/// The backup key from `CELL_BACKUP_KEY_FILE`, if one is configured: a file
/// owned by root, readable by nobody else, of at least [`MIN_KEY`] bytes.
pub fn key(cfg: &Config) -> Result<Option<Vec<u8>>> {
    let Some(path) = &cfg.backup_key_file else {
        return Ok(None);
    };
    let key = crate::fs::trust::read_secret(path, "backup key")
        .context("CELL_BACKUP_KEY_FILE in cellmgr.conf")?;
    if key.len() < MIN_KEY {
        bail!(
            "backup key {} holds {} bytes; it needs at least {MIN_KEY} (make one with: head -c 32 /dev/urandom > {} && chmod 0400 {})",
            path.display(),
            key.len(),
            path.display(),
            path.display()
        );
    }
    Ok(Some(key))
}

/// Starts the MAC of an archive: feed it the archive's bytes, then [`seal`].
pub fn start(key: &[u8]) -> Mac {
    let mut m = Mac::new(key);
    m.update(DOMAIN);
    m
}

/// Finishes the MAC of an archive already fed to `mac` with the sidecar that
/// describes it (all fields but the MAC itself); lower-case hex.
pub fn seal(mut mac: Mac, side: &Sidecar) -> Result<String> {
    let mut described = side.clone();
    described.mac = None;
    let mut cbor = Vec::new();
    ciborium::into_writer(&described, &mut cbor).context("encoding sidecar")?;
    mac.update(&cbor);
    mac.update(&(cbor.len() as u64).to_be_bytes());
    Ok(hex(&mac.finish()))
}

/// Compares two MACs in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What a restore or verify must check: refuses before reading the archive
/// when the key and the sidecar disagree on whether there is a MAC.
pub fn expect(key: Option<&[u8]>, side: &Sidecar, archive: &str) -> Result<Option<Mac>> {
    match (key, &side.mac) {
        (Some(k), Some(_)) => Ok(Some(start(k))),
        (Some(_), None) => bail!(
            "{archive}: has no MAC, but CELL_BACKUP_KEY_FILE is set: it was not made by this host's cellmgr with its key, or its MAC was removed; refusing it"
        ),
        (None, Some(_)) => {
            log::warn!(
                "{archive}: is signed, but no CELL_BACKUP_KEY_FILE is configured: only its checksum is checked"
            );
            Ok(None)
        }
        (None, None) => Ok(None),
    }
}

/// Checks a finished MAC against the sidecar's.
pub fn check(mac: Option<Mac>, side: &Sidecar, archive: &str) -> Result<()> {
    let (Some(mac), Some(want)) = (mac, &side.mac) else {
        return Ok(());
    };
    if !same(&seal(mac, side)?, want) {
        bail!(
            "{archive}: MAC mismatch: the archive or its sidecar was changed, or signed with another key; refusing it"
        );
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(key: &[u8], data: &[u8]) -> String {
        let mut m = Mac::new(key);
        m.update(data);
        hex(&m.finish())
    }

    #[test]
    fn rfc4231_test_vectors() {
        // Test case 1.
        assert_eq!(
            hmac(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2: a key shorter than the block.
        assert_eq!(
            hmac(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hmac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Fed in pieces, the same.
        let mut m = Mac::new(b"Jefe");
        for part in [&b"what do ya "[..], b"want ", b"for nothing?"] {
            m.update(part);
        }
        assert_eq!(
            hex(&m.finish()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn comparison_needs_every_byte_equal() {
        assert!(same("abcd", "abcd"));
        assert!(!same("abcd", "abce"));
        assert!(!same("abcd", "abc"));
    }
}
