//! Backups through the real `cellmgr` binary: round trips of every kind of file,
//! corruption, in-use refusal, kill -9 during restore, retention, progress.
//! Most need root (ownership, bind mounts, trusted xattrs) and skip without it.

mod support;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;
use support::{TempDir, BIN};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root (ownership, mounts, trusted xattrs)");
            return;
        }
    };
}

/// A temporary cellmgr world: config, volumes, cells, manifests and backups.
struct World {
    root: TempDir,
    conf: PathBuf,
}

impl World {
    fn new(tag: &str, extra_conf: &str) -> World {
        let root = TempDir::new(&format!("backup-{tag}"));
        support::trusted_dir(&root.join("etc"));
        let conf = root.join("cellmgr.conf");
        support::write_trusted(
            &conf,
            format!(
                "CELLMGR_MANIFEST_DIR={r}/etc\nCELL_DATA_DIR={r}/cells\nCELL_VOLUME_DIR={r}/volumes\n\
                 CELL_BACKUP_DIR={r}/backups\nCELL_RUN_DIR={r}/run\nCELL_AUDIT_LOG={r}/audit.log\nCELL_BASE_DIR={r}/base\n{extra_conf}",
                r = root.path().display()
            ),
        );
        World { root, conf }
    }

    fn volume(&self, name: &str) -> PathBuf {
        let p = self.root.join("volumes").join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// Runs cellmgr in a new session: no controlling terminal to ask on.
    fn mgr(&self, args: &[&str]) -> Output {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(BIN);
        cmd.arg("mgr")
            .args(args)
            .env("CELLMGR_CONF", &self.conf)
            .stdin(Stdio::null());
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            })
        };
        cmd.output().unwrap()
    }

    /// Runs cellmgr and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.mgr(args);
        assert!(
            out.status.success(),
            "cellmgr {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs cellmgr and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.mgr(args);
        assert_eq!(out.status.code(), Some(1), "cellmgr {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn archives(&self, kind: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.root.join("backups").join(kind))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.to_string_lossy().ends_with(".tar.gz"));
        v.sort();
        v
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer for the call's duration.
    let rc = unsafe {
        libc::lsetxattr(
            cpath(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let c = cpath(p);
    let mut names = vec![0u8; 4096];
    // SAFETY: buffers are valid for the sizes passed.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let mut out = BTreeMap::new();
    if n <= 0 {
        return out;
    }
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut val = vec![0u8; 4096];
        // SAFETY: as above.
        let m =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if m >= 0 {
            val.truncate(m as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), val);
        }
    }
    out
}

/// Everything a round trip must preserve, per path.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = dir.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("link->{}", fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let data = fs::read(&p).unwrap();
            let link = if m.nlink() > 1 {
                let first = inodes
                    .entry(m.ino())
                    .or_insert_with(|| rel.display().to_string());
                format!(" hardlink-group={first} nlink={}", m.nlink())
            } else {
                String::new()
            };
            let sum: u64 = data
                .iter()
                .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(*b)));
            format!("file size={} sum={sum:x}{link}", data.len())
        } else {
            format!("special rdev={}", m.rdev())
        };
        let mtime = if ft.is_dir() && rel.as_os_str().is_empty() {
            0 // the top directory's mtime changes with every entry created in it
        } else {
            m.mtime()
        };
        out.insert(
            format!("/{}", rel.display()),
            format!(
                "{kind} mode={:o} uid={} gid={} mtime={mtime} xattrs={:?}",
                m.mode(),
                m.uid(),
                m.gid(),
                xattrs(&p)
            ),
        );
        if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
    }
    out
}

fn write_sparse(p: &Path, size: u64, chunks: &[(u64, &[u8])]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = fs::File::create(p).unwrap();
    f.set_len(size).unwrap();
    for (off, data) in chunks {
        f.seek(SeekFrom::Start(*off)).unwrap();
        f.write_all(data).unwrap();
    }
}

