//! Cells: kernel-enforced, jail-like cells with a declarative control plane.
//!
//! One library behind the multicall binary `cells`. Floors, top to bottom; every
//! import points down, or sideways where noted (`tests/layers.rs` checks it):
//!
//! 5. `cli`: the dispatcher (argv[0] → personality), logging; `fuzz`: the
//!    fuzzing entry points into every parser;
//! 4. `ctl`, `mgr`, `ui`: the personalities, argument parsing and presentation;
//! 3. `engine`: desired and runtime state, read models, plan/apply, backups;
//! 2. `kernel`, `supervise`, `ipc`: the runtime (sideways among themselves);
//! 1. `names`, `exit`, `config`, `rcconf`, `output`, `fs`, `model`, `calendar`,
//!    `cmdtable`, `journal`: the ground floor (sideways among themselves).

pub mod calendar;
pub mod cli;
pub mod cmdtable;
pub mod config;
pub mod ctl;
pub mod engine;
pub mod exit;
pub mod fs;
#[doc(hidden)]
pub mod fuzz;
pub mod ipc;
pub mod journal;
pub mod kernel;
pub mod mgr;
pub mod model;
pub mod names;
pub mod output;
pub mod rcconf;
pub mod supervise;
#[cfg(test)]
pub(crate) mod testutil;
pub mod ui;
