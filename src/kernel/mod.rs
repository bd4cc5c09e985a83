//! The kernel port: what a kernel must provide for cells, behind one trait.
//!
//! NetBSD implements it over the `secmodel_cell` sysctl ABI (`kmod/src/abi.rs`);
//! Linux over namespaces, cgroup2, BPF, capabilities and seccomp. Everything above
//! this module (cellctl, the engine) talks only to [`Kernel`].

use std::path::PathBuf;

/// Hardening profile of a cell (see ARCHITECTURE §3 and cellctl(8)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Profile {
    Low,
    Medium,
    #[default]
    High,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Low => "low",
            Profile::Medium => "medium",
            Profile::High => "high",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "low" => Ok(Profile::Low),
            "medium" => Ok(Profile::Medium),
            "high" => Ok(Profile::High),
            _ => anyhow::bail!("invalid profile '{s}': expected low, medium or high"),
        }
    }
}

/// A stored resource limit: `None` is unlimited.
pub type Limit = Option<u64>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Rlimits {
    pub nofile: Limit,
    pub address_space: Limit,
    pub core: Limit,
}

/// What `create` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellSpec {
    pub name: String,
    /// Absolute path that becomes the cell's `/`.
    pub root: PathBuf,
    pub profile: Profile,
    /// Reserved ports (at most 32), owned by this cell alone.
    pub ports: Vec<u16>,
    pub rlimits: Rlimits,
}

/// How a command names a cell: a string that parses as a number is an id only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Id(u64),
    Name(String),
}

impl Target {
    pub fn parse(s: &str) -> Target {
        match s.parse::<u64>() {
            Ok(id) => Target::Id(id),
            Err(_) => Target::Name(s.to_string()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Id(id) => write!(f, "cell {id}"),
            Target::Name(n) => write!(f, "cell '{n}'"),
        }
    }
}