/// A tree with every kind of entry a backup must carry.
fn populate(dir: &Path) {
    use std::os::unix::fs::{chown, lchown, symlink};
    fs::create_dir_all(dir.join("shared")).unwrap();
    fs::set_permissions(dir.join("shared"), fs::Permissions::from_mode(0o2775)).unwrap();
    chown(dir.join("shared"), Some(1234), Some(2345)).unwrap();
    fs::write(dir.join("shared/owned"), b"owned by 1001:1002\n").unwrap();
    chown(dir.join("shared/owned"), Some(1001), Some(1002)).unwrap();
    fs::set_permissions(dir.join("shared/owned"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(dir.join("tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(dir.join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("shared/owned", dir.join("rel-link")).unwrap();
    symlink("/nonexistent/target", dir.join("dangling")).unwrap();
    lchown(dir.join("dangling"), Some(1001), Some(1002)).unwrap();
    fs::write(dir.join("hard-a"), b"two names, one inode\n").unwrap();
    fs::hard_link(dir.join("hard-a"), dir.join("shared/hard-b")).unwrap();
    write_sparse(
        &dir.join("sparse.img"),
        64 << 20,
        &[
            (0, b"head"),
            (32 << 20, b"middle"),
            ((64 << 20) - 4, b"tail"),
        ],
    );
    fs::write(dir.join("tagged"), b"with an xattr\n").unwrap();
    set_xattr(&dir.join("tagged"), "user.cells.test", b"value-1");
    // No fifo: restore refuses fifos, sockets and device nodes (see
    // `restore_refuses_device_nodes_and_fifos`).
    fs::write(dir.join("name with spaces and \u{e9}"), b"x").unwrap();
    let deep: PathBuf = (0..12)
        .map(|i| format!("a-rather-long-directory-name-{i}"))
        .collect();
    fs::create_dir_all(dir.join(&deep)).unwrap();
    fs::write(dir.join(&deep).join("leaf"), b"long path (PAX header)\n").unwrap();
}

#[test]
fn volume_round_trip_preserves_every_kind_of_file() {
    need_root!();
    let w = World::new("roundtrip", "");
    let vol = w.volume("data");
    populate(&vol);
    fs::set_permissions(&vol, fs::Permissions::from_mode(0o2750)).unwrap();
    std::os::unix::fs::chown(&vol, Some(4321), Some(4321)).unwrap();
    let before = snapshot(&vol);
    let archive = w.ok(&["volume", "backup", "create", "data"]);
    let archive = PathBuf::from(archive.trim());
    assert!(
        archive.starts_with(w.root.join("backups/volumes")),
        "{}",
        archive.display()
    );
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("data_")
            && name.ends_with("Z.tar.gz")
            && name.len() == "data_".len() + 16 + 7,
        "{name}"
    );
    assert!(archive
        .with_file_name(name.replace(".tar.gz", ".meta.cbor"))
        .exists());

    // Plain tar reads it.
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(listing.status.success());
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("./shared/owned") && listing.contains("./sparse.img"),
        "{listing}"
    );
    // ... and extracts it with everything intact, without cellmgr.
    let by_hand = w.root.join("by-hand");
    fs::create_dir(&by_hand).unwrap();
    let st = Command::new("tar")
        .args(["-xzpf"])
        .arg(&archive)
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-C"])
        .arg(&by_hand)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(snapshot(&by_hand), before, "GNU tar extraction");
    fs::remove_dir_all(&by_hand).unwrap();
    fs::create_dir(&by_hand).unwrap();
    match Command::new("bsdtar")
        .args(["-xzpf"])
        .arg(&archive)
        .args(["--numeric-owner", "--xattrs", "-C"])
        .arg(&by_hand)
        .output()
    {
        Ok(o) => {
            assert!(
                o.status.success(),
                "bsdtar: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(snapshot(&by_hand), before, "bsdtar extraction");
        }
        Err(_) => eprintln!("bsdtar not installed (libarchive-tools): its check skipped"),
    }
    fs::remove_dir_all(&by_hand).unwrap();

    // Wreck the volume, then restore.
    fs::remove_dir_all(vol.join("shared")).unwrap();
    fs::write(vol.join("tool"), b"overwritten").unwrap();
    fs::write(vol.join("stray"), b"must disappear").unwrap();
    w.ok(&[
        "volume",
        "backup",
        "restore",
        "data",
        "--latest",
        "--keep-setid",
        "--yes",
    ]);
    let after = snapshot(&vol);
    assert_eq!(before, after);
    // Without --keep-setid the set-uid bit goes, and nothing else changes.
    w.ok(&["volume", "backup", "restore", "data", "--latest", "--yes"]);
    let mut expected = before.clone();
    let tool = expected.get_mut("/tool").unwrap();
    *tool = tool.replace("mode=104755", "mode=100755");
    assert_eq!(snapshot(&vol), expected);
    // The sparse file still has its holes.
    let m = fs::metadata(vol.join("sparse.img")).unwrap();
    assert_eq!(m.len(), 64 << 20);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "sparse file takes {} blocks",
        m.blocks()
    );
    let left: Vec<String> = fs::read_dir(w.root.join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["data"]);
}

#[test]
fn cell_backup_keeps_overlay_whiteouts_and_restores_manifests() {
    need_root!();
    let w = World::new("cell", "");
    let upper = w.root.join("cells/web/overlay/upper");
    fs::create_dir_all(upper.join("etc")).unwrap();
    fs::create_dir_all(w.root.join("cells/web/overlay/work")).unwrap();
    fs::write(upper.join("etc/motd"), b"hello\n").unwrap();
    // overlayfs records deletions as 0:0 character devices and opaque dirs as xattrs.
    let wh = cpath(&upper.join("etc/removed"));
    // SAFETY: valid path; creates a device node (root).
    assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR, 0) }, 0);
    fs::create_dir(upper.join("var")).unwrap();
    set_xattr(&upper.join("var"), "trusted.overlay.opaque", b"y");
    let manifest = w.root.join("etc/web.cell");
    fs::write(&manifest, b"CELL_CMD=\"/bin/sleep 1000\"\n").unwrap();
    fs::write(w.root.join("etc/web.apply"), b"# plan\n").unwrap();
    let overlay = w.root.join("cells/web/overlay");
    let before = snapshot(&overlay);
    let archive = PathBuf::from(w.ok(&["cell", "backup", "create", "web"]).trim());
    assert!(archive.starts_with(w.root.join("backups/overlays")));

    fs::remove_dir_all(w.root.join("cells/web")).unwrap();
    fs::write(&manifest, b"CELL_CMD=/bin/false\n").unwrap();
    let from = archive.file_name().unwrap().to_str().unwrap();
    let out = w.ok(&[
        "cell",
        "backup",
        "restore",
        "web",
        "--from",
        from,
        "--manifest",
        "-y",
    ]);
    assert!(out.contains("restored manifest"), "{out}");
    assert_eq!(snapshot(&overlay), before);
    assert_eq!(
        fs::read(&manifest).unwrap(),
        b"CELL_CMD=\"/bin/sleep 1000\"\n"
    );
}

