use super::*;
use crate::testutil::TempDir;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A root with an `etc`, and a host directory `outside` next to it that
/// must never change.
fn world(tag: &str) -> (TempDir, PathBuf, PathBuf) {
    let t = TempDir::new(tag);
    let root = t.join("root");
    let outside = t.join("outside");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "host").unwrap();
    fs::set_permissions(outside.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    (t, root, outside)
}

fn assert_untouched(outside: &Path) {
    let names: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["secret"],
        "something appeared in {}",
        outside.display()
    );
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"host");
    assert_eq!(mode(&outside.join("secret")), 0o600);
}

#[test]
fn writes_follow_links_only_inside_the_root() {
    let (_t, root, outside) = world("tree-write");
    // Absolute host paths, relative climbs, and planted temporary names.
    symlink(outside.join("secret"), root.join("etc/app.conf")).unwrap();
    symlink("../../outside", root.join("etc/up")).unwrap();
    symlink(&outside, root.join("var")).unwrap();
    for n in 0..100 {
        symlink(
            outside.join("secret"),
            root.join(format!("etc/.app.conf.tmp.{n}")),
        )
        .unwrap();
    }
    let tree = Tree::open(&root, Links::InRoot).unwrap();
    // The link's target does not exist inside: its directory is missing.
    let e = tree
        .write(Path::new("/etc/app.conf"), b"listen=8080\n", None)
        .unwrap_err();
    assert!(e.to_string().contains("No such file"), "{e}");
    assert!(tree.mkdir_all(&outside, 0o755).unwrap());
    tree.write(Path::new("/etc/app.conf"), b"listen=8080\n", None)
        .unwrap();
    // The link's target, seen from inside: <root>/<outside path>.
    let inside = root.join(outside.strip_prefix("/").unwrap()).join("secret");
    assert_eq!(fs::read(&inside).unwrap(), b"listen=8080\n");
    assert_eq!(mode(&inside), 0o644);
    tree.write(Path::new("/etc/up/x"), b"x", None).unwrap_err();
    tree.mkdir_all(Path::new("/etc/up"), 0o755).unwrap_err();
    tree.mkdir_all(Path::new("/var/tmp"), 0o1777).unwrap();
    assert!(root
        .join(outside.strip_prefix("/").unwrap())
        .join("tmp")
        .is_dir());
    assert_untouched(&outside);
}

#[test]
fn a_replaced_file_keeps_mode_and_owner_and_new_ones_belong_to_cell_root() {
    let (_t, root, _outside) = world("tree-attrs");
    let f = root.join("etc/motd");
    fs::write(&f, "old").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let tree = Tree::open(&root, Links::InRoot).unwrap();
    let am_root = own_ids() == (0, 0);
    if am_root {
        std::os::unix::fs::chown(&f, Some(801), Some(802)).unwrap();
    }
    tree.write(Path::new("etc/motd"), b"new", None).unwrap();
    let md = fs::metadata(&f).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o640);
    if am_root {
        assert_eq!((md.uid(), md.gid()), (801, 802));
        // A shifted map: what cellmgr creates belongs to the cell's root.
        let shifted = Tree::open(&root, Links::InRoot)
            .unwrap()
            .with_ids(IdMap::shifted(100_000, 100_000, 65_536));
        shifted
            .write(Path::new("/etc/new"), b"n", Some(0o600))
            .unwrap();
        shifted.mkdir_all(Path::new("/srv/www"), 0o750).unwrap();
        shifted
            .symlink(Path::new("/srv/link"), Path::new("www"))
            .unwrap();
        for p in ["etc/new", "srv", "srv/www", "srv/link"] {
            let md = fs::symlink_metadata(root.join(p)).unwrap();
            assert_eq!((md.uid(), md.gid()), (100_000, 100_000), "{p}");
        }
        assert_eq!(mode(&root.join("srv/www")), 0o750);
        assert_eq!(mode(&root.join("etc/new")), 0o600);
    }
    let ids = IdMap::shifted(100_000, 200_000, 65_536);
    assert_eq!(ids.host_uid(33).unwrap(), 100_033);
    assert_eq!(ids.host_gid(33).unwrap(), 200_033);
    assert_eq!(ids.cell_uid(100_033), Some(33));
    assert_eq!(ids.cell_uid(5), None);
    assert!(ids.host_uid(65_536).is_err());
    assert_eq!(IdMap::IDENTITY.host_uid(0).unwrap(), 0);
}

