//! The engine shared by every personality: desired state (manifests), runtime
//! state, read models, plan/apply and backups. Configuration, the read-model
//! rows and the file layer live on the ground floor (`crate::config`,
//! `crate::model`, `crate::fs`).

pub mod applyfile;
pub mod backup;
pub mod ids;
pub mod lock;
pub mod manifest;
pub mod par;
pub mod plan;
pub mod read;
pub mod runtime;
