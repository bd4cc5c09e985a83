//! The file layer (ground floor): every file cellmgr and cellctl touch goes
//! through here, split by who controls the tree.
//!
//! * `host`: files only host root controls (configuration, state, the run
//!   directory): atomic private writes, optional reads, directory listings;
//! * `cbor`: the encoding of state files and messages, with readable errors.
//! * `tree`: trees a cell controls (its writable layer, its composed root,
//!   volumes, restore staging). Every operation starts from a directory fd of
//!   the tree's root and resolves paths so that no link a cell plants can lead
//!   host root outside the tree (see the module for the rules).
//! * `resolve`: the path resolution `tree` is built on (`openat2(2)` on Linux,
//!   a component walk with `O_NOFOLLOW` elsewhere).
//! * `ids`: host id ranges, what cell root is on the host (user namespaces).
//! * `mount`: mounts into a cell's tree made on file descriptors.
//! * `mountinfo`: the host's mount table.
//! * `pseudo`: kernel pseudo-files (`/proc`, cgroupfs) read whole in one go.
//! * `shift`: moving a tree's files from one id range to another.
//! * `trust`: strict modes, as sshd's `StrictModes`: a file that tells root
//!   what to do must be owned by root and writable by nobody else, all the way
//!   up to `/`.
pub mod cbor;
pub mod host;
pub mod ids;
pub mod mount;
pub mod mountinfo;
pub mod pseudo;
pub mod resolve;
pub mod shift;
pub mod tree;
pub mod trust;

use std::ffi::OsString;

/// A name for a temporary file next to `base` that no one can predict:
/// `.<base>.<16 random hex digits>.tmp`. Created with `O_EXCL|O_NOFOLLOW`, so
/// a planted file or link of the same name makes the creation fail instead of
/// being followed.
pub(crate) fn temp_name(base: &std::ffi::OsStr) -> OsString {
    let mut name = OsString::from(".");
    // Long names stay below NAME_MAX with the suffix.
    let b = base.as_encoded_bytes();
    let keep = &b[..b.len().min(200)];
    name.push(String::from_utf8_lossy(keep).as_ref());
    name.push(format!(".{:016x}.tmp", random_u64()));
    name
}

/// The file a name made by [`temp_name`] stands in for (`base`), or `None`
/// when `name` is no such temporary (for sweeping what a killed writer left).
pub(crate) fn temp_base(name: &str) -> Option<&str> {
    let (base, hex) = name
        .strip_prefix('.')?
        .strip_suffix(".tmp")?
        .rsplit_once('.')?;
    (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !base.is_empty())
        .then_some(base)
}

/// 64 bits from the kernel's random source.
pub(crate) fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the pointer and length describe the unfilled part of `buf`.
        let n = unsafe {
            libc::getrandom(
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
                0 as libc::c_uint,
            )
        };
        if n > 0 {
            got += n as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            panic!("getrandom(2) failed: {}", std::io::Error::last_os_error());
        }
    }
    u64::from_ne_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_hidden_distinct_and_bounded() {
        let a = temp_name("ld.so.cache".as_ref());
        let b = temp_name("ld.so.cache".as_ref());
        assert_ne!(a, b);
        let a = a.to_str().unwrap();
        assert!(a.starts_with(".ld.so.cache.") && a.ends_with(".tmp"), "{a}");
        let long = "x".repeat(255);
        assert!(temp_name(long.as_ref()).len() < 240);
    }

    #[test]
    fn a_temporary_name_leads_back_to_its_file() {
        let t = temp_name("v_20250101T000000Z.meta.cbor".as_ref());
        assert_eq!(
            temp_base(t.to_str().unwrap()),
            Some("v_20250101T000000Z.meta.cbor")
        );
        for other in [
            "v.meta.cbor",
            ".v.meta.cbor.tmp",
            ".v.meta.cbor.123.tmp",
            "..0123456789abcdef.tmp",
            ".v.tar.gz.123.partial",
        ] {
            assert_eq!(temp_base(other), None, "{other}");
        }
    }
}
