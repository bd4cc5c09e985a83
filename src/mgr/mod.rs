//! `cellmgr`: the declarative control plane. Argument parsing and presentation
//! only; the work is in `engine`.
//!
//! The command tree is argh subcommand enums built with `subcommands!`: adding a
//! command is one line in the enum (`Apply(crate::mgr::apply::Apply),`) plus a
//! type that implements [`Run`].

use crate::config::Config;
use crate::engine::lock::{self, LockGuard};
use crate::engine::read::RuntimeFacts;
use anyhow::{bail, Context, Result};
use argh::FromArgs;

/// Declares an argh subcommand enum and its [`Run`] dispatch in one place. A
/// variant runs its type's [`Run`], or the handler given after `=>`.
macro_rules! subcommands {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($variant:ident($ty:ty) $(=> $handler:expr)?),* $(,)?
    }) => {
        $(#[$meta])*
        // Parsed once per run: boxing the larger variants would buy nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(argh::FromArgs, argh::ArgsInfo)]
        #[argh(subcommand)]
        $vis enum $name { $($variant($ty)),* }

        impl $crate::mgr::Run for $name {
            fn run(self) -> anyhow::Result<i32> {
                match self { $(Self::$variant(c) => subcommands!(@call c $(, $handler)?)),* }
            }
        }
    };
    (@call $c:ident) => { $crate::mgr::Run::run($c) };
    (@call $c:ident, $handler:expr) => { ($handler)($c) };
}

mod apply;
pub mod backup;
mod bootstrap;
mod cell;
pub mod confirm;
mod editor;
mod events;
pub mod ipc;
mod logs;
mod output;
mod plan_rows;
mod removal;
mod system;
mod volume;

pub use confirm::confirm;

/// A parsed command that can run; returns the exit code.
pub trait Run {
    fn run(self) -> Result<i32>;
}

/// cellmgr: the Cells control plane. Desired state lives in manifests
/// (cells(5)), runtime state under the data directory; see cellmgr(8).
#[derive(FromArgs, argh::ArgsInfo)]
pub struct Cellmgr {
    /// run the command on another host over ssh: [user@]host (same output,
    /// exit codes and confirmations as there)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// with -H: the command that runs cellmgr there (default: cellmgr), e.g.
    /// 'sudo cellmgr'
    #[argh(option)]
    pub remote_cmd: Option<String>,
    #[argh(subcommand)]
    pub command: Command,
}

subcommands! {
    pub enum Command {
        Cell(cell::Cell),
        Volume(volume::Volume),
        System(system::System),
        List(cell::List),
        Start(cell::Start),
        Stop(cell::Stop),
        Restart(cell::Restart),
        Shell(cell::Shell),
        Logs(crate::supervise::logread::LogsArgs) => logs::run,
        Apply(apply::Apply),
        Events(events::Events),
        Ipc(ipc::IpcArgs),
    }
}

/// cellmgr's commands, flags and positionals (for completion and hints).
pub fn command_table() -> argh::CommandInfoWithArgs {
    <Cellmgr as argh::ArgsInfo>::get_args_info()
}

pub fn main(personality: &str, args: &[String]) -> i32 {
    let parsed = match crate::exit::parse_args::<Cellmgr>(&[personality], args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match &parsed.host {
        Some(host) => crate::ipc::ssh::forward(
            personality,
            host,
            parsed.remote_cmd.as_deref(),
            crate::ipc::ssh::command_args(args),
        ),
        None => {
            let result = if parsed.remote_cmd.is_some() {
                Err(anyhow::anyhow!("--remote-cmd only applies with -H HOST"))
            } else {
                parsed.command.run()
            };
            crate::journal::audit_command(personality, &command_table(), args, &result);
            crate::exit::finish(personality, result)
        }
    }
}

/// Which state a command changes: the manifests, the runtime, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Desired,
    Runtime,
    Both,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        match s {
            "desired" => Ok(Scope::Desired),
            "runtime" => Ok(Scope::Runtime),
            "both" => Ok(Scope::Both),
            _ => Err(format!(
                "invalid scope '{s}': expected desired, runtime or both"
            )),
        }
    }
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Desired => "desired",
            Scope::Runtime => "runtime",
            Scope::Both => "both",
        }
    }

    pub fn desired(self) -> bool {
        matches!(self, Scope::Desired | Scope::Both)
    }

    pub fn runtime(self) -> bool {
        matches!(self, Scope::Runtime | Scope::Both)
    }

    /// Refuses a scope the command does not support.
    pub fn require(self, command: &str, allowed: &[Scope]) -> Result<Scope> {
        if !allowed.contains(&self) {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            bail!(
                "{command} does not support --scope {}: expected {}",
                self.as_str(),
                names.join(" or ")
            );
        }
        Ok(self)
    }
}

pub fn load_config() -> Result<Config> {
    let cfg = Config::load().context("reading the configuration")?;
    crate::journal::init(&cfg);
    Ok(cfg)
}

/// Takes the mutation lock for `what` (shown to a command that has to wait).
pub fn lock(cfg: &Config, what: &str) -> Result<LockGuard> {
    lock::acquire(cfg, &format!("cellmgr {what}"), lock::DEFAULT_WAIT)
}

/// The lock for a command that runs health checks: set aside while they run.
pub fn lock_held(cfg: &Config, what: &str) -> Result<lock::Held> {
    lock::Held::acquire(cfg, &format!("cellmgr {what}"))
}

/// For a command that changes one named cell or volume: checks the name, then
/// reads the configuration and takes the lock as `<noun> <verb> <name>`.
pub fn lock_named(noun: &str, verb: &str, name: &str) -> Result<(Config, lock::Held)> {
    let cfg = load_config()?;
    crate::names::validate(noun, name)?;
    let guard = lock_held(&cfg, &format!("{noun} {verb} {name}"))?;
    Ok((cfg, guard))
}

/// What the kernel and the supervisors report. When the kernel cannot be read
/// (not root, no backend) the runtime fields stay empty and a warning says so.
pub fn runtime_facts(cfg: &Config, want_stats: bool) -> RuntimeFacts {
    let gathered = crate::kernel::host(cfg)
        .and_then(|k| crate::engine::read::runtime_facts(cfg, k.as_ref(), want_stats));
    let facts = gathered.unwrap_or_else(|e| {
        eprintln!("cellmgr: warning: runtime state unavailable, runtime fields are empty: {e:#}");
        RuntimeFacts::default()
    });
    for w in &facts.warnings {
        eprintln!("cellmgr: warning: {w}");
    }
    facts
}