#[test]
fn a_flipped_byte_makes_restore_refuse_and_keeps_the_live_data() {
    need_root!();
    let w = World::new("corrupt", "");
    let vol = w.volume("v");
    populate(&vol);
    w.ok(&["volume", "backup", "create", "v"]);
    fs::write(vol.join("after-backup"), b"live change").unwrap();
    let before = snapshot(&vol);
    let archive = &w.archives("volumes")[0];
    let mut bytes = fs::read(archive).unwrap();
    let i = bytes.len() / 3;
    bytes[i] ^= 0x20;
    fs::write(archive, &bytes).unwrap();

    let err = w.fails(&["volume", "backup", "verify", "v"]);
    assert!(
        err.contains("BAD") && err.contains("checksum mismatch"),
        "{err}"
    );
    let err = w.fails(&["volume", "backup", "restore", "v", "--latest", "--yes"]);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_eq!(snapshot(&vol), before);
    assert_eq!(fs::read_dir(w.root.join("volumes")).unwrap().count(), 1);
}

/// A bind mount this test made; unmounted on drop.
struct BindMount(PathBuf);

impl BindMount {
    fn new(src: &Path, dst: &Path) -> BindMount {
        fs::create_dir_all(dst).unwrap();
        let st = Command::new("mount")
            .arg("--bind")
            .arg(src)
            .arg(dst)
            .status()
            .unwrap();
        assert!(st.success(), "mount --bind");
        BindMount(dst.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn restore_is_refused_while_the_volume_is_mounted() {
    need_root!();
    let w = World::new("mounted", "");
    let vol = w.volume("m");
    fs::write(vol.join("f"), b"1").unwrap();
    w.ok(&["volume", "backup", "create", "m"]);
    fs::write(vol.join("f"), b"2").unwrap();
    {
        let _mnt = BindMount::new(&vol, &w.root.join("cells/x/root/data"));
        let err = w.fails(&["volume", "backup", "restore", "m", "--latest", "--yes"]);
        assert!(
            err.contains("volume m is in use") && err.contains("mounted at"),
            "{err}"
        );
        assert!(err.contains("cells/x/root/data"), "{err}");
        // --stop stops cells, but this mount belongs to no cell.
        let err = w.fails(&[
            "volume", "backup", "restore", "m", "--latest", "--yes", "--stop",
        ]);
        assert!(err.contains("unmount it first"), "{err}");
        assert_eq!(fs::read(vol.join("f")).unwrap(), b"2");
    }
    w.ok(&["volume", "backup", "restore", "m", "--latest", "--yes"]);
    assert_eq!(fs::read(vol.join("f")).unwrap(), b"1");
}

/// Two distinct data sets of ~40 MiB in many files, so a restore takes a while.
fn fill(dir: &Path, seed: u8) {
    for d in 0..8 {
        let sub = dir.join(format!("d{d}"));
        fs::create_dir_all(&sub).unwrap();
        for f in 0..40 {
            let len = 64 * 1024 + usize::from(seed) * 4096 + f * 1024;
            let data: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(f as u8))
                .collect();
            fs::write(sub.join(format!("f{f}-{seed}")), data).unwrap();
        }
    }
}

#[test]
fn kill_9_during_restore_leaves_old_or_new_never_a_mix() {
    need_root!();
    let w = World::new("kill9", "");
    let vol = w.volume("k");
    fill(&vol, 3);
    let snap_a = snapshot(&vol);
    let a = PathBuf::from(
        w.ok(&["volume", "backup", "create", "k", "-q"])
            .trim()
            .to_string(),
    );
    let a = w
        .archives("volumes")
        .into_iter()
        .find(|p| a.as_os_str().is_empty() || *p == a)
        .unwrap();
    fs::remove_dir_all(&vol).unwrap();
    fs::create_dir(&vol).unwrap();
    fill(&vol, 7);
    let snap_b = snapshot(&vol);
    w.ok(&["volume", "backup", "create", "k", "-q"]);
    let b = w.archives("volumes").into_iter().find(|p| *p != a).unwrap();
    let file = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();

    // How long a whole restore takes here (live is B; restore A).
    let t0 = Instant::now();
    w.ok(&[
        "volume",
        "backup",
        "restore",
        "k",
        "--from",
        &file(&a),
        "--yes",
        "-q",
    ]);
    let full = t0.elapsed();
    assert_eq!(snapshot(&vol), snap_a);

    let mut seen_new = 0;
    for step in 1..=12u32 {
        let live_is_a = snapshot(&vol) == snap_a;
        let (from, old, new) = if live_is_a {
            (&b, &snap_a, &snap_b)
        } else {
            (&a, &snap_b, &snap_a)
        };
        let mut child = Command::new(BIN)
            .args([
                "mgr",
                "volume",
                "backup",
                "restore",
                "k",
                "--from",
                &file(from),
                "--yes",
                "-q",
            ])
            .env("CELLMGR_CONF", &w.conf)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        // The kill point (a fraction of a full run), not a wait for anything.
        std::thread::sleep(full.mul_f64(f64::from(step) / 12.0));
        let _ = child.kill(); // SIGKILL, by the child's PID
        let _ = child.wait();
        let now = snapshot(&vol);
        assert!(
            now == *old || now == *new,
            "step {step}: the volume holds a mix of old and new data"
        );
        if now == *new {
            seen_new += 1;
        }
    }
    eprintln!("kill -9 at 12 points of a {full:?} restore: new data in place {seen_new} times");
    // The next run settles leftovers.
    w.ok(&[
        "volume",
        "backup",
        "restore",
        "k",
        "--from",
        &file(&a),
        "--yes",
        "-q",
    ]);
    assert_eq!(snapshot(&vol), snap_a);
    let names: Vec<String> = fs::read_dir(w.root.join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["k"], "leftovers after recovery");
}

fn flip_byte(p: &Path) {
    let mut bytes = fs::read(p).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
    fs::write(p, bytes).unwrap();
}

#[test]
fn retention_keeps_the_newest_archives_that_verify() {
    let w = World::new("retention", "CELL_BACKUP_KEEP=2\n");
    let vol = w.volume("r");
    for i in 0..4 {
        fs::write(vol.join("gen"), format!("{i}")).unwrap();
        w.ok(&["volume", "backup", "create", "r", "-q"]);
    }
    let all = w.archives("volumes");
    assert_eq!(all.len(), 4);
    let out = w.ok(&["volume", "backup", "delete", "r", "--prune", "--yes"]);
    assert_eq!(out.matches("deleted").count(), 2, "{out}");
    assert_eq!(w.archives("volumes"), all[2..].to_vec());

    // The two newest go bad; pruning to 1 counts only archives that verify:
    // the newest good one stays, and so do the bad ones newer than it.
    fs::write(vol.join("gen"), "4").unwrap();
    w.ok(&["volume", "backup", "create", "r", "-q"]);
    let all = w.archives("volumes"); // a2 a3 a4
    flip_byte(&all[1]);
    flip_byte(&all[2]);
    let out = w.ok(&[
        "volume", "backup", "delete", "r", "--prune", "--keep", "1", "--yes",
    ]);
    assert_eq!(out.matches("deleted").count(), 0, "{out}");
    assert_eq!(w.archives("volumes"), all);
    // A new good backup makes the old good one prunable.
    w.ok(&[
        "volume", "backup", "create", "r", "-q", "--prune", "--keep", "1",
    ]);
    let left = w.archives("volumes");
    assert_eq!(left.len(), 1);
    assert!(!all.contains(&left[0]));
    let tsv = w.ok(&[
        "volume",
        "backup",
        "list",
        "r",
        "-T",
        "-H",
        "-o",
        "volume,status",
    ]);
    assert_eq!(tsv, "r\tcomplete\n");
}

#[test]
fn list_follows_the_read_contract_newest_first() {
    let w = World::new("list", "");
    let vol = w.volume("l");
    fs::write(vol.join("f"), b"x").unwrap();
    assert_eq!(
        w.ok(&["volume", "backup", "list", "l", "-T"]),
        "volume\tcreated\tage\tsize\tstatus\tarchive\n"
    );
    w.ok(&["volume", "backup", "create", "l", "-q"]);
    w.ok(&["volume", "backup", "create", "l", "-q"]);
    let tsv = w.ok(&[
        "volume",
        "backup",
        "list",
        "l",
        "-T",
        "-H",
        "-o",
        "created,archive,sha256",
    ]);
    let rows: Vec<Vec<&str>> = tsv.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0][0] > rows[1][0], "newest first: {tsv}");
    assert!(rows[0][1].ends_with(&format!("l_{}.tar.gz", rows[0][0])));
    assert_eq!(rows[0][2].len(), 64);
    let table = w.ok(&["volume", "backup", "list", "l"]);
    assert!(table.starts_with("VOLUME  CREATED"), "{table}");
    let err = w.fails(&["volume", "backup", "list", "l", "-o", "nope"]);
    assert!(err.contains("unknown volume backup field 'nope'"), "{err}");
    let err = w.fails(&["volume", "backup", "list", "l", "-H"]);
    assert!(err.contains("-H requires -T"), "{err}");
    let err = w.fails(&["cell", "backup", "list", "../etc"]);
    assert!(err.contains("invalid cell name"), "{err}");
}

