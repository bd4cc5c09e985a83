//! Files of cells in user namespaces (Linux, medium and high), through the
//! real `cellmgr`: what the cell sees (the base, its layer and its volumes
//! owned as it expects) and what the host's disk holds (the cell's range,
//! never host ids for what the cell writes), ownership by name in `.apply`,
//! a volume shared by two cells with two ranges, cells and volumes made on
//! host ids moving to ranges at their next start, and backups holding ids
//! as the cell sees them, restored into the range. Needs root and busybox.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use support::world::World;
use support::{root_or_skip, write_trusted, BIN};

/// The world's cells run in user namespaces unless the whole suite runs on
/// host ids (`CELLS_TEST_USERNS=NO`), which these tests are about.
fn userns_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    if std::env::var("CELLS_TEST_USERNS").is_ok_and(|v| v == "NO") {
        eprintln!("{test}: skipped: this run keeps cells on host ids");
        return false;
    }
    true
}

/// Runs a shell command in a running cell: (exit code, stdout).
fn sh(w: &World, cell: &str, script: &str) -> (i32, String) {
    let out = w.run_program(
        Path::new(BIN),
        &["ctl", "exec", cell, "/bin/sh", "-c", script],
        &[],
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string()
            + &String::from_utf8_lossy(&out.stderr),
    )
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// The range recorded for a cell: its first id.
fn cell_base(w: &World, cell: &str) -> u32 {
    let text = std::fs::read_to_string(w.data_dir().join(cell).join("ids")).unwrap();
    text.lines()
        .next()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn cell_with_volume(w: &World, name: &str, volume: &str, extra: &str) {
    w.write_manifest(
        &format!("{name}.cell"),
        &format!(
            "CELL_CREATE_PROFILE=high\nCELL_VOLUME_MOUNTS={volume}:/srv/data\n\
             CELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\n{extra}"
        ),
    );
    if !w.manifest_dir().join(format!("{volume}.volume")).exists() {
        w.write_manifest(&format!("{volume}.volume"), "");
    }
}

/// The base is the cell root's, read-only; the layer and a volume are on
/// ranges (the cell's, the volume's own); `.apply` ownership by name lands
/// in the range; a second cell with another range shares the volume.
#[test]
fn files_are_the_cells_in_the_cell_and_its_ranges_on_disk() {
    let test = "files_are_the_cells_in_the_cell_and_its_ranges_on_disk";
    if !userns_or_skip(test) {
        return;
    }
    let w = World::new("nsfiles");
    cell_with_volume(&w, "web", "shared", "");
    cell_with_volume(&w, "other", "shared", "");
    w.write_manifest(
        "web.apply",
        "DIR /srv/www mode=0750 owner=nobody group=nogroup\nFILE_BEGIN /etc/motd mode=0640 group=nogroup\nhi\nFILE_END\n",
    );
    w.ok(&["apply", "web", "other"]);
    w.ok(&["cell", "start", "web"]);
    w.ok(&["cell", "start", "other"]);

    let (rc, out) = sh(
        &w,
        "web",
        "stat -c '%u %g' /usr/bin/passwd /etc/motd /srv/www / && touch /root/made /srv/data/made \
         && chown 33:33 /srv/data/made && echo ok",
    );
    assert_eq!(rc, 0, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["0 0", "0 65534", "65534 65534", "0 0", "ok"],
        "the base, the plan's files and the root as the cell sees them"
    );
    let (rc, out) = sh(&w, "web", "touch /usr/bin/nope 2>&1; echo $?");
    assert!(
        rc == 0 && out.ends_with('1'),
        "the base is read-only: {out}"
    );

    let base = cell_base(&w, "web");
    let upper = w.data_dir().join("web/overlay/upper");
    assert_eq!(owner(&upper.join("root/made")), (base, base));
    assert_eq!(owner(&upper.join("srv/www")), (base + 65534, base + 65534));
    assert_eq!(owner(&upper.join("etc/motd")), (base, base + 65534));
    let volume = w.volume_dir().join("shared");
    let (vol, _) = owner(&volume);
    assert!(
        vol != base && vol != 0,
        "the volume has a range of its own: {vol}"
    );
    assert_eq!(owner(&volume.join("made")), (vol + 33, vol + 33));

    // The other cell (another range) sees the volume's files as web does.
    assert_ne!(cell_base(&w, "other"), base);
    let (rc, out) = sh(&w, "other", "stat -c '%u %g' /srv/data/made");
    assert_eq!((rc, out.as_str()), (0, "33 33"));
    w.ok(&["cell", "stop", "--all", "--ignore-autostart"]);
}

/// A cell and a volume made while cells ran on host ids (`CELL_USERNS=NO`)
/// keep working when user namespaces are turned on: at the next start the
/// layer and the volume move to ranges, set-id bits and all, and the cell
/// sees its files as before. A backup taken on host ids restores into the
/// range.
#[test]
fn host_id_cells_and_volumes_move_to_ranges_at_their_next_start() {
    let test = "host_id_cells_and_volumes_move_to_ranges_at_their_next_start";
    if !userns_or_skip(test) {
        return;
    }
    let w = World::with_conf("nsmove", "CELL_USERNS=NO\n");
    cell_with_volume(&w, "old", "olddata", "");
    w.ok(&["apply", "old"]);
    w.ok(&["cell", "start", "old"]);
    let (rc, out) = sh(
        &w,
        "old",
        "echo kept > /root/kept && cp /bin/busybox /root/su && chmod 4755 /root/su \
         && echo v > /srv/data/v && chown 33:44 /srv/data/v && id -u",
    );
    assert_eq!(
        (rc, out.as_str()),
        (0, "0"),
        "on host ids, cell root is host root"
    );
    let upper = w.data_dir().join("old/overlay/upper");
    assert_eq!(owner(&upper.join("root/kept")), (0, 0));
    w.ok(&["cell", "stop", "old"]);
    w.ok(&["cell", "backup", "create", "old", "-q"]);

    // User namespaces on (the default).
    let conf = std::fs::read_to_string(&w.conf).unwrap();
    write_trusted(&w.conf, conf.replace("CELL_USERNS=NO\n", ""));
    w.ok(&["cell", "start", "old"]);
    let base = cell_base(&w, "old");
    assert_eq!(owner(&upper.join("root/kept")), (base, base));
    let su = std::fs::symlink_metadata(upper.join("root/su")).unwrap();
    assert_eq!((su.uid(), su.mode() & 0o7777), (base, 0o4755));
    let (vol, _) = owner(&w.volume_dir().join("olddata"));
    assert_eq!(
        owner(&w.volume_dir().join("olddata/v")),
        (vol + 33, vol + 44)
    );
    let (rc, out) = sh(
        &w,
        "old",
        "cat /root/kept && stat -c '%u %g %a' /root/su /srv/data/v && id -u",
    );
    assert_eq!(rc, 0, "{out}");
    assert_eq!(out, "kept\n0 0 4755\n33 44 644\n0");

    // The archive from host ids is what the cell saw: restored into the range.
    w.ok(&["cell", "stop", "old"]);
    std::fs::remove_file(upper.join("root/kept")).unwrap();
    w.ok(&["cell", "backup", "restore", "old", "--latest", "-y", "-q"]);
    assert_eq!(owner(&upper.join("root/kept")), (base, base));
}

/// Archives hold ids as the cell sees them (0, 33), not the host ids of its
/// range; a restore puts them back on the range.
#[test]
fn backups_hold_the_cells_ids_and_restore_into_the_range() {
    let test = "backups_hold_the_cells_ids_and_restore_into_the_range";
    if !userns_or_skip(test) {
        return;
    }
    let w = World::new("nsbackup");
    cell_with_volume(&w, "db", "dbdata", "");
    w.ok(&["apply", "db"]);
    w.ok(&["cell", "start", "db"]);
    let (rc, out) = sh(
        &w,
        "db",
        "echo row > /srv/data/row && chown 33:33 /srv/data/row && echo conf > /etc/db.conf \
         && chown 33:0 /etc/db.conf",
    );
    assert_eq!(rc, 0, "{out}");
    w.ok(&["cell", "stop", "db"]);
    w.ok(&["volume", "backup", "create", "dbdata", "-q"]);
    w.ok(&["cell", "backup", "create", "db", "-q"]);
    let listing = |dir: &str| -> String {
        let dir = w.dir.join("backups").join(dir);
        let archive = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "gz"))
            .unwrap();
        let out = std::process::Command::new("tar")
            .args(["-tvzf"])
            .arg(&archive)
            .arg("--numeric-owner")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let volume = listing("volumes");
    let row = volume.lines().find(|l| l.ends_with("./row")).unwrap();
    assert!(row.contains(" 33/33 "), "{row}");
    let cell = listing("overlays");
    let conf = cell
        .lines()
        .find(|l| l.ends_with("upper/etc/db.conf"))
        .unwrap();
    assert!(conf.contains(" 33/0 "), "{conf}");

    let (vol, _) = owner(&w.volume_dir().join("dbdata"));
    std::fs::remove_file(w.volume_dir().join("dbdata/row")).unwrap();
    w.ok(&[
        "volume", "backup", "restore", "dbdata", "--latest", "-y", "-q",
    ]);
    assert_eq!(
        owner(&w.volume_dir().join("dbdata/row")),
        (vol + 33, vol + 33)
    );
    assert_eq!(
        owner(&w.volume_dir().join("dbdata")).0,
        vol,
        "the volume keeps its range"
    );
    let base = cell_base(&w, "db");
    let upper = w.data_dir().join("db/overlay/upper");
    std::fs::remove_file(upper.join("etc/db.conf")).unwrap();
    w.ok(&["cell", "backup", "restore", "db", "--latest", "-y", "-q"]);
    assert_eq!(owner(&upper.join("etc/db.conf")), (base + 33, base));
    w.ok(&["cell", "start", "db"]);
    let (rc, out) = sh(&w, "db", "stat -c '%u %g' /etc/db.conf /srv/data/row");
    assert_eq!((rc, out.as_str()), (0, "33 0\n33 33"));
}
