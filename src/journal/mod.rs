//! The journal: one append-only JSON Lines file (`CELL_AUDIT_LOG`, root's,
//! mode 0600, rotated by size) that holds two kinds of record:
//!
//! - `audit`: every mutation — who (uid, `SUDO_USER`, over the IPC socket the
//!   peer's uid and pid), which command, which cell, how it ended;
//! - `event`: what happened to a cell — started, stopped, exited (with its
//!   status), restarted, health changed, frozen, thawed.
//!
//! Every process that changes something writes here directly: `cellmgr` and
//! `cellctl` (the audit records, and the lifecycle events of the engine), the
//! IPC server (its actions), each supervisor (exits, restarts, health). A
//! process opts in by [`init`] with its configuration; until then (unit tests,
//! read-only commands) nothing is written. `cellmgr events` reads it back
//! ([`read`]).

mod file;
pub mod read;

use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

pub use file::Journal;

mod pending;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Audit(Audit),
    Event(Event),
}

impl Record {
    pub fn time(&self) -> &str {
        match self {
            Record::Audit(a) => &a.time,
            Record::Event(e) => &e.time,
        }
    }

    pub fn cell(&self) -> Option<&str> {
        match self {
            Record::Audit(a) => a.cell.as_deref(),
            Record::Event(e) => Some(&e.cell),
        }
    }
}

/// A mutation and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ` (sorts as text).
    pub time: String,
    pub actor: Actor,
    /// The command line as typed (`cellmgr cell start web`), or the IPC
    /// request (`ipc start web`).
    pub command: String,
    /// What was done: the command path (`cell start`), `apply START`, `ipc start`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// `ok` or `failed`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Who did it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The real uid of the process that acted.
    pub uid: u32,
    pub pid: u32,
    /// `SUDO_USER` (and `SUDO_UID`) when the command ran under sudo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_uid: Option<u32>,
    /// `ipc` when the IPC bridge ran it for a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The bridge's client, from the kernel (SO_PEERCRED, getpeereid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_pid: Option<u32>,
    /// The ssh client address (`SSH_CLIENT`), e.g. for `cellmgr -H`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_from: Option<String>,
}

/// Something that happened to a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time: String,
    /// started, stopped, exited, restarted, health, frozen, thawed.
    pub event: String,
    pub cell: String,
    /// The exit status (`exit 1`, `signal 9`), the restart count, the health
    /// (`ok`, `failing: ...`), the cell id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The process that saw it (a supervisor, cellmgr).
    pub pid: u32,
}

/// The lifecycle events `cellmgr events` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    Started,
    Stopped,
    Exited,
    Restarted,
    Health,
    Frozen,
    Thawed,
}

impl Happened {
    pub fn as_str(self) -> &'static str {
        match self {
            Happened::Started => "started",
            Happened::Stopped => "stopped",
            Happened::Exited => "exited",
            Happened::Restarted => "restarted",
            Happened::Health => "health",
            Happened::Frozen => "frozen",
            Happened::Thawed => "thawed",
        }
    }
}

/// This process's journal and how it was invoked.
struct Context {
    journal: Journal,
    actor: Actor,
}

static CONTEXT: OnceLock<Context> = OnceLock::new();
static COMMAND: OnceLock<String> = OnceLock::new();

/// Set in a cell's init forked from a recording command (`kernel::linux::ns`):
/// the journal's host path means nothing in the cell's mount namespace, and
/// an executed init records nothing either.
static SILENCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns recording off in this process for good, whatever [`init`] did.
pub fn silence() {
    SILENCED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Turns recording on for this process (the first configuration wins).
pub fn init(cfg: &Config) {
    let _ = CONTEXT.get_or_init(|| Context {
        journal: Journal::new(cfg),
        actor: actor_of_process(),
    });
}

/// Records the command line this process runs (for the audit records).
pub fn set_command(words: &[String]) {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| crate::cmdtable::shell_quote(w))
        .collect();
    let _ = COMMAND.set(quoted.join(" "));
}

/// The uid, pid, sudo and ssh origin of this process; over the bridge, the
/// client the server named in `CELLMGR_IPC_PEER` (`uid:pid`).
fn actor_of_process() -> Actor {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut actor = Actor {
        uid: rustix::process::getuid().as_raw(),
        pid: std::process::id(),
        sudo_user: env("SUDO_USER"),
        sudo_uid: env("SUDO_UID").and_then(|v| v.parse().ok()),
        ssh_from: env("SSH_CLIENT").and_then(|v| v.split(' ').next().map(str::to_string)),
        ..Actor::default()
    };
    if env("CELLMGR_CALL_CONTEXT").as_deref() == Some("ipc") {
        actor.via = Some("ipc".into());
        // `uid:pid`, the pid empty where the kernel does not tell it.
        if let Some((uid, pid)) = env("CELLMGR_IPC_PEER").and_then(|p| {
            let (u, p) = p.split_once(':')?;
            Some((u.parse().ok()?, p.parse().ok()))
        }) {
            actor.peer_uid = Some(uid);
            actor.peer_pid = pid;
        }
    }
    actor
}

/// Now, as journal timestamps are written.
pub fn now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    crate::calendar::format_utc_ms(ms)
}

