//! Mistakes found before anything runs: at `cell create`/`set` and at `apply
//! --dry-run`, not first when a cell starts. Each error names the file and line
//! (or the flag) and what would be right; nothing is written.

mod support;

use support::root_or_skip;
use support::world::World;

fn write(w: &World, file: &str, text: &str) {
    std::fs::create_dir_all(w.manifest_dir()).unwrap();
    std::fs::write(w.manifest_dir().join(file), text).unwrap();
}

#[test]
fn a_port_reserved_twice_fails_at_create_and_at_dry_run() {
    let w = World::new("early-ports");
    w.ok(&["cell", "create", "api", "--reserved-ports", "8080,9090"]);
    let e = w.fails(&["cell", "create", "web", "--reserved-ports", "80,8080"]);
    assert!(
        e.contains("port 8080 is also reserved by cell api") && e.contains("api.cell"),
        "{e}"
    );
    assert!(
        !w.manifest_dir().join("web.cell").exists(),
        "nothing written"
    );
    // Hand-written manifests: the dry run refuses the plan, naming the line.
    write(
        &w,
        "web.cell",
        "CELL_NAME=web\nCELL_CREATE_RESERVED_PORTS=\"80,9090\"\n",
    );
    let o = w.run(&["apply", "--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(
            "web.cell:2: CELL_CREATE_RESERVED_PORTS: port 9090 is also reserved by cell api"
        ),
        "{e}"
    );
}

#[test]
fn a_mount_target_in_the_read_only_base_fails_at_create_and_at_dry_run() {
    let w = World::new("early-usr");
    w.ok(&["volume", "create", "data"]);
    let e = w.fails(&["cell", "create", "web", "--mount", "data:/usr/local/data"]);
    assert!(
        e.contains(
            "mount target /usr/local/data is inside /usr, which CELL_BASE=host mounts read-only"
        ),
        "{e}"
    );
    assert!(!w.manifest_dir().join("web.cell").exists());
    w.ok(&["cell", "create", "web", "--mount", "data:/srv/data"]);
    write(
        &w,
        "web.cell",
        "CELL_NAME=web\nCELL_VOLUME_MOUNTS=\"data:/usr/share/x\"\n",
    );
    let o = w.run(&["apply", "--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("web.cell:2: CELL_VOLUME_MOUNTS: mount target /usr/share/x"),
        "{e}"
    );
}

#[test]
fn an_apply_path_above_the_root_fails_at_dry_run() {
    let w = World::new("early-apply");
    w.ok(&["cell", "create", "web"]);
    write(&w, "web.apply", "DIR /srv\nDIR /srv/../../etc/cron.d\n");
    let o = w.run(&["apply", "--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("web.apply:2: path '/srv/../../etc/cron.d' climbs above the cell root"),
        "{e}"
    );
}

#[test]
fn the_plan_after_a_failed_health_check_does_not_claim_a_policy_change() {
    if !root_or_skip("the_plan_after_a_failed_health_check_does_not_claim_a_policy_change") {
        return;
    }
    let w = World::new("early-health");
    w.ok(&[
        "cell",
        "create",
        "web",
        "--cmd",
        "sleep 600",
        "--healthcheck",
        "false",
        "--autostart",
        "YES",
    ]);
    let o = w.run(&["apply"]);
    assert_eq!(o.status.code(), Some(1), "the health check fails: {o:?}");
    // Nothing about the cell's policy changed, and the plan does not say so
    // (the plan model's unit test covers a start that recorded nothing).
    let o = w.run(&["apply", "--dry-run"]);
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(matches!(o.status.code(), Some(0 | 2)), "{o:?}");
    assert!(plan.contains("cell web: "), "{plan}");
    assert!(!plan.contains("policy changed"), "{plan}");
    w.ok(&["cell", "stop", "web"]);
}
