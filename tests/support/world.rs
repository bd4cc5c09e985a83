//! A temporary cellmgr world per test: its own cellmgr.conf with every path
//! inside a temp directory, the real binary invoked as `cellmgr` without a
//! controlling terminal, and cleanup of everything the test started.

use super::{fresh_dir, trusted_dir, write_trusted, BIN};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct World {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub bin: PathBuf,
}

impl World {
    pub fn new(tag: &str) -> World {
        Self::with_conf(tag, "")
    }

    /// A world whose cellmgr.conf also holds `extra` lines.
    pub fn with_conf(tag: &str, extra: &str) -> World {
        let dir = fresh_dir("cmt", tag);
        trusted_dir(&dir.join("bin"));
        // The lock lives in the data directory: created up front so that a
        // command's first lock does not count as a change.
        trusted_dir(&dir.join("cells"));
        let bin = dir.join("bin/cellmgr");
        std::os::unix::fs::symlink(BIN, &bin).unwrap();
        let conf = dir.join("cellmgr.conf");
        let d = dir.display();
        let base = if extra.contains("CELL_BASE=") {
            ""
        } else {
            "CELL_BASE=host\n"
        };
        // CELLS_TEST_USERNS=NO runs the tests on host ids (`CELL_USERNS=NO`).
        let userns = match std::env::var("CELLS_TEST_USERNS") {
            Ok(v) if v == "NO" && !extra.contains("CELL_USERNS=") => "CELL_USERNS=NO\n",
            _ => "",
        };
        // CELLS_TEST_SUPERVISOR=process supervises services in supervisor
        // processes (=init, the default, in the cells' inits).
        let supervisor = match std::env::var("CELLS_TEST_SUPERVISOR") {
            Ok(v) if !extra.contains("CELL_SUPERVISOR=") => format!("CELL_SUPERVISOR={v}\n"),
            _ => String::new(),
        };
        write_trusted(
            &conf,
            format!(
                "CELLMGR_MANIFEST_DIR={d}/etc\nCELL_DATA_DIR={d}/cells\nCELL_VOLUME_DIR={d}/volumes\n\
                 CELL_BASE_DIR={d}/base\nCELL_BACKUP_DIR={d}/backups\nCELL_RELEASE_DIR={d}/releases\n\
                 CELL_RUN_DIR={d}/run\nCELL_AUDIT_LOG={d}/audit.log\n{base}{userns}{supervisor}{extra}"
            ),
        );
        World { dir, conf, bin }
    }

    pub fn manifest_dir(&self) -> PathBuf {
        self.dir.join("etc")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("cells")
    }

    pub fn volume_dir(&self) -> PathBuf {
        self.dir.join("volumes")
    }

    /// `cells <args>` (the multicall binary: `mgr ...`, `ui ...`) reading this
    /// world's configuration.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env("CELLMGR_CONF", &self.conf);
        cmd
    }

    /// `CELLMGR_CONF=<conf>`, for a shell command line.
    pub fn conf_env(&self) -> String {
        format!("CELLMGR_CONF={}", self.conf.display())
    }

    /// Runs cellmgr with `args` in a new session (no controlling terminal, so
    /// confirmations cannot be typed) and stdin from /dev/null.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.run_program(&self.bin, args, env)
    }

    /// `run_env` for another program, e.g. the `cells` binary with `ctl ...`.
    pub fn run_program(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("CELLMGR_CONF", &self.conf)
            .env_remove("VISUAL")
            .env_remove("EDITOR")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        cmd.output().expect("running cellmgr")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// Runs and expects exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cellmgr {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit 1; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "cellmgr {args:?} should fail:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `cell list -T -H -o <fields>` as text.
    pub fn rows(&self, fields: &str) -> String {
        self.ok(&["cell", "list", "-T", "-H", "-o", fields])
    }

    /// `volume list -T -H -o <fields>` as text.
    pub fn volume_rows(&self, fields: &str) -> String {
        self.ok(&["volume", "list", "-T", "-H", "-o", fields])
    }

    /// Writes a manifest. A cell manifest that names no profile gets
    /// `CELLS_TEST_PROFILE` (low, medium or high) when set, else cellmgr's
    /// default (high): the suite runs at each profile this way.
    pub fn write_manifest(&self, file: &str, text: &str) {
        trusted_dir(&self.manifest_dir());
        let mut text = text.to_string();
        if let Ok(profile) = std::env::var("CELLS_TEST_PROFILE") {
            if file.ends_with(".cell") && !text.contains("CELL_CREATE_PROFILE=") {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!("CELL_CREATE_PROFILE={profile}\n"));
            }
        }
        write_trusted(&self.manifest_dir().join(file), &text);
    }

    pub fn read_manifest(&self, file: &str) -> String {
        std::fs::read_to_string(self.manifest_dir().join(file)).unwrap()
    }

    /// Every file below the world (path and content), to prove a command changed
    /// nothing. The journal is not state: it records every attempt, refused
    /// ones too (tests/events.rs checks it).
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, self_dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            let mut entries: Vec<_> = entries.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let p = e.path();
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    out.push((p.clone(), Vec::new()));
                    walk(&p, self_dir, out);
                } else if ft.is_file() {
                    // The lock file's holder line changes with every command.
                    if p.file_name().is_some_and(|n| n == ".lock") {
                        continue;
                    }
                    if p.parent() == Some(self_dir) && p.to_string_lossy().contains("audit.log") {
                        continue;
                    }
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                } else {
                    out.push((p, Vec::new()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &self.dir, &mut out);
        out
    }

    /// Mount points inside this world.
    pub fn mounts(&self) -> Vec<String> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let prefix = format!("{}/", self.dir.display());
        text.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(String::from)
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Stop and prune whatever the test left running, then remove the tree
        // (never while something is mounted in it).
        let _ = self.run(&["cell", "stop", "--all", "--ignore-autostart"]);
        let _ = self.run(&["cell", "remove", "--all", "--scope", "runtime", "--yes"]);
        if self.mounts().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "leaving {} in place: still mounted: {:?}",
                self.dir.display(),
                self.mounts()
            );
        }
    }
}

/// Tries to bind TCP `port` on 127.0.0.1 as `uid` in a forked child; returns the
/// errno (0 when the bind succeeded).
pub fn bind_as(uid: u32, port: u16) -> i32 {
    // SAFETY: the child makes only async-signal-safe calls, then _exits.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(uid, uid, uid) != 0
                || libc::setresuid(uid, uid, uid) != 0
            {
                libc::_exit(250);
            }
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if fd < 0 {
                libc::_exit(251);
            }
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_port = port.to_be();
            addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            let rc = libc::bind(
                fd,
                &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            let errno = if rc == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(errno);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::WEXITSTATUS(status)
    }
}

/// GET / from 127.0.0.1:port, retrying until the server answers (at most
/// 20 s: the machine may be loaded); the body, if any.
pub fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            if s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").is_ok() {
                let mut buf = String::new();
                if s.read_to_string(&mut buf).is_ok() && !buf.is_empty() {
                    return buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}
