//! The archive format is plain gzip-compressed POSIX tar, written and read by the
//! system's tar (GNU tar on Linux, bsdtar on NetBSD) with gzip, so any tar can
//! read it and ownership, modes, symlinks, hard links, sparse files (PAX sparse
//! 1.0), ACLs and extended attributes survive a round trip. This module only
//! plumbs the streams: it counts and hashes every byte itself, so the SHA-256 in
//! the sidecar is the hash of exactly what was written, and a restore extracts
//! exactly the bytes it verified.

use super::mac::Mac;
use super::progress::Progress;
use super::scan::{Facts, Scan};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};

const CHUNK: usize = 256 * 1024;

#[cfg(not(target_os = "netbsd"))]
mod tool {
    pub const TAR: &str = "tar";
    pub const CREATE: &[&str] = &[
        "--create",
        "--file=-",
        "--format=posix",
        "--sparse",
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        // Never descend into something mounted inside the tree (a cell's volume).
        "--one-file-system",
    ];
    pub const EXTRACT: &[&str] = &[
        "--extract",
        "--file=-",
        "--gzip",
        "--numeric-owner",
        "--same-owner",
        "--same-permissions",
        "--xattrs",
        "--xattrs-include=*",
    ];
    pub const ACLS: &str = "--acls";
}

// libarchive's bsdtar stores extended attributes, ACLs and sparse maps by default.
#[cfg(target_os = "netbsd")]
mod tool {
    pub const TAR: &str = "bsdtar";
    pub const CREATE: &[&str] = &[
        "-c",
        "-f",
        "-",
        "--format",
        "pax",
        "--numeric-owner",
        "--one-file-system",
    ];
    pub const EXTRACT: &[&str] = &[
        "-x",
        "-f",
        "-",
        "-z",
        "-p",
        "-S",
        "--numeric-owner",
        "--xattrs",
    ];
    pub const ACLS: &str = "--acls";
}

/// A tar or gzip that dies with this process: one left running after a
/// SIGKILL of its cellmgr would go on writing into a staging tree or a
/// partial archive while the next command removes it. (Elsewhere than Linux
/// it ends at end of file or on a broken pipe.)
fn child(program: &str) -> Command {
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
    let mut cmd = Command::new(program);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl and getppid are async-signal-safe. The parent check
        // covers a parent that died before prctl took effect.
        unsafe {
            let parent = libc::getpid();
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    cmd
}

/// What a written archive turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub sha256: String,
    /// Bytes of the compressed archive.
    pub size: u64,
    /// Bytes of the uncompressed tar stream.
    pub content_bytes: u64,
    /// What the stream holds (see [`super::scan`]).
    pub facts: Facts,
}

