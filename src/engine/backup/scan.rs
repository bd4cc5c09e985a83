//! Reading a tar stream's headers as it passes (create, verify), to know what
//! a restore will need: whether any member carries ACLs (extraction then asks
//! tar for them), and whether every member can be extracted at all. An archive
//! that verifies must restore: tar cannot create a member whose relative path
//! is `PATH_MAX` (4096) bytes or longer, and it applies ACLs and extended
//! attributes through `/proc/self/fd/<n>/<path>`, which costs a few more.
//!
//! Only POSIX (pax) and ustar headers are read, which is what `tar::create`
//! writes; the stream is untrusted (an archive can be tampered with), so every
//! field is checked and nothing here can panic.

use crate::output::quoted;

/// Longest relative path tar can create (PATH_MAX less the terminating NUL).
pub const PATH_LIMIT: usize = 4095;
/// Longest path tar can set ACLs or extended attributes on: the
/// `/proc/self/fd/<fd>/` prefix takes up to 25 bytes.
pub const ATTR_PATH_LIMIT: usize = PATH_LIMIT - 25;

const BLOCK: usize = 512;

/// What a stream turned out to hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub members: u64,
    /// Some member carries an access or default ACL.
    pub acls: bool,
    /// The longest member path, in bytes.
    pub longest_path: usize,
    /// Members that carry ACLs or extended attributes: the longest path.
    pub longest_attr_path: usize,
    /// The first reason the stream cannot be restored (or read at all).
    pub problem: Option<String>,
}

impl Facts {
    /// The reason a restore of this stream would fail, if any.
    pub fn unrestorable(&self) -> Option<String> {
        if let Some(p) = &self.problem {
            return Some(p.clone());
        }
        // With ACLs present, tar sets an ACL on every member it extracts.
        let attr_path = if self.acls {
            self.longest_path
        } else {
            self.longest_attr_path
        };
        (attr_path > ATTR_PATH_LIMIT).then(|| {
            format!(
                "a member's path is {attr_path} bytes, too long for tar to set its ACLs or \
                 extended attributes (at most {ATTR_PATH_LIMIT})"
            )
        })
    }
}

/// The incremental reader: feed it the tar stream in any chunks.
#[derive(Debug, Default)]
pub struct Scan {
    facts: Facts,
    /// Bytes of the current block not yet complete.
    partial: Vec<u8>,
    /// Data bytes (in whole blocks) still to skip before the next header.
    skip: u64,
    /// A pax extended header being collected, and how many bytes remain.
    pax: Option<(Vec<u8>, usize)>,
    /// The zero bytes padding that header to a block, skipped after it.
    pax_padding: u64,
    /// The records of the last extended header, for the next member.
    pending: Pending,
    zero_blocks: u8,
    ended: bool,
}

#[derive(Debug, Default)]
struct Pending {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    attrs: bool,
    acls: bool,
}

/// Largest extended header collected (a larger one is refused).
const PAX_MAX: usize = 1 << 20;