#[test]
fn destructive_commands_need_a_clear_choice_and_confirmation() {
    let w = World::new("confirm", "");
    let vol = w.volume("c");
    fs::write(vol.join("f"), b"1").unwrap();
    w.ok(&["volume", "backup", "create", "c", "-q"]);
    let err = w.fails(&["volume", "backup", "restore", "c", "--yes"]);
    assert!(err.contains("--latest or --from"), "{err}");
    let err = w.fails(&[
        "volume", "backup", "restore", "c", "--latest", "--from", "x", "--yes",
    ]);
    assert!(
        err.contains("--latest and --from exclude each other"),
        "{err}"
    );
    let err = w.fails(&["volume", "backup", "restore", "c", "--latest"]);
    assert!(err.contains("needs confirmation: pass --yes"), "{err}");
    let err = w.fails(&["volume", "backup", "delete", "c", "--latest"]);
    assert!(err.contains("needs confirmation: pass --yes"), "{err}");
    assert_eq!(w.archives("volumes").len(), 1);
    let err = w.fails(&[
        "volume",
        "backup",
        "restore",
        "c",
        "--from",
        "c_20200101T000000Z.tar.gz",
        "--yes",
    ]);
    assert!(err.contains("no such archive"), "{err}");
    // Typed confirmation on a terminal is covered by `script` in the progress test.
    w.ok(&["volume", "backup", "delete", "c", "--latest", "--yes", "-q"]);
    assert!(w.archives("volumes").is_empty());
}

