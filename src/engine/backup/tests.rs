//! Engine-level tests against plain directories and a scripted runtime.

use super::inuse::VolumeUser;
use super::*;
use crate::testutil::TempDir;
use std::cell::RefCell;
use std::rc::Rc;

/// A runtime whose answers the test sets, recording what was asked of it.
#[derive(Default)]
struct Scripted {
    users: Vec<VolumeUser>,
    running: Vec<String>,
    log: Rc<RefCell<Vec<String>>>,
}

impl Runtime for Scripted {
    fn volume_users(&self, _volume: &str) -> Result<Vec<VolumeUser>> {
        Ok(self.users.clone())
    }
    fn cell_running(&self, cell: &str) -> Result<bool> {
        Ok(self.running.iter().any(|c| c == cell))
    }
    fn stop_cell(&self, cell: &str) -> Result<()> {
        self.log.borrow_mut().push(format!("stop {cell}"));
        Ok(())
    }
    fn freeze(&self, cell: &str) -> Result<crate::kernel::FreezeGuard> {
        self.log.borrow_mut().push(format!("freeze {cell}"));
        let (log, cell) = (self.log.clone(), cell.to_string());
        Ok(crate::kernel::FreezeGuard::new(move || {
            log.borrow_mut().push(format!("thaw {cell}"));
            Ok(())
        }))
    }
}

struct Env {
    /// Holds every directory of `cfg`; removed on drop.
    _root: TempDir,
    cfg: Config,
}

impl Env {
    fn new(tag: &str) -> Env {
        let root = TempDir::new(&format!("backup-{tag}"));
        let cfg = Config {
            manifest_dir: root.join("etc"),
            data_dir: root.join("cells"),
            volume_dir: root.join("volumes"),
            backup_dir: root.join("backups"),
            ..Config::default()
        };
        fs::create_dir_all(&cfg.manifest_dir).unwrap();
        Env { _root: root, cfg }
    }

