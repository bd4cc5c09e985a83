//! Cells: kernel-enforced, jail-like cells with a declarative control plane.
//!
//! One library behind the multicall binary `cells`. Layers, top to bottom:
//! personalities (`ctl`, `mgr`, `ui`) → `engine` → `supervise`/`ipc` → `kernel`.
//! `output`, `names`, `calendar` and `cli` are the shared conventions.

pub mod calendar;
pub mod cli;
pub mod ctl;
pub mod engine;
pub mod ipc;
pub mod kernel;
pub mod mgr;
pub mod names;
pub mod output;
pub mod supervise;
#[cfg(test)]
pub(crate) mod testutil;
pub mod ui;