/// Archives the contents of `source` (as `./…`), but for paths matching an
/// `exclude` pattern, into `out`, gzip-compressed; `mac` (if any) is fed
/// every byte written.
pub fn create(
    source: &Path,
    exclude: &[&str],
    out: &mut File,
    mut mac: Option<&mut Mac>,
    progress: &mut Progress,
) -> Result<Written> {
    // From its working directory rather than `-C`: `source` may be a
    // detached mount reached through this process's descriptor
    // (`/proc/self/fd/N`), which tar still has before it execs.
    let mut tar = child(tool::TAR)
        .args(tool::CREATE)
        .args(exclude.iter().map(|e| format!("--exclude={e}")))
        .current_dir(source)
        .arg(".")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", tool::TAR))?;
    let mut gzip = match child("gzip")
        .args(["-c", "-n"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(g) => g,
        Err(e) => {
            kill_and_reap(&mut tar);
            return Err(e).context("starting gzip");
        }
    };
    let (tar_pid, gzip_pid) = (tar.id(), gzip.id());
    let mut tar_out = tar.stdout.take().expect("piped");
    let mut gzip_in = gzip.stdin.take().expect("piped");
    let mut gzip_out = gzip.stdout.take().expect("piped");
    let (tar_err, gzip_err) = (tar.stderr.take(), gzip.stderr.take());

    let (written, feed, tar_msg, gzip_msg) = std::thread::scope(|s| {
        let tar_msg = s.spawn(|| drain(tar_err));
        let gzip_msg = s.spawn(|| drain(gzip_err));
        // tar -> (count, scan) -> gzip: counting the uncompressed stream
        // drives the meter; its headers say what a restore will need.
        let feed = s.spawn(move || -> std::io::Result<(u64, Facts)> {
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            let mut scan = Scan::new();
            loop {
                let n = match tar_out.read(&mut buf) {
                    Ok(0) => return Ok((total, scan.finish())),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                scan.feed(&buf[..n]);
                gzip_in.write_all(&buf[..n])?;
                total += n as u64;
                progress.add(n as u64);
            }
        });
        // gzip -> (hash) -> archive file.
        let written = (|| -> Result<(String, u64)> {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            let mut size = 0u64;
            loop {
                let n = match gzip_out.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).context("reading from gzip"),
                };
                hasher.update(&buf[..n]);
                if let Some(m) = mac.as_deref_mut() {
                    m.update(&buf[..n]);
                }
                out.write_all(&buf[..n]).context("writing the archive")?;
                size += n as u64;
            }
            Ok((hex(&hasher.finalize()), size))
        })();
        if written.is_err() {
            // Unblock the feeder; both are our children and not yet reaped.
            signal_kill(tar_pid);
            signal_kill(gzip_pid);
        }
        (
            written,
            feed.join().expect("feeder thread"),
            tar_msg.join().expect("stderr thread"),
            gzip_msg.join().expect("stderr thread"),
        )
    });
    let tar_status = tar.wait().context("waiting for tar")?;
    let gzip_status = gzip.wait().context("waiting for gzip")?;
    let (sha256, size) = written?;
    if !tar_status.success() {
        bail!(
            "{} failed ({tar_status}): {}",
            tool::TAR,
            last_lines(&tar_msg)
        );
    }
    let (content_bytes, facts) = feed.context("passing the tar stream to gzip")?;
    if !gzip_status.success() {
        bail!("gzip failed ({gzip_status}): {}", last_lines(&gzip_msg));
    }
    for line in String::from_utf8_lossy(&tar_msg).lines() {
        log::warn!("{}: {line}", tool::TAR);
    }
    Ok(Written {
        sha256,
        size,
        content_bytes,
        facts,
    })
}

/// Extracts `archive` into the existing directory `dest`, hashing the bytes as
/// they are fed to tar (and feeding `mac`, if any); fails if they do not hash
/// to `sha256` (and then the caller discards `dest`) or tar fails. `acls`: the
/// archive holds ACLs to restore (without any, tar is not asked to set them:
/// that costs a path length, see [`super::scan`]).
pub fn extract(
    archive: &mut File,
    dest: &Path,
    sha256: &str,
    acls: bool,
    mut mac: Option<&mut Mac>,
    progress: &mut Progress,
) -> Result<()> {
    // Into its working directory, as `create` (a detached mount included).
    let mut tar = child(tool::TAR)
        .args(tool::EXTRACT)
        .args(acls.then_some(tool::ACLS))
        .current_dir(dest)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", tool::TAR))?;
    let mut tar_in = Some(tar.stdin.take().expect("piped"));
    let tar_err = tar.stderr.take();
    let (read, tar_msg) = std::thread::scope(|s| {
        let msg = s.spawn(|| drain(tar_err));
        let read = (|| -> Result<String> {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match archive.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).context("reading the archive"),
                };
                hasher.update(&buf[..n]);
                if let Some(m) = mac.as_deref_mut() {
                    m.update(&buf[..n]);
                }
                progress.add(n as u64);
                // If tar stopped early, keep hashing: the checksum explains why.
                if let Some(pipe) = tar_in.as_mut() {
                    if pipe.write_all(&buf[..n]).is_err() {
                        tar_in = None;
                    }
                }
            }
            tar_in = None;
            Ok(hex(&hasher.finalize()))
        })();
        if read.is_err() {
            tar_in = None;
        }
        (read, msg.join().expect("stderr thread"))
    });
    let status = tar.wait().context("waiting for tar")?;
    let actual = read?;
    if actual != sha256 {
        bail!("checksum mismatch: the archive hashes to {actual}, its sidecar says {sha256}");
    }
    if !status.success() {
        bail!("{} failed ({status}): {}", tool::TAR, last_lines(&tar_msg));
    }
    for line in String::from_utf8_lossy(&tar_msg).lines() {
        log::warn!("{}: {}", tool::TAR, crate::output::echo(line));
    }
    Ok(())
}

