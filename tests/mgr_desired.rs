//! cellmgr at desired scope, through the real binary: manifests written and
//! validated, the read contract, confirmations, the lock, edit. Needs no root.

mod support;

use support::world::World;

#[test]
fn create_set_and_the_read_contract() {
    let w = World::new("contract");
    w.ok(&["volume", "create", "www", "-m", "0750"]);
    w.ok(&[
        "cell",
        "create",
        "web",
        "--cmd",
        "busybox httpd -f -p 8080",
        "--reserved-ports",
        "8080",
        "--mount",
        "www:/srv/www:ro",
        "--profile",
        "medium",
    ]);
    w.ok(&[
        "cell",
        "create",
        "db",
        "--cmd",
        "sleep 1000",
        "--autostart",
        "YES",
    ]);
    w.ok(&["cell", "create", "a.b_c-1"]);
    // The byte-stable contract: name<TAB>state, sorted by name in byte order.
    assert_eq!(
        w.rows("name,state"),
        "a.b_c-1\tdeclared\ndb\tpending\nweb\tdeclared\n"
    );
    // With a header, and the merged view.
    assert_eq!(
        w.ok(&[
            "cell",
            "list",
            "-T",
            "--view",
            "desired",
            "-o",
            "name,autostart,create_profile,volume_mounts"
        ]),
        "name\tautostart\tcreate_profile\tvolume_mounts\n\
         a.b_c-1\t0\thigh\t\ndb\t1\thigh\t\nweb\t0\tmedium\twww:/srv/www:ro\n"
    );
    // A human table: upper-case headers, YES/NO, '-' for empty.
    let table = w.ok(&["cell", "show", "web", "-o", "name,manifest,rendered,cid"]);
    assert_eq!(
        table,
        "NAME  MANIFEST  RENDERED  CID\nweb   YES       NO        -\n"
    );
    // set keeps comments, other keys and their order.
    let mut text = w.read_manifest("web.cell");
    text.insert_str(0, "# operator note\n");
    text.push_str("# trailing note\n");
    w.write_manifest("web.cell", &text);
    w.ok(&[
        "cell",
        "set",
        "web",
        "--autostart",
        "yes",
        "--depends-on",
        "db",
    ]);
    let after = w.read_manifest("web.cell");
    assert!(after.starts_with("# operator note\n"), "{after}");
    assert!(after.contains("CELL_AUTOSTART=YES\n"), "{after}");
    assert!(
        after.contains("# trailing note\nCELL_DEPENDS_ON=db\n"),
        "{after}"
    );
    assert_eq!(
        w.rows("name,depends_on,desired_state"),
        "a.b_c-1\t\t0\ndb\t\t1\nweb\tdb\t1\n"
    );
    // Volumes: refs and users from the manifests.
    assert_eq!(
        w.volume_rows("name,state,manifest,runtime,mode,refs,used_by"),
        "www\tpending\t1\t0\t0750\t1\tweb\n"
    );
    // Fields: the 24 v2 fields in their order, then the additions.
    let fields = w.ok(&["cell", "fields", "-T", "-H", "--view", "merged"]);
    let names: Vec<&str> = fields
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names.len(), 40);
    assert_eq!(&names[..4], ["name", "running", "desired_state", "cid"]);
    assert_eq!(names[23], "apply_present");
    assert_eq!(
        &names[24..30],
        [
            "state",
            "health",
            "supervisor_pid",
            "restarts",
            "last_exit",
            "supervisor"
        ]
    );
    assert_eq!(
        &names[30..],
        [
            "create_maxproc",
            "create_memory",
            "create_cpu",
            "create_disk",
            "tasks",
            "memory_used",
            "disk_used",
            "forks_denied",
            "oom_kills",
            "frozen"
        ]
    );
    // Read usage errors.
    assert!(w.fails(&["cell", "list", "-H"]).contains("-H requires -T"));
    assert!(w
        .fails(&["cell", "list", "--view", "desired", "-o", "cid"])
        .contains("not available in view 'desired'"));
    assert!(w
        .fails(&["cell", "list", "-o", "nosuch"])
        .contains("unknown cell field 'nosuch'"));
    assert!(w
        .fails(&["cell", "show", "nosuch"])
        .contains("cell nosuch not found"));
}

