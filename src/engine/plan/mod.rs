//! `cellmgr apply`'s engine: dependency order, drift hashes, the plan and the
//! executor that carries it out.

pub mod execute;
pub mod graph;
pub mod hash;
pub mod host;
pub mod inputs;
pub mod model;

pub use model::{Action, ActionKind, CellInput, CellObserved, CellPlan, Options, Plan, Subject};
