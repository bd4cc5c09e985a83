//! `cellmgr logs NAME` (and `cellmgr cell logs NAME`): a cell's service log.

use super::load_config;
use crate::engine::manifest;
use crate::exit::EXIT_OK;
use crate::supervise::{self, logread};
use anyhow::{bail, Result};

pub fn run(a: logread::LogsArgs) -> Result<i32> {
    let cfg = load_config()?;
    crate::names::validate("cell", &a.cell)?;
    let query = a.query(supervise::unix_now_ms())?;
    let path = supervise::log_path(&cfg, &a.cell);
    if !logread::exists(&path) && !a.follow {
        match manifest::load_cell(&cfg, &a.cell)? {
            None => bail!(
                "cell {} not found: no manifest {} and no service log",
                a.cell,
                manifest::cell_path(&cfg, &a.cell).display()
            ),
            Some(m) if m.supervise_cmd.is_none() => bail!(
                "cell {} has no service (CELL_SUPERVISE_CMD is not set), so it has no service log",
                a.cell
            ),
            // Declared with a service that has not run yet: nothing to show.
            Some(_) => {}
        }
    }
    logread::print(&path, &query, a.follow)?;
    Ok(EXIT_OK)
}
