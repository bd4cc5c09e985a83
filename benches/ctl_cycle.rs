//! The cell cycle in-process: `Kernel::create` → `Kernel::spawn(/bin/true)` →
//! `Kernel::destroy`, interleaved with one `bwrap --unshare-all` run and one
//! `unshare -fp --mount-proc` run of /bin/true per iteration; prints mean
//! milliseconds and ratios. Unlike `bench/ctl-cycle.sh` it leaves out the three
//! `cellctl` process starts, so it measures what the kernel backend costs.
//!
//! Run as root: `cargo bench --bench ctl_cycle [-- iterations]`. The cell state
//! goes under RUN_PARENT (default: the temp directory; /dev/shm for tmpfs).

use cells::config::Config;
use cells::kernel::linux::LinuxKernel;
use cells::kernel::{CellSpec, ExecSpec, Kernel, Stdio as CellStdio, Target};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn quiet(cmd: &mut Command) {
    let st = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{cmd:?}");
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("ctl_cycle: skipped: needs root");
        return;
    }
    // `cargo bench` passes --bench; under `cargo test --benches` a smoke run.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let default = if args.iter().any(|a| a == "--bench") {
        200
    } else {
        3
    };
    let n: u32 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(default);
    let work = std::env::temp_dir().join(format!("cells-bench-{}", std::process::id()));
    let parent = std::env::var_os("RUN_PARENT").map_or_else(std::env::temp_dir, PathBuf::from);
    let run = parent.join(format!("cells-bench-run-{}", std::process::id()));
    let root = work.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/true")).unwrap();
    let cfg = Config {
        run_dir: run.clone(),
        ..Config::default()
    };
    let kernel = LinuxKernel::open(&cfg)
        .unwrap()
        .with_init_program(env!("CARGO_BIN_EXE_cells").into());
    let name = format!("bench{}", std::process::id());
    let spec = CellSpec {
        name: name.clone(),
        root: root.clone(),
        profile: cells::kernel::Profile::High,
        ports: Vec::new(),
        rlimits: Default::default(),
        limits: Default::default(),
        ephemeral: false,
        ids: None,
    };
    let target = Target::Name(name);
    let exec = ExecSpec {
        argv: vec!["/bin/true".into()],
        ..ExecSpec::default()
    };
    let bwrap = || {
        quiet(Command::new("bwrap").args([
            "--unshare-all",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "/bin/true",
        ]))
    };
    let unshare = || quiet(Command::new("unshare").args(["-fp", "--mount-proc", "/bin/true"]));

    let mut t = [Duration::ZERO; 5];
    for i in 0..n + 3 {
        let t0 = Instant::now();
        kernel.create(&spec).unwrap();
        let t1 = Instant::now();
        let null = || CellStdio::Null;
        let mut child = kernel
            .spawn(&target, &exec, [null(), null(), null()])
            .unwrap();
        assert!(child.wait().unwrap().success());
        let t2 = Instant::now();
        kernel.destroy(&target).unwrap();
        let t3 = Instant::now();
        bwrap();
        let t4 = Instant::now();
        unshare();
        let t5 = Instant::now();
        if i >= 3 {
            for (acc, d) in t
                .iter_mut()
                .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4])
            {
                *acc += d;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&run);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(n);
    let cycle = t[0] + t[1] + t[2];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "iterations: {n}; in-process Kernel calls; load: {}",
        load.trim()
    );
    println!("cell cycle create+run+destroy  {:6.2} ms", ms(cycle));
    println!("  create                       {:6.2} ms", ms(t[0]));
    println!("  run /bin/true                {:6.2} ms", ms(t[1]));
    println!("  destroy                      {:6.2} ms", ms(t[2]));
    println!("bwrap --unshare-all /bin/true  {:6.2} ms", ms(t[3]));
    println!("unshare -fp --mount-proc true  {:6.2} ms", ms(t[4]));
    println!(
        "ratio cycle/bwrap              {:.2}",
        cycle.as_secs_f64() / t[3].as_secs_f64()
    );
    println!(
        "ratio cycle/unshare            {:.2}",
        cycle.as_secs_f64() / t[4].as_secs_f64()
    );
}
