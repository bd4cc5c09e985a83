//! `cellmgr events`: the lifecycle events (and with --audit the audit records)
//! from the journal, `CELL_AUDIT_LOG`.

use super::{load_config, Run};
use crate::exit::EXIT_OK;
use crate::journal::read::{self, Filter, Format};
use anyhow::{anyhow, Result};
use argh::FromArgs;

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "events")]
/// Show what happened to cells: started, stopped, exited (with the status),
/// restarted, health changed, frozen, thawed; with --audit also every change
/// made and who made it. Oldest first, from the journal (CELL_AUDIT_LOG, its
/// rotated files included).
pub struct Events {
    /// keep printing new records, across log rotation, until interrupted
    #[argh(switch, short = 'f')]
    follow: bool,
    /// only records since TIME: a UTC time such as 2026-05-01 or
    /// 2026-05-01T12:00:30, or a duration ago such as 90s, 10m or 2h
    #[argh(option)]
    since: Option<String>,
    /// only the records of this cell
    #[argh(option)]
    cell: Option<String>,
    /// also the audit records: every mutation, its actor and its result
    #[argh(switch)]
    audit: bool,
    /// print the records as stored: one JSON object per line
    #[argh(switch)]
    json: bool,
}

/// `--since`: a UTC time, or a duration before now.
fn since(text: &str) -> Result<String> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let at = match crate::rcconf::parse_duration(text) {
        Some(ago) => now_ms.saturating_sub(ago.as_millis() as u64),
        None => crate::calendar::parse_utc(text).ok_or_else(|| {
            anyhow!(
                "--since '{text}': expected a UTC time such as 2026-05-01 or \
                 2026-05-01T12:00:30, or a duration ago such as 90s, 10m or 2h"
            )
        })?,
    };
    Ok(crate::calendar::format_utc_ms(at))
}

impl Run for Events {
    fn run(self) -> Result<i32> {
        if let Some(c) = &self.cell {
            crate::names::validate("cell", c)?;
        }
        let filter = Filter {
            since: self.since.as_deref().map(since).transpose()?,
            cell: self.cell.clone(),
            audit: self.audit,
        };
        let cfg = load_config()?;
        let format = if self.json {
            Format::Json
        } else {
            Format::Text
        };
        // Events that supervising inits recorded join the journal first.
        let mut warned = false;
        let mut refresh = || {
            if let Err(e) = crate::supervise::absorb_events(&cfg, None) {
                if !std::mem::replace(&mut warned, true) {
                    log::warn!("{e:#}");
                }
            }
        };
        read::print(&cfg.audit_log, &filter, format, self.follow, &mut refresh)?;
        Ok(EXIT_OK)
    }
}