    fn volume(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.cfg.volume_dir.join(name);
        fs::create_dir_all(&dir).unwrap();
        for (f, content) in files {
            fs::write(dir.join(f), content).unwrap();
        }
        dir
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn create_list_verify_restore_round_trip() {
    let env = Env::new("roundtrip");
    let rt = Scripted::default();
    let vol = env.volume("data", &[("a", "alpha"), ("b", "beta")]);
    fs::write(
        env.cfg.manifest_dir.join("data.volume"),
        "VOLUME_MODE=0750\n",
    )
    .unwrap();
    let b = create(
        &env.cfg,
        &rt,
        Kind::Volume,
        "data",
        CreateOptions::default(),
    )
    .unwrap();
    assert_eq!(b.status(), "complete");
    assert!(b.file_name().starts_with("data_") && b.file_name().ends_with(".tar.gz"));
    let side = b.sidecar.as_ref().unwrap();
    assert_eq!(side.source, vol.to_string_lossy());
    assert_eq!(side.manifests["data.volume"], "VOLUME_MODE=0750\n");
    verify(&env.cfg, &b, &mut Progress::hidden()).unwrap();

    // Change the live data and the manifest, then restore.
    fs::write(vol.join("a"), "changed").unwrap();
    fs::remove_file(vol.join("b")).unwrap();
    fs::write(vol.join("new"), "x").unwrap();
    fs::write(
        env.cfg.manifest_dir.join("data.volume"),
        "VOLUME_MODE=0700\n",
    )
    .unwrap();
    let latest = resolve(&env.cfg, Kind::Volume, "data", &Select::Latest).unwrap();
    assert_eq!(latest.path, b.path);
    let opts = RestoreOptions {
        manifests: true,
        ..Default::default()
    };
    let r = restore(&env.cfg, &rt, &latest, opts).unwrap();
    assert_eq!(files(&vol), vec!["a", "b"]);
    assert_eq!(fs::read_to_string(vol.join("a")).unwrap(), "alpha");
    assert_eq!(r.manifests_written.len(), 1);
    assert_eq!(
        fs::read_to_string(env.cfg.manifest_dir.join("data.volume")).unwrap(),
        "VOLUME_MODE=0750\n"
    );
    // No staging leftovers beside the volume.
    assert_eq!(files(&env.cfg.volume_dir), vec!["data"]);
    assert!(rt.log.borrow().is_empty());
}

#[test]
fn a_cell_backup_is_its_overlay_and_its_manifests() {
    let env = Env::new("cell");
    let rt = Scripted::default();
    let overlay = env.cfg.data_dir.join("web/overlay");
    fs::create_dir_all(overlay.join("etc")).unwrap();
    fs::write(overlay.join("etc/rc.conf"), "x=1\n").unwrap();
    fs::write(
        env.cfg.manifest_dir.join("web.cell"),
        "CELL_CMD=/bin/true\n",
    )
    .unwrap();
    let b = create(&env.cfg, &rt, Kind::Cell, "web", CreateOptions::default()).unwrap();
    assert_eq!(
        b.path.parent().unwrap(),
        env.cfg.backup_dir.join("overlays")
    );
    let side = b.sidecar.as_ref().unwrap();
    assert_eq!(side.manifests.keys().collect::<Vec<_>>(), vec!["web.cell"]);
    fs::remove_dir_all(env.cfg.data_dir.join("web")).unwrap();
    // A lost disk: the restore recreates the overlay.
    restore(&env.cfg, &rt, &b, RestoreOptions::default()).unwrap();
    assert_eq!(
        fs::read_to_string(overlay.join("etc/rc.conf")).unwrap(),
        "x=1\n"
    );
}

#[test]
fn create_refuses_live_writers_unless_quiesced() {
    let env = Env::new("quiesce");
    env.volume("shared", &[("f", "1")]);
    let rt = Scripted {
        users: vec![
            VolumeUser {
                cell: "reader".into(),
                writable: false,
            },
            VolumeUser {
                cell: "writer".into(),
                writable: true,
            },
        ],
        ..Default::default()
    };
    let e = create(
        &env.cfg,
        &rt,
        Kind::Volume,
        "shared",
        CreateOptions::default(),
    )
    .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("read-write by running cell(s) writer") && e.contains("--quiesce"),
        "{e}"
    );
    assert!(list(&env.cfg, Kind::Volume, "shared").unwrap().is_empty());
    let opts = CreateOptions {
        quiesce: true,
        ..Default::default()
    };
    let b = create(&env.cfg, &rt, Kind::Volume, "shared", opts).unwrap();
    assert_eq!(*rt.log.borrow(), vec!["freeze writer", "thaw writer"]);
    assert_eq!(b.sidecar.unwrap().quiesced, vec!["writer"]);
}

#[test]
fn restore_refuses_a_running_cell_unless_told_to_stop_it() {
    let env = Env::new("stop");
    fs::create_dir_all(env.cfg.data_dir.join("app/overlay")).unwrap();
    let idle = Scripted::default();
    let b = create(&env.cfg, &idle, Kind::Cell, "app", CreateOptions::default()).unwrap();
    let rt = Scripted {
        running: vec!["app".into()],
        ..Default::default()
    };
    let e = format!(
        "{:#}",
        restore(&env.cfg, &rt, &b, RestoreOptions::default()).unwrap_err()
    );
    assert!(
        e.contains("cell app is in use (the cell is running)") && e.contains("--stop"),
        "{e}"
    );
    assert!(rt.log.borrow().is_empty());
    let r = restore(
        &env.cfg,
        &rt,
        &b,
        RestoreOptions {
            stop: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.stopped, vec!["app"]);
    assert_eq!(*rt.log.borrow(), vec!["stop app"]);
}

#[test]
fn a_corrupt_archive_is_refused_and_the_live_data_kept() {
    let env = Env::new("corrupt");
    let rt = Scripted::default();
    let vol = env.volume("v", &[("keep", "me")]);
    let b = create(&env.cfg, &rt, Kind::Volume, "v", CreateOptions::default()).unwrap();
    fs::write(vol.join("keep"), "live").unwrap();
    let mut bytes = fs::read(&b.path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&b.path, &bytes).unwrap();
    let e = format!(
        "{:#}",
        verify(&env.cfg, &b, &mut Progress::hidden()).unwrap_err()
    );
    assert!(e.contains("checksum mismatch"), "{e}");
    let e = format!(
        "{:#}",
        restore(&env.cfg, &rt, &b, RestoreOptions::default()).unwrap_err()
    );
    assert!(e.contains("checksum mismatch"), "{e}");
    assert_eq!(fs::read_to_string(vol.join("keep")).unwrap(), "live");
    assert_eq!(files(&env.cfg.volume_dir), vec!["v"]);
    // With --stop and a running user: refused before anything is stopped.
    let busy = Scripted {
        users: vec![VolumeUser {
            cell: "web".into(),
            writable: true,
        }],
        ..Default::default()
    };
    let stop = RestoreOptions {
        stop: true,
        ..Default::default()
    };
    let e = format!("{:#}", restore(&env.cfg, &busy, &b, stop).unwrap_err());
    assert!(e.contains("checksum mismatch"), "{e}");
    assert!(busy.log.borrow().is_empty(), "{:?}", busy.log.borrow());
    assert_eq!(fs::read_to_string(vol.join("keep")).unwrap(), "live");
    assert_eq!(files(&env.cfg.volume_dir), vec!["v"]);
    // A truncated archive is caught by its size.
    fs::write(&b.path, &bytes[..mid]).unwrap();
    let b = resolve(&env.cfg, Kind::Volume, "v", &Select::Latest).unwrap();
    assert_eq!(b.status(), "truncated");
}

#[test]
fn resolve_names_what_is_wrong() {
    let env = Env::new("resolve");
    let rt = Scripted::default();
    env.volume("v", &[]);
    let e = resolve(&env.cfg, Kind::Volume, "v", &Select::Latest).unwrap_err();
    assert!(e.to_string().contains("volume v has no backups"), "{e}");
    let b = create(&env.cfg, &rt, Kind::Volume, "v", CreateOptions::default()).unwrap();
    let by_name = resolve(&env.cfg, Kind::Volume, "v", &Select::From(b.file_name())).unwrap();
    assert_eq!(by_name.path, b.path);
    let by_path = Select::From(b.path.to_string_lossy().into_owned());
    assert_eq!(
        resolve(&env.cfg, Kind::Volume, "v", &by_path).unwrap().path,
        b.path
    );
    let e = resolve(
        &env.cfg,
        Kind::Volume,
        "v",
        &Select::From("w_20250101T000000Z.tar.gz".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not an archive of volume v"), "{e}");
    let e = resolve(
        &env.cfg,
        Kind::Volume,
        "v",
        &Select::From("/tmp/v_20250101T000000Z.tar.gz".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("archives are only read from"), "{e}");
}

#[test]
fn prune_counts_only_archives_that_verify() {
    let env = Env::new("prune");
    let rt = Scripted::default();
    env.volume("p", &[("f", "1")]);
    let b = create(&env.cfg, &rt, Kind::Volume, "p", CreateOptions::default()).unwrap();
    let dir = archive_dir(&env.cfg, Kind::Volume);
    let side = b.sidecar.clone().unwrap();
    let base = 1_700_000_000u64;
    let mut paths = Vec::new();
    for i in 0..5u64 {
        let file = naming::archive_name("p", base + i * 60);
        fs::copy(&b.path, dir.join(&file)).unwrap();
        let mut s = side.clone();
        s.archive = file.clone();
        s.write(&dir.join(naming::sidecar_name(&file))).unwrap();
        paths.push(dir.join(file));
    }
    delete(&b).unwrap();
    // The two newest are corrupt.
    for p in &paths[3..] {
        fs::write(p, b"garbage").unwrap();
    }
    // Keeping 2 keeps the two newest good ones (and the bad ones newer than
    // those): only the oldest goes.
    let deleted = prune(&env.cfg, Kind::Volume, "p", 2).unwrap();
    let left: Vec<PathBuf> = list(&env.cfg, Kind::Volume, "p")
        .unwrap()
        .into_iter()
        .map(|b| b.path)
        .collect();
    assert_eq!(
        left,
        vec![
            paths[4].clone(),
            paths[3].clone(),
            paths[2].clone(),
            paths[1].clone()
        ]
    );
    assert_eq!(deleted.len(), 1);
    // Sidecars went with their archives.
    assert!(!dir
        .join(naming::sidecar_name(&naming::archive_name("p", base)))
        .exists());
    // keep = 0 keeps everything.
    assert!(prune(&env.cfg, Kind::Volume, "p", 0).unwrap().is_empty());
}

#[test]
fn leftovers_of_an_interrupted_create_are_cleaned() {
    let env = Env::new("leftover");
    let rt = Scripted::default();
    env.volume("l", &[]);
    let dir = archive_dir(&env.cfg, Kind::Volume);
    fs::create_dir_all(&dir).unwrap();
    let stale = dir.join(".l_20250101T000000Z.tar.gz.999999999.partial");
    let orphan = dir.join("l_20250101T000000Z.meta.cbor");
    let other = dir.join(".m_20250101T000000Z.tar.gz.999999999.partial");
    for p in [&stale, &orphan, &other] {
        fs::write(p, b"x").unwrap();
    }
    create(&env.cfg, &rt, Kind::Volume, "l", CreateOptions::default()).unwrap();
    assert!(!stale.exists() && !orphan.exists());
    assert!(
        other.exists(),
        "another volume's leftovers are not ours to judge"
    );
}

#[test]
fn listing_reports_archives_it_cannot_vouch_for() {
    let env = Env::new("status");
    let rt = Scripted::default();
    env.volume("s", &[("f", "1")]);
    let b = create(&env.cfg, &rt, Kind::Volume, "s", CreateOptions::default()).unwrap();
    fs::write(b.sidecar_path(), b"junk").unwrap();
    assert_eq!(
        list(&env.cfg, Kind::Volume, "s").unwrap()[0].status(),
        "bad-sidecar"
    );
    fs::remove_file(b.sidecar_path()).unwrap();
    let listed = list(&env.cfg, Kind::Volume, "s").unwrap();
    assert_eq!(listed[0].status(), "no-sidecar");
    let e = format!(
        "{:#}",
        verify(&env.cfg, &listed[0], &mut Progress::hidden()).unwrap_err()
    );
    assert!(e.contains("cannot be verified"), "{e}");
    let e = format!(
        "{:#}",
        restore(&env.cfg, &rt, &listed[0], RestoreOptions::default()).unwrap_err()
    );
    assert!(e.contains("cannot be verified"), "{e}");
}