/// SHA-256 (hex), length and contents (see [`super::scan`]) of a whole
/// gzip-compressed archive: one read, the decompression done by gzip.
/// `mac` (if any) is fed every byte.
pub fn scan_file(
    file: &mut File,
    mut mac: Option<&mut Mac>,
    progress: &mut Progress,
) -> Result<(String, u64, Facts)> {
    let mut gzip = child("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting gzip")?;
    let mut gzip_in = Some(gzip.stdin.take().expect("piped"));
    let mut gzip_out = gzip.stdout.take().expect("piped");
    let gzip_err = gzip.stderr.take();
    let (hashed, facts, msg) = std::thread::scope(|s| {
        let msg = s.spawn(|| drain(gzip_err));
        let facts = s.spawn(move || {
            let mut scan = Scan::new();
            let mut buf = vec![0u8; CHUNK];
            loop {
                match gzip_out.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => scan.feed(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            scan.finish()
        });
        let hashed = (|| -> Result<(String, u64)> {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            let mut size = 0u64;
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                hasher.update(&buf[..n]);
                if let Some(m) = mac.as_deref_mut() {
                    m.update(&buf[..n]);
                }
                size += n as u64;
                progress.add(n as u64);
                // gzip stopping early (not gzip data) is reported below.
                if let Some(pipe) = gzip_in.as_mut() {
                    if pipe.write_all(&buf[..n]).is_err() {
                        gzip_in = None;
                    }
                }
            }
            gzip_in = None;
            Ok((hex(&hasher.finalize()), size))
        })();
        gzip_in = None;
        (
            hashed,
            facts.join().expect("scan thread"),
            msg.join().expect("stderr thread"),
        )
    });
    let status = gzip.wait().context("waiting for gzip")?;
    let (sha, size) = hashed?;
    let mut facts = facts;
    if !status.success() {
        facts.problem = Some(format!(
            "gzip cannot decompress it ({status}): {}",
            last_lines(&msg)
        ));
    }
    Ok((sha, size, facts))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn drain(stream: Option<ChildStderr>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(mut s) = stream {
        let _ = s.read_to_end(&mut out);
    }
    out
}

/// The last few lines of a tool's stderr, for an error message.
fn last_lines(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "no message".to_string();
    }
    lines[lines.len().saturating_sub(3)..].join("; ")
}

fn signal_kill(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: plain kill(2) on a child we spawned and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_plain_files_checks_the_hash() {
        let base = crate::testutil::TempDir::new("tar");
        let src = base.join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/a"), b"alpha").unwrap();
        let archive = base.join("a.tar.gz");
        let mut out = File::create(&archive).unwrap();
        let w = create(&src, &[], &mut out, None, &mut Progress::hidden()).unwrap();
        drop(out);
        assert_eq!(w.size, std::fs::metadata(&archive).unwrap().len());
        assert!(w.content_bytes >= 3 * 512, "{w:?}");
        let (sha, size, facts) = scan_file(
            &mut File::open(&archive).unwrap(),
            None,
            &mut Progress::hidden(),
        )
        .unwrap();
        assert_eq!((sha.as_str(), size), (w.sha256.as_str(), w.size));
        assert_eq!(facts, w.facts);

        let dest = base.join("dest");
        std::fs::create_dir(&dest).unwrap();
        let mut f = File::open(&archive).unwrap();
        extract(
            &mut f,
            &dest,
            &w.sha256,
            false,
            None,
            &mut Progress::hidden(),
        )
        .unwrap();
        assert_eq!(std::fs::read(dest.join("sub/a")).unwrap(), b"alpha");

        let other = base.join("other");
        std::fs::create_dir(&other).unwrap();
        let mut f = File::open(&archive).unwrap();
        let e = extract(
            &mut f,
            &other,
            &"0".repeat(64),
            false,
            None,
            &mut Progress::hidden(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
    }
}
