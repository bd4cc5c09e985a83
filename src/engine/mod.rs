//! The engine shared by every personality: configuration, desired state
//! (manifests), runtime state, read models, plan/apply and backups.

pub mod backup;
pub mod config;
pub mod fsutil;
pub mod model;
pub mod rcconf;
