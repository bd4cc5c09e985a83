//! The engine shared by every personality: configuration, desired state
//! (manifests), runtime state, read models, plan/apply and backups.

pub mod applyfile;
pub mod backup;
pub mod config;
pub mod fsutil;
pub mod lock;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod rcconf;
pub mod read;
pub mod runtime;