/// Appends a record; a journal that cannot be written is reported once per
/// process and does not fail the operation that was recorded.
fn append(record: &Record) {
    if SILENCED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let Some(ctx) = CONTEXT.get() else { return };
    if let Err(e) = ctx.journal.append(record) {
        static WARNED: OnceLock<()> = OnceLock::new();
        if WARNED.set(()).is_ok() {
            eprintln!(
                "warning: audit log {} not written: {e:#}",
                ctx.journal.path().display()
            );
        }
    }
}

/// What an audit record is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Cell(&'a str),
    Volume(&'a str),
    None,
}

/// The outcome of a mutation: `Ok(exit code)` or the error it failed with.
pub type Outcome<'a> = Result<i32, &'a anyhow::Error>;

/// Records a mutation this process made (`action` such as `cell start`).
pub fn audit(action: &str, subject: Subject, outcome: Outcome) {
    let Some(ctx) = CONTEXT.get() else { return };
    audit_as(ctx.actor.clone(), action, None, subject, outcome);
}

/// Records a mutation made for someone else (the IPC bridge's client), with
/// `command` saying what they asked for.
pub fn audit_as(
    actor: Actor,
    action: &str,
    command: Option<String>,
    subject: Subject,
    outcome: Outcome,
) {
    let (cell, volume) = match subject {
        Subject::Cell(c) => (Some(c.to_string()), None),
        Subject::Volume(v) => (None, Some(v.to_string())),
        Subject::None => (None, None),
    };
    let (result, exit, error) = match outcome {
        Ok(0) => ("ok", Some(0), None),
        Ok(code) => ("failed", Some(code), None),
        Err(e) => {
            let parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            ("failed", None, Some(parts.join(": ")))
        }
    };
    append(&Record::Audit(Audit {
        time: now(),
        actor,
        command: command
            .or_else(|| COMMAND.get().cloned())
            .unwrap_or_default(),
        action: action.to_string(),
        cell,
        volume,
        result: result.to_string(),
        exit,
        error,
    }));
}

/// Commands (the last word of their path) that change nothing.
const READ_ONLY: &[&str] = &["list", "show", "fields", "events", "logs", "stats", "serve"];

/// Records a command (of the personality whose table `info` is) that ran to
/// `result`, unless it only reads (or was the internal start of a supervisor,
/// which records its own).
pub fn audit_command(
    info: &argh::CommandInfoWithArgs,
    args: &[String],
    result: &anyhow::Result<i32>,
) {
    if CONTEXT.get().is_none() {
        return;
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let inv = crate::cmdtable::invocation(info, &words);
    let read_only = inv
        .path
        .last()
        .map_or(true, |w| READ_ONLY.contains(&w.as_str()))
        || inv
            .switches
            .iter()
            .any(|s| s == "--dry-run" || s == "--help")
        || inv.option("--ready-fd").is_some();
    if read_only {
        return;
    }
    // Several cells named (apply a b): the record is about none in particular.
    let named = inv
        .positionals
        .iter()
        .filter(|(n, _)| ["name", "names", "cell", "cells"].contains(&n.as_str()))
        .count();
    let name = match named {
        1 => inv.positional(&["name", "names", "cell", "cells"]),
        _ => inv.option("--name"),
    };
    let subject = match (name, inv.path.first().map(String::as_str)) {
        (Some(n), Some("volume")) => Subject::Volume(n),
        (Some(n), _) => Subject::Cell(n),
        (None, _) => Subject::None,
    };
    let outcome = match result {
        Ok(code) => Ok(*code),
        Err(e) => Err(e),
    };
    audit(&inv.path.join(" "), subject, outcome);
}

/// Records a lifecycle event of `cell`.
pub fn event(cell: &str, happened: Happened, detail: Option<String>) {
    let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut event = Event {
        time: now(),
        event: happened.as_str().to_string(),
        cell: cell.to_string(),
        detail,
        pid: std::process::id(),
    };
    if let Some((file, pid)) = pending {
        event.pid = pid;
        // Nobody to tell in a cell's init: a lost event is lost.
        let _ = pending::append(&file, &Record::Event(event));
        return;
    }
    append(&Record::Event(event));
}

/// Where the events go instead of the journal, and the pid they name: in a
/// cell's init that supervises its service, a file of the supervision
/// directory that the host takes into the journal ([`absorb`]).
static PENDING: std::sync::Mutex<Option<(std::path::PathBuf, u32)>> = std::sync::Mutex::new(None);

/// Sends this process's events to `file` (see [`PENDING`]); `None`: to the
/// journal again.
pub fn events_to(file: Option<(std::path::PathBuf, u32)>) {
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = file;
}

/// Takes the events a supervisor in `cell`'s init left in `file` into the
/// journal (see [`pending::take`] for what is accepted of them).
pub fn absorb(file: &std::path::Path, cell: &str) -> anyhow::Result<()> {
    if SILENCED.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    let Some(ctx) = CONTEXT.get() else {
        return Ok(());
    };
    pending::take(file, cell, &mut |record| ctx.journal.append(record))
}

/// The actor of this process (for the IPC server, whose clients act through it).
pub fn process_actor() -> Actor {
    CONTEXT
        .get()
        .map(|c| c.actor.clone())
        .unwrap_or_else(actor_of_process)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_one_json_object_with_a_type() {
        let r = Record::Event(Event {
            time: "2026-01-02T03:04:05.006Z".into(),
            event: "exited".into(),
            cell: "web".into(),
            detail: Some("exit 1".into()),
            pid: 7,
        });
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"type":"event","time":"2026-01-02T03:04:05.006Z","event":"exited","cell":"web","detail":"exit 1","pid":7}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }
}