impl Scan {
    pub fn new() -> Scan {
        Scan::default()
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.facts.problem.is_none() && !self.ended {
            if self.skip > 0 {
                let n = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            if let Some((buf, left)) = self.pax.as_mut() {
                let n = (*left).min(data.len());
                buf.extend_from_slice(&data[..n]);
                *left -= n;
                data = &data[n..];
                if *left == 0 {
                    let (buf, _) = self.pax.take().expect("just matched");
                    self.pax_records(&buf);
                }
                continue;
            }
            let need = BLOCK - self.partial.len();
            let n = need.min(data.len());
            self.partial.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.partial.len() == BLOCK {
                let block = std::mem::take(&mut self.partial);
                self.header(&block);
            }
        }
    }

    /// The facts, once the whole stream was fed.
    pub fn finish(mut self) -> Facts {
        if self.facts.problem.is_none()
            && !self.ended
            && (self.skip > 0 || self.pax.is_some() || !self.partial.is_empty())
        {
            self.facts.problem = Some("the tar stream ends in the middle of a member".into());
        }
        self.facts
    }

    fn fail(&mut self, why: String) {
        self.facts.problem.get_or_insert(why);
    }

    fn header(&mut self, block: &[u8]) {
        if block.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            self.ended = self.zero_blocks == 2;
            return;
        }
        self.zero_blocks = 0;
        // The checksum field counts as eight spaces.
        let sum: u64 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|&b| u64::from(b))
            .sum::<u64>()
            + 8 * 32;
        if octal(&block[148..156]) != Some(sum) {
            return self.fail(format!(
                "not a tar header after {} member(s) (bad checksum)",
                self.facts.members
            ));
        }
        let Some(size) = size_field(&block[124..136]) else {
            return self.fail("a tar header with an unreadable size".into());
        };
        let kind = block[156];
        let data_blocks = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        match kind {
            b'x' => {
                let Ok(len) = usize::try_from(size) else {
                    return self.fail("an extended header too large to read".into());
                };
                if len > PAX_MAX {
                    return self.fail(format!("an extended header of {len} bytes"));
                }
                self.pax = Some((Vec::with_capacity(len), len));
                self.pax_padding = data_blocks - size;
            }
            b'g' => self.skip = data_blocks,
            _ => {
                self.member(block, kind);
                // Only these have their data in the archive.
                self.skip = if matches!(kind, b'0' | b'\0' | b'7' | b'S') {
                    data_blocks
                } else {
                    0
                };
            }
        }
    }

    fn pax_records(&mut self, buf: &[u8]) {
        self.skip = std::mem::take(&mut self.pax_padding);
        let mut rest = buf;
        while !rest.is_empty() {
            // "<len> <key>=<value>\n", where <len> counts the whole record.
            let Some(sp) = rest.iter().position(|&b| b == b' ') else {
                return self.fail("a malformed extended header record".into());
            };
            let len = std::str::from_utf8(&rest[..sp])
                .ok()
                .and_then(|s| s.parse::<usize>().ok());
            let Some(len) = len.filter(|&l| l > sp + 1 && l <= rest.len()) else {
                return self.fail("a malformed extended header record".into());
            };
            let record = &rest[sp + 1..len];
            rest = &rest[len..];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            let Some(eq) = record.iter().position(|&b| b == b'=') else {
                return self.fail("a malformed extended header record".into());
            };
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            match key {
                b"path" | b"GNU.sparse.name" => self.pending.path = Some(value.to_vec()),
                b"linkpath" => self.pending.linkpath = Some(value.to_vec()),
                k if k.starts_with(b"SCHILY.acl.") => {
                    self.pending.acls = true;
                    self.pending.attrs = true;
                }
                k if k.starts_with(b"SCHILY.xattr.") || k.starts_with(b"LIBARCHIVE.xattr.") => {
                    self.pending.attrs = true
                }
                _ => {}
            }
        }
    }

    fn member(&mut self, block: &[u8], kind: u8) {
        let pending = std::mem::take(&mut self.pending);
        let path = pending.path.unwrap_or_else(|| {
            let name = cstr(&block[..100]);
            let prefix = cstr(&block[345..500]);
            if prefix.is_empty() {
                name.to_vec()
            } else {
                [prefix, b"/", name].concat()
            }
        });
        let link = pending
            .linkpath
            .unwrap_or_else(|| cstr(&block[157..257]).to_vec());
        self.facts.members += 1;
        self.facts.acls |= pending.acls;
        self.facts.longest_path = self.facts.longest_path.max(path.len());
        if pending.attrs {
            self.facts.longest_attr_path = self.facts.longest_attr_path.max(path.len());
        }
        let shown = |p: &[u8]| quoted(&String::from_utf8_lossy(p));
        if path.len() > PATH_LIMIT {
            return self.fail(format!(
                "member {} has a path of {} bytes; tar can create at most {PATH_LIMIT}",
                shown(&path),
                path.len()
            ));
        }
        // Hard links name another member; symbolic links store a target.
        if matches!(kind, b'1' | b'2') && link.len() > PATH_LIMIT {
            self.fail(format!(
                "member {} links to a path of {} bytes; tar can create at most {PATH_LIMIT}",
                shown(&path),
                link.len()
            ));
        }
    }
}