#[test]
fn progress_only_on_a_terminal_and_never_with_q() {
    let w = World::new("progress", "");
    let vol = w.volume("p");
    write_sparse(&vol.join("big"), 8 << 20, &[(0, &[7u8; 4 << 20])]);
    // No terminal: nothing on stderr.
    let out = w.mgr(&["volume", "backup", "create", "p"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = w.mgr(&["volume", "backup", "restore", "p", "--latest", "--yes"]);
    assert!(out.status.success() && out.stderr.is_empty());

    // A terminal through script(1): progress with rate, and a typed confirmation.
    // What is typed is echoed by the terminal, so only the confirmation gets input.
    let script = |cmd: &str, input: &[u8]| -> Option<String> {
        let out = Command::new("script")
            .args(["-qec", cmd, "/dev/null"])
            .env("CELLMGR_CONF", &w.conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        use std::io::Write;
        let mut out = out;
        out.stdin.take().unwrap().write_all(input).unwrap();
        let o = out.wait_with_output().unwrap();
        Some(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let bin = BIN;
    let Some(tty) = script(
        &format!("{bin} mgr volume backup restore p --latest"),
        b"yes\n",
    ) else {
        eprintln!("script(1) not available: terminal part skipped");
        return;
    };
    assert!(tty.contains("Type 'yes'"), "{tty}");
    assert!(tty.contains("restoring p_") && tty.contains("/s"), "{tty}");
    assert!(tty.contains("restored volume p"), "{tty}");
    let quiet = script(&format!("{bin} mgr volume backup create p -q"), b"").unwrap();
    assert!(quiet.trim().is_empty(), "{quiet:?}");
}

/// An archive taken while the clock ran a day ahead keeps that stamp: after
/// the clock is set right, `--latest` must still be the last one created
/// (the sidecar's sequence number), not the one with the highest stamp. The
/// clock itself is not touched: the first archive is given the stamp it would
/// have had.
#[test]
fn latest_is_the_last_created_even_after_the_clock_went_back() {
    use cells::engine::backup::{naming, sidecar::Sidecar};
    need_root!();
    let w = World::new("clock", "");
    let vol = w.volume("c");
    fs::write(vol.join("gen"), "old").unwrap();
    w.ok(&["volume", "backup", "create", "c", "-q"]);
    let first = w.archives("volumes").pop().unwrap();
    let dir = first.parent().unwrap().to_path_buf();
    let file = first.file_name().unwrap().to_str().unwrap().to_string();
    let mut side = Sidecar::read(&dir.join(naming::sidecar_name(&file))).unwrap();
    let ahead = side.created + 86_400;
    let future = naming::archive_name("c", ahead);
    fs::rename(&first, dir.join(&future)).unwrap();
    fs::remove_file(dir.join(naming::sidecar_name(&file))).unwrap();
    side.archive = future.clone();
    side.created = ahead;
    side.write(&dir.join(naming::sidecar_name(&future)))
        .unwrap();

    fs::write(vol.join("gen"), "new").unwrap();
    w.ok(&["volume", "backup", "create", "c", "-q"]);
    let tsv = w.ok(&["volume", "backup", "list", "c", "-T", "-H", "-o", "archive"]);
    let order: Vec<&str> = tsv.lines().collect();
    assert!(
        order[1].ends_with(&future),
        "the future-dated one is older: {tsv}"
    );
    w.ok(&[
        "volume", "backup", "restore", "c", "--latest", "--yes", "-q",
    ]);
    assert_eq!(fs::read_to_string(vol.join("gen")).unwrap(), "new");
}

/// A file `len` bytes deep below `dir` as tar names it (`./d…/f…`), built
/// through directory descriptors (the whole path is too long for one call).
fn deep_file(dir: &Path, len: usize) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut fd: OwnedFd = fs::File::open(dir).unwrap().into();
    let mut rel = 1; // "."
    while len - rel > 250 {
        let name = CString::new("d".repeat(200)).unwrap();
        // SAFETY: mkdirat/openat on descriptors we own.
        unsafe {
            libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o755);
            let next = libc::openat(
                fd.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY,
            );
            assert!(next >= 0);
            fd = OwnedFd::from_raw_fd(next);
        }
        rel += 201;
    }
    let leaf = CString::new("f".repeat(len - rel - 1)).unwrap();
    // SAFETY: as above.
    unsafe {
        let f = libc::openat(
            fd.as_raw_fd(),
            leaf.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY,
            0o644,
        );
        assert!(f >= 0);
        libc::write(f, b"deep".as_ptr().cast(), 4);
        libc::close(f);
    }
}

/// Sets an ACL (user 1234 may read) through its extended attribute; false
/// where the file system has no ACLs.
fn set_acl(p: &Path) -> bool {
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 4, 1234),
        (4, 4, u32::MAX),
        (16, 4, u32::MAX),
        (32, 4, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    let c = cpath(p);
    let name = CString::new("system.posix_acl_access").unwrap();
    // SAFETY: valid strings and buffer.
    unsafe { libc::setxattr(c.as_ptr(), name.as_ptr(), acl.as_ptr().cast(), acl.len(), 0) == 0 }
}

/// "Verifies" means "restores": an archive tar cannot extract fails verify,
/// is never counted by prune, and is never made; a long path without ACLs
/// restores (tar is not asked for ACLs it would fail to set).
#[test]
fn verify_means_restores_and_prune_keeps_what_restores() {
    use cells::engine::backup::{naming, sidecar::Sidecar};
    need_root!();
    let w = World::new("restorable", "");
    let vol = w.volume("v");
    fs::write(vol.join("gen"), "1").unwrap();
    w.ok(&["volume", "backup", "create", "v", "-q"]);
    fs::write(vol.join("gen"), "2").unwrap();
    w.ok(&["volume", "backup", "create", "v", "-q"]);
    let good = w.archives("volumes");

    // 4088 bytes deep, no ACLs: backed up, verified and restored.
    deep_file(&vol, 4088);
    w.ok(&["volume", "backup", "create", "v", "-q"]);
    w.ok(&["volume", "backup", "verify", "v", "--latest", "-q"]);
    fs::remove_file(vol.join("gen")).unwrap();
    let out = w.mgr(&[
        "volume", "backup", "restore", "v", "--latest", "--yes", "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("acl"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(vol.join("gen")).unwrap(), "2");
    w.ok(&["volume", "backup", "delete", "v", "--latest", "--yes", "-q"]);
    // With an ACL anywhere tar sets them on every member, and that path is
    // too long for it: no archive is made that would lose it.
    if set_acl(&vol.join("gen")) {
        let err = w.fails(&["volume", "backup", "create", "v", "-q"]);
        assert!(
            err.contains("could not be restored") && err.contains("4088"),
            "{err}"
        );
        assert_eq!(w.archives("volumes"), good, "nothing left behind");
    }
    // Deeper than tar can create at all.
    let out = Command::new("rm")
        .arg("-rf")
        .arg(vol.join("d".repeat(200)))
        .status()
        .unwrap();
    assert!(out.success());
    deep_file(&vol, 4200);
    let err = w.fails(&["volume", "backup", "create", "v", "-q"]);
    assert!(err.contains("4200 bytes"), "{err}");

    // Such an archive made by hand (or an older cellmgr): verify refuses it,
    // and prune --keep 1 keeps the newest one that restores.
    let dir = w.root.join("backups/volumes");
    let newest = good.last().unwrap();
    let side = Sidecar::read(&dir.join(naming::sidecar_name(
        newest.file_name().unwrap().to_str().unwrap(),
    )))
    .unwrap();
    let file = naming::archive_name("v", side.created + 3600);
    let sh = format!(
        "tar --create --file=- --format=posix -C {} . | gzip -c -n > {}",
        vol.display(),
        dir.join(&file).display()
    );
    assert!(Command::new("sh")
        .args(["-c", &sh])
        .status()
        .unwrap()
        .success());
    let bytes = fs::read(dir.join(&file)).unwrap();
    let sha = Command::new("sha256sum")
        .arg(dir.join(&file))
        .output()
        .unwrap();
    let deep = Sidecar {
        archive: file.clone(),
        sha256: String::from_utf8_lossy(&sha.stdout)[..64].to_string(),
        size: bytes.len() as u64,
        seq: side.seq + 1,
        acls: Some(false),
        created: side.created + 3600,
        ..side
    };
    deep.write(&dir.join(naming::sidecar_name(&file))).unwrap();
    let out = w.mgr(&["volume", "backup", "verify", "v", "--latest"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be restored") && err.contains("4200 bytes"),
        "{err}"
    );
    let out = w.ok(&[
        "volume", "backup", "delete", "v", "--prune", "--keep", "1", "--yes",
    ]);
    assert_eq!(out.matches("deleted").count(), 1, "{out}");
    let left = w.archives("volumes");
    assert!(
        left.contains(&good[1]) && !left.contains(&good[0]),
        "{left:?}"
    );
}

/// A crafted or cell-made archive with a device node or a fifo restores
/// nothing: the live data stays as it was.
#[test]
fn restore_refuses_device_nodes_and_fifos() {
    need_root!();
    let w = World::new("devnodes", "");
    for (name, make) in [
        ("console", libc::S_IFCHR),
        ("disk", libc::S_IFBLK),
        ("pipe", libc::S_IFIFO),
    ] {
        let vol = w.volume(name);
        fs::write(vol.join("data"), b"before").unwrap();
        let node = cpath(&vol.join("node"));
        let dev = if make == libc::S_IFIFO {
            0
        } else {
            libc::makedev(5, 1)
        };
        // SAFETY: a valid path; root may make device nodes in its temp dir.
        assert_eq!(unsafe { libc::mknod(node.as_ptr(), make | 0o666, dev) }, 0);
        w.ok(&["volume", "backup", "create", name]);
        fs::remove_file(vol.join("node")).unwrap();
        fs::write(vol.join("data"), b"live").unwrap();
        let before = snapshot(&vol);
        let err = w.fails(&["volume", "backup", "restore", name, "--latest", "--yes"]);
        assert!(
            err.contains("restore refuses device nodes, fifos and sockets"),
            "{name}: {err}"
        );
        assert!(err.contains("at /node"), "{name}: {err}");
        assert_eq!(snapshot(&vol), before, "{name}: the live data changed");
        // --keep-setid does not let them through either.
        let err = w.fails(&[
            "volume",
            "backup",
            "restore",
            name,
            "--latest",
            "--keep-setid",
            "--yes",
        ]);
        assert!(err.contains("restore refuses device nodes"), "{err}");
    }
}

/// `struct vfs_cap_data` (revision 2) granting CAP_DAC_READ_SEARCH, effective.
fn file_capability() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes());
    v.extend_from_slice(&(1u32 << 2).to_le_bytes()); // permitted[0]
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable[0]
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted[1]
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable[1]
    v
}

/// Set-id bits and file capabilities a cell gave its files do not come back
/// from a restore (unless --keep-setid); the volume's top directory keeps
/// the live mode and owner, never the archive's, and gets a fresh time.
#[test]
fn restore_strips_privileges_and_keeps_the_volume_top_directory() {
    need_root!();
    let w = World::new("privileges", "");
    let vol = w.volume("v");
    fs::write(vol.join("su"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(vol.join("su"), fs::Permissions::from_mode(0o6755)).unwrap();
    fs::write(vol.join("reader"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(vol.join("reader"), fs::Permissions::from_mode(0o755)).unwrap();
    set_xattr(
        &vol.join("reader"),
        "security.capability",
        &file_capability(),
    );
    // The archive's top directory: world-writable, old.
    fs::set_permissions(&vol, fs::Permissions::from_mode(0o777)).unwrap();
    let old = CString::new(vol.as_os_str().as_bytes()).unwrap();
    let times = [libc::timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 0,
    }; 2];
    // SAFETY: a valid path and two timespecs.
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, old.as_ptr(), times.as_ptr(), 0) },
        0
    );
    w.ok(&["volume", "backup", "create", "v"]);
    fs::set_permissions(&vol, fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&vol, Some(4321), Some(4322)).unwrap();

    w.ok(&["volume", "backup", "restore", "v", "--latest", "--yes"]);
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&vol.join("su")), 0o755);
    assert!(!xattrs(&vol.join("reader")).contains_key("security.capability"));
    let top = fs::metadata(&vol).unwrap();
    assert_eq!(top.mode() & 0o7777, 0o750);
    assert_eq!((top.uid(), top.gid()), (4321, 4322));
    assert!(top.mtime() > 1_000_000_000, "mtime {}", top.mtime());

    w.ok(&[
        "volume",
        "backup",
        "restore",
        "v",
        "--latest",
        "--keep-setid",
        "--yes",
    ]);
    assert_eq!(mode(&vol.join("su")), 0o6755);
    assert_eq!(
        xattrs(&vol.join("reader")).get("security.capability"),
        Some(&file_capability())
    );

    // A lost volume comes back with its declared mode, owned by the cell's root.
    fs::write(w.root.join("etc/v.volume"), b"VOLUME_MODE=0710\n").unwrap();
    fs::remove_dir_all(&vol).unwrap();
    w.ok(&["volume", "backup", "restore", "v", "--latest", "--yes"]);
    let top = fs::metadata(&vol).unwrap();
    assert_eq!(top.mode() & 0o7777, 0o710);
    assert_eq!((top.uid(), top.gid()), (0, 0));
    // Its parent keeps host users out.
    assert_eq!(mode(&w.root.join("volumes")), 0o700);
}

/// With CELL_BACKUP_KEY_FILE, archives carry an HMAC over their bytes and
/// sidecar; an archive or sidecar changed by anyone without the key (its
/// checksum fixed up) is refused by verify and restore, and so is an
/// unsigned one.
#[test]
fn a_backup_key_signs_archives_and_a_forged_pair_is_refused() {
    use cells::engine::backup::sidecar::Sidecar;
    need_root!();
    let keydir = TempDir::new("backup-key");
    let key = keydir.join("backup.key");
    fs::write(&key, [7u8; 32]).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let conf = format!("CELL_BACKUP_KEY_FILE={}\n", key.display());
    let w = World::new("signed", &conf);
    let vol = w.volume("v");
    fs::write(vol.join("data"), b"good").unwrap();
    w.ok(&["volume", "backup", "create", "v"]);
    w.ok(&["volume", "backup", "verify", "v"]);
    let archive = w.archives("volumes").remove(0);
    let sidecar = PathBuf::from(archive.to_string_lossy().replace(".tar.gz", ".meta.cbor"));
    let side = Sidecar::read(&sidecar).unwrap();
    assert_eq!(side.mac.as_ref().map(String::len), Some(64));

    // A manifest slipped into the sidecar.
    let mut forged = side.clone();
    forged
        .manifests
        .insert("v.volume".into(), "VOLUME_MODE=0777\n".into());
    forged.write(&sidecar).unwrap();
    let err = w.fails(&["volume", "backup", "verify", "v"]);
    assert!(err.contains("MAC mismatch"), "{err}");
    let err = w.fails(&[
        "volume",
        "backup",
        "restore",
        "v",
        "--latest",
        "--manifest",
        "--yes",
    ]);
    assert!(err.contains("MAC mismatch"), "{err}");
    assert!(!w.root.join("etc/v.volume").exists());

    // Another archive, its checksum and size fixed up in the sidecar.
    let other = w.volume("other");
    fs::write(other.join("data"), b"evil").unwrap();
    let made = TempDir::new("backup-forge");
    let tgz = made.join("x.tar.gz");
    assert!(Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&other)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let bytes = fs::read(&tgz).unwrap();
    let mut forged = side.clone();
    forged.sha256 = sha256_hex(&bytes);
    forged.size = bytes.len() as u64;
    fs::write(&archive, &bytes).unwrap();
    forged.write(&sidecar).unwrap();
    let err = w.fails(&["volume", "backup", "restore", "v", "--latest", "--yes"]);
    assert!(err.contains("MAC mismatch"), "{err}");
    assert_eq!(fs::read(vol.join("data")).unwrap(), b"good");

    // The MAC removed: an unsigned archive is refused while a key is set.
    forged.mac = None;
    forged.write(&sidecar).unwrap();
    let err = w.fails(&["volume", "backup", "restore", "v", "--latest", "--yes"]);
    assert!(err.contains("has no MAC"), "{err}");

    // A key others can read is refused, naming its mode.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = w.fails(&["volume", "backup", "create", "v"]);
    assert!(err.contains("mode 0644 lets others read it"), "{err}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A backup directory others can write is refused with its owner and mode:
/// whoever can write it can swap archives.
#[test]
fn a_backup_directory_others_can_write_is_refused() {
    need_root!();
    let w = World::new("baddir", "");
    let vol = w.volume("v");
    fs::write(vol.join("data"), b"x").unwrap();
    w.ok(&["volume", "backup", "create", "v"]);
    let dir = w.root.join("backups/volumes");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    for args in [
        &["volume", "backup", "list", "v"][..],
        &["volume", "backup", "restore", "v", "--latest", "--yes"],
    ] {
        let err = w.fails(args);
        assert!(
            err.contains(&format!(
                "{} is owned by uid 0 (root) with mode 0777",
                dir.display()
            )),
            "{args:?}: {err}"
        );
    }
}
