//! Fuzzing on stable Rust, in `make test`: for every parser of input that
//! can be wrong or hostile (manifests and cellmgr.conf, `.apply` plans, CBOR
//! state and IPC messages, the IPC byte stream, tar headers), a few thousand
//! inputs generated from valid seeds by seeded mutation, plus some that are
//! large on purpose. Each must return (an error is fine) without a panic and
//! within a generous time. `CELLS_FUZZ_INPUTS` sets the count per parser,
//! `CELLS_FUZZ_SEED` repeats a run. The same entry points (`cells::fuzz`)
//! are the cargo-fuzz targets in `fuzz/` (nightly: `make fuzz`).

mod support;

use std::time::{Duration, Instant};
use support::Rng;

/// Bytes that matter to these parsers.
const INTERESTING: &[u8] =
    b"=\"'\\$`#\n\r\t\0 :,/.-_0123456789ABCDEFXYZxyz@~{}()[]|;&<>\xff\x80\xc3";

/// One input: a seed mutated a few times (flip, insert, delete, duplicate,
/// splice another seed, truncate).
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len() as u64) as usize].clone();
    for _ in 0..=rng.below(8) as usize {
        let at = rng.below(v.len() as u64 + 1) as usize;
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8) as usize;
            }
            1 => v.insert(
                at,
                INTERESTING[rng.below(INTERESTING.len() as u64) as usize],
            ),
            2 => v.insert(at, rng.next() as u8),
            3 => {
                let end = (at + rng.below(16) as usize).min(v.len());
                v.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(64) as usize).min(v.len());
                let piece = v[at..end].to_vec();
                let to = rng.below(v.len() as u64 + 1) as usize;
                v.splice(to..to, piece);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len() as u64) as usize];
                let from = rng.below(other.len() as u64 + 1) as usize;
                let end = (from + rng.below(128) as usize).min(other.len());
                v.splice(at..at, other[from..end].iter().copied());
            }
            _ => v.truncate(at),
        }
    }
    v
}

/// Inputs per parser (`CELLS_FUZZ_INPUTS`).
fn inputs() -> usize {
    std::env::var("CELLS_FUZZ_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000)
}

/// Runs `parse` on the seeds, some large inputs and generated ones; fails on
/// a panic or an input that takes more than `LIMIT`, showing it.
fn fuzz(name: &str, seeds: &[Vec<u8>], large: &[Vec<u8>], parse: fn(&[u8])) {
    const LIMIT: Duration = Duration::from_secs(5);
    let (mut rng, seed) = Rng::seeded("CELLS_FUZZ_SEED", name.len() as u64);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let total = seeds.len() + large.len() + inputs();
    for i in 0..total {
        let input = if i < seeds.len() {
            seeds[i].clone()
        } else if i < seeds.len() + large.len() {
            large[i - seeds.len()].clone()
        } else {
            mutate(&mut rng, seeds)
        };
        let t = Instant::now();
        let ok = std::panic::catch_unwind(|| parse(&input)).is_ok();
        let took = t.elapsed();
        slowest = slowest.max(took);
        let shown = || {
            let head: String = String::from_utf8_lossy(&input[..input.len().min(300)])
                .escape_debug()
                .collect();
            format!(
                "input {i} of {name} (seed {seed}, {} bytes): {head}",
                input.len()
            )
        };
        assert!(ok, "panicked on {}", shown());
        assert!(took < LIMIT, "took {took:?} on {}", shown());
    }
    eprintln!(
        "fuzz {name}: {total} inputs in {:?}, slowest {slowest:?}, seed {seed}",
        started.elapsed()
    );
}

fn text_seeds(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|t| t.as_bytes().to_vec()).collect()
}

/// Large on purpose: a 1 MiB line, many lines, deep nesting.
fn large_text(key: &str) -> Vec<Vec<u8>> {
    vec![
        format!("{key}={}\n", "x".repeat(1 << 20)).into_bytes(),
        format!("{}=1\n", "K".repeat(1 << 20)).into_bytes(),
        format!("{key}=1\n").repeat(50_000).into_bytes(),
        "\"".repeat(1 << 20).into_bytes(),
    ]
}

#[test]
fn manifests_and_cellmgr_conf() {
    let seeds = text_seeds(&[
        "# web\nCELL_AUTOSTART=YES\nCELL_CREATE_PROFILE=medium\nCELL_CREATE_RESERVED_PORTS=80,443\n\
         CELL_CREATE_RLIMIT_NOFILE=1024\nCELL_CREATE_RLIMIT_AS=unlimited\nCELL_CREATE_RLIMIT_CORE=0\n\
         CELL_DEPENDS_ON=\"db cache\"\nCELL_HEALTHCHECK_CMD='test -f /srv/ok'\n\
         CELL_SUPERVISE_CMD=\"busybox httpd -f -p 80\"\n\
         CELL_VOLUME_MOUNTS=\"www:/srv/www:ro,data:/srv/data\"\nCELL_SUPERVISE_FACILITY=daemon\n\
         CELL_SUPERVISE_STDOUT_LEVEL=info\nCELL_SUPERVISE_TAG=web\nCELL_NAME=web\n",
        "VOLUME_NAME=data\nVOLUME_MODE=0750\n",
        "CELLMGR_MANIFEST_DIR=/etc/cellmgr\nCELL_DATA_DIR=/var/cellmgr/cells\nCELL_BASE=host\n\
         CELL_ALLOW_HOST_MOUNTS=YES\nCELL_BACKUP_KEEP=3\nCELL_HEALTHCHECK_BUDGET=30\nCELL_DEV_SIZE=8m\n",
        "CELL_VOLUME_MOUNTS=\"host:/srv/x:/mnt:rw\"\nA=\"a\\\"b\" # c\n",
    ]);
    fuzz(
        "manifest",
        &seeds,
        &large_text("CELL_SUPERVISE_CMD"),
        cells::fuzz::manifest,
    );
}