/// The bytes of a NUL-terminated header field.
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// An octal header field (spaces and NULs around it allowed).
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(cstr(field)).ok()?.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The size field: octal, or base-256 when the top bit of its first byte is set.
fn size_field(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 == 0 {
        return octal(field);
    }
    let mut v: u64 = u64::from(field[0] & 0x7f);
    for &b in &field[1..] {
        v = v.checked_mul(256)?.checked_add(u64::from(b))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::unix::ffi::OsStrExt;

    /// The tar stream `tar::create` would write for `dir` (uncompressed).
    fn tar_of(dir: &std::path::Path) -> Vec<u8> {
        let out = std::process::Command::new("tar")
            .args(["--create", "--file=-", "--format=posix", "--sparse"])
            .args([
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "--acls",
            ])
            .arg("-C")
            .arg(dir)
            .arg(".")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Feeds `bytes` in chunks of every size from 1 to 700, and whole.
    fn scan_all_ways(bytes: &[u8]) -> Facts {
        let whole = {
            let mut s = Scan::new();
            s.feed(bytes);
            s.finish()
        };
        for step in [1, 7, 511, 512, 513, 700] {
            let mut s = Scan::new();
            for chunk in bytes.chunks(step) {
                s.feed(chunk);
            }
            assert_eq!(s.finish(), whole, "chunks of {step}");
        }
        whole
    }

    /// A directory chain below `dir` whose deepest file has a relative path
    /// (`./…`) of exactly `len` bytes.
    fn deep_file(dir: &std::path::Path, len: usize) {
        let mut path = dir.to_path_buf();
        let mut rel = 1; // "."
        while len - rel > 250 {
            path.push("d".repeat(200));
            rel += 201;
        }
        // Created through the parent's descriptor: the full path is too long.
        let parent = std::fs::File::open(dir).unwrap();
        let mut fd = parent;
        for c in path.strip_prefix(dir).unwrap().components() {
            let name = std::ffi::CString::new(c.as_os_str().as_bytes()).unwrap();
            // SAFETY: mkdirat/openat on descriptors we own.
            unsafe {
                libc::mkdirat(std::os::fd::AsRawFd::as_raw_fd(&fd), name.as_ptr(), 0o755);
                let next = libc::openat(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                );
                assert!(next >= 0);
                fd = std::os::fd::FromRawFd::from_raw_fd(next);
            }
        }
        let leaf = std::ffi::CString::new("f".repeat(len - rel - 1)).unwrap();
        // SAFETY: as above.
        unsafe {
            let f = libc::openat(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                leaf.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY,
                0o644,
            );
            assert!(f >= 0);
            libc::close(f);
        }
    }

    #[test]
    fn ordinary_trees_are_restorable_and_without_acls() {
        let d = TempDir::new("scan-plain");
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/file"), vec![7u8; 3000]).unwrap();
        std::os::unix::fs::symlink("a/b/file", d.join("link")).unwrap();
        std::fs::hard_link(d.join("a/b/file"), d.join("hard")).unwrap();
        let facts = scan_all_ways(&tar_of(d.path()));
        assert_eq!(facts.members, 6, "{facts:?}");
        assert!(!facts.acls);
        assert_eq!(facts.unrestorable(), None);
        assert_eq!(facts.longest_path, "./a/b/file".len());
    }

    #[test]
    fn paths_tar_cannot_create_or_give_attributes_to_are_found() {
        let d = TempDir::new("scan-deep");
        deep_file(d.path(), 4088);
        let facts = scan_all_ways(&tar_of(d.path()));
        assert_eq!(facts.longest_path, 4088);
        // Fine without ACLs; with one ACL anywhere, tar sets them everywhere.
        assert_eq!(facts.unrestorable(), None, "{facts:?}");
        let with_acl = Facts {
            acls: true,
            ..facts
        };
        assert!(with_acl.unrestorable().unwrap().contains("4088 bytes"));

        let d = TempDir::new("scan-deeper");
        deep_file(d.path(), 4200);
        let facts = scan_all_ways(&tar_of(d.path()));
        let why = facts.unrestorable().unwrap();
        assert!(
            why.contains("path of 4200 bytes") && why.len() < 400,
            "{why}"
        );
    }

    #[test]
    fn damaged_streams_are_problems_not_panics() {
        let d = TempDir::new("scan-bad");
        std::fs::write(d.join("f"), vec![1u8; 2000]).unwrap();
        let good = tar_of(d.path());
        let mut s = Scan::new();
        s.feed(&good[..good.len() / 3]);
        assert!(s.finish().problem.unwrap().contains("ends in the middle"));
        let mut bad = good.clone();
        bad[600] ^= 0xff;
        let mut s = Scan::new();
        s.feed(&bad);
        let f = s.finish();
        assert!(f.problem.is_some() || f.members > 0, "{f:?}");
        let mut s = Scan::new();
        s.feed(&[0x41; 5000]);
        assert!(s.finish().problem.unwrap().contains("bad checksum"));
    }
}