#[test]
fn create_is_all_or_nothing_and_keeps_an_existing_plan() {
    let w = World::new("create");
    w.write_manifest("web.apply", "DIR /srv/www\n");
    w.ok(&["cell", "create", "web", "--cmd", "true"]);
    assert_eq!(w.read_manifest("web.apply"), "DIR /srv/www\n");
    // A second create fails and changes nothing.
    let before = w.snapshot();
    assert!(w
        .fails(&["cell", "create", "web", "--cmd", "x"])
        .contains("already exists"));
    // Invalid values and references write nothing at all.
    for args in [
        &["cell", "create", "x", "--profile", "max"][..],
        &["cell", "create", "x", "--reserved-ports", "70000"],
        &["cell", "create", "x", "--mount", "nosuch:/srv"],
        &["cell", "create", "x", "--mount", "www:/dev/x"],
        &["cell", "create", "x", "--depends-on", "x"],
        &["cell", "create", "x", "--depends-on", "nosuch"],
        &["cell", "create", "x", "--autostart", "maybe"],
        &["cell", "create", "bad/name"],
        &["cell", "create", "x", "--scope", "runtime"],
    ] {
        let err = w.fails(args);
        assert!(!err.is_empty(), "{args:?}");
        assert_eq!(w.snapshot(), before, "{args:?} changed something: {err}");
    }
    assert!(!w.manifest_dir().join("x.apply").exists());
    // A bad flag value is reported against the flag.
    let err = w.fails(&["cell", "create", "x", "--profile", "max"]);
    assert!(
        err.contains("--profile: CELL_CREATE_PROFILE='max': expected low, medium or high"),
        "{err}"
    );
}

