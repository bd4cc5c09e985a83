//! `cellmgr apply` end to end: the plan, dry-run exit codes, dependency closure
//! and order, cycles, failure isolation, idempotency of every directive in a real
//! cell, and convergence after `kill -9` at random points.

mod support;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::world::{http_get, World};
use support::{port, root_or_skip};

/// A cell manifest: a busybox web server on `port` (0: a sleeper), with
/// dependencies and extra lines.
fn cell(port: u16, deps: &str, extra: &str) -> String {
    let cmd = if port == 0 {
        "/bin/busybox sleep 100000".to_string()
    } else {
        format!("/bin/busybox httpd -f -p 127.0.0.1:{port} -h /srv/www")
    };
    let ports = if port == 0 {
        String::new()
    } else {
        format!("CELL_CREATE_RESERVED_PORTS={port}\n")
    };
    format!("CELL_AUTOSTART=YES\n{ports}CELL_SUPERVISE_CMD=\"{cmd}\"\nCELL_DEPENDS_ON=\"{deps}\"\n{extra}")
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The plan lines (ACTION subject: reason) of an apply's output.
fn plan_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            l.split_whitespace().next().is_some_and(|w| {
                matches!(
                    w,
                    "CREATE"
                        | "UPDATE"
                        | "START"
                        | "STOP"
                        | "RESTART"
                        | "APPLY"
                        | "QUIESCE"
                        | "WARN"
                        | "NOOP"
                )
            })
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn dry_run_needs_no_changes_and_exits_2_on_drift() {
    let w = World::new("apply-dry");
    w.write_manifest("web.cell", &cell(port(8), "", ""));
    w.write_manifest("data.volume", "VOLUME_MODE=0750\n");
    w.write_manifest("web.apply", "DIR /srv/www\n");
    let before = w.snapshot();
    let plan_file = w.dir.join("plan.txt");
    let out = w.run(&[
        "apply",
        "--all",
        "--dry-run",
        "--plan-out",
        plan_file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        plan_lines(&stdout(&out)),
        [
            "CREATE volume data: runtime directory missing",
            "CREATE cell web: new cell: render runtime state",
            "APPLY cell web: plan never applied",
            "START cell web: autostart=YES (after plan)",
        ]
    );
    assert_eq!(std::fs::read_to_string(&plan_file).unwrap(), stdout(&out));
    std::fs::remove_file(&plan_file).unwrap();
    // The kernel backend's lock file is created by any reader (cellctl list too).
    let after: Vec<_> = w
        .snapshot()
        .into_iter()
        .filter(|(p, _)| !p.starts_with(w.dir.join("run")))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| !p.starts_with(w.dir.join("run")))
        .collect();
    assert_eq!(after, before, "a dry run changed files");
    assert!(w.run(&["apply", "--all", "web"]).status.code() == Some(1));
    assert!(
        stderr(&w.run(&["apply", "--silent", "-v", "--dry-run"])).contains("exclude each other")
    );
}

#[test]
fn dry_run_works_without_root_and_warns_about_orphans() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("dry_run_works_without_root_and_warns_about_orphans: skipped: needs root to switch to an unprivileged user");
        return;
    }
    let w = World::new("apply-nonroot");
    w.write_manifest("web.cell", &cell(0, "", ""));
    // A runtime directory nobody declares any more.
    std::fs::create_dir_all(w.data_dir().join("gone")).unwrap();
    let before = w.snapshot();
    let out = Command::new(&w.bin)
        .args(["apply", "--dry-run"])
        .env("CELLMGR_CONF", &w.conf)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let lines = plan_lines(&stdout(&out));
    assert_eq!(lines[0], "CREATE cell web: new cell: render runtime state");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WARN cell gone: runtime without a manifest")),
        "{lines:?}"
    );
    assert_eq!(w.snapshot(), before);
    let real = Command::new(&w.bin)
        .args(["apply"])
        .env("CELLMGR_CONF", &w.conf)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(real.status.code(), Some(1));
    assert!(stderr(&real).contains("needs root; --dry-run shows the plan without it"));
}

