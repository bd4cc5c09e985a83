//! Host root never follows a cell's links (issue 13), through the real
//! `cellmgr` and real cells (`CELL_BASE=host`, so perl is there to plant links
//! and race): every case of the issue, each asserting that nothing outside the
//! cell changed. A host directory next to the world, the sentinel, is what the
//! cell's links point at; it must stay exactly as made. Needs root and busybox.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::world::World;
use support::{root_or_skip, write_trusted};

/// A host directory the cell's links point at, with one private file.
struct Sentinel {
    dir: PathBuf,
}

const SECRET: &[u8] = b"host secret\n";

impl Sentinel {
    fn new(w: &World, name: &str) -> Sentinel {
        let dir = w.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret"), SECRET).unwrap();
        std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        Sentinel { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("secret")
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// Nothing appeared, changed or was mounted there.
    fn check(&self, when: &str) {
        let names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["secret"],
            "{when}: something appeared in {}",
            self.dir.display()
        );
        assert_eq!(
            std::fs::read(self.file()).unwrap(),
            SECRET,
            "{when}: the host file changed"
        );
        let md = std::fs::symlink_metadata(self.file()).unwrap();
        assert_eq!(
            md.mode() & 0o7777,
            0o600,
            "{when}: the host file's mode changed"
        );
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo
                .lines()
                .any(|l| l.split(' ').nth(4) == Some(self.path())),
            "{when}: something was mounted on {}",
            self.dir.display()
        );
    }
}

fn sh(w: &World, cell: &str, script: &str) -> Output {
    w.run(&["cell", "shell", cell, "/bin/sh", "-c", script])
}

