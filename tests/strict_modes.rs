//! Strict modes, as sshd's StrictModes (issue 13): cellmgr refuses a
//! configuration file, manifest, `.apply` file, asset, plan file (and, in
//! tests/backup.rs, a backup directory) that someone other than root could
//! have written, with one sentence naming the file, its owner and its mode,
//! checking every directory up to `/` (a root-owned sticky directory such as
//! /tmp is fine). And a `CELLMGR_CONF` naming a missing file is an error,
//! never the host's real configuration.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::root_or_skip;
use support::world::World;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn cell_manifest() -> &'static str {
    "CELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\n"
}

#[test]
fn a_manifest_others_can_write_is_refused_naming_owner_and_mode() {
    let w = World::new("strict-manifest");
    w.write_manifest("web.cell", cell_manifest());
    let file = w.manifest_dir().join("web.cell");
    chmod(&file, 0o664);
    let err = w.fails(&["cell", "list"]);
    assert!(
        err.contains(&format!("{}: refused: it is owned by uid", file.display())),
        "{err}"
    );
    assert!(err.contains("with mode 0664"), "{err}");
    let out = w.run(&["apply", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    chmod(&file, 0o644);
    // A directory above it that others can write is refused the same way.
    chmod(&w.manifest_dir(), 0o775);
    let err = w.fails(&["cell", "list"]);
    assert!(
        err.contains(&format!(
            "the directory {} is owned by",
            w.manifest_dir().display()
        )) && err.contains("mode 0775"),
        "{err}"
    );
}

#[test]
fn an_apply_file_of_another_user_is_never_run() {
    if !root_or_skip("an_apply_file_of_another_user_is_never_run") {
        return;
    }
    let w = World::new("strict-apply");
    w.write_manifest("web.cell", cell_manifest());
    w.write_manifest("web.apply", "COPY /etc/shadow /root/host-shadow\n");
    let apply = w.manifest_dir().join("web.apply");
    std::os::unix::fs::chown(&apply, Some(65534), Some(65534)).unwrap();
    chmod(&apply, 0o666);
    let out = w.run(&["apply", "web"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "refusing .apply file {}: it is owned by uid 65534 (nobody) with mode 0666",
            apply.display()
        )),
        "{text}"
    );
    let copied = w.data_dir().join("web/overlay/upper/root/host-shadow");
    assert!(!copied.exists(), "the cell got the host's shadow file");
}

#[test]
fn a_writable_asset_or_plan_file_is_refused() {
    if !root_or_skip("a_writable_asset_or_plan_file_is_refused") {
        return;
    }
    let w = World::new("strict-asset");
    w.write_manifest("web.cell", cell_manifest());
    w.write_manifest("index.html", "hello\n");
    w.write_manifest("web.apply", "COPY index.html /srv/index.html\n");
    let asset = w.manifest_dir().join("index.html");
    chmod(&asset, 0o646);
    let out = w.run(&["apply", "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("refusing host asset {}", asset.display()))
            && err.contains("mode 0646"),
        "{err}"
    );
    chmod(&asset, 0o644);
    // A reviewed plan someone else could have edited is no review.
    let plan = w.dir.join("plan.txt");
    let out = w.run(&["apply", "--dry-run", "--plan-out", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    chmod(&plan, 0o666);
    let err = w.fails(&["apply", "--expect-plan", plan.to_str().unwrap()]);
    assert!(
        err.contains(&format!("refusing plan file {}", plan.display()))
            && err.contains("mode 0666"),
        "{err}"
    );
}

#[test]
fn a_configuration_others_can_write_is_refused() {
    let w = World::new("strict-conf");
    chmod(&w.conf, 0o666);
    let err = w.fails(&["cell", "list"]);
    assert!(
        err.contains(&format!("refusing configuration {}", w.conf.display()))
            && err.contains("mode 0666"),
        "{err}"
    );
}

#[test]
fn a_missing_cellmgr_conf_is_an_error_not_the_hosts_configuration() {
    let w = World::new("strict-missing");
    let missing = w.dir.join("nonexistent.conf");
    let out = w.run_env(
        &["cell", "list"],
        &[("CELLMGR_CONF", missing.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "CELLMGR_CONF names {}, which does not exist",
            missing.display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
}

#[test]
fn sticky_root_directories_are_fine_parents_others_are_not() {
    if !root_or_skip("sticky_root_directories_are_fine_parents_others_are_not") {
        return;
    }
    let w = World::new("strict-sticky");
    w.write_manifest("web.cell", cell_manifest());
    // The world's own directory made world-writable: sticky is fine, plain is not.
    chmod(&w.dir, 0o1777);
    w.ok(&["cell", "list"]);
    chmod(&w.dir, 0o777);
    let err = w.fails(&["cell", "list"]);
    assert!(
        err.contains(&format!(
            "the directory {} is owned by uid 0 (root) with mode 0777",
            w.dir.display()
        )),
        "{err}"
    );
    chmod(&w.dir, 0o755);
}
