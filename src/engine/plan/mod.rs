//! `cellmgr apply`'s engine: dependency order, drift hashes, the plan, the
//! executor that carries it out, and the check that it is the plan reviewed.

pub mod execute;
pub mod graph;
pub mod hash;
pub mod host;
pub mod inputs;
pub mod model;
pub mod review;

pub use model::{Action, ActionKind, CellInput, CellObserved, CellPlan, Options, Plan, Subject};