fn sh_ok(w: &World, cell: &str, script: &str) -> String {
    let out = sh(w, cell, script);
    assert!(
        out.status.success(),
        "in cell {cell}: {script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running cell (a sleeper) with `extra` manifest lines.
fn running_cell(w: &World, name: &str, extra: &str) {
    running_cell_with(w, name, "/bin/busybox sleep 100000", extra);
}

fn running_cell_with(w: &World, name: &str, cmd: &str, extra: &str) {
    w.write_manifest(
        &format!("{name}.cell"),
        &format!("CELL_AUTOSTART=YES\nCELL_SUPERVISE_CMD=\"{cmd}\"\n{extra}"),
    );
    w.ok(&["cell", "start", name]);
}

/// The host's last process id: the next ones follow it.
fn last_pid() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Perl, inside the cell, planting `count` links `<dir>/.<name>.tmp.<pid>` to
/// `target` for the process ids that come next: where the old cellmgr put its
/// temporary files.
fn plant_tmp_links(w: &World, cell: &str, dir: &str, name: &str, target: &Path, count: u64) {
    let from = last_pid() + 1;
    sh_ok(
        w,
        cell,
        &format!(
            "perl -e 'symlink($ARGV[0], \"{dir}/.{name}.tmp.$_\") or die $! for $ARGV[1]..$ARGV[2]' {} {from} {}",
            target.display(),
            from + count - 1
        ),
    );
}

#[test]
fn planted_alternatives_and_ld_so_conf_d_links_are_not_followed() {
    if !root_or_skip("planted_alternatives_and_ld_so_conf_d_links_are_not_followed") {
        return;
    }
    let w = World::new("hr-alt");
    let alt = Sentinel::new(&w, "host-alternatives");
    let ld = Sentinel::new(&w, "host-ld.so.conf.d");
    running_cell(&w, "web", "");
    sh_ok(
        &w,
        "web",
        &format!(
            "rm -rf /etc/alternatives /etc/ld.so.conf.d && ln -s {} /etc/alternatives && ln -s {} /etc/ld.so.conf.d",
            alt.path(),
            ld.path()
        ),
    );
    w.ok(&["cell", "stop", "web"]);
    // The next start refreshes those from the host's /etc.
    let out = w.run(&["cell", "start", "web"]);
    alt.check("start after planting /etc/alternatives");
    ld.check("start after planting /etc/ld.so.conf.d");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The cell keeps its links: they are its business.
    let links = sh_ok(&w, "web", "readlink /etc/alternatives /etc/ld.so.conf.d");
    assert_eq!(links, format!("{}\n{}\n", alt.path(), ld.path()));
}

#[test]
fn host_etc_entries_come_from_one_shared_layer_and_the_host_wins() {
    if !root_or_skip("host_etc_entries_come_from_one_shared_layer_and_the_host_wins") {
        return;
    }
    let mut alternatives: Vec<_> = std::fs::read_dir("/etc/alternatives")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_symlink())
        .collect();
    alternatives.sort();
    let alt = alternatives.first().expect("a host alternatives link");
    let host_target = std::fs::read_link(alt).unwrap();
    let w = World::new("hr-etcshare");
    running_cell(&w, "web", "");
    // The cell sees the host's entries, though its own layer holds none.
    let seen = sh_ok(&w, "web", &format!("readlink {}", alt.display()));
    assert_eq!(seen.trim_end(), host_target.to_str().unwrap());
    let upper = w.data_dir().join("web/overlay/upper/etc");
    assert!(!upper.join("alternatives").exists());
    assert!(!upper.join("ld.so.cache").exists());
    // What the cell changes there goes back to the host's at the next start.
    sh_ok(
        &w,
        "web",
        &format!(
            "rm {} && echo mine > /etc/ld.so.conf && : > /etc/hostname",
            alt.display()
        ),
    );
    w.ok(&["cell", "restart", "web"]);
    let seen = sh_ok(
        &w,
        "web",
        &format!(
            "readlink {} && cat /etc/ld.so.conf /etc/hostname",
            alt.display()
        ),
    );
    let host_conf = std::fs::read_to_string("/etc/ld.so.conf").unwrap();
    // An empty seed file (what a crash may leave of one) is seeded again.
    assert_eq!(seen, format!("{}\n{host_conf}web\n", host_target.display()));
}

#[test]
fn etc_and_var_replaced_by_links_keep_the_seed_inside_the_cell() {
    if !root_or_skip("etc_and_var_replaced_by_links_keep_the_seed_inside_the_cell") {
        return;
    }
    let w = World::new("hr-etc");
    let etc = Sentinel::new(&w, "host-etc");
    let var = Sentinel::new(&w, "host-var");
    running_cell(&w, "web", "");
    // The cell's /etc and /var become links to host directories; inside the
    // cell those paths exist too, so the cell still starts.
    sh_ok(
        &w,
        "web",
        &format!(
            "mkdir -p {e} {v} && cp -a /etc/. {e}/ && rm -f {e}/passwd {e}/group {e}/hosts && \
             rm -rf /etc /var && /usr/bin/ln -s {e} /etc && /usr/bin/ln -s {v} /var",
            e = etc.path(),
            v = var.path()
        ),
    );
    w.ok(&["cell", "stop", "web"]);
    // Rendering the stopped cell seeds /etc and the /var skeleton.
    let out = w.run(&["cell", "start", "web"]);
    etc.check("render with /etc a link");
    var.check("render with /var a link");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the seed wrote is inside the cell, where its links lead.
    let upper = w.data_dir().join("web/overlay/upper");
    let inside = |p: &Path| upper.join(p.strip_prefix("/").unwrap());
    assert!(inside(&etc.dir).join("passwd").is_file());
    let tmp = std::fs::metadata(inside(&var.dir).join("tmp")).unwrap();
    assert_eq!(tmp.mode() & 0o7777, 0o1777);
    assert_eq!(sh_ok(&w, "web", "grep -c root /etc/passwd"), "1\n");
}

#[test]
fn planted_temporary_names_are_never_written_through() {
    if !root_or_skip("planted_temporary_names_are_never_written_through") {
        return;
    }
    let w = World::new("hr-tmp");
    let host = Sentinel::new(&w, "host-file");
    running_cell(&w, "web", "");
    // 2,000 links where the next cellmgr would put its temporary files, and a
    // cache that differs from the host's, so the start rewrites it.
    sh_ok(&w, "web", ": > /etc/ld.so.cache");
    plant_tmp_links(&w, "web", "/etc", "ld.so.cache", &host.file(), 2000);
    w.ok(&["cell", "restart", "web"]);
    host.check("restart with 2,000 planted temporary links");
    let cache = std::fs::read(w.data_dir().join("web/overlay/upper/etc/ld.so.cache")).unwrap();
    assert_eq!(cache, std::fs::read("/etc/ld.so.cache").unwrap());
}

#[test]
fn an_apply_line_never_reaches_a_host_file_through_links() {
    if !root_or_skip("an_apply_line_never_reaches_a_host_file_through_links") {
        return;
    }
    let w = World::new("hr-line");
    let host = Sentinel::new(&w, "host-conf");
    w.write_manifest("web.apply", "DIR /srv\n");
    running_cell(&w, "web", "");
    // /etc/app.conf is the cell's own file, and the temporary names next to
    // it are links to a 0600 host file; /etc/link.conf is itself a link to
    // that host file's path (which exists inside the cell too).
    sh_ok(
        &w,
        "web",
        &format!(
            "echo cell > /etc/app.conf && mkdir -p {d} && echo cell > {f} && ln -s {f} /etc/link.conf",
            d = host.path(),
            f = host.file().display()
        ),
    );
    plant_tmp_links(&w, "web", "/etc", "app.conf", &host.file(), 2000);
    w.write_manifest(
        "web.apply",
        "DIR /srv\nLINE /etc/app.conf | listen=8080\nLINE /etc/link.conf | listen=8081\n",
    );
    let out = w.run(&["apply", "web"]);
    host.check("apply of LINE on planted links");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The lines went where the cell's own paths lead, inside it.
    assert_eq!(sh_ok(&w, "web", "cat /etc/app.conf"), "cell\nlisten=8080\n");
    assert_eq!(
        sh_ok(&w, "web", "cat /etc/link.conf"),
        "cell\nlisten=8081\n"
    );
    assert_eq!(sh_ok(&w, "web", "stat -c %a /etc/app.conf"), "644\n");
}

#[test]
fn a_huge_sparse_passwd_is_refused_with_bounded_memory() {
    if !root_or_skip("a_huge_sparse_passwd_is_refused_with_bounded_memory") {
        return;
    }
    let w = World::new("hr-passwd");
    running_cell(&w, "web", "");
    sh_ok(&w, "web", "truncate -s 3G /etc/passwd");
    w.write_manifest("web.apply", "DIR /srv/www owner=www\n");
    // Run apply as a child and read its peak memory.
    let child = w.command(&["mgr", "apply", "web"]).output_rss();
    let (status, stdout, max_rss_kib) = child;
    assert_ne!(status, 0, "apply succeeded: {stdout}");
    assert!(
        stdout.contains("cellmgr reads at most"),
        "the plan's failure does not say why: {stdout}"
    );
    assert!(
        max_rss_kib < 256 * 1024,
        "cellmgr peaked at {max_rss_kib} KiB reading a 3 GiB passwd"
    );
}

/// Runs a command and returns (exit code, stdout, peak RSS in KiB).
trait OutputRss {
    fn output_rss(self) -> (i32, String, i64);
}

impl OutputRss for Command {
    fn output_rss(mut self) -> (i32, String, i64) {
        use std::io::Read;
        let mut child = self
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut status = 0;
        // SAFETY: rusage is plain data the kernel fills.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child, which std has not reaped.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        assert_eq!(pid, child.id() as i32);
        std::mem::forget(child);
        (libc::WEXITSTATUS(status), out, usage.ru_maxrss)
    }
}

#[test]
fn volumes_are_nosuid_nodev_private_and_noexec_on_request() {
    if !root_or_skip("volumes_are_nosuid_nodev_private_and_noexec_on_request") {
        return;
    }
    let w = World::new("hr-vol");
    w.write_manifest("data.volume", "");
    w.write_manifest("bin.volume", "");
    running_cell(
        &w,
        "web",
        "CELL_CREATE_PROFILE=high\nCELL_VOLUME_MOUNTS=\"data:/srv/data,bin:/srv/bin:noexec\"\n",
    );
    // Cell root makes a set-uid root program and stores a secret in its volume.
    sh_ok(
        &w,
        "web",
        "cp /usr/bin/id /srv/data/myid && chmod 4755 /srv/data/myid && \
         echo DB_PASSWORD=hunter2 > /srv/data/env && chmod 0644 /srv/data/env && \
         cp /usr/bin/id /srv/bin/id2",
    );
    let vol = w.volume_dir().join("data");
    // A host user can neither run the program nor read the secret.
    let host_run = Command::new(vol.join("myid"))
        .arg("-u")
        .uid(65534)
        .gid(65534)
        .output();
    let ran_as = host_run
        .as_ref()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(
        ran_as, None,
        "host user nobody ran the cell's set-uid program"
    );
    let read = Command::new("/bin/cat")
        .arg(vol.join("env"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        !read.status.success(),
        "host user nobody read the volume: {:?}",
        read.stdout
    );
    assert_eq!(
        std::fs::metadata(w.volume_dir()).unwrap().mode() & 0o7777,
        0o700
    );
    // In the cell, the mount has nosuid,nodev, and noexec where asked.
    let root = w.data_dir().join("web/root");
    let options = |target: &str| -> String {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let point = root.join(target).display().to_string();
        mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(point.as_str()))
            .map(|l| l.split(' ').nth(5).unwrap().to_string())
            .unwrap_or_else(|| panic!("{point} is not mounted"))
    };
    let has = |opts: &str, o: &str| opts.split(',').any(|x| x == o);
    let data = options("srv/data");
    assert!(
        has(&data, "nosuid") && has(&data, "nodev") && !has(&data, "noexec"),
        "{data}"
    );
    let bin = options("srv/bin");
    assert!(
        has(&bin, "nosuid") && has(&bin, "nodev") && has(&bin, "noexec"),
        "{bin}"
    );
    assert_ne!(sh(&w, "web", "/srv/bin/id2").status.code(), Some(0));
    // A device node in a volume does not open in the cell.
    let node = std::ffi::CString::new(vol.join("null").to_str().unwrap()).unwrap();
    // SAFETY: a valid path in the test's volume.
    assert_eq!(
        unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
        0
    );
    let opened = sh(&w, "web", "echo x > /srv/data/null");
    assert_ne!(
        opened.status.code(),
        Some(0),
        "a device node in a volume opened in the cell"
    );
}

#[test]
fn private_files_are_0600_in_0700_directories() {
    if !root_or_skip("private_files_are_0600_in_0700_directories") {
        return;
    }
    let w = World::new("hr-private");
    w.ok(&[
        "cell",
        "create",
        "web",
        "--cmd",
        "/bin/busybox sh -c 'echo started; exec sleep 100000'",
    ]);
    w.ok(&["cell", "start", "web"]);
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&w.manifest_dir()), 0o700);
    assert_eq!(mode(&w.manifest_dir().join("web.cell")), 0o600);
    assert_eq!(mode(&w.manifest_dir().join("web.apply")), 0o600);
    let run = w.dir.join("run");
    assert_eq!(mode(&run.join("supervise")), 0o700);
    assert_eq!(mode(&support::supervise_dir(&run, "web")), 0o700);
    support::wait_until(
        "the service log",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || support::supervise_file(&run, "web", "log").exists(),
    );
    for f in ["status", "log"] {
        let file = support::supervise_file(&run, "web", f);
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&w.data_dir().join("web")), 0o700);
    assert_eq!(mode(&w.data_dir().join("web/cell.conf")), 0o600);
}

