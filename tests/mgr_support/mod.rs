//! Kept so that test files still saying `mod mgr_support;` build: the harness
//! is `tests/support` (`mod support;`), re-exported here whole.

#[path = "../support/mod.rs"]
mod support;

pub use support::world::*;
pub use support::*;