#[test]
fn symlinks_are_replaced_atomically_but_never_over_a_directory() {
    let (_t, root, _outside) = world("tree-link");
    let tree = Tree::open(&root, Links::InRoot).unwrap();
    assert!(tree.symlink(Path::new("/data"), Path::new("/srv")).unwrap());
    assert!(!tree.symlink(Path::new("/data"), Path::new("/srv")).unwrap());
    assert!(tree.symlink(Path::new("/data"), Path::new("/opt")).unwrap());
    assert_eq!(fs::read_link(root.join("data")).unwrap(), Path::new("/opt"));
    let e = tree
        .symlink(Path::new("/etc"), Path::new("/x"))
        .unwrap_err();
    assert!(e.to_string().contains("/etc is a directory"), "{e}");
}

#[test]
fn reads_are_bounded_by_the_size_seen_through_the_fd() {
    let (_t, root, _outside) = world("tree-read");
    let passwd = root.join("etc/passwd");
    // A 3 GiB sparse file: refused from its size, nothing read.
    let f = fs::File::create(&passwd).unwrap();
    f.set_len(3 << 30).unwrap();
    let tree = Tree::open(&root, Links::InRoot).unwrap();
    let e = tree.read(Path::new("/etc/passwd"), READ_LIMIT).unwrap_err();
    assert!(
        e.to_string().contains("/etc/passwd is 3221225472 bytes"),
        "{e}"
    );
    let e = tree
        .find_line(Path::new("/etc/passwd"), READ_LIMIT, 4096, |_| Some(()))
        .unwrap_err();
    assert!(e.to_string().contains("cellmgr reads at most"), "{e}");
    // A line longer than the limit stops the reader.
    f.set_len(100_000).unwrap();
    let e = tree
        .find_line(Path::new("/etc/passwd"), READ_LIMIT, 4096, |_| Some(()))
        .unwrap_err();
    assert!(e.to_string().contains("longer than 4096 bytes"), "{e}");
    fs::write(&passwd, "root:x:0:0\nwww:x:801:801\n").unwrap();
    let found = tree
        .find_line(Path::new("/etc/passwd"), READ_LIMIT, 4096, |l| {
            l.starts_with(b"www:").then(|| l.to_vec())
        })
        .unwrap();
    assert_eq!(found, Some(Some(b"www:x:801:801".to_vec())));
    assert_eq!(tree.read(Path::new("/etc/none"), 10).unwrap(), None);
    fs::create_dir(root.join("etc/d")).unwrap();
    let e = tree.read(Path::new("/etc/d"), 10).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[test]
fn refusing_links_refuses_them_on_the_way() {
    let (_t, root, outside) = world("tree-refuse");
    symlink(&outside, root.join("srv")).unwrap();
    symlink("etc", root.join("cfg")).unwrap();
    let tree = Tree::open(&root, Links::Refuse).unwrap();
    let e = tree.mkdir_all(Path::new("/srv/data"), 0o755).unwrap_err();
    assert!(
        format!("{e:#}").contains("symbolic link is in the way"),
        "{e:#}"
    );
    assert!(tree.write(Path::new("/cfg/x"), b"", None).is_err());
    // The last component is a link: replaced, not followed.
    tree.write(Path::new("/srv"), b"file", None).unwrap();
    assert_eq!(fs::read(root.join("srv")).unwrap(), b"file");
    assert_untouched(&outside);
}

#[test]
fn removal_never_follows_links_and_handles_any_depth() {
    let (_t, root, outside) = world("tree-remove");
    let doomed = root.join("doomed");
    let mut deep = doomed.clone();
    for i in 0..150 {
        deep.push(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f"), "x").unwrap();
    symlink(&outside, doomed.join("host")).unwrap();
    symlink(outside.join("secret"), deep.join("secret")).unwrap();
    fs::create_dir_all(doomed.join("a/b")).unwrap();
    let tree = Tree::open(&root, Links::InRoot).unwrap();
    tree.remove_all(Path::new("/doomed")).unwrap();
    assert!(!doomed.exists());
    assert_eq!(fs::read_dir(&root).unwrap().count(), 1);
    tree.remove_all(Path::new("/doomed")).unwrap();
    tree.remove_all(Path::new("/missing/parent/x")).unwrap();
    assert_untouched(&outside);
}

#[test]
fn removal_stops_at_a_mount_point() {
    if own_ids().0 != 0 {
        eprintln!("skipped: needs root to mount");
        return;
    }
    let (_t, root, _outside) = world("tree-mount");
    let m = root.join("doomed/mnt");
    fs::create_dir_all(&m).unwrap();
    // A bind mount of the same file system: only NO_XDEV sees it.
    let src = root.join("kept");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("data"), "keep").unwrap();
    rustix::mount::mount_bind(&src, &m).unwrap();
    let tree = Tree::open(&root, Links::InRoot).unwrap();
    let e = tree.remove_all(Path::new("/doomed")).unwrap_err();
    rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH).unwrap();
    assert!(
        format!("{e:#}").contains("something is mounted there"),
        "{e:#}"
    );
    assert_eq!(fs::read(src.join("data")).unwrap(), b"keep");
}

#[test]
fn visiting_lists_every_entry_without_following_links() {
    let (_t, root, outside) = world("tree-visit");
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a/b/f"), "x").unwrap();
    symlink(&outside, root.join("a/out")).unwrap();
    let tree = Tree::open(&root, Links::Refuse).unwrap();
    let mut seen = Vec::new();
    tree.visit(Path::new(""), &mut |dir, name, meta| {
        seen.push((dir.path().join(name), meta.kind));
        Ok(())
    })
    .unwrap();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            (PathBuf::from("/a"), Kind::Dir),
            ("/a/b".into(), Kind::Dir),
            ("/a/b/f".into(), Kind::File),
            ("/a/out".into(), Kind::Symlink),
            ("/etc".into(), Kind::Dir),
        ]
    );
}

