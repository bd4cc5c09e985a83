//! Running a command inside a cell, with a timeout and combined output: what
//! `EXEC`, `PKG` and health checks need. A trait so the directive executors can be
//! tested without a kernel cell.

use crate::kernel::{ExecSpec, Kernel, Stdio, Target};
use anyhow::{Context as _, Result};
use std::io::Read;
use std::time::Duration;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The exit code; `None` when killed by a signal or on timeout.
    pub code: Option<i32>,
    pub timed_out: bool,
    /// stdout and stderr, interleaved.
    pub output: String,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// One line saying how it failed, with the last lines of output.
    pub fn describe_failure(&self) -> String {
        let how = if self.timed_out {
            "timed out".to_string()
        } else {
            match self.code {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".to_string(),
            }
        };
        let tail: Vec<&str> = self.output.lines().rev().take(5).collect();
        if tail.is_empty() {
            how
        } else {
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("{how}: {}", tail.join(" | "))
        }
    }
}

pub trait CellRunner {
    /// Runs `argv` inside the cell with extra `env`, killing it (and every
    /// process it started in its process group) after `timeout`.
    fn run(
        &self,
        argv: &[String],
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<RunOutput>;
}

/// Runs commands in a live kernel cell through [`Kernel::spawn`].
pub struct KernelRunner<'a> {
    pub kernel: &'a dyn Kernel,
    pub target: Target,
}

impl CellRunner for KernelRunner<'_> {
    fn run(
        &self,
        argv: &[String],
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<RunOutput> {
        let spec = ExecSpec {
            argv: argv.to_vec(),
            env: env.to_vec(),
            ..ExecSpec::default()
        };
        // One pipe for stdout and stderr keeps their order.
        let (reader, writer) = rustix::pipe::pipe().context("creating a pipe")?;
        let writer2 = writer.try_clone().context("duplicating a pipe")?;
        let child = self.kernel.spawn(
            &self.target,
            &spec,
            [Stdio::Null, Stdio::Fd(writer), Stdio::Fd(writer2)],
        );
        let mut child =
            child.with_context(|| format!("running {} in {}", argv.join(" "), self.target))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::fs::File::from(reader).read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
        let mut timed_out = false;
        let status = match child
            .wait_timeout(timeout)
            .context("waiting for the command")?
        {
            Some(st) => st,
            None => {
                timed_out = true;
                // Every process enters a cell in a session of its own, so its
                // group is everything it started (a check blocked in a child,
                // `sh -c 'cat /fifo'`, does not linger).
                if let Ok(pid) = i32::try_from(child.id()) {
                    // SAFETY: kill(2) of the process group our child leads;
                    // not yet reaped, so its id cannot have been reused.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
                let _ = child.kill();
                child.wait().context("waiting for the killed command")?
            }
        };
        // A descendant may still hold the pipe open; take what arrived.
        let output = rx
            .recv_timeout(Duration::from_millis(if timed_out { 100 } else { 1000 }))
            .unwrap_or_default();
        Ok(RunOutput {
            code: if timed_out { None } else { status.code() },
            timed_out,
            output: String::from_utf8_lossy(&output).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{CellInfo, CellSpec, CellStats};
    use std::time::Instant;

    /// Spawns on the host: enough to test the runner's own logic (output,
    /// exit codes, timeouts); the cell side is covered by tests/apply.rs.
    struct HostSpawn;

    impl Kernel for HostSpawn {
        fn name(&self) -> &'static str {
            "host-spawn"
        }
        fn create(&self, _: &CellSpec) -> Result<u64> {
            anyhow::bail!("not a kernel")
        }
        fn destroy(&self, _: &Target) -> Result<()> {
            anyhow::bail!("not a kernel")
        }
        fn list(&self) -> Result<Vec<CellInfo>> {
            Ok(Vec::new())
        }
        fn stats(&self) -> Result<Vec<CellStats>> {
            Ok(Vec::new())
        }
        fn spawn(
            &self,
            _: &Target,
            spec: &ExecSpec,
            [i, o, e]: [Stdio; 3],
        ) -> Result<crate::kernel::Child> {
            use std::os::unix::process::CommandExt;
            let mut cmd = std::process::Command::new(&spec.argv[0]);
            cmd.args(&spec.argv[1..])
                .envs(spec.env.iter().cloned())
                .stdin(i)
                .stdout(o)
                .stderr(e);
            // As a cell's spawn agent does: a session of its own.
            cmd.process_group(0);
            Ok(crate::kernel::Child::from_std(cmd.spawn()?))
        }
    }

    fn sh(cmd: &str, timeout: Duration) -> RunOutput {
        let r = KernelRunner {
            kernel: &HostSpawn,
            target: Target::Name("t".into()),
        };
        let argv = ["/bin/sh".to_string(), "-c".to_string(), cmd.to_string()];
        r.run(&argv, &[("GREETING".into(), "hi".into())], timeout)
            .unwrap()
    }

    #[test]
    fn collects_both_streams_in_order_and_the_exit_code() {
        let out = sh(
            "echo $GREETING; echo err >&2; exit 3",
            Duration::from_secs(5),
        );
        assert_eq!(out.code, Some(3));
        assert_eq!(out.output, "hi\nerr\n");
        assert_eq!(out.describe_failure(), "exit status 3: hi | err");
        assert!(sh("true", Duration::from_secs(5)).success());
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children() {
        let dir = crate::testutil::TempDir::new("runner-tree");
        let pidfile = dir.join("pid");
        // The shell waits on a child that blocks: both go.
        let cmd = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let out = sh(&cmd, Duration::from_millis(300));
        assert!(out.timed_out);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed, then reaped by init (it was the shell's child): gone or a zombie.
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone() {
            assert!(
                Instant::now() < deadline,
                "the check's child {pid} survived"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_command_past_its_timeout_is_killed() {
        let started = Instant::now();
        let out = sh("echo started; exec sleep 30", Duration::from_millis(300));
        assert!(out.timed_out);
        assert_eq!(out.code, None);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(out.describe_failure().starts_with("timed out"));
    }
}
