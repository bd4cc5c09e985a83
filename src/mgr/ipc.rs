//! `cellmgr ipc serve`: the control plane behind the IPC bridge (cellui, or any
//! client). Reads come from the engine in-process and travel typed; actions run
//! the very `cellmgr` command an operator would type, so an action through the
//! bridge has the CLI's semantics (locking, dependency order, checks) and fails
//! with the CLI's words, and a crashing action cannot take the bridge down.

use crate::config::Config;
use crate::engine::backup::{self, naming::format_stamp, Kind};
use crate::engine::plan::review;
use crate::engine::read;
use crate::ipc::logtail::tail_file;
use crate::ipc::proto::{BackupRow, BackupTarget, LogChunk, Plan, PlanStep};
use crate::ipc::server::{self, Access, Backend};
use crate::model::{CellRow, VolumeRow};
use anyhow::{anyhow, bail, Context, Result};
use argh::FromArgs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Serve the control plane over the typed IPC bridge (see cellmgr(8), IPC PROTOCOL).
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "ipc")]
pub struct IpcArgs {
    #[argh(subcommand)]
    cmd: IpcCmd,
}

#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand)]
enum IpcCmd {
    Serve(ServeArgs),
}

/// Answer requests on stdin/stdout (--stdio, as cellui and ssh use it) or on a
/// unix socket (--socket PATH, mode 0600: root and this user; peers are checked
/// by their kernel credentials).
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "serve")]
struct ServeArgs {
    /// serve one session on standard input and output
    #[argh(switch)]
    stdio: bool,
    /// listen on this unix socket path instead
    #[argh(option)]
    socket: Option<PathBuf>,
    /// with --socket: also admit members of this group (socket mode 0660)
    #[argh(option)]
    group: Option<String>,
}

impl super::Run for IpcArgs {
    fn run(self) -> Result<i32> {
        let IpcCmd::Serve(a) = self.cmd;
        serve(a)
    }
}

fn serve(a: ServeArgs) -> Result<i32> {
    let backend = EngineBackend::new()?;
    // The server records the actions its clients ask for.
    super::load_config()?;
    match (a.stdio, a.socket) {
        (true, None) => {
            if a.group.is_some() {
                bail!("--group only applies with --socket");
            }
            server::serve_stdio(&backend)?;
        }
        (false, Some(path)) => {
            let group = a.group.as_deref().map(server::group_id).transpose()?;
            server::serve_socket(&path, Arc::new(backend), Access { group })?;
        }
        (true, Some(_)) => bail!("--stdio and --socket exclude each other: pick one transport"),
        (false, None) => bail!("ipc serve needs a transport: --stdio or --socket PATH"),
    }
    Ok(crate::exit::EXIT_OK)
}

/// The engine as the bridge sees it.
pub struct EngineBackend {
    /// This program, to run `cellmgr` commands for actions.
    exe: PathBuf,
}

impl EngineBackend {
    pub fn new() -> Result<EngineBackend> {
        // Fail at start, not on the first request, when the configuration is bad.
        Config::load()?;
        let exe = std::env::current_exe().context("finding this program")?;
        Ok(EngineBackend { exe })
    }

    /// Runs `cellmgr <args>` to its end and returns how it ended.
    /// The output goes to anonymous files, not pipes: a command must not fail
    /// half-way because this server (or its client) went away. They have no
    /// name another user could plant beforehand (`O_TMPFILE`).
    fn run(&self, args: &[&str]) -> Result<Finished> {
        let what = || format!("running cellmgr {}", args.join(" "));
        let scratch = crate::fs::host::anonymous_file;
        let (mut out, mut err) = (scratch().with_context(what)?, scratch().with_context(what)?);
        let mut cmd = Command::new(&self.exe);
        if let Some(peer) = server::acting_for() {
            let pid = peer.pid.map(|p| p.to_string()).unwrap_or_default();
            cmd.env("CELLMGR_IPC_PEER", format!("{}:{pid}", peer.uid));
        }
        let status = cmd
            .arg("mgr")
            .args(args)
            .env("CELLMGR_CALL_CONTEXT", "ipc")
            .stdin(Stdio::null())
            .stdout(out.try_clone().with_context(what)?)
            .stderr(err.try_clone().with_context(what)?)
            .status()
            .with_context(what)?;
        Ok(Finished {
            status,
            stdout: read_back(&mut out)?,
            stderr: read_back(&mut err)?,
        })
    }

