//! `cellmgr system ...`: whole-host operations.

use super::removal::Selection;
use super::{cell, confirm, load_config, lock, volume, Run, Scope};
use crate::exit::EXIT_OK;
use anyhow::Result;
use argh::FromArgs;

subcommands! {
    pub enum SystemCommand {
        Reset(Reset),
        Bootstrap(super::bootstrap::Bootstrap),
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "system")]
/// Whole-host operations.
pub struct System {
    #[argh(subcommand)]
    pub command: SystemCommand,
}

impl Run for System {
    fn run(self) -> Result<i32> {
        self.command.run()
    }
}

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "reset")]
/// Remove every cell, then every volume, in the given scope (default both:
/// manifests, runtimes, overlays and volume data). Backups and the base stay.
/// Needs --yes or a typed 'yes'.
pub struct Reset {
    /// only cells
    #[argh(switch)]
    cells: bool,
    /// only volumes
    #[argh(switch)]
    volumes: bool,
    /// desired, runtime or both (default)
    #[argh(option, default = "Scope::Both")]
    scope: Scope,
    /// do not ask for confirmation
    #[argh(switch)]
    yes: bool,
}

impl Run for Reset {
    fn run(self) -> Result<i32> {
        let (cells, volumes) = match (self.cells, self.volumes) {
            (false, false) => (true, true),
            other => other,
        };
        let groups = match (cells, volumes) {
            (true, true) => "all cells and volumes",
            (true, false) => "all cells",
            _ => "all volumes",
        };
        let what = match self.scope {
            Scope::Desired => "manifests",
            Scope::Runtime => "runtime state, overlays and volume data",
            Scope::Both => "manifests, runtime state, overlays and volume data",
        };
        confirm(&format!("Reset: remove {groups} ({what})?"), self.yes)?;
        let mut code = EXIT_OK;
        if cells {
            code = cell::Remove {
                name: None,
                all: true,
                orphans: false,
                scope: self.scope,
                yes: true,
                force: false,
            }
            .run()?;
        }
        if volumes {
            let cfg = load_config()?;
            let _lock = lock(&cfg, "system reset")?;
            volume::remove_volumes(&cfg, self.scope, Selection::All, true, false)?;
        }
        Ok(code)
    }
}