#[test]
fn naming_cells_pulls_in_dependencies_in_order() {
    let w = World::new("apply-closure");
    w.write_manifest("app.cell", &cell(0, "db,cache", ""));
    w.write_manifest("cache.cell", &cell(0, "db", ""));
    w.write_manifest("db.cell", &cell(0, "", ""));
    w.write_manifest("other.cell", &cell(0, "", ""));
    let out = w.run(&["apply", "--dry-run", "app"]);
    assert_eq!(out.status.code(), Some(2));
    let cells: Vec<String> = plan_lines(&stdout(&out))
        .iter()
        .map(|l| {
            l.split_whitespace()
                .nth(2)
                .unwrap()
                .trim_end_matches(':')
                .to_string()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(Vec::new(), |mut v, c| {
            if v.last() != Some(&c) {
                v.push(c);
            }
            v
        });
    assert_eq!(cells, ["db", "cache", "app"]);
    let all = stdout(&w.run(&["apply", "--dry-run", "--all"]));
    assert!(all.contains("cell other:"));
    // Volumes come first, and only those the selected cells mount.
    w.write_manifest("dbdata.volume", "");
    w.write_manifest("otherdata.volume", "");
    w.write_manifest(
        "db.cell",
        &cell(0, "", "CELL_VOLUME_MOUNTS=dbdata:/var/db\n"),
    );
    w.write_manifest(
        "other.cell",
        &cell(0, "", "CELL_VOLUME_MOUNTS=otherdata:/var/db\n"),
    );
    let lines = plan_lines(&stdout(&w.run(&["apply", "--dry-run", "app"])));
    assert_eq!(
        lines[0], "CREATE volume dbdata: runtime directory missing",
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("otherdata")), "{lines:?}");
    let e = stderr(&w.run(&["apply", "--dry-run", "nosuch"]));
    assert!(e.contains("no manifest for cell nosuch"), "{e}");
}

#[test]
fn a_cycle_is_an_error_naming_it() {
    let w = World::new("apply-cycle");
    w.write_manifest("a.cell", &cell(0, "b", ""));
    w.write_manifest("b.cell", &cell(0, "c", ""));
    w.write_manifest("c.cell", &cell(0, "a", ""));
    w.write_manifest("d.cell", &cell(0, "", ""));
    let out = w.run(&["apply", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("dependency cycle: a -> b -> c -> a"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn converged_apply_prints_only_noop_and_dry_run_exits_0() {
    if !root_or_skip("converged_apply_prints_only_noop_and_dry_run_exits_0") {
        return;
    }
    let w = World::new("apply-idem");
    let p = port(9);
    w.write_manifest(
        "web.cell",
        &cell(p, "", &format!("CELL_HEALTHCHECK_CMD=\"/bin/busybox wget -q -O /dev/null http://127.0.0.1:{p}/\"\nCELL_VOLUME_MOUNTS=webdata:/srv/data\n")),
    );
    w.write_manifest("webdata.volume", "VOLUME_MODE=0700\n");
    w.write_manifest("client.cell", &cell(0, "web", ""));
    w.write_manifest("index.html", "hello apply\n");
    w.write_manifest(
        "web.apply",
        "DIR /srv/www\nCOPY index.html /srv/www/index.html\n",
    );
    let first = w.ok(&["apply", "--all"]);
    assert!(
        first.contains("summary: total=3 changed=3 failed=0 skipped=0"),
        "{first}"
    );
    assert_eq!(http_get(p).as_deref(), Some("hello apply\n"));
    let second = w.ok(&["apply", "--all"]);
    let lines: Vec<&str> = second.lines().collect();
    assert_eq!(lines.len(), 3, "{second}");
    assert!(lines.iter().all(|l| l.starts_with("NOOP ")), "{second}");
    let dry = w.run(&["apply", "--all", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stdout(&dry));
    // A service change restarts web; --restart-changed also restarts its dependent.
    let manifest = w.read_manifest("web.cell");
    w.write_manifest(
        "web.cell",
        &format!("{manifest}CELL_SUPERVISE_TAG=web-v2\n"),
    );
    let plain = plan_lines(&stdout(&w.run(&["apply", "--all", "--dry-run"])));
    assert!(
        plain.contains(&"RESTART cell web: service changed".to_string()),
        "{plain:?}"
    );
    assert!(
        plain.contains(&"NOOP cell client: already converged".to_string()),
        "{plain:?}"
    );
    let follow = plan_lines(&stdout(&w.run(&[
        "apply",
        "--all",
        "--dry-run",
        "--restart-changed",
    ])));
    assert!(
        follow.contains(
            &"RESTART cell client: dependency web restarted (--restart-changed)".to_string()
        ),
        "{follow:?}"
    );
    // A policy change (another reserved port) recreates the kernel cell.
    w.write_manifest(
        "web.cell",
        &manifest.replace(
            &format!("CELL_CREATE_RESERVED_PORTS={p}"),
            &format!("CELL_CREATE_RESERVED_PORTS={p},{}", port(13)),
        ),
    );
    let policy = plan_lines(&stdout(&w.run(&["apply", "--all", "--dry-run"])));
    assert!(
        policy.contains(&"RESTART cell web: policy changed (profile, ports, rlimits or limits): recreate the kernel cell".to_string()),
        "{policy:?}"
    );
    w.write_manifest("web.cell", &manifest);
    // The volume directory got its mode before the cell mounted it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(w.volume_dir().join("webdata"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700);
}

#[test]
fn a_failing_cell_skips_its_dependents_and_others_converge() {
    if !root_or_skip("a_failing_cell_skips_its_dependents_and_others_converge") {
        return;
    }
    let w = World::new("apply-fail");
    let good = port(10);
    w.write_manifest("broken.cell", &cell(0, "", ""));
    w.write_manifest(
        "broken.apply",
        "DIR /srv/x\nEXEC echo provisioning; exit 3\n",
    );
    w.write_manifest("needs-broken.cell", &cell(0, "broken", ""));
    w.write_manifest("sick.cell", &cell(0, "", "CELL_HEALTHCHECK_CMD=false\n"));
    w.write_manifest("needs-sick.cell", &cell(0, "sick", ""));
    w.write_manifest("good.cell", &cell(good, "", ""));
    w.write_manifest(
        "good.apply",
        "FILE_BEGIN /srv/www/index.html\nstill fine\nFILE_END\n",
    );
    let out = w.run(&["apply", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let o = stdout(&out);
    let row = |name: &str| {
        o.lines()
            .find(|l| l.starts_with(&format!("cell {name} ")))
            .unwrap_or_else(|| panic!("no summary row for {name}:\n{o}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        row("broken").starts_with("cell broken FAILED apply:"),
        "{o}"
    );
    assert!(
        row("broken")
            .contains("broken.apply:2: EXEC: 'echo provisioning; exit 3' failed: exit status 3"),
        "{o}"
    );
    assert_eq!(
        row("needs-broken"),
        "cell needs-broken SKIPPED dependency broken did not converge"
    );
    assert!(
        row("sick").starts_with("cell sick FAILED start: health check failed"),
        "{o}"
    );
    assert_eq!(
        row("needs-sick"),
        "cell needs-sick SKIPPED dependency sick did not converge"
    );
    assert_eq!(row("good"), "cell good ok changed");
    assert!(
        o.contains("summary: total=5 changed=1 failed=2 skipped=2"),
        "{o}"
    );
    assert_eq!(http_get(good).as_deref(), Some("still fine\n"));
    // The failures are retried by the next run; the good cell is left alone.
    let again = w.run(&["apply", "--all", "--dry-run"]);
    let lines = plan_lines(&stdout(&again));
    assert!(
        lines.contains(&"NOOP cell good: already converged".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("APPLY cell broken")),
        "{lines:?}"
    );
}

#[test]
fn every_directive_is_idempotent_in_a_real_cell() {
    if !root_or_skip("every_directive_is_idempotent_in_a_real_cell") {
        return;
    }
    let w = World::new("apply-directives");
    let p = port(11);
    w.write_manifest("web.cell", &cell(p, "", ""));
    w.write_manifest("asset.txt", "copied\n");
    w.write_manifest("conf.tmpl", "cell={{cell_name}} port={{port}}\n");
    w.write_manifest(
        "web.apply",
        &format!(
            "DIR /srv/www mode=0750\n\
             LINE /etc/cells-test.conf | key=value\n\
             SYMLINK /srv/www /srv/current\n\
             FILE_BEGIN /srv/www/index.html mode=0644\n\
             served\n\
             FILE_END\n\
             EXEC [ -f /srv/patch-me ] || printf 'alpha\\nbeta\\n' > /srv/patch-me\n\
             PATCH_BEGIN /srv/patch-me\n@@ -1,2 +1,2 @@\n alpha\n-beta\n+BETA\nPATCH_END\n\
             COPY asset.txt /srv/www/asset.txt owner=0 group=0\n\
             TEMPLATE conf.tmpl /srv/app.conf port={p}\n\
             EXEC [ -f /srv/seeded ] || echo once >> /srv/seeded\n"
        ),
    );
    let first = w.ok(&["apply", "--all", "-v"]);
    assert!(
        first.contains("line 1 DIR /srv/www: changed (created, mode 0750)"),
        "{first}"
    );
    assert_eq!(http_get(p).as_deref(), Some("served\n"));
    let again = w.ok(&["apply", "--all", "--reapply", "-v"]);
    let steps: Vec<&str> = again
        .lines()
        .filter(|l| l.trim_start().starts_with("line "))
        .collect();
    assert_eq!(steps.len(), 9, "{again}");
    for s in &steps {
        if s.contains(" EXEC ") {
            assert!(s.ends_with(": ran"), "{s}");
        } else {
            assert!(
                s.ends_with(": NOOP"),
                "a second apply changed something: {s}\n{again}"
            );
        }
    }
    // What the cell sees.
    let cat = |path: &str| {
        let o = Command::new(support::BIN)
            .arg0("cellctl")
            .args(["exec", "web", "/bin/busybox", "cat", path])
            .env("CELLMGR_CONF", &w.conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(cat("/srv/patch-me"), "alpha\nBETA\n");
    assert_eq!(cat("/srv/app.conf"), format!("cell=web port={p}\n"));
    assert_eq!(cat("/srv/current/asset.txt"), "copied\n");
    assert_eq!(cat("/srv/seeded"), "once\n");
    assert_eq!(cat("/etc/cells-test.conf"), "key=value\n");
}

/// A plan of files alone runs in the root its cell then starts in (composed
/// once, taken over by the start): the service serves what the plan wrote,
/// the layer's files carry the cell's ids from the first (none moved at the
/// start), a stop leaves nothing mounted, and the next apply starts the cell
/// again from scratch with everything in place.
#[test]
fn a_plan_of_files_runs_in_the_root_its_cell_starts_in() {
    use std::os::unix::fs::MetadataExt;
    if !root_or_skip("a_plan_of_files_runs_in_the_root_its_cell_starts_in") {
        return;
    }
    let w = World::new("apply-kept-root");
    let p = port(14);
    w.write_manifest("web.cell", &cell(p, "", ""));
    w.write_manifest(
        "web.apply",
        "DIR /srv/www mode=0755\nFILE_BEGIN /srv/www/index.html mode=0644\nkept\nFILE_END\n",
    );
    let first = w.ok(&["apply", "--all"]);
    assert!(
        plan_lines(&first).contains(&"APPLY cell web: plan never applied".to_string()),
        "{first}"
    );
    assert_eq!(http_get(p).as_deref(), Some("kept\n"), "{first}");
    // The cell's root on the host: its range's first id, or 0 on host ids.
    let cell_dir = w.data_dir().join("web");
    let root_uid = std::fs::read_to_string(cell_dir.join("ids"))
        .map(|t| t.split(':').next().unwrap().trim().parse::<u32>().unwrap())
        .unwrap_or(0);
    for f in ["upper", "upper/etc/hostname", "upper/srv/www/index.html"] {
        let m = std::fs::metadata(cell_dir.join("overlay").join(f)).unwrap();
        assert_eq!((m.uid(), m.gid()), (root_uid, root_uid), "owner of {f}");
    }
    let again = w.ok(&["apply", "--all"]);
    assert_eq!(
        plan_lines(&again),
        ["NOOP cell web: already converged"],
        "{again}"
    );
    w.ok(&["cell", "stop", "web"]);
    assert!(w.mounts().is_empty(), "left mounted: {:?}", w.mounts());
    w.ok(&["apply", "--all"]);
    assert_eq!(http_get(p).as_deref(), Some("kept\n"));
}

#[test]
fn kill_9_at_random_points_then_a_clean_converge() {
    if !root_or_skip("kill_9_at_random_points_then_a_clean_converge") {
        return;
    }
    let w = World::new("apply-kill");
    let p = port(12);
    w.write_manifest("db.cell", &cell(0, "", ""));
    w.write_manifest(
        "db.apply",
        "DIR /var/lib/db\nEXEC [ -f /var/lib/db/init ] || touch /var/lib/db/init\n",
    );
    w.write_manifest(
        "web.cell",
        &cell(p, "db", &format!("CELL_HEALTHCHECK_CMD=\"/bin/busybox wget -q -O /dev/null http://127.0.0.1:{p}/\"\n")),
    );
    w.write_manifest("web.apply", "COPY page.html /srv/www/index.html\n");
    w.write_manifest("client.cell", &cell(0, "web", ""));
    // A cheap xorshift: the points differ per run but need no extra crate.
    let mut seed = u64::from(std::process::id()) * 2_654_435_761 + 1;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..6 {
        // New content every round, so every apply has work to do.
        w.write_manifest("page.html", &format!("round {round}\n"));
        let delay = Duration::from_millis(next() % 1500);
        let mut child = Command::new(&w.bin)
            .args(["apply", "--all"])
            .env("CELLMGR_CONF", &w.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The kill point, not a wait for anything.
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let out = w.run(&["apply", "--all"]);
        assert!(
            out.status.success(),
            "round {round} (killed after {delay:?}): apply did not converge:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        let again = w.ok(&["apply", "--all"]);
        assert!(
            again.lines().all(|l| l.starts_with("NOOP ")),
            "round {round}: not converged after recovery:\n{again}"
        );
        assert_eq!(
            http_get(p).as_deref(),
            Some(format!("round {round}\n").as_str())
        );
    }
}

#[test]
fn a_reviewed_plan_is_applied_only_while_it_is_still_the_plan() {
    if !root_or_skip("a_reviewed_plan_is_applied_only_while_it_is_still_the_plan") {
        return;
    }
    let w = World::new("apply-reviewed");
    w.write_manifest("web.cell", &cell(0, "", ""));
    let plan_file = w.dir.join("plan.txt");
    let plan_arg = plan_file.to_str().unwrap();
    let review = |args: &[&str]| {
        let mut all = vec!["apply", "--dry-run", "--plan-out", plan_arg];
        all.extend_from_slice(args);
        let out = w.run(&all);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let printed = stdout(&out);
        assert_eq!(std::fs::read_to_string(&plan_file).unwrap(), printed);
        let last = printed.lines().last().unwrap().to_string();
        last.strip_prefix("digest ")
            .unwrap_or_else(|| panic!("no digest line: {printed}"))
            .to_string()
    };
    let digest = review(&[]);
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    // An edit the plan's lines do not show (a new cell's service) is still a new plan.
    let reviewed_manifest = w.read_manifest("web.cell");
    w.write_manifest(
        "web.cell",
        &format!("{reviewed_manifest}CELL_SUPERVISE_TAG=not-reviewed\n"),
    );
    // The kernel backend's lock file under run/ is created by any command.
    let files = |w: &World| -> Vec<_> {
        w.snapshot()
            .into_iter()
            .filter(|(p, _)| !p.starts_with(w.dir.join("run")))
            .collect()
    };
    let before = files(&w);
    let e = w.fails(&["apply", "--expect-plan", plan_arg]);
    assert!(
        e.contains("cellmgr: the plan changed since it was reviewed (its lines are the same"),
        "{e}"
    );
    assert!(
        e.contains(&format!("reviewed {digest}, now sha256:")),
        "{e}"
    );
    assert!(e.contains("nothing was changed"), "{e}");
    let e = w.fails(&["apply", "--expect-digest", &digest]);
    assert!(e.contains("the plan changed since it was reviewed;"), "{e}");
    // With --dry-run it is a check only.
    let e = w.fails(&["apply", "--dry-run", "--expect-digest", &digest]);
    assert!(e.contains("the plan changed since it was reviewed;"), "{e}");
    assert_eq!(files(&w), before, "a refused apply changed files");
    // A new line: named, with what it is.
    w.write_manifest("other.cell", &cell(0, "", ""));
    let before = files(&w);
    let e = w.fails(&["apply", "--expect-plan", plan_arg]);
    assert!(
        e.lines()
            .any(|l| l == "+CREATE   cell other: new cell: render runtime state"),
        "{e}"
    );
    assert!(e.contains("(0 line(s) gone, 2 new, shown above)"), "{e}");
    assert_eq!(files(&w), before, "a refused apply changed files");
    assert_eq!(w.rows("name,running"), "other\t0\nweb\t0\n");

    // Reviewed again, and applied as reviewed: it converges.
    std::fs::remove_file(w.manifest_dir().join("other.cell")).unwrap();
    let digest = review(&["web"]);
    let out = w.ok(&["apply", "--expect-digest", &digest, "web"]);
    assert!(
        out.contains("summary: total=1 changed=1 failed=0 skipped=0"),
        "{out}"
    );
    assert_eq!(w.rows("name,running"), "web\t1\n");
    // The same file now names a plan that has been carried out: refused.
    assert!(w
        .fails(&["apply", "--expect-plan", plan_arg, "web"])
        .contains("-START    cell web: autostart=YES, not running"));

    // Bad expectations say what would be right.
    let e = w.fails(&["apply", "--expect-digest", "abc"]);
    assert!(
        e.contains(
            "--expect-digest: 'abc' is not a plan digest: expected sha256: and 64 hex digits"
        ),
        "{e}"
    );
    std::fs::write(&plan_file, "NOOP     cell web: already converged\n").unwrap();
    let e = w.fails(&["apply", "--expect-plan", plan_arg]);
    assert!(e.contains("--plan-out"), "{e}");
    let e = w.fails(&[
        "apply",
        "--expect-plan",
        plan_arg,
        "--expect-digest",
        &digest,
    ]);
    assert!(e.contains("exclude each other"), "{e}");
}