    /// Runs `cellmgr <args>`; its stdout on success, its error message otherwise.
    fn cellmgr(&self, args: &[&str]) -> Result<String> {
        let done = self.run(args)?;
        match done.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&done.stdout).trim_end().to_string()),
            _ => Err(done.error()),
        }
    }

    fn each(&self, verb: &str, cells: &[String]) -> Result<String> {
        if cells.is_empty() {
            bail!("cell {verb}: no cell named");
        }
        let mut said = Vec::new();
        for c in cells {
            said.push(self.cellmgr(&["cell", verb, c])?);
        }
        Ok(said.join("\n"))
    }
}

/// A `cellmgr` command that has ended.
struct Finished {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Finished {
    fn error(&self) -> anyhow::Error {
        cli_error(&self.stderr, &self.stdout, self.status)
    }
}

fn read_back(file: &mut std::fs::File) -> Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .context("reading a command's output")?;
    Ok(bytes)
}

/// The CLI's error as the bridge carries it: what `cellmgr` printed after its
/// `cellmgr: ` prefix (the last such line is the failure, earlier ones warnings);
/// a command that reports failures on stdout (apply's summary) is quoted from there.
fn cli_error(stderr: &[u8], stdout: &[u8], status: std::process::ExitStatus) -> anyhow::Error {
    let last_line = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .rev()
            .map(|l| l.strip_prefix("cellmgr: ").unwrap_or(l).trim().to_string())
            .find(|l| !l.is_empty() && !l.starts_with("warning:"))
    };
    match last_line(stderr).or_else(|| last_line(stdout)) {
        Some(m) => anyhow!("{m}"),
        None => anyhow!("cellmgr failed ({status}) without a message"),
    }
}

fn kind_of(target: &BackupTarget) -> Kind {
    match target {
        BackupTarget::Volume(_) => Kind::Volume,
        BackupTarget::Cell(_) => Kind::Cell,
    }
}

impl Backend for EngineBackend {
    fn cells(&self) -> Result<Vec<CellRow>> {
        let cfg = Config::load()?;
        let kernel = crate::kernel::host(&cfg).context("opening the kernel backend");
        let with_runtime = kernel.and_then(|k| read::snapshot_cells(&cfg, Some(k.as_ref())));
        // As `cellmgr cell list`: without the runtime, the desired state still shows.
        with_runtime.or_else(|e| {
            eprintln!(
                "cellmgr: warning: runtime state unavailable, runtime fields are empty: {e:#}"
            );
            read::snapshot_cells(&cfg, None)
        })
    }

    fn volumes(&self) -> Result<Vec<VolumeRow>> {
        read::snapshot_volumes(&Config::load()?)
    }

    fn backups(&self, target: &BackupTarget) -> Result<Vec<BackupRow>> {
        let cfg = Config::load()?;
        let list = backup::list(&cfg, kind_of(target), target.name())?;
        Ok(list
            .into_iter()
            .map(|b| BackupRow {
                name: b.name.clone(),
                timestamp: format_stamp(b.created),
                size: b.size,
                archive: b.path.display().to_string(),
            })
            .collect())
    }