/// The race the issue describes: a process swaps a directory and a link to a
/// host directory (`renameat2(RENAME_EXCHANGE)`) in a tight loop while host
/// root writes, creates directories and links below that path. Nothing may
/// ever land outside.
#[test]
fn a_directory_swapped_with_a_link_in_a_loop_never_redirects_a_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (_t, root, outside) = world("tree-race");
    fs::create_dir(root.join("d")).unwrap();
    symlink(&outside, root.join("l")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        let dir = fs::File::open(&root).unwrap();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = rustix::fs::renameat_with(
                    &dir,
                    "d",
                    &dir,
                    "l",
                    rustix::fs::RenameFlags::EXCHANGE,
                );
                swaps += 1;
            }
            swaps
        })
    };
    let tree = Tree::open(&root, Links::InRoot).unwrap();
    let started = std::time::Instant::now();
    let mut ok = 0;
    for i in 0..300 {
        if started.elapsed() > std::time::Duration::from_secs(10) {
            break;
        }
        let f = format!("/d/f{}", i % 7);
        ok += usize::from(tree.write(Path::new(&f), b"x", None).is_ok());
        let _ = tree.mkdir_all(Path::new(&format!("/d/sub{}", i % 5)), 0o755);
        let _ = tree.symlink(Path::new(&format!("/d/s{}", i % 3)), Path::new("/etc"));
        let _ = tree.remove_all(Path::new(&format!("/d/sub{}", (i + 2) % 5)));
        if let Ok(Some(mut o)) = tree.object(Path::new(&f)) {
            o.chmod(0o600).unwrap();
        }
        assert_untouched(&outside);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(swaps > 100, "the racer ran {swaps} swaps");
    assert!(ok > 0);
    assert_untouched(&outside);
}
