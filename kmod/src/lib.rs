//! secmodel_cell: the Cells kernel security model for NetBSD.
//!
//! Everything except `ffi` and `kernel` is pure Rust and runs in host
//! tests: the ABI ([`abi`]), the policy tables ([`policy`]), the cell table
//! ([`table`]), the model state ([`model`]), the management plane
//! ([`mgmt`]) and telemetry ([`telemetry`]). The kernel glue
//! (feature `kernel`, built for a bare-metal target) only adapts NetBSD's
//! calling conventions to these.
#![no_std]

extern crate alloc;

pub mod abi;
pub mod errno;
pub mod ffi;
pub mod idmap;
pub mod kabi;
pub mod kauth;
pub mod mgmt;
pub mod model;
pub mod module;
pub mod policy;
pub mod ports;
pub mod proclist;
pub mod table;
pub mod telemetry;

#[cfg(feature = "kernel")]
mod kernel;