/// Every malformed manifest fails with file:line and the expected form, and
/// the failing command changes nothing.
#[test]
fn malformed_manifests_fail_with_file_and_line() {
    let w = World::new("malformed");
    w.write_manifest("vol.volume", "VOLUME_NAME=vol\n");
    w.write_manifest("db.cell", "CELL_NAME=db\n");
    let cases: &[(&str, &str, &str)] = &[
        ("web.cell", "# c\nCELL_NAME=web\nCELL_NOPE=1\n", "web.cell:3: unknown key CELL_NOPE"),
        ("web.cell", "CELL_AUTOSTART=YES\nCELL_AUTOSTART=NO\n", "web.cell:2: duplicate key CELL_AUTOSTART (first set on line 1)"),
        ("web.cell", "CELL_AUTOSTART=perhaps\n", "web.cell:1: CELL_AUTOSTART='perhaps': expected YES or NO"),
        ("web.cell", "CELL_CREATE_RLIMIT_AS=lots\n", "web.cell:1: CELL_CREATE_RLIMIT_AS='lots': expected a byte count or 'unlimited'"),
        ("web.cell", "CELL_NAME=other\n", "web.cell:1: CELL_NAME='other' does not match the file name: expected CELL_NAME=web"),
        ("web.cell", "CELL_VOLUME_MOUNTS=vol:/\n", "web.cell:1: CELL_VOLUME_MOUNTS: mount target '/' is not allowed"),
        ("web.cell", "CELL_VOLUME_MOUNTS=vol:/dev/shm\n", "web.cell:1: CELL_VOLUME_MOUNTS: mount target '/dev/shm' is not allowed"),
        ("web.cell", "CELL_VOLUME_MOUNTS=vol:/srv,vol:/srv/x\n", "web.cell:1: CELL_VOLUME_MOUNTS: mount targets overlap"),
        ("web.cell", "CELL_VOLUME_MOUNTS=vol:relative\n", "web.cell:1: CELL_VOLUME_MOUNTS: mount target 'relative' is not absolute"),
        ("web.cell", "\nCELL_VOLUME_MOUNTS=nosuch:/srv\n", "web.cell:2: CELL_VOLUME_MOUNTS: unknown volume 'nosuch'"),
        ("web.cell", "CELL_VOLUME_MOUNTS=host:/srv:/srv\n", "web.cell:1: CELL_VOLUME_MOUNTS: host mount 'host:/srv:/srv' is not allowed: set CELL_ALLOW_HOST_MOUNTS=YES"),
        ("web.cell", "CELL_DEPENDS_ON=web\n", "web.cell:1: CELL_DEPENDS_ON: a cell cannot depend on itself"),
        ("web.cell", "CELL_DEPENDS_ON=db,ghost\n", "web.cell:1: CELL_DEPENDS_ON: unknown cell 'ghost'"),
        ("web.cell", "CELL_SUPERVISE_CMD=\"$(id)\"\n", "web.cell:1: CELL_SUPERVISE_CMD: '$' would be expanded by a shell"),
        ("bad.volume", "VOLUME_MODE=777\n", "bad.volume:1: VOLUME_MODE='777': expected four octal digits"),
    ];
    for (file, text, want) in cases {
        w.write_manifest(file, text);
        let before = w.snapshot();
        for args in [
            &["cell", "list"][..],
            &["volume", "list"],
            &["cell", "start", "--all"],
            &["cell", "set", "web", "--log-tag", "t"],
        ] {
            let err = w.fails(args);
            let path = w.manifest_dir().join(file);
            let want = want.replacen(file, &path.display().to_string(), 1);
            // `set web` reads only web.cell (and checks its references).
            if args[1] != "set" {
                assert!(
                    err.contains(&want),
                    "{args:?} on {file}={text:?}:\n{err}\nwanted: {want}"
                );
            }
            assert_eq!(w.snapshot(), before, "{args:?} changed something");
        }
        std::fs::remove_file(w.manifest_dir().join(file)).unwrap();
    }
    // set repairs a bad value in place.
    w.write_manifest("web.cell", "# keep\nCELL_CREATE_PROFILE=max # typo\n");
    w.fails(&["cell", "list"]);
    w.ok(&["cell", "set", "web", "--profile", "low"]);
    assert_eq!(
        w.read_manifest("web.cell"),
        "# keep\nCELL_CREATE_PROFILE=low # typo\n"
    );
    std::fs::remove_file(w.manifest_dir().join("web.cell")).unwrap();
    // Host mounts pass with the guard on.
    let g = World::with_conf("hostguard", "CELL_ALLOW_HOST_MOUNTS=YES\n");
    g.write_manifest("web.cell", "CELL_VOLUME_MOUNTS=host:/srv:/srv:ro\n");
    assert_eq!(g.rows("name,volume_mounts"), "web\thost:/srv:/srv:ro\n");
}

