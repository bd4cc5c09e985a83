//! ssh for the tests of `-H`: a stand-in `ssh` that runs the remote command on
//! this machine (and records how it was called), and a real `sshd` on
//! 127.0.0.1 with its own configuration, keys and port, started by the test
//! and ended by its PID.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A directory holding an executable `ssh` for the front of `PATH`.
pub struct StandInSsh {
    pub dir: PathBuf,
}

impl StandInSsh {
    /// An `ssh` that skips its options up to `--` and the destination, appends
    /// its options to `options` and the remote line to `commands` (one line per
    /// call), then runs the remote line with `sh -c`, as sshd would with the
    /// user's shell, and exits with its status.
    pub fn new(dir: &Path) -> StandInSsh {
        Self::with_script(
            dir,
            "opts=\"\"\nwhile [ \"$1\" != -- ]; do opts=\"$opts $1\"; shift; done\nshift 2\n\
             here=$(dirname \"$0\")\necho \"${opts# }\" >> \"$here/options\"\n\
             echo \"$*\" >> \"$here/commands\"\nexec sh -c \"$*\"\n",
        )
    }

    /// An `ssh` that cannot reach its host: says so on stderr and exits 255.
    pub fn unreachable(dir: &Path) -> StandInSsh {
        Self::with_script(
            dir,
            "echo \"ssh: connect to host nosuch port 22: Connection refused\" >&2\nexit 255\n",
        )
    }

    fn with_script(dir: &Path, body: &str) -> StandInSsh {
        std::fs::create_dir_all(dir).unwrap();
        let ssh = dir.join("ssh");
        std::fs::write(&ssh, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
        StandInSsh {
            dir: dir.to_path_buf(),
        }
    }

    /// `PATH` with this `ssh` first, then `more`, then the inherited PATH.
    pub fn path(&self, more: &[&Path]) -> String {
        let mut parts = vec![self.dir.display().to_string()];
        parts.extend(more.iter().map(|p| p.display().to_string()));
        parts.push(std::env::var("PATH").unwrap_or_default());
        parts.join(":")
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// The remote lines it was asked to run, in order.
    pub fn commands(&self) -> Vec<String> {
        self.lines("commands")
    }

    /// The ssh options of each call (`-T`, `-t`, `-T -o BatchMode=yes`).
    pub fn options(&self) -> Vec<String> {
        self.lines("options")
    }
}

pub const SSHD: &str = "/usr/sbin/sshd";

/// True when a real sshd can be started here (root, OpenSSH's server and
/// `unshare`); otherwise prints why `test` is skipped.
pub fn sshd_or_skip(test: &str) -> bool {
    if !super::root_or_skip(test) {
        return false;
    }
    if !Path::new(SSHD).exists() {
        eprintln!("{test}: skipped: no {SSHD} (apt-get install openssh-server; scripts/install-deps.sh does)");
        return false;
    }
    true
}

/// A real sshd on 127.0.0.1:`port`, run as root by the test with a config,
/// host key, client key and known_hosts in `dir`, and an `ssh` wrapper in
/// `dir/bin` that points the real ssh client at them (`ssh -F dir/ssh_config`).
/// The host `cellhost` of that config is this sshd.
pub struct Sshd {
    pub dir: PathBuf,
    child: Child,
}

impl Sshd {
    pub fn start(dir: &Path, port: u16) -> Sshd {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        for key in ["host_key", "client_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "cells-test", "-f"])
                .arg(dir.join(key))
                .output()
                .unwrap();
            assert!(out.status.success(), "ssh-keygen: {out:?}");
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )
        .unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile none\nStrictModes no\n\
                 UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nPrintMotd no\nPrintLastLog no\n\
                 LogLevel ERROR\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("ssh_config"),
            format!(
                "Host cellhost\n  HostName 127.0.0.1\n  Port {port}\n  User root\n\
                 IdentityFile {d}/client_key\n  IdentitiesOnly yes\n\
                 UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n\
                 StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n"
            ),
        )
        .unwrap();
        let ssh = dir.join("bin/ssh");
        std::fs::write(
            &ssh,
            format!("#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
        // sshd wants its privilege separation directory, /run/sshd, which the
        // host's service would create. A private mount namespace with a tmpfs
        // on /run gives it one without touching the host's /run.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o mode=0755 cells-test-run /run && mkdir -m 0755 /run/sshd \
                 && exec {SSHD} -D -e -f {d}/sshd_config"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("starting sshd");
        let mut sshd = Sshd {
            dir: dir.to_path_buf(),
            child,
        };
        // Ready when it accepts connections; if it exits first, say why.
        super::wait_until(
            "sshd to listen on 127.0.0.1",
            Duration::from_secs(20),
            Duration::from_millis(20),
            || {
                if let Ok(Some(status)) = sshd.child.try_wait() {
                    let log =
                        std::fs::read_to_string(sshd.dir.join("sshd.log")).unwrap_or_default();
                    panic!("sshd exited ({status}): {log}");
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
        );
        sshd
    }

    /// The directory of the `ssh` wrapper, for the front of `PATH`.
    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // The sshd this test started, by its PID (unshare exec'd into it).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