    fn plan(&self, cells: &[String]) -> Result<Plan> {
        let mut args = vec!["apply", "--dry-run"];
        args.extend(cells.iter().map(String::as_str));
        let done = self.run(&args)?;
        let drift = match done.status.code() {
            Some(0) => false,
            Some(crate::exit::EXIT_DRIFT) => true,
            _ => return Err(done.error()),
        };
        let text = String::from_utf8_lossy(&done.stdout);
        let token = text
            .lines()
            .find_map(review::digest_line)
            .ok_or_else(|| anyhow!("apply --dry-run printed no plan digest"))??;
        Ok(Plan {
            steps: text.lines().filter_map(plan_step).collect(),
            drift,
            token: token.to_string(),
        })
    }

    fn start(&self, cells: &[String]) -> Result<String> {
        self.each("start", cells)
    }

    fn stop(&self, cells: &[String]) -> Result<String> {
        self.each("stop", cells)
    }

    fn restart(&self, cells: &[String]) -> Result<String> {
        self.each("restart", cells)
    }

    fn apply(&self, cells: &[String], plan_token: &str) -> Result<String> {
        // Checked here only for a clear error; the guarantee is apply's own check
        // of its plan under the lock.
        let token = review::Digest::parse(plan_token)
            .context("the plan token")?
            .to_string();
        let mut args = vec!["apply", "--expect-digest", &token];
        args.extend(cells.iter().map(String::as_str));
        self.cellmgr(&args)
    }

    fn backup_create(&self, target: &BackupTarget, quiesce: bool) -> Result<BackupRow> {
        let mut args = vec![target.kind(), "backup", "create", target.name()];
        if quiesce {
            args.push("--quiesce");
        }
        let path = self.cellmgr(&args)?;
        let made = self
            .backups(target)?
            .into_iter()
            .find(|b| b.archive == path.trim())
            .ok_or_else(|| anyhow!("backup create reported {path}, which is not listed"))?;
        Ok(made)
    }

    fn backup_restore(&self, target: &BackupTarget, archive: &str) -> Result<String> {
        let said = self.cellmgr(&[
            target.kind(),
            "backup",
            "restore",
            target.name(),
            "--from",
            archive,
            "--yes",
        ])?;
        Ok(if said.is_empty() {
            format!("restored {target} from {archive}")
        } else {
            said
        })
    }

    fn log_tail(&self, cell: &str, lines: u32, offset: Option<u64>) -> Result<LogChunk> {
        crate::names::validate("cell", cell)?;
        let cfg = Config::load()?;
        tail_file(&crate::supervise::log_path(&cfg, cell), lines, offset)
    }
}

/// One line of `apply --dry-run`: `KIND     subject: reason`.
fn plan_step(line: &str) -> Option<PlanStep> {
    let (action, rest) = line.split_once(char::is_whitespace)?;
    if action.is_empty() || !action.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        return None;
    }
    let (subject, detail) = rest
        .trim_start()
        .split_once(": ")
        .unwrap_or((rest.trim(), ""));
    Some(PlanStep {
        subject: subject.to_string(),
        action: action.to_string(),
        detail: detail.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_lines_become_plan_steps() {
        let s = plan_step("START    cell web: autostart is YES and it is not running").unwrap();
        assert_eq!(
            (s.action.as_str(), s.subject.as_str(), s.detail.as_str()),
            (
                "START",
                "cell web",
                "autostart is YES and it is not running"
            )
        );
        assert!(plan_step("").is_none());
        assert!(plan_step("2 cells planned").is_none());
    }

    #[test]
    fn cli_errors_lose_only_the_prefix() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(1 << 8);
        let e = cli_error(
            b"cellmgr: warning: x\ncellmgr: cell start: no manifest web.cell\n",
            b"",
            status,
        );
        assert_eq!(e.to_string(), "cell start: no manifest web.cell");
        let e = cli_error(b"", b"summary: total=1 changed=0 failed=1\n", status);
        assert_eq!(e.to_string(), "summary: total=1 changed=0 failed=1");
        assert!(cli_error(b"", b"", status)
            .to_string()
            .contains("without a message"));
    }
}