/// The racer: perl in the cell exchanging a directory and a link to a host
/// directory with renameat2(RENAME_EXCHANGE) in a tight loop, for at most
/// `secs` seconds.
const RACER: &str = "my ($a, $b, $secs) = @ARGV; my $end = time + $secs; \
                     while (time < $end) { syscall(316, -100, $a, -100, $b, 2) for 1..2000 }";

/// A host thread doing the same on a directory the test holds open.
struct HostRacer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl HostRacer {
    fn start(dir: &Path, a: &'static str, b: &'static str) -> HostRacer {
        let stop = Arc::new(AtomicBool::new(false));
        let fd = std::fs::File::open(dir).unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let (a, b) = (
                std::ffi::CString::new(a).unwrap(),
                std::ffi::CString::new(b).unwrap(),
            );
            let mut swaps = 0;
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: a valid directory fd and two names.
                unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        fd.as_raw_fd(),
                        a.as_ptr(),
                        fd.as_raw_fd(),
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                swaps += 1;
            }
            swaps
        });
        HostRacer {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for HostRacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Bounds of every race: iterations, and time after which no new one starts.
const RACE_TIME: Duration = Duration::from_secs(60);

#[test]
fn apply_reapply_races_a_swapping_cell_process() {
    if !root_or_skip("apply_reapply_races_a_swapping_cell_process") {
        return;
    }
    let w = World::new("hr-race-apply");
    let host = Sentinel::new(&w, "host-target");
    w.write_manifest("asset.txt", "asset\n");
    w.write_manifest("conf.tmpl", "cell={{cell_name}}\n");
    // Files written under /srv/d while a process in the cell swaps /srv/d with
    // /srv/l, a link to the host directory (mirrored inside the cell, so the
    // plan's writes succeed either way and keep coming).
    let mut plan = format!(
        "FILE_BEGIN /racer.pl\n{RACER}\nFILE_END\n\
         EXEC rm -rf /srv/d /srv/l {h} && mkdir -p {h} /srv/d && ln -s {h} /srv/l\n\
         EXEC perl /racer.pl /srv/d /srv/l 120 </dev/null >/dev/null 2>&1 &\n",
        h = host.path()
    );
    // Directories and links first (each one created by path was a chance for
    // the old code to follow the swapped link), then files. No attributes: a
    // step that writes on one side of the swap and then looks for the file
    // on the other would end the plan early.
    for i in 0..10 {
        plan.push_str(&format!("DIR /srv/d/dir{i}\nSYMLINK /etc /srv/d/link{i}\n"));
    }
    for i in 0..10 {
        plan.push_str(&format!(
            "FILE_BEGIN /srv/d/f{i}\nx\nFILE_END\n\
             LINE /srv/d/line{i} | k=v\n\
             COPY asset.txt /srv/d/asset{i}\n\
             TEMPLATE conf.tmpl /srv/d/conf{i}\n"
        ));
    }
    plan.push_str("DIR /srv/d/attrs mode=0700\nFILE_BEGIN /srv/d/attrs/f mode=0600\nx\nFILE_END\n");
    w.write_manifest("web.apply", &plan);
    w.write_manifest(
        "web.cell",
        "CELL_AUTOSTART=YES\nCELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\n",
    );
    let started = Instant::now();
    let mut runs = 0;
    // The old code lost about one iteration in ten to this racer; thirty
    // make missing it unlikely.
    for i in 0..30 {
        if started.elapsed() > RACE_TIME {
            break;
        }
        let _ = w.run(&["apply", "--reapply", "web"]);
        host.check(&format!("apply --reapply, iteration {i}"));
        runs += 1;
    }
    assert!(runs >= 5, "only {runs} iterations in {RACE_TIME:?}");
}

#[test]
fn start_and_render_race_a_swapping_layer() {
    if !root_or_skip("start_and_render_race_a_swapping_layer") {
        return;
    }
    let w = World::new("hr-race-start");
    let host = Sentinel::new(&w, "host-target");
    w.write_manifest("data.volume", "");
    w.write_manifest(
        "web.cell",
        "CELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\nCELL_VOLUME_MOUNTS=\"data:/srv/data\"\n",
    );
    w.ok(&["cell", "start", "web"]);
    w.ok(&["cell", "stop", "web"]);
    // A stopped cell has no process of its own: this thread stands in for one
    // that could still change the layer while the cell is rendered, composed
    // and started: `srv` (a mount target's parent) and `var` (seeded) swap
    // with links to the host directory.
    let upper = w.data_dir().join("web/overlay/upper");
    std::os::unix::fs::symlink(&host.dir, upper.join("srvl")).unwrap();
    std::os::unix::fs::symlink(&host.dir, upper.join("varl")).unwrap();
    let srv = HostRacer::start(&upper, "srv", "srvl");
    let var = HostRacer::start(&upper, "var", "varl");
    let started = Instant::now();
    let mut runs = 0;
    for i in 0..20 {
        if started.elapsed() > RACE_TIME {
            break;
        }
        // Something for the seed to write each time.
        let _ = std::fs::remove_dir_all(upper.join("var/tmp"));
        let _ = w.run(&["cell", "start", "web"]);
        host.check(&format!("start, iteration {i}"));
        let _ = w.run(&["cell", "stop", "web"]);
        host.check(&format!("stop, iteration {i}"));
        runs += 1;
    }
    let swaps = srv.finish() + var.finish();
    assert!(swaps > 1000, "the racers swapped only {swaps} times");
    assert!(runs >= 3, "only {runs} iterations in {RACE_TIME:?}");
    assert!(w.mounts().is_empty(), "left mounted: {:?}", w.mounts());
}

#[test]
fn restore_races_a_swapping_cell_process() {
    if !root_or_skip("restore_races_a_swapping_cell_process") {
        return;
    }
    let w = World::new("hr-race-restore");
    let host = Sentinel::new(&w, "host-target");
    w.write_manifest("data.volume", "");
    let vol = w.volume_dir().join("data");
    write_dir_tree(&vol);
    w.ok(&["volume", "backup", "create", "data"]);
    std::fs::write(vol.join("racer.pl"), RACER).unwrap();
    running_cell_with(
        &w,
        "web",
        "perl /srv/data/racer.pl /srv/data/d /srv/data/l 120",
        "CELL_VOLUME_MOUNTS=\"data:/srv/data\"\n",
    );
    let started = Instant::now();
    let mut runs = 0;
    for i in 0..4 {
        if started.elapsed() > RACE_TIME {
            break;
        }
        sh_ok(
            &w,
            "web",
            &format!(
                "mkdir -p /srv/data/d && (test -L /srv/data/l || ln -s {} /srv/data/l)",
                host.path()
            ),
        );
        w.ok(&[
            "volume", "backup", "restore", "data", "--latest", "--stop", "--yes",
        ]);
        host.check(&format!("restore, iteration {i}"));
        std::fs::write(vol.join("racer.pl"), RACER).unwrap();
        w.ok(&["cell", "start", "web"]);
        runs += 1;
    }
    assert!(runs >= 2, "only {runs} iterations in {RACE_TIME:?}");
}

/// Some files and directories for a backup to carry.
fn write_dir_tree(dir: &Path) {
    for d in 0..20 {
        let sub = dir.join(format!("d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..20 {
            write_trusted(&sub.join(format!("f{f}")), format!("{d}/{f}\n"));
        }
    }
}