#[test]
fn volume_set_keeps_the_mode_and_remove_guards() {
    let w = World::new("volume");
    w.ok(&["volume", "create", "data", "-m", "0700", "--scope", "both"]);
    assert!(w
        .fails(&["volume", "set", "data"])
        .contains("nothing to change"));
    w.ok(&["volume", "set", "data", "--scope", "both", "-m", "0750"]);
    assert!(w.read_manifest("data.volume").contains("VOLUME_MODE=0750"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(w.volume_dir().join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o750);
    w.ok(&["cell", "create", "app", "--mount", "data:/srv/data"]);
    assert!(w
        .fails(&["volume", "remove", "data"])
        .contains("still referenced by 1 cell manifest(s): app"));
    // Runtime removal deletes data: it needs --yes without a terminal.
    let err = w.fails(&["volume", "remove", "data", "--scope", "runtime"]);
    assert!(err.contains("pass --yes"), "{err}");
    assert!(w.volume_dir().join("data").is_dir());
    w.ok(&["volume", "remove", "data", "--scope", "runtime", "--yes"]);
    assert!(!w.volume_dir().join("data").exists());
    // An orphaned directory is found and pruned.
    std::fs::create_dir_all(w.volume_dir().join("stray")).unwrap();
    assert!(w.volume_rows("name,state").contains("stray\torphaned\n"));
    assert!(w
        .fails(&["volume", "remove", "--orphans"])
        .contains("does not support --scope desired"));
    assert!(w
        .fails(&["volume", "remove", "--orphans", "--scope", "runtime"])
        .contains("pass --yes"));
    w.ok(&[
        "volume",
        "remove",
        "--orphans",
        "--scope",
        "runtime",
        "--yes",
    ]);
    assert!(!w.volume_dir().join("stray").exists());
}

#[test]
fn removals_of_many_need_confirmation() {
    let w = World::new("confirm");
    w.ok(&["cell", "create", "a"]);
    w.ok(&["cell", "create", "b", "--depends-on", "a"]);
    // A dependency cannot go alone.
    assert!(w
        .fails(&["cell", "remove", "a"])
        .contains("dependency of b"));
    let before = w.snapshot();
    assert!(w.fails(&["cell", "remove", "--all"]).contains("pass --yes"));
    assert!(w.fails(&["system", "reset"]).contains("pass --yes"));
    assert_eq!(w.snapshot(), before);
    w.ok(&["cell", "remove", "--all", "--yes"]);
    assert_eq!(w.rows("name"), "");
    assert!(!w.manifest_dir().join("a.apply").exists());
    assert!(w.fails(&["cell", "remove", "a"]).contains("not found"));
    w.ok(&["cell", "remove", "a", "--force"]);
}

#[test]
fn a_second_mutation_waits_then_names_the_holder() {
    let w = World::new("lock");
    std::fs::create_dir_all(w.data_dir()).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(w.data_dir().join(".lock"))
        .unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    std::fs::write(
        w.data_dir().join(".lock"),
        "pid 4242 (cellmgr apply --all)\n",
    )
    .unwrap();
    let t = std::time::Instant::now();
    let out = w.run_env(&["cell", "create", "x"], &[("CELLMGR_LOCK_WAIT", "0.5")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(t.elapsed() >= std::time::Duration::from_millis(500));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("held by pid 4242 (cellmgr apply --all)"),
        "{err}"
    );
    assert!(!w.manifest_dir().join("x.cell").exists());
    // Reads do not take the lock.
    w.ok(&["cell", "list"]);
    drop(lock);
    w.ok(&["cell", "create", "x"]);
}

#[test]
fn edit_validates_before_replacing() {
    let w = World::new("edit");
    w.ok(&["cell", "create", "web", "--cmd", "sleep 1"]);
    let before = w.read_manifest("web.cell");
    // An editor that breaks the file: refused, file unchanged, no temp file left.
    let out = w.run_env(
        &["cell", "edit", "web"],
        &[("EDITOR", "sed -i s/high/extreme/")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CELL_CREATE_PROFILE='extreme'"), "{err}");
    assert_eq!(w.read_manifest("web.cell"), before);
    let leftovers: Vec<_> = std::fs::read_dir(w.manifest_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A valid edit replaces it; $VISUAL wins over $EDITOR.
    let out = w.run_env(
        &["cell", "edit", "web"],
        &[("VISUAL", "sed -i s/high/low/"), ("EDITOR", "false")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w
        .read_manifest("web.cell")
        .contains("CELL_CREATE_PROFILE=low"));
    assert_eq!(w.rows("name,create_profile"), "web\tlow\n");
    // The file changed while the editor ran: left alone, the edit saved aside.
    let orig = w.manifest_dir().join("web.cell");
    let editor = format!(
        "sh -c 'echo \"# concurrent\" >> {}; sed -i s/low/medium/ \"$0\"'",
        orig.display()
    );
    let out = w.run_env(&["cell", "edit", "web"], &[("EDITOR", editor.as_str())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed while you were editing"));
    assert!(w.read_manifest("web.cell").ends_with("# concurrent\n"));
    assert!(w
        .read_manifest("web.cell.edited")
        .contains("CELL_CREATE_PROFILE=medium"));
    // Volumes too.
    w.ok(&["volume", "create", "v"]);
    let out = w.run_env(
        &["volume", "edit", "v"],
        &[("EDITOR", "sh -c 'echo VOLUME_MODE=0755 >> \"$0\"'")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w.read_manifest("v.volume").contains("VOLUME_MODE=0755"));
}

#[test]
fn aliases_and_help() {
    let w = World::new("alias");
    w.ok(&["cell", "create", "x"]);
    assert_eq!(w.ok(&["list", "-T", "-H", "-o", "name"]), "x\n");
    for sub in [
        &["cell", "--help"][..],
        &["volume", "--help"],
        &["cell", "create", "--help"],
        &["system", "reset", "--help"],
    ] {
        assert!(w.ok(sub).contains("Usage: cellmgr"), "{sub:?}");
    }
    assert!(w
        .fails(&["cell", "start", "x", "--scope", "desired"])
        .contains("does not support --scope desired"));
    assert!(w
        .fails(&["nosuch"])
        .starts_with("cellmgr: unknown command 'nosuch'; commands: cell, volume"));
}

#[test]
fn set_declares_idempotently_with_generic_keys_and_a_dry_run() {
    let w = World::new("set-declare");
    let args = [
        "cell",
        "set",
        "web",
        "--create",
        "--set",
        "CELL_SUPERVISE_CMD=/bin/busybox httpd -f -p 8080",
        "--set",
        "CELL_CREATE_RESERVED_PORTS=8080",
    ];
    // A dry run of a new cell: what would be written, and nothing is.
    let dry = w.ok(&[&args[..], &["--dry-run", "--json"]].concat());
    assert!(
        dry.contains(r#"{"key":"CELL_CREATE_RESERVED_PORTS","old":"","new":"8080"}"#),
        "{dry}"
    );
    assert!(!w.manifest_dir().join("web.cell").exists());
    assert_eq!(w.ok(&args), "created cell web\n");
    assert!(w.manifest_dir().join("web.apply").exists());
    // The same declaration again: nothing changes, not even the file.
    let before = w.snapshot();
    assert_eq!(w.ok(&args), "cell web unchanged\n");
    assert_eq!(w.ok(&[&args[..], &["--json"]].concat()), "");
    assert_eq!(w.snapshot(), before);
    // Normalised values compare equal: " 8080" is 8080.
    let spaced = w.ok(&[
        "cell",
        "set",
        "web",
        "--set",
        "CELL_CREATE_RESERVED_PORTS= 8080",
        "--dry-run",
    ]);
    assert_eq!(spaced, "cell web unchanged\n");
    let edit = w.ok(&[
        "cell",
        "set",
        "web",
        "--set",
        "CELL_AUTOSTART=yes",
        "--dry-run",
    ]);
    assert_eq!(
        edit,
        "CELL_AUTOSTART: 'NO' -> 'YES'\nwould update cell web\n"
    );
    assert_eq!(w.snapshot(), before);
    w.ok(&[
        "cell",
        "set",
        "web",
        "--unset",
        "CELL_CREATE_RESERVED_PORTS",
    ]);
    assert_eq!(w.rows("name,create_reserved_ports"), "web\t\n");
    // Bad keys and values name the flag; nothing is written.
    let e = w.fails(&["cell", "set", "web", "--set", "CELL_BOGUS=1"]);
    assert!(
        e.contains("--set CELL_BOGUS: not a key that can be set"),
        "{e}"
    );
    let e = w.fails(&[
        "cell",
        "set",
        "web",
        "--set",
        "CELL_CREATE_RESERVED_PORTS=99999",
    ]);
    assert!(
        e.contains("--set CELL_CREATE_RESERVED_PORTS='99999'"),
        "{e}"
    );
    let e = w.fails(&["cell", "set", "nosuch", "--set", "CELL_AUTOSTART=NO"]);
    assert!(e.contains("or --create"), "{e}");
}