#[test]
fn apply_files() {
    let seeds = text_seeds(&[
        "PKG nginx php82\nDIR /srv/www mode=0755 owner=www group=www\n\
         LINE /etc/hosts 127.0.0.1 web\nSYMLINK /srv/current /srv/www\n\
         EXEC [ -f /srv/ok ] || touch /srv/ok\nFILE /etc/motd mode=0644\n  hello\n  world\n\
         PATCH /etc/conf fix.patch\nCOPY page.html /srv/www/index.html mode=0644\n\
         TEMPLATE site.conf /etc/site.conf NAME=web PORT=80\n",
        "# comment\n\nEXEC true\n",
    ]);
    fuzz(
        "apply",
        &seeds,
        &large_text("EXEC"),
        cells::fuzz::apply_file,
    );
}

#[test]
fn cbor_state_and_messages() {
    use cells::engine::backup::sidecar::Sidecar;
    use cells::fs::cbor::encode as enc;
    use cells::ipc::proto::{Request, Response};
    use cells::supervise::{SupervisorState, SupervisorStatus};
    let status = SupervisorStatus {
        cell: "web".into(),
        cid: 3,
        supervisor_pid: 100,
        child_pid: Some(101),
        argv: vec!["/bin/sh".into(), "-c".into(), "exec httpd".into()],
        state: SupervisorState::Running,
        since: 1,
        started: 2,
        restarts: 3,
        last_exit: Some("exit 1".into()),
        backoff_secs: 2,
        recent_starts_ms: vec![1, 2, 3],
        syslog_unreachable: false,
        health: None,
    };
    let sidecar = Sidecar {
        format: 1,
        kind: "volume".into(),
        name: "v".into(),
        archive: "v_20251129T184300Z.tar.gz".into(),
        sha256: "ab".repeat(32),
        size: 42,
        content_bytes: 10240,
        source: "/v".into(),
        created: 5,
        seq: 2,
        acls: Some(false),
        mac: Some("cd".repeat(32)),
        quiesced: vec!["web".into()],
        manifests: [("v.volume".to_string(), "VOLUME_MODE=0750\n".to_string())].into(),
    };
    let mut seeds = vec![
        enc(&status),
        enc(&sidecar),
        enc(&Request::Ping),
        enc(&Response::Pong),
        enc(&Response::Cells(vec![cells::model::CellRow::default()])),
    ];
    #[cfg(target_os = "linux")]
    {
        use cells::kernel::linux::state::{BindGuardIds, CellRecord, Table};
        let table = Table {
            next_id: 3,
            cells: vec![CellRecord {
                id: 2,
                name: "web".into(),
                root: "/srv/web".into(),
                profile: cells::kernel::Profile::Medium,
                ports: vec![80],
                rlimits: Default::default(),
                created_ns: 5,
                init_pid: 42,
                init_start: 7,
                cgroup: "/sys/fs/cgroup/cells/x/2".into(),
                limits: cells::kernel::Limits {
                    maxproc: Some(1024),
                    ..Default::default()
                },
                v1_groups: vec!["/sys/fs/cgroup/pids/cells/x/2".into()],
                ids: Some(cells::kernel::IdRange {
                    base: 1 << 30,
                    size: 65_536,
                }),
                own_sharing_rule: false,
                pending: None,
            }],
            bind_guard: Some(BindGuardIds {
                version: cells::kernel::linux::bpf::PROGRAMS_VERSION,
                prog4: 1,
                prog6: 2,
                post4: 4,
                post6: 5,
                sockopt: 6,
                ports_map: 3,
            }),
        };
        seeds.push(enc(&table));
    }
    let large = vec![
        // Lengths that promise more than there is, and deep nesting.
        b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        b"\x9b\x00\x00\x00\x00\xff\xff\xff\xff".to_vec(),
        b"\xbb\x00\x00\x10\x00\x00\x00\x00\x00".to_vec(),
        vec![0x81; 1 << 20],
        vec![0xbf; 1 << 16],
    ];
    fuzz("cbor", &seeds, &large, cells::fuzz::cbor_state);
}

#[test]
fn ipc_byte_stream() {
    use cells::ipc::proto::{encode, Request};
    let mut stream = vec![7u8];
    for req in [Request::Ping, Request::Ping] {
        cells::ipc::frame::write_frame(&mut stream, &encode(&req)).unwrap();
    }
    let mut garbage_first = vec![1u8];
    garbage_first.extend_from_slice(b"junk CELL");
    garbage_first.extend_from_slice(&stream[1..]);
    let large = vec![
        [b"\x03CELL".as_slice(), &[0xff; 4]].concat(),
        [b"\x40".as_slice(), &b"CELL\x00\x00\x00\x05".repeat(100_000)].concat(),
        vec![0x43; 1 << 20],
    ];
    fuzz(
        "ipc-frame",
        &[stream, garbage_first],
        &large,
        cells::fuzz::ipc_frames,
    );
}

#[test]
fn tar_headers() {
    let dir = std::env::temp_dir().join(format!("cells-fuzz-tar-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::write(dir.join("a/b/f"), "x".repeat(3000)).unwrap();
    std::os::unix::fs::symlink("a/b/f", dir.join("l")).unwrap();
    let out = std::process::Command::new("tar")
        .args(["--create", "--file=-", "--format=posix", "--xattrs", "-C"])
        .arg(&dir)
        .arg(".")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let large = vec![vec![0u8; 1 << 20], vec![b'x'; 1 << 20]];
    fuzz("tar", &[out.stdout], &large, cells::fuzz::tar_headers);
}
